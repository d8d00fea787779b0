//! Session and sign-in limits: the settings ([`Limits`]), each running command's
//! place in the counts ([`SessionSlot`]), what a connection did lately for the idle
//! timeout ([`Activity`]), and the refusal windows that slow down unknown keys.

use super::*;

/// Most channels a connection may hold open without a command running on them (a
/// client opening channels and never using them cannot grow the server).
pub const MAX_IDLE_CHANNELS: usize = 8;
/// Most entries each refusal table keeps (an attacker with fresh keys or addresses
/// cannot grow them without bound: the oldest windows go first).
pub(super) const MAX_THROTTLED: usize = 50_000;

/// Limits on sessions and authentication (settings of `serve`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Commands (git or other) running at once, overall (`SKILLSD_MAX_SESSIONS`, 200).
    pub max_sessions: usize,
    /// ... and per user (`SKILLSD_MAX_SESSIONS_PER_USER`, 64).
    pub max_sessions_per_user: usize,
    /// Refused keys from one address (or refusals of one key) within `auth_window`
    /// before further refusals of unknown keys from it are slowed down
    /// (`SKILLSD_MAX_AUTH_FAILURES`, 20). A known key is never refused for them.
    pub max_auth_failures: u32,
    /// (`SKILLSD_AUTH_WINDOW_SECS`, 300 s)
    pub auth_window: std::time::Duration,
    /// The longest a git session may run (`SKILLSD_SESSION_TIMEOUT_SECS`, 3,600 s):
    /// past it the channel closes and the cancel flag stops the git work.
    pub session_timeout: std::time::Duration,
    /// While a git command waits for its client, the client must send at least
    /// [`MIN_RATE_BYTES`] per this much waiting (`SKILLSD_IDLE_TIMEOUT_SECS`, 300 s):
    /// a client trickling a byte now and then, or sending nothing, is cut off.
    pub min_rate_window: std::time::Duration,
}

/// The fewest bytes a client must send per [`Limits::min_rate_window`] of the
/// server waiting for it.
pub const MIN_RATE_BYTES: u64 = 1024;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_sessions: 200,
            max_sessions_per_user: 64,
            max_auth_failures: 20,
            auth_window: std::time::Duration::from_secs(300),
            session_timeout: std::time::Duration::from_secs(3600),
            min_rate_window: std::time::Duration::from_secs(300),
        }
    }
}

/// A running command's place in the session counts; released on drop.
pub struct SessionSlot {
    pub(super) state: Arc<AppState>,
    pub(super) user: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Ok(mut running) = self.state.running.lock()
            && let Some(n) = running.get_mut(&self.user)
        {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

/// Counts one more failure of `key` in its window (a new window when the last one is
/// over); the count.
pub(super) fn count_failure<K: std::hash::Hash + Eq>(
    table: &std::sync::Mutex<HashMap<K, Throttle>>,
    key: K,
    window: std::time::Duration,
) -> u32 {
    let Ok(mut table) = table.lock() else {
        return 0;
    };
    if table.len() >= MAX_THROTTLED {
        table.retain(|_, t| t.since.elapsed() < window);
        if table.len() >= MAX_THROTTLED {
            table.clear();
        }
    }
    let entry = table.entry(key).or_insert_with(Throttle::new);
    if entry.since.elapsed() >= window {
        *entry = Throttle::new();
    }
    entry.failures += 1;
    entry.failures
}

/// What a connection has really done lately, for the idle timeout: russh's own
/// inactivity timer counts every packet, so a client sending keepalives (`ssh -N`
/// with `ServerAliveInterval`) would never be idle by it. Here only logins and
/// commands count, and a connection is never idle while a command runs.
pub struct Activity {
    epoch: std::time::Instant,
    /// Milliseconds since `epoch` of the last login, command start or command end.
    last_ms: std::sync::atomic::AtomicU64,
    running: std::sync::atomic::AtomicUsize,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            epoch: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
            running: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub(super) fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long the connection has done nothing (`None` while a command runs).
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.running.load(Relaxed) > 0 {
            return None;
        }
        // A touch on another thread may land after `elapsed` is read: never below zero.
        let since =
            (self.epoch.elapsed().as_millis() as u64).saturating_sub(self.last_ms.load(Relaxed));
        Some(std::time::Duration::from_millis(since))
    }
}

/// Counts a command as running for as long as it lives.
pub(super) struct Running(Arc<Activity>);

impl Running {
    pub(super) fn new(activity: Arc<Activity>) -> Self {
        activity.touch();
        activity
            .running
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Running(activity)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.touch();
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Refusals from one address, or of one key.
pub(super) struct Throttle {
    failures: u32,
    /// Start of the window.
    since: std::time::Instant,
}

impl Throttle {
    /// A window starting now.
    pub(super) fn new() -> Self {
        Throttle {
            failures: 0,
            since: std::time::Instant::now(),
        }
    }
}
