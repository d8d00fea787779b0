//! A skill's versions over HTTP, behind the gate of the JSON API (`SKILLSD_WEB_ACCESS`):
//!
//! * `GET /api/skills/{slug or id}/versions[?repo=R&limit=&page=]` — its versions,
//!   newest first: number, digest, type, path and slug then, commit, when, who pushed.
//! * `GET /api/skills/{key}/versions/{n}` — version `n` read from git history at its
//!   commit: its `SKILL.md` text and its files with their digests, checked against the
//!   recorded digest (`verified`).
//! * `GET /api/skills/{key}/versions/{n}/files/{path}` — one file's bytes.
//! * `GET /api/skills/{key}/versions/{n}/archive.tar.gz` — an `archive` version's
//!   folder, byte for byte the archive its digest names.
//!
//! The files and the archive follow the discovery index's rules ([`super::index`]):
//! a version of a lone `SKILL.md` is that file (its digest the file's), a folder's is
//! its deterministic archive. A version's URLs serve the same bytes for ever, so they
//! carry `ETag` (their digest) and a day's `Cache-Control`. An unknown skill or
//! version is a `404` with a JSON body; a number that is not one is a `400`.

use super::index;
use super::serve::{Freshness, answer, content_type, json_error};
use crate::agents::AgentsState;
use crate::commit_tree::TreeSource;
use crate::skills::rules::{Rules, SKILL_FILE};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// The routes.
pub fn router() -> Router<Arc<AgentsState>> {
    Router::new()
        .route("/api/skills/{key}/versions", get(list))
        .route("/api/skills/{key}/versions/{n}", get(one))
        .route(
            "/api/skills/{key}/versions/{n}/archive.tar.gz",
            get(archive),
        )
        .route("/api/skills/{key}/versions/{n}/files/{*path}", get(file))
}

#[derive(Deserialize)]
struct ListQuery {
    repo: Option<String>,
    limit: Option<i64>,
    page: Option<i64>,
}

#[derive(Deserialize)]
struct RepoQuery {
    repo: Option<String>,
}

/// A refusal or failure, as the API answers it.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json_error(self.0, &self.1)
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error reading skill versions");
        Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable".into(),
        )
    }
}

fn repo_of(q: &Option<String>) -> Result<String, Refusal> {
    crate::cache::query::repo_param(q)
        .map(|r| r.unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string()))
        .map_err(|e| Refusal(StatusCode::NOT_FOUND, e))
}

/// One recorded version.
struct VersionRow {
    skill_id: Uuid,
    version: i32,
    digest: String,
    kind: String,
    path: String,
    slug: String,
    commit_sha: String,
    published_at: chrono::DateTime<chrono::Utc>,
    pushed_by: Option<String>,
    push_id: Option<Uuid>,
}

/// The skill `key` names in `repo`: an id, or a slug (the skill that has it now, else
/// the one whose version last had it: a renamed or deleted skill is still found).
async fn skill_of(s: &AgentsState, repo: &str, key: &str) -> Result<Uuid, Refusal> {
    let found: Option<Uuid> = match Uuid::parse_str(key) {
        Ok(id) => {
            sqlx::query_scalar!(
                r#"SELECT id AS "id!" FROM skills WHERE id = $1 AND repo = $2
             UNION ALL
             (SELECT skill_id FROM skill_versions WHERE skill_id = $1 AND repo = $2 LIMIT 1)
             LIMIT 1"#,
                id,
                repo,
            )
            .fetch_optional(&s.pool)
            .await?
        }
        Err(_) => {
            sqlx::query_scalar!(
                r#"SELECT id AS "id!" FROM skills WHERE repo = $1 AND slug = $2
             UNION ALL
             (SELECT skill_id FROM skill_versions WHERE repo = $1 AND slug = $2
              ORDER BY published_at DESC, version DESC LIMIT 1)
             LIMIT 1"#,
                repo,
                key,
            )
            .fetch_optional(&s.pool)
            .await?
        }
    };
    found.ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("no skill `{key}` in {repo}")))
}

/// The version number in a path: a positive integer.
fn number(n: &str) -> Result<i32, Refusal> {
    n.parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(|| {
        Refusal(
            StatusCode::BAD_REQUEST,
            format!("`{n}` is not a version number (1, 2, ...)"),
        )
    })
}

/// `?repo=R` for links, when `repo` is not the default one.
fn repo_suffix(repo: &str) -> String {
    if repo == crate::repos::DEFAULT_REPO {
        String::new()
    } else {
        format!("?repo={repo}")
    }
}

/// A version's fields: `url` is the artifact its `digest` names (as in the discovery
/// index: the `SKILL.md`, or the archive), `self` the version's own document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Version<'a> {
    version: i32,
    digest: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    path: &'a str,
    slug: &'a str,
    commit: &'a str,
    published_at: chrono::DateTime<chrono::Utc>,
    pushed_by: Option<&'a str>,
    push_id: Option<Uuid>,
    url: String,
    #[serde(rename = "self")]
    itself: String,
}

impl<'a> Version<'a> {
    fn of(key: &str, repo: &str, v: &'a VersionRow) -> Self {
        let base = format!("/api/skills/{key}/versions/{}", v.version);
        let suffix = repo_suffix(repo);
        let url = if v.kind == "archive" {
            format!("{base}/archive.tar.gz{suffix}")
        } else {
            format!("{base}/files/{SKILL_FILE}{suffix}")
        };
        Version {
            version: v.version,
            digest: &v.digest,
            kind: &v.kind,
            path: &v.path,
            slug: &v.slug,
            commit: &v.commit_sha,
            published_at: v.published_at,
            pushed_by: v.pushed_by.as_deref(),
            push_id: v.push_id,
            url,
            itself: format!("{base}{suffix}"),
        }
    }
}

/// `GET /api/skills/{key}/versions`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions<'a> {
    skill_id: Uuid,
    repo: &'a str,
    status: Option<String>,
    current: i32,
    versions: Vec<Version<'a>>,
}

/// `GET /api/skills/{key}/versions/{n}`: the version, its `SKILL.md` and its files.
/// Its bytes are its `ETag`: the fields keep the order (by name) they have always
/// been written in.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionDocument<'a> {
    commit: &'a str,
    digest: &'a str,
    files: Vec<VersionFile>,
    path: &'a str,
    published_at: chrono::DateTime<chrono::Utc>,
    push_id: Option<Uuid>,
    pushed_by: Option<&'a str>,
    repo: &'a str,
    #[serde(rename = "self")]
    itself: String,
    skill_id: Uuid,
    skill_md: Option<String>,
    slug: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    url: String,
    verified: bool,
    version: i32,
}

/// One file of a version, with its digest and its URL.
#[derive(Serialize)]
struct VersionFile {
    digest: String,
    executable: bool,
    path: String,
    size: usize,
    url: String,
}

/// `GET /api/skills/{key}/versions`.
async fn list(
    State(s): State<Arc<AgentsState>>,
    Path(key): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, Refusal> {
    let bad = |m: String| Refusal(StatusCode::BAD_REQUEST, m);
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit must be between 1 and 1000".into()));
    }
    let page = q.page.unwrap_or(1);
    if !(1..=crate::cache::query::MAX_PAGE).contains(&page) {
        return Err(bad(format!(
            "page must be between 1 and {}",
            crate::cache::query::MAX_PAGE
        )));
    }
    let repo = repo_of(&q.repo)?;
    let id = skill_of(&s, &repo, &key).await?;
    let rows: Vec<VersionRow> = sqlx::query_as!(
        VersionRow,
        "SELECT skill_id, version, digest, kind, path, slug, commit_sha, published_at, pushed_by, push_id
         FROM skill_versions WHERE skill_id = $1 AND repo = $2
         ORDER BY version DESC LIMIT $3 OFFSET $4",
        id,
        repo,
        limit,
        (page - 1) * limit,
    )
    .fetch_all(&s.pool)
    .await?;
    let found = sqlx::query!(
        "SELECT (SELECT max(version) FROM skill_versions WHERE skill_id = $1) AS current,
                (SELECT status FROM skills WHERE id = $1) AS status",
        id,
    )
    .fetch_one(&s.pool)
    .await?;
    let (current, status) = (found.current, found.status);
    let Some(current) = current else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("the skill `{key}` has no published version"),
        ));
    };
    let versions = Versions {
        skill_id: id,
        repo: &repo,
        status,
        current,
        versions: rows.iter().map(|v| Version::of(&key, &repo, v)).collect(),
    };
    Ok(Json(versions).into_response())
}

/// The version `n` of the skill `key`, with its content read from git.
async fn load(
    s: &Arc<AgentsState>,
    repo: &str,
    key: &str,
    n: &str,
) -> Result<(VersionRow, index::Artifact), Refusal> {
    let n = number(n)?;
    let id = skill_of(s, repo, key).await?;
    let row: Option<VersionRow> = sqlx::query_as!(
        VersionRow,
        "SELECT skill_id, version, digest, kind, path, slug, commit_sha, published_at, pushed_by, push_id
         FROM skill_versions WHERE skill_id = $1 AND repo = $2 AND version = $3",
        id,
        repo,
        n,
    )
    .fetch_optional(&s.pool)
    .await?;
    let Some(row) = row else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("the skill `{key}` has no version {n}"),
        ));
    };
    let (_, copy) = crate::storage::replica::open(&s.pool, &s.repos, repo, false)
        .await
        .map_err(|e| {
            tracing::error!(%repo, error = %e, "cannot open the repository for a skill version");
            Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the repository cannot be read now".into(),
            )
        })?;
    let (commit, path) = (row.commit_sha.clone(), row.path.clone());
    let read = tokio::task::spawn_blocking(move || read_version(&copy, &commit, &path))
        .await
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match read {
        Ok(Some(artifact)) => Ok((row, artifact)),
        Ok(None) => Err(Refusal(
            StatusCode::GONE,
            format!(
                "version {n} of `{key}` is no longer in the repository's history (commit {})",
                row.commit_sha
            ),
        )),
        Err(e) => {
            tracing::error!(%repo, skill = %key, version = n, error = %e, "cannot read a skill version");
            Err(Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the version cannot be read now".into(),
            ))
        }
    }
}

/// The skill at `path` in `commit`, read with that commit's rules (`None`: the commit
/// or the skill is not there).
fn read_version(
    repo: &gix::Repository,
    commit: &str,
    path: &str,
) -> Result<Option<index::Artifact>, String> {
    let Ok(id) = gix::ObjectId::from_hex(commit.as_bytes()) else {
        return Ok(None);
    };
    let Ok(commit) = repo.find_commit(id) else {
        return Ok(None);
    };
    let tree = commit.tree().map_err(|e| e.to_string())?;
    let rules = Rules::load(&TreeSource { tree: tree.clone() })
        .map_err(|p| crate::skills::render_problems(&p))?;
    let Some(members) = index::skill_members(&tree, &rules, path).map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    index::artifact(repo, members)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// `GET /api/skills/{key}/versions/{n}`.
async fn one(
    State(s): State<Arc<AgentsState>>,
    Path((key, n)): Path<(String, String)>,
    Query(q): Query<RepoQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let repo = repo_of(&q.repo)?;
    let (row, artifact) = load(&s, &repo, &key, &n).await?;
    let made = artifact.digest();
    let verified = made == row.digest;
    if !verified {
        tracing::warn!(%repo, skill = %key, version = row.version, recorded = %row.digest, %made, "a skill version's content differs from its recorded digest");
    }
    let base = format!("/api/skills/{key}/versions/{}", row.version);
    let suffix = repo_suffix(&repo);
    let skill_md = artifact
        .files
        .first()
        .map(|f| String::from_utf8_lossy(&f.3).into_owned());
    let files = artifact
        .files
        .iter()
        .map(|(path, _, executable, data)| VersionFile {
            digest: index::digest(data),
            executable: *executable,
            path: path.clone(),
            size: data.len(),
            url: format!("{base}/files/{path}{suffix}"),
        })
        .collect();
    let v = Version::of(&key, &repo, &row);
    let doc = VersionDocument {
        commit: v.commit,
        digest: v.digest,
        files,
        path: v.path,
        published_at: v.published_at,
        push_id: v.push_id,
        pushed_by: v.pushed_by,
        repo: &repo,
        itself: v.itself,
        skill_id: row.skill_id,
        skill_md,
        slug: v.slug,
        kind: v.kind,
        url: v.url,
        verified,
        version: v.version,
    };
    let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    let etag = index::digest(&bytes);
    Ok(answer(
        &s,
        &headers,
        &etag,
        "application/json",
        Freshness::Version,
        Some(bytes.into()),
    ))
}

/// `GET /api/skills/{key}/versions/{n}/files/{path}`.
async fn file(
    State(s): State<Arc<AgentsState>>,
    Path((key, n, path)): Path<(String, String, String)>,
    Query(q): Query<RepoQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let repo = repo_of(&q.repo)?;
    let (row, artifact) = load(&s, &repo, &key, &n).await?;
    // Only a file the version lists is served: no path reaches anything else.
    let Some((_, _, _, data)) = artifact.files.into_iter().find(|f| f.0 == path) else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("version {} of `{key}` has no file `{path}`", row.version),
        ));
    };
    let digest = index::digest(&data);
    let ct = content_type(&path, &data);
    Ok(answer(
        &s,
        &headers,
        &digest,
        ct,
        Freshness::Version,
        Some(data.into()),
    ))
}

/// `GET /api/skills/{key}/versions/{n}/archive.tar.gz`.
async fn archive(
    State(s): State<Arc<AgentsState>>,
    Path((key, n)): Path<(String, String)>,
    Query(q): Query<RepoQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let repo = repo_of(&q.repo)?;
    let (row, artifact) = load(&s, &repo, &key, &n).await?;
    let Some(bytes) = artifact.archive else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            format!(
                "version {} of `{key}` is a lone SKILL.md: fetch files/SKILL.md",
                row.version
            ),
        ));
    };
    let digest = index::digest(&bytes);
    if digest != row.digest {
        tracing::error!(%repo, skill = %key, version = row.version, recorded = %row.digest, made = %digest, "a skill version's archive differs from its recorded digest");
        return Err(Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the archive differs from the version's recorded digest".into(),
        ));
    }
    Ok(answer(
        &s,
        &headers,
        &digest,
        "application/gzip",
        Freshness::Version,
        Some(bytes.into()),
    ))
}
