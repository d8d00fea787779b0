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
use super::skill::{describe, suggest_slug, Problem, Skill, Status};
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

pub(crate) fn check_fields(
    path: &str,
    folder: &str,
    doc: &Document<'_>,
    problems: &mut Vec<Problem>,
) -> Option<Skill> {
    if let Some(why) = name_problem(folder) {
        problems.push(
            Problem::new(path, format!("folder name {why}"))
                .at(1, None)
                .field("name")
                .hint(format!(
                    "a skill's folder is its name: rename the folder to `{}`",
                    suggest_name(folder)
                )),
        );
    }

    let name = match doc.get("name") {
        None => {
            problems.push(
                Problem::new(path, "required field is missing")
                    .at(2, None)
                    .field("name")
                    .hint(format!(
                        "add `name: {}` (the folder's name)",
                        suggest_name(folder)
                    )),
            );
            None
        }
        Some(f) => match &f.value {
            Value::String(s) => {
                if let Some(why) = name_problem(s) {
                    problems.push(
                        Problem::new(path, why)
                            .at(f.line, Some(f.column))
                            .field("name")
                            .hint(format!(
                                "use lowercase a-z, 0-9 and single hyphens, at most {MAX_NAME_CHARS} characters, e.g. `{}`",
                                suggest_name(s)
                            )),
                    );
                } else if s != folder {
                    problems.push(
                        Problem::new(path, format!("`{s}` does not match the folder name `{folder}`"))
                            .at(f.line, Some(f.column))
                            .field("name")
                            .hint(format!("the name is the folder's name: set `name: {folder}`, or rename the folder to `{s}`")),
                    );
                }
                Some(s.clone())
            }
            other => {
                problems.push(
                    Problem::new(path, format!("must be a string, found {}", describe(other)))
                        .at(f.line, Some(f.column))
                        .field("name")
                        .hint(format!("set `name: {}`", suggest_name(folder))),
                );
                None
            }
        },
    };

    let description = match doc.get("description") {
        None => {
            problems.push(
                Problem::new(path, "required field is missing")
                    .at(2, None)
                    .field("description")
                    .hint("add `description: ` saying what the skill does and when to use it"),
            );
            None
        }
        Some(f) => match &f.value {
            Value::String(s) if s.trim().is_empty() => {
                problems.push(
                    Problem::new(path, "must not be empty")
                        .at(f.line, Some(f.column))
                        .field("description")
                        .hint("say what the skill does and when to use it"),
                );
                None
            }
            Value::String(s) if s.chars().count() > MAX_DESCRIPTION_CHARS => {
                problems.push(
                    Problem::new(
                        path,
                        format!(
                            "is {} characters long, more than {MAX_DESCRIPTION_CHARS}",
                            s.chars().count()
                        ),
                    )
                    .at(f.line, Some(f.column))
                    .field("description")
                    .hint("keep it to what the skill does and when to use it; move details into the body"),
                );
                None
            }
            Value::String(s) => Some(s.clone()),
            other => {
                problems.push(
                    Problem::new(path, format!("must be a string, found {}", describe(other)))
                        .at(f.line, Some(f.column))
                        .field("description")
                        .hint("quote the value: description: \"...\""),
                );
                None
            }
        },
    };

    for key in ["license", "compatibility", "allowed-tools"] {
        let Some(f) = doc.get(key) else { continue };
        match &f.value {
            Value::String(s)
                if key == "compatibility"
                    && (s.trim().is_empty() || s.chars().count() > MAX_COMPATIBILITY_CHARS) =>
            {
                problems.push(
                    Problem::new(
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
                Problem::new(path, "must be a string, found a list")
                    .at(f.line, Some(f.column))
                    .field(key)
                    .hint("write the tools as one space-separated string: allowed-tools: Bash(git:*) Read"),
            ),
            other => problems.push(
                Problem::new(path, format!("must be a string, found {}", describe(other)))
                    .at(f.line, Some(f.column))
                    .field(key)
                    .hint(format!("quote the value: {key}: \"...\"")),
            ),
        }
    }

    let mut metadata = serde_json::Map::new();
    if let Some(f) = doc.get("metadata") {
        match &f.value {
            Value::Object(map) => {
                for (k, v) in map {
                    if v.is_string() {
                        metadata.insert(k.clone(), v.clone());
                    } else {
                        problems.push(
                            Problem::new(path, format!("must be a string, found {}", describe(v)))
                                .at(f.line, Some(f.column))
                                .field(&format!("metadata.{k}"))
                                .hint(format!(
                                    "metadata values are strings: quote it, {k}: \"...\""
                                )),
                        );
                    }
                }
            }
            Value::Null => {}
            other => problems.push(
                Problem::new(
                    path,
                    format!("must be a mapping, found {}", describe(other)),
                )
                .at(f.line, Some(f.column))
                .field("metadata")
                .hint("write `key: \"value\"` pairs indented under `metadata:`"),
            ),
        }
    }

    for f in &doc.fields {
        if ALLOWED_KEYS.contains(&f.key.as_str()) {
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
            Problem::new(path, "unknown field")
                .at(f.line, Some(f.column))
                .field(&f.key)
                .hint(hint),
        );
    }

    let meta = |k: &str| metadata.get(k).and_then(Value::as_str).map(str::to_string);
    let status = match meta("status") {
        None => Some(Status::Published),
        Some(s) => {
            let parsed = Status::parse(&s);
            if parsed.is_none() {
                let line = doc.get("metadata").map_or(2, |f| f.line);
                problems.push(
                    Problem::new(path, format!("`{s}` is not a valid status"))
                        .at(line, None)
                        .field("metadata.status")
                        .hint(format!("use one of {}", Status::ALL.join(", "))),
                );
            }
            parsed
        }
    };
    let tags = meta("tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();

    let name = name?;
    Some(Skill {
        slug: folder.to_string(),
        path: path.to_string(),
        title: meta("title").unwrap_or_else(|| name.clone()),
        description: Some(description?),
        category: meta("category"),
        owner: meta("owner"),
        tags,
        status: status?,
        frontmatter: Value::Null, // the caller's, converted once
        body: doc.body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skills::rules::{Rules, RulesSource, CONFIG_PATH};

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
