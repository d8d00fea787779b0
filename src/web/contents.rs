//! The contents API (Gitea-shaped JSON):
//! * `GET /api/repos/{repo}/contents/{path}?ref=` — a file (`sha` = its blob id,
//!   `content` base64) or a folder's listing; the root without a path;
//! * `POST /api/repos/{repo}/changes` — file operations committed for the signed-in
//!   user and opened as a change for review ([`crate::edit::submit`]): `201 {change, url}`,
//!   `409` for a stale `sha`, `422` with the problems, `403` for readers;
//! * `POST /api/check` — one file's problems under a repository's rules, for an editor
//!   that shows them as the user types (no side effects).
//!
//! Reading follows `SKILLSD_WEB_ACCESS` like every `/api` route (the gate in
//! [`crate::web`]). Writing needs a signed-in user: a bearer token made with
//! `token create --write`, or a browser session whose request carries its CSRF token
//! in `X-CSRF-Token`.

use crate::edit::{ChangeRequest, EditError};
use crate::web::HttpState;
use crate::web::auth::Viewer;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use gix::ObjectId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest request body of `POST …/changes` (base64 of the files, and the rest).
pub const MAX_BODY_BYTES: usize = 16 << 20;
/// Largest body of `POST /api/check`.
pub const MAX_CHECK_BYTES: usize = 2 << 20;

pub fn router() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/api/repos/{repo}/contents", get(contents_root))
        .route("/api/repos/{repo}/contents/{*path}", get(contents))
        .route(
            "/api/repos/{repo}/changes",
            post(create_change).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route(
            "/api/check",
            post(check).layer(DefaultBodyLimit::max(MAX_CHECK_BYTES)),
        )
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    crate::web::api::answers::Error::response(status, message)
}

/// A file or a folder, as `GET …/contents/{path}` answers (`"type": "file"|"dir"`).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Contents {
    File(File),
    Dir(Folder),
}

#[derive(Serialize)]
struct File {
    name: String,
    path: String,
    /// The blob's id.
    sha: String,
    size: usize,
    /// Always `base64`.
    encoding: &'static str,
    content: String,
    executable: bool,
    commit: String,
}

#[derive(Serialize)]
struct Folder {
    path: String,
    /// The tree's id.
    sha: String,
    commit: String,
    entries: Vec<Entry>,
}

/// A folder's entry: a file's size is given, a folder's not.
#[derive(Serialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    path: String,
    sha: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

/// `201` of `POST …/changes`: the change opened (or its new patch set), and, when it
/// was to be published at once, whether it was.
#[derive(Serialize)]
struct Created {
    change: i32,
    patch_set: i32,
    commit: String,
    branch: String,
    url: String,
    messages: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    published: Option<bool>,
    /// The merge's words, when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    merge: Option<String>,
    /// Why it was not published.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_published: Option<String>,
}

/// `409`: the file changed since its `sha` was read.
#[derive(Serialize)]
struct Stale {
    error: String,
    path: String,
    /// Its blob now (`null`: it is gone).
    sha: Option<String>,
}

/// `422`: every problem of the files.
#[derive(Serialize)]
struct Invalid {
    error: String,
    problems: Vec<crate::skills::Problem>,
}

/// `POST /api/check`'s answer.
#[derive(Serialize)]
struct Checked {
    repo: String,
    path: String,
    skill: bool,
    governed: bool,
    valid: bool,
    problems: Vec<crate::skills::Problem>,
}

#[derive(Deserialize)]
pub struct RefQuery {
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

async fn contents_root(
    State(s): State<Arc<HttpState>>,
    Path(repo): Path<String>,
    Query(q): Query<RefQuery>,
) -> Response {
    read_contents(&s, repo, String::new(), q.reference).await
}

async fn contents(
    State(s): State<Arc<HttpState>>,
    Path((repo, path)): Path<(String, String)>,
    Query(q): Query<RefQuery>,
) -> Response {
    read_contents(&s, repo, path, q.reference).await
}

async fn read_contents(
    s: &HttpState,
    repo: String,
    path: String,
    reference: Option<String>,
) -> Response {
    let path = path.trim_end_matches('/').to_string();
    if !path.is_empty()
        && let Err(e) = crate::edit::check_path(&path)
    {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if reference
        .as_deref()
        .is_some_and(|r| r.contains('\0') || r.len() > 256)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "`ref` is a branch, a tag or a commit id",
        );
    }
    let (name, copy) = match crate::storage::replica::open(&s.pool, &s.repos, &repo, false).await {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no repository `{repo}`: {e}"),
            );
        }
    };
    let answer = tokio::task::spawn_blocking(move || {
        let _reading = crate::maintenance::read_guard(copy.path());
        contents_of(&copy, &name, &path, reference.as_deref())
    })
    .await;
    match answer {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err((status, message))) => error(status, message),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading failed: {e}"),
        ),
    }
}

/// What `reference` names in `repo`: a branch, a tag, a full ref, or a commit id.
fn resolve(repo: &gix::Repository, reference: Option<&str>) -> Option<ObjectId> {
    let r = reference.unwrap_or(crate::repos::DEFAULT_BRANCH);
    let candidates = [
        format!("refs/heads/{r}"),
        format!("refs/tags/{r}"),
        r.to_string(),
    ];
    for full in candidates.iter().filter(|c| c.starts_with("refs/")) {
        if let Some(id) = crate::repos::ref_target(repo, full) {
            return crate::storage::peeled(repo, id).or(Some(id));
        }
    }
    let id = ObjectId::from_hex(r.as_bytes()).ok()?;
    repo.find_commit(id).ok().map(|c| c.id)
}

fn contents_of(
    repo: &gix::Repository,
    name: &str,
    path: &str,
    reference: Option<&str>,
) -> Result<Contents, (StatusCode, String)> {
    let internal = |e: &dyn std::fmt::Display| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let Some(commit) = resolve(repo, reference) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!(
                "no branch, tag or commit `{}` in {name}",
                reference.unwrap_or(crate::repos::DEFAULT_BRANCH)
            ),
        ));
    };
    let root = repo
        .find_commit(commit)
        .map_err(|e| internal(&e))?
        .tree()
        .map_err(|e| internal(&e))?;
    let (mode, id) = if path.is_empty() {
        (gix::object::tree::EntryKind::Tree.into(), root.id)
    } else {
        match root
            .lookup_entry(path.split('/').map(str::as_bytes))
            .map_err(|e| internal(&e))?
        {
            Some(e) => (e.mode(), e.object_id()),
            None => {
                return Err((
                    StatusCode::NOT_FOUND,
                    format!("no `{path}` in {name} at {}", &commit.to_string()[..7]),
                ));
            }
        }
    };
    if mode.is_tree() {
        return folder_of(repo, path, id, commit);
    }
    if !mode.is_blob() {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{path}` is a {}, not a file", kind_of(mode)),
        ));
    }
    use base64::Engine;
    let data = repo
        .find_object(id)
        .map_err(|e| internal(&e))?
        .detach()
        .data;
    Ok(Contents::File(File {
        name: path.rsplit('/').next().unwrap_or(path).to_string(),
        path: path.to_string(),
        sha: id.to_string(),
        size: data.len(),
        encoding: "base64",
        content: base64::engine::general_purpose::STANDARD.encode(&data),
        executable: mode.is_executable(),
        commit: commit.to_string(),
    }))
}

/// What an entry is, in the contents API's words.
fn kind_of(m: gix::object::tree::EntryMode) -> &'static str {
    if m.is_tree() {
        "dir"
    } else if m.is_link() {
        "symlink"
    } else if m.is_commit() {
        "submodule"
    } else {
        "file"
    }
}

/// A folder's entries: each one's type, name, path and sha, and a file's size.
fn folder_of(
    repo: &gix::Repository,
    path: &str,
    id: gix::ObjectId,
    commit: gix::ObjectId,
) -> Result<Contents, (StatusCode, String)> {
    let internal = |e: &dyn std::fmt::Display| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let tree = repo.find_tree(id).map_err(|e| internal(&e))?;
    let mut entries = Vec::new();
    for entry in tree.iter() {
        let entry = entry.map_err(|e| internal(&e))?;
        let file_name = entry.filename().to_string();
        let full = if path.is_empty() {
            file_name.clone()
        } else {
            format!("{path}/{file_name}")
        };
        let size = entry.mode().is_blob().then(|| {
            repo.find_header(entry.object_id())
                .map(|h| h.size())
                .unwrap_or(0)
        });
        entries.push(Entry {
            kind: kind_of(entry.mode()),
            name: file_name,
            path: full,
            sha: entry.object_id().to_string(),
            size,
        });
    }
    Ok(Contents::Dir(Folder {
        path: path.to_string(),
        sha: id.to_string(),
        commit: commit.to_string(),
        entries,
    }))
}

/// The signed-in user who may act with this request, or the answer to give.
fn actor(
    viewer: Option<&Viewer>,
    headers: &HeaderMap,
) -> Result<crate::db::users::User, Box<Response>> {
    let Some(v) = viewer else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "sign in first: send `Authorization: Bearer TOKEN` with a token from \
             `ssh -p PORT git@HOST token create --write`, or a session cookie",
        )));
    };
    if crate::web::auth::session_id(headers).is_some() {
        // A browser: the session's form token must come along (no cross-site posts).
        let given = headers
            .get("x-csrf-token")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !crate::web::auth::csrf_ok(v, given) {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "the request lacks this session's CSRF token (X-CSRF-Token)",
            )));
        }
    } else if !v.can_write {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "this token is read-only: make one that may open changes with \
             `ssh -p PORT git@HOST token create --write`",
        )));
    }
    Ok(crate::db::users::User {
        name: v.user.clone(),
        role: v.role,
        key_fingerprint: None,
    })
}

async fn create_change(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Path(repo): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match actor(viewer.as_ref(), &headers) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let req: ChangeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a change request: {e}"),
            );
        }
    };
    match crate::edit::submit(&s.review, &user, &repo, req).await {
        Ok(done) => {
            let (published, merge, not_published) = match done.published {
                Some(Ok(text)) => (Some(true), Some(text), None),
                Some(Err(why)) => (Some(false), None, Some(why)),
                None => (None, None, None),
            };
            let created = Created {
                change: done.change,
                patch_set: done.patch_set,
                commit: done.commit,
                branch: done.branch,
                url: done.url,
                messages: done.messages,
                published,
                merge,
                not_published,
            };
            (StatusCode::CREATED, Json(created)).into_response()
        }
        Err(e) => edit_error(e),
    }
}

/// The answer for an [`EditError`].
pub fn edit_error(e: EditError) -> Response {
    match e {
        EditError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
        EditError::Forbidden(m) => error(StatusCode::FORBIDDEN, m),
        EditError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        EditError::Stale {
            path,
            current,
            message,
        } => (
            StatusCode::CONFLICT,
            Json(Stale {
                error: message,
                path,
                sha: current,
            }),
        )
            .into_response(),
        EditError::Invalid { problems, message } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(Invalid {
                error: message,
                problems,
            }),
        )
            .into_response(),
        EditError::Unavailable(m) => error(StatusCode::SERVICE_UNAVAILABLE, m),
        e @ EditError::Git(_) => {
            tracing::error!(error = %e, "the editor's git work failed");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

/// `POST /api/check`: `{repo?, path, content}` (content as text).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    pub path: String,
    pub content: String,
}

async fn check(State(s): State<Arc<HttpState>>, body: axum::body::Bytes) -> Response {
    let req: CheckRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is {{\"path\", \"content\", \"repo\"?}}: {e}"),
            );
        }
    };
    if let Err(e) = crate::edit::check_path(&req.path) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    if req.content.len() as u64 > s.review.policy.max_file_bytes {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "the content is more than {} bytes",
                s.review.policy.max_file_bytes
            ),
        );
    }
    let repo = req
        .repo
        .clone()
        .unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string());
    let (name, copy) = match crate::storage::replica::open(&s.pool, &s.repos, &repo, false).await {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no repository `{repo}`: {e}"),
            );
        }
    };
    let answer = tokio::task::spawn_blocking(move || {
        let _reading = crate::maintenance::read_guard(copy.path());
        let rules = match resolve(&copy, req.branch.as_deref())
            .and_then(|c| copy.find_commit(c).ok())
            .and_then(|c| c.tree().ok())
        {
            Some(tree) => {
                crate::skills::rules::Rules::load(&crate::commit_tree::TreeSource { tree })
                    .unwrap_or_else(|_| crate::skills::rules::Rules::builtin())
            }
            None => crate::skills::rules::Rules::builtin(),
        };
        let governed = rules.governs(&req.path);
        let skill = rules.is_skill(&req.path);
        let problems = if !governed {
            Vec::new()
        } else if skill {
            match rules.validate(&req.path, req.content.as_bytes()) {
                Ok(s) => s.warnings,
                Err(p) => p,
            }
        } else {
            rules.validate_other(&req.path, req.content.as_bytes())
        };
        let valid = !problems
            .iter()
            .any(|p| p.level == crate::skills::Level::Error);
        Checked {
            repo: name,
            path: req.path,
            skill,
            governed,
            valid: valid && governed,
            problems,
        }
    })
    .await;
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("checking failed: {e}"),
        ),
    }
}
