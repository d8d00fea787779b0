//! The full-text vectors of the cache (`skills.search`).
//!
//! A small sync writes each row's vector in the statement that writes the row. A big
//! one (an import, a reconcile: more than [`super::sync::SEARCH_INLINE_ROWS`] rows)
//! writes the rows with `search` NULL, commits, and asks for them to be filled here,
//! so its rows are visible without waiting for `to_tsvector` over every body. Filling
//! runs in batches on several connections at once (PostgreSQL computes the vectors, one
//! core per connection); `FOR UPDATE SKIP LOCKED` lets fillers and writers share rows
//! safely. A filler that dies (a crash, a restart) leaves NULLs that the next fill —
//! at start, periodically, after the next big sync — picks up.

use sqlx::PgPool;

/// Rows per statement.
const BATCH: i64 = 500;

/// How many connections fill at once.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// Fills every missing vector, with `workers` connections at once, and returns when
/// none is missing (also those other fillers were working on). Returns how many rows
/// these workers filled.
pub async fn fill(pool: &PgPool, workers: usize) -> sqlx::Result<u64> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let pool = pool.clone();
        tasks.spawn(async move { fill_one(&pool).await });
    }
    let mut total = 0;
    let mut failure = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(sqlx::Error::Protocol(format!("search filler: {e}"))),
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

async fn fill_one(pool: &PgPool) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let filled = sqlx::query!(
            "UPDATE skills s SET search = skills_search_vector(s.title, s.description, s.tags, s.body)
             FROM (SELECT id FROM skills WHERE search IS NULL LIMIT $1 FOR UPDATE SKIP LOCKED) p
             WHERE s.id = p.id",
            BATCH,
        )
        .execute(pool)
        .await?
        .rows_affected();
        if filled == 0 {
            // Nothing this filler could lock: done, unless another filler still holds
            // rows (it may die before it commits; then they are ours to fill).
            let left: bool = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM skills WHERE search IS NULL) AS "left!""#
            )
            .fetch_one(pool)
            .await?;
            if !left {
                return Ok(total);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        total += filled;
    }
}

/// [`fill`] with every worker, what it did or why it failed logged.
pub async fn fill_logged(pool: &PgPool) {
    let started = std::time::Instant::now();
    match fill(pool, workers()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            rows = n,
            ms = started.elapsed().as_millis() as u64,
            "search vectors filled"
        ),
        Err(e) => tracing::warn!(error = %e, "filling search vectors failed; will retry"),
    }
}
