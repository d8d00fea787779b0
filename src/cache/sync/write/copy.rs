//! New rows by `COPY`: a bulk load's, and many new rows of a push or a reconcile
//! ([`COPY_CREATIONS_FROM`]), in PostgreSQL's binary format
//! ([`crate::cache::binary_copy`]); and a bulk load's sync log.

use super::{LogRow, RowIn, Target, Written, refused_data, warnings_json};
use crate::cache::Result;
use crate::cache::binary_copy::CopyBuffer;
use crate::cache::savepoint::Savepoint;
use crate::cache::versions;
use sqlx::PgConnection;
use uuid::Uuid;

/// New rows a sync writes by `COPY` (outside a bulk load) from this many on: `COPY`
/// spares PostgreSQL the statement's arrays, their `unnest` and the conflict check of
/// each row, and costs a savepoint and two round trips more.
pub(super) const COPY_CREATIONS_FROM: usize = 100;

impl Written {
    /// A bulk load's new rows, by `COPY`.
    pub(super) async fn copy_rows(
        &mut self,
        tx: &mut PgConnection,
        target: &Target<'_>,
        now: chrono::DateTime<chrono::Utc>,
        rows: Vec<RowIn>,
    ) -> Result<()> {
        let copied = copy_new_rows(tx, target, now, &rows).await?;
        self.created(copied);
        Ok(())
    }

    /// Rows a `COPY` created, counted and logged, and the skill files whose version 1
    /// it recorded with them.
    fn created(&mut self, copied: Copied) {
        self.outcome.versioned.extend(copied.versioned);
        for (id, slug, path) in copied.written {
            self.outcome.created += 1;
            self.log.push(LogRow {
                skill_id: Some(id),
                slug: Some(slug),
                path,
                operation: "create",
                error: None,
            });
        }
    }

    /// Many new rows of a push or a reconcile by `COPY`, under a savepoint: when the
    /// database refuses one (its path has a row after all, a value too long for an
    /// index, ...) nothing of the `COPY` stays and every row is returned, for the
    /// upsert to write row by row what it can.
    pub(super) async fn copy_creations(
        &mut self,
        tx: &mut PgConnection,
        target: &Target<'_>,
        rows: Vec<RowIn>,
    ) -> Result<Vec<RowIn>> {
        Savepoint::Copy.set(tx).await?;
        let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
            .fetch_one(&mut *tx)
            .await?;
        match copy_new_rows(tx, target, now, &rows).await {
            Ok(copied) => {
                Savepoint::Copy.release(tx).await?;
                self.created(copied);
                Ok(Vec::new())
            }
            Err(crate::cache::CacheError::Db(e)) if refused_data(&e).is_some() => {
                tracing::debug!(repo = %target.repo, error = %e, "new rows by COPY refused; upserted instead");
                Savepoint::Copy.undo(tx).await?;
                Ok(rows)
            }
            Err(e) => Err(e),
        }
    }
}

/// What a `COPY` of new rows wrote.
struct Copied {
    /// Each row's (id, slug, path): their ids are made here, for the sync log.
    written: Vec<(Uuid, String, String)>,
    /// The paths of the rows whose version 1 went in with them
    /// ([`Target::first_versions`]).
    versioned: Vec<String>,
}

/// Writes rows new to the table with `COPY`: a bulk load's (the table was empty and is
/// locked; vectors skillsd could not compute stay NULL for
/// [`crate::cache::bulk::fill_vectors`]), or a push's or a reconcile's many new rows
/// (under [`Savepoint::Copy`], each with its vector). The rows
/// [`Target::first_versions`] names get their version 1 in the same transaction, by
/// `COPY` too ([`versions::copy_first`]): each is a new id, so it has no version yet.
async fn copy_new_rows(
    tx: &mut PgConnection,
    target: &Target<'_>,
    now: chrono::DateTime<chrono::Utc>,
    rows: &[RowIn],
) -> Result<Copied> {
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
    // The rows that get their version 1 with them: (index in `written`, digest).
    let mut firsts: Vec<(usize, &str)> = Vec::new();
    for r in rows {
        let id = Uuid::new_v4();
        if let Some(alone) = target.first_versions
            && versions::first_with_row(alone, &r.row)
            && let Some(digest) = &r.row.digest
        {
            firsts.push((written.len(), digest));
        }
        let s = &r.row.skill;
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
        written.push((id, s.slug.clone(), s.path.clone()));
    }
    buf.finish();
    copy.send(buf.bytes()).await?;
    copy.finish().await?;
    let firsts: Vec<versions::First<'_>> = firsts
        .into_iter()
        .map(|(at, digest)| {
            let (id, slug, path) = &written[at];
            versions::First {
                skill_id: *id,
                path,
                slug,
                digest,
            }
        })
        .collect();
    versions::copy_first(tx, &target.publish(), &firsts).await?;
    let versioned = firsts.iter().map(|f| f.path.to_string()).collect();
    Ok(Copied { written, versioned })
}

/// Bytes of `COPY` data sent at a time.
const COPY_CHUNK: usize = 1 << 20;

/// The sync log of a bulk load by `COPY` (a row per skill: 100,000 rows took 0.87 s as
/// `INSERT … SELECT unnest(…)` batches). `completed_at` is the transaction's `now()`,
/// as the batches write it.
pub(super) async fn copy_log(
    tx: &mut PgConnection,
    target: &Target<'_>,
    now: chrono::DateTime<chrono::Utc>,
    log: &[LogRow],
) -> Result<()> {
    if log.is_empty() {
        return Ok(());
    }
    const COLUMNS: i16 = 13;
    let mut copy = tx
        .copy_in_raw(
            "COPY skill_sync_log (skill_id, repo, slug, path, operation, direction, status,
                                  started_at, completed_at, error, git_commit_sha, synced_by,
                                  push_id)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut buf = CopyBuffer::new();
    for l in log {
        buf.row(COLUMNS);
        buf.opt_uuid(l.skill_id.as_ref());
        buf.text(target.repo);
        buf.opt_text(l.slug.as_deref());
        buf.text(&l.path);
        buf.text(l.operation);
        buf.text("git-to-db");
        buf.text(l.status());
        buf.timestamptz(&target.started_at);
        buf.timestamptz(&now);
        buf.opt_text(l.error.as_deref());
        buf.text(target.commit);
        buf.text(target.synced_by);
        buf.opt_uuid(target.push_id.as_ref());
        if buf.len() >= COPY_CHUNK {
            copy.send(buf.bytes()).await?;
            buf.clear();
        }
    }
    buf.finish();
    copy.send(buf.bytes()).await?;
    copy.finish().await?;
    Ok(())
}
