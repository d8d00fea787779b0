//! How problems are shown: grouped by file, one `path:line:col: field: message` line
//! each with a `hint:` line under it, and a summary. The server sends these lines on
//! side-band 2 (the pusher sees them as `remote:` lines); `skillsd check` prints them.

use super::skill::Problem;
use std::fmt::Write as _;

/// Renders every problem, grouped by file in the order first seen, each file's in line
/// order.
pub fn render_problems(problems: &[Problem]) -> String {
    let mut out = String::new();
    // Files in the order first seen, each with its problems: one pass, so a push
    // with 100,000 problems renders in linear time.
    let mut files: Vec<(&str, Vec<&Problem>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for p in problems {
        let i = *index.entry(p.path.as_str()).or_insert_with(|| {
            files.push((p.path.as_str(), Vec::new()));
            files.len() - 1
        });
        files[i].1.push(p);
    }
    for (file, file_problems) in &mut files {
        // In line order (problems of the whole file first); stable, so problems on
        // one line keep the order they were found in.
        file_problems.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
        let _ = writeln!(out, "error: {file}");
        for p in file_problems {
            let mut loc = p.path.clone();
            if let Some(line) = p.line {
                let _ = write!(loc, ":{line}");
                if let Some(col) = p.column {
                    let _ = write!(loc, ":{col}");
                }
            }
            match &p.field {
                Some(field) => {
                    let _ = writeln!(out, "  {loc}: {field}: {}", p.message);
                }
                None => {
                    let _ = writeln!(out, "  {loc}: {}", p.message);
                }
            }
            if let Some(hint) = &p.hint {
                let _ = writeln!(out, "    hint: {hint}");
            }
        }
    }
    out
}

/// `3 errors in 2 files`.
pub fn summary_line(problems: &[Problem]) -> String {
    let mut files: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    format!(
        "{} error{} in {} file{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_file() {
        let problems = vec![
            Problem::new("skills/a.md", "required field is missing")
                .at(2, None)
                .field("title")
                .hint("add it"),
            Problem::new("skills/b.md", "bad")
                .at(3, Some(1))
                .field("status"),
            Problem::new("skills/a.md", "not UTF-8"),
        ];
        assert_eq!(
            render_problems(&problems),
            "error: skills/a.md\n  skills/a.md: not UTF-8\n  skills/a.md:2: title: required field is missing\n    hint: add it\nerror: skills/b.md\n  skills/b.md:3:1: status: bad\n"
        );
        assert_eq!(summary_line(&problems), "3 errors in 2 files");
    }

    #[test]
    fn problems_of_a_file_are_in_line_order() {
        let problems = vec![
            Problem::new("skills/a.md", "third").at(9, Some(3)),
            Problem::new("skills/a.md", "first").at(2, None),
            Problem::new("skills/a.md", "second").at(9, Some(1)),
            Problem::new("skills/a.md", "whole file"),
        ];
        assert_eq!(
            render_problems(&problems),
            "error: skills/a.md\n  skills/a.md: whole file\n  skills/a.md:2: first\n  skills/a.md:9:1: second\n  skills/a.md:9:3: third\n"
        );
    }
}
