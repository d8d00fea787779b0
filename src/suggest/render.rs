//! The suggested `skillsd.toml` as text: what was found and chosen, as comments, the
//! keys, the relaxed levels with cautions, and what is left to fix in the files.

use super::*;

/// The file, with a comment for every choice.
pub(super) fn render(
    draft: &Draft,
    notes: &[String],
    tripped: &BTreeMap<&'static str, (Check, Vec<String>)>,
    kept_out: &[&str],
    problems: &[Problem],
    total: usize,
    cached: usize,
) -> String {
    let mut out = String::new();
    out.push_str("# skillsd.toml suggested by `skillsd check --suggest-config` for this tree.\n");
    out.push_str(&format!(
        "# {total} skill file{}; with these rules the cache holds {cached}, and every other one is named in the push's output.\n",
        if total == 1 { "" } else { "s" }
    ));
    let errors: Vec<&Problem> = problems.iter().filter(|p| p.is_error()).collect();
    if errors.is_empty() {
        out.push_str("# A push of the tree with this file is accepted.\n");
    } else {
        out.push_str(&format!(
            "# A push is still REFUSED: {} error{} to fix in the files (listed at the end).\n",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        ));
    }
    out.push('\n');
    for note in notes {
        out.push_str(&format!("# {note}\n"));
    }
    out.push_str(&draft.top_keys());
    out.push_str(&levels_lines(draft, tripped, &errors));
    out.push_str(&left_lines(kept_out, &errors));
    out
}

/// `[levels]`: each relaxed check with how many files trip it (a caution for those
/// that leave skills out of the cache), and the guards that are never relaxed here,
/// commented out.
fn levels_lines(
    draft: &Draft,
    tripped: &BTreeMap<&'static str, (Check, Vec<String>)>,
    errors: &[&Problem],
) -> String {
    let mut out = String::new();
    if !draft.levels.is_empty() {
        out.push_str("\n# The checks the collection trips that can be relaxed: warnings, shown on every push.\n");
        out.push_str("[levels]\n");
        for (id, (check, paths)) in tripped {
            let example = paths.first().map(String::as_str).unwrap_or_default();
            let count = paths.len();
            let files = format!(
                "{count} file{} (e.g. {example})",
                if count == 1 { "" } else { "s" }
            );
            if KEEPS_OUT.contains(check) {
                out.push_str(&format!(
                    "# CAUTION: relaxing {id} lets the push through with these out of the cache: {files}. {}\n",
                    match check {
                        Check::SkillOutsideRoots => "They lie outside every root.",
                        Check::NestedSkill => "They sit inside another skill's folder.",
                        Check::MissingSkillFile => "Their folders have no SKILL.md.",
                        _ => "They are in no skill folder.",
                    }
                ));
            } else {
                out.push_str(&format!(
                    "# {id} ({}): {files}; the skills are cached all the same.\n",
                    check.what()
                ));
            }
            out.push_str(&format!("{id} = \"warning\"\n"));
        }
    }
    // The guards the tree trips: never relaxed here, but the line that would is printed,
    // commented out, for an adopter who has read the files.
    let mut guarded: BTreeMap<&'static str, Vec<&str>> = BTreeMap::new();
    for p in errors.iter().filter(|p| GUARDS.contains(&p.check)) {
        let paths = guarded.entry(p.check.id()).or_default();
        if !paths.contains(&p.path.as_str()) {
            paths.push(&p.path);
        }
    }
    if !guarded.is_empty() {
        if draft.levels.is_empty() {
            out.push_str("\n[levels]\n");
        }
        for (id, paths) in &guarded {
            out.push_str(&format!(
                "# CAUTION: {id} is not relaxed: text a reader does not see is what it guards against ({} file{}, e.g. {}). Fix the files (a character shown on purpose written as an escape, \\u200b); or, having read them, uncomment (for every skill):\n# {id} = \"warning\"\n",
                paths.len(),
                if paths.len() == 1 { "" } else { "s" },
                paths[0]
            ));
        }
    }
    out
}

/// What is left after the levels: the files not cached, the errors to fix in the
/// files, and the credentials an adopter may allow (commented out).
fn left_lines(kept_out: &[&str], errors: &[&Problem]) -> String {
    let mut out = String::new();
    if !kept_out.is_empty() {
        out.push_str(&format!(
            "\n# Not cached ({}), each named in the push's output:\n",
            kept_out.len()
        ));
        for path in kept_out.iter().take(20) {
            out.push_str(&format!("#   {path}\n"));
        }
        if kept_out.len() > 20 {
            out.push_str(&format!("#   … and {} more\n", kept_out.len() - 20));
        }
    }
    if !errors.is_empty() {
        out.push_str(
            "\n# Errors to fix in the files, then push (no level is suggested for them):\n",
        );
        for p in errors.iter().take(20) {
            out.push_str(&format!(
                "#   {}: {} [{}]\n",
                p.path,
                p.message,
                p.check.id()
            ));
        }
        if errors.len() > 20 {
            out.push_str(&format!("#   … and {} more\n", errors.len() - 20));
        }
    }
    let fingerprints: BTreeSet<&str> = errors
        .iter()
        .filter(|p| p.check == Check::Secret)
        .filter_map(|p| fingerprint_in(&p.message))
        .collect();
    if !fingerprints.is_empty() {
        out.push_str(
            "\n# The credentials above are refused whatever the levels say. Only one that is a\n\
             # fixture and no live credential (an example, a revoked key) may be let through:\n\
             # check each, rotate any that is real, then uncomment.\n",
        );
        out.push_str("# [secrets]\n# allow = [\n");
        for fp in fingerprints {
            out.push_str(&format!("#     \"{fp}\",\n"));
        }
        out.push_str("# ]\n");
    }
    out
}

/// The `sha256:` fingerprint a `secret` problem's message names.
fn fingerprint_in(message: &str) -> Option<&str> {
    let at = message.find("(fingerprint sha256:")? + "(fingerprint ".len();
    let fp = message.get(at..at + "sha256:".len() + 12)?;
    fp["sha256:".len()..]
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then_some(fp)
}
