//! Who may read and act without SSH: the one-time sign-in links `web-login` prints,
//! the browser sessions they open, and the API tokens `token create` / `api-token`
//! give — only their hashes are stored. The HTTP side (cookies, headers, CSRF) is
//! [`crate::web::auth`]'s; this is what both it and the SSH commands share.

use super::users::Role;
use axum::http::HeaderMap;
use sha2::Digest;
use sqlx::PgPool;

/// How long a sign-in link works.
pub const LINK_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// How long a session lasts.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 60 * 60);
/// How long an API token lasts.
pub const API_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 60 * 60);
/// Who is looking at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: String,
    pub role: Role,
    /// This session's form token.
    pub csrf: String,
    /// May act (open changes), not only read: a browser session (its forms carry the
    /// CSRF token), or an API token made with `token create --write`.
    pub can_write: bool,
}

fn secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(secret: &str) -> String {
    hex(&sha2::Sha256::digest(secret.as_bytes()))
}

/// A one-time sign-in token for `user` (only its hash is stored).
pub async fn issue_link(pool: &PgPool, user: &str) -> sqlx::Result<String> {
    let token = secret();
    sqlx::query!(
        "INSERT INTO web_logins (token_hash, user_name, user_id, expires_at)
         SELECT $1, name, id, now() + make_interval(secs => $3) FROM users WHERE name = $2",
        hash(&token),
        user,
        LINK_TTL.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(token)
}

/// A bearer token for the JSON API as `user` (only its hash is stored), valid
/// [`API_TOKEN_TTL`]; `label` says what it is for (shown by `api-token list`).
pub async fn issue_api_token(pool: &PgPool, user: &str, label: &str) -> sqlx::Result<String> {
    issue_api_token_for(pool, user, label, API_TOKEN_TTL).await
}

/// [`issue_api_token`] valid for `ttl`.
pub async fn issue_api_token_for(
    pool: &PgPool,
    user: &str,
    label: &str,
    ttl: std::time::Duration,
) -> sqlx::Result<String> {
    issue_token(pool, user, label, ttl, false).await
}

/// A bearer token as `user`, valid `ttl`, that may also act (`can_write`: open changes
/// through the contents API) or only read.
pub async fn issue_token(
    pool: &PgPool,
    user: &str,
    label: &str,
    ttl: std::time::Duration,
    can_write: bool,
) -> sqlx::Result<String> {
    let token = secret();
    sqlx::query!(
        "INSERT INTO web_sessions (id_hash, user_name, user_id, role, csrf, kind, label, expires_at, can_write)
         SELECT $1, name, id, role, $3, 'api', $4, now() + make_interval(secs => $5), $6
         FROM users WHERE name = $2",
        hash(&token),
        user,
        secret(),
        label,
        ttl.as_secs_f64(),
        can_write,
    )
    .execute(pool)
    .await?;
    Ok(token)
}

/// One of `user`'s API tokens.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub label: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The API tokens `user` holds that still work, oldest first.
pub async fn api_tokens(pool: &PgPool, user: &str) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as!(
        TokenRow,
        "SELECT s.label, s.created_at, s.expires_at, s.last_used_at
         FROM web_sessions s JOIN users u ON u.id = s.user_id
         WHERE u.name = $1 AND s.kind = 'api' AND s.expires_at > now() AND s.role = u.role
         ORDER BY s.created_at",
        user,
    )
    .fetch_all(pool)
    .await
}

/// Ends `user`'s API tokens labelled `label`; how many there were.
pub async fn revoke_api_token(pool: &PgPool, user: &str, label: &str) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "DELETE FROM web_sessions WHERE kind = 'api' AND label = $2
           AND user_id = (SELECT id FROM users WHERE name = $1)",
        user,
        label,
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// Ends every API token of `user`; how many there were.
pub async fn revoke_api_tokens(pool: &PgPool, user: &str) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "DELETE FROM web_sessions WHERE kind = 'api'
           AND user_id = (SELECT id FROM users WHERE name = $1)",
        user,
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// Uses `token` up and opens a session: its id (for the cookie), or `None` when the
/// token is unknown, used or expired.
pub async fn redeem(pool: &PgPool, token: &str) -> sqlx::Result<Option<String>> {
    let mut tx = pool.begin().await?;
    let user: Option<i64> = sqlx::query_scalar!(
        "UPDATE web_logins SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id",
        hash(token),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = user else {
        return Ok(None);
    };
    let id = secret();
    let opened = sqlx::query!(
        "INSERT INTO web_sessions (id_hash, user_name, user_id, role, csrf, expires_at)
         SELECT $1, name, id, role, $3, now() + make_interval(secs => $4) FROM users WHERE id = $2",
        hash(&id),
        user,
        secret(),
        SESSION_TTL.as_secs_f64(),
    )
    .execute(&mut *tx)
    .await?;
    if opened.rows_affected() == 0 {
        return Ok(None);
    }
    // Old links and sessions go as new ones come.
    sqlx::query!("DELETE FROM web_logins WHERE expires_at < now() - interval '1 day'")
        .execute(&mut *tx)
        .await?;
    sqlx::query!("DELETE FROM web_sessions WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Whether a secret is a browser session's (a cookie) or an API token's (a bearer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Browser,
    Api,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Browser => "browser",
            Kind::Api => "api",
        }
    }
}

/// The viewer whose session or token `id` is, if it still works: a user who still
/// exists with the role the session began with.
pub async fn session(pool: &PgPool, id: &str, kind: Kind) -> sqlx::Result<Option<Viewer>> {
    // Only a value of the form a secret has is looked up.
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"SELECT u.name, u.role, s.csrf,
                s.last_used_at IS NULL OR s.last_used_at < now() - interval '5 minutes' AS "stale!",
                s.kind = 'browser' OR s.can_write AS "can_write!"
         FROM web_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.kind = $2 AND s.expires_at > now() AND u.role = s.role"#,
        hash(id),
        kind.as_str(),
    )
    .fetch_optional(pool)
    .await?;
    // When a token was last used, to the nearest few minutes (no write per request).
    if row.as_ref().is_some_and(|r| r.stale) {
        sqlx::query!(
            "UPDATE web_sessions SET last_used_at = now() WHERE id_hash = $1",
            hash(id),
        )
        .execute(pool)
        .await?;
    }
    Ok(row.and_then(|row| {
        Some(Viewer {
            user: row.name,
            role: Role::parse(&row.role)?,
            csrf: row.csrf,
            can_write: row.can_write,
        })
    }))
}

/// Ends the browser session `id`.
pub async fn end_session(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM web_sessions WHERE id_hash = $1", hash(id))
        .execute(pool)
        .await?;
    Ok(())
}

/// The session cookie's name.
pub const COOKIE: &str = "skillsd_session";

/// The session id in the request's cookies.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The bearer token of the request's `Authorization` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// What a request was signed in with, kept to be looked at again while a long answer
/// (an MCP change stream) runs: the hash of its session id or token, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    id_hash: String,
    kind: &'static str,
}

/// The credential of `headers`, chosen as [`crate::web::auth::viewer`] chooses it.
pub fn credential(headers: &HeaderMap) -> Option<Credential> {
    let (id, kind) = match (session_id(headers), bearer(headers)) {
        (Some(id), _) => (id, "browser"),
        (None, Some(token)) => (token.to_string(), "api"),
        (None, None) => return None,
    };
    Some(Credential {
        id_hash: hash(&id),
        kind,
    })
}

/// Does `credential` still sign its user in (not revoked, not expired, the user still
/// there with the role it was made with)? The test [`crate::web::auth::viewer`] makes.
pub async fn still_valid(pool: &PgPool, credential: &Credential) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM web_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.kind = $2 AND s.expires_at > now() AND u.role = s.role) AS "valid!""#,
        credential.id_hash,
        credential.kind,
    )
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_hashes_are_kept() {
        let (a, b) = (secret(), secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a);
    }
}
