//! The database a command answers for (never a new one by accident), this node's
//! copy of a repository, and the commands that are only about the database: `psql`,
//! `migrate`.

use anyhow::{Context as _, Result, bail};
use skillsd::config::Settings;
use skillsd::repos::RepoStore;
use skillsd::server::{self, Database};

/// The database of `settings`, migrated; a private cluster this command started is
/// stopped again when the returned handle is dropped. Refuses, creating nothing, when
/// it would have to make a new data dir or a new private cluster: an admin command
/// run in the wrong folder must not answer for a database no server reads.
pub(crate) async fn pool(settings: &Settings) -> Result<Db> {
    refuse_without_data(settings)?;
    open_pool(settings).await
}

/// Whether the settings name a database: a URL, or a data dir that holds the private
/// cluster `skillsd serve` made. Otherwise the error that says how to name one.
pub(crate) fn refuse_without_data(settings: &Settings) -> Result<()> {
    if !matches!(Database::of(settings), Database::Local)
        || skillsd::localpg::LocalPg::exists(&settings.data_dir.join("postgres"))
    {
        return Ok(());
    }
    let dir = settings.data_dir.display();
    let what = if settings.data_dir.exists() {
        format!("{dir} holds no skillsd database (no private PostgreSQL under {dir}/postgres)")
    } else {
        format!("there is no data dir {dir}")
    };
    bail!(
        "{what}, and no --database-url is given; nothing was created.\n\
         Name the server's data with --data-dir DIR (or SKILLSD_DATA_DIR; the folder \
         `skillsd serve` printed on its `users:` line), or its database with \
         --database-url URL (or DATABASE_URL). `skillsd serve` creates a new data dir."
    )
}

/// [`pool`] without the refusal: for `init` told where (it creates a data dir, and
/// says so).
pub(crate) async fn open_pool(settings: &Settings) -> Result<Db> {
    let (url, cluster) = server::database_url(&Database::of(settings), &settings.data_dir).await?;
    let pool = skillsd::db::connect(&url)
        .await
        .context("cannot connect to the database")?;
    skillsd::cache::prepare(&pool).await?;
    Ok(Db {
        pool,
        _cluster: cluster,
    })
}

/// This node's repositories, kept as the settings say.
pub(crate) fn store(settings: &Settings) -> RepoStore {
    RepoStore::new(&settings.data_dir, settings.store())
}

/// A pool, and the private cluster behind it when this process started it (dropped
/// after the pool: fields drop in order).
pub(crate) struct Db {
    pub(crate) pool: sqlx::PgPool,
    _cluster: Option<skillsd::localpg::StartedCluster>,
}

impl std::ops::Deref for Db {
    type Target = sqlx::PgPool;
    fn deref(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

/// This node's copy of `requested`, brought to the database's state first.
pub(crate) async fn fresh_copy(
    pool: &sqlx::PgPool,
    store: &RepoStore,
    requested: &str,
) -> Result<(String, gix::Repository)> {
    let name = RepoStore::canonical_name(requested)?;
    skillsd::storage::replica::refresh_async(pool, store, &name).await?;
    Ok(store.open(&name)?)
}

/// `skillsd psql [-- ARGS]`.
pub(crate) async fn psql(settings: &Settings, args: Vec<String>) -> Result<i32> {
    refuse_without_data(settings)?;
    let (url, cluster) = server::database_url(&Database::of(settings), &settings.data_dir).await?;
    let psql = skillsd::localpg::psql();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&psql)
            .arg(&url)
            .args(&args)
            .status()
            .with_context(|| format!("cannot run {}", psql.display()))
    })
    .await??;
    drop(cluster);
    Ok(status.code().unwrap_or(1) as i32)
}

/// `skillsd migrate`.
pub(crate) async fn migrate(settings: &Settings) -> Result<i32> {
    pool(settings).await?;
    println!("migrations applied");
    Ok(0)
}
