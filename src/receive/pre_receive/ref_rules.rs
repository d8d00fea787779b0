//! Ref rules: which names a pushed ref may have (a pattern, no look-alikes of existing
//! names), which updates it may take (the default branch neither deleted nor rewritten,
//! tags immutable, branch tips commits), and the review gate of protected branches.

use super::*;

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

/// Do the rules at `tip` (a branch's tip before the push) require signed commits?
pub(super) fn requires_signed(view: &gix::Repository, tip: Option<ObjectId>) -> bool {
    let Some(tree) = tip
        .and_then(|t| view.find_commit(t).ok())
        .and_then(|c| c.tree().ok())
    else {
        return false;
    };
    Rules::load(&TreeSource { tree }).is_ok_and(|r| r.require_signed)
}

pub(super) fn ref_policy(
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
            ));
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
pub(super) fn review_gate(
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
pub(super) struct RefNames<'a> {
    pub(super) names: std::collections::BTreeSet<&'a str>,
    pub(super) lower: HashMap<String, &'a str>,
    /// Each short name's [`skeleton`] (the default branch's first), for look-alikes.
    pub(super) skeletons: HashMap<String, &'a str>,
}

impl<'a> RefNames<'a> {
    pub(super) fn new(
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

    pub(super) fn collision(&self, cmd: &Command) -> Option<String> {
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
pub(super) fn short_name(name: &str) -> &str {
    name.strip_prefix("refs/heads/")
        .or_else(|| name.strip_prefix("refs/tags/"))
        .unwrap_or(name)
}
