//! The push's one transaction: the repository's row locked, every ref moved by
//! compare-and-swap against the database, the pack published, the cache brought to
//! the default branch's new tip (with its sync log and watermark), the `pushes`
//! record, the generation bumped with a `NOTIFY` — committed together or not at all.
//! Only after the commit does this node move the pack into its copy and set its refs
//! from the database ([`crate::storage::replica`]).

use super::Context;
use super::commands::Command;
use super::outcome::{Reason, Refusal};
use super::refs::{ATOMIC_REFUSED, STALE};
use crate::cache::changes::Parsed;
use crate::cache::pushes::{self, PushRecord};
use crate::cache::sync::{self, Replay, SyncOutcome};
use crate::deliver::webhooks::{PushEvent, RefMove};
use crate::storage::{self, StorageError, publish};
use gix::ObjectId;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the transaction did.
#[derive(Debug, Default)]
pub struct Published {
    /// The cache's sync, when the default branch moved.
    pub cache: Option<SyncOutcome>,
    /// The repository's generation after the commit (`None`: nothing was committed).
    pub generation: Option<i64>,
    /// Its generation before.
    pub previous: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Cache(#[from] crate::cache::CacheError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Deliver(#[from] crate::deliver::DeliverError),
    /// Refused under the repository's lock (a change closed meanwhile, a ref moved):
    /// told to the pusher as it is.
    #[error("{0}")]
    Refused(#[from] Refused),
}

/// What the lock found changed since the checks ran, refusing the push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("change {0} was closed meanwhile")]
    Closed(i32),
    #[error("change {0} is gone")]
    Gone(i32),
    #[error("{0} moved meanwhile; push again")]
    Moved(String),
    #[error("change {number} got patch set {latest} meanwhile: review it, then merge")]
    NewPatchSet { number: i32, latest: i32 },
    #[error("change {number} cannot be merged: {}", missing.join("; "))]
    Unapproved { number: i32, missing: Vec<String> },
}

/// The pack files of the push in its quarantine: (`.pack`, `.idx`).
pub type PackFiles = Option<(PathBuf, PathBuf)>;

/// What a push brought, as its transaction needs it: its objects (seen through the
/// quarantine), its pack files, and its skills as the checks read them (the cache
/// takes those instead of validating each file again).
pub struct Brought<'a> {
    pub view: &'a gix::Repository,
    pub pack: &'a PackFiles,
    pub parsed: &'a Parsed,
}

/// Runs the transaction for the commands whose slot in `results` is `None`; a ref that
/// moved meanwhile gets `stale info` (with `atomic`, every ref is refused then).
/// `made.record` makes the push record from the final results, `made.said` what the
/// pusher will have read given the cache's outcome. On an error nothing is committed:
/// the caller refuses every ref with it.
pub fn run(
    ctx: &Context,
    brought: &Brought<'_>,
    commands: &[Command],
    results: &mut [super::outcome::Outcome],
    atomic: bool,
    made: &Made<'_>,
) -> Result<Published, PublishError> {
    if atomic && results.iter().any(Option::is_some) {
        refuse_the_rest(results);
        return Ok(Published::default());
    }
    let (rt, view, pack) = (&ctx.rt, brought.view, brought.pack);
    let default_ref = format!("refs/heads/{}", ctx.default_branch);
    let default_tip = |results: &[super::outcome::Outcome]| {
        accepted(commands, results)
            .find(|c| c.name == default_ref && !c.is_delete())
            .map(|c| c.new)
    };
    let prepared = match default_tip(results) {
        Some(tip) => Some(prepare_cache(ctx, brought, tip)?),
        None => None,
    };
    let mut conn = rt.block_on(ctx.pool.acquire())?;
    let mut tx = rt.block_on(sqlx::Connection::begin(&mut *conn))?;
    let generation = rt.block_on(publish::lock(&mut tx, &ctx.repo_name))?;
    rt.block_on(sync::lock(&mut tx, &ctx.repo_name))?;
    // How long other writers of this repository wait on this push (logged at commit).
    let locked_at = std::time::Instant::now();

    let stale = rt.block_on(move_refs(&mut tx, ctx, view, commands, results))?;
    if atomic && stale {
        refuse_the_rest(results);
    }
    if results.iter().all(Option::is_some) {
        rt.block_on(tx.rollback())?;
        return Ok(Published::default());
    }
    // A merge: the change is checked again and marked merged under its lock.
    if let Some(merging) = &ctx.merging
        && let Some(tip) = accepted(commands, results).find(|c| !c.is_delete())
    {
        rt.block_on(super::proposal::mark_merged(
            &mut tx,
            merging,
            &ctx.user.name,
            tip.new,
        ))?;
    }
    if let (true, Some((pack, idx))) = (brings_objects(commands, results), pack) {
        storage::packs::upload(rt, &mut tx, &ctx.repo_name, pack, idx, generation + 1)?;
    }
    let record = (made.record)(results);
    rt.block_on(pushes::insert(&mut tx, &record))?;
    let cache = match default_tip(results) {
        Some(tip) => {
            let replay = Replay {
                push_id: Some(record.id),
                started_at: record.started_at,
                ..replay(ctx, brought, tip)
            };
            Some(replay.run_prepared(rt, &mut tx, prepared)?)
        }
        None => None,
    };
    // What the pusher reads, kept with the push in its transaction (the push page
    // shows it): one commit, not a second one after the report.
    if let Some(said) = (made.said)(cache.as_ref()) {
        rt.block_on(pushes::set_said(&mut tx, record.id, &said))?;
    }
    let previous = generation;
    let generation = rt.block_on(publish::bump(&mut tx, &ctx.repo_name))?;
    // Mirrors and webhooks learn of the push in its transaction: a rollback tells
    // nobody.
    let event = push_event(ctx, view, commands, results, record.id);
    rt.block_on(crate::deliver::enqueue(&mut tx, view, &event, generation))?;
    rt.block_on(tx.commit())?;
    tracing::debug!(
        repo = %ctx.repo_name,
        generation,
        lock_ms = locked_at.elapsed().as_millis() as u64,
        "repository lock released"
    );
    sqlx::Connection::shrink_buffers(&mut *conn);
    if let Some(cache) = &cache {
        cache.follow_up(rt, &ctx.pool);
    }
    Ok(Published {
        cache,
        generation: Some(generation),
        previous,
    })
}

/// What the push's transaction writes besides refs, pack and cache: the push record
/// (from each ref's outcome) and what the pusher will have read (given the cache's
/// outcome: its summary is the last line).
pub struct Made<'m> {
    pub record: &'m dyn Fn(&[super::outcome::Outcome]) -> PushRecord,
    pub said: &'m dyn Fn(Option<&sync::SyncOutcome>) -> Option<String>,
}

/// Whether an accepted command brings objects (anything but deletions).
fn brings_objects(commands: &[Command], results: &[super::outcome::Outcome]) -> bool {
    accepted(commands, results).any(|c| !c.is_delete())
}

/// What mirrors and webhooks learn of this push: the refs it moved and the default
/// branch's tip before it.
fn push_event<'a>(
    ctx: &'a Context,
    view: &gix::Repository,
    commands: &'a [Command],
    results: &'a [super::outcome::Outcome],
    push_id: uuid::Uuid,
) -> PushEvent<'a> {
    let default_ref = format!("refs/heads/{}", ctx.default_branch);
    PushEvent {
        repo: &ctx.repo_name,
        push_id,
        pusher: &ctx.user.name,
        default_branch: &ctx.default_branch,
        default_tip: crate::repos::ref_target(view, &default_ref),
        refs: accepted(commands, results)
            .map(|c| RefMove {
                name: &c.name,
                old: (!c.is_create()).then_some(c.old),
                new: (!c.is_delete()).then_some(c.new),
            })
            .collect(),
    }
}

/// The commands not refused so far.
fn accepted<'c>(
    commands: &'c [Command],
    results: &'c [super::outcome::Outcome],
) -> impl Iterator<Item = &'c Command> {
    commands
        .iter()
        .zip(results.iter())
        .filter(|(_, r)| r.is_none())
        .map(|(c, _)| c)
}

/// Every ref not refused yet is refused as not stored (an atomic push).
fn refuse_the_rest(results: &mut [super::outcome::Outcome]) {
    for r in results.iter_mut().filter(|r| r.is_none()) {
        *r = Some(Refusal::new(Reason::NotStored, ATOMIC_REFUSED));
    }
}

/// The default branch's replay to `tip`, by this push's user.
fn replay<'a>(ctx: &'a Context, brought: &Brought<'a>, tip: ObjectId) -> Replay<'a> {
    Replay {
        repo: brought.view,
        repo_name: &ctx.repo_name,
        branch: &ctx.default_branch,
        tip,
        synced_by: &ctx.user.name,
        push_id: None,
        started_at: chrono::Utc::now(),
        parsed: Some(brought.parsed),
        bulk_from: ctx.repos.settings.bulk_load_from,
    }
}

/// The cache's work that needs no database — each commit's files read, validated,
/// their renames found — done before the transaction, from the watermark as it looks
/// now: the repository's lock is held for the writes only (the transaction reads it
/// again under the lock, and prepares again if it moved).
fn prepare_cache(
    ctx: &Context,
    brought: &Brought<'_>,
    tip: ObjectId,
) -> Result<sync::Prepared, PublishError> {
    let guess = ctx
        .rt
        .block_on(sync::current_watermark(
            &ctx.pool,
            &ctx.repo_name,
            &ctx.default_branch,
        ))
        .ok()
        .flatten();
    Ok(replay(ctx, brought, tip).prepare(guess.as_deref())?)
}

/// Moves every ref not refused yet by compare-and-swap against the database's refs;
/// a new name that conflicts with a ref there, or a ref that moved meanwhile, is
/// refused as stale. Returns whether any was.
async fn move_refs(
    tx: &mut sqlx::PgConnection,
    ctx: &Context,
    view: &gix::Repository,
    commands: &[Command],
    results: &mut [super::outcome::Outcome],
) -> Result<bool, PublishError> {
    let mut stale = false;
    // New names that cannot exist beside the refs the database has now.
    let created: Vec<&str> = accepted(commands, results)
        .filter(|c| c.is_create() && !c.is_delete())
        .map(|c| c.name.as_str())
        .collect();
    let conflicts = publish::conflicting_refs(&mut *tx, &ctx.repo_name, &created).await?;
    for (name, other) in conflicts {
        for (cmd, r) in commands.iter().zip(results.iter_mut()) {
            if r.is_none() && cmd.name == name {
                *r = Some(Refusal::new(Reason::Stale, ref_conflict(&name, &other)));
                stale = true;
            }
        }
    }
    for (cmd, r) in commands.iter().zip(results.iter_mut()) {
        if r.is_some() {
            continue;
        }
        let change = publish::RefChange {
            name: &cmd.name,
            old: (!cmd.is_create()).then(|| cmd.old.to_string()),
            new: (!cmd.is_delete()).then(|| {
                (
                    cmd.new.to_string(),
                    storage::peeled(view, cmd.new).map(|p| p.to_string()),
                )
            }),
        };
        if !publish::compare_and_swap(&mut *tx, &ctx.repo_name, &change).await? {
            *r = Some(Refusal::new(Reason::Stale, STALE));
            stale = true;
        }
    }
    Ok(stale)
}

/// Why `name` cannot be created beside `other`.
fn ref_conflict(name: &str, other: &str) -> String {
    if name.eq_ignore_ascii_case(other) || name.to_lowercase() == other.to_lowercase() {
        format!("ref conflict: `{other}` differs only in case; choose another name")
    } else {
        format!("ref conflict: `{other}` exists; a ref name cannot also be a folder of refs")
    }
}

/// This node's turn to store a push to one repository, held until dropped.
pub struct Turn(Arc<AtomicBool>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Waits for this node's turn to store a push to `repo` (one at a time per
/// repository; telling the pusher once that it waits), or `None` when the session
/// ended meanwhile.
pub fn take_turn(repo: &str, cancel: &AtomicBool, say: &mut dyn FnMut(&str)) -> Option<Turn> {
    type Turns = std::sync::Mutex<std::collections::HashMap<String, Arc<AtomicBool>>>;
    static TURNS: std::sync::LazyLock<Turns> = std::sync::LazyLock::new(Default::default);
    let busy = {
        let mut turns = TURNS.lock().unwrap_or_else(|e| e.into_inner());
        // Entries nobody holds or waits for go as others come.
        turns.retain(|_, b| Arc::strong_count(b) > 1);
        turns.entry(repo.to_string()).or_default().clone()
    };
    let mut told = false;
    loop {
        if busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Some(Turn(busy));
        }
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        if !told {
            told = true;
            say(&format!(
                "queued: another push to {repo} is being stored on this server; this one follows\n"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The `.pack` and `.idx` an indexed quarantine holds.
pub fn pack_files(pack_dir: &std::path::Path) -> PackFiles {
    let pack = std::fs::read_dir(pack_dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "pack") && p.with_extension("idx").is_file()
        })?;
    let idx = pack.with_extension("idx");
    Some((pack, idx))
}
