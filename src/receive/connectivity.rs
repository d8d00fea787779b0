//! Connectivity: every object a pushed ref will name is present, complete and within
//! the limits, before any ref may move.
//!
//! * a tag is peeled to its end: every tag in the chain and the object it finally
//!   names must exist (a tag of a missing commit would break every later clone);
//! * a commit's history is walked down to what the repository already had, and every
//!   new commit is at most [`Limits::max_commit_bytes`] large;
//! * a tree is walked with an explicit stack — never by recursion, whose depth the
//!   pusher would choose — to its leaves: every blob must exist and no path may be
//!   deeper than [`Limits::max_tree_depth`] (git's `core.maxTreeDepth`, 4,096 too,
//!   counted the same way: a clone by git never fails on what was accepted).
//!
//! Each tree is read once per push: its shape (levels below it, files and folders
//! below it, the bytes of their paths) is kept, so shared subtrees cost nothing the
//! second time and every check is exact on what the tree expands to: a tree whose
//! few dozen objects expand to a billion paths is refused before anything diffs,
//! lists or checks out its paths.

use crate::incoming::fsck::{self, EntryKind};
use gix::ObjectId;
use gix::bstr::{BString, ByteSlice};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Default deepest tree nesting (like git's `core.maxTreeDepth`).
pub const DEFAULT_MAX_TREE_DEPTH: u32 = 4096;
/// Default largest commit or tag object: its message and headers.
pub const DEFAULT_MAX_COMMIT_BYTES: u64 = 1024 * 1024;
/// Default most files and folders in one commit's tree, all levels.
pub const DEFAULT_MAX_TREE_ENTRIES: u64 = 2_000_000;
/// Default most bytes of all the paths of one commit's tree.
pub const DEFAULT_MAX_TREE_PATH_BYTES: u64 = 256 * 1024 * 1024;

/// The bounds a pushed object graph must stay within (`SKILLSD_MAX_TREE_DEPTH`,
/// `SKILLSD_MAX_COMMIT_BYTES`, `SKILLSD_MAX_TREE_ENTRIES`: [`crate::config::Settings`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest path, counted as git counts `core.maxTreeDepth`: `a/b/c` has depth 3,
    /// the root tree is level 1, so trees nest at most `max_tree_depth - 1` deep and
    /// every accepted tree can be checked out by a git with the same default.
    pub max_tree_depth: u32,
    /// Largest commit or annotated tag object (message included).
    pub max_commit_bytes: u64,
    /// Most files and folders a commit's tree may expand to (all levels).
    pub max_tree_entries: u64,
    /// Longest path in a tree (Linux's `PATH_MAX` is 4,096: nobody could check out more).
    pub max_path_bytes: u32,
    /// Most bytes of all the paths of a commit's tree together.
    pub max_tree_path_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tree_depth: DEFAULT_MAX_TREE_DEPTH,
            max_commit_bytes: DEFAULT_MAX_COMMIT_BYTES,
            max_tree_entries: DEFAULT_MAX_TREE_ENTRIES,
            max_path_bytes: 4096,
            max_tree_path_bytes: DEFAULT_MAX_TREE_PATH_BYTES,
        }
    }
}

/// Why a tip cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// An object the tip needs is not in the pack nor the repository.
    #[error("missing necessary objects ({kind} {id} is missing)")]
    Missing { kind: &'static str, id: ObjectId },
    /// The commits below the tip cannot all be walked.
    #[error("missing necessary objects (history is incomplete: {0})")]
    Incomplete(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An object exists but cannot be read as what it claims to be.
    #[error("corrupt object (commit {id}: {source})")]
    Corrupt {
        id: ObjectId,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An object `git fsck --strict` refuses (a bad date, a `.git` entry, a tag whose
    /// type lies): every clone that checks objects, and every mirror whose host does,
    /// would refuse it.
    #[error("invalid {kind} {id}: {error}")]
    Fsck {
        kind: &'static str,
        id: ObjectId,
        error: crate::incoming::fsck::FsckError,
    },
    /// Trees nested deeper than the limit; `path` is the start of the deepest path.
    #[error("trees nested more than {limit} levels deep, under `{path}`")]
    TooDeep { path: String, limit: u32 },
    /// A tree that expands to more than the limits allow.
    #[error("the tree expands to {0}")]
    TooWide(Width),
    /// The session ended (the client left, or its time ran out): the walk stopped.
    #[error("cancelled: the session ended")]
    Cancelled,
    /// A commit or tag larger than the limit.
    #[error("{kind} {id} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        kind: &'static str,
        id: ObjectId,
        size: u64,
        limit: u64,
    },
}

/// Which of a tree's limits it goes over, by how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// Files and folders, all levels.
    Entries { entries: u64, limit: u64 },
    /// The longest path, in bytes.
    Path { bytes: u64, limit: u32 },
    /// All paths' bytes together.
    PathBytes { bytes: u64, limit: u64 },
}

impl std::fmt::Display for Width {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Width::Entries { entries, limit } => write!(
                f,
                "{entries} files and folders, more than the limit of {limit} entries"
            ),
            Width::Path { bytes, limit } => write!(
                f,
                "a path of {bytes} bytes, more than the limit of {limit} bytes per path"
            ),
            Width::PathBytes { bytes, limit } => write!(
                f,
                "{bytes} bytes of paths, more than the limit of {limit} bytes of paths"
            ),
        }
    }
}

/// How an object's kind is named in messages.
fn kind_name(kind: gix::object::Kind) -> &'static str {
    match kind {
        gix::object::Kind::Tree => "tree",
        gix::object::Kind::Blob => "blob",
        gix::object::Kind::Commit => "commit",
        gix::object::Kind::Tag => "tag",
    }
}

impl WalkError {
    /// The problem shown to the pusher (`remote:` lines), with a hint.
    pub fn problem(&self, ref_name: &str) -> crate::skills::Problem {
        use crate::skills::Problem;
        match self {
            WalkError::TooDeep { path, limit } => Problem::new(
                crate::skills::Check::TreeDepth,
                path,
                format!("folders are nested more than {limit} levels deep"),
            )
            .hint("flatten the folder structure; no skill needs thousands of nested folders"),
            WalkError::TooLarge { kind, .. } => {
                Problem::new(crate::skills::Check::Push, ref_name, self.to_string()).hint(
                    if *kind == "commit" {
                        "shorten the commit message (git commit --amend) and push again"
                    } else {
                        "shorten the tag message and push again"
                    },
                )
            }
            WalkError::Fsck { kind, .. } => {
                Problem::new(crate::skills::Check::Push, ref_name, self.to_string()).hint(
                    match *kind {
                        "commit" => "`git fsck --strict` in your clone names it; rewrite the commit \
                                     (git commit --amend, git rebase) with a current git and push again",
                        "tree" => "`git fsck --strict` in your clone names it; commit the files again \
                                   with a current git (a tool wrote this tree by hand)",
                        _ => "`git fsck --strict` in your clone names it; delete the tag \
                              (git tag -d) and make it again with `git tag -a`",
                    },
                )
            }
            WalkError::Missing { .. } | WalkError::Incomplete(_) | WalkError::Corrupt { .. } => {
                Problem::new(crate::skills::Check::Push, ref_name, self.to_string()).hint(
                    "push again with a current git; if this repeats, run `git fsck` in your clone",
                )
            }
            WalkError::Cancelled => {
                Problem::new(crate::skills::Check::Push, ref_name, self.to_string())
            }
            WalkError::TooWide(_) => {
                Problem::new(crate::skills::Check::Push, ref_name, self.to_string())
                    .hint("keep the repository's tree smaller; split it into several repositories")
            }
        }
    }
}

/// What a tree expands to when checked out (or diffed, or listed): counted once per
/// distinct tree, so a tree that names the same subtree twice at every level (a few
/// dozen objects that expand to a billion paths) is seen for what it is.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    /// Levels of trees below this one.
    height: u32,
    /// Files and folders below, all levels.
    entries: u64,
    /// Bytes of all their paths relative to this tree.
    path_bytes: u64,
    /// The longest of those paths.
    longest: u64,
}

impl Shape {
    /// Adds an entry named `name` holding `below` (a file holds nothing).
    fn add(&mut self, name_len: u64, below: Option<&Shape>) {
        let b = below.copied().unwrap_or_default();
        self.entries = self.entries.saturating_add(1).saturating_add(b.entries);
        self.path_bytes = self
            .path_bytes
            .saturating_add(name_len)
            .saturating_add((name_len + 1).saturating_mul(b.entries))
            .saturating_add(b.path_bytes);
        let longest = if below.is_some() && b.entries > 0 {
            name_len + 1 + b.longest
        } else {
            name_len
        };
        self.longest = self.longest.max(longest);
        if below.is_some() {
            self.height = self.height.max(b.height + 1);
        }
    }
}

/// The shapes of trees walked before, across pushes and repositories, so a push of
/// one file into a tree of 10,000 does not read the 9,000 it did not touch again: a
/// tree's shape is a function of its content, hence of its id. Only a tree the
/// repository holds is looked up here ([`Walk::trusting`]); a new one is always read
/// and checked. Emptied when full: a bound on the memory it keeps, not an LRU.
/// (Hashed with a seed of the process's: the ids are the pushers' to choose.)
static KNOWN_SHAPES: std::sync::LazyLock<std::sync::Mutex<Shapes>> =
    std::sync::LazyLock::new(Default::default);

/// Most shapes [`KNOWN_SHAPES`] keeps (~64 bytes each: 4 MiB at most).
const KNOWN_SHAPES_MAX: usize = 1 << 16;

type Shapes = HashMap<ObjectId, Shape, foldhash::fast::RandomState>;

/// What a push's walk has already seen: each tree's [`Shape`], so a tree is read once.
pub struct Walk<'c> {
    shapes: Shapes,
    /// Set when the session ends: the walk stops at the next tree.
    cancel: &'c AtomicBool,
    /// The repository as it was before the push: its trees were walked when they came.
    known: Option<&'c gix::Repository>,
}

impl<'c> Walk<'c> {
    pub fn new(cancel: &'c AtomicBool) -> Self {
        Walk {
            shapes: Shapes::default(),
            cancel,
            known: None,
        }
    }

    /// Trusts the entries of the trees `known` holds already, as git trusts what it
    /// has: each came with a push whose walk checked that its blobs and subtrees are
    /// there and of the kind their modes say. Such a tree is still read (its shape
    /// counts toward the limits), but its entries are not looked up one by one: a push
    /// of one file into a tree of 30,000 looked up all 30,000.
    pub fn trusting(mut self, known: &'c gix::Repository) -> Self {
        self.known = Some(known);
        self
    }

    /// Whether the entries of tree `id` are to be checked: it is new.
    fn is_new(&self, id: ObjectId) -> bool {
        !self.known.is_some_and(|k| k.has_object(id))
    }

    /// Reads tree `id` (named `name` in its parent) for the walk: a new tree's
    /// entries are checked, but for those its `base` (the same folder in the parent
    /// commit) has as they are, when the base is checked already.
    fn frame(
        &self,
        view: &gix::Repository,
        id: ObjectId,
        name: BString,
        base: Option<ObjectId>,
    ) -> Result<Frame, WalkError> {
        if !self.is_new(id) {
            return Frame::read(view, id, name, Check::None);
        }
        // The base passed fsck when it came (the repository's, or checked by this
        // walk): its entries are read, not checked again.
        let base_tree = base.and_then(|b| self.checked_tree(view, b));
        match base_tree.as_ref().and_then(|t| fsck::entries(&t.data)) {
            Some(known) => Frame::read(view, id, name, Check::Against(&known)),
            None => Frame::read(view, id, name, Check::All),
        }
    }

    /// Tree `id`, if its entries are known to be there and of the kind their modes
    /// say: the repository holds it (see [`Walk::trusting`]), or this walk checked it
    /// to the end. An entry of a new tree with the same name, kind and id names an
    /// object known to be there: a push of one file into a folder of 1,000 looked up
    /// the 999 others.
    fn checked_tree<'r>(&self, view: &'r gix::Repository, id: ObjectId) -> Option<gix::Tree<'r>> {
        if self.is_new(id) && !self.shapes.contains_key(&id) {
            return None;
        }
        view.find_tree(id).ok()
    }

    /// The shape of tree `id` from an earlier walk, if the repository holds it (only
    /// then are its entries trusted without reading it).
    fn known_shape(&self, id: ObjectId) -> Option<Shape> {
        self.known?;
        let shape = KNOWN_SHAPES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied()?;
        (!self.is_new(id)).then_some(shape)
    }

    fn cancelled(&self) -> Result<(), WalkError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(WalkError::Cancelled);
        }
        Ok(())
    }

    /// Checks that `tip` and everything it needs is present and within `limits`.
    /// Commits in `hidden`'s history (the refs' current values) are trusted to be
    /// complete, as git trusts what it already has; their trees are not walked again.
    pub fn tip(
        &mut self,
        view: &gix::Repository,
        tip: ObjectId,
        hidden: &[ObjectId],
        limits: &Limits,
    ) -> Result<(), WalkError> {
        let mut id = tip;
        // A chain of tags ends at a non-tag; a cycle is impossible (ids are hashes of
        // content), but the chain's length is the pusher's: a loop, not recursion.
        loop {
            let header = view
                .find_header(id)
                .map_err(|_| WalkError::Missing { kind: "object", id })?;
            match header.kind() {
                gix::object::Kind::Tag => {
                    check_size("tag", id, header.size(), limits)?;
                    let tag = view
                        .find_object(id)
                        .map_err(|_| WalkError::Missing { kind: "tag", id })?;
                    let (target, declared) =
                        fsck::tag(&tag.data).map_err(|error| WalkError::Fsck {
                            kind: "tag",
                            id,
                            error,
                        })?;
                    // The type a tag declares is the one a client trusts when it
                    // reads the object: a lie breaks every clone.
                    let actual = view
                        .find_header(target)
                        .map_err(|_| WalkError::Missing {
                            kind: "object",
                            id: target,
                        })?
                        .kind();
                    if actual != declared {
                        return Err(WalkError::Fsck {
                            kind: "tag",
                            id,
                            error: fsck::FsckError {
                                id: "badType",
                                message: format!(
                                    "its object {target} is a {actual}, not the {declared} its 'type' line says"
                                ),
                            },
                        });
                    }
                    id = target;
                }
                gix::object::Kind::Commit => return self.history(view, id, hidden, limits),
                gix::object::Kind::Tree => return self.tree(view, id, None, limits),
                gix::object::Kind::Blob => return Ok(()),
            }
        }
    }

    fn history(
        &mut self,
        view: &gix::Repository,
        tip: ObjectId,
        hidden: &[ObjectId],
        limits: &Limits,
    ) -> Result<(), WalkError> {
        let walk = view
            .rev_walk([tip])
            .with_hidden(hidden.iter().copied())
            .all()
            .map_err(|e| WalkError::Incomplete(Box::new(e)))?;
        for info in walk {
            let info = info.map_err(|e| WalkError::Incomplete(Box::new(e)))?;
            let header = view.find_header(info.id).map_err(|_| WalkError::Missing {
                kind: "commit",
                id: info.id,
            })?;
            check_size("commit", info.id, header.size(), limits)?;
            let commit = view.find_commit(info.id).map_err(|e| WalkError::Corrupt {
                id: info.id,
                source: Box::new(e),
            })?;
            fsck::commit(&commit.data).map_err(|error| WalkError::Fsck {
                kind: "commit",
                id: info.id,
                error,
            })?;
            let tree = commit
                .tree_id()
                .map_err(|e| WalkError::Corrupt {
                    id: info.id,
                    source: Box::new(e),
                })?
                .detach();
            // What the commit changed is what is new: its first parent's tree is the
            // base its trees are compared with.
            let base = commit
                .parent_ids()
                .next()
                .and_then(|p| view.find_commit(p).ok())
                .and_then(|p| p.tree_id().ok())
                .map(|t| t.detach());
            self.tree(view, tree, base, limits)?;
        }
        Ok(())
    }

    /// Walks `root` depth first with an explicit stack: every blob present, no tree
    /// deeper than the limit. The stack holds one frame per level, so its length is
    /// the depth of the tree on top.
    fn tree(
        &mut self,
        view: &gix::Repository,
        root: ObjectId,
        base: Option<ObjectId>,
        limits: &Limits,
    ) -> Result<(), WalkError> {
        if self.shapes.contains_key(&root) {
            return Ok(());
        }
        let mut stack = vec![self.frame(view, root, BString::default(), base)?];
        let mut walked = Vec::new();
        let root_shape = loop {
            // The child is at level `stack.len() + 1` (the root is level 1); the
            // levels below it add to that.
            let depth = stack.len() as u32 + 1;
            let Some(top) = stack.last_mut() else {
                unreachable!("the root frame is popped last")
            };
            let Some((name, child, base)) = top.subtrees.get(top.next).cloned() else {
                let done = stack.pop().expect("a frame is on the stack");
                self.shapes.insert(done.id, done.shape);
                walked.push((done.id, done.shape));
                match stack.last_mut() {
                    Some(parent) => parent.shape.add(done.name.len() as u64, Some(&done.shape)),
                    None => break done.shape,
                }
                continue;
            };
            top.next += 1;
            let below = self
                .shapes
                .get(&child)
                .copied()
                .or_else(|| self.known_shape(child));
            if depth + below.map_or(0, |b| b.height) > limits.max_tree_depth {
                return Err(too_deep(&stack, &name, limits.max_tree_depth));
            }
            match below {
                Some(b) => {
                    if let Some(top) = stack.last_mut() {
                        top.shape.add(name.len() as u64, Some(&b));
                    }
                }
                None => {
                    self.cancelled()?;
                    let frame = self.frame(view, child, name, base)?;
                    stack.push(frame);
                }
            }
        };
        remember_shapes(&walked);
        if root_shape.entries > limits.max_tree_entries {
            return Err(WalkError::TooWide(Width::Entries {
                entries: root_shape.entries,
                limit: limits.max_tree_entries,
            }));
        }
        if root_shape.longest > u64::from(limits.max_path_bytes) {
            return Err(WalkError::TooWide(Width::Path {
                bytes: root_shape.longest,
                limit: limits.max_path_bytes,
            }));
        }
        if root_shape.path_bytes > limits.max_tree_path_bytes {
            return Err(WalkError::TooWide(Width::PathBytes {
                bytes: root_shape.path_bytes,
                limit: limits.max_tree_path_bytes,
            }));
        }
        Ok(())
    }
}

/// Keeps the shapes of the trees a walk read for the walks of later pushes (a tree
/// refused with its push is never looked up: it is not in the repository), never
/// more than [`KNOWN_SHAPES_MAX`] (an import of 100,000 skill folders walks as many
/// trees).
fn remember_shapes(walked: &[(ObjectId, Shape)]) {
    let mut known = KNOWN_SHAPES.lock().unwrap_or_else(|p| p.into_inner());
    if known.len() + walked.len() > KNOWN_SHAPES_MAX {
        known.clear();
        known.shrink_to_fit();
    }
    known.extend(walked.iter().take(KNOWN_SHAPES_MAX).copied());
}

fn check_size(
    kind: &'static str,
    id: ObjectId,
    size: u64,
    limits: &Limits,
) -> Result<(), WalkError> {
    if size > limits.max_commit_bytes {
        return Err(WalkError::TooLarge {
            kind,
            id,
            size,
            limit: limits.max_commit_bytes,
        });
    }
    Ok(())
}

/// Which entries of a tree to look up.
#[derive(Clone, Copy)]
enum Check<'k> {
    /// None: the repository has the tree (see [`Walk::trusting`]).
    None,
    /// Those not in the checked tree given as they are (its entries, in git's order).
    Against(&'k [fsck::Entry<'k>]),
    /// Every entry.
    All,
}

/// One tree being walked: its subtrees, the next one to visit, its height so far.
struct Frame {
    id: ObjectId,
    /// The name this tree has in its parent (empty for a root).
    name: BString,
    /// Each subtree's name, id, and the same folder in the base (if it is a tree).
    subtrees: Vec<(BString, ObjectId, Option<ObjectId>)>,
    next: usize,
    /// Its files so far, and the subtrees walked so far.
    shape: Shape,
}

impl Frame {
    /// Reads a tree: notes its subtrees and, as `check` says (a new tree), checks that
    /// every blob and subtree it names exists (submodule commits are not ours to have)
    /// and is of the kind its mode says.
    fn read(
        view: &gix::Repository,
        id: ObjectId,
        name: BString,
        check: Check<'_>,
    ) -> Result<Frame, WalkError> {
        let tree = view
            .find_tree(id)
            .map_err(|_| WalkError::Missing { kind: "tree", id })?;
        let mut subtrees = Vec::new();
        let mut shape = Shape::default();
        let invalid = |error| WalkError::Fsck {
            kind: "tree",
            id,
            error,
        };
        // Both trees' entries are in git's order (fsck checked it): the base's entry of
        // the same name and kind is found by walking both lists once, side by side.
        let mut in_order = 0;
        for entry in fsck::tree(&tree.data).map_err(invalid)? {
            let oid = entry.id;
            let expected = match entry.kind {
                EntryKind::Commit => {
                    // A submodule's commit is not ours to have.
                    shape.add(entry.name.len() as u64, None);
                    continue;
                }
                EntryKind::Tree => gix::object::Kind::Tree,
                EntryKind::Blob => gix::object::Kind::Blob,
            };
            // The mode says what the entry holds; a client trusts it when it
            // checks out or packs the tree.
            // The entry in the base, and whether it is known to be there as it says.
            let (in_base, known) = match check {
                Check::None => (None, true),
                Check::Against(base) => {
                    while base
                        .get(in_order)
                        .is_some_and(|b| fsck::order(b, &entry).is_lt())
                    {
                        in_order += 1;
                    }
                    let in_base = base
                        .get(in_order)
                        .filter(|b| fsck::order(b, &entry).is_eq())
                        .map(|b| (b.kind, b.id));
                    (in_base, in_base == Some((entry.kind, oid)))
                }
                Check::All => (None, false),
            };
            let actual = if !known {
                view.find_header(oid)
                    .map_err(|_| WalkError::Missing {
                        kind: kind_name(expected),
                        id: oid,
                    })?
                    .kind()
            } else {
                expected
            };
            if actual != expected {
                return Err(invalid(fsck::FsckError {
                    id: "badType",
                    message: format!(
                        "entry `{}` has the mode of a {expected} but names the {actual} {oid}",
                        entry.name.as_bstr()
                    ),
                }));
            }
            if entry.kind == EntryKind::Tree {
                let base = in_base.and_then(|(kind, id)| (kind == EntryKind::Tree).then_some(id));
                subtrees.push((entry.name.into(), oid, base));
                continue;
            }
            shape.add(entry.name.len() as u64, None);
        }
        Ok(Frame {
            id,
            name,
            subtrees,
            next: 0,
            shape,
        })
    }
}

/// The start of the too-deep path, for the message: the first few folder names.
fn too_deep(stack: &[Frame], child: &BString, limit: u32) -> WalkError {
    const SHOWN: usize = 8;
    let names: Vec<&[u8]> = stack
        .iter()
        .skip(1) // the root has no name
        .map(|f| f.name.as_slice())
        .chain(std::iter::once(child.as_slice()))
        .collect();
    let mut path: String = names
        .iter()
        .take(SHOWN)
        .map(|n| {
            let s = n.to_str_lossy();
            if s.len() > 40 {
                format!("{}…", s.chars().take(40).collect::<String>())
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    if names.len() > SHOWN {
        path.push_str("/…");
    }
    WalkError::TooDeep { path, limit }
}

/// What `skillsd fsck` found wrong with one ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ref_name: String,
    pub problem: String,
}

/// Every ref's objects as a push's would be checked: present, within `limits`, and
/// valid for `git fsck --strict` (dates, identities, tree entries, tags whose type
/// lies). `names` are the refs the database holds (a pair that cannot coexist in a
/// clone is a finding too: `a` beside `a/b`, or two differing only in case).
pub fn fsck(
    repo: &gix::Repository,
    names: &[(String, gix::ObjectId)],
    limits: &Limits,
) -> Vec<Finding> {
    let mut found = Vec::new();
    let all: std::collections::BTreeSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    let mut lower: std::collections::HashMap<String, &str> = Default::default();
    for (name, _) in names {
        if let Some(other) = lower.insert(name.to_lowercase(), name) {
            found.push(Finding {
                ref_name: name.clone(),
                problem: format!("differs from `{other}` only in case (a clone on macOS or Windows cannot hold both)"),
            });
        }
        let mut prefix = name.as_str();
        while let Some(i) = prefix.rfind('/') {
            prefix = &prefix[..i];
            if all.contains(prefix) {
                found.push(Finding {
                    ref_name: name.clone(),
                    problem: format!(
                        "`{prefix}` is a ref too: a name cannot be a ref and a folder of refs"
                    ),
                });
            }
        }
    }
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut walk = Walk::new(&never);
    let mut good: Vec<gix::ObjectId> = Vec::new();
    for (name, target) in names {
        match walk.tip(repo, *target, &good, limits) {
            Ok(()) => good.push(*target),
            Err(e) => found.push(Finding {
                ref_name: name.clone(),
                problem: e.to_string(),
            }),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_repo::{commit, repository};

    fn tree_of(repo: &gix::Repository, commit: ObjectId) -> ObjectId {
        repo.find_commit(commit)
            .unwrap()
            .tree_id()
            .unwrap()
            .detach()
    }

    fn subtree(repo: &gix::Repository, tree: ObjectId, name: &str) -> ObjectId {
        let tree = repo.find_tree(tree).unwrap();
        let entry = tree.find_entry(name).unwrap();
        entry.object_id()
    }

    /// The files and folders the walk counts for `tip`, read from the limit it refuses.
    fn entries_counted(walk: &mut Walk<'_>, repo: &gix::Repository, tip: ObjectId) -> u64 {
        let limits = Limits {
            max_tree_entries: 0,
            ..Limits::default()
        };
        match walk.tip(repo, tip, &[], &limits) {
            Err(WalkError::TooWide(Width::Entries { entries, .. })) => entries,
            other => panic!("expected the entries' limit, got {other:?}"),
        }
    }

    #[test]
    fn a_later_walk_counts_trees_the_repository_holds_as_the_first_read_them() {
        let never = AtomicBool::new(false);
        let (_dir, repo) = repository();
        let files: Vec<(String, Option<&str>)> = (0..40)
            .map(|i| {
                (
                    format!("skills/group-{}/skill-{i}.md", i % 4),
                    Some("---\n---\n"),
                )
            })
            .collect();
        let files: Vec<(&str, Option<&str>)> =
            files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
        let first = commit(&repo, None, &files);
        // 40 files, 4 group folders, `skills`: 45 entries, all read.
        let mut reading = Walk::new(&never);
        assert_eq!(entries_counted(&mut reading, &repo, first), 45);
        // A second commit changes one group: the three others are the repository's
        // now, and a walk that trusts it takes their shapes from the first walk.
        let second = commit(&repo, Some(first), &[("skills/group-1/new.md", Some("x"))]);
        let mut trusting = Walk::new(&never).trusting(&repo);
        assert!(trusting.tip(&repo, first, &[], &Limits::default()).is_ok());
        let group_0 = subtree(
            &repo,
            subtree(&repo, tree_of(&repo, second), "skills"),
            "group-0",
        );
        assert!(KNOWN_SHAPES.lock().unwrap().contains_key(&group_0));
        let mut later = Walk::new(&never).trusting(&repo);
        assert_eq!(entries_counted(&mut later, &repo, second), 46);
        assert!(
            !later.shapes.contains_key(&group_0),
            "an untouched folder is not read again"
        );
        // The same counts as a walk that reads every tree.
        assert_eq!(entries_counted(&mut Walk::new(&never), &repo, second), 46);
    }

    #[test]
    fn a_tree_known_elsewhere_is_still_required_here() {
        let never = AtomicBool::new(false);
        let (_a_dir, a) = repository();
        let in_a = commit(&a, None, &[("skills/shared/one.md", Some("one"))]);
        let mut walk = Walk::new(&never).trusting(&a);
        assert!(walk.tip(&a, in_a, &[], &Limits::default()).is_ok());
        let shared = subtree(&a, subtree(&a, tree_of(&a, in_a), "skills"), "shared");
        assert!(KNOWN_SHAPES.lock().unwrap().contains_key(&shared));

        // Another repository's push, whose new trees (in `b`, its quarantine) name
        // `shared`, which neither has.
        let (_before_dir, before) = repository();
        let (_b_dir, b) = repository();
        let folder = |name: &str, oid: ObjectId| {
            b.write_object(gix::objs::Tree {
                entries: vec![gix::objs::tree::Entry {
                    mode: gix::objs::tree::EntryKind::Tree.into(),
                    filename: name.into(),
                    oid,
                }],
            })
            .unwrap()
            .detach()
        };
        let root = folder("skills", folder("shared", shared));
        let tip = b
            .commit("refs/heads/main", "c", root, Vec::<ObjectId>::new())
            .unwrap()
            .detach();
        let mut walk = Walk::new(&never).trusting(&before);
        match walk.tip(&b, tip, &[], &Limits::default()) {
            Err(WalkError::Missing { kind, id }) => assert_eq!((kind, id), ("tree", shared)),
            other => panic!("expected the missing tree, got {other:?}"),
        }
    }

    #[test]
    fn entries_the_base_has_as_they_are_are_found_in_gits_order_and_not_looked_up() {
        let never = AtomicBool::new(false);
        // The repository (trusted) holds a tree whose entries sort as git sorts them
        // — a folder `a` after `a-b` and `a.c`, as if it were `a/` — and whose `ab`
        // names a blob nobody has (a tree the repository holds is not read again).
        let (_a_dir, a) = repository();
        let blob = a.write_blob(b"x").unwrap().detach();
        let nobody_has = ObjectId::from_hex(b"1234567890123456789012345678901234567890").unwrap();
        let entry = |kind: gix::objs::tree::EntryKind, name: &str, oid| gix::objs::tree::Entry {
            mode: kind.into(),
            filename: name.into(),
            oid,
        };
        use gix::objs::tree::EntryKind::{Blob, Tree};
        let inner = a
            .write_object(gix::objs::Tree {
                entries: vec![entry(Blob, "x", blob)],
            })
            .unwrap()
            .detach();
        let base_entries = vec![
            entry(Blob, "a-b", blob),
            entry(Blob, "a.c", blob),
            entry(Tree, "a", inner),
            entry(Blob, "ab", nobody_has),
        ];
        let base_tree = a
            .write_object(gix::objs::Tree {
                entries: base_entries.clone(),
            })
            .unwrap()
            .detach();
        let base = a
            .commit("refs/heads/main", "base", base_tree, Vec::<ObjectId>::new())
            .unwrap()
            .detach();

        // A push (its own object store, which sees the repository's) adds `b`.
        let (_q_dir, quarantine) = repository();
        std::fs::write(
            quarantine.path().join("objects/info/alternates"),
            format!("{}\n", a.objects.store_ref().path().display()),
        )
        .unwrap();
        let quarantine = gix::open(quarantine.path()).unwrap();
        let with = |branch: &str, extra: Vec<gix::objs::tree::Entry>| {
            let mut entries = base_entries.clone();
            entries.extend(extra);
            let tree = quarantine
                .write_object(gix::objs::Tree { entries })
                .unwrap()
                .detach();
            quarantine
                .commit(branch, "push", tree, [base])
                .unwrap()
                .detach()
        };
        let tip = with("refs/heads/one", vec![entry(Blob, "b", blob)]);
        let mut walk = Walk::new(&never).trusting(&a);
        assert!(
            walk.tip(&quarantine, tip, &[base], &Limits::default())
                .is_ok(),
            "`ab` is the base's entry as it is: not looked up"
        );
        // The same missing blob under a new name is looked up, and missing.
        let tip = with("refs/heads/two", vec![entry(Blob, "b", nobody_has)]);
        let mut walk = Walk::new(&never).trusting(&a);
        match walk.tip(&quarantine, tip, &[base], &Limits::default()) {
            Err(WalkError::Missing { id, .. }) => assert_eq!(id, nobody_has),
            other => panic!("expected the missing blob, got {other:?}"),
        }
    }
}
