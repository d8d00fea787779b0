//! PostgreSQL: connection, migrations, and the access-control tables.

pub mod users;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
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

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Everything a process does with a database before using it: the migrations, then the
/// check that skillsd's full-text vectors equal this database's
/// ([`crate::cache::vector::verify`]; if not, PostgreSQL computes them all).
pub async fn prepare(pool: &PgPool) -> Result<()> {
    migrate(pool).await?;
    crate::cache::vector::verify(pool).await?;
    Ok(())
}
