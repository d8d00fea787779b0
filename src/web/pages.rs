//! The pages' handlers: one query each (or a few), rendered with maud.

use super::auth::{self, Viewer};
use super::{error_page, markdown, page};
use crate::web::HttpState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use serde_json::Value;
use sqlx::Row;
use std::sync::Arc;

pub(super) const PAGE_SIZE: i64 = crate::cache::query::DEFAULT_LIMIT;

pub(super) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub(super) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

pub(super) fn unavailable(e: sqlx::Error) -> Response {
    tracing::warn!(error = %e, "a status page could not read the database");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "The database cannot be reached right now; try again in a moment.",
    )
}

/// `None` for an absent or blank query parameter.
pub(super) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A push asked to be a dry run (`git push -o dry-run`) and passed every check: it
/// wrote nothing on purpose, so it is no refusal.
fn is_dry_run(options: &[String], refs: &Value) -> bool {
    options.iter().any(|o| o == "dry-run")
        && refs.as_array().is_some_and(|refs| {
            !refs.is_empty()
                && refs.iter().all(|r| {
                    r["reason"]
                        .as_str()
                        .is_some_and(|why| why.starts_with("dry run:"))
                })
        })
}

/// A push's result: accepted, a dry run that passed, or refused.
fn result_badge(accepted: bool, options: &[String], refs: &Value) -> Markup {
    html! {
        @if accepted { span class="badge ok" { "accepted" } }
        @else if is_dry_run(options, refs) { span class="badge info" title="git push -o dry-run: every check passed, nothing was written" { "dry run: passed" } }
        @else { span class="badge bad" { "refused" } }
    }
}

fn sync_badge(status: &str) -> Markup {
    let class = match status {
        "synced" => "ok",
        "pending" => "warn",
        _ => "bad",
    };
    html! { span class={"badge " (class) " sync"} { (status) } }
}

/// A repository's audit counts (`skillsd audit` over main): errors and warnings, and
/// which checks found them.
fn audit_cell(state: Option<&super::audit::Progress>) -> Markup {
    use super::audit::Progress;
    match state {
        Some(Progress::Ready(a)) => html! {
            @if a.errors == 0 && a.warnings == 0 { span class="badge ok" { "clean" } }
            @else {
                span class=(if a.errors > 0 { "bad" } else { "warn" }) {
                    strong { (a.errors) } " errors, " strong { (a.warnings) } " warnings"
                }
                " "
                span class="muted" {
                    @for (i, (check, c)) in a.checks.iter().enumerate() {
                        @if i > 0 { " · " }
                        (check) " " (c.errors + c.warnings)
                    }
                }
            }
        },
        Some(Progress::Empty) | None => html! { span class="muted" { "-" } },
        Some(Progress::Counting) => html! { span class="muted" { "being counted…" } },
        Some(Progress::Failed(why)) => html! { span class="bad" { (why) } },
    }
}

/// `/`: every repository's tip and cache, the status bar, recent pushes and failures.
pub async fn dashboard(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
) -> Response {
    match dashboard_markup(&s, viewer.as_ref()).await {
        Ok(body) => page("Dashboard", viewer.as_ref(), body),
        Err(e) => unavailable(e),
    }
}

async fn dashboard_markup(s: &HttpState, viewer: Option<&Viewer>) -> Result<Markup, sqlx::Error> {
    let admin = viewer.filter(|v| v.role == crate::db::users::Role::Admin);
    let branch = crate::repos::DEFAULT_BRANCH;
    let health = crate::cache::health::read(&s.pool).await?;
    let repos = sqlx::query(
        "SELECT r.name,
                (SELECT target FROM git_refs g WHERE g.repo = r.name AND g.name = 'refs/heads/' || $1) AS tip,
                (SELECT commit_sha FROM sync_state t WHERE t.repo = r.name AND t.branch = $1) AS cached,
                (SELECT count(*) FROM skills k WHERE k.repo = r.name) AS skills
         FROM git_repos r ORDER BY r.name",
    )
    .bind(branch)
    .fetch_all(&s.pool)
    .await?;
    let pushes = sqlx::query(
        "SELECT p.id, p.repo, p.user_name, p.started_at, p.accepted, p.refs, p.push_options,
                jsonb_array_length(p.errors) AS problems,
                (SELECT count(*) FROM skill_sync_log l WHERE l.push_id = p.id AND l.status = 'success') AS changed
         FROM pushes p ORDER BY p.started_at DESC LIMIT 20",
    )
    .fetch_all(&s.pool)
    .await?;
    let failures = sqlx::query(
        "SELECT started_at, repo, path, error FROM skill_sync_log
         WHERE status = 'failed' ORDER BY started_at DESC LIMIT 10",
    )
    .fetch_all(&s.pool)
    .await?;
    let mirrors = crate::deliver::mirrors::list(&s.pool, None)
        .await
        .unwrap_or_default();
    let hooks = crate::deliver::webhooks::list(&s.pool, None)
        .await
        .unwrap_or_default();
    let names: Vec<String> = repos.iter().map(|r| r.get("name")).collect();
    let audits = super::audit::states(s, &names, super::audit::PAGE_WAIT).await;
    Ok(html! {
        h1 { "Dashboard" }
        div class="bar" id="status-bar" {
            span { strong id="count-synced" { (health.synced) } "/" span id="count-total" { (health.total) } " skills synced" }
            span class=(if health.pending > 0 { "warn" } else { "muted" }) { strong id="count-pending" { (health.pending) } " pending" }
            span class=(if health.failed > 0 { "bad" } else { "muted" }) { strong id="count-failed" { (health.failed) } " failed" }
            span class="muted" { strong id="count-unknown" { (health.unknown) } " unknown" }
            span class="muted" { strong id="count-search-pending" { (health.search_pending) } " search vectors pending" }
            span class=(if health.with_warnings > 0 { "warn" } else { "muted" }) { strong id="count-warnings" { (health.with_warnings) } " with warnings" }
            @if health.healthy { span class="badge ok" { "healthy" } } @else { span class="badge bad" { "needs attention" } }
            span class="muted" id="live" {}
        }
        h2 { "Repositories" }
        table {
            thead { tr { th { "repository" } th { "main" } th { "cache at" } th { "" } th { "skills" } th { "audit" } @if admin.is_some() { th { "" } } } }
            tbody {
                @for r in &repos {
                    @let name: String = r.get("name");
                    @let tip: Option<String> = r.get("tip");
                    @let cached: Option<String> = r.get("cached");
                    tr {
                        td { a href={"/skills?repo=" (name)} { (name) } }
                        td class="sha" { (tip.as_deref().map(short).unwrap_or("(empty)")) }
                        td class="sha" { (cached.as_deref().map(short).unwrap_or("-")) }
                        td {
                            @if tip.is_some() && tip == cached { span class="badge ok" { "in sync" } }
                            @else if tip.is_none() { span class="badge muted" { "empty" } }
                            @else { span class="badge warn" { "behind" } }
                        }
                        td { (r.get::<i64, _>("skills")) }
                        td class="audit" { (audit_cell(audits.get(&name))) }
                        @if let Some(a) = admin {
                            td {
                                form class="inline" method="post" action="/reconcile" {
                                    input type="hidden" name="csrf" value=(a.csrf);
                                    input type="hidden" name="repo" value=(name);
                                    button type="submit" { "Sync now" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !mirrors.is_empty() {
            h2 { "Mirrors" }
            table id="mirrors" {
                thead { tr { th { "repository" } th { "upstream" } th { "" } th { "refs behind" } th class="hide-small" { "lag" } th class="hide-small" { "last success" } th { "last error" } } }
                tbody {
                    @for m in &mirrors {
                        tr {
                            td { (m.repo) }
                            td class="sha" { (m.url) }
                            td {
                                @match m.state.as_str() {
                                    "in-sync" => span class="badge ok" { "in sync" },
                                    "pending" => span class="badge warn" { "pending" },
                                    _ => span class="badge bad" { "failing" },
                                }
                            }
                            td { (m.refs_behind) }
                            td class="hide-small" { (m.lag_seconds.map(|s| format!("{s:.0} s")).unwrap_or_else(|| "-".into())) }
                            td class="hide-small" { (m.last_success_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| "never".into())) }
                            td { (m.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if !hooks.is_empty() {
            h2 { "Webhooks" }
            table id="webhooks" {
                thead { tr { th { "repository" } th { "receiver" } th { "events" } th { "last delivery" } th { "pending" } th { "failed" } } }
                tbody {
                    @for h in &hooks {
                        tr {
                            td { (h.repo) }
                            // The host only: a receiver's path can be its secret.
                            td { (reqwest::Url::parse(&h.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()) }
                            td { (h.events.join(", ")) }
                            td {
                                @match h.last_status.as_deref() {
                                    None => span class="muted" { "none yet" },
                                    Some("delivered") => span class="badge ok" { "delivered" },
                                    Some("pending") => span class="badge warn" { "retrying" },
                                    Some(other) => span class="badge bad" { (other) },
                                }
                                @if let Some(code) = h.last_code { " HTTP " (code) }
                            }
                            td { (h.pending) }
                            td class=(if h.failed > 0 { "bad" } else { "" }) { (h.failed) }
                        }
                    }
                }
            }
        }
        h2 { "Recent pushes" }
        table {
            thead { tr { th { "when" } th { "who" } th class="hide-small" { "repository" } th class="hide-small" { "refs" } th { "result" } th { "skills changed" } } }
            tbody {
                @for p in &pushes {
                    @let id: uuid::Uuid = p.get("id");
                    @let refs: Value = p.get("refs");
                    @let accepted: bool = p.get("accepted");
                    tr {
                        td { a href={"/pushes/" (id)} { (when(p.get("started_at"))) } }
                        td { (p.get::<String, _>("user_name")) }
                        td class="hide-small" { (p.get::<String, _>("repo")) }
                        td class="hide-small" { @for r in refs.as_array().into_iter().flatten() { code { (r["ref"].as_str().unwrap_or("")) } " " } }
                        @let options: Vec<String> = p.get("push_options");
                        td {
                            (result_badge(accepted, &options, &refs))
                            @if !accepted && !is_dry_run(&options, &refs) {
                                " "
                                @for r in refs.as_array().into_iter().flatten().filter(|r| r["reason"].is_string()).take(1) {
                                    span class="muted" { (r["reason"].as_str().unwrap_or("")) }
                                }
                            }
                        }
                        td { (p.get::<i64, _>("changed")) }
                    }
                }
            }
        }
        h2 { "Recent sync failures" }
        @if failures.is_empty() { p class="muted" { "None." } }
        @else {
            table {
                thead { tr { th { "when" } th { "repository" } th { "file" } th { "error" } } }
                tbody {
                    @for f in &failures {
                        tr {
                            td { (when(f.get("started_at"))) }
                            td { (f.get::<String, _>("repo")) }
                            td { code { (f.get::<Option<String>, _>("path").unwrap_or_default()) } }
                            td { pre { (f.get::<Option<String>, _>("error").unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
    })
}

pub use crate::cache::query::{search, SkillsQuery, MAX_PAGE, MAX_QUERY_CHARS};

/// `q`'s link with page `page`.
fn link(q: &SkillsQuery, page: i64) -> String {
    let mut parts = Vec::new();
    for (k, v) in q.texts() {
        if let Some(v) = given(v) {
            parts.push(format!("{k}={}", encode(v)));
        }
    }
    parts.push(format!("page={page}"));
    format!("/skills?{}", parts.join("&"))
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment or query value.
pub(super) fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, COMPONENT).to_string()
}

/// `/skills`: the skills of a repository, searched (`q`, ranked) and filtered.
pub async fn skills(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Query(mut q): Query<SkillsQuery>,
) -> Response {
    if let Some(problem) = q.problem() {
        return error_page(StatusCode::BAD_REQUEST, viewer.as_ref(), &problem);
    }
    let repo = given(&q.repo)
        .unwrap_or(crate::repos::DEFAULT_REPO)
        .to_string();
    let page_no = q.page.unwrap_or(1).max(1);
    q.limit = Some(PAGE_SIZE);
    // IN_REVIEW and DRAFT are the skills changes propose, as in the JSON twin.
    let proposed = super::changes::proposal_state(q.status.as_deref());
    let found = match proposed {
        Some(state) => super::changes::proposed(&s.pool, &q, state).await,
        None => search(&s.pool, &q).await,
    };
    let (total, rows) = match found {
        Ok(found) => found,
        Err(e) => return unavailable(e),
    };
    let statuses = crate::skills::Status::ALL;
    let editor = super::editor::may_edit(&s, viewer.as_ref(), &repo).await;
    let body = html! {
        h1 {
            "Skills"
            @if repo != crate::repos::DEFAULT_REPO { " " span class="muted" { "in " (repo) } }
        }
        @if editor { (super::editor::new_button(&repo)) }
        form class="filters" method="get" action="/skills" {
            input type="hidden" name="repo" value=(repo);
            input type="search" name="q" placeholder="Search skills" title="Searches titles, descriptions, tags and bodies" aria-label="Search titles, descriptions, tags and bodies" value=(given(&q.q).unwrap_or(""));
            input type="text" name="category" placeholder="category" value=(given(&q.category).unwrap_or(""));
            input type="text" name="owner" placeholder="owner" value=(given(&q.owner).unwrap_or(""));
            input type="text" name="tag" placeholder="tag" value=(given(&q.tag).unwrap_or(""));
            select name="status" {
                option value="" { "any status" }
                @for st in statuses {
                    option value=(st) selected[given(&q.status) == Some(st)] { (st) }
                }
            }
            button type="submit" { "Search" }
        }
        p class="muted" id="result-count" { (total) " skill" @if total != 1 { "s" } }
        @if let Some(state) = proposed {
            (super::changes::proposed_table(&repo, state, &rows))
        } @else {
            table id="skills" {
                thead { tr { th { "title" } th class="hide-small" { "slug" } th { "category" } th class="hide-small" { "owner" } th { "status" } th class="hide-small" { "tags" } th { "sync" } } }
                tbody {
                    @for r in &rows {
                        @let slug: String = r.get("slug");
                        @let warnings: i32 = r.get("warnings");
                        tr data-slug=(slug) {
                            td { a href={"/skills/" (slug) "?repo=" (encode(&repo))} { (r.get::<String, _>("title")) } }
                            td class="hide-small" { code { (slug) } }
                            td { (r.get::<Option<String>, _>("category").unwrap_or_default()) }
                            td class="hide-small" { (r.get::<Option<String>, _>("owner").unwrap_or_default()) }
                            td { (r.get::<String, _>("status")) }
                            td class="hide-small" { (r.get::<Vec<String>, _>("tags").join(", ")) }
                            td {
                                (sync_badge(&r.get::<String, _>("sync_status")))
                                @if warnings > 0 { " " span class="badge warn" { (warnings) " warning" @if warnings != 1 { "s" } } }
                            }
                        }
                    }
                }
            }
        }
        div class="pages" {
            @if page_no > 1 { a href=(link(&q, page_no - 1)) rel="prev" { "← previous" } }
            @if page_no * PAGE_SIZE < total { a href=(link(&q, page_no + 1)) rel="next" { "next →" } }
        }
    };
    page("Skills", viewer.as_ref(), body)
}

#[derive(Deserialize, Default)]
pub struct SkillQuery {
    repo: Option<String>,
    /// The sync log's status filter: success, failed or pending.
    log: Option<String>,
}

/// `/skills/{slug}`: the skill, its rendered body, its warnings and its sync log.
pub async fn skill(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Path(slug): Path<String>,
    Query(q): Query<SkillQuery>,
) -> Response {
    let repo = given(&q.repo)
        .unwrap_or(crate::repos::DEFAULT_REPO)
        .to_string();
    // By slug, or by the skill's stable id (push pages link so: it survives renames).
    let row = sqlx::query(
        "SELECT id, slug, path, title, description, category, owner, tags, status, frontmatter,
                body, blob_sha, git_commit_sha, sync_status, last_synced_at, warnings
         FROM skills WHERE repo = $1 AND (slug = $2 OR id = $3)
         ORDER BY slug = $2 DESC LIMIT 1",
    )
    .bind(&repo)
    .bind(&slug)
    .bind(uuid::Uuid::parse_str(&slug).ok())
    .fetch_optional(&s.pool)
    .await;
    let row = match row {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                viewer.as_ref(),
                &format!("No skill `{slug}` in {repo}."),
            )
        }
        Err(e) => return unavailable(e),
    };
    let id: uuid::Uuid = row.get("id");
    let slug: String = row.get("slug");
    let log = sqlx::query(
        "SELECT started_at, operation, status, error, git_commit_sha, synced_by, push_id
         FROM skill_sync_log WHERE skill_id = $1 AND ($2::text IS NULL OR status = $2)
         ORDER BY started_at DESC, id DESC LIMIT 100",
    )
    .bind(id)
    .bind(given(&q.log))
    .fetch_all(&s.pool)
    .await;
    let log = match log {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    let history = match crate::cache::commits::history(&s.pool, id, 200).await {
        Ok(h) => h,
        Err(e) => return unavailable(e),
    };
    let title: String = row.get("title");
    let frontmatter: Value = row.get("frontmatter");
    let warnings: Value = row.get("warnings");
    let body_html = markdown::render(&row.get::<String, _>("body"));
    let here = format!("/skills/{}?repo={}", encode(&slug), encode(&repo));
    let buttons = match viewer.as_ref() {
        Some(v) if super::editor::may_edit(&s, Some(v), &repo).await => {
            Some(super::editor::skill_buttons(
                v,
                &repo,
                &slug,
                &row.get::<String, _>("path"),
                &row.get::<String, _>("blob_sha"),
                row.get::<String, _>("status") == "ARCHIVED",
            ))
        }
        _ => None,
    };
    let markup = html! {
        h1 { (title) " " (sync_badge(&row.get::<String, _>("sync_status"))) }
        @if let Some(b) = buttons { (b) }
        @if let Some(d) = row.get::<Option<String>, _>("description") { p { (d) } }
        dl class="meta" {
            dt { "slug" } dd { code { (row.get::<String, _>("slug")) } }
            dt { "path" } dd { code { (row.get::<String, _>("path")) } }
            dt { "status" } dd { (row.get::<String, _>("status")) }
            dt { "category" } dd { (row.get::<Option<String>, _>("category").unwrap_or_default()) }
            dt { "owner" } dd { (row.get::<Option<String>, _>("owner").unwrap_or_default()) }
            dt { "tags" } dd { (row.get::<Vec<String>, _>("tags").join(", ")) }
            dt { "blob" } dd class="sha" { (row.get::<String, _>("blob_sha")) }
            dt { "commit" } dd class="sha" { (row.get::<String, _>("git_commit_sha")) }
            @if let Some(t) = row.get::<Option<DateTime<Utc>>, _>("last_synced_at") { dt { "synced" } dd { (when(t)) } }
        }
        @if let Some(list) = warnings.as_array().filter(|l| !l.is_empty()) {
            h2 class="warn" { (list.len()) " warning" @if list.len() != 1 { "s" } }
            pre id="warnings" { @for w in list { (problem_line(w)) } }
        }
        div class="body" id="body" { (PreEscaped(body_html)) }
        h2 { "History" }
        table id="history" {
            thead { tr { th { "commit" } th { "author" } th { "date" } th { "operation" } th { "message" } th { "signature" } } }
            tbody {
                @for c in &history {
                    tr {
                        td class="sha" { (c.commit.as_deref().map(short).unwrap_or("")) }
                        td { (c.author_name.as_deref().unwrap_or(&c.synced_by)) }
                        td { (when(c.authored_at.unwrap_or(c.synced_at))) }
                        td { (c.operation) }
                        td { (c.message.as_deref().map(|m| m.lines().next().unwrap_or("")).unwrap_or("")) }
                        td class="signature" title=(c.signing_key.as_deref().unwrap_or("")) {
                            @match (c.signature.as_deref(), c.signed_by.as_deref()) {
                                (Some("verified"), Some(who)) => { "✓ verified: " (who) }
                                (Some("unverified"), _) => { "unverified" }
                                (Some("unsigned"), _) => { "unsigned" }
                                _ => { "" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Frontmatter" }
        pre id="frontmatter" { (serde_json::to_string_pretty(&frontmatter).unwrap_or_default()) }
        h2 { "Sync log" }
        p {
            "Show: "
            a href=(here) { "all" } " · "
            a href={(here) "&log=success"} { "success" } " · "
            a href={(here) "&log=failed"} { "failed" } " · "
            a href={(here) "&log=pending"} { "pending" }
        }
        table id="sync-log" {
            thead { tr { th { "when" } th { "operation" } th { "status" } th { "commit" } th { "by" } th { "error" } } }
            tbody {
                @for l in &log {
                    tr {
                        td {
                            @match l.get::<Option<uuid::Uuid>, _>("push_id") {
                                Some(p) => a href={"/pushes/" (p)} { (when(l.get("started_at"))) },
                                None => (when(l.get("started_at"))),
                            }
                        }
                        td { (l.get::<String, _>("operation")) }
                        td { (l.get::<String, _>("status")) }
                        td class="sha" { (l.get::<Option<String>, _>("git_commit_sha").as_deref().map(short).unwrap_or("")) }
                        td { (l.get::<String, _>("synced_by")) }
                        td { @if let Some(e) = l.get::<Option<String>, _>("error") { pre { (e) } } }
                    }
                }
            }
        }
    };
    page(&title, viewer.as_ref(), markup)
}

/// One problem as the pusher read it: `path:line:col: field: message [check]` and its
/// hint.
pub(super) fn problem_line(p: &Value) -> String {
    let mut loc = p["path"].as_str().unwrap_or("").to_string();
    if let Some(line) = p["line"].as_u64() {
        loc.push_str(&format!(":{line}"));
        if let Some(col) = p["column"].as_u64() {
            loc.push_str(&format!(":{col}"));
        }
    }
    let level = p["level"].as_str().unwrap_or("error");
    let mut out = format!("{level}: {loc}: ");
    if let Some(field) = p["field"].as_str() {
        out.push_str(&format!("{field}: "));
    }
    out.push_str(p["message"].as_str().unwrap_or(""));
    if let Some(check) = p["check"].as_str() {
        out.push_str(&format!(" [{check}]"));
    }
    out.push('\n');
    if let Some(hint) = p["hint"].as_str() {
        out.push_str(&format!("    hint: {hint}\n"));
    }
    out
}

/// `/pushes/{id}`: one push, its refs and its problems as the pusher saw them.
pub async fn push(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return error_page(StatusCode::NOT_FOUND, viewer.as_ref(), "No such push.");
    };
    let row = sqlx::query(
        "SELECT repo, user_name, key_fingerprint, started_at, completed_at, accepted, refs, errors,
                push_options, said
         FROM pushes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&s.pool)
    .await;
    let row = match row {
        Ok(Some(r)) => r,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, viewer.as_ref(), "No such push."),
        Err(e) => return unavailable(e),
    };
    // Each skill by its stable id: where it is now (renamed since, or deleted).
    let changed = sqlx::query(
        "SELECT l.slug, l.path, l.operation, l.status, l.skill_id, k.slug AS now_slug
         FROM skill_sync_log l LEFT JOIN skills k ON k.id = l.skill_id
         WHERE l.push_id = $1 ORDER BY l.id",
    )
    .bind(id)
    .fetch_all(&s.pool)
    .await;
    let changed = match changed {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let refs: Value = row.get("refs");
    let errors: Value = row.get("errors");
    let accepted: bool = row.get("accepted");
    let options: Vec<String> = row.get("push_options");
    let said: Option<String> = row.get("said");
    let repo: String = row.get("repo");
    let markup = html! {
        h1 {
            "Push by " (row.get::<String, _>("user_name")) " "
            (result_badge(accepted, &options, &refs))
        }
        dl class="meta" {
            dt { "repository" } dd { (repo) }
            dt { "when" } dd { (when(row.get("started_at"))) }
            dt { "key" } dd class="sha" { (row.get::<Option<String>, _>("key_fingerprint").unwrap_or_default()) }
            @if !options.is_empty() {
                dt { "push options" } dd { (options.join(", ")) }
            }
        }
        h2 { "Refs" }
        table id="refs" {
            thead { tr { th { "ref" } th { "old" } th { "new" } th { "result" } th { "reason" } } }
            tbody {
                @for r in refs.as_array().into_iter().flatten() {
                    tr {
                        td { code { (r["ref"].as_str().unwrap_or("")) } }
                        td class="sha" { (short(r["old"].as_str().unwrap_or(""))) }
                        td class="sha" { (short(r["new"].as_str().unwrap_or(""))) }
                        td { (r["result"].as_str().unwrap_or("")) }
                        td { (r["reason"].as_str().unwrap_or("")) }
                    }
                }
            }
        }
        @if let Some(said) = said.as_deref() {
            // Exactly the `remote:` lines git showed, in their order.
            h2 { "What the pusher read" }
            pre id="problems" { @for line in said.lines() { "remote: " (line) "\n" } }
        } @else if let Some(list) = errors.as_array().filter(|l| !l.is_empty()) {
            h2 { "What the pusher read" }
            pre id="problems" { @for p in list { (problem_line(p)) } }
        }
        @if !changed.is_empty() {
            h2 { "Skills changed" }
            table id="changed" {
                thead { tr { th { "skill" } th { "file" } th { "operation" } th { "status" } } }
                tbody {
                    @for c in &changed {
                        @let slug: Option<String> = c.get("slug");
                        @let now: Option<String> = c.get("now_slug");
                        @let id: Option<uuid::Uuid> = c.get("skill_id");
                        tr {
                            td {
                                @match (&now, id) {
                                    (Some(now), Some(id)) => {
                                        a href={"/skills/" (id) "?repo=" (encode(&repo))} { (slug.as_deref().unwrap_or(now)) }
                                        @if slug.as_deref() != Some(now.as_str()) {
                                            " " span class="muted" { "renamed to " a href={"/skills/" (id) "?repo=" (encode(&repo))} { (now) } }
                                        }
                                    },
                                    _ => {
                                        (slug.as_deref().unwrap_or(""))
                                        " " span class="muted" { "deleted" }
                                    },
                                }
                            }
                            td { code { (c.get::<Option<String>, _>("path").unwrap_or_default()) } }
                            td { (c.get::<String, _>("operation")) }
                            td { (c.get::<String, _>("status")) }
                        }
                    }
                }
            }
        }
    };
    page("Push", viewer.as_ref(), markup)
}

#[derive(Deserialize)]
pub struct LoginQuery {
    token: Option<String>,
}

/// `/login?token=`: a one-time link from `web-login` opens a session.
pub async fn login(
    State(s): State<Arc<HttpState>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    match auth::redeem(&s.pool, &token).await {
        Ok(Some(id)) => {
            let mut response = axum::response::Redirect::to("/").into_response();
            if let Ok(cookie) = auth::cookie(&id, s.secure_cookies).parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(None) => error_page(
            StatusCode::FORBIDDEN,
            None,
            &format!(
                "This sign-in link was already used, has expired, or is not one. Run `{}` for a new one.",
                super::ssh_command(&s, &headers, "web-login")
            ),
        ),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
    repo: Option<String>,
}

/// Refuses a form post that has no session or whose token (`csrf`) is not the
/// session's.
pub(super) fn checked<'v>(
    viewer: &'v Option<Viewer>,
    csrf: &str,
) -> Result<&'v Viewer, Box<Response>> {
    match viewer {
        None => Err(Box::new(error_page(
            StatusCode::UNAUTHORIZED,
            None,
            "Sign in first: run the `web-login` command over SSH (as when you signed in) and open the link it prints.",
        ))),
        Some(v) if !auth::csrf_ok(v, csrf) => Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            Some(v),
            "This form is out of date or did not come from these pages; reload the page and try again.",
        ))),
        // A read-only API token sees the pages (and their form token) but acts on
        // nothing through them.
        Some(v) if !v.can_write => Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            Some(v),
            "This token is read-only: it cannot act through the pages. Sign in with `web-login`, or use a token made with `token create --write`.",
        ))),
        Some(v) => Ok(v),
    }
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(refused) = checked(&viewer, &form.csrf) {
        return *refused;
    }
    if let Err(e) = auth::sign_out(&s.pool, &headers).await {
        return unavailable(e);
    }
    let mut response = axum::response::Redirect::to("/").into_response();
    if let Ok(cookie) = auth::expired_cookie().parse() {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /reconcile` (admins): the manual sync of one repository's cache.
pub async fn reconcile(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    let v = match checked(&viewer, &form.csrf) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    if v.role != crate::db::users::Role::Admin {
        return error_page(
            StatusCode::FORBIDDEN,
            Some(v),
            "Only admins may sync the cache by hand.",
        );
    }
    let requested = form.repo.as_deref().unwrap_or(crate::repos::DEFAULT_REPO);
    let opened = crate::storage::replica::open(&s.pool, &s.repos, requested, false).await;
    let (name, repo) = match opened {
        Ok(found) => found,
        Err(e) => return error_page(StatusCode::NOT_FOUND, Some(v), &e.to_string()),
    };
    let (pool, rt, n) = (
        s.pool.clone(),
        tokio::runtime::Handle::current(),
        name.clone(),
    );
    let bulk_from = s.repos.settings.bulk_load_from;
    let outcome = tokio::task::spawn_blocking(move || {
        crate::cache::sync::reconcile(
            &rt,
            &pool,
            &repo,
            &n,
            crate::repos::DEFAULT_BRANCH,
            bulk_from,
        )
    })
    .await;
    let summary = match outcome {
        Ok(Ok(o)) => o.reconcile_summary(),
        Ok(Err(e)) => return error_page(StatusCode::SERVICE_UNAVAILABLE, Some(v), &e.to_string()),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, Some(v), &e.to_string()),
    };
    tracing::info!(repo = %name, user = %v.user, %summary, "manual sync from the status pages");
    page(
        "Synced",
        Some(v),
        html! {
            h1 { "Synced " (name) }
            p id="message" { (summary) }
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_in_links_are_percent_encoded_except_unreserved_characters() {
        assert_eq!(super::encode("a b/é-_.~&q=1"), "a%20b%2F%C3%A9-_.~%26q%3D1");
    }
}
