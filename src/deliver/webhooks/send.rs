//! Sending a delivery: the due ones claimed under a lease, each signed
//! (`X-Hub-Signature-256`) and sent with a client that refuses private addresses and
//! redirects and reads a bounded answer; the outcome recorded, with the backoff.

use super::*;

/// A delivery claimed for sending.
pub(super) struct Claimed {
    id: Uuid,
    event: String,
    payload: String,
    attempts: i32,
    url: String,
    secret: String,
    allow_private: bool,
}

/// Sends the deliveries that are due (up to 8, concurrently), each claimed with a
/// lease so that no other node sends it meanwhile. Returns how many were tried.
pub async fn deliver_due(pool: &PgPool, settings: &Settings) -> Result<usize> {
    let claimed = sqlx::query_as!(
        Claimed,
        "UPDATE webhook_deliveries d
            SET lease_until = now() + make_interval(secs => $1), lease_owner = $2,
                attempts = d.attempts + 1
           FROM webhooks w
          WHERE w.id = d.webhook_id AND d.id IN (SELECT id FROM webhook_deliveries
                  WHERE status = 'pending' AND next_attempt_at <= now()
                    AND (lease_until IS NULL OR lease_until < now())
                  ORDER BY next_attempt_at LIMIT 8 FOR UPDATE SKIP LOCKED)
         RETURNING d.id, d.event, d.payload, d.attempts, w.url, w.secret, w.allow_private",
        lease(settings),
        crate::storage::node_id(),
    )
    .fetch_all(pool)
    .await?;
    let n = claimed.len();
    let sends = claimed.into_iter().map(|c| async move {
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
pub(super) fn client(
    allow_private: bool,
    timeout: Duration,
) -> Result<&'static reqwest::Client, String> {
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

/// The start of an answer's body, at most [`MAX_ANSWER_BYTES`], read chunk by chunk
/// (the rest is never read: the connection is dropped with the response).
pub(super) async fn answer_start(resp: &mut reqwest::Response) -> String {
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

pub(super) async fn send(c: &Claimed, settings: &Settings) -> Sent {
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
    if matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
        && let Err(e) = guard::check(&url, c.allow_private).await
    {
        return failed(e.to_string());
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
pub(super) fn describe(e: &reqwest::Error) -> String {
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

pub(super) async fn record(
    pool: &PgPool,
    c: &Claimed,
    sent: &Sent,
    settings: &Settings,
) -> Result<()> {
    let code = sent.code.map(i32::from);
    let ms = i32::try_from(sent.duration.as_millis()).unwrap_or(i32::MAX);
    match &sent.error {
        None => {
            tracing::info!(delivery = %c.id, code, ms, "webhook delivered");
            crate::metrics::global().webhook_delivered();
            sqlx::query!(
                "UPDATE webhook_deliveries SET status = 'delivered', response_code = $2,
                        duration_ms = $3, last_error = NULL, completed_at = now(), lease_until = NULL
                 WHERE id = $1",
                c.id,
                code,
                ms,
            )
            .execute(pool)
            .await?;
        }
        Some(error) => {
            let last = c.attempts as u32 >= settings.webhook_attempts;
            tracing::warn!(delivery = %c.id, code, attempt = c.attempts, error, gave_up = last, "webhook delivery failed");
            crate::metrics::global().webhook_failed();
            let wait = backoff(settings, c.attempts as u32);
            sqlx::query!(
                "UPDATE webhook_deliveries
                    SET status = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
                        response_code = $2, duration_ms = $3, last_error = $5,
                        next_attempt_at = now() + make_interval(secs => $6),
                        completed_at = CASE WHEN $4 THEN now() END, lease_until = NULL
                  WHERE id = $1",
                c.id,
                code,
                ms,
                last,
                error,
                wait.as_secs_f64(),
            )
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Sends a delivery this process inserted claimed, and records the outcome.
pub(super) async fn send_claimed(pool: &PgPool, settings: &Settings, id: Uuid) -> Result<Sent> {
    let c = sqlx::query_as!(
        Claimed,
        "SELECT d.id, d.event, d.payload, d.attempts, w.url, w.secret, w.allow_private
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = $1",
        id
    )
    .fetch_one(pool)
    .await?;
    let sent = send(&c, settings).await;
    record(pool, &c, &sent, settings).await?;
    Ok(sent)
}
