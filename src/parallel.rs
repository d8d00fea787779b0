//! Work over many items spread on the machine's cores: chunks handed out to a few
//! threads as they free up, each chunk's result given back to the calling thread as
//! soon as it is ready. Reading and validating thousands of skill files (a push's
//! checks, the cache's preparation, a reconcile) is the work.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The threads for such work: the machine's cores, at most 8.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// Runs `work` on each chunk of `batch` items, on every core when there are at least
/// `from` items (else on the calling thread), and hands each result with its chunk's
/// index to `consume` on the calling thread, in the order they are ready: a caller
/// that writes results as they come overlaps that with the work, and holds only a few
/// chunks' results in memory. `state` makes what each thread works with (a repository
/// handle), on the calling thread. An error from `consume` stops the work.
pub fn chunks<I, S, O, E>(
    items: &[I],
    batch: usize,
    from: usize,
    mut state: impl FnMut() -> S,
    work: impl Fn(&S, &[I]) -> O + Sync,
    consume: &mut dyn FnMut(usize, O) -> Result<(), E>,
) -> Result<(), E>
where
    I: Sync,
    S: Send,
    O: Send,
{
    let batch = batch.max(1);
    let threads = threads();
    if items.len() < from || threads < 2 {
        let state = state();
        for (i, part) in items.chunks(batch).enumerate() {
            consume(i, work(&state, part))?;
        }
        return Ok(());
    }
    let parts: Vec<&[I]> = items.chunks(batch).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, O)>(threads);
        for _ in 0..threads.min(parts.len()) {
            let (tx, state) = (tx.clone(), state());
            let (parts, next, work) = (&parts, &next, &work);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(part) = parts.get(i) else { break };
                    if tx.send((i, work(&state, part))).is_err() {
                        break; // the consumer stopped
                    }
                }
            });
        }
        drop(tx);
        for (i, out) in rx {
            consume(i, out)?;
        }
        Ok(())
    })
}

/// [`chunks`] with every chunk's results kept, put back in the items' order; the
/// first error stops the work and is returned.
pub fn in_order<I, S, O, E>(
    items: &[I],
    batch: usize,
    from: usize,
    state: impl FnMut() -> S,
    work: impl Fn(&S, &[I]) -> Result<Vec<O>, E> + Sync,
) -> Result<Vec<O>, E>
where
    I: Sync,
    S: Send,
    O: Send,
    E: Send,
{
    let mut parts: Vec<(usize, Vec<O>)> = Vec::new();
    chunks(items, batch, from, state, work, &mut |i, out| {
        parts.push((i, out?));
        Ok(())
    })?;
    parts.sort_by_key(|(i, _)| *i);
    Ok(parts.into_iter().flat_map(|(_, out)| out).collect())
}

/// Makes the calling thread run only on a core that would otherwise idle (Linux's
/// `SCHED_IDLE`): work done ahead of need, which must not slow what is needed now.
/// Returns whether the scheduler took it.
pub fn only_when_idle() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` with pid 0 changes the calling thread's policy;
    // `param` lives across the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
}

/// Runs `work` on a thread of its own at the lowest CPU priority (nice 19), and returns
/// what it returns: background maintenance that must give the cores to the pushes and
/// clones of the moment, yet still progress under steady load (unlike `SCHED_IDLE`).
/// The caller keeps its priority: an unprivileged thread cannot raise its own again,
/// so the work that holds a lock others wait for stays on the caller's thread. Threads
/// `work` starts inherit the priority.
pub fn at_low_priority<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("skillsd-low".into())
            .spawn_scoped(scope, || {
                // SAFETY: `setpriority` with `who` 0 changes the calling thread's nice
                // value on Linux (each thread is its own task there).
                if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } != 0 {
                    tracing::debug!("could not lower a background thread's priority");
                }
                work()
            })
            .expect("spawning a thread");
        match thread.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn nice() -> i32 {
        // SAFETY: `getpriority` reads the calling thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[test]
    fn low_priority_work_runs_at_nice_19_and_the_caller_keeps_its_own() {
        let before = nice();
        let (inside, in_its_threads) = at_low_priority(|| {
            let spawned = std::thread::spawn(nice).join().unwrap();
            (nice(), spawned)
        });
        assert_eq!((inside, in_its_threads), (19, 19));
        assert_eq!(nice(), before);
        // A panic in the work reaches the caller.
        let caught = std::panic::catch_unwind(|| at_low_priority(|| panic!("boom")));
        assert!(caught.is_err());
    }

    #[test]
    fn results_come_back_in_the_items_order_on_every_core_or_on_one() {
        let items: Vec<u64> = (0..10_000).collect();
        let squares: Vec<u64> = items.iter().map(|i| i * i).collect();
        let square = |_: &(), part: &[u64]| -> Result<Vec<u64>, ()> {
            Ok(part.iter().map(|i| i * i).collect())
        };
        assert_eq!(in_order(&items, 100, 1, || (), square), Ok(squares.clone()));
        assert_eq!(
            in_order(&items, 100, usize::MAX, || (), square),
            Ok(squares)
        );
    }

    #[test]
    fn an_error_from_the_consumer_stops_the_work() {
        let items: Vec<u32> = (0..1_000).collect();
        let mut seen = 0;
        let done = chunks(&items, 10, 1, || (), |_, part| part.len(), &mut |_, n| {
            seen += n;
            if seen >= 30 { Err("enough") } else { Ok(()) }
        });
        assert_eq!(done, Err("enough"));
        assert!(seen < items.len());
    }
}
