//! What the rest of `skills/` speaks in: a [`Problem`] found in a file, a valid
//! [`Skill`] and its [`Status`], the size limits and the slug alphabet. A leaf: it uses
//! no other module of `skills/`, so `rules`, `agent`, `schema`, `tree` and `report`
//! take these from here instead of from `validate` (which uses them in turn).

use serde::Serialize;

/// Upper bound on the size of one skill file.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// One problem found in one file: what the pusher reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(path: &str, message: impl Into<String>) -> Self {
        Problem {
            path: path.to_string(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn at(mut self, line: u32, column: Option<u32>) -> Self {
        self.line = Some(line);
        self.column = column;
        self
    }
    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The lifecycle state of a skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Draft,
    InReview,
    Published,
    Archived,
}

impl Status {
    pub const ALL: [&'static str; 4] = ["DRAFT", "IN_REVIEW", "PUBLISHED", "ARCHIVED"];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::InReview => "IN_REVIEW",
            Status::Published => "PUBLISHED",
            Status::Archived => "ARCHIVED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "DRAFT" => Some(Status::Draft),
            "IN_REVIEW" => Some(Status::InReview),
            "PUBLISHED" => Some(Status::Published),
            "ARCHIVED" => Some(Status::Archived),
            _ => None,
        }
    }
}

/// A valid skill, as the cache stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    pub slug: String,
    pub path: String,
    pub title: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub status: Status,
    pub frontmatter: serde_json::Value,
    pub body: String,
}

/// Is `slug` made of lowercase `a-z`, `0-9` and single `-` between them?
pub fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 100
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// A suggestion for a valid slug close to `s`.
pub(crate) fn suggest_slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "my-skill".to_string()
    } else {
        out
    }
}

/// Longest path (in bytes) allowed under `skills/`.
pub const MAX_PATH_BYTES: usize = 255;

pub(crate) fn describe(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "nothing",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}
