//! A push to `refs/for/<branch>`: a change opened, or a patch set added to one; and
//! the change a merging push marks merged ([`mark_merged`]).
//!
//! [`prepare`] reads what the push asks for (the target branch, push options, the
//! change it updates) before anything is checked; the push is then checked by
//! [`crate::receive::pre_receive`] as an update of the target branch from its tip
//! now; [`publish`] stores it in one transaction: the pack, `refs/changes/N/K` and
//! `refs/changes/N/head` by compare-and-swap, the change's rows (its patch set, the
//! skills it proposes, stale approvals dismissed), the push record, the generation
//! and the `change` webhooks. The target branch does not move.

use super::Context;
use super::commands::Command;
use super::publish::{Brought, PublishError, Published, Refused};
use crate::cache::changes::Op;
use crate::cache::pushes::PushRecord;
use crate::changes::store::{self, Change};
use crate::changes::{ChangeState, Merging};
use crate::storage::{self, publish};
use gix::ObjectId;
use std::collections::HashMap;

/// The prefix of the refs a change is pushed to.
pub const FOR_PREFIX: &str = "refs/for/";

/// Longest topic and title (characters), and description.
pub const MAX_TOPIC_CHARS: usize = 100;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// What a push to `refs/for/<branch>` asks for.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The target branch (short name) and its full ref.
    pub target: String,
    pub target_ref: String,
    /// The target's tip now: what the patch set is checked against.
    pub base: ObjectId,
    /// The pushed commit.
    pub commit: ObjectId,
    /// The open change it adds a patch set to (`-o change=N`, or the same topic).
    pub existing: Option<Change>,
    /// `-o title=…` (else the commit's subject for a new change).
    pub title: Option<String>,
    pub description: Option<String>,
    pub topic: Option<String>,
    pub draft: bool,
}

impl Proposal {
    /// The command the checks see: the target branch moved from its tip to the commit.
    pub fn as_update(&self) -> Command {
        Command {
            old: self.base,
            new: self.commit,
            name: self.target_ref.clone(),
        }
    }
}

/// What [`publish`] stored.
#[derive(Debug, Clone)]
pub struct Opened {
    pub number: i32,
    /// The branch it is for.
    pub target: String,
    pub patch_set: i32,
    pub title: String,
    pub state: ChangeState,
    pub created: bool,
}

/// Reads what the push to `cmd.name` (`refs/for/…`) asks for; the one line that says
/// why not.
pub fn prepare(
    ctx: &Context,
    cmd: &Command,
    options: &[String],
    current: &HashMap<String, ObjectId>,
) -> Result<Proposal, String> {
    let (target, target_ref, base) = target_of(cmd, current)?;
    let options = PushOptions::parse(options)?;
    let existing = ctx.rt.block_on(existing_change(
        ctx,
        &target,
        options.change,
        options.topic.as_deref(),
    ))?;
    Ok(Proposal {
        target,
        target_ref,
        base,
        commit: cmd.new,
        existing,
        title: options.title,
        description: options.description,
        topic: options.topic,
        draft: options.draft,
    })
}

/// The branch a push to `refs/for/BRANCH` is for, its ref and its tip.
fn target_of(
    cmd: &Command,
    current: &HashMap<String, ObjectId>,
) -> Result<(String, String, ObjectId), String> {
    let target = cmd.name.strip_prefix(FOR_PREFIX).unwrap_or_default();
    if target.contains('%') {
        return Err(format!(
            "options go in push options, not the ref name: git push -o topic=NAME origin HEAD:{FOR_PREFIX}{}",
            target.split('%').next().unwrap_or_default()
        ));
    }
    if cmd.is_delete() {
        return Err(format!(
            "{} cannot be deleted: abandon a change with `review N --abandon`",
            cmd.name
        ));
    }
    let target_ref = format!("refs/heads/{target}");
    let Some(base) = (!target.is_empty())
        .then(|| current.get(&target_ref).copied())
        .flatten()
    else {
        let mut branches: Vec<&str> = current
            .keys()
            .filter_map(|n| n.strip_prefix("refs/heads/"))
            .collect();
        branches.sort();
        return Err(format!(
            "there is no branch `{target}` to propose a change to; push to {FOR_PREFIX}BRANCH, the branches are: {}",
            if branches.is_empty() {
                "(none yet)".to_string()
            } else {
                branches.join(", ")
            }
        ));
    };
    if cmd.new == base {
        return Err(format!(
            "no new commits: {target} is at {} already; commit your change first",
            &base.to_string()[..7]
        ));
    }
    Ok((target.to_string(), target_ref, base))
}

/// The push options a proposal reads (`git push -o KEY=VALUE`); others are ignored.
#[derive(Default)]
struct PushOptions {
    topic: Option<String>,
    title: Option<String>,
    description: Option<String>,
    draft: bool,
    change: Option<i32>,
}

impl PushOptions {
    fn parse(options: &[String]) -> Result<Self, String> {
        let mut out = PushOptions::default();
        for option in options {
            let (key, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
            match key {
                "topic" => out.topic = Some(one_line(value, "topic", MAX_TOPIC_CHARS)?),
                "title" => out.title = Some(one_line(value, "title", MAX_TITLE_CHARS)?),
                "description" => {
                    if value.chars().count() > MAX_DESCRIPTION_CHARS {
                        return Err(format!(
                            "the description is {} characters, more than {MAX_DESCRIPTION_CHARS}",
                            value.chars().count()
                        ));
                    }
                    out.description = Some(value.replace("\\n", "\n"));
                }
                "draft" | "wip" => out.draft = true,
                "change" => {
                    out.change = Some(value.trim().parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(
                        || format!("`-o change={value}`: a change is named by its number, e.g. -o change=12"),
                    )?)
                }
                _ => {}
            }
        }
        if out.topic.as_deref() == Some("") {
            out.topic = None;
        }
        Ok(out)
    }
}

/// The open change a push adds a patch set to: the one `-o change=N` names (the
/// pusher's, open, for the same branch), else the pusher's open change with the topic.
async fn existing_change(
    ctx: &Context,
    target: &str,
    number: Option<i32>,
    topic: Option<&str>,
) -> Result<Option<Change>, String> {
    let mut conn = ctx.pool.acquire().await.map_err(db)?;
    match (number, topic) {
        (Some(n), _) => {
            let change = store::find(&mut conn, &ctx.repo_name, n)
                .await
                .map_err(db)?
                .ok_or_else(|| format!("there is no change {n} in {}", ctx.repo_name))?;
            if change.author != ctx.user.name {
                return Err(format!(
                    "change {n} is {}'s: only its author adds patch sets; push without -o change to open your own",
                    change.author
                ));
            }
            if !change.state().is_open() {
                return Err(format!(
                    "change {n} is {}: open a new change instead (push without -o change)",
                    change.state().as_str().to_lowercase()
                ));
            }
            if change.target != target {
                return Err(format!(
                    "change {n} is for `{}`, not `{target}`: push to {FOR_PREFIX}{}",
                    change.target, change.target
                ));
            }
            Ok(Some(change))
        }
        (None, Some(t)) => {
            let found = store::open_with_topic(&mut conn, &ctx.repo_name, &ctx.user.name, t)
                .await
                .map_err(db)?;
            match found {
                Some(c) if c.target != target => Err(format!(
                    "your change {} has the topic `{t}` and is for `{}`: use another topic for a change to `{target}`",
                    c.number, c.target
                )),
                found => Ok(found),
            }
        }
        (None, None) => Ok(None),
    }
}

fn db(e: sqlx::Error) -> String {
    format!("the database is unavailable, nothing was written: {e}")
}

/// A push option's value that must be one printable line of at most `max` characters.
fn one_line(value: &str, what: &str, max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(format!(
            "the {what} is {} characters, more than {max}; keep it short",
            value.chars().count()
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() || crate::skills::invisible(c))
    {
        return Err(format!(
            "the {what} holds control or invisible characters; use plain text"
        ));
    }
    Ok(value.to_string())
}

/// The commit's subject: its first line, at most [`MAX_TITLE_CHARS`].
fn subject(repo: &gix::Repository, commit: ObjectId) -> String {
    let text = repo
        .find_commit(commit)
        .ok()
        .and_then(|c| c.message_raw().ok().map(|m| m.to_string()))
        .unwrap_or_default();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no title)");
    let clean: String = line
        .trim()
        .chars()
        .filter(|c| !c.is_control() && !crate::skills::invisible(*c))
        .take(MAX_TITLE_CHARS)
        .collect();
    if clean.is_empty() {
        "(no title)".into()
    } else {
        clean
    }
}

/// The change's one transaction: the repository locked, the change's number taken
/// (a new change) or its row locked (a patch set), the refs created or moved by
/// compare-and-swap, the pack, the rows, the push record, the generation, the
/// webhooks. On an error nothing is committed.
pub fn publish(
    ctx: &Context,
    brought: &Brought<'_>,
    proposal: &Proposal,
    record: &PushRecord,
) -> Result<(Published, Opened), PublishError> {
    let (rt, view, pack) = (&ctx.rt, brought.view, brought.pack);
    // The skills it proposes, against the target's tip (read before the transaction:
    // the objects are in the quarantine already).
    let ops = crate::cache::changes::between(
        view,
        Some(proposal.base),
        proposal.commit,
        Some(brought.parsed),
    )?;
    let mut conn = rt.block_on(ctx.pool.acquire())?;
    let mut tx = rt.block_on(sqlx::Connection::begin(&mut *conn))?;
    let generation = rt.block_on(publish::lock(&mut tx, &ctx.repo_name))?;
    let (change, patch_set, created) = rt.block_on(change_of(&mut tx, ctx, view, proposal))?;
    rt.block_on(move_change_refs(
        &mut tx,
        &ctx.repo_name,
        change.number,
        patch_set,
        proposal.commit,
    ))?;
    if let Some((pack, idx)) = pack {
        storage::packs::upload(rt, &mut tx, &ctx.repo_name, pack, idx, generation + 1)?;
    }
    rt.block_on(crate::cache::pushes::insert(&mut tx, record))?;
    rt.block_on(record_patch_set(
        &mut tx,
        ctx,
        view,
        proposal,
        &change,
        (patch_set, created),
        record,
    ))?;
    let default = proposal.target == ctx.default_branch;
    rt.block_on(write_skills(
        &mut tx,
        &ctx.repo_name,
        change.id,
        &ops,
        default,
    ))?;
    let previous = generation;
    let generation = rt.block_on(publish::bump(&mut tx, &ctx.repo_name))?;
    rt.block_on(crate::deliver::webhooks::enqueue_change(
        &mut tx,
        change.id,
        if created { "opened" } else { "updated" },
        &ctx.user.name,
    ))?;
    rt.block_on(tx.commit())?;
    // A patch set may retitle the change (`-o title=`); a new change has its own.
    let title = match (&proposal.title, created) {
        (Some(t), false) => t.clone(),
        _ => change.title.clone(),
    };
    Ok((
        Published {
            cache: None,
            generation: Some(generation),
            previous,
        },
        Opened {
            number: change.number,
            target: proposal.target.clone(),
            patch_set,
            title,
            state: change.state(),
            created,
        },
    ))
}

/// The change the proposal goes to, locked, with its new patch set's number and
/// whether it was opened now: the existing one (still open), or a new one.
async fn change_of(
    tx: &mut sqlx::PgConnection,
    ctx: &Context,
    view: &gix::Repository,
    proposal: &Proposal,
) -> Result<(Change, i32, bool), PublishError> {
    if let Some(found) = &proposal.existing {
        let change = store::lock(&mut *tx, found.id)
            .await?
            .filter(|c| c.state().is_open())
            .ok_or(Refused::Closed(found.number))?;
        let k = store::latest_patch_set(&mut *tx, change.id).await? + 1;
        return Ok((change, k, false));
    }
    let number: i32 = sqlx::query_scalar!(
        r#"SELECT coalesce(max(number), 0) + 1 AS "next!" FROM changes WHERE repo = $1"#,
        ctx.repo_name,
    )
    .fetch_one(&mut *tx)
    .await?;
    let title = proposal
        .title
        .clone()
        .unwrap_or_else(|| subject(view, proposal.commit));
    let state = if proposal.draft {
        ChangeState::Draft
    } else {
        ChangeState::InReview
    };
    let change = sqlx::query_as!(
        Change,
        "INSERT INTO changes (repo, number, target, author, title, description, topic, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, repo, number, target, author, title, description, topic, state,
                   created_at, updated_at, closed_by, closed_at, merged_commit",
        ctx.repo_name,
        number,
        proposal.target,
        ctx.user.name,
        title,
        proposal.description.as_deref().unwrap_or(""),
        proposal.topic,
        state.as_str(),
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((change, 1, true))
}

/// `refs/changes/N/K` (new) and `refs/changes/N/head` moved to the commit, by
/// compare-and-swap against the database's refs.
async fn move_change_refs(
    tx: &mut sqlx::PgConnection,
    repo: &str,
    number: i32,
    patch_set: i32,
    commit: ObjectId,
) -> Result<(), PublishError> {
    let commit = commit.to_string();
    let patch_ref = format!("refs/changes/{number}/{patch_set}");
    let head_ref = format!("refs/changes/{number}/head");
    let old_head: Option<String> = sqlx::query_scalar!(
        "SELECT target FROM git_refs WHERE repo = $1 AND name = $2",
        repo,
        head_ref,
    )
    .fetch_optional(&mut *tx)
    .await?;
    for (name, old) in [(&patch_ref, None), (&head_ref, old_head)] {
        let change = publish::RefChange {
            name,
            old,
            new: Some((commit.clone(), None)),
        };
        if !publish::compare_and_swap(&mut *tx, repo, &change).await? {
            return Err(Refused::Moved(name.to_string()).into());
        }
    }
    Ok(())
}

/// The patch set's row; for a change that existed, its approvals dismissed when the
/// target's review rules say so, and its title and description as the push gives them.
async fn record_patch_set(
    tx: &mut sqlx::PgConnection,
    ctx: &Context,
    view: &gix::Repository,
    proposal: &Proposal,
    change: &Change,
    (patch_set, created): (i32, bool),
    record: &PushRecord,
) -> Result<(), PublishError> {
    sqlx::query!(
        "INSERT INTO change_patch_sets (change_id, number, commit_sha, base_sha, pushed_by, push_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
        change.id,
        patch_set,
        proposal.commit.to_string(),
        proposal.base.to_string(),
        ctx.user.name,
        record.id,
    )
    .execute(&mut *tx)
    .await?;
    if created {
        return Ok(());
    }
    if crate::changes::target_review(view, proposal.base).dismiss_stale {
        sqlx::query!(
            "UPDATE change_reviews SET dismissed_at = now()
             WHERE change_id = $1 AND dismissed_at IS NULL AND verdict = 'approve'",
            change.id,
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "UPDATE changes SET updated_at = now(), title = coalesce($2, title),
                description = coalesce($3, description)
         WHERE id = $1",
        change.id,
        proposal.title,
        proposal.description,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The skills the latest patch set proposes replace the change's rows. The old
/// version of each is the cache's (the default branch) when there is one.
async fn write_skills(
    tx: &mut sqlx::PgConnection,
    repo: &str,
    change: i64,
    ops: &[Op],
    default_branch: bool,
) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM change_skills WHERE change_id = $1", change)
        .execute(&mut *tx)
        .await?;
    for op in ops {
        let (path, old_path, operation, row) = match op {
            Op::Create(row) => (&row.skill.path, None, "create", Some(row)),
            Op::Update(row) => (&row.skill.path, None, "update", Some(row)),
            Op::Rename { from, row } => (&row.skill.path, Some(from), "rename", Some(row)),
            Op::Delete { path } => (path, None, "delete", None),
            Op::Invalid { .. } => continue,
        };
        let skill = row.map(|r| &r.skill);
        let warnings =
            serde_json::to_value(skill.map(|s| &s.warnings[..]).unwrap_or(&[])).unwrap_or_default();
        sqlx::query!(
            "INSERT INTO change_skills (change_id, path, slug, old_path, operation, title, description,
                                        status, frontmatter, body, old_frontmatter, old_body, warnings)
             SELECT $1, $2, coalesce($3, s.slug, $2), $4, $5, $6, $7, $8, $9, $10,
                    s.frontmatter, s.body, $11
             FROM (SELECT 1) AS one
             LEFT JOIN skills s ON $12 AND s.repo = $13 AND s.path = coalesce($4, $2)
             ON CONFLICT (change_id, path) DO NOTHING",
            change,
            path,
            skill.map(|s| s.slug.as_str()),
            old_path.map(String::as_str),
            operation,
            skill.map(|s| s.title.as_str()),
            skill.and_then(|s| s.description.as_deref()),
            skill.map(|s| s.status.as_str()),
            skill.map(|s| &s.frontmatter),
            skill.map(|s| s.body.as_str()),
            warnings,
            default_branch,
            repo,
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// In the merge's transaction (from [`crate::receive::publish::run`]), under the
/// change's row lock: the change is still open, its latest patch set is the one being
/// merged, and it still has what it needs (a rejection or a new patch set since is
/// seen here); then it is marked merged and the `change` webhooks are told.
pub async fn mark_merged(
    tx: &mut sqlx::PgConnection,
    merging: &Merging,
    merger: &str,
    commit: ObjectId,
) -> Result<(), PublishError> {
    let number = merging.change.number;
    let change = store::lock(tx, merging.change.id)
        .await?
        .ok_or(Refused::Gone(number))?;
    let latest = store::latest_patch_set(tx, change.id).await?;
    if change.state().is_open() && latest != merging.patch_set {
        return Err(Refused::NewPatchSet { number, latest }.into());
    }
    let reviews = store::reviews(tx, change.id).await?;
    let missing = store::missing(&change, &merging.review, &reviews, &merging.paths);
    if !missing.is_empty() {
        return Err(Refused::Unapproved { number, missing }.into());
    }
    store::set_state(
        tx,
        change.id,
        ChangeState::Merged,
        merger,
        Some(&commit.to_string()),
    )
    .await?;
    crate::deliver::webhooks::enqueue_change(tx, change.id, "merged", merger).await?;
    Ok(())
}
