//! The rules a skill file must follow (see `skills-template/RULES.md`), and the
//! conversion of a valid file into the record the cache stores.

use super::frontmatter::{self, Document, FrontmatterError};
use super::rules::{Layout, Rules};
use super::skill::{Check, describe, not_a_string, suggest_slug};
pub use super::skill::{MAX_FILE_BYTES, MAX_PATH_BYTES, Problem, Skill, Status, is_valid_slug};

/// Problems with a path added or changed under a folder of skills (`root`, e.g.
/// `skills/`), whatever the file: length, characters that break on some system,
/// symbolic links, submodules.
/// `path` as a POSIX shell word: as it is when it is plain, else in single quotes.
fn shell_quoted(path: &str) -> String {
    if path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._/-+@".contains(&b))
    {
        path.to_string()
    } else {
        format!("'{}'", path.replace('\'', "'\\''"))
    }
}

pub fn path_problems(root: &str, path: &str, is_link: bool, is_submodule: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    if is_submodule {
        problems.push(
            Problem::new(
                Check::Submodule,
                path,
                format!("submodules are not allowed under {root}"),
            )
            .hint(format!(
                "commit the files themselves, or keep the submodule outside {root}"
            )),
        );
    } else if is_link {
        // A linked SKILL.md is named as such: its folder is no skill while it is one.
        let q = shell_quoted(path);
        let (message, hint) = match path.rsplit_once('/') {
            Some((folder, super::rules::SKILL_FILE)) => (
                format!(
                    "SKILL.md is a symbolic link, and symbolic links are not allowed under {root}, so `{folder}/` is not a skill"
                ),
                format!(
                    "commit the file itself in place of the link: `cp --remove-destination \"$(readlink -f {q})\" {q}`, then `git add {q}`"
                ),
            ),
            _ => (
                format!("symbolic links are not allowed under {root}"),
                format!(
                    "commit the file itself in place of the link: `cp --remove-destination \"$(readlink -f {q})\" {q}`"
                ),
            ),
        };
        problems.push(Problem::new(Check::Symlink, path, message).hint(hint));
    }
    if path.len() > MAX_PATH_BYTES {
        problems.push(
            Problem::new(
                Check::PathLength,
                path,
                format!(
                    "path is {} bytes long, more than {MAX_PATH_BYTES}",
                    path.len()
                ),
            )
            .hint("use shorter folder and file names"),
        );
    }
    for component in path.split('/') {
        let bad: Vec<char> = component
            .chars()
            .filter(|c| {
                c.is_control() || matches!(c, '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*')
            })
            .collect();
        if !bad.is_empty() {
            let shown: String = bad
                .iter()
                .map(|c| format!("{:?}", c))
                .collect::<Vec<_>>()
                .join(", ");
            problems.push(
                Problem::new(
                    Check::PathCharacters,
                    path,
                    format!(
                        "name `{}` contains characters that break on some systems: {shown}",
                        component.escape_debug()
                    ),
                )
                .hint("use letters, digits, '-', '_' and '.' in file and folder names"),
            );
        } else if component.ends_with('.') || component.ends_with(' ') {
            problems.push(
                Problem::new(Check::PathCharacters, path, format!("name `{component}` ends with a dot or a space, which Windows cannot check out"))
                    .hint("rename it"),
            );
        }
    }
    problems
}

/// Checks one skill file against the built-in rules (a repository without
/// `skillsd.toml`). Returns the skill, or every problem found.
pub fn validate_skill(path: &str, bytes: &[u8]) -> Result<Skill, Vec<Problem>> {
    Rules::builtin().validate(path, bytes)
}

impl Rules {
    /// Checks one skill file against these rules: the built-in checks (encoding, size,
    /// frontmatter, the layout's own fields), then the repository's JSON Schema.
    /// Returns the skill, or every problem found.
    ///
    /// The findings are levelled by the rules' `[levels]`: a skill whose findings are
    /// all warnings is valid and carries them in [`Skill::warnings`]; else every
    /// finding (warnings too) is returned.
    pub fn validate(&self, path: &str, bytes: &[u8]) -> Result<Skill, Vec<Problem>> {
        let (skill, problems) = match validate_with(self, path, bytes) {
            Ok((skill, problems)) => (Some(skill), problems),
            Err(problems) => (None, problems),
        };
        let problems = self.levelled(problems);
        match skill {
            Some(mut skill) if !super::skill::any_error(&problems) => {
                skill.warnings = problems;
                Ok(skill)
            }
            _ => Err(problems),
        }
    }
}

impl Rules {
    /// Checks a file of a skill that is not its skill file (a script, a reference, an
    /// asset): when it is text (UTF-8, the whole of it), for hidden text and
    /// credentials. A binary file (an image, not UTF-8) has no text to check. Returns
    /// the findings, levelled by `[levels]`.
    pub fn validate_other(&self, path: &str, bytes: &[u8]) -> Vec<Problem> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.levelled(content_problems(self, path, text)),
            Err(_) => Vec::new(),
        }
    }
}

/// The checks of any text file of a skill, whatever its format: `hidden-text`,
/// `secret` and `agent-instructions`, each over the whole text (linear in its size).
fn content_problems(rules: &Rules, path: &str, text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if rules.level(Check::HiddenText) != super::skill::Level::Off {
        problems = super::unicode::hidden_text(path, text);
    }
    problems.extend(super::secrets::scan(path, text, &rules.secrets));
    if rules.level(Check::Padding) != super::skill::Level::Off {
        problems.extend(super::padding::scan(path, text));
    }
    if rules.level(Check::AgentInstructions) != super::skill::Level::Off {
        problems.extend(super::injection::scan(path, text));
    }
    problems
}

/// The skill with every finding, or (when the file cannot be read as a skill at all:
/// encoding, size, frontmatter) only the findings.
fn validate_with(
    rules: &Rules,
    path: &str,
    bytes: &[u8],
) -> Result<(Skill, Vec<Problem>), Vec<Problem>> {
    let slug = rules.slug_of(path);
    let mut problems = name_problems(rules, path, slug);
    let text = match text_of(rules, path, bytes) {
        Ok(text) => text,
        Err(problem) => {
            problems.push(*problem);
            return Err(problems);
        }
    };
    // The whole text, frontmatter and body, before anything is parsed: what the
    // agent reads, not what the parser keeps.
    problems.extend(content_problems(rules, path, text));
    let doc = match parse_frontmatter(rules, path, slug, text) {
        Ok(doc) => doc,
        Err(problem) => {
            problems.push(*problem);
            return Err(problems);
        }
    };
    let nul = nul_problems(path, &doc);
    if !nul.is_empty() {
        problems.extend(nul);
        return Err(problems);
    }
    let frontmatter = doc.to_json();
    let violations = super::schema::violations(&rules.schema, &frontmatter);
    // A key the repository's own schema allows is not an unknown field, whatever the
    // layout's list says: the schema is the repository's word on its keys.
    let schema_unexpected = rules
        .schema_path
        .is_some()
        .then(|| super::schema::unexpected_keys(&violations));
    let schema_allows = |key: &str| {
        schema_unexpected
            .as_ref()
            .is_some_and(|unexpected| !unexpected.contains(key))
    };
    let mut skill = match rules.layout {
        Layout::Flat => check_fields(path, slug, &doc, &mut problems),
        Layout::AgentSkills => {
            super::agent::check_fields(path, slug, &doc, &schema_allows, &mut problems)
        }
    };
    let reported: Vec<String> = problems.iter().filter_map(|p| p.field.clone()).collect();
    problems.extend(super::schema::problems(
        &rules.schema,
        &violations,
        path,
        &doc,
        &|field| {
            reported
                .iter()
                .any(|r| r == field || r.starts_with(&format!("{field}.")))
        },
    ));
    drop(violations); // (they borrow the frontmatter, which the skill takes next)
    // The cache's key: `namespace:slug` under a namespace folder.
    skill.slug = rules.key_of(path);
    fill_columns(&mut skill, &rules.columns, &frontmatter);
    skill.frontmatter = frontmatter;
    Ok((skill, problems))
}

/// The file's and its namespace folder's names: each must be a valid slug.
fn name_problems(rules: &Rules, path: &str, slug: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if rules.layout == Layout::Flat && !is_valid_slug(slug) {
        problems.push(
            Problem::new(
                Check::SlugFormat,
                path,
                format!("file name `{slug}.md` is not a valid slug"),
            )
            .at(1, None)
            .field("slug")
            .hint(format!(
                "use lowercase a-z, 0-9 and '-' only, e.g. rename the file to `{}.md`",
                suggest_slug(slug)
            ))
            .renaming_to(format!(
                "{}{}.md",
                &path[..path.len() - path.rsplit('/').next().unwrap_or(path).len()],
                suggest_slug(slug)
            )),
        );
    }
    if let Some(namespace) = rules.namespace_of(path)
        && !is_valid_slug(namespace)
    {
        problems.push(
                Problem::new(
                    Check::SlugFormat,
                    path,
                    format!("namespace folder `{namespace}` is not a valid slug"),
                )
                .at(1, None)
                .field("namespace")
                .hint(format!(
                    "a namespace folder's name (`namespaces` in skillsd.toml) is part of the skill's key: rename the folder to `{}`",
                    suggest_slug(namespace)
                )),
            );
    }
    problems
}

/// The file as text: within the size limit, no NUL byte, valid UTF-8.
fn text_of<'b>(rules: &Rules, path: &str, bytes: &'b [u8]) -> Result<&'b str, Box<Problem>> {
    let max_file_bytes = rules.max_file_bytes.min(MAX_FILE_BYTES);
    if bytes.len() > max_file_bytes {
        return Err(Box::new(
            Problem::new(
                Check::FileTooLarge,
                path,
                format!(
                    "file is {} bytes, more than the limit of {max_file_bytes}",
                    bytes.len()
                ),
            )
            .hint("split the skill into smaller ones, or move large content out of the repository"),
        ));
    }
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..pos].iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        return Err(Box::new(
            Problem::new(
                Check::BinaryFile,
                path,
                "file contains a NUL byte; it looks like a binary file",
            )
            .at(line, None)
            .hint("skills must be UTF-8 text; remove the binary content"),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u32
            + 1;
        Box::new(
            Problem::new(Check::Encoding, path, "file is not valid UTF-8")
                .at(line, None)
                .hint("save the file with UTF-8 encoding"),
        )
    })
}

/// The frontmatter, or what is wrong with it and how to mend it.
fn parse_frontmatter<'t>(
    rules: &Rules,
    path: &str,
    slug: &str,
    text: &'t str,
) -> Result<Document<'t>, Box<Problem>> {
    frontmatter::parse_limited(text, rules.max_frontmatter_bytes).map_err(|e| {
            let missing = match rules.layout {
                Layout::Flat => {
                    "start the file with a line `---`, then `title: ...`, then a closing `---` line"
                        .to_string()
                }
                Layout::AgentSkills => format!(
                    "start the file with a line `---`, then `name: {slug}`, then `description: ...` (what the skill does and when to use it), then a closing `---` line"
                ),
            };
            let hint = match &e {
                FrontmatterError::Missing => missing.as_str(),
                FrontmatterError::Unterminated => {
                    "add a line `---` after the last frontmatter field"
                }
                FrontmatterError::TooLarge { .. } => {
                    "keep long text in the Markdown body, not the frontmatter"
                }
                FrontmatterError::Yaml { .. } => {
                    "fix the YAML syntax; quote values that contain ':' or start with a special character"
                }
                FrontmatterError::NotAMapping { .. } => {
                    "write the frontmatter as `key: value` lines"
                }
                FrontmatterError::DuplicateKey { .. } => {
                    "keep one of the two lines and delete the other"
                }
            };
            Box::new(
                Problem::new(Check::Frontmatter, path, e.to_string())
                    .at(e.line(), e.column())
                    .hint(hint),
            )
    })
}

/// Each field that holds a NUL written as an escape.
fn nul_problems(path: &str, doc: &Document<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    // A NUL written as an escape (`"a\0b"`, `"\x00"`) passes the byte check above but
    // no PostgreSQL text or jsonb value can hold it: refused here, where the pusher
    // learns which field, not by the database after the refs moved.
    for f in &doc.fields {
        if f.key.contains('\0') || contains_nul(&f.value) {
            problems.push(
                Problem::new(
                    Check::NulCharacter,
                    path,
                    "contains a NUL character (an escaped \\0 or \\x00), which cannot be stored",
                )
                .at(f.line, Some(f.column))
                .field(&f.key.replace('\0', "\\0"))
                .hint("remove the NUL escape from the value"),
            );
        }
    }
    problems
}

/// `[columns]`: each mapped column from the first of its frontmatter paths that holds a
/// usable value (a string; for tags also a list of strings or a comma-separated
/// string). Columns none of whose paths is set keep what the layout gave them.
fn fill_columns(
    skill: &mut Skill,
    columns: &[(super::rules::Column, Vec<String>)],
    frontmatter: &serde_json::Value,
) {
    use super::rules::Column;
    use serde_json::Value;
    let lookup = |path: &str| -> Option<&Value> {
        path.split('.')
            .try_fold(frontmatter, |v, key| v.as_object()?.get(key))
            .filter(|v| !v.is_null())
    };
    for (column, paths) in columns {
        let text = || {
            paths
                .iter()
                .find_map(|p| lookup(p).and_then(Value::as_str))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        match column {
            Column::Title => {
                if let Some(t) = text() {
                    skill.title = t;
                }
            }
            Column::Description => skill.description = text().or(skill.description.take()),
            Column::Category => skill.category = text().or(skill.category.take()),
            Column::Owner => skill.owner = text().or(skill.owner.take()),
            Column::Tags => {
                let tags = paths.iter().find_map(|p| match lookup(p)? {
                    Value::Array(items) => Some(
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect::<Vec<_>>(),
                    ),
                    Value::String(s) => Some(
                        s.split(',')
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(str::to_string)
                            .collect(),
                    ),
                    _ => None,
                });
                if let Some(tags) = tags {
                    skill.tags = tags;
                }
            }
        }
    }
}

/// Does any string (or key) in `value` contain a NUL? Walked with an explicit stack.
fn contains_nul(value: &serde_json::Value) -> bool {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => return true,
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    return true;
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    false
}

fn check_fields(path: &str, slug: &str, doc: &Document<'_>, problems: &mut Vec<Problem>) -> Skill {
    let title = title_field(path, doc, problems);
    let description = optional_string(path, doc, "description", problems);
    let category = optional_string(path, doc, "category", problems);
    let owner = optional_string(path, doc, "owner", problems);
    let tags = tags_field(path, doc, problems);
    let status = status_field(path, doc, problems);
    slug_field(path, slug, doc, problems);

    // What a check set to `warning` lets through is read as if the field were
    // absent: the slug for a title, the default status.
    Skill {
        slug: slug.to_string(),
        path: path.to_string(),
        title: title.unwrap_or_else(|| slug.to_string()),
        description,
        category,
        owner,
        tags,
        status: status.unwrap_or(Status::Published),
        frontmatter: serde_json::Value::Null, // the caller's, converted once
        body: doc.body.to_string(),
        warnings: Vec::new(),
    }
}

/// `title`: required, a non-empty string (`None`: a problem was said).
fn title_field(path: &str, doc: &Document<'_>, problems: &mut Vec<Problem>) -> Option<String> {
    match doc.get("title") {
        None => {
            problems.push(
                Problem::new(Check::MissingField, path, "required field is missing")
                    .at(2, None)
                    .field("title")
                    .hint("add a line `title: A short human title` to the frontmatter"),
            );
            None
        }
        Some(f) => match &f.value {
            serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            serde_json::Value::String(_) | serde_json::Value::Null => {
                problems.push(
                    Problem::new(Check::EmptyField, path, "must not be empty")
                        .at(f.line, Some(f.column))
                        .field("title")
                        .hint("give the skill a short human title"),
                );
                None
            }
            other => {
                problems.push(not_a_string(
                    path,
                    "title",
                    (f.line, f.column),
                    other,
                    "quote the title: title: \"...\"",
                ));
                None
            }
        },
    }
}

/// `tags`: a list of strings; each item that is not one is a problem.
fn tags_field(path: &str, doc: &Document<'_>, problems: &mut Vec<Problem>) -> Vec<String> {
    match doc.get("tags") {
        None => Vec::new(),
        Some(f) => match &f.value {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Array(items) => {
                let mut tags = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        serde_json::Value::String(s) => tags.push(s.clone()),
                        other => problems.push(
                            Problem::new(
                                Check::FieldType,
                                path,
                                format!(
                                    "item {} must be a string, found {}",
                                    i + 1,
                                    describe(other)
                                ),
                            )
                            .at(f.line, Some(f.column))
                            .field("tags")
                            .hint("write tags as a list of words: tags: [git, review]"),
                        ),
                    }
                }
                tags
            }
            other => {
                problems.push(
                    Problem::new(
                        Check::FieldType,
                        path,
                        format!("must be a list of strings, found {}", describe(other)),
                    )
                    .at(f.line, Some(f.column))
                    .field("tags")
                    .hint("write tags as a list: tags: [git, review]"),
                );
                Vec::new()
            }
        },
    }
}

/// `status`: one of the lifecycle's statuses, PUBLISHED when absent (`None`: a
/// problem was said).
fn status_field(path: &str, doc: &Document<'_>, problems: &mut Vec<Problem>) -> Option<Status> {
    match doc.get("status") {
        None => Some(Status::Published),
        Some(f) => {
            let parsed = f.value.as_str().and_then(Status::parse);
            if parsed.is_none() {
                let shown = match &f.value {
                    serde_json::Value::String(s) => format!("`{s}`"),
                    other => describe(other).to_string(),
                };
                let mut hint = format!("use one of {}", Status::ALL.join(", "));
                if let Some(up) = f
                    .value
                    .as_str()
                    .map(|s| s.trim().to_ascii_uppercase().replace([' ', '-'], "_"))
                    && Status::parse(&up).is_some()
                {
                    hint = format!("statuses are upper case: status: {up}");
                }
                problems.push(
                    Problem::new(
                        Check::InvalidStatus,
                        path,
                        format!("{shown} is not a valid status"),
                    )
                    .at(f.line, Some(f.column))
                    .field("status")
                    .hint(hint),
                );
            }
            parsed
        }
    }
}

/// `slug`: optional; when present, the file name's.
fn slug_field(path: &str, slug: &str, doc: &Document<'_>, problems: &mut Vec<Problem>) {
    if let Some(f) = doc.get("slug") {
        match f.value.as_str() {
            Some(s) if s == slug => {}
            Some(s) => problems.push(
                Problem::new(Check::SlugMismatch, path, format!("`{s}` does not match the file name `{slug}.md`"))
                    .at(f.line, Some(f.column))
                    .field("slug")
                    .hint(format!(
                        "the slug is the file name: set `slug: {slug}`, remove the field, or rename the file to `{s}.md`"
                    )),
            ),
            None => problems.push(not_a_string(
                path,
                "slug",
                (f.line, f.column),
                &f.value,
                format!("set `slug: {slug}` or remove the field"),
            )),
        }
    }
}

pub(crate) fn optional_string(
    path: &str,
    doc: &Document<'_>,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let f = doc.get(key)?;
    match &f.value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => {
            problems.push(not_a_string(
                path,
                key,
                (f.line, f.column),
                other,
                format!("quote the value: {key}: \"...\""),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;
