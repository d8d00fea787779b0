//! Users and their SSH keys. A key identifies exactly one user; the user's role says
//! what they may do. A web application may manage these tables directly.

use super::{DbError, Result};
use russh::keys::{HashAlg, PublicKey};
use sqlx::PgPool;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Clone and fetch.
    Reader,
    /// Also push (fast-forward on the default branch).
    Writer,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "writer" => Some(Role::Writer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn can_push(self) -> bool {
        self >= Role::Writer
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub key_fingerprint: Option<String>,
}

/// OpenSSH-style fingerprint: `SHA256:...`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Parses one public key in authorized_keys form (`ssh-ed25519 AAAA... comment`).
pub fn parse_public_key(text: &str) -> Result<PublicKey> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| DbError::Invalid("the key file is empty".into()))?;
    PublicKey::from_openssh(line)
        .map_err(|e| DbError::Invalid(format!("not an OpenSSH public key: {e}")))
}

/// Adds a user (or changes an existing user's role) and registers `key` for them.
pub async fn add(pool: &PgPool, name: &str, role: Role, key: &PublicKey) -> Result<String> {
    let fp = fingerprint(key);
    let mut tx = pool.begin().await?;
    let user_id: i64 = sqlx::query_scalar!(
        "INSERT INTO users (name, role) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role RETURNING id",
        name,
        role.as_str(),
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("users_name_check") => DbError::Invalid(
            format!("`{name}` is not a valid user name: use letters, digits, '.', '_' and '-'"),
        ),
        _ => e.into(),
    })?;
    let owner: Option<String> = sqlx::query_scalar!(
        "SELECT u.name FROM ssh_keys k JOIN users u ON u.id = k.user_id WHERE k.fingerprint = $1",
        fp,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(owner) = owner {
        if owner != name {
            return Err(DbError::Invalid(format!(
                "key {fp} is already registered to `{owner}`"
            )));
        }
    } else {
        let openssh = key
            .to_openssh()
            .map_err(|e| DbError::Invalid(format!("cannot encode key: {e}")))?;
        let algorithm = key.algorithm();
        sqlx::query!(
            "INSERT INTO ssh_keys (user_id, fingerprint, algorithm, public_key, comment)
             VALUES ($1, $2, $3, $4, $5)",
            user_id,
            fp,
            algorithm.as_str(),
            openssh.as_str(),
            Some(key.comment().to_string()).filter(|c| !c.is_empty()),
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(fp)
}

/// Removes a user and their keys. Returns false when there was no such user.
pub async fn remove(pool: &PgPool, name: &str) -> Result<bool> {
    let n = sqlx::query!("DELETE FROM users WHERE name = $1", name)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// One row of `user list`.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub fingerprints: Vec<String>,
}

pub async fn list(pool: &PgPool) -> Result<Vec<UserRow>> {
    Ok(sqlx::query_as!(
        UserRow,
        r#"SELECT u.name, u.role,
                COALESCE(array_agg(k.fingerprint ORDER BY k.id) FILTER (WHERE k.id IS NOT NULL), '{}') AS "fingerprints!"
         FROM users u LEFT JOIN ssh_keys k ON k.user_id = u.id
         GROUP BY u.id ORDER BY u.name"#,
    )
    .fetch_all(pool)
    .await?)
}

/// The user a key belongs to, recording that the key was used.
pub async fn find_by_key(pool: &PgPool, key: &PublicKey) -> Result<Option<User>> {
    let fp = fingerprint(key);
    let row = sqlx::query!(
        "UPDATE ssh_keys k SET last_used_at = now() FROM users u
         WHERE k.fingerprint = $1 AND u.id = k.user_id RETURNING u.name, u.role",
        fp,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|row| {
        Some(User {
            name: row.name,
            role: Role::parse(&row.role)?,
            key_fingerprint: Some(fp),
        })
    }))
}

/// Gives `name` the role `role` on `repo`, replacing their global role there.
pub async fn grant(pool: &PgPool, name: &str, repo: &str, role: Role) -> Result<()> {
    let n = sqlx::query!(
        "INSERT INTO repo_grants (user_id, repo, role) SELECT id, $2, $3 FROM users WHERE name = $1
         ON CONFLICT (user_id, repo) DO UPDATE SET role = EXCLUDED.role",
        name,
        repo,
        role.as_str(),
    )
    .execute(pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(DbError::Invalid(format!("no user named `{name}`")));
    }
    Ok(())
}

/// Removes `name`'s grant on `repo`. Returns false when there was none.
pub async fn revoke(pool: &PgPool, name: &str, repo: &str) -> Result<bool> {
    let n = sqlx::query!(
        "DELETE FROM repo_grants g USING users u WHERE g.user_id = u.id AND u.name = $1 AND g.repo = $2",
        name,
        repo,
    )
    .execute(pool)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// The role `user` has on `repo`: their grant there, else their global role.
pub async fn role_on(pool: &PgPool, user: &User, repo: &str) -> Result<Role> {
    let granted: Option<String> = sqlx::query_scalar!(
        "SELECT g.role FROM repo_grants g JOIN users u ON u.id = g.user_id WHERE u.name = $1 AND g.repo = $2",
        user.name,
        repo,
    )
    .fetch_optional(pool)
    .await?;
    Ok(granted
        .as_deref()
        .and_then(Role::parse)
        .unwrap_or(user.role))
}
