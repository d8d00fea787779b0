//! Reconcile: the cache compared with the tip file by file and repaired.

use super::write::{notify, write};
use super::{
    SEARCH_INLINE_ROWS, SyncOutcome, Target, UPSERT_BATCH, branch_tip, check_current, lock,
    set_watermark, shrink,
};
use crate::cache::Result;
use crate::cache::bulk;
use crate::cache::changes::{self, Op};
use gix::ObjectId;
use sqlx::PgPool;
use std::collections::BTreeSet;
use tokio::runtime::Handle;

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
    let _working = crate::alloc::working();
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
    let (rules, tree) = changes::tree_files(repo, tip)?;
    let files = changes::skill_files_of(&tree, &rules);
    let cached = rt.block_on(cached_blobs(&mut tx, repo_name))?;
    tracing::debug!(files = files.len(), cached = cached.len(), "reconcile");
    let (jobs, deletes) = differences(&files, &cached);
    let target = Target {
        repo: repo_name,
        branch,
        commit: &tip_hex,
        synced_by: "system",
        push_id: None,
        started_at,
        update_operation: "refresh",
        bulk_now: None,
        first_versions: None,
    };
    // Orphans first (their slugs may be reused), then the files in batches, written
    // while the next ones are read and validated on the other cores.
    let mut slugs = BTreeSet::new();
    let mut outcome = rt.block_on(write(&mut tx, &target, deletes, &mut slugs))?;
    // Into an empty table, many rows load faster with the indexes built after them.
    let bulk = match bulk_from {
        Some(from) if cached.is_empty() && jobs.len() >= from => {
            rt.block_on(bulk::begin(&mut tx, 0))?
        }
        _ => None,
    };
    *bulk_tried = bulk.is_some();
    let alone = match bulk {
        Some(_) => changes::alone(tree, &rules),
        None => {
            drop(tree);
            Default::default()
        }
    };
    // A bulk load records the lone files' version 1 with their rows, as it copies them.
    let target = Target {
        bulk_now: bulk.as_ref().map(|b| b.now),
        first_versions: bulk.as_ref().map(|_| &alone),
        ..target
    };
    // The skills whose versions are read from git after the rows: in a bulk load, the
    // PUBLISHED rows it did not record a version with (a folder's archive is made
    // from git; the others get none); else the digests of the files read, which their
    // versions need not read again.
    let mut versioned = BTreeSet::new();
    let mut digests = crate::cache::versions::Digests::new();
    changes::load_streaming(repo, &rules, &jobs, None, UPSERT_BATCH, &mut |(_, ops)| {
        match target.first_versions {
            Some(alone) => versioned.extend(published_without_version(alone, &ops)),
            None => crate::cache::versions::remember(&mut digests, &ops),
        }
        let step = rt.block_on(write(&mut tx, &target, ops, &mut slugs))?;
        outcome.add(&step);
        Ok(())
    })?;
    // The versions' contents a bulk load has read.
    let mut read = None;
    if let Some(dropped) = bulk {
        let lacking = outcome.vectors_lacking;
        outcome.search_deferred |=
            rt.block_on(bulk::fill_vectors(&mut tx, lacking, SEARCH_INLINE_ROWS))?;
        let paths = std::mem::take(&mut versioned);
        let (contents, deferred) = finish_bulk(rt, &mut tx, repo, tip, dropped, paths, &digests)?;
        (outcome.indexes_deferred, outcome.bulk_loaded) = (deferred, true);
        read = Some(contents);
    }
    let made = crate::cache::commits::read(repo, tip)?;
    rt.block_on(crate::cache::commits::insert(&mut tx, repo_name, &[made]))?;
    let contents = match read {
        Some(contents) => contents,
        // The skills it wrote and the published ones without a version (published
        // before versions existed): their content now is their next version.
        None => {
            versioned.extend(jobs.into_iter().map(|j| j.path));
            versioned.extend(rt.block_on(crate::cache::versions::lacking(&mut tx, repo_name))?);
            crate::cache::versions::at(repo, tip, versioned, &digests)?
        }
    };
    rt.block_on(crate::cache::versions::write(
        &mut tx,
        &target.publish(),
        &contents,
    ))?;
    rt.block_on(notify(&mut tx, &target, &outcome, slugs))?;
    rt.block_on(set_watermark(&mut tx, &target))?;
    rt.block_on(tx.commit())?;
    shrink(&mut conn);
    outcome.follow_up(rt, pool);
    outcome.commit = Some(tip_hex.clone());
    Ok(outcome)
}

/// Each cached skill file's blob id, by path.
async fn cached_blobs(
    tx: &mut sqlx::PgConnection,
    repo_name: &str,
) -> sqlx::Result<std::collections::HashMap<String, String>> {
    let rows = sqlx::query!(
        "SELECT path, blob_sha FROM skills WHERE repo = $1",
        repo_name
    )
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.path, r.blob_sha)).collect())
}

/// The PUBLISHED skills among `ops`' rows that a bulk load recorded no version 1 with
/// (not alone in their files: a folder's archive is made from git after).
fn published_without_version<'o>(
    alone: &'o std::collections::HashSet<String>,
    ops: &'o [Op],
) -> impl Iterator<Item = String> + 'o {
    ops.iter()
        .filter_map(Op::row)
        .filter(|row| {
            row.skill.status == crate::skills::Status::Published
                && !crate::cache::versions::first_with_row(alone, row)
        })
        .map(|row| row.skill.path.clone())
}

/// The end of a bulk load: PostgreSQL adds the keys and builds the indexes on one
/// core while the contents of `paths` (the rows are all this load's: the table was
/// empty) are read from git on the others. Returns those contents, and whether
/// indexes were left to build after the commit.
fn finish_bulk(
    rt: &Handle,
    tx: &mut sqlx::PgConnection,
    repo: &gix::Repository,
    tip: ObjectId,
    dropped: bulk::Dropped,
    paths: BTreeSet<String>,
    known: &crate::cache::versions::Digests,
) -> Result<(Vec<crate::cache::versions::Content>, bool)> {
    let reader = repo.clone();
    let (contents, finished) = std::thread::scope(|s| {
        let reading = s.spawn(move || crate::cache::versions::at(&reader, tip, paths, known));
        let finished = rt.block_on(bulk::finish(tx, dropped));
        (reading.join(), finished)
    });
    let deferred = finished?;
    let contents = contents.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    Ok((contents, deferred))
}

/// What the cache lacks of the tip's skill files (created or changed: read and
/// written) and what it holds that the tip does not (deleted).
fn differences(
    files: &std::collections::HashMap<String, ObjectId>,
    cached: &std::collections::HashMap<String, String>,
) -> (Vec<changes::Job>, Vec<Op>) {
    let mut jobs = Vec::new();
    for (path, blob) in files {
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
    (jobs, deletes)
}
