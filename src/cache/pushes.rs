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
    /// Why it was rejected, as the metrics count it (`stale`, `invalid_skills`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<&'static str>,
    /// What the pusher read on the ref's `ng` line.
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

/// Records the push, completed now; a record of the same push left in progress (by a
/// version that wrote it before its refs moved) is completed by it.
pub async fn insert(conn: &mut PgConnection, p: &PushRecord) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO pushes (id, repo, user_name, key_fingerprint, started_at, completed_at,
                             accepted, refs, errors, push_options)
         VALUES ($1, $2, $3, $4, $5, now(), $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET completed_at = EXCLUDED.completed_at,
                                        accepted = EXCLUDED.accepted,
                                        refs = EXCLUDED.refs, errors = EXCLUDED.errors",
        p.id,
        p.repo,
        p.user,
        p.key_fingerprint,
        p.started_at,
        p.accepted,
        sqlx::types::Json(&p.refs) as _,
        sqlx::types::Json(&p.errors) as _,
        &p.push_options,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores what the pusher read (the `remote:` messages, as sent) with the push.
pub async fn set_said(conn: &mut PgConnection, id: uuid::Uuid, said: &str) -> sqlx::Result<()> {
    sqlx::query!("UPDATE pushes SET said = $2 WHERE id = $1", id, said)
        .execute(conn)
        .await?;
    Ok(())
}

/// The pushes of `repo` still in progress (the server stopped between their ref
/// update and their record's completion), oldest first, with each ref's result decided
/// from the repository as it is now: `ok` when the ref holds the new value.
pub async fn interrupted(
    conn: &mut PgConnection,
    repo_name: &str,
    repo: &gix::Repository,
) -> sqlx::Result<Vec<PushRecord>> {
    let rows = sqlx::query!(
        "SELECT id, user_name, key_fingerprint, started_at, refs, push_options
         FROM pushes WHERE repo = $1 AND completed_at IS NULL ORDER BY started_at",
        repo_name,
    )
    .fetch_all(conn)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let refs: Vec<RefResult> = row
            .refs
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let text = |k: &str| {
                    r.get(k)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                let (name, new) = (text("ref"), text("new"));
                let current = crate::repos::ref_target(repo, &name).map(|id| id.to_string());
                let deleted = new.bytes().all(|b| b == b'0');
                let ok = if deleted {
                    current.is_none()
                } else {
                    current.as_deref() == Some(new.as_str())
                };
                RefResult {
                    old: text("old"),
                    new,
                    result: if ok { "ok" } else { "rejected" },
                    refusal: (!ok).then(|| crate::metrics::Reason::Cancelled.label()),
                    reason: (!ok)
                        .then(|| "the server stopped before this ref was updated".to_string()),
                    name,
                }
            })
            .collect();
        out.push(PushRecord {
            id: row.id,
            repo: repo_name.to_string(),
            user: row.user_name,
            key_fingerprint: row.key_fingerprint,
            started_at: row.started_at,
            accepted: refs.iter().any(|r| r.result == "ok"),
            refs,
            errors: Vec::new(),
            push_options: row.push_options,
        });
    }
    Ok(out)
}
