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

/// Hands freed heap memory back to the operating system. A push or a clone of
/// thousands of skills briefly needs tens of megabytes; glibc's allocator keeps them
/// otherwise, so the idle server would stay at its peak.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory at the top of the heaps to the
    // system; it touches no allocation that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
