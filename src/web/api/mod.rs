//! The HTTP side (axum), on its own address (`skillsd serve --http ADDR`): liveness
//! and readiness for operators, and the JSON API the prototype's web application used
//! (`/api/skills/sync/status`, `/api/skills/{id|slug}/sync-logs`,
//! `POST /api/skills/sync/trigger`), and the changes under review (`/api/changes`,
//! `/api/changes/{n}`, `/api/skills?status=IN_REVIEW`); and the skills for agents
//! under `/.well-known/agent-skills/` and over MCP at `/mcp` ([`crate::agents`]).

use crate::repos::{DEFAULT_BRANCH, RepoStore};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::PgPool;
use std::sync::Arc;

pub mod answers;

/// What the handlers share.
pub struct HttpState {
    pub pool: PgPool,
    pub repos: RepoStore,
    /// Bearer token for admin endpoints (`SKILLSD_ADMIN_TOKEN`); none = admin API off.
    pub admin_token: Option<String>,
    /// Who may read the status pages and the JSON API.
    pub web_access: super::WebAccess,
    /// Who may read `/metrics`.
    pub metrics_access: super::MetricsAccess,
    /// `/metrics`' bearer token (`None`: the admin token).
    pub metrics_token: Option<String>,
    /// Session cookies are `Secure` when browsers come over https.
    pub secure_cookies: bool,
    /// Cache changes for the live pages ([`crate::web::live`]).
    pub events: crate::web::live::Events,
    /// The places of open live streams ([`crate::web::live::stream_admission`]).
    pub streams: Arc<crate::net::Admission>,
    /// Acting on changes from the pages ([`crate::review::act`]).
    pub review: crate::review::Service,
    /// What the agents' endpoints share ([`crate::agents::router`]).
    pub agents: Arc<crate::agents::AgentsState>,
    /// `SKILLSD_PUBLIC_URL`.
    pub public_url: Option<String>,
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/mirrors", get(mirrors))
        .route("/api/webhooks", get(webhooks))
        .route("/api/skills/sync/status", get(sync_status))
        .route("/api/skills/sync/trigger", post(trigger))
        .route("/api/skills", get(skills))
        .route("/api/skills/{key}", get(skill))
        .route("/api/skills/{key}/history", get(history))
        .route("/api/skills/{key}/sync-logs", get(sync_logs))
        .route("/api/changes", get(changes))
        .route("/api/changes/{number}", get(change))
        .merge(crate::web::router())
        .merge(crate::agents::router(state.agents.clone()))
        .merge(super::contents::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::gate,
        ))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    limits: crate::net::HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = crate::net::HttpListener::new(listener, limits);
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<crate::net::Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        answers::Error::response(self.0, self.1)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error in HTTP handler");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable".into(),
        )
    }
}

/// The process's counters, then the mirrors' state from the database (every node
/// shows the same; a scrape without the database shows the counters alone).
async fn metrics(State(s): State<Arc<HttpState>>) -> String {
    let mut text = crate::metrics::METRICS.render();
    text.push_str(&crate::protocol::upload_pack::REQUESTS.render_metrics());
    text.push_str(&s.agents.mcp.render_metrics());
    if let Ok(Ok(mirrors)) = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        crate::deliver::mirrors::list(&s.pool, None),
    )
    .await
    {
        text.push_str(&crate::deliver::mirrors::render_metrics(&mirrors));
    }
    if let Ok(Ok(hooks)) = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        crate::deliver::webhooks::list(&s.pool, None),
    )
    .await
    {
        text.push_str(&crate::deliver::webhooks::render_metrics(&hooks));
    }
    text
}

/// `GET /api/mirrors[?repo=NAME]`: every mirror's state (no secret in it).
async fn mirrors(
    State(s): State<Arc<HttpState>>,
    Query(q): Query<RepoFilter>,
) -> Result<Json<answers::Mirrors>, ApiError> {
    let mirrors = crate::deliver::mirrors::list(&s.pool, q.repo.as_deref())
        .await
        .map_err(deliver_error)?;
    Ok(Json(answers::Mirrors { mirrors }))
}

/// `GET /api/webhooks[?repo=NAME]` (admin token: a receiver's URL can be its secret):
/// every webhook and its newest delivery, with its recent deliveries.
async fn webhooks(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<RepoFilter>,
) -> Result<Json<answers::Webhooks>, ApiError> {
    authorized(&s, &headers)?;
    let hooks = crate::deliver::webhooks::list(&s.pool, q.repo.as_deref())
        .await
        .map_err(deliver_error)?;
    let mut webhooks = Vec::new();
    for hook in hooks {
        let deliveries = crate::deliver::webhooks::deliveries(&s.pool, &hook.repo, hook.id, 20)
            .await
            .map_err(deliver_error)?;
        webhooks.push(answers::Webhook { hook, deliveries });
    }
    Ok(Json(answers::Webhooks { webhooks }))
}

#[derive(Deserialize)]
struct RepoFilter {
    repo: Option<String>,
}

fn deliver_error(e: crate::deliver::DeliverError) -> ApiError {
    tracing::error!(error = %e, "mirror or webhook state");
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "database unavailable".into(),
    )
}

async fn readyz(State(s): State<Arc<HttpState>>) -> Response {
    let db = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query_scalar!(r#"SELECT 1 AS "one!""#).fetch_one(&s.pool),
    )
    .await;
    // Every repository opens and its default branch names an object that exists.
    let repos = s.repos.list();
    let mut broken: Vec<String> = repos
        .iter()
        .filter_map(|r| match s.repos.open(r) {
            Err(e) => Some(format!("{r}: {e}")),
            Ok((_, repo)) => crate::repos::unservable(&repo).map(|why| format!("{r}: {why}")),
        })
        .collect();
    if repos.is_empty() {
        broken.push("no repository".into());
    }
    match (db, broken.is_empty()) {
        (Ok(Ok(_)), true) => (StatusCode::OK, "ready\n").into_response(),
        (Ok(Ok(_)), false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("repositories unavailable: {}\n", broken.join("; ")),
        )
            .into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response(),
    }
}

/// `GET /api/skills/sync/status`: the cache's health.
async fn sync_status(
    State(s): State<Arc<HttpState>>,
) -> Result<Json<answers::SyncStatus>, ApiError> {
    let h = crate::cache::health::read(&s.pool).await?;
    Ok(Json(answers::SyncStatus {
        synced: h.synced,
        pending: h.pending,
        failed: h.failed,
        unknown: h.unknown,
        total: h.total,
        recent_failures: h.recent_failures,
        healthy: h.healthy,
        with_warnings: h.with_warnings,
    }))
}

/// `GET /api/skills`: the `/skills` page's search and filters as JSON (`q`,
/// `category`, `owner`, `status`, `tag`, `repo`, `page`, `limit` ≤ 200). `status`
/// `IN_REVIEW` or `DRAFT` answers with the skills that changes in that state propose
/// ([`proposed_skills`]), not the published cache.
async fn skills(
    State(s): State<Arc<HttpState>>,
    Query(q): Query<crate::web::SkillsQuery>,
) -> Result<Response, ApiError> {
    if let Some(problem) = q.problem() {
        return Err(ApiError(StatusCode::BAD_REQUEST, problem));
    }
    if let Some(state) = crate::web::changes::proposal_state(q.status.as_deref()) {
        return Ok(proposed_skills(&s, &q, state).await?.into_response());
    }
    let (total, skills) = crate::web::search(&s.pool, &q).await?;
    Ok(Json(answers::Skills { total, skills }).into_response())
}

/// `GET /api/skills?status=IN_REVIEW|DRAFT`: the skills the changes in that state
/// propose (deletions left out), each with its change, in the `{total, skills}`
/// envelope of the published ones; `q`, `category`, `owner`, `tag`, `repo` and paging
/// as there.
async fn proposed_skills(
    s: &HttpState,
    q: &crate::web::SkillsQuery,
    state: &str,
) -> Result<Json<answers::Skills<answers::ProposedSkill>>, ApiError> {
    let (total, rows) = crate::web::changes::proposed(&s.pool, q, state).await?;
    let skills = rows.into_iter().map(answers::ProposedSkill::from).collect();
    Ok(Json(answers::Skills { total, skills }))
}

#[derive(Deserialize)]
struct ChangesQuery {
    state: Option<String>,
    repo: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/changes?state=open|all|closed|draft|in-review|merged|abandoned&repo=R&page=&limit=`:
/// changes (every repository unless `repo`), the most recently updated first.
async fn changes(
    State(s): State<Arc<HttpState>>,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let page = q.page.unwrap_or(1);
    if !(1..=crate::web::MAX_PAGE).contains(&page) {
        return Err(bad(format!(
            "page must be between 1 and {}",
            crate::web::MAX_PAGE
        )));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad("limit must be between 1 and 200".into()));
    }
    let state = q.state.as_deref().map(str::trim).filter(|v| !v.is_empty());
    let Some(states) = crate::review::states_filter(state) else {
        return Err(bad(
            "state must be one of: open, all, closed, draft, in-review, merged, abandoned".into(),
        ));
    };
    let repo =
        crate::web::changes::repo_param(&q.repo).map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?;
    let (total, rows) =
        crate::web::changes::list(&s.pool, repo.as_deref(), &states, limit, (page - 1) * limit)
            .await?;
    let changes = rows
        .iter()
        .map(|l| answers::ListedChange {
            change: (&l.change).into(),
            patch_sets: l.patch_sets,
        })
        .collect();
    Ok(Json(answers::Changes { total, changes }).into_response())
}

/// `GET /api/changes/{number}?repo=R` (default the default repository): the change,
/// its patch sets and reviews, whether it can be merged and what it still needs, and
/// each skill it proposes with the frontmatter fields that differ and the body as a
/// line diff.
async fn change(
    State(s): State<Arc<HttpState>>,
    Path(number): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Result<Response, ApiError> {
    let repo = crate::web::changes::repo_param(&q.repo)
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?
        .unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string());
    let Some(n) = crate::web::changes::number_param(&number) else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{number}` is not a change number"),
        ));
    };
    let Some(d) = crate::web::changes::load(&s.review, &repo, n).await? else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no change {n} in {repo}"),
        ));
    };
    let needs: Vec<String> = match &d.needs {
        Some(Ok(needs)) => needs.clone(),
        Some(Err(e)) => vec![format!("cannot tell whether it can be merged: {e}")],
        None => Vec::new(),
    };
    let detail = answers::ChangeDetail {
        change: (&d.change).into(),
        description: &d.change.description,
        mergeable: d.mergeable(),
        needs,
        patch_sets: d.patch_sets.iter().map(Into::into).collect(),
        reviews: d.reviews.iter().map(Into::into).collect(),
        skills: d.skills.iter().map(Into::into).collect(),
    };
    Ok(Json(detail).into_response())
}

/// `GET /api/skills/{id or slug}/history`: every change of the skill with its commit's
/// author, date and message, newest first.
async fn history(
    State(s): State<Arc<HttpState>>,
    Path(key): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Result<Json<answers::History>, ApiError> {
    let repo = q
        .repo
        .unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string());
    let Some(id) = skill_id(&s.pool, &repo, &key).await? else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no skill `{key}`")));
    };
    let history = crate::cache::commits::history(&s.pool, id, 1000).await?;
    if history.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no skill `{key}`")));
    }
    Ok(Json(answers::History {
        skill_id: id,
        history,
    }))
}

#[derive(Deserialize)]
struct RepoQuery {
    repo: Option<String>,
}

/// One cached skill by id or by slug (in `?repo=`, default the default repository),
/// with its frontmatter and the warnings its checks found.
async fn skill(
    State(s): State<Arc<HttpState>>,
    Path(key): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Result<Json<answers::Skill>, ApiError> {
    let repo = q
        .repo
        .unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string());
    let id = uuid::Uuid::parse_str(&key).ok();
    let found = sqlx::query_as!(
        answers::Skill,
        "SELECT id, repo, slug, path, title, description, category, owner, tags, status,
                frontmatter, blob_sha, git_commit_sha, sync_status, last_synced_at, warnings
         FROM skills WHERE ($1::uuid IS NOT NULL AND id = $1) OR (repo = $2 AND slug = $3)
         LIMIT 1",
        id,
        repo,
        key,
    )
    .fetch_optional(&s.pool)
    .await?;
    match found {
        Some(skill) => Ok(Json(skill)),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no skill `{key}`"))),
    }
}

#[derive(Deserialize)]
struct LogQuery {
    limit: Option<i64>,
    repo: Option<String>,
}

async fn sync_logs(
    State(s): State<Arc<HttpState>>,
    Path(key): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<answers::SyncLogs>, ApiError> {
    let limit = q.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "limit must be between 1 and 100".into(),
        ));
    }
    let repo = q
        .repo
        .unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string());
    let Some(id) = skill_id(&s.pool, &repo, &key).await? else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no skill `{key}`")));
    };
    let logs = sqlx::query_as!(
        answers::LogEntry,
        "SELECT id, skill_id, repo, slug, path, operation, direction, status, started_at, completed_at,
                error, git_commit_sha, synced_by, push_id
         FROM skill_sync_log WHERE skill_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
        id,
        limit,
    )
    .fetch_all(&s.pool)
    .await?;
    if logs.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no skill `{key}`")));
    }
    Ok(Json(answers::SyncLogs { skill_id: id, logs }))
}

/// A skill by id, or by slug in `repo`; a deleted skill is found through its log.
async fn skill_id(pool: &PgPool, repo: &str, key: &str) -> sqlx::Result<Option<uuid::Uuid>> {
    if let Ok(id) = uuid::Uuid::parse_str(key) {
        return Ok(Some(id));
    }
    sqlx::query_scalar!(
        r#"SELECT id AS "id!" FROM skills WHERE repo = $1 AND slug = $2
         UNION ALL
         (SELECT skill_id FROM skill_sync_log WHERE repo = $1 AND slug = $2 AND skill_id IS NOT NULL
          ORDER BY started_at DESC LIMIT 1)
         LIMIT 1"#,
        repo,
        key,
    )
    .fetch_optional(pool)
    .await
}

fn authorized(s: &HttpState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &s.admin_token else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "the admin API is off: start skillsd with SKILLSD_ADMIN_TOKEN set".into(),
        ));
    };
    if token_matches(headers, token) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "a valid admin bearer token is required".into(),
        ))
    }
}

/// Does the request's bearer token equal `token`? Compared in constant time (the
/// length is not secret).
pub fn token_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = crate::web::auth::bearer(headers).unwrap_or("");
    subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes()).into()
}

async fn trigger(
    State(s): State<Arc<HttpState>>,
    headers: HeaderMap,
) -> Result<Json<answers::Reconciled>, ApiError> {
    authorized(&s, &headers)?;
    let mut reconciled = Vec::new();
    for name in s.repos.list() {
        let (name, repo) = s
            .repos
            .open(&name)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let pool = s.pool.clone();
        let rt = tokio::runtime::Handle::current();
        let n = name.clone();
        let bulk_from = s.repos.settings.bulk_load_from;
        let outcome = tokio::task::spawn_blocking(move || {
            crate::cache::sync::reconcile(&rt, &pool, &repo, &n, DEFAULT_BRANCH, bulk_from)
        })
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        reconciled.push(answers::RepoReconciled {
            repo: name,
            commit: outcome.commit,
            created: outcome.created,
            refreshed: outcome.updated,
            deleted: outcome.deleted,
            failed: outcome.failed,
        });
    }
    Ok(Json(answers::Reconciled { reconciled }))
}
