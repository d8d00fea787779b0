//! The dashboard: the cache's health, the repositories, mirrors, webhooks, the last
//! pushes and sync failures.

use super::*;

/// A repository's audit counts (`skillsd audit` over main): errors and warnings, and
/// which checks found them.
pub(super) fn audit_cell(state: Option<&crate::web::audit::Progress>) -> Markup {
    use crate::web::audit::Progress;
    match state {
        Some(Progress::Ready(a)) => html! {
            @if a.errors == 0 && a.warnings == 0 { span class="badge ok" { "clean" } }
            @else {
                span class=(if a.errors > 0 { "bad" } else { "warn" }) {
                    strong { (a.errors) } " errors, " strong { (a.warnings) } " warnings"
                }
                " "
                span class="muted" {
                    @for (i, (check, c)) in a.checks.iter().enumerate() {
                        @if i > 0 { " · " }
                        (check) " " (c.errors + c.warnings)
                    }
                }
            }
        },
        Some(Progress::Empty) | None => html! { span class="muted" { "-" } },
        Some(Progress::Counting) => html! { span class="muted" { "being counted…" } },
        Some(Progress::Failed(why)) => html! { span class="bad" { (why) } },
    }
}

/// `/`: every repository's tip and cache, the status bar, recent pushes and failures.
pub async fn dashboard(
    State(s): State<Arc<HttpState>>,
    Extension(viewer): Extension<Option<Viewer>>,
) -> Response {
    match dashboard_markup(&s, viewer.as_ref()).await {
        Ok(body) => page("Dashboard", viewer.as_ref(), body),
        Err(e) => unavailable(e),
    }
}

/// A repository as the dashboard lists it: its default branch's tip, where the cache
/// is, how many skills.
pub(super) struct RepoRow {
    name: String,
    tip: Option<String>,
    cached: Option<String>,
    skills: i64,
}

/// One of the last pushes.
pub(super) struct PushRow {
    id: uuid::Uuid,
    repo: String,
    user_name: String,
    started_at: DateTime<Utc>,
    accepted: bool,
    refs: Value,
    push_options: Vec<String>,
    changed: i64,
}

/// A file the cache could not sync.
pub(super) struct FailureRow {
    started_at: DateTime<Utc>,
    repo: String,
    path: Option<String>,
    error: Option<String>,
}

pub(super) async fn dashboard_markup(
    s: &HttpState,
    viewer: Option<&Viewer>,
) -> Result<Markup, sqlx::Error> {
    let admin = viewer.filter(|v| v.role == crate::db::users::Role::Admin);
    let branch = crate::repos::DEFAULT_BRANCH;
    let health = crate::cache::health::read(&s.pool).await?;
    let repos = sqlx::query_as!(
        RepoRow,
        r#"SELECT r.name,
                (SELECT target FROM git_refs g WHERE g.repo = r.name AND g.name = 'refs/heads/' || $1) AS "tip?",
                (SELECT commit_sha FROM sync_state t WHERE t.repo = r.name AND t.branch = $1) AS "cached?",
                (SELECT count(*) FROM skills k WHERE k.repo = r.name) AS "skills!"
         FROM git_repos r ORDER BY r.name"#,
        branch
    )
    .fetch_all(&s.pool)
    .await?;
    let pushes = sqlx::query_as!(
        PushRow,
        r#"SELECT p.id, p.repo, p.user_name, p.started_at, p.accepted, p.refs, p.push_options,
                (SELECT count(*) FROM skill_sync_log l WHERE l.push_id = p.id AND l.status = 'success') AS "changed!"
         FROM pushes p ORDER BY p.started_at DESC LIMIT 20"#
    )
    .fetch_all(&s.pool)
    .await?;
    let failures = sqlx::query_as!(
        FailureRow,
        "SELECT started_at, repo, path, error FROM skill_sync_log
         WHERE status = 'failed' ORDER BY started_at DESC LIMIT 10"
    )
    .fetch_all(&s.pool)
    .await?;
    let mirrors = crate::deliver::mirrors::list(&s.pool, None)
        .await
        .unwrap_or_default();
    let hooks = crate::deliver::webhooks::list(&s.pool, None)
        .await
        .unwrap_or_default();
    let names: Vec<String> = repos.iter().map(|r| r.name.clone()).collect();
    let audits = crate::web::audit::states(s, &names, crate::web::audit::PAGE_WAIT).await;
    Ok(html! {
        h1 { "Dashboard" }
        (status_bar(&health))
        (repos_table(&repos, &audits, admin))
        (mirrors_table(&mirrors))
        (hooks_table(&hooks))
        (pushes_table(&pushes))
        (failures_table(&failures))
    })
}

/// The cache's health in one line: synced, pending, failed, unknown, search vectors
/// pending, with warnings, indexes being built (only while some are), and a verdict.
pub(super) fn status_bar(health: &crate::cache::health::Health) -> Markup {
    html! {
        div class="bar" id="status-bar" {
            span { strong id="count-synced" { (health.synced) } "/" span id="count-total" { (health.total) } " skills synced" }
            span class=(if health.pending > 0 { "warn" } else { "muted" }) { strong id="count-pending" { (health.pending) } " pending" }
            span class=(if health.failed > 0 { "bad" } else { "muted" }) { strong id="count-failed" { (health.failed) } " failed" }
            span class="muted" { strong id="count-unknown" { (health.unknown) } " unknown" }
            span class="muted" { strong id="count-search-pending" { (health.search_pending) } " search vectors pending" }
            span class=(if health.with_warnings > 0 { "warn" } else { "muted" }) { strong id="count-warnings" { (health.with_warnings) } " with warnings" }
            @if health.indexes_pending > 0 { span class="muted" { strong { (health.indexes_pending) } " indexes being built" } }
            @if health.healthy { span class="badge ok" { "healthy" } } @else { span class="badge bad" { "needs attention" } }
            span class="muted" id="live" {}
        }
    }
}

/// Each repository: its tip, where the cache is, how many skills, the audit; for
/// admins, a button that syncs it now.
pub(super) fn repos_table(
    repos: &[RepoRow],
    audits: &std::collections::HashMap<String, crate::web::audit::Progress>,
    admin: Option<&Viewer>,
) -> Markup {
    html! {
        h2 { "Repositories" }
        table {
            thead { tr { th { "repository" } th { "main" } th { "cache at" } th { "" } th { "skills" } th { "audit" } @if admin.is_some() { th { "" } } } }
            tbody {
                @for r in repos {
                    @let (name, tip, cached) = (&r.name, &r.tip, &r.cached);
                    tr {
                        td { a href={"/skills?repo=" (name)} { (name) } }
                        td class="sha" { (tip.as_deref().map(short).unwrap_or("(empty)")) }
                        td class="sha" { (cached.as_deref().map(short).unwrap_or("-")) }
                        td {
                            @if tip.is_some() && tip == cached { span class="badge ok" { "in sync" } }
                            @else if tip.is_none() { span class="badge muted" { "empty" } }
                            @else { span class="badge warn" { "behind" } }
                        }
                        td { (r.skills) }
                        td class="audit" { (audit_cell(audits.get(name))) }
                        @if let Some(a) = admin {
                            td {
                                form class="inline" method="post" action="/reconcile" {
                                    input type="hidden" name="csrf" value=(a.csrf);
                                    input type="hidden" name="repo" value=(name);
                                    button type="submit" { "Sync now" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each mirror's state, lag and last error (nothing when there are none).
pub(super) fn mirrors_table(mirrors: &[crate::deliver::mirrors::Mirror]) -> Markup {
    html! {
        @if !mirrors.is_empty() {
            h2 { "Mirrors" }
            table id="mirrors" {
                thead { tr { th { "repository" } th { "upstream" } th { "" } th { "refs behind" } th class="hide-small" { "lag" } th class="hide-small" { "last success" } th { "last error" } } }
                tbody {
                    @for m in mirrors {
                        tr {
                            td { (m.repo) }
                            td class="sha" { (m.url) }
                            td {
                                @match m.state.as_str() {
                                    "in-sync" => span class="badge ok" { "in sync" },
                                    "pending" => span class="badge warn" { "pending" },
                                    _ => span class="badge bad" { "failing" },
                                }
                            }
                            td { (m.refs_behind) }
                            td class="hide-small" { (m.lag_seconds.map(|s| format!("{s:.0} s")).unwrap_or_else(|| "-".into())) }
                            td class="hide-small" { (m.last_success_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| "never".into())) }
                            td { (m.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// Each webhook's receiver (its host only), events and last delivery (nothing when
/// there are none).
pub(super) fn hooks_table(hooks: &[crate::deliver::webhooks::Webhook]) -> Markup {
    html! {
        @if !hooks.is_empty() {
            h2 { "Webhooks" }
            table id="webhooks" {
                thead { tr { th { "repository" } th { "receiver" } th { "events" } th { "last delivery" } th { "pending" } th { "failed" } } }
                tbody {
                    @for h in hooks {
                        tr {
                            td { (h.repo) }
                            // The host only: a receiver's path can be its secret.
                            td { (reqwest::Url::parse(&h.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()) }
                            td { (h.events.join(", ")) }
                            td {
                                @match h.last_status.as_deref() {
                                    None => span class="muted" { "none yet" },
                                    Some("delivered") => span class="badge ok" { "delivered" },
                                    Some("pending") => span class="badge warn" { "retrying" },
                                    Some(other) => span class="badge bad" { (other) },
                                }
                                @if let Some(code) = h.last_code { " HTTP " (code) }
                            }
                            td { (h.pending) }
                            td class=(if h.failed > 0 { "bad" } else { "" }) { (h.failed) }
                        }
                    }
                }
            }
        }
    }
}

/// The last 20 pushes: who, which refs, the result, how many skills changed.
pub(super) fn pushes_table(pushes: &[PushRow]) -> Markup {
    html! {
        h2 { "Recent pushes" }
        table {
            thead { tr { th { "when" } th { "who" } th class="hide-small" { "repository" } th class="hide-small" { "refs" } th { "result" } th { "skills changed" } } }
            tbody {
                @for p in pushes {
                    @let (id, refs, accepted) = (p.id, &p.refs, p.accepted);
                    tr {
                        td { a href={"/pushes/" (id)} { (when(p.started_at)) } }
                        td { (p.user_name) }
                        td class="hide-small" { (p.repo) }
                        td class="hide-small" { @for r in refs.as_array().into_iter().flatten() { code { (r["ref"].as_str().unwrap_or("")) } " " } }
                        @let options = &p.push_options;
                        td {
                            (result_badge(accepted, options, refs))
                            @if !accepted && !is_dry_run(options, refs) {
                                " "
                                @for r in refs.as_array().into_iter().flatten().filter(|r| r["reason"].is_string()).take(1) {
                                    span class="muted" { (r["reason"].as_str().unwrap_or("")) }
                                }
                            }
                        }
                        td { (p.changed) }
                    }
                }
            }
        }
    }
}

/// The last 10 files the cache could not sync.
pub(super) fn failures_table(failures: &[FailureRow]) -> Markup {
    html! {
        h2 { "Recent sync failures" }
        @if failures.is_empty() { p class="muted" { "None." } }
        @else {
            table {
                thead { tr { th { "when" } th { "repository" } th { "file" } th { "error" } } }
                tbody {
                    @for f in failures {
                        tr {
                            td { (when(f.started_at)) }
                            td { (f.repo) }
                            td { code { (f.path.as_deref().unwrap_or_default()) } }
                            td { pre { (f.error.as_deref().unwrap_or_default()) } }
                        }
                    }
                }
            }
        }
    }
}
