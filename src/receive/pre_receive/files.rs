//! The files of an update: the trees' rules, the diff walked (with the per-push
//! limit), each changed file read and validated on every core, the progress meter,
//! and the secrets in the history a push brings.

use super::ReadError;
use super::*;

/// The trees of an update and the rules of its new tip.
pub(super) struct Trees<'r> {
    pub(super) old: gix::Tree<'r>,
    pub(super) new: gix::Tree<'r>,
    pub(super) rules: std::sync::Arc<Rules>,
    /// The new tip's rules files ([`commit_tree::fingerprint`]): what names the rules.
    pub(super) fingerprint: Fingerprint,
    /// `base`'s rules files differ from the new tip's: every skill is checked again.
    pub(super) rules_changed: bool,
}

/// The ids of a tree's rules files ([`commit_tree::fingerprint`]).
pub(super) type Fingerprint = Vec<Option<ObjectId>>;

/// The rules `tree` makes, and their fingerprint; the problems when they do not load.
pub(super) fn rules_of(
    tree: &gix::Tree<'_>,
) -> Result<(std::sync::Arc<Rules>, Fingerprint), Vec<Problem>> {
    let rules = Rules::load(&TreeSource { tree: tree.clone() })?;
    let fingerprint = commit_tree::fingerprint(tree, &rules);
    Ok((rules, fingerprint))
}

impl<'r> Trees<'r> {
    /// The trees and the rules; `Ok(Err(problems))` when the new tip's rules do not load.
    pub(super) fn read(
        view: &'r gix::Repository,
        base: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<Result<Self, Vec<Problem>>, ReadError> {
        let tree_of = |commit: ObjectId| view.find_commit(commit)?.tree().map_err(ReadError::from);
        let new_tree = tree_of(new)?;
        let old_tree = match base {
            Some(b) => tree_of(b)?,
            None => view.empty_tree(),
        };
        let (rules, fingerprint) = match rules_of(&new_tree) {
            Ok(loaded) => loaded,
            Err(problems) => return Ok(Err(problems)),
        };
        let rules_changed =
            base.is_some() && rules_of(&old_tree).map_or(true, |(_, old)| old != fingerprint);
        Ok(Ok(Trees {
            old: old_tree,
            new: new_tree,
            rules,
            fingerprint,
            rules_changed,
        }))
    }
}

/// A file to check.
pub(super) struct Candidate {
    pub(super) path: String,
    pub(super) mode: gix::object::tree::EntryMode,
    pub(super) id: ObjectId,
    /// Added or changed by the push (counts toward the per-push limit), not only
    /// checked again.
    pub(super) counts: bool,
}

/// What an update changes under the roots.
#[derive(Default)]
pub(super) struct Diff {
    pub(super) candidates: Vec<Candidate>,
    pub(super) deleted: Vec<String>,
    pub(super) changed: HashSet<String>,
    /// Changed files named SKILL.md outside every root: named in a problem, never
    /// silently left out.
    pub(super) strays: Vec<String>,
}

impl Diff {
    /// The diff of the trees, with the per-push file limit enforced as it is walked: a
    /// push of a million files stops here, after `limit` of them, not after validating
    /// them all. `Ok(Err(problem))`: over the limit.
    pub(super) fn walk(
        trees: &Trees<'_>,
        limit: usize,
    ) -> Result<Result<Diff, Problem>, ReadError> {
        let rules = &trees.rules;
        let mut diff = Diff::default();
        let mut over_limit = false;
        let mut skill_files = 0usize;
        let mut options = gix::diff::Options::default().with_rewrites(None);
        options.track_path();
        let walked =
            commit_tree::each_change(trees.old.repo, &trees.old, &trees.new, options, |change| {
                use gix::object::tree::diff::ChangeDetached as C;
                match change {
                    C::Addition {
                        entry_mode,
                        id,
                        location,
                        ..
                    }
                    | C::Modification {
                        entry_mode,
                        id,
                        location,
                        ..
                    } if !entry_mode.is_tree() => {
                        let path = location.to_string();
                        if over_limit {
                            // Past the limit nothing is kept: skill files are only counted,
                            // for the message, up to ten times the limit.
                            skill_files += usize::from(rules.is_skill(&path));
                        } else if rules.governs(&path) && diff.changed.insert(path.clone()) {
                            skill_files += usize::from(rules.is_skill(&path));
                            diff.candidates.push(Candidate {
                                path,
                                mode: entry_mode,
                                id,
                                counts: true,
                            });
                        } else if tree::is_skill_file_name(&path) && !rules.governs(&path) {
                            diff.strays.push(path);
                        }
                    }
                    C::Deletion {
                        entry_mode,
                        location,
                        ..
                    } if !entry_mode.is_tree() => {
                        let path = location.to_string();
                        if rules.governs(&path) {
                            diff.deleted.push(path);
                        }
                    }
                    _ => {}
                }
                // Other files under the skill folders (assets) are checked too, more
                // cheaply: they may be several per skill, not without bound.
                let others = diff.candidates.len() > limit.saturating_mul(OTHER_FILES_PER_SKILL);
                if skill_files > limit || others {
                    over_limit = true;
                    diff.candidates.clear();
                    if others || skill_files > limit.saturating_mul(10) {
                        return std::ops::ControlFlow::Break(());
                    }
                }
                std::ops::ControlFlow::Continue(())
            });
        // Breaking off the walk surfaces as an error ("cancelled"): not one when the
        // limit is why.
        if over_limit {
            let count = (skill_files > limit && skill_files <= limit.saturating_mul(10))
                .then_some(skill_files);
            return Ok(Err(too_many_files(count, limit)));
        }
        walked?;
        Ok(Ok(diff))
    }

    /// The files checked again though the push did not change them: every file under
    /// the roots when the rules changed (the layout or the roots may differ); in the
    /// agent-skills layout, the skill of any file of its folder that changed.
    pub(super) fn widen(
        &mut self,
        rules: &Rules,
        rules_changed: bool,
        entries: &[commit_tree::TreeFile],
    ) {
        let again = |f: &commit_tree::TreeFile| Candidate {
            path: f.path.clone(),
            mode: f.mode,
            id: f.id,
            counts: false,
        };
        if rules_changed {
            for f in entries {
                if !self.changed.contains(&f.path) {
                    self.candidates.push(again(f));
                }
            }
        }
        if rules.layout == Layout::AgentSkills {
            let listed: HashSet<&str> = self.candidates.iter().map(|c| c.path.as_str()).collect();
            let skill_paths: HashSet<&str> = entries
                .iter()
                .filter(|f| rules.is_skill(&f.path))
                .map(|f| f.path.as_str())
                .collect();
            let exists = |p: &str| skill_paths.contains(p);
            let owners: HashSet<String> = self
                .candidates
                .iter()
                .map(|c| &c.path)
                .chain(self.deleted.iter())
                .filter_map(|p| rules.skill_of(p, &exists))
                .filter(|s| !listed.contains(s.as_str()))
                .collect();
            for f in entries {
                if owners.contains(&f.path) {
                    self.candidates.push(again(f));
                }
            }
        }
    }
}

/// Checks each candidate (its path, its mode, its text), adding to `problems` in the
/// candidates' order; returns the paths checked. The paths and modes first, then the
/// contents of the files not read yet by this push, on every core when there are
/// many. Like git's own "Resolving deltas: 45% (…)", a meter for pushes big enough to
/// wait on.
pub(super) fn check_files(
    view: &gix::Repository,
    trees: &Trees<'_>,
    candidates: Vec<Candidate>,
    tally: &mut Tally<'_>,
    max_file_bytes: u64,
    progress: &mut dyn FnMut(&str),
    problems: &mut Vec<Problem>,
) -> Result<Vec<String>, ReadError> {
    let rules = &trees.rules;
    let max_file_bytes = max_file_bytes.min(rules.max_file_bytes as u64);
    let mut meter = Meter::new("Checking skills", candidates.len(), progress);
    let Sorted {
        checked,
        mut executables,
        mut found,
        reads,
    } = sort_candidates(rules, candidates, tally);
    for _ in reads.len()..found.len() {
        meter.tick();
    }
    let reads = take_early(
        reads,
        &trees.fingerprint,
        max_file_bytes,
        tally,
        &mut meter,
        &mut found,
    );
    read_in_parallel(
        view,
        rules,
        &reads,
        max_file_bytes,
        tally,
        &mut meter,
        &mut found,
    )?;
    meter.done();
    problems.extend(found.into_iter().flatten());
    if !executables.is_empty() {
        executables.sort();
        let shown: Vec<&str> = executables.iter().take(20).map(String::as_str).collect();
        tally.notes.push(format!(
            "Executable files in this push ({}): {}{}",
            executables.len(),
            shown.join(", "),
            if executables.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        ));
    }
    Ok(checked)
}

/// The candidates sorted out: what the path alone tells, and which contents are left
/// to read.
pub(super) struct Sorted {
    /// Every candidate's path, in order.
    pub(super) checked: Vec<String>,
    /// Executable files this push brings.
    pub(super) executables: Vec<String>,
    /// Each candidate's problems so far, in order.
    pub(super) found: Vec<Vec<Problem>>,
    /// The contents to read, each with its slot in `found`.
    pub(super) reads: Vec<Read>,
}

/// Each candidate's path checked (names, links, submodules, executable skills), the
/// changed skills counted, and the contents not validated yet in this push listed.
fn sort_candidates(rules: &Rules, candidates: Vec<Candidate>, tally: &mut Tally<'_>) -> Sorted {
    let mut sorted = Sorted {
        checked: Vec::new(),
        executables: Vec::new(),
        found: Vec::with_capacity(candidates.len()),
        reads: Vec::new(),
    };
    for Candidate {
        path,
        mode,
        id,
        counts,
    } in candidates
    {
        let mut here = crate::skills::validate::path_problems(
            rules.root_of(&path).unwrap_or_default(),
            &path,
            mode.is_link(),
            mode.is_commit(),
        );
        sorted.checked.push(path.clone());
        let regular = !(mode.is_link() || mode.is_commit() || !mode.is_blob());
        if regular && mode.is_executable() && counts {
            sorted.executables.push(path.clone());
        }
        let skill = rules.is_skill(&path);
        if regular && skill && mode.is_executable() {
            here.extend(crate::skills::policy::file_problems(
                &rules.policy,
                &path,
                crate::skills::policy::skill_folder(rules, &path).as_deref(),
                true,
                b"",
            ));
        }
        if regular && skill && counts {
            tally.changed.insert((path.clone(), id));
        }
        if regular && tally.validated.insert((path.clone(), id)) {
            sorted.reads.push(Read {
                slot: sorted.found.len(),
                path,
                id,
                skill,
                executable: mode.is_executable(),
            });
        }
        sorted.found.push(here);
    }
    sorted
}

/// The reads whose results [`super::early`] has, under the rules being checked
/// against (their fingerprint) and the size limit, taken from it; returns the others.
fn take_early(
    reads: Vec<Read>,
    fingerprint: &Fingerprint,
    max_file_bytes: u64,
    tally: &mut Tally<'_>,
    meter: &mut Meter<'_>,
    found: &mut [Vec<Problem>],
) -> Vec<Read> {
    let Some(mut memo) = tally.early_memo() else {
        return reads;
    };
    let mut left = Vec::new();
    match memo.under(fingerprint, max_file_bytes) {
        Some(usable) => {
            for read in reads {
                match usable.take(&read.path, read.id, read.executable) {
                    Some(((mut more, kept), vector)) => {
                        meter.tick();
                        tally.early_used += 1;
                        found[read.slot].append(&mut more);
                        if let Some((skill, digest)) = kept.filter(|_| tally.keeping) {
                            tally.parsed.keep(&read.path, read.id, skill, digest);
                            if let Some(search) = vector {
                                tally.parsed.keep_vector(&read.path, read.id, search);
                            }
                        }
                    }
                    None => left.push(read),
                }
            }
        }
        None => left = reads,
    }
    tally.memo = Some(memo);
    left
}

/// Reads and validates `reads` on every core (from [`PARALLEL_FROM`] files), each
/// file's problems into its slot of `found`, the parsed skills kept for the cache.
fn read_in_parallel(
    view: &gix::Repository,
    rules: &Rules,
    reads: &[Read],
    max_file_bytes: u64,
    tally: &mut Tally<'_>,
    meter: &mut Meter<'_>,
    found: &mut [Vec<Problem>],
) -> Result<(), ReadError> {
    let batch = reads
        .len()
        .div_ceil(crate::parallel::threads() * 8)
        .clamp(1, 256);
    let keeping = tally.keeping;
    tally.read_after += reads.len();
    crate::parallel::chunks(
        reads,
        batch,
        PARALLEL_FROM,
        || view.clone(),
        |view, part| {
            part.iter()
                .map(|read| read.check(view, rules, max_file_bytes, keeping))
                .collect::<Vec<_>>()
        },
        &mut |i, results| {
            for (read, result) in reads[i * batch..].iter().zip(results) {
                meter.tick();
                let (mut more, kept) = result?;
                found[read.slot].append(&mut more);
                if let Some((skill, digest)) = kept {
                    tally.parsed.keep(&read.path, read.id, skill, digest);
                }
            }
            if tally.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(CANCELLED.into());
            }
            Ok(())
        },
    )
}

/// From how many files to read the checks spread over every core.
const PARALLEL_FROM: usize = 64;

/// A file under the roots whose contents this push has not read yet.
pub(super) struct Read {
    /// Its candidate's place.
    pub(super) slot: usize,
    pub(super) path: String,
    pub(super) id: ObjectId,
    /// A skill file (else a skill's script, reference or asset).
    pub(super) skill: bool,
    pub(super) executable: bool,
}

/// A skill file that validated: the skill, and the digest of its bytes (its version's,
/// when it is a lone file), kept for the cache.
pub(super) type Kept = (crate::skills::Skill, String);

impl Read {
    /// Its problems, and (when `keep`: the update the cache reads) the skill and its
    /// bytes' digest when it is a valid skill file ([`check_bytes`]). A skill file's
    /// size comes from the object header before it is read.
    pub(super) fn check(
        &self,
        view: &gix::Repository,
        rules: &Rules,
        max_file_bytes: u64,
        keep: bool,
    ) -> Result<(Vec<Problem>, Option<Kept>), ReadError> {
        if self.skill {
            let header = view.find_header(self.id)?;
            if header.size() > max_file_bytes {
                return Ok((
                    vec![too_large(&self.path, header.size(), max_file_bytes)],
                    None,
                ));
            }
        }
        let blob = view.find_blob(self.id)?;
        Ok(check_bytes(
            rules,
            &self.path,
            self.skill,
            self.executable,
            max_file_bytes,
            keep,
            &blob.data,
        ))
    }
}

/// One file's checks, on its bytes: a skill file's frontmatter, fields and text; any
/// other file's text, the whole of it, for hidden text and credentials (only files
/// added or changed, all of them when the rules changed). The problems, and (when
/// `keep`) the skill and its bytes' digest when it is a valid skill file. What the
/// checks read from the quarantine and what [`super::early`] validates as the pack
/// arrives both come through here.
pub(super) fn check_bytes(
    rules: &Rules,
    path: &str,
    skill: bool,
    executable: bool,
    max_file_bytes: u64,
    keep: bool,
    data: &[u8],
) -> (Vec<Problem>, Option<Kept>) {
    if !skill {
        let mut problems = rules.validate_other(path, data);
        problems.extend(crate::skills::policy::file_problems(
            &rules.policy,
            path,
            crate::skills::policy::skill_folder(rules, path).as_deref(),
            executable,
            data,
        ));
        return (problems, None);
    }
    if data.len() as u64 > max_file_bytes {
        return (
            vec![too_large(path, data.len() as u64, max_file_bytes)],
            None,
        );
    }
    match rules.validate(path, data) {
        Ok(skill) => {
            let mut problems = skill.warnings.clone();
            problems.extend(crate::skills::policy::tool_problems(
                &rules.policy,
                path,
                &skill.frontmatter,
                &String::from_utf8_lossy(data),
            ));
            // Its version's digest, when it is a lone file: the cache then need
            // not read it again.
            let kept = keep.then(|| (skill, crate::artifact::digest(data)));
            (problems, kept)
        }
        Err(problems) => (problems, None),
    }
}

/// A skill file over the size limit.
fn too_large(path: &str, size: u64, max_file_bytes: u64) -> Problem {
    Problem::new(
        crate::skills::Check::FileTooLarge,
        path,
        format!("file is {size} bytes, more than the limit of {max_file_bytes}"),
    )
    .hint("split the skill into smaller ones, or move large content out of the repository")
}

/// Progress lines for long checks: `Checking skills:  45% (4500/10000)` with a carriage
/// return, every percent, then `…, done.` — only when there are at least 1,000 items.
pub(super) struct Meter<'a> {
    pub(super) what: &'static str,
    pub(super) total: usize,
    pub(super) done: usize,
    pub(super) last_percent: usize,
    pub(super) out: &'a mut dyn FnMut(&str),
}

impl<'a> Meter<'a> {
    const MIN_ITEMS: usize = 1000;

    pub(super) fn new(what: &'static str, total: usize, out: &'a mut dyn FnMut(&str)) -> Self {
        Meter {
            what,
            total,
            done: 0,
            last_percent: usize::MAX,
            out,
        }
    }

    pub(super) fn tick(&mut self) {
        self.done += 1;
        if self.total < Self::MIN_ITEMS {
            return;
        }
        let percent = self.done * 100 / self.total;
        if percent != self.last_percent {
            self.last_percent = percent;
            (self.out)(&format!(
                "{}: {percent:3}% ({}/{})\r",
                self.what, self.done, self.total
            ));
        }
    }

    pub(super) fn done(&mut self) {
        if self.total >= Self::MIN_ITEMS {
            (self.out)(&format!(
                "{}: 100% ({}/{}), done.\n",
                self.what, self.total, self.total
            ));
        }
    }
}

/// The `secret` check over every file under the roots that a new commit of the push
/// adds or changes (the tip's files are checked with the tip), under the rules of
/// `new`; each finding names the commit. Commits that existing refs already reach are
/// not read again.
pub(super) fn secrets_in_history(
    view: &gix::Repository,
    new: ObjectId,
    hidden: &[ObjectId],
    tally: &mut Tally<'_>,
) -> Result<Vec<Problem>, ReadError> {
    let tree = view.find_commit(new)?.tree()?;
    // Rules that do not load are reported by the validation of the tip.
    let Ok(rules) = Rules::load(&TreeSource { tree }) else {
        return Ok(Vec::new());
    };
    let mut problems = Vec::new();
    // The walk stops at commits: refs to tags are peeled, refs to anything else left out.
    let hidden: Vec<ObjectId> = hidden
        .iter()
        .filter_map(|id| {
            view.find_object(*id)
                .ok()?
                .peel_to_kind(gix::object::Kind::Commit)
                .ok()
                .map(|c| c.id)
        })
        .collect();
    let walk = view.rev_walk([new]).with_hidden(hidden).all()?;
    for info in walk {
        if tally.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(CANCELLED.into());
        }
        let info = info?;
        let commit = view.find_commit(info.id)?;
        let tree = commit.tree()?;
        let parent_tree = match commit.parent_ids().next() {
            Some(p) => view.find_commit(p)?.tree()?,
            None => view.empty_tree(),
        };
        let mut opts = gix::diff::Options::default();
        opts.track_path();
        let changes = commit_tree::diff(view, &parent_tree, &tree, opts)?;
        let short = info.id.to_string()[..7].to_string();
        for change in changes {
            use gix::object::tree::diff::ChangeDetached as C;
            let (path, id) = match change {
                C::Addition {
                    entry_mode,
                    id,
                    location,
                    ..
                }
                | C::Modification {
                    entry_mode,
                    id,
                    location,
                    ..
                }
                | C::Rewrite {
                    entry_mode,
                    id,
                    location,
                    ..
                } if entry_mode.is_blob() => (location.to_string(), id),
                _ => continue,
            };
            if !rules.governs(&path) || !tally.validated.insert((path.clone(), id)) {
                continue;
            }
            let blob = view.find_blob(id)?;
            let Ok(text) = std::str::from_utf8(&blob.data) else {
                continue;
            };
            for mut p in crate::skills::secrets::scan(&path, text, &rules.secrets) {
                p.path = format!("{path} (in commit {short})");
                problems.push(p);
            }
        }
    }
    Ok(problems)
}
