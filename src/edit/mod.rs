//! Editing without git: a commit made on the server for a user — from the contents
//! API (`POST /api/repos/{repo}/changes`, [`api`]) — that goes through exactly what a
//! push goes through. The files are written onto the branch's tip (or onto an open
//! change's latest patch set) in a scratch repository, the commit is checked here for
//! a precise answer (stale `sha`s: 409; the skills' problems: 422, as JSON), then
//! pushed in process to `refs/for/BRANCH` ([`crate::receive::in_process::push_in_process`]): the
//! push's own checks, the review gate and the one publishing transaction decide, and
//! the change then follows review like any other. `publish: true` merges it at once
//! through the review's merge path when the branch's rules need no approval.
//!
//! The author and committer are the user, with the name and email of their profile
//! (`ssh HOST profile --name … --email …`).
//!
//! [`commit`] makes and pushes the commit; [`open`] reads a file as an editor opens it.

mod commit;
mod open;

pub use open::{Opened, open_file};

use crate::db::users::{Role, User};
use crate::review::store;
use crate::skills::Problem;
use commit::commit_and_push;
use gix::ObjectId;
use serde::Deserialize;

/// Most file operations in one request.
pub const MAX_FILES: usize = 200;

/// What happens to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Rename,
}

/// One file operation of a request (Gitea's shape).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEdit {
    pub operation: Operation,
    pub path: String,
    /// The file's old path (rename).
    #[serde(default)]
    pub from_path: Option<String>,
    /// The new content, base64 (create, update; rename: optional, else unchanged).
    #[serde(default)]
    pub content: Option<String>,
    /// The blob id the client last saw (update, delete, rename: required).
    #[serde(default)]
    pub sha: Option<String>,
}

/// `POST /api/repos/{repo}/changes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    /// An open change of this user's to add a patch set to.
    #[serde(default)]
    pub change: Option<i32>,
    #[serde(default)]
    pub draft: bool,
    /// Merge at once when the branch needs no approval.
    #[serde(default)]
    pub publish: bool,
    pub files: Vec<FileEdit>,
}

/// Why nothing was committed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A `sha` that is not the file's blob now (or a file that exists already).
    #[error("{message}")]
    Stale {
        path: String,
        current: Option<String>,
        message: String,
    },
    /// The commit breaks the rules: every problem, or the push's own words.
    #[error("{message}")]
    Invalid {
        problems: Vec<Problem>,
        message: String,
    },
    #[error("{0}")]
    Unavailable(String),
    /// The repository's objects could not be read or written (gix's error, with its
    /// causes): the server's fault, answered as unavailable.
    #[error("git: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// gix's error as the editor's, kept with its causes.
pub(crate) fn git_error(e: impl std::error::Error + Send + Sync + 'static) -> EditError {
    EditError::Git(Box::new(e))
}

/// What was committed.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub change: i32,
    pub patch_set: i32,
    pub commit: String,
    pub branch: String,
    /// The change's page (`SKILLSD_PUBLIC_URL`), else its path.
    pub url: String,
    /// `publish`: merged (the merge's words), or why not.
    pub published: Option<Result<String, String>>,
    /// What the push printed.
    pub messages: String,
}

/// The name and email of `user`'s commits: their profile's, else the user name and
/// `NAME@users.skillsd` (an address that is nobody's mailbox). `None`: no such user.
pub async fn identity(pool: &sqlx::PgPool, user: &str) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query!(
        "SELECT name, full_name, email FROM users WHERE name = $1",
        user
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        (
            r.full_name.unwrap_or_else(|| r.name.clone()),
            r.email
                .unwrap_or_else(|| format!("{}@users.skillsd", r.name)),
        )
    }))
}

/// A path a client may name: relative, `/`-separated, no empty, `.`, `..` or `.git`
/// parts, no control characters, not too long.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("a file path is empty".into());
    }
    if path.len() > 1024 {
        return Err("a file path is longer than 1024 bytes".into());
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(format!(
            "`{path}`: paths are relative to the repository, with `/`"
        ));
    }
    if path.chars().any(char::is_control) {
        return Err(format!(
            "`{}`: a path cannot hold control characters",
            path.escape_debug()
        ));
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!("`{path}`: no empty, `.` or `..` parts in a path"));
        }
        if part.eq_ignore_ascii_case(".git") {
            return Err(format!("`{path}`: `.git` cannot be part of a path"));
        }
    }
    Ok(())
}

/// A request's files, decoded and checked before any repository is opened.
struct Decoded {
    op: Operation,
    path: String,
    from_path: Option<String>,
    content: Option<Vec<u8>>,
    sha: Option<ObjectId>,
}

fn decode(req: &ChangeRequest, max_file_bytes: u64) -> Result<Vec<Decoded>, EditError> {
    use base64::Engine;
    let bad = |m: String| EditError::BadRequest(m);
    if req.files.is_empty() {
        return Err(bad(
            "`files` is empty: name at least one file operation".into()
        ));
    }
    if req.files.len() > MAX_FILES {
        return Err(bad(format!(
            "{} file operations; at most {MAX_FILES} in one change",
            req.files.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(req.files.len());
    for f in &req.files {
        check_path(&f.path).map_err(bad)?;
        if let Some(from) = &f.from_path {
            check_path(from).map_err(bad)?;
        }
        let from_path = match (f.operation, &f.from_path) {
            (Operation::Rename, Some(from)) if from != &f.path => Some(from.clone()),
            (Operation::Rename, _) => {
                return Err(bad(format!(
                    "`{}`: a rename names the old path in `from_path`, different from `path`",
                    f.path
                )));
            }
            (_, Some(_)) => {
                return Err(bad(format!("`{}`: only a rename has `from_path`", f.path)));
            }
            (_, None) => None,
        };
        for p in std::iter::once(&f.path).chain(from_path.iter()) {
            if !seen.insert(p.clone()) {
                return Err(bad(format!("`{p}` is named by two operations")));
            }
        }
        let sha = match (&f.sha, f.operation) {
            (Some(s), _) => Some(ObjectId::from_hex(s.trim().as_bytes()).map_err(|_| {
                bad(format!(
                    "`{}`: `sha` is a blob id (40 hex digits), not `{s}`",
                    f.path
                ))
            })?),
            (None, Operation::Create) => None,
            (None, op) => {
                return Err(bad(format!(
                    "`{}`: `sha` (the blob id you last read) is required to {}",
                    f.path,
                    format!("{op:?}").to_lowercase()
                )));
            }
        };
        let content = match (&f.content, f.operation) {
            (Some(_), Operation::Delete) => {
                return Err(bad(format!("`{}`: a delete has no content", f.path)));
            }
            (None, Operation::Create | Operation::Update) => {
                return Err(bad(format!("`{}`: `content` (base64) is required", f.path)));
            }
            (None, _) => None,
            (Some(c), _) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(c.trim())
                    .map_err(|e| bad(format!("`{}`: `content` is not base64 ({e})", f.path)))?;
                if bytes.len() as u64 > max_file_bytes {
                    return Err(bad(format!(
                        "`{}` is {} bytes, more than the limit of {max_file_bytes}",
                        f.path,
                        bytes.len()
                    )));
                }
                if bytes.contains(&0) || std::str::from_utf8(&bytes).is_err() {
                    return Err(bad(format!(
                        "`{}`: the content is binary; only UTF-8 text is edited here (push binary files with git)",
                        f.path
                    )));
                }
                Some(bytes)
            }
        };
        out.push(Decoded {
            op: f.operation,
            path: f.path.clone(),
            from_path,
            content,
            sha,
        });
    }
    Ok(out)
}

/// One line, bounded, for a title.
fn title_of(req: &ChangeRequest, files: &[Decoded]) -> Result<String, EditError> {
    let title = match req.title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => {
            let first = &files[0];
            let verb = match first.op {
                Operation::Create => "Add",
                Operation::Update => "Update",
                Operation::Delete => "Delete",
                Operation::Rename => "Rename",
            };
            if files.len() == 1 {
                format!("{verb} {}", first.path)
            } else {
                format!("{verb} {} and {} more", first.path, files.len() - 1)
            }
        }
    };
    if title.contains(['\n', '\r']) || title.chars().count() > crate::review::open::MAX_TITLE_CHARS
    {
        return Err(EditError::BadRequest(format!(
            "the title is one line of at most {} characters",
            crate::review::open::MAX_TITLE_CHARS
        )));
    }
    Ok(title)
}

/// Commits `req`'s files for `user` onto `branch` of `repo` (or onto change
/// `req.change`), pushes the commit to `refs/for/BRANCH`, and merges it when asked to.
pub async fn submit(
    svc: &crate::review::Service,
    user: &User,
    repo: &str,
    req: ChangeRequest,
) -> Result<Submitted, EditError> {
    let db = |e: sqlx::Error| EditError::Unavailable(format!("the database is unavailable: {e}"));
    let files = decode(&req, svc.policy.max_file_bytes)?;
    let title = title_of(&req, &files)?;
    let message = req.message.clone().unwrap_or_default();
    if message.chars().count() > crate::review::open::MAX_DESCRIPTION_CHARS {
        return Err(EditError::BadRequest(format!(
            "the message is more than {} characters",
            crate::review::open::MAX_DESCRIPTION_CHARS
        )));
    }
    let (name, copy) = crate::storage::replica::open(&svc.pool, &svc.repos, repo, true)
        .await
        .map_err(|e| EditError::NotFound(format!("no repository `{repo}`: {e}")))?;
    let role = crate::db::users::role_on(&svc.pool, user, &name)
        .await
        .map_err(|e| EditError::Unavailable(format!("the database is unavailable: {e}")))?;
    let user = User {
        role,
        ..user.clone()
    };
    if user.role == Role::Reader {
        return Err(EditError::Forbidden(format!(
            "{} has read-only access to {name} (role: reader): only writers and admins propose changes",
            user.name
        )));
    }
    let (full_name, email) = identity(&svc.pool, &user.name)
        .await
        .map_err(db)?
        .ok_or_else(|| EditError::Forbidden(format!("there is no user `{}`", user.name)))?;
    // Where the commit goes on top of: an open change of the user's, or the branch.
    let (branch, base_of_change) = base_of(svc, &user, &name, &req).await?;
    let rt = tokio::runtime::Handle::current();
    let svc2 = svc.clone();
    let user2 = user.clone();
    let options = push_options(&title, &message, &req);
    let commit_message = if message.is_empty() {
        format!("{title}\n")
    } else {
        format!("{title}\n\n{}\n", message.trim_end())
    };
    let name2 = name.clone();
    let branch2 = branch.clone();
    let (commit, messages) = tokio::task::spawn_blocking(move || {
        let _reading = crate::maintenance::read_guard(copy.path());
        commit_and_push(
            &svc2,
            &user2,
            rt,
            name2,
            copy,
            &branch2,
            base_of_change,
            &files,
            (&full_name, &email),
            &commit_message,
            &options,
        )
    })
    .await
    .map_err(|e| EditError::Unavailable(format!("the commit failed: {e}")))??;
    let (number, patch_set) = recorded(svc, &name, commit, &messages).await?;
    let path = format!("/changes/{number}?repo={name}");
    let url = match &svc.web_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    };
    let published = if req.publish {
        Some(crate::review::act(svc, &user, &name, number, crate::review::Action::Merge).await)
    } else {
        None
    };
    Ok(Submitted {
        change: number,
        patch_set,
        commit: commit.to_string(),
        branch,
        url,
        published,
        messages,
    })
}

/// The branch a commit of `req` goes to and what it goes on top of: an open change of
/// the user's (its last patch set; the change's target branch), else the branch's tip
/// (`None`).
async fn base_of(
    svc: &crate::review::Service,
    user: &User,
    name: &str,
    req: &ChangeRequest,
) -> Result<(String, Option<ObjectId>), EditError> {
    let db = |e: sqlx::Error| EditError::Unavailable(format!("the database is unavailable: {e}"));
    let mut branch = req
        .branch
        .clone()
        .unwrap_or_else(|| crate::repos::DEFAULT_BRANCH.to_string());
    let base_of_change = match req.change {
        None => None,
        Some(n) => {
            let mut conn = svc.pool.acquire().await.map_err(db)?;
            let change = store::find(&mut conn, name, n)
                .await
                .map_err(db)?
                .ok_or_else(|| EditError::NotFound(format!("there is no change {n} in {name}")))?;
            if change.author != user.name {
                return Err(EditError::Forbidden(format!(
                    "change {n} is {}'s: only its author adds patch sets",
                    change.author
                )));
            }
            if !change.state().is_open() {
                return Err(EditError::BadRequest(format!(
                    "change {n} is {}: open a new change instead",
                    change.state().as_str().to_lowercase()
                )));
            }
            match &req.branch {
                Some(b) if b != &change.target => {
                    return Err(EditError::BadRequest(format!(
                        "change {n} is for `{}`, not `{b}`",
                        change.target
                    )));
                }
                _ => branch = change.target.clone(),
            }
            let sets = store::patch_sets(&mut conn, change.id).await.map_err(db)?;
            let head = sets
                .last()
                .and_then(|p| ObjectId::from_hex(p.commit_sha.as_bytes()).ok())
                .ok_or_else(|| EditError::Unavailable(format!("change {n} has no patch set")))?;
            Some(head)
        }
    };
    Ok((branch, base_of_change))
}

/// The push options that open (or add a patch set to) the change: its title, its
/// description on one line, draft, the change's number.
fn push_options(title: &str, message: &str, req: &ChangeRequest) -> Vec<String> {
    let mut o = vec![format!("title={title}")];
    if !message.is_empty() {
        o.push(format!("description={}", message.replace('\n', "\\n")));
    }
    if req.draft {
        o.push("draft".to_string());
    }
    if let Some(n) = req.change {
        o.push(format!("change={n}"));
    }
    o
}

/// The change and patch set the pushed `commit` was recorded as.
async fn recorded(
    svc: &crate::review::Service,
    name: &str,
    commit: ObjectId,
    messages: &str,
) -> Result<(i32, i32), EditError> {
    let db = |e: sqlx::Error| EditError::Unavailable(format!("the database is unavailable: {e}"));
    let found: Option<(i32, i32)> = sqlx::query!(
        r#"SELECT c.number AS "change", p.number AS "patch_set"
         FROM change_patch_sets p JOIN changes c ON c.id = p.change_id
         WHERE c.repo = $1 AND p.commit_sha = $2 ORDER BY p.created_at DESC LIMIT 1"#,
        name,
        commit.to_string(),
    )
    .fetch_optional(&svc.pool)
    .await
    .map_err(db)?
    .map(|r| (r.change, r.patch_set));
    found.ok_or_else(|| {
        EditError::Unavailable(format!(
            "the change was pushed but is not recorded:\n{messages}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "skills/../secrets.md",
            "skills/./a.md",
            "skills//a.md",
            "skills/.git/config",
            "skills/.GIT/hooks/x",
            "skills\\a.md",
            "skills/a\u{0}.md",
            "skills/a\n.md",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for good in [
            "skills/a.md",
            "skills/deploy/SKILL.md",
            "skills/café/x y.md",
        ] {
            assert!(check_path(good).is_ok(), "{good:?}");
        }
    }

    fn request(files: serde_json::Value) -> ChangeRequest {
        serde_json::from_value(serde_json::json!({ "files": files })).unwrap()
    }

    #[test]
    fn requests_are_checked_before_anything_is_read() {
        use base64::Engine;
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let cases = [
            (serde_json::json!([]), "is empty"),
            (
                serde_json::json!([{"operation": "update", "path": "skills/a.md", "content": b64(b"x")}]),
                "`sha` (the blob id you last read) is required",
            ),
            (
                serde_json::json!([{"operation": "create", "path": "skills/a.md", "content": "***"}]),
                "not base64",
            ),
            (
                serde_json::json!([{"operation": "create", "path": "skills/a.md", "content": b64(b"\x00\x01PNG")}]),
                "binary",
            ),
            (
                serde_json::json!([{"operation": "create", "path": "skills/a.md", "content": b64(&[b'a'; 2000])}]),
                "more than the limit of 1000",
            ),
            (
                serde_json::json!([{"operation": "rename", "path": "skills/a.md", "sha": "0".repeat(40)}]),
                "from_path",
            ),
            (
                serde_json::json!([{"operation": "delete", "path": "skills/a.md", "sha": "0".repeat(40), "content": b64(b"x")}]),
                "a delete has no content",
            ),
            (
                serde_json::json!([
                    {"operation": "create", "path": "skills/a.md", "content": b64(b"x")},
                    {"operation": "create", "path": "skills/a.md", "content": b64(b"y")}
                ]),
                "named by two operations",
            ),
            (
                serde_json::json!([{"operation": "create", "path": "../a.md", "content": b64(b"x")}]),
                "`..`",
            ),
        ];
        for (files, want) in cases {
            let err = decode(&request(files.clone()), 1000)
                .err()
                .unwrap_or_else(|| panic!("{files} was accepted"));
            assert!(
                matches!(err, EditError::BadRequest(_)) && err.to_string().contains(want),
                "{files}: {err}"
            );
        }
        let unknown: Result<ChangeRequest, _> =
            serde_json::from_value(serde_json::json!({"files": [], "sneaky": true}));
        assert!(unknown.is_err());
    }
}
