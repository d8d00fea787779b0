//! The pre-receive stage: everything is checked before anything is written.
//!
//! * policy: ref names, branches and tags only, the default branch is neither deleted
//!   nor rewritten, branch tips are commits;
//! * connectivity: every object the new tips need is in the quarantine or the repository;
//! * validation: every added, modified or renamed skill in each updated branch's new
//!   tip, and slug uniqueness across that tip.

use super::commands::Command;
use super::connectivity;
use super::outcome::{Reason, Refusal};
use crate::cache::changes::Parsed;
use crate::commit_tree::{self, TreeSource};
use crate::skills::rules::{Layout, Rules};
use crate::skills::validate::MAX_FILE_BYTES;
use crate::skills::{tree, Problem};
use gix::ObjectId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The names a pushed ref may have by default: branches and tags whose names are
/// ASCII letters, digits and `. _ / @ + -`, starting with a letter or digit — no
/// look-alikes of `main` from other scripts, no invisible characters, no names a
/// shell or a command line reads as an option.
pub const DEFAULT_REF_PATTERN: &str = "refs/(heads|tags)/[A-Za-z0-9][A-Za-z0-9._/@+-]*";

/// `pattern` anchored at both ends, compiled.
pub fn ref_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

/// What a ref name looks like to a reader: letters from other scripts transliterated
/// (`maın`, `mаin` in Cyrillic → `main`), invisible and format characters dropped,
/// case folded. Two names with one skeleton are confusable.
pub fn skeleton(name: &str) -> String {
    let visible: String = name
        .chars()
        .filter(|c| !crate::skills::invisible(*c))
        .collect();
    deunicode::deunicode_with_tofu(&visible, "\u{fffd}").to_lowercase()
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
pub fn check(
    view: &gix::Repository,
    commands: &[Command],
    policy: &Policy,
    current: &HashMap<String, ObjectId>,
    progress: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
    known: Option<&gix::Repository>,
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
        if rejection.is_none() && !cmd.is_delete() {
            if let Err(e) = walk.tip(view, cmd.new, &hidden, &policy.limits) {
                verdict.problems.push(e.problem(&cmd.name));
                *rejection = Some(Refusal::new(Reason::Unpack, e.to_string()));
            }
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
        let unreadable = |what: &str, e: String| {
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
        .unwrap_or_else(|e| unreadable("read the pushed commit", e));
        // A credential added by one commit and removed by a later one of the same push
        // is not in the tip, but it would be in the history everyone clones.
        problems.append(
            &mut secrets_in_history(view, cmd.new, self.hidden, &mut self.tally)
                .unwrap_or_else(|e| unreadable("read the pushed history", e)),
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
                    .unwrap_or_else(|e| unreadable("verify the pushed commits' signatures", e)),
            );
        }
        problems
    }

    /// The signature problems of the commits `cmd` brings, with the signing keys read
    /// once per push.
    fn signatures(&mut self, cmd: &Command) -> Result<Vec<Problem>, String> {
        let keys = match (self.signers.take(), &self.policy.signers) {
            (Some(loaded), _) => loaded,
            (None, Some(source)) => (source.0)()?,
            (None, None) => return Err("no user database to read the signing keys from".into()),
        };
        let found =
            super::signatures::check(self.view, &cmd.name, cmd.new, self.hidden, &keys, 10_000);
        self.signers = Some(keys);
        found
    }
}

/// Do the rules at `tip` (a branch's tip before the push) require signed commits?
fn requires_signed(view: &gix::Repository, tip: Option<ObjectId>) -> bool {
    let Some(tree) = tip
        .and_then(|t| view.find_commit(t).ok())
        .and_then(|c| c.tree().ok())
    else {
        return false;
    };
    Rules::load(&TreeSource { tree }).is_ok_and(|r| r.require_signed)
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
    if cmd.name.starts_with("refs/changes/") {
        return Some(
            "refs/changes/ is written by the server: push to refs/for/BRANCH to open a change or add a patch set".into(),
        );
    }
    if !(cmd.name.starts_with("refs/heads/") || cmd.name.starts_with("refs/tags/")) {
        return Some("only branches (refs/heads/*) and tags (refs/tags/*) can be pushed, and changes to refs/for/BRANCH".into());
    }
    let short = cmd
        .name
        .strip_prefix("refs/heads/")
        .or_else(|| cmd.name.strip_prefix("refs/tags/"))
        .unwrap_or(&cmd.name);
    if !cmd.is_delete() {
        if short == "HEAD" || short.starts_with("HEAD/") {
            return Some("`HEAD` is not a branch or tag name (git reads it as the current commit); choose another name".into());
        }
        if !policy.ref_pattern.is_match(&cmd.name) {
            return Some(format!(
                "ref name not allowed: names are limited to ASCII letters, digits and . _ / @ + - \
                 (the server's pattern: {})",
                policy
                    .ref_pattern
                    .as_str()
                    .trim_start_matches("^(?:")
                    .trim_end_matches(")$")
            ));
        }
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
    if cmd.name == default_ref && !cmd.is_create() && protected && !policy.proposal {
        match view.merge_base(cmd.old, cmd.new) {
            Ok(Some(base)) if base.detach() == cmd.old => {}
            Ok(_) | Err(_) => {
                return Some("non-fast-forward: the default branch cannot be rewritten; fetch, rebase and push again".into())
            }
        }
    }
    None
}

/// A direct push to (or deletion of) a branch whose rules (read from its tip now: a
/// push cannot lift the review it is under) ask for review, by someone `[review]
/// direct_push` does not name: refused with the way to propose the change instead.
fn review_gate(
    view: &gix::Repository,
    cmd: &Command,
    policy: &Policy,
    current: &HashMap<String, ObjectId>,
) -> Option<String> {
    if policy.merging_change || policy.proposal {
        return None;
    }
    let branch = cmd.branch()?;
    let tip = current.get(&cmd.name)?;
    if crate::changes::target_review(view, *tip)
        .may_push_directly(&policy.pusher, policy.pusher_role)
    {
        return None;
    }
    if cmd.is_delete() {
        return Some(format!(
            "{branch} requires review: only those `[review] direct_push` names may delete it"
        ));
    }
    Some(format!(
        "{branch} requires review: push to refs/for/{branch} to open a change (git push origin HEAD:refs/for/{branch})"
    ))
}

/// The names a new ref must not collide with: not one differing only in case (two
/// such refs cannot both be checked out on macOS or Windows, and `MAIN` beside
/// `main` misleads), and not a name that is a folder of another ref or the other way
/// round (`refs/heads/a` and `refs/heads/a/b` cannot both exist).
struct RefNames<'a> {
    names: std::collections::BTreeSet<&'a str>,
    lower: HashMap<String, &'a str>,
    /// Each short name's [`skeleton`] (the default branch's first), for look-alikes.
    skeletons: HashMap<String, &'a str>,
}

impl<'a> RefNames<'a> {
    fn new(
        current: &'a HashMap<String, ObjectId>,
        commands: &'a [Command],
        default_ref: &'a str,
    ) -> Self {
        // Existing refs first: a new name is the one that collides, not the old one.
        let all: Vec<&str> = std::iter::once(default_ref)
            .filter(|d| current.contains_key(*d))
            .chain(current.keys().map(String::as_str))
            .chain(
                commands
                    .iter()
                    .filter(|c| !c.is_delete())
                    .map(|c| c.name.as_str()),
            )
            .collect();
        let mut lower: HashMap<String, &str> = HashMap::new();
        let mut skeletons: HashMap<String, &str> = HashMap::new();
        // The default branch is protected whether it exists yet or not.
        skeletons.insert(skeleton(short_name(default_ref)), default_ref);
        for n in &all {
            lower.entry(n.to_lowercase()).or_insert(n);
            skeletons.entry(skeleton(short_name(n))).or_insert(n);
        }
        RefNames {
            names: all.into_iter().collect(),
            lower,
            skeletons,
        }
    }

    fn collision(&self, cmd: &Command) -> Option<String> {
        if !cmd.is_create() || cmd.is_delete() {
            return None;
        }
        let name = cmd.name.as_str();
        if let Some(other) = self.lower.get(&name.to_lowercase()).filter(|o| **o != name) {
            return Some(format!(
                "ref conflict: `{other}` differs only in case; choose another name"
            ));
        }
        if let Some(other) = self
            .skeletons
            .get(&skeleton(short_name(name)))
            .filter(|o| short_name(o) != short_name(name))
        {
            return Some(format!(
                "ref conflict: `{}` looks like `{other}` (letters from another script, or \
                 invisible characters); choose another name",
                name.escape_debug()
            ));
        }
        // A folder of this name: the names sorting right after `name/`.
        let folder = format!("{name}/");
        if let Some(other) = self
            .names
            .range(folder.as_str()..)
            .next()
            .filter(|o| o.starts_with(&folder))
        {
            return Some(format!(
                "ref conflict: `{other}` exists; a ref name cannot also be a folder of refs"
            ));
        }
        // This name inside another ref's name: `refs/heads/a` for `refs/heads/a/b`.
        let mut prefix = name;
        while let Some(i) = prefix.rfind('/') {
            prefix = &prefix[..i];
            if self.names.contains(prefix) {
                return Some(format!(
                    "ref conflict: `{prefix}` exists; a ref name cannot also be a folder of refs"
                ));
            }
        }
        None
    }
}

/// A ref's name without `refs/heads/` or `refs/tags/`.
fn short_name(name: &str) -> &str {
    name.strip_prefix("refs/heads/")
        .or_else(|| name.strip_prefix("refs/tags/"))
        .unwrap_or(name)
}

/// The `secret` check over every file under the roots that a new commit of the push
/// adds or changes (the tip's files are checked with the tip), under the rules of
/// `new`; each finding names the commit. Commits that existing refs already reach are
/// not read again.
fn secrets_in_history(
    view: &gix::Repository,
    new: ObjectId,
    hidden: &[ObjectId],
    tally: &mut Tally<'_>,
) -> Result<Vec<Problem>, String> {
    let tree = view
        .find_commit(new)
        .map_err(|e| e.to_string())?
        .tree()
        .map_err(|e| e.to_string())?;
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
    let walk = view
        .rev_walk([new])
        .with_hidden(hidden)
        .all()
        .map_err(|e| e.to_string())?;
    for info in walk {
        if tally.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(CANCELLED.into());
        }
        let info = info.map_err(|e| e.to_string())?;
        let commit = view.find_commit(info.id).map_err(|e| e.to_string())?;
        let tree = commit.tree().map_err(|e| e.to_string())?;
        let parent_tree = match commit.parent_ids().next() {
            Some(p) => view
                .find_commit(p)
                .map_err(|e| e.to_string())?
                .tree()
                .map_err(|e| e.to_string())?,
            None => view.empty_tree(),
        };
        let mut opts = gix::diff::Options::default();
        opts.track_path();
        let changes = view
            .diff_tree_to_tree(&parent_tree, &tree, opts)
            .map_err(|e| e.to_string())?;
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
            let blob = view.find_blob(id).map_err(|e| e.to_string())?;
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
}

/// `skillsd audit`: every file of `tip`'s tree under its rules — the checks a push
/// runs on what it changes, run on everything (a collection adopted before a check
/// existed). Returns the number of skill files read and every problem.
pub fn audit(
    view: &gix::Repository,
    tip: ObjectId,
    max_file_bytes: u64,
) -> Result<(usize, Vec<Problem>), String> {
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
) -> Result<Vec<Problem>, String> {
    let trees = match Trees::read(view, base, new)? {
        Ok(trees) => trees,
        Err(problems) => return Ok(problems),
    };
    let rules = &trees.rules;
    if tally.keeping {
        tally.parsed.rules = commit_tree::fingerprint(&trees.new, rules);
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
    let entries = commit_tree::files_under(&trees.new, rules).map_err(|e| e.to_string())?;
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
        rules,
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

/// The trees of an update and the rules of its new tip.
struct Trees<'r> {
    old: gix::Tree<'r>,
    new: gix::Tree<'r>,
    rules: std::sync::Arc<Rules>,
    /// `base`'s rules files differ from the new tip's: every skill is checked again.
    rules_changed: bool,
}

impl<'r> Trees<'r> {
    /// The trees and the rules; `Ok(Err(problems))` when the new tip's rules do not load.
    fn read(
        view: &'r gix::Repository,
        base: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<Result<Self, Vec<Problem>>, String> {
        let tree_of = |commit: ObjectId| {
            view.find_commit(commit)
                .map_err(|e| e.to_string())?
                .tree()
                .map_err(|e| e.to_string())
        };
        let new_tree = tree_of(new)?;
        let old_tree = match base {
            Some(b) => tree_of(b)?,
            None => view.empty_tree(),
        };
        let rules = match Rules::load(&TreeSource {
            tree: new_tree.clone(),
        }) {
            Ok(rules) => rules,
            Err(problems) => return Ok(Err(problems)),
        };
        let rules_changed = base.is_some()
            && match Rules::load(&TreeSource {
                tree: old_tree.clone(),
            }) {
                Ok(old) => {
                    commit_tree::fingerprint(&old_tree, &old)
                        != commit_tree::fingerprint(&new_tree, &rules)
                }
                Err(_) => true,
            };
        Ok(Ok(Trees {
            old: old_tree,
            new: new_tree,
            rules,
            rules_changed,
        }))
    }
}

/// A file to check.
struct Candidate {
    path: String,
    mode: gix::object::tree::EntryMode,
    id: ObjectId,
    /// Added or changed by the push (counts toward the per-push limit), not only
    /// checked again.
    counts: bool,
}

/// What an update changes under the roots.
#[derive(Default)]
struct Diff {
    candidates: Vec<Candidate>,
    deleted: Vec<String>,
    changed: HashSet<String>,
    /// Changed files named SKILL.md outside every root: named in a problem, never
    /// silently left out.
    strays: Vec<String>,
}

impl Diff {
    /// The diff of the trees, with the per-push file limit enforced as it is walked: a
    /// push of a million files stops here, after `limit` of them, not after validating
    /// them all. `Ok(Err(problem))`: over the limit.
    fn walk(trees: &Trees<'_>, limit: usize) -> Result<Result<Diff, Problem>, String> {
        let rules = &trees.rules;
        let mut diff = Diff::default();
        let mut over_limit = false;
        let mut skill_files = 0usize;
        let mut platform = trees.old.changes().map_err(|e| e.to_string())?;
        platform.options(|o| {
            o.track_path();
            o.track_rewrites(None);
        });
        let walked = platform.for_each_to_obtain_tree(&trees.new, |change| {
            use gix::object::tree::diff::ChangeDetached as C;
            match change.detach() {
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
                    return Ok(std::ops::ControlFlow::Break(()));
                }
            }
            Ok(std::ops::ControlFlow::Continue(()))
        });
        // Breaking off the walk surfaces as an error ("cancelled"): not one when the
        // limit is why.
        if over_limit {
            let count = (skill_files > limit && skill_files <= limit.saturating_mul(10))
                .then_some(skill_files);
            return Ok(Err(too_many_files(count, limit)));
        }
        walked.map_err(|e| e.to_string())?;
        Ok(Ok(diff))
    }

    /// The files checked again though the push did not change them: every file under
    /// the roots when the rules changed (the layout or the roots may differ); in the
    /// agent-skills layout, the skill of any file of its folder that changed.
    fn widen(&mut self, rules: &Rules, rules_changed: bool, entries: &[commit_tree::TreeFile]) {
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
fn check_files(
    view: &gix::Repository,
    rules: &Rules,
    candidates: Vec<Candidate>,
    tally: &mut Tally<'_>,
    max_file_bytes: u64,
    progress: &mut dyn FnMut(&str),
    problems: &mut Vec<Problem>,
) -> Result<Vec<String>, String> {
    let max_file_bytes = max_file_bytes.min(rules.max_file_bytes as u64);
    let mut meter = Meter::new("Checking skills", candidates.len(), progress);
    let mut checked: Vec<String> = Vec::new();
    let mut executables: Vec<String> = Vec::new();
    // Each candidate's problems, in order; the contents to read, each with its slot.
    let mut found: Vec<Vec<Problem>> = Vec::with_capacity(candidates.len());
    let mut reads: Vec<Read> = Vec::new();
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
        checked.push(path.clone());
        let regular = !(mode.is_link() || mode.is_commit() || !mode.is_blob());
        if regular && mode.is_executable() && counts {
            executables.push(path.clone());
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
            reads.push(Read {
                slot: found.len(),
                path,
                id,
                skill,
                executable: mode.is_executable(),
            });
        }
        found.push(here);
    }
    for _ in reads.len()..found.len() {
        meter.tick();
    }
    let batch = reads
        .len()
        .div_ceil(crate::parallel::threads() * 8)
        .clamp(1, 256);
    crate::parallel::chunks(
        &reads,
        batch,
        PARALLEL_FROM,
        || view.clone(),
        |view, part| {
            part.iter()
                .map(|read| read.check(view, rules, max_file_bytes))
                .collect::<Vec<_>>()
        },
        &mut |i, results| {
            for (read, result) in reads[i * batch..].iter().zip(results) {
                meter.tick();
                let (mut more, skill) = result?;
                found[read.slot].append(&mut more);
                if let (Some(skill), true) = (skill, tally.keeping) {
                    tally.parsed.keep(&read.path, read.id, skill);
                }
            }
            if tally.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(CANCELLED.to_string());
            }
            Ok(())
        },
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

/// From how many files to read the checks spread over every core.
const PARALLEL_FROM: usize = 64;

/// A file under the roots whose contents this push has not read yet.
struct Read {
    /// Its candidate's place.
    slot: usize,
    path: String,
    id: ObjectId,
    /// A skill file (else a skill's script, reference or asset).
    skill: bool,
    executable: bool,
}

impl Read {
    /// Its problems, and the skill when it is a valid skill file. A skill file's size
    /// comes from the object header before it is read, then its frontmatter, fields
    /// and text are checked; any other file's text, the whole of it, is checked for
    /// hidden text and credentials (only files added or changed, all of them when
    /// the rules changed).
    fn check(
        &self,
        view: &gix::Repository,
        rules: &Rules,
        max_file_bytes: u64,
    ) -> Result<(Vec<Problem>, Option<crate::skills::Skill>), String> {
        let path = self.path.as_str();
        if !self.skill {
            let blob = view.find_blob(self.id).map_err(|e| e.to_string())?;
            let mut problems = rules.validate_other(path, &blob.data);
            problems.extend(crate::skills::policy::file_problems(
                &rules.policy,
                path,
                crate::skills::policy::skill_folder(rules, path).as_deref(),
                self.executable,
                &blob.data,
            ));
            return Ok((problems, None));
        }
        let header = view.find_header(self.id).map_err(|e| e.to_string())?;
        if header.size() > max_file_bytes {
            let problem = Problem::new(
                crate::skills::Check::FileTooLarge,
                path,
                format!(
                    "file is {} bytes, more than the limit of {max_file_bytes}",
                    header.size()
                ),
            )
            .hint("split the skill into smaller ones, or move large content out of the repository");
            return Ok((vec![problem], None));
        }
        let blob = view.find_blob(self.id).map_err(|e| e.to_string())?;
        match rules.validate(path, &blob.data) {
            Ok(skill) => {
                let mut problems = skill.warnings.clone();
                problems.extend(crate::skills::policy::tool_problems(
                    &rules.policy,
                    path,
                    &skill.frontmatter,
                    &String::from_utf8_lossy(&blob.data),
                ));
                Ok((problems, Some(skill)))
            }
            Err(problems) => Ok((problems, None)),
        }
    }
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
