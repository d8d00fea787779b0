//! The MCP server for agents, on the HTTP listener (Streamable HTTP, the official Rust
//! SDK `rmcp`): `/mcp` for the default repository, `/{repo}/mcp` for another one.
//!
//! * [`handler`]: the tools (`search_skills`, `get_skill`), the `skill://` resources,
//!   SEP-2640's `skills/list` and `skills/get`, and `list_changed` notifications —
//!   all read from [`crate::agents::Catalog::current`], the published skills of the
//!   default branch.
//! * [`uris`]: `skill://NAME/PATH`, written and read back with traversal refused.
//! * [`sessions`]: the handshake era's sessions, capped, the idlest closed first.
//!
//! In front of rmcp, [`endpoint`] answers what it should not see: an unknown
//! repository (404), a body over [`MAX_BODY_BYTES`] (413, read no further) and a body
//! that is not one JSON-RPC message (400), each with a JSON-RPC error. Access is the
//! gate's ([`crate::web::gate`]): these paths are the JSON API's surface.
//!
//! Change notifications: one task per node ([`watch`]) follows the cache's
//! `skills_changed` events (the live pages' listener, [`crate::web::live::relay`]),
//! builds the repository's published skills again and, when their index differs from
//! the last one it saw, tells every session and subscription of that repository.

pub mod handler;
pub mod metrics;
pub mod sessions;
pub mod uris;

use crate::agents::AgentsState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The largest request body read (an MCP request is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The MCP server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sessions open at once (`SKILLSD_MCP_MAX_SESSIONS`); also the most change
    /// subscriptions (`subscriptions/listen`) open at once.
    pub max_sessions: usize,
    /// A session without a request for this long is closed
    /// (`SKILLSD_MCP_SESSION_IDLE_SECS`).
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 256,
            idle: Duration::from_secs(30 * 60),
        }
    }
}

/// What the MCP endpoints share: the sessions, the change fan-out, the stop signal.
pub struct Mcp {
    limits: Limits,
    sessions: Arc<sessions::Capped>,
    config: StreamableHttpServerConfig,
    /// Names of repositories whose published skills changed.
    changed: broadcast::Sender<String>,
    listeners: Arc<AtomicUsize>,
    stop: CancellationToken,
    /// Requests and errors by method (`/metrics`).
    pub counters: metrics::Counters,
}

impl Mcp {
    pub fn new(limits: Limits) -> Mcp {
        let stop = CancellationToken::new();
        let config = StreamableHttpServerConfig::default()
            // Any host name: skillsd is reached by its operators' names for it, and the
            // gate decides who may read.
            .disable_allowed_hosts()
            .with_max_request_body_bytes(MAX_BODY_BYTES)
            .with_cancellation_token(stop.clone());
        Mcp {
            limits,
            sessions: Arc::new(sessions::Capped::new(limits.max_sessions, limits.idle)),
            config,
            changed: broadcast::channel(64).0,
            listeners: Arc::new(AtomicUsize::new(0)),
            stop,
            counters: metrics::Counters::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sessions open now.
    pub fn sessions_open(&self) -> usize {
        self.sessions.open()
    }

    /// Change subscriptions (`subscriptions/listen`) open now.
    pub fn subscriptions_open(&self) -> usize {
        self.listeners.load(Ordering::Acquire)
    }

    /// The MCP series of `/metrics`.
    pub fn render_metrics(&self) -> String {
        self.counters
            .render(self.sessions_open(), self.subscriptions_open())
    }

    /// The names of repositories whose published skills change, from now on.
    pub fn changes(&self) -> broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    /// Cancelled when the server stops.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Ends every session and stream (the server is stopping).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// A place for one more change subscription, while it is held; `None` at the cap.
    pub fn admit_listener(&self) -> Option<Place> {
        let max = self.limits.max_sessions;
        self.listeners
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(self.listeners.clone()))
    }
}

/// A held place of [`Mcp::admit_listener`].
pub struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// First path segments the other routes own: `/{segment}/mcp` is not a repository's
/// MCP endpoint there (`/skills/mcp` is the page of a skill named `mcp`).
const TAKEN: [&str; 6] = [
    "api",
    "skills",
    "changes",
    "pushes",
    "static",
    ".well-known",
];

/// The repository an MCP path names: `Some(None)` for `/mcp` (the default one),
/// `Some(Some(name))` for `/{name}/mcp`, `None` when `path` is not an MCP path.
pub fn repo_of(path: &str) -> Option<Option<String>> {
    if path == "/mcp" {
        return Some(None);
    }
    let first = path.strip_prefix('/')?.strip_suffix("/mcp")?;
    if first.contains('/') || TAKEN.contains(&first) {
        return None;
    }
    let decoded = crate::agents::serve::segment(first).ok()?;
    crate::repos::RepoStore::canonical_name(&decoded)
        .ok()
        .map(Some)
}

/// Is `path` (as requested) an MCP endpoint?
pub fn is_mcp_path(path: &str) -> bool {
    repo_of(path).is_some()
}

/// The routes.
pub fn router() -> Router<Arc<AgentsState>> {
    Router::new()
        .route("/mcp", any(endpoint))
        .route("/{repo}/mcp", any(endpoint))
}

/// A JSON-RPC error answer with HTTP `status` (`id` null: the request's is unknown).
fn rpc_error(status: StatusCode, id: Value, code: i32, message: &str) -> Response {
    #[derive(serde::Serialize)]
    struct RpcError<'a> {
        jsonrpc: &'static str,
        id: Value,
        error: ErrorObject<'a>,
    }
    #[derive(serde::Serialize)]
    struct ErrorObject<'a> {
        code: i32,
        message: &'a str,
    }
    let answer = RpcError {
        jsonrpc: "2.0",
        id,
        error: ErrorObject { code, message },
    };
    (status, axum::Json(answer)).into_response()
}

/// Does the repository exist?
async fn repository_exists(pool: &sqlx::PgPool, name: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM git_repos WHERE name = $1) AS "exists!""#,
        name
    )
    .fetch_one(pool)
    .await
}

/// Every request to `/mcp` and `/{repo}/mcp`.
pub async fn endpoint(State(s): State<Arc<AgentsState>>, request: Request) -> Response {
    let Some(named) = repo_of(request.uri().path()) else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32600,
            "no MCP endpoint here: /mcp is the default repository's, /REPO/mcp another's",
        );
    };
    let repo = match named {
        None => crate::repos::DEFAULT_REPO.to_string(),
        Some(name) => {
            match repository_exists(&s.pool, &name).await {
                Ok(true) => {}
                Ok(false) => {
                    s.mcp.counters.error(None);
                    return rpc_error(
                        StatusCode::NOT_FOUND,
                        Value::Null,
                        -32600,
                        &format!("no repository `{name}`"),
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "MCP: cannot look up a repository");
                    s.mcp.counters.error(None);
                    return rpc_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Value::Null,
                        -32603,
                        "database unavailable",
                    );
                }
            }
            name
        }
    };
    let request = if request.method() == Method::POST {
        match checked(request, &s.mcp).await {
            Ok(r) => r,
            Err(refused) => return refused,
        }
    } else {
        request
    };
    // Signed in with a token or a session: its change streams last only as long as
    // the credential does ([`handler::Handler::new`]).
    let signed_in = s.signed_in
        && matches!(
            request
                .extensions()
                .get::<Option<crate::db::credentials::Viewer>>(),
            Some(Some(_))
        );
    let credential = signed_in
        .then(|| crate::db::credentials::credential(request.headers()))
        .flatten();
    let state = s.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(handler::Handler::new(
                state.clone(),
                repo.clone(),
                credential.clone(),
            ))
        },
        s.mcp.sessions.clone(),
        s.mcp.config.clone(),
    );
    service.handle(request).await.into_response()
}

/// The POST `request` with its body read (at most [`MAX_BODY_BYTES`]) and found to be
/// one JSON-RPC message rmcp can take; or the error answer.
/// Requests are counted by method here, and the refused ones as errors (`other` when
/// no method could be read).
async fn checked(request: Request, mcp: &Mcp) -> Result<Request, Response> {
    let mut method = None;
    let result = checked_body(request, mcp, &mut method).await;
    if result.is_err() {
        mcp.counters.error(method.as_deref());
    }
    result
}

async fn checked_body(
    request: Request,
    mcp: &Mcp,
    method: &mut Option<String>,
) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                -32600,
                &format!("the request is larger than {MAX_BODY_BYTES} bytes"),
            )
        })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32700,
            &format!("parse error: the body is not JSON ({e})"),
        )
    })?;
    if value.is_array() {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "batches are not supported: send one JSON-RPC message per request",
        ));
    }
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    if let (Some(m), Some(_)) = (value.get("method").and_then(Value::as_str), value.get("id")) {
        mcp.counters.request(m);
        *method = Some(m.to_string());
    }
    match serde_json::from_value::<rmcp::model::ClientJsonRpcMessage>(value) {
        Err(e) => Err(rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            -32600,
            &format!("not a JSON-RPC 2.0 request, notification or response of MCP: {e}"),
        )),
        // A method rmcp knows whose params are not its own reads as a custom request:
        // said as it is rather than as an unknown method.
        Ok(rmcp::model::ClientJsonRpcMessage::Request(r))
            if matches!(&r.request, rmcp::model::ClientRequest::CustomRequest(c)
                if KNOWN_METHODS.contains(&c.method.as_str())) =>
        {
            Err(rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                -32602,
                &format!(
                    "the params of `{}` are not the ones MCP defines for it",
                    r.request.method()
                ),
            ))
        }
        // A change subscription over the cap: refused before it is acknowledged.
        Ok(rmcp::model::ClientJsonRpcMessage::Request(r))
            if matches!(
                &r.request,
                rmcp::model::ClientRequest::SubscriptionsListenRequest(_)
            ) && mcp.listeners.load(Ordering::Acquire) >= mcp.limits.max_sessions =>
        {
            let mut refused = rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                -32000,
                &too_many_listeners(mcp.limits.max_sessions),
            );
            refused.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("30"),
            );
            Err(refused)
        }
        Ok(_) => Ok(Request::from_parts(parts, Body::from(bytes))),
    }
}

/// Why a change subscription is refused.
pub fn too_many_listeners(max: usize) -> String {
    format!("this server has {max} change subscriptions open, as many as it keeps; try again later")
}

/// The client requests of MCP (and its skills extension) rmcp reads.
const KNOWN_METHODS: [&str; 21] = [
    "initialize",
    "server/discover",
    "ping",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/directory/read",
    "subscriptions/listen",
    "prompts/list",
    "prompts/get",
    "logging/setLevel",
    "completion/complete",
    "tools/list",
    "tools/call",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
    "skills/list",
    "skills/get",
];

/// Follows the cache's changes (the live pages' `skills_changed` events) until `stop`,
/// and tells the MCP sessions and subscriptions of a repository when its published
/// skills changed. Then ends every MCP session and stream.
pub async fn watch(state: Arc<AgentsState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut events = state.events.subscribe();
    // The index digest each repository had when last looked at.
    let mut seen: HashMap<String, String> = HashMap::new();
    loop {
        let event = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            e = events.recv() => e,
        };
        let repos: Vec<String> = match event {
            Ok(text) => match serde_json::from_str::<crate::cache::announce::LiveEvent>(&text) {
                Ok(event) => event.repo.into_iter().collect(),
                Err(_) => continue,
            },
            // Some were missed: look at every repository seen so far, and the default.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let mut all: Vec<String> = seen.keys().cloned().collect();
                all.push(crate::repos::DEFAULT_REPO.to_string());
                all.sort();
                all.dedup();
                all
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if state.mcp.changed.receiver_count() == 0 {
            // Nobody to tell: nothing is built for it.
            continue;
        }
        for repo in repos {
            match state
                .catalog
                .current(&state.pool, &state.repos, &repo)
                .await
            {
                Ok(Some(p)) => {
                    if seen.get(&repo) != Some(&p.index_digest) {
                        seen.insert(repo.clone(), p.index_digest.clone());
                        tracing::debug!(%repo, "MCP: published skills changed, telling the clients");
                        let _ = state.mcp.changed.send(repo);
                    }
                }
                Ok(None) => {
                    seen.remove(&repo);
                }
                Err(e) => {
                    tracing::warn!(%repo, error = %e, "MCP: cannot tell whether the published skills changed");
                }
            }
        }
    }
    state.mcp.stop();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_paths_name_the_default_repository_or_another() {
        assert_eq!(repo_of("/mcp"), Some(None));
        assert_eq!(repo_of("/team/mcp"), Some(Some("team".into())));
        assert_eq!(repo_of("/team.git/mcp"), Some(Some("team".into())));
        for path in [
            "/skills/mcp",
            "/api/mcp",
            "/changes/mcp",
            "/.well-known/mcp",
            "/a/b/mcp",
            "/mcp/x",
            "/%2e%2e/mcp",
            "/..%2Fx/mcp",
            "//mcp",
            "/mcpx",
            "/",
        ] {
            assert_eq!(repo_of(path), None, "{path}");
        }
    }
}
