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
use super::pages::{checked, encode, given, problem_line, short, unavailable, when, PAGE_SIZE};
use super::{error_page, page, SkillsQuery};
use crate::db::users::{Role, User};
use crate::review::store::{self, Change, ChangeSkill, PatchSet, ReviewRow};
use crate::review::{ChangeState, LineKind};
use crate::web::HttpState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;

/// A change in a list, with how many patch sets it has.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Listed {
    #[sqlx(flatten)]
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
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM changes
         WHERE ($1::text IS NULL OR repo = $1) AND (cardinality($2::text[]) = 0 OR state = ANY($2))",
    )
    .bind(repo)
    .bind(states)
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as(
        "SELECT c.id, c.repo, c.number, c.target, c.author, c.title, c.description, c.topic,
                c.state, c.created_at, c.updated_at, c.closed_by, c.closed_at, c.merged_commit,
                (SELECT count(*) FROM change_patch_sets p WHERE p.change_id = c.id) AS patch_sets
         FROM changes c
         WHERE ($1::text IS NULL OR c.repo = $1) AND (cardinality($2::text[]) = 0 OR c.state = ANY($2))
         ORDER BY c.updated_at DESC, c.id DESC LIMIT $3 OFFSET $4",
    )
    .bind(repo)
    .bind(states)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
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
#[derive(Debug, Clone, PartialEq)]
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
) -> sqlx::Result<(i64, Vec<sqlx::postgres::PgRow>)> {
    use sqlx::Row;
    let repo = given(&q.repo).unwrap_or(crate::repos::DEFAULT_REPO);
    let page_no = q.page.unwrap_or(1).clamp(1, super::pages::MAX_PAGE);
    let limit = q.limit.unwrap_or(PAGE_SIZE).clamp(1, 200);
    let rows = sqlx::query(
        "SELECT s.slug, s.path, s.old_path, coalesce(s.title, s.slug) AS title, s.description,
                s.operation, jsonb_array_length(s.warnings) AS warnings,
                c.number, c.title AS change_title, c.author, c.state,
                count(*) OVER () AS total,
                CASE WHEN $3::text IS NULL THEN 0::real
                     ELSE ts_rank(v.search, websearch_to_tsquery('simple', $3)) END AS rank
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
         ORDER BY rank DESC, c.updated_at DESC, c.number DESC, s.slug, s.path
         LIMIT $7 OFFSET $8",
    )
    .bind(repo)
    .bind(state)
    .bind(given(&q.q))
    .bind(given(&q.category))
    .bind(given(&q.owner))
    .bind(given(&q.tag))
    .bind(limit)
    .bind((page_no - 1) * limit)
    .fetch_all(pool)
    .await?;
    let total: i64 = rows.first().map_or(0, |r| r.get("total"));
    Ok((total, rows))
}

/// `/skills?status=IN_REVIEW|DRAFT`: the skills changes in `state` propose (rows of
/// [`proposed`]), each linked to its change.
pub(super) fn proposed_table(repo: &str, state: &str, rows: &[sqlx::postgres::PgRow]) -> Markup {
    use sqlx::Row;
    html! {
        p class="muted" id="proposed-note" {
            "Skills proposed by changes that are " (state_badge(state)) ", not published yet; "
            a href={"/changes?state=" (encode(&state.to_ascii_lowercase().replace('_', "-"))) "&repo=" (encode(repo))} { "their changes" } "."
        }
        table id="skills" {
            thead { tr { th { "title" } th class="hide-small" { "slug" } th { "operation" } th { "change" } th class="hide-small" { "author" } th { "" } } }
            tbody {
                @for r in rows {
                    @let number: i32 = r.get("number");
                    @let warnings: i32 = r.get("warnings");
                    @let link = change_link(repo, number);
                    tr data-change=(number) {
                        td { a href={(link) "#skill-" (r.get::<String, _>("slug"))} { (r.get::<String, _>("title")) } }
                        td class="hide-small" { code { (r.get::<String, _>("slug")) } }
                        td { (r.get::<String, _>("operation")) }
                        td { a href=(link) { "#" (number) " " (r.get::<String, _>("change_title")) } }
                        td class="hide-small" { (r.get::<String, _>("author")) }
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
            )
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

/// A frontmatter value as text: a string as it is, a list of strings joined by commas
/// (as the skill page shows tags), anything else as JSON.
fn value_text(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) && !items.is_empty() => {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        }
        Some(other) => other.to_string(),
    }
}

/// Unchanged lines kept around each change of a body; longer runs are folded.
const CONTEXT: usize = 3;

/// A body's diff as lines: added and removed lines marked, long unchanged runs folded.
pub(super) fn diff_markup(id: &str, lines: &[(LineKind, &str)]) -> Markup {
    // Which lines show: every changed line and CONTEXT lines either side of one (one
    // pass: a body can have many thousand lines); a short unchanged body whole.
    let mut shown = vec![lines.len() <= 2 * CONTEXT + 1; lines.len()];
    for (i, (kind, _)) in lines.iter().enumerate() {
        if *kind != LineKind::Same {
            let end = (i + CONTEXT + 1).min(lines.len());
            shown[i.saturating_sub(CONTEXT)..end].fill(true);
        }
    }
    let mut out: Vec<Markup> = Vec::new();
    let mut hidden = 0usize;
    for (i, (kind, line)) in lines.iter().enumerate() {
        if !shown[i] {
            hidden += 1;
            continue;
        }
        if hidden > 0 {
            out.push(html! { div class="fold" { span class="sign" { "⋯" } (hidden) " unchanged line" @if hidden != 1 { "s" } } });
            hidden = 0;
        }
        let (class, sign) = match kind {
            LineKind::Same => ("same", " "),
            LineKind::Added => ("add", "+"),
            LineKind::Removed => ("del", "-"),
        };
        out.push(html! { div class=(class) { span class="sign" { (sign) } (line) } });
    }
    if hidden > 0 {
        out.push(html! { div class="fold" { span class="sign" { "⋯" } (hidden) " unchanged line" @if hidden != 1 { "s" } } });
    }
    html! {
        @if lines.is_empty() { p class="muted" { "(empty body)" } }
        @else { div class="diff" id=(id) { @for m in &out { (m) } } }
    }
}

fn change_markup(d: &Detail, viewer: Option<(&Viewer, Role)>, notice: Option<&Notice>) -> Markup {
    let c = &d.change;
    let state = c.state();
    let open = state.is_open();
    let action = format!("/changes/{}/review", c.number);
    let is_author = viewer.is_some_and(|(v, _)| v.user == c.author);
    let role = viewer.map(|(_, r)| r);
    let writer = role.is_some_and(|r| r != Role::Reader);
    let author_or_admin = is_author || role == Some(Role::Admin);
    let can_review = open && writer && !is_author;
    let can_ready = state == ChangeState::Draft && author_or_admin;
    let can_abandon = open && author_or_admin;
    let can_merge = open && writer && d.mergeable();
    let hidden = |v: &Viewer| {
        html! {
            input type="hidden" name="csrf" value=(v.csrf);
            input type="hidden" name="repo" value=(c.repo);
        }
    };
    html! {
        h1 { (c.title) " " (state_badge(&c.state)) }
        @match notice {
            Some(Notice::Done(text)) => p class="notice ok" id="done" { (text) },
            Some(Notice::Refused(why)) => p class="notice bad text" id="refused" { "Refused: " (why) },
            None => {},
        }
        dl class="meta" {
            dt { "change" } dd { (c.number) }
            dt { "repository" } dd { (c.repo) }
            dt { "target" } dd { code { (c.target) } }
            dt { "author" } dd id="author" { (c.author) }
            @if let Some(t) = &c.topic { dt { "topic" } dd { (t) } }
            dt { "created" } dd { (when(c.created_at)) }
            dt { "updated" } dd { (when(c.updated_at)) }
            @if let (Some(by), Some(at)) = (&c.closed_by, c.closed_at) {
                dt { @if state == ChangeState::Merged { "merged by" } @else { "closed by" } }
                dd { (by) ", " (when(at)) }
            }
            @if let Some(m) = &c.merged_commit { dt { "merged commit" } dd class="sha" { (m) } }
            dt { "fetch" } dd { code id="fetch" { "git fetch origin refs/changes/" (c.number) "/head" } }
        }
        @if !c.description.is_empty() {
            div class="text description" id="description" { (c.description) }
        }
        @if open {
            h2 { "Merge" }
            @match &d.needs {
                Some(Ok(needs)) if needs.is_empty() => p class="ok" id="mergeable" { "Ready to merge." },
                Some(Ok(needs)) => {
                    p id="mergeable" { "Not mergeable yet; it still needs:" }
                    ul id="needs" { @for n in needs { li { (n) } } }
                },
                Some(Err(e)) => p class="warn" id="mergeable" { "Cannot tell whether it can be merged: " (e) },
                None => {},
            }
        }
        @if let Some((v, _)) = viewer {
            @if open {
                div class="actions" id="actions" {
                    @if can_review {
                        form class="review" method="post" action=(action) id="review-form" {
                            (hidden(v))
                            label for="message" { "Message " span class="muted" { "(required to reject)" } }
                            textarea id="message" name="message" rows="3" maxlength=(crate::review::MAX_MESSAGE_CHARS) {}
                            div class="buttons" {
                                button type="submit" name="action" value="approve" { "Approve" }
                                button class="secondary" type="submit" name="action" value="reject" { "Reject" }
                            }
                        }
                    } @else if is_author {
                        p class="muted" { "You wrote this change: another writer reviews it." }
                    }
                    div class="buttons" {
                        @if can_merge {
                            form class="inline" method="post" action=(action) {
                                (hidden(v))
                                input type="hidden" name="action" value="merge";
                                button type="submit" id="merge" { "Merge into " (c.target) }
                            }
                        }
                        @if can_ready {
                            form class="inline" method="post" action=(action) {
                                (hidden(v))
                                input type="hidden" name="action" value="ready";
                                button type="submit" id="ready" { "Mark ready for review" }
                            }
                        }
                        @if can_abandon {
                            form class="inline" method="post" action=(action) {
                                (hidden(v))
                                input type="hidden" name="action" value="abandon";
                                button class="secondary" type="submit" id="abandon" { "Abandon" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Skills" }
        @if d.skills.is_empty() { p class="muted" { "No skill file changes." } }
        @for sk in &d.skills {
            @let slug_id = format!("skill-{}", sk.slug);
            section class="proposed" id=(slug_id) {
                h3 {
                    span class={"badge op " (match sk.operation.as_str() { "create" => "ok", "delete" => "bad", _ => "warn" })} { (sk.operation) }
                    " " (sk.title.as_deref().unwrap_or(&sk.slug))
                }
                p class="muted" {
                    code { (sk.slug) } " · " code { (sk.path) }
                    @if let Some(o) = &sk.old_path { " (from " code { (o) } ")" }
                    " · " (crate::review::diff_summary(sk))
                }
                @let changed = fields(sk);
                @if !changed.is_empty() {
                    table class="fields" {
                        thead { tr { th { "field" } th { "old" } th { "new" } } }
                        tbody {
                            @for f in &changed {
                                tr {
                                    td { code { (f.name) } }
                                    td class=(if f.old.is_some() { "del" } else { "muted" }) { @if f.old.is_some() { (value_text(f.old)) } @else { "—" } }
                                    td class=(if f.new.is_some() { "add" } else { "muted" }) { @if f.new.is_some() { (value_text(f.new)) } @else { "—" } }
                                }
                            }
                        }
                    }
                }
                @if let Some(list) = sk.warnings.as_array().filter(|l| !l.is_empty()) {
                    p class="warn" { (list.len()) " warning" @if list.len() != 1 { "s" } }
                    pre class="warnings" { @for w in list { (problem_line(w)) } }
                }
                (diff_markup(&format!("diff-{}", sk.slug), &body_diff(sk)))
            }
        }
        h2 { "Patch sets" }
        table id="patch-sets" {
            thead { tr { th { "#" } th { "commit" } th class="hide-small" { "base" } th { "pushed by" } th { "when" } } }
            tbody {
                @for p in &d.patch_sets {
                    tr {
                        td { (p.number) }
                        td class="sha" { (short(&p.commit_sha)) }
                        td class="sha hide-small" { (p.base_sha.as_deref().map(short).unwrap_or("")) }
                        td { (p.pushed_by) }
                        td { (when(p.created_at)) }
                    }
                }
            }
        }
        h2 { "Reviews" }
        @if d.reviews.is_empty() { p class="muted" id="no-reviews" { "None yet." } }
        @else {
            table id="reviews" {
                thead { tr { th { "reviewer" } th { "verdict" } th { "patch set" } th { "message" } th class="hide-small" { "when" } } }
                tbody {
                    @for r in &d.reviews {
                        tr class=(if r.dismissed_at.is_some() { "dismissed" } else { "" }) {
                            td { (r.reviewer) " " span class="muted" { "(" (r.reviewer_role) ")" } }
                            td {
                                @if r.verdict == "approve" { span class="badge ok" { "approved" } }
                                @else { span class="badge bad" { "rejected" } }
                                @if r.dismissed_at.is_some() { " " span class="badge muted" { "dismissed" } }
                            }
                            td { (r.patch_set) }
                            td class="text" { (r.message) }
                            td class="hide-small" { (when(r.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

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
        _ => return error_page(
            StatusCode::BAD_REQUEST,
            Some(v),
            "The form asks for no action this page knows (approve, reject, ready, abandon, merge).",
        ),
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
mod tests {
    use super::*;

    fn skill(old: Option<Value>, new: Option<Value>) -> ChangeSkill {
        ChangeSkill {
            path: "skills/a/x.md".into(),
            slug: "x".into(),
            old_path: None,
            operation: "update".into(),
            title: Some("X".into()),
            description: None,
            status: None,
            frontmatter: new,
            body: Some("a\nb\n".into()),
            old_frontmatter: old,
            old_body: Some("a\n".into()),
            warnings: serde_json::json!([]),
        }
    }

    #[test]
    fn fields_are_those_whose_values_differ() {
        let s = skill(
            Some(serde_json::json!({"title": "X", "tags": ["a"], "owner": "ops"})),
            Some(serde_json::json!({"title": "X", "tags": ["a", "b"], "category": "eng"})),
        );
        let f = fields(&s);
        let names: Vec<&str> = f.iter().map(|f| f.name).collect();
        assert_eq!(names, vec!["category", "owner", "tags"]);
        assert_eq!(f[0].old, None);
        assert_eq!(f[1].new, None);
        assert_eq!(f[2].new, Some(&serde_json::json!(["a", "b"])));
        // A new skill: every field is new.
        let s = skill(None, Some(serde_json::json!({"title": "X"})));
        assert_eq!(fields(&s).len(), 1);
    }

    #[test]
    fn statuses_answered_from_changes() {
        assert_eq!(proposal_state(Some("IN_REVIEW")), Some("IN_REVIEW"));
        assert_eq!(proposal_state(Some("draft")), Some("DRAFT"));
        assert_eq!(proposal_state(Some("PUBLISHED")), None);
        assert_eq!(proposal_state(None), None);
    }

    #[test]
    fn refusals_have_their_status() {
        assert_eq!(
            refusal_status("you are the author of change 1: your own approval or rejection never counts; ask another reviewer"),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            refusal_status(
                "rita has read-only access (role: reader): only writers and admins review"
            ),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            refusal_status("no change 9 in skills"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            refusal_status(
                "change 1 is merged: it can no longer be approved; open a new change to go on"
            ),
            StatusCode::CONFLICT
        );
    }

    #[test]
    fn removed_lines_come_before_added_ones_within_a_run() {
        use LineKind::*;
        let d = removed_first(vec![
            (Same, "a"),
            (Added, "B"),
            (Added, "C"),
            (Removed, "b"),
            (Same, "d"),
            (Added, "e"),
        ]);
        assert_eq!(
            d,
            vec![
                (Same, "a"),
                (Removed, "b"),
                (Added, "B"),
                (Added, "C"),
                (Same, "d"),
                (Added, "e")
            ]
        );
    }

    #[test]
    fn long_unchanged_runs_are_folded_and_lines_escaped() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let new = "1\n2\n3\n4\n5\n6\n7\n8\n9\n<b>x</b>\n";
        let html = diff_markup("d", &crate::review::diff_lines(old, new)).into_string();
        assert!(html.contains("6 unchanged lines"), "{html}");
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(html.contains("class=\"del\""), "{html}");
    }
}
