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

//!
//! [`config`] reads `skillsd.toml` into [`Rules`]; [`schema`] compiles the frontmatter
//! schema, within bounds on its shape.

mod config;
mod schema;

pub use config::Column;
pub use schema::check_schema_shape;

use super::frontmatter::MAX_FRONTMATTER_BYTES;
use super::skill::{Check, Level, MAX_FILE_BYTES, Problem};
use config::{build, normalize, parse_config, read_rules_file};
use schema::builtin_schema;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

/// Where the rules live, relative to the repository root.
pub const CONFIG_PATH: &str = "skillsd.toml";

/// The schemas the template ships, built in for repositories that name none.
pub const FLAT_SCHEMA: &str = include_str!("../../../skills-template/rules/flat.schema.json");
pub const AGENT_SKILLS_SCHEMA: &str =
    include_str!("../../../skills-template/rules/agent-skills.schema.json");

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

/// A set of root folders (see [`Rules::root_of`]).
type RootSet = HashSet<String, foldhash::quality::RandomState>;

/// The rules one tree is checked against.
#[derive(Debug)]
pub struct Rules {
    pub layout: Layout,
    /// Folders that hold skills, each ending in `/`, as written (patterns included).
    roots: Vec<String>,
    /// The roots without wildcards (`skills/`), hashed with foldhash: every path of a
    /// pushed tree looks its folders up here.
    literal_roots: RootSet,
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
                    literal_roots: RootSet::from_iter(["skills/".to_string()]),
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
            Layout::AgentSkills => (path.rsplit('/').nth(1).unwrap_or(path)) as _,
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
    use super::schema::compile;
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
        assert!(
            rules.schema.document["required"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("name"))
        );
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
