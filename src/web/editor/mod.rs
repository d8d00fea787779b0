//! Editing skills in the browser, for people who do not use git: `GET
//! /skills/{slug}/edit` and `GET /edit/new` show a form whose fields come from the
//! repository's schema (read from `main`'s tip, as a push reads it), with the Markdown
//! body and a rendered preview; `POST /edit` composes the file ([`draft`]) and hands
//! it to [`crate::edit::submit`] — committed as the user and opened as a change for
//! review, checked like a push — then answers 303 to the change's page; `POST
//! /edit/archive` does the same with the skill's status set to `ARCHIVED`.
//!
//! Without JavaScript the forms work as they are: problems are listed when the form
//! comes back, with the user's text kept. With it (`/static/editor.js`), the form is
//! composed by `POST /edit/preview` (the same code as the submit; the body rendered
//! by [`super::markdown`], raw HTML shown as text) and checked by `POST /api/check`
//! as the user types. A file that changed since the form was opened comes back with
//! "changed since you opened it", the difference, the user's text and the new blob
//! id, so that a second submit goes through deliberately.
//!
//! The forms are CSRF-checked like every form of these pages ([`super::pages`]'s
//! `checked`); readers (and read-only API tokens) are refused with 403 and never see
//! the buttons.

pub mod draft;
mod form;
mod propose;

use super::auth::Viewer;
use super::pages::{checked, encode, unavailable};
use super::{error_page, markdown, page_with_script};
use crate::db::users::{Role, User};
use crate::edit::{self, ChangeRequest, EditError, FileEdit, Operation};
use crate::skills::rules::{Layout, Rules};
use crate::web::HttpState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use draft::{Draft, FieldSpec, Kind};
use form::render;
use maud::{Markup, PreEscaped, html};
use propose::propose;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The editor's script (progressive enhancement: problems and preview as you type).
pub const SCRIPT: &str = include_str!("editor.js");

const BRANCH: &str = crate::repos::DEFAULT_BRANCH;

/// The user a viewer acts as on `repo`, when they may propose changes there: a
/// session that may act (not a read-only API token) of a writer or admin (grants
/// included). Else the page that says why: 401 without a session, 403 for readers.
pub(super) async fn editor_of(
    s: &HttpState,
    viewer: Option<&Viewer>,
    repo: &str,
) -> Result<User, Box<Response>> {
    let Some(v) = viewer else {
        return Err(Box::new(error_page(
            StatusCode::UNAUTHORIZED,
            None,
            "Sign in to edit skills: run `ssh -p PORT git@HOST web-login` and open the link it prints.",
        )));
    };
    if !v.can_write {
        return Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            Some(v),
            "This token only reads: sign in in the browser to edit skills.",
        )));
    }
    let user = User {
        name: v.user.clone(),
        role: v.role,
        key_fingerprint: None,
    };
    let role = match crate::db::users::role_on(&s.pool, &user, repo).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the editor could not read a role");
            return Err(Box::new(error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(v),
                "The database cannot be reached right now; try again in a moment.",
            )));
        }
    };
    if role == Role::Reader {
        return Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            Some(v),
            &format!(
                "{} has read-only access to {repo} (role: reader): only writers and admins propose changes.",
                v.user
            ),
        )));
    }
    Ok(User { role, ..user })
}

/// May `viewer` edit skills of `repo` (the buttons are shown)?
pub(super) async fn may_edit(s: &HttpState, viewer: Option<&Viewer>, repo: &str) -> bool {
    match viewer {
        Some(v) if v.can_write => {
            let user = User {
                name: v.user.clone(),
                role: v.role,
                key_fingerprint: None,
            };
            crate::db::users::role_on(&s.pool, &user, repo)
                .await
                .map(|r| r != Role::Reader)
                .unwrap_or(false)
        }
        _ => false,
    }
}

/// The repository a page or form names (the default one when none).
fn repo_of(v: Option<&String>) -> Result<String, String> {
    super::changes::repo_param(&v.cloned())
        .map(|r| r.unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string()))
}

/// The form's fields under the rules `opened` read: their schema's properties.
fn specs(opened: &edit::Opened) -> Vec<FieldSpec> {
    let builtin = match opened.rules.layout {
        Layout::Flat => crate::skills::rules::FLAT_SCHEMA,
        Layout::AgentSkills => crate::skills::rules::AGENT_SKILLS_SCHEMA,
    };
    draft::fields(
        &opened.rules.schema.document,
        opened.schema_text.as_deref().unwrap_or(builtin),
    )
}

/// A folder that holds skills, for examples (`skills/`).
fn first_root(rules: &Rules) -> String {
    rules
        .roots()
        .iter()
        .find(|r| !r.contains(['*', '?', '[']))
        .cloned()
        .unwrap_or_else(|| "skills/".to_string())
}

/// Where a new skill goes under `rules`, in words with an example.
fn where_skills_go(rules: &Rules) -> String {
    let root = first_root(rules);
    match rules.layout {
        Layout::Flat => format!(
            "a skill here is a Markdown file under {} — for example `{root}<folder>/<slug>.md` (the slug: lowercase a-z, 0-9 and single hyphens; `README.md` is not a skill)",
            rules.roots().join(", ")
        ),
        Layout::AgentSkills => format!(
            "a skill here is a folder under {} with a `SKILL.md` — for example `{root}<name>/SKILL.md` (the name: lowercase a-z, 0-9 and single hyphens)",
            rules.roots().join(", ")
        ),
    }
}

/// One file's problems under `rules`, as JSON (the shape of `POST /api/check`'s);
/// a path that is not a skill file is one problem about the path.
fn check(rules: &Rules, path: &str, content: &str) -> Vec<Value> {
    if !rules.is_skill(path) {
        return vec![json!({
            "path": path,
            "field": "path",
            "level": "error",
            "message": format!("`{path}` is not where a skill goes"),
            "hint": where_skills_go(rules),
        })];
    }
    let problems = match rules.validate(path, content.as_bytes()) {
        Ok(skill) => skill.warnings,
        Err(p) => p,
    };
    problems
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect()
}

/// What to say above the form.
enum Notice {
    /// The file changed since the form was opened: what the user started from, what is
    /// there now (`None`: deleted).
    Stale { was: String, now: Option<String> },
    /// A new skill's path is taken.
    Exists,
    /// Refused, with the reason.
    Refused(String),
}

/// Everything the editor page shows.
struct View<'a> {
    viewer: &'a Viewer,
    repo: &'a str,
    rules: &'a Rules,
    specs: &'a [FieldSpec],
    draft: &'a Draft,
    /// A new skill (its path is asked for).
    new: bool,
    heading: String,
    /// The problems found (`None`: not checked yet).
    problems: Option<Vec<Value>>,
    notice: Option<Notice>,
}

#[derive(Deserialize, Default)]
pub struct RepoQuery {
    repo: Option<String>,
}

/// `GET /skills/{slug}/edit`: the skill's file at `main`'s tip in the form.
pub async fn edit_page(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Path(slug): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Response {
    let v = viewer.as_ref();
    let repo = match repo_of(q.repo.as_ref()) {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::NOT_FOUND, v, &e),
    };
    if let Err(refused) = editor_of(&s, v, &repo).await {
        return *refused;
    }
    let v = v.expect("editor_of needs a viewer");
    let found: Result<Option<(String, String)>, _> = sqlx::query!(
        "SELECT path, title FROM skills WHERE repo = $1 AND slug = $2",
        repo,
        slug
    )
    .fetch_optional(&s.pool)
    .await
    .map(|r| r.map(|r| (r.path, r.title)));
    let (path, title) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                Some(v),
                &format!("No skill `{slug}` in {repo}."),
            );
        }
        Err(e) => return unavailable(e),
    };
    let opened = match edit::open_file(&s.pool, &s.repos, &repo, BRANCH, Some(&path), None).await {
        Ok(o) => o,
        Err(e) => return edit_error_page(v, e),
    };
    let Some((sha, text)) = &opened.file else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(v),
            &format!(
                "`{path}` is not on {BRANCH} any more (it was moved or deleted); reload the skills."
            ),
        );
    };
    let specs = specs(&opened);
    let draft = Draft::from_file(&specs, &path, sha, text);
    let problems = check(&opened.rules, &path, text);
    render(
        View {
            viewer: v,
            repo: &opened.repo,
            rules: &opened.rules,
            specs: &specs,
            draft: &draft,
            new: false,
            heading: format!("Edit {title}"),
            problems: Some(problems),
            notice: None,
        },
        StatusCode::OK,
    )
}

/// `GET /edit/new`: an empty form for a new skill, its path asked for.
pub async fn new_page(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Query(q): Query<RepoQuery>,
) -> Response {
    let v = viewer.as_ref();
    let repo = match repo_of(q.repo.as_ref()) {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::NOT_FOUND, v, &e),
    };
    if let Err(refused) = editor_of(&s, v, &repo).await {
        return *refused;
    }
    let v = v.expect("editor_of needs a viewer");
    let opened = match edit::open_file(&s.pool, &s.repos, &repo, BRANCH, None, None).await {
        Ok(o) => o,
        Err(e) => return edit_error_page(v, e),
    };
    let specs = specs(&opened);
    let draft = Draft {
        path: first_root(&opened.rules),
        ..Draft::default()
    };
    render(
        View {
            viewer: v,
            repo: &opened.repo,
            rules: &opened.rules,
            specs: &specs,
            draft: &draft,
            new: true,
            heading: "New skill".into(),
            problems: None,
            notice: None,
        },
        StatusCode::OK,
    )
}

/// An [`EditError`] as a page (when there is no form to show it in).
fn edit_error_page(v: &Viewer, e: EditError) -> Response {
    let status = match &e {
        EditError::BadRequest(_) => StatusCode::BAD_REQUEST,
        EditError::Forbidden(_) => StatusCode::FORBIDDEN,
        EditError::NotFound(_) => StatusCode::NOT_FOUND,
        EditError::Stale { .. } => StatusCode::CONFLICT,
        EditError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        EditError::Unavailable(_) | EditError::Git(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error_page(status, Some(v), &e.to_string())
}

/// `POST /edit`: the form composed into the file and proposed (a new file when it
/// has no `sha`).
pub async fn save(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let (draft, rest) = Draft::from_form(pairs);
    let v = match checked(&viewer, rest.get("csrf").map(String::as_str).unwrap_or("")) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let repo = match repo_of(rest.get("repo")) {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::NOT_FOUND, Some(v), &e),
    };
    let user = match editor_of(&s, Some(v), &repo).await {
        Ok(u) => u,
        Err(refused) => return *refused,
    };
    let new = draft.sha.is_empty();
    propose(&s, v, &user, &repo, draft, new).await
}

#[derive(Deserialize)]
pub struct ArchiveForm {
    #[serde(default)]
    csrf: String,
    repo: Option<String>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    sha: String,
}

/// `POST /edit/archive` (`path`, `sha`: the blob the page showed): the skill with its
/// status set to `ARCHIVED` (`metadata.status` in the Agent Skills layout), proposed
/// like an edit.
pub async fn archive(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Form(form): Form<ArchiveForm>,
) -> Response {
    let v = match checked(&viewer, &form.csrf) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let repo = match repo_of(form.repo.as_ref()) {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::NOT_FOUND, Some(v), &e),
    };
    let user = match editor_of(&s, Some(v), &repo).await {
        Ok(u) => u,
        Err(refused) => return *refused,
    };
    if form.sha.trim().is_empty() {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(v),
            "The form names no version of the skill (`sha`); reload the page.",
        );
    }
    let opened = match edit::open_file(
        &s.pool,
        &s.repos,
        &repo,
        BRANCH,
        Some(&form.path),
        Some(&form.sha),
    )
    .await
    {
        Ok(o) => o,
        Err(e) => return edit_error_page(v, e),
    };
    let Some(text) = &opened.earlier else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(v),
            &format!("{repo} has no version {} of `{}`.", form.sha, form.path),
        );
    };
    let specs = specs(&opened);
    let mut draft = Draft::from_file(&specs, &form.path, form.sha.trim(), text);
    let doc = crate::skills::frontmatter::parse(text).ok();
    match opened.rules.layout {
        Layout::Flat if specs.iter().any(|s| s.key == "status") => draft.set("status", "ARCHIVED"),
        Layout::Flat => draft.set_raw("status", "ARCHIVED"),
        Layout::AgentSkills => draft.set_nested(
            "metadata",
            doc.as_ref()
                .and_then(|d| d.get("metadata"))
                .map(|f| &f.value),
            "status",
            "ARCHIVED",
        ),
    }
    let title = doc
        .as_ref()
        .and_then(|d| d.get("title").or_else(|| d.get("name")))
        .and_then(|f| f.value.as_str())
        .unwrap_or(&form.path)
        .to_string();
    draft.summary = format!("Archive {title}");
    propose(&s, v, &user, &repo, draft, false).await
}

/// `POST /edit/preview` (the editor's form): the file it composes and its body
/// rendered (`{repo, path, content, html}`), for the script; no side effects.
pub async fn preview(
    State(s): State<Arc<HttpState>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let (draft, rest) = Draft::from_form(pairs);
    let repo = match repo_of(rest.get("repo")) {
        Ok(r) => r,
        Err(e) => return crate::web::api::answers::Error::response(StatusCode::NOT_FOUND, e),
    };
    let opened = match edit::open_file(&s.pool, &s.repos, &repo, BRANCH, None, None).await {
        Ok(o) => o,
        Err(e) => return super::contents::edit_error(e),
    };
    let content = draft.compose(&specs(&opened));
    let mut problems = Vec::new();
    if let Err(why) = edit::check_path(&draft.path) {
        problems
            .push(json!({"path": draft.path, "field": "path", "level": "error", "message": why}));
    } else if !opened.rules.is_skill(&draft.path) {
        problems = check(&opened.rules, &draft.path, &content);
    }
    Json(Preview {
        repo: opened.repo,
        html: markdown::render(&draft.body),
        path: draft.path,
        content,
        problems,
    })
    .into_response()
}

/// `POST /edit/preview`'s answer.
#[derive(serde::Serialize)]
struct Preview {
    repo: String,
    path: String,
    content: String,
    /// The body rendered.
    html: String,
    /// Problems with the path itself (the content is checked by `/api/check`), in the
    /// shape of that answer's.
    problems: Vec<Value>,
}

/// `/static/editor.js`.
pub async fn script() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// The buttons a skill's page shows a viewer who may edit: Edit, and Archive (unless
/// archived already) for blob `sha` of `path`.
pub(super) fn skill_buttons(
    v: &Viewer,
    repo: &str,
    slug: &str,
    path: &str,
    sha: &str,
    archived: bool,
) -> Markup {
    html! {
        div class="buttons" id="skill-actions" {
            a class="button" id="edit" href={"/skills/" (encode(slug)) "/edit?repo=" (encode(repo))} { "Edit" }
            @if !archived {
                form class="inline" method="post" action="/edit/archive" id="archive-form" {
                    input type="hidden" name="csrf" value=(v.csrf);
                    input type="hidden" name="repo" value=(repo);
                    input type="hidden" name="path" value=(path);
                    input type="hidden" name="sha" value=(sha);
                    button class="secondary" type="submit" id="archive" { "Archive" }
                }
            }
        }
    }
}

/// The skills list's button for a viewer who may edit.
pub(super) fn new_button(repo: &str) -> Markup {
    html! {
        div class="buttons" { a class="button" id="new-skill" href={"/edit/new?repo=" (encode(repo))} { "New skill" } }
    }
}
