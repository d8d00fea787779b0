//! Git data in PostgreSQL: the store of record for every repository's refs and packs.
//! Each node's data dir holds a copy it serves from.
//!
//! * [`packs`]: packs and their indexes as chunked rows; upload and download.
//! * [`replica`]: a node's copy — one query tells whether it is current; if not, the
//!   packs it lacks are fetched, then its refs are set to the database's.
//! * [`publish`]: what a push (or a gc, or an admin) changes, inside one transaction:
//!   the repository row locked, refs moved by compare-and-swap, the generation bumped
//!   with a `NOTIFY`.
//! * [`import`]: a data dir of the single-node layout taken into the database on first
//!   start; [`export`]: a plain bare repository written from the database.
//! * [`identity`]: the SSH host key every node presents.
//! * [`gc`]: consolidation published in one transaction, retired packs removed after
//!   a grace period.

pub mod export;
pub mod gc;
pub mod identity;
pub mod import;
pub mod packs;
pub mod publish;
pub mod replica;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("git error: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The blocking task of a refresh panicked or was cancelled.
    #[error("the refresh stopped: {0}")]
    Stopped(#[source] tokio::task::JoinError),
    #[error("{} exists and is not empty; give a new directory", .0.display())]
    NotEmpty(std::path::PathBuf),
    #[error("{} is not a pack", .0.display())]
    NotAPack(std::path::PathBuf),
    /// A pack's chunks in the database add up to fewer (or more) bytes than its row.
    #[error("pack {checksum} in the database has {written} of its {expected} bytes ({file:?})")]
    Truncated {
        checksum: String,
        written: i64,
        expected: i64,
        file: packs::PackFile,
    },
    /// A pack read from the database does not end with the checksum it is named by.
    #[error("pack {checksum} from the database ends with checksum {found}")]
    Checksum { checksum: String, found: String },
    #[error("repository `{0}` is not in the database")]
    NotInDatabase(String),
    #[error("another node is running a gc of this repository")]
    Busy,
}

impl StorageError {
    /// A gix (or other git-side) error, kept with its chain of causes.
    pub fn git(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StorageError::Git(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// The `NOTIFY` channel of published changes: the payload is `<repo> <generation>
/// <node>`. A hint for prefetching only: a node checks the generation before every
/// read.
pub const NOTIFY_CHANNEL: &str = "skillsd_git";

/// This process's name in notifications: a node ignores its own (it brought its copy
/// up to date itself, and a refresh racing with that would only cost the pusher time).
/// Every ref of `repo` the database holds, by name.
pub async fn refs(pool: &sqlx::PgPool, repo: &str) -> Result<Vec<(String, gix::ObjectId)>> {
    let rows = sqlx::query!(
        "SELECT name, target FROM git_refs WHERE repo = $1 ORDER BY name",
        repo
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| (r.name, r.target))
        .map(|(name, target)| {
            gix::ObjectId::from_hex(target.as_bytes())
                .map(|id| (name, id))
                .map_err(StorageError::git)
        })
        .collect()
}

pub fn node_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
}

/// A ref as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DbRef {
    pub name: String,
    pub target: String,
    pub peeled: Option<String>,
}

/// The object at the end of `id`'s chain of tags, when `id` is an annotated tag.
pub fn peeled(repo: &gix::Repository, id: gix::ObjectId) -> Option<gix::ObjectId> {
    let header = repo.find_header(id).ok()?;
    if header.kind() != gix::object::Kind::Tag {
        return None;
    }
    let object = repo.find_object(id).ok()?;
    object.peel_tags_to_end().ok().map(|o| o.id)
}
