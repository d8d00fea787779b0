//! The pre-receive stage: everything is checked before anything is written.
//!
//! * policy: ref names, branches and tags only, the default branch is neither deleted
//!   nor rewritten, branch tips are commits;
//! * connectivity: every object the new tips need is in the quarantine or the repository;
//! * validation: every added, modified or renamed skill in each updated branch's new
//!   tip, and slug uniqueness across that tip.
//!
//! [`ref_rules`] holds what a ref may be named and which updates it may take;
//! [`files`] walks what each update changes and validates it.

pub mod early;
mod files;
mod ref_rules;

pub use ref_rules::{DEFAULT_REF_PATTERN, ref_pattern, skeleton};

use super::commands::Command;
use super::connectivity;
use super::outcome::{Reason, Refusal};
use crate::cache::changes::Parsed;
use crate::commit_tree::{self, TreeSource};
use crate::skills::rules::{Layout, Rules};
use crate::skills::validate::MAX_FILE_BYTES;
use crate::skills::{Problem, tree};
use files::{Diff, Trees, check_files, secrets_in_history};
use gix::ObjectId;
use ref_rules::{RefNames, ref_policy, requires_signed, review_gate};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// What stopped a check from reading the pushed objects (gix's error, with its causes):
/// the pusher reads it as "cannot read the pushed commit: …".
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// The outcome for each command (same order): `None` = may proceed, `Some(reason)`.
#[derive(Debug, Default)]
pub struct Verdict {
    pub rejections: Vec<super::outcome::Outcome>,
    pub problems: Vec<Problem>,
    /// What the pusher should know even when nothing is wrong (shown whatever the
    /// client's `quiet` setting): e.g. that the rules changed and everything was checked.
    pub notes: Vec<String>,
    /// The skill files of the update the cache reads (the default branch's, or the
    /// change's), as validated here.
    pub parsed: Parsed,
    /// Files whose checks were done while the pack streamed in ([`early`]), and
    /// files read from the quarantine and checked after it.
    pub early_used: usize,
    pub read_after: usize,
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
    /// The pusher's name and role on this repository (`reader`, `writer`, `admin`),
    /// for `[review] direct_push`. Set per push.
    pub pusher: String,
    pub pusher_role: &'static str,
    /// This push merges an approved change ([`crate::review::merge`]): the branch's
    /// review is what let it through, not `direct_push`.
    pub merging_change: bool,
    /// The commands are a change's patch set checked as an update of its target
    /// branch ([`crate::review::open`]): the branch does not move, so it need not be a
    /// fast-forward.
    pub proposal: bool,
    /// Bounds on the pushed objects: tree depth, commit size
    /// (`SKILLSD_MAX_TREE_DEPTH`, `SKILLSD_MAX_COMMIT_BYTES`).
    pub limits: connectivity::Limits,
    /// What a pack may declare: object size, object count (`SKILLSD_MAX_OBJECT_BYTES`,
    /// `SKILLSD_MAX_OBJECTS`).
    pub pack: crate::incoming::inspect::PackLimits,
    /// The pattern every pushed ref's full name must match (`SKILLSD_REF_PATTERN`,
    /// [`DEFAULT_REF_PATTERN`] by default), anchored at both ends.
    pub ref_pattern: regex::Regex,
    /// The commits are made by the server itself for a signed-in user (an edit in the
    /// browser or the contents API): `[commits] require_signed` does not apply to them.
    pub server_made: bool,
    /// The registered keys, read when a branch requires signed commits
    /// ([`super::signatures`]); `None`: no database to read them from (then such a
    /// push is refused).
    pub signers: Option<super::signatures::SignersSource>,
}

impl Default for Policy {
    /// The defaults: `main`, 20,000 files, 512 MiB, 1 MiB files, immutable tags, `main`
    /// never rewritten (the settings change them: [`crate::config::Settings`]).
    fn default() -> Policy {
        Policy {
            default_branch: crate::repos::DEFAULT_BRANCH.to_string(),
            mutable_tags: false,
            max_files_per_push: 20_000,
            max_pack_bytes: 512 * 1024 * 1024,
            max_file_bytes: MAX_FILE_BYTES as u64,
            admins_may_rewrite_default: false,
            pusher_is_admin: false,
            pusher: String::new(),
            pusher_role: "reader",
            merging_change: false,
            proposal: false,
            limits: connectivity::Limits::default(),
            pack: crate::incoming::inspect::PackLimits::default(),
            ref_pattern: ref_pattern(DEFAULT_REF_PATTERN).expect("the default pattern compiles"),
            server_made: false,
            signers: None,
        }
    }
}

/// Runs every check. `view` sees the quarantined objects; `current` gives the refs'
/// present values; `known` (the repository without the quarantine, when there is one
/// apart) holds the trees whose entries earlier pushes checked already.
#[allow(clippy::too_many_arguments)]
pub fn check(
    view: &gix::Repository,
    commands: &[Command],
    policy: &Policy,
    current: &HashMap<String, ObjectId>,
    progress: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
    known: Option<&gix::Repository>,
    early: Option<early::Early>,
) -> Verdict {
    let default_ref = format!("refs/heads/{}", policy.default_branch);
    let mut verdict = Verdict::default();
    let names = RefNames::new(current, commands, &default_ref);
    for cmd in commands {
        let rejection = ref_policy(view, cmd, &default_ref, policy)
            .or_else(|| names.collision(cmd))
            .or_else(|| review_gate(view, cmd, policy, current));
        verdict
            .rejections
            .push(rejection.map(|why| Refusal::new(Reason::Policy, why)));
    }
    // Connectivity and limits of everything that is still going ahead.
    let hidden: Vec<ObjectId> = current.values().copied().collect();
    let mut walk = match known {
        Some(repo) => connectivity::Walk::new(cancel).trusting(repo),
        None => connectivity::Walk::new(cancel),
    };
    for (cmd, rejection) in commands.iter().zip(verdict.rejections.iter_mut()) {
        if rejection.is_none()
            && !cmd.is_delete()
            && let Err(e) = walk.tip(view, cmd.new, &hidden, &policy.limits)
        {
            verdict.problems.push(e.problem(&cmd.name));
            *rejection = Some(Refusal::new(Reason::Unpack, e.to_string()));
        }
    }
    // Validation of the skills each branch update brings.
    let mut update = Update {
        view,
        policy,
        current,
        default_ref: &default_ref,
        hidden: &hidden,
        tally: Tally {
            cancel: Some(cancel),
            early,
            ..Tally::default()
        },
        signers: None,
    };
    for (cmd, rejection) in commands.iter().zip(verdict.rejections.iter()) {
        if rejection.is_none() && !cmd.is_delete() && cmd.branch().is_some() {
            verdict.problems.append(&mut update.check(cmd, progress));
        }
    }
    // The session ended meanwhile (the client left, or its time ran out): nothing is
    // written for a pusher who cannot learn the outcome.
    if cancel.load(Ordering::Relaxed) {
        for r in verdict.rejections.iter_mut() {
            *r = Some(Refusal::new(Reason::Cancelled, CANCELLED));
        }
        return verdict;
    }
    let mut tally = update.tally;
    verdict.early_used = tally.early_used;
    verdict.read_after = tally.read_after;
    verdict.notes = std::mem::take(&mut tally.notes);
    verdict.parsed = std::mem::take(&mut tally.parsed);
    let limit = tally.rules_limit.map_or(policy.max_files_per_push, |l| {
        l.min(policy.max_files_per_push)
    });
    if tally.changed.len() > limit {
        verdict
            .problems
            .push(too_many_files(Some(tally.changed.len()), limit));
    }
    if crate::skills::any_error(&verdict.problems) {
        let reason = format!(
            "invalid skills: {}",
            crate::skills::summary_line(&verdict.problems)
        );
        for r in verdict.rejections.iter_mut().filter(|r| r.is_none()) {
            *r = Some(Refusal::new(Reason::InvalidSkills, reason.clone()));
        }
    }
    verdict
}

/// The checks of the branch updates of one push, with what they share: the files
/// already validated, the signing keys once loaded.
struct Update<'a> {
    view: &'a gix::Repository,
    policy: &'a Policy,
    current: &'a HashMap<String, ObjectId>,
    default_ref: &'a str,
    /// The refs' tips before the push: what is already known and checked.
    hidden: &'a [ObjectId],
    tally: Tally<'a>,
    signers: Option<super::signatures::Signers>,
}

impl Update<'_> {
    /// The problems of one branch update: its skills, the credentials anywhere in its
    /// new history, its commits' signatures when the rules require them.
    fn check(&mut self, cmd: &Command, progress: &mut dyn FnMut(&str)) -> Vec<Problem> {
        let (view, policy) = (self.view, self.policy);
        // A new branch is checked against the default branch: what it adds to it.
        let base = if !cmd.is_create() {
            Some(cmd.old)
        } else if cmd.name != self.default_ref {
            self.current.get(self.default_ref).copied()
        } else {
            None
        };
        let unreadable = |what: &str, e: &dyn std::fmt::Display| {
            vec![Problem::new(
                crate::skills::Check::Push,
                &cmd.name,
                format!("cannot {what}: {e}"),
            )]
        };
        // The cache reads the default branch (or the change): what is validated for it
        // is kept for the cache.
        self.tally.keeping = cmd.name == self.default_ref || policy.proposal;
        let mut problems = validate_update(
            view,
            base,
            cmd.new,
            &mut self.tally,
            policy.max_file_bytes,
            policy.max_files_per_push,
            progress,
        )
        .unwrap_or_else(|e| unreadable("read the pushed commit", &e));
        // A credential added by one commit and removed by a later one of the same push
        // is not in the tip, but it would be in the history everyone clones.
        problems.append(
            &mut secrets_in_history(view, cmd.new, self.hidden, &mut self.tally)
                .unwrap_or_else(|e| unreadable("read the pushed history", &e)),
        );
        // Signed commits, when the branch's rules (at its tip now) require them.
        let target = self
            .current
            .get(&cmd.name)
            .or_else(|| self.current.get(self.default_ref))
            .copied();
        if !(policy.merging_change || policy.server_made) && requires_signed(view, target) {
            problems.append(
                &mut self
                    .signatures(cmd)
                    .unwrap_or_else(|e| unreadable("verify the pushed commits' signatures", &e)),
            );
        }
        problems
    }

    /// The signature problems of the commits `cmd` brings, with the signing keys read
    /// once per push.
    fn signatures(&mut self, cmd: &Command) -> Result<Vec<Problem>, super::signatures::CheckError> {
        use super::signatures::CheckError;
        let keys = match (self.signers.take(), &self.policy.signers) {
            (Some(loaded), _) => loaded,
            (None, Some(source)) => (source.0)().map_err(CheckError::Signers)?,
            (None, None) => return Err(CheckError::NoSigners),
        };
        let found =
            super::signatures::check(self.view, &cmd.name, cmd.new, self.hidden, &keys, 10_000);
        self.signers = Some(keys);
        found
    }
}

/// Files under the skill folders, per skill file of the limit, that one push may
/// add or change.
const OTHER_FILES_PER_SKILL: usize = 5;

/// The per-push file limit: `count` files when known, else "more than the limit".
fn too_many_files(count: Option<usize>, limit: usize) -> Problem {
    let message = match count {
        Some(n) => format!("adds or changes {n} skill files, more than the limit of {limit}"),
        None => format!("adds or changes more than the limit of {limit} skill files"),
    };
    Problem::new(crate::skills::Check::TooManyFiles, "(this push)", message)
        .hint("split the change into several smaller pushes")
}

/// The reason given for every ref when the session ended during the checks.
pub const CANCELLED: &str = "cancelled: the session ended before the checks finished";

/// What one push adds up to across its commands.
#[derive(Default)]
struct Tally<'c> {
    /// Set when the session ends: validation stops at the next file.
    cancel: Option<&'c AtomicBool>,
    /// Skill files already validated, by path and blob (two branches may share them).
    validated: HashSet<(String, ObjectId)>,
    /// Skill files the push adds or changes (the per-push limit counts these).
    changed: HashSet<(String, ObjectId)>,
    /// The lowest per-push file limit of the rules of the pushed tips.
    rules_limit: Option<usize>,
    notes: Vec<String>,
    /// Whether the update being checked is the one the cache reads ([`Verdict::parsed`]).
    keeping: bool,
    parsed: Parsed,
    /// The files validated while the pack streamed in: the thread until the first
    /// update needs them, then what it validated.
    early: Option<early::Early>,
    memo: Option<early::Memo>,
    /// Files whose results came from it, and files read and checked after the pack.
    early_used: usize,
    read_after: usize,
}

impl Tally<'_> {
    /// What [`early`] validated (its thread joined the first time).
    fn early_memo(&mut self) -> Option<early::Memo> {
        if let Some(thread) = self.early.take() {
            self.memo = thread.finish();
        }
        self.memo.take()
    }
}

/// `skillsd audit`: every file of `tip`'s tree under its rules — the checks a push
/// runs on what it changes, run on everything (a collection adopted before a check
/// existed). Returns the number of skill files read and every problem.
pub fn audit(
    view: &gix::Repository,
    tip: ObjectId,
    max_file_bytes: u64,
) -> Result<(usize, Vec<Problem>), ReadError> {
    let mut tally = Tally::default();
    let problems = validate_update(
        view,
        None,
        tip,
        &mut tally,
        max_file_bytes,
        usize::MAX,
        &mut |_| {},
    )?;
    Ok((tally.changed.len(), problems))
}

/// Validates the skills added, modified or renamed between `base` and `new` under the
/// rules of `new`; every skill of `new` when the rules differ from `base`'s. In
/// stages: the rules of both trees, the diff walked (with the per-push limit), the
/// files to check widened (the rules changed, a skill's folder changed), each file
/// checked, then the checks that see the whole tree.
fn validate_update(
    view: &gix::Repository,
    base: Option<ObjectId>,
    new: ObjectId,
    tally: &mut Tally<'_>,
    max_file_bytes: u64,
    max_files_per_push: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Problem>, ReadError> {
    let trees = match Trees::read(view, base, new)? {
        Ok(trees) => trees,
        Err(problems) => return Ok(problems),
    };
    let rules = &trees.rules;
    if tally.keeping {
        tally.parsed.rules = trees.fingerprint.clone();
    }
    if let Some(limit) = rules.max_files_per_push {
        tally.rules_limit = Some(tally.rules_limit.map_or(limit, |l| l.min(limit)));
    }
    let limit = rules
        .max_files_per_push
        .map_or(max_files_per_push, |l| l.min(max_files_per_push));
    let mut diff = match Diff::walk(&trees, limit)? {
        Ok(diff) => diff,
        Err(too_many) => return Ok(vec![too_many]),
    };
    let mut problems = tree::stray_skill_files(rules, &diff.strays);
    if rules.layout == Layout::Flat
        && (!diff.strays.is_empty() || diff.changed.iter().any(|p| tree::is_skill_file_name(p)))
    {
        note_once(
            tally,
            crate::skills::report::flat_layout_note(rules.roots()),
        );
    }
    if !trees.rules_changed && diff.candidates.is_empty() && diff.deleted.is_empty() {
        return Ok(problems); // nothing under the roots changed
    }
    // Every file of the new tree under the roots (for the tree-wide checks, and for
    // revalidating everything when the rules changed).
    let entries = commit_tree::files_under(&trees.new, rules)?;
    if trees.rules_changed {
        note_once(
            tally,
            format!(
                "The rules changed ({}): checking every skill.",
                rules.describe()
            ),
        );
    }
    diff.widen(rules, trees.rules_changed, &entries);

    let mut checked = check_files(
        view,
        &trees,
        diff.candidates,
        tally,
        max_file_bytes,
        progress,
        &mut problems,
    )?;
    checked.extend(diff.deleted);
    if !checked.is_empty() {
        let files: Vec<tree::File> = entries
            .into_iter()
            .map(|f| tree::File {
                regular: f.mode.is_blob(),
                path: f.path,
            })
            .collect();
        problems.extend(tree::problems(rules, &files, &checked));
        problems = tree::quiet_under_skill_folders(rules, &files, problems);
        problems = tree::free_renames(&files, problems);
    }
    Ok(problems)
}

fn note_once(tally: &mut Tally<'_>, note: String) {
    if !tally.notes.contains(&note) {
        tally.notes.push(note);
    }
}
