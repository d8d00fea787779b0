//! Applying a branch's changes to the cache: one transaction per sync, serialised per
//! repository with an advisory lock, and anchored on the `sync_state` watermark.
//!
//! The sync always goes from the commit the cache reflects (the watermark) to the
//! branch's *current* tip, not from a push's old/new pair: a sync that runs late, twice
//! or after a failed one still lands the cache exactly on the tip.

//!
//! Its parts: [`replay`] (a push's or a late sync's steps from the watermark to the
//! tip), [`reconcile`] (the cache compared with the tip file by file) and [`write`]
//! (rows, the sync log and the NOTIFY, shared by both).

use super::pushes::{self, PushRecord};
use super::{CacheError, Result};
use gix::ObjectId;
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use tokio::runtime::Handle;
use uuid::Uuid;

mod reconcile;
mod replay;
mod write;

pub use reconcile::reconcile;
pub use replay::{MAX_REPLAY, Prepared, Replay};

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The commit the cache now reflects.
    pub commit: Option<String>,
    pub created: usize,
    pub updated: usize,
    pub renamed: usize,
    pub deleted: usize,
    pub failed: usize,
    /// Rows were written without their full-text vectors (a big sync): the search
    /// indexer ([`super::search`]) fills them.
    pub search_deferred: bool,
    /// A reconcile into an empty table loaded the rows before building the indexes
    /// ([`bulk`]).
    pub bulk_loaded: bool,
    /// The bulk load left indexes to build after the commit
    /// ([`crate::cache::index_builds`]).
    pub indexes_deferred: bool,
    /// Rows written without a vector of skillsd's (a bulk load fills them at its end).
    vectors_lacking: usize,
    /// Skill files whose version 1 went in with their new rows
    /// ([`Target::first_versions`]): the versions written after the rows leave them out.
    versioned: Vec<String>,
}

impl SyncOutcome {
    /// Starts on `rt` (a server's) what the sync left for after its commit
    /// ([`crate::cache::after_commit`]): the vectors it did not write, the indexes its
    /// bulk load did not build, the GIN pending lists its rows went into.
    pub fn follow_up(&self, rt: &Handle, pool: &PgPool) {
        let (search, indexes) = (self.search_deferred, self.indexes_deferred);
        let entries = self.created + self.updated + self.renamed > 0;
        if !search && !indexes && !entries {
            return;
        }
        let pool = pool.clone();
        rt.spawn(async move { crate::cache::after_commit(&pool, search, indexes).await });
    }

    fn add(&mut self, other: &SyncOutcome) {
        self.created += other.created;
        self.updated += other.updated;
        self.renamed += other.renamed;
        self.deleted += other.deleted;
        self.failed += other.failed;
        self.search_deferred |= other.search_deferred;
        self.vectors_lacking += other.vectors_lacking;
        self.versioned.extend(other.versioned.iter().cloned());
    }

    /// `3 created, 1 refreshed, 2 deleted` (a reconcile does not detect renames).
    pub fn reconcile_summary(&self) -> String {
        self.describe(&[
            ("created", self.created),
            ("refreshed", self.updated),
            ("deleted", self.deleted),
        ])
    }

    /// `3 created, 1 updated, 0 renamed, 2 deleted`.
    pub fn summary(&self) -> String {
        self.describe(&[
            ("created", self.created),
            ("updated", self.updated),
            ("renamed", self.renamed),
            ("deleted", self.deleted),
        ])
    }

    /// The counts, then `, N failed` when any failed.
    fn describe(&self, counts: &[(&str, usize)]) -> String {
        let mut parts: Vec<String> = counts
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        parts.join(", ")
    }
}

/// Brings the cache of `repo_name`'s `branch` up to the branch's current tip. Blocking:
/// call it from a blocking thread; `rt` drives the database futures. When `push` is
/// given, the push record is written in the same transaction.
pub fn sync_branch(
    rt: &Handle,
    pool: &PgPool,
    repo: &gix::Repository,
    repo_name: &str,
    branch: &str,
    synced_by: &str,
    push: Option<&PushRecord>,
) -> Result<SyncOutcome> {
    let started_at = chrono::Utc::now();
    let mut conn = rt.block_on(pool.acquire())?;
    let mut tx = rt.block_on(sqlx::Connection::begin(&mut *conn))?;
    rt.block_on(lock(&mut tx, repo_name))?;
    if let Some(p) = push {
        rt.block_on(pushes::insert(&mut tx, p))?;
    }
    let tip = branch_tip(repo, branch)?;
    rt.block_on(check_current(&mut tx, repo_name, branch, tip))?;
    let Some(tip) = tip else {
        let watermark = rt.block_on(watermark(&mut tx, repo_name, branch))?;
        rt.block_on(tx.commit())?;
        return Ok(SyncOutcome {
            commit: watermark,
            ..Default::default()
        });
    };
    let replay = Replay {
        repo,
        repo_name,
        branch,
        tip,
        synced_by,
        push_id: push.map(|p| p.id),
        started_at,
        parsed: None,
        bulk_from: None,
    };
    let outcome = replay.run(rt, &mut tx)?;
    rt.block_on(tx.commit())?;
    shrink(&mut conn);
    outcome.follow_up(rt, pool);
    Ok(outcome)
}

async fn watermark(
    tx: &mut PgConnection,
    repo_name: &str,
    branch: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "SELECT commit_sha FROM sync_state WHERE repo = $1 AND branch = $2",
        repo_name,
        branch,
    )
    .fetch_optional(tx)
    .await
}

/// The cache's watermark of `branch` now (read outside any transaction: a guess that a
/// push's transaction confirms under the lock).
pub async fn current_watermark(
    pool: &PgPool,
    repo_name: &str,
    branch: &str,
) -> sqlx::Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    watermark(&mut conn, repo_name, branch).await
}

/// Completes the pushes of `repo_name` that were in progress when the server stopped
/// (their refs may have moved, their cache write never committed): each one's refs
/// are judged from the repository as it is, and the push that brought the default
/// branch to its current tip brings the cache there under its pusher's name, in one
/// transaction with its record. Returns how many were found.
pub fn finish_interrupted(
    rt: &Handle,
    pool: &PgPool,
    repo: &gix::Repository,
    repo_name: &str,
    branch: &str,
) -> Result<usize> {
    let pending = {
        let mut conn = rt.block_on(pool.acquire())?;
        rt.block_on(pushes::interrupted(&mut conn, repo_name, repo))?
    };
    let default_ref = format!("refs/heads/{branch}");
    let tip = branch_tip(repo, branch)?.map(|t| t.to_string());
    let found = pending.len();
    for p in pending {
        let brought_tip = p
            .refs
            .iter()
            .any(|r| r.name == default_ref && r.result == "ok" && Some(&r.new) == tip.as_ref());
        tracing::warn!(repo = %repo_name, push = %p.id, user = %p.user, brought_tip, "completing a push the server stopped in");
        if brought_tip {
            sync_branch(rt, pool, repo, repo_name, branch, &p.user, Some(&p))?;
        } else {
            let mut conn = rt.block_on(pool.acquire())?;
            rt.block_on(pushes::insert(&mut conn, &p))?;
        }
    }
    Ok(found)
}

/// Gives back the memory a big sync made the connection's buffers grow to (its
/// batches are megabytes): the connection goes back to the pool and would keep it
/// while idle, for as long as the pool keeps the connection.
fn shrink(conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>) {
    sqlx::Connection::shrink_buffers(&mut **conn);
}

/// Serialises cache writers of one repository, across processes sharing the database.
pub async fn lock(tx: &mut PgConnection, repo_name: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        format!("skillsd:cache:{repo_name}"),
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// The cache only ever moves to what the database's refs say (the store of record): a
/// node whose copy is behind them (another node's push committed since it refreshed)
/// must refresh first. Repositories the database does not hold (under a stock git
/// server, `skillsd hook`) are their own record.
async fn check_current(
    tx: &mut PgConnection,
    repo_name: &str,
    branch: &str,
    local_tip: Option<ObjectId>,
) -> Result<()> {
    let row: Option<Option<String>> = sqlx::query_scalar!(
        "SELECT (SELECT target FROM git_refs WHERE repo = $1 AND name = $2)
         FROM git_repos WHERE name = $1",
        repo_name,
        format!("refs/heads/{branch}"),
    )
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        Some(db_tip) if db_tip != local_tip.map(|t| t.to_string()) => Err(CacheError::Behind),
        _ => Ok(()),
    }
}

fn branch_tip(repo: &gix::Repository, branch: &str) -> Result<Option<ObjectId>> {
    match repo.try_find_reference(format!("refs/heads/{branch}").as_str()) {
        Ok(Some(mut r)) => Ok(Some(r.peel_to_id().map_err(CacheError::git)?.detach())),
        Ok(None) => Ok(None),
        Err(e) => Err(CacheError::git(e)),
    }
}

async fn set_watermark(tx: &mut PgConnection, target: &Target<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO sync_state (repo, branch, commit_sha, updated_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (repo, branch) DO UPDATE SET commit_sha = EXCLUDED.commit_sha, updated_at = now()",
        target.repo,
        target.branch,
        target.commit,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Where and on whose behalf a set of operations is applied.
#[derive(Clone, Copy)]
struct Target<'a> {
    repo: &'a str,
    branch: &'a str,
    commit: &'a str,
    synced_by: &'a str,
    push_id: Option<Uuid>,
    started_at: chrono::DateTime<chrono::Utc>,
    /// How an upsert of an existing row is logged: `update` (push) or `refresh` (reconcile).
    update_operation: &'static str,
    /// In a [`bulk`] load (an empty table, locked): the transaction's `now()`; rows are
    /// then all new and go in with `COPY`.
    bulk_now: Option<chrono::DateTime<chrono::Utc>>,
    /// The skill files that are their skill alone (no other file in its folder), at
    /// the commit the rows are read from, when that is the end of the sync: in a
    /// reconcile's bulk load, and in a replay's last step. The rows a `COPY` creates
    /// for them `PUBLISHED` get their version 1 with them
    /// ([`crate::cache::versions::copy_first`]).
    first_versions: Option<&'a HashSet<String>>,
}

impl<'a> Target<'a> {
    /// Who published the versions written at this target: the pusher, none for a
    /// reconcile.
    fn publish(&self) -> crate::cache::versions::Publish<'_> {
        crate::cache::versions::Publish {
            repo: self.repo,
            commit: self.commit,
            pushed_by: (self.synced_by != "system").then_some(self.synced_by),
            push_id: self.push_id,
        }
    }

    /// The same target at another commit (a step of a replay).
    fn at<'b>(&self, commit: &'b str) -> Target<'b>
    where
        'a: 'b,
    {
        Target { commit, ..*self }
    }
}

/// Rows per statement in large syncs.
const UPSERT_BATCH: usize = 2000;

/// Full-text vectors skillsd cannot compute itself ([`super::vector`]) are computed by
/// PostgreSQL in the statements that write the rows when a write (a commit's changes, a
/// reconcile batch) has at most this many of them, so a push is searchable when `git
/// push` returns; otherwise `search` stays NULL for [`super::search`] to fill right
/// after the sync commits.
pub const SEARCH_INLINE_ROWS: usize = 500;
