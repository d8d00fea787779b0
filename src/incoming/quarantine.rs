//! The quarantine: a private object directory for an incoming pack. Its objects are
//! visible to the checks (through a repository view whose object store is the
//! quarantine with the main store as alternate) but to nobody else until
//! [`Quarantine::migrate`] moves the pack into `objects/pack`. Dropping a quarantine
//! that was not migrated deletes it and everything in it.

use super::inspect::{self, Inspector, PackLimits};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("cannot prepare the quarantine: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot open the quarantine object store: {0}")]
    Odb(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub struct Quarantine {
    dir: PathBuf,
    objects_dir: PathBuf,
}

/// Prefix of quarantine directories inside `objects/`; leftovers are removed at start.
pub const PREFIX: &str = "incoming-";

/// The object cache of a push's view: the trees of a repository of 10,000 skills are
/// under 1 MiB, read three or four times by one push (a push of one skill: 29 -> 27 ms
/// on the server, BENCHMARKS.md). Freed with the view.
pub const VIEW_OBJECT_CACHE_BYTES: usize = 4 * 1024 * 1024;

impl Quarantine {
    pub fn create(repo: &gix::Repository) -> Result<Quarantine, QuarantineError> {
        let objects_dir = repo.objects.store_ref().path().to_path_buf();
        let objects_dir = objects_dir.canonicalize()?;
        let dir = objects_dir.join(format!("{PREFIX}{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("pack"))?;
        std::fs::create_dir_all(dir.join("info"))?;
        std::fs::write(
            dir.join("info").join("alternates"),
            format!("{}\n", objects_dir.display()),
        )?;
        Ok(Quarantine { dir, objects_dir })
    }

    pub fn pack_dir(&self) -> PathBuf {
        self.dir.join("pack")
    }

    /// Indexes the pack on `input` into the quarantine (a thin pack completed from
    /// `repo`'s objects), as it streams, through the [`Inspector`] (with `tap` on it,
    /// if given) and a byte limit. `cancel` interrupts the indexer. The error is the
    /// refusal in words for the pusher (one line).
    pub fn index<R: Read>(
        &self,
        repo: &gix::Repository,
        input: R,
        limits: &IndexLimits,
        cancel: &AtomicBool,
        tap: Option<inspect::Tap>,
    ) -> Result<(), String> {
        let exceeded = Arc::new(AtomicBool::new(false));
        let reader = Limited {
            inner: input,
            left: limits.max_pack_bytes,
            exceeded: exceeded.clone(),
        };
        let mut inspector = Inspector::new(reader, limits.pack);
        if let Some(tap) = tap {
            inspector = inspector.tapped(tap);
        }
        let findings = inspector.findings();
        let mut buffered = BufReader::with_capacity(64 * 1024, inspector);
        let result = gix_pack::Bundle::write_to_directory(
            &mut buffered,
            Some(&self.pack_dir()),
            &mut gix::progress::Discard,
            cancel,
            Some(repo.objects.clone()),
            gix::hash::Kind::Sha1,
            gix_pack::bundle::write::Options::default(),
        );
        if let Err(e) = result {
            let msg = if exceeded.load(Ordering::Relaxed) {
                format!(
                    "the pack is larger than the limit of {} bytes; push fewer or smaller files at a time",
                    limits.max_pack_bytes
                )
            } else if let Some(why) = findings.lock().ok().and_then(|f| f.refusal.clone()) {
                why
            } else {
                e.to_string()
            };
            return Err(msg.lines().next().unwrap_or("invalid pack").to_string());
        }
        if findings.lock().is_ok_and(|f| f.ref_deltas > 0) {
            // Chains through deltas that name their base by id are only known now.
            inspect::check_delta_depths(&self.pack_dir(), limits.pack.max_delta_depth)?;
        }
        Ok(())
    }

    /// A view of `repo` that also sees the quarantined objects (the repository's own
    /// and the push's), with an object cache of [`VIEW_OBJECT_CACHE_BYTES`].
    pub fn view(&self, repo: &gix::Repository) -> Result<gix::Repository, QuarantineError> {
        let handle = gix::odb::at_opts(&self.dir, gix::hash::Kind::Sha1, [], super::odb_options())
            .map_err(|e| QuarantineError::Odb(Box::new(e)))?;
        let mut view = repo.clone();
        view.objects = handle.into();
        // The checks, the cache and the versions read the same trees in turn (the
        // diff, the walk, the files under the roots): each is decoded once.
        view.object_cache_size_if_unset(VIEW_OBJECT_CACHE_BYTES);
        Ok(view)
    }

    /// Moves the quarantined pack into the repository: the pack first, then its index,
    /// so a reader that sees the index always finds the pack.
    /// Returns the files moved in (pack first, index last).
    pub fn migrate(self) -> Result<Vec<PathBuf>, QuarantineError> {
        let target = self.objects_dir.join("pack");
        std::fs::create_dir_all(&target)?;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(self.pack_dir())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        let rank = |p: &Path| match p.extension().and_then(|e| e.to_str()) {
            Some("pack") => 0,
            Some("rev") => 1,
            Some("idx") => 2,
            _ => 3,
        };
        entries.sort_by_key(|p| rank(p));
        let mut moved = Vec::new();
        for path in entries {
            if rank(&path) == 3 {
                continue; // .keep and temporary files stay behind and are deleted
            }
            let name = path.file_name().expect("a file in the pack dir");
            let dest = target.join(name);
            if !dest.exists() {
                std::fs::rename(&path, &dest)?;
                moved.push(dest);
            }
        }
        Ok(moved)
        // Drop removes what is left of the quarantine.
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove quarantine");
        }
    }
}

/// What an incoming pack may be: its size on the wire, and what it may declare.
#[derive(Debug, Clone, Copy)]
pub struct IndexLimits {
    pub max_pack_bytes: u64,
    pub pack: PackLimits,
}

/// Reads at most `left` bytes, then fails: a pack over the limit is refused while it
/// streams, before it is stored.
struct Limited<R> {
    inner: R,
    left: u64,
    exceeded: Arc<AtomicBool>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            self.exceeded.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("pack size limit exceeded"));
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Takes back a migrated pack that no ref came to name (every ref update of its push
/// failed the compare-and-swap): index first, so no index outlives its pack.
pub fn withdraw(moved: &[PathBuf]) {
    for path in moved.iter().rev() {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(file = %path.display(), error = %e, "could not remove an unused pack");
        }
    }
}

/// Removes quarantines left behind by a crash.
pub fn remove_leftovers(objects_dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(objects_dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(PREFIX) {
            std::fs::remove_dir_all(entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}
