//! Indexes a bulk load leaves to build after its commit.
//!
//! A bulk load ([`super::bulk`]) drops the `skills` table's indexes, writes the rows,
//! and in its transaction adds back the keys and builds the B-tree indexes again: a
//! row those refuse must fail the load. The full-text GIN index cannot refuse a row
//! and only makes searches faster (a search without it scans the table, with the same
//! answers), yet building it is a third of an import's transaction. So the transaction
//! records it here (`skill_index_builds`: name and definition) instead, commits, and
//! it is built right after, off the pusher's time: an import's `git push` returns,
//! and the table's `ACCESS EXCLUSIVE` lock is released, that much sooner.
//!
//! A build takes `SHARE` on `skills` (reads go on; writes wait for it), creates the
//! index unless it exists, and deletes its row, in one transaction: a crash or a
//! restart leaves the row, and the next build — at a server's start, periodically,
//! after the next bulk load, on any node — does it. A build that does not get the
//! table within a second steps back and asks again later: a request waiting in the
//! lock queue behind a long writer would hold up every push queued after it. Locks
//! are taken in the bulk load's order (the table, then the rows here), so the two
//! never wait for each other in a cycle.

use sqlx::{PgConnection, PgPool};

/// Inside a bulk load's transaction (which holds the `skills` table): records the
/// indexes `names` (created by `definitions`) to be built after it commits.
pub async fn record(
    tx: &mut PgConnection,
    names: &[String],
    definitions: &[String],
) -> sqlx::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO skill_index_builds (name, definition)
         SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(names)
    .bind(definitions)
    .execute(tx)
    .await?;
    Ok(())
}

/// How long a build waits for the `skills` table before it steps out of the lock
/// queue, and how long it then waits before it asks again.
const LOCK_WAIT: &str = "1s";
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Takes `SHARE` on `skills` in `tx`, waiting at most [`LOCK_WAIT`]: a request
/// waiting in the queue makes every later writer wait behind it. False when it was
/// not granted in that time.
async fn lock_skills(tx: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{LOCK_WAIT}'"
    )))
    .execute(&mut *tx)
    .await?;
    match sqlx::query("LOCK TABLE skills IN SHARE MODE")
        .execute(&mut *tx)
        .await
    {
        Ok(_) => {}
        // lock_not_available: the timeout ran out.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    sqlx::query("SET LOCAL lock_timeout TO DEFAULT")
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

/// Builds every recorded index, one transaction each, and returns when none is left
/// (also those another builder was building). Returns how many this call built.
pub async fn build(pool: &PgPool) -> sqlx::Result<u64> {
    let mut built = 0;
    loop {
        let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM skill_index_builds)")
            .fetch_one(pool)
            .await?;
        if !pending {
            return Ok(built);
        }
        let mut tx = pool.begin().await?;
        if !lock_skills(&mut tx).await? {
            // A long writer holds the table: waiting in the lock queue would hold up
            // every push queued behind this request. Try again in a moment.
            tx.rollback().await?;
            tokio::time::sleep(LOCK_RETRY).await;
            continue;
        }
        let next: Option<(String, String)> = sqlx::query_as(
            "SELECT name, definition FROM skill_index_builds
             ORDER BY recorded_at, name LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some((name, definition)) = next else {
            // Another builder holds the rest: wait for it (it may die before it
            // commits; then they are ours to build).
            tx.rollback().await?;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
        let started = std::time::Instant::now();
        if !exists {
            sqlx::query(sqlx::AssertSqlSafe(definition))
                .execute(&mut *tx)
                .await?;
            built += 1;
        }
        sqlx::query("DELETE FROM skill_index_builds WHERE name = $1")
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::debug!(index = %name, ms = started.elapsed().as_millis() as u64, "index built after a bulk load");
    }
}

/// [`build`], what it did or why it failed logged.
pub async fn build_logged(pool: &PgPool) {
    let started = std::time::Instant::now();
    match build(pool).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            indexes = n,
            ms = started.elapsed().as_millis() as u64,
            "indexes built after a bulk load"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "building indexes after a bulk load failed; will retry")
        }
    }
}
