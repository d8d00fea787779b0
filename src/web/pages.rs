//! The pages' handlers: one query each (or a few), rendered with maud.

use super::auth::{self, Viewer};
use super::{error_page, markdown, page};
use crate::web::HttpState;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

mod dashboard;
mod skill;

pub use dashboard::dashboard;
pub use skill::{push, skill};

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

pub use crate::cache::query::{MAX_PAGE, MAX_QUERY_CHARS, SkillsQuery, search};

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
    // One of the two lists is filled: the published skills, or the proposed ones.
    let found = match proposed {
        Some(state) => super::changes::proposed(&s.pool, &q, state)
            .await
            .map(|(total, rows)| (total, Vec::new(), rows)),
        None => search(&s.pool, &q)
            .await
            .map(|(total, rows)| (total, rows, Vec::new())),
    };
    let (total, rows, proposing) = match found {
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
            (super::changes::proposed_table(&repo, state, &proposing))
        } @else {
            table id="skills" {
                thead { tr { th { "title" } th class="hide-small" { "slug" } th { "category" } th class="hide-small" { "owner" } th { "status" } th class="hide-small" { "tags" } th { "sync" } } }
                tbody {
                    @for r in &rows {
                        @let (slug, warnings) = (&r.slug, r.warnings);
                        tr data-slug=(slug) {
                            td { a href={"/skills/" (slug) "?repo=" (encode(&repo))} { (r.title) } }
                            td class="hide-small" { code { (slug) } }
                            td { (r.category.as_deref().unwrap_or_default()) }
                            td class="hide-small" { (r.owner.as_deref().unwrap_or_default()) }
                            td { (r.status) }
                            td class="hide-small" { (r.tags.join(", ")) }
                            td {
                                (sync_badge(&r.sync_status))
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
