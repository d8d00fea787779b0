//! What a commit's tree holds, as [`crate::skills`] reads it: the rules files (a
//! [`RulesSource`] over a tree), the files under the rules' roots, and a fingerprint of
//! the rules files to tell whether two commits share their rules. `skills` itself
//! knows nothing of git; this is its reader over gix.

use crate::skills::Rules;
use crate::skills::rules::{CONFIG_PATH, Layout, RulesSource, SKILL_FILE};
use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;

/// Rules read from a commit's tree.
pub struct TreeSource<'r> {
    pub tree: gix::Tree<'r>,
}

impl RulesSource for TreeSource<'_> {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let entry = self
            .tree
            .lookup_entry(path.split('/').map(|c| c.as_bytes()))
            .map_err(|e| e.to_string())?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if !entry.mode().is_blob() {
            return Err(format!("`{path}` is not a regular file"));
        }
        let object = entry.object().map_err(|e| e.to_string())?;
        Ok(Some(object.detach().data))
    }
}

/// One file (not a folder) of a tree under the rules' roots.
pub struct TreeFile {
    pub path: String,
    pub mode: gix::object::tree::EntryMode,
    pub id: gix::ObjectId,
}

/// Every file of `tree` under the roots of `rules` (skills, their folders' other files,
/// links and submodules alike).
pub fn files_under(tree: &gix::Tree<'_>, rules: &Rules) -> Result<Vec<TreeFile>, gix::Error> {
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse().breadthfirst(&mut recorder)?;
    Ok(recorder
        .records
        .into_iter()
        .filter(|e| !e.mode.is_tree())
        .map(|e| TreeFile {
            // The recorded path's own buffer, when it is UTF-8 (as `Display` would
            // write it, without copying it).
            path: String::from_utf8(e.filepath.into())
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            mode: e.mode,
            id: e.oid,
        })
        .filter(|f| rules.governs(&f.path))
        .collect())
}

/// The files of `tree` that the skills whose skill files are `paths` are made of (what
/// [`crate::artifact::members_of`] picks from): in the agent-skills layout every file
/// under each skill's folder (a nested skill's files too: grouping by
/// [`Rules::skill_of`] tells them apart), else each skill file alone. Only the trees
/// on the way to them are read, each once, and only their files make an entry: a push
/// of 1,000 skills into a tree of 30,000 files neither lists nor hashes the 29,000
/// others ([`files_under`] does).
pub fn files_of_skills(
    tree: &gix::Tree<'_>,
    rules: &Rules,
    paths: &BTreeSet<String>,
) -> Result<Vec<TreeFile>, gix::Error> {
    // A skill's folder ends in `/`: everything under it is wanted; a path without the
    // `/` is a file wanted alone.
    let targets: BTreeSet<String> = paths
        .iter()
        .map(|path| match path.strip_suffix(SKILL_FILE) {
            Some(folder) if rules.layout == Layout::AgentSkills && !folder.is_empty() => {
                folder.to_string()
            }
            _ => path.clone(),
        })
        .collect();
    let wanted = Wanted {
        exact: targets.iter().map(String::as_str).collect(),
        sorted: &targets,
    };
    let mut out = Vec::new();
    collect_wanted(tree, &mut String::new(), &wanted, false, rules, &mut out)?;
    Ok(out)
}

/// What [`files_of_skills`] looks for: each target, hashed (a file or a folder is one),
/// and sorted (is a target below this folder?).
struct Wanted<'t> {
    exact: HashSet<&'t str, foldhash::quality::RandomState>,
    sorted: &'t BTreeSet<String>,
}

/// [`files_of_skills`] below the folder `prefix` (empty, or ending in `/`) whose tree
/// is `tree`; with `whole`, every file of it is wanted.
fn collect_wanted(
    tree: &gix::Tree<'_>,
    prefix: &mut String,
    wanted: &Wanted<'_>,
    whole: bool,
    rules: &Rules,
    out: &mut Vec<TreeFile>,
) -> Result<(), gix::Error> {
    for entry in tree.iter() {
        let entry = entry?;
        let len = prefix.len();
        let name = entry.filename();
        match std::str::from_utf8(name) {
            Ok(name) => prefix.push_str(name),
            Err(_) => prefix.push_str(&String::from_utf8_lossy(name)),
        }
        if entry.mode().is_tree() {
            prefix.push('/');
            let inside = whole || wanted.exact.contains(prefix.as_str());
            // The targets starting with this folder come first among those after it.
            let below = inside
                || wanted
                    .sorted
                    .range::<str, _>((Bound::Excluded(prefix.as_str()), Bound::Unbounded))
                    .next()
                    .is_some_and(|t| t.starts_with(prefix.as_str()));
            if below {
                let subtree = entry.object()?.into_tree();
                collect_wanted(&subtree, prefix, wanted, inside, rules, out)?;
            }
        } else if (whole || wanted.exact.contains(prefix.as_str())) && rules.governs(prefix) {
            out.push(TreeFile {
                path: prefix.clone(),
                mode: entry.mode(),
                id: entry.object_id(),
            });
        }
        prefix.truncate(len);
    }
    Ok(())
}

/// The blob ids of the rules files in `tree` (config, and the schema the config of
/// `rules` names), to tell whether two trees have the same rules.
pub fn fingerprint(tree: &gix::Tree<'_>, rules: &Rules) -> Vec<Option<gix::ObjectId>> {
    let id = |path: &str| {
        tree.lookup_entry(path.split('/').map(|c| c.as_bytes()))
            .ok()
            .flatten()
            .map(|e| e.object_id())
    };
    let mut out = vec![id(CONFIG_PATH)];
    if let Some(p) = &rules.schema_path {
        out.push(id(p));
    }
    out
}

/// The blob cache a tree diff is given. gix's own (`diff_tree_to_tree`,
/// `Platform::for_each_to_obtain_tree`) first builds the index of HEAD's whole tree to
/// find its `.gitattributes` files, on every call: four diffs of a push of one skill
/// into 10,000 built four indexes of 10,000 entries. skillsd's diffs compare trees of
/// a bare repository, and find renames by what git stores (no worktree, no checkout
/// filters): this cache reads no index, and so no `.gitattributes` (the git
/// configuration's attributes still apply).
pub fn diff_cache(repo: &gix::Repository) -> Result<gix::diff::blob::Platform, gix::Error> {
    let no_index = gix::index::State::new(repo.object_hash());
    let attributes = repo.attributes_only(
        &no_index,
        gix::worktree::stack::state::attributes::Source::IdMapping,
    )?;
    gix::diff::resource_cache(
        repo,
        gix::diff::blob::pipeline::Mode::ToGit,
        attributes.detach(),
        Default::default(),
    )
}

/// What changes from `old` to `new` under `options` (paths, rewrites), as gix's
/// `diff_tree_to_tree` finds it, with [`diff_cache`]'s cache.
pub fn diff(
    repo: &gix::Repository,
    old: &gix::Tree<'_>,
    new: &gix::Tree<'_>,
    options: gix::diff::Options,
) -> Result<Vec<gix::object::tree::diff::ChangeDetached>, gix::Error> {
    let mut out = Vec::new();
    each_change(repo, old, new, options, |change| {
        out.push(change);
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// Each change from `old` to `new` under `options`, in turn, with [`diff_cache`]'s
/// cache, until `each` breaks off (which gix reports as an error: "cancelled").
pub fn each_change(
    repo: &gix::Repository,
    old: &gix::Tree<'_>,
    new: &gix::Tree<'_>,
    options: gix::diff::Options,
    mut each: impl FnMut(gix::object::tree::diff::ChangeDetached) -> std::ops::ControlFlow<()>,
) -> Result<(), gix::Error> {
    let mut cache = diff_cache(repo)?;
    let mut platform = old.changes()?;
    platform.options(|o| *o = options);
    platform
        .for_each_to_obtain_tree_with_cache(new, &mut cache, |change| Ok(each(change.detach())))?;
    Ok(())
}
