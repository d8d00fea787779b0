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

use gix::bstr::BString;

/// What the server calls itself in `agent=` capabilities.
pub const AGENT: &str = concat!("skillsd/", env!("CARGO_PKG_VERSION"));

/// Errors of a protocol session.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent something the protocol does not allow; it is told why in an
    /// `ERR` line.
    #[error("protocol error: {0}")]
    Request(#[from] BadRequest),
    #[error("git object store error: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ProtocolError {
    /// A gix error, kept with its chain of causes.
    pub fn git(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ProtocolError::Git(Box::new(e))
    }
}

/// Where in a request a packet came that does not belong there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    WantList,
    Negotiation,
    CommandList,
    PushOptions,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Section::WantList => "want list",
            Section::Negotiation => "negotiation",
            Section::CommandList => "command list",
            Section::PushOptions => "push options",
        })
    }
}

/// What was wrong with a client's request, one variant per rule it broke; the
/// text is what the client prints after `remote error:`.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    #[error("invalid pkt-line: {0}")]
    PktLine(#[source] gix_error::Error),
    #[error("invalid object id `{0}`")]
    ObjectId(BString),
    #[error("unexpected line in {0}: {1}")]
    Line(Section, BString),
    #[error("unexpected {1:?} in {0}")]
    Packet(Section, pktline::Pkt),
    #[error("expected a command, got `{0}`")]
    NotACommand(BString),
    #[error("expected a command, got {0:?}")]
    NoCommand(pktline::Pkt),
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    #[error("unexpected end of request")]
    EndOfRequest,
    #[error("unexpected response-end packet")]
    ResponseEnd,
    #[error("upload-pack: not our ref {0}: no ref you can see reaches this object")]
    NotOurRef(gix::ObjectId),
    #[error("{0}; try again when your other fetches end")]
    HeldWants(upload_pack::Full),
    #[error("{0}; try again in a moment")]
    HeldRequest(upload_pack::Full),
    #[error("more than {0} want/have lines in one request; fetch fewer refs at a time")]
    TooManyLines(usize),
    #[error("the {command} request is larger than {mib} MiB; fetch fewer refs at a time")]
    TooLarge { command: String, mib: usize },
    #[error("unknown fetch argument `{0}`")]
    UnknownFetchArgument(String),
    #[error("unknown argument `{0}`")]
    UnknownArgument(String),
    #[error("more than one filter line; send several filters as one combine:")]
    TwoFilters,
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error("invalid deepen-since `{0}`")]
    DeepenSince(String),
    #[error("deepen-not: no such ref `{0}`")]
    DeepenNot(String),
    #[error("invalid depth `{0}`")]
    Depth(BString),
    #[error("pushing from a shallow clone is not supported")]
    Shallow,
    #[error("malformed command line `{0}`")]
    CommandLine(BString),
    #[error("ref name is not UTF-8")]
    RefNameNotUtf8,
    #[error("too many ref updates in one push (at most {0})")]
    TooManyCommands(usize),
    #[error("connection closed in push options")]
    EndOfPushOptions,
    #[error("too many push options (at most {0})")]
    TooManyPushOptions(usize),
}

pub type Result<T> = std::result::Result<T, ProtocolError>;
