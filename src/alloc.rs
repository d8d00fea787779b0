//! The allocator's tuning for a long-running server (glibc's malloc): few heaps, and
//! freed memory handed back once the work that needed it has ended. A module of its
//! own so that the cache, the SSH sessions and the binary call it without depending on
//! pack maintenance.
//!
//! Why an idle server sometimes kept 20–80 MiB after an import (BENCHMARKS.md,
//! sessions 23–28): `malloc_trim` hands back the free chunks of every heap but the
//! free *top* of the main heap only; a heap of another arena keeps its top until a
//! large `free` in that arena trims it. Two causes made such tops: the cap on heaps
//! set after the runtime's threads had made theirs (three heaps under a cap of two),
//! and trims run in the middle of an import (another command's ask served while it
//! ran). The cap is now set before any thread ([`tune_allocator`]), no trim runs
//! while work is under way ([`working`]), and the trimming thread trims the second
//! heap's top as well ([`release_memory`]): no outlier in 24 imports since, against
//! 4 in 10 before.

/// Limits glibc's allocator to two heaps ("arenas") for a long-running server, and
/// gives big allocations pages of their own ([`MMAP_THRESHOLD`]). By
/// default every thread that contends gets its own (up to 8 per core); the threads
/// that read a big push or reconcile on every core then leave heaps behind that
/// `malloc_trim` cannot shrink to nothing: measured after a 10,000-skill import, the
/// idle server kept 60 MB with the default and 29 MB with this.
///
/// Call it before any other thread starts: glibc applies the cap only when it makes a
/// heap, so the heaps threads made before it stay (called from `serve`, after the
/// async runtime's workers had allocated, it left three). The trimming thread starts
/// here, first, so that the second heap is the one it made and allocates from: it
/// trims that heap's top too ([`release_memory`]).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called before the server
    // starts its work.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    start_trimming();
}

/// Allocations from this size on get pages of their own, handed back when freed. glibc
/// raises its threshold after the first big buffers are freed (up to 32 MiB), after
/// which a push's large buffers come from the heaps, and the small allocations that
/// outlive the push between them keep those pages resident: measured after a push of
/// 5,000 new skills, 20 MiB of anonymous memory stayed resident with 6 MiB in use
/// (`malloc_stats`, `malloc_trim` already called); with a fixed threshold of 128 KiB,
/// 9 MiB (idle RSS 42.6 → 31.8 MiB), the push no slower.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// How long the server stays quiet (no command, connection or follow-up ending)
/// before [`release_soon`] trims: a burst of work is trimmed once, after it.
const QUIET: std::time::Duration = std::time::Duration::from_millis(300);

/// Asks for freed memory to be handed back ([`release_memory`]) once the work that
/// ends now and whatever ends with it have let go: [`QUIET`] after the last ask, on a
/// thread of its own, unless work is under way then ([`working`]: its end asks
/// again). A push's memory is freed by several hands at different times (the command,
/// its connection, the cache's follow-up after the commit, which for a bulk load
/// builds an index); each asks, and the trim runs after the last.
pub fn release_soon() {
    start_trimming();
    let (asked, wake) = &TRIM;
    *asked.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
    wake.notify_one();
}

/// Work under way that allocates much and frees it when it ends: a git command, a
/// commit's follow-up, a reconcile, a gc ([`working`]).
static WORKING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Work under way, for as long as it lives: no trim runs meanwhile, and its end asks
/// for one ([`release_soon`]). A trim in the middle of an import (the server's own
/// ask from its start, served while the import ran) left 20–40 MiB of a heap's top
/// resident for good in 4 imports of 10, which no later trim gave back; with the
/// trims held back while the import runs, 1 of 12 (BENCHMARKS.md, session 28). A trim
/// waits for a quiet moment with no work, however long that takes: under steady work
/// the heaps are in use anyway.
#[must_use = "the work is under way while this lives"]
pub struct Working(());

/// Marks work under way until the guard is dropped (see [`Working`]).
pub fn working() -> Working {
    WORKING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Working(())
}

impl Drop for Working {
    fn drop(&mut self) {
        WORKING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        release_soon();
    }
}

/// When the ask for a trim not yet served came, and the trimming thread's wake-up.
static TRIM: (
    std::sync::Mutex<Option<std::time::Instant>>,
    std::sync::Condvar,
) = (std::sync::Mutex::new(None), std::sync::Condvar::new());

/// Trims [`release_soon`] has made since the process started.
static TRIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Starts the trimming thread once, and returns when it has allocated (and so has the
/// heap it will allocate from: a new one, when it is the first thread after the main
/// one to allocate).
fn start_trimming() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let (ready, started) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("skillsd-trim".into())
            .spawn(move || {
                std::hint::black_box(Box::new(0u64));
                let _ = ready.send(());
                trim_when_quiet();
            });
        match spawned {
            Ok(_) => {
                let _ = started.recv();
            }
            Err(e) => tracing::warn!(error = %e, "no thread to hand freed memory back"),
        }
    });
}

/// The trimming thread: waits for an ask, then for [`QUIET`] without a newer one, then
/// trims unless work is under way.
fn trim_when_quiet() {
    let (asked, wake) = &TRIM;
    let mut last = asked.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        match *last {
            None => last = wake.wait(last).unwrap_or_else(|p| p.into_inner()),
            Some(at) => match (at + QUIET).checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => {
                    last = wake
                        .wait_timeout(last, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                // Work under way: its end asks again.
                _ if WORKING.load(std::sync::atomic::Ordering::SeqCst) > 0 => *last = None,
                _ => {
                    *last = None;
                    drop(last);
                    release_memory();
                    TRIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    last = asked.lock().unwrap_or_else(|p| p.into_inner());
                }
            },
        }
    }
}

/// Hands freed heap memory back to the operating system. A push or a clone of
/// thousands of skills briefly needs tens of megabytes; glibc's allocator keeps them
/// otherwise, so the idle server would stay at its peak.
fn release_memory() {
    let before = anonymous_kib();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only hands free pages back to the system (the main
        // heap's free top, and the free chunks of every heap); it touches no
        // allocation in use.
        unsafe {
            libc::malloc_trim(0);
        }
        // The free top of this thread's heap, which malloc_trim leaves unless it is
        // the main one: glibc trims another heap's top when a block of 64 KiB or more
        // is freed in it. Under `serve` this thread's is the second heap (its first
        // allocation made it: [`tune_allocator`]), where the outliers were.
        drop(std::hint::black_box(Vec::<u8>::with_capacity(
            TOP_TRIM_BLOCK,
        )));
    }
    tracing::debug!(
        anon_kib_before = before,
        anon_kib_after = anonymous_kib(),
        "freed memory handed back"
    );
}

/// A block glibc takes from a heap (below [`MMAP_THRESHOLD`]) and whose `free` trims the
/// heap's top (from 64 KiB: `FASTBIN_CONSOLIDATION_THRESHOLD`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_TRIM_BLOCK: usize = 96 * 1024;

/// The process's resident anonymous memory (its heaps and stacks), in KiB, if known.
fn anonymous_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    fn trims() -> u64 {
        TRIMS.load(Ordering::Relaxed)
    }

    /// Waits up to 5 s for the count of trims to pass `than`.
    fn trimmed_after(than: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if trims() > than {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The tests of the one trimming thread, one at a time.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[test]
    fn asks_in_a_burst_are_served_by_one_trim_after_the_quiet_time() {
        let _serial = serial();
        // Nothing in the library's unit tests asks for a trim but this module's
        // tests, which run one at a time.
        let first = trims();
        release_soon();
        assert!(trimmed_after(first), "a first ask is served");
        let before = trims();
        let start = Instant::now();
        for i in 0..5 {
            if i > 0 {
                std::thread::sleep(QUIET / 5);
            }
            release_soon();
        }
        let last = Instant::now();
        assert!(trimmed_after(before), "the burst is served");
        // Not before the quiet time after the last ask, and once for the burst.
        assert!(last.elapsed() >= QUIET, "trimmed too early");
        std::thread::sleep(QUIET * 2);
        assert_eq!(trims(), before + 1, "one trim for the burst");
        assert!(start.elapsed() >= QUIET * 2);
    }

    #[test]
    fn no_trim_runs_while_work_is_under_way_and_its_end_asks_for_one() {
        let _serial = serial();
        let work = working();
        // A trim that was already running when the work started has ended by now.
        std::thread::sleep(QUIET);
        let before = trims();
        release_soon(); // another's ask, while the work runs
        std::thread::sleep(QUIET * 3);
        assert_eq!(trims(), before, "no trim while work is under way");
        let nested = working();
        drop(nested);
        std::thread::sleep(QUIET * 3);
        assert_eq!(
            trims(),
            before,
            "no trim while other work is still under way"
        );
        drop(work);
        assert!(trimmed_after(before), "the end of the work asks for a trim");
    }
}
