//! Checks a frontmatter against the repository's JSON Schema and turns each violation
//! into a [`Problem`] people can act on: the field's line and column in the file, the
//! field's path (`metadata.owner`, `tags[2]`), a plain-words message, and a hint — the
//! schema's own `x-hint` for that field when it has one.

use super::frontmatter::Document;
use super::rules::Schema;
use super::skill::{Check, Problem};
use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind as K};
use jsonschema::paths::LocationSegment;
use serde_json::Value;

/// Every violation of `schema` by `frontmatter`: found once per file, then read by
/// [`unexpected_keys`] and turned into [`problems`].
pub(crate) fn violations<'a>(
    schema: &'a Schema,
    frontmatter: &'a Value,
) -> Vec<ValidationError<'a>> {
    schema.validator.iter_errors(frontmatter).collect()
}

/// The `violations` of `schema` in the frontmatter of `doc` as problems, skipping
/// fields for which `skip(field)` is true (the built-in checks already reported them,
/// in better words).
pub(crate) fn problems(
    schema: &Schema,
    violations: &[ValidationError<'_>],
    path: &str,
    doc: &Document<'_>,
    skip: &dyn Fn(&str) -> bool,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for error in violations {
        let segments: Vec<LocationSegment<'_>> = error.instance_path().iter().collect();
        let kind = error.kind();
        // Violations of the whole mapping name their fields themselves.
        let fields: Vec<(String, Vec<String>)> = match (kind, segments.is_empty()) {
            (K::Required { property }, true) => {
                vec![(value_str(property), Vec::new())]
            }
            (K::AdditionalProperties { unexpected }, true)
            | (K::UnevaluatedProperties { unexpected }, true) => unexpected
                .iter()
                .map(|k| (k.clone(), vec![k.clone()]))
                .collect(),
            _ => {
                let names: Vec<String> = segments.iter().map(segment_name).collect();
                let top = names.first().cloned().unwrap_or_default();
                vec![(top, names)]
            }
        };
        let schema_at = error.schema_path().as_str().to_string();
        for (top, names) in fields {
            if !top.is_empty() && skip(&top) {
                continue;
            }
            let field = display_path(&names, kind);
            let (message, generic_hint) = describe(kind, error.instance(), &names);
            let hint = x_hint(&schema.document, &schema_at, kind, &names).or(generic_hint);
            let mut problem = Problem::new(Check::Schema, path, message);
            problem = match doc.get(&top) {
                Some(f) => problem.at(f.line, Some(f.column)),
                None => problem.at(2, None),
            };
            if !field.is_empty() {
                problem = problem.field(&field);
            }
            if let Some(hint) = hint {
                problem = problem.hint(hint);
            }
            out.push(problem);
        }
    }
    out
}

/// The top-level keys that the schema's `violations` reject as additional or
/// unevaluated properties: every other key, the schema allows.
pub(crate) fn unexpected_keys(
    violations: &[ValidationError<'_>],
) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for error in violations {
        if error.instance_path().iter().next().is_some() {
            continue;
        }
        if let K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } =
            error.kind()
        {
            out.extend(unexpected.iter().cloned());
        }
    }
    out
}

fn segment_name(s: &LocationSegment<'_>) -> String {
    match s {
        LocationSegment::Property(p) => p.to_string(),
        LocationSegment::Index(i) => format!("[{i}]"),
    }
}

/// `metadata.owner`, `tags[2]`; for a missing or unknown key, the key itself.
fn display_path(names: &[String], kind: &K) -> String {
    let mut out = String::new();
    for n in names {
        if !n.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(n);
    }
    // A key missing from, or unexpected in, a nested mapping: `metadata.owner`.
    let nested_key = match kind {
        K::Required { property } => Some(value_str(property)),
        _ => None,
    };
    if let Some(k) = nested_key {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&k);
    }
    out
}

fn value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as the pusher wrote it, shortened.
fn shown(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    format!("`{out}`")
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn type_name(t: &str) -> &'static str {
    match t {
        "array" => "a list",
        "object" => "a mapping",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "empty",
        _ => "another type",
    }
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// The message, and a generic hint when the schema has none of its own.
fn describe(kind: &K, instance: &Value, names: &[String]) -> (String, Option<String>) {
    match kind {
        K::Required { property } => (
            if names.is_empty() {
                "required field is missing".to_string()
            } else {
                format!("required key `{}` is missing", value_str(property))
            },
            Some(format!("add `{}: ...`", value_str(property))),
        ),
        K::AdditionalProperties { .. } | K::UnevaluatedProperties { .. } => (
            "unknown field".to_string(),
            Some("remove it, or check its spelling against the schema".to_string()),
        ),
        K::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => type_name(t.as_str()).to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| type_name(t.as_str()))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            let hint = match expected.as_str() {
                "a list" => "write a list: [a, b]",
                "a mapping" => "write `key: value` pairs indented under the field",
                "a string" => "quote the value: \"...\"",
                _ => "change the value's type",
            };
            (
                format!("must be {expected}, found {}", kind_name(instance)),
                Some(hint.to_string()),
            )
        }
        K::Enum { options } => {
            let allowed = options
                .as_array()
                .map(|a| a.iter().map(value_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            (
                format!("{} is not an allowed value", shown(instance)),
                Some(format!("use one of {allowed}")),
            )
        }
        K::Constant { expected_value } => (
            format!("must be {}", shown(expected_value)),
            Some(format!("set it to {}", shown(expected_value))),
        ),
        K::MinLength { limit } if *limit <= 1 => (
            "must not be empty".to_string(),
            Some("write a value, or leave the field out if it is optional".to_string()),
        ),
        K::MinLength { limit } => (
            format!("is {} characters long, fewer than {limit}", chars(instance)),
            Some(format!("write at least {limit} characters")),
        ),
        K::MaxLength { limit } => (
            format!("is {} characters long, more than {limit}", chars(instance)),
            Some(format!("shorten it to at most {limit} characters")),
        ),
        K::Pattern { pattern } => (
            format!("{} does not match the pattern `{pattern}`", shown(instance)),
            None,
        ),
        K::MinItems { limit } => (
            format!(
                "has {} items, fewer than {limit}",
                instance.as_array().map_or(0, Vec::len)
            ),
            None,
        ),
        K::MaxItems { limit } => (
            format!(
                "has {} items, more than {limit}",
                instance.as_array().map_or(0, Vec::len)
            ),
            None,
        ),
        K::UniqueItems => (
            "has the same item more than once".to_string(),
            Some("remove the repeated items".to_string()),
        ),
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => (
            format!("{} is below the minimum {limit}", shown(instance)),
            None,
        ),
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => (
            format!("{} is above the maximum {limit}", shown(instance)),
            None,
        ),
        K::Format { format } => (format!("{} is not a valid {format}", shown(instance)), None),
        _ => {
            let keyword = kind.keyword();
            (
                format!("does not satisfy the schema's `{keyword}` rule"),
                None,
            )
        }
    }
}

/// The schema's `x-hint` for the failing part: the subschema the failing keyword is
/// in, or for a missing key the key's own subschema.
fn x_hint(schema: &Value, schema_at: &str, kind: &K, names: &[String]) -> Option<String> {
    let hint_at = |pointer: &str| {
        schema
            .pointer(pointer)
            .and_then(|s| s.get("x-hint"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let parent = schema_at.rsplit_once('/').map_or("", |(p, _)| p);
    match kind {
        K::Required { property } => {
            let key = escape(&value_str(property));
            hint_at(&format!("{parent}/properties/{key}"))
        }
        K::AdditionalProperties { .. } | K::UnevaluatedProperties { .. } => None,
        _ => hint_at(parent).or_else(|| {
            // A failing `items` or nested keyword: fall back to the top field's hint.
            let top = names.first()?;
            hint_at(&format!("/properties/{}", escape(top)))
        }),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use crate::skills::rules::{CONFIG_PATH, Rules, RulesSource};
    use crate::skills::{Problem, Skill};

    /// The flat layout with a schema that asks for more than the built-in rules.
    struct Strict;
    impl RulesSource for Strict {
        fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(match path {
                CONFIG_PATH => Some(b"schema = \"rules/s.json\"\n".to_vec()),
                "rules/s.json" => Some(
                    br#"{
                      "$schema": "https://json-schema.org/draft/2020-12/schema",
                      "type": "object",
                      "required": ["title", "owner"],
                      "properties": {
                        "title": {"type": "string"},
                        "owner": {"type": "string", "format": "email",
                                  "x-hint": "the owner is a team's mail address"},
                        "tags": {"type": "array", "items": {"type": "string"},
                                 "uniqueItems": true, "maxItems": 3},
                        "review": {"type": "object", "required": ["by"],
                                   "properties": {"by": {"type": "string"}}},
                        "level": {"enum": ["basic", "advanced"]}
                      },
                      "additionalProperties": false
                    }"#
                    .to_vec(),
                ),
                _ => None,
            })
        }
    }

    fn check(text: &str) -> Result<Skill, Vec<Problem>> {
        Rules::load(&Strict)
            .unwrap()
            .validate("skills/a.md", text.as_bytes())
    }

    #[test]
    fn schema_violations_are_located_and_explained() {
        let p = check(
            "---\ntitle: A\ntags: [x, y, x, z]\nreview: {}\nlevel: expert\ncolour: red\n---\n",
        )
        .unwrap_err();
        let got: Vec<(String, Option<u32>, String)> = p
            .iter()
            .map(|p| {
                (
                    p.field.clone().unwrap_or_default(),
                    p.line,
                    p.message.clone(),
                )
            })
            .collect();
        let want = [
            ("owner", Some(2), "required field is missing"),
            ("colour", Some(6), "unknown field"),
            ("level", Some(5), "`expert` is not an allowed value"),
            ("review.by", Some(4), "required key `by` is missing"),
            ("tags", Some(3), "has 4 items, more than 3"),
            ("tags", Some(3), "has the same item more than once"),
        ];
        for w in want {
            assert!(
                got.contains(&(w.0.to_string(), w.1, w.2.to_string())),
                "{w:?} not in {got:#?}"
            );
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
        let owner = p
            .iter()
            .find(|p| p.field.as_deref() == Some("owner"))
            .unwrap();
        assert_eq!(
            owner.hint.as_deref(),
            Some("the owner is a team's mail address")
        );
        let level = p
            .iter()
            .find(|p| p.field.as_deref() == Some("level"))
            .unwrap();
        assert_eq!(level.hint.as_deref(), Some("use one of basic, advanced"));
    }

    #[test]
    fn formats_are_checked_and_valid_files_pass() {
        let p = check("---\ntitle: A\nowner: not-an-address\n---\n").unwrap_err();
        assert_eq!(p[0].message, "`not-an-address` is not a valid email");
        assert_eq!(p[0].line, Some(3));
        let s = check("---\ntitle: A\nowner: team@example.com\ntags: [a]\n---\n").unwrap();
        assert_eq!(s.owner.as_deref(), Some("team@example.com"));
    }

    #[test]
    fn built_in_messages_win_over_the_schema_for_the_same_field() {
        // `title` is missing: the built-in check says so once, the schema's `required`
        // does not repeat it.
        let p = check("---\nowner: team@example.com\n---\n").unwrap_err();
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(p[0].field.as_deref(), Some("title"));
    }
}
