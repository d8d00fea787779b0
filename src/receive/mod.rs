//! `git-receive-pack`: a push, from the ref advertisement to the report.
//!
//! The stages, in order:
//! 1. advertise refs and capabilities ([`advertise`]);
//! 2. read the commands and push options ([`commands`]);
//! 3. index the pack into a [`quarantine`] (thin packs completed from the repository);
//! 4. [`pre_receive`]: policy, connectivity, validation of every changed skill;
//! 5. on any problem: report every problem, drop the quarantine, record the refused push;
//! 6. else migrate the pack in and update the refs with compare-and-swap ([`refs`]);
//! 7. post-receive: sync the cache for the default branch, recording the push in the
//!    same transaction ([`crate::cache::sync`]);
//! 8. report the status of each ref.

pub mod commands;
pub mod connectivity;
pub mod inspect;
pub mod pre_receive;
pub mod quarantine;
pub mod refs;

use crate::cache::pushes::{PushRecord, RefResult};
use crate::db::users::User;
use crate::protocol::pktline::{write_flush, write_text, PktReader, SideBand, SideBandMode};
use crate::protocol::refs::RefList;
use crate::protocol::{ProtocolError, Result, AGENT};
use commands::Command;
use gix::ObjectId;
use quarantine::Quarantine;
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
    /// Where to hand the repository when the cache write fails.
    pub resync: Option<crate::cache::retry::Resync>,
    /// Set when the session ends (the client left, or its time ran out): indexing,
    /// the walks and validation stop, and nothing is written.
    pub cancel: std::sync::Arc<AtomicBool>,
}

const CAPS: &str =
    "report-status report-status-v2 delete-refs side-band-64k quiet atomic ofs-delta push-options object-format=sha1";

/// Serves one receive-pack session.
pub fn serve<R: Read>(ctx: &Context, input: R, out: &mut dyn Write) -> Result<()> {
    let _span = tracing::info_span!("push", repo = %ctx.repo_name, user = %ctx.user.name).entered();
    let clock = std::time::Instant::now();
    let started_at = chrono::Utc::now();
    let refs = RefList::read(&ctx.repo)?;
    advertise(&refs, out)?;
    out.flush()?;

    let mut input = PktReader::<R>::new(input);
    let req = match commands::read(&mut input) {
        Ok(Some(req)) => req,
        Ok(None) => return Ok(()),
        Err(ProtocolError::Protocol(msg)) => {
            let _ = crate::protocol::pktline::write_err(out, &msg);
            let _ = out.flush();
            return Err(ProtocolError::Protocol(msg));
        }
        Err(e) => return Err(e),
    };
    let sideband = if req.has("side-band-64k") {
        SideBandMode::Large
    } else if req.has("side-band") {
        SideBandMode::Small
    } else {
        SideBandMode::None
    };
    // report-status-v2 adds optional `option` lines after `ok`; we send none, so both
    // versions share one format.
    let report_status = req.has("report-status") || req.has("report-status-v2");
    let mut sb = SideBand::new(out, sideband, req.has("quiet"));
    let commands = &req.commands;
    let current: HashMap<String, ObjectId> =
        refs.refs.iter().map(|r| (r.name.clone(), r.oid)).collect();

    // The pack (absent when every command is a deletion).
    let needs_pack = commands.iter().any(|c| !c.is_delete());
    let receiving = std::time::Instant::now();
    let quarantine = Quarantine::create(&ctx.repo).map_err(ProtocolError::git)?;
    let mut unpack_error = None;
    if needs_pack {
        let limits = quarantine::IndexLimits {
            max_pack_bytes: ctx.policy.max_pack_bytes,
            pack: ctx.policy.pack,
        };
        if let Err(msg) = quarantine.index(&ctx.repo, input.into_inner(), &limits, &ctx.cancel) {
            tracing::info!(error = %msg, "pack refused");
            unpack_error = Some(msg);
        }
    }

    let pack_ms = receiving.elapsed().as_millis() as u64;
    let mut problems = Vec::new();
    let mut check_ms = 0;
    let mut results: Vec<Option<String>> = if let Some(err) = &unpack_error {
        sb.message(&format!("error: the pack could not be read: {err}\n"))?;
        commands
            .iter()
            .map(|_| Some("unpacker error".to_string()))
            .collect()
    } else {
        let view = quarantine.view(&ctx.repo).map_err(ProtocolError::git)?;
        let mut progress = |line: &str| {
            let _ = sb.progress(line);
            let _ = sb.flush();
        };
        let checking = std::time::Instant::now();
        let verdict = pre_receive::check(
            &view,
            commands,
            &ctx.policy,
            &current,
            &mut progress,
            &ctx.cancel,
        );
        check_ms = checking.elapsed().as_millis() as u64;
        problems = verdict.problems;
        for note in &verdict.notes {
            sb.message(&format!("{note}\n"))?;
        }
        verdict.rejections
    };

    if !problems.is_empty() {
        let mut text = crate::skills::render_problems(&problems);
        text.push_str(&format!(
            "\n{}; push refused, nothing was written.\nRun `skillsd check` in your clone to see these before pushing.\n",
            crate::skills::summary_line(&problems)
        ));
        sb.message(&text)?;
    }

    // `git push -o dry-run`: validate and report, write nothing.
    if req.push_options.iter().any(|o| o == "dry-run") && results.iter().any(Option::is_none) {
        let valid = results.iter().filter(|r| r.is_none()).count();
        sb.message(&format!(
            "dry run: {valid} ref update{} passed every check; nothing was written.\n",
            if valid == 1 { "" } else { "s" }
        ))?;
        for r in results.iter_mut().filter(|r| r.is_none()) {
            *r = Some("dry run: valid, nothing written".into());
        }
    }

    let storing = std::time::Instant::now();
    // A ref that moved since the advertisement fails its compare-and-swap anyway:
    // found now, its pack is not stored for nothing.
    refs::precheck(&ctx.repo, commands, &mut results, req.has("atomic"));
    if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        for r in results.iter_mut() {
            *r = Some(pre_receive::CANCELLED.into());
        }
    }
    let any_accepted = results.iter().any(Option::is_none);
    let push_id = uuid::Uuid::new_v4();
    if any_accepted {
        // Known before the refs move: a crash from here on leaves a push in progress
        // that the next start completes under this pusher's name.
        let pending = PushRecord {
            id: push_id,
            repo: ctx.repo_name.clone(),
            user: ctx.user.name.clone(),
            key_fingerprint: ctx.user.key_fingerprint.clone(),
            started_at,
            accepted: true,
            refs: ref_results(commands, &results),
            errors: Vec::new(),
            push_options: req.push_options.clone(),
        };
        // Bounded: with the database away (and SKILLSD_DB_DOWN=accept) the push
        // goes on without it.
        let begun = ctx.rt.block_on(tokio::time::timeout(
            std::time::Duration::from_secs(2),
            async {
                let mut conn = ctx.pool.acquire().await?;
                crate::cache::pushes::begin(&mut conn, &pending).await
            },
        ));
        match begun {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not record the push before its refs move")
            }
            Err(_) => tracing::warn!(
                "the database did not answer; the push goes on unrecorded until it completes"
            ),
        }
        match quarantine.migrate() {
            Err(e) => {
                for r in results.iter_mut().filter(|r| r.is_none()) {
                    *r = Some(format!("could not store the pack: {e}"));
                }
            }
            Ok(moved) => {
                refs::update(&ctx.repo, commands, &mut results, req.has("atomic"));
                if results.iter().all(Option::is_some) {
                    quarantine::withdraw(&moved);
                }
            }
        }
    } else {
        drop(quarantine);
    }

    // Post-receive: the push record, and the cache when the default branch moved.
    let accepted = results.iter().any(Option::is_none);
    {
        use crate::metrics::{Refusal, METRICS};
        METRICS.validation_errors(problems.len());
        if accepted {
            METRICS.push_accepted();
        } else if unpack_error.is_some() {
            METRICS.push_refused(Refusal::Unpack);
        } else if !problems.is_empty() {
            METRICS.push_refused(Refusal::InvalidSkills);
        } else {
            METRICS.push_refused(Refusal::Policy);
        }
    }
    let record = PushRecord {
        id: push_id,
        repo: ctx.repo_name.clone(),
        user: ctx.user.name.clone(),
        key_fingerprint: ctx.user.key_fingerprint.clone(),
        started_at,
        accepted,
        refs: ref_results(commands, &results),
        errors: problems,
        push_options: req.push_options.clone(),
    };
    let default_ref = format!("refs/heads/{}", ctx.default_branch);
    let default_moved = commands
        .iter()
        .zip(&results)
        .any(|(c, r)| r.is_none() && c.name == default_ref && !c.is_delete());
    let store_ms = storing.elapsed().as_millis() as u64;
    let caching = std::time::Instant::now();
    post_receive(ctx, &record, default_moved, &mut sb)?;
    let cache_ms = caching.elapsed().as_millis() as u64;

    report(
        &mut sb,
        commands,
        &results,
        unpack_error.as_deref(),
        report_status,
    )?;
    sb.flush()?;
    tracing::info!(
        refs = %commands
            .iter()
            .zip(&results)
            .map(|(c, r)| format!("{}:{}", c.name, if r.is_none() { "ok" } else { "refused" }))
            .collect::<Vec<_>>()
            .join(","),
        accepted,
        problems = record.errors.len(),
        pack_ms,
        check_ms,
        store_ms,
        cache_ms,
        duration_ms = clock.elapsed().as_millis() as u64,
        "push"
    );
    if accepted {
        crate::maintenance::maybe_gc_in_background(ctx.repo.path());
    }
    Ok(())
}

/// Each command with its result (`None`: ok).
fn ref_results(commands: &[Command], results: &[Option<String>]) -> Vec<RefResult> {
    commands
        .iter()
        .zip(results)
        .map(|(c, r)| RefResult {
            name: c.name.clone(),
            old: c.old.to_string(),
            new: c.new.to_string(),
            result: if r.is_none() { "ok" } else { "rejected" },
            reason: r.clone(),
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

fn post_receive(
    ctx: &Context,
    record: &PushRecord,
    default_moved: bool,
    sb: &mut SideBand<'_>,
) -> Result<()> {
    if default_moved {
        let started = std::time::Instant::now();
        let synced = crate::cache::sync::sync_branch(
            &ctx.rt,
            &ctx.pool,
            &ctx.repo,
            &ctx.repo_name,
            &ctx.default_branch,
            &ctx.user.name,
            Some(record),
        );
        crate::metrics::METRICS.sync_took(started.elapsed());
        match synced {
            Ok(outcome) => {
                tracing::info!(repo = %ctx.repo_name, user = %ctx.user.name, summary = %outcome.summary(), "cache synced");
                sb.progress(&format!("skillsd: cache updated: {}\n", outcome.summary()))?;
                return Ok(());
            }
            Err(e) => {
                crate::metrics::METRICS.sync_failed();
                tracing::error!(repo = %ctx.repo_name, error = %e, "cache sync failed after the refs moved");
                if let Err(e2) = crate::cache::sync::record_failure(
                    &ctx.rt,
                    &ctx.pool,
                    &ctx.repo,
                    &ctx.repo_name,
                    &ctx.default_branch,
                    &ctx.user.name,
                    &e.to_string(),
                ) {
                    tracing::error!(error = %e2, "could not record the failed sync");
                }
                if let Some(r) = &ctx.resync {
                    r.request(&ctx.repo_name);
                }
                sb.message(&format!(
                    "warning: your push is stored, but the skills cache could not be updated ({e}).\nwarning: skillsd retries in the background until the cache matches the branch.\n"
                ))?;
            }
        }
    }
    // Not synced (or the sync failed): record the push on its own.
    let result = ctx.rt.block_on(async {
        let mut conn = ctx.pool.acquire().await?;
        crate::cache::pushes::insert(&mut conn, record).await
    });
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record the push");
    }
    Ok(())
}

fn report(
    sb: &mut SideBand<'_>,
    commands: &[Command],
    results: &[Option<String>],
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
            Some(reason) => write_text(
                &mut buf,
                &format!("ng {} {}", cmd.name, reason.replace('\n', " ")),
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
