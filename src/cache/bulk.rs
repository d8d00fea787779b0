//! Rebuilding an empty cache: the rows first, the indexes after.
//!
//! Filling the `skills` table row by row keeps every index up to date on each insert:
//! for a 100,000-skill repository that is most of the reconcile's time (the full-text
//! GIN index alone costs twice what building it from the finished table does). When a
//! reconcile finds the *whole* table empty (a new database, a restored one, a cache
//! deleted on purpose) and has many skills to create, it drops the table's secondary
//! indexes inside its transaction, writes the rows, and creates the same indexes again
//! before it commits — PostgreSQL's own advice for populating a database.
//!
//! It is all one transaction: a failure anywhere rolls back the rows and the dropped
//! indexes with them. The price is the `ACCESS EXCLUSIVE` lock `DROP INDEX` takes:
//! readers of `skills` wait until the reconcile commits (seconds) instead of seeing an
//! empty table. That is why only an empty table qualifies, and why the lock is not
//! waited for long: if another session holds the table, the reconcile goes row by
//! row as usual. Unique indexes and the primary key stay (the writes rely on them).

use sqlx::PgConnection;

/// Fewest skills to create for a reconcile into an empty table to load indexes last:
/// `SKILLSD_BULK_LOAD_FROM` (0 = never), default 10,000.
pub fn threshold() -> Option<usize> {
    match std::env::var("SKILLSD_BULK_LOAD_FROM")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(0) => None,
        Some(n) => Some(n),
        None => Some(10_000),
    }
}

/// The secondary indexes dropped for a bulk load, to be created again by [`finish`].
#[derive(Debug)]
pub struct Dropped {
    /// `CREATE INDEX …` statements, as `pg_get_indexdef` gives them.
    definitions: Vec<String>,
    /// The transaction's `now()`, for the rows' timestamps.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// Inside the caller's transaction: when the `skills` table holds no row at all, locks
/// it, drops its secondary indexes and returns their definitions. `None`, with nothing
/// changed, when the table has rows, the lock is not granted within a moment, or the
/// role may not drop the indexes.
pub async fn begin(tx: &mut PgConnection) -> sqlx::Result<Option<Dropped>> {
    let empty: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM skills)")
        .fetch_one(&mut *tx)
        .await?;
    if !empty {
        return Ok(None);
    }
    sqlx::query("SAVEPOINT skillsd_bulk_load")
        .execute(&mut *tx)
        .await?;
    match drop_indexes(tx).await {
        Ok(Some(dropped)) => {
            sqlx::query("RELEASE SAVEPOINT skillsd_bulk_load")
                .execute(&mut *tx)
                .await?;
            Ok(Some(dropped))
        }
        outcome => {
            if let Err(e) = &outcome {
                tracing::info!(error = %e, "bulk load not possible; writing row by row");
            }
            sqlx::query("ROLLBACK TO SAVEPOINT skillsd_bulk_load")
                .execute(&mut *tx)
                .await?;
            sqlx::query("RELEASE SAVEPOINT skillsd_bulk_load")
                .execute(&mut *tx)
                .await?;
            Ok(None)
        }
    }
}

async fn drop_indexes(tx: &mut PgConnection) -> sqlx::Result<Option<Dropped>> {
    sqlx::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("LOCK TABLE skills IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL lock_timeout TO DEFAULT")
        .execute(&mut *tx)
        .await?;
    // Empty still, now that nobody else can write?
    let empty: bool = sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM skills)")
        .fetch_one(&mut *tx)
        .await?;
    if !empty {
        return Ok(None);
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
         FROM pg_index i
         WHERE i.indrelid = 'skills'::regclass AND NOT i.indisunique AND NOT i.indisprimary
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
         ORDER BY i.indexrelid",
    )
    .fetch_all(&mut *tx)
    .await?;
    if indexes.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = indexes.iter().map(|(name, _)| name.as_str()).collect();
    // The names come from the catalog, already quoted where they need it.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP INDEX {}",
        names.join(", ")
    )))
    .execute(&mut *tx)
    .await?;
    tracing::debug!(
        indexes = names.len(),
        "bulk load: secondary indexes dropped"
    );
    let now = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;
    Ok(Some(Dropped {
        definitions: indexes.into_iter().map(|(_, def)| def).collect(),
        now,
    }))
}

/// Creates the indexes [`begin`] dropped, from the rows now in the table.
pub async fn finish(tx: &mut PgConnection, dropped: Dropped) -> sqlx::Result<()> {
    for definition in dropped.definitions {
        sqlx::query(sqlx::AssertSqlSafe(definition))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
