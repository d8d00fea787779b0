//! The changes under review, in the browser: `/changes` (filtered by state),
//! `/changes/{n}` (the change, what it still needs, each proposed skill's fields and
//! body as a diff) and `POST /changes/{n}/review` (approve, reject, mark ready,
//! abandon, merge — through [`crate::review::act`], so the rules are the SSH
//! commands' exactly). Also what the JSON API shares with these pages: the list with
//! its total, a change with everything about it, the frontmatter fields that differ,
//! and the skills open changes propose (`GET /api/skills?status=IN_REVIEW`).
//!
//! Everything shown comes from pushers and is escaped by maud: a proposed body is
//! shown as lines of text, never rendered as HTML or Markdown.

use super::auth::Viewer;
use super::pages::{PAGE_SIZE, checked, encode, given, problem_line, short, unavailable, when};
use super::{SkillsQuery, error_page, page};
use crate::db::users::{Role, User};
use crate::review::store::{self, Change, ChangeSkill, PatchSet, ReviewRow};
use crate::review::{ChangeState, LineKind};
use crate::web::HttpState;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;

mod page;

use page::change_markup;
pub(super) use page::diff_markup;

/// A change in a list, with how many patch sets it has.
#[derive(Debug, Clone)]
pub struct Listed {
    pub change: Change,
    pub patch_sets: i64,
}

/// The changes of `repo` (every repository: `None`) in `states` (all: empty), the most
/// recently updated first, one page of them, and how many there are in all.
pub async fn list(
    pool: &PgPool,
    repo: Option<&str>,
    states: &[&str],
    limit: i64,
    offset: i64,
) -> sqlx::Result<(i64, Vec<Listed>)> {
    let states: Vec<String> = states.iter().map(|s| s.to_string()).collect();
    let total: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM changes
         WHERE ($1::text IS NULL OR repo = $1) AND (cardinality($2::text[]) = 0 OR state = ANY($2))"#,
        repo,
        &states,
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query!(
        r#"SELECT c.id, c.repo, c.number, c.target, c.author, c.title, c.description, c.topic,
                c.state, c.created_at, c.updated_at, c.closed_by, c.closed_at, c.merged_commit,
                (SELECT count(*) FROM change_patch_sets p WHERE p.change_id = c.id) AS "patch_sets!"
         FROM changes c
         WHERE ($1::text IS NULL OR c.repo = $1) AND (cardinality($2::text[]) = 0 OR c.state = ANY($2))
         ORDER BY c.updated_at DESC, c.id DESC LIMIT $3 OFFSET $4"#,
        repo,
        &states,
        limit,
        offset,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| Listed {
        change: Change {
            id: r.id,
            repo: r.repo,
            number: r.number,
            target: r.target,
            author: r.author,
            title: r.title,
            description: r.description,
            topic: r.topic,
            state: r.state,
            created_at: r.created_at,
            updated_at: r.updated_at,
            closed_by: r.closed_by,
            closed_at: r.closed_at,
            merged_commit: r.merged_commit,
        },
        patch_sets: r.patch_sets,
    })
    .collect();
    Ok((total, rows))
}

/// A change with everything about it.
#[derive(Debug, Clone)]
pub struct Detail {
    pub change: Change,
    pub patch_sets: Vec<PatchSet>,
    pub reviews: Vec<ReviewRow>,
    pub skills: Vec<ChangeSkill>,
    /// What an open change still needs to be merged (empty: mergeable), or why that
    /// cannot be told; `None` for a closed change.
    pub needs: Option<Result<Vec<String>, String>>,
}

impl Detail {
    /// Open, and nothing missing.
    pub fn mergeable(&self) -> bool {
        matches!(&self.needs, Some(Ok(n)) if n.is_empty())
    }
}

/// Change `number` of `repo`, or `None`.
pub async fn load(
    svc: &crate::review::Service,
    repo: &str,
    number: i32,
) -> sqlx::Result<Option<Detail>> {
    let mut conn = svc.pool.acquire().await?;
    let Some(change) = store::find(&mut conn, repo, number).await? else {
        return Ok(None);
    };
    let patch_sets = store::patch_sets(&mut conn, change.id).await?;
    let reviews = store::reviews(&mut conn, change.id).await?;
    let skills = store::skills(&mut conn, change.id).await?;
    drop(conn);
    let needs = if change.state().is_open() {
        Some(crate::review::readiness(svc, &change, &reviews).await)
    } else {
        None
    };
    Ok(Some(Detail {
        change,
        patch_sets,
        reviews,
        skills,
        needs,
    }))
}

/// A frontmatter field whose value differs between the skill's old and new version
/// (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldChange<'a> {
    pub name: &'a str,
    pub old: Option<&'a Value>,
    pub new: Option<&'a Value>,
}

/// The frontmatter fields a proposed skill changes, by name (a new skill: every
/// field, a deleted one: every old field).
pub fn fields(skill: &ChangeSkill) -> Vec<FieldChange<'_>> {
    let (old, new) = (
        skill.old_frontmatter.as_ref().and_then(Value::as_object),
        skill.frontmatter.as_ref().and_then(Value::as_object),
    );
    let mut names: Vec<&String> = old
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(new.into_iter().flat_map(|m| m.keys()))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let o = old.and_then(|m| m.get(name));
            let n = new.and_then(|m| m.get(name));
            (o != n).then_some(FieldChange {
                name,
                old: o,
                new: n,
            })
        })
        .collect()
}

/// The word for a diff line's kind in the JSON API.
pub fn kind_word(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Same => "same",
        LineKind::Added => "added",
        LineKind::Removed => "removed",
    }
}

/// The body of a proposed skill as a line diff against its old version, each run of
/// changed lines read as a diff reads: its removed lines, then its added ones.
pub fn body_diff(skill: &ChangeSkill) -> Vec<(LineKind, &str)> {
    removed_first(crate::review::diff_lines(
        skill.old_body.as_deref().unwrap_or(""),
        skill.body.as_deref().unwrap_or(""),
    ))
}

/// Within each run of changed lines (between unchanged ones), the removed lines first,
/// then the added ones, each in their order: the same diff, in the usual reading order.
pub(super) fn removed_first(lines: Vec<(LineKind, &str)>) -> Vec<(LineKind, &str)> {
    let mut out = Vec::with_capacity(lines.len());
    let mut added = Vec::new();
    for (kind, line) in lines {
        match kind {
            LineKind::Added => added.push((kind, line)),
            LineKind::Removed => out.push((kind, line)),
            LineKind::Same => {
                out.append(&mut added);
                out.push((kind, line));
            }
        }
    }
    out.append(&mut added);
    out
}

/// `IN_REVIEW` or `DRAFT` (any case): a `status` answered from the changes rather
/// than the published cache.
pub fn proposal_state(status: Option<&str>) -> Option<&'static str> {
    let status = status?.trim();
    [ChangeState::InReview, ChangeState::Draft]
        .into_iter()
        .map(ChangeState::as_str)
        .find(|s| s.eq_ignore_ascii_case(status))
}

/// The skills the changes of `q`'s repository in `state` propose (deletions left out),
/// with `q`'s search and filters (`category`, `owner` and `tag` read from the
/// proposed frontmatter), one page of them, and how many match in all. Each row has
/// the skill's `slug`, `path`, `old_path`, `title`, `description`, `operation`,
/// `warnings` (a count) and its change's `number`, `change_title`, `author`, `state`.
pub async fn proposed(
    pool: &PgPool,
    q: &SkillsQuery,
    state: &str,
) -> sqlx::Result<(i64, Vec<Proposed>)> {
    let repo = given(&q.repo).unwrap_or(crate::repos::DEFAULT_REPO);
    let page_no = q.page.unwrap_or(1).clamp(1, super::pages::MAX_PAGE);
    let limit = q.limit.unwrap_or(PAGE_SIZE).clamp(1, 200);
    let rows = sqlx::query_as!(
        Proposed,
        r#"SELECT s.slug, s.path, s.old_path, coalesce(s.title, s.slug) AS "title!", s.description,
                s.operation, jsonb_array_length(s.warnings) AS "warnings!",
                c.number, c.title AS change_title, c.author, c.state,
                count(*) OVER () AS "total!",
                CASE WHEN $3::text IS NULL THEN 0::real
                     ELSE ts_rank(v.search, websearch_to_tsquery('simple', $3)) END AS "rank!"
         FROM change_skills s
         JOIN changes c ON c.id = s.change_id
         CROSS JOIN LATERAL (
             SELECT skills_search_vector(
                 s.title, s.description,
                 ARRAY(SELECT jsonb_array_elements_text(
                     CASE WHEN jsonb_typeof(s.frontmatter -> 'tags') = 'array'
                          THEN s.frontmatter -> 'tags' ELSE '[]'::jsonb END)),
                 s.body) AS search
         ) v
         WHERE c.repo = $1 AND c.state = $2 AND s.operation <> 'delete'
           AND ($3::text IS NULL OR v.search @@ websearch_to_tsquery('simple', $3))
           AND ($4::text IS NULL OR s.frontmatter ->> 'category' = $4)
           AND ($5::text IS NULL OR s.frontmatter ->> 'owner' = $5)
           AND ($6::text IS NULL OR (jsonb_typeof(s.frontmatter -> 'tags') = 'array'
                                     AND s.frontmatter -> 'tags' @> jsonb_build_array($6::text)))
         ORDER BY "rank!" DESC, c.updated_at DESC, c.number DESC, s.slug, s.path
         LIMIT $7 OFFSET $8"#,
        repo,
        state,
        given(&q.q),
        given(&q.category),
        given(&q.owner),
        given(&q.tag),
        limit,
        (page_no - 1) * limit,
    )
    .fetch_all(pool)
    .await?;
    let total = rows.first().map_or(0, |r| r.total);
    Ok((total, rows))
}

/// A skill a change proposes, with its change, as [`proposed`] finds it.
#[derive(Debug, Clone)]
pub struct Proposed {
    pub slug: String,
    pub path: String,
    pub old_path: Option<String>,
    /// Its title, or its slug when it has none.
    pub title: String,
    pub description: Option<String>,
    pub operation: String,
    pub warnings: i32,
    pub number: i32,
    pub change_title: String,
    pub author: String,
    /// The change's state.
    pub state: String,
    /// How many match in all (every row says it).
    pub total: i64,
    pub rank: f32,
}

/// `/skills?status=IN_REVIEW|DRAFT`: the skills changes in `state` propose (rows of
/// [`proposed`]), each linked to its change.
pub(super) fn proposed_table(repo: &str, state: &str, rows: &[Proposed]) -> Markup {
    html! {
        p class="muted" id="proposed-note" {
            "Skills proposed by changes that are " (state_badge(state)) ", not published yet; "
            a href={"/changes?state=" (encode(&state.to_ascii_lowercase().replace('_', "-"))) "&repo=" (encode(repo))} { "their changes" } "."
        }
        table id="skills" {
            thead { tr { th { "title" } th class="hide-small" { "slug" } th { "operation" } th { "change" } th class="hide-small" { "author" } th { "" } } }
            tbody {
                @for r in rows {
                    @let (number, warnings) = (r.number, r.warnings);
                    @let link = change_link(repo, number);
                    tr data-change=(number) {
                        td { a href={(link) "#skill-" (r.slug)} { (r.title) } }
                        td class="hide-small" { code { (r.slug) } }
                        td { (r.operation) }
                        td { a href=(link) { "#" (number) " " (r.change_title) } }
                        td class="hide-small" { (r.author) }
                        td { @if warnings > 0 { span class="badge warn" { (warnings) " warning" @if warnings != 1 { "s" } } } }
                    }
                }
            }
        }
    }
}

pub use crate::cache::query::repo_param;

/// The change number in a path, when it is one.
pub fn number_param(n: &str) -> Option<i32> {
    n.trim_start_matches('#')
        .parse::<i32>()
        .ok()
        .filter(|n| *n > 0)
}

// ---------------------------------------------------------------------------------
// The pages.

/// The words a `?state=` filter takes, as the page's links offer them.
const FILTERS: [(&str, &str); 7] = [
    ("open", "open"),
    ("draft", "draft"),
    ("in-review", "in review"),
    ("merged", "merged"),
    ("abandoned", "abandoned"),
    ("closed", "closed"),
    ("all", "all"),
];

fn state_badge(state: &str) -> Markup {
    let (class, text) = match state {
        "DRAFT" => ("muted", "draft"),
        "IN_REVIEW" => ("warn", "in review"),
        "MERGED" => ("ok", "merged"),
        "ABANDONED" => ("bad", "abandoned"),
        other => ("muted", other),
    };
    html! { span class={"badge state " (class)} data-state=(state) { (text) } }
}

/// `/changes/{n}` with its `?repo=` (left out for the default repository).
fn change_link(repo: &str, number: i32) -> String {
    if repo == crate::repos::DEFAULT_REPO {
        format!("/changes/{number}")
    } else {
        format!("/changes/{number}?repo={}", encode(repo))
    }
}

#[derive(Deserialize, Default)]
pub struct ChangesQuery {
    state: Option<String>,
    repo: Option<String>,
    page: Option<i64>,
}

/// `/changes`: the changes, newest activity first, filtered by state (open by
/// default) and repository.
pub async fn changes(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Query(q): Query<ChangesQuery>,
) -> Response {
    let v = viewer.as_ref();
    let filter = given(&q.state).map(str::to_ascii_lowercase);
    let Some(states) = crate::review::states_filter(filter.as_deref()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            v,
            "state must be one of: open, draft, in-review, merged, abandoned, closed, all",
        );
    };
    let repo = match repo_param(&q.repo) {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::NOT_FOUND, v, &e),
    };
    let page_no = q.page.unwrap_or(1);
    if !(1..=super::pages::MAX_PAGE).contains(&page_no) {
        return error_page(
            StatusCode::BAD_REQUEST,
            v,
            &format!("page must be between 1 and {}", super::pages::MAX_PAGE),
        );
    }
    let (total, rows) = match list(
        &s.pool,
        repo.as_deref(),
        &states,
        PAGE_SIZE,
        (page_no - 1) * PAGE_SIZE,
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return unavailable(e),
    };
    let current = filter.unwrap_or_else(|| "open".into());
    let link = |state: &str, page: i64| {
        let mut parts = vec![format!("state={}", encode(state))];
        if let Some(r) = &repo {
            parts.push(format!("repo={}", encode(r)));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        format!("/changes?{}", parts.join("&"))
    };
    let body = html! {
        h1 { "Changes" @if let Some(r) = &repo { " of " (r) } }
        p class="filters" id="state-filter" {
            "Show: "
            @for (i, (word, label)) in FILTERS.iter().enumerate() {
                @if i > 0 { " · " }
                @if current.replace('_', "-") == *word { strong { (label) } }
                @else { a href=(link(word, 1)) { (label) } }
            }
        }
        p class="muted" id="result-count" { (total) " change" @if total != 1 { "s" } }
        @if rows.is_empty() {
            p id="empty" {
                @if current == "open" { "No open changes. " } @else { "No changes here. " }
                span class="muted" { "Propose one with " code { "git push origin HEAD:refs/for/main" } "." }
            }
        } @else {
            table id="changes" {
                thead { tr { th { "#" } th { "title" } th { "author" } th class="hide-small" { "target" } th class="hide-small" { "repository" } th { "state" } th class="hide-small" { "patch sets" } th { "updated" } } }
                tbody {
                    @for l in &rows {
                        @let c = &l.change;
                        tr data-number=(c.number) {
                            td { a href=(change_link(&c.repo, c.number)) { (c.number) } }
                            td { a href=(change_link(&c.repo, c.number)) { (c.title) } }
                            td { (c.author) }
                            td class="hide-small" { code { (c.target) } }
                            td class="hide-small" { (c.repo) }
                            td { (state_badge(&c.state)) }
                            td class="hide-small" { (l.patch_sets) }
                            td class="nowrap" { (c.updated_at.format("%Y-%m-%d %H:%M")) }
                        }
                    }
                }
            }
        }
        div class="pages" {
            @if page_no > 1 { a href=(link(&current, page_no - 1)) rel="prev" { "← previous" } }
            @if page_no * PAGE_SIZE < total { a href=(link(&current, page_no + 1)) rel="next" { "next →" } }
        }
    };
    page("Changes", v, body)
}

#[derive(Deserialize, Default)]
pub struct ChangeQuery {
    repo: Option<String>,
    /// What the form just did (`approved`, `rejected`, `ready`, `abandoned`, `merged`).
    done: Option<String>,
}

/// What to say above a change: what was just done, or why it was refused.
enum Notice {
    Done(&'static str),
    Refused(String),
}

/// `/changes/{n}`: the change, its patch sets and reviews, what it still needs, its
/// skills with their fields and bodies as diffs; forms for a signed-in viewer.
pub async fn change(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Path(n): Path<String>,
    Query(q): Query<ChangeQuery>,
) -> Response {
    let notice = match given(&q.done) {
        Some("approved") => Some(Notice::Done("Approved.")),
        Some("rejected") => Some(Notice::Done("Rejected: the author was asked for changes.")),
        Some("ready") => Some(Notice::Done("Marked ready: the change is in review.")),
        Some("abandoned") => Some(Notice::Done("Abandoned.")),
        Some("merged") => Some(Notice::Done("Merged: its skills are published.")),
        _ => None,
    };
    show(&s, viewer.as_ref(), &n, &q.repo, notice, StatusCode::OK).await
}

/// The change page of `n` in `repo`, with `notice`, answered with `status`.
async fn show(
    s: &HttpState,
    viewer: Option<&Viewer>,
    n: &str,
    repo: &Option<String>,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let repo = match repo_param(repo) {
        Ok(r) => r.unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string()),
        Err(e) => return error_page(StatusCode::NOT_FOUND, viewer, &e),
    };
    let Some(number) = number_param(n) else {
        return error_page(
            StatusCode::NOT_FOUND,
            viewer,
            "A change is named by its number.",
        );
    };
    let detail = match load(&s.review, &repo, number).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                viewer,
                &format!("No change {number} in {repo}."),
            );
        }
        Err(e) => return unavailable(e),
    };
    // The viewer's role on this repository (a grant, else their role), as act() sees it.
    let role = match viewer {
        Some(v) => Some(
            crate::db::users::role_on(&s.pool, &user_of(v), &repo)
                .await
                .unwrap_or(v.role),
        ),
        None => None,
    };
    let title = format!("Change {number}: {}", detail.change.title);
    let mut response = page(
        &title,
        viewer,
        change_markup(&detail, viewer.zip(role), notice.as_ref()),
    );
    *response.status_mut() = status;
    response
}

fn user_of(v: &Viewer) -> User {
    User {
        name: v.user.clone(),
        role: v.role,
        key_fingerprint: None,
    }
}

/// Unchanged lines kept around each change of a body; longer runs are folded.
const CONTEXT: usize = 3;

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    message: String,
    repo: Option<String>,
}

/// The status a refusal is answered with: 403 when the viewer may not do it, 404 for
/// no such change, 503 when the database is away, 409 for the change's state or
/// content (it is a draft, lacks approvals, conflicts, is closed).
fn refusal_status(why: &str) -> StatusCode {
    if why.contains("read-only")
        || why.contains("only the author")
        || why.contains("you are the author")
    {
        StatusCode::FORBIDDEN
    } else if why.starts_with("no change ") {
        StatusCode::NOT_FOUND
    } else if why.contains("database is unavailable") {
        StatusCode::SERVICE_UNAVAILABLE
    } else if why.contains("at most") || why.contains("control characters") {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::CONFLICT
    }
}

/// `POST /changes/{n}/review` (`csrf`, `action`: approve, reject, ready, abandon or
/// merge, `message`, `repo`): done through [`crate::review::act`] as the signed-in
/// viewer; then back to the change (303) saying what was done, or the change with
/// why not.
pub async fn review(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Path(n): Path<String>,
    axum::Form(form): axum::Form<ReviewForm>,
) -> Response {
    let v = match checked(&viewer, &form.csrf) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    let repo = match repo_param(&form.repo) {
        Ok(r) => r.unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string()),
        Err(e) => return error_page(StatusCode::NOT_FOUND, Some(v), &e),
    };
    let Some(number) = number_param(&n) else {
        return error_page(
            StatusCode::NOT_FOUND,
            Some(v),
            "A change is named by its number.",
        );
    };
    // A browser sends a text area's new lines as CRLF.
    let message = form.message.replace("\r\n", "\n").replace('\r', "\n");
    let (action, done) = match form.action.as_str() {
        "approve" => (crate::review::Action::Approve(message), "approved"),
        "reject" if message.trim().is_empty() => {
            let why = "say why you reject it: write what must change in the message".to_string();
            return show(
                &s,
                Some(v),
                &n,
                &Some(repo),
                Some(Notice::Refused(why)),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
        "reject" => (crate::review::Action::Reject(message), "rejected"),
        "ready" => (crate::review::Action::Ready, "ready"),
        "abandon" => (crate::review::Action::Abandon, "abandoned"),
        "merge" => (crate::review::Action::Merge, "merged"),
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                Some(v),
                "The form asks for no action this page knows (approve, reject, ready, abandon, merge).",
            );
        }
    };
    match crate::review::act(&s.review, &user_of(v), &repo, number, action).await {
        Ok(line) => {
            tracing::info!(repo = %repo, change = number, user = %v.user, result = %line, "review from the status pages");
            let to = change_link(&repo, number);
            let sep = if to.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{to}{sep}done={done}")).into_response()
        }
        Err(why) => {
            let status = refusal_status(&why);
            show(
                &s,
                Some(v),
                &n,
                &Some(repo),
                Some(Notice::Refused(why)),
                status,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests;
