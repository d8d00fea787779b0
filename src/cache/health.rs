//! The cache's health as the `skill_sync_health` view sums it up: one reader for the
//! dashboard, the JSON API and the live stream.

/// Counts of the cache's rows by sync state, and whether it is healthy.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub synced: i64,
    pub pending: i64,
    pub failed: i64,
    pub unknown: i64,
    pub total: i64,
    /// Failed syncs of the last 24 hours.
    pub recent_failures: i64,
    /// Rows whose full-text vector is still to be filled.
    pub search_pending: i64,
    pub with_warnings: i64,
    /// Indexes a bulk load left to build after its commit.
    pub indexes_pending: i64,
    pub healthy: bool,
}

/// Reads [`Health`].
pub async fn read(pool: &sqlx::PgPool) -> sqlx::Result<Health> {
    // A view's columns carry no NOT NULL: each is a count or a comparison of counts.
    sqlx::query_as!(
        Health,
        r#"SELECT synced AS "synced!", pending AS "pending!", failed AS "failed!",
                  unknown AS "unknown!", total AS "total!", recent_failures AS "recent_failures!",
                  search_pending AS "search_pending!", with_warnings AS "with_warnings!",
                  indexes_pending AS "indexes_pending!",
                  healthy AS "healthy!"
         FROM skill_sync_health"#
    )
    .fetch_one(pool)
    .await
}
