//! `git-receive-pack`: a push, from the ref advertisement to the report.
//!
//! The stages, in order:
//! 1. advertise refs and capabilities ([`advertise`]);
//! 2. read the commands and push options ([`commands`]);
//! 3. index the pack into a [`quarantine`] (thin packs completed from the repository);
//! 4. [`pre_receive`]: policy, connectivity, validation of every changed skill;
//! 5. on any problem: report every problem, drop the quarantine, record the refused push;
//! 6. else one database transaction ([`publish`]): refs moved by compare-and-swap, the
//!    pack published, the cache synced to the default branch's new tip
//!    ([`crate::cache::sync`]), the push recorded — all or nothing; then this node's
//!    copy takes the pack and the database's refs;
//! 7. report the status of each ref.

mod arrival;
pub mod commands;
pub mod connectivity;
pub mod in_process;
pub mod outcome;
pub mod pre_receive;
pub mod proposal;
pub mod publish;
pub mod refs;
pub mod signatures;

use crate::cache::pushes::{PushRecord, RefResult};
use crate::db::users::User;
use crate::incoming::quarantine::{self, Quarantine};
use crate::protocol::pktline::{PktReader, SideBand, SideBandMode, write_flush, write_text};
use crate::protocol::refs::RefList;
use crate::protocol::{AGENT, ProtocolError, Result};
use commands::Command;
use gix::ObjectId;
use outcome::{Outcome, Reason, Refusal};
use publish::Published;
use sqlx::PgPool;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::AtomicBool;

/// Everything a push needs besides the streams.
pub struct Context {
    pub repo: gix::Repository,
    pub repo_name: String,
    pub default_branch: String,
    /// Ref rules and limits.
    pub policy: pre_receive::Policy,
    pub user: User,
    pub pool: PgPool,
    pub rt: tokio::runtime::Handle,
    /// This node's copies (refreshed from the database after the push commits).
    pub repos: crate::repos::RepoStore,
    /// Set when the session ends (the client left, or its time ran out): indexing,
    /// the walks and validation stop, and nothing is written.
    pub cancel: std::sync::Arc<AtomicBool>,
    /// Where browsers reach the status pages (a change's address), if served.
    pub web_url: Option<String>,
    /// This push merges a change ([`crate::review::merge`]): its transaction also
    /// marks the change merged, after checking it may be.
    pub merging: Option<crate::changes::Merging>,
}

const CAPS: &str = "report-status report-status-v2 delete-refs side-band-64k quiet atomic ofs-delta push-options object-format=sha1";

/// Serves one receive-pack session, stage by stage: the advertisement and the
/// client's commands, the pack into a quarantine ([`receive_pack`]), the checks
/// ([`check_push`]), the dry run, then the one transaction and the report
/// ([`store_and_answer`]). Returns each ref's outcome (none when the client sent no
/// commands), as the report told the client.
pub fn serve<R: Read>(
    ctx: &Context,
    input: R,
    out: &mut dyn Write,
) -> Result<Vec<(String, Outcome)>> {
    let _span = tracing::info_span!("push", repo = %ctx.repo_name, user = %ctx.user.name).entered();
    let started = (std::time::Instant::now(), chrono::Utc::now());
    let refs = RefList::read(&ctx.repo)?;
    advertise(&refs, out)?;
    out.flush()?;

    let mut input = PktReader::<R>::new(input);
    let Some(req) = read_request(&mut input, out)? else {
        return Ok(Vec::new());
    };
    let mut sb = SideBand::new(out, side_band_mode(&req), req.has("quiet"));
    // Kept with the push record: the push page shows what the pusher read.
    sb.keep_transcript();
    let current: HashMap<String, ObjectId> =
        refs.refs.iter().map(|r| (r.name.clone(), r.oid)).collect();

    let mut received = receive_pack(ctx, &req.commands, input.into_inner())?;
    let early = received.early.take();
    let mut checked = check_push(ctx, &req, &current, &received, early, &mut sb)?;
    say_problems(&checked.problems, &mut sb)?;
    if req.push_options.iter().any(|o| o == "dry-run") {
        dry_run(&mut checked.results, &mut sb)?;
    }
    let results = store_and_answer(ctx, &req, received, checked, &mut sb, started)?;
    Ok(by_name(&req.commands, results))
}

/// The second half of a push, once it is checked: the refs that passed stored with
/// the cache in one transaction ([`store`]; the quarantine dropped when none did),
/// then the pusher's summary and report, the push record, the metrics and the log
/// line.
fn store_and_answer(
    ctx: &Context,
    req: &commands::Request,
    received: Received,
    checked: Checked,
    sb: &mut SideBand<'_>,
    (clock, started_at): (std::time::Instant, chrono::DateTime<chrono::Utc>),
) -> Result<Vec<Outcome>> {
    let Checked {
        mut results,
        problems,
        proposal,
        parsed,
        view,
        check_ms,
        early_checked,
    } = checked;
    let commands = &req.commands;
    let storing = std::time::Instant::now();
    before_storing(ctx, commands, &mut results, req.has("atomic"));
    let push_id = uuid::Uuid::new_v4();
    let make_record =
        |results: &[Outcome]| record_of(ctx, req, (push_id, started_at), &problems, results);
    let said = Said::so_far(ctx, sb);
    let will_have_said = |outcome: Option<&crate::cache::sync::SyncOutcome>| said.with(outcome);
    let proposing = proposal.as_ref().is_some_and(|p| p.is_ok());
    let cache = if results.iter().any(Option::is_none) {
        let proposal = proposal.as_ref().and_then(|p| p.as_ref().ok());
        store(
            ctx,
            received.quarantine,
            commands,
            &mut results,
            req.has("atomic"),
            &publish::Made {
                record: &make_record,
                said: &will_have_said,
            },
            sb,
            proposal,
            &parsed,
            view,
        )?
    } else {
        drop(received.quarantine); // deleted, and everything in it
        None
    };

    let accepted = results.iter().any(Option::is_none);
    count(&results, problems.len());
    let store_ms = storing.elapsed().as_millis() as u64;
    if let Some(outcome) = &cache {
        summarize(ctx, outcome, sb)?;
    }
    if !accepted {
        record_refused(ctx, &make_record(&results), sb.transcript());
    }
    // report-status-v2 adds optional `option` lines after `ok`; we send none, so both
    // versions share one format.
    let report_status = req.has("report-status") || req.has("report-status-v2");
    let unpack_error = received.unpack_error.as_deref();
    report(sb, commands, &results, unpack_error, report_status)?;
    sb.flush()?;
    // The pusher's `git push` returns when the session ends, after this function: the
    // checked skills (1,000 parsed files: ~3 ms of frees) are let go elsewhere.
    ctx.rt.spawn_blocking(move || drop(parsed));
    // A change (its page's message) or anything said that the push's transaction did
    // not write is stored now.
    let stored = if proposing {
        None
    } else {
        said.with(cache.as_ref())
    };
    if accepted && stored.as_deref() != sb.transcript().filter(|t| !t.is_empty()) {
        record_said(ctx, push_id, sb.transcript());
    }
    tracing::info!(
        refs = %refs_said(commands, &results),
        accepted,
        problems = problems.len(),
        pack_ms = received.pack_ms,
        pack_first_byte_ms = received.arrival.first_ms,
        pack_last_byte_ms = received.arrival.last_ms,
        check_ms,
        early_checked,
        store_ms,
        duration_ms = clock.elapsed().as_millis() as u64,
        "push"
    );
    if accepted {
        crate::storage::gc::maybe_in_background(&ctx.rt, &ctx.pool, &ctx.repos, &ctx.repo_name);
    }
    Ok(results)
}

/// What the pusher will have read once the push is stored: written with the push (the
/// push page shows it), not by a second commit after it. (Without side-band the client
/// reads no message: nothing is kept.)
struct Said<'c> {
    ctx: &'c Context,
    /// The transcript before the store: the checks' messages.
    before: Option<String>,
}

impl<'c> Said<'c> {
    fn so_far(ctx: &'c Context, sb: &SideBand<'_>) -> Self {
        let before = sb
            .transcript()
            .filter(|_| sb.mode() != SideBandMode::None)
            .map(str::to_string);
        Said { ctx, before }
    }

    /// The transcript with the summary line of `outcome` (if the push was stored);
    /// `None` when nothing is said.
    fn with(&self, outcome: Option<&crate::cache::sync::SyncOutcome>) -> Option<String> {
        let mut said = self.before.clone()?;
        if let Some(outcome) = outcome {
            said.push_str(&summary_line(self.ctx, outcome));
        }
        (!said.is_empty()).then_some(said)
    }
}

/// Each ref's name with its outcome, as [`serve`] returns them.
fn by_name(commands: &[Command], results: Vec<Outcome>) -> Vec<(String, Outcome)> {
    commands
        .iter()
        .map(|c| c.name.clone())
        .zip(results)
        .collect()
}

/// The last refusals before anything is stored: a ref that moved since the
/// advertisement fails its compare-and-swap anyway (found now, its pack is not stored
/// for nothing); a session that ended stores nothing.
fn before_storing(ctx: &Context, commands: &[Command], results: &mut [Outcome], atomic: bool) {
    refs::precheck(&ctx.repo, commands, results, atomic);
    if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        for r in results.iter_mut() {
            *r = Some(Refusal::new(Reason::Cancelled, pre_receive::CANCELLED));
        }
    }
}

/// The push's record: who pushed what (`id`, `started_at`), the problems found and
/// each ref's outcome.
fn record_of(
    ctx: &Context,
    req: &commands::Request,
    (id, started_at): (uuid::Uuid, chrono::DateTime<chrono::Utc>),
    problems: &[crate::skills::Problem],
    results: &[Outcome],
) -> PushRecord {
    PushRecord {
        id,
        repo: ctx.repo_name.clone(),
        user: ctx.user.name.clone(),
        key_fingerprint: ctx.user.key_fingerprint.clone(),
        started_at,
        accepted: results.iter().any(Option::is_none),
        refs: ref_results(&req.commands, results),
        errors: problems.to_vec(),
        push_options: req.push_options.clone(),
    }
}

/// Every problem the checks found, in the report's format, with how to see them
/// before the next push.
fn say_problems(problems: &[crate::skills::Problem], sb: &mut SideBand<'_>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let mut text = crate::skills::push_report(problems);
    if crate::skills::any_error(problems) {
        text.push_str("Run `skillsd check` in your clone to see these before pushing.\n");
    }
    sb.message(&text)?;
    Ok(())
}

/// Each ref with its outcome, for the log: `refs/heads/main:ok,refs/heads/x:refused`.
fn refs_said(commands: &[Command], results: &[Outcome]) -> String {
    commands
        .iter()
        .zip(results)
        .map(|(c, r)| format!("{}:{}", c.name, if r.is_none() { "ok" } else { "refused" }))
        .collect::<Vec<_>>()
        .join(",")
}

/// The client's commands and capabilities; `None` when it sent none (nothing to do).
/// A malformed request is answered with an `ERR` line.
fn read_request<R: Read>(
    input: &mut PktReader<R>,
    out: &mut dyn Write,
) -> Result<Option<commands::Request>> {
    match commands::read(input) {
        Ok(req) => Ok(req),
        Err(ProtocolError::Request(why)) => {
            let _ = crate::protocol::pktline::write_err(out, &why.to_string());
            let _ = out.flush();
            Err(ProtocolError::Request(why))
        }
        Err(e) => Err(e),
    }
}

fn side_band_mode(req: &commands::Request) -> SideBandMode {
    if req.has("side-band-64k") {
        SideBandMode::Large
    } else if req.has("side-band") {
        SideBandMode::Small
    } else {
        SideBandMode::None
    }
}

/// Stage 1's result: the quarantine with the pack indexed in it (or why the pack could
/// not be read), and how long it took.
struct Received {
    quarantine: Quarantine,
    unpack_error: Option<String>,
    pack_ms: u64,
    /// When the pack's bytes came, from the stage's start.
    arrival: arrival::Arrival,
    /// The files validated as the pack streamed in ([`pre_receive::early`]).
    early: Option<pre_receive::early::Early>,
}

/// Stage 1: the pack (absent when every command is a deletion) streamed into a
/// quarantine through the byte limit and the inspector.
fn receive_pack(ctx: &Context, commands: &[Command], input: impl Read) -> Result<Received> {
    let receiving = std::time::Instant::now();
    let quarantine = Quarantine::create(&ctx.repo).map_err(ProtocolError::git)?;
    let mut unpack_error = None;
    let mut input = arrival::Timed::new(input, receiving);
    let mut early = None;
    if commands.iter().any(|c| !c.is_delete()) {
        let limits = quarantine::IndexLimits {
            max_pack_bytes: ctx.policy.max_pack_bytes,
            pack: ctx.policy.pack,
        };
        // While the client's pack-objects counts and the pack streams in, the files
        // it brings are validated as they come (with the default branch's rules).
        let tap = pre_receive::early::start(
            &ctx.repo,
            &ctx.default_branch,
            ctx.policy.max_file_bytes,
            ctx.cancel.clone(),
        )
        .map(|(tap, thread)| {
            early = Some(thread);
            tap
        });
        if let Err(msg) = quarantine.index(&ctx.repo, &mut input, &limits, &ctx.cancel, tap) {
            tracing::info!(error = %msg, "pack refused");
            unpack_error = Some(msg);
        }
    }
    Ok(Received {
        quarantine,
        unpack_error,
        pack_ms: receiving.elapsed().as_millis() as u64,
        arrival: input.arrival(),
        early,
    })
}

/// Stage 2's result: each ref's outcome so far, every problem found, the change a push
/// to `refs/for/BRANCH` proposes (or why it cannot), and how long the checks took.
struct Checked {
    results: Vec<Outcome>,
    problems: Vec<crate::skills::Problem>,
    proposal: Option<std::result::Result<proposal::Proposal, String>>,
    /// The skill files the checks read and validated, for the cache.
    parsed: crate::cache::changes::Parsed,
    /// The view the checks read (and cached trees of), for the store to read on.
    view: Option<gix::Repository>,
    check_ms: u64,
    /// Files checked while the pack streamed in.
    early_checked: usize,
}

/// Stage 2, pre-receive: every command checked against the quarantined objects
/// ([`pre_receive::check`]); a push to `refs/for/BRANCH` as an update of `BRANCH`.
fn check_push(
    ctx: &Context,
    req: &commands::Request,
    current: &HashMap<String, ObjectId>,
    received: &Received,
    early: Option<pre_receive::early::Early>,
    sb: &mut SideBand<'_>,
) -> Result<Checked> {
    let commands = &req.commands;
    let proposal = proposal_of(ctx, req, current);
    let refused = |reason: Reason, why: &str, proposal| Checked {
        results: commands
            .iter()
            .map(|_| Some(Refusal::new(reason, why)))
            .collect(),
        problems: Vec::new(),
        proposal,
        parsed: Default::default(),
        view: None,
        check_ms: 0,
        early_checked: 0,
    };
    if let Some(err) = &received.unpack_error {
        sb.message(&format!("error: the pack could not be read: {err}\n"))?;
        return Ok(refused(Reason::Unpack, "unpacker error", proposal));
    }
    if let Some(Err(why)) = &proposal {
        sb.message(&format!("error: {why}\n"))?;
        let why = why.clone();
        return Ok(refused(Reason::Policy, &why, proposal));
    }
    let view = received
        .quarantine
        .view(&ctx.repo)
        .map_err(ProtocolError::git)?;
    let checking = std::time::Instant::now();
    let (checked, policy) = match &proposal {
        Some(Ok(p)) => (vec![p.as_update()], checking_policy(ctx, true)),
        _ => (commands.clone(), checking_policy(ctx, false)),
    };
    let verdict = {
        let mut progress = |line: &str| {
            let _ = sb.progress(line);
            let _ = sb.flush();
        };
        pre_receive::check(
            &view,
            &checked,
            &policy,
            current,
            &mut progress,
            &ctx.cancel,
            Some(&ctx.repo),
            early,
        )
    };
    for note in &verdict.notes {
        sb.message(&format!("{note}\n"))?;
    }
    crate::metrics::METRICS.files_checked(verdict.early_used, verdict.read_after);
    Ok(Checked {
        results: verdict.rejections,
        problems: verdict.problems,
        parsed: verdict.parsed,
        proposal,
        view: Some(view),
        check_ms: checking.elapsed().as_millis() as u64,
        early_checked: verdict.early_used,
    })
}

/// A push to `refs/for/BRANCH` proposes a change, checked as an update of `BRANCH`
/// (`None`: no such push; `Err`: why it cannot be one).
fn proposal_of(
    ctx: &Context,
    req: &commands::Request,
    current: &HashMap<String, ObjectId>,
) -> Option<std::result::Result<proposal::Proposal, String>> {
    let commands = &req.commands;
    commands
        .iter()
        .any(|c| c.name.starts_with(proposal::FOR_PREFIX))
        .then(|| {
            if commands.len() > 1 {
                Err(format!(
                    "a change is pushed on its own: push HEAD:{}BRANCH alone, then the other refs",
                    proposal::FOR_PREFIX
                ))
            } else {
                proposal::prepare(ctx, &commands[0], &req.push_options, current)
            }
        })
}

/// The node's policy for this push's checks: the registered keys read (only if a
/// branch requires signed commits) from the database, `proposal` for a change.
fn checking_policy(ctx: &Context, proposal: bool) -> pre_receive::Policy {
    let signers = ctx.policy.signers.clone().or_else(|| {
        let (pool, rt) = (ctx.pool.clone(), ctx.rt.clone());
        Some(signatures::SignersSource(std::sync::Arc::new(move || {
            rt.block_on(signatures::load(&pool))
        })))
    });
    pre_receive::Policy {
        proposal: proposal || ctx.policy.proposal,
        signers,
        ..ctx.policy.clone()
    }
}

/// `git push -o dry-run`: what passed every check is reported, and refused as a dry
/// run — nothing is written.
fn dry_run(results: &mut [Outcome], sb: &mut SideBand<'_>) -> Result<()> {
    let valid = results.iter().filter(|r| r.is_none()).count();
    if valid == 0 {
        return Ok(());
    }
    sb.message(&format!(
        "dry run: {valid} ref update{} passed every check; nothing was written.\n",
        if valid == 1 { "" } else { "s" }
    ))?;
    for r in results.iter_mut().filter(|r| r.is_none()) {
        *r = Some(Refusal::new(
            Reason::DryRun,
            "dry run: valid, nothing written",
        ));
    }
    Ok(())
}

/// The push counted in the metrics: accepted, or refused under its reason.
fn count(results: &[Outcome], problems: usize) {
    use crate::metrics::METRICS;
    METRICS.validation_errors(problems);
    match outcome::push_reason(results) {
        None => METRICS.push_accepted(),
        Some(reason) => METRICS.push_refused(reason),
    }
}

/// The accepted push's record was written in its transaction, before the summary
/// existed: what the pusher read follows (they have the answer already).
fn record_said(ctx: &Context, push_id: uuid::Uuid, said: Option<&str>) {
    let Some(said) = said.filter(|t| !t.is_empty()) else {
        return;
    };
    let stored = ctx.rt.block_on(async {
        let mut conn = ctx.pool.acquire().await?;
        crate::cache::pushes::set_said(&mut conn, push_id, said).await
    });
    if let Err(e) = stored {
        tracing::warn!(error = %e, "could not store what the pusher read");
    }
}

/// Each command with its outcome, as the push record keeps it.
fn ref_results(commands: &[Command], results: &[Outcome]) -> Vec<RefResult> {
    commands
        .iter()
        .zip(results)
        .map(|(c, r)| RefResult {
            name: c.name.clone(),
            old: c.old.to_string(),
            new: c.new.to_string(),
            result: if r.is_none() { "ok" } else { "rejected" },
            refusal: r.as_ref().map(|r| r.reason.label()),
            reason: r.as_ref().map(|r| r.message.clone()),
        })
        .collect()
}

fn advertise(refs: &RefList, out: &mut dyn Write) -> Result<()> {
    let caps = format!("{CAPS} agent={AGENT}");
    if refs.refs.is_empty() {
        write_text(
            out,
            &format!(
                "{} capabilities^{{}}\0{caps}",
                ObjectId::null(gix::hash::Kind::Sha1)
            ),
        )?;
    }
    for (i, r) in refs.refs.iter().enumerate() {
        if i == 0 {
            write_text(out, &format!("{} {}\0{caps}", r.oid, r.name))?;
        } else {
            write_text(out, &format!("{} {}", r.oid, r.name))?;
        }
    }
    write_flush(out)?;
    Ok(())
}

/// Stage 6: the push's one transaction ([`publish::run`]; a change's:
/// [`proposal::publish`]), then this node's copy (the pack moved in, the refs
/// advanced). Returns the cache's sync when `main` moved. On a failed transaction
/// every ref is refused with the reason; nothing was written.
#[allow(clippy::too_many_arguments)]
fn store(
    ctx: &Context,
    quarantine: Quarantine,
    commands: &[Command],
    results: &mut [Outcome],
    atomic: bool,
    made: &publish::Made<'_>,
    sb: &mut SideBand<'_>,
    proposal: Option<&proposal::Proposal>,
    parsed: &crate::cache::changes::Parsed,
    view: Option<gix::Repository>,
) -> Result<Option<crate::cache::sync::SyncOutcome>> {
    let pack = publish::pack_files(&quarantine.pack_dir());
    let view = match view {
        Some(view) => view,
        None => quarantine.view(&ctx.repo).map_err(ProtocolError::git)?,
    };
    let brought = publish::Brought {
        view: &view,
        pack: &pack,
        parsed,
    };
    // Pushes to one repository take turns on this node before they take a database
    // connection: a queue of pushers waits here, not in the database holding the
    // pool's connections (which logins and reads need).
    let Some(_turn) = publish::take_turn(&ctx.repo_name, &ctx.cancel, &mut |line| {
        let _ = sb.progress(line);
        let _ = sb.flush();
    }) else {
        for r in results.iter_mut().filter(|r| r.is_none()) {
            *r = Some(Refusal::new(Reason::Cancelled, pre_receive::CANCELLED));
        }
        return Ok(None);
    };
    let caching = std::time::Instant::now();
    let mut moved: Vec<(String, Option<ObjectId>)> = Vec::new();
    let published = match proposal {
        Some(p) => proposal::publish(ctx, &brought, p, &(made.record)(results)).map(
            |(published, opened)| {
                for name in [
                    format!("refs/changes/{}/{}", opened.number, opened.patch_set),
                    format!("refs/changes/{}/head", opened.number),
                ] {
                    moved.push((name, Some(p.commit)));
                }
                let _ = sb.message(&opened_message(ctx, &opened));
                published
            },
        ),
        None => {
            let published = publish::run(ctx, &brought, commands, results, atomic, made);
            moved = commands
                .iter()
                .zip(results.iter())
                .filter(|(_, r)| r.is_none())
                .map(|(c, _)| (c.name.clone(), (!c.is_delete()).then_some(c.new)))
                .collect();
            published
        }
    };
    drop(view);
    match published {
        Ok(Published {
            generation: Some(generation),
            previous,
            cache,
        }) => {
            crate::metrics::METRICS.sync_took(caching.elapsed());
            update_copy(ctx, quarantine, &moved, previous, generation);
            Ok(cache)
        }
        Err(publish::PublishError::Refused(why)) => {
            sb.message(&format!("error: {why}\n"))?;
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(Refusal::new(Reason::Stale, why.to_string()));
            }
            Ok(None)
        }
        Ok(_) => Ok(None), // every ref moved meanwhile: nothing committed
        Err(e) => {
            crate::metrics::METRICS.sync_failed();
            tracing::error!(error = %e, "the push's transaction failed; nothing was written");
            sb.message(&format!(
                "error: the push could not be stored, nothing was written: {e}\nerror: try again in a moment; if it keeps failing, tell an admin.\n"
            ))?;
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(Refusal::new(
                    Reason::Database,
                    format!("not stored: {}", e.to_string().replace('\n', " ")),
                ));
            }
            Ok(None)
        }
    }
}

/// After the commit: this node's copy takes the pack, then the new refs — advanced in
/// place when the copy was current, else refreshed from the database. A failure here
/// loses nothing (the push is in the database); the next read refreshes the copy.
fn update_copy(
    ctx: &Context,
    quarantine: Quarantine,
    changes: &[(String, Option<ObjectId>)],
    previous: i64,
    generation: i64,
) {
    let migrated = quarantine.migrate();
    if let Err(e) = &migrated {
        tracing::warn!(error = %e, "could not move the pack into this node's copy; it is fetched from the database");
    }
    let advanced = migrated.is_ok()
        && crate::storage::replica::advance(&ctx.repo, previous, generation, changes)
            .unwrap_or(false);
    if !advanced
        && let Err(e) =
            crate::storage::replica::refresh(&ctx.rt, &ctx.pool, &ctx.repos, &ctx.repo_name)
    {
        tracing::warn!(error = %e, "could not refresh this node's copy after the push; the next read does");
    }
}

/// The accepted push's one line: `skills: 1 created, 0 updated, 0 renamed, 0 deleted;
/// cache at 3f2a9c1`. It is the push's result, not progress: shown even when git asks
/// for quiet (`-q`, or no terminal: scripts, CI, editors), as GitHub shows its remote
/// messages.
fn summarize(
    ctx: &Context,
    outcome: &crate::cache::sync::SyncOutcome,
    sb: &mut SideBand<'_>,
) -> Result<()> {
    tracing::info!(repo = %ctx.repo_name, user = %ctx.user.name, summary = %outcome.summary(), "cache synced");
    sb.message(&summary_line(ctx, outcome))?;
    Ok(())
}

/// `REPO: N created, …; cache at COMMIT`, the line a push's pusher reads last.
fn summary_line(ctx: &Context, outcome: &crate::cache::sync::SyncOutcome) -> String {
    let at = outcome
        .commit
        .as_deref()
        .map_or("", |c| &c[..c.len().min(7)]);
    format!("{}: {}; cache at {at}\n", ctx.repo_name, outcome.summary())
}

/// What the pusher of a change reads: `change 3 opened: TITLE (IN_REVIEW)`, its page,
/// how to fetch it and what comes next.
fn opened_message(ctx: &Context, opened: &proposal::Opened) -> String {
    let n = opened.number;
    let mut text = if opened.created {
        format!(
            "change {n} opened: {} ({})\n",
            opened.title,
            opened.state.as_str()
        )
    } else {
        format!(
            "change {n} updated: patch set {} ({})\n",
            opened.patch_set,
            opened.state.as_str()
        )
    };
    if let Some(url) = crate::changes::page_url(ctx.web_url.as_deref(), &ctx.repo_name, n) {
        text.push_str(&format!("  {url}\n"));
    }
    text.push_str(&format!(
        "  fetch it: git fetch origin refs/changes/{n}/head; see it: ssh ... review {n}\n"
    ));
    if opened.created {
        text.push_str(&format!(
            "  add a patch set: git push -o change={n} origin HEAD:refs/for/{}\n",
            opened.target
        ));
    }
    text
}

/// A refused push is recorded on its own (an accepted one was, in its transaction).
fn record_refused(ctx: &Context, record: &PushRecord, said: Option<&str>) {
    let recorded = ctx.rt.block_on(async {
        let mut conn = ctx.pool.acquire().await?;
        crate::cache::pushes::insert(&mut conn, record).await?;
        match said.filter(|t| !t.is_empty()) {
            Some(said) => crate::cache::pushes::set_said(&mut conn, record.id, said).await,
            None => Ok(()),
        }
    });
    if let Err(e) = recorded {
        tracing::error!(error = %e, "could not record the push");
    }
}

fn report(
    sb: &mut SideBand<'_>,
    commands: &[Command],
    results: &[Outcome],
    unpack_error: Option<&str>,
    report_status: bool,
) -> Result<()> {
    if !report_status {
        if sb.mode() != SideBandMode::None {
            write_flush(sb.inner())?;
        }
        return Ok(());
    }
    let mut buf = Vec::new();
    match unpack_error {
        None => write_text(&mut buf, "unpack ok")?,
        Some(e) => write_text(&mut buf, &format!("unpack {}", e.replace('\n', " ")))?,
    }
    for (cmd, r) in commands.iter().zip(results) {
        match r {
            None => write_text(&mut buf, &format!("ok {}", cmd.name))?,
            Some(refusal) => write_text(
                &mut buf,
                &format!("ng {} {}", cmd.name, refusal.message.replace('\n', " ")),
            )?,
        }
    }
    write_flush(&mut buf)?;
    sb.data(&buf)?;
    if sb.mode() != SideBandMode::None {
        write_flush(sb.inner())?;
    }
    Ok(())
}
