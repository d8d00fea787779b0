//! What a commit's tree holds, as [`crate::skills`] reads it: the rules files (a
//! [`RulesSource`] over a tree), the files under the rules' roots, and a fingerprint of
//! the rules files to tell whether two commits share their rules. `skills` itself
//! knows nothing of git; this is its reader over gix.

use crate::skills::Rules;
use crate::skills::rules::{CONFIG_PATH, RulesSource};

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
            path: e.filepath.to_string(),
            mode: e.mode,
            id: e.oid,
        })
        .filter(|f| rules.governs(&f.path))
        .collect())
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
