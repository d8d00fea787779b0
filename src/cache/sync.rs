//! Applying a branch's changes to the cache: one transaction per sync, serialised per
//! repository with an advisory lock, and anchored on the `sync_state` watermark.
//!
//! The sync always goes from the commit the cache reflects (the watermark) to the
//! branch's *current* tip, not from a push's old/new pair: a sync that runs late, twice
//! or after a failed one still lands the cache exactly on the tip.

use super::binary_copy::CopyBuffer;
use super::bulk;
use super::changes::{self, Op};
use super::pushes::{self, PushRecord};
use super::vector::SearchVector;
use super::{CacheError, Result};
use gix::ObjectId;
use serde_json::json;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::BTreeSet;
use tokio::runtime::Handle;
use uuid::Uuid;

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
    /// Rows written without a vector of skillsd's (a bulk load fills them at its end).
    vectors_lacking: usize,
}

impl SyncOutcome {
    fn add(&mut self, other: &SyncOutcome) {
        self.created += other.created;
        self.updated += other.updated;
        self.renamed += other.renamed;
        self.deleted += other.deleted;
        self.failed += other.failed;
        self.search_deferred |= other.search_deferred;
        self.vectors_lacking += other.vectors_lacking;
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
    };
    let outcome = replay.run(rt, &mut tx)?;
    rt.block_on(tx.commit())?;
    shrink(&mut conn);
    if outcome.search_deferred {
        super::search::fill_in_background(rt, pool);
    }
    Ok(outcome)
}

async fn watermark(
    tx: &mut PgConnection,
    repo_name: &str,
    branch: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT commit_sha FROM sync_state WHERE repo = $1 AND branch = $2")
        .bind(repo_name)
        .bind(branch)
        .fetch_optional(tx)
        .await
}

/// A sync of one branch to `tip`, inside a transaction that holds the repository's
/// cache lock ([`lock`]): a push's, or [`sync_branch`]'s.
pub struct Replay<'a> {
    /// Where the commits are read (for a push: the view that sees its quarantine).
    pub repo: &'a gix::Repository,
    pub repo_name: &'a str,
    pub branch: &'a str,
    pub tip: ObjectId,
    pub synced_by: &'a str,
    pub push_id: Option<Uuid>,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// The part of a replay that needs no database: the steps from a watermark to the tip,
/// each commit's operations (its files read, validated and vectorized, its renames
/// found) and its author and message. A push prepares it before it takes its
/// transaction, so the repository's lock is held for the writes only.
pub struct Prepared {
    /// The watermark it starts from.
    from: Option<String>,
    /// Each commit (hex) with its operations, oldest first.
    steps: Vec<(String, Vec<Op>)>,
    made: Vec<super::commits::CommitRow>,
    /// The skills whose files the steps change, with their content at the tip: their
    /// next versions ([`super::versions`]).
    versions: Vec<super::versions::Content>,
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

impl Replay<'_> {
    /// Reads the steps from `watermark` to the tip and their operations (git only).
    pub fn prepare(&self, watermark: Option<&str>) -> Result<Prepared> {
        let (repo, tip) = (self.repo, self.tip);
        let from = watermark
            .and_then(|h| ObjectId::from_hex(h.as_bytes()).ok())
            .filter(|oid| repo.has_object(oid));
        // Replay commit by commit along the first-parent chain from the watermark, so
        // each change is logged once, with the commit that made it. Without a
        // watermark, or when the chain does not lead back to it, one diff to the tip.
        let steps: Vec<(Option<ObjectId>, ObjectId)> =
            match from.and_then(|f| first_parent_chain(repo, f, tip, MAX_REPLAY)) {
                Some(chain) => chain.into_iter().map(|(p, c)| (Some(p), c)).collect(),
                None => vec![(from, tip)],
            };
        let diffing = std::time::Instant::now();
        let last = steps.len().saturating_sub(1);
        let mut prepared = Prepared {
            from: watermark.map(str::to_string),
            steps: Vec::with_capacity(steps.len()),
            made: Vec::new(),
            versions: super::versions::between(repo, from, tip)?,
        };
        for (i, (base, commit)) in steps.into_iter().enumerate() {
            let mut ops = changes::between(repo, base, commit)?;
            if i < last {
                // Only the tip was validated; a file broken in an intermediate commit
                // and fixed later is not a failure of the cache.
                ops.retain(|op| !matches!(op, Op::Invalid { .. }));
            }
            if !ops.is_empty() {
                prepared.made.push(super::commits::read(repo, commit)?);
            }
            prepared.steps.push((commit.to_string(), ops));
        }
        tracing::debug!(
            diff_ms = diffing.elapsed().as_millis() as u64,
            steps = prepared.steps.len(),
            "sync prepared"
        );
        Ok(prepared)
    }

    /// Replays the branch from the watermark to the tip and moves the watermark; the
    /// caller commits (and starts [`super::search::fill_in_background`] when the
    /// outcome says the vectors were deferred).
    pub fn run(&self, rt: &Handle, tx: &mut PgConnection) -> Result<SyncOutcome> {
        self.run_prepared(rt, tx, None)
    }

    /// [`Replay::run`] with the operations prepared before the transaction: used when
    /// they start from the watermark the transaction finds, else read again here.
    pub fn run_prepared(
        &self,
        rt: &Handle,
        tx: &mut PgConnection,
        prepared: Option<Prepared>,
    ) -> Result<SyncOutcome> {
        let watermark = rt.block_on(watermark(tx, self.repo_name, self.branch))?;
        let tip_hex = self.tip.to_string();
        if watermark.as_deref() == Some(tip_hex.as_str()) {
            return Ok(SyncOutcome {
                commit: Some(tip_hex),
                ..Default::default()
            });
        }
        let prepared = match prepared {
            Some(p) if p.from == watermark => p,
            _ => self.prepare(watermark.as_deref())?,
        };
        let target = Target {
            repo: self.repo_name,
            branch: self.branch,
            commit: &tip_hex,
            synced_by: self.synced_by,
            push_id: self.push_id,
            started_at: self.started_at,
            update_operation: "update",
            bulk_now: None,
        };
        let mut outcome = SyncOutcome::default();
        let writing = std::time::Instant::now();
        for (commit_hex, ops) in prepared.steps {
            let step = rt.block_on(apply(tx, &target.at(&commit_hex), ops))?;
            outcome.add(&step);
        }
        rt.block_on(super::commits::insert(tx, self.repo_name, &prepared.made))?;
        let publish = super::versions::Publish {
            repo: self.repo_name,
            commit: &tip_hex,
            pushed_by: (self.synced_by != "system").then_some(self.synced_by),
            push_id: self.push_id,
        };
        rt.block_on(super::versions::write(tx, &publish, &prepared.versions))?;
        rt.block_on(set_watermark(tx, &target))?;
        tracing::debug!(
            write_ms = writing.elapsed().as_millis() as u64,
            "sync written"
        );
        outcome.commit = Some(tip_hex);
        Ok(outcome)
    }
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

/// Longest first-parent chain a sync replays commit by commit (each a diff inside
/// the push's transaction, with the repository's row locked): a push of more
/// commits is synced with one diff to its tip, its changes logged at the tip, so a
/// push of thousands of commits holds the repository for seconds, not minutes.
pub const MAX_REPLAY: usize = 500;

/// (parent, commit) pairs from `from` to `tip` along first parents, oldest first;
/// `None` when `from` is not on that chain within `cap` commits.
fn first_parent_chain(
    repo: &gix::Repository,
    from: ObjectId,
    tip: ObjectId,
    cap: usize,
) -> Option<Vec<(ObjectId, ObjectId)>> {
    let mut chain = Vec::new();
    let mut current = tip;
    while current != from {
        if chain.len() >= cap {
            return None;
        }
        let commit = repo.find_commit(current).ok()?;
        let parent = commit.parent_ids().next()?.detach();
        chain.push((parent, current));
        current = parent;
    }
    chain.reverse();
    Some(chain)
}

/// Compares the cache with the branch's tip file by file (by blob id) and repairs it:
/// creates missing rows, refreshes stale ones, deletes orphans (rows with no file),
/// logging each as `create`/`refresh`/`delete` by `system`, and moves the watermark to
/// the tip. Unlike [`sync_branch`] it trusts nothing in the cache.
///
/// Into an empty cache, `bulk_from` or more skills are loaded with `COPY` and the
/// indexes built after them ([`bulk`]; `None`: never).
pub fn reconcile(
    rt: &Handle,
    pool: &PgPool,
    repo: &gix::Repository,
    repo_name: &str,
    branch: &str,
    bulk_from: Option<usize>,
) -> Result<SyncOutcome> {
    let mut bulk_tried = false;
    match reconcile_once(
        rt,
        pool,
        repo,
        repo_name,
        branch,
        bulk_from,
        &mut bulk_tried,
    ) {
        // A bulk load (`COPY`) fails whole when the database refuses one row: the same
        // reconcile goes again row by row, where such a row fails alone.
        Err(e) if bulk_tried => {
            tracing::warn!(repo = %repo_name, error = %e, "the bulk load failed; reconciling row by row");
            reconcile_once(rt, pool, repo, repo_name, branch, None, &mut bulk_tried)
        }
        result => result,
    }
}

fn reconcile_once(
    rt: &Handle,
    pool: &PgPool,
    repo: &gix::Repository,
    repo_name: &str,
    branch: &str,
    bulk_from: Option<usize>,
    bulk_tried: &mut bool,
) -> Result<SyncOutcome> {
    crate::metrics::METRICS.reconcile_run();
    let started_at = chrono::Utc::now();
    let mut conn = rt.block_on(pool.acquire())?;
    let mut tx = rt.block_on(sqlx::Connection::begin(&mut *conn))?;
    rt.block_on(lock(&mut tx, repo_name))?;
    let tip = branch_tip(repo, branch)?;
    rt.block_on(check_current(&mut tx, repo_name, branch, tip))?;
    let Some(tip) = tip else {
        rt.block_on(tx.commit())?;
        return Ok(SyncOutcome::default());
    };
    let tip_hex = tip.to_string();
    let (rules, files) = changes::skill_files(repo, tip)?;
    let rows: Vec<(String, String)> = rt.block_on(
        sqlx::query_as("SELECT path, blob_sha FROM skills WHERE repo = $1")
            .bind(repo_name)
            .fetch_all(&mut *tx),
    )?;
    let cached: std::collections::HashMap<String, String> = rows.into_iter().collect();
    tracing::debug!(files = files.len(), cached = cached.len(), "reconcile");
    let mut jobs = Vec::new();
    for (path, blob) in &files {
        let make = match cached.get(path) {
            None => changes::Make::Create,
            Some(sha) if ObjectId::from_hex(sha.as_bytes()).ok() != Some(*blob) => {
                changes::Make::Update
            }
            Some(_) => continue,
        };
        jobs.push(changes::Job {
            path: path.clone(),
            blob: *blob,
            make,
        });
    }
    let deletes: Vec<Op> = cached
        .keys()
        .filter(|path| !files.contains_key(*path))
        .map(|path| Op::Delete { path: path.clone() })
        .collect();
    let target = Target {
        repo: repo_name,
        branch,
        commit: &tip_hex,
        synced_by: "system",
        push_id: None,
        started_at,
        update_operation: "refresh",
        bulk_now: None,
    };
    // Orphans first (their slugs may be reused), then the files in batches, written
    // while the next ones are read and validated on the other cores.
    let mut slugs = BTreeSet::new();
    let mut outcome = rt.block_on(write(&mut tx, &target, deletes, &mut slugs))?;
    // Into an empty table, many rows load faster with the indexes built after them.
    let bulk = match bulk_from {
        Some(from) if cached.is_empty() && jobs.len() >= from => {
            rt.block_on(bulk::begin(&mut tx))?
        }
        _ => None,
    };
    *bulk_tried = bulk.is_some();
    let target = Target {
        bulk_now: bulk.as_ref().map(|b| b.now),
        ..target
    };
    changes::load_streaming(repo, &rules, &jobs, UPSERT_BATCH, &mut |(_, ops)| {
        let step = rt.block_on(write(&mut tx, &target, ops, &mut slugs))?;
        outcome.add(&step);
        Ok(())
    })?;
    // The skills it wrote and the published ones without a version (published before
    // versions existed): their content now is their next version.
    let mut versioned: BTreeSet<String> = jobs.iter().map(|j| j.path.clone()).collect();
    drop(jobs);
    if let Some(dropped) = bulk {
        let lacking = outcome.vectors_lacking;
        outcome.search_deferred |=
            rt.block_on(bulk::fill_vectors(&mut tx, lacking, SEARCH_INLINE_ROWS))?;
        rt.block_on(bulk::finish(&mut tx, dropped))?;
        outcome.bulk_loaded = true;
    }
    let made = super::commits::read(repo, tip)?;
    rt.block_on(super::commits::insert(&mut tx, repo_name, &[made]))?;
    versioned.extend(rt.block_on(super::versions::lacking(&mut tx, repo_name))?);
    let contents = super::versions::at(repo, tip, versioned)?;
    let publish = super::versions::Publish {
        repo: repo_name,
        commit: &tip_hex,
        pushed_by: None,
        push_id: None,
    };
    rt.block_on(super::versions::write(&mut tx, &publish, &contents))?;
    rt.block_on(notify(&mut tx, &target, &outcome, slugs))?;
    rt.block_on(set_watermark(&mut tx, &target))?;
    rt.block_on(tx.commit())?;
    shrink(&mut conn);
    if outcome.search_deferred {
        super::search::fill_in_background(rt, pool);
    }
    outcome.commit = Some(tip_hex.clone());
    crate::alloc::release_memory();
    Ok(outcome)
}

/// Gives back the memory a big sync made the connection's buffers grow to (its
/// batches are megabytes): the connection goes back to the pool and would keep it
/// while idle, for as long as the pool keeps the connection.
fn shrink(conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>) {
    sqlx::Connection::shrink_buffers(&mut **conn);
}

/// Serialises cache writers of one repository, across processes sharing the database.
pub async fn lock(tx: &mut PgConnection, repo_name: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("skillsd:cache:{repo_name}"))
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
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT (SELECT target FROM git_refs WHERE repo = $1 AND name = $2)
         FROM git_repos WHERE name = $1",
    )
    .bind(repo_name)
    .bind(format!("refs/heads/{branch}"))
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        Some((db_tip,)) if db_tip != local_tip.map(|t| t.to_string()) => Err(CacheError::Behind),
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
    sqlx::query(
        "INSERT INTO sync_state (repo, branch, commit_sha, updated_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (repo, branch) DO UPDATE SET commit_sha = EXCLUDED.commit_sha, updated_at = now()",
    )
    .bind(target.repo)
    .bind(target.branch)
    .bind(target.commit)
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
}

impl<'a> Target<'a> {
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

/// A row to write, with the path it had before a rename.
#[derive(Clone)]
struct RowIn {
    row: changes::Row,
    old_path: Option<String>,
}

/// A batch of rows as one array per column: bound as PostgreSQL arrays and read back
/// with `unnest`, so neither side encodes or parses the bodies as JSON.
#[derive(Default)]
struct Columns<'a> {
    old_path: Vec<Option<&'a str>>,
    path: Vec<&'a str>,
    slug: Vec<&'a str>,
    title: Vec<&'a str>,
    description: Vec<Option<&'a str>>,
    category: Vec<Option<&'a str>>,
    owner: Vec<Option<&'a str>>,
    /// Each row's tags as a JSON array (text arrays cannot be ragged).
    tags: Vec<String>,
    status: Vec<&'static str>,
    frontmatter: Vec<String>,
    body: Vec<&'a str>,
    blob_sha: Vec<String>,
    /// The full-text vector when skillsd could compute it ([`super::vector`]).
    search: Vec<Option<&'a SearchVector>>,
    /// The findings of checks set to `warning`, as a JSON array.
    warnings: Vec<String>,
}

impl<'a> Columns<'a> {
    /// The rows' columns, borrowed (bodies are neither moved nor copied, so a batch
    /// the database refuses can be written again row by row).
    fn of(rows: &'a [RowIn]) -> Columns<'a> {
        let mut c = Columns::default();
        for r in rows {
            let s = &r.row.skill;
            c.search.push(r.row.search.as_ref());
            c.old_path.push(r.old_path.as_deref());
            c.path.push(&s.path);
            c.slug.push(&s.slug);
            c.title.push(&s.title);
            c.description.push(s.description.as_deref());
            c.category.push(s.category.as_deref());
            c.owner.push(s.owner.as_deref());
            c.tags
                .push(serde_json::to_string(&s.tags).unwrap_or_else(|_| "[]".into()));
            c.status.push(s.status.as_str());
            c.frontmatter.push(s.frontmatter.to_string());
            c.body.push(&s.body);
            c.blob_sha.push(r.row.blob.to_string());
            c.warnings.push(warnings_json(&s.warnings));
        }
        c
    }

    /// Binds the columns in the order of [`UNNEST`], after `query`'s own parameters.
    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.old_path)
            .bind(self.path)
            .bind(self.slug)
            .bind(self.title)
            .bind(self.description)
            .bind(self.category)
            .bind(self.owner)
            .bind(self.tags)
            .bind(self.status)
            .bind(self.frontmatter)
            .bind(self.body)
            .bind(self.blob_sha)
            .bind(self.search)
            .bind(self.warnings)
    }
}

/// A skill's warnings as the `warnings` column stores them.
fn warnings_json(warnings: &[crate::skills::Problem]) -> String {
    serde_json::to_string(warnings).unwrap_or_else(|_| "[]".into())
}

/// The rows of a [`Columns`] batch bound as `$4..$17`, with their tags as a `text[]`
/// (`t.tags`) and their full-text vector (`t.search`): the one skillsd computed, else,
/// when `$3` is true, PostgreSQL's, else NULL (for [`super::search`] to fill).
const UNNEST: &str = "unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                  $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                  $16::tsvector[], $17::text[])
           AS u(old_path, path, slug, title, description, category, owner, tags, status,
                frontmatter, body, blob_sha, search, warnings),
         LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)) AS tags) t0,
         LATERAL (SELECT t0.tags,
                         CASE WHEN u.search IS NOT NULL THEN u.search
                              WHEN $3 THEN skills_search_vector(u.title, u.description, t0.tags, u.body)
                         END AS search) t";

/// One sync-log row to write.
struct LogRow {
    skill_id: Option<Uuid>,
    slug: Option<String>,
    path: String,
    operation: &'static str,
    error: Option<String>,
}

/// Writes `ops` and announces them (`NOTIFY skills_changed`).
async fn apply(tx: &mut PgConnection, target: &Target<'_>, ops: Vec<Op>) -> Result<SyncOutcome> {
    let mut slugs = BTreeSet::new();
    let outcome = write(tx, target, ops, &mut slugs).await?;
    notify(tx, target, &outcome, slugs).await?;
    Ok(outcome)
}

/// Writes `ops` (rows and sync-log rows), adding the slugs it touched to `slugs`:
/// deletions, renames, creations and updates (by `COPY` for a bulk load), the rows the
/// database refused marked failed, then the sync log.
async fn write(
    tx: &mut PgConnection,
    target: &Target<'_>,
    ops: Vec<Op>,
    slugs: &mut BTreeSet<String>,
) -> Result<SyncOutcome> {
    let mut w = Written {
        outcome: SyncOutcome {
            commit: Some(target.commit.to_string()),
            ..Default::default()
        },
        log: Vec::new(),
        refused: Vec::new(),
    };
    let Sorted {
        deletes,
        renames,
        mut upserts,
    } = w.sort(ops);
    // Rows whose vector skillsd could not compute: PostgreSQL computes them in the same
    // statements when they are few, else the search filler does after the commit.
    let lacking = renames
        .iter()
        .chain(&upserts)
        .filter(|r| r.row.search.is_none())
        .count();
    w.outcome.vectors_lacking = lacking;
    let search_inline = lacking <= SEARCH_INLINE_ROWS;
    // A bulk load decides once, for all its rows, when they are in (`bulk::fill_vectors`).
    if lacking > 0 && !search_inline && target.bulk_now.is_none() {
        w.outcome.search_deferred = true;
    }
    w.delete_rows(tx, target, &deletes).await?;
    let missed = w.rename_rows(tx, target, search_inline, renames).await?;
    upserts.extend(missed);
    if let Some(now) = target.bulk_now {
        w.copy_rows(tx, target, now, std::mem::take(&mut upserts))
            .await?;
    }
    w.upsert_rows(tx, target, search_inline, upserts).await?;
    w.mark_refused(tx, target).await?;
    write_log(tx, target, &w.log).await?;
    slugs.extend(w.log.into_iter().filter_map(|l| l.slug));
    Ok(w.outcome)
}

/// The operations of a sync by the statement that writes them.
struct Sorted {
    deletes: Vec<String>,
    renames: Vec<RowIn>,
    upserts: Vec<RowIn>,
}

/// What a sync has written so far: its counts, its log rows, and the rows the database
/// refused (each with the database's reason).
struct Written {
    outcome: SyncOutcome,
    log: Vec<LogRow>,
    refused: Vec<(RowIn, String)>,
}

impl Written {
    fn logged(&mut self, r: &sqlx::postgres::PgRow, operation: &'static str) {
        self.log.push(LogRow {
            skill_id: Some(r.get("id")),
            slug: Some(r.get("slug")),
            path: r.get("path"),
            operation,
            error: None,
        });
    }

    /// Sorts `ops` by statement; files that are no skill are logged as failed here.
    fn sort(&mut self, ops: Vec<Op>) -> Sorted {
        let mut sorted = Sorted {
            deletes: Vec::new(),
            renames: Vec::new(),
            upserts: Vec::new(),
        };
        for op in ops {
            match op {
                Op::Delete { path } => sorted.deletes.push(path),
                Op::Rename { from, row } => sorted.renames.push(RowIn {
                    row,
                    old_path: Some(from),
                }),
                Op::Create(row) | Op::Update(row) => sorted.upserts.push(RowIn {
                    row,
                    old_path: None,
                }),
                Op::Invalid { path, error } => {
                    self.outcome.failed += 1;
                    self.log.push(LogRow {
                        skill_id: None,
                        slug: None,
                        path,
                        operation: "refresh",
                        error: Some(error),
                    });
                }
            }
        }
        sorted
    }

    async fn delete_rows(
        &mut self,
        tx: &mut PgConnection,
        target: &Target<'_>,
        deletes: &[String],
    ) -> Result<()> {
        if deletes.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "DELETE FROM skills WHERE repo = $1 AND path = ANY($2) RETURNING id, slug, path",
        )
        .bind(target.repo)
        .bind(deletes)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            self.outcome.deleted += 1;
            self.logged(&r, "delete");
        }
        Ok(())
    }

    /// Moves renamed rows (keeping their ids). Returns the renames whose source the
    /// cache did not have: they become plain upserts.
    async fn rename_rows(
        &mut self,
        tx: &mut PgConnection,
        target: &Target<'_>,
        search_inline: bool,
        renames: Vec<RowIn>,
    ) -> Result<Vec<RowIn>> {
        for batch in renames.chunks(UPSERT_BATCH) {
            let (rows, mut bad) =
                run_tolerant(tx, Statement::Rename, target, search_inline, batch).await?;
            self.refused.append(&mut bad);
            for r in rows {
                self.outcome.renamed += 1;
                self.logged(&r, "rename");
            }
        }
        let renamed: std::collections::HashSet<&str> = self
            .log
            .iter()
            .filter(|l| l.operation == "rename")
            .map(|l| l.path.as_str())
            .collect();
        let refused: std::collections::HashSet<&str> = self
            .refused
            .iter()
            .map(|(r, _)| r.row.skill.path.as_str())
            .collect();
        Ok(renames
            .into_iter()
            .filter(|r| {
                let path = r.row.skill.path.as_str();
                !renamed.contains(path) && !refused.contains(path)
            })
            .collect())
    }

    /// A bulk load's new rows, by `COPY`.
    async fn copy_rows(
        &mut self,
        tx: &mut PgConnection,
        target: &Target<'_>,
        now: chrono::DateTime<chrono::Utc>,
        rows: Vec<RowIn>,
    ) -> Result<()> {
        for (id, slug, path) in copy_new_rows(tx, target, now, rows).await? {
            self.outcome.created += 1;
            self.log.push(LogRow {
                skill_id: Some(id),
                slug: Some(slug),
                path,
                operation: "create",
                error: None,
            });
        }
        Ok(())
    }

    /// Creations and updates, in batches that bound the statement's size (an import, a
    /// reconcile).
    async fn upsert_rows(
        &mut self,
        tx: &mut PgConnection,
        target: &Target<'_>,
        search_inline: bool,
        upserts: Vec<RowIn>,
    ) -> Result<()> {
        let mut upserts = upserts.into_iter();
        loop {
            let batch: Vec<RowIn> = upserts.by_ref().take(UPSERT_BATCH).collect();
            if batch.is_empty() {
                return Ok(());
            }
            let (rows, mut bad) =
                run_tolerant(tx, Statement::Upsert, target, search_inline, &batch).await?;
            self.refused.append(&mut bad);
            for r in rows {
                let inserted: bool = r.get("inserted");
                if inserted {
                    self.outcome.created += 1;
                } else {
                    self.outcome.updated += 1;
                }
                self.logged(
                    &r,
                    if inserted {
                        "create"
                    } else {
                        target.update_operation
                    },
                );
            }
        }
    }

    /// Rows the database refused (a value too long for an index, ...): each fails
    /// alone, logged with the database's reason and its cached row marked failed; the
    /// rest of the sync, and later pushes, still land.
    async fn mark_refused(&mut self, tx: &mut PgConnection, target: &Target<'_>) -> Result<()> {
        if self.refused.is_empty() {
            return Ok(());
        }
        let mut paths = Vec::new();
        for (row, error) in std::mem::take(&mut self.refused) {
            tracing::error!(repo = %target.repo, path = %row.row.skill.path, %error, "the database refused a skill's row");
            self.outcome.failed += 1;
            paths.push(
                row.old_path
                    .clone()
                    .unwrap_or_else(|| row.row.skill.path.clone()),
            );
            self.log.push(LogRow {
                skill_id: None,
                slug: None,
                path: row.row.skill.path,
                operation: "refresh",
                error: Some(format!("the database refused this skill: {error}")),
            });
        }
        sqlx::query("UPDATE skills SET sync_status = 'failed' WHERE repo = $1 AND path = ANY($2)")
            .bind(target.repo)
            .bind(&paths)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// The sync log rows, in batches.
async fn write_log(tx: &mut PgConnection, target: &Target<'_>, log: &[LogRow]) -> Result<()> {
    for batch in log.chunks(UPSERT_BATCH * 4) {
        let mut skill_id = Vec::with_capacity(batch.len());
        let mut slug = Vec::with_capacity(batch.len());
        let mut path = Vec::with_capacity(batch.len());
        let mut operation = Vec::with_capacity(batch.len());
        let mut status = Vec::with_capacity(batch.len());
        let mut error = Vec::with_capacity(batch.len());
        for l in batch {
            skill_id.push(l.skill_id);
            slug.push(l.slug.as_deref());
            path.push(l.path.as_str());
            operation.push(l.operation);
            status.push(if l.error.is_some() {
                "failed"
            } else {
                "success"
            });
            error.push(l.error.as_deref());
        }
        sqlx::query(
            "INSERT INTO skill_sync_log (skill_id, repo, slug, path, operation, direction, status,
                                         started_at, completed_at, error, git_commit_sha, synced_by, push_id)
             SELECT u.skill_id, $1, u.slug, u.path, u.operation, 'git-to-db', u.status, $2, now(), u.error,
                    $3, $4, $5
             FROM unnest($6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
                  AS u(skill_id, slug, path, operation, status, error)",
        )
        .bind(target.repo)
        .bind(target.started_at)
        .bind(target.commit)
        .bind(target.synced_by)
        .bind(target.push_id)
        .bind(skill_id)
        .bind(slug)
        .bind(path)
        .bind(operation)
        .bind(status)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The two statements that write skill rows from a [`Columns`] batch.
#[derive(Clone, Copy)]
enum Statement {
    /// Moves rows from `old_path` (keeping their ids).
    Rename,
    /// Inserts or updates rows by path.
    Upsert,
}

impl Statement {
    fn sql(self) -> String {
        match self {
            Statement::Rename => format!(
                "UPDATE skills s SET path = u.path, slug = u.slug, title = u.title, description = u.description,
                        category = u.category, owner = u.owner, tags = t.tags, status = u.status,
                        frontmatter = u.frontmatter::jsonb, body = u.body, blob_sha = u.blob_sha,
                        git_commit_sha = $2, sync_status = 'synced', last_synced_at = now(),
                        updated_at = now(), search = t.search, warnings = u.warnings::jsonb
                 FROM {UNNEST}
                 WHERE s.repo = $1 AND s.path = u.old_path
                 RETURNING s.id, s.slug, s.path, u.old_path"
            ),
            Statement::Upsert => format!(
                "INSERT INTO skills (repo, slug, path, title, description, category, owner, tags, status,
                                     frontmatter, body, blob_sha, git_commit_sha, sync_status,
                                     last_synced_at, search, warnings)
                 SELECT $1, u.slug, u.path, u.title, u.description, u.category, u.owner, t.tags,
                        u.status, u.frontmatter::jsonb, u.body, u.blob_sha, $2, 'synced', now(), t.search,
                        u.warnings::jsonb
                 FROM {UNNEST}
                 ON CONFLICT (repo, path) DO UPDATE SET
                    slug = EXCLUDED.slug, title = EXCLUDED.title, description = EXCLUDED.description,
                    category = EXCLUDED.category, owner = EXCLUDED.owner, tags = EXCLUDED.tags,
                    status = EXCLUDED.status, frontmatter = EXCLUDED.frontmatter, body = EXCLUDED.body,
                    blob_sha = EXCLUDED.blob_sha, git_commit_sha = EXCLUDED.git_commit_sha,
                    sync_status = 'synced', last_synced_at = now(), updated_at = now(),
                    search = EXCLUDED.search, warnings = EXCLUDED.warnings
                 RETURNING id, slug, path, (xmax = 0) AS inserted"
            ),
        }
    }

    async fn run(
        self,
        tx: &mut PgConnection,
        target: &Target<'_>,
        search_inline: bool,
        rows: &[RowIn],
    ) -> sqlx::Result<Vec<sqlx::postgres::PgRow>> {
        let query = sqlx::query(sqlx::AssertSqlSafe(self.sql()))
            .bind(target.repo)
            .bind(target.commit)
            .bind(search_inline);
        Columns::of(rows).bind(query).fetch_all(&mut *tx).await
    }
}

/// Is `e` about the data of some row (a value too long for an index, a constraint),
/// rather than the connection or the server? SQLSTATE classes 22, 23 and 54.
fn refused_data(e: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let code = db.code()?;
    ["22", "23", "54"]
        .iter()
        .any(|class| code.starts_with(class))
        .then(|| db.message().to_string())
}

/// Runs `statement` for `batch` under a savepoint. When the database refuses the data,
/// runs it again row by row, each under its own savepoint: the rows it accepts are
/// written, the ones it refuses are returned with its reason.
async fn run_tolerant(
    tx: &mut PgConnection,
    statement: Statement,
    target: &Target<'_>,
    search_inline: bool,
    batch: &[RowIn],
) -> Result<(Vec<sqlx::postgres::PgRow>, Vec<(RowIn, String)>)> {
    // The batch is bound by reference: refused, it is written again row by row (only
    // the rows the database refuses are copied, for the caller to log).
    sqlx::query("SAVEPOINT skillsd_batch")
        .execute(&mut *tx)
        .await?;
    let first = statement.run(tx, target, search_inline, batch).await;
    let error = match first {
        Ok(rows) => {
            sqlx::query("RELEASE SAVEPOINT skillsd_batch")
                .execute(&mut *tx)
                .await?;
            return Ok((rows, Vec::new()));
        }
        Err(e) => e,
    };
    if refused_data(&error).is_none() {
        return Err(error.into());
    }
    sqlx::query("ROLLBACK TO SAVEPOINT skillsd_batch")
        .execute(&mut *tx)
        .await?;
    let mut written = Vec::new();
    let mut refused = Vec::new();
    for row in batch {
        sqlx::query("SAVEPOINT skillsd_row")
            .execute(&mut *tx)
            .await?;
        match statement
            .run(tx, target, search_inline, std::slice::from_ref(row))
            .await
        {
            Ok(mut rows) => {
                sqlx::query("RELEASE SAVEPOINT skillsd_row")
                    .execute(&mut *tx)
                    .await?;
                written.append(&mut rows);
            }
            Err(e) => {
                let Some(reason) = refused_data(&e) else {
                    return Err(e.into());
                };
                sqlx::query("ROLLBACK TO SAVEPOINT skillsd_row")
                    .execute(&mut *tx)
                    .await?;
                refused.push((row.clone(), reason));
            }
        }
    }
    sqlx::query("RELEASE SAVEPOINT skillsd_batch")
        .execute(&mut *tx)
        .await?;
    Ok((written, refused))
}

/// Writes new rows with `COPY` (a [`bulk`] load: the table was empty and is locked, so
/// every row is new); their ids are made here, for the sync log. Vectors skillsd could
/// not compute stay NULL: [`bulk::fill_vectors`] sees to them once all rows are in.
async fn copy_new_rows(
    tx: &mut PgConnection,
    target: &Target<'_>,
    now: chrono::DateTime<chrono::Utc>,
    rows: Vec<RowIn>,
) -> Result<Vec<(Uuid, String, String)>> {
    const COLUMNS: i16 = 18;
    let mut copy = tx
        .copy_in_raw(
            "COPY skills (id, repo, slug, path, title, description, category, owner, tags, status,
                          frontmatter, body, blob_sha, git_commit_sha, sync_status,
                          last_synced_at, search, warnings)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut buf = CopyBuffer::new();
    let mut written = Vec::with_capacity(rows.len());
    for r in rows {
        let id = Uuid::new_v4();
        let s = r.row.skill;
        buf.row(COLUMNS);
        buf.uuid(&id);
        buf.text(target.repo);
        buf.text(&s.slug);
        buf.text(&s.path);
        buf.text(&s.title);
        buf.opt_text(s.description.as_deref());
        buf.opt_text(s.category.as_deref());
        buf.opt_text(s.owner.as_deref());
        buf.text_array(&s.tags);
        buf.text(s.status.as_str());
        buf.jsonb(&s.frontmatter.to_string());
        buf.text(&s.body);
        buf.text(&r.row.blob.to_string());
        buf.text(target.commit);
        buf.text("synced");
        buf.timestamptz(&now);
        match &r.row.search {
            Some(vector) => buf.raw(vector.as_bytes()),
            None => buf.null(),
        }
        buf.jsonb(&warnings_json(&s.warnings));
        if buf.len() >= COPY_CHUNK {
            copy.send(buf.bytes()).await?;
            buf.clear();
        }
        written.push((id, s.slug, s.path));
    }
    buf.finish();
    copy.send(buf.bytes()).await?;
    copy.finish().await?;
    Ok(written)
}

/// Bytes of `COPY` data sent at a time.
const COPY_CHUNK: usize = 1 << 20;

/// `NOTIFY skills_changed` with the counts and, when they fit, the slugs.
async fn notify(
    tx: &mut PgConnection,
    target: &Target<'_>,
    outcome: &SyncOutcome,
    slugs: BTreeSet<String>,
) -> Result<()> {
    let &Target {
        repo: repo_name,
        branch,
        commit,
        ..
    } = target;
    let mut payload = json!({
        "repo": repo_name,
        "branch": branch,
        "commit": commit,
        "created": outcome.created,
        "updated": outcome.updated,
        "renamed": outcome.renamed,
        "deleted": outcome.deleted,
        "failed": outcome.failed,
        "slugs": slugs,
    });
    // NOTIFY payloads are limited to 8000 bytes: drop the slug list when it does not fit.
    if payload.to_string().len() > 7000 {
        payload["slugs"] = serde_json::Value::Null;
    }
    sqlx::query("SELECT pg_notify('skills_changed', $1)")
        .bind(payload.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}
