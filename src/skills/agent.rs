//! The Agent Skills layout (agentskills.io): `skills/<name>/SKILL.md`, whose
//! frontmatter has `name` (1–64 characters of `a-z0-9-`, no leading, trailing or
//! doubled hyphen, equal to the folder name) and `description` (1–1024 characters),
//! and may have `license`, `compatibility` (1–500), `allowed-tools` and `metadata` (a
//! mapping of strings), and nothing else. These checks hold whatever the repository's
//! schema says, because the cache depends on them.
//!
//! The cache row of such a skill: slug = name, title = `metadata.title` or the name,
//! category, owner and status from `metadata`, tags from `metadata.tags` (comma
//! separated).

use super::frontmatter::Document;
use super::skill::{Check, Problem, Skill, Status, describe, not_a_string, suggest_slug};
use serde_json::Value;

/// The keys the specification allows.
pub const ALLOWED_KEYS: [&str; 6] = [
    "name",
    "description",
    "license",
    "compatibility",
    "allowed-tools",
    "metadata",
];

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
pub const MAX_COMPATIBILITY_CHARS: usize = 500;

/// What is wrong with a skill name, if anything.
pub fn name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if name.is_empty() {
        Some("must not be empty".into())
    } else if chars > MAX_NAME_CHARS {
        Some(format!(
            "is {chars} characters long, more than {MAX_NAME_CHARS}"
        ))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some(format!(
            "`{name}` may contain only lowercase letters a-z, digits and hyphens"
        ))
    } else if name.starts_with('-') || name.ends_with('-') {
        Some(format!("`{name}` starts or ends with a hyphen"))
    } else if name.contains("--") {
        Some(format!("`{name}` contains two hyphens in a row"))
    } else {
        None
    }
}

/// A valid name close to `s`.
fn suggest_name(s: &str) -> String {
    let mut out = suggest_slug(s);
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.chars()
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Checks the frontmatter of the skill in folder `folder` and builds its cache row.
/// Every finding goes to `problems`; the row is built all the same, reading a value
/// that a (relaxed) check objected to as if it were absent. Keys `schema_allows` are
/// the repository schema's business, not unknown fields.
pub(crate) fn check_fields(
    path: &str,
    folder: &str,
    doc: &Document<'_>,
    schema_allows: &dyn Fn(&str) -> bool,
    problems: &mut Vec<Problem>,
) -> Skill {
    check_folder(path, folder, problems);
    let name = check_name(path, folder, doc, problems);
    let description = check_description(path, doc, problems);
    check_optional_strings(path, doc, problems);
    let metadata = check_metadata(path, doc, problems);
    check_unknown_keys(path, doc, schema_allows, problems);

    let meta = |k: &str| metadata.get(k).and_then(Value::as_str).map(str::to_string);
    let status = metadata_status(meta("status"));
    let tags = meta("tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Skill {
        slug: folder.to_string(),
        path: path.to_string(),
        title: meta("title").or(name).unwrap_or_else(|| folder.to_string()),
        description,
        category: meta("category"),
        owner: meta("owner"),
        tags,
        status,
        frontmatter: Value::Null, // the caller's, converted once
        body: doc.body.to_string(),
        warnings: Vec::new(),
    }
}

/// The folder's name is the skill's slug.
fn check_folder(path: &str, folder: &str, problems: &mut Vec<Problem>) {
    if let Some(why) = name_problem(folder) {
        let to = suggest_name(folder);
        problems.push(
            Problem::new(Check::SlugFormat, path, format!("folder name {why}"))
                .at(1, None)
                .field("name")
                .hint(format!(
                    "a skill's folder is its name: rename the folder to `{to}` and set `name: {to}`"
                ))
                .renaming_to(sibling(path, &to)),
        );
    }
}

/// The folder `name` next to the skill folder of `path` (its `SKILL.md`), as a folder
/// path ending in `/`.
fn sibling(path: &str, name: &str) -> String {
    let folder = path.rsplit_once('/').map_or("", |(f, _)| f);
    let parent = folder.rsplit_once('/').map_or("", |(p, _)| p);
    if parent.is_empty() {
        format!("{name}/")
    } else {
        format!("{parent}/{name}/")
    }
}

/// `name`: required, a valid name, equal to the folder's.
fn check_name(
    path: &str,
    folder: &str,
    doc: &Document<'_>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let Some(f) = doc.get("name") else {
        problems.push(
            Problem::new(Check::MissingField, path, "required field is missing")
                .at(2, None)
                .field("name")
                .hint(format!(
                    "add `name: {}` (the folder's name)",
                    suggest_name(folder)
                )),
        );
        return None;
    };
    let Value::String(s) = &f.value else {
        problems.push(not_a_string(
            path,
            "name",
            (f.line, f.column),
            &f.value,
            format!("set `name: {}`", suggest_name(folder)),
        ));
        return None;
    };
    if let Some(why) = name_problem(s) {
        problems.push(
            Problem::new(Check::NameFormat, path, why)
                .at(f.line, Some(f.column))
                .field("name")
                .hint(format!(
                    "use lowercase a-z, 0-9 and single hyphens, at most {MAX_NAME_CHARS} characters, e.g. `{}`",
                    suggest_name(s)
                )),
        );
    } else if s != folder {
        // A folder whose own name is no valid name cannot be kept: only the rename.
        let hint = if name_problem(folder).is_some() {
            format!("the name is the folder's name: rename the folder to `{s}`")
        } else {
            format!(
                "the name is the folder's name: set `name: {folder}`, or rename the folder to `{s}`"
            )
        };
        problems.push(
            Problem::new(
                Check::NameMismatch,
                path,
                format!("`{s}` does not match the folder name `{folder}`"),
            )
            .at(f.line, Some(f.column))
            .field("name")
            .hint(hint)
            .renaming_to(sibling(path, s)),
        );
    }
    Some(s.clone())
}

/// `description`: required, 1 to 1,024 characters. A relaxed over-long one is kept.
fn check_description(
    path: &str,
    doc: &Document<'_>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let Some(f) = doc.get("description") else {
        problems.push(
            Problem::new(Check::MissingField, path, "required field is missing")
                .at(2, None)
                .field("description")
                .hint("add `description: ` saying what the skill does and when to use it"),
        );
        return None;
    };
    match &f.value {
        Value::String(s) if s.trim().is_empty() => {
            problems.push(
                Problem::new(Check::EmptyField, path, "must not be empty")
                    .at(f.line, Some(f.column))
                    .field("description")
                    .hint("say what the skill does and when to use it"),
            );
            None
        }
        Value::String(s) => {
            let chars = s.chars().count();
            if chars > MAX_DESCRIPTION_CHARS {
                problems.push(
                    Problem::new(
                        Check::DescriptionTooLong,
                        path,
                        format!("is {chars} characters long, more than {MAX_DESCRIPTION_CHARS}"),
                    )
                    .at(f.line, Some(f.column))
                    .field("description")
                    .hint("keep it to what the skill does and when to use it; move details into the body"),
                );
            }
            Some(s.clone())
        }
        other => {
            problems.push(not_a_string(
                path,
                "description",
                (f.line, f.column),
                other,
                "quote the value: description: \"...\"",
            ));
            None
        }
    }
}

/// `license`, `compatibility` (1 to 500 characters) and `allowed-tools`: strings.
fn check_optional_strings(path: &str, doc: &Document<'_>, problems: &mut Vec<Problem>) {
    for key in ["license", "compatibility", "allowed-tools"] {
        let Some(f) = doc.get(key) else { continue };
        match &f.value {
            Value::String(s)
                if key == "compatibility"
                    && (s.trim().is_empty() || s.chars().count() > MAX_COMPATIBILITY_CHARS) =>
            {
                problems.push(
                    Problem::new(
                        Check::CompatibilityLength,
                        path,
                        format!(
                            "must be 1 to {MAX_COMPATIBILITY_CHARS} characters, found {}",
                            s.chars().count()
                        ),
                    )
                    .at(f.line, Some(f.column))
                    .field(key)
                    .hint("state the environment the skill needs briefly, or leave the field out"),
                );
            }
            Value::String(_) => {}
            Value::Array(_) if key == "allowed-tools" => problems.push(
                Problem::new(Check::AllowedToolsType, path, "must be a string, found a list")
                    .at(f.line, Some(f.column))
                    .field(key)
                    .hint("write the tools as one space-separated string: allowed-tools: Bash(git:*) Read"),
            ),
            other => problems.push(not_a_string(
                path,
                key,
                (f.line, f.column),
                other,
                format!("quote the value: {key}: \"...\""),
            )),
        }
    }
}

/// `metadata`: a mapping of strings. Returns its string values; a value of another
/// type is reported on its own line.
fn check_metadata(
    path: &str,
    doc: &Document<'_>,
    problems: &mut Vec<Problem>,
) -> serde_json::Map<String, Value> {
    let mut metadata = serde_json::Map::new();
    let Some(f) = doc.get("metadata") else {
        return metadata;
    };
    match &f.value {
        Value::Object(map) => {
            for (k, v) in map {
                if v.is_string() {
                    metadata.insert(k.clone(), v.clone());
                    continue;
                }
                let (line, column) = doc.nested_key_position(f, k).unwrap_or((f.line, f.column));
                let hint = match v {
                    Value::Array(_) => format!(
                        "metadata holds strings only: write the list as one string, {k}: \"a, b\""
                    ),
                    Value::Object(_) => format!(
                        "metadata holds strings only: flatten the mapping into keys of their own, e.g. {k}-name: \"...\""
                    ),
                    Value::Null => format!("give it a value, {k}: \"...\", or remove the line"),
                    other => format!("metadata holds strings only: quote it, {k}: \"{other}\""),
                };
                problems.push(
                    Problem::new(
                        Check::MetadataType,
                        path,
                        format!("must be a string, found {}", describe(v)),
                    )
                    .at(line, Some(column))
                    .field(&format!("metadata.{k}"))
                    .hint(hint),
                );
            }
        }
        Value::Null => {}
        other => problems.push(
            Problem::new(
                Check::MetadataType,
                path,
                format!("must be a mapping, found {}", describe(other)),
            )
            .at(f.line, Some(f.column))
            .field("metadata")
            .hint("write `key: \"value\"` pairs indented under `metadata:`"),
        ),
    }
    metadata
}

/// Keys neither the specification nor the repository's schema allows.
fn check_unknown_keys(
    path: &str,
    doc: &Document<'_>,
    schema_allows: &dyn Fn(&str) -> bool,
    problems: &mut Vec<Problem>,
) {
    for f in &doc.fields {
        if ALLOWED_KEYS.contains(&f.key.as_str()) || schema_allows(&f.key) {
            continue;
        }
        let close = ALLOWED_KEYS
            .iter()
            .find(|k| k.replace('-', "_") == f.key.to_ascii_lowercase().replace('-', "_"));
        let hint = match close {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!(
                "the Agent Skills format allows {}; put anything else under `metadata:` as `{}: \"...\"`",
                ALLOWED_KEYS.join(", "),
                f.key
            ),
        };
        problems.push(
            Problem::new(Check::UnknownField, path, "unknown field")
                .at(f.line, Some(f.column))
                .field(&f.key)
                .hint(hint),
        );
    }
}

/// The status `metadata.status` gives the cache row: one of skillsd's statuses
/// (`DRAFT`, `IN_REVIEW`, `PUBLISHED`, `ARCHIVED`) sets it; any other value
/// (`deprecated`, `beta`) is the collection's own and free-form, as the Agent Skills
/// specification leaves `metadata`: kept in the frontmatter, never a problem, and the
/// row is `PUBLISHED`. skillsd's `invalid-status` check is for its own `status` field
/// (the flat layout's).
fn metadata_status(status: Option<String>) -> Status {
    status
        .as_deref()
        .and_then(Status::parse)
        .unwrap_or(Status::Published)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skills::Level;
    use crate::skills::rules::{CONFIG_PATH, Rules, RulesSource};

    struct Agent;
    impl RulesSource for Agent {
        fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
            Ok((path == CONFIG_PATH).then(|| b"layout = \"agent-skills\"\n".to_vec()))
        }
    }

    fn check(path: &str, text: &str) -> Result<Skill, Vec<Problem>> {
        Rules::load(&Agent).unwrap().validate(path, text.as_bytes())
    }

    #[test]
    fn a_good_skill() {
        let s = check(
            "skills/pdf-tools/SKILL.md",
            "---\nname: pdf-tools\ndescription: Fill PDF forms. Use when asked to fill a PDF.\nlicense: MIT\nallowed-tools: Bash(python:*) Read\nmetadata:\n  owner: docs-team\n  tags: pdf, forms\n  status: DRAFT\n---\n# PDF\n",
        )
        .unwrap();
        assert_eq!(s.slug, "pdf-tools");
        assert_eq!(s.title, "pdf-tools");
        assert_eq!(s.owner.as_deref(), Some("docs-team"));
        assert_eq!(s.tags, vec!["pdf", "forms"]);
        assert_eq!(s.status, Status::Draft);
        assert_eq!(s.body, "# PDF\n");
    }

    /// `metadata` is free-form (the Agent Skills specification): a status of the
    /// collection's own is kept, not refused as `invalid-status`.
    #[test]
    fn metadata_status_is_free_form() {
        for value in ["deprecated", "beta", "draft", "\"\""] {
            let text = format!(
                "---\nname: pdf\ndescription: Fill PDF forms.\nmetadata:\n  status: {value}\n---\n# PDF\n"
            );
            let s = check("skills/pdf/SKILL.md", &text)
                .unwrap_or_else(|p| panic!("metadata.status {value} refused: {p:?}"));
            assert_eq!(s.status, Status::Published, "{value}");
            assert!(s.warnings.is_empty(), "{value}: {:?}", s.warnings);
        }
        let text =
            "---\nname: pdf\ndescription: Fill PDF forms.\nmetadata:\n  status: deprecated\n---\n";
        let s = check("skills/pdf/SKILL.md", text).unwrap();
        assert_eq!(s.frontmatter["metadata"]["status"], "deprecated");
        // skillsd's own values still set the status.
        let archived = text.replace("deprecated", "ARCHIVED");
        let s = check("skills/pdf/SKILL.md", &archived).unwrap();
        assert_eq!(s.status, Status::Archived);
    }

    struct Config(&'static str, Option<&'static str>);
    impl RulesSource for Config {
        fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(match path {
                CONFIG_PATH => Some(self.0.as_bytes().to_vec()),
                "rules/schema.json" => self.1.map(|s| s.as_bytes().to_vec()),
                _ => None,
            })
        }
    }

    /// A real collection's skill: client keys, tools as a list, a long description,
    /// non-string metadata, a name unlike its folder.
    const REAL: &str = "---\nname: PDF Tools\ndescription: DESC\nargument-hint: \"[file]\"\nallowed-tools:\n  - Read\n  - Bash\nmetadata:\n  author: docs-team\n  version: 2\n  related:\n    - name: x\n---\n# PDF\n";

    #[test]
    fn relaxed_checks_are_warnings_and_the_skill_is_cached_as_if_the_values_were_absent() {
        let text = REAL.replace("DESC", &"d".repeat(1100));
        let strict = Config("layout = \"agent-skills\"\n", None);
        let p = Rules::load(&strict)
            .unwrap()
            .validate("skills/pdf-tools/SKILL.md", text.as_bytes())
            .unwrap_err();
        let mut got: Vec<(u32, &str, Level)> = p
            .iter()
            .map(|p| (p.line.unwrap(), p.check.id(), p.level))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (2, "name-format", Level::Error),
                (3, "description-too-long", Level::Error),
                (4, "unknown-field", Level::Error),
                (5, "allowed-tools-type", Level::Error),
                // The values' own lines, not `metadata:`'s.
                (10, "metadata-type", Level::Error),
                (11, "metadata-type", Level::Error),
            ]
        );
        let at = |line: u32| {
            p.iter()
                .find(|p| p.line == Some(line))
                .unwrap()
                .hint
                .clone()
                .unwrap()
        };
        assert!(
            at(11).contains("write the list as one string, related: \"a, b\""),
            "{}",
            at(11)
        );
        assert!(at(10).contains("quote it, version: \"2\""), "{}", at(10));

        let relaxed = Config(
            "layout = \"agent-skills\"\n[levels]\nname-format = \"warning\"\ndescription-too-long = \"warning\"\nallowed-tools-type = \"warning\"\nmetadata-type = \"warning\"\nunknown-field = \"off\"\n[columns]\nowner = [\"owner\", \"metadata.author\"]\n",
            None,
        );
        let skill = Rules::load(&relaxed)
            .unwrap()
            .validate("skills/pdf-tools/SKILL.md", text.as_bytes())
            .unwrap();
        assert_eq!(skill.slug, "pdf-tools");
        assert_eq!(skill.title, "PDF Tools");
        assert_eq!(skill.description.as_deref().map(str::len), Some(1100));
        assert_eq!(skill.owner.as_deref(), Some("docs-team"));
        let mut warned: Vec<&str> = skill.warnings.iter().map(|w| w.check.id()).collect();
        warned.sort();
        assert_eq!(
            warned,
            vec![
                "allowed-tools-type",
                "description-too-long",
                "metadata-type",
                "metadata-type",
                "name-format"
            ]
        );
        assert!(skill.warnings.iter().all(|w| w.level == Level::Warning));
        // Unknown keys are kept in the frontmatter either way.
        assert_eq!(skill.frontmatter["argument-hint"], "[file]");
        assert_eq!(skill.frontmatter["metadata"]["version"], 2);
    }

    #[test]
    fn keys_the_repository_schema_allows_are_not_unknown() {
        let open = Config(
            "layout = \"agent-skills\"\nschema = \"rules/schema.json\"\n",
            Some(
                r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": true}"#,
            ),
        );
        let text = "---\nname: pdf\ndescription: Fill PDFs.\nargument-hint: x\nversion: 1\n---\n";
        let skill = Rules::load(&open)
            .unwrap()
            .validate("skills/pdf/SKILL.md", text.as_bytes())
            .unwrap();
        assert!(skill.warnings.is_empty());
        assert_eq!(skill.frontmatter["version"], 1);
        // A schema that lists its keys allows those only.
        let listed = Config(
            "layout = \"agent-skills\"\nschema = \"rules/schema.json\"\n",
            Some(
                r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {"name": {}, "description": {}, "argument-hint": {"type": "string"}}, "additionalProperties": false}"#,
            ),
        );
        let p = Rules::load(&listed)
            .unwrap()
            .validate("skills/pdf/SKILL.md", text.as_bytes())
            .unwrap_err();
        let got: Vec<(&str, Option<&str>)> = p
            .iter()
            .map(|p| (p.check.id(), p.field.as_deref()))
            .collect();
        assert_eq!(got, vec![("unknown-field", Some("version"))]);
    }

    #[test]
    fn names() {
        assert_eq!(name_problem("a-b-1"), None);
        assert!(name_problem("").is_some());
        assert!(name_problem("A").is_some());
        assert!(name_problem("-a").is_some());
        assert!(name_problem("a-").is_some());
        assert!(name_problem("a--b").is_some());
        assert!(name_problem(&"a".repeat(64)).is_none());
        assert!(name_problem(&"a".repeat(65)).is_some());
        assert_eq!(suggest_name("My__Skill"), "my-skill");
        assert_eq!(suggest_name("café"), "cafe");
        assert_eq!(suggest_name("Straße Ökonomie"), "strasse-okonomie");
    }

    #[test]
    fn every_problem_at_once() {
        let long = "d".repeat(1025);
        let text = format!(
            "---\nname: other\ndescription: {long}\nversion: 2\nallowed_tools: Read\nmetadata:\n  n: 1\n---\n"
        );
        let p = check("skills/pdf/SKILL.md", &text).unwrap_err();
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.field.as_deref().unwrap_or(""), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("name", "`other` does not match the folder name `pdf`"),
                ("description", "is 1025 characters long, more than 1024"),
                ("metadata.n", "must be a string, found a number"),
                ("version", "unknown field"),
                ("allowed_tools", "unknown field"),
            ]
        );
        assert_eq!(p[4].hint.as_deref(), Some("did you mean `allowed-tools`?"));
        assert_eq!(p[0].line, Some(2));
        assert_eq!(p[3].line, Some(4));
    }

    #[test]
    fn missing_fields_and_bad_folder() {
        let p = check("skills/My_Skill/SKILL.md", "---\nlicense: MIT\n---\n").unwrap_err();
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_deref().unwrap()).collect();
        assert_eq!(fields, vec!["name", "name", "description"]);
        assert!(p[0].hint.as_deref().unwrap().contains("`my-skill`"));
    }
}
