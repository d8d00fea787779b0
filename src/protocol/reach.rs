//! Which objects a client may ask for: the tips of the refs advertised to it, and
//! anything reachable from them (git's `uploadpack.allowReachableSHA1InWant`).
//!
//! A ref may move between `ls-refs` and `fetch` (protocol v2 is stateless), and a
//! partial clone's lazy fetches name trees and blobs that are no tip at all. What no
//! advertised ref reaches — the objects of a deleted branch or of a refused push,
//! which stay in the packs — is never served, and the answer is the same whether such
//! an object exists or not.
//!
//! The check costs nothing when every want is a tip (a clone, a plain fetch). Else it
//! is one walk for all wants together: commits from the tips, newest first, and —
//! only when a tree or blob is wanted — each commit's tree, every distinct tree read
//! once (a subtree unchanged between commits is skipped), stopping as soon as the
//! last want is found. A lazy fetch of blobs of the checked-out commit reads that
//! commit's trees and nothing more; the worst case (a want nothing reaches) reads
//! every tree of the history once, like one `git rev-list --objects --all`.

use super::refs::RefList;
use super::{BadRequest, ProtocolError, Result};
use gix::ObjectId;
use gix::object::Kind;
use std::collections::HashSet;

/// Refuses the request unless every want is reachable from an advertised ref.
pub fn check_wants(repo: &gix::Repository, refs: &RefList, wants: &[ObjectId]) -> Result<()> {
    let mut pending: HashSet<ObjectId> =
        wants.iter().filter(|w| !refs.is_tip(w)).copied().collect();
    if pending.is_empty() {
        return Ok(());
    }
    // A missing object is refused at once, in the same words as an unreachable one.
    let mut need_trees = false;
    for w in &pending {
        match repo.find_header(*w) {
            Ok(h) if matches!(h.kind(), Kind::Tree | Kind::Blob) => need_trees = true,
            Ok(_) => {}
            Err(_) => return Err(not_ours(w)),
        }
    }
    // The advertised refs, tags followed down to what they finally name.
    let mut commits = Vec::new();
    let mut tip_set = HashSet::new();
    let mut roots = Vec::new();
    // `HEAD` first: a lazy fetch most often wants what the checked-out branch holds.
    for oid in refs
        .head_oid
        .into_iter()
        .chain(refs.refs.iter().map(|r| r.oid))
    {
        let mut id = oid;
        loop {
            pending.remove(&id);
            let Ok(header) = repo.find_header(id) else {
                break;
            };
            match header.kind() {
                Kind::Tag => match repo.find_tag(id).map(|t| t.target_id()) {
                    Ok(Ok(target)) => id = target.detach(),
                    _ => break,
                },
                Kind::Commit => {
                    if tip_set.insert(id) {
                        commits.push(id);
                    }
                    break;
                }
                Kind::Tree => {
                    roots.push(id);
                    break;
                }
                Kind::Blob => break,
            }
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    let mut seen_trees: HashSet<ObjectId> = HashSet::new();
    for root in roots {
        if walk_tree(repo, root, &mut seen_trees, &mut pending)? {
            return Ok(());
        }
    }
    if !commits.is_empty() {
        // Breadth first from the tips in order: the tips' trees before older ones.
        let walk = repo.rev_walk(commits).all().map_err(ProtocolError::git)?;
        for info in walk {
            let info = info.map_err(ProtocolError::git)?;
            if pending.remove(&info.id) && pending.is_empty() {
                return Ok(());
            }
            if need_trees {
                let tree = info
                    .object()
                    .map_err(ProtocolError::git)?
                    .tree_id()
                    .map_err(ProtocolError::git)?
                    .detach();
                if walk_tree(repo, tree, &mut seen_trees, &mut pending)? {
                    return Ok(());
                }
            }
        }
    }
    let mut left: Vec<ObjectId> = pending.into_iter().collect();
    left.sort();
    Err(not_ours(&left[0]))
}

fn not_ours(oid: &ObjectId) -> ProtocolError {
    BadRequest::NotOurRef(*oid).into()
}

/// Takes every tree and blob under `root` out of `pending`, skipping trees already
/// seen; true once `pending` is empty. An explicit stack, not recursion.
fn walk_tree(
    repo: &gix::Repository,
    root: ObjectId,
    seen: &mut HashSet<ObjectId>,
    pending: &mut HashSet<ObjectId>,
) -> Result<bool> {
    let mut stack = vec![root];
    while let Some(tree) = stack.pop() {
        if !seen.insert(tree) {
            continue;
        }
        if pending.remove(&tree) && pending.is_empty() {
            return Ok(true);
        }
        let tree_obj = repo.find_tree(tree).map_err(ProtocolError::git)?;
        for entry in tree_obj.iter() {
            let entry = entry.map_err(ProtocolError::git)?;
            let mode = entry.mode();
            if mode.is_tree() {
                stack.push(entry.oid().to_owned());
            } else if !mode.is_commit() && pending.remove(entry.oid()) && pending.is_empty() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
