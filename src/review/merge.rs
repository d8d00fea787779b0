//! Merging a change is publishing: the target branch gets the change's latest patch
//! set through the push path itself ([`crate::receive::serve`], in-process, as
//! `skillsd import` does), so the merge is checked, stored, cached, recorded and
//! delivered in one transaction exactly like a push — whose
//! [`crate::receive::publish::run`] also checks again, under the change's row lock,
//! that the change may be merged, and marks it merged.
//!
//! * The target has not moved since the patch set's base (its tip is an ancestor of
//!   the patch set): a fast-forward; git keeps the change's commits as they are.
//! * It has: the server makes a merge commit (gix's three-way merge of trees and
//!   file contents) when nothing conflicts — author: the change's author, committer:
//!   who merged — and refuses with "rebase on main and push a new patch set" when
//!   something does.
//! * A merge racing another merge or a push: the branch's compare-and-swap lets one
//!   win; the other is tried again on the new tip (a new merge commit, checked
//!   again), three times at most.

use super::store::{self, Change};
use super::{Merging, Service};
use crate::db::users::{Role, User};
use gix::ObjectId;

/// How many times a merge is tried when the branch moved under it (a push, or a merge
/// on another node: merges on one node take turns).
const ATTEMPTS: usize = 5;

/// This node's merges into one repository take turns: each reads the tip, makes its
/// commit and publishes it before the next reads the tip, so they do not make each
/// other retry.
async fn merge_turn(repo: &str) -> tokio::sync::OwnedMutexGuard<()> {
    type Turns =
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>;
    static TURNS: std::sync::LazyLock<Turns> = std::sync::LazyLock::new(Default::default);
    let lock = {
        let mut turns = TURNS.lock().unwrap_or_else(|e| e.into_inner());
        turns.retain(|_, m| std::sync::Arc::strong_count(m) > 1);
        turns.entry(repo.to_string()).or_default().clone()
    };
    lock.lock_owned().await
}

/// Merges change `number` of `repo` for `user` (whose role there is set); the lines to
/// show, or why not.
pub async fn merge(svc: &Service, user: &User, repo: &str, number: i32) -> Result<String, String> {
    if user.role == Role::Reader {
        return Err(format!(
            "{} has read-only access (role: reader): only writers and admins merge",
            user.name
        ));
    }
    let db = |e: sqlx::Error| format!("the database is unavailable: {e}");
    let _turn = merge_turn(repo).await;
    for attempt in 1..=ATTEMPTS {
        let (name, copy) = crate::storage::replica::open(&svc.pool, &svc.repos, repo, true)
            .await
            .map_err(|e| format!("cannot open {repo}: {e}"))?;
        let mut conn = svc.pool.acquire().await.map_err(db)?;
        let change = store::find(&mut conn, &name, number)
            .await
            .map_err(db)?
            .ok_or_else(|| format!("no change {number} in {name}"))?;
        let patch_sets = store::patch_sets(&mut conn, change.id).await.map_err(db)?;
        let reviews = store::reviews(&mut conn, change.id).await.map_err(db)?;
        drop(conn);
        let Some(latest) = patch_sets.last().cloned() else {
            return Err(format!("change {number} has no patch set"));
        };
        let svc2 = svc.clone();
        let user2 = user.clone();
        let rt = tokio::runtime::Handle::current();
        let outcome = tokio::task::spawn_blocking(move || {
            let _reading = crate::maintenance::read_guard(copy.path());
            attempt_merge(&svc2, &user2, rt, name, copy, change, latest, &reviews)
        })
        .await
        .map_err(|e| format!("the merge failed: {e}"))?;
        match outcome {
            Outcome::Merged(text) => return Ok(text),
            Outcome::Refused(text) => return Err(text),
            Outcome::Moved if attempt < ATTEMPTS => {
                tracing::info!(
                    repo,
                    change = number,
                    attempt,
                    "the branch moved during a merge; trying again"
                );
            }
            Outcome::Moved => {}
        }
    }
    Err(format!(
        "change {number}: the branch kept moving while merging; try again in a moment"
    ))
}

enum Outcome {
    Merged(String),
    Refused(String),
    /// The branch moved between reading it and the transaction: try again.
    Moved,
}

#[allow(clippy::too_many_arguments)]
fn attempt_merge(
    svc: &Service,
    user: &User,
    rt: tokio::runtime::Handle,
    name: String,
    copy: gix::Repository,
    change: Change,
    latest: store::PatchSet,
    reviews: &[store::ReviewRow],
) -> Outcome {
    let number = change.number;
    let target_ref = format!("refs/heads/{}", change.target);
    let Ok(head) = ObjectId::from_hex(latest.commit_sha.as_bytes()) else {
        return Outcome::Refused(format!("change {number}'s patch set is unreadable"));
    };
    let super::Assessment {
        tip,
        base,
        review,
        paths,
        missing,
    } = match super::assess(&copy, &change, head, reviews) {
        Ok(a) => a,
        Err(e) => return Outcome::Refused(format!("change {number} cannot be merged: {e}")),
    };
    if !missing.is_empty() {
        return Outcome::Refused(format!(
            "change {number} cannot be merged yet:\n{}",
            missing
                .iter()
                .map(|m| format!("  - {m}\n"))
                .collect::<String>()
        ));
    }
    let scratch = match crate::receive::in_process::Scratch::new(&copy) {
        Ok(s) => s,
        Err(e) => return Outcome::Refused(format!("cannot prepare the merge: {e}")),
    };
    let fast_forward = base == Some(tip);
    let (new, ids) = if fast_forward {
        (head, Vec::new())
    } else {
        match merge_commit(
            scratch.repo(),
            tip,
            head,
            &change,
            reviews,
            user,
            latest.number,
        ) {
            Ok(Some(m)) => m,
            Ok(None) => return Outcome::Refused(conflict(number, &change.target)),
            Err(e) => return Outcome::Refused(format!("cannot merge change {number}: {e}")),
        }
    };
    let merging = Merging {
        change: change.clone(),
        patch_set: latest.number,
        review,
        paths,
    };
    let ctx = svc.in_process(user, rt, name, copy, Some(merging));
    let pushed = crate::receive::in_process::push_in_process(
        &ctx,
        scratch.repo(),
        scratch.dir(),
        &target_ref,
        Some(tip),
        new,
        ids,
        &[format!("merge-change={number}")],
    );
    let (messages, refused) = match pushed {
        Ok(r) => r,
        Err(e) => return Outcome::Refused(format!("the merge could not be stored: {e}")),
    };
    let how = if fast_forward {
        "fast-forward".to_string()
    } else {
        format!("merge commit on {}", &tip.to_string()[..7])
    };
    match refused {
        None => Outcome::Merged(format!(
            "change {number} merged into {} at {} ({how})\n{messages}",
            change.target,
            &new.to_string()[..7]
        )),
        Some(refusal) if refusal.reason == crate::receive::outcome::Reason::Stale => Outcome::Moved,
        Some(refusal) => Outcome::Refused(format!(
            "change {number} was not merged: {}\n{messages}",
            refusal.message
        )),
    }
}

/// A change that conflicts with its target: how to rebase it and push a new patch set.
fn conflict(number: i32, target: &str) -> String {
    format!(
        "change {number} conflicts with {target}: rebase on {target} and push a new patch set:\n  \
         git fetch origin refs/changes/{number}/head && git checkout FETCH_HEAD\n  \
         git rebase origin/{target}\n  \
         git push -o change={number} origin HEAD:refs/for/{target}\n"
    )
}

/// The merge commit of `head` into `tip`, written to `repo` (a scratch repository), and
/// the objects it adds; `None` when something conflicts.
fn merge_commit(
    repo: &gix::Repository,
    tip: ObjectId,
    head: ObjectId,
    change: &Change,
    reviews: &[store::ReviewRow],
    merger: &User,
    patch_set: i32,
) -> Result<Option<(ObjectId, Vec<ObjectId>)>, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let options = repo.tree_merge_options().map_err(|e| err(&e))?;
    let labels = gix::merge::blob::builtin_driver::text::Labels {
        ancestor: None,
        current: Some(change.target.as_str().into()),
        other: Some("change".into()),
    };
    let mut outcome = repo
        .merge_commits(tip, head, labels, options.into())
        .map_err(|e| err(&e))?;
    if outcome
        .tree_merge
        .has_unresolved_conflicts(gix::merge::tree::TreatAsUnresolved::git())
    {
        return Ok(None);
    }
    let tree = outcome
        .tree_merge
        .tree
        .write()
        .map_err(|e| err(&e))?
        .detach();
    let author = repo
        .find_commit(head)
        .map_err(|e| err(&e))?
        .author()
        .map_err(|e| err(&e))?
        .to_owned()
        .map_err(|e| err(&e))?;
    let now = gix::date::Time::now_local_or_utc();
    let committer = gix::actor::Signature {
        name: merger.name.clone().into(),
        email: format!("{}@skillsd", merger.name).into(),
        time: now,
    };
    let approvers: Vec<&str> = reviews
        .iter()
        .filter(|r| r.dismissed_at.is_none() && r.verdict == "approve")
        .map(|r| r.reviewer.as_str())
        .collect();
    let mut message = format!(
        "Merge change {}: {}\n\nChange: {} (patch set {patch_set})\n",
        change.number, change.title, change.number
    );
    for a in approvers {
        message.push_str(&format!("Approved-by: {a}\n"));
    }
    message.push_str(&format!("Merged-by: {}\n", merger.name));
    let commit = gix::objs::Commit {
        tree,
        parents: [tip, head].into_iter().collect(),
        author,
        committer,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    let id = repo.write_object(&commit).map_err(|e| err(&e))?.detach();
    let (ids, _) = crate::protocol::pack::objects_to_send(repo, &[id], &[tip, head], None)
        .map_err(|e| err(&e))?;
    Ok(Some((id, ids)))
}
