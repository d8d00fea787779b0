//! The editor's page: the form (fields from the schema, more frontmatter, the body,
//! the change's title and why), the notices above it, and the problems and preview
//! beside it.

use super::*;

/// A problem as a list item: `line N · field: message`, its hint, its check.
pub(super) fn problem_item(p: &Value) -> Markup {
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

pub(super) fn field_markup(spec: &FieldSpec, value: &str) -> Markup {
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

pub(super) fn render(view: View<'_>, status: StatusCode) -> Response {
    let d = view.draft;
    let keys = serde_json::to_string(&d.keys).unwrap_or_else(|_| "[]".into());
    let root = first_root(view.rules);
    let example = match view.rules.layout {
        Layout::Flat => format!("{root}<folder>/<slug>.md"),
        Layout::AgentSkills => format!("{root}<name>/{}", crate::skills::rules::SKILL_FILE),
    };
    let markup = html! {
        h1 { (view.heading) }
        p class="muted" id="editor-note" {
            "Saving proposes a change to " code { (BRANCH) } " of " (view.repo)
            ", committed as you; it is published when the change is merged after review."
        }
        (notice_markup(view.notice.as_ref(), &d.path))
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
                (live_check(&view))
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

/// What the editor says above the form: the file changed or was deleted since it was
/// opened (with the difference), exists already, or the save was refused.
pub(super) fn notice_markup(notice: Option<&Notice>, path: &str) -> Markup {
    html! {
    @match notice {
        Some(Notice::Stale { was, now }) => {
            div class="notice warn" id="stale" {
                @match now {
                    Some(_) => {
                        p { strong { code { (path) } " changed since you opened it." }
                            " Someone else's change was published meanwhile. Below is what changed between the version you started from and the one there now; "
                            "your text is kept in the form. Compare, adjust, and save again to propose your version over the new one." }
                    },
                    None => {
                        p { strong { code { (path) } " was deleted since you opened it." }
                            " Your text is kept: saving again proposes it as a new file." }
                    },
                }
                (crate::web::changes::diff_markup("stale-diff", &crate::web::changes::removed_first(
                    crate::review::diff_lines(was, now.as_deref().unwrap_or("")))))
            }
        },
        Some(Notice::Exists) => {
            p class="notice bad" id="refused" {
                code { (path) } " exists already: choose another path, or edit that skill."
            }
        },
        Some(Notice::Refused(why)) => p class="notice bad text" id="refused" { (why) },
        None => {},
    }
    }
}

/// The problems found (as of the last check) and the body's preview, beside the form.
pub(super) fn live_check(view: &View<'_>) -> Markup {
    let errors = view.problems.as_ref().map_or(0, |p| {
        p.iter()
            .filter(|p| p["level"].as_str() != Some("warning"))
            .count()
    });
    html! {
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
        div class="body preview" id="preview" { (PreEscaped(markdown::render(&view.draft.body))) }
    }
    }
}
