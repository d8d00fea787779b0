//! How problems are shown: grouped by file, one `path:line:col: field: message` line
//! each with a `hint:` line under it, and a summary. The server sends these lines on
//! side-band 2 (the pusher sees them as `remote:` lines); `skillsd check` prints them.

use super::skill::{Check, Level, Problem};
use std::fmt::Write as _;

/// Renders every problem: the errors grouped by file in the order first seen, each
/// file's in line order, then the warnings the same way. Each line ends with the id of
/// the check that found it (`[unknown-field]`), the key of `[levels]` in skillsd.toml.
pub fn render_problems(problems: &[Problem]) -> String {
    let mut out = String::new();
    for level in [Level::Error, Level::Warning] {
        render_level(&mut out, problems, level);
    }
    out
}

fn render_level(out: &mut String, problems: &[Problem], level: Level) {
    // Files in the order first seen, each with its problems: one pass, so a push
    // with 100,000 problems renders in linear time.
    let mut files: Vec<(&str, Vec<&Problem>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for p in problems.iter().filter(|p| p.level == level) {
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
        let _ = writeln!(out, "{}: {file}", level.as_str());
        for p in file_problems {
            let mut loc = p.path.clone();
            if let Some(line) = p.line {
                let _ = write!(loc, ":{line}");
                if let Some(col) = p.column {
                    let _ = write!(loc, ":{col}");
                }
            }
            let check = p.check.id();
            match &p.field {
                Some(field) => {
                    let _ = writeln!(out, "  {loc}: {field}: {} [{check}]", p.message);
                }
                None => {
                    let _ = writeln!(out, "  {loc}: {} [{check}]", p.message);
                }
            }
            if let Some(hint) = &p.hint {
                let _ = writeln!(out, "    hint: {hint}");
            }
        }
    }
}

/// `3 errors in 2 files`, `3 errors in 2 files, 1 warning in 1 file`, `1 warning in 1 file`.
pub fn summary_line(problems: &[Problem]) -> String {
    let count = |level: Level| {
        let mut files: Vec<&str> = problems
            .iter()
            .filter(|p| p.level == level)
            .map(|p| p.path.as_str())
            .collect();
        let n = files.len();
        files.sort_unstable();
        files.dedup();
        (n, files.len())
    };
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let (errors, error_files) = count(Level::Error);
    let (warnings, warning_files) = count(Level::Warning);
    let mut parts = Vec::new();
    if errors > 0 || warnings == 0 {
        parts.push(format!(
            "{} in {}",
            plural(errors, "error"),
            plural(error_files, "file")
        ));
    }
    if warnings > 0 {
        parts.push(format!(
            "{} in {}",
            plural(warnings, "warning"),
            plural(warning_files, "file")
        ));
    }
    parts.join(", ")
}

/// What a pusher reads for `problems` (not empty): every problem, the summary, and
/// whether the push was refused for them; for a refusal, the checks that could be
/// relaxed.
pub fn push_report(problems: &[Problem]) -> String {
    let mut text = render_problems(problems);
    if super::skill::any_error(problems) {
        let _ = writeln!(
            text,
            "\n{}; push refused, nothing was written.",
            summary_line(problems)
        );
        if let Some(note) = adoption_note(problems) {
            let _ = writeln!(text, "{note}");
        }
    } else {
        let _ = writeln!(
            text,
            "\n{}; warnings do not refuse the push.",
            summary_line(problems)
        );
    }
    text
}

/// The note for SKILL.md files in a repository on the flat layout (`roots`: where its
/// skills live, when known): how to switch to the Agent Skills layout.
pub fn flat_layout_note(roots: &[String]) -> String {
    let under = if roots.is_empty() {
        String::new()
    } else {
        format!(" under {}", roots.join(", "))
    };
    format!(
        "This repository is on the flat layout (one `<slug>.md` per skill{under}, with \
         `title:`), but it has SKILL.md files, the Agent Skills format. To use that format, \
         commit `layout = \"agent-skills\"` in skillsd.toml at the root (see RULES.md: \
         adopting an existing collection)."
    )
}

/// For a first push of an existing collection: which of the checks that refused it
/// can be relaxed to warnings, with how often each fired. `None` when none can.
pub fn adoption_note(problems: &[Problem]) -> Option<String> {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    // (A layout mismatch is fixed by choosing the layout, which the push says up front,
    // not by relaxing the check.)
    for p in problems
        .iter()
        .filter(|p| p.is_error() && !p.check.protected() && p.check != Check::LayoutMismatch)
    {
        match counts.iter_mut().find(|(id, _)| *id == p.check.id()) {
            Some((_, n)) => *n += 1,
            None => counts.push((p.check.id(), 1)),
        }
    }
    if counts.is_empty() {
        return None;
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let list: Vec<String> = counts.iter().map(|(id, n)| format!("{id} ({n})")).collect();
    let example = counts[0].0;
    Some(format!(
        "Adopting an existing collection? These checks can be relaxed while you fix it: {}. Under [levels] in skillsd.toml, e.g. `{example} = \"warning\"`: warnings are shown and stored but do not refuse a push (RULES.md).",
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_flat_layout_note_names_the_roots_when_known() {
        let with = flat_layout_note(&["skills/".to_string(), "docs/".to_string()]);
        assert!(
            with.contains("one `<slug>.md` per skill under skills/, docs/, with"),
            "{with}"
        );
        assert!(with.contains("commit `layout = \"agent-skills\"` in skillsd.toml"));
        let without = flat_layout_note(&[]);
        assert!(
            without.contains("one `<slug>.md` per skill, with `title:`"),
            "{without}"
        );
    }

    use super::*;

    #[test]
    fn warnings_come_after_errors_and_count_apart() {
        let mut warning = Problem::new(Check::UnknownField, "skills/b/SKILL.md", "unknown field")
            .at(4, Some(1))
            .field("version");
        warning.level = Level::Warning;
        let error = Problem::new(
            Check::NameMismatch,
            "skills/a/SKILL.md",
            "`x` does not match",
        )
        .at(2, Some(1))
        .field("name");
        let problems = vec![warning.clone(), error.clone()];
        assert_eq!(
            render_problems(&problems),
            "error: skills/a/SKILL.md\n  skills/a/SKILL.md:2:1: name: `x` does not match [name-mismatch]\nwarning: skills/b/SKILL.md\n  skills/b/SKILL.md:4:1: version: unknown field [unknown-field]\n"
        );
        assert_eq!(
            summary_line(&problems),
            "1 error in 1 file, 1 warning in 1 file"
        );
        assert_eq!(summary_line(&[warning.clone()]), "1 warning in 1 file");
        assert_eq!(
            adoption_note(&[error.clone(), error]).unwrap(),
            "Adopting an existing collection? These checks can be relaxed while you fix it: name-mismatch (2). Under [levels] in skillsd.toml, e.g. `name-mismatch = \"warning\"`: warnings are shown and stored but do not refuse a push (RULES.md)."
        );
        assert_eq!(adoption_note(&[warning]), None);
        assert_eq!(
            adoption_note(&[Problem::new(Check::Encoding, "skills/a.md", "not UTF-8")]),
            None
        );
    }

    #[test]
    fn groups_by_file() {
        let problems = vec![
            Problem::new(
                Check::MissingField,
                "skills/a.md",
                "required field is missing",
            )
            .at(2, None)
            .field("title")
            .hint("add it"),
            Problem::new(Check::InvalidStatus, "skills/b.md", "bad")
                .at(3, Some(1))
                .field("status"),
            Problem::new(Check::Encoding, "skills/a.md", "not UTF-8"),
        ];
        assert_eq!(
            render_problems(&problems),
            "error: skills/a.md\n  skills/a.md: not UTF-8 [encoding]\n  skills/a.md:2: title: required field is missing [missing-field]\n    hint: add it\nerror: skills/b.md\n  skills/b.md:3:1: status: bad [invalid-status]\n"
        );
        assert_eq!(summary_line(&problems), "3 errors in 2 files");
    }

    #[test]
    fn problems_of_a_file_are_in_line_order() {
        let problems = vec![
            Problem::new(Check::Schema, "skills/a.md", "third").at(9, Some(3)),
            Problem::new(Check::Schema, "skills/a.md", "first").at(2, None),
            Problem::new(Check::Schema, "skills/a.md", "second").at(9, Some(1)),
            Problem::new(Check::Schema, "skills/a.md", "whole file"),
        ];
        assert_eq!(
            render_problems(&problems),
            "error: skills/a.md\n  skills/a.md: whole file [schema]\n  skills/a.md:2: first [schema]\n  skills/a.md:9:1: second [schema]\n  skills/a.md:9:3: third [schema]\n"
        );
    }
}
