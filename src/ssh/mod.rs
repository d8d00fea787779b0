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

mod command;
mod exec;
mod limits;

pub use command::{Service, parse_command};
use exec::*;
use limits::*;
pub use limits::{Activity, Limits, MAX_IDLE_CHANNELS, MIN_RATE_BYTES, SessionSlot};

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
