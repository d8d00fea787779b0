//! The upgrade path: a repository of a single-node data dir (today's layout, or one
//! `skillsd init` just made) taken into the database — its refs, `HEAD` and every pack —
//! in one transaction, when the database has no repository of that name. Idempotent:
//! a repository the database has is left alone (the copy is then refreshed from it).

use super::{Result, StorageError, packs};
use crate::repos::RepoStore;
use sqlx::PgPool;
use tokio::runtime::Handle;

/// What an import stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub refs: usize,
    pub packs: usize,
    pub bytes: u64,
    /// Refs left out because their objects are missing.
    pub skipped: Vec<String>,
}

/// Imports the local repository `name` unless the database has it (`None` then).
/// Blocking.
pub fn import(
    rt: &Handle,
    pool: &PgPool,
    repos: &RepoStore,
    name: &str,
) -> Result<Option<Imported>> {
    let path = repos.path_of(name);
    if has_loose_objects(&path) {
        // Every object is stored in a pack: pack the loose ones first.
        crate::maintenance::gc(&path, repos.settings.pack_limits).map_err(StorageError::git)?;
    }
    let repo = crate::repos::open_server_repo(&path).map_err(StorageError::git)?;
    let mut imported = Imported::default();
    let mut refs = Vec::new();
    for state in crate::repos::ref_states(&repo).map_err(StorageError::git)? {
        if state.name == "HEAD" || !state.name.starts_with("refs/") {
            continue;
        }
        if state.problem.is_some() {
            imported.skipped.push(state.name);
            continue;
        }
        let Ok(id) = gix::ObjectId::from_hex(state.target.as_bytes()) else {
            continue; // a symbolic ref other than HEAD: not served
        };
        let peeled = super::peeled(&repo, id).map(|p| p.to_string());
        refs.push((state.name, id.to_string(), peeled));
    }
    let head = std::fs::read_to_string(path.join("HEAD"))?
        .trim()
        .strip_prefix("ref: ")
        .unwrap_or("refs/heads/main")
        .to_string();
    let pack_dir = path.join("objects").join("pack");
    let mut pack_files = Vec::new();
    for entry in std::fs::read_dir(&pack_dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "pack")
            && p.with_extension("idx").is_file()
            && packs::checksum_of(&p).is_some()
        {
            pack_files.push(p);
        }
    }
    pack_files.sort();

    let mut conn = rt.block_on(pool.acquire())?;
    let mut tx = rt.block_on(sqlx::Connection::begin(&mut *conn))?;
    let created: Option<i64> = rt.block_on(
        sqlx::query_scalar!(
            "INSERT INTO git_repos (name, head, generation) VALUES ($1, $2, 1)
             ON CONFLICT (name) DO NOTHING RETURNING generation",
            name,
            head,
        )
        .fetch_optional(&mut *tx),
    )?;
    let Some(generation) = created else {
        rt.block_on(tx.rollback())?;
        return Ok(None);
    };
    for (ref_name, target, peeled) in &refs {
        rt.block_on(
            sqlx::query!(
                "INSERT INTO git_refs (repo, name, target, peeled) VALUES ($1, $2, $3, $4)",
                name,
                ref_name,
                target,
                peeled.as_deref(),
            )
            .execute(&mut *tx),
        )?;
    }
    for pack in &pack_files {
        packs::upload(
            rt,
            &mut tx,
            name,
            pack,
            &pack.with_extension("idx"),
            generation,
        )?;
        imported.bytes += std::fs::metadata(pack)?.len();
    }
    rt.block_on(tx.commit())?;
    imported.refs = refs.len();
    imported.packs = pack_files.len();
    std::fs::write(
        path.join(super::replica::GENERATION_FILE),
        format!("{generation}\n"),
    )?;
    Ok(Some(imported))
}

fn has_loose_objects(repo_path: &std::path::Path) -> bool {
    std::fs::read_dir(repo_path.join("objects"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.len() == 2
                && n.bytes().all(|b| b.is_ascii_hexdigit())
                && std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some())
        })
}
