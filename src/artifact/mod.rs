//! A published skill as files and one artifact, read from a git tree: which files
//! belong to it ([`skill_members`]), their bytes, and what agents are served — the lone
//! `SKILL.md`, or the folder's [`archive`] — with its digest. Shared by the cache's
//! versions ([`crate::cache::versions`], recorded inside a push) and the agents' index
//! ([`crate::agents::index`]), so that both give one skill one digest.

pub mod archive;

use crate::commit_tree;
use crate::skills::rules::{self, Rules, SKILL_FILE};
use gix::ObjectId;
use sha2::Digest;
use std::collections::{HashMap, HashSet};

/// `sha256:` and the hex of the SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in hash.iter() {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// How a skill is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A lone `SKILL.md`.
    SkillMd,
    /// A folder with more files: a `.tar.gz`.
    Archive,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SkillMd => "skill-md",
            Kind::Archive => "archive",
        }
    }
}

/// Why the published skills could not be read from git.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// gix's error (or the archive's writer's), with its causes.
    #[error("{0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The cache names a commit this node's copy does not have (yet).
    #[error("the cache's commit {commit} is not in this node's copy: {source}")]
    NotInCopy {
        commit: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub(crate) fn git_error(e: impl std::error::Error + Send + Sync + 'static) -> BuildError {
    BuildError::Git(Box::new(e))
}

/// The bytes of blob `id`.
pub fn read_blob(repo: &gix::Repository, id: ObjectId) -> Result<Vec<u8>, BuildError> {
    Ok(repo.find_object(id).map_err(git_error)?.detach().data)
}

/// A skill's files: each path inside its folder (`SKILL.md` first, then the others by
/// path, bytewise), blob id and executable bit. Equal members, equal artifact.
pub type Members = Vec<(String, ObjectId, bool)>;

/// The members of the skill whose skill file is `skill_path`, from `group`: the files
/// of the tree that belong to it ([`Rules::skill_of`]). In the agent-skills layout the
/// folder's files, by their path in it (the skill file as `SKILL.md`); a flat-layout
/// skill is its file alone, as `SKILL.md`.
pub fn members_of(rules: &Rules, skill_path: &str, group: &[commit_tree::TreeFile]) -> Members {
    let folder = match skill_path.strip_suffix(SKILL_FILE) {
        Some(folder) if rules.layout == rules::Layout::AgentSkills => folder,
        _ => "",
    };
    let mut files: Members = Vec::new();
    for f in group {
        let path = if f.path == skill_path {
            SKILL_FILE.to_string()
        } else if folder.is_empty() {
            continue;
        } else {
            match f.path.strip_prefix(folder) {
                Some(rest) => rest.to_string(),
                None => continue,
            }
        };
        files.push((path, f.id, f.mode.is_executable()));
    }
    files.sort_by(|a, b| {
        (a.0 != SKILL_FILE, a.0.as_bytes()).cmp(&(b.0 != SKILL_FILE, b.0.as_bytes()))
    });
    files
}

/// The members of the skill whose skill file is `skill_path` in `tree` under `rules`
/// (the rules of that tree), reading only its folder: the same files
/// [`crate::agents::index::build`] gives it. `None` when `skill_path` is not a skill file of the tree.
pub fn skill_members(
    tree: &gix::Tree<'_>,
    rules: &Rules,
    skill_path: &str,
) -> Result<Option<Members>, BuildError> {
    if !rules.is_skill(skill_path) {
        return Ok(None);
    }
    let Some(entry) = tree
        .lookup_entry(skill_path.split('/').map(str::as_bytes))
        .map_err(git_error)?
    else {
        return Ok(None);
    };
    if !entry.mode().is_blob() {
        return Ok(None);
    }
    let folder = match skill_path.strip_suffix(SKILL_FILE) {
        Some(folder) if rules.layout == rules::Layout::AgentSkills => folder,
        _ => {
            let file = commit_tree::TreeFile {
                path: skill_path.to_string(),
                mode: entry.mode(),
                id: entry.object_id(),
            };
            return Ok(Some(members_of(rules, skill_path, &[file])));
        }
    };
    let Some(dir) = tree
        .lookup_entry(folder.trim_end_matches('/').split('/').map(str::as_bytes))
        .map_err(git_error)?
    else {
        return Ok(None);
    };
    let subtree = dir.object().map_err(git_error)?.into_tree();
    let mut recorder = gix::traverse::tree::Recorder::default();
    subtree
        .traverse()
        .breadthfirst(&mut recorder)
        .map_err(git_error)?;
    let files: Vec<commit_tree::TreeFile> = recorder
        .records
        .into_iter()
        .filter(|e| !e.mode.is_tree())
        .map(|e| commit_tree::TreeFile {
            path: format!("{folder}{}", e.filepath),
            mode: e.mode,
            id: e.oid,
        })
        .collect();
    let mut groups = group_of(files, rules);
    Ok(groups
        .remove(skill_path)
        .map(|group| members_of(rules, skill_path, &group)))
}

/// A skill's artifact: its files' bytes, and what the index's `url` serves — the lone
/// `SKILL.md`, or the folder's archive.
pub struct Artifact {
    pub kind: Kind,
    /// (path, blob, executable, bytes) of each member, in [`Members`]' order.
    pub files: Vec<(String, ObjectId, bool, Vec<u8>)>,
    /// The archive (an `archive` skill).
    pub archive: Option<Vec<u8>>,
}

impl Artifact {
    /// The digest of what the index entry's `url` serves for this content.
    pub fn digest(&self) -> String {
        match &self.archive {
            Some(a) => digest(a),
            None => digest(self.files.first().map_or(&[][..], |f| f.3.as_slice())),
        }
    }
}

/// Reads `members` from `repo` and makes their artifact: one file is a `skill-md`
/// skill, more are an `archive` ([`archive`]).
pub fn artifact(repo: &gix::Repository, members: Members) -> Result<Artifact, BuildError> {
    let mut files = Vec::with_capacity(members.len());
    for (path, blob, executable) in members {
        let data = read_blob(repo, blob)?;
        files.push((path, blob, executable, data));
    }
    let kind = if files.len() == 1 {
        Kind::SkillMd
    } else {
        Kind::Archive
    };
    let archive = match kind {
        Kind::SkillMd => None,
        Kind::Archive => {
            let members: Vec<archive::Member<'_>> = files
                .iter()
                .map(|(p, _, x, d)| archive::Member {
                    path: p,
                    executable: *x,
                    data: d,
                })
                .collect();
            Some(archive::build(&members).map_err(git_error)?)
        }
    };
    Ok(Artifact {
        kind,
        files,
        archive,
    })
}

/// Files grouped by the skill file they belong to (hashed with foldhash: a reconcile
/// groups every file of the tree).
pub type Groups = HashMap<String, Vec<commit_tree::TreeFile>, foldhash::quality::RandomState>;

/// `files` (of one tree, under the roots) grouped by the skill file they belong to.
pub fn group_of(files: Vec<commit_tree::TreeFile>, rules: &Rules) -> Groups {
    let skill_files: HashSet<String, foldhash::quality::RandomState> = files
        .iter()
        .filter(|f| f.mode.is_blob() && rules.is_skill(&f.path))
        .map(|f| f.path.clone())
        .collect();
    let mut groups = Groups::default();
    for f in files {
        if !f.mode.is_blob() {
            continue;
        }
        let Some(skill) = rules.skill_of(&f.path, &|p| skill_files.contains(p)) else {
            continue;
        };
        if skill_files.contains(&skill) {
            groups.entry(skill).or_default().push(f);
        }
    }
    groups
}
