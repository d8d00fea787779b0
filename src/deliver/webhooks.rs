//! Webhooks: a JSON POST after every accepted push, shaped like GitHub's push event
//! (`ref`, `before`, `after`, `pusher`, `commits`, `head_commit`) plus the skills the
//! push changed, signed with `X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body)`.
//!
//! The body of each delivery is written in the push's transaction ([`enqueue`]): a
//! refused push has no delivery, an accepted one has its deliveries even if every node
//! restarts. [`deliver_due`] sends what is due on whichever node claims it first.

use super::{DeliverError, NOTIFY_CHANNEL, Result, Settings, backoff, guard};
use chrono::{DateTime, Utc};
use gix::ObjectId;
use serde::Serialize;

use sqlx::{PgConnection, PgPool};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod body;
mod payload;
mod send;

pub use payload::{PushEvent, RefMove, enqueue, enqueue_change};
use send::send_claimed;
pub use send::{Sent, deliver_due, signature};

/// Events a webhook can ask for: every accepted push (`push`, one delivery per ref),
/// or only pushes that changed skills on the default branch (`skills`).
pub const EVENTS: &[&str] = &["push", "skills", "change"];
/// At most this many commits in a payload (the newest), as GitHub does.
const MAX_COMMITS: usize = 20;
/// At most this many skills in a payload; `skills_total` tells the rest.
const MAX_SKILLS: i64 = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: i64,
    pub repo: String,
    pub url: String,
    pub allow_private: bool,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// The newest delivery: its status, response code and when.
    pub last_status: Option<String>,
    pub last_code: Option<i32>,
    pub last_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub pending: i64,
    pub failed: i64,
}

/// Adds a webhook after checking its URL (form, and the addresses it reaches unless
/// `allow_private`). Returns its id, and a note when its name does not resolve now
/// (every delivery checks the addresses again).
pub async fn add(
    pool: &PgPool,
    repo: &str,
    url: &str,
    secret: &str,
    allow_private: bool,
    events: &[String],
) -> Result<(i64, Option<String>)> {
    let parsed = guard::parse(url)?;
    let note = match guard::check(&parsed, allow_private).await {
        Ok(()) => None,
        Err(e @ guard::GuardError::Resolve(..)) => Some(format!(
            "{e}: added anyway; each delivery resolves it again and reaches public addresses only"
        )),
        Err(e) => return Err(e.into()),
    };
    if secret.is_empty() {
        return Err(DeliverError::Invalid(
            "--secret must not be empty: receivers check the signature with it".into(),
        ));
    }
    let mut events: Vec<String> = events.iter().map(|e| e.trim().to_string()).collect();
    events.retain(|e| !e.is_empty());
    if events.is_empty() {
        events.push("push".into());
    }
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(DeliverError::Invalid(format!(
            "unknown event `{bad}`: events are {}",
            EVENTS.join(", ")
        )));
    }
    super::repo_exists(pool, repo).await?;
    let id: Option<i64> = sqlx::query_scalar!(
        "INSERT INTO webhooks (repo, url, secret, allow_private, events)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo, url) DO NOTHING RETURNING id",
        repo,
        parsed.as_str(),
        secret,
        allow_private,
        &events,
    )
    .fetch_optional(pool)
    .await?;
    let id = id.ok_or_else(|| {
        DeliverError::Invalid(format!(
            "{repo} already has a webhook to {} (remove it first to change it)",
            guard::shown(&parsed)
        ))
    })?;
    Ok((id, note))
}

/// Every webhook (of `repo`, or of all), with its newest delivery.
pub async fn list(pool: &PgPool, repo: Option<&str>) -> Result<Vec<Webhook>> {
    Ok(sqlx::query_as!(
        Webhook,
        r#"SELECT w.id, w.repo, w.url, w.allow_private, w.events, w.created_at,
                last.status AS "last_status?", last.response_code AS "last_code?",
                last.at AS "last_at?", last.last_error AS "last_error?",
                (SELECT count(*) FROM webhook_deliveries d
                  WHERE d.webhook_id = w.id AND d.status = 'pending') AS "pending!",
                (SELECT count(*) FROM webhook_deliveries d
                  WHERE d.webhook_id = w.id AND d.status = 'failed') AS "failed!"
         FROM webhooks w
         LEFT JOIN LATERAL (
             SELECT d.status, d.response_code, coalesce(d.completed_at, d.created_at) AS at,
                    d.last_error
             FROM webhook_deliveries d WHERE d.webhook_id = w.id
             ORDER BY d.created_at DESC LIMIT 1) last ON true
         WHERE $1::text IS NULL OR w.repo = $1
         ORDER BY w.repo, w.id"#,
        repo
    )
    .fetch_all(pool)
    .await?)
}

/// The webhooks' deliveries waiting for a retry and given up, as Prometheus gauges, one
/// series per webhook (`repo`, `webhook` id; never its URL).
pub fn render_metrics(hooks: &[Webhook]) -> String {
    crate::metrics::render_gauges(
        hooks,
        |h| vec![("repo", h.repo.clone()), ("webhook", h.id.to_string())],
        &[
            (
                "skillsd_webhook_deliveries_pending",
                "Deliveries not yet accepted by the receiver (being retried).",
                |h| h.pending as f64,
            ),
            (
                "skillsd_webhook_deliveries_failed",
                "Deliveries given up after every attempt (kept 30 days).",
                |h| h.failed as f64,
            ),
        ],
    )
}

/// Removes a webhook (by id, or by URL) of `repo`, with its deliveries.
pub async fn remove(pool: &PgPool, repo: &str, which: &str) -> Result<bool> {
    let id: Option<i64> = which.parse().ok();
    let done = sqlx::query!(
        "DELETE FROM webhooks WHERE repo = $1 AND (id = $2 OR url = $3 OR url = $3 || '/')",
        repo,
        id,
        which,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: i64,
    pub event: String,
    pub push_id: Option<Uuid>,
    pub redelivery_of: Option<Uuid>,
    pub status: String,
    pub attempts: i32,
    pub response_code: Option<i32>,
    pub duration_ms: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub next_attempt_at: DateTime<Utc>,
}

/// The newest deliveries of one webhook of `repo`.
pub async fn deliveries(pool: &PgPool, repo: &str, hook: i64, limit: i64) -> Result<Vec<Delivery>> {
    Ok(sqlx::query_as!(
        Delivery,
        "SELECT d.id, d.webhook_id, d.event, d.push_id, d.redelivery_of, d.status, d.attempts,
                d.response_code, d.duration_ms, d.last_error, d.created_at, d.completed_at,
                d.next_attempt_at
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE w.repo = $1 AND w.id = $2
         ORDER BY d.created_at DESC LIMIT $3",
        repo,
        hook,
        limit,
    )
    .fetch_all(pool)
    .await?)
}

/// Sends a new delivery with the body of delivery `of` (same event, new delivery id)
/// now, and returns what it gave; a failure is retried as any delivery's.
pub async fn redeliver(
    pool: &PgPool,
    settings: &Settings,
    repo: &str,
    of: Uuid,
) -> Result<(Uuid, Sent)> {
    let id = Uuid::new_v4();
    // Inserted claimed (leased, first attempt): no worker sends it meanwhile, and if
    // this process dies the lease runs out and a worker does.
    let done = sqlx::query!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, push_id, redelivery_of, payload,
                                         attempts, lease_until)
         SELECT $1, d.webhook_id, d.event, d.push_id, d.id, d.payload, 1,
                now() + make_interval(secs => $4)
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.id = $2 AND w.repo = $3",
        id,
        of,
        repo,
        lease(settings),
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(DeliverError::Invalid(format!(
            "{repo} has no delivery {of}"
        )));
    }
    Ok((id, send_claimed(pool, settings, id).await?))
}

/// Sends a `ping` to one webhook of `repo` now (the way to test a receiver).
pub async fn ping(
    pool: &PgPool,
    settings: &Settings,
    repo: &str,
    hook: i64,
) -> Result<(Uuid, Sent)> {
    let events: Vec<String> = sqlx::query_scalar!(
        "SELECT events FROM webhooks WHERE repo = $1 AND id = $2",
        repo,
        hook,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| DeliverError::Invalid(format!("{repo} has no webhook {hook}")))?;
    let body = serde_json::to_string(&body::Ping {
        zen: "A skill is only as good as its frontmatter.",
        hook_id: hook,
        hook: body::Hook { events },
        repository: body::Repository {
            name: repo,
            full_name: None,
            default_branch: None,
        },
    })
    .unwrap_or_default();
    let id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, attempts, lease_until)
         VALUES ($1, $2, 'ping', $3, 1, now() + make_interval(secs => $4))",
        id,
        hook,
        body,
        lease(settings),
    )
    .execute(pool)
    .await?;
    Ok((id, send_claimed(pool, settings, id).await?))
}

fn lease(settings: &Settings) -> f64 {
    (settings.webhook_timeout + Duration::from_secs(30)).as_secs_f64()
}

/// Deliveries are kept this long after they ended (delivered or given up).
const KEEP_DAYS: i32 = 30;

/// Deletes the deliveries that ended more than [`KEEP_DAYS`] ago.
pub async fn prune(pool: &PgPool) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "DELETE FROM webhook_deliveries
         WHERE status <> 'pending' AND completed_at < now() - make_interval(days => $1)",
        KEEP_DAYS,
    )
    .execute(pool)
    .await?
    .rows_affected())
}

const ZERO: &str = "0000000000000000000000000000000000000000";

/// The most of an answer's body that is read (for the error shown): a receiver that
/// answers with gigabytes costs this much memory, no more.
pub const MAX_ANSWER_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs() {
        // GitHub's documented example: secret "It's a Secret to Everybody",
        // payload "Hello, World!".
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
