//! The files of a push validated while its pack still streams in.
//!
//! A client's `pack-objects` writes a commit, then each tree before the blobs it
//! names, and the pack takes a while to arrive; meanwhile the server has CPU to spare
//! (all of it when the client is another machine; on one machine of two cores, what
//! the client's `pack-objects` and the transport leave). [`start`] puts a [`Tap`] on
//! the pack's inspector and a thread behind it that resolves the entries into files
//! with their paths ([`crate::incoming::arriving`]) and checks each file under the
//! roots exactly as the checks would ([`super::files::check_bytes`]), with the rules
//! of the default branch's tip before the push. The results wait in a [`Memo`] by
//! (path, blob, executable).
//!
//! The checks take a file's result from the memo only when the rules they check
//! against have the same fingerprint (the same rules files: the same rules) and the
//! same size limit: the result is then exactly what reading the file again would
//! give. Anything the thread did not get to — a file whose blob came before its tree
//! past the budget, a delta on a base not at hand, the rules changed by the push — is
//! read from the quarantine as before.

use super::files::{Fingerprint, Kept, check_bytes, rules_of};
use crate::incoming::arriving::Resolver;
use crate::incoming::inspect::Tap;
use crate::skills::Problem;
use gix::ObjectId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes of entries copied and not yet dropped, at most: past it the rest of the pack
/// is read the usual way.
const BUDGET: usize = 32 * 1024 * 1024;
/// Largest entry copied: the largest skill file is 1 MiB; trees of a big collection
/// are larger.
const MAX_ENTRY: u64 = 4 * 1024 * 1024;
/// Bytes of files validated at most (a pack's trees may name one blob at many paths:
/// the checks' own per-push limit applies only once the pack is in).
const MAX_VALIDATED: usize = 64 * 1024 * 1024;

/// A file's problems, and the skill and digest when it is a valid skill file.
type Checked = (Vec<Problem>, Option<Kept>);
/// A skill file's full-text vector (made when it is a valid skill: `None` inside
/// when skillsd cannot compute it).
type Vector = Option<Option<crate::cache::vector::SearchVector>>;

/// The thread validating a push's files as they arrive.
pub struct Early {
    /// The thread (taken when it is joined).
    handle: Option<std::thread::JoinHandle<Option<Memo>>>,
    /// Asks it to stop where it is.
    stop: Arc<AtomicBool>,
}

/// What it validated, and under which rules.
pub struct Memo {
    fingerprint: Fingerprint,
    max_file_bytes: u64,
    results: HashMap<(String, ObjectId, bool), (Checked, Vector)>,
}

/// Starts the thread for a push to `repo` whose default branch is `branch`: the tap
/// to put on the pack's inspector, and the thread. `None` when the branch has no
/// tip yet (a first push: no rules to check against before the pack is in).
pub fn start(
    repo: &gix::Repository,
    branch: &str,
    max_file_bytes: u64,
    cancel: Arc<AtomicBool>,
) -> Option<(Tap, Early)> {
    let tip = repo
        .try_find_reference(format!("refs/heads/{branch}").as_str())
        .ok()??
        .peel_to_id()
        .ok()?
        .detach();
    let (tap, arrivals) = Tap::new(BUDGET, MAX_ENTRY);
    let repo = repo.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let handle = std::thread::Builder::new()
        .name("skillsd-early".into())
        .spawn(move || {
            // The client's pack-objects, the transport and the indexer come first (on
            // a machine of two cores they leave one partly idle): this thread takes
            // only what they leave, and stops where it is when the checks need its
            // results; they read what it did not get to.
            let idle = crate::parallel::only_when_idle();
            let started = std::time::Instant::now();
            let tree = repo.find_commit(tip).ok()?.tree().ok()?;
            let (rules, fingerprint) = rules_of(&tree).ok()?;
            let max_file_bytes = max_file_bytes.min(rules.max_file_bytes as u64);
            let mut resolver = Resolver::new(repo.clone());
            let mut results: HashMap<(String, ObjectId, bool), (Checked, Vector)> = HashMap::new();
            let mut validated = 0usize;
            let ready_ms = started.elapsed().as_millis() as u64;
            let mut busy = std::time::Duration::ZERO;
            for arrived in arrivals {
                let working = std::time::Instant::now();
                if cancel.load(Ordering::Relaxed) {
                    return None;
                }
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                resolver.arrive(arrived, &mut |file| {
                    if !file.mode.is_blob()
                        || stopping.load(Ordering::Relaxed)
                        || results.len() >= crate::cache::changes::Parsed::MAX
                        || validated + file.data.len() > MAX_VALIDATED
                        || !rules.governs(file.path)
                    {
                        return;
                    }
                    let executable = file.mode.is_executable();
                    let key = (file.path.to_string(), file.id, executable);
                    if let std::collections::hash_map::Entry::Vacant(slot) = results.entry(key) {
                        validated += file.data.len();
                        let skill = rules.is_skill(file.path);
                        let checked = check_bytes(
                            &rules,
                            file.path,
                            skill,
                            executable,
                            max_file_bytes,
                            true,
                            file.data,
                        );
                        // The cache's row will need its vector: made here too.
                        let vector = checked
                            .1
                            .as_ref()
                            .map(|(skill, _)| crate::cache::changes::vector_of(skill));
                        slot.insert((checked, vector));
                    }
                });
                busy += working.elapsed();
            }
            tracing::debug!(
                files = results.len(),
                idle,
                ready_ms,
                busy_ms = busy.as_millis() as u64,
                done_ms = started.elapsed().as_millis() as u64,
                "files checked as the pack streamed in"
            );
            Some(Memo {
                fingerprint,
                max_file_bytes,
                results,
            })
        })
        .ok()?;
    let handle = Some(handle);
    Some((tap, Early { handle, stop }))
}

impl Early {
    /// Stops the thread where it is (the pack is in) and takes what it validated.
    pub fn finish(mut self) -> Option<Memo> {
        let waiting = std::time::Instant::now();
        self.stop.store(true, Ordering::Relaxed);
        let memo = self.handle.take()?.join().ok().flatten();
        tracing::debug!(
            waited_ms = waiting.elapsed().as_millis() as u64,
            "the early checks joined"
        );
        memo
    }
}

/// Unused (the push was refused before its files were checked, or it had none): the
/// thread stops where it is and ends on its own.
impl Drop for Early {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Memo {
    /// The results, if they were checked against the rules `fingerprint` names and
    /// the same size limit.
    pub(super) fn under(
        &mut self,
        fingerprint: &Fingerprint,
        max_file_bytes: u64,
    ) -> Option<&mut Self> {
        (&self.fingerprint == fingerprint && self.max_file_bytes == max_file_bytes).then_some(self)
    }

    /// The result for a file, with its vector when it is a valid skill file, taken out
    /// (each is read once per push).
    pub(super) fn take(
        &mut self,
        path: &str,
        id: ObjectId,
        executable: bool,
    ) -> Option<(Checked, Vector)> {
        self.results.remove(&(path.to_string(), id, executable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_repo;

    impl Early {
        /// Waits for the thread to take every entry sent (the tap is gone).
        fn wait(mut self) -> Option<Memo> {
            self.handle.take()?.join().ok().flatten()
        }
    }

    /// `main` at `old`, `new` a commit on it with `files`; the memo the thread makes of
    /// the pack that brings `new`, and the rules' fingerprint at `new`.
    fn memo_of(files: &[(&str, Option<&str>)]) -> (Memo, Fingerprint, Vec<Checked>) {
        let (dir, repo) = test_repo::repository();
        let first = "---\ntitle: First\n---\nThe first skill.\n";
        let old = test_repo::commit(&repo, None, &[("skills/first.md", Some(first))]);
        let new = test_repo::commit(&repo, Some(old), files);
        repo.reference(
            "refs/heads/main",
            old,
            gix::refs::transaction::PreviousValue::Any,
            "back",
        )
        .unwrap();
        let (tap, early) = start(&repo, "main", 1 << 20, Arc::new(AtomicBool::new(false))).unwrap();
        let pack = crate::incoming::arriving::thin_pack(dir.path(), old, new);
        crate::incoming::arriving::stream_through(&pack, tap);
        let memo = early.wait().unwrap();
        let tree = repo.find_commit(new).unwrap().tree().unwrap();
        let (rules, fingerprint) = rules_of(&tree).unwrap();
        // What reading each pushed file from the repository gives.
        let read: Vec<Checked> = files
            .iter()
            .filter_map(|(path, text)| {
                let text = text.as_ref()?;
                rules.governs(path).then(|| {
                    check_bytes(
                        &rules,
                        path,
                        rules.is_skill(path),
                        false,
                        1 << 20,
                        true,
                        text.as_bytes(),
                    )
                })
            })
            .collect();
        (memo, fingerprint, read)
    }

    fn blob(text: &str) -> ObjectId {
        gix::objs::compute_hash(
            gix::hash::Kind::Sha1,
            gix::objs::Kind::Blob,
            text.as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_files_a_pack_brings_are_checked_as_reading_them_would() {
        let good = "---\ntitle: Good\ntags: [a, b]\n---\nA good skill.\n";
        let bad = "---\ntitle: [not, a, string]\n---\nbody\n";
        let (mut memo, fingerprint, read) = memo_of(&[
            ("skills/good.md", Some(good)),
            ("skills/bad.md", Some(bad)),
            ("elsewhere.txt", Some("not under the roots")),
        ]);
        let memo = memo.under(&fingerprint, 1 << 20).expect("the same rules");
        let (good_checked, vector) = memo.take("skills/good.md", blob(good), false).unwrap();
        let (bad_checked, none) = memo.take("skills/bad.md", blob(bad), false).unwrap();
        assert!(memo.results.is_empty(), "only files under the roots");
        assert_eq!(
            format!("{:?}", [good_checked.clone(), bad_checked.clone()]),
            format!("{read:?}")
        );
        assert!(good_checked.1.is_some() && bad_checked.1.is_none());
        let skill = &good_checked.1.unwrap().0;
        assert_eq!(vector, Some(crate::cache::changes::vector_of(skill)));
        assert_eq!(none, None);
    }

    #[test]
    fn results_under_other_rules_are_not_used() {
        let skill = "---\ntitle: Good\n---\nA good skill.\n";
        let (mut memo, fingerprint, _) = memo_of(&[
            ("skills/good.md", Some(skill)),
            (
                "skillsd.toml",
                Some("layout = \"flat\"\nroots = [\"skills\"]\n"),
            ),
        ]);
        assert_eq!(
            memo.results.len(),
            1,
            "checked under the rules before the push"
        );
        assert!(memo.under(&fingerprint, 1 << 20).is_none());
        let (mut memo, fingerprint, _) = memo_of(&[("skills/good.md", Some(skill))]);
        assert!(
            memo.under(&fingerprint, 1 << 19).is_none(),
            "another size limit"
        );
        assert!(memo.under(&fingerprint, 1 << 20).is_some());
    }
}
