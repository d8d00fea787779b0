//! Checks that need the whole tree, not one file: two paths that differ only in case,
//! two skills with the same slug, and in the agent-skills layout, files outside any
//! skill folder and skill folders without a `SKILL.md`. Shared by the pre-receive
//! stage (a commit's tree) and `skillsd check` (a working tree).

use super::rules::{Layout, Rules, SKILL_FILE};
use super::skill::Problem;
use std::collections::{BTreeSet, HashMap, HashSet};

/// One file (not a folder) under the rules' roots.
#[derive(Debug, Clone)]
pub struct File {
    pub path: String,
    /// A regular file (not a symbolic link or a submodule).
    pub regular: bool,
}

/// The problems of `changed` paths (added, modified, or in the agent-skills layout
/// also deleted) given every file of the tree under the roots.
pub fn problems(rules: &Rules, files: &[File], changed: &[String]) -> Vec<Problem> {
    let mut by_folded: HashMap<String, BTreeSet<&str>> = HashMap::new();
    let mut by_slug: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut present: HashSet<&str> = HashSet::new();
    let mut skills: HashSet<&str> = HashSet::new();
    let mut folders_with_files: HashSet<String> = HashSet::new();
    for file in files {
        let path = file.path.as_str();
        present.insert(path);
        // Every folder prefix is folded, so a path costs its length times its depth:
        // paths over the length limit are reported by the path checks and skipped
        // here, which keeps this linear in practice.
        let mut end = 0;
        let parts = if path.len() > super::skill::MAX_PATH_BYTES {
            ""
        } else {
            path
        };
        for part in parts.split('/').filter(|p| !p.is_empty()) {
            end += part.len();
            let prefix = &path[..end];
            by_folded
                .entry(prefix.to_lowercase())
                .or_default()
                .insert(prefix);
            end += 1;
        }
        if file.regular && rules.is_skill(path) {
            skills.insert(path);
            by_slug.entry(rules.slug_of(path)).or_default().push(path);
        }
        if let Some(skill) = rules.skill_of(path) {
            folders_with_files.insert(skill);
        }
    }

    let mut problems = Vec::new();
    for path in changed.iter().filter(|p| present.contains(p.as_str())) {
        // The file collides with another path, or one of its folders does.
        let mut end = 0;
        for part in path.split('/') {
            end += part.len();
            let prefix = &path[..end];
            end += 1;
            let others = by_folded.get(&prefix.to_lowercase());
            if let Some(other) = others.and_then(|o| o.iter().find(|p| **p != prefix)) {
                problems.push(
                    Problem::new(
                        path,
                        format!("`{prefix}` and `{other}` differ only in upper and lower case"),
                    )
                    .hint(
                        "they would overwrite each other on macOS and Windows: rename one of them",
                    ),
                );
                break;
            }
        }
    }
    for path in changed.iter().filter(|p| skills.contains(p.as_str())) {
        let slug = rules.slug_of(path);
        let same: Vec<&str> = by_slug[slug]
            .iter()
            .copied()
            .filter(|p| *p != path)
            .collect();
        if !same.is_empty() {
            problems.push(
                Problem::new(
                    path,
                    format!("slug `{slug}` is already used by {}", same.join(", ")),
                )
                .at(1, None)
                .field("slug")
                .hint(match rules.layout {
                    Layout::Flat => {
                        "slugs are unique across the repository: rename one of the files"
                    }
                    Layout::AgentSkills => {
                        "skill names are unique across the repository: rename one of the folders"
                    }
                }),
            );
        }
    }
    if rules.layout == Layout::AgentSkills {
        let mut reported: HashSet<String> = HashSet::new();
        for path in changed {
            match rules.skill_of(path) {
                None if present.contains(path.as_str()) => {
                    let name = path.rsplit('/').next().unwrap_or(path);
                    if rules.governs(path) && !name.eq_ignore_ascii_case("README.md") {
                        let root = &path[..path.len() - name.len()];
                        problems.push(
                            Problem::new(path, "file is not inside a skill folder")
                                .hint(format!(
                                    "each skill is a folder with a {SKILL_FILE}: move the file into {root}<name>/, or remove it"
                                )),
                        );
                    }
                }
                Some(skill)
                    if folders_with_files.contains(&skill)
                        && !skills.contains(skill.as_str())
                        && reported.insert(skill.clone()) =>
                {
                    let folder = skill.strip_suffix(SKILL_FILE).unwrap_or(&skill);
                    let other_case = files.iter().find(|f| {
                        f.path.len() == skill.len() && f.path.eq_ignore_ascii_case(&skill)
                    });
                    let hint = match other_case {
                        Some(f) => format!("the file must be named exactly {SKILL_FILE}: rename `{}`", f.path),
                        None => format!(
                            "add {skill} with `name: {}` and a `description`, or move the other files out",
                            folder.trim_end_matches('/').rsplit('/').next().unwrap_or(folder)
                        ),
                    };
                    problems.push(
                        Problem::new(
                            &skill,
                            format!("skill folder `{folder}` has no {SKILL_FILE}"),
                        )
                        .hint(hint),
                    );
                }
                _ => {}
            }
        }
    }
    problems
}
