//! Status pages in the browser, on the `--http` listener: the dashboard (`/`), the
//! skills (`/skills`, searchable and filterable), one skill (`/skills/{slug}`) and one
//! push (`/pushes/{id}`). Server-rendered HTML (maud: every value is escaped unless
//! marked otherwise, and only the sanitized Markdown of [`markdown`] is), one small
//! stylesheet, no JavaScript: the pages work with it off. Every response carries a
//! strict Content-Security-Policy (no scripts, no inline styles, no frames).

pub mod markdown;
mod pages;

pub use pages::{search, SkillsQuery};

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use std::sync::Arc;

use crate::http::HttpState;

/// The Content-Security-Policy of every page: nothing but this server's stylesheet
/// and images from anywhere secure; no script at all.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("style.css");

/// The pages' routes.
pub fn router() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/skills", get(pages::skills))
        .route("/skills/{slug}", get(pages::skill))
        .route("/pushes/{id}", get(pages::push))
        .route("/static/style.css", get(style))
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

/// A whole page around `body`, with the security headers.
fn page(title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · skillsd" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    nav {
                        a href="/" { "skillsd" }
                        a href="/skills" { "Skills" }
                    }
                }
                main { (body) }
            }
        }
    };
    html_response(axum::http::StatusCode::OK, markup)
}

fn html_response(status: axum::http::StatusCode, markup: Markup) -> Response {
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
fn error_page(status: axum::http::StatusCode, message: &str) -> Response {
    let mut response = page(
        status.canonical_reason().unwrap_or("Error"),
        html! { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p { (message) } },
    );
    *response.status_mut() = status;
    response
}
