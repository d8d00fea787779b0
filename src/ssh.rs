//! The SSH front door (russh): public-key authentication against the `ssh_keys`
//! table, and `exec` of `git-upload-pack` / `git-receive-pack`. Each git command runs
//! on a blocking thread with the channel bridged to `std::io`, so the protocol code
//! is plain blocking code and the async runtime never waits on git work.

use crate::db::users::{self, User};
use crate::protocol::upload_pack::{self, Version};
use crate::receive;
use crate::repos::RepoStore;
use crate::storage::replica::OpenError;
use russh::keys::PublicKey;
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use sqlx::PgPool;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::io::SyncIoBridge;

/// Stack of every thread of the server's runtime, the blocking threads that run git
/// services included: 8 MiB, like a main thread (tokio's default is 2 MiB). No code
/// recurses on a depth the client chooses (trees, tags and delta chains are walked
/// with explicit stacks, and tree nesting is limited to 4,096 levels); this is the
/// margin for the libraries (YAML, JSON Schema) whose recursion is bounded by their
/// own limits. A stack overflow cannot be caught: it would end the whole process.
pub const SERVICE_STACK_BYTES: usize = 8 * 1024 * 1024;

/// What every session shares.
pub struct AppState {
    pub pool: PgPool,
    /// Logins' own connections ([`crate::db::connect_logins`]); the main pool when
    /// none is given.
    pub login_pool: PgPool,
    pub repos: RepoStore,
    /// Keys seen recently, so logins keep working while the database is away.
    pub key_cache: std::sync::RwLock<HashMap<String, User>>,
    /// Ref rules and push limits.
    pub policy: crate::receive::pre_receive::Policy,
    /// Every SSH session and git command in flight (waited for at shutdown).
    pub tasks: tokio_util::task::TaskTracker,
    /// Session and authentication limits.
    pub limits: Limits,
    /// Where browsers reach the status pages (for `web-login` links), if served.
    pub web_url: Option<String>,
    /// Commands running now, per user.
    running: std::sync::Mutex<HashMap<String, usize>>,
    /// Refused keys per source address.
    auth_failures: std::sync::Mutex<HashMap<std::net::IpAddr, Throttle>>,
    /// Refusals per key offered (by fingerprint), from any address.
    key_failures: std::sync::Mutex<HashMap<String, Throttle>>,
}

/// Most channels a connection may hold open without a command running on them (a
/// client opening channels and never using them cannot grow the server).
pub const MAX_IDLE_CHANNELS: usize = 8;
/// Most entries each refusal table keeps (an attacker with fresh keys or addresses
/// cannot grow them without bound: the oldest windows go first).
const MAX_THROTTLED: usize = 50_000;

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
    state: Arc<AppState>,
    user: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Ok(mut running) = self.state.running.lock() {
            if let Some(n) = running.get_mut(&self.user) {
                *n -= 1;
                if *n == 0 {
                    running.remove(&self.user);
                }
            }
        }
    }
}

impl AppState {
    pub fn new(
        pool: PgPool,
        repos: RepoStore,
        policy: crate::receive::pre_receive::Policy,
        limits: Limits,
    ) -> AppState {
        AppState {
            login_pool: pool.clone(),
            pool,
            repos,
            key_cache: Default::default(),
            policy,
            tasks: tokio_util::task::TaskTracker::new(),
            limits,
            web_url: None,
            running: Default::default(),
            auth_failures: Default::default(),
            key_failures: Default::default(),
        }
    }

    /// What acting on changes needs ([`crate::review`]).
    pub fn review(&self) -> crate::review::Service {
        crate::review::Service {
            pool: self.pool.clone(),
            repos: self.repos.clone(),
            policy: self.policy.clone(),
            web_url: self.web_url.clone(),
        }
    }

    /// With a pool of its own for logins.
    pub fn with_login_pool(mut self, pool: PgPool) -> AppState {
        self.login_pool = pool;
        self
    }

    /// With the address browsers reach the status pages at (for `web-login`).
    pub fn with_web_url(mut self, url: Option<String>) -> AppState {
        self.web_url = url;
        self
    }

    /// Takes a session slot for `user`, or says which limit is reached.
    pub fn start_session(self: &Arc<Self>, user: &str) -> Result<SessionSlot, String> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| "internal error".to_string())?;
        let total: usize = running.values().sum();
        if total >= self.limits.max_sessions {
            return Err(format!(
                "the server is busy ({total} sessions running); try again in a moment"
            ));
        }
        let mine = running.entry(user.to_string()).or_insert(0);
        if *mine >= self.limits.max_sessions_per_user {
            return Err(format!(
                "{user} already has {mine} sessions running (the limit); try again when one ends"
            ));
        }
        *mine += 1;
        Ok(SessionSlot {
            state: self.clone(),
            user: user.to_string(),
        })
    }

    /// Records that an unknown key was refused, by address and by key separately,
    /// and returns how long to hold the refusal back: nothing until the address (or
    /// the key, from any address) has `max_auth_failures` refusals in the window,
    /// then 250 ms doubling per further refusal up to 4 s. Only refusals wait: a key
    /// that is known is looked up and let in at once, whoever else failed from the
    /// same address (people behind one NAT, a restarted server's empty cache).
    pub fn auth_failed(
        &self,
        addr: Option<std::net::IpAddr>,
        fingerprint: &str,
    ) -> std::time::Duration {
        let window = self.limits.auth_window;
        let max = self.limits.max_auth_failures;
        let by_addr = addr.map_or(0, |a| count_failure(&self.auth_failures, a, window));
        let by_key = count_failure(&self.key_failures, fingerprint.to_string(), window);
        let excess = by_addr.max(by_key).saturating_sub(max);
        if excess == 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_millis(250 << excess.min(4))
    }
}

/// Counts one more failure of `key` in its window (a new window when the last one is
/// over); the count.
fn count_failure<K: std::hash::Hash + Eq>(
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
    fn new() -> Self {
        Activity {
            epoch: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
            running: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
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
struct Running(Arc<Activity>);

impl Running {
    fn new(activity: Arc<Activity>) -> Self {
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
struct Throttle {
    failures: u32,
    /// Start of the window.
    since: std::time::Instant,
}

impl Throttle {
    /// A window starting now.
    fn new() -> Self {
        Throttle {
            failures: 0,
            since: std::time::Instant::now(),
        }
    }
}

/// The russh server: one [`SessionHandler`] per connection.
#[derive(Clone)]
pub struct SshServer {
    pub state: Arc<AppState>,
}

impl russh::server::Server for SshServer {
    type Handler = SessionHandler;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> SessionHandler {
        SessionHandler {
            state: self.state.clone(),
            peer,
            user: None,
            offered: None,
            channels: HashMap::new(),
            git_protocol: HashMap::new(),
            cancels: HashMap::new(),
            activity: Arc::new(Activity::new()),
            startup: None,
            authenticated: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(%error, "ssh session ended with an error");
    }
}

pub struct SessionHandler {
    state: Arc<AppState>,
    peer: Option<SocketAddr>,
    user: Option<User>,
    /// The user of the key offered last (checked before the client signs).
    offered: Option<(String, User)>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    git_protocol: HashMap<ChannelId, String>,
    /// Each running command's cancel flag: set when its channel closes or the
    /// connection goes away, so blocking git work stops instead of running on.
    cancels: HashMap<ChannelId, Arc<std::sync::atomic::AtomicBool>>,
    activity: Arc<Activity>,
    /// This connection's place among those not yet signed in; given back at login.
    startup: Option<crate::net::StartupSlot>,
    /// Set at login (the login grace time's watchdog reads it).
    authenticated: Arc<std::sync::atomic::AtomicBool>,
}

impl SessionHandler {
    /// This connection's activity, for the idle timeout.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// Holds `slot` until the connection signs in (or ends).
    pub fn hold_startup(&mut self, slot: crate::net::StartupSlot) {
        self.startup = Some(slot);
    }

    /// Whether the connection has signed in (for the login grace time).
    pub fn authenticated(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.authenticated.clone()
    }
}

impl Drop for SessionHandler {
    fn drop(&mut self) {
        for flag in self.cancels.values() {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A git service a client may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    UploadPack(String),
    ReceivePack(String),
}

/// Parses `git-upload-pack '/skills.git'` (also `git upload-pack`, double quotes, no quotes).
pub fn parse_command(command: &str) -> Option<Service> {
    let command = command.trim();
    let (program, rest) = command.split_once(char::is_whitespace)?;
    let (program, rest) = if program == "git" {
        let rest = rest.trim_start();
        let (sub, rest) = rest.split_once(char::is_whitespace)?;
        (format!("git-{sub}"), rest)
    } else {
        (program.to_string(), rest)
    };
    let path = unquote(rest.trim())?;
    match program.as_str() {
        "git-upload-pack" => Some(Service::UploadPack(path)),
        "git-receive-pack" => Some(Service::ReceivePack(path)),
        _ => None,
    }
}

/// Undoes git's `sq_quote`: `'a'\''b'` → `a'b`.
fn unquote(s: &str) -> Option<String> {
    if !s.starts_with('\'') {
        if s.starts_with('"') && s.ends_with('"') && s.len() >= 2 {
            return Some(s[1..s.len() - 1].to_string());
        }
        return (!s.contains(char::is_whitespace)).then(|| s.to_string());
    }
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    loop {
        match chars.next()? {
            '\'' => {
                // Inside quotes until the next quote.
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => out.push(c),
                    }
                }
                match chars.next() {
                    None => return Some(out),
                    Some('\\') => out.push(chars.next()?),
                    Some(_) => return None,
                }
            }
            _ => return None,
        }
    }
}

impl SessionHandler {
    async fn lookup(&self, key: &PublicKey) -> Option<User> {
        let fp = users::fingerprint(key);
        let found = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            users::find_by_key(&self.state.login_pool, key),
        )
        .await;
        let cache = |u: &Option<User>| {
            if let Ok(mut c) = self.state.key_cache.write() {
                match u {
                    Some(u) => c.insert(fp.clone(), u.clone()),
                    None => c.remove(&fp),
                };
            }
        };
        match found {
            Ok(Ok(u)) => {
                cache(&u);
                u
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "key lookup failed; using the keys seen recently");
                self.state
                    .key_cache
                    .read()
                    .ok()
                    .and_then(|c| c.get(&fp).cloned())
            }
            Err(_) => {
                tracing::error!("key lookup timed out; using the keys seen recently");
                self.state
                    .key_cache
                    .read()
                    .ok()
                    .and_then(|c| c.get(&fp).cloned())
            }
        }
    }
}

impl russh::server::Handler for SessionHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = users::fingerprint(offer.public_key);
        let ip = self.peer.map(|p| p.ip());
        match self.lookup(offer.public_key).await {
            Some(user) => {
                self.offered = Some((fp, user));
                Ok(Auth::Accept)
            }
            None => {
                let wait = self.state.auth_failed(ip, &fp);
                if wait.is_zero() {
                    tracing::info!(peer = ?self.peer, fingerprint = %fp, "unknown key refused");
                } else {
                    // Repeated refusals are answered slowly: guessing costs time,
                    // and only the guesser's connections wait.
                    tracing::info!(peer = ?self.peer, fingerprint = %fp, wait_ms = wait.as_millis() as u64, "unknown key refused, slowly (many refusals from this address or of this key)");
                    tokio::time::sleep(wait).await;
                }
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = users::fingerprint(key.public_key);
        let user = match self.offered.take() {
            Some((offered_fp, user)) if offered_fp == fp => Some(user),
            _ => self.lookup(key.public_key).await,
        };
        match user {
            Some(user) => {
                tracing::info!(peer = ?self.peer, user = %user.name, "authenticated");
                self.user = Some(user);
                self.activity.touch();
                self.startup = None;
                self.authenticated
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(Auth::Accept)
            }
            None => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Channels are opened to run a command; a client that opens them and runs
        // nothing gets a few, not an unbounded table.
        if self.channels.len() >= MAX_IDLE_CHANNELS {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The client closed the channel: a command still working for it stops, and
        // whatever the channel held is freed.
        if let Some(flag) = self.cancels.remove(&channel) {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.channels.remove(&channel);
        self.git_protocol.remove(&channel);
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "GIT_PROTOCOL" && value.len() < 256 && self.channels.contains_key(&channel) {
            self.git_protocol.insert(channel, value.to_string());
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let name = self
            .user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_default();
        self.channels.remove(&channel);
        session.channel_success(channel)?;
        session.extended_data(
            channel,
            1,
            format!("Hi {name}! You've authenticated, but there is no shell access.\r\n")
                .into_bytes(),
        )?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(user), Some(ch)) = (self.user.clone(), self.channels.remove(&channel)) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let command = String::from_utf8_lossy(data).into_owned();
        let version = Version::from_git_protocol(self.git_protocol.remove(&channel).as_deref());
        let state = self.state.clone();
        let slot = match state.start_session(&user.name) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::warn!(user = %user.name, %why, "session refused");
                session.extended_data(channel, 1, format!("ERROR: {why}\n").into_bytes())?;
                session.exit_status_request(channel, 1)?;
                session.eof(channel)?;
                session.close(channel)?;
                return Ok(());
            }
        };
        let span = tracing::info_span!("exec", user = %user.name, command = %command);
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.cancels.retain(|_, f| Arc::strong_count(f) > 1);
        self.cancels.insert(channel, cancel.clone());
        let running = Running::new(self.activity.clone());
        self.state.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let _running = running;
                run_exec(state, user, ch, command, version, cancel).await;
                drop(slot);
            },
            span,
        ));
        Ok(())
    }
}

/// One command of a session, from start to exit status: a git service, or one of
/// the other commands (`help`, `whoami`...).
async fn run_exec(
    state: Arc<AppState>,
    user: User,
    channel: Channel<Msg>,
    command: String,
    version: Version,
    cancel: Arc<std::sync::atomic::AtomicBool>,
) {
    let (read_half, write_half) = channel.split();
    crate::metrics::METRICS.session_started();
    let code = match parse_command(&command) {
        None => run_command(&state, &user, &command, &write_half).await,
        Some(service) => {
            let git = Git {
                state: &state,
                user,
                version,
                cancel,
            };
            match git.run(service, read_half, &write_half).await {
                Some(code) => code,
                // Past the time limit: the channel closes, nothing more to do.
                None => {
                    end_channel(&write_half, 1).await;
                    return;
                }
            }
        }
    };
    end_channel(&write_half, code).await;
    // Hand freed memory back once the client has its answer, off its critical path.
    tokio::task::spawn_blocking(crate::alloc::release_memory);
}

/// The exit status, EOF, close.
async fn end_channel(write_half: &russh::ChannelWriteHalf<Msg>, code: u32) {
    crate::metrics::METRICS.session_ended();
    let _ = write_half.exit_status(code).await;
    let _ = write_half.eof().await;
    let _ = write_half.close().await;
}

/// One line on the client's stderr.
async fn say(write_half: &russh::ChannelWriteHalf<Msg>, msg: String) {
    let _ = write_half
        .extended_data_bytes(1, format!("{msg}\n").into_bytes())
        .await;
}

/// A command that is not git (`help`, `whoami`, ...): its output and exit code.
async fn run_command(
    state: &AppState,
    user: &User,
    command: &str,
    write_half: &russh::ChannelWriteHalf<Msg>,
) -> u32 {
    let review = crate::commands::review::run(&state.review(), user, command).await;
    let ran = match review {
        Some(out) => Some(out),
        None => {
            crate::commands::run(
                &state.pool,
                &state.repos,
                state.web_url.as_deref(),
                user,
                command,
            )
            .await
        }
    };
    match ran {
        Some(out) => {
            if !out.stdout.is_empty() {
                let _ = write_half.data_bytes(out.stdout.into_bytes()).await;
            }
            if !out.stderr.is_empty() {
                let _ = write_half
                    .extended_data_bytes(1, out.stderr.into_bytes())
                    .await;
            }
            out.code
        }
        None => {
            say(
                write_half,
                format!(
                    "skillsd: `{command}` is not available here; run `help` for what is (this server speaks git)"
                ),
            )
            .await;
            1
        }
    }
}

/// A git service for one user: the repository opened, access checked, the service
/// run on a blocking thread within the session time limit.
struct Git<'a> {
    state: &'a Arc<AppState>,
    user: User,
    version: Version,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl Git<'_> {
    /// The exit code, or `None` when the session ran past its time limit.
    async fn run(
        self,
        service: Service,
        read_half: russh::ChannelReadHalf,
        write_half: &russh::ChannelWriteHalf<Msg>,
    ) -> Option<u32> {
        let (path, pushing) = match &service {
            Service::UploadPack(p) => (p.clone(), false),
            Service::ReceivePack(p) => (p.clone(), true),
        };
        let (opened, user) = self.open(&path, pushing).await;
        let (name, repo) = match opened {
            Err(e) => return Some(refuse_open(write_half, &e, &path, pushing).await),
            Ok(_) if pushing && !user.role.can_push() => {
                say(
                    write_half,
                    format!(
                        "ERROR: {} has read-only access (role: {}); ask an admin for the writer role to push",
                        user.name,
                        user.role.as_str()
                    ),
                )
                .await;
                crate::metrics::METRICS.push_refused(crate::metrics::Reason::Permission);
                return Some(1);
            }
            Ok(opened) => opened,
        };
        if !pushing {
            crate::metrics::METRICS.fetch();
        }
        let work = self.spawn_service(&user, name, repo, pushing, read_half, write_half);
        // A session may not run forever (a client trickling bytes): past the limit the
        // channel closes and the cancel flag stops the git work.
        let limit = self.state.limits.session_timeout;
        let result = match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => {
                self.cancel
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(user = %user.name, "session time limit reached; closing");
                say(
                    write_half,
                    format!("ERROR: the session took longer than {} s", limit.as_secs()),
                )
                .await;
                return None;
            }
        };
        Some(exit_code(write_half, &user.name, result).await)
    }

    /// The copy brought to the database's generation first (a push needs the
    /// database, a read may be served from the copy as last verified), and at the same
    /// time the user's role on this repository (a grant there replaces the global
    /// role).
    async fn open(
        &self,
        path: &str,
        pushing: bool,
    ) -> (Result<(String, gix::Repository), OpenError>, User) {
        let state = self.state;
        let canonical = RepoStore::canonical_name(path).unwrap_or_default();
        let (opened, role) = tokio::join!(
            crate::storage::replica::open(&state.pool, &state.repos, path, pushing),
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                users::role_on(&state.login_pool, &self.user, &canonical),
            )
        );
        let user = match (&opened, role) {
            (Ok(_), Ok(Ok(role))) => User {
                role,
                ..self.user.clone()
            },
            _ => self.user.clone(),
        };
        (opened, user)
    }

    /// Runs upload-pack or receive-pack on a blocking thread, the channel bridged to
    /// `std::io`; no gc deletes a pack while it reads the repository.
    fn spawn_service(
        &self,
        user: &User,
        name: String,
        repo: gix::Repository,
        pushing: bool,
        read_half: russh::ChannelReadHalf,
        write_half: &russh::ChannelWriteHalf<Msg>,
    ) -> tokio::task::JoinHandle<Result<(), crate::protocol::ProtocolError>> {
        let reading = crate::maintenance::read_guard(repo.path());
        let writer = write_half.make_writer();
        let rt = tokio::runtime::Handle::current();
        let pool = self.state.pool.clone();
        let user = user.clone();
        let repos = self.state.repos.clone();
        let mut policy = self.state.policy.clone();
        policy.pusher_is_admin = user.role == crate::db::users::Role::Admin;
        policy.pusher = user.name.clone();
        policy.pusher_role = user.role.as_str();
        let web_url = self.state.web_url.clone();
        let cancel = self.cancel.clone();
        let version = self.version;
        let window = self.state.limits.min_rate_window;
        tokio::task::spawn_blocking(move || {
            let mut read_half = read_half;
            let reader = Box::pin(MinRate::new(read_half.make_reader(), window));
            let input = Counted(SyncIoBridge::new_with_handle(reader, rt.clone()));
            let mut output = std::io::BufWriter::with_capacity(
                64 * 1024,
                Counted(SyncIoBridge::new_with_handle(writer, rt.clone())),
            );
            let result = if pushing {
                let ctx = receive::Context {
                    repo,
                    repo_name: name,
                    default_branch: crate::repos::DEFAULT_BRANCH.to_string(),
                    policy,
                    user,
                    pool,
                    rt,
                    repos,
                    cancel,
                    web_url,
                    merging: None,
                };
                receive::serve(&ctx, input, &mut output)
            } else {
                upload_pack::serve(&repo, input, &mut output, version, &user.name)
            };
            let flushed = output.flush();
            drop(output);
            drop(reading);
            result.and(flushed.map_err(Into::into))
        })
    }
}

/// Why a repository could not be opened, told to the client; the exit code.
async fn refuse_open(
    write_half: &russh::ChannelWriteHalf<Msg>,
    error: &OpenError,
    path: &str,
    pushing: bool,
) -> u32 {
    if pushing && matches!(error, OpenError::DatabaseDown) {
        say(
            write_half,
            "ERROR: the database is unavailable; nothing was written. Try again in a moment."
                .to_string(),
        )
        .await;
        crate::metrics::METRICS.push_refused(crate::metrics::Reason::Database);
    } else {
        say(
            write_half,
            format!(
                "ERROR: repository `{}` not found. The skills repository is ssh://git@HOST:PORT/skills.git",
                path.trim_start_matches('/')
            ),
        )
        .await;
    }
    1
}

/// The exit code of a finished git service; a failure on the server's side is an
/// incident.
async fn exit_code(
    write_half: &russh::ChannelWriteHalf<Msg>,
    user: &str,
    result: Result<Result<(), crate::protocol::ProtocolError>, tokio::task::JoinError>,
) -> u32 {
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(
            e @ (crate::protocol::ProtocolError::Protocol(_)
            | crate::protocol::ProtocolError::Io(_)),
        )) => {
            // The client was told (an ERR line) or is gone.
            tracing::info!(user = %user, error = %e, "git session ended early");
            128
        }
        Ok(Err(e)) => report_incident(write_half, user, e.to_string(), "git session failed").await,
        // A panic in one session ends that session only (the blocking task catches it).
        Err(e) => report_incident(write_half, user, e.to_string(), "git session panicked").await,
    }
}

/// A session that failed on the server's side: the details (they may name server
/// paths) go to the log, the client gets an incident id to quote. Returns the exit code.
async fn report_incident(
    write_half: &russh::ChannelWriteHalf<Msg>,
    user: &str,
    error: String,
    what: &'static str,
) -> u32 {
    let incident = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(user = %user, %error, %incident, "{what}");
    let _ = write_half
        .extended_data_bytes(
            1,
            format!("ERROR: skillsd could not complete the request (incident {incident})\n")
                .into_bytes(),
        )
        .await;
    128
}

/// A client's input that must keep coming while the server waits for it: of each
/// `window` the reader spent waiting (time the server spends working does not
/// count), at least [`MIN_RATE_BYTES`] must arrive, else the read fails with
/// `TimedOut`. Nothing legitimate is that slow; a client trickling a byte every few
/// seconds to hold a session (and its memory) is.
struct MinRate<R> {
    inner: R,
    window: std::time::Duration,
    /// Waiting counted in this window before the current wait.
    waited: std::time::Duration,
    /// Bytes received in this window.
    got: u64,
    /// When the current wait began, and the timer for the window's end.
    waiting: Option<(tokio::time::Instant, std::pin::Pin<Box<tokio::time::Sleep>>)>,
}

impl<R> MinRate<R> {
    fn new(inner: R, window: std::time::Duration) -> Self {
        MinRate {
            inner,
            window,
            waited: std::time::Duration::ZERO,
            got: 0,
            waiting: None,
        }
    }

    /// The current wait ends (data came, or the window's check ran).
    fn stop_waiting(&mut self) {
        if let Some((since, _)) = self.waiting.take() {
            self.waited += since.elapsed();
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for MinRate<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.stop_waiting();
                this.got += (buf.filled().len() - before) as u64;
                if this.got >= MIN_RATE_BYTES {
                    // Enough came: a new window starts.
                    this.waited = std::time::Duration::ZERO;
                    this.got = 0;
                }
                Poll::Ready(result)
            }
            Poll::Pending => loop {
                if this.waiting.is_none() {
                    let left = this.window.saturating_sub(this.waited);
                    let now = tokio::time::Instant::now();
                    this.waiting = Some((now, Box::pin(tokio::time::sleep_until(now + left))));
                }
                let Some((_, timer)) = this.waiting.as_mut() else {
                    unreachable!("set above")
                };
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.stop_waiting();
                if this.got < MIN_RATE_BYTES {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "the client sent {} bytes in {} s of waiting for it (fewer than {MIN_RATE_BYTES})",
                            this.got,
                            this.window.as_secs()
                        ),
                    )));
                }
                this.waited = std::time::Duration::ZERO;
                this.got = 0;
            },
        }
    }
}

/// Counts the bytes of a git session for the metrics.
struct Counted<T>(T);

impl<T: std::io::Read> std::io::Read for Counted<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        crate::metrics::METRICS.received(n);
        Ok(n)
    }
}

impl<T: std::io::Write> std::io::Write for Counted<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        crate::metrics::METRICS.sent(n);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse_command("git-upload-pack '/skills.git'"),
            Some(Service::UploadPack("/skills.git".into()))
        );
        assert_eq!(
            parse_command("git-receive-pack 'skills.git'"),
            Some(Service::ReceivePack("skills.git".into()))
        );
        assert_eq!(
            parse_command("git upload-pack 'a'\\''b'"),
            Some(Service::UploadPack("a'b".into()))
        );
        assert_eq!(
            parse_command("git-upload-pack skills"),
            Some(Service::UploadPack("skills".into()))
        );
        assert_eq!(parse_command("rm -rf /"), None);
        assert_eq!(parse_command("git-upload-pack 'x' ; ls"), None);
    }
}
