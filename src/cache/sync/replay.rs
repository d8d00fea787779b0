//! A sync's replay: from the watermark to the tip, commit by commit along the first
//! parents, each commit's operations prepared outside the transaction.

use super::write::{apply, notify, write};
use super::{SEARCH_INLINE_ROWS, SyncOutcome, Target, set_watermark, watermark};
use crate::cache::changes::{self, Op};
use crate::cache::savepoint::Savepoint;
use crate::cache::{Result, bulk};
use gix::ObjectId;
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use tokio::runtime::Handle;
use uuid::Uuid;

/// A sync of one branch to `tip`, inside a transaction that holds the repository's
/// cache lock ([`lock`]): a push's, or [`sync_branch`]'s.
pub struct Replay<'a> {
    /// Where the commits are read (for a push: the view that sees its quarantine).
    pub repo: &'a gix::Repository,
    pub repo_name: &'a str,
    pub branch: &'a str,
    pub tip: ObjectId,
    pub synced_by: &'a str,
    pub push_id: Option<Uuid>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The skill files the push's checks validated already (its default branch's).
    pub parsed: Option<&'a changes::Parsed>,
    /// A first sync creating at least this many skills, into a `skills` table that
    /// holds at most a [`BULK_SHARE`]th as many rows, loads them rows first, indexes
    /// after ([`bulk`]), as a reconcile into an empty table does: an import push into
    /// a new server (whose table holds the template's few skills). `None`: never.
    pub bulk_from: Option<usize>,
}

/// The part of a replay that needs no database: the steps from a watermark to the tip,
/// each commit's operations (its files read, validated and vectorized, its renames
/// found) and its author and message. A push prepares it before it takes its
/// transaction, so the repository's lock is held for the writes only.
pub struct Prepared {
    /// The watermark it starts from.
    from: Option<String>,
    /// Each commit (hex) with its operations, oldest first.
    steps: Vec<(String, Vec<Op>)>,
    made: Vec<crate::cache::commits::CommitRow>,
    /// The skills whose files the steps change, with their content at the tip: their
    /// next versions ([`crate::cache::versions`]).
    versions: Vec<crate::cache::versions::Content>,
}

impl Replay<'_> {
    /// Reads the steps from `watermark` to the tip and their operations (git only).
    pub fn prepare(&self, watermark: Option<&str>) -> Result<Prepared> {
        let (repo, tip) = (self.repo, self.tip);
        let from = watermark
            .and_then(|h| ObjectId::from_hex(h.as_bytes()).ok())
            .filter(|oid| repo.has_object(oid));
        // Replay commit by commit along the first-parent chain from the watermark, so
        // each change is logged once, with the commit that made it. Without a
        // watermark, or when the chain does not lead back to it, one diff to the tip.
        let steps: Vec<(Option<ObjectId>, ObjectId)> =
            match from.and_then(|f| first_parent_chain(repo, f, tip, MAX_REPLAY)) {
                Some(chain) => chain.into_iter().map(|(p, c)| (Some(p), c)).collect(),
                None => vec![(from, tip)],
            };
        let diffing = std::time::Instant::now();
        let last = steps.len().saturating_sub(1);
        let mut prepared = Prepared {
            from: watermark.map(str::to_string),
            steps: Vec::with_capacity(steps.len()),
            made: Vec::new(),
            versions: Vec::new(),
        };
        // The digests of the files the steps read (not those the checks parsed for them).
        let mut read = crate::cache::versions::Digests::new();
        for (i, (base, commit)) in steps.into_iter().enumerate() {
            let mut ops = changes::between(repo, base, commit, self.parsed)?;
            if i < last {
                // Only the tip was validated; a file broken in an intermediate commit
                // and fixed later is not a failure of the cache.
                ops.retain(|op| !matches!(op, Op::Invalid { .. }));
            }
            if !ops.is_empty() {
                prepared
                    .made
                    .push(crate::cache::commits::read(repo, commit)?);
            }
            crate::cache::versions::remember(&mut read, &ops);
            prepared.steps.push((commit.to_string(), ops));
        }
        // A lone skill file read already, by the checks or the steps: its digest is
        // theirs, the file is not read again.
        let known = match self.parsed {
            Some(parsed) if read.is_empty() => &parsed.digests,
            Some(parsed) => {
                read.extend(parsed.digests.iter().map(|(blob, d)| (*blob, d.clone())));
                &read
            }
            None => &read,
        };
        prepared.versions = crate::cache::versions::between(repo, from, tip, known)?;
        tracing::debug!(
            diff_ms = diffing.elapsed().as_millis() as u64,
            steps = prepared.steps.len(),
            "sync prepared"
        );
        Ok(prepared)
    }

    /// Replays the branch from the watermark to the tip and moves the watermark; the
    /// caller commits (and starts [`super::SyncOutcome::follow_up`] when the
    /// outcome says the vectors were deferred).
    pub fn run(&self, rt: &Handle, tx: &mut PgConnection) -> Result<SyncOutcome> {
        self.run_prepared(rt, tx, None)
    }

    /// [`Replay::run`] with the operations prepared before the transaction: used when
    /// they start from the watermark the transaction finds, else read again here.
    pub fn run_prepared(
        &self,
        rt: &Handle,
        tx: &mut PgConnection,
        prepared: Option<Prepared>,
    ) -> Result<SyncOutcome> {
        let watermark = rt.block_on(watermark(tx, self.repo_name, self.branch))?;
        let tip_hex = self.tip.to_string();
        if watermark.as_deref() == Some(tip_hex.as_str()) {
            return Ok(SyncOutcome {
                commit: Some(tip_hex),
                ..Default::default()
            });
        }
        let prepared = match prepared {
            Some(p) if p.from == watermark => p,
            _ => self.prepare(watermark.as_deref())?,
        };
        let mut versions = prepared.versions;
        let mut steps = prepared.steps;
        let alone = versioned_with_rows(&mut steps, &versions);
        let target = Target {
            repo: self.repo_name,
            branch: self.branch,
            commit: &tip_hex,
            synced_by: self.synced_by,
            push_id: self.push_id,
            started_at: self.started_at,
            update_operation: "update",
            bulk_now: None,
            first_versions: Some(&alone),
        };
        let mut outcome = SyncOutcome::default();
        let writing = std::time::Instant::now();
        if let Some(from) = self.bulk_from
            && watermark.is_none()
            && let [(_, ops)] = steps.as_mut_slice()
            && let created = creations(ops)
            && created >= from
        {
            let at_most = created / BULK_SHARE;
            match self.bulk_load(rt, tx, &target, std::mem::take(ops), at_most)? {
                Bulk::Loaded(step) => {
                    outcome = step;
                    steps.clear();
                }
                Bulk::NotPossible(back) => *ops = back,
                // Rolled back to before it: the operations again, row by row.
                Bulk::Failed => steps = self.prepare(None)?.steps,
            }
        }
        let last = steps.len().saturating_sub(1);
        for (i, (commit_hex, ops)) in steps.into_iter().enumerate() {
            // Only the last step's rows are the tip's files.
            let target = Target {
                first_versions: target.first_versions.filter(|_| i == last),
                ..target.at(&commit_hex)
            };
            let step = rt.block_on(apply(tx, &target, ops))?;
            outcome.add(&step);
        }
        rt.block_on(crate::cache::commits::insert(
            tx,
            self.repo_name,
            &prepared.made,
        ))?;
        if !outcome.versioned.is_empty() {
            let done: HashSet<&str> = outcome.versioned.iter().map(String::as_str).collect();
            versions.retain(|c| !done.contains(c.path.as_str()));
        }
        rt.block_on(crate::cache::versions::write(
            tx,
            &target.publish(),
            &versions,
        ))?;
        rt.block_on(set_watermark(tx, &target))?;
        tracing::debug!(
            write_ms = writing.elapsed().as_millis() as u64,
            "sync written"
        );
        outcome.commit = Some(tip_hex);
        Ok(outcome)
    }
}

/// The lone skill files at the tip (their version's digest is that of the file): rows
/// the last step creates for them by `COPY` get their version 1 with them, instead of
/// from the lookup of every path in `versions::write` after the rows. Gives those new
/// rows the digest their version records (the checks made it; a row made from the
/// checks' parse does not carry it).
fn versioned_with_rows(
    steps: &mut [(String, Vec<Op>)],
    versions: &[crate::cache::versions::Content],
) -> HashSet<String> {
    let lone: HashMap<&str, &crate::cache::versions::Content> = versions
        .iter()
        .filter(|c| c.kind == crate::artifact::Kind::SkillMd.as_str())
        .map(|c| (c.path.as_str(), c))
        .collect();
    if let Some((_, ops)) = steps.last_mut() {
        for op in ops.iter_mut() {
            if let Op::Create(row) = op
                && let Some(c) = lone.get(row.skill.path.as_str())
                && c.blob == row.blob
            {
                row.digest.get_or_insert_with(|| c.digest.clone());
            }
        }
    }
    lone.into_keys().map(str::to_string).collect()
}

/// A first sync bulk loads its rows when the table holds at most this share of what
/// it creates: the indexes it builds again then cover mostly its own rows, and readers
/// of the table wait for the push (the lock the drop takes) only while a collection
/// many times the cache's size comes in.
const BULK_SHARE: usize = 10;

/// How a [`Replay::bulk_load`] went.
enum Bulk {
    /// The rows are in, the indexes built again.
    Loaded(SyncOutcome),
    /// The table was not empty or not lockable: nothing changed, the operations back.
    NotPossible(Vec<Op>),
    /// It failed (a row an index refuses, ...) and was rolled back: the operations are
    /// gone, to be prepared again.
    Failed,
}

impl Replay<'_> {
    /// The first sync's operations by bulk load into a table of at most `at_most` rows,
    /// under a savepoint:
    /// a failure rolls it back (the dropped indexes with it) for the caller to write
    /// the rows one statement at a time, which fails only the rows the database
    /// refuses.
    fn bulk_load(
        &self,
        rt: &Handle,
        tx: &mut PgConnection,
        target: &Target<'_>,
        ops: Vec<Op>,
        at_most: usize,
    ) -> Result<Bulk> {
        rt.block_on(Savepoint::BulkPush.set(tx))?;
        let Some(dropped) = rt.block_on(bulk::begin(&mut *tx, at_most))? else {
            rt.block_on(Savepoint::BulkPush.release(tx))?;
            return Ok(Bulk::NotPossible(ops));
        };
        let target = Target {
            bulk_now: Some(dropped.now),
            ..*target
        };
        let loaded = rt.block_on(async {
            let mut slugs = std::collections::BTreeSet::new();
            let mut outcome = write(&mut *tx, &target, ops, &mut slugs).await?;
            let lacking = outcome.vectors_lacking;
            outcome.search_deferred |=
                bulk::fill_vectors(&mut *tx, lacking, SEARCH_INLINE_ROWS).await?;
            outcome.indexes_deferred = bulk::finish(&mut *tx, dropped).await?;
            outcome.bulk_loaded = true;
            notify(&mut *tx, &target, &outcome, slugs).await?;
            Ok::<_, crate::cache::CacheError>(outcome)
        });
        match loaded {
            Ok(outcome) => {
                rt.block_on(Savepoint::BulkPush.release(tx))?;
                Ok(Bulk::Loaded(outcome))
            }
            Err(e) => {
                tracing::info!(repo = %self.repo_name, error = %e, "bulk load failed; writing row by row");
                rt.block_on(Savepoint::BulkPush.undo(tx))?;
                Ok(Bulk::Failed)
            }
        }
    }
}

/// How many of `ops` create a skill.
fn creations(ops: &[Op]) -> usize {
    ops.iter().filter(|op| matches!(op, Op::Create(_))).count()
}

/// Longest first-parent chain a sync replays commit by commit (each a diff inside
/// the push's transaction, with the repository's row locked): a push of more
/// commits is synced with one diff to its tip, its changes logged at the tip, so a
/// push of thousands of commits holds the repository for seconds, not minutes.
pub const MAX_REPLAY: usize = 500;

/// (parent, commit) pairs from `from` to `tip` along first parents, oldest first;
/// `None` when `from` is not on that chain within `cap` commits.
fn first_parent_chain(
    repo: &gix::Repository,
    from: ObjectId,
    tip: ObjectId,
    cap: usize,
) -> Option<Vec<(ObjectId, ObjectId)>> {
    let mut chain = Vec::new();
    let mut current = tip;
    while current != from {
        if chain.len() >= cap {
            return None;
        }
        let commit = repo.find_commit(current).ok()?;
        let parent = commit.parent_ids().next()?.detach();
        chain.push((parent, current));
        current = parent;
    }
    chain.reverse();
    Some(chain)
}
