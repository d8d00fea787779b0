//! A skill's page (by slug, or by its stable id): its columns, warnings, rendered
//! body, history with signatures, frontmatter and sync log; and a push's page.

use super::*;

#[derive(Deserialize, Default)]
pub struct SkillQuery {
    repo: Option<String>,
    /// The sync log's status filter: success, failed or pending.
    log: Option<String>,
}

/// `/skills/{slug}`: the skill, its rendered body, its warnings and its sync log.
pub async fn skill(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Path(slug): Path<String>,
    Query(q): Query<SkillQuery>,
) -> Response {
    let repo = given(&q.repo)
        .unwrap_or(crate::repos::DEFAULT_REPO)
        .to_string();
    // By slug, or by the skill's stable id (push pages link so: it survives renames).
    let row = sqlx::query_as!(
        SkillRow,
        "SELECT id, slug, path, title, description, category, owner, tags, status, frontmatter,
                body, blob_sha, git_commit_sha, sync_status, last_synced_at, warnings
         FROM skills WHERE repo = $1 AND (slug = $2 OR id = $3)
         ORDER BY slug = $2 DESC LIMIT 1",
        repo,
        slug,
        uuid::Uuid::parse_str(&slug).ok(),
    )
    .fetch_optional(&s.pool)
    .await;
    let row = match row {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                viewer.as_ref(),
                &format!("No skill `{slug}` in {repo}."),
            );
        }
        Err(e) => return unavailable(e),
    };
    let log = sqlx::query_as!(
        LogRow,
        "SELECT started_at, operation, status, error, git_commit_sha, synced_by, push_id
         FROM skill_sync_log WHERE skill_id = $1 AND ($2::text IS NULL OR status = $2)
         ORDER BY started_at DESC, id DESC LIMIT 100",
        row.id,
        given(&q.log),
    )
    .fetch_all(&s.pool)
    .await;
    let log = match log {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    let history = match crate::cache::commits::history(&s.pool, row.id, 200).await {
        Ok(h) => h,
        Err(e) => return unavailable(e),
    };
    let here = format!("/skills/{}?repo={}", encode(&row.slug), encode(&repo));
    let buttons = match viewer.as_ref() {
        Some(v) if crate::web::editor::may_edit(&s, Some(v), &repo).await => {
            Some(crate::web::editor::skill_buttons(
                v,
                &repo,
                &row.slug,
                &row.path,
                &row.blob_sha,
                row.status == "ARCHIVED",
            ))
        }
        _ => None,
    };
    let markup = html! {
        h1 { (row.title) " " (sync_badge(&row.sync_status)) }
        @if let Some(b) = buttons { (b) }
        @if let Some(d) = &row.description { p { (d) } }
        (skill_meta(&row))
        @if let Some(list) = row.warnings.as_array().filter(|l| !l.is_empty()) {
            h2 class="warn" { (list.len()) " warning" @if list.len() != 1 { "s" } }
            pre id="warnings" { @for w in list { (problem_line(w)) } }
        }
        div class="body" id="body" { (PreEscaped(markdown::render(&row.body))) }
        (history_table(&history))
        h2 { "Frontmatter" }
        pre id="frontmatter" { (serde_json::to_string_pretty(&row.frontmatter).unwrap_or_default()) }
        (sync_log_table(&here, &log))
    };
    page(&row.title, viewer.as_ref(), markup)
}

/// A skill as its page shows it.
pub(super) struct SkillRow {
    id: uuid::Uuid,
    slug: String,
    path: String,
    title: String,
    description: Option<String>,
    category: Option<String>,
    owner: Option<String>,
    tags: Vec<String>,
    status: String,
    frontmatter: Value,
    body: String,
    blob_sha: String,
    git_commit_sha: String,
    sync_status: String,
    last_synced_at: Option<DateTime<Utc>>,
    warnings: Value,
}

/// One entry of a skill's sync log.
pub(super) struct LogRow {
    started_at: DateTime<Utc>,
    operation: String,
    status: String,
    error: Option<String>,
    git_commit_sha: Option<String>,
    synced_by: String,
    push_id: Option<uuid::Uuid>,
}

/// A skill's columns: slug, path, status, category, owner, tags, blob, commit, when
/// it was synced.
pub(super) fn skill_meta(row: &SkillRow) -> Markup {
    html! {
        dl class="meta" {
            dt { "slug" } dd { code { (row.slug) } }
            dt { "path" } dd { code { (row.path) } }
            dt { "status" } dd { (row.status) }
            dt { "category" } dd { (row.category.as_deref().unwrap_or_default()) }
            dt { "owner" } dd { (row.owner.as_deref().unwrap_or_default()) }
            dt { "tags" } dd { (row.tags.join(", ")) }
            dt { "blob" } dd class="sha" { (row.blob_sha) }
            dt { "commit" } dd class="sha" { (row.git_commit_sha) }
            @if let Some(t) = row.last_synced_at { dt { "synced" } dd { (when(t)) } }
        }
    }
}

/// The commits that changed a skill: who, when, what, and their signatures.
pub(super) fn history_table(history: &[crate::cache::commits::Change]) -> Markup {
    html! {
        h2 { "History" }
        table id="history" {
            thead { tr { th { "commit" } th { "author" } th { "date" } th { "operation" } th { "message" } th { "signature" } } }
            tbody {
                @for c in history {
                    tr {
                        td class="sha" { (c.commit.as_deref().map(short).unwrap_or("")) }
                        td { (c.author_name.as_deref().unwrap_or(&c.synced_by)) }
                        td { (when(c.authored_at.unwrap_or(c.synced_at))) }
                        td { (c.operation) }
                        td { (c.message.as_deref().map(|m| m.lines().next().unwrap_or("")).unwrap_or("")) }
                        td class="signature" title=(c.signing_key.as_deref().unwrap_or("")) {
                            @match (c.signature.as_deref(), c.signed_by.as_deref()) {
                                (Some("verified"), Some(who)) => { "✓ verified: " (who) }
                                (Some("unverified"), _) => { "unverified" }
                                (Some("unsigned"), _) => { "unsigned" }
                                _ => { "" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A skill's sync log, with links that filter it by status (`here`: the page's
/// address).
pub(super) fn sync_log_table(here: &str, log: &[LogRow]) -> Markup {
    html! {
        h2 { "Sync log" }
        p {
            "Show: "
            a href=(here) { "all" } " · "
            a href={(here) "&log=success"} { "success" } " · "
            a href={(here) "&log=failed"} { "failed" } " · "
            a href={(here) "&log=pending"} { "pending" }
        }
        table id="sync-log" {
            thead { tr { th { "when" } th { "operation" } th { "status" } th { "commit" } th { "by" } th { "error" } } }
            tbody {
                @for l in log {
                    tr {
                        td {
                            @match l.push_id {
                                Some(p) => a href={"/pushes/" (p)} { (when(l.started_at)) },
                                None => (when(l.started_at)),
                            }
                        }
                        td { (l.operation) }
                        td { (l.status) }
                        td class="sha" { (l.git_commit_sha.as_deref().map(short).unwrap_or("")) }
                        td { (l.synced_by) }
                        td { @if let Some(e) = &l.error { pre { (e) } } }
                    }
                }
            }
        }
    }
}

/// `/pushes/{id}`: one push, its refs and its problems as the pusher saw them.
pub async fn push(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return error_page(StatusCode::NOT_FOUND, viewer.as_ref(), "No such push.");
    };
    let row = sqlx::query!(
        "SELECT repo, user_name, key_fingerprint, started_at, accepted, refs, errors,
                push_options, said
         FROM pushes WHERE id = $1",
        id
    )
    .fetch_optional(&s.pool)
    .await;
    let row = match row {
        Ok(Some(r)) => r,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, viewer.as_ref(), "No such push."),
        Err(e) => return unavailable(e),
    };
    // Each skill by its stable id: where it is now (renamed since, or deleted).
    let changed = sqlx::query_as!(
        PushedSkill,
        r#"SELECT l.slug, l.path, l.operation, l.status, l.skill_id, k.slug AS "now_slug?"
         FROM skill_sync_log l LEFT JOIN skills k ON k.id = l.skill_id
         WHERE l.push_id = $1 ORDER BY l.id"#,
        id
    )
    .fetch_all(&s.pool)
    .await;
    let changed = match changed {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let (refs, options, repo) = (&row.refs, &row.push_options, &row.repo);
    let markup = html! {
        h1 {
            "Push by " (row.user_name) " "
            (result_badge(row.accepted, options, refs))
        }
        dl class="meta" {
            dt { "repository" } dd { (repo) }
            dt { "when" } dd { (when(row.started_at)) }
            dt { "key" } dd class="sha" { (row.key_fingerprint.as_deref().unwrap_or_default()) }
            @if !options.is_empty() {
                dt { "push options" } dd { (options.join(", ")) }
            }
        }
        (refs_table(refs))
        @if let Some(said) = row.said.as_deref() {
            // Exactly the `remote:` lines git showed, in their order.
            h2 { "What the pusher read" }
            pre id="problems" { @for line in said.lines() { "remote: " (line) "\n" } }
        } @else if let Some(list) = row.errors.as_array().filter(|l| !l.is_empty()) {
            h2 { "What the pusher read" }
            pre id="problems" { @for p in list { (problem_line(p)) } }
        }
        (changed_table(repo, &changed))
    };
    page("Push", viewer.as_ref(), markup)
}

/// A skill a push changed, with its slug now (`None`: deleted since).
pub(super) struct PushedSkill {
    slug: Option<String>,
    path: Option<String>,
    operation: String,
    status: String,
    skill_id: Option<uuid::Uuid>,
    now_slug: Option<String>,
}

/// Each ref of a push: old, new, its result and why.
pub(super) fn refs_table(refs: &Value) -> Markup {
    html! {
        h2 { "Refs" }
        table id="refs" {
            thead { tr { th { "ref" } th { "old" } th { "new" } th { "result" } th { "reason" } } }
            tbody {
                @for r in refs.as_array().into_iter().flatten() {
                    tr {
                        td { code { (r["ref"].as_str().unwrap_or("")) } }
                        td class="sha" { (short(r["old"].as_str().unwrap_or(""))) }
                        td class="sha" { (short(r["new"].as_str().unwrap_or(""))) }
                        td { (r["result"].as_str().unwrap_or("")) }
                        td { (r["reason"].as_str().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// The skills a push changed, each linked by its stable id (renamed since, or
/// deleted); nothing when it changed none.
pub(super) fn changed_table(repo: &str, changed: &[PushedSkill]) -> Markup {
    html! {
        @if !changed.is_empty() {
            h2 { "Skills changed" }
            table id="changed" {
                thead { tr { th { "skill" } th { "file" } th { "operation" } th { "status" } } }
                tbody {
                    @for c in changed {
                        tr {
                            td {
                                @match (&c.now_slug, c.skill_id) {
                                    (Some(now), Some(id)) => {
                                        a href={"/skills/" (id) "?repo=" (encode(repo))} { (c.slug.as_deref().unwrap_or(now)) }
                                        @if c.slug.as_deref() != Some(now.as_str()) {
                                            " " span class="muted" { "renamed to " a href={"/skills/" (id) "?repo=" (encode(repo))} { (now) } }
                                        }
                                    },
                                    _ => {
                                        (c.slug.as_deref().unwrap_or(""))
                                        " " span class="muted" { "deleted" }
                                    },
                                }
                            }
                            td { code { (c.path.as_deref().unwrap_or_default()) } }
                            td { (c.operation) }
                            td { (c.status) }
                        }
                    }
                }
            }
        }
    }
}
