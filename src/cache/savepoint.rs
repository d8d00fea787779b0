//! The named savepoints the cache's writes take inside a push's or a reconcile's
//! transaction: a part that may fail (a bulk load, a batch, a row, a `COPY`) is undone
//! alone and the transaction goes on.

use sqlx::PgConnection;

/// A savepoint, by the part of a write it guards.
#[derive(Debug, Clone, Copy)]
pub enum Savepoint {
    /// A bulk load's index drops ([`super::bulk::begin`]).
    BulkLoad,
    /// A push's whole bulk load ([`super::sync`]'s replay).
    BulkPush,
    /// One statement's batch of rows.
    Batch,
    /// One row, when its batch was refused.
    Row,
    /// A push's or a reconcile's new rows by `COPY`.
    Copy,
}

impl Savepoint {
    /// `SAVEPOINT`, `RELEASE` and `ROLLBACK TO` for this one (static: nothing is
    /// formatted into SQL).
    fn sql(self) -> [&'static str; 3] {
        match self {
            Savepoint::BulkLoad => [
                "SAVEPOINT skillsd_bulk_load",
                "RELEASE SAVEPOINT skillsd_bulk_load",
                "ROLLBACK TO SAVEPOINT skillsd_bulk_load",
            ],
            Savepoint::BulkPush => [
                "SAVEPOINT skillsd_bulk_push",
                "RELEASE SAVEPOINT skillsd_bulk_push",
                "ROLLBACK TO SAVEPOINT skillsd_bulk_push",
            ],
            Savepoint::Batch => [
                "SAVEPOINT skillsd_batch",
                "RELEASE SAVEPOINT skillsd_batch",
                "ROLLBACK TO SAVEPOINT skillsd_batch",
            ],
            Savepoint::Row => [
                "SAVEPOINT skillsd_row",
                "RELEASE SAVEPOINT skillsd_row",
                "ROLLBACK TO SAVEPOINT skillsd_row",
            ],
            Savepoint::Copy => [
                "SAVEPOINT skillsd_copy",
                "RELEASE SAVEPOINT skillsd_copy",
                "ROLLBACK TO SAVEPOINT skillsd_copy",
            ],
        }
    }

    async fn run(tx: &mut PgConnection, sql: &'static str) -> sqlx::Result<()> {
        sqlx::query(sql).execute(tx).await.map(|_| ())
    }

    /// Sets it.
    pub async fn set(self, tx: &mut PgConnection) -> sqlx::Result<()> {
        Self::run(tx, self.sql()[0]).await
    }

    /// Keeps what was done since it was set, and ends it.
    pub async fn release(self, tx: &mut PgConnection) -> sqlx::Result<()> {
        Self::run(tx, self.sql()[1]).await
    }

    /// Undoes what was done since it was set; it stays set.
    pub async fn rollback_to(self, tx: &mut PgConnection) -> sqlx::Result<()> {
        Self::run(tx, self.sql()[2]).await
    }

    /// Undoes what was done since it was set, and ends it.
    pub async fn undo(self, tx: &mut PgConnection) -> sqlx::Result<()> {
        self.rollback_to(tx).await?;
        self.release(tx).await
    }
}
