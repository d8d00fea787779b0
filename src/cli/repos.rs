//! Repositories and refs: `init`, `ref list|delete`, `fsck`, `gc`, `export`.

use super::Common;
use super::db::{fresh_copy, open_pool, pool, refuse_without_data, store};
use anyhow::{Result, bail};
use clap::Subcommand;
use skillsd::config::Settings;
use skillsd::repos::{DEFAULT_REPO, RepoStore};
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum RefCmd {
    /// Every ref with its target; refs that cannot be served (a missing object, a tag
    /// that cannot be peeled) are marked and make the exit status 1.
    List {
        #[arg(default_value = DEFAULT_REPO)]
        repo: String,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a ref whatever it points to (e.g. `refs/tags/broken`); pushes cannot
    /// delete tags or the default branch, an admin on the server can.
    Delete {
        /// The full ref name, e.g. `refs/tags/v1`.
        name: String,
        #[arg(long, default_value = DEFAULT_REPO)]
        repo: String,
        #[command(flatten)]
        common: Common,
    },
}

/// `skillsd ref ...`.
pub(crate) async fn run_ref(s: &Settings, command: RefCmd) -> Result<i32> {
    match command {
        RefCmd::List { repo, .. } => ref_list(s, repo).await,
        RefCmd::Delete { name, repo, .. } => ref_delete(s, name, repo).await,
    }
}

/// `skillsd init [REPO]`: a repository from the template, imported into the database.
pub(crate) async fn init(settings: &Settings, repo: String, empty: bool) -> Result<i32> {
    // `init` may set up a new data dir, but only one it was told of: in a folder
    // without one, `skillsd init` alone is refused like every admin command.
    let named = settings.data_dir != Settings::default().data_dir;
    let new_dir = named && refuse_without_data(settings).is_err();
    let pool = if named {
        open_pool(settings).await?
    } else {
        pool(settings).await?
    };
    if new_dir {
        println!(
            "new data dir {} (with a private PostgreSQL cluster): start the server on it \
             with `skillsd serve --data-dir {}`",
            settings.data_dir.display(),
            settings.data_dir.display()
        );
    }
    let store = store(settings);
    let requested = RepoStore::canonical_name(&repo)?;
    if skillsd::storage::replica::db_generation(&pool, &requested)
        .await?
        .is_some()
    {
        bail!("repository `{requested}` already exists");
    }
    let name = store.create(&repo, empty)?;
    let (rt, p2, s2, n2) = (
        tokio::runtime::Handle::current(),
        pool.pool.clone(),
        store.clone(),
        name.clone(),
    );
    let imported =
        tokio::task::spawn_blocking(move || skillsd::storage::import::import(&rt, &p2, &s2, &n2))
            .await??;
    if imported.is_none() {
        bail!("repository `{name}` was created by another node meanwhile");
    }
    println!(
        "created repository {name} (in the database; this node's copy is {})",
        store.path_of(&name).display()
    );
    Ok(0)
}

/// `skillsd gc [REPO]`: the live packs consolidated into one, published.
pub(crate) async fn gc(settings: &Settings, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let (name, _) = fresh_copy(&pool, &store, &repo).await?;
    let (rt, p2, n2) = (
        tokio::runtime::Handle::current(),
        pool.pool.clone(),
        name.clone(),
    );
    let o = tokio::task::spawn_blocking(move || skillsd::storage::gc::gc(&rt, &p2, &store, &n2))
        .await??;
    if o.packs_before <= 1 {
        println!("{name}: {} pack, nothing to consolidate", o.packs_before);
    } else {
        println!(
            "{name}: {} packs consolidated into 1 pack of {} objects, published",
            o.packs_before, o.objects
        );
    }
    Ok(0)
}

/// `skillsd ref list [REPO]`: exit status 1 when a ref cannot be served.
pub(crate) async fn ref_list(settings: &Settings, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let (_, repo) = fresh_copy(&pool, &store, &repo).await?;
    let mut bad = 0;
    for r in skillsd::repos::ref_states(&repo)? {
        match &r.problem {
            None => println!("{} {}", r.target, r.name),
            Some(p) => {
                bad += 1;
                println!("{} {}  (cannot be served: {p})", r.target, r.name);
            }
        }
    }
    if let Some(why) = skillsd::repos::unservable(&repo) {
        println!("the repository cannot be served: {why}");
        bad += 1;
    }
    Ok(if bad == 0 { 0 } else { 1 })
}

/// `skillsd fsck [REPO]`: exit status 1 when anything is wrong.
pub(crate) async fn fsck(settings: &Settings, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let name = RepoStore::canonical_name(&repo)?;
    let refs = skillsd::storage::refs(&pool, &name).await?;
    let (name, copy) = fresh_copy(&pool, &store, &name).await?;
    let limits = settings.policy.limits;
    let found = tokio::task::spawn_blocking(move || {
        skillsd::receive::connectivity::fsck(&copy, &refs, &limits)
    })
    .await?;
    if found.is_empty() {
        println!("{name}: every ref and every object it reaches is valid");
        return Ok(0);
    }
    for f in &found {
        println!("{}: {}", f.ref_name, f.problem);
    }
    let mut names: Vec<&str> = found.iter().map(|f| f.ref_name.as_str()).collect();
    names.dedup();
    println!(
        "{name}: {} ref{} with problems; remove each with `skillsd ref delete --repo {name} REF` \
         (the default branch: push a repaired history with SKILLSD_ADMINS_MAY_REWRITE_MAIN=1)",
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    );
    Ok(1)
}

/// `skillsd ref delete NAME`.
pub(crate) async fn ref_delete(settings: &Settings, name: String, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let repo_name = RepoStore::canonical_name(&repo)?;
    let mut tx = pool.begin().await?;
    let Some(generation) =
        skillsd::storage::publish::delete_ref(&mut tx, &repo_name, &name).await?
    else {
        bail!("no ref `{name}` in {repo_name}");
    };
    // The repository's mirrors delete it too, in the same transaction.
    skillsd::deliver::mirrors::wanted(&mut tx, &repo_name, generation).await?;
    tx.commit().await?;
    fresh_copy(&pool, &store, &repo_name).await?;
    println!("{repo_name}: deleted {name}");
    Ok(0)
}

/// `skillsd export REPO DIR`.
pub(crate) async fn export(settings: &Settings, repo: String, dir: PathBuf) -> Result<i32> {
    let pool = pool(settings).await?;
    let name = RepoStore::canonical_name(&repo)?;
    let (rt, p2, n2, d2) = (
        tokio::runtime::Handle::current(),
        pool.pool.clone(),
        name.clone(),
        dir.clone(),
    );
    let done =
        tokio::task::spawn_blocking(move || skillsd::storage::export::export(&rt, &p2, &n2, &d2))
            .await??;
    println!(
        "exported {name} (generation {}, {} packs) to {}: a plain bare repository",
        done.generation,
        done.fetched,
        dir.display()
    );
    Ok(0)
}
