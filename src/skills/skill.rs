//! What the rest of `skills/` speaks in: a [`Problem`] found in a file, a valid
//! [`Skill`] and its [`Status`], the size limits and the slug alphabet. A leaf: it uses
//! no other module of `skills/`, so `rules`, `agent`, `schema`, `tree` and `report`
//! take these from here instead of from `validate` (which uses them in turn).

use serde::Serialize;

/// Upper bound on the size of one skill file.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// How much a check's finding weighs: an error refuses the push, a warning is shown
/// (and stored with the skill) but lets it through, `off` drops it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Error,
    Warning,
    Off,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Off => "off",
        }
    }
}

macro_rules! checks {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, protected = $protected:literal, $what:literal; )*) => {
        /// Every check skillsd makes, each with a stable id (shown in messages, in
        /// `skillsd check --format json` and set in `skillsd.toml`'s `[levels]`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Check {
            $( $(#[$doc])* $variant, )*
        }

        impl Check {
            /// Every check, in the order RULES.md lists them.
            pub const ALL: &'static [Check] = &[$(Check::$variant),*];

            /// The stable id, e.g. `unknown-field`.
            pub fn id(self) -> &'static str {
                match self { $(Check::$variant => $id,)* }
            }

            /// Checks that protect the server and the cache: always errors, whatever
            /// `[levels]` says.
            pub fn protected(self) -> bool {
                match self { $(Check::$variant => $protected,)* }
            }

            /// What the check is about, in a few words (for RULES.md and errors).
            pub fn what(self) -> &'static str {
                match self { $(Check::$variant => $what,)* }
            }

            pub fn from_id(id: &str) -> Option<Check> {
                Check::ALL.iter().copied().find(|c| c.id() == id)
            }
        }
    };
}

checks! {
    Encoding = "encoding", protected = true, "the file is not UTF-8";
    BinaryFile = "binary-file", protected = true, "the file has a NUL byte";
    FileTooLarge = "file-too-large", protected = true, "the file is over the size limit";
    Frontmatter = "frontmatter", protected = true, "no frontmatter, unterminated, too large, bad YAML or over the YAML bounds, duplicate keys";
    NulCharacter = "nul-character", protected = true, "an escaped NUL in a value";
    SlugFormat = "slug-format", protected = true, "the file (flat) or folder (agent-skills) name is not a valid slug";
    DuplicateSlug = "duplicate-slug", protected = true, "two skills with one slug";
    CaseCollision = "case-collision", protected = true, "two paths that differ only in case";
    Symlink = "symlink", protected = true, "a symbolic link under a root";
    Submodule = "submodule", protected = true, "a submodule under a root";
    PathCharacters = "path-characters", protected = true, "a name with characters that break on some systems";
    PathLength = "path-length", protected = true, "a path over 255 bytes";
    TreeDepth = "tree-depth", protected = true, "folders nested too deep";
    TooManyFiles = "too-many-files", protected = true, "a push over the per-push file limit";
    Rules = "rules", protected = true, "skillsd.toml or the schema does not load";
    Push = "push", protected = true, "the pushed objects cannot be read or are over a limit";
    Secret = "secret", protected = true, "a credential (cloud key, token, private key, signed JWT) in a file of a skill";
    MissingField = "missing-field", protected = false, "a required field is missing";
    EmptyField = "empty-field", protected = false, "a required field is empty";
    FieldType = "field-type", protected = false, "a field has the wrong type";
    InvalidStatus = "invalid-status", protected = false, "status is not DRAFT, IN_REVIEW, PUBLISHED or ARCHIVED";
    SlugMismatch = "slug-mismatch", protected = false, "`slug:` differs from the file name (flat)";
    NameFormat = "name-format", protected = false, "`name:` is not 1-64 of a-z, 0-9 and single hyphens";
    NameMismatch = "name-mismatch", protected = false, "`name:` differs from the folder name";
    DescriptionTooLong = "description-too-long", protected = false, "`description:` over 1,024 characters";
    CompatibilityLength = "compatibility-length", protected = false, "`compatibility:` not 1-500 characters";
    AllowedToolsType = "allowed-tools-type", protected = false, "`allowed-tools:` is a list, not a string";
    MetadataType = "metadata-type", protected = false, "`metadata:` is not a mapping of strings";
    UnknownField = "unknown-field", protected = false, "a key the layout and the schema do not allow";
    Schema = "schema", protected = false, "the repository's JSON Schema is violated";
    NestedSkill = "nested-skill", protected = false, "a SKILL.md inside another skill's folder";
    SkillOutsideRoots = "skill-outside-roots", protected = false, "a SKILL.md outside the folders that hold skills";
    LayoutMismatch = "layout-mismatch", protected = false, "a SKILL.md in a repository on the flat layout";
    OutsideSkillFolder = "outside-skill-folder", protected = false, "a file under a root but in no skill folder";
    MissingSkillFile = "missing-skill-file", protected = false, "a skill folder without a SKILL.md";
    HiddenText = "hidden-text", protected = false, "characters a reader does not see (tags, bidi controls, zero-width, format) in a file of a skill";
    Executable = "executable", protected = false, "an executable file in a skill, when [policy] executables says warn or deny (off otherwise)";
    ScriptLocation = "script-location", protected = false, "a script outside its skill's scripts/ folder, when [policy] scripts_outside_scripts says warn or deny (off otherwise)";
    DeniedTool = "denied-tool", protected = false, "an allowed-tools entry matching [policy] deny_tools (off without deny_tools)";
    Padding = "padding", protected = false, "text after a long run of whitespace or filler, or a file that is mostly blank (hidden from readers and truncating scanners)";
    AgentInstructions = "agent-instructions", protected = false, "text that tells the agent to override its instructions, send secrets or files away, pipe a remote script into a shell or switch off its safety checks (a warning by default)";
}

impl Check {
    /// What a finding weighs when `[levels]` says nothing: an error, but for the
    /// checks that flag what may be meant (`agent-instructions`).
    pub fn default_level(self) -> Level {
        match self {
            Check::AgentInstructions => Level::Warning,
            // On only when `[policy]` asks (see `Rules::level`).
            Check::Executable | Check::ScriptLocation | Check::DeniedTool => Level::Off,
            _ => Level::Error,
        }
    }
}

impl Check {
    /// Checks whose findings are files the cache does not store as skills (a
    /// `SKILL.md` outside the roots, nested in another skill, in a flat repository; a
    /// skill folder without one; a file in no skill folder). Relaxing one lets a push
    /// through, but stores none of those skills: advice names the fix that stores them.
    pub fn keeps_out_of_cache(self) -> bool {
        matches!(
            self,
            Check::SkillOutsideRoots
                | Check::NestedSkill
                | Check::MissingSkillFile
                | Check::OutsideSkillFolder
                | Check::LayoutMismatch
        )
    }

    /// Why a protected check cannot be relaxed, in a few words (`None` for the others).
    pub fn why_protected(self) -> Option<&'static str> {
        Some(match self {
            Check::Encoding | Check::BinaryFile => "the cache stores text",
            Check::FileTooLarge => "it bounds what one skill costs every reader",
            Check::Frontmatter => "without a readable frontmatter there is no skill to store",
            Check::NulCharacter => "no PostgreSQL text value can hold it",
            Check::SlugFormat => "the name is the skill's key in the cache, the API and its URLs",
            Check::DuplicateSlug => {
                "the cache, the API and agents find a skill by its name (names repeated                  across plugins: `namespaces` in skillsd.toml, see `skillsd check --suggest-config`)"
            }
            Check::CaseCollision => "the files would overwrite each other on macOS and Windows",
            Check::Symlink => "a link may point outside its skill or the repository",
            Check::Submodule => "its files are not in this repository",
            Check::PathCharacters | Check::PathLength => "such paths break clones on some systems",
            Check::TreeDepth => "it bounds the work of every check",
            Check::TooManyFiles => "it bounds the work of one push",
            Check::Rules => "without rules nothing can be checked",
            Check::Push => "the pushed objects cannot be checked",
            Check::Secret => "a credential pushed is one every clone has",
            _ => return None,
        })
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// One problem found in one file: what the pusher reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// Which check found it.
    pub check: Check,
    /// Error (refuses the push) or warning; set from the rules' `[levels]`.
    pub level: Level,
    /// The path (a file's, or a folder's ending in `/`) the hint proposes to rename
    /// the file or folder to: checked against the tree (`tree::free_renames`), so a
    /// hint never proposes a name that is taken.
    /// (Boxed: a problem stays small, as errors are passed by value.)
    #[serde(skip)]
    pub rename_to: Option<Box<RenameTo>>,
}

/// A path a hint proposes to rename a file or folder to ([`Problem::rename_to`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameTo(pub String);

impl Problem {
    /// The path the hint proposes to rename to, if any.
    pub fn rename_target(&self) -> Option<&str> {
        self.rename_to.as_deref().map(|r| r.0.as_str())
    }
}

impl Problem {
    pub fn new(check: Check, path: &str, message: impl Into<String>) -> Self {
        Problem {
            path: path.to_string(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
            hint: None,
            check,
            level: Level::Error,
            rename_to: None,
        }
    }
    /// The hint proposes renaming to `path` (see [`Problem::rename_to`]).
    pub fn renaming_to(mut self, path: impl Into<String>) -> Self {
        self.rename_to = Some(Box::new(RenameTo(path.into())));
        self
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
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// `must be a string, found a list` on the field `field` written at `line`:`column`.
pub(crate) fn not_a_string(
    path: &str,
    field: &str,
    (line, column): (u32, u32),
    found: &serde_json::Value,
    hint: impl Into<String>,
) -> Problem {
    Problem::new(
        Check::FieldType,
        path,
        format!("must be a string, found {}", describe(found)),
    )
    .at(line, Some(column))
    .field(field)
    .hint(hint)
}

/// Does any of `problems` refuse a push?
pub fn any_error(problems: &[Problem]) -> bool {
    problems.iter().any(Problem::is_error)
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
    /// Findings of checks set to `warning`: shown to the pusher, stored with the skill.
    pub warnings: Vec<Problem>,
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
    // `café` -> `cafe`, `Straße` -> `strasse`: letters of any script, in ASCII.
    for c in deunicode::deunicode(s).chars() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protected_check_says_why() {
        for check in Check::ALL {
            assert_eq!(
                check.why_protected().is_some(),
                check.protected(),
                "{}",
                check.id()
            );
            assert!(!(check.protected() && check.keeps_out_of_cache()));
        }
    }

    /// RULES.md is what adopters read to fill `[levels]`: it must list every check,
    /// with whether it can be relaxed, and nothing that is not a check.
    #[test]
    fn rules_md_lists_every_check_with_its_protection() {
        let doc = include_str!("../../skills-template/RULES.md");
        for check in Check::ALL {
            let row = format!(
                "| `{}` | {} | {} |",
                check.id(),
                if check.protected() { "yes" } else { "no" },
                check.default_level().as_str()
            );
            assert!(doc.contains(&row), "RULES.md lacks `{row}`");
        }
        let listed = doc
            .lines()
            .filter(|l| {
                l.ends_with(" |")
                    && (l.contains("| error |")
                        || l.contains("| warning |")
                        || l.contains("| off |"))
            })
            .count();
        assert_eq!(listed, Check::ALL.len());
        let mut ids: Vec<&str> = Check::ALL.iter().map(|c| c.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), Check::ALL.len(), "check ids are unique");
    }
}
