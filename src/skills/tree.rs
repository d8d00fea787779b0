//! Checks that need the whole tree, not one file: two paths that differ only in case,
//! two skills with the same slug, and in the agent-skills layout, files outside any
//! skill folder and skill folders without a `SKILL.md`. Shared by the pre-receive
//! stage (a commit's tree) and `skillsd check` (a working tree).

use super::rules::{Layout, Rules, SKILL_FILE};
use super::skill::{Check, Level, Problem};
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
    rules.levelled(findings(rules, files, changed))
}

fn findings(rules: &Rules, files: &[File], changed: &[String]) -> Vec<Problem> {
    // The tree's skills (regular files the layout makes skills), first: with nested
    // skills, which skill a file belongs to depends on which folders have one.
    let mut skills = Paths::with_capacity_and_hasher(files.len(), Default::default());
    skills.extend(
        files
            .iter()
            .filter(|f| f.regular && rules.is_skill(&f.path))
            .map(|f| f.path.as_str()),
    );
    let exists = |p: &str| skills.contains(p);
    // Which of the paths the checks ask about are in the tree: the changed paths and
    // their skill files (a set of every path of the tree cost a push of one file into
    // 10,000 more than the rest of these checks).
    let asked: Names = changed
        .iter()
        .cloned()
        .chain(changed.iter().filter_map(|p| rules.skill_of(p, &exists)))
        .collect();
    let present: Paths<'_> = files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| asked.contains(*p))
        .collect();
    let index = Index::of(rules, files, changed, &skills, &exists);

    let seen = Seen {
        rules,
        files,
        changed,
        skills: &skills,
        present: &present,
        index: &index,
    };
    let mut problems = seen.case_collisions();
    problems.extend(seen.duplicate_slugs());
    // SKILL.md files that are not skills under these rules: never silently.
    let (nested, nested_in) = seen.nested_skill_files();
    problems.extend(nested);
    if rules.layout == Layout::AgentSkills {
        problems.extend(seen.folder_problems(nested_in));
    }
    problems
}

/// A set of paths of the tree, hashed with foldhash: the checks hash every path of the
/// tree once or twice, std's SipHash took a third of their time.
type Paths<'f> = HashSet<&'f str, foldhash::quality::RandomState>;

/// A set of owned paths, names or keys, hashed as [`Paths`] is.
type Names = HashSet<String, foldhash::quality::RandomState>;

/// The tree as the checks of its changed paths see it.
struct Seen<'s, 'f> {
    rules: &'s Rules,
    files: &'f [File],
    changed: &'s [String],
    /// The tree's skills.
    skills: &'s Paths<'f>,
    /// The changed paths and their skill files that are in the tree.
    present: &'s Paths<'f>,
    index: &'s Index<'f>,
}

impl Seen<'_, '_> {
    /// A changed file that collides with another path, or one of whose folders does,
    /// but for case.
    fn case_collisions(&self) -> Vec<Problem> {
        let (changed, present, by_folded) = (self.changed, self.present, &self.index.by_folded);
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
                            Check::CaseCollision,
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
        problems
    }

    /// A changed skill whose key another skill of the tree has.
    fn duplicate_slugs(&self) -> Vec<Problem> {
        let (rules, changed, skills, by_slug) =
            (self.rules, self.changed, self.skills, &self.index.by_slug);
        let mut problems = Vec::new();
        for path in changed.iter().filter(|p| skills.contains(p.as_str())) {
            let slug = rules.key_of(path);
            let same: Vec<&str> = by_slug[&slug]
                .iter()
                .copied()
                .filter(|p| *p != path)
                .collect();
            if !same.is_empty() {
                problems.push(
                    Problem::new(
                        Check::DuplicateSlug,
                        path,
                        format!("slug `{slug}` is already used by {}", same.join(", ")),
                    )
                    .at(1, None)
                    .field("slug")
                    .hint(duplicate_hint(rules, path, &same)),
                );
            }
        }
        problems
    }

    /// SKILL.md files that are not skills under these rules (flat layout, or nested
    /// without `nested_skills`); also the skill files they were found below.
    fn nested_skill_files(&self) -> (Vec<Problem>, HashSet<String>) {
        let (rules, changed, skills, present) =
            (self.rules, self.changed, self.skills, self.present);
        let mut problems = Vec::new();
        let mut nested_in: HashSet<String> = HashSet::new();
        for path in changed.iter().filter(|p| present.contains(p.as_str())) {
            if rules.layout == Layout::Flat && is_skill_file_name(path) {
                problems.push(layout_mismatch(path));
            } else if rules.is_nested_skill_file(path) {
                let root = rules.root_of(path).unwrap_or_default();
                let top = path[root.len()..].split('/').next().unwrap_or_default();
                let outer = format!("{root}{top}/{SKILL_FILE}");
                let folder = path.rsplit('/').nth(1).unwrap_or_default();
                let message = if skills.contains(outer.as_str()) {
                    format!(
                        "this SKILL.md is inside the skill folder `{root}{top}/`, so it is not a skill of its own"
                    )
                } else {
                    nested_in.insert(outer);
                    format!(
                        "this SKILL.md is below `{root}{top}/`, not right under {root}, so it is not a skill"
                    )
                };
                problems.push(
                    Problem::new(Check::NestedSkill, path, message)
                        .hint(format!(
                            "set `nested_skills = true` in skillsd.toml to make every folder with a SKILL.md a skill, or move the folder to `{root}{folder}/`"
                        ))
                        .renaming_to(format!("{root}{folder}/")),
                );
            }
        }
        (problems, nested_in)
    }

    /// Agent Skills layout: files outside any skill folder, and skill folders without
    /// their SKILL.md (`nested_in`: folders already reported as holding a nested one).
    fn folder_problems(&self, nested_in: HashSet<String>) -> Vec<Problem> {
        let (rules, files, changed, skills, present) = (
            self.rules,
            self.files,
            self.changed,
            self.skills,
            self.present,
        );
        let (by_slug, folders_with_files) = (&self.index.by_slug, &self.index.folders_with_files);
        let exists = |p: &str| skills.contains(p);
        let mut problems = Vec::new();
        let mut reported: HashSet<String> = nested_in;
        for path in changed {
            match rules.skill_of(path, &exists) {
                None if present.contains(path.as_str()) => {
                    let name = path.rsplit('/').next().unwrap_or(path);
                    if rules.governs(path) && !name.eq_ignore_ascii_case("README.md") {
                        let root = &path[..path.len() - name.len()];
                        problems.push(
                            Problem::new(Check::OutsideSkillFolder, path, "file is not inside a skill folder")
                                .hint(format!(
                                    "each skill is a folder with a {SKILL_FILE}: move the file into {root}<name>/, or remove it"
                                )),
                        );
                    }
                }
                // Under the root ".", a folder without a SKILL.md is the
                // repository's (docs/, rules/, scripts/), not a skill's.
                Some(skill)
                    if folders_with_files.contains(&skill)
                        && !skills.contains(skill.as_str())
                        && rules.root_of(&skill) != Some("")
                        && reported.insert(skill.clone()) =>
                {
                    // A SKILL.md that is there but no file (a symbolic link, a
                    // submodule) is named by its own protected check, as what it is.
                    if present.contains(skill.as_str()) {
                        continue;
                    }
                    let folder = skill.strip_suffix(SKILL_FILE).unwrap_or(&skill);
                    let other_case = files.iter().find(|f| {
                        f.path.len() == skill.len() && f.path.eq_ignore_ascii_case(&skill)
                    });
                    let name = folder
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or(folder);
                    let root = rules.root_of(&skill).unwrap_or_default();
                    let hint = match other_case {
                        Some(f) => format!(
                            "the file must be named exactly {SKILL_FILE}: rename `{}`",
                            f.path
                        ),
                        None if super::agent::name_problem(name).is_some() => format!(
                            "`{name}` is not a valid skill name, so this folder cannot be a skill: move its files into a skill's folder or out of {root}; if {root} holds other folders than skills (plugin manifests, shared code), choose roots that hold only skill folders (`skillsd check --suggest-config` prints them)"
                        ),
                        None => match by_slug.get(name) {
                            Some(other) => format!(
                                "add {skill} with `name: {name}` and a `description` after renaming the folder (`{name}` is the name of {}), or move the other files out",
                                other.join(", ")
                            ),
                            None => format!(
                                "add {skill} with `name: {name}` and a `description`, or move the other files out"
                            ),
                        },
                    };
                    problems.push(
                        Problem::new(
                            Check::MissingSkillFile,
                            &skill,
                            format!("skill folder `{folder}` has no {SKILL_FILE}"),
                        )
                        .hint(hint),
                    );
                }
                _ => {}
            }
        }
        problems
    }
}

/// What the checks of the changed paths need to know of the whole tree, and only
/// that: a push of one file into a tree of 30,000 indexed every path, folder, slug and
/// skill of the tree (most of a small push's time); now each file of the tree is
/// looked at for what the changed paths can collide with or belong to.
struct Index<'f> {
    /// The paths and folders of the tree that fold (case-insensitively) to a folded
    /// path or folder of a changed path.
    by_folded: HashMap<String, BTreeSet<&'f str>>,
    /// The skills of the tree by the keys of the changed skills and the names of the
    /// changed paths' skill folders.
    by_slug: HashMap<String, Vec<&'f str>>,
    /// The changed paths' skills (their `SKILL.md` paths) that some file of the tree
    /// belongs to.
    folders_with_files: HashSet<String>,
}

impl<'f> Index<'f> {
    fn of(
        rules: &Rules,
        files: &'f [File],
        changed: &[String],
        skills: &Paths<'f>,
        exists: &dyn Fn(&str) -> bool,
    ) -> Self {
        // What the changed paths ask about.
        let mut folded = Names::default();
        let mut keys = Names::default();
        let mut wanted_skills = Names::default();
        for path in changed {
            let mut end = 0;
            for part in path.split('/') {
                end += part.len();
                folded.insert(path[..end].to_lowercase());
                end += 1;
            }
            if skills.contains(path.as_str()) {
                keys.insert(rules.key_of(path));
            }
            if let Some(skill) = rules.skill_of(path, exists) {
                let folder = skill.strip_suffix(SKILL_FILE).unwrap_or(&skill);
                if let Some(name) = folder.trim_end_matches('/').rsplit('/').next() {
                    keys.insert(name.to_string());
                }
                wanted_skills.insert(skill);
            }
        }
        // The folders of those skills, to find the files that may belong to one.
        let wanted_folders: Paths<'_> = wanted_skills
            .iter()
            .filter_map(|s| s.strip_suffix(SKILL_FILE))
            .collect();
        // A file's key can be one of `keys` only if its slug is a key (no namespace) or
        // what follows one of a key's colons (`namespace:slug`): most files are passed
        // over without making their key.
        let slugs: Paths<'_> = keys
            .iter()
            .flat_map(|k| {
                std::iter::once(k.as_str()).chain(k.match_indices(':').map(|(i, _)| &k[i + 1..]))
            })
            .collect();
        let mut index = Index {
            by_folded: HashMap::new(),
            by_slug: HashMap::new(),
            folders_with_files: HashSet::new(),
        };
        let mut prefixes = Prefixes::default();
        for file in files {
            let path = file.path.as_str();
            prefixes.fold(path, &mut |folded_prefix, prefix| {
                if folded.contains(folded_prefix) {
                    index
                        .by_folded
                        .entry(folded_prefix.to_string())
                        .or_default()
                        .insert(prefix);
                }
            });
            if skills.contains(path) && slugs.contains(rules.slug_of(path)) {
                let key = rules.key_of(path);
                if keys.contains(&key) {
                    index.by_slug.entry(key).or_default().push(path);
                }
            }
            if !wanted_folders.is_empty()
                && path
                    .match_indices('/')
                    .any(|(i, _)| wanted_folders.contains(&path[..=i]))
                && let Some(skill) = rules.skill_of(path, exists)
                && wanted_skills.contains(&skill)
            {
                index.folders_with_files.insert(skill);
            }
        }
        index
    }
}

/// Each folder prefix of a path and the path itself, case-folded, for
/// [`Index::of`]'s lookups: an ASCII path is folded once and its prefixes are slices
/// of it, and the prefixes of a folder are handed out once for a run of paths in it
/// (a tree lists a folder's files together: a folder of 10,000 files is folded once,
/// not 10,000 times). What it hands out is what folding each prefix on its own gives.
#[derive(Default)]
struct Prefixes {
    /// The path folded (an ASCII path's, else its last prefix's).
    folded: String,
    /// The folder (up to its last `/`) whose prefixes were handed out last.
    folder: Option<String>,
}

impl Prefixes {
    /// Calls `each(folded, prefix)` for the prefixes of `path` (every folder on its way
    /// and the path itself) that the last path's did not cover. Paths over the length
    /// limit are skipped: they are reported by the path checks, and folding every
    /// prefix would cost their length times their depth.
    fn fold<'p>(&mut self, path: &'p str, each: &mut dyn FnMut(&str, &'p str)) {
        let plain = path.is_ascii()
            && !path.starts_with('/')
            && !path.ends_with('/')
            && !path.contains("//");
        if path.len() > super::skill::MAX_PATH_BYTES {
            self.folder = None;
            return;
        }
        if !plain {
            self.folder = None;
            return self.fold_each(path, each);
        }
        self.folded.clear();
        self.folded.push_str(path);
        self.folded.make_ascii_lowercase();
        let folder = path.rfind('/').map_or("", |i| &path[..i]);
        if self.folder.as_deref() != Some(folder) {
            for (i, _) in folder.match_indices('/').chain(Some((folder.len(), ""))) {
                if i > 0 {
                    each(&self.folded[..i], &path[..i]);
                }
            }
            self.folder = Some(folder.to_string());
        }
        each(&self.folded, path);
    }

    /// Every prefix of `path` folded on its own (a path with other than ASCII, or
    /// with an empty name in it).
    fn fold_each<'p>(&mut self, path: &'p str, each: &mut dyn FnMut(&str, &'p str)) {
        let mut end = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            end += part.len();
            let prefix = &path[..end];
            self.folded.clear();
            if prefix.is_ascii() {
                self.folded.push_str(prefix);
                self.folded.make_ascii_lowercase();
            } else {
                self.folded.push_str(&prefix.to_lowercase());
            }
            each(&self.folded, prefix);
            end += 1;
        }
    }
}

/// How to tell two skills with one key apart: rename one, or (names repeated in
/// different folders) give each folder its namespace with `namespaces`.
fn duplicate_hint(rules: &Rules, path: &str, same: &[&str]) -> String {
    let (what, unique) = match rules.layout {
        Layout::Flat => (
            "rename one of the files",
            "slugs are unique across the repository: rename one of the files",
        ),
        Layout::AgentSkills => (
            "rename one of the folders",
            "skill names are unique across the repository: rename one of the folders",
        ),
    };
    match rules.namespace_of(path) {
        Some(namespace) => format!(
            "names are unique within a namespace (`{namespace}`, from `namespaces` in skillsd.toml): {what}"
        ),
        None => {
            // The folder above each skill's own, the candidates for a namespace.
            let parent = |p: &str| {
                let own = match rules.layout {
                    Layout::Flat => p.rsplit_once('/').map(|x| x.0),
                    Layout::AgentSkills => p
                        .rsplit_once('/')
                        .and_then(|x| x.0.rsplit_once('/'))
                        .map(|x| x.0),
                };
                own.unwrap_or_default().to_string()
            };
            let here = parent(path);
            let elsewhere = same.iter().any(|p| parent(p) != here);
            if elsewhere {
                format!(
                    "{unique}, or give each folder of skills its own namespace with `namespaces` in skillsd.toml (namespaces = [\"plugins/*\"] makes the key of plugins/foo/skills/bar `foo:bar`)"
                )
            } else {
                unique.to_string()
            }
        }
    }
}

/// In a repository on the flat layout, the other files of an Agent Skills folder (its
/// references, examples) are not flat skills gone wrong: once the folder's SKILL.md is
/// refused as a `layout-mismatch`, their flat-layout problems would only bury that one
/// message (a public collection gave 100 of them). They are dropped while
/// `layout-mismatch` is an error; `files` are the tree's files under the roots.
pub fn quiet_under_skill_folders(
    rules: &Rules,
    files: &[File],
    problems: Vec<Problem>,
) -> Vec<Problem> {
    if rules.layout != Layout::Flat || rules.level(Check::LayoutMismatch) != Level::Error {
        return problems;
    }
    let folders: HashSet<&str> = files
        .iter()
        .filter(|f| is_skill_file_name(&f.path))
        .filter_map(|f| f.path.strip_suffix(SKILL_FILE))
        .collect();
    if folders.is_empty() {
        return problems;
    }
    let inside = |path: &str| {
        path.match_indices('/')
            .any(|(end, _)| folders.contains(&path[..=end]))
    };
    problems
        .into_iter()
        .filter(|p| p.check == Check::LayoutMismatch || !inside(&p.path))
        .collect()
}

/// Is the file named like an Agent Skills skill (`SKILL.md`)?
pub fn is_skill_file_name(path: &str) -> bool {
    path.rsplit('/').next() == Some(SKILL_FILE)
}

fn layout_mismatch(path: &str) -> Problem {
    Problem::new(
        Check::LayoutMismatch,
        path,
        "an Agent Skills file (SKILL.md), but this repository is on the flat layout, where it is not a skill",
    )
    .hint("add `layout = \"agent-skills\"` to skillsd.toml at the repository root (RULES.md), in this push or before it")
}

/// The problems of changed files named `SKILL.md` outside every root (`paths`: such
/// files of the new tree): in the flat layout, the layout is the cause; else the roots,
/// suggested as the fewest patterns that cover every such file's folder.
pub fn stray_skill_files(rules: &Rules, paths: &[String]) -> Vec<Problem> {
    let strays: Vec<&String> = paths
        .iter()
        .filter(|p| is_skill_file_name(p) && !rules.governs(p))
        .collect();
    let folders: Vec<String> = strays
        .iter()
        .filter_map(|p| super::report::root_for(p))
        .collect();
    let patterns = super::report::root_patterns(&folders);
    let problems = strays
        .into_iter()
        .map(|path| match rules.layout {
            Layout::Flat => layout_mismatch(path),
            Layout::AgentSkills => {
                // `plugins/x/skills/pdf/SKILL.md` suggests the root `plugins/x/skills`,
                // or the pattern that covers it and the other strays' folders.
                let hint = match super::report::root_for(path) {
                    Some(folder) => {
                        let root = patterns
                            .iter()
                            .find(|p| super::report::pattern_covers(p, &folder))
                            .cloned()
                            .unwrap_or(folder);
                        format!(
                            "the folders that hold skills are {}: add \"{root}\" to `roots` in skillsd.toml, or move the skill",
                            rules.roots().join(", ")
                        )
                    }
                    None => format!(
                        "a skill is a folder with a SKILL.md under one of {}: move it there, or add \".\" to `roots` in skillsd.toml for skill folders at the top of the repository",
                        rules.roots().join(", ")
                    ),
                };
                Problem::new(
                    Check::SkillOutsideRoots,
                    path,
                    "a SKILL.md outside the folders that hold skills: it is not a skill",
                )
                .hint(hint)
            }
        })
        .collect();
    rules.levelled(problems)
}

/// The rename hints of `problems` (those with [`Problem::rename_to`]) checked
/// against the tree (`files`: every file under the roots): a proposed name that a
/// file or folder has already (or that an earlier hint proposed) is replaced by a free
/// one (`lib-2`), said so; a `name-mismatch` whose folder can keep its name just
/// proposes setting the name.
pub fn free_renames(files: &[File], mut problems: Vec<Problem>) -> Vec<Problem> {
    if problems.iter().all(|p| p.rename_to.is_none()) {
        return problems;
    }
    // Every path and folder of the tree, case folded (a rename to another case of a
    // taken name collides on macOS and Windows).
    let mut taken: HashSet<String> = HashSet::new();
    for f in files {
        let lower = f.path.to_lowercase();
        for (end, _) in lower.match_indices('/') {
            taken.insert(lower[..=end].to_string());
        }
        taken.insert(lower);
    }
    // What was decided for a file's proposed name: its problems agree (a folder's
    // `slug-format` and `name-mismatch` may propose the same name).
    let mut decided: HashMap<(String, String), Option<String>> = HashMap::new();
    for p in problems.iter_mut() {
        let Some(to) = p.rename_target().map(str::to_string) else {
            continue;
        };
        let key = (p.path.clone(), to.to_lowercase());
        let earlier = decided.get(&key).cloned();
        // `PDF/` → `pdf/`: the same folder in another case is no other's name.
        let own = match p.path.strip_suffix(SKILL_FILE) {
            Some(folder) if to.ends_with('/') => folder,
            _ => p.path.as_str(),
        };
        let itself = own.eq_ignore_ascii_case(&to);
        if earlier == Some(None)
            || (earlier.is_none() && (taken.insert(to.to_lowercase()) || itself))
        {
            decided.insert(key, None);
            continue;
        }
        let is_folder = to.ends_with('/');
        let trimmed = to.trim_end_matches('/');
        let (parent, last) = match trimmed.rsplit_once('/') {
            Some((parent, last)) => (format!("{parent}/"), last),
            None => (String::new(), trimmed),
        };
        let (stem, ext) = match last.strip_suffix(".md").filter(|_| !is_folder) {
            Some(stem) => (stem, ".md"),
            None => (last, ""),
        };
        if p.check == Check::NameMismatch
            && p.hint.as_deref().is_some_and(|h| h.contains("set `name: "))
        {
            let folder = p.path.rsplit('/').nth(1).unwrap_or_default();
            p.hint = Some(format!(
                "the name is the folder's name: set `name: {folder}` (a folder `{stem}` is there already)"
            ));
            p.rename_to = None;
            continue;
        }
        let alt = match earlier.flatten() {
            Some(alt) => alt,
            None => {
                let Some(alt) = (2..)
                    .map(|n| {
                        format!(
                            "{parent}{stem}-{n}{ext}{}",
                            if is_folder { "/" } else { "" }
                        )
                    })
                    .find(|alt| !taken.contains(&alt.to_lowercase()))
                else {
                    continue;
                };
                taken.insert(alt.to_lowercase());
                decided.insert(key, Some(alt.clone()));
                alt
            }
        };
        let alt_last = alt.trim_end_matches('/').rsplit('/').next().unwrap_or(&alt);
        let alt_stem = alt_last
            .strip_suffix(".md")
            .filter(|_| !is_folder)
            .unwrap_or(alt_last)
            .to_string();
        if let Some(hint) = &p.hint {
            let mut hint = hint
                .replace(&format!("`{to}`"), &format!("`{alt}`"))
                .replace(&format!("`{stem}{ext}`"), &format!("`{alt_stem}{ext}`"))
                .replace(&format!("`name: {stem}`"), &format!("`name: {alt_stem}`"));
            if matches!(p.check, Check::NameMismatch | Check::NestedSkill) {
                hint.push_str(&format!(" and set `name: {alt_stem}`"));
            }
            hint.push_str(&format!(" (`{stem}{ext}` is taken)"));
            p.hint = Some(hint);
        }
        p.rename_to = Some(Box::new(super::skill::RenameTo(alt)));
    }
    problems
}

#[cfg(test)]
mod tests;
