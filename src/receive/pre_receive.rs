//! The pre-receive stage: everything is checked before anything is written.
//!
//! * policy: ref names, branches and tags only, the default branch is neither deleted
//!   nor rewritten, branch tips are commits;
//! * connectivity: every object the new tips need is in the quarantine or the repository;
//! * validation: every added, modified or renamed skill in each updated branch's new
//!   tip, and slug uniqueness across that tip.

use super::commands::Command;
use crate::skills::rules::{self, Layout, Rules, TreeSource};
use crate::skills::validate::MAX_FILE_BYTES;
use crate::skills::{tree, Problem};
use gix::ObjectId;
use std::collections::{HashMap, HashSet};

/// The outcome for each command (same order): `None` = may proceed, `Some(reason)`.
#[derive(Debug, Default)]
pub struct Verdict {
    pub rejections: Vec<Option<String>>,
    pub problems: Vec<Problem>,
    /// What the pusher should know even when nothing is wrong (shown whatever the
    /// client's `quiet` setting): e.g. that the rules changed and everything was checked.
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn all_rejected(&self) -> bool {
        self.rejections.iter().all(Option::is_some)
    }
}

/// What a push may do, beyond the rules of skill files.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The protected branch whose skills the cache holds.
    pub default_branch: String,
    /// May a pushed tag be moved or deleted? (`SKILLSD_MUTABLE_TAGS=1`; default no)
    pub mutable_tags: bool,
    /// Most skill files one push may add or change (`SKILLSD_MAX_FILES_PER_PUSH`).
    pub max_files_per_push: usize,
    /// Largest pack one push may send, enforced while it streams (`SKILLSD_MAX_PACK_BYTES`).
    pub max_pack_bytes: u64,
    /// Largest skill file (`SKILLSD_MAX_FILE_BYTES`; at most the built-in 1 MiB).
    pub max_file_bytes: u64,
    /// May admins force-push or delete the default branch?
    /// (`SKILLSD_ADMINS_MAY_REWRITE_MAIN=1`; default no: nobody may)
    pub admins_may_rewrite_default: bool,
    /// Is the pusher an admin (on this repository)? Set per push.
    pub pusher_is_admin: bool,
}

impl Policy {
    /// The defaults (20,000 files, 512 MiB, immutable tags), overridden by the
    /// environment.
    pub fn from_env(default_branch: &str) -> Policy {
        fn num<T: std::str::FromStr>(name: &str) -> Option<T> {
            std::env::var(name).ok().and_then(|v| v.parse().ok())
        }
        Policy {
            default_branch: default_branch.to_string(),
            mutable_tags: std::env::var("SKILLSD_MUTABLE_TAGS")
                .is_ok_and(|v| v == "1" || v == "true"),
            max_files_per_push: num("SKILLSD_MAX_FILES_PER_PUSH").unwrap_or(20_000),
            max_pack_bytes: num("SKILLSD_MAX_PACK_BYTES").unwrap_or(512 * 1024 * 1024),
            max_file_bytes: num::<u64>("SKILLSD_MAX_FILE_BYTES")
                .unwrap_or(MAX_FILE_BYTES as u64)
                .min(MAX_FILE_BYTES as u64),
            admins_may_rewrite_default: std::env::var("SKILLSD_ADMINS_MAY_REWRITE_MAIN")
                .is_ok_and(|v| v == "1" || v == "true"),
            pusher_is_admin: false,
        }
    }
}

/// Runs every check. `view` sees the quarantined objects; `current` gives the refs'
/// present values.
pub fn check(
    view: &gix::Repository,
    commands: &[Command],
    policy: &Policy,
    current: &HashMap<String, ObjectId>,
    progress: &mut dyn FnMut(&str),
) -> Verdict {
    let default_ref = format!("refs/heads/{}", policy.default_branch);
    let mut verdict = Verdict::default();
    for cmd in commands {
        verdict
            .rejections
            .push(ref_policy(view, cmd, &default_ref, policy));
    }
    // Connectivity of everything that is still going ahead.
    let hidden: Vec<ObjectId> = current.values().copied().collect();
    for (cmd, rejection) in commands.iter().zip(verdict.rejections.iter_mut()) {
        if rejection.is_none() && !cmd.is_delete() {
            if let Err(e) = connectivity(view, cmd.new, &hidden) {
                *rejection = Some(format!("missing necessary objects ({e})"));
            }
        }
    }
    // Validation of the skills each branch update brings.
    let mut tally = Tally::default();
    for (cmd, rejection) in commands.iter().zip(verdict.rejections.iter()) {
        if rejection.is_some() || cmd.is_delete() || cmd.branch().is_none() {
            continue;
        }
        let base = if !cmd.is_create() {
            Some(cmd.old)
        } else if cmd.name != default_ref {
            current.get(&default_ref).copied()
        } else {
            None
        };
        match validate_update(
            view,
            base,
            cmd.new,
            &mut tally,
            policy.max_file_bytes,
            progress,
        ) {
            Ok(mut problems) => verdict.problems.append(&mut problems),
            Err(e) => verdict.problems.push(Problem::new(
                &cmd.name,
                format!("cannot read the pushed commit: {e}"),
            )),
        }
    }
    verdict.notes = std::mem::take(&mut tally.notes);
    let limit = tally.rules_limit.map_or(policy.max_files_per_push, |l| {
        l.min(policy.max_files_per_push)
    });
    if tally.changed.len() > limit {
        verdict.problems.push(
            Problem::new(
                "(this push)",
                format!(
                    "adds or changes {} skill files, more than the limit of {limit}",
                    tally.changed.len(),
                ),
            )
            .hint("split the change into several smaller pushes"),
        );
    }
    if !verdict.problems.is_empty() {
        let reason = format!(
            "invalid skills: {}",
            crate::skills::summary_line(&verdict.problems)
        );
        for r in verdict.rejections.iter_mut().filter(|r| r.is_none()) {
            *r = Some(reason.clone());
        }
    }
    verdict
}

fn ref_policy(
    view: &gix::Repository,
    cmd: &Command,
    default_ref: &str,
    policy: &Policy,
) -> Option<String> {
    let mutable_tags = policy.mutable_tags;
    let protected = !(policy.admins_may_rewrite_default && policy.pusher_is_admin);
    if gix::refs::FullName::try_from(cmd.name.as_str()).is_err()
        || !cmd.name.starts_with("refs/")
        || cmd.name.contains("/.")
        || cmd.name.ends_with('/')
        || cmd.name.contains("@{")
    {
        return Some("invalid ref name".into());
    }
    if !(cmd.name.starts_with("refs/heads/") || cmd.name.starts_with("refs/tags/")) {
        return Some("only branches (refs/heads/*) and tags (refs/tags/*) can be pushed".into());
    }
    if cmd.name.starts_with("refs/tags/") && !cmd.is_create() && !mutable_tags {
        return Some("tags cannot be moved or deleted once pushed; push a new tag instead".into());
    }
    if cmd.is_delete() {
        if cmd.name == default_ref && protected {
            return Some("deleting the default branch is not allowed".into());
        }
        return None;
    }
    let kind = match view.find_header(cmd.new) {
        Ok(h) => h.kind(),
        Err(_) => {
            return Some(format!(
                "missing necessary objects (the pushed object {} is not in the pack)",
                cmd.new
            ))
        }
    };
    if cmd.branch().is_some() && kind != gix::object::Kind::Commit {
        return Some(format!("a branch must point to a commit, not a {kind}"));
    }
    if cmd.name == default_ref && !cmd.is_create() && protected {
        match view.merge_base(cmd.old, cmd.new) {
            Ok(Some(base)) if base.detach() == cmd.old => {}
            Ok(_) | Err(_) => {
                return Some("non-fast-forward: the default branch cannot be rewritten; fetch, rebase and push again".into())
            }
        }
    }
    None
}

/// Checks that `tip` and everything it needs is present. Objects the repository already
/// had are trusted to be complete (git's own invariant); new trees are walked.
fn connectivity(view: &gix::Repository, tip: ObjectId, hidden: &[ObjectId]) -> Result<(), String> {
    let obj = view
        .find_object(tip)
        .map_err(|_| format!("object {tip} is missing"))?;
    let commit_tip = match obj.kind {
        gix::object::Kind::Commit => tip,
        gix::object::Kind::Tag => {
            let target = obj
                .peel_to_kind(gix::object::Kind::Commit)
                .map_err(|e| e.to_string());
            match target {
                Ok(c) => c.id,
                Err(_) => return Ok(()), // a tag of a tree or blob that exists
            }
        }
        _ => return Ok(()),
    };
    let walk = view
        .rev_walk([commit_tip])
        .with_hidden(hidden.iter().copied())
        .all()
        .map_err(|e| e.to_string())?;
    let mut trees_seen = HashSet::new();
    for info in walk {
        let info = info.map_err(|e| format!("history is incomplete: {e}"))?;
        let commit = view.find_commit(info.id).map_err(|e| e.to_string())?;
        let tree = commit.tree_id().map_err(|e| e.to_string())?.detach();
        check_tree(view, tree, &mut trees_seen)?;
    }
    Ok(())
}

fn check_tree(
    view: &gix::Repository,
    tree: ObjectId,
    seen: &mut HashSet<ObjectId>,
) -> Result<(), String> {
    if !seen.insert(tree) {
        return Ok(());
    }
    let tree_obj = view
        .find_tree(tree)
        .map_err(|_| format!("tree {tree} is missing"))?;
    let mut subtrees = Vec::new();
    for entry in tree_obj.iter() {
        let entry = entry.map_err(|e| e.to_string())?;
        let mode = entry.mode();
        let oid = entry.oid().to_owned();
        if mode.is_tree() {
            subtrees.push(oid);
        } else if !mode.is_commit() && !view.has_object(oid) {
            return Err(format!("blob {oid} is missing"));
        }
    }
    for t in subtrees {
        check_tree(view, t, seen)?;
    }
    Ok(())
}

/// What one push adds up to across its commands.
#[derive(Default)]
struct Tally {
    /// Skill files already validated, by path and blob (two branches may share them).
    validated: HashSet<(String, ObjectId)>,
    /// Skill files the push adds or changes (the per-push limit counts these).
    changed: HashSet<(String, ObjectId)>,
    /// The lowest per-push file limit of the rules of the pushed tips.
    rules_limit: Option<usize>,
    notes: Vec<String>,
}

/// Validates the skills added, modified or renamed between `base` and `new` under the
/// rules of `new`; every skill of `new` when the rules differ from `base`'s.
fn validate_update(
    view: &gix::Repository,
    base: Option<ObjectId>,
    new: ObjectId,
    tally: &mut Tally,
    max_file_bytes: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Problem>, String> {
    let new_tree = view
        .find_commit(new)
        .map_err(|e| e.to_string())?
        .tree()
        .map_err(|e| e.to_string())?;
    let old_tree = match base {
        Some(b) => view
            .find_commit(b)
            .map_err(|e| e.to_string())?
            .tree()
            .map_err(|e| e.to_string())?,
        None => view.empty_tree(),
    };
    let rules = match Rules::load(&TreeSource {
        tree: new_tree.clone(),
    }) {
        Ok(rules) => rules,
        Err(problems) => return Ok(problems),
    };
    if let Some(limit) = rules.max_files_per_push {
        tally.rules_limit = Some(tally.rules_limit.map_or(limit, |l| l.min(limit)));
    }
    let max_file_bytes = max_file_bytes.min(rules.max_file_bytes as u64);
    let rules_changed = base.is_some()
        && match Rules::load(&TreeSource {
            tree: old_tree.clone(),
        }) {
            Ok(old) => rules::fingerprint(&old_tree, &old) != rules::fingerprint(&new_tree, &rules),
            Err(_) => true,
        };

    // (path, mode, blob, counts toward the per-push limit)
    let mut candidates: Vec<(String, gix::object::tree::EntryMode, ObjectId, bool)> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    let mut changed_paths: HashSet<String> = HashSet::new();
    let mut opts = gix::diff::Options::default().with_rewrites(None);
    opts.track_path();
    let changes = view
        .diff_tree_to_tree(&old_tree, &new_tree, opts)
        .map_err(|e| e.to_string())?;
    for change in changes {
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
                if rules.governs(&path) && changed_paths.insert(path.clone()) {
                    candidates.push((path, entry_mode, id, true));
                }
            }
            C::Deletion {
                entry_mode,
                location,
                ..
            } if !entry_mode.is_tree() => {
                let path = location.to_string();
                if rules.governs(&path) {
                    deleted.push(path);
                }
            }
            _ => {}
        }
    }
    if !rules_changed && candidates.is_empty() && deleted.is_empty() {
        return Ok(Vec::new()); // nothing under the roots changed
    }
    // Every file of the new tree under the roots (for the tree-wide checks, and for
    // revalidating everything when the rules changed).
    let entries = rules::files_under(&new_tree, &rules)?;

    let mut problems = Vec::new();
    if rules_changed {
        let note = format!(
            "The rules changed ({}): checking every skill.",
            rules.describe()
        );
        if !tally.notes.contains(&note) {
            tally.notes.push(note);
        }
        // Every file under the roots, as if new: the layout or the roots may differ.
        for f in &entries {
            if !changed_paths.contains(&f.path) {
                candidates.push((f.path.clone(), f.mode, f.id, false));
            }
        }
    }
    // In the agent-skills layout, a change to any file of a skill's folder checks the
    // skill again.
    if rules.layout == Layout::AgentSkills {
        let listed: HashSet<String> = candidates.iter().map(|c| c.0.clone()).collect();
        let owners: HashSet<String> = candidates
            .iter()
            .map(|c| &c.0)
            .chain(deleted.iter())
            .filter_map(|p| rules.skill_of(p))
            .filter(|s| !listed.contains(s))
            .collect();
        for f in &entries {
            if owners.contains(&f.path) {
                candidates.push((f.path.clone(), f.mode, f.id, false));
            }
        }
    }

    // Like git's own "Resolving deltas: 45% (…)": only for pushes big enough to wait on.
    let mut meter = Meter::new("Checking skills", candidates.len(), progress);
    let mut checked: Vec<String> = Vec::new();
    for (path, mode, id, counts) in candidates {
        meter.tick();
        problems.extend(crate::skills::validate::path_problems(
            rules.root_of(&path).unwrap_or_default(),
            &path,
            mode.is_link(),
            mode.is_commit(),
        ));
        checked.push(path.clone());
        if !rules.is_skill(&path) || mode.is_link() || mode.is_commit() || !mode.is_blob() {
            continue;
        }
        if counts {
            tally.changed.insert((path.clone(), id));
        }
        if !tally.validated.insert((path.clone(), id)) {
            continue;
        }
        let header = view.find_header(id).map_err(|e| e.to_string())?;
        // Checked from the object header, before the file is read.
        if header.size() > max_file_bytes {
            problems.push(
                Problem::new(
                    &path,
                    format!("file is {} bytes, more than the limit of {max_file_bytes}", header.size()),
                )
                .hint("split the skill into smaller ones, or move large content out of the repository"),
            );
            continue;
        }
        let blob = view.find_blob(id).map_err(|e| e.to_string())?;
        if let Err(mut p) = rules.validate(&path, &blob.data) {
            problems.append(&mut p);
        }
    }
    meter.done();
    checked.extend(deleted);
    if !checked.is_empty() {
        let files: Vec<tree::File> = entries
            .into_iter()
            .map(|f| tree::File {
                regular: f.mode.is_blob(),
                path: f.path,
            })
            .collect();
        problems.extend(tree::problems(&rules, &files, &checked));
    }
    Ok(problems)
}

/// Progress lines for long checks: `Checking skills:  45% (4500/10000)` with a carriage
/// return, every percent, then `…, done.` — only when there are at least 1,000 items.
struct Meter<'a> {
    what: &'static str,
    total: usize,
    done: usize,
    last_percent: usize,
    out: &'a mut dyn FnMut(&str),
}

impl<'a> Meter<'a> {
    const MIN_ITEMS: usize = 1000;

    fn new(what: &'static str, total: usize, out: &'a mut dyn FnMut(&str)) -> Self {
        Meter {
            what,
            total,
            done: 0,
            last_percent: usize::MAX,
            out,
        }
    }

    fn tick(&mut self) {
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

    fn done(&mut self) {
        if self.total >= Self::MIN_ITEMS {
            (self.out)(&format!(
                "{}: 100% ({}/{}), done.\n",
                self.what, self.total, self.total
            ));
        }
    }
}
