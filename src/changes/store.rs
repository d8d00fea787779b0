//! The rows of changes, patch sets, reviews and proposed skills
//! (`migrations/0013_changes.sql`), and what a change still needs to merge.

use super::ChangeState;
use crate::skills::review::{Review, names};
use sqlx::PgConnection;

type Time = chrono::DateTime<chrono::Utc>;

/// A change, as its row holds it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Change {
    pub id: i64,
    pub repo: String,
    pub number: i32,
    pub target: String,
    pub author: String,
    pub title: String,
    pub description: String,
    pub topic: Option<String>,
    pub state: String,
    pub created_at: Time,
    pub updated_at: Time,
    pub closed_by: Option<String>,
    pub closed_at: Option<Time>,
    pub merged_commit: Option<String>,
}

impl Change {
    pub fn state(&self) -> ChangeState {
        ChangeState::parse(&self.state).unwrap_or(ChangeState::Abandoned)
    }
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct PatchSet {
    pub number: i32,
    pub commit_sha: String,
    pub base_sha: Option<String>,
    pub pushed_by: String,
    pub created_at: Time,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ReviewRow {
    pub patch_set: i32,
    pub reviewer: String,
    pub reviewer_role: String,
    pub verdict: String,
    pub message: String,
    pub created_at: Time,
    pub dismissed_at: Option<Time>,
}

/// A skill the change's latest patch set proposes.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ChangeSkill {
    pub path: String,
    pub slug: String,
    pub old_path: Option<String>,
    pub operation: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub frontmatter: Option<serde_json::Value>,
    pub body: Option<String>,
    pub old_frontmatter: Option<serde_json::Value>,
    pub old_body: Option<String>,
    pub warnings: serde_json::Value,
}

pub async fn find(
    conn: &mut PgConnection,
    repo: &str,
    number: i32,
) -> sqlx::Result<Option<Change>> {
    sqlx::query_as!(
        Change,
        "SELECT id, repo, number, target, author, title, description, topic, state,
                created_at, updated_at, closed_by, closed_at, merged_commit
         FROM changes WHERE repo = $1 AND number = $2",
        repo,
        number,
    )
    .fetch_optional(conn)
    .await
}

/// The change, its row locked until the transaction ends.
pub async fn lock(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Change>> {
    sqlx::query_as!(
        Change,
        "SELECT id, repo, number, target, author, title, description, topic, state,
                created_at, updated_at, closed_by, closed_at, merged_commit
         FROM changes WHERE id = $1 FOR UPDATE",
        id,
    )
    .fetch_optional(conn)
    .await
}

/// `author`'s open change on `topic`, if any.
pub async fn open_with_topic(
    conn: &mut PgConnection,
    repo: &str,
    author: &str,
    topic: &str,
) -> sqlx::Result<Option<Change>> {
    sqlx::query_as!(
        Change,
        "SELECT id, repo, number, target, author, title, description, topic, state,
                created_at, updated_at, closed_by, closed_at, merged_commit
         FROM changes WHERE repo = $1 AND author = $2 AND topic = $3
         AND state IN ('DRAFT', 'IN_REVIEW')",
        repo,
        author,
        topic,
    )
    .fetch_optional(conn)
    .await
}

/// Changes of `repo` (every repository: `None`) in `states` (all: empty), the most
/// recently updated first.
pub async fn list(
    conn: &mut PgConnection,
    repo: Option<&str>,
    states: &[&str],
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Change>> {
    let states: Vec<String> = states.iter().map(|s| s.to_string()).collect();
    sqlx::query_as!(
        Change,
        "SELECT id, repo, number, target, author, title, description, topic, state,
                created_at, updated_at, closed_by, closed_at, merged_commit
         FROM changes
         WHERE ($1::text IS NULL OR repo = $1) AND (cardinality($2::text[]) = 0 OR state = ANY($2))
         ORDER BY updated_at DESC, id DESC LIMIT $3 OFFSET $4",
        repo,
        &states,
        limit,
        offset,
    )
    .fetch_all(conn)
    .await
}

pub async fn patch_sets(conn: &mut PgConnection, change: i64) -> sqlx::Result<Vec<PatchSet>> {
    sqlx::query_as!(
        PatchSet,
        "SELECT number, commit_sha, base_sha, pushed_by, created_at FROM change_patch_sets
         WHERE change_id = $1 ORDER BY number",
        change,
    )
    .fetch_all(conn)
    .await
}

pub async fn reviews(conn: &mut PgConnection, change: i64) -> sqlx::Result<Vec<ReviewRow>> {
    sqlx::query_as!(
        ReviewRow,
        "SELECT patch_set, reviewer, reviewer_role, verdict, message, created_at, dismissed_at
         FROM change_reviews WHERE change_id = $1 ORDER BY created_at, id",
        change,
    )
    .fetch_all(conn)
    .await
}

pub async fn skills(conn: &mut PgConnection, change: i64) -> sqlx::Result<Vec<ChangeSkill>> {
    sqlx::query_as!(
        ChangeSkill,
        "SELECT path, slug, old_path, operation, title, description, status, frontmatter, body,
                old_frontmatter, old_body, warnings
         FROM change_skills WHERE change_id = $1 ORDER BY slug, path",
        change,
    )
    .fetch_all(conn)
    .await
}

/// Records `reviewer`'s verdict on the latest patch set; the reviewer's earlier verdicts
/// on the change no longer count (the latest one does).
pub async fn add_review(
    conn: &mut PgConnection,
    change: i64,
    patch_set: i32,
    reviewer: &str,
    role: &str,
    verdict: &str,
    message: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE change_reviews SET dismissed_at = now()
         WHERE change_id = $1 AND reviewer = $2 AND dismissed_at IS NULL",
        change,
        reviewer,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO change_reviews (change_id, patch_set, reviewer, reviewer_role, verdict, message)
         VALUES ($1, $2, $3, $4, $5, $6)",
        change,
        patch_set,
        reviewer,
        role,
        verdict,
        message,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE changes SET updated_at = now() WHERE id = $1",
        change
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest patch set's number (0: none).
pub async fn latest_patch_set(conn: &mut PgConnection, change: i64) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(max(number), 0) AS "latest!" FROM change_patch_sets WHERE change_id = $1"#,
        change,
    )
    .fetch_one(conn)
    .await
}

/// Sets the state of a change (closing it: who and when).
pub async fn set_state(
    conn: &mut PgConnection,
    change: i64,
    state: ChangeState,
    by: &str,
    merged_commit: Option<&str>,
) -> sqlx::Result<()> {
    let closing = matches!(state, ChangeState::Merged | ChangeState::Abandoned);
    sqlx::query!(
        "UPDATE changes SET state = $2, updated_at = now(),
            closed_by = CASE WHEN $3 THEN $4 ELSE closed_by END,
            closed_at = CASE WHEN $3 THEN now() ELSE closed_at END,
            merged_commit = coalesce($5, merged_commit)
         WHERE id = $1",
        change,
        state.as_str(),
        closing,
        by,
        merged_commit,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What `change` still lacks to be merged under `review` (the target branch's
/// `[review]`), given the paths it touches; empty when it may be merged.
pub fn missing(
    change: &Change,
    review: &Review,
    active: &[ReviewRow],
    paths: &[String],
) -> Vec<String> {
    let mut missing = Vec::new();
    match change.state() {
        ChangeState::InReview => {}
        ChangeState::Draft => missing.push(format!(
            "change {} is a draft: mark it ready first (review {} --ready)",
            change.number, change.number
        )),
        ChangeState::Merged => missing.push(format!("change {} is merged already", change.number)),
        ChangeState::Abandoned => missing.push(format!("change {} is abandoned", change.number)),
    }
    let counted: Vec<&ReviewRow> = active
        .iter()
        .filter(|r| r.dismissed_at.is_none() && r.reviewer != change.author)
        .collect();
    for r in counted.iter().filter(|r| r.verdict == "reject") {
        missing.push(format!(
            "rejected by {}{}: a new patch set, or their approval, is needed",
            r.reviewer,
            if r.message.is_empty() {
                String::new()
            } else {
                format!(" (\"{}\")", r.message)
            }
        ));
    }
    let approvals = counted.iter().filter(|r| r.verdict == "approve").count() as u32;
    if approvals < review.required_approvals {
        let lacking = review.required_approvals - approvals;
        missing.push(format!(
            "{} of {} approval{} (from others than its author) still needed",
            lacking,
            review.required_approvals,
            if review.required_approvals == 1 {
                ""
            } else {
                "s"
            }
        ));
    }
    let mut named: Vec<&str> = Vec::new();
    for owners in &review.owners {
        if named.contains(&owners.pattern.as_str()) {
            continue;
        }
        let touched = paths
            .iter()
            .any(|p| review.owners_of(p).any(|o| o.pattern == owners.pattern));
        if !touched {
            continue;
        }
        named.push(&owners.pattern);
        let satisfied = counted.iter().any(|r| {
            r.verdict == "approve"
                && owners
                    .who
                    .iter()
                    .any(|w| names(w, &r.reviewer, &r.reviewer_role))
        });
        if !satisfied {
            missing.push(format!(
                "an approval from an owner of {} ({}) is needed",
                owners.pattern,
                owners.who.join(", ")
            ));
        }
    }
    missing
}
