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

/// A check's problems are all shown up to this many; past it, only the first
/// [`SHOWN_WHEN_MORE`] and a count.
pub const SHOWN_UP_TO: usize = 5;
/// How many of a check's problems are shown when there are more than [`SHOWN_UP_TO`].
pub const SHOWN_WHEN_MORE: usize = 3;

/// Like [`render_problems`], with repeated problems grouped: of each check (and level)
/// with more than [`SHOWN_UP_TO`] problems, the first [`SHOWN_WHEN_MORE`] are shown,
/// then a line with how many more there are ("… and 212 more `missing-field` errors").
/// `every`: where the reader finds every one, said once after the counts.
pub fn render_grouped(problems: &[Problem], every: &str) -> String {
    let mut totals: Vec<((Level, Check), usize)> = Vec::new();
    for p in problems {
        match totals.iter_mut().find(|(k, _)| *k == (p.level, p.check)) {
            Some((_, n)) => *n += 1,
            None => totals.push(((p.level, p.check), 1)),
        }
    }
    let total = |k: (Level, Check)| totals.iter().find(|(t, _)| *t == k).map_or(0, |t| t.1);
    let mut seen: std::collections::HashMap<(Level, Check), usize> = Default::default();
    let kept: Vec<Problem> = problems
        .iter()
        .filter(|p| {
            let k = (p.level, p.check);
            let n = seen.entry(k).or_default();
            *n += 1;
            total(k) <= SHOWN_UP_TO || *n <= SHOWN_WHEN_MORE
        })
        .cloned()
        .collect();
    let mut out = render_problems(&kept);
    let mut more = false;
    // Errors first, as they are rendered.
    for level in [Level::Error, Level::Warning] {
        for ((l, check), n) in totals.iter().filter(|((l, _), _)| *l == level) {
            if *n > SHOWN_UP_TO {
                more = true;
                let _ = writeln!(
                    out,
                    "… and {} more `{}` {}s ({n} in all)",
                    n - SHOWN_WHEN_MORE,
                    check.id(),
                    l.as_str()
                );
            }
        }
    }
    if more && !every.is_empty() {
        let _ = writeln!(out, "{every}");
    }
    out
}

/// For a refusal with errors of protected checks (which `[levels]` cannot relax): the
/// summary a pusher reads first, each such check with its count and why it protects.
pub fn unrelaxable_summary(problems: &[Problem]) -> Option<String> {
    let mut counts: Vec<(Check, usize)> = Vec::new();
    for p in problems
        .iter()
        .filter(|p| p.is_error() && p.check.protected())
    {
        match counts.iter_mut().find(|(c, _)| *c == p.check) {
            Some((_, n)) => *n += 1,
            None => counts.push((p.check, 1)),
        }
    }
    if counts.is_empty() {
        return None;
    }
    let total: usize = counts.iter().map(|c| c.1).sum();
    let mut text = if total == 1 {
        "1 problem below cannot be relaxed in skillsd.toml: fix it in the files.\n".to_string()
    } else {
        format!(
            "{total} problems below cannot be relaxed in skillsd.toml: fix them in the files.\n"
        )
    };
    for (check, n) in &counts {
        let _ = writeln!(
            text,
            "  {} ({n}): {}; why it cannot be relaxed: {}",
            check.id(),
            check.what(),
            check
                .why_protected()
                .unwrap_or("it protects the server and the cache")
        );
    }
    Some(text)
}

/// Where a pusher finds every problem when [`render_grouped`] left some out.
pub const EVERY_PROBLEM_IN_A_CLONE: &str =
    "`skillsd check --all` in your clone lists every problem.";

/// What a pusher reads for `problems` (not empty): for a refusal with problems no
/// setting relaxes, a summary of those first; every problem (repeated ones grouped),
/// the summary line, and whether the push was refused for them; for a refusal, the
/// adoption note.
pub fn push_report(problems: &[Problem]) -> String {
    let mut text = String::new();
    if super::skill::any_error(problems)
        && let Some(summary) = unrelaxable_summary(problems)
    {
        let _ = writeln!(text, "{summary}");
    }
    text.push_str(&render_grouped(problems, EVERY_PROBLEM_IN_A_CLONE));
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
    if let Some(note) = not_stored_note(problems) {
        let _ = writeln!(text, "{note}");
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

/// The folder that would hold the skill whose `SKILL.md` is at `path` as a root
/// (`plugins/x/skills/pdf/SKILL.md` → `plugins/x/skills`); `None` for a skill folder
/// at the top of the repository.
pub fn root_for(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (parts.len() >= 3).then(|| parts[..parts.len() - 2].join("/"))
}

/// `folders` (roots to add, `a/b/c`) as few glob patterns as cover them without
/// reaching further than they do: folders of one depth that differ in one segment
/// only become one pattern with `*` there (`plugins/git/skills`, `plugins/docs/skills`
/// → `plugins/*/skills`), again until nothing merges. Sorted.
pub fn root_patterns<S: AsRef<str>>(folders: &[S]) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut items: BTreeSet<Vec<String>> = folders
        .iter()
        .map(|f| {
            f.as_ref()
                .trim_end_matches('/')
                .split('/')
                .map(str::to_string)
                .collect()
        })
        .collect();
    loop {
        let mut merged = false;
        let deepest = items.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..deepest {
            let mut groups: BTreeMap<Vec<String>, Vec<Vec<String>>> = BTreeMap::new();
            for item in items.iter().filter(|it| it.len() > i && it[i] != "*") {
                let mut key = item.clone();
                key[i] = "*".to_string();
                groups.entry(key).or_default().push(item.clone());
            }
            for (pattern, members) in groups {
                if members.len() >= 2 || items.contains(&pattern) {
                    for m in members {
                        items.remove(&m);
                    }
                    items.insert(pattern);
                    merged = true;
                }
            }
        }
        if !merged {
            break;
        }
    }
    items.into_iter().map(|parts| parts.join("/")).collect()
}

/// Does the root `pattern` (segments, `*` for any one) name `folder`?
pub fn pattern_covers(pattern: &str, folder: &str) -> bool {
    let p: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let f: Vec<&str> = folder.trim_end_matches('/').split('/').collect();
    p.len() == f.len() && p.iter().zip(&f).all(|(p, f)| *p == "*" || p == f)
}

/// The fix that stores the skills a cache-losing check (see
/// [`Check::keeps_out_of_cache`]) found, given all of `problems`.
fn storing_fix(check: Check, problems: &[Problem]) -> String {
    match check {
        Check::SkillOutsideRoots => {
            let folders: Vec<String> = problems
                .iter()
                .filter(|p| p.check == check)
                .filter_map(|p| root_for(&p.path))
                .collect();
            let top = problems
                .iter()
                .any(|p| p.check == check && root_for(&p.path).is_none());
            let mut fix = String::new();
            if !folders.is_empty() {
                let patterns: Vec<String> = root_patterns(&folders)
                    .into_iter()
                    .map(|p| format!("\"{p}\""))
                    .collect();
                let _ = write!(
                    fix,
                    "add {} to `roots` in skillsd.toml",
                    patterns.join(", ")
                );
            }
            if top {
                if !fix.is_empty() {
                    fix.push_str("; ");
                }
                fix.push_str(
                    "for skill folders at the top of the repository, add \".\" to `roots`",
                );
            }
            fix
        }
        Check::NestedSkill => "set `nested_skills = true` in skillsd.toml (every folder with a SKILL.md is a skill then)".into(),
        Check::MissingSkillFile => "add a SKILL.md (`name:`, `description:`) to each such skill folder, or move its files into a skill's folder".into(),
        Check::OutsideSkillFolder => "move each file into a skill's folder (under a root, every folder is a skill), or out of the roots".into(),
        Check::LayoutMismatch => "set `layout = \"agent-skills\"` in skillsd.toml".into(),
        _ => String::new(),
    }
}

/// When checks whose findings are not stored (see [`Check::keeps_out_of_cache`]) are
/// relaxed to warnings: that those files are in git but not in the cache, how many,
/// and the fix that stores them. `None` when there are no such warnings.
pub fn not_stored_note(problems: &[Problem]) -> Option<String> {
    let mut counts: Vec<(Check, usize)> = Vec::new();
    for p in problems
        .iter()
        .filter(|p| p.level == Level::Warning && p.check.keeps_out_of_cache())
    {
        match counts.iter_mut().find(|(c, _)| *c == p.check) {
            Some((_, n)) => *n += 1,
            None => counts.push((p.check, 1)),
        }
    }
    if counts.is_empty() {
        return None;
    }
    let mut text = String::from(
        "Not stored in the cache: these checks are relaxed to warnings, so the files they \
         name are in git but are not skills. To store them:\n",
    );
    for (check, n) in &counts {
        let _ = writeln!(
            text,
            "  {} ({n}): {}",
            check.id(),
            storing_fix(*check, problems)
        );
    }
    Some(text.trim_end().to_string())
}

/// For a refused push of an existing collection: where to start
/// (`skillsd check --suggest-config`), which of the checks that refused it can be
/// relaxed to warnings (with how often each fired), and for the checks whose relaxing
/// would keep skills out of the cache, plainly that, with the fix that stores them.
/// `None` when no check of the refusal can be relaxed.
pub fn adoption_note(problems: &[Problem]) -> Option<String> {
    let mut relaxable: Vec<(Check, usize)> = Vec::new();
    let mut losing: Vec<(Check, usize)> = Vec::new();
    // (A layout mismatch is fixed by choosing the layout, which the push says up front,
    // not by relaxing the check.)
    for p in problems
        .iter()
        .filter(|p| p.is_error() && !p.check.protected() && p.check != Check::LayoutMismatch)
    {
        let list = if p.check.keeps_out_of_cache() {
            &mut losing
        } else {
            &mut relaxable
        };
        match list.iter_mut().find(|(c, _)| *c == p.check) {
            Some((_, n)) => *n += 1,
            None => list.push((p.check, 1)),
        }
    }
    if relaxable.is_empty() && losing.is_empty() {
        return None;
    }
    for list in [&mut relaxable, &mut losing] {
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.id().cmp(b.0.id())));
    }
    let mut text = String::from(
        "Adopting an existing collection? `skillsd check --suggest-config` prints a \
         skillsd.toml for the tree (layout, roots, nested skills, levels) that lets it \
         through with every SKILL.md stored or named (RULES.md: adopting an existing \
         collection).\n",
    );
    if !losing.is_empty() {
        text.push_str(
            "These keep skills out of the cache: relaxing them would let the push through \
             but store none of those skills. To store them:\n",
        );
        for (check, n) in &losing {
            let _ = writeln!(
                text,
                "  {} ({n}): {}",
                check.id(),
                storing_fix(*check, problems)
            );
        }
    }
    if !relaxable.is_empty() {
        let list: Vec<String> = relaxable
            .iter()
            .map(|(c, n)| format!("{} ({n})", c.id()))
            .collect();
        let _ = write!(
            text,
            "These checks can be relaxed while you fix the files: {}. Under [levels] in \
             skillsd.toml, e.g. `{} = \"warning\"`: warnings are shown and stored with the \
             skill but do not refuse a push.",
            list.join(", "),
            relaxable[0].0.id()
        );
    }
    Some(text.trim_end().to_string())
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
        let note = adoption_note(&[error.clone(), error]).unwrap();
        assert!(
            note.starts_with("Adopting an existing collection? `skillsd check --suggest-config`"),
            "{note}"
        );
        assert!(
            note.ends_with("These checks can be relaxed while you fix the files: name-mismatch (2). Under [levels] in skillsd.toml, e.g. `name-mismatch = \"warning\"`: warnings are shown and stored with the skill but do not refuse a push."),
            "{note}"
        );
        assert!(!note.contains("keep skills out of the cache"), "{note}");
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

    fn many(check: Check, n: usize) -> Vec<Problem> {
        (0..n)
            .map(|i| Problem::new(check, &format!("skills/s{i}/SKILL.md"), "wrong").at(2, None))
            .collect()
    }

    #[test]
    fn repeated_problems_show_the_first_few_then_a_count() {
        let mut problems = many(Check::MissingField, 8);
        problems.extend(many(Check::NameMismatch, 5));
        let text = render_grouped(&problems, "see all");
        assert_eq!(text.matches("[missing-field]").count(), 3, "{text}");
        assert_eq!(text.matches("[name-mismatch]").count(), 5, "{text}");
        assert!(text.contains("skills/s2/SKILL.md:2: wrong [missing-field]"));
        assert!(!text.contains("skills/s3/SKILL.md:2: wrong [missing-field]"));
        assert!(
            text.ends_with("… and 5 more `missing-field` errors (8 in all)\nsee all\n"),
            "{text}"
        );
        // Nothing left out: no count, no pointer.
        let few = render_grouped(&many(Check::MissingField, 5), "see all");
        assert_eq!(few, render_problems(&many(Check::MissingField, 5)));
        // A push groups them too, and counts every one in its summary line.
        let report = push_report(&problems);
        assert!(report.contains("… and 5 more `missing-field` errors (8 in all)"));
        assert!(report.contains(EVERY_PROBLEM_IN_A_CLONE));
        assert!(
            report.contains("13 errors in 8 files; push refused"),
            "{report}"
        );
    }

    #[test]
    fn a_refusal_with_unrelaxable_errors_starts_with_them_and_why() {
        let mut problems = many(Check::MissingField, 2);
        problems.push(Problem::new(
            Check::DuplicateSlug,
            "skills/a/SKILL.md",
            "slug `a` is already used",
        ));
        problems.push(Problem::new(
            Check::DuplicateSlug,
            "skills/b/SKILL.md",
            "slug `b` is already used",
        ));
        problems.push(Problem::new(Check::Symlink, "skills/c/SKILL.md", "a link"));
        let report = push_report(&problems);
        assert!(
            report.starts_with("3 problems below cannot be relaxed in skillsd.toml: fix them in the files.\n  duplicate-slug (2): two skills with one slug; why it cannot be relaxed: the cache, the API and agents find a skill by its name"),
            "{report}"
        );
        assert!(report.contains("\n  symlink (1): a symbolic link under a root; why it cannot be relaxed: a link may point outside"));
        // Only what can be relaxed is offered for relaxing.
        let note = adoption_note(&problems).unwrap();
        assert!(note.contains("missing-field (2)"), "{note}");
        assert!(!note.contains("duplicate-slug ("), "{note}");
        // Nothing of the kind when every error can be relaxed, or on warnings alone.
        assert!(!push_report(&many(Check::MissingField, 2)).contains("cannot be relaxed"));
        assert_eq!(unrelaxable_summary(&many(Check::MissingField, 2)), None);
    }

    #[test]
    fn relaxing_a_check_that_stores_nothing_is_never_offered_without_saying_so() {
        let mut problems: Vec<Problem> = [
            "plugins/git/skills/commit",
            "plugins/docs/skills/readme",
            "plugins/pdf/skills/fill",
            "examples/template",
        ]
        .iter()
        .map(|f| {
            Problem::new(
                Check::SkillOutsideRoots,
                &format!("{f}/SKILL.md"),
                "outside",
            )
        })
        .collect();
        problems.push(Problem::new(
            Check::NestedSkill,
            "skills/pdf/forms/SKILL.md",
            "nested",
        ));
        problems.push(Problem::new(
            Check::UnknownField,
            "skills/pdf/SKILL.md",
            "unknown",
        ));
        let note = adoption_note(&problems).unwrap();
        assert!(
            note.contains("These keep skills out of the cache: relaxing them would let the push through but store none of those skills. To store them:\n  skill-outside-roots (4): add \"examples\", \"plugins/*/skills\" to `roots` in skillsd.toml\n  nested-skill (1): set `nested_skills = true`"),
            "{note}"
        );
        assert!(
            note.contains(
                "These checks can be relaxed while you fix the files: unknown-field (1)."
            ),
            "{note}"
        );
        assert!(
            !note.contains("skill-outside-roots = \"warning\""),
            "{note}"
        );
        // Only cache-losing problems: no relaxing offered at all.
        let only: Vec<Problem> = problems
            .into_iter()
            .filter(|p| p.check.keeps_out_of_cache())
            .collect();
        assert!(!adoption_note(&only).unwrap().contains("[levels]"));
    }

    #[test]
    fn roots_are_suggested_as_few_patterns_as_cover_them() {
        let folders: Vec<String> = (0..37).map(|i| format!("plugins/p{i}/skills")).collect();
        assert_eq!(root_patterns(&folders), vec!["plugins/*/skills"]);
        assert_eq!(
            root_patterns(&[
                "a/x/skills",
                "b/y/skills",
                "plugins/one/skills",
                "plugins/two/skills",
                "plugins/one/extra/skills"
            ]),
            vec![
                "a/x/skills",
                "b/y/skills",
                "plugins/*/skills",
                "plugins/one/extra/skills"
            ]
        );
        // Two segments varying at once merge in two steps only when the
        // folders fill the grid.
        assert_eq!(
            root_patterns(&["p/a/x", "p/a/y", "p/b/x", "p/b/y"]),
            vec!["p/*/*"]
        );
        assert_eq!(root_patterns(&["skills"]), vec!["skills"]);
        assert!(pattern_covers("plugins/*/skills", "plugins/git/skills/"));
        assert!(!pattern_covers(
            "plugins/*/skills",
            "plugins/git/more/skills"
        ));
        assert_eq!(
            root_for("plugins/x/skills/pdf/SKILL.md").as_deref(),
            Some("plugins/x/skills")
        );
        assert_eq!(root_for("pdf/SKILL.md"), None);
    }

    #[test]
    fn relaxed_checks_that_store_nothing_are_said_to_store_nothing() {
        let mut problems: Vec<Problem> = ["plugins/a/skills/x", "plugins/b/skills/y"]
            .iter()
            .map(|f| {
                let mut p = Problem::new(
                    Check::SkillOutsideRoots,
                    &format!("{f}/SKILL.md"),
                    "outside",
                );
                p.level = Level::Warning;
                p
            })
            .collect();
        let report = push_report(&problems);
        assert!(report.contains("2 warnings in 2 files; warnings do not refuse the push."));
        assert!(
            report.contains("Not stored in the cache: these checks are relaxed to warnings, so the files they name are in git but are not skills. To store them:\n  skill-outside-roots (2): add \"plugins/*/skills\" to `roots` in skillsd.toml"),
            "{report}"
        );
        problems[0].check = Check::UnknownField;
        problems.truncate(1);
        assert_eq!(not_stored_note(&problems), None);
    }
}
