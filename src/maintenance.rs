//! Pack maintenance. Every push adds a pack; many small packs make clones and lookups
//! slower. [`consolidate`] writes one pack of the packs and loose objects it is given,
//! reusing the deltas they hold; [`remove_replaced`] then deletes exactly those files.
//! A served repository is consolidated by [`crate::storage::gc`], which publishes the
//! new pack; [`gc`] is the local form for a repository under construction.
//!
//! It is safe while pushes and clones run: packs that arrive meanwhile are left alone;
//! every object of the old files is in the new pack (nothing is pruned, reachable or
//! not) before any old file is deleted; readers that already mapped an old pack keep
//! their mapping (the file is only unlinked), and gix refreshes its pack list on a
//! miss; files are deleted only while no git session of this node reads the
//! repository (a shared/exclusive `flock`).

use crate::incoming::inspect::PackLimits;
use std::collections::HashSet;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use crate::repos::AUTO_GC_PACKS;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("another gc is running on this repository")]
    Busy,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("git error: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The stored objects are beyond what a gc may inflate (objects stored before the
    /// limits existed, or under larger ones): the gc stops instead of paying minutes
    /// of CPU every time.
    #[error(
        "gc refused: {0}. The packs stay as they are (the repository still serves); \
         raise SKILLSD_MAX_INFLATE_RATIO for this run to consolidate anyway"
    )]
    Refused(String),
}

impl GcError {
    /// A gix error, kept with its chain of causes.
    fn git(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        GcError::Git(Box::new(e))
    }
}

/// What a gc did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcOutcome {
    pub packs_before: usize,
    pub loose_before: usize,
    pub objects: usize,
}

/// One gc per repository: an exclusive `flock` on `skillsd-gc.lock`. The kernel
/// releases it when the process ends, however it ends, so a crashed gc never blocks
/// the next one; the file itself stays (deleting it would race with a new holder).
struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    fn acquire(path: PathBuf) -> Result<Lock, GcError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Lock(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(GcError::Busy),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// Number of packs in a repository.
pub fn pack_count(repo_path: &Path) -> usize {
    std::fs::read_dir(repo_path.join("objects").join("pack"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                .count()
        })
        .unwrap_or(0)
}

/// Consolidates the repository at `repo_path` (a bare repository) into one pack: every
/// pack and loose object present when it starts. Local only (a repository under
/// construction, or under a stock git server); a served repository goes through
/// [`crate::storage::gc`], which publishes the new pack.
pub fn gc(repo_path: &Path, limits: PackLimits) -> Result<GcOutcome, GcError> {
    let pack_dir = repo_path.join("objects").join("pack");
    std::fs::create_dir_all(&pack_dir)?;
    let _lock = Lock::acquire(pack_dir.join("skillsd-gc.lock"))?;
    let mut packs: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&pack_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "idx") && path.with_extension("pack").is_file() {
            packs.push(path);
        }
    }
    let loose = loose_objects(repo_path)?;
    let mut outcome = GcOutcome {
        packs_before: packs.len(),
        loose_before: loose.len(),
        objects: 0,
    };
    if packs.len() <= 1 && loose.is_empty() {
        return Ok(outcome);
    }
    let done = consolidate(repo_path, &packs, &loose, limits)?;
    outcome.objects = done.objects;
    remove_replaced(repo_path, &packs, &loose, &done.pack);
    Ok(outcome)
}

/// Loose objects of a repository.
fn loose_objects(repo_path: &Path) -> Result<Vec<PathBuf>, GcError> {
    let mut loose: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(repo_path.join("objects"))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()) && entry.path().is_dir() {
            for file in std::fs::read_dir(entry.path())? {
                let file = file?;
                let fname = file.file_name();
                if fname.len() == 38
                    && fname
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit())
                {
                    loose.push(file.path());
                }
            }
        }
    }
    Ok(loose)
}

/// A pack that replaces others, moved into `objects/pack`.
pub struct Consolidated {
    /// Its `.pack` file.
    pub pack: PathBuf,
    pub objects: usize,
}

/// Writes one pack of every object of the packs (`.idx` paths) and loose objects
/// given, reusing their deltas, indexes it (read back through the inspector) and
/// moves it into `objects/pack`. Nothing is deleted.
pub fn consolidate(
    repo_path: &Path,
    packs: &[PathBuf],
    loose: &[PathBuf],
    limits: PackLimits,
) -> Result<Consolidated, GcError> {
    let mut ids: HashSet<gix::ObjectId> = HashSet::new();
    for idx in packs {
        let index = gix_pack::index::File::at(idx, gix::hash::Kind::Sha1).map_err(GcError::git)?;
        for entry in index.iter() {
            ids.insert(entry.oid);
        }
    }
    for file in loose {
        let dir = file
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        if let (Some(dir), Some(name)) = (dir, name)
            && let Ok(oid) = gix::ObjectId::from_hex(format!("{dir}{name}").as_bytes())
        {
            ids.insert(oid);
        }
    }
    let objects = ids.len();

    // Write the new pack into a private directory (removed at start if we crash),
    // index it, move it in.
    let repo = crate::repos::open_server_repo(repo_path).map_err(GcError::git)?;
    let work = crate::incoming::quarantine::Quarantine::create(&repo).map_err(GcError::git)?;
    let tmp_pack = work.pack_dir().join("gc.pack.tmp");
    {
        let file = std::fs::File::create(&tmp_pack)?;
        let mut out = std::io::BufWriter::new(file);
        let mut ids: Vec<gix::ObjectId> = ids.into_iter().collect();
        ids.sort();
        crate::protocol::pack::write_pack(&repo, ids, &mut out).map_err(GcError::git)?;
        std::io::Write::flush(&mut out)?;
    }
    let interrupt = AtomicBool::new(false);
    // The consolidated pack is read through the same guard as a push: an object
    // stored before the limits existed (or under larger ones) fails the gc with a
    // message instead of being inflated whole. Its inflation budget is the sum of
    // the budgets its packs came in under (one floor per pack), so a gc never pays
    // more than the pushes that brought its objects were allowed to cost.
    let limits = limits.for_consolidating(packs.len() + usize::from(!loose.is_empty()));
    let guarded = crate::incoming::inspect::Inspector::new(std::fs::File::open(&tmp_pack)?, limits);
    let findings = guarded.findings();
    let indexed = gix_pack::Bundle::write_to_directory(
        &mut BufReader::new(guarded),
        Some(&work.pack_dir()),
        &mut gix::progress::Discard,
        &interrupt,
        None::<gix::odb::Handle>,
        gix::hash::Kind::Sha1,
        gix_pack::bundle::write::Options::default(),
    );
    if let Err(e) = indexed {
        let refusal = findings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refusal
            .clone();
        let _ = std::fs::remove_file(&tmp_pack);
        return Err(match refusal {
            Some(why) => GcError::Refused(
                why.strip_suffix(crate::incoming::inspect::INFLATE_HINT)
                    .unwrap_or(&why)
                    .to_string(),
            ),
            None => GcError::git(e),
        });
    }
    std::fs::remove_file(&tmp_pack)?;
    let moved = work.migrate().map_err(GcError::git)?;
    let pack = moved
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .cloned()
        .or_else(|| {
            // The consolidated pack came out identical to one present: that one.
            std::fs::read_dir(repo_path.join("objects").join("pack"))
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.extension().is_some_and(|x| x == "pack")
                        && packs.iter().any(|i| i.with_extension("pack") == *p)
                })
        })
        .ok_or_else(|| GcError::Git("the consolidated pack is missing".into()))?;
    Ok(Consolidated { pack, objects })
}

/// Deletes the packs (`.idx` paths) and loose objects a consolidation replaced,
/// except `kept` (the new pack), and only while no git session of this process or
/// another reads the repository (a session may have listed a pack it has not opened
/// yet). Under constant traffic they stay: harmless (their objects are in the new
/// pack too), and the next gc removes them.
pub fn remove_replaced(repo_path: &Path, packs: &[PathBuf], loose: &[PathBuf], kept: &Path) {
    let Some(_exclusive) = exclusive_guard(repo_path, Duration::from_secs(10)) else {
        tracing::info!(repo = %repo_path.display(), "sessions kept running; old packs stay until the next gc");
        return;
    };
    // Index first, so no index outlives its pack.
    for idx in packs {
        if idx.with_extension("pack") == kept {
            continue;
        }
        let _ = std::fs::remove_file(idx);
        for ext in ["rev", "keep", "pack"] {
            let _ = std::fs::remove_file(idx.with_extension(ext));
        }
    }
    for file in loose {
        let _ = std::fs::remove_file(file);
        if let Some(dir) = file.parent() {
            let _ = std::fs::remove_dir(dir); // only when empty
        }
    }
}

/// File whose flock marks git sessions reading a repository (shared) and gc deleting
/// packs (exclusive). Works across processes (the server and `skillsd gc`).
fn readers_lock_path(repo_path: &Path) -> PathBuf {
    repo_path
        .join("objects")
        .join("pack")
        .join("skillsd-sessions.flock")
}

/// Held by a git session for its whole duration: gc deletes no pack meanwhile.
pub struct ReadGuard(#[allow(dead_code)] std::fs::File);

fn open_lock(repo_path: &Path) -> Option<std::fs::File> {
    let path = readers_lock_path(repo_path);
    let _ = std::fs::create_dir_all(path.parent()?);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()
}

/// Takes the shared lock (waits only while a gc is deleting packs, which is quick).
pub fn read_guard(repo_path: &Path) -> Option<ReadGuard> {
    let file = open_lock(repo_path)?;
    file.lock_shared().ok()?;
    Some(ReadGuard(file))
}

/// Takes the exclusive lock, trying for up to `wait`.
pub fn exclusive_guard(repo_path: &Path, wait: Duration) -> Option<std::fs::File> {
    let file = open_lock(repo_path)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        if file.try_lock().is_ok() {
            return Some(file);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
