//! A change's page: its fields, what it still needs, the actions the viewer may take,
//! each skill's fields old → new and the body's line diff, patch sets and reviews.

use super::*;

/// A frontmatter value as text: a string as it is, a list of strings joined by commas
/// (as the skill page shows tags), anything else as JSON.
pub(super) fn value_text(v: Option<&Value>) -> String {
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

/// A body's diff as lines: added and removed lines marked, long unchanged runs folded.
pub(in crate::web) fn diff_markup(id: &str, lines: &[(LineKind, &str)]) -> Markup {
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

pub(super) fn change_markup(
    d: &Detail,
    viewer: Option<(&Viewer, Role)>,
    notice: Option<&Notice>,
) -> Markup {
    let c = &d.change;
    let state = c.state();
    let open = state.is_open();
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
        @if let Some(viewer) = viewer { @if open { (actions_markup(d, viewer)) } }
        (skills_markup(&d.skills))
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

/// What the viewer may do with an open change: review it (not its author), merge it,
/// mark it ready, abandon it.
pub(super) fn actions_markup(d: &Detail, (v, role): (&Viewer, Role)) -> Markup {
    let c = &d.change;
    let state = c.state();
    let open = state.is_open();
    let action = format!("/changes/{}/review", c.number);
    let is_author = v.user == c.author;
    let writer = role != Role::Reader;
    let author_or_admin = is_author || role == Role::Admin;
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

/// Each skill the change touches: its operation, the fields that change, its warnings
/// and the body's diff.
pub(super) fn skills_markup(skills: &[ChangeSkill]) -> Markup {
    html! {
        h2 { "Skills" }
        @if skills.is_empty() { p class="muted" { "No skill file changes." } }
        @for sk in skills {
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
    }
}
