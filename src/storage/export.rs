//! `skillsd export REPO DIR`: a plain bare repository written from the database —
//! every live pack, every ref, `HEAD` — for backups and for leaving skillsd. Any git
//! can clone or `fsck` it.

use super::{Result, StorageError, replica};
use sqlx::PgPool;
use std::path::Path;
use tokio::runtime::Handle;

/// Writes `repo` into `dir` (which must not exist, or be empty). Blocking.
pub fn export(rt: &Handle, pool: &PgPool, repo: &str, dir: &Path) -> Result<replica::Refreshed> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(StorageError::NotEmpty(dir.to_path_buf()));
    }
    gix::init_bare(dir).map_err(StorageError::git)?;
    std::fs::write(
        dir.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
    )?;
    let mut conn = rt.block_on(pool.acquire())?;
    // Not a served copy: nobody reads it while it is written, no pack to keep.
    let done = replica::sync_into(rt, &mut conn, repo, dir, None, std::time::Duration::MAX)?;
    std::fs::remove_file(dir.join(replica::GENERATION_FILE))?;
    Ok(done)
}
