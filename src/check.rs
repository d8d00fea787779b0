//! `skillsd check [PATH]`: validates the skills in a working tree with exactly the
//! rules and messages the server uses — the rules are read from the working tree's
//! own `skillsd.toml` and schema, as the server reads them from the pushed commit.

use crate::skills::rules::{DirSource, Rules};
use crate::skills::{Problem, render_problems, summary_line, tree};
use std::path::{Path, PathBuf};

/// Validates every skill at or under `path` (a file or a folder of a working tree; the
/// tree's root is the nearest folder up from it with a `skillsd.toml` or a `.git`).
/// Returns the number of skills checked and every problem found. `max_depth` is the
/// server's own limit (`SKILLSD_MAX_TREE_DEPTH`), so `check` refuses what a push would.
pub fn check_tree(path: &Path, max_depth: u32) -> std::io::Result<(usize, Vec<Problem>)> {
    let target = path.canonicalize()?;
    let root = find_root(&target);
    let scope = target
        .strip_prefix(&root)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    let rules = match Rules::load(&DirSource { root: &root }) {
        Ok(rules) => rules,
        Err(problems) => return Ok((0, problems)),
    };
    check_with(&root, &scope, &rules, max_depth)
}

/// Validates every skill of the folder `root` (all of it: the tree a push of that
/// folder would bring) under `rules`, as [`check_tree`] does; for
/// `skillsd import DIR --dry-run`, where the rules may be the repository's.
pub fn check_folder(
    root: &Path,
    rules: &Rules,
    max_depth: u32,
) -> std::io::Result<(usize, Vec<Problem>)> {
    check_with(&root.canonicalize()?, "", rules, max_depth)
}

/// Validates every skill of the working tree at `root` (within `scope`, a relative
/// folder or file; empty: all of it) under `rules`, as [`check_tree`] does with the
/// tree's own rules (`--suggest-config` checks the rules it is about to suggest).
pub fn check_with(
    root: &Path,
    scope: &str,
    rules: &Rules,
    max_depth: u32,
) -> std::io::Result<(usize, Vec<Problem>)> {
    let root = root.to_path_buf();
    let mut files = Vec::new();
    // The whole working tree: roots may be patterns (`plugins/*/skills`), and a
    // SKILL.md outside them is reported, as the server would.
    if let Some(too_deep) = walk(&root, &root, max_depth, &mut files)? {
        return Ok((0, vec![too_deep]));
    }
    let (mut files, strays): (Vec<String>, Vec<String>) =
        files.into_iter().partition(|f| rules.governs(f));
    files.sort();
    let in_scope =
        |rel: &str| scope.is_empty() || rel == scope || rel.starts_with(&format!("{scope}/"));
    let mut problems = Vec::new();
    let mut count = 0;
    let mut listed = Vec::new();
    let mut checked = Vec::new();
    for rel in files {
        let full = root.join(&rel);
        let is_link = std::fs::symlink_metadata(&full)?.file_type().is_symlink();
        listed.push(tree::File {
            path: rel.clone(),
            regular: !is_link,
        });
        if !in_scope(&rel) {
            continue;
        }
        checked.push(rel.clone());
        let root = rules.root_of(&rel).unwrap_or_default();
        problems.extend(crate::skills::validate::path_problems(
            root, &rel, is_link, false,
        ));
        if !rules.is_skill(&rel) {
            // Another file of a skill (a script, a reference): its text is checked
            // for hidden text and credentials, as a push checks it.
            if !is_link {
                let bytes = std::fs::read(&full)?;
                problems.extend(rules.validate_other(&rel, &bytes));
                problems.extend(crate::skills::policy::file_problems(
                    &rules.policy,
                    &rel,
                    crate::skills::policy::skill_folder(rules, &rel).as_deref(),
                    is_executable(&full),
                    &bytes,
                ));
            }
            continue;
        }
        count += 1;
        if is_link {
            continue;
        }
        let bytes = std::fs::read(&full)?;
        match rules.validate(&rel, &bytes) {
            Ok(mut skill) => {
                problems.append(&mut skill.warnings);
                problems.extend(crate::skills::policy::tool_problems(
                    &rules.policy,
                    &rel,
                    &skill.frontmatter,
                    &String::from_utf8_lossy(&bytes),
                ));
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    problems.extend(tree::problems(rules, &listed, &checked));
    let mut problems = tree::free_renames(
        &listed,
        tree::quiet_under_skill_folders(rules, &listed, problems),
    );
    let strays: Vec<String> = strays.into_iter().filter(|p| in_scope(p)).collect();
    problems.extend(tree::stray_skill_files(rules, &strays));
    Ok((count, problems))
}

/// The working tree's `skillsd.toml` that `check_tree(path)` reads its rules from, if
/// the tree has one (without it, the built-in rules apply).
pub fn rules_file(path: &Path) -> Option<PathBuf> {
    let root = find_root(&path.canonicalize().ok()?);
    let file = root.join(crate::skills::rules::CONFIG_PATH);
    file.is_file().then_some(file)
}

/// Does the file have an executable bit (as git records it: any of them)?
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// The working tree's root: the nearest folder at or above `path` with a
/// `skillsd.toml` or a `.git`; else `path` itself (or its folder, for a file).
fn find_root(path: &Path) -> PathBuf {
    let start = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(path)
    };
    start
        .ancestors()
        .find(|d| d.join(crate::skills::rules::CONFIG_PATH).is_file() || d.join(".git").exists())
        .unwrap_or(start)
        .to_path_buf()
}

/// Every file under `dir`, as paths relative to `root`, walked with an explicit stack
/// (folders are not followed through symbolic links). A folder nested deeper than
/// `max_depth` below `root` (git's limit for what a server accepts) is a problem, as
/// the server would refuse the push.
pub(crate) fn walk(
    root: &Path,
    dir: &Path,
    max_depth: u32,
    out: &mut Vec<String>,
) -> std::io::Result<Option<Problem>> {
    let depth_of = |p: &Path| p.strip_prefix(root).map_or(0, |r| r.components().count());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            if ft.is_dir() && entry.file_name() == ".git" {
                continue; // git's own files, not the working tree's
            }
            if ft.is_dir() {
                if depth_of(&path) as u64 > u64::from(max_depth) {
                    let shown: Vec<String> = path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .components()
                        .take(8)
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    return Ok(Some(
                        Problem::new(
                            crate::skills::Check::TreeDepth,
                            &format!("{}/…", shown.join("/")),
                            format!("folders are nested more than {max_depth} levels deep"),
                        )
                        .hint("flatten the folder structure; the server refuses deeper trees"),
                    ));
                }
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    Ok(None)
}

/// Renders the report `skillsd check` prints: for errors no setting relaxes, a
/// summary of those first; the problems, repeated ones grouped unless `all`; the
/// summary line; the notes on the layout and on adopting a collection.
pub fn report(count: usize, problems: &[Problem], all: bool) -> String {
    if problems.is_empty() {
        return format!(
            "{count} skill{} checked, no problems\n",
            if count == 1 { "" } else { "s" }
        );
    }
    let mut text = String::new();
    if let Some(summary) = crate::skills::report::unrelaxable_summary(problems) {
        text.push_str(&summary);
        text.push('\n');
    }
    if all {
        text.push_str(&render_problems(problems));
    } else {
        text.push_str(&crate::skills::render_grouped(
            problems,
            "`skillsd check --all` lists every problem.",
        ));
    }
    text.push_str(&format!(
        "\n{} ({count} skill{} checked)\n",
        summary_line(problems),
        if count == 1 { "" } else { "s" }
    ));
    if problems
        .iter()
        .any(|p| p.check == crate::skills::Check::LayoutMismatch)
    {
        text.push_str(&crate::skills::report::flat_layout_note(&[]));
        text.push('\n');
    }
    if let Some(note) = crate::skills::adoption_note(problems) {
        text.push_str(&note);
        text.push('\n');
    }
    if let Some(note) = crate::skills::report::not_stored_note(problems) {
        text.push_str(&note);
        text.push('\n');
    }
    text
}
