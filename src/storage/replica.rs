//! A node's copy of a repository: the bare repository in its data dir, plus the
//! generation of the database state it equals (`skillsd-generation`).
//!
//! Before a node serves a read it asks the database for the repository's generation
//! (one query). Equal to its own: it serves. Otherwise [`refresh`] fetches the packs it
//! lacks (pack before index, each checked), then sets its refs to the database's and
//! records the generation — in that order, so a ref never names an object the node
//! does not have. One refresh per repository at a time (an `flock`); others wait and
//! then find the copy current.

use super::packs::{self, PackRow};
use super::{DbRef, Result, StorageError};
use crate::repos::RepoStore;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::runtime::Handle;

/// The generation a copy equals, in the repository's directory.
pub const GENERATION_FILE: &str = "skillsd-generation";
const LOCK_FILE: &str = "skillsd-refresh.lock";

/// The generation the copy at `repo_path` equals (`None`: never synced).
pub fn local_generation(repo_path: &Path) -> Option<i64> {
    std::fs::read_to_string(repo_path.join(GENERATION_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn set_local_generation(repo_path: &Path, generation: i64) -> std::io::Result<()> {
    let tmp = repo_path.join(format!(
        "{GENERATION_FILE}.tmp-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&tmp, format!("{generation}\n"))?;
    std::fs::rename(&tmp, repo_path.join(GENERATION_FILE))
}

/// The repository's generation in the database (`None`: not there).
pub async fn db_generation(pool: &PgPool, repo: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar!("SELECT generation FROM git_repos WHERE name = $1", repo)
            .fetch_optional(pool)
            .await?,
    )
}

/// Every repository in the database.
pub async fn db_repos(pool: &PgPool) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar!("SELECT name FROM git_repos ORDER BY name")
            .fetch_all(pool)
            .await?,
    )
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// The generation the copy now equals.
    pub generation: i64,
    /// Packs fetched from the database.
    pub fetched: usize,
    /// Whether anything changed (refs or packs).
    pub changed: bool,
}

/// Is the copy of `repo` at least at `generation`?
pub fn is_current(repos: &RepoStore, repo: &str, generation: i64) -> bool {
    repos.exists(repo) && local_generation(&repos.path_of(repo)).is_some_and(|g| g >= generation)
}

/// Brings this node's copy of `repo` to the database's current state (creating the
/// copy when the node has none). Blocking.
pub fn refresh(rt: &Handle, pool: &PgPool, repos: &RepoStore, repo: &str) -> Result<Refreshed> {
    let path = repos.path_of(repo);
    if !repos.exists(repo) {
        match repos.create(repo, true) {
            Ok(_) | Err(crate::repos::RepoError::Exists(_)) => {}
            Err(e) => return Err(StorageError::git(e)),
        }
    }
    let _lock = lock(&path)?;
    let mut conn = rt.block_on(pool.acquire())?;
    let done = sync_into(
        rt,
        &mut conn,
        repo,
        &path,
        local_generation(&path),
        repos.settings.pack_grace,
    )?;
    if done.changed {
        tracing::info!(
            repo,
            generation = done.generation,
            packs_fetched = done.fetched,
            "copy refreshed from the database"
        );
    }
    Ok(done)
}

/// After this node committed a change of `repo` (this node's copy, open) that took
/// the database from
/// generation `from` to `to`: when the copy was at `from`, it takes `changes` (ref →
/// new target, `None`: deleted) and records `to` without asking the database again
/// (the change's objects must be in the copy already). Returns `false` when the copy
/// was elsewhere: then [`refresh`] it.
pub fn advance(
    repo: &gix::Repository,
    from: i64,
    to: i64,
    changes: &[(String, Option<gix::ObjectId>)],
) -> Result<bool> {
    let path = repo.path().to_path_buf();
    let _lock = lock(&path)?;
    if local_generation(&path) != Some(from) {
        return Ok(false);
    }
    let edits = changes
        .iter()
        .map(|(name, target)| forced_edit(name, *target, "push"))
        .collect::<Result<Vec<_>>>()?;
    repo.edit_references(edits).map_err(StorageError::git)?;
    set_local_generation(&path, to)?;
    Ok(true)
}

/// [`refresh`] from async code: on a blocking thread.
pub async fn refresh_async(pool: &PgPool, repos: &RepoStore, repo: &str) -> Result<Refreshed> {
    let (rt, pool, repos, repo) = (
        Handle::current(),
        pool.clone(),
        repos.clone(),
        repo.to_string(),
    );
    tokio::task::spawn_blocking(move || refresh(&rt, &pool, &repos, &repo))
        .await
        .map_err(StorageError::Stopped)?
}

/// Serialises every writer of a copy's refs (refreshes and pushes, threads and
/// processes): an exclusive `flock`, which the kernel releases however its holder ends.
struct RefreshLock(#[allow(dead_code)] std::fs::File);

fn lock(repo_path: &Path) -> Result<RefreshLock> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(repo_path.join(LOCK_FILE))?;
    file.lock()?;
    remove_stale_ref_locks(repo_path);
    Ok(RefreshLock(file))
}

/// Lock files gix leaves next to a ref it was writing when the process was killed
/// (`refs/heads/main.lock`, `packed-refs.lock`, `HEAD.lock`): with the refresh lock
/// held nobody else writes this copy's refs, so any such file is stale, and left in
/// place it would refuse every later update of that ref.
fn remove_stale_ref_locks(repo_path: &Path) {
    let mut stack = vec![repo_path.join("refs")];
    let mut stale: Vec<PathBuf> = ["packed-refs.lock", "HEAD.lock"]
        .iter()
        .map(|f| repo_path.join(f))
        .filter(|p| p.exists())
        .collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "lock") {
                stale.push(path);
            }
        }
    }
    for path in stale {
        tracing::warn!(file = %path.display(), "removing a ref lock left by a crash");
        let _ = std::fs::remove_file(path);
    }
}

/// Makes the bare repository at `path` equal to the database's `repo`, from one
/// consistent snapshot: live packs it lacks are fetched, then its refs and `HEAD` are
/// set, then its generation is recorded; packs retired longer ago than `grace` are
/// removed. Nothing is read beyond the generation when `known` equals it.
pub fn sync_into(
    rt: &Handle,
    conn: &mut PgConnection,
    repo: &str,
    path: &Path,
    known: Option<i64>,
    grace: std::time::Duration,
) -> Result<Refreshed> {
    let snapshot = rt.block_on(read_snapshot(conn, repo, known))?;
    let Some(snapshot) = snapshot else {
        return Ok(Refreshed {
            generation: known.unwrap_or_default(),
            ..Default::default()
        });
    };
    let pack_dir = path.join("objects").join("pack");
    let mut fetched = 0;
    for row in snapshot.packs.iter().filter(|p| p.retired_secs.is_none()) {
        if !packs::present(&pack_dir, row) {
            packs::download(rt, conn, row, &pack_dir)?;
            fetched += 1;
        }
    }
    let refs_changed = set_refs(path, &snapshot.head, &snapshot.refs)?;
    set_local_generation(path, snapshot.generation)?;
    remove_retired(path, &snapshot.packs, grace);
    Ok(Refreshed {
        generation: snapshot.generation,
        fetched,
        changed: refs_changed || fetched > 0,
    })
}

struct Snapshot {
    generation: i64,
    head: String,
    refs: Vec<DbRef>,
    packs: Vec<PackRow>,
}

async fn read_snapshot(
    conn: &mut PgConnection,
    repo: &str,
    known: Option<i64>,
) -> Result<Option<Snapshot>> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let found = sqlx::query!(
        "SELECT generation, head FROM git_repos WHERE name = $1",
        repo
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StorageError::NotInDatabase(repo.to_string()))?;
    let (generation, head) = (found.generation, found.head);
    if known == Some(generation) {
        tx.commit().await?;
        return Ok(None);
    }
    let refs: Vec<DbRef> = sqlx::query_as!(
        DbRef,
        "SELECT name, target, peeled FROM git_refs WHERE repo = $1 ORDER BY name",
        repo
    )
    .fetch_all(&mut *tx)
    .await?;
    let packs = packs::list(&mut tx, repo).await?;
    tx.commit().await?;
    Ok(Some(Snapshot {
        generation,
        head,
        refs,
        packs,
    }))
}

/// Sets the refs of the bare repository at `path` to `refs` (others deleted) and its
/// `HEAD` to `head`. Returns whether anything changed.
fn set_refs(path: &Path, head: &str, refs: &[DbRef]) -> Result<bool> {
    let repo = crate::repos::open_server_repo(path).map_err(StorageError::git)?;
    let mut local: HashMap<String, Option<gix::ObjectId>> = HashMap::new();
    let platform = repo.references().map_err(StorageError::git)?;
    for r in platform.all().map_err(StorageError::git)? {
        let r = r.map_err(StorageError::git)?;
        local.insert(
            r.name().as_bstr().to_string(),
            r.target().try_id().map(|id| id.to_owned()),
        );
    }
    let mut edits = Vec::new();
    // A ref whose name is a folder of another (`a` beside `a/b`) cannot exist in a
    // copy on disk: the longer one is left out (with a warning), rather than no ref
    // being set at all. Pushes refuse such pairs; `skillsd fsck` finds old ones.
    let all: std::collections::HashSet<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    let hidden = |name: &str| {
        let mut prefix = name;
        while let Some(i) = prefix.rfind('/') {
            prefix = &prefix[..i];
            if all.contains(prefix) {
                return Some(prefix.to_string());
            }
        }
        None
    };
    for r in refs {
        if let Some(folder) = hidden(&r.name) {
            tracing::warn!(
                ref_name = %r.name,
                blocked_by = %folder,
                "a ref cannot be set beside a ref named like its folder: run `skillsd fsck`"
            );
            continue;
        }
        let target = gix::ObjectId::from_hex(r.target.as_bytes()).map_err(StorageError::git)?;
        if local.remove(&r.name) != Some(Some(target)) {
            edits.push(forced_edit(
                &r.name,
                Some(target),
                "skillsd: from the database",
            )?);
        }
    }
    for name in local.into_keys() {
        edits.push(forced_edit(&name, None, "skillsd: from the database")?);
    }
    let mut changed = !edits.is_empty();
    if changed {
        repo.edit_references(edits).map_err(StorageError::git)?;
    }
    let head_line = format!("ref: {head}\n");
    let head_path = path.join("HEAD");
    if std::fs::read_to_string(&head_path).ok().as_deref() != Some(head_line.as_str()) {
        let tmp = path.join(format!("HEAD.tmp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, head_line)?;
        std::fs::rename(&tmp, &head_path)?;
        changed = true;
    }
    Ok(changed)
}

/// An edit that sets the ref `name` to `target` (`None`: deletes it) whatever it holds
/// now: the copy follows the database, which already did the compare-and-swap.
fn forced_edit(
    name: &str,
    target: Option<gix::ObjectId>,
    message: &str,
) -> Result<gix::refs::transaction::RefEdit> {
    use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
    let change = match target {
        Some(id) => Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: message.into(),
            },
            expected: PreviousValue::Any,
            new: gix::refs::Target::Object(id),
        },
        None => Change::Delete {
            expected: PreviousValue::Any,
            log: RefLog::AndReference,
        },
    };
    Ok(RefEdit {
        change,
        name: gix::refs::FullName::try_from(name).map_err(StorageError::git)?,
        deref: false,
    })
}

/// Removes the local files of packs retired longer ago than the grace period (a gc on
/// some node replaced them; every object is in a live pack), while no session of this
/// node reads the repository.
fn remove_retired(path: &Path, rows: &[PackRow], grace: std::time::Duration) {
    let grace = grace.as_secs_f64();
    let pack_dir = path.join("objects").join("pack");
    let expired: Vec<(PathBuf, PathBuf)> = rows
        .iter()
        .filter(|p| p.retired_secs.is_some_and(|s| s >= grace))
        .map(|p| packs::local_files(&pack_dir, &p.checksum))
        .filter(|(_, idx)| idx.is_file())
        .collect();
    if expired.is_empty() {
        return;
    }
    let Some(_exclusive) =
        crate::maintenance::exclusive_guard(path, std::time::Duration::from_millis(200))
    else {
        return; // sessions are reading: the next refresh tries again
    };
    for (pack, idx) in expired {
        let _ = std::fs::remove_file(&idx);
        let _ = std::fs::remove_file(idx.with_extension("rev"));
        let _ = std::fs::remove_file(&pack);
        tracing::info!(pack = %pack.display(), "removed a pack retired by a gc");
    }
}

/// Serves reads and writes of `requested` from a copy that equals the database:
/// its canonical name and the opened repository.
/// When the database cannot be asked, a read is served from the copy as last
/// verified (logged) and a write is refused ([`OpenError::DatabaseDown`]).
pub async fn open(
    pool: &PgPool,
    repos: &RepoStore,
    requested: &str,
    writing: bool,
) -> std::result::Result<(String, gix::Repository), OpenError> {
    let name = RepoStore::canonical_name(requested).map_err(|_| OpenError::NotFound)?;
    let asked = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        db_generation(pool, &name),
    )
    .await;
    match asked {
        Ok(Ok(Some(generation))) => {
            if !is_current(repos, &name, generation)
                && let Err(e) = refresh_async(pool, repos, &name).await
            {
                tracing::error!(repo = %name, error = %e, "could not refresh the copy from the database");
                if writing {
                    return Err(OpenError::DatabaseDown);
                }
            }
        }
        Ok(Ok(None)) => return Err(OpenError::NotFound),
        Ok(Err(e)) => {
            if writing {
                return Err(OpenError::DatabaseDown);
            }
            tracing::warn!(repo = %name, error = %e, "database unreachable: serving the copy as last verified");
        }
        Err(_) => {
            if writing {
                return Err(OpenError::DatabaseDown);
            }
            tracing::warn!(repo = %name, "database did not answer: serving the copy as last verified");
        }
    }
    repos.open(&name).map_err(|_| OpenError::NotFound)
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("repository not found")]
    NotFound,
    #[error("the database is unavailable")]
    DatabaseDown,
}

/// Refreshes a repository when another node announces a change (`NOTIFY`), so the
/// next read finds the copy current. A hint only: reads check the generation anyway.
pub fn spawn_prefetch(pool: PgPool, repos: RepoStore) {
    tokio::spawn(async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %e, "prefetch: cannot listen; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    continue;
                }
            };
            if listener.listen(super::NOTIFY_CHANNEL).await.is_err() {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
            loop {
                let note = match listener.recv().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(error = %e, "prefetch: listener lost; reconnecting");
                        break;
                    }
                };
                let mut words = note.payload().split(' ');
                let (Some(repo), Some(generation), node) =
                    (words.next(), words.next(), words.next())
                else {
                    continue;
                };
                let Ok(generation) = generation.parse::<i64>() else {
                    continue;
                };
                if node == Some(super::node_id()) {
                    continue; // this node's own change: its copy is already there
                }
                if is_current(&repos, repo, generation) {
                    continue;
                }
                let (pool, repos, repo) = (pool.clone(), repos.clone(), repo.to_string());
                tokio::spawn(async move {
                    if let Err(e) = refresh_async(&pool, &repos, &repo).await {
                        tracing::debug!(repo = %repo, error = %e, "prefetch failed");
                    }
                });
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}
