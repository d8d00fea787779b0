//! `skillsd hook pre-receive|post-receive`: the same pre-receive and post-receive
//! stages for a repository served by a stock git server (plain OpenSSH + git, Gitea,
//! GitLab server hooks). git runs the hooks in the repository with the ref updates on
//! stdin (`<old> <new> <ref>` lines); during pre-receive the pushed objects are in
//! git's quarantine (`GIT_OBJECT_DIRECTORY`, with the repository's own objects in
//! `GIT_ALTERNATE_OBJECT_DIRECTORIES`).

use crate::receive::commands::Command;
use crate::receive::pre_receive;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot open the repository: {0}")]
    Open(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("invalid hook input line `{0}`")]
    Input(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("git error: {0}")]
    Git(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the post-receive sync stopped: {0}")]
    Stopped(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// The updates git passes on stdin.
pub fn read_updates(input: impl BufRead) -> Result<Vec<Command>, HookError> {
    let mut commands = Vec::new();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(old), Some(new), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HookError::Input(line));
        };
        let parse = |h: &str| {
            gix::ObjectId::from_hex(h.as_bytes()).map_err(|_| HookError::Input(line.clone()))
        };
        commands.push(Command {
            old: parse(old)?,
            new: parse(new)?,
            name: name.to_string(),
        });
    }
    Ok(commands)
}

/// The repository git runs the hook in (`GIT_DIR`, else the current directory).
pub fn open_repo() -> Result<(PathBuf, gix::Repository), HookError> {
    let dir = std::env::var_os("GIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = std::path::absolute(&dir)?;
    let repo = gix::open(&dir).map_err(|e| HookError::Open(Box::new(e)))?;
    Ok((dir, repo))
}

/// A view of `repo` that also sees git's quarantine, built as an empty object
/// directory whose alternates are the quarantine and every alternate git names.
/// Returns the view and the temporary directory that must outlive it.
pub fn quarantine_view(
    repo: &gix::Repository,
) -> Result<(gix::Repository, Option<tempfile::TempDir>), HookError> {
    let Some(quarantine) = std::env::var_os("GIT_OBJECT_DIRECTORY") else {
        return Ok((repo.clone(), None));
    };
    let mut alternates = vec![std::path::absolute(PathBuf::from(quarantine))?];
    if let Some(alt) = std::env::var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES") {
        alternates.extend(
            std::env::split_paths(&alt).map(|p| std::path::absolute(p).unwrap_or_default()),
        );
    }
    alternates.push(std::path::absolute(repo.objects.store_ref().path())?);
    let dir = tempfile::Builder::new().prefix("skillsd-hook-").tempdir()?;
    std::fs::create_dir_all(dir.path().join("info"))?;
    std::fs::create_dir_all(dir.path().join("pack"))?;
    let list: String = alternates
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    std::fs::write(dir.path().join("info").join("alternates"), list)?;
    let handle = gix::odb::at_opts(
        dir.path(),
        gix::hash::Kind::Sha1,
        [],
        crate::incoming::odb_options(),
    )
    .map_err(|e| HookError::Git(Box::new(e)))?;
    let mut view = repo.clone();
    view.objects = handle.into();
    Ok((view, Some(dir)))
}

/// The branch whose skills the cache holds: `SKILLSD_BRANCH`, else where `HEAD` points,
/// else `main`.
pub fn default_branch(repo: &gix::Repository) -> String {
    if let Ok(b) = std::env::var("SKILLSD_BRANCH") {
        return b;
    }
    repo.find_reference("HEAD")
        .ok()
        .and_then(|h| {
            h.target().try_name().and_then(|n| {
                n.as_bstr()
                    .to_string()
                    .strip_prefix("refs/heads/")
                    .map(str::to_string)
            })
        })
        .unwrap_or_else(|| crate::repos::DEFAULT_BRANCH.to_string())
}

/// The repository's name in the cache: `SKILLSD_REPO`, else the directory name
/// without `.git`.
pub fn repo_name(dir: &Path) -> String {
    if let Ok(n) = std::env::var("SKILLSD_REPO") {
        return n;
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string());
    name.strip_suffix(".git").unwrap_or(&name).to_string()
}

/// Who pushed: `SKILLSD_USER`, then the names Gitea and GitLab set, then `USER`.
pub fn pusher() -> String {
    [
        "SKILLSD_USER",
        "GITEA_PUSHER_NAME",
        "GL_USERNAME",
        "REMOTE_USER",
        "USER",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    .unwrap_or_else(|| "unknown".to_string())
}

/// Runs the pre-receive checks with `policy` (the settings' ref rules and limits; the
/// default branch is the repository's); returns the text to show and whether to
/// accept.
pub fn pre_receive(
    view: &gix::Repository,
    repo: &gix::Repository,
    commands: &[Command],
    policy: &pre_receive::Policy,
) -> (String, bool) {
    let branch = default_branch(repo);
    let mut current: HashMap<String, gix::ObjectId> = HashMap::new();
    if let Ok(platform) = repo.references()
        && let Ok(all) = platform.all()
    {
        for r in all.flatten() {
            if let Some(id) = r.target().try_id() {
                current.insert(r.name().as_bstr().to_string(), id.to_owned());
            }
        }
    }
    let policy = pre_receive::Policy {
        default_branch: branch,
        ..policy.clone()
    };
    let mut progress = |line: &str| eprint!("{line}");
    let never = std::sync::atomic::AtomicBool::new(false);
    let verdict = pre_receive::check(
        view,
        commands,
        &policy,
        &current,
        &mut progress,
        &never,
        None,
        None,
    );
    let mut text = String::new();
    for note in &verdict.notes {
        text.push_str(note);
        text.push('\n');
    }
    if !verdict.problems.is_empty() {
        text.push_str(&crate::skills::push_report(&verdict.problems));
    }
    for (cmd, r) in commands.iter().zip(&verdict.rejections) {
        if let Some(refusal) = r
            && !crate::skills::any_error(&verdict.problems)
        {
            text.push_str(&format!("error: {}: {}\n", cmd.name, refusal.message));
        }
    }
    let accept = verdict.rejections.iter().all(Option::is_none);
    (text, accept)
}

/// Does the push move the default branch (not delete it)?
pub fn touches_default_branch(repo: &gix::Repository, commands: &[Command]) -> bool {
    let default_ref = format!("refs/heads/{}", default_branch(repo));
    commands
        .iter()
        .any(|c| c.name == default_ref && !c.is_delete())
}

/// Runs the post-receive stage: when the default branch moved, brings the cache of the
/// repository at `dir` to its tip (the pusher from [`pusher`]) and returns the line to
/// show; `None` when the push did not touch the default branch. A failed cache write is
/// said, not fatal: the push is in git already, and the next sync or `skillsd
/// reconcile` catches up.
pub async fn post_receive(
    url: &str,
    dir: &Path,
    repo: gix::Repository,
    commands: &[Command],
) -> Result<Option<String>, HookError> {
    if !touches_default_branch(&repo, commands) {
        return Ok(None);
    }
    let branch = default_branch(&repo);
    let pool = crate::db::connect(url).await?;
    crate::cache::prepare(&pool).await?;
    let name = repo_name(dir);
    let user = pusher();
    let rt = tokio::runtime::Handle::current();
    let sync_pool = pool.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        crate::cache::sync::sync_branch(&rt, &sync_pool, &repo, &name, &branch, &user, None)
    })
    .await
    .map_err(HookError::Stopped)?;
    let said = match outcome {
        Ok(o) => {
            if o.search_deferred {
                // The hook process ends here: fill the search vectors now.
                crate::cache::search::fill(&pool, crate::cache::search::workers())
                    .await
                    .map_err(crate::db::DbError::from)?;
            }
            format!("skillsd: cache updated: {}\n", o.summary())
        }
        Err(e) => format!(
            "warning: your push is stored, but the skills cache could not be updated ({e}).\nwarning: it will catch up with the next push or `skillsd reconcile`.\n"
        ),
    };
    pool.close().await;
    Ok(Some(said))
}
