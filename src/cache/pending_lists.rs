//! The GIN indexes' pending lists, moved into their indexes after the commit.
//!
//! PostgreSQL adds a row's entries to a GIN index (the full-text `skills_search_idx`,
//! the tags' `skills_tags_idx`) through a *pending list*: a cheap append, found by
//! every search like the rest of the index. When the list passes the index's
//! `gin_pending_list_limit`, the statement that made it pass moves the whole list into
//! the index, inside its transaction. With PostgreSQL's 4 MB default that happened
//! in most pushes of 1,000 skills (~100 ms of their transaction), and now and then in
//! a push of one, which then paid for the pushes before it.
//!
//! Migration 0020 sets a limit no single push reaches (64 MB), and [`clean`] moves the
//! lists after each commit that wrote rows (`SyncOutcome::follow_up`), after a server
//! starts and at each periodic round: off the pushes' path. Autovacuum moves them
//! too. One cleaner works at a time, on any node (an advisory lock; a cleaner that
//! finds it taken asks again shortly, not holding a connection meanwhile, since the
//! one at work may have passed its entries; one such cleaner per process, which
//! covers the others), and a cleaner never waits in the lock queue of an index a bulk
//! load holds: it steps back and leaves the work to the next.

use sqlx::PgPool;

/// Whether a cleaner has said that it may not move the lists.
static NOT_OWNER_SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a cleaner of this process waits for the lock.
static WAITING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The one waiting cleaner's turn, given back when dropped.
struct Waiting;

impl Waiting {
    fn take() -> Option<Waiting> {
        (!WAITING.swap(true, std::sync::atomic::Ordering::AcqRel)).then_some(Waiting)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// How often, and how long apart, a cleaner asks for the lock another one holds.
const TRIES: u32 = 50;
const RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Moves the pending lists of the GIN indexes of `skills` into their indexes, once
/// no other cleaner is at it (or gives up after [`TRIES`]), unless an index is locked.
/// Returns the pages moved.
pub async fn clean(pool: &PgPool) -> sqlx::Result<i64> {
    let mut tries = 0;
    let mut waiting = None;
    let mut tx = loop {
        let mut tx = pool.begin().await?;
        let ours = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock(hashtextextended('skillsd:gin-pending-lists', 0)) AS "ours!""#
        )
        .fetch_one(&mut *tx)
        .await?;
        if ours {
            break tx;
        }
        tx.rollback().await?;
        // One cleaner of this process waits for the one at work: it cleans after
        // that one ends, so after the commits of the cleaners that find it waiting
        // too, whose entries it moves with the rest.
        if waiting.is_none() {
            match Waiting::take() {
                Some(w) => waiting = Some(w),
                None => return Ok(0),
            }
        }
        tries += 1;
        if tries == TRIES {
            return Ok(0);
        }
        tokio::time::sleep(RETRY).await;
    };
    drop(waiting);
    sqlx::query("SET LOCAL lock_timeout = '1s'")
        .execute(&mut *tx)
        .await?;
    let moved = sqlx::query_scalar!(
        "SELECT sum(gin_clean_pending_list(i.indexrelid::regclass))::bigint
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_am am ON am.oid = c.relam
         WHERE i.indrelid = 'skills'::regclass AND am.amname = 'gin' AND i.indisvalid"
    )
    .fetch_one(&mut *tx)
    .await;
    match moved {
        Ok(moved) => {
            tx.commit().await?;
            Ok(moved.unwrap_or(0))
        }
        // lock_not_available: a bulk load holds an index; its own build leaves no list.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => Ok(0),
        // insufficient_privilege: the user skillsd connects as does not own the
        // indexes (only an owner may move a list). Autovacuum does it; said once.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {
            if !NOT_OWNER_SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    error = %e,
                    "the GIN pending lists are left to autovacuum: skillsd's database user does not own the indexes of `skills`"
                );
            }
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// [`clean`], what it did or why it failed logged.
pub async fn clean_logged(pool: &PgPool) {
    let started = std::time::Instant::now();
    match clean(pool).await {
        Ok(0) => {}
        Ok(pages) => tracing::debug!(
            pages,
            ms = started.elapsed().as_millis() as u64,
            "GIN pending lists moved into their indexes"
        ),
        // Autovacuum and the next cleaner do the same work: nothing is lost.
        Err(e) => tracing::warn!(error = %e, "moving the GIN pending lists failed"),
    }
}
