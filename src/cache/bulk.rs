//! Rebuilding an empty cache: the rows first, the indexes after.
//!
//! Filling the `skills` table row by row keeps every index up to date on each insert:
//! for a 100,000-skill repository that is most of the reconcile's time (the full-text
//! GIN index alone costs twice what building it from the finished table does). When a
//! reconcile finds the *whole* table empty (a new database, a restored one, a cache
//! deleted on purpose) and has many skills to create, it drops the table's
//! indexes inside its transaction, writes the rows, and creates the same indexes again
//! before it commits — PostgreSQL's own advice for populating a database.
//!
//! An import push does the same in its transaction (`sync::Replay`): the first sync
//! of a repository creating many skills, into a table that holds at most a tenth as
//! many rows (a new server's holds its template's few), under a savepoint, so a row an
//! index refuses rolls the bulk load back and the push writes row by row.
//!
//! It is all one transaction: a failure anywhere rolls back the rows and the dropped
//! indexes with them. One index is left out of it: the full-text GIN index, which
//! cannot refuse a row and only makes searches faster, is built right after the commit
//! ([`super::index_builds`]). The price is the `ACCESS EXCLUSIVE` lock `DROP INDEX`
//! takes: readers of `skills` wait until the reconcile or the push commits (seconds)
//! instead of seeing an empty or nearly empty table. That is why only such a table
//! qualifies, and why the lock is not waited for long: if another session holds the
//! table, the writer goes row by row as usual. The primary key and the unique
//! constraints are dropped and added again the same way (the rows go in with `COPY`,
//! which needs neither; a duplicate fails the load when they are added back, as it
//! would have on insert).

use super::savepoint::Savepoint;
use sqlx::PgConnection;

/// The indexes and key constraints dropped for a bulk load, for [`finish`] to create
/// again.
#[derive(Debug)]
pub struct Dropped {
    /// The primary key and unique constraints: (quoted name, definition as
    /// `pg_get_constraintdef` gives it).
    constraints: Vec<(String, String)>,
    /// The other indexes.
    indexes: Vec<Index>,
    /// The transaction's `now()`, for the rows' timestamps.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// An index dropped for a bulk load.
#[derive(Debug, sqlx::FromRow)]
struct Index {
    name: String,
    /// `CREATE INDEX …`, as `pg_get_indexdef` gives it.
    definition: String,
    /// A GIN index over full-text vectors only, built after the commit
    /// ([`super::index_builds`]): it only makes searches faster, and it cannot refuse
    /// a row (a lexeme is at most 2,046 bytes, under GIN's limit for an entry). The
    /// B-tree indexes are built in the transaction: a value over their entry size
    /// limit (2,704 bytes) must fail the load, as it would fail an insert.
    after_commit: bool,
}

/// Inside the caller's transaction: when the `skills` table holds at most `at_most`
/// rows (0 for a reconcile: none at all), locks it, drops its indexes and key
/// constraints and returns their definitions. `None`, with nothing changed, when the
/// table has more rows, the lock is not granted within 2 s, or something forbids the
/// drop (the role's rights, a foreign key).
pub async fn begin(tx: &mut PgConnection, at_most: usize) -> sqlx::Result<Option<Dropped>> {
    if !few_rows(tx, at_most).await? {
        return Ok(None);
    }
    Savepoint::BulkLoad.set(tx).await?;
    let dropped = drop_indexes(tx, at_most).await.unwrap_or_else(|e| {
        tracing::info!(error = %e, "bulk load not possible; writing row by row");
        None
    });
    if dropped.is_none() {
        // Undoes whatever got done, the table lock included.
        Savepoint::BulkLoad.rollback_to(tx).await?;
    }
    Savepoint::BulkLoad.release(tx).await?;
    Ok(dropped)
}

/// Whether `skills` holds at most `at_most` rows (it stops counting after that).
async fn few_rows(tx: &mut PgConnection, at_most: usize) -> sqlx::Result<bool> {
    let limit = i64::try_from(at_most).unwrap_or(i64::MAX - 1) + 1;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM skills LIMIT $1) AS s")
        .bind(limit)
        .fetch_one(&mut *tx)
        .await?;
    Ok(rows < limit)
}

async fn drop_indexes(tx: &mut PgConnection, at_most: usize) -> sqlx::Result<Option<Dropped>> {
    sqlx::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("LOCK TABLE skills IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL lock_timeout TO DEFAULT")
        .execute(&mut *tx)
        .await?;
    // Still so few, now that nobody else can write?
    if !few_rows(tx, at_most).await? {
        return Ok(None);
    }
    let indexes: Vec<Index> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text AS name,
                pg_get_indexdef(i.indexrelid) AS definition,
                (am.amname = 'gin' AND i.indexprs IS NULL AND i.indpred IS NULL
                 AND (SELECT bool_and(a.atttypid = 'tsvector'::regtype) FROM pg_attribute a
                      WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)))
                  IS TRUE AS after_commit
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
         WHERE i.indrelid = 'skills'::regclass AND NOT i.indisunique AND NOT i.indisprimary
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
         ORDER BY i.indexrelid",
    )
    .fetch_all(&mut *tx)
    .await?;
    let constraints: Vec<(String, String)> = sqlx::query_as(
        "SELECT quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = 'skills'::regclass AND contype IN ('p', 'u')
         ORDER BY oid",
    )
    .fetch_all(&mut *tx)
    .await?;
    if indexes.is_empty() && constraints.is_empty() {
        return Ok(None);
    }
    // The names come from the catalog, quoted where they need it. Anything depending
    // on a constraint (a foreign key) makes the drop fail: then nothing is dropped.
    let drops = constraints
        .iter()
        .map(|(name, _)| format!("DROP CONSTRAINT {name}"));
    alter_skills(tx, drops.collect()).await?;
    let names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).collect();
    if !names.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP INDEX {}",
            names.join(", ")
        )))
        .execute(&mut *tx)
        .await?;
    }
    tracing::debug!(
        indexes = names.len(),
        constraints = constraints.len(),
        "bulk load: indexes dropped"
    );
    let now = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;
    Ok(Some(Dropped {
        constraints,
        indexes,
        now,
    }))
}

/// The `lacking` full-text vectors skillsd could not compute, once every row is in:
/// PostgreSQL computes them now, in one pass (the table has no index yet to find rows
/// by), when there are at most `inline` of them; else they stay NULL for
/// [`super::search`] to fill after the commit, and this returns true.
pub async fn fill_vectors(
    tx: &mut PgConnection,
    lacking: usize,
    inline: usize,
) -> sqlx::Result<bool> {
    if lacking == 0 {
        return Ok(false);
    }
    if lacking > inline {
        return Ok(true);
    }
    sqlx::query(
        "UPDATE skills SET search = skills_search_vector(title, description, tags, body)
         WHERE search IS NULL",
    )
    .execute(&mut *tx)
    .await?;
    Ok(false)
}

/// Adds back the constraints and creates again the indexes [`begin`] dropped, from the
/// rows now in the table (a duplicate key fails here, as it would have on insert),
/// except the full-text GIN indexes: those it records for [`super::index_builds`] to
/// build once the transaction commits. Returns whether it recorded any.
pub async fn finish(tx: &mut PgConnection, dropped: Dropped) -> sqlx::Result<bool> {
    let adds = dropped
        .constraints
        .iter()
        .map(|(name, definition)| format!("ADD CONSTRAINT {name} {definition}"));
    alter_skills(tx, adds.collect()).await?;
    let (later, now): (Vec<Index>, Vec<Index>) =
        dropped.indexes.into_iter().partition(|i| i.after_commit);
    for index in now {
        sqlx::query(sqlx::AssertSqlSafe(index.definition))
            .execute(&mut *tx)
            .await?;
    }
    let (names, definitions): (Vec<String>, Vec<String>) =
        later.into_iter().map(|i| (i.name, i.definition)).unzip();
    super::index_builds::record(tx, &names, &definitions).await?;
    Ok(!names.is_empty())
}

/// `ALTER TABLE skills` with `actions` (none: nothing to do).
async fn alter_skills(tx: &mut PgConnection, actions: Vec<String>) -> sqlx::Result<()> {
    if !actions.is_empty() {
        let sql = format!("ALTER TABLE skills {}", actions.join(", "));
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(tx).await?;
    }
    Ok(())
}
