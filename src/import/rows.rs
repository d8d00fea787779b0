//! A legacy table's rows as skill files: each row's columns read by the seed's names
//! (and their snake-case twins), written as the frontmatter the repository's layout
//! wants, and validated before anything is committed.

use super::{Entry, ImportError};
use crate::skills::Problem;
use crate::skills::rules::{Layout, Rules};
use serde_json::Value;

/// A column of a legacy row by any of its spellings (`ownerId`, `owner_id`).
fn column<'a>(row: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| row.get(*n))
        .filter(|v| !v.is_null())
}

pub(super) fn text(row: &Value, names: &[&str]) -> Option<String> {
    column(row, names).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn timestamp(row: &Value, names: &[&str]) -> Option<chrono::DateTime<chrono::Utc>> {
    let s = text(row, names)?;
    chrono::DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// A YAML scalar that means exactly `s` (a JSON string is a YAML double-quoted one).
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The file a legacy row becomes under `rules`, or why it cannot be one.
pub fn entry_of_row(
    rules: &Rules,
    row: &Value,
    index: usize,
    taken: &mut std::collections::HashSet<String>,
) -> Result<Entry, (String, Vec<Problem>)> {
    let id = text(row, &["id"]).unwrap_or_else(|| format!("#{}", index + 1));
    let source = format!("row {} (id {id})", index + 1);
    let problem = |message: String| {
        (
            source.clone(),
            vec![Problem::new(
                crate::skills::Check::MissingField,
                &source,
                message,
            )],
        )
    };
    let Some(title) = text(row, &["title"]).filter(|t| !t.trim().is_empty()) else {
        return Err(problem("has no title".into()));
    };
    let body = text(row, &["content", "body"]).unwrap_or_default();
    let slug = text(row, &["slug"])
        .filter(|s| crate::skills::skill::is_valid_slug(s))
        .unwrap_or_else(|| crate::skills::skill::suggest_slug(&title));
    if !taken.insert(slug.clone()) {
        return Err((
            source.clone(),
            vec![
                Problem::new(
                    crate::skills::Check::DuplicateSlug,
                    &source,
                    format!("slug `{slug}` is already used by another skill"),
                )
                .hint("give one of the rows another slug or title"),
            ],
        ));
    }
    let description = text(row, &["description"]);
    let category = text(row, &["category"]);
    let owner = text(row, &["ownerId", "owner_id", "owner"]);
    let status = text(row, &["status"]).map(|s| s.to_ascii_uppercase());
    let tags = tags_of(row);
    let root = first_literal_root(rules);
    let fields = RowFields {
        title: &title,
        description: description.as_deref(),
        category: category.as_deref(),
        owner: owner.as_deref(),
        status: status.as_deref(),
        tags: &tags,
        id: &id,
    };
    let fm = fields.frontmatter(rules.layout, &slug);
    let path = match rules.layout {
        Layout::Flat => format!("{root}{slug}.md"),
        Layout::AgentSkills => format!("{root}{slug}/SKILL.md"),
    };
    // A title like `README` makes a path the rules read as documentation, not as a
    // skill: such a row is left out with the reason, the others go on.
    if !rules.is_skill(&path) {
        taken.remove(&slug);
        return Err(problem(format!(
            "its slug `{slug}` makes `{path}`, which the rules do not read as a skill \
             (README files are documentation); give the row a `slug`"
        )));
    }
    let text = format!("{fm}{body}");
    if let Err(problems) = rules.validate(&path, text.as_bytes()) {
        let problems = problems
            .into_iter()
            .map(|mut p| {
                p.message = format!("{}: {}", source, p.message);
                p
            })
            .collect();
        taken.remove(&slug);
        return Err((path, problems));
    }
    Ok(Entry {
        source,
        message: format!("Import {title}\n\nLegacy id: {id}\n"),
        path,
        text,
        blob: None,
        time: timestamp(row, &["updatedAt", "updated_at"])
            .or_else(|| timestamp(row, &["createdAt", "created_at"])),
        kind: gix::object::tree::EntryKind::Blob,
    })
}

/// A row's tags: the strings of its `tags` list.
fn tags_of(row: &Value) -> Vec<String> {
    match column(row, &["tags"]) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Where imported rows go: the first root that is a folder, not a pattern.
fn first_literal_root(rules: &Rules) -> String {
    rules
        .roots()
        .iter()
        .find(|r| !r.contains(['*', '?', '[', '{']))
        .cloned()
        .unwrap_or_else(|| "skills/".to_string())
}

/// A row's fields as a skill's frontmatter says them.
struct RowFields<'a> {
    title: &'a str,
    description: Option<&'a str>,
    category: Option<&'a str>,
    owner: Option<&'a str>,
    status: Option<&'a str>,
    tags: &'a [String],
    /// The row's id in the old store (`legacy-id`).
    id: &'a str,
}

impl RowFields<'_> {
    /// The frontmatter, `---` lines included: flat (each field at the top) or Agent
    /// Skills (`name`, `description`, the rest under `metadata`).
    fn frontmatter(&self, layout: Layout, slug: &str) -> String {
        let mut fm = String::from("---\n");
        match layout {
            Layout::Flat => {
                fm.push_str(&format!("title: {}\n", yaml_string(self.title)));
                for (k, v) in [
                    ("description", self.description),
                    ("category", self.category),
                    ("owner", self.owner),
                ] {
                    if let Some(v) = v {
                        fm.push_str(&format!("{k}: {}\n", yaml_string(v)));
                    }
                }
                if !self.tags.is_empty() {
                    let list: Vec<String> = self.tags.iter().map(|t| yaml_string(t)).collect();
                    fm.push_str(&format!("tags: [{}]\n", list.join(", ")));
                }
                if let Some(s) = self.status {
                    fm.push_str(&format!("status: {}\n", yaml_string(s)));
                }
                fm.push_str(&format!("legacy-id: {}\n", yaml_string(self.id)));
            }
            Layout::AgentSkills => {
                fm.push_str(&format!("name: {slug}\n"));
                let d = self.description.unwrap_or(self.title);
                fm.push_str(&format!("description: {}\n", yaml_string(d)));
                fm.push_str("metadata:\n");
                fm.push_str(&format!("  title: {}\n", yaml_string(self.title)));
                for (k, v) in [
                    ("category", self.category),
                    ("owner", self.owner),
                    ("status", self.status),
                ] {
                    if let Some(v) = v {
                        fm.push_str(&format!("  {k}: {}\n", yaml_string(v)));
                    }
                }
                if !self.tags.is_empty() {
                    fm.push_str(&format!("  tags: {}\n", yaml_string(&self.tags.join(", "))));
                }
                fm.push_str(&format!("  legacy-id: {}\n", yaml_string(self.id)));
            }
        }
        fm.push_str("---\n");
        fm
    }
}

/// The frontmatter of a file made from a row: its lines up to the closing `---`.
pub(super) fn frontmatter_lines(text: &str) -> String {
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        out.push_str(line);
        out.push('\n');
        if n > 0 && line == "---" {
            break;
        }
    }
    out
}

/// The query that reads `table`'s rows as JSON objects, oldest change first
/// (`updatedAt`, then `updated_at`; rows without one first), ties by id.
pub(super) fn table_query(table: &str) -> Result<String, ImportError> {
    let valid = table.split('.').count() <= 2
        && table.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        return Err(ImportError::TableName(table.to_string()));
    }
    let quoted: Vec<String> = table.split('.').map(|p| format!("\"{p}\"")).collect();
    // The name is checked above and quoted: letters, digits and `_` only.
    Ok(format!(
        "SELECT r FROM (SELECT to_jsonb(t) AS r FROM {} t) s
         ORDER BY COALESCE(r->>'updatedAt', r->>'updated_at') NULLS FIRST, r->>'id'",
        quoted.join(".")
    ))
}
