//! Convergence: when a cache write fails after the refs moved, the repository is
//! handed to a background task that retries the sync with backoff until the cache
//! equals the tip. The same task reconciles every repository periodically.

use crate::repos::{RepoStore, DEFAULT_BRANCH};
use sqlx::PgPool;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc;

/// Asks the background task to bring a repository's cache up to date.
#[derive(Clone, Debug)]
pub struct Resync {
    tx: mpsc::UnboundedSender<String>,
}

impl Resync {
    pub fn request(&self, repo: &str) {
        let _ = self.tx.send(repo.to_string());
    }
}

/// Backoff between attempts: 0.5 s doubling up to 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// Periodic reconcile interval: `SKILLSD_RECONCILE_SECS` (0 = off), default 600 s.
fn reconcile_interval() -> Option<Duration> {
    crate::config::count_or_off("SKILLSD_RECONCILE_SECS", 600).map(Duration::from_secs)
}

/// Starts the background task on the current runtime.
pub fn spawn(pool: PgPool, repos: RepoStore) -> Resync {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut pending: HashSet<String> = HashSet::new();
        let mut attempt: u32 = 0;
        let interval = reconcile_interval();
        let mut next_reconcile = interval.map(|i| tokio::time::Instant::now() + i);
        loop {
            let wait = if pending.is_empty() {
                next_reconcile.map(|t| t.saturating_duration_since(tokio::time::Instant::now()))
            } else {
                Some(backoff(attempt))
            };
            let received = match wait {
                Some(d) => tokio::time::timeout(d, rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            };
            match received {
                Some(Some(repo)) => {
                    if pending.is_empty() {
                        attempt = 0;
                    }
                    pending.insert(repo);
                    // Give a failing database a moment before the first retry.
                    continue;
                }
                Some(None) => return, // the server is gone
                None => {}            // timeout: time to work
            }
            if !pending.is_empty() {
                let mut still = HashSet::new();
                for repo in pending.drain() {
                    match sync_one(&pool, &repos, &repo, false).await {
                        Ok(summary) => tracing::info!(repo = %repo, %summary, "cache caught up"),
                        Err(e) => {
                            tracing::warn!(repo = %repo, error = %e, attempt, "cache still behind; will retry");
                            still.insert(repo);
                        }
                    }
                }
                pending = still;
                attempt = attempt.saturating_add(1);
            }
            if let (Some(t), Some(i)) = (next_reconcile, interval) {
                if tokio::time::Instant::now() >= t {
                    for repo in repos.list() {
                        if let Err(e) = sync_one(&pool, &repos, &repo, true).await {
                            tracing::warn!(repo = %repo, error = %e, "periodic reconcile failed");
                            pending.insert(repo);
                        }
                    }
                    super::search::fill_in_background(&tokio::runtime::Handle::current(), &pool);
                    next_reconcile = Some(tokio::time::Instant::now() + i);
                }
            }
        }
    });
    Resync { tx }
}

async fn sync_one(
    pool: &PgPool,
    repos: &RepoStore,
    name: &str,
    full: bool,
) -> Result<String, String> {
    let (name, repo) = crate::storage::replica::open(pool, repos, name, false)
        .await
        .map_err(|e| e.to_string())?;
    let pool = pool.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let outcome = if full {
            super::sync::reconcile(&rt, &pool, &repo, &name, DEFAULT_BRANCH)
        } else {
            super::sync::sync_branch(&rt, &pool, &repo, &name, DEFAULT_BRANCH, "system", None)
        };
        outcome.map(|o| o.summary()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}
