//! Signing in to the status pages without a password. `ssh -p 2222 git@HOST
//! web-login` prints a one-time link (valid [`LINK_TTL`], single use); opening it sets
//! a session cookie (HttpOnly, SameSite=Strict) for that user. The user's role is read
//! from `users` on every request, so removing or demoting a user takes effect at once.
//! Every form carries the session's CSRF token, compared in constant time.

use crate::db::users::Role;
use axum::http::HeaderMap;
use sha2::Digest;
use sqlx::PgPool;

/// How long a sign-in link works.
pub const LINK_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// How long a session lasts.
pub const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 60 * 60);
/// The session cookie's name.
pub const COOKIE: &str = "skillsd_session";

/// Who is looking at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: String,
    pub role: Role,
    /// This session's form token.
    pub csrf: String,
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

fn interval(d: std::time::Duration) -> String {
    format!("{} seconds", d.as_secs())
}

/// A one-time sign-in token for `user` (only its hash is stored).
pub async fn issue_link(pool: &PgPool, user: &str) -> sqlx::Result<String> {
    let token = secret();
    sqlx::query(
        "INSERT INTO web_logins (token_hash, user_name, expires_at)
         VALUES ($1, $2, now() + $3::interval)",
    )
    .bind(hash(&token))
    .bind(user)
    .bind(interval(LINK_TTL))
    .execute(pool)
    .await?;
    Ok(token)
}

/// Uses `token` up and opens a session: its id (for the cookie), or `None` when the
/// token is unknown, used or expired.
pub async fn redeem(pool: &PgPool, token: &str) -> sqlx::Result<Option<String>> {
    let mut tx = pool.begin().await?;
    let user: Option<String> = sqlx::query_scalar(
        "UPDATE web_logins SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING user_name",
    )
    .bind(hash(token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = user else {
        return Ok(None);
    };
    let id = secret();
    sqlx::query(
        "INSERT INTO web_sessions (id_hash, user_name, csrf, expires_at)
         VALUES ($1, $2, $3, now() + $4::interval)",
    )
    .bind(hash(&id))
    .bind(&user)
    .bind(secret())
    .bind(interval(SESSION_TTL))
    .execute(&mut *tx)
    .await?;
    // Old links and sessions go as new ones come.
    sqlx::query("DELETE FROM web_logins WHERE expires_at < now() - interval '1 day'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM web_sessions WHERE expires_at < now()")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(id))
}

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

/// The signed-in viewer of a request, if any (a user who still exists).
pub async fn viewer(pool: &PgPool, headers: &HeaderMap) -> sqlx::Result<Option<Viewer>> {
    let Some(id) = session_id(headers) else {
        return Ok(None);
    };
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT s.user_name, u.role, s.csrf FROM web_sessions s JOIN users u ON u.name = s.user_name
         WHERE s.id_hash = $1 AND s.expires_at > now()",
    )
    .bind(hash(&id))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(user, role, csrf)| {
        Some(Viewer {
            user,
            role: Role::parse(&role)?,
            csrf,
        })
    }))
}

/// Ends the session of `headers`.
pub async fn sign_out(pool: &PgPool, headers: &HeaderMap) -> sqlx::Result<()> {
    if let Some(id) = session_id(headers) {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(hash(&id))
            .execute(pool)
            .await?;
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
    fn secrets_are_random_and_only_hashes_are_kept() {
        let (a, b) = (secret(), secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a);
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
