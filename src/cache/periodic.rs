//! The periodic reconcile: every `SKILLSD_RECONCILE_SECS` (default 600, 0 = off) each
//! repository's cache is compared with its `main` and repaired (a cache edited by
//! hand, rows a database restore lost). A repository whose reconcile fails is tried
//! again with backoff until it succeeds. (Pushes need none of this: a push writes the
//! cache in its own transaction or is refused.)

use crate::repos::{DEFAULT_BRANCH, RepoStore};
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::Duration;

/// Backoff between attempts: 0.5 s doubling up to 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// Starts the background task on the current runtime, reconciling every `every`
/// (`SKILLSD_RECONCILE_SECS`; nothing when `None`).
pub fn spawn(pool: PgPool, repos: RepoStore, every: Option<Duration>) {
    let Some(interval) = every else {
        return;
    };
    tokio::spawn(async move {
        let mut failing: HashSet<String> = HashSet::new();
        let mut attempt: u32 = 0;
        let mut next_round = tokio::time::Instant::now() + interval;
        loop {
            let wake = if failing.is_empty() {
                next_round
            } else {
                (tokio::time::Instant::now() + backoff(attempt)).min(next_round)
            };
            tokio::time::sleep_until(wake).await;
            let round = tokio::time::Instant::now() >= next_round;
            let names: Vec<String> = if round {
                next_round = tokio::time::Instant::now() + interval;
                repos.list()
            } else {
                failing.iter().cloned().collect()
            };
            for name in names {
                match reconcile_one(&pool, &repos, &name).await {
                    Ok(summary) => {
                        if failing.remove(&name) {
                            tracing::info!(repo = %name, %summary, "cache reconciled after failures");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(repo = %name, error = %e, attempt, "periodic reconcile failed; will retry");
                        failing.insert(name);
                    }
                }
            }
            attempt = if failing.is_empty() {
                0
            } else {
                attempt.saturating_add(1)
            };
            if round {
                super::catch_up_in_background(&tokio::runtime::Handle::current(), &pool);
            }
        }
    });
}

async fn reconcile_one(pool: &PgPool, repos: &RepoStore, name: &str) -> Result<String, String> {
    let (name, repo) = crate::storage::replica::open(pool, repos, name, false)
        .await
        .map_err(|e| e.to_string())?;
    let pool = pool.clone();
    let rt = tokio::runtime::Handle::current();
    let bulk_from = repos.settings.bulk_load_from;
    tokio::task::spawn_blocking(move || {
        super::sync::reconcile(&rt, &pool, &repo, &name, DEFAULT_BRANCH, bulk_from)
            .map(|o| o.reconcile_summary())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}
