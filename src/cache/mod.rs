//! The PostgreSQL cache of the skills on each repository's default branch.
//!
//! * [`changes`] turns two commits into skill operations (create, update, rename,
//!   delete), reading and parsing each changed file once.
//! * [`sync`] applies those operations in one transaction, serialised per repository
//!   by an advisory lock and anchored on the `sync_state` watermark, so a late or
//!   repeated sync is a no-op and the cache never moves backwards.
//! * [`pushes`] records every push attempt, accepted or refused.
//! * [`health`] sums the cache up by sync state.
//! * [`bulk`] rebuilds an empty cache rows first, indexes after.
//! * [`search`] fills the full-text vectors a big sync leaves for after its commit.
//! * [`index_builds`] builds the indexes a bulk load leaves for after its commit.
//! * [`pending_lists`] moves the GIN indexes' pending lists after each commit.
//! * [`periodic`] reconciles every repository now and then.
//! * [`versions`] records each published skill's versions with their digests.
//! * [`announce`] is the `NOTIFY skills_changed` a sync sends, and the live event.

pub mod announce;
pub mod binary_copy;
pub mod bulk;
pub mod changes;
pub mod commits;
pub mod health;
pub mod index_builds;
pub mod pending_lists;
pub mod periodic;
pub mod pushes;
pub mod query;
pub mod savepoint;
pub mod search;
pub mod sync;
#[cfg(test)]
pub(crate) mod test_repo;
pub mod vector;
pub mod versions;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("git error: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("this node's copy of the repository is behind the database; refresh it and try again")]
    Behind,
}

impl CacheError {
    /// A gix (or other git-side) error, kept with its chain of causes.
    pub fn git(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        CacheError::Git(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, CacheError>;

/// What a commit may leave for after it, in this order, each logged: the full-text
/// vectors not filled (with `search`), the indexes a bulk load did not build (with
/// `indexes`: a GIN index built over the filled vectors once, rather than updated for
/// each), then the GIN indexes' pending lists the rows went into.
pub(crate) async fn after_commit(pool: &sqlx::PgPool, search: bool, indexes: bool) {
    let _working = crate::alloc::working();
    if search {
        search::fill_logged(pool).await;
    }
    if indexes {
        index_builds::build_logged(pool).await;
    }
    pending_lists::clean_logged(pool).await;
}

/// [`after_commit`] with everything looked for, on `rt` (a server's): what any
/// commit left, a crashed process's included. At a server's start and each periodic
/// round.
pub fn catch_up_in_background(rt: &tokio::runtime::Handle, pool: &sqlx::PgPool) {
    let pool = pool.clone();
    rt.spawn(async move { after_commit(&pool, true, true).await });
}

/// Everything a process does with a database before using it: the migrations
/// ([`crate::db::migrate`]), then the check that skillsd's full-text vectors equal
/// this database's ([`vector::verify`]; if not, PostgreSQL computes them all).
pub async fn prepare(pool: &sqlx::PgPool) -> std::result::Result<(), crate::db::DbError> {
    crate::db::migrate(pool).await?;
    vector::verify(pool).await?;
    Ok(())
}
