//! Status pages in the browser, on the `--http` listener: the dashboard (`/`), the
//! skills (`/skills`, searchable and filterable), one skill (`/skills/{slug}`), one
//! push (`/pushes/{id}`), the changes under review (`/changes`, `/changes/{n}`, with
//! the reviewers' forms: [`changes`]) and the editor (`/skills/{slug}/edit`,
//! `/edit/new`, `POST /edit`, `POST /edit/archive`: [`editor`]). Server-rendered HTML
//! (maud: every value is escaped unless marked otherwise, and only the sanitized
//! Markdown of [`markdown`] is), one small stylesheet; the pages work with
//! JavaScript off (`live.js` and `editor.js` only enhance them). Every response
//! carries a strict Content-Security-Policy (scripts from this server only, nothing
//! inline, no frames).

pub mod api;
pub mod audit;
pub mod auth;
pub mod changes;
pub mod contents;
pub mod editor;
pub mod live;
pub mod markdown;
mod pages;

pub use api::{HttpState, serve, token_matches};

pub use pages::{MAX_PAGE, MAX_QUERY_CHARS, SkillsQuery, search};

use auth::Viewer;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use std::sync::Arc;

/// Who may read the status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebAccess {
    /// Anyone who reaches the HTTP listener.
    #[default]
    Open,
    /// Users signed in with a link from `ssh ... web-login`.
    SignedIn,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone who reaches the HTTP listener (a scraper on a private network).
    Open,
    /// A bearer token: `SKILLSD_METRICS_TOKEN`, or else the admin token.
    Token,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_its_surface() {
        assert_eq!(surface("/healthz"), Surface::Open);
        assert_eq!(surface("/static/style.css"), Surface::Open);
        assert_eq!(surface("/static/editor.js"), Surface::Open);
        assert_eq!(surface("/edit/preview"), Surface::Page);
        assert_eq!(surface("/metrics"), Surface::Metrics);
        assert_eq!(surface("/api/skills"), Surface::Api);
        assert_eq!(surface("/api/mirrors"), Surface::Api);
        assert_eq!(
            surface("/.well-known/agent-skills/index.json"),
            Surface::Api
        );
        assert_eq!(
            surface("/team/.well-known/agent-skills/x/SKILL.md"),
            Surface::Api
        );
        assert_eq!(surface("/mcp"), Surface::Api);
        assert_eq!(surface("/team/mcp"), Surface::Api);
        assert_eq!(surface("/skills/mcp"), Surface::Page);
        assert_eq!(surface("/.well-known/other"), Surface::Page);
        assert_eq!(surface("/apiary"), Surface::Page);
        assert_eq!(surface("/"), Surface::Page);
        assert_eq!(surface("/events"), Surface::Page);
        assert_eq!(surface("/static/other"), Surface::Page);
    }

    #[test]
    fn nul_and_control_characters_are_found_encoded_or_not() {
        let uri = |s: &str| s.parse::<axum::http::Uri>().unwrap();
        assert!(control_characters(&uri("/api/skills?q=a%00b")));
        assert!(control_characters(&uri("/skills/x%00y")));
        assert!(control_characters(&uri("/api/skills?tag=%0a")));
        assert!(!control_characters(&uri(
            "/api/skills?q=caf%C3%A9&tag=x%20y"
        )));
        assert!(!control_characters(&uri("/skills/commit-messages")));
    }
}

/// The Content-Security-Policy of every page: this server's stylesheet, its one
/// script (live updates) and its event stream, images from anywhere secure; no
/// inline script or style, no frames, forms only to this server.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
                       connect-src 'self'; img-src 'self' https: data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("live.js");

/// The pages' routes (the whole HTTP router sits behind [`gate`]).
pub fn router() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/api/audit", get(audit::api))
        .route("/skills", get(pages::skills))
        .route("/skills/{slug}", get(pages::skill))
        .route("/pushes/{id}", get(pages::push))
        .route("/changes", get(changes::changes))
        .route("/changes/{n}", get(changes::change))
        .route("/changes/{n}/review", post(changes::review))
        .route("/skills/{slug}/edit", get(editor::edit_page))
        .route("/edit/new", get(editor::new_page))
        .route("/edit", post(editor::save))
        .route("/edit/archive", post(editor::archive))
        .route("/edit/preview", post(editor::preview))
        .route("/static/editor.js", get(editor::script))
        .route("/reconcile", post(pages::reconcile))
        .route("/login", get(pages::login))
        .route("/logout", post(pages::logout))
        .route("/static/style.css", get(style))
        .route("/static/live.js", get(script))
        .route("/events", get(live::events))
}

/// What a request asks for, as far as who may have it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// Liveness, readiness, signing in and the static files: anyone.
    Open,
    /// `/metrics`: its own setting ([`MetricsAccess`]).
    Metrics,
    /// The JSON API (`/api/...`) and the skills for agents
    /// (`[/{repo}]/.well-known/agent-skills/...`, `[/{repo}]/mcp`): answered in JSON.
    Api,
    /// The status pages.
    Page,
}

fn surface(path: &str) -> Surface {
    match path {
        "/healthz" | "/readyz" | "/login" | "/static/style.css" | "/static/live.js"
        | "/static/editor.js" => Surface::Open,
        "/metrics" => Surface::Metrics,
        p if p == "/api" || p.starts_with("/api/") => Surface::Api,
        p if crate::agents::is_agents_path(p) => Surface::Api,
        p if crate::agents::mcp::is_mcp_path(p) => Surface::Api,
        _ => Surface::Page,
    }
}

/// Does the request's path or query hold, once percent-decoded, a NUL or another
/// control character? No route takes one; PostgreSQL refuses NUL in text.
fn control_characters(uri: &axum::http::Uri) -> bool {
    let raw = [uri.path(), uri.query().unwrap_or("")];
    raw.iter().any(|part| {
        percent_encoding::percent_decode_str(part)
            .any(|b| b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f)
    })
}

/// The gate in front of every route (pages, JSON API, `/metrics`): it refuses
/// requests no route can take (a NUL or control character in the path or query:
/// 400), finds who is looking (a browser session's cookie or an API token; see
/// [`auth`]), and with `SKILLSD_WEB_ACCESS=signed-in` lets nobody else past the pages
/// and the JSON API, bar the admin token on the API. `/metrics` follows its own
/// setting. Health, readiness, sign-in and the static files are always open.
pub async fn gate(State(s): State<Arc<HttpState>>, mut request: Request, next: Next) -> Response {
    let surface = surface(request.uri().path());
    if control_characters(request.uri()) {
        let message = "the request's path or query holds a NUL or control character";
        return match surface {
            Surface::Page => error_page(StatusCode::BAD_REQUEST, None, message),
            _ => json_error(StatusCode::BAD_REQUEST, message),
        };
    }
    match surface {
        Surface::Open => return next.run(request).await,
        Surface::Metrics => {
            if s.metrics_access == MetricsAccess::Token {
                let Some(token) = s.metrics_token.as_ref().or(s.admin_token.as_ref()) else {
                    return json_error(
                        StatusCode::FORBIDDEN,
                        "/metrics needs a token: set SKILLSD_METRICS_TOKEN (or SKILLSD_ADMIN_TOKEN),                          or SKILLSD_METRICS=open",
                    );
                };
                if !crate::web::token_matches(request.headers(), token) {
                    return json_error(
                        StatusCode::UNAUTHORIZED,
                        "/metrics needs its bearer token (SKILLSD_METRICS_TOKEN, or the admin token)",
                    );
                }
            }
            return next.run(request).await;
        }
        Surface::Api | Surface::Page => {}
    }
    let viewer = match auth::viewer(&s.pool, request.headers()).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the web session");
            None
        }
    };
    if s.web_access == WebAccess::SignedIn && viewer.is_none() {
        let admin = s
            .admin_token
            .as_ref()
            .is_some_and(|t| crate::web::token_matches(request.headers(), t));
        match surface {
            Surface::Api if !admin => {
                return json_error(
                    StatusCode::UNAUTHORIZED,
                    &format!(
                        "sign in first: send `Authorization: Bearer TOKEN` with a token from \
                         `{}` (or the admin token), or a session cookie",
                        ssh_command(&s, request.headers(), "api-token")
                    ),
                );
            }
            Surface::Page => {
                return error_page(
                    StatusCode::UNAUTHORIZED,
                    None,
                    &format!(
                        "Sign in to see these pages: run `{}` and open the link it prints.",
                        ssh_command(&s, request.headers(), "web-login")
                    ),
                );
            }
            _ => {}
        }
    }
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

/// The SSH command line that runs `command` on this server, with its real host and
/// port (`ssh -p 2222 git@skills.example.com web-login`), as sign-in messages show it.
pub(crate) fn ssh_command(s: &HttpState, headers: &axum::http::HeaderMap, command: &str) -> String {
    let Some(base) = crate::agents::marketplace::ssh_base(&s.agents, headers) else {
        return format!("ssh -p PORT git@HOST {command}");
    };
    let rest = base.strip_prefix("ssh://").unwrap_or(&base);
    match rest.rsplit_once(':') {
        Some((who, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            if port == "22" {
                format!("ssh {who} {command}")
            } else {
                format!("ssh -p {port} {who} {command}")
            }
        }
        _ => format!("ssh {rest} {command}"),
    }
}

/// `{"error": message}` with `status`.
fn json_error(status: StatusCode, message: &str) -> Response {
    api::answers::Error::response(status, message)
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// A whole page around `body`, with the security headers.
fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> Response {
    page_with(title, viewer, None, body)
}

/// [`page`] that also loads `script` (a path under `/static/`).
fn page_with_script(title: &str, viewer: Option<&Viewer>, script: &str, body: Markup) -> Response {
    page_with(title, viewer, Some(script), body)
}

fn page_with(title: &str, viewer: Option<&Viewer>, script: Option<&str>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · skillsd" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/live.js" defer {}
                @if let Some(src) = script { script src=(src) defer {} }
            }
            body {
                header {
                    nav {
                        a href="/" { "skillsd" }
                        a href="/skills" { "Skills" }
                        a href="/changes" { "Changes" }
                        span class="spacer" {}
                        @if let Some(v) = viewer {
                            span class="muted" id="viewer" { (v.user) " (" (v.role.as_str()) ")" }
                            form class="inline" method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button class="link" type="submit" { "sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A page that says what went wrong (not found, bad request, database away).
fn error_page(status: StatusCode, viewer: Option<&Viewer>, message: &str) -> Response {
    let mut response = page(
        status.canonical_reason().unwrap_or("Error"),
        viewer,
        html! { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p id="message" { (message) } },
    );
    *response.status_mut() = status;
    response
}
