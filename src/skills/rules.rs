//! The rules of a skills repository, kept in the repository itself so that changing
//! them is reviewed like any other change: `skillsd.toml` at the root (the layout,
//! which folders hold skills, limits, which schema) and a JSON Schema (draft 2020-12)
//! for the frontmatter. A repository without `skillsd.toml` gets the built-in rules:
//! the flat layout under `skills/` with the built-in flat schema.
//!
//! The same [`Rules`] value is used by the server's pre-receive stage (read from the
//! pushed commit), the cache (read from the commit being cached), the git hooks and
//! `skillsd check` (read from the working tree), so every one of them applies exactly
//! the same rules with exactly the same messages.

use super::frontmatter::MAX_FRONTMATTER_BYTES;
use super::skill::{Check, Level, Problem, MAX_FILE_BYTES};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

/// Where the rules live, relative to the repository root.
pub const CONFIG_PATH: &str = "skillsd.toml";

/// The schemas the template ships, built in for repositories that name none.
pub const FLAT_SCHEMA: &str = include_str!("../../skills-template/rules/flat.schema.json");
pub const AGENT_SKILLS_SCHEMA: &str =
    include_str!("../../skills-template/rules/agent-skills.schema.json");

/// The Agent Skills file name inside a skill's folder.
pub const SKILL_FILE: &str = "SKILL.md";

/// How skill files are laid out under the roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `skills/**/<slug>.md`; the slug is the file name.
    Flat,
    /// `skills/<name>/SKILL.md`; the slug is the folder name, and every other file in
    /// the folder belongs to the skill.
    AgentSkills,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Flat => "flat",
            Layout::AgentSkills => "agent-skills",
        }
    }
}

/// Reads the files the rules are made of, from a commit's tree or a working tree.
pub trait RulesSource {
    /// The content of the file at `path` (relative, `/`-separated), `None` if there
    /// is none, or why it cannot be read (it is a folder, a link, too large…).
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String>;
}

/// The largest rules file read (config or schema).
const MAX_RULES_FILE_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    layout: Option<Layout>,
    roots: Option<Vec<String>>,
    schema: Option<String>,
    nested_skills: Option<bool>,
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    levels: BTreeMap<String, toml::Value>,
    #[serde(default)]
    columns: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    review: super::review::ReviewFile,
    #[serde(default)]
    secrets: super::secrets::SecretsFile,
    #[serde(default)]
    commits: CommitsFile,
    #[serde(default)]
    policy: super::policy::PolicyFile,
}

/// `[commits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitsFile {
    /// Every new commit must carry a valid SSH signature (git's `gpg.format=ssh`) by
    /// a key registered to a skillsd user.
    require_signed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A cache column that `[columns]` may fill from the team's own frontmatter fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Title,
    Description,
    Category,
    Owner,
    Tags,
}

impl Column {
    const ALL: [(&'static str, Column); 5] = [
        ("title", Column::Title),
        ("description", Column::Description),
        ("category", Column::Category),
        ("owner", Column::Owner),
        ("tags", Column::Tags),
    ];
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_file_bytes: Option<i64>,
    max_frontmatter_bytes: Option<i64>,
    max_files_per_push: Option<i64>,
}

/// A compiled frontmatter schema.
pub struct Schema {
    pub(crate) validator: jsonschema::Validator,
    pub(crate) document: serde_json::Value,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").finish_non_exhaustive()
    }
}

/// The rules one tree is checked against.
#[derive(Debug)]
pub struct Rules {
    pub layout: Layout,
    /// Folders that hold skills, each ending in `/`, as written (patterns included).
    roots: Vec<String>,
    /// The roots without wildcards (`skills/`).
    literal_roots: HashSet<String>,
    /// The roots with wildcards (`plugins/*/skills`, `**/skills`), if any.
    root_globs: Option<globset::GlobSet>,
    /// `roots` names `"."`: the top of the repository holds skills (see
    /// [`Rules::root_of`] for what it leaves out).
    dot_root: bool,
    /// `namespaces`: folder patterns (`plugins/*`) whose folders' last segment is the
    /// namespace of the skills below them (key `foo:bar`), as written.
    namespaces: Vec<String>,
    namespace_globs: Option<globset::GlobSet>,
    /// Agent-skills layout: is every folder with a `SKILL.md` a skill, however deep
    /// (`nested_skills = true`)? Else only the folders right under a root are.
    pub nested_skills: bool,
    /// `[levels]`: what each check's findings weigh (absent: error).
    levels: HashMap<Check, Level>,
    /// `[columns]`: cache columns filled from frontmatter paths, first found wins.
    pub columns: Vec<(Column, Vec<String>)>,
    pub max_file_bytes: usize,
    pub max_frontmatter_bytes: usize,
    pub max_files_per_push: Option<usize>,
    /// The schema file named by the config, if any (else the built-in one is used).
    pub schema_path: Option<String>,
    pub(crate) schema: Schema,
    /// `[review]`: what changes to the branch these rules are read from need.
    pub review: super::review::Review,
    /// `[secrets]`: the fingerprints of credentials that may be committed (fixtures).
    pub secrets: super::secrets::Secrets,
    /// `[commits] require_signed`: pushes to the branch these rules are read from must
    /// bring only commits signed (SSH signatures) by keys of skillsd users.
    pub require_signed: bool,
    /// `[policy]`: executables, scripts outside `scripts/`, denied `allowed-tools`.
    pub policy: super::policy::Policy,
}

impl Rules {
    /// The rules of a repository without `skillsd.toml`.
    pub fn builtin() -> Arc<Rules> {
        static BUILTIN: OnceLock<Arc<Rules>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Arc::new(Rules {
                    layout: Layout::Flat,
                    roots: vec!["skills/".to_string()],
                    literal_roots: HashSet::from(["skills/".to_string()]),
                    root_globs: None,
                    dot_root: false,
                    namespaces: Vec::new(),
                    namespace_globs: None,
                    nested_skills: false,
                    levels: HashMap::new(),
                    columns: Vec::new(),
                    max_file_bytes: MAX_FILE_BYTES,
                    max_frontmatter_bytes: MAX_FRONTMATTER_BYTES,
                    max_files_per_push: None,
                    schema_path: None,
                    schema: builtin_schema(Layout::Flat),
                    review: super::review::Review::default(),
                    secrets: super::secrets::Secrets::default(),
                    require_signed: false,
                    policy: super::policy::Policy::default(),
                })
            })
            .clone()
    }

    /// Loads the rules from `source`: `skillsd.toml` and the schema it names. Rules that
    /// do not load are every problem found, located in the rules files.
    pub fn load(source: &dyn RulesSource) -> Result<Arc<Rules>, Vec<Problem>> {
        let config = match read_rules_file(source, CONFIG_PATH)? {
            None => return Ok(Rules::builtin()),
            Some(bytes) => bytes,
        };
        let parsed = parse_config(&config).map_err(|p| vec![p])?;
        // The cache below is keyed by the contents of both files.
        let schema_bytes = match &parsed.schema {
            Some(path) => {
                let path = normalize(path);
                match read_rules_file(source, &path)? {
                        Some(bytes) => Some((path, bytes)),
                        None => {
                            return Err(vec![Problem::new(Check::Rules,
                                CONFIG_PATH,
                                format!("the schema file `{path}` does not exist"),
                            )
                            .field("schema")
                            .hint(
                                "commit the schema file, fix the path, or remove `schema` to use the built-in schema",
                            )])
                        }
                    }
            }
            None => None,
        };
        let key = (config, schema_bytes);
        if let Some(rules) = cached(&key) {
            return Ok(rules);
        }
        let schema = key.1.as_ref().map(|(p, b)| (p.as_str(), b.as_slice()));
        let text = String::from_utf8_lossy(&key.0);
        let rules = Arc::new(build(parsed, schema, &text)?);
        remember(key, rules.clone());
        Ok(rules)
    }

    /// Is `path` inside one of the folders that hold skills?
    pub fn governs(&self, path: &str) -> bool {
        self.root_of(path).is_some()
    }

    /// The folder of skills (ending in `/`) that holds `path`: the shortest folder of
    /// the path that a root names (a root may be a pattern: `plugins/*/skills`).
    ///
    /// With the root `"."` (and no other root holding the path) it is `""`, the top of
    /// the repository, for every path except: anything inside a hidden folder
    /// (`.git`, `.github`, `.claude-plugin`: tooling, never skills), and the files at
    /// the very top — in the agent-skills layout all of them (`README.md`,
    /// `skillsd.toml`, `LICENSE`: the repository's own files, no skill's), in the flat
    /// layout all but lowercase `*.md` files (`deploy.md` is a skill, `README.md`,
    /// `CHANGELOG.md`, `AGENTS.md` are the repository's documents).
    pub fn root_of<'a>(&self, path: &'a str) -> Option<&'a str> {
        for (end, _) in path.match_indices('/') {
            if end + 1 == path.len() {
                break;
            }
            let folder = &path[..=end];
            if self.literal_roots.contains(folder)
                || self
                    .root_globs
                    .as_ref()
                    .is_some_and(|g| g.is_match(&path[..end]))
            {
                return Some(folder);
            }
        }
        (self.dot_root && self.top_holds(path)).then_some(&path[..0])
    }

    /// Under the root `"."`, is `path` in the part of the repository that holds skills?
    fn top_holds(&self, path: &str) -> bool {
        if path.is_empty() || path.ends_with('/') || path.split('/').any(|c| c.starts_with('.')) {
            return false;
        }
        match path.split_once('/') {
            Some(_) => true,
            None => {
                self.layout == Layout::Flat
                    && path
                        .strip_suffix(".md")
                        .is_some_and(|stem| !stem.bytes().any(|b| b.is_ascii_uppercase()))
            }
        }
    }

    /// Is `"."` one of the roots (skills at the top of the repository)?
    pub fn has_dot_root(&self) -> bool {
        self.dot_root
    }

    /// The namespace of the skill file `path`: the last segment of the deepest folder
    /// above the skill's own folder (agent-skills) or file (flat) that a `namespaces`
    /// pattern matches (`plugins/foo/skills/bar/SKILL.md` with `plugins/*`: `foo`; with
    /// `["*", "partner/*"]`, `partner/zoom/skills/x/SKILL.md` is in `zoom`).
    pub fn namespace_of<'a>(&self, path: &'a str) -> Option<&'a str> {
        let globs = self.namespace_globs.as_ref()?;
        // The skill's own folder (agent-skills) or file (flat) is never its namespace.
        let own = match self.layout {
            Layout::Flat => path.rfind('/')?,
            Layout::AgentSkills => path.rsplit_once('/')?.0.rfind('/')?,
        };
        path[..own]
            .match_indices('/')
            .map(|(end, _)| end)
            .chain(std::iter::once(own))
            .rev()
            .find(|&end| globs.is_match(&path[..end]))
            .map(|end| path[..end].rsplit('/').next().unwrap_or_default())
    }

    /// The key of the skill file `path`: `namespace:slug` when it lies under a
    /// namespace folder, else its slug. Unique per repository (`duplicate-slug`); the
    /// cache's `slug` column, the API, the pages and the agents' index use it.
    pub fn key_of(&self, path: &str) -> String {
        let slug = self.slug_of(path);
        match self.namespace_of(path) {
            Some(namespace) => format!("{namespace}:{slug}"),
            None => slug.to_string(),
        }
    }

    /// The `namespaces` patterns, as written.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The folders that hold skills, each ending in `/`, as written (patterns too).
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// Is `path` a skill file?
    pub fn is_skill(&self, path: &str) -> bool {
        let Some(root) = self.root_of(path) else {
            return false;
        };
        let rest = &path[root.len()..];
        match self.layout {
            Layout::Flat => {
                let name = rest.rsplit('/').next().unwrap_or(rest);
                name.ends_with(".md")
                    && !name.eq_ignore_ascii_case("README.md")
                    // An Agent Skills file: reported as `layout-mismatch`, never
                    // read as a flat skill called `SKILL`.
                    && name != SKILL_FILE
            }
            Layout::AgentSkills => match rest.rsplit_once('/') {
                Some((folder, file)) => {
                    file == SKILL_FILE
                        && !folder.is_empty()
                        && (self.nested_skills || !folder.contains('/'))
                }
                None => false,
            },
        }
    }

    /// A `SKILL.md` under a root that is not a skill because it sits inside another
    /// skill's folder (agent-skills layout without `nested_skills`).
    pub fn is_nested_skill_file(&self, path: &str) -> bool {
        self.layout == Layout::AgentSkills
            && !self.nested_skills
            && self.root_of(path).is_some_and(|root| {
                let rest = &path[root.len()..];
                rest.ends_with(&format!("/{SKILL_FILE}")) && rest.matches('/').count() >= 2
            })
    }

    /// The slug of a skill file: its name without `.md` (flat), or its folder's name.
    pub fn slug_of<'a>(&self, path: &'a str) -> &'a str {
        match self.layout {
            Layout::Flat => {
                let name = path.rsplit('/').next().unwrap_or(path);
                name.strip_suffix(".md").unwrap_or(name)
            }
            Layout::AgentSkills => {
                let folder = path.rsplit('/').nth(1).unwrap_or(path);
                folder
            }
        }
    }

    /// The skill file that `path` belongs to: itself for a skill file; in the
    /// agent-skills layout, the `SKILL.md` of the skill folder any file is in. With
    /// `nested_skills`, the deepest folder above the file whose `SKILL.md` `exists`;
    /// else (and when none does) the folder right under the root.
    pub fn skill_of(&self, path: &str, exists: &dyn Fn(&str) -> bool) -> Option<String> {
        let root = self.root_of(path)?;
        match self.layout {
            Layout::Flat => self.is_skill(path).then(|| path.to_string()),
            Layout::AgentSkills => {
                let rest = &path[root.len()..];
                let (folder, _) = rest.split_once('/')?;
                if folder.is_empty() {
                    return None;
                }
                if self.nested_skills {
                    let mut dir = rest;
                    while let Some((parent, _)) = dir.rsplit_once('/') {
                        let candidate = format!("{root}{parent}/{SKILL_FILE}");
                        if exists(&candidate) {
                            return Some(candidate);
                        }
                        dir = parent;
                    }
                }
                Some(format!("{root}{folder}/{SKILL_FILE}"))
            }
        }
    }

    /// What `check`'s findings weigh under these rules: protected checks are always
    /// errors.
    pub fn level(&self, check: Check) -> Level {
        if check.protected() {
            return Level::Error;
        }
        if let Some(level) = self.levels.get(&check) {
            return *level;
        }
        // The policy's checks weigh what `[policy]` says, and nothing without it.
        match check {
            Check::Executable => self.policy.executables.unwrap_or(Level::Off),
            Check::ScriptLocation => self.policy.scripts_outside_scripts.unwrap_or(Level::Off),
            Check::DeniedTool => self.policy.tools.unwrap_or(Level::Off),
            _ => check.default_level(),
        }
    }

    /// `problems` with their levels set from `[levels]`; those turned off dropped.
    pub fn levelled(&self, problems: Vec<Problem>) -> Vec<Problem> {
        if self.levels.is_empty() {
            return problems;
        }
        problems
            .into_iter()
            .filter_map(|mut p| {
                p.level = self.level(p.check);
                (p.level != Level::Off).then_some(p)
            })
            .collect()
    }

    /// One line for people: `flat layout under skills/, schema rules/flat.schema.json`.
    pub fn describe(&self) -> String {
        format!(
            "{}{} layout under {}, {}",
            self.layout.as_str(),
            if self.nested_skills { " (nested)" } else { "" },
            self.roots.join(", "),
            match &self.schema_path {
                Some(p) => format!("schema {p}"),
                None => "built-in schema".to_string(),
            }
        )
    }
}

fn builtin_schema(layout: Layout) -> Schema {
    let text = match layout {
        Layout::Flat => FLAT_SCHEMA,
        Layout::AgentSkills => AGENT_SKILLS_SCHEMA,
    };
    let document: serde_json::Value =
        serde_json::from_str(text).expect("the built-in schemas are valid JSON");
    let validator = compile(&document).expect("the built-in schemas compile");
    Schema {
        validator,
        document,
    }
}

/// Compiles a schema the repository supplies. Its shape is checked first
/// ([`check_schema_shape`]); the compiler then runs on a thread of its own with a large
/// stack, as jsonschema compiles some keywords (`unevaluatedProperties` through
/// `$ref`s) by recursion: a stack overflow cannot be caught and would end the server.
fn compile(document: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    check_schema_shape(document)?;
    let build = || {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(document)
            .map_err(|e| {
                let at = e.instance_path().as_str();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at `{at}`: {e}")
                }
            })
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("schema-compile".into())
            .stack_size(COMPILE_STACK_BYTES)
            .spawn_scoped(scope, build)
            .map_err(|e| format!("cannot compile the schema: {e}"))?
            .join()
            .map_err(|_| "the schema could not be compiled".to_string())?
    })
}

/// Stack of the thread that compiles a schema (virtual memory: only what is used is
/// resident).
const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;
/// Most JSON values in a schema, `$ref`s in it, `$ref`s followed one after another,
/// and ways through its `$ref`s from the root (each is a validation path).
const MAX_SCHEMA_NODES: usize = 20_000;
const MAX_SCHEMA_REFS: usize = 1_000;
const MAX_REF_DEPTH: usize = 32;
const MAX_REF_PATHS: u64 = 10_000;

/// Refuses a schema whose `$ref`s would make compiling or validating it explode: a
/// chain of thousands (recursion in the compiler), branches that multiply
/// (`{"oneOf": [{"$ref": "#/$defs/a1"}, {"$ref": "#/$defs/a1"}]}` repeated: the
/// validator walks every way through, 2^n), or a `$ref` that leads back to itself.
/// Walked with explicit stacks.
pub fn check_schema_shape(document: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value;
    // Every `$ref` to a place in this document: (where it is, where it points).
    let mut refs: Vec<(String, String)> = Vec::new();
    let mut nodes = 0usize;
    let mut stack = vec![(document, String::new())];
    while let Some((value, at)) = stack.pop() {
        nodes += 1;
        if nodes > MAX_SCHEMA_NODES {
            return Err(format!(
                "the schema has more than {MAX_SCHEMA_NODES} values; keep it smaller"
            ));
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref" || key == "$dynamicRef" {
                        if let Some(target) = child.as_str().and_then(local_pointer) {
                            refs.push((at.clone(), target));
                        }
                    }
                    stack.push((
                        child,
                        format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
                    ));
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    stack.push((child, format!("{at}/{i}")));
                }
            }
            _ => {}
        }
    }
    if refs.len() > MAX_SCHEMA_REFS {
        return Err(format!(
            "the schema has {} `$ref`s, more than {MAX_SCHEMA_REFS}",
            refs.len()
        ));
    }
    // The `$ref` targets found under a place (itself included).
    let under = |place: &str| -> Vec<String> {
        refs.iter()
            .filter(|(at, _)| at == place || at.starts_with(&format!("{place}/")))
            .map(|(_, target)| target.clone())
            .collect()
    };
    // Ways through the `$ref`s from each place, depth first with an explicit stack.
    let mut ways: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut on_path: Vec<String> = Vec::new();
    // (place, its targets, next target, ways so far)
    let mut frames: Vec<(String, Vec<String>, usize, u64)> = vec![(String::new(), under(""), 0, 1)];
    on_path.push(String::new());
    while let Some(frame) = frames.last_mut() {
        if frame.2 == frame.1.len() {
            let (place, _, _, total) = frames.pop().expect("a frame");
            on_path.pop();
            ways.insert(place, total);
            if let Some(parent) = frames.last_mut() {
                parent.3 = parent.3.saturating_add(total);
                if parent.3 > MAX_REF_PATHS {
                    return Err(format!(
                        "the schema's `$ref`s branch into more than {MAX_REF_PATHS} ways to check a value; validating would take too long"
                    ));
                }
            }
            continue;
        }
        let target = frame.1[frame.2].clone();
        frame.2 += 1;
        if let Some(w) = ways.get(&target) {
            frame.3 = frame.3.saturating_add(*w);
            if frame.3 > MAX_REF_PATHS {
                return Err(format!(
                    "the schema's `$ref`s branch into more than {MAX_REF_PATHS} ways to check a value; validating would take too long"
                ));
            }
            continue;
        }
        if on_path
            .iter()
            .any(|p| *p == target || p.starts_with(&format!("{target}/")))
        {
            return Err(format!(
                "`$ref` `#{target}` leads back to itself; recursive schemas are not supported"
            ));
        }
        if frames.len() > MAX_REF_DEPTH {
            return Err(format!(
                "the schema's `$ref`s are chained more than {MAX_REF_DEPTH} deep"
            ));
        }
        on_path.push(target.clone());
        let targets = under(&target);
        frames.push((target, targets, 0, 1));
    }
    Ok(())
}

/// The JSON pointer of a `$ref` to this document (`#` or `#/...`), else `None`.
fn local_pointer(reference: &str) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    (fragment.is_empty() || fragment.starts_with('/')).then(|| fragment.to_string())
}

fn read_rules_file(source: &dyn RulesSource, path: &str) -> Result<Option<Vec<u8>>, Vec<Problem>> {
    match source.read(path) {
        Ok(Some(bytes)) if bytes.len() > MAX_RULES_FILE_BYTES => Err(vec![Problem::new(
            Check::Rules,
            path,
            format!(
                "rules file is {} bytes, more than the limit of {MAX_RULES_FILE_BYTES}",
                bytes.len()
            ),
        )
        .hint("keep the rules small")]),
        Ok(found) => Ok(found),
        Err(why) => Err(vec![Problem::new(
            Check::Rules,
            path,
            format!("cannot read the rules: {why}"),
        )
        .hint("the rules must be regular files in the repository")]),
    }
}

// One problem, once per load of the rules: its size (128 bytes) does not matter here.
#[allow(clippy::result_large_err)]
fn parse_config(bytes: &[u8]) -> Result<ConfigFile, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Problem::new(Check::Rules, CONFIG_PATH, "file is not valid UTF-8")
            .hint("save it with UTF-8 encoding")
    })?;
    toml::from_str::<ConfigFile>(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| line_col(text, s.start))
            .unwrap_or((1, 1));
        let message = e.message().trim().to_string();
        let hint = if message.contains("unknown field") {
            "the keys are layout, roots, schema, nested_skills, [limits] (max_file_bytes, max_frontmatter_bytes, max_files_per_push), [levels], [columns], [review] (required_approvals, direct_push, dismiss_stale, [review.owners]), [secrets] (allow) and namespaces"
        } else if message.contains("unknown variant") {
            "layout is \"flat\" or \"agent-skills\""
        } else {
            "fix the TOML; see RULES.md for an example"
        };
        Problem::new(Check::Rules, CONFIG_PATH, message)
            .at(line, Some(column))
            .hint(hint)
    })
}

fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u32 + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, column)
}

fn normalize(path: &str) -> String {
    path.trim().trim_start_matches("./").to_string()
}

fn build(
    parsed: ConfigFile,
    schema: Option<(&str, &[u8])>,
    text: &str,
) -> Result<Rules, Vec<Problem>> {
    let mut problems = Vec::new();
    let review = super::review::build(parsed.review, text, &mut problems);
    let secrets = super::secrets::build(parsed.secrets, text, &mut problems);
    let require_signed = parsed.commits.require_signed.unwrap_or(false);
    let policy = super::policy::build(parsed.policy, text, &mut problems);
    let layout = parsed.layout.unwrap_or(Layout::Flat);

    let mut roots = Vec::new();
    let mut literal_roots = HashSet::new();
    let mut globs = globset::GlobSetBuilder::new();
    let mut has_globs = false;
    let mut dot_root = false;
    for raw in parsed.roots.unwrap_or_else(|| vec!["skills".to_string()]) {
        if matches!(raw.trim(), "." | "./") {
            dot_root = true;
            roots.push("./".to_string());
            continue;
        }
        let root = normalize(&raw).trim_end_matches('/').to_string();
        let bad = root.is_empty()
            || root.starts_with('/')
            || root
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            || root.contains('\\');
        if bad {
            problems.push(
                Problem::new(Check::Rules,
                    CONFIG_PATH,
                    format!("`{raw}` is not a folder of the repository"),
                )
                .field("roots")
                .hint("name folders relative to the repository root, e.g. roots = [\"skills\"], \"plugins/*/skills\" or \".\" (the top of the repository)"),
            );
            continue;
        }
        if root.contains(['*', '?', '[', '{']) {
            match globset::GlobBuilder::new(&root)
                .literal_separator(true)
                .build()
            {
                Ok(glob) => {
                    globs.add(glob);
                    has_globs = true;
                }
                Err(e) => problems.push(
                    Problem::new(Check::Rules, CONFIG_PATH, format!("`{raw}` is not a valid pattern: {}", e.kind()))
                        .field("roots")
                        .hint("`*` stands for one folder name, `**` for any number of folders: \"plugins/*/skills\", \"**/skills\""),
                ),
            }
        } else {
            literal_roots.insert(format!("{root}/"));
        }
        roots.push(format!("{root}/"));
    }
    if roots.is_empty() && problems.is_empty() {
        problems.push(
            Problem::new(Check::Rules, CONFIG_PATH, "no folder holds skills")
                .field("roots")
                .hint("name at least one folder, e.g. roots = [\"skills\"]"),
        );
    }
    for a in &literal_roots {
        for b in &literal_roots {
            if a != b && b.starts_with(a.as_str()) {
                problems.push(
                    Problem::new(Check::Rules, CONFIG_PATH, format!("`{b}` is inside `{a}`"))
                        .field("roots")
                        .hint("list folders that do not contain one another"),
                );
            }
        }
    }
    roots.dedup();
    let root_globs = if has_globs {
        match globs.build() {
            Ok(set) => Some(set),
            Err(e) => {
                problems.push(
                    Problem::new(
                        Check::Rules,
                        CONFIG_PATH,
                        format!("the root patterns do not compile: {e}"),
                    )
                    .field("roots"),
                );
                None
            }
        }
    } else {
        None
    };

    let (namespaces, namespace_globs) =
        parse_namespaces(parsed.namespaces.unwrap_or_default(), &mut problems);

    let levels = parse_levels(&parsed.levels, &mut problems);
    let columns = parse_columns(&parsed.columns, &mut problems);
    let nested_skills = parsed.nested_skills.unwrap_or(false);
    if nested_skills && layout == Layout::Flat {
        problems.push(
            Problem::new(Check::Rules, CONFIG_PATH, "`nested_skills` needs the agent-skills layout")
                .field("nested_skills")
                .hint("add layout = \"agent-skills\", or remove nested_skills (flat skills may be in any folder already)"),
        );
    }

    let limit =
        |value: Option<i64>, max: usize, name: &str, problems: &mut Vec<Problem>| match value {
            None => max,
            Some(v) if v >= 1 && v as u64 <= max as u64 => v as usize,
            Some(v) => {
                problems.push(
                    Problem::new(Check::Rules, CONFIG_PATH, format!("{v} is out of range"))
                        .field(&format!("limits.{name}"))
                        .hint(format!("use a number from 1 to {max}")),
                );
                max
            }
        };
    let max_file_bytes = limit(
        parsed.limits.max_file_bytes,
        MAX_FILE_BYTES,
        "max_file_bytes",
        &mut problems,
    );
    let max_frontmatter_bytes = limit(
        parsed.limits.max_frontmatter_bytes,
        MAX_FRONTMATTER_BYTES,
        "max_frontmatter_bytes",
        &mut problems,
    );
    let max_files_per_push = parsed.limits.max_files_per_push.map(|v| {
        limit(
            Some(v),
            usize::MAX >> 1,
            "max_files_per_push",
            &mut problems,
        )
    });

    let (schema_path, schema) = match schema {
        None => (None, Some(builtin_schema(layout))),
        Some((path, bytes)) => {
            let schema = load_schema(path, bytes, &mut problems);
            (Some(path.to_string()), schema)
        }
    };
    match schema {
        Some(schema) if problems.is_empty() => Ok(Rules {
            layout,
            roots,
            literal_roots,
            root_globs,
            dot_root,
            namespaces,
            namespace_globs,
            nested_skills,
            levels,
            columns,
            max_file_bytes,
            max_frontmatter_bytes,
            max_files_per_push,
            schema_path,
            schema,
            review,
            secrets,
            require_signed,
            policy,
        }),
        _ => Err(problems),
    }
}

/// `namespaces = ["plugins/*"]`: folder patterns, in the syntax of `roots`.
fn parse_namespaces(
    list: Vec<String>,
    problems: &mut Vec<Problem>,
) -> (Vec<String>, Option<globset::GlobSet>) {
    let mut patterns = Vec::new();
    let mut globs = globset::GlobSetBuilder::new();
    for raw in list {
        let pattern = normalize(&raw).trim_end_matches('/').to_string();
        let bad = pattern.is_empty()
            || pattern.starts_with('/')
            || pattern
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            || pattern.contains('\\');
        let glob = (!bad).then(|| {
            globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .build()
        });
        match glob {
            Some(Ok(glob)) => {
                globs.add(glob);
                patterns.push(pattern);
            }
            Some(Err(e)) => problems.push(
                Problem::new(
                    Check::Rules,
                    CONFIG_PATH,
                    format!("`{raw}` is not a valid pattern: {}", e.kind()),
                )
                .field("namespaces")
                .hint("`*` stands for one folder name: namespaces = [\"plugins/*\"]"),
            ),
            None => problems.push(
                Problem::new(
                    Check::Rules,
                    CONFIG_PATH,
                    format!("`{raw}` is not a folder pattern of the repository"),
                )
                .field("namespaces")
                .hint("name folders relative to the repository root; each matching folder's name becomes the namespace of the skills below it: namespaces = [\"plugins/*\"]"),
            ),
        }
    }
    if patterns.is_empty() {
        return (patterns, None);
    }
    match globs.build() {
        Ok(set) => (patterns, Some(set)),
        Err(e) => {
            problems.push(
                Problem::new(
                    Check::Rules,
                    CONFIG_PATH,
                    format!("the namespace patterns do not compile: {e}"),
                )
                .field("namespaces"),
            );
            (patterns, None)
        }
    }
}

/// `[levels]`: `check-id = "error" | "warning" | "off"`. Unknown ids and protected
/// checks set below error are problems of the config, not silently ignored.
fn parse_levels(
    table: &BTreeMap<String, toml::Value>,
    problems: &mut Vec<Problem>,
) -> HashMap<Check, Level> {
    let mut levels = HashMap::new();
    for (id, value) in table {
        let field = format!("levels.{id}");
        let Some(check) = Check::from_id(id) else {
            let close = Check::ALL
                .iter()
                .find(|c| c.id().replace('-', "") == id.replace(['-', '_'], "").to_lowercase());
            problems.push(
                Problem::new(Check::Rules, CONFIG_PATH, format!("`{id}` is not a check"))
                    .field(&field)
                    .hint(match close {
                        Some(c) => format!("did you mean `{}`?", c.id()),
                        None => "the check ids are listed in RULES.md (and shown in brackets after each problem)".to_string(),
                    }),
            );
            continue;
        };
        let level = match value.as_str() {
            Some("error") => Level::Error,
            Some("warning") => Level::Warning,
            Some("off") => Level::Off,
            _ => {
                problems.push(
                    Problem::new(
                        Check::Rules,
                        CONFIG_PATH,
                        match value.as_str() {
                            Some(text) => format!("\"{text}\" is not a level"),
                            None => format!("a {} is not a level", value.type_str()),
                        },
                    )
                    .field(&field)
                    .hint(format!("write {id} = \"error\", \"warning\" or \"off\"")),
                );
                continue;
            }
        };
        if check.protected() && level != Level::Error {
            problems.push(
                Problem::new(
                    Check::Rules,
                    CONFIG_PATH,
                    format!("`{id}` protects the server and the cache and is always an error"),
                )
                .field(&field)
                .hint(format!(
                    "remove `{id}` from [levels]; RULES.md lists the checks that can be relaxed"
                )),
            );
            continue;
        }
        levels.insert(check, level);
    }
    levels
}

/// `[columns]`: `owner = ["owner", "metadata.author"]`.
fn parse_columns(
    table: &BTreeMap<String, OneOrMany>,
    problems: &mut Vec<Problem>,
) -> Vec<(Column, Vec<String>)> {
    let mut columns = Vec::new();
    for (name, paths) in table {
        let Some((_, column)) = Column::ALL.iter().find(|(n, _)| n == name) else {
            problems.push(
                Problem::new(
                    Check::Rules,
                    CONFIG_PATH,
                    format!("`{name}` is not a cache column that can be mapped"),
                )
                .field(&format!("columns.{name}"))
                .hint("map title, description, category, owner or tags"),
            );
            continue;
        };
        let paths = match paths {
            OneOrMany::One(p) => vec![p.clone()],
            OneOrMany::Many(list) => list.clone(),
        };
        if paths.is_empty() || paths.iter().any(|p| p.split('.').any(str::is_empty)) {
            problems.push(
                Problem::new(
                    Check::Rules,
                    CONFIG_PATH,
                    "needs frontmatter paths like \"owner\" or \"metadata.author\"",
                )
                .field(&format!("columns.{name}")),
            );
            continue;
        }
        columns.push((*column, paths));
    }
    columns
}

fn load_schema(path: &str, bytes: &[u8], problems: &mut Vec<Problem>) -> Option<Schema> {
    let document: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            problems.push(
                Problem::new(
                    Check::Rules,
                    path,
                    format!("the schema is not valid JSON: {e}"),
                )
                .at(e.line().max(1) as u32, Some(e.column().max(1) as u32))
                .hint("fix the JSON syntax"),
            );
            return None;
        }
    };
    if let Some(declared) = document.get("$schema") {
        let ok = declared.as_str().is_some_and(|s| {
            s.trim_end_matches('#') == "https://json-schema.org/draft/2020-12/schema"
        });
        if !ok {
            problems.push(
                Problem::new(
                    Check::Rules,
                    path,
                    format!("`$schema` is {declared}, not draft 2020-12"),
                )
                .field("$schema")
                .hint("set \"$schema\": \"https://json-schema.org/draft/2020-12/schema\""),
            );
            return None;
        }
    }
    if !document.is_object() && !document.is_boolean() {
        problems.push(
            Problem::new(Check::Rules, path, "the schema must be a JSON object")
                .hint("start from rules/flat.schema.json in the skills template"),
        );
        return None;
    }
    match compile(&document) {
        Ok(validator) => Some(Schema {
            validator,
            document,
        }),
        Err(e) => {
            problems.push(
                Problem::new(
                    Check::Rules,
                    path,
                    format!("the schema is not a valid JSON Schema: {e}"),
                )
                .hint("check it against draft 2020-12; remote `$ref`s are not fetched"),
            );
            None
        }
    }
}

type CacheKey = (Vec<u8>, Option<(String, Vec<u8>)>);
type Compiled = Mutex<Vec<(CacheKey, Arc<Rules>)>>;

/// Compiled rules by the contents of their files: a repository's rules change rarely,
/// and every push and every cached commit needs them.
fn cache() -> &'static Compiled {
    static CACHE: OnceLock<Compiled> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

fn cached(key: &CacheKey) -> Option<Arc<Rules>> {
    let cache = cache().lock().unwrap_or_else(|e| e.into_inner());
    cache.iter().find(|(k, _)| k == key).map(|(_, r)| r.clone())
}

fn remember(key: CacheKey, rules: Arc<Rules>) {
    const KEEP: usize = 16;
    let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= KEEP {
        cache.remove(0);
    }
    cache.push((key, rules));
}

/// Rules read from a folder on disk (a working tree).
pub struct DirSource<'p> {
    pub root: &'p std::path::Path,
}

impl RulesSource for DirSource<'_> {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let full = self.root.join(path);
        match std::fs::symlink_metadata(&full) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
            Ok(m) if !m.is_file() => Err(format!("`{path}` is not a regular file")),
            Ok(_) => std::fs::read(&full).map(Some).map_err(|e| e.to_string()),
        }
    }
}

/// Why a commit's rules could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("the repository's rules do not load:\n{}", super::render_problems(.0))]
    Invalid(Vec<Problem>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Files(HashMap<&'static str, &'static str>);
    impl RulesSource for Files {
        fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.get(path).map(|s| s.as_bytes().to_vec()))
        }
    }
    fn files(list: &[(&'static str, &'static str)]) -> Files {
        Files(list.iter().copied().collect())
    }

    /// `$defs` a0..a(n-1), each `link(i+1)` to the next; the root refers to a0.
    fn chain(n: usize, link: impl Fn(usize) -> serde_json::Value) -> serde_json::Value {
        let mut defs = serde_json::Map::new();
        for i in 0..n {
            let v = if i + 1 < n {
                link(i + 1)
            } else {
                serde_json::json!({"type": "object"})
            };
            defs.insert(format!("a{i}"), v);
        }
        serde_json::json!({"$ref": "#/$defs/a0", "$defs": defs})
    }

    #[test]
    fn schemas_that_would_explode_are_refused_before_compiling() {
        // 2,000 links compiled by recursion overflowed an 8 MiB stack (aborting the
        // process) before this check.
        let link = |i: usize| {
            let next = format!("#/$defs/a{i}");
            serde_json::json!({"unevaluatedProperties": false, "allOf": [{"$ref": next}]})
        };
        let err = compile(&chain(2000, link)).err().unwrap();
        assert!(
            err.contains("the schema has 2000 `$ref`s, more than 1000"),
            "{err}"
        );
        let err = compile(&chain(1000, link)).err().unwrap();
        assert!(err.contains("chained more than 32 deep"), "{err}");
        // Branches that double at each link: 2^22 ways to validate one value.
        let wide = chain(22, |i| {
            let r = serde_json::json!({"$ref": format!("#/$defs/a{i}")});
            serde_json::json!({"oneOf": [r.clone(), r]})
        });
        let err = compile(&wide).err().unwrap();
        assert!(err.contains("more than 10000 ways"), "{err}");
        for recursive in [
            serde_json::json!({"properties": {"x": {"$ref": "#"}}}),
            serde_json::json!({"$ref": "#/$defs/a", "$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}}),
        ] {
            let err = compile(&recursive).err().unwrap();
            assert!(err.contains("leads back to itself"), "{err}");
        }
        // Ordinary use of `$ref` compiles.
        let fine = chain(
            20,
            |i| serde_json::json!({"allOf": [{"$ref": format!("#/$defs/a{i}")}]}),
        );
        compile(&fine).unwrap();
        let shared = serde_json::json!({
            "properties": {"a": {"$ref": "#/$defs/s"}, "b": {"$ref": "#/$defs/s"}},
            "$defs": {"s": {"type": "string"}}
        });
        compile(&shared).unwrap();
    }

    #[test]
    fn no_config_means_builtin_rules() {
        let rules = Rules::load(&files(&[])).unwrap();
        assert_eq!(rules.layout, Layout::Flat);
        assert!(rules.is_skill("skills/a/b.md"));
        assert!(!rules.is_skill("skills/README.md"));
        assert!(!rules.is_skill("docs/a.md"));
        assert_eq!(rules.slug_of("skills/a/b.md"), "b");
    }

    #[test]
    fn namespaces_make_keys_and_the_dot_root_holds_the_top() {
        let rules = Rules::load(&files(&[(
            CONFIG_PATH,
            "layout = \"agent-skills\"\nroots = [\"plugins/*/skills\", \".\"]\nnamespaces = [\"plugins/*\", \"partner/*\", \"*\"]\n",
        )]))
        .unwrap();
        assert_eq!(rules.namespaces(), ["plugins/*", "partner/*", "*"]);
        let p = "plugins/alpha/skills/review/SKILL.md";
        assert_eq!(rules.namespace_of(p), Some("alpha"));
        assert_eq!(rules.key_of(p), "alpha:review");
        // The deepest matching folder above the skill's own.
        assert_eq!(rules.key_of("partner/zoom/skills/x/SKILL.md"), "zoom:x");
        // The skill's own folder is never its namespace: at the top, no namespace.
        assert_eq!(rules.namespace_of("pdf/SKILL.md"), None);
        assert_eq!(rules.key_of("pdf/SKILL.md"), "pdf");
        // The root ".": the top's folders, not its files nor hidden folders.
        assert_eq!(rules.root_of("pdf/SKILL.md"), Some(""));
        assert!(rules.is_skill("pdf/SKILL.md"));
        assert_eq!(rules.root_of("README.md"), None);
        assert_eq!(rules.root_of(".github/skills/x/SKILL.md"), None);
        assert_eq!(
            rules.root_of("plugins/alpha/skills/review/SKILL.md"),
            Some("plugins/alpha/skills/")
        );
        assert!(rules.describe().contains("plugins/*/skills/, ./"));
        // The flat layout at the top: lowercase Markdown files only.
        let flat = Rules::load(&files(&[(CONFIG_PATH, "roots = [\".\"]\n")])).unwrap();
        assert!(flat.is_skill("deploy.md"));
        assert!(flat.is_skill("ops/rollback.md"));
        assert!(!flat.is_skill("CHANGELOG.md"));
        assert!(!flat.is_skill(".github/notes.md"));
        assert_eq!(flat.root_of("skillsd.toml"), None);
        // Without namespaces, keys are slugs.
        assert_eq!(Rules::builtin().key_of("skills/a/b.md"), "b");
        // Bad patterns are located problems of the config.
        for bad in ["\"../x\"", "\"/abs\"", "\"a//b\"", "\"[\""] {
            let err = Rules::load(&files(&[(
                CONFIG_PATH,
                Box::leak(format!("namespaces = [{bad}]\n").into_boxed_str()),
            )]))
            .unwrap_err();
            assert_eq!(err[0].field.as_deref(), Some("namespaces"), "{bad}");
        }
    }

    #[test]
    fn agent_skills_layout() {
        let rules = Rules::load(&files(&[(CONFIG_PATH, "layout = \"agent-skills\"\n")])).unwrap();
        assert_eq!(rules.layout, Layout::AgentSkills);
        assert!(rules.is_skill("skills/pdf/SKILL.md"));
        assert!(!rules.is_skill("skills/pdf/scripts/SKILL.md"));
        assert!(!rules.is_skill("skills/SKILL.md"));
        assert!(!rules.is_skill("skills/pdf/skill.md"));
        assert_eq!(rules.slug_of("skills/pdf/SKILL.md"), "pdf");
        let none = |_: &str| false;
        assert_eq!(
            rules
                .skill_of("skills/pdf/scripts/run.py", &none)
                .as_deref(),
            Some("skills/pdf/SKILL.md")
        );
        assert_eq!(rules.skill_of("skills/README.md", &none), None);
        assert!(rules.is_nested_skill_file("skills/pdf/scripts/SKILL.md"));
        assert!(!rules.is_nested_skill_file("skills/pdf/SKILL.md"));
        assert!(rules.schema.document["required"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("name")));
    }

    #[test]
    fn glob_roots_nested_skills_levels_and_columns() {
        let rules = Rules::load(&files(&[(
            CONFIG_PATH,
            "layout = \"agent-skills\"\nroots = [\"skills\", \"plugins/*/skills\", \"**/more-skills\"]\nnested_skills = true\n[levels]\nunknown-field = \"warning\"\nname-mismatch = \"off\"\n[columns]\nowner = [\"owner\", \"metadata.author\"]\ntags = \"keywords\"\n",
        )]))
        .unwrap();
        // The shortest folder of the path that a root names.
        assert_eq!(rules.root_of("skills/pdf/SKILL.md"), Some("skills/"));
        assert_eq!(
            rules.root_of("plugins/docs/skills/pdf/SKILL.md"),
            Some("plugins/docs/skills/")
        );
        assert_eq!(rules.root_of("plugins/a/b/skills/pdf/SKILL.md"), None);
        assert_eq!(
            rules.root_of("more-skills/x/SKILL.md"),
            Some("more-skills/")
        );
        assert_eq!(
            rules.root_of("a/b/more-skills/x/SKILL.md"),
            Some("a/b/more-skills/")
        );
        assert_eq!(rules.root_of("plugins/docs/skills"), None);
        // Nested: every folder with a SKILL.md is a skill; files belong to the deepest.
        assert!(rules.is_skill("skills/docs/pdf/SKILL.md"));
        assert_eq!(rules.slug_of("skills/docs/pdf/SKILL.md"), "pdf");
        assert!(!rules.is_nested_skill_file("skills/docs/pdf/SKILL.md"));
        let exists = |p: &str| p == "skills/docs/pdf/SKILL.md" || p == "skills/docs/SKILL.md";
        assert_eq!(
            rules
                .skill_of("skills/docs/pdf/scripts/x.py", &exists)
                .as_deref(),
            Some("skills/docs/pdf/SKILL.md")
        );
        assert_eq!(
            rules.skill_of("skills/docs/other.md", &exists).as_deref(),
            Some("skills/docs/SKILL.md")
        );
        assert_eq!(rules.level(Check::UnknownField), Level::Warning);
        assert_eq!(rules.level(Check::NameMismatch), Level::Off);
        assert_eq!(rules.level(Check::DescriptionTooLong), Level::Error);
        assert_eq!(rules.columns.len(), 2);
        assert!(rules.describe().contains(
            "agent-skills (nested) layout under skills/, plugins/*/skills/, **/more-skills/"
        ));
    }

    #[test]
    fn levels_cannot_relax_protected_checks_and_name_real_ones() {
        let problems = Rules::load(&files(&[(
            CONFIG_PATH,
            "[levels]\nencoding = \"off\"\nunknown_field = \"warning\"\nschema = \"loud\"\n",
        )]))
        .unwrap_err();
        let got: Vec<(String, String, Option<String>)> = problems
            .iter()
            .map(|p| (p.field.clone().unwrap(), p.message.clone(), p.hint.clone()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, "levels.encoding");
        assert!(got[0].1.contains("always an error"), "{got:?}");
        assert_eq!(got[1].1, "\"loud\" is not a level");
        assert_eq!(got[2].1, "`unknown_field` is not a check");
        assert_eq!(got[2].2.as_deref(), Some("did you mean `unknown-field`?"));
        let problems = Rules::load(&files(&[(
            CONFIG_PATH,
            "roots = [\"skills/[\"]\nnested_skills = true\n[columns]\nteam = \"owner\"\n",
        )]))
        .unwrap_err();
        let fields: Vec<&str> = problems
            .iter()
            .map(|p| p.field.as_deref().unwrap())
            .collect();
        assert_eq!(
            fields,
            vec!["roots", "columns.team", "nested_skills"],
            "{problems:?}"
        );
    }

    #[test]
    fn roots_and_limits() {
        let rules = Rules::load(&files(&[(
            CONFIG_PATH,
            "roots = [\"docs/skills/\", \"./more\"]\n[limits]\nmax_file_bytes = 1000\nmax_files_per_push = 5\n",
        )]))
        .unwrap();
        assert!(rules.is_skill("docs/skills/x.md"));
        assert!(rules.is_skill("more/x.md"));
        assert!(!rules.is_skill("skills/x.md"));
        assert_eq!(rules.max_file_bytes, 1000);
        assert_eq!(rules.max_files_per_push, Some(5));
    }

    #[test]
    fn bad_config_is_located() {
        let p =
            Rules::load(&files(&[(CONFIG_PATH, "layout = \"flat\"\nlayuot = 1\n")])).unwrap_err();
        assert_eq!(p[0].path, CONFIG_PATH);
        assert_eq!(p[0].line, Some(2));
        assert!(p[0].message.contains("unknown field"), "{p:?}");

        let p = Rules::load(&files(&[(CONFIG_PATH, "layout = \"tree\"\n")])).unwrap_err();
        assert!(p[0].hint.as_deref().unwrap().contains("agent-skills"));

        let p = Rules::load(&files(&[(
            CONFIG_PATH,
            "roots = [\"../x\", \"a\", \"a/b\"]\n[limits]\nmax_file_bytes = 99999999\n",
        )]))
        .unwrap_err();
        let messages: Vec<_> = p.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            vec![
                "`../x` is not a folder of the repository",
                "`a/b/` is inside `a/`",
                "99999999 is out of range"
            ]
        );
    }

    #[test]
    fn bad_schema_is_refused() {
        let config = "schema = \"rules/s.json\"\n";
        let p = Rules::load(&files(&[(CONFIG_PATH, config)])).unwrap_err();
        assert!(p[0].message.contains("does not exist"));

        let p = Rules::load(&files(&[
            (CONFIG_PATH, config),
            ("rules/s.json", "{\n  \"type\": }"),
        ]))
        .unwrap_err();
        assert_eq!(p[0].path, "rules/s.json");
        assert_eq!(p[0].line, Some(2));

        let p = Rules::load(&files(&[
            (CONFIG_PATH, config),
            ("rules/s.json", "{\"type\": \"strnig\"}"),
        ]))
        .unwrap_err();
        assert!(p[0].message.contains("not a valid JSON Schema"), "{p:?}");

        let p = Rules::load(&files(&[
            (CONFIG_PATH, config),
            (
                "rules/s.json",
                "{\"$schema\": \"http://json-schema.org/draft-07/schema#\"}",
            ),
        ]))
        .unwrap_err();
        assert!(p[0].message.contains("not draft 2020-12"), "{p:?}");

        let p = Rules::load(&files(&[
            (CONFIG_PATH, config),
            ("rules/s.json", "{\"$ref\": \"https://example.com/x.json\"}"),
        ]))
        .unwrap_err();
        assert!(p[0].message.contains("not a valid JSON Schema"), "{p:?}");
    }

    #[test]
    fn compiled_rules_are_reused() {
        let f = files(&[(CONFIG_PATH, "layout = \"flat\"\n# reuse\n")]);
        let a = Rules::load(&f).unwrap();
        let b = Rules::load(&f).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
