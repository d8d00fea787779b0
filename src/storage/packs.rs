//! Packs in the database: each pack and its index as chunks of [`CHUNK`] bytes in
//! `git_pack_chunks`, the pack itself a row of `git_packs` named by its checksum.
//!
//! Why chunked `bytea` rather than large objects: rows are ordinary data (they
//! replicate, back up with `pg_dump` and go with `ON DELETE CASCADE`, where a large
//! object needs its own `lo_unlink` and permissions), sqlx reads and writes them like
//! any column, and a chunk at a time keeps memory flat on both ends however big the
//! pack.

use super::{Result, StorageError};
use sqlx::PgConnection;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tokio::runtime::Handle;

/// Bytes per chunk row.
pub const CHUNK: usize = 1024 * 1024;
/// A pack and index this small together go in with their row in one statement.
const SMALL: usize = CHUNK;

/// The two files of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackFile {
    Pack = 0,
    Index = 1,
}

impl PackFile {
    /// Its number in `git_pack_chunks.file`.
    fn number(self) -> i16 {
        self as i16
    }
}

/// A pack as the database lists it.
#[derive(Debug, Clone)]
pub struct PackRow {
    pub id: i64,
    pub checksum: String,
    pub pack_bytes: i64,
    pub index_bytes: i64,
    /// Seconds since it was retired (`None`: live).
    pub retired_secs: Option<f64>,
}

/// The pack files of a local pack directory named by `checksum`.
pub fn local_files(pack_dir: &Path, checksum: &str) -> (PathBuf, PathBuf) {
    (
        pack_dir.join(format!("pack-{checksum}.pack")),
        pack_dir.join(format!("pack-{checksum}.idx")),
    )
}

/// The checksum a pack file's name carries (`pack-<hex>.pack`).
pub fn checksum_of(path: &Path) -> Option<String> {
    let name = path.file_stem()?.to_str()?;
    let hex = name.strip_prefix("pack-")?;
    (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_string())
}

/// Every pack of `repo` the database knows, live and retired.
pub async fn list(conn: &mut PgConnection, repo: &str) -> Result<Vec<PackRow>> {
    Ok(sqlx::query_as!(
        PackRow,
        r#"SELECT id, checksum, pack_bytes, index_bytes,
                EXTRACT(EPOCH FROM now() - retired_at)::float8 AS "retired_secs?"
         FROM git_packs WHERE repo = $1 ORDER BY id"#,
        repo,
    )
    .fetch_all(conn)
    .await?)
}

/// Stores the pack at `pack` (with its index `idx`) for `repo`, published at
/// `generation`, inside the caller's transaction; returns its id. A pack the
/// database already has (the same bytes pushed twice, or a gc that came out identical)
/// is live again and not stored twice.
pub fn upload(
    rt: &Handle,
    tx: &mut PgConnection,
    repo: &str,
    pack: &Path,
    idx: &Path,
    generation: i64,
) -> Result<i64> {
    let checksum = checksum_of(pack).ok_or_else(|| StorageError::NotAPack(pack.to_path_buf()))?;
    let pack_bytes = std::fs::metadata(pack)?.len() as i64;
    let index_bytes = std::fs::metadata(idx)?.len() as i64;
    if pack_bytes + index_bytes <= SMALL as i64 {
        // The usual push: row and bytes in one round trip.
        let data = [std::fs::read(pack)?, std::fs::read(idx)?];
        let id: i64 = rt.block_on(
            sqlx::query_scalar!(
                r#"WITH p AS (
                     INSERT INTO git_packs (repo, checksum, pack_bytes, index_bytes, generation)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (repo, checksum) DO UPDATE SET retired_at = NULL
                     RETURNING id, (xmax = 0) AS fresh),
                 c AS (
                     INSERT INTO git_pack_chunks (pack_id, file, seq, data)
                     SELECT p.id, f.file, 0, f.data FROM p,
                            unnest(ARRAY[0, 1]::int2[], $6::bytea[]) AS f(file, data)
                     WHERE p.fresh)
                 SELECT id AS "id!" FROM p"#,
                repo,
                checksum,
                pack_bytes,
                index_bytes,
                generation,
                &data[..],
            )
            .fetch_one(&mut *tx),
        )?;
        return Ok(id);
    }
    let inserted: Option<i64> = rt.block_on(
        sqlx::query_scalar!(
            "INSERT INTO git_packs (repo, checksum, pack_bytes, index_bytes, generation)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (repo, checksum) DO NOTHING RETURNING id",
            repo,
            checksum,
            pack_bytes,
            index_bytes,
            generation,
        )
        .fetch_optional(&mut *tx),
    )?;
    let Some(id) = inserted else {
        let id: i64 = rt.block_on(
            sqlx::query_scalar!(
                "UPDATE git_packs SET retired_at = NULL WHERE repo = $1 AND checksum = $2 RETURNING id",
                repo,
                checksum,
            )
            .fetch_one(&mut *tx),
        )?;
        return Ok(id);
    };
    for (file, path) in [(PackFile::Pack, pack), (PackFile::Index, idx)] {
        let mut reader = std::fs::File::open(path)?;
        let mut buf = vec![0u8; CHUNK];
        let mut seq: i32 = 0;
        loop {
            let n = read_full(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            rt.block_on(
                sqlx::query!(
                    "INSERT INTO git_pack_chunks (pack_id, file, seq, data) VALUES ($1, $2, $3, $4)",
                    id,
                    file.number(),
                    seq,
                    &buf[..n],
                )
                .execute(&mut *tx),
            )?;
            seq += 1;
            if n < CHUNK {
                break;
            }
        }
    }
    Ok(id)
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes the pack `row` into `pack_dir` from the database: each file into a
/// temporary name first, checked against the sizes (and the pack against its
/// checksum trailer), then renamed — the pack before its index, so a reader that sees
/// the index always finds the pack.
pub fn download(
    rt: &Handle,
    conn: &mut PgConnection,
    row: &PackRow,
    pack_dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(pack_dir)?;
    let (pack, idx) = local_files(pack_dir, &row.checksum);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let tmp_pack = pack_dir.join(format!("tmp-{tag}.pack"));
    let tmp_idx = pack_dir.join(format!("tmp-{tag}.idx"));
    let result = (|| {
        for (file, tmp, expected) in [
            (PackFile::Pack, &tmp_pack, row.pack_bytes),
            (PackFile::Index, &tmp_idx, row.index_bytes),
        ] {
            let mut out = std::io::BufWriter::new(std::fs::File::create(tmp)?);
            let mut written: i64 = 0;
            let mut seq: i32 = 0;
            while written < expected {
                let data: Option<Vec<u8>> = rt.block_on(
                    sqlx::query_scalar!(
                        "SELECT data FROM git_pack_chunks WHERE pack_id = $1 AND file = $2 AND seq = $3",
                        row.id,
                        file.number(),
                        seq,
                    )
                    .fetch_optional(&mut *conn),
                )?;
                let Some(data) = data else { break };
                if data.is_empty() {
                    break;
                }
                out.write_all(&data)?;
                written += data.len() as i64;
                seq += 1;
            }
            out.flush()?;
            out.get_ref().sync_all()?;
            if written != expected {
                return Err(StorageError::Truncated {
                    checksum: row.checksum.clone(),
                    written,
                    expected,
                    file,
                });
            }
        }
        check_trailer(&tmp_pack, &row.checksum)?;
        std::fs::rename(&tmp_pack, &pack)?;
        std::fs::rename(&tmp_idx, &idx)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_pack);
        let _ = std::fs::remove_file(&tmp_idx);
    }
    result
}

/// A pack file ends with the SHA-1 of everything before it: its name.
fn check_trailer(pack: &Path, checksum: &str) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(pack)?;
    f.seek(SeekFrom::End(-20))?;
    let mut trailer = [0u8; 20];
    f.read_exact(&mut trailer)?;
    let hex: String = trailer.iter().map(|b| format!("{b:02x}")).collect();
    if hex != checksum {
        return Err(StorageError::Checksum {
            checksum: checksum.to_string(),
            found: hex,
        });
    }
    Ok(())
}

/// Is the pack present in `pack_dir` (both files, the pack of the expected size)?
pub fn present(pack_dir: &Path, row: &PackRow) -> bool {
    let (pack, idx) = local_files(pack_dir, &row.checksum);
    idx.is_file() && std::fs::metadata(&pack).is_ok_and(|m| m.len() as i64 == row.pack_bytes)
}
