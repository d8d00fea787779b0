//! PostgreSQL: connection, migrations, and the access-control tables.

pub mod credentials;
pub mod users;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, DbError>;

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// `url` with its password (if any) replaced by `***`, for logs and banners.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = tail
        .split('&')
        .map(|part| match part.split_once("password=") {
            Some((before, _)) => format!("{before}password=***"),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{scheme}://{authority}{tail}")
}

/// Connects to `url` (retrying briefly while a just-started server comes up).
pub async fn connect(url: &str) -> Result<PgPool> {
    let opts = PgConnectOptions::from_str(url)?.application_name("skillsd");
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// A small pool of its own for logins (key lookups, roles), opened lazily: pushes and
/// reads that take every connection of the main pool never make a login wait for
/// one ("Permission denied" for a known key).
pub fn connect_logins(url: &str) -> Result<PgPool> {
    connect_lazy(url, "skillsd-logins", 4)
}

/// A pool of its own for the HTTP side (pages, JSON API, sessions), opened lazily:
/// pushes that take every connection of the main pool never make the pages answer
/// "database unavailable".
pub fn connect_web(url: &str) -> Result<PgPool> {
    connect_lazy(url, "skillsd-web", 8)
}

fn connect_lazy(url: &str, name: &str, max: u32) -> Result<PgPool> {
    let opts = PgConnectOptions::from_str(url)?.application_name(name);
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(opts))
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db:5432/skills",
                "postgres://app:***@db:5432/skills",
            ),
            (
                "postgres://app@db/skills?sslmode=require",
                "postgres://app@db/skills?sslmode=require",
            ),
            (
                "postgres://db/skills?user=app&password=s3cret",
                "postgres://db/skills?user=app&password=***",
            ),
            (
                "postgres://postgres@localhost/skillsd?host=/data/postgres/sock",
                "postgres://postgres@localhost/skillsd?host=/data/postgres/sock",
            ),
            ("postgres://u:p%40ss@h", "postgres://u:***@h"),
        ] {
            assert_eq!(super::redact_url(url), shown, "{url}");
        }
    }
}
