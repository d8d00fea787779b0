//! `skillsd check [PATH]`: validates the skills in a working tree with exactly the
//! rules and messages the server uses.

use crate::skills::{is_skill_path, render_problems, summary_line, validate_skill, Problem};
use std::path::Path;

/// Validates every skill under `root/skills/`. Returns the number of skills checked and
/// every problem found.
pub fn check_tree(root: &Path) -> std::io::Result<(usize, Vec<Problem>)> {
    let mut files = Vec::new();
    let skills = root.join("skills");
    if skills.is_dir() {
        walk(root, &skills, &mut files)?;
    }
    files.sort();
    let mut problems = Vec::new();
    let mut count = 0;
    for rel in files {
        let path = root.join(&rel);
        let is_link = std::fs::symlink_metadata(&path)?.file_type().is_symlink();
        problems.extend(crate::skills::validate::path_problems(&rel, is_link, false));
        if !is_skill_path(&rel) {
            continue;
        }
        count += 1;
        if is_link {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        if let Err(mut p) = validate_skill(&rel, &bytes) {
            problems.append(&mut p);
        }
    }
    Ok((count, problems))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Renders the report `skillsd check` prints.
pub fn report(count: usize, problems: &[Problem]) -> String {
    if problems.is_empty() {
        format!(
            "{count} skill{} checked, no problems\n",
            if count == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{}\n{} ({count} skill{} checked)\n",
            render_problems(problems),
            summary_line(problems),
            if count == 1 { "" } else { "s" }
        )
    }
}
