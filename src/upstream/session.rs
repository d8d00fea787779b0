//! One receive-pack conversation with the upstream, on blocking I/O (the channel is
//! bridged in by [`super::ssh`]): advertisement, plan, commands, pack, report.

use super::plan::{self, Command, Plan};
use super::wire::{self, Advertisement};
use super::{Diverged, RefOutcome, UpstreamError};
use crate::protocol::pack::{objects_to_send, write_pack};
use crate::protocol::pktline::{PktReader, write_flush};
use gix::ObjectId;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

/// What the conversation decided and the upstream answered.
#[derive(Debug, Default)]
pub struct Done {
    pub updates: Vec<RefOutcome>,
    pub diverged: Vec<Diverged>,
    pub in_sync: Vec<String>,
    /// The upstream's side-band messages (`remote: ...`), for logs.
    pub messages: String,
}

pub struct Request {
    pub repo_path: std::path::PathBuf,
    pub refs: Vec<(String, ObjectId)>,
    pub last_pushed: HashMap<String, ObjectId>,
    pub force: bool,
}

pub fn run<R: Read>(req: Request, input: R, out: &mut dyn Write) -> Result<Done, UpstreamError> {
    let repo = open(&req.repo_path)?;
    let mut input = PktReader::new(input);
    let adv = wire::read_advertisement(&mut input)?;
    tracing::debug!(
        refs = adv.refs.len(),
        haves = adv.haves.len(),
        caps = %adv.caps.join(" "),
        "upstream advertisement"
    );
    if !adv.has("report-status") {
        return Err(UpstreamError::Protocol(
            "the upstream does not offer report-status".into(),
        ));
    }
    let Plan {
        commands,
        diverged,
        in_sync,
        refused,
    } = plan::plan(
        &req.refs,
        &plan::Upstream {
            refs: &adv.refs,
            can_delete: adv.has("delete-refs"),
        },
        &req.last_pushed,
        req.force,
        |old, new| is_ancestor(&repo, old, new),
    );
    let mut done = Done {
        updates: refused,
        diverged,
        in_sync,
        messages: String::new(),
    };
    if commands.is_empty() {
        // Nothing to change: a flush ends the conversation.
        write_flush(out)?;
        out.flush()?;
        return Ok(done);
    }
    let caps = wire::request_caps(&adv);
    let sideband = caps.iter().any(|c| c == "side-band-64k");
    wire::write_commands(out, &commands, &caps)?;
    let wants: Vec<ObjectId> = {
        let mut seen = HashSet::new();
        commands
            .iter()
            .filter_map(|c| c.new)
            .filter(|id| seen.insert(*id))
            .collect()
    };
    if !wants.is_empty() {
        let commons = commons(&repo, &adv);
        let (ids, _) = objects_to_send(&repo, &wants, &commons, None)?;
        let count = write_pack(&repo, ids, out)?;
        tracing::debug!(objects = count, commons = commons.len(), "pack sent");
    }
    out.flush()?;
    let report = wire::read_report(&mut input, sideband)?;
    done.messages = report.messages.clone();
    done.updates.extend(outcomes(&commands, &report));
    done.updates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(done)
}

fn open(path: &Path) -> Result<gix::Repository, UpstreamError> {
    gix::open(path).map_err(|e| UpstreamError::Git(format!("{}: {e}", path.display())))
}

/// Each command's result from the report.
fn outcomes(commands: &[Command], report: &wire::Report) -> Vec<RefOutcome> {
    commands
        .iter()
        .map(|c| {
            let result = match (report.refs.get(&c.name), &report.unpack) {
                (Some(r), _) => r.clone(),
                (None, Err(e)) => Err(format!("the upstream could not unpack: {e}")),
                (None, Ok(())) => Err("the upstream reported nothing for this ref".into()),
            };
            RefOutcome {
                name: c.name.clone(),
                old: c.old,
                new: c.new,
                result,
            }
        })
        .collect()
}

/// The commits the upstream has (its refs' and `.have`s, tags peeled) that exist
/// here: nothing reachable from them is sent.
fn commons(repo: &gix::Repository, adv: &Advertisement) -> Vec<ObjectId> {
    let mut out: Vec<ObjectId> = adv
        .known()
        .filter_map(|id| {
            let obj = repo.find_object(id).ok()?;
            let peeled = obj.peel_tags_to_end().ok()?;
            (peeled.kind == gix::object::Kind::Commit).then_some(peeled.id)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether commit `old` is reachable from commit `new` here (false when either is
/// missing or not a commit).
fn is_ancestor(repo: &gix::Repository, old: ObjectId, new: ObjectId) -> bool {
    let is_commit = |id| {
        repo.find_header(id)
            .is_ok_and(|h| h.kind() == gix::object::Kind::Commit)
    };
    if !is_commit(old) || !is_commit(new) {
        return false;
    }
    // `old` is an ancestor of `new` exactly when it is their (then only) best common
    // ancestor; the merge-base walk stops early, unlike a walk of all of `new`.
    repo.merge_base(old, new)
        .is_ok_and(|base| base.is_some_and(|b| b.detach() == old))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_pack_is_a_valid_pack() {
        let dir = tempfile::tempdir().unwrap();
        let repo = gix::init_bare(dir.path()).unwrap();
        let mut out = Vec::new();
        let n = crate::protocol::pack::write_pack(&repo, Vec::new(), &mut out).unwrap();
        assert_eq!(n, 0);
        assert_eq!(&out[..12], b"PACK\0\0\0\x02\0\0\0\0");
        assert_eq!(out.len(), 12 + 20);
    }
}
