//! `skillsd check --suggest-config`: a complete `skillsd.toml` for the working tree at
//! hand, so that a collection can be adopted as it is, in one push. It reads where the
//! skill files are and chooses:
//!
//! * the layout: agent-skills when there is any `SKILL.md`, else flat;
//! * the roots: the folders that hold the outermost skill folders, folded into as few
//!   patterns as possible (`plugins/a/skills` and `plugins/b/skills` become
//!   `plugins/*/skills` when the pattern matches no other folder), `"."` for skills
//!   at the top of the repository;
//! * `nested_skills` when skill folders sit inside other skill folders (or roots
//!   inside other roots);
//! * `namespaces` when names repeat: the folder pattern that tells them apart;
//! * `[levels]`: the tree is then checked with exactly these rules (the checks a push
//!   runs), and each check that can be relaxed and that the collection trips is set to
//!   `"warning"` — never `"off"`, so every finding is still shown on every push. The
//!   checks whose relaxing keeps a `SKILL.md` out of the cache ([`KEEPS_OUT`]) get a
//!   comment that says so and names the files. `hidden-text` and `padding` are never
//!   relaxed ([`GUARDS`]): the files are to be fixed.
//!
//! A `SKILL.md` that no rules can make a skill (no frontmatter, not UTF-8, too large,
//! a folder name that is no slug) gives no root: alone in its folders it is then
//! outside the roots, named on every push, instead of refusing it.
//!
//! What no configuration can fix (the checks that protect the server and the cache)
//! is listed at the end of the file, and the suggestion says the push would be
//! refused; credentials come with a commented `[secrets] allow` of their fingerprints,
//! to uncomment only for fixtures that are no live credential. Every choice is explained by a comment in the printed file.

mod render;

use crate::skills::rules::{CONFIG_PATH, Layout, Rules, RulesSource, SKILL_FILE};
use crate::skills::{Check, Level, Problem};
use render::render;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Checks `--suggest-config` never relaxes, though `[levels]` may: they guard the
/// reader against text they do not see, and relaxing them holds for every skill.
const GUARDS: [Check; 2] = [Check::HiddenText, Check::Padding];

/// The checks whose relaxing lets a push through with a `SKILL.md` (or a skill's
/// files) that the cache does not hold.
pub const KEEPS_OUT: [Check; 4] = [
    Check::SkillOutsideRoots,
    Check::NestedSkill,
    Check::MissingSkillFile,
    Check::OutsideSkillFolder,
];

/// A suggested `skillsd.toml` and what checking the tree with it found.
#[derive(Debug)]
pub struct Suggestion {
    /// The file, comments included.
    pub config: String,
    /// The findings under the suggested rules: warnings, and errors that no
    /// configuration can relax (then a push would be refused).
    pub problems: Vec<Problem>,
    /// How many `SKILL.md` (agent-skills) or skill files (flat) the tree has, and how
    /// many of them the cache would hold.
    pub skill_files: usize,
    pub cached: usize,
}

impl Suggestion {
    /// Would a push of the tree with this configuration be accepted?
    pub fn accepted(&self) -> bool {
        !crate::skills::any_error(&self.problems)
    }
}

/// Rules from a text, for trying a configuration before suggesting it.
struct Text<'a>(&'a str);

impl RulesSource for Text<'_> {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok((path == CONFIG_PATH).then(|| self.0.as_bytes().to_vec()))
    }
}

/// What the configuration says, before it is written out with its comments.
#[derive(Debug, Clone, Default)]
struct Draft {
    layout: Option<Layout>,
    roots: Vec<String>,
    nested_skills: bool,
    namespaces: Vec<String>,
    levels: BTreeMap<&'static str, Level>,
}

impl Draft {
    /// The top-level keys: layout, roots, nested skills, namespaces (the `[levels]`
    /// table follows them, with or without comments).
    fn top_keys(&self) -> String {
        let mut out = String::new();
        if let Some(layout) = self.layout {
            out.push_str(&format!("layout = {}\n", quote(layout.as_str())));
        }
        out.push_str(&format!("roots = {}\n", list(&self.roots)));
        if self.nested_skills {
            out.push_str("nested_skills = true\n");
        }
        if !self.namespaces.is_empty() {
            out.push_str(&format!("namespaces = {}\n", list(&self.namespaces)));
        }
        out
    }

    /// The configuration's keys alone (no comments).
    fn bare(&self) -> String {
        let mut out = self.top_keys();
        if !self.levels.is_empty() {
            out.push_str("[levels]\n");
            for (id, level) in &self.levels {
                out.push_str(&format!("{id} = {}\n", quote(level.as_str())));
            }
        }
        out
    }

    fn rules(&self) -> Result<std::sync::Arc<Rules>, Vec<Problem>> {
        Rules::load(&Text(&self.bare()))
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The folder of `path` (`""` at the top).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Is `inner` the folder `outer` or inside it (`outer` non-empty)?
fn within(inner: &str, outer: &str) -> bool {
    inner == outer || inner.starts_with(&format!("{outer}/"))
}

/// Suggests a `skillsd.toml` for the working tree at `root`, checked as a push would
/// check it (`max_depth`: the server's folder depth limit).
pub fn suggest(root: &Path, max_depth: u32) -> std::io::Result<Suggestion> {
    let mut files = Vec::new();
    if let Some(too_deep) = crate::check::walk(root, root, max_depth, &mut files)? {
        return Ok(Suggestion {
            config: String::new(),
            problems: vec![too_deep],
            skill_files: 0,
            cached: 0,
        });
    }
    files.sort();
    let is_link = |rel: &str| {
        std::fs::symlink_metadata(root.join(rel)).is_ok_and(|m| m.file_type().is_symlink())
    };
    let folders: BTreeSet<&str> = files
        .iter()
        .flat_map(|f| {
            f.match_indices('/')
                .map(move |(end, _)| &f[..end])
                .collect::<Vec<_>>()
        })
        .collect();
    let skill_md: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| crate::skills::tree::is_skill_file_name(f))
        .collect();
    let mut notes: Vec<String> = Vec::new();
    let mut draft = Draft::default();
    // The files the layout makes skills, and the folders holding the outermost ones.
    let (skill_folders, top_level): (Vec<&str>, Vec<&str>) = if skill_md.is_empty() {
        flat_skills(root, &files, &is_link, &mut draft, &mut notes)
    } else {
        agent_skill_folders(root, &skill_md, &is_link, &mut draft, &mut notes)?
    };
    choose_roots(&top_level, &folders, &mut draft, &mut notes);
    let skill_paths: Vec<String> = skill_folders
        .iter()
        .map(|f| match draft.layout {
            Some(Layout::AgentSkills) => format!("{f}/{SKILL_FILE}"),
            _ => f.to_string(),
        })
        .collect();
    choose_namespaces(&skill_folders, &skill_paths, &mut draft, &mut notes)?;
    let tripped = relax_levels(root, max_depth, &mut draft)?;
    let rules = draft.rules().map_err(invalid)?;
    let (_, problems) = crate::check::check_with(root, "", &rules, max_depth)?;

    // Which skill files the cache would hold: skills under the rules, without errors.
    let in_error: BTreeSet<&str> = problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.path.as_str())
        .collect();
    let candidates: Vec<&str> = if draft.layout == Some(Layout::AgentSkills) {
        skill_md.clone()
    } else {
        skill_paths.iter().map(String::as_str).collect()
    };
    let total = candidates.len();
    let kept_out: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|p| !rules.is_skill(p) || is_link(p))
        .collect();
    let cached = candidates
        .iter()
        .filter(|p| !kept_out.contains(p) && !in_error.contains(*p))
        .count();

    let config = render(
        &draft, &notes, &tripped, &kept_out, &problems, total, cached,
    );
    Ok(Suggestion {
        config,
        problems,
        skill_files: total,
        cached,
    })
}

/// The flat layout (no SKILL.md in the tree): the Markdown files with frontmatter are
/// the skills; the outermost folders holding them.
fn flat_skills<'f>(
    root: &Path,
    files: &'f [String],
    is_link: &dyn Fn(&str) -> bool,
    draft: &mut Draft,
    notes: &mut Vec<String>,
) -> (Vec<&'f str>, Vec<&'f str>) {
    draft.layout = Some(Layout::Flat);
    let flat: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| f.ends_with(".md") && !is_link(f) && has_frontmatter(&root.join(f)))
        .filter(|f| {
            let name = f.rsplit('/').next().unwrap_or(f);
            !name.eq_ignore_ascii_case("README.md")
        })
        .collect();
    notes.push(format!(
        "layout: no SKILL.md in the tree, so the flat layout (one Markdown file per skill); {} Markdown file{} with frontmatter",
        flat.len(),
        if flat.len() == 1 { "" } else { "s" }
    ));
    // A flat root holds its subfolders: the outermost folders only.
    let mut parents: Vec<&str> = flat.iter().map(|f| parent(f)).collect();
    parents.sort_unstable();
    parents.dedup();
    let outer: Vec<&str> = parents
        .iter()
        .copied()
        .filter(|p| {
            !parents
                .iter()
                .any(|q| !q.is_empty() && q != p && within(p, q))
        })
        .collect();
    (flat, outer)
}

/// The Agent Skills layout: the folders of the SKILL.md files that can be skills, and
/// the folders holding the outermost of them; nested skills noticed.
fn agent_skill_folders<'f>(
    root: &Path,
    skill_md: &[&'f str],
    is_link: &dyn Fn(&str) -> bool,
    draft: &mut Draft,
    notes: &mut Vec<String>,
) -> std::io::Result<(Vec<&'f str>, Vec<&'f str>)> {
    draft.layout = Some(Layout::AgentSkills);
    // A SKILL.md that cannot be a skill under any rules (no frontmatter, not UTF-8,
    // too large: the checks that cannot be relaxed) is left outside the roots
    // when its folder holds no other skill: then it is named as outside the roots
    // on every push instead of refusing it.
    let probe = Rules::load(&Text("layout = \"agent-skills\"\n")).map_err(invalid)?;
    let mut broken = Vec::new();
    let mut regular: Vec<&str> = Vec::new();
    for f in skill_md
        .iter()
        .copied()
        .filter(|f| f.contains('/') && !is_link(f))
    {
        let bytes = std::fs::read(root.join(f))?;
        let unusable = match probe.validate(f, &bytes) {
            Ok(_) => false,
            // (A credential is not among them: that file is refused, never
            // pushed unchecked outside the roots.)
            Err(problems) => problems.iter().any(|p| {
                matches!(
                    p.check,
                    Check::Encoding
                        | Check::BinaryFile
                        | Check::FileTooLarge
                        | Check::Frontmatter
                        | Check::NulCharacter
                        | Check::SlugFormat
                )
            }),
        };
        if unusable {
            broken.push(f);
        } else {
            regular.push(f);
        }
    }
    if !broken.is_empty() {
        notes.push(format!(
            "{} SKILL.md file{} cannot be a skill under any rules (e.g. {}: no usable frontmatter), so no root is chosen for {}",
            broken.len(),
            if broken.len() == 1 { "" } else { "s" },
            broken[0],
            if broken.len() == 1 { "it" } else { "them" }
        ));
    }
    notes.push(format!(
        "layout: {} SKILL.md file{} (a folder per skill), so the Agent Skills layout",
        skill_md.len(),
        if skill_md.len() == 1 { "" } else { "s" }
    ));
    let dirs: BTreeSet<&str> = regular.iter().map(|f| parent(f)).collect();
    let outer: Vec<&str> = dirs
        .iter()
        .copied()
        .filter(|d| !dirs.iter().any(|o| o != d && within(d, o)))
        .collect();
    if outer.len() < dirs.len() {
        draft.nested_skills = true;
        let inner = dirs.iter().find(|d| !outer.contains(d)).copied();
        notes.push(format!(
            "nested_skills: {} skill folder{} inside other skill folders (e.g. {}/), and each is a skill of its own",
            dirs.len() - outer.len(),
            if dirs.len() - outer.len() == 1 { " sits" } else { "s sit" },
            inner.unwrap_or_default()
        ));
    }
    let mut parents: Vec<&str> = outer.iter().map(|d| parent(d)).collect();
    parents.sort_unstable();
    parents.dedup();
    Ok((dirs.into_iter().collect(), parents))
}

/// The roots: the folders holding skills (roots inside other roots folded into the
/// outer one, with nested skills), as few patterns as say them.
fn choose_roots(
    top_level: &[&str],
    folders: &BTreeSet<&str>,
    draft: &mut Draft,
    notes: &mut Vec<String>,
) {
    // Roots inside other roots: the outer one holds them, with nested skills.
    let mut parents: Vec<&str> = top_level.to_vec();
    let nested_roots: Vec<&str> = parents
        .iter()
        .copied()
        .filter(|p| {
            !p.is_empty()
                && parents
                    .iter()
                    .any(|q| !q.is_empty() && q != p && within(p, q))
        })
        .collect();
    if !nested_roots.is_empty() {
        parents.retain(|p| !nested_roots.contains(p));
        if draft.layout == Some(Layout::AgentSkills) && !draft.nested_skills {
            draft.nested_skills = true;
            notes.push(format!(
                "nested_skills: skill folders sit at different depths (e.g. under {}/), so every folder with a SKILL.md is a skill",
                nested_roots[0]
            ));
        }
    }
    let (roots, folded) = fold_roots(&parents, folders);
    if roots.is_empty() {
        draft.roots = vec!["skills".to_string()];
        notes.push("roots: no skills found; the default folder, skills/".to_string());
    } else {
        draft.roots = roots;
        notes.push(format!(
            "roots: {} pattern{} for the {} folder{} that hold skills{}",
            draft.roots.len(),
            if draft.roots.len() == 1 { "" } else { "s" },
            parents.len(),
            if parents.len() == 1 { "" } else { "s" },
            if folded {
                " (`*` is one folder name)"
            } else {
                ""
            }
        ));
        if draft.roots.iter().any(|r| r == ".") {
            notes.push("roots: \".\" is the top of the repository (hidden folders and the files at the top are not skills)".to_string());
        }
    }
}

/// Repeated names: the namespace patterns that tell them apart.
fn choose_namespaces(
    skill_folders: &[&str],
    skill_paths: &[String],
    draft: &mut Draft,
    notes: &mut Vec<String>,
) -> std::io::Result<()> {
    // Repeated names: the namespace pattern that tells them apart.
    let rules = draft.rules().map_err(invalid)?;
    let duplicates = |rules: &Rules| -> usize {
        let mut keys: BTreeMap<String, usize> = BTreeMap::new();
        for f in skill_folders {
            let path = match rules.layout {
                Layout::AgentSkills => format!("{f}/{SKILL_FILE}"),
                Layout::Flat => f.to_string(),
            };
            if rules.is_skill(&path) {
                *keys.entry(rules.key_of(&path)).or_default() += 1;
            }
        }
        keys.values().filter(|n| **n > 1).map(|n| n - 1).sum()
    };
    let before = duplicates(&rules);
    if before > 0 {
        let candidates = namespace_candidates(skill_paths, draft.layout);
        // Tries `pattern` on top of the namespaces chosen so far: the repeats left and
        // how many skills get a namespace, or `None` when a namespace would not be a
        // valid slug (never suggested).
        let trial = |draft: &Draft, pattern: &str| -> Option<(usize, usize)> {
            let mut trial = draft.clone();
            trial.namespaces.push(pattern.to_string());
            let rules = trial.rules().ok()?;
            let mut namespaced = 0;
            for p in skill_paths {
                if let Some(namespace) = rules.namespace_of(p) {
                    if !crate::skills::skill::is_valid_slug(namespace) {
                        return None;
                    }
                    namespaced += 1;
                }
            }
            Some((duplicates(&rules), namespaced))
        };
        // One wildcard that tells every repeat apart (`plugins/*`: every plugin its
        // namespace, Claude Code's way), the shortest such; else, greedily, the pattern
        // that leaves the fewest repeats, of those the one that namespaces the fewest
        // skills (a folder that holds most skills keeps its plain names), a wildcard
        // before a single folder, shorter before longer.
        let mut left = before;
        let whole = candidates
            .iter()
            .filter(|c| !c.0)
            .find(|c| trial(draft, &c.2).is_some_and(|(after, _)| after == 0));
        if let Some((_, _, pattern)) = whole {
            draft.namespaces.push(pattern.clone());
            left = 0;
        }
        while left > 0 {
            let mut best: Option<(usize, usize, String)> = None;
            for candidate in &candidates {
                if draft.namespaces.contains(&candidate.2) {
                    continue;
                }
                let Some((after, namespaced)) = trial(draft, &candidate.2) else {
                    continue;
                };
                if after >= left || namespaced == 0 {
                    continue;
                }
                if best
                    .as_ref()
                    .is_none_or(|b| (after, namespaced) < (b.0, b.1))
                {
                    best = Some((after, namespaced, candidate.2.clone()));
                }
            }
            let Some((after, _, pattern)) = best else {
                break;
            };
            left = after;
            draft.namespaces.push(pattern);
        }
        draft.namespaces.sort();
        notes.push(namespaces_note(draft, skill_paths, before, left));
    }
    Ok(())
}

/// Candidates from each skill's folders above its own: `plugins/*` (every
/// plugin a namespace) or one folder (`preview`). Greedily, the pattern that
/// leaves the fewest repeats (a wildcard before a single folder, shorter before
/// longer), until none is left or none helps.
/// Each candidate: (a single folder, its depth, the pattern).
fn namespace_candidates(
    skill_paths: &[String],
    layout: Option<Layout>,
) -> BTreeSet<(bool, usize, String)> {
    let mut candidates: BTreeSet<(bool, usize, String)> = BTreeSet::new();
    for path in skill_paths {
        let own = match layout {
            Some(Layout::AgentSkills) => parent(parent(path)),
            _ => parent(path),
        };
        let mut end = 0;
        for segment in own.split('/').filter(|s| !s.is_empty()) {
            let prefix = own[..end].trim_end_matches('/');
            end += segment.len() + 1;
            let depth = own[..end - 1].matches('/').count();
            let wildcard = if prefix.is_empty() {
                "*".to_string()
            } else {
                format!("{prefix}/*")
            };
            candidates.insert((false, depth, wildcard));
            candidates.insert((true, depth, own[..end - 1].to_string()));
        }
    }
    candidates
}

/// What the namespaces chosen do: `before` names repeated, `left` still repeat.
fn namespaces_note(draft: &Draft, skill_paths: &[String], before: usize, left: usize) -> String {
    if draft.namespaces.is_empty() {
        format!(
            "namespaces: {before} skill name{} repeat, and no folder pattern tells them apart: see the end",
            if before == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "namespaces: {before} skill name{} repeat in different folders; under {} a skill's key is `<folder>:<name>` (the folder's name, e.g. `{}`){}",
            if before == 1 { "" } else { "s" },
            draft
                .namespaces
                .iter()
                .map(|n| format!("{n}/"))
                .collect::<Vec<_>>()
                .join(", "),
            example_key(draft, skill_paths),
            if left > 0 {
                format!("; {left} still repeat within one namespace: see the end")
            } else {
                String::new()
            }
        )
    }
}

/// The tree checked as a push would, then each check that trips (and may be relaxed)
/// set to `warning`: which, and for which files.
fn relax_levels(
    root: &Path,
    max_depth: u32,
    draft: &mut Draft,
) -> std::io::Result<BTreeMap<&'static str, (Check, Vec<String>)>> {
    // Check the tree as a push would, then relax what can be relaxed.
    let rules = draft.rules().map_err(invalid)?;
    let (_, problems) = crate::check::check_with(root, "", &rules, max_depth)?;
    let mut tripped: BTreeMap<&'static str, (Check, Vec<String>)> = BTreeMap::new();
    for p in problems
        .iter()
        .filter(|p| p.is_error() && !p.check.protected() && !GUARDS.contains(&p.check))
    {
        let entry = tripped
            .entry(p.check.id())
            .or_insert_with(|| (p.check, Vec::new()));
        if !entry.1.contains(&p.path) {
            entry.1.push(p.path.clone());
        }
    }
    for id in tripped.keys() {
        draft.levels.insert(id, Level::Warning);
    }
    Ok(tripped)
}

/// The key of the first namespaced skill under `draft`.
fn example_key(draft: &Draft, skill_paths: &[String]) -> String {
    let Ok(rules) = draft.rules() else {
        return String::new();
    };
    skill_paths
        .iter()
        .find(|p| rules.namespace_of(p).is_some())
        .map(|p| rules.key_of(p))
        .unwrap_or_default()
}

/// A suggestion that does not load is a bug here, not the tree's fault.
fn invalid(problems: Vec<Problem>) -> std::io::Error {
    std::io::Error::other(format!(
        "the suggested configuration does not load: {}",
        crate::skills::render_problems(&problems)
    ))
}

/// Does the file start with a frontmatter line `---`?
fn has_frontmatter(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .is_ok_and(|n| n >= 3 && &head[..3] == b"---")
}

/// Folds folders into as few root patterns as possible: folders that differ in one
/// segment become one pattern with `*` there, when the pattern matches no other folder
/// of the tree (`all`). `""` (the top) is the root `"."`. Returns the roots and whether
/// any pattern was made.
fn fold_roots(parents: &[&str], all: &BTreeSet<&str>) -> (Vec<String>, bool) {
    let mut left: Vec<Vec<&str>> = parents
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.split('/').collect())
        .collect();
    let mut roots = Vec::new();
    let mut folded = false;
    loop {
        // Every one-wildcard pattern, with the folders it would stand for.
        let mut patterns: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
        for (n, segments) in left.iter().enumerate() {
            for i in 0..segments.len() {
                let mut pattern = segments.clone();
                pattern[i] = "*";
                patterns.entry(pattern).or_default().push(n);
            }
        }
        let best = patterns
            .into_iter()
            .filter(|(pattern, members)| {
                members.len() >= 2 && {
                    // No other folder of the tree matches it.
                    let matches = all
                        .iter()
                        .filter(|f| {
                            let segments: Vec<&str> = f.split('/').collect();
                            segments.len() == pattern.len()
                                && segments
                                    .iter()
                                    .zip(pattern.iter())
                                    .all(|(s, p)| *p == "*" || s == p)
                        })
                        .count();
                    matches == members.len()
                }
            })
            .max_by_key(|(pattern, members)| (members.len(), std::cmp::Reverse(pattern.clone())));
        let Some((pattern, members)) = best else {
            break;
        };
        roots.push(pattern.join("/"));
        folded = true;
        let mut n = 0;
        left.retain(|_| {
            let keep = !members.contains(&n);
            n += 1;
            keep
        });
    }
    roots.extend(left.into_iter().map(|s| s.join("/")));
    roots.sort();
    if parents.iter().any(|p| p.is_empty()) {
        roots.push(".".to_string());
    }
    (roots, folded)
}

#[cfg(test)]
mod tests;
