//! A pack's files as it streams in: the entries an [`inspect::Tap`] copies, resolved
//! into objects (whole, or a delta applied to a base at hand: an earlier entry, or an
//! object the repository holds), the trees of the pack's commits walked from their
//! roots as they come — `pack-objects` writes a tree before the blobs it names — and
//! each blob handed on with every path those trees give it.
//!
//! Nothing here decides anything: an entry that cannot be resolved (its base gone or
//! unknown, a malformed tree, a blob no tree has named yet past the budget) is simply
//! not handed on, and whoever reads the files later reads them from the quarantine as
//! before. The pack's validity is the inspector's and the indexer's business; the
//! connectivity walk checks every tree after indexing.
//!
//! [`inspect::Tap`]: super::inspect::Tap

use super::inspect::{Arrived, Base, Held, varint};
use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::Kind;
use gix::objs::tree::EntryMode;
use std::collections::HashMap;

/// A blob of the pack, at one of the paths its commits' trees give it.
pub struct File<'a> {
    pub path: &'a str,
    pub mode: EntryMode,
    pub id: ObjectId,
    pub data: &'a [u8],
}

/// The resolver's state: the trees and commits seen (kept: deltas and later trees
/// build on them), where each tree and blob of the pack is.
pub struct Resolver {
    repo: gix::Repository,
    /// Trees and commits by their place in the pack (what offset deltas name), held
    /// against the tap's budget: (kind, data).
    kept: HashMap<usize, (Kind, Vec<u8>, Held)>,
    /// Their places by id (what deltas naming their base by id name).
    by_id: HashMap<ObjectId, usize>,
    /// Where each tree of the pack's commits is, once a parent named it.
    tree_paths: HashMap<ObjectId, String>,
    /// Trees no parent has named yet.
    pending_trees: HashMap<ObjectId, usize>,
    /// Each blob named so far: its paths and modes.
    blob_paths: HashMap<ObjectId, Vec<(String, EntryMode)>>,
    /// Blobs that came before any tree named them (still held against the budget).
    pending_blobs: HashMap<ObjectId, (Vec<u8>, Held)>,
    /// Bytes of the paths recorded: past [`MAX_PATHS_BYTES`] no more are.
    path_bytes: usize,
}

/// Most pending blobs kept (each is also within the tap's budget).
const MAX_PENDING_BLOBS: usize = 4096;
/// Paths longer than this are left to the usual reading (the checks refuse far
/// shorter ones).
const MAX_PATH_BYTES: usize = 4096;
/// Bytes of paths recorded at most (a pack's trees may name many long paths), each
/// counted with [`PATH_OVERHEAD`] for its place in the maps.
const MAX_PATHS_BYTES: usize = 16 * 1024 * 1024;
const PATH_OVERHEAD: usize = 96;

impl Resolver {
    /// `repo` holds the objects a thin pack's deltas may build on.
    pub fn new(repo: gix::Repository) -> Resolver {
        Resolver {
            repo,
            kept: HashMap::new(),
            by_id: HashMap::new(),
            tree_paths: HashMap::new(),
            pending_trees: HashMap::new(),
            blob_paths: HashMap::new(),
            pending_blobs: HashMap::new(),
            path_bytes: 0,
        }
    }

    /// Takes one entry; `file` gets each blob it makes known at each of its paths
    /// (this entry's, or pending blobs a tree names).
    pub fn arrive(&mut self, arrived: Arrived, file: &mut dyn FnMut(File<'_>)) {
        let Arrived {
            index,
            kind,
            base,
            data,
            held,
        } = arrived;
        let index = index as usize;
        let Some((kind, data)) = self.resolve(kind, base, data) else {
            return;
        };
        let Ok(id) = gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, &data) else {
            return;
        };
        match kind {
            Kind::Commit => {
                let root = gix::objs::CommitRefIter::from_bytes(&data, gix::hash::Kind::Sha1)
                    .tree_id()
                    .ok();
                self.keep(index, kind, id, data, held);
                if let Some(root) = root {
                    self.name_tree(root, String::new(), file);
                }
            }
            Kind::Tree => {
                self.keep(index, kind, id, data, held);
                match self.tree_paths.get(&id).cloned() {
                    Some(path) => {
                        let subtrees = self.walk_tree(index, &path, file);
                        for (id, child) in subtrees {
                            self.name_tree(id, child, file);
                        }
                    }
                    None => {
                        self.pending_trees.insert(id, index);
                    }
                }
            }
            Kind::Blob => match self.blob_paths.get(&id) {
                Some(paths) => {
                    for (path, mode) in paths {
                        file(File {
                            path,
                            mode: *mode,
                            id,
                            data: &data,
                        });
                    }
                }
                None if self.pending_blobs.len() < MAX_PENDING_BLOBS => {
                    self.pending_blobs.insert(id, (data, held));
                }
                None => {}
            },
            Kind::Tag => {}
        }
    }

    /// The object an entry makes: itself, or its delta applied to its base.
    fn resolve(&self, kind: u8, base: Option<Base>, data: Vec<u8>) -> Option<(Kind, Vec<u8>)> {
        let Some(base) = base else {
            let kind = match kind {
                1 => Kind::Commit,
                2 => Kind::Tree,
                3 => Kind::Blob,
                4 => Kind::Tag,
                _ => return None,
            };
            return Some((kind, data));
        };
        let at = match base {
            Base::Entry(at) => at,
            Base::Id(id) => {
                let id = ObjectId::from_bytes_or_panic(&id);
                match self.by_id.get(&id) {
                    Some(&at) => at,
                    // A thin pack's base: an object the repository holds (an older
                    // version of a tree, or of a file the push changes).
                    None => {
                        let object = self.repo.try_find_object(id).ok()??;
                        return Some((object.kind, apply_delta(&object.data, &data)?));
                    }
                }
            }
        };
        let (kind, base, _) = self.kept.get(&at)?;
        Some((*kind, apply_delta(base, &data)?))
    }

    fn keep(&mut self, index: usize, kind: Kind, id: ObjectId, data: Vec<u8>, held: Held) {
        self.by_id.insert(id, index);
        self.kept.insert(index, (kind, data, held));
    }

    /// A tree's place is known: it, and the trees below it that came already, are
    /// walked (with a stack of their own: a pack's trees may nest deep).
    fn name_tree(&mut self, id: ObjectId, path: String, file: &mut dyn FnMut(File<'_>)) {
        let mut stack = vec![(id, path)];
        while let Some((id, path)) = stack.pop() {
            if self.tree_paths.contains_key(&id) || !self.room_for(&path) {
                continue; // the same tree at two places: the first one is enough
            }
            self.tree_paths.insert(id, path.clone());
            if let Some(index) = self.pending_trees.remove(&id) {
                stack.extend(self.walk_tree(index, &path, file));
            }
        }
    }

    /// Each entry of the tree kept at `index`, which is at `path`: its blobs named
    /// (those that came already handed on); returns its subtrees with their paths.
    fn walk_tree(
        &mut self,
        index: usize,
        path: &str,
        file: &mut dyn FnMut(File<'_>),
    ) -> Vec<(ObjectId, String)> {
        let Some((_, data, _)) = self.kept.get(&index) else {
            return Vec::new();
        };
        let mut subtrees = Vec::new();
        let mut blobs = Vec::new();
        for entry in gix::objs::TreeRefIter::from_bytes(data, gix::hash::Kind::Sha1) {
            let Ok(entry) = entry else {
                return Vec::new(); // malformed: the connectivity walk says so later
            };
            let Ok(name) = entry.filename.to_str() else {
                continue; // not UTF-8: read the usual way
            };
            let child = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}/{name}")
            };
            if entry.mode.is_tree() {
                subtrees.push((entry.oid.to_owned(), child));
            } else if entry.mode.is_blob() {
                blobs.push((entry.oid.to_owned(), child, entry.mode));
            }
        }
        for (id, child, mode) in blobs {
            if !self.room_for(&child) {
                break;
            }
            if let Some((data, _held)) = self.pending_blobs.remove(&id) {
                file(File {
                    path: &child,
                    mode,
                    id,
                    data: &data,
                });
                // Another tree may name it too: keep it named.
            }
            self.blob_paths.entry(id).or_default().push((child, mode));
        }
        subtrees
    }

    /// Whether `path` may be recorded (counted if so).
    fn room_for(&mut self, path: &str) -> bool {
        let bytes = path.len() + PATH_OVERHEAD;
        if path.len() > MAX_PATH_BYTES || self.path_bytes + bytes > MAX_PATHS_BYTES {
            return false;
        }
        self.path_bytes += bytes;
        true
    }
}

/// Applies git's delta `delta` to `base` (the format `pack-format.txt` describes: the
/// base's and the result's sizes, then copy and insert instructions). `None` when the
/// delta does not fit the base or is malformed.
pub fn apply_delta(base: &[u8], delta: &[u8]) -> Option<Vec<u8>> {
    let (base_size, used) = varint(delta)?;
    let (result_size, more) = varint(&delta[used..])?;
    let mut rest = &delta[used + more..];
    if base_size != base.len() as u64 || result_size > (1 << 32) {
        return None;
    }
    let mut out = Vec::with_capacity(result_size as usize);
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        if op & 0x80 != 0 {
            let mut offset = 0usize;
            let mut size = 0usize;
            for bit in 0..4 {
                if op & (1 << bit) != 0 {
                    let (&b, tail) = rest.split_first()?;
                    rest = tail;
                    offset |= usize::from(b) << (8 * bit);
                }
            }
            for bit in 0..3 {
                if op & (0x10 << bit) != 0 {
                    let (&b, tail) = rest.split_first()?;
                    rest = tail;
                    size |= usize::from(b) << (8 * bit);
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            out.extend_from_slice(base.get(offset..offset.checked_add(size)?)?);
        } else if op != 0 {
            let n = usize::from(op);
            out.extend_from_slice(rest.get(..n)?);
            rest = &rest[n..];
        } else {
            return None; // reserved
        }
        if out.len() as u64 > result_size {
            return None;
        }
    }
    (out.len() as u64 == result_size).then_some(out)
}

/// The pack `git pack-objects --thin` sends for `new` to a repository that has `old`
/// (the repository at `git_dir` holds both).
#[cfg(test)]
pub(crate) fn thin_pack(git_dir: &std::path::Path, old: ObjectId, new: ObjectId) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args([
            "pack-objects",
            "--revs",
            "--thin",
            "--stdout",
            "--delta-base-offset",
            "-q",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    write!(child.stdin.take().unwrap(), "{new}\n^{old}\n").unwrap();
    child.wait_with_output().unwrap().stdout
}

/// `pack` read through an inspector with `tap` on it, to its end.
#[cfg(test)]
pub(crate) fn stream_through(pack: &[u8], tap: super::inspect::Tap) {
    let limits = super::inspect::PackLimits::default();
    let mut inspector = super::inspect::Inspector::new(pack, limits).tapped(tap);
    std::io::copy(&mut inspector, &mut std::io::sink()).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::inspect::Tap;

    /// A text of `n` lines, unlike another seed's.
    fn text(seed: usize, n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "line {i} of file {seed}: {}\n",
                    (seed * 7919 + i * 104_729) % 1_000_003
                )
            })
            .collect()
    }

    /// The pack `git pack-objects --thin` sends for `new` to a repository that has
    /// `old`, streamed through a tapped inspector; what the resolver hands on.
    fn files_of_pack(
        dir: &std::path::Path,
        repo: &gix::Repository,
        old: ObjectId,
        new: ObjectId,
    ) -> (Vec<(String, ObjectId, Vec<u8>)>, usize) {
        let (tap, arrivals) = Tap::new(1 << 30, 1 << 20);
        stream_through(&thin_pack(dir, old, new), tap);
        let mut resolver = Resolver::new(repo.clone());
        let mut files = Vec::new();
        let mut deltas = 0;
        for arrived in arrivals {
            deltas += usize::from(arrived.base.is_some());
            resolver.arrive(arrived, &mut |f| {
                files.push((f.path.to_string(), f.id, f.data.to_vec()))
            });
        }
        files.sort();
        (files, deltas)
    }

    #[test]
    fn a_thin_pack_s_files_come_out_with_their_paths_as_they_arrive() {
        let (dir, repo) = crate::cache::test_repo::repository();
        let texts: Vec<(String, String)> = (0..60)
            .map(|i| (format!("skills/c{}/s-{i}.md", i % 3), text(i, 40)))
            .collect();
        let files: Vec<(&str, Option<&str>)> = texts
            .iter()
            .map(|(p, t)| (p.as_str(), Some(t.as_str())))
            .collect();
        let old = crate::cache::test_repo::commit(&repo, None, &files);
        // Ten files changed by a line (git sends each as a delta on the old version,
        // which the repository holds), five new ones, one removed.
        let changed: Vec<(String, String)> = (0..10)
            .map(|i| {
                let (path, t) = &texts[i * 5];
                (path.clone(), t.replacen("line 20 ", "line twenty ", 1))
            })
            .chain((60..65).map(|i| (format!("skills/c{}/new-{i}.md", i % 3), text(i, 40))))
            .collect();
        let mut edits: Vec<(&str, Option<&str>)> = changed
            .iter()
            .map(|(p, t)| (p.as_str(), Some(t.as_str())))
            .collect();
        edits.push(("skills/c1/s-1.md", None));
        let new = crate::cache::test_repo::commit(&repo, Some(old), &edits);

        let (got, deltas) = files_of_pack(dir.path(), &repo, old, new);
        assert!(
            deltas >= 10,
            "git sent {deltas} deltas: the test needs some"
        );
        let mut expected: Vec<(String, ObjectId, Vec<u8>)> = changed
            .iter()
            .map(|(p, t)| {
                let id = gix::objs::compute_hash(gix::hash::Kind::Sha1, Kind::Blob, t.as_bytes())
                    .unwrap();
                (p.clone(), id, t.as_bytes().to_vec())
            })
            .collect();
        expected.sort();
        assert_eq!(got, expected);
    }

    fn header(base: usize, result: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for mut n in [base, result] {
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
        }
        out
    }

    #[test]
    fn a_delta_copies_and_inserts() {
        let base = b"hello, wide world".to_vec();
        let mut delta = header(base.len(), 12);
        delta.extend([0x80 | 0x01 | 0x10, 7, 4]); // copy 4 bytes from offset 7: "wide"
        delta.extend([1, b' ']);
        delta.extend([0x80 | 0x10, 5]); // copy 5 from offset 0: "hello"
        delta.extend([2, b'!', b'!']);
        assert_eq!(
            apply_delta(&base, &delta).as_deref(),
            Some(&b"wide hello!!"[..])
        );
    }

    #[test]
    fn a_delta_that_does_not_fit_its_base_is_none() {
        let base = b"short".to_vec();
        // The base's size is wrong.
        let mut wrong = header(9, 5);
        wrong.extend([0x80 | 0x10, 5]);
        assert_eq!(apply_delta(&base, &wrong), None);
        // A copy past the base's end.
        let mut past = header(5, 5);
        past.extend([0x80 | 0x01 | 0x10, 3, 5]);
        assert_eq!(apply_delta(&base, &past), None);
        // More than the result's declared size, and less.
        let mut more = header(5, 2);
        more.extend([0x80 | 0x10, 5]);
        assert_eq!(apply_delta(&base, &more), None);
        let mut less = header(5, 9);
        less.extend([0x80 | 0x10, 5]);
        assert_eq!(apply_delta(&base, &less), None);
        // An insert cut short, the reserved instruction, a header cut short.
        let mut cut = header(5, 3);
        cut.extend([3, b'a']);
        assert_eq!(apply_delta(&base, &cut), None);
        let mut reserved = header(5, 0);
        reserved.push(0);
        assert_eq!(apply_delta(&base, &reserved), None);
        assert_eq!(apply_delta(&base, &[0x85]), None);
    }
}
