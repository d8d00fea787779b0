//! Signing in to the status pages without a password. `ssh -p 2222 git@HOST
//! web-login` prints a one-time link (valid [`LINK_TTL`], single use); opening it sets
//! a session cookie (HttpOnly, SameSite=Strict) for that user. The user's role is read
//! from `users` on every request, so removing or demoting a user takes effect at once.
//! Every form carries the session's CSRF token, compared in constant time.
//!
//! A session belongs to its user by id and keeps the role the user had when it was
//! opened: removing the user ends it (the rows go with the user), and so does any
//! change of the user's role (the session no longer matches). `ssh ... api-token`
//! gives a bearer token of the same kind for programs (`Authorization: Bearer`), valid
//! [`API_TOKEN_TTL`], under the same rules.

pub use crate::db::credentials::{
    self, API_TOKEN_TTL, COOKIE, Credential, LINK_TTL, SESSION_TTL, TokenRow, Viewer, api_tokens,
    bearer, credential, issue_api_token, issue_api_token_for, issue_link, issue_token, redeem,
    revoke_api_token, revoke_api_tokens, session_id, still_valid,
};
use axum::http::HeaderMap;
use sqlx::PgPool;

/// The signed-in viewer of a request, if any: a browser session's cookie, or an API
/// token as a bearer, of a user who still exists with the role the session began
/// with.
pub async fn viewer(pool: &PgPool, headers: &HeaderMap) -> sqlx::Result<Option<Viewer>> {
    match (session_id(headers), bearer(headers)) {
        (Some(id), _) => credentials::session(pool, &id, credentials::Kind::Browser).await,
        (None, Some(token)) => credentials::session(pool, token, credentials::Kind::Api).await,
        (None, None) => Ok(None),
    }
}

/// Ends the session of `headers`.
pub async fn sign_out(pool: &PgPool, headers: &HeaderMap) -> sqlx::Result<()> {
    if let Some(id) = session_id(headers) {
        credentials::end_session(pool, &id).await?;
    }
    Ok(())
}

/// Does the form's token match the session's?
pub fn csrf_ok(viewer: &Viewer, given: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(viewer.csrf.as_bytes(), given.as_bytes()).into()
}

/// The `Set-Cookie` value of a new session (`secure` over https).
pub fn cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_read_back_and_set_strict() {
        let a = "a".repeat(64);
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("other=1; {COOKIE}={a}; x=y").parse().unwrap(),
        );
        assert_eq!(session_id(&headers).as_deref(), Some(a.as_str()));
        assert!(cookie(&a, true).contains("HttpOnly; SameSite=Strict"));
        assert!(cookie(&a, true).ends_with("; Secure"));
    }
}
