//! The `pushes` audit table: every push attempt, accepted or refused.

use crate::skills::Problem;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// One ref of a push and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct RefResult {
    #[serde(rename = "ref")]
    pub name: String,
    pub old: String,
    pub new: String,
    /// `ok` or `rejected`.
    pub result: &'static str,
    pub reason: Option<String>,
}

/// A push attempt as recorded.
#[derive(Debug, Clone)]
pub struct PushRecord {
    pub id: Uuid,
    pub repo: String,
    pub user: String,
    pub key_fingerprint: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub accepted: bool,
    pub refs: Vec<RefResult>,
    pub errors: Vec<Problem>,
    pub push_options: Vec<String>,
}

pub async fn insert(conn: &mut PgConnection, p: &PushRecord) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO pushes (id, repo, user_name, key_fingerprint, started_at, completed_at,
                             accepted, refs, errors, push_options)
         VALUES ($1, $2, $3, $4, $5, now(), $6, $7, $8, $9)",
    )
    .bind(p.id)
    .bind(&p.repo)
    .bind(&p.user)
    .bind(&p.key_fingerprint)
    .bind(p.started_at)
    .bind(p.accepted)
    .bind(sqlx::types::Json(&p.refs))
    .bind(sqlx::types::Json(&p.errors))
    .bind(&p.push_options)
    .execute(conn)
    .await?;
    Ok(())
}
