//! The repositories skillsd serves: where they live, how a client's path names one,
//! and how a new one is created from the skills template.

use std::path::{Path, PathBuf};

/// The repository created on first start.
pub const DEFAULT_REPO: &str = "skills";
/// The branch whose skills the cache holds.
pub const DEFAULT_BRANCH: &str = "main";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Deliberately the same for "does not exist" and "not a valid name".
    #[error("repository not found")]
    NotFound,
    #[error("repository `{0}` already exists")]
    Exists(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("git error: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("`{0}` is not a valid ref name")]
    BadRefName(String),
    #[error("no ref `{0}`")]
    NoSuchRef(String),
}

impl RepoError {
    /// A gix error, kept with its chain of causes.
    fn git(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        RepoError::Git(Box::new(e))
    }
}

/// The files of a new skills repository (`skills-template/`), embedded at build time.
pub const TEMPLATE: &[(&str, &str)] = &[
    ("README.md", include_str!("../skills-template/README.md")),
    ("RULES.md", include_str!("../skills-template/RULES.md")),
    (
        "skillsd.toml",
        include_str!("../skills-template/skillsd.toml"),
    ),
    (
        "rules/flat.schema.json",
        include_str!("../skills-template/rules/flat.schema.json"),
    ),
    (
        "rules/agent-skills.schema.json",
        include_str!("../skills-template/rules/agent-skills.schema.json"),
    ),
    (
        "skills/README.md",
        include_str!("../skills-template/skills/README.md"),
    ),
    (
        "skills/getting-started/write-a-skill.md",
        include_str!("../skills-template/skills/getting-started/write-a-skill.md"),
    ),
    (
        "skills/git/commit-messages.md",
        include_str!("../skills-template/skills/git/commit-messages.md"),
    ),
];

pub use crate::incoming::{ODB_SLOTS, odb_options};

/// Opens a repository the way the server uses it: isolated from the machine's git
/// configuration, with [`ODB_SLOTS`] index slots.
pub fn open_server_repo(path: &Path) -> Result<gix::Repository, RepoError> {
    let opts = gix::open::Options::isolated()
        .object_store_slots(gix::odb::store::init::Slots::Given(ODB_SLOTS));
    gix::open_opts(path, opts).map_err(RepoError::git)
}

/// Where repositories live: `<data-dir>/repos/<name>.git`, and how their packs are
/// kept.
#[derive(Debug, Clone)]
pub struct RepoStore {
    root: PathBuf,
    pub settings: StoreSettings,
}

/// How a node keeps its copies' packs and rebuilds their caches. The defaults are
/// here; the configuration reads its values into this type.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    /// How long a retired pack stays (rows and files): `SKILLSD_PACK_GRACE_SECS`.
    pub pack_grace: std::time::Duration,
    /// The pack count that starts a background gc: `SKILLSD_GC_PACKS` (`None`: off).
    pub gc_packs: Option<usize>,
    /// What a pack a gc writes is read back through (the push limits).
    pub pack_limits: crate::incoming::inspect::PackLimits,
    /// The fewest skills a reconcile into an empty cache loads indexes-last
    /// (`SKILLSD_BULK_LOAD_FROM`; `None`: never).
    pub bulk_load_from: Option<usize>,
}

/// Packs in `objects/pack` above which a push starts a background gc (the default
/// of `SKILLSD_GC_PACKS`).
pub const AUTO_GC_PACKS: usize = 16;

/// The default of `SKILLSD_BULK_LOAD_FROM`.
pub const BULK_LOAD_FROM: usize = 10_000;

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            pack_grace: std::time::Duration::from_secs(3600),
            gc_packs: Some(AUTO_GC_PACKS),
            pack_limits: crate::incoming::inspect::PackLimits::default(),
            bulk_load_from: Some(BULK_LOAD_FROM),
        }
    }
}

impl RepoStore {
    pub fn new(data_dir: &Path, settings: StoreSettings) -> RepoStore {
        RepoStore {
            root: data_dir.join("repos"),
            settings,
        }
    }

    /// The canonical name for what a client sent: `skills`, `skills.git`, `/skills.git`,
    /// `~/skills`... all name `skills`. Anything else is not found.
    pub fn canonical_name(requested: &str) -> Result<String, RepoError> {
        let mut name = requested.trim();
        name = name.strip_prefix("~/").unwrap_or(name);
        name = name.trim_start_matches('/');
        name = name.trim_end_matches('/');
        name = name.strip_suffix(".git").unwrap_or(name);
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
            })
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && !name.contains("..");
        if valid {
            Ok(name.to_string())
        } else {
            Err(RepoError::NotFound)
        }
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.git"))
    }

    /// Opens the repository a client asked for.
    pub fn open(&self, requested: &str) -> Result<(String, gix::Repository), RepoError> {
        let name = Self::canonical_name(requested)?;
        let path = self.path_of(&name);
        if !path.join("HEAD").is_file() {
            return Err(RepoError::NotFound);
        }
        let repo = open_server_repo(&path).map_err(|_| RepoError::NotFound)?;
        Ok((name, repo))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path_of(name).join("HEAD").is_file()
    }

    /// Names of all repositories.
    pub fn list(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".git")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }

    /// Creates a bare repository whose `HEAD` is `refs/heads/main`; unless `empty`, with
    /// one commit holding the skills template.
    pub fn create(&self, requested: &str, empty: bool) -> Result<String, RepoError> {
        let name = Self::canonical_name(requested)?;
        let path = self.path_of(&name);
        if path.exists() {
            return Err(RepoError::Exists(name));
        }
        std::fs::create_dir_all(&self.root)?;
        // Build in a temporary directory and rename, so a half-made repository is never served.
        let tmp = self
            .root
            .join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| -> Result<(), RepoError> {
            gix::init_bare(&tmp).map_err(RepoError::git)?;
            std::fs::write(
                tmp.join("HEAD"),
                format!("ref: refs/heads/{DEFAULT_BRANCH}\n"),
            )?;
            std::fs::write(
                tmp.join("config"),
                "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n\
                 [user]\n\tname = skillsd\n\temail = skillsd@localhost\n",
            )?;
            std::fs::write(
                tmp.join("description"),
                format!("skillsd repository {name}\n"),
            )?;
            if !empty {
                let repo = gix::open(&tmp).map_err(RepoError::git)?;
                let mut editor = repo
                    .edit_tree(gix::ObjectId::empty_tree(gix::hash::Kind::Sha1))
                    .map_err(RepoError::git)?;
                for (file, content) in TEMPLATE {
                    let blob = repo
                        .write_blob(content.as_bytes())
                        .map_err(RepoError::git)?;
                    editor
                        .upsert(*file, gix::object::tree::EntryKind::Blob, blob)
                        .map_err(RepoError::git)?;
                }
                let tree = editor.write().map_err(RepoError::git)?;
                repo.commit(
                    format!("refs/heads/{DEFAULT_BRANCH}").as_str(),
                    "Create the skills repository from the template",
                    tree,
                    gix::commit::NO_PARENT_IDS,
                )
                .map_err(RepoError::git)?;
                // gix writes loose objects: the import into the database packs them
                // (`storage::import`), before the repository is served.
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path)?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "skills",
            "skills.git",
            "/skills.git",
            "/skills",
            "~/skills.git",
            "skills/",
        ] {
            assert_eq!(RepoStore::canonical_name(ok).unwrap(), "skills", "{ok}");
        }
        for bad in [
            "../x",
            "/etc/passwd",
            "",
            "a/b",
            "..",
            ".hidden",
            "Skills",
            "x y",
        ] {
            assert!(RepoStore::canonical_name(bad).is_err(), "{bad}");
        }
    }
}

/// One ref and whether it can be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefState {
    pub name: String,
    /// Its object id, or the symbolic target for a symbolic ref.
    pub target: String,
    /// Why it cannot be served (its object, or a tag's target, is missing).
    pub problem: Option<String>,
}

/// Every ref of `repo`, each checked: its object exists and, for a tag, peels to an
/// object that exists.
pub fn ref_states(repo: &gix::Repository) -> Result<Vec<RefState>, RepoError> {
    let platform = repo.references().map_err(RepoError::git)?;
    let mut out = Vec::new();
    for r in platform.all().map_err(RepoError::git)? {
        let mut r = r.map_err(RepoError::git)?;
        let name = r.name().as_bstr().to_string();
        let Some(id) = r.target().try_id().map(|id| id.to_owned()) else {
            let target = r
                .target()
                .try_name()
                .map(|n| n.as_bstr().to_string())
                .unwrap_or_default();
            out.push(RefState {
                name,
                target,
                problem: None,
            });
            continue;
        };
        let problem = match repo.find_header(id) {
            Err(_) => Some(format!("its object {id} is missing")),
            Ok(h) if h.kind() == gix::object::Kind::Tag => r
                .peel_to_id()
                .err()
                .map(|e| format!("its tag cannot be peeled: {e}")),
            Ok(_) => None,
        };
        out.push(RefState {
            name,
            target: id.to_string(),
            problem,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The object the ref `name` holds directly (`None`: no such ref, or a symbolic one).
pub fn ref_target(repo: &gix::Repository, name: &str) -> Option<gix::ObjectId> {
    repo.try_find_reference(name)
        .ok()
        .flatten()
        .and_then(|r| r.target().try_id().map(|id| id.to_owned()))
}

/// Why `repo` cannot be served, if it cannot: `HEAD`'s branch names a missing object,
/// or a tag says its object is of another type than it is (every fresh clone fails
/// on such a tag: "invalid index-pack output"). Other refs that cannot be served are
/// left out of listings, not fatal; `skillsd fsck` checks every object.
pub fn unservable(repo: &gix::Repository) -> Option<String> {
    if let Some(why) = lying_tag(repo) {
        return Some(why);
    }
    let head = repo.find_reference("HEAD").ok()?;
    let branch = head.target().try_name()?.as_bstr().to_string();
    let id = ref_target(repo, &branch)?;
    repo.find_header(id)
        .is_err()
        .then(|| format!("{branch} points to a missing object {id}"))
}

/// The first tag ref whose tag object declares a type its object does not have.
fn lying_tag(repo: &gix::Repository) -> Option<String> {
    let platform = repo.references().ok()?;
    for r in platform.tags().ok()?.flatten() {
        let Some(mut id) = r.target().try_id().map(|id| id.to_owned()) else {
            continue;
        };
        // Along a chain of tags (bounded: a chain is the pusher's choice).
        for _ in 0..64 {
            let Ok(object) = repo.find_object(id) else {
                break;
            };
            if object.kind != gix::object::Kind::Tag {
                break;
            }
            let Ok((target, declared)) = crate::incoming::fsck::tag(&object.data) else {
                break;
            };
            match repo.find_header(target) {
                Ok(h) if h.kind() != declared => {
                    return Some(format!(
                        "{} is a tag of a {declared} whose object {target} is a {} \
                         (every clone fails; `skillsd ref delete` removes it)",
                        r.name().as_bstr(),
                        h.kind()
                    ));
                }
                Ok(_) => id = target,
                Err(_) => break,
            }
        }
    }
    None
}

/// Deletes the ref `name` whatever it points to (for an admin removing a ref that
/// cannot be served; pushes cannot create such refs any more).
pub fn delete_ref(repo: &gix::Repository, name: &str) -> Result<(), RepoError> {
    use gix::refs::transaction::{Change, PreviousValue, RefEdit, RefLog};
    let full =
        gix::refs::FullName::try_from(name).map_err(|_| RepoError::BadRefName(name.to_string()))?;
    if repo
        .try_find_reference(name)
        .map_err(RepoError::git)?
        .is_none()
    {
        return Err(RepoError::NoSuchRef(name.to_string()));
    }
    repo.edit_reference(RefEdit {
        change: Change::Delete {
            expected: PreviousValue::Any,
            log: RefLog::AndReference,
        },
        name: full,
        deref: false,
    })
    .map_err(RepoError::git)?;
    Ok(())
}
