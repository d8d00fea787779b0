//! What changed between two commits, as operations on skills.

use super::{CacheError, Result};
use crate::skills::rules::{self, Rules, TreeSource, CONFIG_PATH};
use crate::skills::Skill;
use gix::object::tree::diff::ChangeDetached;
use gix::ObjectId;
use std::collections::HashMap;
use std::sync::Arc;

/// One operation on the cache.
#[derive(Debug, Clone)]
pub enum Op {
    Create(Skill, ObjectId),
    Update(Skill, ObjectId),
    Rename {
        from: String,
        skill: Skill,
        blob: ObjectId,
    },
    Delete {
        path: String,
    },
    /// A file that could not be turned into a skill (it should have been refused).
    Invalid {
        path: String,
        error: String,
    },
}

/// The skill operations that turn the tree of `from` (or nothing) into the tree of `to`,
/// under the rules of `to`. Renames are detected (exact and similar content), so a moved
/// skill keeps its id. When the rules differ between the two trees, every skill of `to`
/// is read again (the layout, the roots or the derived fields may have changed).
pub fn between(repo: &gix::Repository, from: Option<ObjectId>, to: ObjectId) -> Result<Vec<Op>> {
    let new_tree = repo
        .find_commit(to)
        .map_err(CacheError::git)?
        .tree()
        .map_err(CacheError::git)?;
    let old_tree = match from {
        Some(c) => repo
            .find_commit(c)
            .map_err(CacheError::git)?
            .tree()
            .map_err(CacheError::git)?,
        None => repo.empty_tree(),
    };
    let rules = match Rules::load(&TreeSource {
        tree: new_tree.clone(),
    }) {
        Ok(rules) => rules,
        Err(problems) => {
            return Ok(vec![Op::Invalid {
                path: CONFIG_PATH.to_string(),
                error: crate::skills::render_problems(&problems),
            }])
        }
    };
    if from.is_some() {
        let old_rules = Rules::load(&TreeSource {
            tree: old_tree.clone(),
        })
        .ok();
        let same = old_rules.as_ref().is_some_and(|old| {
            rules::fingerprint(&old_tree, old) == rules::fingerprint(&new_tree, &rules)
        });
        if !same {
            let old_files = match &old_rules {
                Some(old) => files_of(&old_tree, old)?,
                None => HashMap::new(),
            };
            let new_files = files_of(&new_tree, &rules)?;
            let mut ops = Vec::new();
            for (path, blob) in &new_files {
                let make = if old_files.contains_key(path) {
                    Op::Update
                } else {
                    Op::Create
                };
                ops.push(load(repo, &rules, path, *blob, make));
            }
            for path in old_files.keys() {
                if !new_files.contains_key(path) {
                    ops.push(Op::Delete { path: path.clone() });
                }
            }
            return Ok(ops);
        }
    }
    let is_skill_path = |p: &str| rules.is_skill(p);
    let mut opts =
        gix::diff::Options::default().with_rewrites(Some(gix::diff::Rewrites::default()));
    opts.track_path();
    let changes = repo
        .diff_tree_to_tree(&old_tree, &new_tree, opts)
        .map_err(CacheError::git)?;
    let mut ops = Vec::new();
    for change in changes {
        match change {
            ChangeDetached::Addition {
                entry_mode,
                id,
                location,
                ..
            } if entry_mode.is_blob() => {
                let path = location.to_string();
                if is_skill_path(&path) {
                    ops.push(load(repo, &rules, &path, id, Op::Create));
                }
            }
            ChangeDetached::Modification {
                entry_mode,
                id,
                location,
                ..
            } if entry_mode.is_blob() => {
                let path = location.to_string();
                if is_skill_path(&path) {
                    ops.push(load(repo, &rules, &path, id, Op::Update));
                }
            }
            ChangeDetached::Deletion {
                entry_mode,
                location,
                ..
            } if entry_mode.is_blob() => {
                let path = location.to_string();
                if is_skill_path(&path) {
                    ops.push(Op::Delete { path });
                }
            }
            ChangeDetached::Rewrite {
                source_location,
                entry_mode,
                id,
                location,
                copy,
                ..
            } if entry_mode.is_blob() => {
                let from = source_location.to_string();
                let path = location.to_string();
                match (is_skill_path(&from) && !copy, is_skill_path(&path)) {
                    (true, true) => ops.push(match load(repo, &rules, &path, id, Op::Create) {
                        Op::Create(skill, blob) => Op::Rename { from, skill, blob },
                        other => other,
                    }),
                    (true, false) => ops.push(Op::Delete { path: from }),
                    (false, true) => ops.push(load(repo, &rules, &path, id, Op::Create)),
                    (false, false) => {}
                }
            }
            _ => {}
        }
    }
    Ok(ops)
}

/// Reads and validates one skill file, turning it into an operation with `make`.
pub(crate) fn load(
    repo: &gix::Repository,
    rules: &Rules,
    path: &str,
    blob: ObjectId,
    make: fn(Skill, ObjectId) -> Op,
) -> Op {
    let data = match repo.find_blob(blob) {
        Ok(mut b) => b.take_data(),
        Err(e) => {
            return Op::Invalid {
                path: path.to_string(),
                error: e.to_string(),
            }
        }
    };
    match rules.validate(path, &data) {
        Ok(skill) => make(skill, blob),
        Err(problems) => Op::Invalid {
            path: path.to_string(),
            error: crate::skills::render_problems(&problems),
        },
    }
}

/// The rules of `commit` and every skill file in its tree: path → blob id.
pub fn skill_files(
    repo: &gix::Repository,
    commit: ObjectId,
) -> Result<(Arc<Rules>, HashMap<String, ObjectId>)> {
    let tree = repo
        .find_commit(commit)
        .map_err(CacheError::git)?
        .tree()
        .map_err(CacheError::git)?;
    let rules = Rules::load(&TreeSource { tree: tree.clone() })
        .map_err(|p| CacheError::git(rules::RulesError::Invalid(p)))?;
    let files = files_of(&tree, &rules)?;
    Ok((rules, files))
}

/// Every regular skill file of `tree` under `rules`.
fn files_of(tree: &gix::Tree<'_>, rules: &Rules) -> Result<HashMap<String, ObjectId>> {
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut recorder)
        .map_err(CacheError::git)?;
    Ok(recorder
        .records
        .into_iter()
        .filter(|e| e.mode.is_blob())
        .map(|e| (e.filepath.to_string(), e.oid))
        .filter(|(path, _)| rules.is_skill(path))
        .collect())
}
