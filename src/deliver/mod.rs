//! What happens after a push, outside it: push mirrors ([`mirrors`]) and webhooks
//! ([`webhooks`]). A push tells them inside its own transaction ([`enqueue`]), so a
//! refused push reaches nobody and an accepted one is never forgotten, even if every
//! node restarts. Every node runs [`spawn`]: it claims due work with a lease taken
//! under `FOR UPDATE SKIP LOCKED` (one node delivers each), delivers it, and records
//! the outcome; failures are retried with exponential backoff.

pub mod guard;
pub mod mirrors;
pub mod webhooks;

use sqlx::{PgConnection, PgPool};
use std::time::Duration;

/// Announces new work to every node's worker (sent at the push's commit).
pub const NOTIFY_CHANNEL: &str = "skillsd_deliveries";

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Guard(#[from] guard::GuardError),
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("git error: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl DeliverError {
    fn git(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        DeliverError::Git(Box::new(e))
    }
}

pub type Result<T, E = DeliverError> = std::result::Result<T, E>;

/// How deliveries are retried and bounded.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The first retry's wait; each further failure doubles it
    /// (`SKILLSD_DELIVERY_RETRY_SECS`).
    pub retry_base: Duration,
    /// The longest wait between retries (`SKILLSD_DELIVERY_RETRY_MAX_SECS`).
    pub retry_max: Duration,
    /// Attempts of a webhook delivery before it is marked failed
    /// (`SKILLSD_WEBHOOK_ATTEMPTS`); mirrors retry until they succeed.
    pub webhook_attempts: u32,
    /// One webhook request, connecting included (`SKILLSD_WEBHOOK_TIMEOUT_SECS`).
    pub webhook_timeout: Duration,
    /// One mirror push, connecting included (`SKILLSD_MIRROR_TIMEOUT_SECS`).
    pub mirror_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
            webhook_attempts: 8,
            webhook_timeout: Duration::from_secs(10),
            mirror_timeout: Duration::from_secs(600),
        }
    }
}

/// The wait after the `failures`-th failure in a row: base, 2×base, 4×base, …, at most
/// `retry_max`.
pub fn backoff(settings: &Settings, failures: u32) -> Duration {
    let doubled = settings
        .retry_base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    doubled.min(settings.retry_max)
}

async fn repo_exists(pool: &PgPool, repo: &str) -> Result<()> {
    let found: Option<i32> =
        sqlx::query_scalar!(r#"SELECT 1 AS "one!" FROM git_repos WHERE name = $1"#, repo)
            .fetch_optional(pool)
            .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(DeliverError::Invalid(format!("no repository `{repo}`"))),
    }
}

/// Tells the repository's mirrors and webhooks of an accepted push, inside its
/// transaction, which commits the repository's `generation`.
pub async fn enqueue(
    tx: &mut PgConnection,
    view: &gix::Repository,
    event: &webhooks::PushEvent<'_>,
    generation: i64,
) -> Result<()> {
    mirrors::wanted(tx, event.repo, generation).await?;
    webhooks::enqueue(tx, view, event).await?;
    Ok(())
}

/// Gives back the claims of this process (at shutdown, after its worker stopped): the
/// work is due again at once for the other nodes. Returns how many.
pub async fn release(pool: &PgPool) -> sqlx::Result<u64> {
    let node = crate::storage::node_id();
    let mirrors = sqlx::query!(
        "UPDATE mirrors SET lease_until = NULL, lease_owner = NULL, next_attempt_at = now()
         WHERE lease_owner = $1 AND lease_until > now()",
        node,
    )
    .execute(pool)
    .await?
    .rows_affected();
    let hooks = sqlx::query!(
        "UPDATE webhook_deliveries SET lease_until = NULL, lease_owner = NULL
         WHERE lease_owner = $1 AND lease_until > now() AND status = 'pending'",
        node,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(mirrors + hooks)
}

/// Every node's delivery worker: wakes on a push's `NOTIFY`, and at least every
/// `min(retry_base, 5 s)` for retries that came due; delivers until nothing is due.
pub fn spawn(
    pool: PgPool,
    repos: crate::repos::RepoStore,
    settings: Settings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Webhooks and mirrors each have a loop of their own: a mirror upstream that
        // takes its whole time limit never holds a webhook back, nor the other way.
        tokio::join!(
            work(&pool, &settings, Work::Webhooks),
            work(&pool, &settings, Work::Mirrors(&repos)),
        );
    })
}

/// What one delivery loop sends.
#[derive(Clone, Copy)]
enum Work<'a> {
    Webhooks,
    Mirrors(&'a crate::repos::RepoStore),
}

/// One delivery loop: wakes on `NOTIFY skillsd_deliveries` or a timer, delivers what
/// is due, again while there was some.
async fn work(pool: &PgPool, settings: &Settings, what: Work<'_>) {
    let poll = settings.retry_base.min(Duration::from_secs(5));
    let mut listener = None;
    let mut pruned: Option<std::time::Instant> = None;
    loop {
        if let Work::Webhooks = what
            && pruned.is_none_or(|t| t.elapsed() > Duration::from_secs(3600))
        {
            pruned = Some(std::time::Instant::now());
            if let Err(e) = webhooks::prune(pool).await {
                tracing::warn!(error = %e, "pruning old webhook deliveries");
            }
        }
        if listener.is_none() {
            match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(mut l) => {
                    if l.listen(NOTIFY_CHANNEL).await.is_ok() {
                        listener = Some(l);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "delivery worker: cannot listen"),
            }
        }
        let busy = match what {
            Work::Webhooks => match webhooks::deliver_due(pool, settings).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliveries");
                    false
                }
            },
            Work::Mirrors(repos) => match mirrors::deliver_due(pool, repos, settings).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "mirror deliveries");
                    false
                }
            },
        };
        if busy {
            continue;
        }
        match listener.as_mut() {
            Some(l) => {
                tokio::select! {
                    r = l.recv() => if r.is_err() { listener = None; },
                    _ = tokio::time::sleep(poll) => {}
                }
            }
            None => tokio::time::sleep(poll).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = Settings {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(60),
            ..Default::default()
        };
        let waits: Vec<u64> = (1..=6).map(|f| backoff(&s, f).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60, 60]);
        assert_eq!(backoff(&s, 1000).as_secs(), 60);
    }
}
