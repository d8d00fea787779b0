//! The git wire protocol, server side: pkt-lines and side-band, the ref
//! advertisement, `git-upload-pack` (clone/fetch, protocol v2 and v0) and the
//! command/report part of `git-receive-pack` (push, protocol v0).
//!
//! Everything here is blocking I/O over `std::io::{Read, Write}`: the SSH layer runs
//! a service on a blocking thread with the channel bridged in, so git object work
//! (gix) never blocks the async runtime.

pub mod filter;
pub mod pack;
pub mod pktline;
pub mod reach;
pub mod refs;
pub mod upload_pack;

/// What the server calls itself in `agent=` capabilities.
pub const AGENT: &str = concat!("skillsd/", env!("CARGO_PKG_VERSION"));

/// Errors of a protocol session.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("git object store error: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ProtocolError {
    pub fn protocol(msg: impl Into<String>) -> Self {
        ProtocolError::Protocol(msg.into())
    }
    /// A gix error, kept with its chain of causes.
    pub fn git(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ProtocolError::Git(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, ProtocolError>;
