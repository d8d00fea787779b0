//! The published skills of one repository as agents fetch them, built from the cache
//! (which skills are published, at which commit) and from this node's copy of git
//! (their bytes, read by the blob ids of that commit's tree): the discovery index,
//! and per skill its files with their digests and, for a folder, its archive.
//!
//! A skill is in the index when its cached row is `PUBLISHED`, its file in the commit
//! is the blob the row was made from, and that file is an Agent Skills `SKILL.md` as
//! it stands: frontmatter `name` equal to the slug (a valid Agent Skills name; under a
//! namespace folder the entry's name is the key, `namespace:name`) and a
//! `description` of 1 to 1,024 characters. Nothing is rewritten or made up: the bytes
//! served are git's. In the agent-skills layout every published skill qualifies (the
//! push checks the same); a flat-layout skill (`skills/**/<slug>.md`) qualifies when
//! its frontmatter carries `name` and `description` too, and is served as a lone
//! `SKILL.md` (the other files near it belong to no skill).
//!
//! A skill whose folder holds only `SKILL.md` is a `skill-md` entry; one with more
//! files (with `nested_skills`, a nested skill's files are its own, not its parent's)
//! is an `archive` entry, whose `.tar.gz` ([`super::archive`]) is made here once per
//! content, so its digest is known before anyone asks for it.

pub use crate::artifact::{
    Artifact, BuildError, Groups, Kind, Members, artifact, digest, group_of, read_blob,
    skill_members,
};
use crate::artifact::{archive, git_error, members_of};
use crate::commit_tree::{self, TreeSource};
use crate::skills::agent::{MAX_DESCRIPTION_CHARS, name_problem};
use crate::skills::rules::{self, Rules, SKILL_FILE};
use axum::body::Bytes;
use gix::ObjectId;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The index's `$schema`: the Agent Skills discovery schema the `skills` CLI reads.
pub const SCHEMA: &str = "https://schemas.agentskills.io/discovery/0.2.0/schema.json";
/// The index's `version`: the Agent Skills Discovery RFC's.
pub const RFC_VERSION: &str = "0.2.0";

/// Bytes of skill files and archives one repository's index keeps in memory (the rest
/// are read from git, or made again, when asked for).
pub const MEMORY_BUDGET: usize = 32 * 1024 * 1024;

/// What the cache of a repository's default branch reflects: its commit and when it
/// last moved (a reconcile of the same commit moves it too). The index is built again
/// when this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub commit: Option<String>,
    pub synced_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A `PUBLISHED` row of the cache, with its skill's latest recorded version
/// (`skill_versions`, [`crate::cache::versions`]).
#[derive(Debug, Clone)]
pub struct Row {
    pub slug: String,
    pub path: String,
    pub blob_sha: String,
    pub frontmatter: serde_json::Value,
    /// The latest version's number and digest (`None`: none recorded yet).
    pub version: Option<(i64, String)>,
}

/// One file of a skill's folder.
#[derive(Debug)]
pub struct File {
    /// Its path inside the skill's folder (`SKILL.md`, `scripts/run.sh`).
    pub path: String,
    pub blob: ObjectId,
    pub executable: bool,
    pub digest: String,
    /// How many bytes it has.
    pub size: u64,
    /// Whether its bytes are UTF-8 text (MCP serves text as text, the rest as base64).
    pub utf8: bool,
    /// Its bytes, when the memory budget kept them.
    pub data: Option<Bytes>,
}

/// A skill as agents get it.
#[derive(Debug)]
pub struct Skill {
    pub name: String,
    pub description: String,
    /// Its `SKILL.md` frontmatter as the cache holds it (all of it, as JSON).
    pub frontmatter: serde_json::Value,
    /// Its skill file's path in the repository (`skills/deploy/SKILL.md`).
    pub path: String,
    /// Its current version: the number of the latest version recorded for it whose
    /// digest is this content's ([`crate::cache::versions`]); 0 when none is.
    pub version: i64,
    /// Its folder holds another skill's file (a nested skill): the folder is not
    /// this skill's alone.
    pub holds_skills: bool,
    pub kind: Kind,
    /// `SKILL.md` first, then the others by path.
    pub files: Vec<File>,
    /// The archive's digest (an `archive` skill).
    pub archive_digest: Option<String>,
    /// The archive's bytes, when the memory budget kept them.
    pub archive: Option<Bytes>,
}

impl Skill {
    /// The digest of what the index entry's `url` serves.
    pub fn digest(&self) -> &str {
        match (&self.kind, &self.archive_digest) {
            (Kind::Archive, Some(d)) => d,
            _ => &self.files[0].digest,
        }
    }

    pub fn file(&self, path: &str) -> Option<&File> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The URL of the artifact, relative to the index.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::SkillMd => format!("{}/{SKILL_FILE}", self.name),
            Kind::Archive => format!("{}.tar.gz", self.name),
        }
    }

    /// Paths, blobs and modes, and the fields of the entry: equal signatures, equal
    /// artifacts.
    fn same_content(
        &self,
        name: &str,
        description: &str,
        frontmatter: &serde_json::Value,
        files: &[(String, ObjectId, bool)],
    ) -> bool {
        self.name == name
            && self.description == description
            && self.frontmatter == *frontmatter
            && self.files.len() == files.len()
            && self
                .files
                .iter()
                .zip(files)
                .all(|(f, (p, b, x))| f.path == *p && f.blob == *b && f.executable == *x)
    }
}

/// One repository's published skills at one [`Key`].
#[derive(Debug)]
pub struct Published {
    pub repo: String,
    pub key: Key,
    /// `index.json`'s bytes and their digest.
    pub index: Bytes,
    pub index_digest: String,
    pub skills: BTreeMap<String, Arc<Skill>>,
    /// Published rows not served, with the reason (logged at each build).
    pub left_out: Vec<(String, String)>,
    /// The plugin folders of the commit that hold skills ([`Plugin`]), by folder.
    pub plugins: Vec<Plugin>,
}

/// A plugin folder: the folder above a root of skills (`plugins/git/` for the root
/// `plugins/git/skills/`) that holds a plugin manifest, `.claude-plugin/plugin.json`
/// (Claude Code) or `.codex-plugin/plugin.json` (Codex). The marketplace manifests
/// ([`super::marketplace`]) list such a folder as one plugin.
#[derive(Debug)]
pub struct Plugin {
    /// The folder, without the trailing `/` (`plugins/git`).
    pub folder: String,
    /// The manifest's JSON object (`.claude-plugin/plugin.json` first), or why it
    /// could not be read.
    pub manifest: Result<serde_json::Map<String, serde_json::Value>, String>,
    /// The names of the served skills in it.
    pub skills: Vec<String>,
    /// Skill files in it that are not served (not published, or not fit for an
    /// agent): listing the folder would hand them out too.
    pub unserved: usize,
}

/// The plugin manifests a folder may hold, in the order they are read.
pub const PLUGIN_MANIFESTS: [&str; 2] = [".claude-plugin/plugin.json", ".codex-plugin/plugin.json"];

/// Largest plugin manifest read (a manifest is a few hundred bytes).
const MAX_PLUGIN_MANIFEST_BYTES: usize = 64 * 1024;

/// The archive of `skill`'s files, read from `repo`.
pub fn make_archive(repo: &gix::Repository, files: &[File]) -> Result<Vec<u8>, BuildError> {
    let mut data = Vec::with_capacity(files.len());
    for f in files {
        data.push(match &f.data {
            Some(d) => d.clone(),
            None => Bytes::from(read_blob(repo, f.blob)?),
        });
    }
    let members: Vec<archive::Member<'_>> = files
        .iter()
        .zip(&data)
        .map(|(f, d)| archive::Member {
            path: &f.path,
            executable: f.executable,
            data: d,
        })
        .collect();
    archive::build(&members).map_err(git_error)
}

/// Builds the published skills of `repo_name` at `key` from the cache's `rows` and the
/// copy `repo`. Skills whose content equals one in `previous` are taken from it
/// (digests and archives are not made again). `SKILL.md` files and archives are kept
/// in memory up to `budget` bytes ([`MEMORY_BUDGET`]). Blocking.
pub fn build(
    repo: &gix::Repository,
    repo_name: &str,
    key: &Key,
    rows: &[Row],
    previous: Option<&Published>,
    budget: usize,
) -> Result<Published, BuildError> {
    let mut skills = BTreeMap::new();
    let mut left_out = Vec::new();
    let mut plugins = Vec::new();
    if let Some(commit) = &key.commit {
        let id = ObjectId::from_hex(commit.as_bytes()).map_err(git_error)?;
        let tree = repo
            .find_commit(id)
            .map_err(|e| BuildError::NotInCopy {
                commit: commit.clone(),
                source: Box::new(e),
            })?
            .tree()
            .map_err(git_error)?;
        let rules = Rules::load(&TreeSource { tree: tree.clone() })
            .map_err(|p| git_error(rules::RulesError::Invalid(p)))?;
        let groups = group_files(&tree, &rules)?;
        let skill_paths: std::collections::BTreeSet<&str> =
            groups.keys().map(String::as_str).collect();
        let mut budget = budget;
        for row in rows {
            match one_skill(
                repo,
                &rules,
                &groups,
                &skill_paths,
                row,
                previous,
                &mut budget,
            ) {
                Ok(skill) => {
                    skills.insert(skill.name.clone(), skill);
                }
                Err(why) => left_out.push((row.path.clone(), why)),
            }
        }
        plugins = plugin_folders(repo, &tree, &rules, &skill_paths, &skills)?;
    }
    let index = render_index(&skills);
    Ok(Published {
        repo: repo_name.to_string(),
        key: key.clone(),
        index_digest: digest(&index),
        index: Bytes::from(index),
        skills,
        left_out,
        plugins,
    })
}

/// The plugin folders of `tree` that hold skill files: each root's parent folder
/// (not the repository's own root) with a plugin manifest ([`PLUGIN_MANIFESTS`]),
/// with the served skills in it and how many of its skill files are not served.
fn plugin_folders(
    repo: &gix::Repository,
    tree: &gix::Tree<'_>,
    rules: &Rules,
    skill_paths: &std::collections::BTreeSet<&str>,
    served: &BTreeMap<String, Arc<Skill>>,
) -> Result<Vec<Plugin>, BuildError> {
    let mut folders: BTreeMap<String, Plugin> = BTreeMap::new();
    let mut checked: HashMap<String, bool> = HashMap::new();
    let served_paths: HashMap<&str, &str> = served
        .values()
        .map(|s| (s.path.as_str(), s.name.as_str()))
        .collect();
    for path in skill_paths {
        let Some(root) = rules.root_of(path) else {
            continue;
        };
        // `plugins/git/skills/` → `plugins/git`.
        let Some((folder, _)) = root.trim_end_matches('/').rsplit_once('/') else {
            continue;
        };
        let is_plugin = *checked.entry(folder.to_string()).or_insert_with(|| {
            PLUGIN_MANIFESTS.iter().any(|m| {
                tree.lookup_entry(format!("{folder}/{m}").split('/').map(str::as_bytes))
                    .ok()
                    .flatten()
                    .is_some_and(|e| e.mode().is_blob())
            })
        });
        if !is_plugin {
            continue;
        }
        let plugin = folders.entry(folder.to_string()).or_insert_with(|| Plugin {
            folder: folder.to_string(),
            manifest: Err(String::new()),
            skills: Vec::new(),
            unserved: 0,
        });
        match served_paths.get(path) {
            Some(name) => plugin.skills.push(name.to_string()),
            None => plugin.unserved += 1,
        }
    }
    let mut out = Vec::with_capacity(folders.len());
    for (_, mut plugin) in folders {
        plugin.manifest = read_manifest(repo, tree, &plugin.folder);
        out.push(plugin);
    }
    Ok(out)
}

/// The plugin manifest of `folder`: a JSON object, from the first manifest file there.
fn read_manifest(
    repo: &gix::Repository,
    tree: &gix::Tree<'_>,
    folder: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    for m in PLUGIN_MANIFESTS {
        let path = format!("{folder}/{m}");
        let Some(entry) = tree
            .lookup_entry(path.split('/').map(str::as_bytes))
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        if !entry.mode().is_blob() {
            continue;
        }
        let header = repo
            .find_header(entry.object_id())
            .map_err(|e| e.to_string())?;
        if header.size() as usize > MAX_PLUGIN_MANIFEST_BYTES {
            return Err(format!(
                "{path} is larger than {} KiB",
                MAX_PLUGIN_MANIFEST_BYTES / 1024
            ));
        }
        let data = read_blob(repo, entry.object_id()).map_err(|e| e.to_string())?;
        return match serde_json::from_slice::<serde_json::Value>(&data) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(format!("{path} is not a JSON object")),
            Err(e) => Err(format!("{path} is not valid JSON: {e}")),
        };
    }
    Err(format!("{folder} has no plugin manifest"))
}

/// The files of a tree under the roots, grouped by the skill file they belong to
/// (regular files only: links and submodules are refused under the roots by every
/// push, and never served).
fn group_files(tree: &gix::Tree<'_>, rules: &Rules) -> Result<Groups, BuildError> {
    let files = commit_tree::files_under(tree, rules).map_err(git_error)?;
    Ok(group_of(files, rules))
}

/// The skill of `row`, or why it is not served.
fn one_skill(
    repo: &gix::Repository,
    rules: &Rules,
    groups: &Groups,
    skill_paths: &std::collections::BTreeSet<&str>,
    row: &Row,
    previous: Option<&Published>,
    budget: &mut usize,
) -> Result<Arc<Skill>, String> {
    let Some(members) = groups.get(&row.path) else {
        return Err("not a skill file of the cache's commit".into());
    };
    let Some(main) = members.iter().find(|f| f.path == row.path) else {
        return Err("not a skill file of the cache's commit".into());
    };
    if ObjectId::from_hex(row.blob_sha.as_bytes()).ok() != Some(main.id) {
        return Err("the cached row is not the commit's file (its sync failed?)".into());
    }
    let (name, description) = name_and_description(row)?;
    let files = members_of(rules, &row.path, members);
    // Another skill file under this one's folder (a nested skill).
    let holds_skills = match row.path.strip_suffix(SKILL_FILE) {
        Some(folder) if rules.layout == rules::Layout::AgentSkills => skill_paths
            .range::<str, _>((
                std::ops::Bound::Included(folder),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|p| p.starts_with(folder))
            .any(|p| *p != row.path),
        _ => false,
    };
    if let Some(old) = previous.and_then(|p| p.skills.get(&name))
        && old.same_content(&name, &description, &row.frontmatter, &files)
    {
        let version = version_of(row, old.digest());
        if old.version == version && old.path == row.path && old.holds_skills == holds_skills {
            let kept = old.files[0].data.as_ref().map_or(0, |d| d.len())
                + old.archive.as_ref().map_or(0, |a| a.len());
            *budget = budget.saturating_sub(kept);
            return Ok(old.clone());
        }
    }
    let made = artifact(repo, files).map_err(|e| e.to_string())?;
    let artifact_digest = made.digest();
    let Artifact {
        kind,
        files,
        archive,
    } = made;
    let (archive_digest, archive) = match archive {
        None => (None, None),
        Some(bytes) => {
            let kept = (bytes.len() <= *budget).then(|| {
                *budget -= bytes.len();
                Bytes::from(bytes)
            });
            (Some(artifact_digest.clone()), kept)
        }
    };
    let files = files
        .into_iter()
        .map(|(path, blob, executable, data)| {
            let keep = path == SKILL_FILE && data.len() <= *budget;
            if keep {
                *budget -= data.len();
            }
            File {
                digest: digest(&data),
                size: data.len() as u64,
                utf8: std::str::from_utf8(&data).is_ok(),
                path,
                blob,
                executable,
                data: keep.then(|| Bytes::from(data)),
            }
        })
        .collect();
    Ok(Arc::new(Skill {
        version: version_of(row, &artifact_digest),
        name,
        description,
        frontmatter: row.frontmatter.clone(),
        path: row.path.clone(),
        holds_skills,
        kind,
        files,
        archive_digest,
        archive,
    }))
}

/// The skill's key (`namespace:name` under a namespace folder) and description, as
/// an Agent Skills client needs them: a valid `name` equal to its slug, a description
/// of at most [`MAX_DESCRIPTION_CHARS`].
fn name_and_description(row: &Row) -> Result<(String, String), String> {
    let name = match row.frontmatter.get("name") {
        Some(serde_json::Value::String(n)) => n.clone(),
        _ => return Err("no `name` in its frontmatter (an Agent Skills client needs one)".into()),
    };
    // A namespaced skill (`namespaces` in skillsd.toml) is served under its key,
    // `namespace:name`, the `plugin:skill` style of Claude Code.
    let bare = row.slug.rsplit_once(':').map_or(row.slug.as_str(), |x| x.1);
    if name != bare {
        return Err(format!(
            "its `name` ({name}) is not its slug ({})",
            row.slug
        ));
    }
    if let Some(why) = name_problem(&name) {
        return Err(format!("its name {why}"));
    }
    let name = row.slug.clone();
    let description = match row.frontmatter.get("description") {
        Some(serde_json::Value::String(d)) if !d.trim().is_empty() => d.clone(),
        _ => {
            return Err(
                "no `description` in its frontmatter (an Agent Skills client needs one)".into(),
            );
        }
    };
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "its description is longer than {MAX_DESCRIPTION_CHARS} characters"
        ));
    }
    Ok((name, description))
}

/// The row's latest version when its digest is the one served (`digest`), else 0: a
/// version number always names the bytes the entry's digest names.
fn version_of(row: &Row, digest: &str) -> i64 {
    match &row.version {
        Some((n, d)) if d == digest => *n,
        _ => 0,
    }
}

#[derive(Serialize)]
struct IndexDoc<'a> {
    #[serde(rename = "$schema")]
    schema: &'a str,
    version: &'a str,
    skills: Vec<EntryDoc<'a>>,
}

#[derive(Serialize)]
struct EntryDoc<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    description: &'a str,
    url: String,
    digest: &'a str,
    /// The skill's current version ([`crate::cache::versions`]), when one is recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<i64>,
    files: Vec<FileDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    package: Option<PackageDoc<'a>>,
}

#[derive(Serialize)]
struct FileDoc<'a> {
    path: &'a str,
    digest: &'a str,
}

#[derive(Serialize)]
struct PackageDoc<'a> {
    url: String,
    digest: &'a str,
}

/// `index.json`: the discovery schema's fields (`name`, `type`, `description`, `url`,
/// `digest` of the artifact at `url`), and the RFC's `version`, per-file `files` and,
/// for an archive, `package`. URLs are relative to the index, so one index serves
/// under any host name and any repository prefix.
fn render_index(skills: &BTreeMap<String, Arc<Skill>>) -> Vec<u8> {
    let doc = IndexDoc {
        schema: SCHEMA,
        version: RFC_VERSION,
        skills: skills
            .values()
            .map(|s| EntryDoc {
                name: &s.name,
                kind: s.kind.as_str(),
                description: &s.description,
                url: s.url(),
                digest: s.digest(),
                version: (s.version > 0).then_some(s.version),
                files: s
                    .files
                    .iter()
                    .map(|f| FileDoc {
                        path: &f.path,
                        digest: &f.digest,
                    })
                    .collect(),
                package: s.archive_digest.as_deref().map(|d| PackageDoc {
                    url: s.url(),
                    digest: d,
                }),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests;
