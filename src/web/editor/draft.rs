//! The editor's form as data: the fields a repository's schema offers
//! ([`fields`]), a skill file read into them ([`Draft::from_file`]), and the file
//! composed back from what the form sends ([`Draft::compose`]).
//!
//! The form edits the frontmatter keys it can show plainly (strings, lists of
//! strings as comma-separated text, enums as choices, booleans, numbers); every other
//! key (a mapping, a value that does not fit its field) stays in a YAML text area as
//! written. Composing keeps the file's key order, so an edit of one field changes one
//! line. What the form sends is never trusted: the composed file is checked like a
//! push by [`crate::edit::submit`].

use crate::skills::frontmatter::{self, FrontmatterError};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// How a frontmatter field is edited.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A string: one line, or a text area when `long`.
    Text {
        long: bool,
    },
    /// A list of strings, written as comma-separated text.
    List,
    /// One of the schema's `enum` values.
    Choice(Vec<String>),
    Bool,
    Number,
}

/// One field of the form, from the schema's `properties`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    pub key: String,
    pub kind: Kind,
    pub required: bool,
    /// The schema's `x-hint` (else its `description`).
    pub hint: Option<String>,
    pub max_length: Option<u64>,
}

/// Strings this long or longer get a text area.
const LONG_TEXT: u64 = 500;

/// The fields a schema document offers: its top-level `properties` the form can show
/// (strings, string enums, lists of strings, booleans, numbers), in the order `text`
/// (the schema as written) has them.
pub fn fields(schema: &Value, text: &str) -> Vec<FieldSpec> {
    let required: HashSet<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    let types = |p: &Value| -> Vec<String> {
        match &p["type"] {
            Value::String(t) => vec![t.clone()],
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut specs: Vec<FieldSpec> = props
        .iter()
        .filter_map(|(key, p)| {
            let t = types(p);
            let max_length = p["maxLength"].as_u64();
            let kind = if let Some(values) = p["enum"].as_array() {
                let strings: Vec<String> = values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                if strings.len() != values.len() || strings.is_empty() {
                    return None;
                }
                Kind::Choice(strings)
            } else if t == ["string"] {
                Kind::Text {
                    long: key == "description" || max_length.is_some_and(|m| m >= LONG_TEXT),
                }
            } else if t == ["array"] {
                let item = &p["items"];
                let item_types = types(item);
                if !(item.is_null() || item_types == ["string"]) || item["enum"].is_array() {
                    return None;
                }
                Kind::List
            } else if t == ["boolean"] {
                Kind::Bool
            } else if t == ["number"] || t == ["integer"] {
                Kind::Number
            } else {
                return None;
            };
            let hint = p["x-hint"]
                .as_str()
                .or_else(|| p["description"].as_str())
                .map(str::to_string);
            Some(FieldSpec {
                key: key.clone(),
                kind,
                required: required.contains(key.as_str()),
                hint,
                max_length,
            })
        })
        .collect();
    // The parsed document's keys are sorted; the schema's author wrote them in an
    // order (title first): each key's first place after `"properties"` in the text.
    let from = text.find("\"properties\"").unwrap_or(0);
    let place = |key: &str| {
        serde_json::to_string(key)
            .ok()
            .and_then(|quoted| text[from..].find(&quoted))
            .unwrap_or(usize::MAX)
    };
    specs.sort_by_cached_key(|s| place(&s.key));
    specs
}

/// What the editor holds: a file's frontmatter split into the form's fields and the
/// rest, and its body; plus the change's title and message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Draft {
    pub path: String,
    /// The blob the user started from (empty: a new file).
    pub sha: String,
    /// The frontmatter's keys in the file's order, to write them back in it.
    pub keys: Vec<String>,
    /// The fields' values as the form shows them, by key.
    pub values: BTreeMap<String, String>,
    /// The frontmatter the form has no field for, as YAML text.
    pub other: String,
    pub body: String,
    /// The change's title (optional).
    pub summary: String,
    /// The change's description (optional).
    pub message: String,
}

/// A value as its field shows it, when it fits the field.
fn shown(kind: &Kind, v: &Value) -> Option<String> {
    match (kind, v) {
        (Kind::Text { long }, Value::String(s)) if *long || !s.contains(['\n', '\r']) => {
            Some(s.clone())
        }
        (Kind::Choice(_), Value::String(s)) if !s.contains(['\n', '\r']) => Some(s.clone()),
        (Kind::List, Value::Array(items)) => {
            let strings: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            (strings.len() == items.len()
                && strings
                    .iter()
                    .all(|s| !s.trim().is_empty() && !s.contains([',', '\n', '\r'])))
            .then(|| strings.join(", "))
        }
        (Kind::Bool, Value::Bool(b)) => Some(b.to_string()),
        (Kind::Number, Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// `text` with CRLF and CR new lines as LF (browsers send CRLF from text areas).
pub fn lf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

impl Draft {
    /// `text` (the file at `path`, blob `sha`) read into the form of `specs`. A file
    /// whose frontmatter does not parse keeps it whole in [`Draft::other`].
    pub fn from_file(specs: &[FieldSpec], path: &str, sha: &str, text: &str) -> Draft {
        let mut draft = Draft {
            path: path.to_string(),
            sha: sha.to_string(),
            ..Draft::default()
        };
        let doc = match frontmatter::parse(text) {
            Ok(doc) => doc,
            Err(FrontmatterError::Missing) => {
                draft.body = text.to_string();
                return draft;
            }
            Err(_) => {
                match frontmatter::split(text, usize::MAX) {
                    Ok((yaml, body)) => {
                        draft.other = lf(yaml);
                        draft.body = body.to_string();
                    }
                    Err(_) => draft.body = text.to_string(),
                }
                return draft;
            }
        };
        draft.body = doc.body.to_string();
        let lines: Vec<&str> = doc.yaml.split_inclusive('\n').collect();
        // Each key's text runs from its line to the next key's (the YAML starts on
        // line 2 of the file); keys on one line (a flow mapping) cannot be split.
        let starts: Vec<usize> = doc
            .fields
            .iter()
            .map(|f| (f.line as usize).saturating_sub(2))
            .collect();
        if starts.windows(2).any(|w| w[0] >= w[1])
            || starts.last().is_some_and(|s| *s >= lines.len())
        {
            draft.other = lf(doc.yaml);
            return draft;
        }
        let mut other = lines[..starts.first().copied().unwrap_or(lines.len())].concat();
        for (i, field) in doc.fields.iter().enumerate() {
            draft.keys.push(field.key.clone());
            let end = starts.get(i + 1).copied().unwrap_or(lines.len());
            let fits = specs
                .iter()
                .find(|s| s.key == field.key)
                .and_then(|s| shown(&s.kind, &field.value));
            match fits {
                Some(v) => {
                    draft.values.insert(field.key.clone(), v);
                }
                None => other.push_str(&lines[starts[i]..end].concat()),
            }
        }
        draft.other = lf(&other);
        if !draft.other.is_empty() && !draft.other.ends_with('\n') {
            draft.other.push('\n');
        }
        draft
    }

    /// What a form sent (`application/x-www-form-urlencoded` pairs): the draft, and the
    /// other names it had (`csrf`, `repo`, …) by name.
    pub fn from_form(pairs: Vec<(String, String)>) -> (Draft, BTreeMap<String, String>) {
        let mut draft = Draft::default();
        let mut rest = BTreeMap::new();
        for (name, value) in pairs {
            let value = lf(&value);
            match name.as_str() {
                "path" => draft.path = value.trim().to_string(),
                "sha" => draft.sha = value.trim().to_string(),
                "keys" => draft.keys = serde_json::from_str(&value).unwrap_or_default(),
                "other" => draft.other = value,
                "body" => draft.body = value,
                "summary" => draft.summary = value.trim().to_string(),
                "message" => draft.message = value.trim().to_string(),
                _ => match name.strip_prefix("f.") {
                    Some(key) => {
                        draft.values.insert(key.to_string(), value);
                    }
                    None => {
                        rest.insert(name, value);
                    }
                },
            }
        }
        (draft, rest)
    }

    /// Sets field `key` to `value` (a field of the form), taking it out of the YAML
    /// text if it was there.
    pub fn set(&mut self, key: &str, value: &str) {
        self.other = without_block(&self.other, key);
        self.values.insert(key.to_string(), value.to_string());
        if !self.keys.iter().any(|k| k == key) {
            self.keys.push(key.to_string());
        }
    }

    /// Sets top-level `key` to the string `value` in the YAML text (a key the form has
    /// no field for), where it was or at the end.
    pub fn set_raw(&mut self, key: &str, value: &str) {
        let line = format!("{}: {}\n", yaml_key(key), scalar(value, false));
        let mut other = String::new();
        let mut placed = false;
        for (k, text) in blocks(&self.other) {
            if k.as_deref() == Some(key) {
                if !placed {
                    other.push_str(&line);
                    placed = true;
                }
            } else {
                other.push_str(&text);
            }
        }
        if !placed {
            other.push_str(&line);
        }
        self.other = other;
        if !self.keys.iter().any(|k| k == key) {
            self.keys.push(key.to_string());
        }
    }

    /// Sets `key` of the mapping `parent` (kept in the YAML text, as `metadata` is in
    /// the Agent Skills layout) to the string `value`, keeping its other keys: the
    /// mapping is written again as a block of quoted strings. `current`: the mapping's
    /// value now (from the file).
    pub fn set_nested(&mut self, parent: &str, current: Option<&Value>, key: &str, value: &str) {
        let mut map = current
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        map.insert(key.to_string(), Value::String(value.to_string()));
        let mut block = format!("{}:\n", yaml_key(parent));
        for (k, v) in &map {
            let text = match v {
                Value::String(s) => scalar(s, false),
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            block.push_str(&format!("  {}: {text}\n", yaml_key(k)));
        }
        let blocks = blocks(&self.other);
        let mut other = String::new();
        let mut placed = false;
        for (k, text) in blocks {
            if k.as_deref() == Some(parent) {
                if !placed {
                    other.push_str(&block);
                    placed = true;
                }
            } else {
                other.push_str(&text);
            }
        }
        if !placed {
            other.push_str(&block);
        }
        self.other = other;
        if !self.keys.iter().any(|k| k == parent) {
            self.keys.push(parent.to_string());
        }
    }

    /// The file: `---`, the frontmatter (the form's fields and the YAML text, in the
    /// file's key order, then new fields in the schema's order), `---`, the body.
    pub fn compose(&self, specs: &[FieldSpec]) -> String {
        let blocks = blocks(&self.other);
        let mut order: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for key in self
            .keys
            .iter()
            .map(String::as_str)
            .chain(specs.iter().map(|s| s.key.as_str()))
            .chain(blocks.iter().filter_map(|(k, _)| k.as_deref()))
        {
            if seen.insert(key) {
                order.push(key);
            }
        }
        let mut out = String::from("---\n");
        for (_, text) in blocks.iter().filter(|(k, _)| k.is_none()) {
            out.push_str(text);
        }
        for key in order {
            if let Some(spec) = specs.iter().find(|s| s.key == key)
                && let Some(line) = self
                    .values
                    .get(key)
                    .and_then(|v| field_line(spec, v.trim_end_matches('\n')))
            {
                out.push_str(&line);
            }
            for (_, text) in blocks.iter().filter(|(k, _)| k.as_deref() == Some(key)) {
                out.push_str(text);
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("---\n");
        out.push_str(&self.body);
        if !self.body.is_empty() && !self.body.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

/// The YAML line of a field with the form's text `v`, or `None` when it is empty.
fn field_line(spec: &FieldSpec, v: &str) -> Option<String> {
    let key = yaml_key(&spec.key);
    let value = match &spec.kind {
        Kind::Text { .. } | Kind::Choice(_) => {
            if v.trim().is_empty() {
                return None;
            }
            scalar(v, false)
        }
        Kind::List => {
            let items: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| scalar(s, true))
                .collect();
            if items.is_empty() {
                return None;
            }
            format!("[{}]", items.join(", "))
        }
        Kind::Bool => match v.trim() {
            "" => return None,
            b @ ("true" | "false") => b.to_string(),
            other => scalar(other, false),
        },
        Kind::Number => {
            let t = v.trim();
            if t.is_empty() {
                return None;
            }
            // A number as written; anything else as a string, which the schema refuses
            // with a message the user sees.
            match serde_json::from_str::<serde_json::Number>(t) {
                Ok(n) => n.to_string(),
                Err(_) => scalar(t, false),
            }
        }
    };
    Some(format!("{key}: {value}\n"))
}

/// Words YAML (1.1 or 1.2) reads as something other than a string.
const RESERVED: [&str; 14] = [
    "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "nan", "inf", "none", "",
];

/// `s` as a YAML scalar: plain when that is sure to read back as the same string
/// (starts with a letter, no character with a meaning in YAML), else double-quoted
/// (JSON's escapes are YAML's). `flow`: inside `[…]`, where commas and brackets end a
/// value.
pub fn scalar(s: &str, flow: bool) -> String {
    let first_ok = s.chars().next().is_some_and(char::is_alphabetic);
    let last_ok = s.chars().last().is_some_and(|c| !c.is_whitespace());
    let meaningful = |c: char| {
        matches!(
            c,
            ':' | '#' | '"' | '\\' | '`' | '{' | '}' | '[' | ']' | '|' | '>'
        ) || (flow && c == ',')
    };
    let chars_ok = s
        .chars()
        .all(|c| !c.is_control() && !meaningful(c) && (c == ' ' || !c.is_whitespace()));
    let reserved = RESERVED.contains(&s.to_ascii_lowercase().as_str());
    if first_ok && last_ok && chars_ok && !reserved {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// A mapping key: plain when it is a simple name, else double-quoted.
pub fn yaml_key(k: &str) -> String {
    let simple = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !RESERVED.contains(&k.to_ascii_lowercase().as_str());
    if simple {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

/// The YAML text split at each top-level key: (the key, its lines). Text before the
/// first key (comments) has no key.
fn blocks(yaml: &str) -> Vec<(Option<String>, String)> {
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    for line in yaml.split_inclusive('\n') {
        match top_level_key(line) {
            Some(key) => out.push((Some(key), line.to_string())),
            None => match out.last_mut() {
                Some((_, text)) => text.push_str(line),
                None => out.push((None, line.to_string())),
            },
        }
    }
    if let Some((_, last)) = out.last_mut()
        && !last.ends_with('\n')
    {
        last.push('\n');
    }
    out
}

/// The key a line starts at column 0 (`key: …`, `"key": …`, `'key': …`), if any.
fn top_level_key(line: &str) -> Option<String> {
    let first = line.chars().next()?;
    if first.is_whitespace() || matches!(first, '#' | '-' | '[' | '{' | '}' | ']') {
        return None;
    }
    if first == '"' || first == '\'' {
        let end = line[1..].find(first)? + 1;
        let rest = &line[end + 1..];
        if !rest.trim_start().starts_with(':') {
            return None;
        }
        let quoted = &line[..=end];
        return if first == '"' {
            serde_json::from_str(quoted).ok()
        } else {
            Some(line[1..end].replace("''", "'"))
        };
    }
    let colon = line.find(": ").or_else(|| {
        let t = line.trim_end();
        t.ends_with(':').then(|| t.len() - 1)
    })?;
    Some(line[..colon].trim_end().to_string())
}

/// `yaml` without the block of top-level key `key`.
fn without_block(yaml: &str, key: &str) -> String {
    blocks(yaml)
        .into_iter()
        .filter(|(k, _)| k.as_deref() != Some(key))
        .map(|(_, t)| t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat() -> Vec<FieldSpec> {
        let text = crate::skills::rules::FLAT_SCHEMA;
        let schema: Value = serde_json::from_str(text).expect("the flat schema");
        fields(&schema, text)
    }

    #[test]
    fn the_flat_schema_gives_its_fields_in_order() {
        let f = flat();
        let keys: Vec<&str> = f.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "title",
                "description",
                "category",
                "owner",
                "tags",
                "status",
                "slug"
            ]
        );
        assert!(f[0].required && !f[1].required);
        assert_eq!(f[0].kind, Kind::Text { long: false });
        assert_eq!(f[1].kind, Kind::Text { long: true });
        assert_eq!(f[4].kind, Kind::List);
        assert!(matches!(&f[5].kind, Kind::Choice(v) if v.len() == 4));
        let text = crate::skills::rules::AGENT_SKILLS_SCHEMA;
        let agent: Value = serde_json::from_str(text).unwrap();
        let keys: Vec<String> = fields(&agent, text).into_iter().map(|s| s.key).collect();
        // `metadata` (a mapping) stays in the YAML text.
        assert_eq!(
            keys,
            [
                "name",
                "description",
                "license",
                "compatibility",
                "allowed-tools"
            ]
        );
    }

    const FILE: &str = "---\n# kept\ntitle: Roll back a release\ndescription: Undo a bad deploy, without losing data.\ncustom:\n  nested: 1\ntags: [deploy, incident]\nstatus: DRAFT\n---\n## When\n\nText.\n";

    #[test]
    fn an_unchanged_draft_composes_the_same_file() {
        let specs = flat();
        let d = Draft::from_file(&specs, "skills/a.md", "abc", FILE);
        assert_eq!(d.values["title"], "Roll back a release");
        assert_eq!(d.values["tags"], "deploy, incident");
        assert_eq!(d.other, "# kept\ncustom:\n  nested: 1\n");
        assert_eq!(d.keys, ["title", "description", "custom", "tags", "status"]);
        assert_eq!(d.compose(&specs), FILE);
    }

    #[test]
    fn a_field_edit_changes_its_line_and_new_fields_follow_in_schema_order() {
        let specs = flat();
        let mut d = Draft::from_file(&specs, "skills/a.md", "abc", FILE);
        d.values.insert("title".into(), "Roll back: fast".into());
        d.values.insert("owner".into(), "sre".into());
        d.values
            .insert("tags".into(), " deploy ,, 2024, yes ".into());
        d.values.insert("status".into(), String::new());
        let text = d.compose(&specs);
        assert_eq!(
            text,
            "---\n# kept\ntitle: \"Roll back: fast\"\ndescription: Undo a bad deploy, without losing data.\ncustom:\n  nested: 1\ntags: [deploy, \"2024\", \"yes\"]\nowner: sre\n---\n## When\n\nText.\n"
        );
        // It reads back as the values given.
        let doc = frontmatter::parse(&text).unwrap();
        assert_eq!(doc.get("title").unwrap().value, "Roll back: fast");
        assert_eq!(
            doc.get("tags").unwrap().value,
            serde_json::json!(["deploy", "2024", "yes"])
        );
    }

    #[test]
    fn scalars_that_yaml_would_misread_are_quoted() {
        for (s, plain) in [
            ("Deploy safely", true),
            ("Don't panic, then act.", true),
            ("true", false),
            ("No", false),
            ("1.5", false),
            ("-x", false),
            ("a: b", false),
            ("a #b", false),
            ("trailing ", false),
            ("line\nbreak", false),
            ("[x]", false),
            ("*alias", false),
            ("é accent", true),
        ] {
            let out = scalar(s, false);
            assert_eq!(out == s, plain, "{s:?} → {out}");
            let file = format!("---\nk: {out}\n---\n");
            let doc = frontmatter::parse(&file).unwrap();
            assert_eq!(
                doc.get("k").unwrap().value,
                Value::String(s.into()),
                "{s:?}"
            );
        }
        assert_eq!(scalar("a, b", true), "\"a, b\"");
    }

    #[test]
    fn values_that_do_not_fit_their_field_stay_as_yaml() {
        let specs = flat();
        let text = "---\ntitle: |\n  two\n  lines\ntags: nope\nstatus: done\n---\nx\n";
        let d = Draft::from_file(&specs, "skills/a.md", "", text);
        assert_eq!(d.other, "title: |\n  two\n  lines\ntags: nope\n");
        assert_eq!(d.values["status"], "done");
        assert_eq!(d.compose(&specs), text);
        // Broken YAML: all of it kept as text.
        let broken = "---\ntitle: [unclosed\n---\nbody\n";
        let d = Draft::from_file(&specs, "skills/a.md", "", broken);
        assert_eq!(d.other, "title: [unclosed\n");
        assert_eq!(d.compose(&specs), broken);
    }

    #[test]
    fn setting_a_field_moves_it_out_of_the_yaml_text() {
        let specs = flat();
        let text = "---\ntitle: A\nstatus: [odd]\n---\n";
        let mut d = Draft::from_file(&specs, "skills/a.md", "", text);
        assert_eq!(d.other, "status: [odd]\n");
        d.set("status", "ARCHIVED");
        assert_eq!(d.compose(&specs), "---\ntitle: A\nstatus: ARCHIVED\n---\n");
    }

    #[test]
    fn nested_status_is_set_in_its_mapping() {
        let text = crate::skills::rules::AGENT_SKILLS_SCHEMA;
        let agent: Value = serde_json::from_str(text).unwrap();
        let specs = fields(&agent, text);
        let text = "---\nname: pdf\ndescription: Fill PDFs.\nmetadata:\n  owner: docs\n  status: DRAFT\nlicense: MIT\n---\n# PDF\n";
        let mut d = Draft::from_file(&specs, "skills/pdf/SKILL.md", "", text);
        let doc = frontmatter::parse(text).unwrap();
        d.set_nested(
            "metadata",
            doc.get("metadata").map(|f| &f.value),
            "status",
            "ARCHIVED",
        );
        assert_eq!(
            d.compose(&specs),
            "---\nname: pdf\ndescription: Fill PDFs.\nmetadata:\n  owner: docs\n  status: ARCHIVED\nlicense: MIT\n---\n# PDF\n"
        );
    }

    #[test]
    fn a_form_post_reads_back_into_a_draft() {
        let pairs = vec![
            ("csrf".to_string(), "t".to_string()),
            ("path".to_string(), " skills/a.md ".to_string()),
            ("keys".to_string(), "[\"title\"]".to_string()),
            ("f.title".to_string(), "A".to_string()),
            ("body".to_string(), "line\r\nnext\r\n".to_string()),
        ];
        let (d, rest) = Draft::from_form(pairs);
        assert_eq!(d.path, "skills/a.md");
        assert_eq!(d.body, "line\nnext\n");
        assert_eq!(rest["csrf"], "t");
        assert_eq!(d.compose(&flat()), "---\ntitle: A\n---\nline\nnext\n");
    }
}
