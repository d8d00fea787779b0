//! Status pages in the browser, on the `--http` listener: the dashboard (`/`), the
//! skills (`/skills`, searchable and filterable), one skill (`/skills/{slug}`) and one
//! push (`/pushes/{id}`). Server-rendered HTML (maud: every value is escaped unless
//! marked otherwise, and only the sanitized Markdown of [`markdown`] is), one small
//! stylesheet, no JavaScript: the pages work with it off. Every response carries a
//! strict Content-Security-Policy (no scripts, no inline styles, no frames).

pub mod auth;
pub mod live;
pub mod markdown;
mod pages;

pub use pages::{search, SkillsQuery};

use auth::Viewer;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use std::sync::Arc;

use crate::http::HttpState;

/// The Content-Security-Policy of every page: this server's stylesheet, its one
/// script (live updates) and its event stream, images from anywhere secure; no
/// inline script or style, no frames, forms only to this server.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
                       connect-src 'self'; img-src 'self' https: data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("live.js");

/// The pages' routes, behind [`gate`].
pub fn router(state: Arc<HttpState>) -> Router<Arc<HttpState>> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/skills", get(pages::skills))
        .route("/skills/{slug}", get(pages::skill))
        .route("/pushes/{id}", get(pages::push))
        .route("/reconcile", post(pages::reconcile))
        .route("/login", get(pages::login))
        .route("/logout", post(pages::logout))
        .route("/static/style.css", get(style))
        .route("/static/live.js", get(script))
        .route("/events", get(live::events))
        .layer(axum::middleware::from_fn_with_state(state, gate))
}

/// Finds who is looking (a signed-in viewer or nobody) for the handlers, and with
/// `SKILLSD_WEB_ACCESS=signed-in` lets nobody else past, except to sign in.
async fn gate(State(s): State<Arc<HttpState>>, mut request: Request, next: Next) -> Response {
    let viewer = match auth::viewer(&s.pool, request.headers()).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the web session");
            None
        }
    };
    let open_path = matches!(
        request.uri().path(),
        "/login" | "/static/style.css" | "/static/live.js"
    );
    if s.web_access == crate::config::WebAccess::SignedIn && viewer.is_none() && !open_path {
        return error_page(
            StatusCode::UNAUTHORIZED,
            None,
            "Sign in to see these pages: run `ssh -p PORT git@HOST web-login` and open the link it prints.",
        );
    }
    request.extensions_mut().insert(viewer);
    next.run(request).await
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
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · skillsd" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/live.js" defer {}
            }
            body {
                header {
                    nav {
                        a href="/" { "skillsd" }
                        a href="/skills" { "Skills" }
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
