//! The allocator's tuning for a long-running server (glibc's malloc): few heaps, and
//! freed memory handed back after a big push or clone. A module of its own so that
//! the cache, the SSH sessions and the binary call it without depending on pack
//! maintenance.

/// Limits glibc's allocator to two heaps ("arenas") for a long-running server, and
/// gives big allocations pages of their own ([`MMAP_THRESHOLD`]). By
/// default every thread that contends gets its own (up to 8 per core); the threads
/// that read a big push or reconcile on every core then leave heaps behind that
/// `malloc_trim` cannot shrink to nothing: measured after a 10,000-skill import, the
/// idle server kept 60 MB with the default and 29 MB with this.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called before the server
    // starts its work.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
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
/// thread of its own. A push's memory is freed by several hands at different times
/// (the command, its connection, the cache's follow-up after the commit, which for a
/// bulk load builds an index); each asks, and the trim runs after the last.
///
/// The idle server's outliers after an import (44–81 MiB against ~27, in 0 to 2 runs
/// of 5): in one, `malloc_info` showed 24 MB of free chunks in a non-main heap's bins
/// after the last trim — memory freed later, without an ask: hence the late trim
/// ([`LATE`]). Neither threads freeing a large block in each heap nor one heap
/// (`M_ARENA_MAX` 1, the import's checks 30 % slower) removed them (BENCHMARKS.md,
/// session 27).
pub fn release_soon() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let started = std::thread::Builder::new()
            .name("skillsd-trim".into())
            .spawn(trim_when_quiet);
        if let Err(e) = started {
            tracing::warn!(error = %e, "no thread to hand freed memory back");
        }
    });
    let (asked, wake) = &TRIM;
    *asked.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), false));
    wake.notify_one();
}

/// A second trim this long after a burst's ([`release_soon`]), unless new work asks
/// first: after an import, now and then 20–25 MiB of a heap other than the main one
/// were freed after the burst's trim with no ask after them (`malloc_info` showed
/// them as free chunks of 0.5–3 MB that a trim gives back), and the idle server kept
/// them (idle RSS 44–81 MiB against ~27).
const LATE: std::time::Duration = std::time::Duration::from_secs(2);

/// The ask for a trim not yet served (when, and whether it is the late one after a
/// burst's trim), and the trimming thread's wake-up.
#[allow(clippy::type_complexity)]
static TRIM: (
    std::sync::Mutex<Option<(std::time::Instant, bool)>>,
    std::sync::Condvar,
) = (std::sync::Mutex::new(None), std::sync::Condvar::new());

/// Trims [`release_soon`] has made since the process started.
static TRIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The trimming thread: waits for an ask, then for [`QUIET`] without a newer one; after
/// that trim, one more [`LATE`] after it unless an ask comes first.
fn trim_when_quiet() {
    let (asked, wake) = &TRIM;
    let mut last = asked.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        match *last {
            None => last = wake.wait(last).unwrap_or_else(|p| p.into_inner()),
            Some((at, late)) => {
                match (at + QUIET).checked_duration_since(std::time::Instant::now()) {
                    Some(left) if !left.is_zero() => {
                        last = wake
                            .wait_timeout(last, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    _ => {
                        // The late trim is due LATE from now (an ask is due QUIET after it).
                        *last = (!late).then(|| (std::time::Instant::now() + LATE - QUIET, true));
                        drop(last);
                        release_memory(late);
                        TRIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        last = asked.lock().unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
        }
    }
}

/// Hands freed heap memory back to the operating system. A push or a clone of
/// thousands of skills briefly needs tens of megabytes; glibc's allocator keeps them
/// otherwise, so the idle server would stay at its peak.
fn release_memory(late: bool) {
    let before = anonymous_kib();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages back to the system (the main heap's
    // free top, and the free chunks of every heap); it touches no allocation in use.
    unsafe {
        libc::malloc_trim(0);
    }
    tracing::debug!(
        late,
        anon_kib_before = before,
        anon_kib_after = anonymous_kib(),
        "freed memory handed back"
    );
}

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

    #[test]
    fn asks_in_a_burst_are_served_by_one_trim_after_the_quiet_time() {
        // Nothing else in the library's unit tests asks for a trim.
        release_soon();
        assert!(trimmed_after(0), "a first ask is served");
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
        // Then the late one, once.
        std::thread::sleep(LATE);
        assert_eq!(trims(), before + 2, "the late trim after the burst's");
        std::thread::sleep(LATE + QUIET);
        assert_eq!(trims(), before + 2, "no trim after the late one");
    }
}
