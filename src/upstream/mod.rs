//! Push mirrors, the client side: one push of a repository's branches and tags to an
//! upstream git server over SSH (GitHub, GitLab, any OpenSSH + git), natively — the
//! russh client, the ref advertisement and report read with [`crate::protocol`]'s
//! pkt-lines, and the pack made by [`crate::protocol::pack`]. No `git` binary.
//!
//! One call of [`push`] is one attempt: connect, check the host key, authenticate with
//! the mirror's key, run `git-receive-pack`, decide per ref what to do ([`plan`]),
//! send the commands and the pack, read the report. Queues, retries and status are the
//! caller's.

pub mod keys;
pub mod plan;
mod session;
mod ssh;
pub mod url;
pub mod wire;

pub use keys::{HostKeys, fingerprint, generate_key, known_host_keys, known_host_keys_file};
pub use url::UpstreamUrl;

use gix::ObjectId;
use russh::keys::PublicKey;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Why a push attempt failed as a whole. None of them holds the private key.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid upstream URL: {0}")]
    Url(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("SSH connection failed: {0}")]
    Ssh(String),
    #[error(
        "the upstream's host key {presented} is not the one pinned for this mirror (expected {})",
        if expected.is_empty() { "a pinned key".to_string() } else { expected.join(" or ") }
    )]
    HostKeyMismatch {
        presented: String,
        expected: Vec<String>,
    },
    #[error(
        "the upstream refused the mirror's key {key} for user `{user}`: the upstream must authorize the mirror's public key (e.g. a deploy key with write access)"
    )]
    Auth { user: String, key: String },
    #[error("invalid key: {0}")]
    Key(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the upstream refused the push: {0}")]
    Upstream(String),
    #[error("the push did not finish within {0:?}")]
    Timeout(Duration),
    #[error("local repository: {0}")]
    Git(String),
}

/// A broken connection mid-conversation (what the upstream said, if anything, is
/// added by the caller).
impl From<std::io::Error> for UpstreamError {
    fn from(e: std::io::Error) -> Self {
        UpstreamError::Protocol(format!("connection: {e}"))
    }
}

impl From<crate::protocol::ProtocolError> for UpstreamError {
    fn from(e: crate::protocol::ProtocolError) -> Self {
        use crate::protocol::ProtocolError as P;
        match e {
            P::Io(e) => UpstreamError::Protocol(format!("connection: {e}")),
            P::Request(why) => UpstreamError::Protocol(why.to_string()),
            P::Git(e) => UpstreamError::Git(e.to_string()),
        }
    }
}

/// One push attempt.
pub struct PushRequest<'a> {
    pub url: &'a UpstreamUrl,
    /// The mirror's private key, OpenSSH PEM text.
    pub private_key_pem: &'a str,
    pub host_keys: &'a HostKeys,
    /// A bare repository on this machine, the source.
    pub repo_path: &'a Path,
    /// Our refs to mirror (only `refs/heads/*` and `refs/tags/*` are; others are
    /// ignored) with their targets.
    pub refs: Vec<(String, ObjectId)>,
    /// What this mirror pushed to the upstream last time, per ref.
    pub last_pushed: HashMap<String, ObjectId>,
    /// Overwrite refs that diverged upstream.
    pub force: bool,
    /// For the whole attempt.
    pub timeout: Duration,
}

/// What happened to one ref the push tried to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefOutcome {
    pub name: String,
    /// The upstream's value before (`None`: it did not have the ref).
    pub old: Option<ObjectId>,
    /// `None`: a delete.
    pub new: Option<ObjectId>,
    /// `Err`: the upstream's answer (`ng` reason) or why it was not sent.
    pub result: Result<(), String>,
}

/// A ref not pushed: the upstream's value is not ours to move (someone else changed
/// it) and the push was not forced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diverged {
    pub name: String,
    pub upstream: ObjectId,
    /// `None`: the ref was deleted here.
    pub ours: Option<ObjectId>,
}

#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The key the upstream presented (the caller pins it).
    pub host_key: PublicKey,
    pub updates: Vec<RefOutcome>,
    pub diverged: Vec<Diverged>,
    /// Refs already equal upstream.
    pub in_sync: Vec<String>,
}

impl PushOutcome {
    /// Every attempted update succeeded (diverged refs aside).
    pub fn all_ok(&self) -> bool {
        self.updates.iter().all(|u| u.result.is_ok())
    }
}

/// Contacts the upstream and returns its host key (to pin on `mirror add`), without
/// authenticating.
pub async fn host_key(url: &UpstreamUrl, timeout: Duration) -> Result<PublicKey, UpstreamError> {
    let any = HostKeys {
        keys: Vec::new(),
        accept_any: true,
    };
    match tokio::time::timeout(timeout, ssh::connect(url, &any)).await {
        Ok(Ok((handle, key))) => {
            ssh::disconnect(&handle).await;
            Ok(key)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(UpstreamError::Timeout(timeout)),
    }
}

/// One push attempt to the upstream (see the module's documentation).
pub async fn push(req: PushRequest<'_>) -> Result<PushOutcome, UpstreamError> {
    use tracing::Instrument;
    let span = tracing::info_span!("mirror_push", upstream = %req.url.display());
    let timeout = req.timeout;
    let started = std::time::Instant::now();
    let result = ssh::push(req).instrument(span.clone()).await;
    let _in_span = span.enter();
    match &result {
        Ok(o) => tracing::info!(
            updated = o.updates.iter().filter(|u| u.result.is_ok()).count(),
            failed = o.updates.iter().filter(|u| u.result.is_err()).count(),
            diverged = o.diverged.len(),
            in_sync = o.in_sync.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "mirror push done"
        ),
        Err(e) => tracing::warn!(error = %e, ?timeout, "mirror push failed"),
    }
    result
}
