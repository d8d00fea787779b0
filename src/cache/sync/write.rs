//! Writing a set of operations: the rows (batched, COPY for new ones), the sync log
//! and the NOTIFY that tells the pages and MCP.

mod copy;

use super::{SEARCH_INLINE_ROWS, SyncOutcome, Target, UPSERT_BATCH};
use crate::cache::Result;
use crate::cache::changes::{self, Op};
use crate::cache::savepoint::Savepoint;
use crate::cache::vector::SearchVector;
use copy::{COPY_CREATIONS_FROM, copy_log};
use sqlx::PgConnection;
use std::collections::BTreeSet;
use uuid::Uuid;

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
    /// The full-text vector when skillsd could compute it ([`crate::cache::vector`]).
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
/// when `$3` is true, PostgreSQL's, else NULL (for [`crate::cache::search`] to fill).
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

impl LogRow {
    /// Its `status` column: `failed` with an error, else `success`.
    fn status(&self) -> &'static str {
        if self.error.is_some() {
            "failed"
        } else {
            "success"
        }
    }
}

/// Writes `ops` and announces them (`NOTIFY skills_changed`).
pub(super) async fn apply(
    tx: &mut PgConnection,
    target: &Target<'_>,
    ops: Vec<Op>,
) -> Result<SyncOutcome> {
    let mut slugs = BTreeSet::new();
    let outcome = write(tx, target, ops, &mut slugs).await?;
    notify(tx, target, &outcome, slugs).await?;
    Ok(outcome)
}

/// Writes `ops` (rows and sync-log rows), adding the slugs it touched to `slugs`:
/// deletions, renames, creations and updates (by `COPY` for a bulk load), the rows the
/// database refused marked failed, then the sync log.
pub(super) async fn write(
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
        creations,
    } = w.sort(ops);
    // Rows whose vector skillsd could not compute: PostgreSQL computes them in the same
    // statements when they are few, else the search filler does after the commit.
    let lacking = renames
        .iter()
        .chain(&upserts)
        .chain(&creations)
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
    // Many new rows with their vectors go in by `COPY` after the updates; else they
    // are upserted with them.
    let (copied, upserted): (Vec<RowIn>, Vec<RowIn>) = if target.bulk_now.is_none()
        && creations.iter().filter(|r| r.row.search.is_some()).count() >= COPY_CREATIONS_FROM
    {
        creations.into_iter().partition(|r| r.row.search.is_some())
    } else {
        (Vec::new(), creations)
    };
    upserts.extend(upserted);
    if let Some(now) = target.bulk_now {
        w.copy_rows(tx, target, now, std::mem::take(&mut upserts))
            .await?;
    }
    w.upsert_rows(tx, target, search_inline, upserts).await?;
    if !copied.is_empty() {
        let refused = w.copy_creations(tx, target, copied).await?;
        w.upsert_rows(tx, target, search_inline, refused).await?;
    }
    w.mark_refused(tx, target).await?;
    write_log(tx, target, &w.log).await?;
    slugs.extend(w.log.into_iter().filter_map(|l| l.slug));
    Ok(w.outcome)
}

/// The operations of a sync by the statement that writes them.
struct Sorted {
    deletes: Vec<String>,
    renames: Vec<RowIn>,
    /// Updates (and, in a bulk load, everything).
    upserts: Vec<RowIn>,
    /// Files the diff found new (their paths have no row, unless the cache drifted).
    creations: Vec<RowIn>,
}

/// A row a statement wrote, as it returns it.
#[derive(sqlx::FromRow)]
struct WrittenRow {
    id: uuid::Uuid,
    slug: String,
    path: String,
    /// Created rather than updated (the upsert's `xmax = 0`; false for the others).
    #[sqlx(default)]
    inserted: bool,
}

/// What a sync has written so far: its counts, its log rows, and the rows the database
/// refused (each with the database's reason).
struct Written {
    outcome: SyncOutcome,
    log: Vec<LogRow>,
    refused: Vec<(RowIn, String)>,
}

impl Written {
    fn logged(&mut self, r: WrittenRow, operation: &'static str) {
        self.log.push(LogRow {
            skill_id: Some(r.id),
            slug: Some(r.slug),
            path: r.path,
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
            creations: Vec::new(),
        };
        for op in ops {
            match op {
                Op::Delete { path } => sorted.deletes.push(path),
                Op::Rename { from, row } => sorted.renames.push(RowIn {
                    row,
                    old_path: Some(from),
                }),
                Op::Create(row) => sorted.creations.push(RowIn {
                    row,
                    old_path: None,
                }),
                Op::Update(row) => sorted.upserts.push(RowIn {
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
        let rows = sqlx::query_as!(
            WrittenRow,
            r#"DELETE FROM skills WHERE repo = $1 AND path = ANY($2)
               RETURNING id, slug, path, false AS "inserted!""#,
            target.repo,
            deletes,
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            self.outcome.deleted += 1;
            self.logged(r, "delete");
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
                self.logged(r, "rename");
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
                let inserted = r.inserted;
                if inserted {
                    self.outcome.created += 1;
                } else {
                    self.outcome.updated += 1;
                }
                self.logged(
                    r,
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
        sqlx::query!(
            "UPDATE skills SET sync_status = 'failed' WHERE repo = $1 AND path = ANY($2)",
            target.repo,
            &paths,
        )
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// The sync log rows, in batches (by `COPY` in a bulk load).
async fn write_log(tx: &mut PgConnection, target: &Target<'_>, log: &[LogRow]) -> Result<()> {
    if let Some(now) = target.bulk_now {
        return copy_log(tx, target, now, log).await;
    }
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
            status.push(l.status());
            error.push(l.error.as_deref());
        }
        sqlx::query!(
            "INSERT INTO skill_sync_log (skill_id, repo, slug, path, operation, direction, status,
                                         started_at, completed_at, error, git_commit_sha, synced_by, push_id)
             SELECT u.skill_id, $1, u.slug, u.path, u.operation, 'git-to-db', u.status, $2, now(), u.error,
                    $3, $4, $5
             FROM unnest($6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
                  AS u(skill_id, slug, path, operation, status, error)",
            target.repo,
            target.started_at,
            target.commit,
            target.synced_by,
            target.push_id,
            &skill_id as &[Option<uuid::Uuid>],
            &slug as &[Option<&str>],
            &path as &[&str],
            &operation as &[&str],
            &status as &[&str],
            &error as &[Option<&str>],
        )
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
    ) -> sqlx::Result<Vec<WrittenRow>> {
        use sqlx::FromRow;
        let query = sqlx::query(sqlx::AssertSqlSafe(self.sql()))
            .bind(target.repo)
            .bind(target.commit)
            .bind(search_inline);
        let written = Columns::of(rows).bind(query).fetch_all(&mut *tx).await?;
        written.iter().map(WrittenRow::from_row).collect()
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
) -> Result<(Vec<WrittenRow>, Vec<(RowIn, String)>)> {
    // The batch is bound by reference: refused, it is written again row by row (only
    // the rows the database refuses are copied, for the caller to log).
    Savepoint::Batch.set(tx).await?;
    let first = statement.run(tx, target, search_inline, batch).await;
    let error = match first {
        Ok(rows) => {
            Savepoint::Batch.release(tx).await?;
            return Ok((rows, Vec::new()));
        }
        Err(e) => e,
    };
    if refused_data(&error).is_none() {
        return Err(error.into());
    }
    Savepoint::Batch.rollback_to(tx).await?;
    let mut written = Vec::new();
    let mut refused = Vec::new();
    for row in batch {
        Savepoint::Row.set(tx).await?;
        match statement
            .run(tx, target, search_inline, std::slice::from_ref(row))
            .await
        {
            Ok(mut rows) => {
                Savepoint::Row.release(tx).await?;
                written.append(&mut rows);
            }
            Err(e) => {
                let Some(reason) = refused_data(&e) else {
                    return Err(e.into());
                };
                Savepoint::Row.rollback_to(tx).await?;
                refused.push((row.clone(), reason));
            }
        }
    }
    Savepoint::Batch.release(tx).await?;
    Ok((written, refused))
}

/// `NOTIFY skills_changed` with the counts and, when they fit, the slugs.
pub(super) async fn notify(
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
    let payload = crate::cache::announce::Changed {
        repo: repo_name.to_string(),
        branch: branch.to_string(),
        commit: commit.to_string(),
        created: outcome.created,
        updated: outcome.updated,
        renamed: outcome.renamed,
        deleted: outcome.deleted,
        failed: outcome.failed,
        slugs: Some(slugs),
    }
    .payload();
    sqlx::query!(
        "SELECT pg_notify($1, $2)",
        crate::cache::announce::CHANNEL,
        payload
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
