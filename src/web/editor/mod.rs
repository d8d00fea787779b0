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
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use serde_json::{json, Value};
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

/// A problem as a list item: `line N · field: message`, its hint, its check.
fn problem_item(p: &Value) -> Markup {
    let level = p["level"].as_str().unwrap_or("error");
    html! {
        li class={"problem " (level)} data-field=(p["field"].as_str().unwrap_or("")) data-level=(level) {
            span class="where" {
                @if let Some(l) = p["line"].as_u64() { "line " (l) }
                @if let Some(f) = p["field"].as_str() { @if p["line"].is_u64() { " · " } code { (f) } }
            }
            " " span class="message" { (p["message"].as_str().unwrap_or("")) }
            @if let Some(c) = p["check"].as_str() { " " span class="muted check" { "[" (c) "]" } }
            @if let Some(h) = p["hint"].as_str() { div class="hint muted" { "hint: " (h) } }
        }
    }
}

fn field_markup(spec: &FieldSpec, value: &str) -> Markup {
    let id = format!("f-{}", spec.key);
    let name = format!("f.{}", spec.key);
    html! {
        div class="field" {
            label for=(id) {
                (spec.key)
                @if spec.required { " " span class="req" title="required" { "*" } }
                @if spec.kind == Kind::List { " " span class="muted" { "(comma-separated)" } }
            }
            @match &spec.kind {
                Kind::Text { long: true } => {
                    textarea id=(id) name=(name) rows="3" { "\n" (value) }
                },
                Kind::Choice(values) => {
                    select id=(id) name=(name) {
                        option value="" selected[value.is_empty()] { "— not set" }
                        @for v in values { option value=(v) selected[value == v] { (v) } }
                        @if !value.is_empty() && !values.iter().any(|v| v == value) {
                            option value=(value) selected { (value) " (not allowed)" }
                        }
                    }
                },
                Kind::Bool => {
                    select id=(id) name=(name) {
                        option value="" selected[value.is_empty()] { "— not set" }
                        option value="true" selected[value == "true"] { "true" }
                        option value="false" selected[value == "false"] { "false" }
                    }
                },
                Kind::Number => { input type="text" inputmode="decimal" id=(id) name=(name) value=(value); },
                _ => { input type="text" id=(id) name=(name) value=(value); },
            }
            @if let Some(h) = &spec.hint { div class="hint muted" { (h) } }
        }
    }
}

fn render(view: View<'_>, status: StatusCode) -> Response {
    let d = view.draft;
    let keys = serde_json::to_string(&d.keys).unwrap_or_else(|_| "[]".into());
    let root = first_root(view.rules);
    let example = match view.rules.layout {
        Layout::Flat => format!("{root}<folder>/<slug>.md"),
        Layout::AgentSkills => format!("{root}<name>/{}", crate::skills::rules::SKILL_FILE),
    };
    let errors = view.problems.as_ref().map_or(0, |p| {
        p.iter()
            .filter(|p| p["level"].as_str() != Some("warning"))
            .count()
    });
    let markup = html! {
        h1 { (view.heading) }
        p class="muted" id="editor-note" {
            "Saving proposes a change to " code { (BRANCH) } " of " (view.repo)
            ", committed as you; it is published when the change is merged after review."
        }
        @match &view.notice {
            Some(Notice::Stale { was, now }) => {
                div class="notice warn" id="stale" {
                    @match now {
                        Some(_) => {
                            p { strong { code { (d.path) } " changed since you opened it." }
                                " Someone else's change was published meanwhile. Below is what changed between the version you started from and the one there now; "
                                "your text is kept in the form. Compare, adjust, and save again to propose your version over the new one." }
                        },
                        None => {
                            p { strong { code { (d.path) } " was deleted since you opened it." }
                                " Your text is kept: saving again proposes it as a new file." }
                        },
                    }
                    (super::changes::diff_markup("stale-diff", &super::changes::removed_first(
                        crate::review::diff_lines(was, now.as_deref().unwrap_or("")))))
                }
            },
            Some(Notice::Exists) => {
                p class="notice bad" id="refused" {
                    code { (d.path) } " exists already: choose another path, or edit that skill."
                }
            },
            Some(Notice::Refused(why)) => p class="notice bad text" id="refused" { (why) },
            None => {},
        }
        form class="editor" id="editor" method="post" action="/edit" data-repo=(view.repo) {
            input type="hidden" name="csrf" value=(view.viewer.csrf);
            input type="hidden" name="repo" value=(view.repo);
            input type="hidden" name="sha" value=(d.sha);
            input type="hidden" name="keys" value=(keys);
            div class="editor-grid" {
                div class="editor-fields" {
                    @if view.new {
                        div class="field" {
                            label for="path" { "path " span class="req" title="required" { "*" } }
                            input type="text" id="path" name="path" value=(d.path) placeholder=(example) required;
                            div class="hint muted" { (where_skills_go(view.rules)) }
                        }
                    } @else {
                        input type="hidden" name="path" value=(d.path);
                        p { "File: " code id="path-shown" { (d.path) } }
                    }
                    @for spec in view.specs {
                        (field_markup(spec, d.values.get(&spec.key).map(String::as_str).unwrap_or("")))
                    }
                    details class="field" id="other-fields" open[!d.other.trim().is_empty()] {
                        summary { "More frontmatter (YAML)" }
                        div class="hint muted" { "Keys the form has no field for, kept as written." }
                        textarea id="other" name="other" rows="4" spellcheck="false" { "\n" (d.other) }
                    }
                    div class="field" {
                        label for="body" { "Body " span class="muted" { "(Markdown)" } }
                        textarea id="body" name="body" rows="18" { "\n" (d.body) }
                    }
                    fieldset class="change" {
                        legend { "Your change" }
                        div class="field" {
                            label for="summary" { "Title " span class="muted" { "(optional)" } }
                            input type="text" id="summary" name="summary" value=(d.summary)
                                maxlength=(crate::review::open::MAX_TITLE_CHARS)
                                placeholder=(if view.new { format!("Add {}", if d.path.is_empty() { example.as_str() } else { d.path.as_str() }) } else { format!("Update {}", d.path) });
                        }
                        div class="field" {
                            label for="message" { "Why " span class="muted" { "(optional, for the reviewers)" } }
                            textarea id="message" name="message" rows="2" { "\n" (d.message) }
                        }
                    }
                    div class="buttons" {
                        button type="submit" id="save" { "Propose change" }
                        @if !view.new {
                            a href={"/skills/" (encode(&view.rules.key_of(&d.path))) "?repo=" (encode(view.repo))} class="cancel" { "Cancel" }
                        }
                    }
                }
                aside class="editor-live" id="live-check" {
                    h2 { "Problems" }
                    p class="muted" id="check-status" {
                        @match &view.problems {
                            None => "Checked when you save (and as you type, with JavaScript on).",
                            Some(p) if p.is_empty() => "No problems.",
                            Some(p) => { (errors) " error" @if errors != 1 { "s" } ", " (p.len() - errors) " warning" @if p.len() - errors != 1 { "s" } }
                        }
                    }
                    ul class="problems" id="problems" {
                        @for p in view.problems.iter().flatten() { (problem_item(p)) }
                    }
                    h2 { "Preview" }
                    div class="body preview" id="preview" { (PreEscaped(markdown::render(&d.body))) }
                }
            }
        }
    };
    let mut response = page_with_script(
        &view.heading,
        Some(view.viewer),
        "/static/editor.js",
        markup,
    );
    *response.status_mut() = status;
    response
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
            )
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
            &format!("`{path}` is not on {BRANCH} any more (it was moved or deleted); reload the skills."),
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
        EditError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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

/// `draft` composed and submitted as `user`: 303 to the change's page, or the form
/// again with the problems, the conflict or the refusal.
async fn propose(
    s: &HttpState,
    v: &Viewer,
    user: &User,
    repo: &str,
    mut draft: Draft,
    new: bool,
) -> Response {
    // The rules the file is composed and checked with: the tip's.
    let path_ok = edit::check_path(&draft.path);
    let opened = match edit::open_file(
        &s.pool,
        &s.repos,
        repo,
        BRANCH,
        path_ok.is_ok().then_some(draft.path.as_str()),
        None,
    )
    .await
    {
        Ok(o) => o,
        Err(e) => return edit_error_page(v, e),
    };
    let specs = specs(&opened);
    let heading = if new {
        "New skill".to_string()
    } else {
        let title = ["title", "name"]
            .iter()
            .find_map(|k| draft.values.get(*k).filter(|t| !t.trim().is_empty()));
        format!("Edit {}", title.unwrap_or(&draft.path))
    };
    let again = |draft: &Draft, problems: Option<Vec<Value>>, notice: Option<Notice>, status| {
        render(
            View {
                viewer: v,
                repo: &opened.repo,
                rules: &opened.rules,
                specs: &specs,
                draft,
                new,
                heading: heading.clone(),
                problems,
                notice,
            },
            status,
        )
    };
    if let Err(why) = path_ok {
        return again(
            &draft,
            None,
            Some(Notice::Refused(why)),
            StatusCode::BAD_REQUEST,
        );
    }
    let content = draft.compose(&specs);
    if new && !opened.rules.is_skill(&draft.path) {
        let problems = check(&opened.rules, &draft.path, &content);
        return again(
            &draft,
            Some(problems),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    use base64::Engine;
    let request = ChangeRequest {
        title: Some(draft.summary.clone()).filter(|t| !t.is_empty()),
        message: Some(draft.message.clone()).filter(|m| !m.is_empty()),
        branch: None,
        change: None,
        draft: false,
        publish: false,
        files: vec![FileEdit {
            operation: if new {
                Operation::Create
            } else {
                Operation::Update
            },
            path: draft.path.clone(),
            from_path: None,
            content: Some(base64::engine::general_purpose::STANDARD.encode(content.as_bytes())),
            sha: (!new).then(|| draft.sha.clone()),
        }],
    };
    match edit::submit(&s.review, user, repo, request).await {
        Ok(done) => {
            tracing::info!(repo = %repo, change = done.change, user = %v.user, path = %draft.path, "a change proposed from the editor");
            Redirect::to(&format!("/changes/{}?repo={}", done.change, encode(repo))).into_response()
        }
        Err(EditError::Stale { path, .. }) if new && !path.is_empty() => {
            again(&draft, None, Some(Notice::Exists), StatusCode::CONFLICT)
        }
        Err(EditError::Stale { path, message, .. }) if path.is_empty() => again(
            &draft,
            None,
            Some(Notice::Refused(message)),
            StatusCode::CONFLICT,
        ),
        Err(EditError::Stale { .. }) => {
            // What the user started from, and what is there now.
            let fresh = match edit::open_file(
                &s.pool,
                &s.repos,
                repo,
                BRANCH,
                Some(&draft.path),
                Some(&draft.sha),
            )
            .await
            {
                Ok(o) => o,
                Err(e) => return edit_error_page(v, e),
            };
            let was = fresh.earlier.unwrap_or_default();
            let (sha, now) = match fresh.file {
                Some((sha, text)) => (sha, Some(text)),
                None => (String::new(), None),
            };
            draft.sha = sha;
            // A deleted file is proposed as a new one on the next save.
            let new_now = draft.sha.is_empty();
            let problems = check(&opened.rules, &draft.path, &content);
            render(
                View {
                    viewer: v,
                    repo: &opened.repo,
                    rules: &opened.rules,
                    specs: &specs,
                    draft: &draft,
                    new: new_now && new,
                    heading: heading.clone(),
                    problems: Some(problems),
                    notice: Some(Notice::Stale { was, now }),
                },
                StatusCode::CONFLICT,
            )
        }
        Err(EditError::Invalid { problems, message }) => {
            if problems.is_empty() {
                again(
                    &draft,
                    None,
                    Some(Notice::Refused(message)),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
            } else {
                let problems = problems
                    .iter()
                    .filter_map(|p| serde_json::to_value(p).ok())
                    .collect();
                again(
                    &draft,
                    Some(problems),
                    Some(Notice::Refused(format!(
                        "Not saved: {message}. Fix the problems listed and save again."
                    ))),
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
            }
        }
        Err(EditError::BadRequest(m)) => again(
            &draft,
            None,
            Some(Notice::Refused(m)),
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => edit_error_page(v, e),
    }
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
        Err(e) => return (StatusCode::NOT_FOUND, Json(json!({ "error": e }))).into_response(),
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
    Json(json!({
        "repo": opened.repo,
        "path": draft.path,
        "content": content,
        "html": markdown::render(&draft.body),
        // Problems with the path itself (the content is checked by /api/check).
        "problems": problems,
    }))
    .into_response()
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
