//! Splits a skill file into its YAML frontmatter and Markdown body, and parses the
//! frontmatter into an ordered list of fields that remember their line numbers.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Upper bound on the size of a frontmatter block.
pub const MAX_FRONTMATTER_BYTES: usize = 64 * 1024;

/// One `key: value` pair of the frontmatter.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub key: String,
    pub value: serde_json::Value,
    /// 1-based line of the key in the whole file.
    pub line: u32,
    /// 1-based column of the key.
    pub column: u32,
}

/// A parsed skill file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<'a> {
    pub fields: Vec<Field>,
    /// The Markdown after the closing `---` line.
    pub body: &'a str,
    /// The frontmatter's YAML as written (it starts on line 2 of the file).
    pub yaml: &'a str,
}

impl Document<'_> {
    pub fn get(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// Where key `key` of the mapping under `field` is written (file line, column),
    /// for block mappings (`metadata:` then indented `key: value` lines); `None` for
    /// flow mappings (`metadata: {a: 1}`) and keys not found.
    pub fn nested_key_position(&self, field: &Field, key: &str) -> Option<(u32, u32)> {
        let parent_indent = field.column.saturating_sub(1) as usize;
        let first = field.line.checked_sub(1)? as usize; // the yaml line after the field's
        let mut child_indent = None;
        for (i, line) in self.yaml.lines().enumerate().skip(first) {
            let trimmed = line.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if indent <= parent_indent {
                return None;
            }
            if *child_indent.get_or_insert(indent) != indent {
                continue;
            }
            let named = [
                format!("{key}:"),
                format!("\"{key}\":"),
                format!("'{key}':"),
            ]
            .iter()
            .any(|k| trimmed.starts_with(k.as_str()));
            if named {
                return Some((i as u32 + 2, indent as u32 + 1));
            }
        }
        None
    }

    /// All fields as a JSON object (the `frontmatter` column of the cache).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|f| (f.key.clone(), f.value.clone()))
                .collect(),
        )
    }
}

/// Why a file's frontmatter could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrontmatterError {
    #[error("the file does not start with a `---` frontmatter block")]
    Missing,
    #[error("the frontmatter block opened on line 1 is never closed with a `---` line")]
    Unterminated,
    #[error("the frontmatter block is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{message}")]
    Yaml {
        line: u32,
        column: u32,
        message: String,
    },
    #[error("the frontmatter is a YAML {found}, not a mapping of `key: value` pairs")]
    NotAMapping { found: &'static str },
    #[error("`{key}` is set twice{}", first.map(|l| format!(" (first on line {l})")).unwrap_or_default())]
    DuplicateKey {
        key: String,
        line: u32,
        column: u32,
        /// The file line of the first occurrence, when found.
        first: Option<u32>,
    },
}

impl FrontmatterError {
    /// 1-based line in the whole file where the problem is.
    pub fn line(&self) -> u32 {
        match self {
            FrontmatterError::Yaml { line, .. } | FrontmatterError::DuplicateKey { line, .. } => {
                *line
            }
            FrontmatterError::NotAMapping { .. } => 2,
            _ => 1,
        }
    }

    pub fn column(&self) -> Option<u32> {
        match self {
            FrontmatterError::Yaml { column, .. }
            | FrontmatterError::DuplicateKey { column, .. } => Some(*column),
            _ => None,
        }
    }
}

/// Splits `text` into (frontmatter YAML, body). The opening line must be exactly `---`;
/// the block ends at the next line that is exactly `---` (or `...`).
pub fn split(text: &str, max_bytes: usize) -> Result<(&str, &str), FrontmatterError> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or(FrontmatterError::Missing)?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if trimmed == "---" || trimmed == "..." {
            let yaml = &rest[..offset];
            let body = &rest[offset + line.len()..];
            if yaml.len() > max_bytes {
                return Err(FrontmatterError::TooLarge { limit: max_bytes });
            }
            return Ok((yaml, body));
        }
        offset += line.len();
        if offset > max_bytes {
            return Err(FrontmatterError::TooLarge { limit: max_bytes });
        }
    }
    Err(FrontmatterError::Unterminated)
}

/// Parses a whole skill file with the built-in frontmatter limit.
pub fn parse(text: &str) -> Result<Document<'_>, FrontmatterError> {
    parse_limited(text, MAX_FRONTMATTER_BYTES)
}

/// Parses a whole skill file whose frontmatter may hold at most `max_bytes` (never more
/// than the built-in [`MAX_FRONTMATTER_BYTES`], which bounds the YAML parser's budget).
pub fn parse_limited(text: &str, max_bytes: usize) -> Result<Document<'_>, FrontmatterError> {
    let (yaml, body) = split(text, max_bytes.min(MAX_FRONTMATTER_BYTES))?;
    // The YAML starts on line 2 of the file.
    const LINE_OFFSET: u32 = 1;
    if yaml.trim().is_empty() {
        return Ok(Document {
            fields: Vec::new(),
            body,
            yaml,
        });
    }
    // One parse for a mapping with keys, the common case. Anything else (not YAML, no
    // mapping, or an empty one: a `~` or a comment) is read again as a value, which
    // says which of those it is.
    let fields = match serde_saphyr::from_str_with_options::<Fields>(yaml, options()) {
        Ok(fields) if !fields.0.is_empty() => fields,
        parsed => {
            let value: serde_json::Value = serde_saphyr::from_str_with_options(yaml, options())
                .map_err(|e| yaml_error(&e, yaml))?;
            if !value.is_object() {
                return Err(FrontmatterError::NotAMapping {
                    found: kind_name(&value),
                });
            }
            parsed.map_err(|e| yaml_error(&e, yaml))?
        }
    };
    let fields = fields
        .0
        .into_iter()
        .map(|(key, value)| Field {
            key: key.value,
            value: value.value,
            line: key.referenced.line() as u32 + LINE_OFFSET,
            column: key.referenced.column().max(1) as u32,
        })
        .collect();
    Ok(Document { fields, body, yaml })
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    // A frontmatter block is small: keep every resource bound tight so that a
    // "billion laughs" document is refused quickly and in bounded memory.
    budget.max_events = 20_000;
    budget.max_aliases = 100;
    budget.max_anchors = 100;
    budget.max_depth = 32;
    budget.max_recorded_anchor_events = 10_000;
    budget.max_total_scalar_bytes = MAX_FRONTMATTER_BYTES * 2;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 10_000;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.strict_booleans = true;
    options.with_snippet = false;
    options
}

/// `err` for people: located on the file's lines (the frontmatter starts on line 2);
/// a repeated key says which key and where it was first set.
fn yaml_error(err: &serde_saphyr::Error, yaml: &str) -> FrontmatterError {
    let (line, column) = err
        .location()
        .map(|l| (l.line() as u32 + 1, l.column().max(1) as u32))
        .unwrap_or((2, 1));
    if let Some(key) = err
        .to_string()
        .lines()
        .next()
        .and_then(|m| m.strip_prefix("duplicate mapping key: "))
        .map(|rest| {
            rest.split(", set DuplicateKeyPolicy")
                .next()
                .unwrap_or(rest)
                .trim()
                .to_string()
        })
    {
        // The first line before this one that sets the same key at the same indent.
        let indent = column.saturating_sub(1) as usize;
        let first = yaml
            .lines()
            .take(line.saturating_sub(2) as usize)
            .position(|l| {
                l.len() > indent
                    && l[..indent].chars().all(|c| c == ' ')
                    && (l[indent..].starts_with(&format!("{key}:"))
                        || l[indent..].starts_with(&format!("\"{key}\":"))
                        || l[indent..].starts_with(&format!("'{key}':")))
            })
            .map(|i| i as u32 + 2);
        return FrontmatterError::DuplicateKey {
            key,
            line,
            column,
            first,
        };
    }
    // The error's Display may carry a rendered snippet; keep the first line only.
    let message = err.to_string();
    let message = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid YAML")
        .trim();
    // The parser counts lines from the frontmatter's start: its own "at line N,
    // column M" would contradict the file line the problem carries.
    let message = match message.rfind(" at line ") {
        Some(i) if message[i..].contains(", column ") => message[..i].to_string(),
        _ => message.to_string(),
    };
    FrontmatterError::Yaml {
        line,
        column,
        message,
    }
}

fn kind_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null value",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "mapping",
    }
}

/// Ordered `key: value` pairs with their locations.
struct Fields(Vec<(Spanned<String>, Spanned<serde_json::Value>)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Fields(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frontmatter_and_body() {
        let (yaml, body) = split("---\ntitle: x\n---\n# Body\n", MAX_FRONTMATTER_BYTES).unwrap();
        assert_eq!(yaml, "title: x\n");
        assert_eq!(body, "# Body\n");
    }

    #[test]
    fn crlf_is_accepted() {
        let doc = parse("---\r\ntitle: x\r\n---\r\nbody").unwrap();
        assert_eq!(doc.get("title").unwrap().value, "x");
        assert_eq!(doc.body, "body");
    }

    #[test]
    fn missing_and_unterminated() {
        assert_eq!(
            parse("# no frontmatter").unwrap_err(),
            FrontmatterError::Missing
        );
        assert_eq!(
            parse("---\ntitle: x\n").unwrap_err(),
            FrontmatterError::Unterminated
        );
    }

    #[test]
    fn fields_keep_order_and_lines() {
        let doc = parse("---\ntitle: A\n\ntags:\n  - a\n  - b\nstatus: DRAFT\n---\n").unwrap();
        let keys: Vec<_> = doc
            .fields
            .iter()
            .map(|f| (f.key.as_str(), f.line))
            .collect();
        assert_eq!(keys, vec![("title", 2), ("tags", 4), ("status", 7)]);
        assert_eq!(
            doc.get("tags").unwrap().value,
            serde_json::json!(["a", "b"])
        );
    }

    #[test]
    fn yaml_errors_point_at_the_file_line() {
        let err = parse("---\ntitle: A\nbad: [unclosed\n---\n").unwrap_err();
        match err {
            FrontmatterError::Yaml { line, .. } => assert!((3..=4).contains(&line), "line {line}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The parse as it was before it read a mapping once: the document as a value
    /// first (an error, or not a mapping), then its fields.
    fn parse_twice(text: &str) -> Result<Document<'_>, FrontmatterError> {
        let (yaml, body) = split(text, MAX_FRONTMATTER_BYTES)?;
        if yaml.trim().is_empty() {
            return Ok(Document {
                fields: Vec::new(),
                body,
                yaml,
            });
        }
        let value: serde_json::Value = serde_saphyr::from_str_with_options(yaml, options())
            .map_err(|e| yaml_error(&e, yaml))?;
        if !value.is_object() {
            return Err(FrontmatterError::NotAMapping {
                found: kind_name(&value),
            });
        }
        let fields: Fields = serde_saphyr::from_str_with_options(yaml, options())
            .map_err(|e| yaml_error(&e, yaml))?;
        let fields = fields
            .0
            .into_iter()
            .map(|(key, value)| Field {
                key: key.value,
                value: value.value,
                line: key.referenced.line() as u32 + 1,
                column: key.referenced.column().max(1) as u32,
            })
            .collect();
        Ok(Document { fields, body, yaml })
    }

    #[test]
    fn one_parse_answers_as_two_did() {
        let cases = [
            "title: A\nowner: x\n",
            "{}\n",
            "~\n",
            "null\n",
            "# only a comment\n",
            "- a\n- b\n",
            "just text\n",
            "42\n",
            "true\n",
            "[a, b]\n",
            "title: A\ntitle: B\n",
            "title: A\nbad: [unclosed\n",
            "a: &x [1, 2]\nb: *x\n",
            "? [complex, key]\n: value\n",
            "1: one\n2: two\n",
            "title: A\n  indented: wrong\n",
            "tags: [a, b]\nmetadata:\n  k: v\n",
            "\t title: tab\n",
            "--- \ntitle: second document\n",
            "title: A\n...\n",
            "!!map {a: 1}\n",
            "!!str text\n",
            "<<: {a: 1}\nb: 2\n",
        ];
        for yaml in cases {
            let text = format!("---\n{yaml}---\n# Body\n");
            assert_eq!(parse(&text), parse_twice(&text), "{yaml:?}");
        }
    }

    #[test]
    fn not_a_mapping() {
        let err = parse("---\n- a\n- b\n---\n").unwrap_err();
        assert_eq!(err, FrontmatterError::NotAMapping { found: "list" });
    }

    #[test]
    fn duplicate_keys_are_refused_by_name_and_line() {
        let err = parse("---\ntitle: A\nowner: x\ntitle: B\n---\n").unwrap_err();
        assert_eq!(
            err,
            FrontmatterError::DuplicateKey {
                key: "title".into(),
                line: 4,
                column: 1,
                first: Some(2),
            }
        );
        assert_eq!(err.to_string(), "`title` is set twice (first on line 2)");
        // Nested: the first occurrence at the same indent.
        let err = parse("---\ntitle: A\nmetadata:\n  a: 1\n  b: 2\n  a: 3\n---\n").unwrap_err();
        assert_eq!(err.to_string(), "`a` is set twice (first on line 4)");
        assert_eq!(err.line(), 6);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut y = String::from(
            "---\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..10 {
            let prev = (b'a' + i - 1) as char;
            let cur = (b'a' + i) as char;
            y.push_str(&format!(
                "{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
            ));
        }
        y.push_str("title: x\n---\n");
        assert!(matches!(
            parse(&y).unwrap_err(),
            FrontmatterError::Yaml { .. }
        ));
    }
}
