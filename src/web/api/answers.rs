//! The JSON API's answers, one type each: what `/api/...` returns is declared here,
//! field by field, in the camelCase the prototype's web application reads.

use crate::changes::store::{Change, ChangeSkill, PatchSet, ReviewRow};
use serde::Serialize;
use serde_json::Value;

type Time = chrono::DateTime<chrono::Utc>;

/// Every error: `{"error": "..."}`.
#[derive(Serialize)]
pub struct Error {
    pub error: String,
}

impl Error {
    /// The answer: `status` with `{"error": message}`.
    pub fn response(
        status: axum::http::StatusCode,
        message: impl Into<String>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let error = Error {
            error: message.into(),
        };
        (status, axum::Json(error)).into_response()
    }
}

/// `GET /api/skills/sync/status`: the cache's health.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    pub synced: i64,
    pub pending: i64,
    pub failed: i64,
    pub unknown: i64,
    pub total: i64,
    pub recent_failures: i64,
    pub healthy: bool,
    pub with_warnings: i64,
}

/// `GET /api/mirrors`.
#[derive(Serialize)]
pub struct Mirrors {
    pub mirrors: Vec<crate::deliver::mirrors::Mirror>,
}

/// `GET /api/webhooks`: each webhook with its recent deliveries.
#[derive(Serialize)]
pub struct Webhooks {
    pub webhooks: Vec<Webhook>,
}

#[derive(Serialize)]
pub struct Webhook {
    #[serde(flatten)]
    pub hook: crate::deliver::webhooks::Webhook,
    pub deliveries: Vec<crate::deliver::webhooks::Delivery>,
}

/// `GET /api/skills`: one page of skills (published, or proposed by changes) and how
/// many match in all.
#[derive(Serialize)]
pub struct Skills<T> {
    pub total: i64,
    pub skills: Vec<T>,
}

/// A skill a change proposes (`/api/skills?status=IN_REVIEW|DRAFT`), with its change.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposedSkill {
    pub slug: String,
    pub path: String,
    pub old_path: Option<String>,
    pub title: String,
    pub description: Option<String>,
    /// The change's state (`IN_REVIEW`, `DRAFT`): the skill's status until it is merged.
    pub status: String,
    pub operation: String,
    pub warnings: i32,
    pub change: ChangeRef,
}

/// The change a proposed skill belongs to.
#[derive(Serialize)]
pub struct ChangeRef {
    pub number: i32,
    pub title: String,
    pub author: String,
    pub state: String,
}

impl From<crate::web::changes::Proposed> for ProposedSkill {
    fn from(r: crate::web::changes::Proposed) -> Self {
        ProposedSkill {
            slug: r.slug,
            path: r.path,
            old_path: r.old_path,
            title: r.title,
            description: r.description,
            status: r.state.clone(),
            operation: r.operation,
            warnings: r.warnings,
            change: ChangeRef {
                number: r.number,
                title: r.change_title,
                author: r.author,
                state: r.state,
            },
        }
    }
}

/// A change's fields every answer about it has.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeFields<'a> {
    pub number: i32,
    pub repo: &'a str,
    pub target: &'a str,
    pub title: &'a str,
    pub author: &'a str,
    pub topic: Option<&'a str>,
    pub state: &'a str,
    pub created_at: Time,
    pub updated_at: Time,
    pub closed_by: Option<&'a str>,
    pub closed_at: Option<Time>,
    pub merged_commit: Option<&'a str>,
}

impl<'a> From<&'a Change> for ChangeFields<'a> {
    fn from(c: &'a Change) -> Self {
        ChangeFields {
            number: c.number,
            repo: &c.repo,
            target: &c.target,
            title: &c.title,
            author: &c.author,
            topic: c.topic.as_deref(),
            state: &c.state,
            created_at: c.created_at,
            updated_at: c.updated_at,
            closed_by: c.closed_by.as_deref(),
            closed_at: c.closed_at,
            merged_commit: c.merged_commit.as_deref(),
        }
    }
}

/// `GET /api/changes`: one page of changes and how many there are in all.
#[derive(Serialize)]
pub struct Changes<'a> {
    pub total: i64,
    pub changes: Vec<ListedChange<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedChange<'a> {
    #[serde(flatten)]
    pub change: ChangeFields<'a>,
    pub patch_sets: i64,
}

/// `GET /api/changes/{n}`: the change, its patch sets, reviews and skills, and what
/// it still needs to be merged.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeDetail<'a> {
    #[serde(flatten)]
    pub change: ChangeFields<'a>,
    pub description: &'a str,
    pub mergeable: bool,
    pub needs: Vec<String>,
    pub patch_sets: Vec<PatchSetAnswer<'a>>,
    pub reviews: Vec<ReviewAnswer<'a>>,
    pub skills: Vec<SkillChange<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchSetAnswer<'a> {
    pub number: i32,
    pub commit: &'a str,
    pub base: Option<&'a str>,
    pub pushed_by: &'a str,
    pub created_at: Time,
}

impl<'a> From<&'a PatchSet> for PatchSetAnswer<'a> {
    fn from(p: &'a PatchSet) -> Self {
        PatchSetAnswer {
            number: p.number,
            commit: &p.commit_sha,
            base: p.base_sha.as_deref(),
            pushed_by: &p.pushed_by,
            created_at: p.created_at,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewAnswer<'a> {
    pub reviewer: &'a str,
    pub role: &'a str,
    pub verdict: &'a str,
    pub message: &'a str,
    pub patch_set: i32,
    pub created_at: Time,
    pub dismissed: bool,
}

impl<'a> From<&'a ReviewRow> for ReviewAnswer<'a> {
    fn from(r: &'a ReviewRow) -> Self {
        ReviewAnswer {
            reviewer: &r.reviewer,
            role: &r.reviewer_role,
            verdict: &r.verdict,
            message: &r.message,
            patch_set: r.patch_set,
            created_at: r.created_at,
            dismissed: r.dismissed_at.is_some(),
        }
    }
}

/// A skill a change proposes: the frontmatter fields that differ, the body as a line
/// diff.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillChange<'a> {
    pub path: &'a str,
    pub slug: &'a str,
    pub old_path: Option<&'a str>,
    pub operation: &'a str,
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub status: Option<&'a str>,
    pub warnings: &'a Value,
    pub fields: Vec<crate::web::changes::FieldChange<'a>>,
    pub diff: Vec<DiffLine<'a>>,
}

impl<'a> From<&'a ChangeSkill> for SkillChange<'a> {
    fn from(sk: &'a ChangeSkill) -> Self {
        SkillChange {
            path: &sk.path,
            slug: &sk.slug,
            old_path: sk.old_path.as_deref(),
            operation: &sk.operation,
            title: sk.title.as_deref(),
            description: sk.description.as_deref(),
            status: sk.status.as_deref(),
            warnings: &sk.warnings,
            fields: crate::web::changes::fields(sk),
            diff: crate::web::changes::body_diff(sk)
                .into_iter()
                .map(|(kind, line)| DiffLine {
                    kind: crate::web::changes::kind_word(kind),
                    line,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
pub struct DiffLine<'a> {
    pub kind: &'static str,
    pub line: &'a str,
}

/// `GET /api/skills/{key}`: one cached skill, with its frontmatter and its warnings.
#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    pub id: uuid::Uuid,
    pub repo: String,
    pub slug: String,
    pub path: String,
    pub title: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub status: String,
    pub sync_status: String,
    pub frontmatter: Value,
    pub blob_sha: String,
    pub git_commit_sha: String,
    pub last_synced_at: Option<Time>,
    pub warnings: Value,
}

/// `GET /api/skills/{key}/history`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub skill_id: uuid::Uuid,
    pub history: Vec<crate::cache::commits::Change>,
}

/// `GET /api/skills/{key}/sync-logs`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncLogs {
    pub skill_id: uuid::Uuid,
    pub logs: Vec<LogEntry>,
}

/// One sync-log entry of a skill.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub id: i64,
    pub skill_id: Option<uuid::Uuid>,
    pub repo: String,
    pub slug: Option<String>,
    pub path: Option<String>,
    pub operation: String,
    pub direction: String,
    pub status: String,
    pub started_at: Time,
    pub completed_at: Option<Time>,
    pub error: Option<String>,
    pub git_commit_sha: Option<String>,
    pub synced_by: String,
    pub push_id: Option<uuid::Uuid>,
}

/// `POST /api/skills/sync/trigger`: what each repository's reconcile did.
#[derive(Serialize)]
pub struct Reconciled {
    pub reconciled: Vec<RepoReconciled>,
}

#[derive(Serialize)]
pub struct RepoReconciled {
    pub repo: String,
    pub commit: Option<String>,
    pub created: usize,
    pub refreshed: usize,
    pub deleted: usize,
    pub failed: usize,
}
