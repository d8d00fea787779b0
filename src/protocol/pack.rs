//! Building the pack a client needs: which objects it lacks, and the pack stream.
//!
//! The object set is exact: every commit reachable from the wants and not from the
//! client's common commits, plus every tree and blob of those commits that the
//! boundary commits (parents the client already has) do not contain, less what a
//! partial clone's [`Filter`] leaves out (objects named in `want` are always sent). The pack is
//! made of `gix-pack`'s entries, reusing deltas already stored in packs, and
//! streamed to the writer one object at a time: the memory a clone takes does not
//! grow with the repository (gix's own `iter_from_counts` sizes its chunks by the
//! object count — half the objects per chunk for a small repository — and holds
//! chunks in flight, so a clone of a repository of large files held most of it).

use super::filter::Filter;
use super::{ProtocolError, Result};
use gix::ObjectId;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::AtomicBool;

/// A request to limit history (`git clone --depth`, `git fetch --deepen`).
#[derive(Debug, Clone, Default)]
pub struct Deepen {
    /// How many commits deep (from the wants, or with `relative` from the client's
    /// current shallow boundary); `None` for no depth limit.
    pub depth: Option<u32>,
    pub relative: bool,
    /// `deepen-since`: leave out commits older than this (seconds since the epoch).
    pub since: Option<i64>,
    /// `deepen-not`: leave out commits reachable from these.
    pub not: Vec<ObjectId>,
    /// The client's current shallow commits.
    pub client_shallow: Vec<ObjectId>,
}

/// What a shallow walk decided.
#[derive(Debug, Clone, Default)]
pub struct ShallowUpdate {
    /// Commits that become the client's new shallow boundary.
    pub shallow: Vec<ObjectId>,
    /// Client shallow commits whose parents are now sent.
    pub unshallow: Vec<ObjectId>,
}

/// The objects to send for `wants`, given the `commons` the client has, and for a
/// shallow request the boundary updates to tell the client first.
pub fn objects_to_send(
    repo: &gix::Repository,
    wants: &[ObjectId],
    commons: &[ObjectId],
    deepen: Option<&Deepen>,
) -> Result<(Vec<ObjectId>, ShallowUpdate)> {
    objects_to_send_filtered(repo, wants, commons, deepen, &Filter::default())
}

/// [`objects_to_send`] for a partial clone: the `filter` leaves out trees and blobs
/// of the commits sent, never an object named in `wants`.
pub fn objects_to_send_filtered(
    repo: &gix::Repository,
    wants: &[ObjectId],
    commons: &[ObjectId],
    deepen: Option<&Deepen>,
    filter: &Filter,
) -> Result<(Vec<ObjectId>, ShallowUpdate)> {
    let mut have: HashSet<ObjectId> = HashSet::new();
    let mut trees = TreeWalk::new(repo, filter);
    let mut tips = Vec::new();
    for want in wants {
        let mut id = *want;
        loop {
            let obj = repo.find_object(id).map_err(ProtocolError::git)?;
            match obj.kind {
                gix::object::Kind::Tag => {
                    trees.send(id);
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
                // A tag of a tree (or a wanted tree): the tree and what it contains
                // (as the filter allows, counting depth from this tree), or the clone
                // would lack objects the tag needs.
                gix::object::Kind::Tree => {
                    trees.add(id, &have, true)?;
                    break;
                }
                gix::object::Kind::Blob => {
                    trees.send(id);
                    break;
                }
            }
        }
    }
    if tips.is_empty() {
        return Ok((trees.out, ShallowUpdate::default()));
    }
    let (commits, boundary, update) = match deepen {
        None => full_history(repo, tips, commons)?,
        Some(d) => shallow_history(repo, tips, commons, d)?,
    };
    // Trees and blobs the client has: everything in the trees of boundary commits.
    for commit in boundary {
        let tree = commit_tree(repo, commit)?;
        collect_tree(repo, tree, &mut have)?;
    }
    for commit in commits {
        trees.send(commit);
        let tree = commit_tree(repo, commit)?;
        trees.add(tree, &have, false)?;
    }
    Ok((trees.out, update))
}

type History = (Vec<ObjectId>, Vec<ObjectId>, ShallowUpdate);

/// Commits reachable from `tips` but not from `commons`; the boundary is their parents
/// the client has.
fn full_history(
    repo: &gix::Repository,
    tips: Vec<ObjectId>,
    commons: &[ObjectId],
) -> Result<History> {
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
    let mut boundary: Vec<ObjectId> = parents
        .into_iter()
        .filter(|p| !in_walk.contains(p))
        .collect();
    boundary.sort();
    boundary.dedup();
    Ok((commits, boundary, ShallowUpdate::default()))
}

fn parents_of(repo: &gix::Repository, commit: ObjectId) -> Result<Vec<ObjectId>> {
    let c = repo.find_commit(commit).map_err(ProtocolError::git)?;
    Ok(c.parent_ids().map(|p| p.detach()).collect())
}

/// A depth-limited walk. The client has the history of its `commons` only down to its
/// shallow commits; the boundary (trees the client has) is the commons themselves.
fn shallow_history(
    repo: &gix::Repository,
    tips: Vec<ObjectId>,
    commons: &[ObjectId],
    d: &Deepen,
) -> Result<History> {
    let client_shallow: HashSet<ObjectId> = d.client_shallow.iter().copied().collect();
    // Commits that deepen-not leaves out.
    let mut excluded: HashSet<ObjectId> = HashSet::new();
    if !d.not.is_empty() {
        let walk = repo
            .rev_walk(d.not.iter().copied())
            .all()
            .map_err(ProtocolError::git)?;
        for info in walk {
            excluded.insert(info.map_err(ProtocolError::git)?.id);
        }
    }
    let left_out = |c: ObjectId| -> Result<bool> {
        if excluded.contains(&c) {
            return Ok(true);
        }
        if let Some(since) = d.since {
            let commit = repo.find_commit(c).map_err(ProtocolError::git)?;
            let time = commit.time().map_err(ProtocolError::git)?.seconds;
            return Ok(time < since);
        }
        Ok(false)
    };
    // What the client has: reachable from its commons, not past its shallow commits.
    let mut client_has: HashSet<ObjectId> = HashSet::new();
    let mut stack: Vec<ObjectId> = commons.to_vec();
    while let Some(c) = stack.pop() {
        if !client_has.insert(c) || client_shallow.contains(&c) {
            continue;
        }
        stack.extend(parents_of(repo, c)?);
    }
    // Breadth first from the wants; depth counts from 1 at a want, or (relative) from 0
    // at a client shallow commit.
    let mut depth_of: std::collections::HashMap<ObjectId, Option<u32>> =
        std::collections::HashMap::new();
    let mut queue: std::collections::VecDeque<(ObjectId, Option<u32>)> = tips
        .into_iter()
        .map(|t| (t, (!d.relative).then_some(1)))
        .collect();
    let mut order = Vec::new();
    let mut update = ShallowUpdate::default();
    while let Some((c, depth)) = queue.pop_front() {
        if depth_of.contains_key(&c) {
            continue;
        }
        let depth = match depth {
            None if client_shallow.contains(&c) => Some(0),
            other => other,
        };
        depth_of.insert(c, depth);
        order.push(c);
        let parents = parents_of(repo, c)?;
        let mut cut = false;
        for p in &parents {
            cut |= left_out(*p)?;
        }
        let at_boundary = cut || matches!((depth, d.depth), (Some(n), Some(max)) if n >= max);
        if at_boundary {
            if !parents.is_empty() && !client_shallow.contains(&c) {
                update.shallow.push(c);
            }
            continue;
        }
        if client_shallow.contains(&c) && !parents.is_empty() {
            update.unshallow.push(c);
        }
        for p in parents {
            queue.push_back((p, depth.map(|n| n + 1)));
        }
    }
    let commits: Vec<ObjectId> = order
        .into_iter()
        .filter(|c| !client_has.contains(c))
        .collect();
    Ok((commits, commons.to_vec(), update))
}

fn commit_tree(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId> {
    let commit = repo.find_commit(commit).map_err(ProtocolError::git)?;
    Ok(commit.tree_id().map_err(ProtocolError::git)?.detach())
}

/// Every tree and blob id under `tree`, into `set`. An explicit stack, not recursion:
/// the nesting of a stored tree is bounded by the push limits, but never trusted.
fn collect_tree(repo: &gix::Repository, tree: ObjectId, set: &mut HashSet<ObjectId>) -> Result<()> {
    let mut stack = vec![tree];
    while let Some(tree) = stack.pop() {
        if !set.insert(tree) {
            continue;
        }
        let tree_obj = repo.find_tree(tree).map_err(ProtocolError::git)?;
        for entry in tree_obj.iter() {
            let entry = entry.map_err(ProtocolError::git)?;
            let mode = entry.mode();
            if mode.is_tree() {
                stack.push(entry.oid().to_owned());
            } else if !mode.is_commit() {
                set.insert(entry.oid().to_owned());
            }
        }
    }
    Ok(())
}

/// The objects of a pack in the order they are sent (each tree before what it
/// contains), each once, as the filter allows.
struct TreeWalk<'r> {
    repo: &'r gix::Repository,
    filter: Filter,
    sent: HashSet<ObjectId>,
    out: Vec<ObjectId>,
    /// With a depth filter: the least depth each tree was walked at. A tree seen
    /// deeper first (its entries past the depth left out) is walked again when it
    /// turns up higher (git: "minimum depth if an object is located at multiple
    /// depths").
    walked_at: HashMap<ObjectId, u64>,
    /// With a size filter: blobs found too big (their size is looked up once).
    too_big: HashSet<ObjectId>,
}

impl<'r> TreeWalk<'r> {
    fn new(repo: &'r gix::Repository, filter: &Filter) -> Self {
        TreeWalk {
            repo,
            filter: *filter,
            sent: HashSet::new(),
            out: Vec::new(),
            walked_at: HashMap::new(),
            too_big: HashSet::new(),
        }
    }

    /// Sends `id` (once), whatever the filter.
    fn send(&mut self, id: ObjectId) {
        if self.sent.insert(id) {
            self.out.push(id);
        }
    }

    /// Adds `root` and everything under it that the client lacks and the filter
    /// allows, with an explicit stack. `named`: the client asked for `root` itself,
    /// so it is sent even when the filter leaves out trees of its depth.
    fn add(&mut self, root: ObjectId, have: &HashSet<ObjectId>, named: bool) -> Result<()> {
        let by_depth = self.filter.tree_depth.is_some();
        let mut stack = vec![(root, 0u64)];
        while let Some((tree, depth)) = stack.pop() {
            if have.contains(&tree) {
                continue;
            }
            let is_root = named && tree == root && depth == 0;
            if !is_root && !self.filter.depth_ok(depth) {
                continue;
            }
            if by_depth {
                match self.walked_at.get(&tree) {
                    Some(&d) if d <= depth => continue,
                    _ => {
                        self.walked_at.insert(tree, depth);
                    }
                }
                self.send(tree);
            } else if self.sent.insert(tree) {
                self.out.push(tree);
            } else {
                continue;
            }
            let tree_obj = self.repo.find_tree(tree).map_err(ProtocolError::git)?;
            let first_subtree = stack.len();
            let child_depth = depth + 1;
            let children_ok = self.filter.depth_ok(child_depth);
            for entry in tree_obj.iter() {
                let entry = entry.map_err(ProtocolError::git)?;
                let mode = entry.mode();
                let oid = entry.oid().to_owned();
                if mode.is_tree() {
                    if children_ok {
                        stack.push((oid, child_depth));
                    }
                } else if !mode.is_commit() && children_ok && !have.contains(&oid) {
                    // Without a size filter, one set lookup as before filters existed.
                    let sized = self.filter.blob_limit.is_some();
                    if !sized || (!self.sent.contains(&oid) && self.blob_ok(oid)?) {
                        self.send(oid);
                    }
                }
            }
            // Visit subtrees in the order they appear in the tree.
            stack[first_subtree..].reverse();
        }
        Ok(())
    }

    /// Does the size filter let this blob through? Without one, no lookup at all.
    fn blob_ok(&mut self, blob: ObjectId) -> Result<bool> {
        if self.filter.blob_limit.is_none() {
            return Ok(true);
        }
        if self.filter.no_blobs() || self.too_big.contains(&blob) {
            return Ok(false);
        }
        let size = self
            .repo
            .find_header(blob)
            .map_err(ProtocolError::git)?
            .size();
        if self.filter.size_ok(size) {
            Ok(true)
        } else {
            self.too_big.insert(blob);
            Ok(false)
        }
    }
}

/// Streams a version 2 pack of `ids` into `out`. Returns the number of objects.
pub fn write_pack(
    repo: &gix::Repository,
    ids: Vec<ObjectId>,
    out: &mut dyn Write,
) -> Result<usize> {
    use gix_pack::data::output;
    use gix_pack::data::output::count::PackLocation;
    let mut db = repo.objects.clone().into_inner();
    // Packed entries are copied by location, which needs packs to stay mapped.
    db.prevent_pack_unload();
    // No caches of inflated objects: entries are copied as they are stored, and a
    // cache would hold up to its limit of inflated objects per clone, memory that
    // grows with the repository's objects' sizes.
    db.unset_pack_cache();
    db.unset_object_cache();
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
    let (counts, by_pack) = in_pack_order(&db, counts)?;
    let mut buf = Vec::new();
    let entries = (0..counts.len()).map(|i| -> gix_error::Result<Vec<output::Entry>> {
        let count = &counts[i];
        let copied = match &count.entry_pack_location {
            PackLocation::LookedUp(Some(location)) => {
                gix_pack::Find::entry_by_location(&db, location).and_then(|stored| {
                    let (_, range) = by_pack.iter().find(|(id, _)| *id == location.pack_id)?;
                    output::Entry::from_pack_entry(
                        stored,
                        count,
                        &counts[range.clone()],
                        range.start,
                        None::<fn(u32, u64) -> gix_error::Result<Option<ObjectId>>>,
                        gix_pack::data::Version::V2,
                    )
                })
            }
            _ => None,
        };
        let entry = match copied {
            Some(entry) => entry?,
            // Not copyable as stored (loose, or a delta whose base is not sent):
            // the object itself, compressed anew.
            None => match gix_pack::Find::try_find(&db, &count.id, &mut buf)? {
                Some((object, _)) => output::Entry::from_data(count, &object, Default::default())?,
                None => output::Entry::invalid(),
            },
        };
        Ok(vec![entry])
    });
    let bytes = output::bytes::FromEntriesIter::new(
        entries,
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

/// The counted objects in pack order, each with where it is stored (as gix's generator
/// sorts them: loose ones first, then by pack and offset), so that a stored delta whose
/// base is sent too becomes an offset delta to it; and each pack's range of them, where
/// a delta's base is looked for.
#[allow(clippy::type_complexity)]
fn in_pack_order(
    db: &gix::odb::Handle,
    mut counts: Vec<gix_pack::data::output::Count>,
) -> Result<(
    Vec<gix_pack::data::output::Count>,
    Vec<(u32, std::ops::Range<usize>)>,
)> {
    use gix_pack::data::output::count::PackLocation;
    let mut buf = Vec::new();
    for c in counts.iter_mut() {
        if matches!(c.entry_pack_location, PackLocation::NotLookedUp) {
            let found = gix_pack::Find::location_by_oid(&db, &c.id, &mut buf)
                .map_err(ProtocolError::git)?;
            c.entry_pack_location = PackLocation::LookedUp(found);
        }
    }
    counts.sort_by(
        |a, b| match (&a.entry_pack_location, &b.entry_pack_location) {
            (PackLocation::LookedUp(Some(a)), PackLocation::LookedUp(Some(b))) => a
                .pack_id
                .cmp(&b.pack_id)
                .then(a.pack_offset.cmp(&b.pack_offset)),
            (PackLocation::LookedUp(Some(_)), _) => std::cmp::Ordering::Greater,
            (_, PackLocation::LookedUp(Some(_))) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Equal,
        },
    );
    // Each pack's range of the sorted objects: a delta's base is looked for there.
    let mut by_pack: Vec<(u32, std::ops::Range<usize>)> = Vec::new();
    for (i, c) in counts.iter().enumerate() {
        if let PackLocation::LookedUp(Some(l)) = &c.entry_pack_location {
            match by_pack.last_mut() {
                Some((id, range)) if *id == l.pack_id => range.end = i + 1,
                _ => by_pack.push((l.pack_id, i..i + 1)),
            }
        }
    }
    Ok((counts, by_pack))
}
