//! Applying a branch's changes to the cache: one transaction per sync, serialised per
//! repository with an advisory lock, and anchored on the `sync_state` watermark.
//!
//! The sync always goes from the commit the cache reflects (the watermark) to the
//! branch's *current* tip, not from a push's old/new pair: a sync that runs late, twice
//! or after a failed one still lands the cache exactly on the tip.

use super::changes::{self, Op};
use super::pushes::{self, PushRecord};
use super::{CacheError, Result};
use crate::skills::Skill;
use gix::ObjectId;
use serde_json::json;
use sqlx::{PgConnection, PgPool, Row};
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
}

impl SyncOutcome {
    fn add(&mut self, other: &SyncOutcome) {
        self.created += other.created;
        self.updated += other.updated;
        self.renamed += other.renamed;
        self.deleted += other.deleted;
        self.failed += other.failed;
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
    let mut tx = rt.block_on(pool.begin())?;
    rt.block_on(lock(&mut tx, repo_name))?;
    if let Some(p) = push {
        rt.block_on(pushes::insert(&mut tx, p))?;
    }
    let watermark: Option<String> = rt.block_on(
        sqlx::query_scalar("SELECT commit_sha FROM sync_state WHERE repo = $1 AND branch = $2")
            .bind(repo_name)
            .bind(branch)
            .fetch_optional(&mut *tx),
    )?;
    let Some(tip) = branch_tip(repo, branch)? else {
        rt.block_on(tx.commit())?;
        return Ok(SyncOutcome {
            commit: watermark,
            ..Default::default()
        });
    };
    let tip_hex = tip.to_string();
    if watermark.as_deref() == Some(tip_hex.as_str()) {
        rt.block_on(tx.commit())?;
        return Ok(SyncOutcome {
            commit: Some(tip_hex),
            ..Default::default()
        });
    }
    let from = watermark
        .as_deref()
        .and_then(|h| ObjectId::from_hex(h.as_bytes()).ok())
        .filter(|oid| repo.has_object(oid));
    // Replay commit by commit along the first-parent chain from the watermark, so each
    // change is logged once, with the commit that made it. Without a watermark, or when
    // the chain does not lead back to it, one diff to the tip.
    let steps = match from.and_then(|f| first_parent_chain(repo, f, tip, MAX_REPLAY)) {
        Some(chain) => chain.into_iter().map(|(p, c)| (Some(p), c)).collect(),
        None => vec![(from, tip)],
    };
    let mut outcome = SyncOutcome::default();
    let last = steps.len().saturating_sub(1);
    for (i, (base, commit)) in steps.into_iter().enumerate() {
        let mut ops = changes::between(repo, base, commit)?;
        if i < last {
            // Only the tip was validated; a file broken in an intermediate commit and
            // fixed later is not a failure of the cache.
            ops.retain(|op| !matches!(op, Op::Invalid { .. }));
        }
        let commit_hex = commit.to_string();
        let target = Target {
            repo: repo_name,
            branch,
            commit: &commit_hex,
            synced_by,
            push_id: push.map(|p| p.id),
            started_at,
            update_operation: "update",
        };
        let step = rt.block_on(apply(&mut tx, &target, ops))?;
        outcome.add(&step);
    }
    let target = Target {
        repo: repo_name,
        branch,
        commit: &tip_hex,
        synced_by,
        push_id: push.map(|p| p.id),
        started_at,
        update_operation: "update",
    };
    rt.block_on(set_watermark(&mut tx, &target))?;
    rt.block_on(tx.commit())?;
    outcome.commit = Some(tip_hex);
    Ok(outcome)
}

/// Longest first-parent chain a sync replays commit by commit.
const MAX_REPLAY: usize = 10_000;

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
pub fn reconcile(
    rt: &Handle,
    pool: &PgPool,
    repo: &gix::Repository,
    repo_name: &str,
    branch: &str,
) -> Result<SyncOutcome> {
    crate::metrics::METRICS.reconcile_run();
    let started_at = chrono::Utc::now();
    let mut tx = rt.block_on(pool.begin())?;
    rt.block_on(lock(&mut tx, repo_name))?;
    let Some(tip) = branch_tip(repo, branch)? else {
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
    let mut ops = Vec::new();
    for (path, blob) in &files {
        match cached.get(path) {
            None => ops.push(changes::load(repo, &rules, path, *blob, Op::Create)),
            Some(sha) if ObjectId::from_hex(sha.as_bytes()).ok() != Some(*blob) => {
                ops.push(changes::load(repo, &rules, path, *blob, Op::Update))
            }
            Some(_) => {}
        }
    }
    for path in cached.keys() {
        if !files.contains_key(path) {
            ops.push(Op::Delete { path: path.clone() });
        }
    }
    let target = Target {
        repo: repo_name,
        branch,
        commit: &tip_hex,
        synced_by: "system",
        push_id: None,
        started_at,
        update_operation: "refresh",
    };
    let outcome = rt.block_on(apply(&mut tx, &target, ops))?;
    rt.block_on(set_watermark(&mut tx, &target))?;
    rt.block_on(tx.commit())?;
    crate::maintenance::release_memory();
    Ok(outcome)
}

/// Serialises cache writers of one repository, across processes sharing the database.
async fn lock(tx: &mut PgConnection, repo_name: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("skillsd:cache:{repo_name}"))
        .execute(tx)
        .await?;
    Ok(())
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
struct Target<'a> {
    repo: &'a str,
    branch: &'a str,
    commit: &'a str,
    synced_by: &'a str,
    push_id: Option<Uuid>,
    started_at: chrono::DateTime<chrono::Utc>,
    /// How an upsert of an existing row is logged: `update` (push) or `refresh` (reconcile).
    update_operation: &'static str,
}

/// Rows per statement in large syncs.
const UPSERT_BATCH: usize = 2000;

const RECORD: &str =
    "u(old_path text, path text, slug text, title text, description text, category text,
      owner text, tags jsonb, status text, frontmatter jsonb, body text, blob_sha text)";

fn skill_json(skill: &Skill, blob: &ObjectId, old_path: Option<&str>) -> serde_json::Value {
    json!({
        "old_path": old_path,
        "path": skill.path,
        "slug": skill.slug,
        "title": skill.title,
        "description": skill.description,
        "category": skill.category,
        "owner": skill.owner,
        "tags": skill.tags,
        "status": skill.status.as_str(),
        "frontmatter": skill.frontmatter,
        "body": skill.body,
        "blob_sha": blob.to_string(),
    })
}

/// One sync-log row to write.
struct LogRow {
    skill_id: Option<Uuid>,
    slug: Option<String>,
    path: String,
    operation: &'static str,
    error: Option<String>,
}

async fn apply(tx: &mut PgConnection, target: &Target<'_>, ops: Vec<Op>) -> Result<SyncOutcome> {
    let &Target {
        repo: repo_name,
        branch,
        commit,
        synced_by,
        push_id,
        started_at,
        update_operation,
    } = target;
    let mut outcome = SyncOutcome {
        commit: Some(commit.to_string()),
        ..Default::default()
    };
    let mut log: Vec<LogRow> = Vec::new();
    let mut deletes = Vec::new();
    let mut renames = Vec::new();
    let mut upserts = Vec::new();
    for op in ops {
        match op {
            Op::Delete { path } => deletes.push(path),
            Op::Rename { from, skill, blob } => {
                renames.push(skill_json(&skill, &blob, Some(&from)))
            }
            Op::Create(skill, blob) | Op::Update(skill, blob) => {
                upserts.push(skill_json(&skill, &blob, None))
            }
            Op::Invalid { path, error } => {
                outcome.failed += 1;
                log.push(LogRow {
                    skill_id: None,
                    slug: None,
                    path,
                    operation: "refresh",
                    error: Some(error),
                });
            }
        }
    }

    if !deletes.is_empty() {
        let rows = sqlx::query(
            "DELETE FROM skills WHERE repo = $1 AND path = ANY($2) RETURNING id, slug, path",
        )
        .bind(repo_name)
        .bind(&deletes)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            outcome.deleted += 1;
            log.push(LogRow {
                skill_id: Some(r.get("id")),
                slug: Some(r.get("slug")),
                path: r.get("path"),
                operation: "delete",
                error: None,
            });
        }
    }

    if !renames.is_empty() {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE skills s SET path = u.path, slug = u.slug, title = u.title, description = u.description,
                    category = u.category, owner = u.owner,
                    tags = ARRAY(SELECT jsonb_array_elements_text(u.tags)), status = u.status,
                    frontmatter = u.frontmatter, body = u.body, blob_sha = u.blob_sha,
                    git_commit_sha = $3, sync_status = 'synced', last_synced_at = now(), updated_at = now()
             FROM jsonb_to_recordset($2) AS {RECORD}
             WHERE s.repo = $1 AND s.path = u.old_path
             RETURNING s.id, s.slug, s.path, u.old_path"
        )))
        .bind(repo_name)
        .bind(serde_json::Value::Array(renames.clone()))
        .bind(commit)
        .fetch_all(&mut *tx)
        .await?;
        let mut done = std::collections::HashSet::new();
        for r in rows {
            outcome.renamed += 1;
            done.insert(r.get::<String, _>("old_path"));
            log.push(LogRow {
                skill_id: Some(r.get("id")),
                slug: Some(r.get("slug")),
                path: r.get("path"),
                operation: "rename",
                error: None,
            });
        }
        // A rename whose source the cache did not have becomes a plain upsert.
        upserts.extend(
            renames
                .into_iter()
                .filter(|r| !done.contains(r["old_path"].as_str().unwrap_or_default())),
        );
    }

    // Large syncs (an import, a reconcile) go in batches to bound statement size.
    for batch in upserts.chunks(UPSERT_BATCH) {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO skills (repo, slug, path, title, description, category, owner, tags, status,
                                 frontmatter, body, blob_sha, git_commit_sha, sync_status, last_synced_at)
             SELECT $1, u.slug, u.path, u.title, u.description, u.category, u.owner,
                    ARRAY(SELECT jsonb_array_elements_text(u.tags)), u.status, u.frontmatter, u.body,
                    u.blob_sha, $3, 'synced', now()
             FROM jsonb_to_recordset($2) AS {RECORD}
             ON CONFLICT (repo, path) DO UPDATE SET
                slug = EXCLUDED.slug, title = EXCLUDED.title, description = EXCLUDED.description,
                category = EXCLUDED.category, owner = EXCLUDED.owner, tags = EXCLUDED.tags,
                status = EXCLUDED.status, frontmatter = EXCLUDED.frontmatter, body = EXCLUDED.body,
                blob_sha = EXCLUDED.blob_sha, git_commit_sha = EXCLUDED.git_commit_sha,
                sync_status = 'synced', last_synced_at = now(), updated_at = now()
             RETURNING id, slug, path, (xmax = 0) AS inserted"
        )))
        .bind(repo_name)
        .bind(serde_json::Value::Array(batch.to_vec()))
        .bind(commit)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let inserted: bool = r.get("inserted");
            if inserted {
                outcome.created += 1;
            } else {
                outcome.updated += 1;
            }
            log.push(LogRow {
                skill_id: Some(r.get("id")),
                slug: Some(r.get("slug")),
                path: r.get("path"),
                operation: if inserted { "create" } else { update_operation },
                error: None,
            });
        }
    }

    for batch in log.chunks(UPSERT_BATCH * 4) {
        let rows: Vec<serde_json::Value> = batch
            .iter()
            .map(|l| {
                json!({
                    "skill_id": l.skill_id,
                    "slug": l.slug,
                    "path": l.path,
                    "operation": l.operation,
                    "status": if l.error.is_some() { "failed" } else { "success" },
                    "error": l.error,
                })
            })
            .collect();
        sqlx::query(
            "INSERT INTO skill_sync_log (skill_id, repo, slug, path, operation, direction, status,
                                         started_at, completed_at, error, git_commit_sha, synced_by, push_id)
             SELECT u.skill_id, $1, u.slug, u.path, u.operation, 'git-to-db', u.status, $2, now(), u.error,
                    $3, $4, $5
             FROM jsonb_to_recordset($6) AS u(skill_id uuid, slug text, path text, operation text,
                                               status text, error text)",
        )
        .bind(repo_name)
        .bind(started_at)
        .bind(commit)
        .bind(synced_by)
        .bind(push_id)
        .bind(serde_json::Value::Array(rows))
        .execute(&mut *tx)
        .await?;
    }

    let mut slugs: Vec<&str> = log.iter().filter_map(|l| l.slug.as_deref()).collect();
    slugs.sort_unstable();
    slugs.dedup();
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
    Ok(outcome)
}

/// After a failed sync: in a transaction of its own, log a `failed` operation with the
/// error for every skill the sync would have changed, and mark existing rows `failed`
/// so the web application can tell they are behind. Best effort.
pub fn record_failure(
    rt: &Handle,
    pool: &PgPool,
    repo: &gix::Repository,
    repo_name: &str,
    branch: &str,
    synced_by: &str,
    error: &str,
) -> Result<()> {
    let watermark: Option<String> = rt.block_on(
        sqlx::query_scalar("SELECT commit_sha FROM sync_state WHERE repo = $1 AND branch = $2")
            .bind(repo_name)
            .bind(branch)
            .fetch_optional(pool),
    )?;
    let Some(tip) = branch_tip(repo, branch)? else {
        return Ok(());
    };
    let from = watermark
        .as_deref()
        .and_then(|h| ObjectId::from_hex(h.as_bytes()).ok())
        .filter(|oid| repo.has_object(oid));
    let mut rows = Vec::new();
    for op in changes::between(repo, from, tip)? {
        let (path, operation) = match &op {
            Op::Create(s, _) => (s.path.clone(), "create"),
            Op::Update(s, _) => (s.path.clone(), "update"),
            Op::Rename { from, .. } => (from.clone(), "rename"),
            Op::Delete { path } => (path.clone(), "delete"),
            Op::Invalid { path, .. } => (path.clone(), "refresh"),
        };
        rows.push(json!({ "path": path, "operation": operation }));
    }
    let paths: Vec<String> = rows
        .iter()
        .filter_map(|r| r["path"].as_str().map(String::from))
        .collect();
    // Two statements, not one transaction: the log rows matter most.
    rt.block_on(async {
        sqlx::query(
            "INSERT INTO skill_sync_log (skill_id, repo, slug, path, operation, direction, status,
                                         started_at, completed_at, error, git_commit_sha, synced_by)
             SELECT s.id, $1, s.slug, u.path, u.operation, 'git-to-db', 'failed', now(), now(), $2, $3, $4
             FROM jsonb_to_recordset($5) AS u(path text, operation text)
             LEFT JOIN skills s ON s.repo = $1 AND s.path = u.path",
        )
        .bind(repo_name)
        .bind(error)
        .bind(tip.to_string())
        .bind(synced_by)
        .bind(serde_json::Value::Array(rows))
        .execute(pool)
        .await?;
        sqlx::query("UPDATE skills SET sync_status = 'failed' WHERE repo = $1 AND path = ANY($2)")
            .bind(repo_name)
            .bind(&paths)
            .execute(pool)
            .await
    })?;
    Ok(())
}
