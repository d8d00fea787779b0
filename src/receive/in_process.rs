//! A push made in-process, as a client would make it: objects written to a scratch
//! repository that borrows a copy's objects, a pack of them sent with the command and
//! the push options through [`receive::serve`], and its answer read back. Imports,
//! the editor's changes and review merges all land this way, through the push path.

use crate::receive;
use gix::ObjectId;

/// Why an in-process push could not be made (its refusal is not an error: it is the
/// ref's `Outcome`, which [`push_in_process`] returns).
#[derive(Debug, thiserror::Error)]
pub enum InProcessError {
    /// The scratch repository, its objects or the pack file (the cause is kept).
    #[error("git: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the pack file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Protocol(#[from] crate::protocol::ProtocolError),
    /// The push ended without an outcome for its ref.
    #[error("the push did not say what became of {0}")]
    NoOutcome(String),
}

fn git(e: impl std::error::Error + Send + Sync + 'static) -> InProcessError {
    InProcessError::Git(Box::new(e))
}

/// A scratch repository that borrows a copy's objects (its alternates): an import's
/// blobs are written here as its rows come, its commits on top, and its push is
/// made from here. Removed with its folder when dropped.
pub struct Scratch {
    _dir: tempfile::TempDir,
    repo: gix::Repository,
}

impl Scratch {
    pub fn new(copy: &gix::Repository) -> Result<Scratch, InProcessError> {
        let dir = tempfile::Builder::new()
            .prefix("skillsd-import-")
            .tempdir()?;
        gix::init_bare(dir.path()).map_err(git)?;
        std::fs::write(
            dir.path().join("objects/info/alternates"),
            format!("{}\n", copy.objects.store_ref().path().display()),
        )?;
        let repo = gix::open(dir.path()).map_err(git)?;
        Ok(Scratch { _dir: dir, repo })
    }

    /// The scratch repository (objects written to it stay in its folder).
    pub fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    /// Its folder (a pack to send is written here).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Writes `text` as a blob.
    pub fn write(&self, text: &str) -> Result<ObjectId, InProcessError> {
        self.write_bytes(text.as_bytes())
    }

    /// Writes `bytes` as a blob.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<ObjectId, InProcessError> {
        Ok(self.repo.write_blob(bytes).map_err(git)?.detach())
    }
}

/// Pushes `new` to `branch` (from `old`) through [`receive::serve`], as a client would
/// send it: the command, the push options, then a pack of `ids` read from `work`
/// (written to a file in `dir`, never whole in memory). Returns what the push printed
/// (side-band 2) and the ref's outcome: accepted (`None`) or why it was refused.
#[allow(clippy::too_many_arguments)]
pub fn push_in_process(
    ctx: &receive::Context,
    work: &gix::Repository,
    dir: &std::path::Path,
    branch: &str,
    old: Option<ObjectId>,
    new: ObjectId,
    ids: Vec<ObjectId>,
    options: &[String],
) -> Result<(String, receive::outcome::Outcome), InProcessError> {
    // An edit, an import or a merge: no trim while it runs (an SSH command's is
    // marked by the session).
    let _working = crate::alloc::working();
    let mut input = Vec::new();
    let zero = ObjectId::null(gix::hash::Kind::Sha1);
    let caps = if options.is_empty() {
        "report-status side-band-64k"
    } else {
        "report-status side-band-64k push-options"
    };
    let pkt = |input: &mut Vec<u8>, line: &str| {
        input.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
        input.extend_from_slice(line.as_bytes());
    };
    pkt(
        &mut input,
        &format!("{} {new} {branch}\0{caps}\n", old.unwrap_or(zero)),
    );
    input.extend_from_slice(b"0000");
    if !options.is_empty() {
        for o in options {
            pkt(&mut input, &format!("{o}\n"));
        }
        input.extend_from_slice(b"0000");
    }
    let pack_path = dir.join("push.pack");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&pack_path)?);
        crate::protocol::pack::write_pack(work, ids, &mut file)?;
        std::io::Write::flush(&mut file)?;
    }
    let pack = std::io::BufReader::new(std::fs::File::open(&pack_path)?);
    let mut output = Vec::new();
    let outcomes = receive::serve(
        ctx,
        std::io::Read::chain(std::io::Cursor::new(input), pack),
        &mut output,
    )?;
    let _ = std::fs::remove_file(&pack_path);
    let outcome = outcomes
        .into_iter()
        .find_map(|(name, outcome)| (name == branch).then_some(outcome))
        .ok_or_else(|| InProcessError::NoOutcome(branch.to_string()))?;
    Ok((side_band_messages(&output), outcome))
}

/// What receive-pack's answer printed for the pusher: its side-band 2 and 3 (the
/// report-status lines of band 1 are not read: [`receive::serve`] returns the
/// outcomes themselves).
fn side_band_messages(output: &[u8]) -> String {
    let mut messages = Vec::new();
    let mut rest = output;
    // The advertisement comes first, outside the side-band: its lines start with an
    // object id, never with a band byte.
    while rest.len() >= 4 {
        let Ok(len) = usize::from_str_radix(&String::from_utf8_lossy(&rest[..4]), 16) else {
            break;
        };
        if len < 4 {
            rest = &rest[4..];
            continue;
        }
        if rest.len() < len {
            break;
        }
        let payload = &rest[4..len];
        rest = &rest[len..];
        match payload.first() {
            Some(2) | Some(3) => {
                messages.extend_from_slice(&payload[1..]);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&messages).replace('\r', "\n")
}
