//! `[policy]` in `skillsd.toml`: what a skill may bring beyond its text.
//!
//! ```toml
//! [policy]
//! executables = "warn"              # executable files: "allow" (default), "warn", "deny"
//! scripts_outside_scripts = "deny"  # a script not under its skill's scripts/ folder
//! deny_tools = ["Bash", "Bash(*)"]  # `allowed-tools` entries matching these patterns
//! tools = "deny"                    # what a match is: "deny" (default) or "warn"
//! ```
//!
//! Each is a check of its own (`executable`, `script-location`, `denied-tool`) with the
//! level the policy gives it; nothing is checked when the policy says nothing.

use super::skill::{Check, Level, Problem};
use serde::Deserialize;

/// `[policy]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    executables: Option<String>,
    scripts_outside_scripts: Option<String>,
    #[serde(default)]
    deny_tools: Vec<String>,
    tools: Option<String>,
}

/// `[policy]`, compiled.
#[derive(Debug, Default)]
pub struct Policy {
    pub executables: Option<Level>,
    pub scripts_outside_scripts: Option<Level>,
    deny_tools: Option<(globset::GlobSet, Vec<String>)>,
    pub tools: Option<Level>,
}

fn level_of(
    value: Option<&str>,
    key: &str,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Option<Level> {
    match value? {
        "allow" => None,
        "warn" | "warning" => Some(Level::Warning),
        "deny" | "error" => Some(Level::Error),
        other => {
            problems.push(
                Problem::new(
                    Check::Rules,
                    super::rules::CONFIG_PATH,
                    format!("[policy] {key} = \"{other}\" is not one of allow, warn, deny"),
                )
                .at(line_of(text, key), None)
                .field(&format!("policy.{key}"))
                .hint(format!("{key} = \"warn\" or \"deny\"")),
            );
            None
        }
    }
}

fn line_of(text: &str, key: &str) -> u32 {
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map_or(1, |i| i as u32 + 1)
}

/// Compiles `[policy]`; malformed values are rules problems with their line.
pub fn build(file: PolicyFile, text: &str, problems: &mut Vec<Problem>) -> Policy {
    let executables = level_of(file.executables.as_deref(), "executables", text, problems);
    let scripts_outside_scripts = level_of(
        file.scripts_outside_scripts.as_deref(),
        "scripts_outside_scripts",
        text,
        problems,
    );
    let mut deny_tools = None;
    if !file.deny_tools.is_empty() {
        let mut set = globset::GlobSetBuilder::new();
        let mut ok = true;
        for pattern in &file.deny_tools {
            // `Bash(git:*)`: parentheses and colons are literal, `*` and `?` wildcards.
            let escaped: String = pattern
                .chars()
                .map(|c| match c {
                    '[' | ']' | '{' | '}' | '\\' => format!("\\{c}"),
                    c => c.to_string(),
                })
                .collect();
            match globset::GlobBuilder::new(&escaped)
                .literal_separator(false)
                .build()
            {
                Ok(g) => {
                    set.add(g);
                }
                Err(e) => {
                    ok = false;
                    problems.push(
                        Problem::new(
                            Check::Rules,
                            super::rules::CONFIG_PATH,
                            format!(
                                "[policy] deny_tools: `{pattern}` is not a valid pattern: {}",
                                e.kind()
                            ),
                        )
                        .at(line_of(text, "deny_tools"), None)
                        .field("policy.deny_tools"),
                    );
                }
            }
        }
        if ok && let Ok(set) = set.build() {
            deny_tools = Some((set, file.deny_tools.clone()));
        }
    }
    let tools = match file.tools.as_deref() {
        None => deny_tools.as_ref().map(|_| Level::Error),
        v => level_of(v, "tools", text, problems),
    };
    Policy {
        executables,
        scripts_outside_scripts,
        deny_tools,
        tools,
    }
}

/// The folder of the skill `path` belongs to in the agent-skills layout (the root and
/// the next folder: `skills/deploy/`); `None` on the flat layout.
pub fn skill_folder(rules: &super::Rules, path: &str) -> Option<String> {
    if rules.layout != super::Layout::AgentSkills {
        return None;
    }
    let root = rules.root_of(path)?;
    let root = if root.ends_with('/') {
        root.to_string()
    } else {
        format!("{root}/")
    };
    let rest = path.strip_prefix(&root)?;
    let name = rest.split('/').next()?;
    (rest.len() > name.len()).then(|| format!("{root}{name}/"))
}

/// Script-like by name or by its first bytes (`#!`).
fn is_script(path: &str, bytes: &[u8]) -> bool {
    const EXTENSIONS: [&str; 12] = [
        ".sh", ".bash", ".zsh", ".py", ".js", ".mjs", ".ts", ".rb", ".pl", ".ps1", ".bat", ".cmd",
    ];
    let lower = path.to_ascii_lowercase();
    bytes.starts_with(b"#!") || EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// A file of a skill (not its skill file): executable, or a script outside a
/// `scripts/` folder, as the policy weighs them. `skill_folder` is the folder of the
/// skill it belongs to (`skills/deploy/`), if any.
pub fn file_problems(
    policy: &Policy,
    path: &str,
    skill_folder: Option<&str>,
    executable: bool,
    bytes: &[u8],
) -> Vec<Problem> {
    let mut out = Vec::new();
    if let (true, Some(level)) = (executable, policy.executables) {
        let mut p = Problem::new(Check::Executable, path, "an executable file (mode 100755)")
            .hint("agents may run it with the user's permissions; drop the executable bit (git update-index --chmod=-x) if it need not run");
        p.level = level;
        out.push(p);
    }
    if let Some(level) = policy.scripts_outside_scripts {
        let inside = skill_folder.is_some_and(|folder| {
            path.strip_prefix(folder)
                .is_some_and(|rest| rest.starts_with("scripts/"))
        });
        if !inside && (executable || is_script(path, bytes)) {
            let mut p = Problem::new(
                Check::ScriptLocation,
                path,
                "a script outside its skill's scripts/ folder",
            )
            .hint(match skill_folder {
                Some(folder) => {
                    format!("move it to {folder}scripts/, where reviewers and agents expect code")
                }
                None => "put scripts in a skill folder's scripts/".to_string(),
            });
            p.level = level;
            out.push(p);
        }
    }
    out
}

/// The entries of `allowed-tools` (a space-separated string, parentheses kept
/// together, or a list) that the policy denies, each a problem at the field's line in
/// `text` (the skill file).
pub fn tool_problems(
    policy: &Policy,
    path: &str,
    frontmatter: &serde_json::Value,
    text: &str,
) -> Vec<Problem> {
    let (Some((set, patterns)), Some(level)) = (&policy.deny_tools, policy.tools) else {
        return Vec::new();
    };
    let entries: Vec<String> = match frontmatter.get("allowed-tools") {
        Some(serde_json::Value::String(s)) => split_tools(s),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => return Vec::new(),
    };
    let line = text
        .lines()
        .position(|l| l.starts_with("allowed-tools:"))
        .map(|i| i as u32 + 1);
    entries
        .iter()
        .filter_map(|entry| {
            let matched: Vec<usize> = set.matches(entry.trim());
            let first = *matched.first()?;
            let mut p = Problem::new(
                Check::DeniedTool,
                path,
                format!(
                    "allowed-tools grants `{entry}`, which [policy] deny_tools forbids (`{}`)",
                    patterns[first]
                ),
            )
            .field("allowed-tools")
            .hint("grant a narrower tool (e.g. Bash(git status:*)), or ask the repository's owners to change [policy]");
            if let Some(l) = line {
                p = p.at(l, None);
            }
            p.level = level;
            Some(p)
        })
        .collect()
}

/// `Bash(git add:*) Read Write` -> ["Bash(git add:*)", "Read", "Write"]; commas
/// separate too.
fn split_tools(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            c if (c.is_whitespace() || c == ',') && depth == 0 => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml_text: &str) -> (Policy, Vec<Problem>) {
        let file: PolicyFile = toml::from_str(toml_text).unwrap();
        let mut problems = Vec::new();
        (build(file, toml_text, &mut problems), problems)
    }

    #[test]
    fn tools_are_split_and_matched() {
        assert_eq!(
            split_tools("Bash(git add:*) Read, Write"),
            ["Bash(git add:*)", "Read", "Write"]
        );
        let (p, problems) = policy("deny_tools = [\"Bash\", \"Bash(rm*)\"]\n");
        assert!(problems.is_empty());
        let fm =
            serde_json::json!({"allowed-tools": "Bash Read Bash(rm -rf:*) Bash(git status:*)"});
        let found = tool_problems(&p, "skills/x/SKILL.md", &fm, "---\nallowed-tools: x\n---\n");
        let entries: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(found.len(), 2, "{entries:?}");
        assert!(entries[0].contains("`Bash`") && entries[1].contains("`Bash(rm -rf:*)`"));
        assert_eq!(found[0].line, Some(2));
        assert_eq!(found[0].level, Level::Error);
    }

    #[test]
    fn executables_and_scripts_follow_the_policy() {
        let (p, _) = policy("executables = \"warn\"\nscripts_outside_scripts = \"deny\"\n");
        let at = |path: &str, x: bool, bytes: &[u8]| {
            file_problems(&p, path, Some("skills/deploy/"), x, bytes)
                .into_iter()
                .map(|p| (p.check, p.level))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            at("skills/deploy/scripts/run.sh", true, b"#!/bin/sh\n"),
            [(Check::Executable, Level::Warning)]
        );
        assert_eq!(
            at("skills/deploy/run.py", false, b"print(1)\n"),
            [(Check::ScriptLocation, Level::Error)]
        );
        assert_eq!(
            at("skills/deploy/tool", false, b"#!/usr/bin/env python\n"),
            [(Check::ScriptLocation, Level::Error)]
        );
        assert!(at("skills/deploy/reference.md", false, b"# notes\n").is_empty());
        let (none, _) = policy("");
        assert!(
            file_problems(
                &none,
                "skills/deploy/run.sh",
                Some("skills/deploy/"),
                true,
                b"#!"
            )
            .is_empty()
        );
        let (_, problems) = policy("executables = \"maybe\"\n");
        assert!(problems[0].message.contains("not one of allow, warn, deny"));
    }
}
