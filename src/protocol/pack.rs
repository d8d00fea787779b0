//! Building the pack a client needs: which objects it lacks, and the pack stream.
//!
//! The object set is exact: every commit reachable from the wants and not from the
//! client's common commits, plus every tree and blob of those commits that the
//! boundary commits (parents the client already has) do not contain. The pack is
//! produced by `gix-pack`'s generator, reusing deltas already stored in packs, and
//! streamed to the writer chunk by chunk: nothing is held whole in memory.

use super::{ProtocolError, Result};
use gix::ObjectId;
use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::AtomicBool;

/// The objects to send for `wants`, given the `commons` the client has.
pub fn objects_to_send(
    repo: &gix::Repository,
    wants: &[ObjectId],
    commons: &[ObjectId],
) -> Result<Vec<ObjectId>> {
    let mut out = Vec::new();
    let mut sent: HashSet<ObjectId> = HashSet::new();
    let mut tips = Vec::new();
    for want in wants {
        let mut id = *want;
        loop {
            let obj = repo.find_object(id).map_err(ProtocolError::git)?;
            match obj.kind {
                gix::object::Kind::Tag => {
                    if sent.insert(id) {
                        out.push(id);
                    }
                    id = obj
                        .into_tag()
                        .target_id()
                        .map_err(ProtocolError::git)?
                        .detach();
                }
                gix::object::Kind::Commit => {
                    tips.push(id);
                    break;
                }
                gix::object::Kind::Tree | gix::object::Kind::Blob => {
                    if sent.insert(id) {
                        out.push(id);
                    }
                    break;
                }
            }
        }
    }
    if tips.is_empty() {
        return Ok(out);
    }
    let walk = repo
        .rev_walk(tips)
        .with_hidden(commons.iter().copied())
        .all()
        .map_err(ProtocolError::git)?;
    let mut commits = Vec::new();
    let mut parents = Vec::new();
    for info in walk {
        let info = info.map_err(ProtocolError::git)?;
        commits.push(info.id);
        parents.extend(info.parent_ids.iter().copied());
    }
    let in_walk: HashSet<ObjectId> = commits.iter().copied().collect();
    // Trees and blobs the client has: everything in the trees of boundary commits.
    let mut have: HashSet<ObjectId> = HashSet::new();
    for parent in parents.iter().filter(|p| !in_walk.contains(*p)) {
        let tree = commit_tree(repo, *parent)?;
        collect_tree(repo, tree, &mut have)?;
    }
    for commit in commits {
        out.push(commit);
        let tree = commit_tree(repo, commit)?;
        add_new_tree(repo, tree, &have, &mut sent, &mut out)?;
    }
    Ok(out)
}

fn commit_tree(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId> {
    let commit = repo.find_commit(commit).map_err(ProtocolError::git)?;
    Ok(commit.tree_id().map_err(ProtocolError::git)?.detach())
}

/// Every tree and blob id under `tree`, into `set`.
fn collect_tree(repo: &gix::Repository, tree: ObjectId, set: &mut HashSet<ObjectId>) -> Result<()> {
    if !set.insert(tree) {
        return Ok(());
    }
    let tree_obj = repo.find_tree(tree).map_err(ProtocolError::git)?;
    let mut subtrees = Vec::new();
    for entry in tree_obj.iter() {
        let entry = entry.map_err(ProtocolError::git)?;
        let mode = entry.mode();
        if mode.is_tree() {
            subtrees.push(entry.oid().to_owned());
        } else if !mode.is_commit() {
            set.insert(entry.oid().to_owned());
        }
    }
    for t in subtrees {
        collect_tree(repo, t, set)?;
    }
    Ok(())
}

/// Adds `tree` and everything under it that the client lacks to `out`.
fn add_new_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    have: &HashSet<ObjectId>,
    sent: &mut HashSet<ObjectId>,
    out: &mut Vec<ObjectId>,
) -> Result<()> {
    if have.contains(&tree) || !sent.insert(tree) {
        return Ok(());
    }
    out.push(tree);
    let tree_obj = repo.find_tree(tree).map_err(ProtocolError::git)?;
    let mut subtrees = Vec::new();
    for entry in tree_obj.iter() {
        let entry = entry.map_err(ProtocolError::git)?;
        let mode = entry.mode();
        let oid = entry.oid().to_owned();
        if mode.is_tree() {
            subtrees.push(oid);
        } else if !mode.is_commit() && !have.contains(&oid) && sent.insert(oid) {
            out.push(oid);
        }
    }
    for t in subtrees {
        add_new_tree(repo, t, have, sent, out)?;
    }
    Ok(())
}

/// Streams a version 2 pack of `ids` into `out`. Returns the number of objects.
pub fn write_pack(
    repo: &gix::Repository,
    ids: Vec<ObjectId>,
    out: &mut dyn Write,
) -> Result<usize> {
    use gix_pack::data::output;
    let mut db = repo.objects.clone().into_inner();
    // Packed entries are copied by location, which needs packs to stay mapped.
    db.prevent_pack_unload();
    let interrupt = AtomicBool::new(false);
    let (counts, _) = output::count::objects(
        db.clone(),
        Box::new(ids.into_iter().map(Ok)),
        &gix::progress::Discard,
        &interrupt,
        output::count::objects::Options {
            thread_limit: Some(1),
            chunk_size: 256,
            input_object_expansion: output::count::objects::ObjectExpansion::AsIs,
        },
    )
    .map_err(ProtocolError::git)?;
    let num = counts.len();
    let entries = output::entry::iter_from_counts(
        counts,
        db,
        Box::new(gix::progress::Discard),
        output::entry::iter_from_counts::Options {
            thread_limit: Some(1),
            mode: output::entry::iter_from_counts::Mode::PackCopyAndBaseObjects,
            allow_thin_pack: false,
            chunk_size: 64,
            version: gix_pack::data::Version::V2,
            compression: Default::default(),
        },
    )
    .map_err(ProtocolError::git)?;
    let bytes = output::bytes::FromEntriesIter::new(
        entries.map(|r| r.map(|(_, entries)| entries)),
        out,
        num as u32,
        gix_pack::data::Version::V2,
        gix::hash::Kind::Sha1,
    );
    for chunk in bytes {
        chunk.map_err(ProtocolError::git)?;
    }
    Ok(num)
}
