//! Review before publishing: the seed's DRAFT / IN_REVIEW / PUBLISHED / ARCHIVED
//! lifecycle on git refs, in the AGit / Gerrit way — no forge, only `git push` and a
//! few commands.
//!
//! * [`open`] ([`crate::receive::proposal`]): `git push origin HEAD:refs/for/main` is checked exactly as a push to
//!   `main` would be, then stored as a change's patch set (`refs/changes/N/K`,
//!   `refs/changes/N/head`) in one transaction with its rows; `main` does not move.
//! * [`act`]: approve, reject, abandon, mark ready — rows, under the change's lock.
//! * [`merge`]: an approved change lands through the push path itself (a
//!   fast-forward, or a merge commit the server makes when nothing conflicts), so a
//!   merge gets the checks, the one transaction (refs, pack, cache, sync log, push
//!   record, mirrors, webhooks) and the compare-and-swap of any push; that
//!   transaction also marks the change merged.
//! * [`crate::commands::review`]: `changes` and `review N ...` over SSH; the pages and the JSON API
//!   read [`store`] ([`crate::changes`]) and act through [`act`].
//!
//! The policy is `[review]` in `skillsd.toml` of the target branch
//! ([`crate::skills::review`]).

pub mod merge;

pub use crate::changes::{ChangeState, Merging, page_url, states_filter, store, target_review};
pub use crate::receive::proposal as open;

use crate::db::users::{Role, User};
use crate::receive::pre_receive::Policy;
use crate::repos::RepoStore;
use gix::ObjectId;
use sqlx::PgPool;

/// What acting on changes needs: the database, this node's copies, the push policy
/// (a merge is a push), the pages' address.
#[derive(Clone)]
pub struct Service {
    pub pool: PgPool,
    pub repos: RepoStore,
    pub policy: Policy,
    pub web_url: Option<String>,
}

impl Service {
    /// The context of a push the server makes itself, in process, for `user` (whose
    /// role on the repository is set) into `copy` of repository `name`: a review's merge
    /// (`merging`), or an edit made in the browser or through the contents API. Its
    /// commits are the server's own (`Policy::server_made`).
    pub fn in_process(
        &self,
        user: &User,
        rt: tokio::runtime::Handle,
        name: String,
        copy: gix::Repository,
        merging: Option<Merging>,
    ) -> crate::receive::Context {
        let policy = Policy {
            pusher_is_admin: user.role == Role::Admin,
            pusher: user.name.clone(),
            pusher_role: user.role.as_str(),
            merging_change: merging.is_some(),
            server_made: true,
            ..self.policy.clone()
        };
        crate::receive::Context {
            repo: copy,
            repo_name: name,
            default_branch: crate::repos::DEFAULT_BRANCH.to_string(),
            policy,
            user: user.clone(),
            pool: self.pool.clone(),
            rt,
            repos: self.repos.clone(),
            cancel: Default::default(),
            web_url: self.web_url.clone(),
            merging,
        }
    }
}

/// The files that differ between two commits (`from`: none, every file of `to`).
pub fn changed_paths(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: ObjectId,
) -> Result<Vec<String>, String> {
    let tree_of = |c: ObjectId| -> Result<gix::Tree<'_>, String> {
        repo.find_commit(c)
            .map_err(|e| e.to_string())?
            .tree()
            .map_err(|e| e.to_string())
    };
    let new = tree_of(to)?;
    let old = match from {
        Some(c) => tree_of(c)?,
        None => repo.empty_tree(),
    };
    let mut opts = gix::diff::Options::default();
    opts.track_path();
    let changes = crate::commit_tree::diff(repo, &old, &new, opts).map_err(|e| e.to_string())?;
    let mut paths: Vec<String> = changes
        .into_iter()
        .filter(|c| !c.entry_mode().is_tree())
        .map(|c| c.location().to_string())
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// What a reviewer does to a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Approve(String),
    Reject(String),
    Ready,
    Abandon,
    Merge,
}

impl Action {
    fn past(&self) -> &'static str {
        match self {
            Action::Approve(_) => "approved",
            Action::Reject(_) => "rejected",
            Action::Ready => "marked ready",
            Action::Abandon => "abandoned",
            Action::Merge => "merged",
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Action::Approve(_) => "approve",
            Action::Reject(_) => "reject",
            Action::Ready => "mark ready",
            Action::Abandon => "abandon",
            Action::Merge => "merge",
        }
    }
}

/// The longest review message.
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// Does `action` on change `number` of `repo` for `user` (whose role on the repository
/// is looked up); the line to show, or why it was refused. The same rules hold over
/// SSH and on the pages.
pub async fn act(
    svc: &Service,
    user: &User,
    repo: &str,
    number: i32,
    action: Action,
) -> Result<String, String> {
    let role = crate::db::users::role_on(&svc.pool, user, repo)
        .await
        .map_err(|e| format!("the database is unavailable: {e}"))?;
    let user = User {
        role,
        ..user.clone()
    };
    if let Action::Approve(m) | Action::Reject(m) = &action {
        check_message(m)?;
    }
    if action == Action::Merge {
        return merge::merge(svc, &user, repo, number).await;
    }
    let db = |e: sqlx::Error| format!("the database is unavailable: {e}");
    let mut tx = svc.pool.begin().await.map_err(db)?;
    let found = store::find(&mut tx, repo, number).await.map_err(db)?;
    let Some(found) = found else {
        return Err(format!("no change {number} in {repo}"));
    };
    // Under the change's lock: a merge or another review waits.
    let change = store::lock(&mut tx, found.id)
        .await
        .map_err(db)?
        .ok_or_else(|| format!("no change {number} in {repo}"))?;
    let state = change.state();
    if !state.is_open() {
        return Err(format!(
            "change {number} is {}: it can no longer be {}; open a new change to go on",
            state.as_str().to_lowercase(),
            action.past()
        ));
    }
    let latest = store::latest_patch_set(&mut tx, change.id)
        .await
        .map_err(db)?;
    let is_author = change.author == user.name;
    let message = match &action {
        Action::Approve(m) | Action::Reject(m) => {
            if is_author {
                return Err(format!(
                    "you are the author of change {number}: your own approval or rejection never counts; ask another reviewer"
                ));
            }
            let approve = matches!(action, Action::Approve(_));
            review(&mut tx, &change, latest, &user, approve, m).await?
        }
        Action::Ready => {
            if !is_author && role != Role::Admin {
                return Err(format!(
                    "only the author of change {number} ({}) or an admin can mark it ready",
                    change.author
                ));
            }
            if state != ChangeState::Draft {
                return Err(format!("change {number} is in review already"));
            }
            store::set_state(&mut tx, change.id, ChangeState::InReview, &user.name, None)
                .await
                .map_err(db)?;
            format!("change {number} is ready for review (IN_REVIEW)")
        }
        Action::Abandon => {
            if !is_author && role != Role::Admin {
                return Err(format!(
                    "only the author of change {number} ({}) or an admin can abandon it",
                    change.author
                ));
            }
            store::set_state(&mut tx, change.id, ChangeState::Abandoned, &user.name, None)
                .await
                .map_err(db)?;
            sqlx::query!("DELETE FROM change_skills WHERE change_id = $1", change.id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            format!("change {number} abandoned")
        }
        Action::Merge => unreachable!("merged above"),
    };
    crate::deliver::webhooks::enqueue_change(&mut tx, change.id, action.past(), &user.name)
        .await
        .map_err(|e| format!("the database is unavailable: {e}"))?;
    tx.commit().await.map_err(db)?;
    tracing::info!(repo, change = number, user = %user.name, action = action.verb(), "review");
    Ok(message)
}

/// A review message: at most [`MAX_MESSAGE_CHARS`], no control characters but line
/// breaks and tabs.
fn check_message(m: &str) -> Result<(), String> {
    if m.chars().count() > MAX_MESSAGE_CHARS {
        return Err(format!(
            "a review message is at most {MAX_MESSAGE_CHARS} characters"
        ));
    }
    if m.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("a review message cannot hold control characters".into());
    }
    Ok(())
}

/// An approval or rejection (with why) of the change's latest patch set, by a writer
/// or admin who is not its author.
async fn review(
    tx: &mut sqlx::PgConnection,
    change: &store::Change,
    latest: i32,
    user: &User,
    approve: bool,
    m: &str,
) -> Result<String, String> {
    let db = |e: sqlx::Error| format!("the database is unavailable: {e}");
    if user.role == Role::Reader {
        return Err(format!(
            "{} has read-only access (role: reader): only writers and admins review",
            user.name
        ));
    }
    let verdict = if approve {
        "approve"
    } else {
        if m.trim().is_empty() {
            return Err("say why: review N --reject -m \"what must change\"".into());
        }
        "reject"
    };
    store::add_review(
        tx,
        change.id,
        latest,
        &user.name,
        user.role.as_str(),
        verdict,
        m.trim(),
    )
    .await
    .map_err(db)?;
    Ok(format!(
        "change {} {} by {} (patch set {latest})",
        change.number,
        if approve { "approved" } else { "rejected" },
        user.name
    ))
}

/// What an open change still needs to be merged, computed as a merge would (the
/// target's `[review]` at its tip, the files the change touches); empty: mergeable.
pub async fn readiness(
    svc: &Service,
    change: &store::Change,
    reviews: &[store::ReviewRow],
) -> Result<Vec<String>, String> {
    let (_, copy) = crate::storage::replica::open(&svc.pool, &svc.repos, &change.repo, false)
        .await
        .map_err(|e| e.to_string())?;
    let change = change.clone();
    let reviews = reviews.to_vec();
    tokio::task::spawn_blocking(move || {
        let head = crate::repos::ref_target(&copy, &format!("refs/changes/{}/head", change.number))
            .ok_or_else(|| "its patch set is missing".to_string())?;
        Ok(assess(&copy, &change, head, &reviews)?.missing)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// A change's patch set against its target's tip, as a merge sees it.
pub struct Assessment {
    /// The target branch's tip.
    pub tip: ObjectId,
    /// The merge base of the tip and the patch set.
    pub base: Option<ObjectId>,
    /// The target's `[review]`, read from its tip.
    pub review: crate::skills::review::Review,
    /// The files the change touches (merge base → patch set).
    pub paths: Vec<String>,
    /// What the change still lacks to be merged ([`store::missing`]).
    pub missing: Vec<String>,
}

/// Assesses `change` with its patch set `head` in `repo` (this node's copy): the
/// target's tip, `[review]` and the change's files, and what it lacks; why not, when
/// the target or the change cannot be read.
pub fn assess(
    repo: &gix::Repository,
    change: &store::Change,
    head: ObjectId,
    reviews: &[store::ReviewRow],
) -> Result<Assessment, String> {
    let tip = crate::repos::ref_target(repo, &format!("refs/heads/{}", change.target))
        .ok_or_else(|| format!("the branch `{}` no longer exists", change.target))?;
    let base = repo
        .merge_base(tip, head)
        .ok()
        .flatten()
        .map(|b| b.detach());
    let review = target_review(repo, tip);
    let paths = changed_paths(repo, base, head)?;
    let missing = store::missing(change, &review, reviews, &paths);
    Ok(Assessment {
        tip,
        base,
        review,
        paths,
        missing,
    })
}

/// One line on what a proposed skill changes: the frontmatter fields that differ, the
/// body's lines added and removed, its warnings.
pub fn diff_summary(skill: &store::ChangeSkill) -> String {
    let mut parts = Vec::new();
    let empty = serde_json::Map::new();
    let old = skill
        .old_frontmatter
        .as_ref()
        .and_then(|v| v.as_object())
        .unwrap_or(&empty);
    let new = skill
        .frontmatter
        .as_ref()
        .and_then(|v| v.as_object())
        .unwrap_or(&empty);
    if skill.operation != "create" && skill.operation != "delete" {
        let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        let changed: Vec<&str> = keys
            .into_iter()
            .filter(|k| old.get(*k) != new.get(*k))
            .map(String::as_str)
            .collect();
        if !changed.is_empty() {
            parts.push(format!("fields: {}", changed.join(", ")));
        }
    }
    let (added, removed) = line_changes(
        skill.old_body.as_deref().unwrap_or(""),
        skill.body.as_deref().unwrap_or(""),
    );
    if added + removed > 0 {
        parts.push(format!("body +{added} -{removed}"));
    }
    let warnings = skill.warnings.as_array().map_or(0, Vec::len);
    if warnings > 0 {
        parts.push(format!(
            "{warnings} warning{}",
            if warnings == 1 { "" } else { "s" }
        ));
    }
    if parts.is_empty() {
        "no content change".into()
    } else {
        parts.join("; ")
    }
}

/// Lines added and removed between two texts (a line diff's counts).
pub fn line_changes(old: &str, new: &str) -> (usize, usize) {
    diff_lines(old, new)
        .iter()
        .fold((0, 0), |(a, r), (kind, _)| match kind {
            LineKind::Added => (a + 1, r),
            LineKind::Removed => (a, r + 1),
            LineKind::Same => (a, r),
        })
}

/// A line of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Same,
    Added,
    Removed,
}

/// The lines of `old` and `new` as a diff (longest common subsequence; texts past
/// 2,000 lines on either side are compared as a whole removal and addition, so a
/// page never spends quadratic time).
pub fn diff_lines<'a>(old: &'a str, new: &'a str) -> Vec<(LineKind, &'a str)> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Common head and tail first: most edits touch a few lines.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out: Vec<(LineKind, &str)> = a[..head].iter().map(|l| (LineKind::Same, *l)).collect();
    if ma.len() > 2000 || mb.len() > 2000 || ma.len() * mb.len() > 4_000_000 {
        out.extend(ma.iter().map(|l| (LineKind::Removed, *l)));
        out.extend(mb.iter().map(|l| (LineKind::Added, *l)));
    } else {
        let (n, m) = (ma.len(), mb.len());
        let mut lcs = vec![0u16; (n + 1) * (m + 1)];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * (m + 1) + j] = if ma[i] == mb[j] {
                    lcs[(i + 1) * (m + 1) + j + 1] + 1
                } else {
                    lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && ma[i] == mb[j] {
                out.push((LineKind::Same, ma[i]));
                i += 1;
                j += 1;
            } else if j < m && (i == n || lcs[i * (m + 1) + j + 1] > lcs[(i + 1) * (m + 1) + j]) {
                // On a tie the removal comes first, as in git's diffs.
                out.push((LineKind::Added, mb[j]));
                j += 1;
            } else {
                out.push((LineKind::Removed, ma[i]));
                i += 1;
            }
        }
    }
    out.extend(a[a.len() - tail..].iter().map(|l| (LineKind::Same, *l)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diff_finds_the_edit() {
        let d = diff_lines("a\nb\nc\nd\n", "a\nB\nc\nd\ne\n");
        let kinds: Vec<LineKind> = d.iter().map(|(k, _)| *k).collect();
        use LineKind::*;
        assert_eq!(kinds, vec![Same, Removed, Added, Same, Same, Added]);
        assert_eq!(line_changes("a\nb\n", "a\nb\n"), (0, 0));
        assert_eq!(line_changes("", "x\ny\n"), (2, 0));
    }

    #[test]
    fn states_filter_reads_words() {
        assert_eq!(states_filter(None), Some(vec!["DRAFT", "IN_REVIEW"]));
        assert_eq!(states_filter(Some("all")), Some(vec![]));
        assert_eq!(states_filter(Some("in-review")), Some(vec!["IN_REVIEW"]));
        assert_eq!(states_filter(Some("bogus")), None);
    }
}
