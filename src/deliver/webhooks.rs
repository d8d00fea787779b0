//! Webhooks: a JSON POST after every accepted push, shaped like GitHub's push event
//! (`ref`, `before`, `after`, `pusher`, `commits`, `head_commit`) plus the skills the
//! push changed, signed with `X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body)`.
//!
//! The body of each delivery is written in the push's transaction ([`enqueue`]): a
//! refused push has no delivery, an accepted one has its deliveries even if every node
//! restarts. [`deliver_due`] sends what is due on whichever node claims it first.

use super::{backoff, guard, DeliverError, Result, Settings, NOTIFY_CHANNEL};
use chrono::{DateTime, Utc};
use gix::ObjectId;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool, Row};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use uuid::Uuid;

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
    let rows = sqlx::query(
        "SELECT w.id, w.repo, w.url, w.allow_private, w.events, w.created_at,
                last.status, last.response_code, last.at, last.last_error,
                (SELECT count(*) FROM webhook_deliveries d
                  WHERE d.webhook_id = w.id AND d.status = 'pending') AS pending,
                (SELECT count(*) FROM webhook_deliveries d
                  WHERE d.webhook_id = w.id AND d.status = 'failed') AS failed
         FROM webhooks w
         LEFT JOIN LATERAL (
             SELECT d.status, d.response_code, coalesce(d.completed_at, d.created_at) AS at,
                    d.last_error
             FROM webhook_deliveries d WHERE d.webhook_id = w.id
             ORDER BY d.created_at DESC LIMIT 1) last ON true
         WHERE $1::text IS NULL OR w.repo = $1
         ORDER BY w.repo, w.id",
    )
    .bind(repo)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Webhook {
            id: r.get(0),
            repo: r.get(1),
            url: r.get(2),
            allow_private: r.get(3),
            events: r.get(4),
            created_at: r.get(5),
            last_status: r.get(6),
            last_code: r.get(7),
            last_at: r.get(8),
            last_error: r.get(9),
            pending: r.get(10),
            failed: r.get(11),
        })
        .collect())
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
    let rows = sqlx::query(
        "SELECT d.id, d.webhook_id, d.event, d.push_id, d.redelivery_of, d.status, d.attempts,
                d.response_code, d.duration_ms, d.last_error, d.created_at, d.completed_at,
                d.next_attempt_at
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE w.repo = $1 AND w.id = $2
         ORDER BY d.created_at DESC LIMIT $3",
    )
    .bind(repo)
    .bind(hook)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            id: r.get(0),
            webhook_id: r.get(1),
            event: r.get(2),
            push_id: r.get(3),
            redelivery_of: r.get(4),
            status: r.get(5),
            attempts: r.get(6),
            response_code: r.get(7),
            duration_ms: r.get(8),
            last_error: r.get(9),
            created_at: r.get(10),
            completed_at: r.get(11),
            next_attempt_at: r.get(12),
        })
        .collect())
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
    let body = json!({
        "zen": "A skill is only as good as its frontmatter.",
        "hook_id": hook,
        "hook": {"events": events},
        "repository": {"name": repo},
    });
    let id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, attempts, lease_until)
         VALUES ($1, $2, 'ping', $3, 1, now() + make_interval(secs => $4))",
        id,
        hook,
        body.to_string(),
        lease(settings),
    )
    .execute(pool)
    .await?;
    Ok((id, send_claimed(pool, settings, id).await?))
}

/// Sends a delivery this process inserted claimed, and records the outcome.
async fn send_claimed(pool: &PgPool, settings: &Settings, id: Uuid) -> Result<Sent> {
    let r = sqlx::query(
        "SELECT d.id, d.event, d.payload, d.attempts, w.url, w.secret, w.allow_private
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    let c = claimed(r);
    let sent = send(&c, settings).await;
    record(pool, &c, &sent, settings).await?;
    Ok(sent)
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

/// One ref a push moved (`None`: created or deleted).
pub struct RefMove<'a> {
    pub name: &'a str,
    pub old: Option<ObjectId>,
    pub new: Option<ObjectId>,
}

/// An accepted push, as its webhooks are told of it.
pub struct PushEvent<'a> {
    pub repo: &'a str,
    pub push_id: Uuid,
    pub pusher: &'a str,
    pub default_branch: &'a str,
    /// The default branch's tip before the push (what a new branch is compared with).
    pub default_tip: Option<ObjectId>,
    pub refs: Vec<RefMove<'a>>,
}

/// Writes a delivery for every webhook of the repository that wants this push, inside
/// the push's transaction (`view` sees the pushed objects). Returns how many.
pub async fn enqueue(
    tx: &mut PgConnection,
    view: &gix::Repository,
    event: &PushEvent<'_>,
) -> Result<usize> {
    let hooks: Vec<(i64, Vec<String>)> = sqlx::query!(
        "SELECT id, events FROM webhooks WHERE repo = $1",
        event.repo
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.events))
    .collect();
    if hooks.is_empty() {
        return Ok(0);
    }
    let default_ref = format!("refs/heads/{}", event.default_branch);
    let (skills, skills_total) = skills_of(tx, event.push_id).await?;
    let mut rows: Vec<(i64, &str, String)> = Vec::new();
    for r in &event.refs {
        let on_default = r.name == default_ref;
        let body = payload(
            view,
            event,
            r,
            on_default.then_some((&skills, skills_total)),
        )?;
        let text = body.to_string();
        for (id, events) in &hooks {
            if events.iter().any(|e| e == "push") {
                rows.push((*id, "push", text.clone()));
            }
            if on_default && skills_total > 0 && events.iter().any(|e| e == "skills") {
                rows.push((*id, "skills", text.clone()));
            }
        }
    }
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut hook_ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    for (hook, kind, body) in rows {
        ids.push(Uuid::new_v4());
        hook_ids.push(hook);
        kinds.push(kind);
        bodies.push(body);
    }
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, push_id, payload)
         SELECT u.id, u.hook, u.event, $1, u.payload
         FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[]) AS u(id, hook, event, payload)",
    )
    .bind(event.push_id)
    .bind(&ids)
    .bind(&hook_ids)
    .bind(&kinds)
    .bind(&bodies)
    .execute(&mut *tx)
    .await?;
    if n > 0 {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    Ok(n)
}

/// Writes a `change` delivery for every webhook of the repository of the change whose
/// row is `change_id` (`action`: opened, updated, approved, rejected, marked ready,
/// merged, abandoned), in the caller's transaction, with the change as that
/// transaction sees it (its state after the action). Returns how many.
pub async fn enqueue_change(
    tx: &mut PgConnection,
    change_id: i64,
    action: &str,
    sender: &str,
) -> Result<usize> {
    #[derive(sqlx::FromRow)]
    struct Change {
        repo: String,
        number: i32,
        title: String,
        target: String,
        author: String,
        topic: Option<String>,
        state: String,
        patch_set: i32,
    }
    let change: Change = sqlx::query_as(
        "SELECT c.repo, c.number, c.title, c.target, c.author, c.topic, c.state,
                coalesce((SELECT max(number) FROM change_patch_sets p WHERE p.change_id = c.id), 0)
                  AS patch_set
         FROM changes c WHERE c.id = $1",
    )
    .bind(change_id)
    .fetch_one(&mut *tx)
    .await?;
    let hooks: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM webhooks WHERE repo = $1 AND 'change' = ANY(events)")
            .bind(&change.repo)
            .fetch_all(&mut *tx)
            .await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let body = serde_json::json!({
        "action": action.replace(' ', "_"),
        "change": {
            "number": change.number,
            "title": change.title,
            "target": change.target,
            "author": change.author,
            "topic": change.topic,
            "state": change.state,
            "patchSet": change.patch_set,
            "ref": format!("refs/changes/{}/head", change.number),
        },
        "repository": {"name": change.repo},
        "sender": {"login": sender},
    })
    .to_string();
    let ids: Vec<Uuid> = hooks.iter().map(|_| Uuid::new_v4()).collect();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload)
         SELECT u.id, u.hook, 'change', $3 FROM unnest($1::uuid[], $2::bigint[]) AS u(id, hook)",
    )
    .bind(&ids)
    .bind(&hooks)
    .bind(&body)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(hooks.len())
}

/// The skills the push's cache sync wrote (its sync-log rows), and how many in all.
async fn skills_of(tx: &mut PgConnection, push: Uuid) -> sqlx::Result<(Vec<Value>, i64)> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM skill_sync_log WHERE push_id = $1")
        .bind(push)
        .fetch_one(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "SELECT skill_id, slug, path, operation, status, error, git_commit_sha
         FROM skill_sync_log WHERE push_id = $1 ORDER BY id LIMIT $2",
    )
    .bind(push)
    .bind(MAX_SKILLS)
    .fetch_all(&mut *tx)
    .await?;
    let skills = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.get::<Option<Uuid>, _>(0),
                "slug": r.get::<Option<String>, _>(1),
                "path": r.get::<Option<String>, _>(2),
                "operation": r.get::<String, _>(3),
                "status": r.get::<String, _>(4),
                "error": r.get::<Option<String>, _>(5),
                "commit": r.get::<Option<String>, _>(6),
            })
        })
        .collect();
    Ok((skills, total))
}

const ZERO: &str = "0000000000000000000000000000000000000000";

/// The body of a push event for one ref.
fn payload(
    view: &gix::Repository,
    event: &PushEvent<'_>,
    r: &RefMove<'_>,
    skills: Option<(&Vec<Value>, i64)>,
) -> Result<Value> {
    let (commits, truncated) = match r.new {
        Some(new) => {
            // A new branch: the commits the default branch did not have.
            let hidden: Vec<ObjectId> = r.old.or(event.default_tip).into_iter().collect();
            commits(view, new, &hidden)?
        }
        None => (Vec::new(), false),
    };
    let head = match r.new {
        Some(new) => commit_json(view, peel(view, new)).ok(),
        None => None,
    };
    let (skills, skills_total) = match skills {
        Some((s, n)) => (s.clone(), n),
        None => (Vec::new(), 0),
    };
    Ok(json!({
        "ref": r.name,
        "before": r.old.map(|o| o.to_string()).unwrap_or_else(|| ZERO.into()),
        "after": r.new.map(|o| o.to_string()).unwrap_or_else(|| ZERO.into()),
        "created": r.old.is_none(),
        "deleted": r.new.is_none(),
        "repository": {"name": event.repo, "full_name": event.repo, "default_branch": event.default_branch},
        "pusher": {"name": event.pusher},
        "sender": {"login": event.pusher},
        "push_id": event.push_id,
        "commits": commits,
        "commits_truncated": truncated,
        "head_commit": head,
        "skills": skills,
        "skills_total": skills_total,
    }))
}

/// An annotated tag's commit (the commit itself otherwise).
fn peel(view: &gix::Repository, id: ObjectId) -> ObjectId {
    crate::storage::peeled(view, id).unwrap_or(id)
}

/// The commits reachable from `tip` and not from `hidden`: the newest
/// [`MAX_COMMITS`], oldest first; and whether there were more.
fn commits(
    view: &gix::Repository,
    tip: ObjectId,
    hidden: &[ObjectId],
) -> Result<(Vec<Value>, bool)> {
    let tip = peel(view, tip);
    if view.find_header(tip).ok().map(|h| h.kind()) != Some(gix::object::Kind::Commit) {
        return Ok((Vec::new(), false));
    }
    let walk = view
        .rev_walk([tip])
        .with_hidden(hidden.iter().copied())
        .all()
        .map_err(DeliverError::git)?;
    let mut out = Vec::new();
    let mut truncated = false;
    for info in walk {
        let info = info.map_err(DeliverError::git)?;
        if out.len() == MAX_COMMITS {
            truncated = true;
            break;
        }
        out.push(commit_json(view, info.id)?);
    }
    out.reverse();
    Ok((out, truncated))
}

fn commit_json(view: &gix::Repository, id: ObjectId) -> Result<Value> {
    let commit = view.find_commit(id).map_err(DeliverError::git)?;
    let c = commit.decode().map_err(DeliverError::git)?;
    let person = |s: gix::actor::SignatureRef<'_>| json!({"name": s.name.to_string(), "email": s.email.to_string()});
    let author = c.author().map_err(DeliverError::git)?;
    let committer = c.committer().map_err(DeliverError::git)?;
    let time = author.time().map_err(DeliverError::git)?;
    let timestamp = chrono::FixedOffset::east_opt(time.offset)
        .and_then(|tz| DateTime::from_timestamp(time.seconds, 0).map(|t| t.with_timezone(&tz)))
        .map(|t| t.to_rfc3339());
    Ok(json!({
        "id": id.to_string(),
        "tree_id": c.tree().to_string(),
        "distinct": true,
        "message": c.message.to_string(),
        "timestamp": timestamp,
        "author": person(author),
        "committer": person(committer),
    }))
}

/// A delivery claimed for sending.
struct Claimed {
    id: Uuid,
    event: String,
    payload: String,
    attempts: i32,
    url: String,
    secret: String,
    allow_private: bool,
}

fn claimed(r: sqlx::postgres::PgRow) -> Claimed {
    Claimed {
        id: r.get(0),
        event: r.get(1),
        payload: r.get(2),
        attempts: r.get(3),
        url: r.get(4),
        secret: r.get(5),
        allow_private: r.get(6),
    }
}

/// Sends the deliveries that are due (up to 8, concurrently), each claimed with a
/// lease so that no other node sends it meanwhile. Returns how many were tried.
pub async fn deliver_due(pool: &PgPool, settings: &Settings) -> Result<usize> {
    let rows = sqlx::query(
        "UPDATE webhook_deliveries d
            SET lease_until = now() + make_interval(secs => $1), lease_owner = $2,
                attempts = d.attempts + 1
           FROM webhooks w
          WHERE w.id = d.webhook_id AND d.id IN (SELECT id FROM webhook_deliveries
                  WHERE status = 'pending' AND next_attempt_at <= now()
                    AND (lease_until IS NULL OR lease_until < now())
                  ORDER BY next_attempt_at LIMIT 8 FOR UPDATE SKIP LOCKED)
         RETURNING d.id, d.event, d.payload, d.attempts, w.url, w.secret, w.allow_private",
    )
    .bind(lease(settings))
    .bind(crate::storage::node_id())
    .fetch_all(pool)
    .await?;
    let n = rows.len();
    let sends = rows.into_iter().map(claimed).map(|c| async move {
        let sent = send(&c, settings).await;
        record(pool, &c, &sent, settings).await
    });
    for r in futures_util::future::join_all(sends).await {
        r?;
    }
    Ok(n)
}

/// What one attempt gave.
#[derive(Debug)]
pub struct Sent {
    pub code: Option<u16>,
    pub duration: Duration,
    /// `None`: delivered (a 2xx answer).
    pub error: Option<String>,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The HTTP clients: one that reaches public addresses only, one that reaches any.
/// A client that cannot be built (no TLS roots, say) is an error each delivery
/// reports, never a panic of the worker.
fn client(allow_private: bool, timeout: Duration) -> Result<&'static reqwest::Client, String> {
    static GUARDED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static OPEN: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let make = |guarded: bool| {
        // reqwest's TLS runs on rustls with ring (already used by the SSH side).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("skillsd-webhook/", env!("CARGO_PKG_VERSION")));
        let b = if guarded {
            b.dns_resolver(std::sync::Arc::new(guard::Guarded))
        } else {
            b
        };
        b.build()
            .map_err(|e| format!("cannot build the HTTP client: {}", describe(&e)))
    };
    let made = if allow_private {
        OPEN.get_or_init(|| make(false))
    } else {
        GUARDED.get_or_init(|| make(true))
    };
    made.as_ref().map_err(Clone::clone)
}

/// The most of an answer's body that is read (for the error shown): a receiver that
/// answers with gigabytes costs this much memory, no more.
pub const MAX_ANSWER_BYTES: usize = 4096;

/// The start of an answer's body, at most [`MAX_ANSWER_BYTES`], read chunk by chunk
/// (the rest is never read: the connection is dropped with the response).
async fn answer_start(resp: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < MAX_ANSWER_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES - buf.len();
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn send(c: &Claimed, settings: &Settings) -> Sent {
    let started = Instant::now();
    let failed = |error: String| Sent {
        code: None,
        duration: started.elapsed(),
        error: Some(error),
    };
    let url = match guard::parse(&c.url) {
        Ok(u) => u,
        Err(e) => return failed(e.to_string()),
    };
    // A literal address is not resolved, so the resolver cannot refuse it: check here.
    if matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
        if let Err(e) = guard::check(&url, c.allow_private).await {
            return failed(e.to_string());
        }
    }
    let client = match client(c.allow_private, settings.webhook_timeout) {
        Ok(client) => client,
        Err(e) => return failed(e),
    };
    let answer = client
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Skillsd-Event", &c.event)
        .header("X-Skillsd-Delivery", c.id.to_string())
        .header("X-GitHub-Event", &c.event)
        .header("X-GitHub-Delivery", c.id.to_string())
        .header(
            "X-Hub-Signature-256",
            signature(&c.secret, c.payload.as_bytes()),
        )
        .body(c.payload.clone())
        .send()
        .await;
    match answer {
        Ok(mut resp) => {
            let status = resp.status();
            let code = Some(status.as_u16());
            let error = if status.is_success() {
                None
            } else if status.is_redirection() {
                Some(format!(
                    "HTTP {status}: redirects are not followed (give the final URL)"
                ))
            } else {
                let body = answer_start(&mut resp).await;
                let snippet: String = body.chars().filter(|c| !c.is_control()).take(200).collect();
                Some(
                    format!("HTTP {status}: {snippet}")
                        .trim_end()
                        .trim_end_matches(':')
                        .to_string(),
                )
            };
            Sent {
                code,
                duration: started.elapsed(),
                error,
            }
        }
        Err(e) => failed(describe(&e)),
    }
}

/// A client error with its causes (the guard's refusal is one of them), without the
/// URL's query.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn record(pool: &PgPool, c: &Claimed, sent: &Sent, settings: &Settings) -> Result<()> {
    let code = sent.code.map(i32::from);
    let ms = i32::try_from(sent.duration.as_millis()).unwrap_or(i32::MAX);
    match &sent.error {
        None => {
            tracing::info!(delivery = %c.id, code, ms, "webhook delivered");
            crate::metrics::global().webhook_delivered();
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'delivered', response_code = $2,
                        duration_ms = $3, last_error = NULL, completed_at = now(), lease_until = NULL
                 WHERE id = $1",
            )
            .bind(c.id)
            .bind(code)
            .bind(ms)
            .execute(pool)
            .await?;
        }
        Some(error) => {
            let last = c.attempts as u32 >= settings.webhook_attempts;
            tracing::warn!(delivery = %c.id, code, attempt = c.attempts, error, gave_up = last, "webhook delivery failed");
            crate::metrics::global().webhook_failed();
            let wait = backoff(settings, c.attempts as u32);
            sqlx::query(
                "UPDATE webhook_deliveries
                    SET status = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
                        response_code = $2, duration_ms = $3, last_error = $5,
                        next_attempt_at = now() + make_interval(secs => $6),
                        completed_at = CASE WHEN $4 THEN now() END, lease_until = NULL
                  WHERE id = $1",
            )
            .bind(c.id)
            .bind(code)
            .bind(ms)
            .bind(last)
            .bind(error)
            .bind(wait.as_secs_f64())
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

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
