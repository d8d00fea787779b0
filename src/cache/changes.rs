//! What changed between two commits, as operations on skills.

use super::vector::{SearchVector, search_vector};
use super::{CacheError, Result};
use crate::commit_tree::{self, TreeSource};
use crate::skills::Skill;
use crate::skills::rules::{self, CONFIG_PATH, Rules};
use gix::ObjectId;
use gix::object::tree::diff::ChangeDetached;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Renames with edits are looked for among at most this many deleted and this many
/// added files of one commit (git's `diff.renameLimit`, lower): the similarity
/// search costs deleted × added blob comparisons, inside the push's transaction.
/// Files moved unchanged are always found (by their id, whatever their number);
/// beyond the limit a moved-and-edited file is a delete and a create, as in git.
pub const RENAME_LIMIT: usize = 64;

/// Skill files a push's checks read and validated already, under the rules of the tip
/// whose [`commit_tree::fingerprint`] is `rules`: the cache takes them from here
/// instead of reading and validating each file a second time.
#[derive(Debug, Default)]
pub struct Parsed {
    pub rules: Vec<Option<ObjectId>>,
    pub skills: HashMap<(String, ObjectId), Skill>,
    /// The digests of those files' bytes: a lone skill file's version digest
    /// ([`super::versions::Digests`]), whatever the rules.
    pub digests: super::versions::Digests,
    /// Full-text vectors already made of some of those skills (`None` inside: skillsd
    /// cannot compute that one, [`super::vector`]).
    pub vectors: HashMap<(String, ObjectId), Option<SearchVector>>,
}

impl Parsed {
    /// At most this many are kept (a push's memory stays bounded; the cache reads
    /// the rest itself).
    pub const MAX: usize = 50_000;

    /// Keeps `skill`, validated from `blob` at `path`, and the `digest` of its bytes,
    /// unless there are enough.
    pub fn keep(&mut self, path: &str, blob: ObjectId, skill: Skill, digest: String) {
        if self.skills.len() < Self::MAX {
            self.skills.insert((path.to_string(), blob), skill);
            self.digests.insert(blob, digest);
        }
    }

    /// Keeps the full-text vector made of the skill kept for `blob` at `path`.
    pub fn keep_vector(&mut self, path: &str, blob: ObjectId, search: Option<SearchVector>) {
        if self.vectors.len() < Self::MAX {
            self.vectors.insert((path.to_string(), blob), search);
        }
    }

    /// The skills, if they were validated under the rules `tree` and `rules` make.
    fn under(&self, tree: &gix::Tree<'_>, rules: &Rules) -> Option<Known<'_>> {
        (self.rules == commit_tree::fingerprint(tree, rules)).then_some(Known {
            skills: &self.skills,
            vectors: &self.vectors,
        })
    }
}

/// Validated skills by path and blob, and the vectors made of some of them.
#[derive(Clone, Copy)]
pub(crate) struct Known<'p> {
    skills: &'p HashMap<(String, ObjectId), Skill>,
    vectors: &'p HashMap<(String, ObjectId), Option<SearchVector>>,
}

/// A skill read from the tree: what its cache row is made of.
#[derive(Debug, Clone)]
pub struct Row {
    pub skill: Skill,
    pub blob: ObjectId,
    /// Its full-text vector when skillsd can compute it ([`super::vector`]): computed
    /// with the reading and validating, on the same threads.
    pub search: Option<SearchVector>,
    /// The digest of the file's bytes ([`crate::artifact::digest`]) when they were read
    /// here: a lone skill file's version digest, which [`super::versions`] then need
    /// not read the file again for (`None` when the checks had parsed it already).
    pub digest: Option<String>,
}

/// A skill's full-text vector, when skillsd can compute it ([`super::vector`]).
pub fn vector_of(skill: &Skill) -> Option<SearchVector> {
    search_vector(
        &skill.title,
        skill.description.as_deref(),
        &skill.tags,
        &skill.body,
    )
}

/// One operation on the cache.
#[derive(Debug, Clone)]
pub enum Op {
    Create(Row),
    Update(Row),
    Rename {
        from: String,
        row: Row,
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

impl Op {
    /// The row it writes (none for a deletion or a file that is no skill).
    pub fn row(&self) -> Option<&Row> {
        match self {
            Op::Create(row) | Op::Update(row) | Op::Rename { row, .. } => Some(row),
            Op::Delete { .. } | Op::Invalid { .. } => None,
        }
    }
}

/// The skill operations that turn the tree of `from` (or nothing) into the tree of `to`,
/// under the rules of `to`. Renames are detected (exact and similar content), so a moved
/// skill keeps its id. When the rules differ between the two trees, every skill of `to`
/// is read again (the layout, the roots or the derived fields may have changed).
pub fn between(
    repo: &gix::Repository,
    from: Option<ObjectId>,
    to: ObjectId,
    parsed: Option<&Parsed>,
) -> Result<Vec<Op>> {
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
            }]);
        }
    };
    let known = parsed.and_then(|p| p.under(&new_tree, &rules));
    if from.is_some()
        && let Some(ops) = when_rules_changed(repo, &rules, &old_tree, &new_tree, known.as_ref())?
    {
        return Ok(ops);
    }
    let (mut ops, jobs) = diff_jobs(repo, &rules, &old_tree, &new_tree)?;
    ops.extend(load_all(repo, &rules, jobs, known.as_ref()));
    Ok(ops)
}

/// The skill files a diff of the trees names: deletions as they are, the files to
/// read (created, changed, renamed) as jobs. Renames are found as git finds them.
fn diff_jobs(
    repo: &gix::Repository,
    rules: &Rules,
    old_tree: &gix::Tree<'_>,
    new_tree: &gix::Tree<'_>,
) -> Result<(Vec<Op>, Vec<Job>)> {
    let is_skill_path = |p: &str| rules.is_skill(p);
    let mut opts = gix::diff::Options::default().with_rewrites(Some(gix::diff::Rewrites {
        limit: RENAME_LIMIT,
        ..Default::default()
    }));
    opts.track_path();
    let changes = commit_tree::diff(repo, old_tree, new_tree, opts).map_err(CacheError::git)?;
    let mut ops = Vec::new();
    let mut jobs = Vec::new();
    let job = |path: String, blob: ObjectId, make: Make| Job { path, blob, make };
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
                    jobs.push(job(path, id, Make::Create));
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
                    jobs.push(job(path, id, Make::Update));
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
                    (true, true) => jobs.push(job(path, id, Make::Rename(from))),
                    (true, false) => ops.push(Op::Delete { path: from }),
                    (false, true) => jobs.push(job(path, id, Make::Create)),
                    (false, false) => {}
                }
            }
            _ => {}
        }
    }
    Ok((ops, jobs))
}

/// When the rules (or the files they name, by [`commit_tree::fingerprint`]) changed
/// between the trees, which files are skills may have changed too: every skill file
/// of the new tree is read again and every one gone is deleted. `None`: the rules are
/// the same, a diff of the trees says what changed.
fn when_rules_changed(
    repo: &gix::Repository,
    rules: &Rules,
    old_tree: &gix::Tree<'_>,
    new_tree: &gix::Tree<'_>,
    known: Option<&Known>,
) -> Result<Option<Vec<Op>>> {
    let old_rules = Rules::load(&TreeSource {
        tree: old_tree.clone(),
    })
    .ok();
    let same = old_rules.as_ref().is_some_and(|old| {
        commit_tree::fingerprint(old_tree, old) == commit_tree::fingerprint(new_tree, rules)
    });
    if same {
        return Ok(None);
    }
    let old_files = match &old_rules {
        Some(old) => files_of(old_tree, old)?,
        None => HashMap::new(),
    };
    let new_files = files_of(new_tree, rules)?;
    let jobs: Vec<Job> = new_files
        .iter()
        .map(|(path, blob)| Job {
            path: path.clone(),
            blob: *blob,
            make: if old_files.contains_key(path) {
                Make::Update
            } else {
                Make::Create
            },
        })
        .collect();
    let mut ops = load_all(repo, rules, jobs, known);
    for path in old_files.keys() {
        if !new_files.contains_key(path) {
            ops.push(Op::Delete { path: path.clone() });
        }
    }
    Ok(Some(ops))
}

/// What a read skill file becomes.
#[derive(Debug, Clone)]
pub(crate) enum Make {
    Create,
    Update,
    Rename(String),
}

/// A skill file to read and validate.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub path: String,
    pub blob: ObjectId,
    pub make: Make,
}

impl Job {
    fn run(&self, repo: &gix::Repository, rules: &Rules, known: Option<&Known>) -> Op {
        let key = (self.path.clone(), self.blob);
        let op = |make: fn(Row) -> Op| match known.and_then(|k| k.skills.get(&key).map(|s| (s, k)))
        {
            // The vector made with the checks' validation, else made now.
            Some((skill, k)) => make(Row {
                search: k
                    .vectors
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| vector_of(skill)),
                ..row_of(rules, skill.clone(), self.blob, None)
            }),
            None => load(repo, rules, &self.path, self.blob, make),
        };
        match &self.make {
            Make::Create => op(Op::Create),
            Make::Update => op(Op::Update),
            Make::Rename(from) => match op(Op::Create) {
                Op::Create(row) => Op::Rename {
                    from: from.clone(),
                    row,
                },
                other => other,
            },
        }
    }
}

/// Below this many files, reading and validating stays on the calling thread.
const PARALLEL_FROM: usize = 512;

/// Reads and validates every job (but those `known` holds already), on all cores for
/// big sets; the operations come back in the jobs' order.
pub(crate) fn load_all(
    repo: &gix::Repository,
    rules: &Rules,
    jobs: Vec<Job>,
    known: Option<&Known>,
) -> Vec<Op> {
    let chunk = jobs.len().div_ceil(crate::parallel::threads()).max(1);
    let ops: std::result::Result<Vec<Op>, std::convert::Infallible> = crate::parallel::in_order(
        &jobs,
        chunk,
        PARALLEL_FROM,
        || repo.clone(),
        |repo, part| Ok(part.iter().map(|j| j.run(repo, rules, known)).collect()),
    );
    let Ok(ops) = ops;
    ops
}

/// Reads and validates `jobs` in batches of `batch`, on every core when there are many,
/// handing each batch (with its index) to `consume` on the calling thread as soon as it
/// is ready: a caller that writes batches to the database overlaps that with the
/// reading, and holds only a few batches in memory. An error from `consume` stops it.
pub(crate) fn load_streaming(
    repo: &gix::Repository,
    rules: &Rules,
    jobs: &[Job],
    known: Option<&Known>,
    batch: usize,
    consume: &mut dyn FnMut((usize, Vec<Op>)) -> Result<()>,
) -> Result<()> {
    crate::parallel::chunks(
        jobs,
        batch,
        PARALLEL_FROM,
        || repo.clone(),
        |repo, part| part.iter().map(|j| j.run(repo, rules, known)).collect(),
        &mut |i, ops| consume((i, ops)),
    )
}

/// Reads and validates one skill file, turning it into an operation with `make`.
pub(crate) fn load(
    repo: &gix::Repository,
    rules: &Rules,
    path: &str,
    blob: ObjectId,
    make: fn(Row) -> Op,
) -> Op {
    let data = match repo.find_blob(blob) {
        Ok(mut b) => b.take_data(),
        Err(e) => {
            return Op::Invalid {
                path: path.to_string(),
                error: e.to_string(),
            };
        }
    };
    match rules.validate(path, &data) {
        Ok(skill) => made(
            rules,
            skill,
            blob,
            Some(crate::artifact::digest(&data)),
            make,
        ),
        Err(problems) => Op::Invalid {
            path: path.to_string(),
            error: crate::skills::render_problems(&problems),
        },
    }
}

/// A validated skill's operation.
fn made(
    rules: &Rules,
    skill: Skill,
    blob: ObjectId,
    digest: Option<String>,
    make: fn(Row) -> Op,
) -> Op {
    let row = row_of(rules, skill, blob, digest);
    make(Row {
        search: vector_of(&row.skill),
        ..row
    })
}

/// A skill's row but for its vector (`search` left `None`).
fn row_of(rules: &Rules, mut skill: Skill, blob: ObjectId, digest: Option<String>) -> Row {
    // Under review the lifecycle is the change's: what is on the branch is
    // published, unless the skill itself says it is archived.
    if rules.review.enabled() && skill.status != crate::skills::Status::Archived {
        skill.status = crate::skills::Status::Published;
    }
    Row {
        skill,
        blob,
        search: None,
        digest,
    }
}

/// The rules of `commit` and every skill file in its tree: path → blob id.
pub fn skill_files(
    repo: &gix::Repository,
    commit: ObjectId,
) -> Result<(Arc<Rules>, HashMap<String, ObjectId>)> {
    let (rules, files) = tree_files(repo, commit)?;
    let files = skill_files_of(files.iter(), &rules);
    Ok((rules, files))
}

/// The skill files of `files` (as [`skill_files`] gives them) that are their skill
/// alone: no other file belongs to the skill ([`crate::artifact::members_of`]: every
/// file of a flat layout, a folder holding only its `SKILL.md`), so the file's own
/// digest is the skill's version digest.
pub fn alone(files: Vec<commit_tree::TreeFile>, rules: &Rules) -> HashSet<String> {
    crate::artifact::group_of(files, rules)
        .into_iter()
        .filter(|(path, group)| crate::artifact::members_of(rules, path, group).len() == 1)
        .map(|(path, _)| path)
        .collect()
}

/// The rules of `commit`'s tree and every file under their roots.
pub fn tree_files(
    repo: &gix::Repository,
    commit: ObjectId,
) -> Result<(Arc<Rules>, Vec<commit_tree::TreeFile>)> {
    let tree = repo
        .find_commit(commit)
        .map_err(CacheError::git)?
        .tree()
        .map_err(CacheError::git)?;
    let rules = Rules::load(&TreeSource { tree: tree.clone() })
        .map_err(|p| CacheError::git(rules::RulesError::Invalid(p)))?;
    let files = commit_tree::files_under(&tree, &rules).map_err(CacheError::git)?;
    Ok((rules, files))
}

/// Every regular skill file of `tree` under `rules`.
fn files_of(tree: &gix::Tree<'_>, rules: &Rules) -> Result<HashMap<String, ObjectId>> {
    let files = commit_tree::files_under(tree, rules).map_err(CacheError::git)?;
    Ok(skill_files_of(files.iter(), rules))
}

/// The regular skill files of `files` under `rules`: path → blob id.
pub fn skill_files_of<'f>(
    files: impl IntoIterator<Item = &'f commit_tree::TreeFile>,
    rules: &Rules,
) -> HashMap<String, ObjectId> {
    files
        .into_iter()
        .filter(|f| f.mode.is_blob() && rules.is_skill(&f.path))
        .map(|f| (f.path.clone(), f.id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_repo::{commit, repository};

    const PATH: &str = "skills/a/SKILL.md";
    const RULES: &str = "layout = \"agent-skills\"\nroots = [\"skills\"]\n";

    fn skill(description: &str) -> String {
        format!("---\nname: a\ndescription: {description}\n---\n# A\n")
    }

    /// The description of the one skill `between` creates.
    fn created(repo: &gix::Repository, tip: ObjectId, parsed: Option<&Parsed>) -> String {
        match between(repo, None, tip, parsed).unwrap().as_slice() {
            [Op::Create(row)] => row.skill.description.clone().unwrap(),
            other => panic!("expected one created skill, got {other:?}"),
        }
    }

    #[test]
    fn skills_the_checks_validated_under_the_same_rules_are_not_read_again() {
        let (_dir, repo) = repository();
        let text = skill("Read from the tree.");
        let tip = commit(
            &repo,
            None,
            &[(CONFIG_PATH, Some(RULES)), (PATH, Some(text.as_str()))],
        );
        let tree = repo.find_commit(tip).unwrap().tree().unwrap();
        let rules = Rules::load(&TreeSource { tree: tree.clone() }).unwrap();
        let blob = tree
            .lookup_entry_by_path(PATH)
            .unwrap()
            .unwrap()
            .object_id();
        // What the checks kept for that blob (told apart here by its description).
        let kept = rules
            .validate(PATH, skill("Kept by the checks.").as_bytes())
            .unwrap();
        let mut parsed = Parsed {
            rules: commit_tree::fingerprint(&tree, &rules),
            ..Parsed::default()
        };
        parsed.keep(PATH, blob, kept, crate::artifact::digest(text.as_bytes()));
        assert_eq!(created(&repo, tip, Some(&parsed)), "Kept by the checks.");
        assert_eq!(created(&repo, tip, None), "Read from the tree.");
        // Validated under other rules: read again.
        parsed.rules = vec![None];
        assert_eq!(created(&repo, tip, Some(&parsed)), "Read from the tree.");
    }

    #[test]
    fn a_skill_file_is_alone_when_no_other_file_belongs_to_its_skill() {
        let (_dir, repo) = repository();
        let s = skill("A skill.");
        let tip = commit(
            &repo,
            None,
            &[
                (CONFIG_PATH, Some(RULES)),
                ("skills/lone/SKILL.md", Some(s.as_str())),
                ("skills/tools/SKILL.md", Some(s.as_str())),
                ("skills/tools/scripts/run.sh", Some("echo\n")),
                ("skills/docs/SKILL.md", Some(s.as_str())),
                ("skills/docs/reference/api.md", Some("# API\n")),
                ("README.md", Some("outside the roots\n")),
            ],
        );
        let (rules, tree) = tree_files(&repo, tip).unwrap();
        let files = skill_files_of(&tree, &rules);
        assert_eq!(files.len(), 3, "{files:?}");
        let mut lone: Vec<String> = alone(tree, &rules).into_iter().collect();
        lone.sort();
        assert_eq!(lone, ["skills/lone/SKILL.md"]);
        // In the flat layout every skill file is its skill alone.
        let flat = commit(
            &repo,
            Some(tip),
            &[(
                CONFIG_PATH,
                Some("layout = \"flat\"\nroots = [\"skills\"]\n"),
            )],
        );
        let (rules, tree) = tree_files(&repo, flat).unwrap();
        let files = skill_files_of(&tree, &rules);
        assert_eq!(alone(tree, &rules).len(), files.len());
        assert!(!files.is_empty());
    }
}
