//! `skillsd.toml`: the configuration file's model and how it becomes [`Rules`] —
//! roots, namespaces, levels, columns, limits, with a problem for each mistake.

use super::schema::{builtin_schema, load_schema};
use super::{CONFIG_PATH, Layout, Rules, RulesSource};
use crate::skills::frontmatter::MAX_FRONTMATTER_BYTES;
use crate::skills::skill::{Check, Level, MAX_FILE_BYTES, Problem};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// The largest rules file read (config or schema).
const MAX_RULES_FILE_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    layout: Option<Layout>,
    roots: Option<Vec<String>>,
    pub(super) schema: Option<String>,
    nested_skills: Option<bool>,
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    levels: BTreeMap<String, toml::Value>,
    #[serde(default)]
    columns: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    review: crate::skills::review::ReviewFile,
    #[serde(default)]
    secrets: crate::skills::secrets::SecretsFile,
    #[serde(default)]
    commits: CommitsFile,
    #[serde(default)]
    policy: crate::skills::policy::PolicyFile,
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

pub(super) fn read_rules_file(
    source: &dyn RulesSource,
    path: &str,
) -> Result<Option<Vec<u8>>, Vec<Problem>> {
    match source.read(path) {
        Ok(Some(bytes)) if bytes.len() > MAX_RULES_FILE_BYTES => Err(vec![
            Problem::new(
                Check::Rules,
                path,
                format!(
                    "rules file is {} bytes, more than the limit of {MAX_RULES_FILE_BYTES}",
                    bytes.len()
                ),
            )
            .hint("keep the rules small"),
        ]),
        Ok(found) => Ok(found),
        Err(why) => Err(vec![
            Problem::new(Check::Rules, path, format!("cannot read the rules: {why}"))
                .hint("the rules must be regular files in the repository"),
        ]),
    }
}

// One problem, once per load of the rules: its size (128 bytes) does not matter here.
#[allow(clippy::result_large_err)]
pub(super) fn parse_config(bytes: &[u8]) -> Result<ConfigFile, Problem> {
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

pub(super) fn normalize(path: &str) -> String {
    path.trim().trim_start_matches("./").to_string()
}

pub(super) fn build(
    parsed: ConfigFile,
    schema: Option<(&str, &[u8])>,
    text: &str,
) -> Result<Rules, Vec<Problem>> {
    let mut problems = Vec::new();
    let review = crate::skills::review::build(parsed.review, text, &mut problems);
    let secrets = crate::skills::secrets::build(parsed.secrets, text, &mut problems);
    let require_signed = parsed.commits.require_signed.unwrap_or(false);
    let policy = crate::skills::policy::build(parsed.policy, text, &mut problems);
    let layout = parsed.layout.unwrap_or(Layout::Flat);

    let Roots {
        roots,
        literal_roots,
        root_globs,
        dot_root,
    } = parse_roots(parsed.roots, &mut problems);

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

    let (max_file_bytes, max_frontmatter_bytes, max_files_per_push) =
        parse_limits(&parsed.limits, &mut problems);

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

/// `roots`: the folders (or folder patterns) that hold skills.
struct Roots {
    roots: Vec<String>,
    literal_roots: super::RootSet,
    root_globs: Option<globset::GlobSet>,
    dot_root: bool,
}

/// `roots = [...]` read: each a folder of the repository, a pattern, or `.`; none
/// inside another. The default is `skills`.
fn parse_roots(raw_roots: Option<Vec<String>>, problems: &mut Vec<Problem>) -> Roots {
    let mut roots = Vec::new();
    let mut literal_roots = super::RootSet::default();
    let mut globs = globset::GlobSetBuilder::new();
    let mut has_globs = false;
    let mut dot_root = false;
    for raw in raw_roots.unwrap_or_else(|| vec!["skills".to_string()]) {
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
    Roots {
        roots,
        literal_roots,
        root_globs,
        dot_root,
    }
}

/// `[limits]`: each within 1 and skillsd's own maximum (max file bytes, max
/// frontmatter bytes, max files per push).
fn parse_limits(limits: &LimitsFile, problems: &mut Vec<Problem>) -> (usize, usize, Option<usize>) {
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
        limits.max_file_bytes,
        MAX_FILE_BYTES,
        "max_file_bytes",
        problems,
    );
    let max_frontmatter_bytes = limit(
        limits.max_frontmatter_bytes,
        MAX_FRONTMATTER_BYTES,
        "max_frontmatter_bytes",
        problems,
    );
    let max_files_per_push = limits
        .max_files_per_push
        .map(|v| limit(Some(v), usize::MAX >> 1, "max_files_per_push", problems));
    (max_file_bytes, max_frontmatter_bytes, max_files_per_push)
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
