//! The dashboard's audit counts: `skillsd audit`'s checks (every check over the whole
//! tree of a repository's default branch, [`crate::receive::pre_receive::audit`])
//! counted by check and level, per repository.
//!
//! When: on demand, never on the push path. The first look at a repository after its
//! tip moved starts the audit of that tip in the background (one at a time per tip,
//! however many look); the dashboard waits for it briefly ([`PAGE_WAIT`]) and
//! otherwise says it is being counted. The result is kept by tip commit (and the
//! server's file-size limit, the only input besides the tree): a commit is immutable,
//! so a kept result never goes stale, and the next push simply names another tip.
//! `GET /api/audit[?repo=NAME]` gives the same counts as JSON, waiting longer
//! ([`API_WAIT`]).

use crate::web::HttpState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// How long the dashboard waits for an audit that is not counted yet.
pub const PAGE_WAIT: Duration = Duration::from_millis(1500);
/// How long `GET /api/audit` waits.
pub const API_WAIT: Duration = Duration::from_secs(30);
/// Audits kept (a few tips per repository).
const KEPT: usize = 64;

/// The counts of one audit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// The commit audited (the default branch's tip).
    pub commit: String,
    /// Skill files read.
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
    /// Per check id: (errors, warnings).
    pub checks: BTreeMap<String, Counts>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
}

impl Summary {
    /// The counts of `problems` found in `files` skill files of `commit`.
    pub fn of(commit: String, files: usize, problems: &[crate::skills::Problem]) -> Summary {
        let mut s = Summary {
            commit,
            files,
            errors: 0,
            warnings: 0,
            checks: BTreeMap::new(),
        };
        for p in problems {
            let c = s.checks.entry(p.check.id().to_string()).or_default();
            if p.level == crate::skills::Level::Error {
                s.errors += 1;
                c.errors += 1;
            } else {
                s.warnings += 1;
                c.warnings += 1;
            }
        }
        s
    }
}

/// Where a repository's audit stands.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The default branch does not exist yet.
    Empty,
    /// Being counted.
    Counting,
    Ready(Arc<Summary>),
    /// The tree could not be read (said as it is; no server paths in it).
    Failed(String),
}

type Outcome = Option<Result<Arc<Summary>, String>>;
/// The kept audits: done, or being done.
type Kept = Mutex<HashMap<(gix::ObjectId, u64), watch::Receiver<Outcome>>>;

/// Audits by (tip, file-size limit): done, or being done.
fn kept() -> &'static Kept {
    static KEPT_AUDITS: OnceLock<Kept> = OnceLock::new();
    KEPT_AUDITS.get_or_init(Default::default)
}

/// The audit of `repo`'s default branch as it is now: started in the background if it
/// is not counted yet for this tip, waited for until `deadline`.
pub async fn state(s: &HttpState, repo: &str, deadline: tokio::time::Instant) -> Progress {
    let mut rx = match start(s, repo).await {
        Ok(Some(rx)) => rx,
        Ok(None) => return Progress::Empty,
        Err(why) => return Progress::Failed(why),
    };
    let done = tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await;
    match done {
        Ok(Ok(outcome)) => match outcome.clone() {
            Some(Ok(summary)) => Progress::Ready(summary),
            Some(Err(why)) => Progress::Failed(why),
            None => Progress::Counting,
        },
        Ok(Err(_)) => Progress::Failed("the audit stopped".into()),
        Err(_) => Progress::Counting,
    }
}

/// The audit of `repo`'s tip, started unless it is kept or running; `None` when the
/// default branch does not exist.
async fn start(s: &HttpState, repo: &str) -> Result<Option<watch::Receiver<Outcome>>, String> {
    let (_, copy) = crate::storage::replica::open(&s.pool, &s.repos, repo, false)
        .await
        .map_err(|e| {
            tracing::warn!(%repo, error = %e, "audit: cannot open the repository");
            "the repository cannot be read now".to_string()
        })?;
    let branch = format!("refs/heads/{}", s.review.policy.default_branch);
    let Some(tip) = crate::repos::ref_target(&copy, &branch) else {
        return Ok(None);
    };
    let max_file_bytes = s.review.policy.max_file_bytes;
    let key = (tip, max_file_bytes);
    let tx = {
        let mut map = kept().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = map.get(&key) {
            return Ok(Some(rx.clone()));
        }
        if map.len() >= KEPT {
            // Finished ones go first; running ones are kept (their senders hold them).
            let done: Vec<_> = map
                .iter()
                .filter(|(_, rx)| rx.borrow().is_some())
                .map(|(k, _)| *k)
                .take(map.len() + 1 - KEPT)
                .collect();
            for k in done {
                map.remove(&k);
            }
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key, rx);
        tx
    };
    let name = repo.to_string();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            crate::receive::pre_receive::audit(&copy, tip, max_file_bytes)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map(|(files, problems)| Arc::new(Summary::of(tip.to_string(), files, &problems)))
        .map_err(|e| {
            tracing::warn!(repo = %name, error = %e, "audit: cannot read the tree");
            "the tree of the default branch cannot be read".to_string()
        });
        tracing::debug!(repo = %name, took = ?started.elapsed(), "audit counted");
        let _ = tx.send(Some(outcome));
    });
    Ok(Some(
        kept()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
            .expect("just inserted"),
    ))
}

/// The states of `repos`, all started at once and waited for until `wait` from now.
pub async fn states(s: &HttpState, repos: &[String], wait: Duration) -> HashMap<String, Progress> {
    let deadline = tokio::time::Instant::now() + wait;
    let all = futures_util::future::join_all(repos.iter().map(|r| state(s, r, deadline))).await;
    repos.iter().cloned().zip(all).collect()
}

#[derive(Deserialize)]
pub struct AuditQuery {
    repo: Option<String>,
}

/// `GET /api/audit[?repo=NAME]`: the audit counts of the repository's default branch
/// (the default repository's without `repo`).
pub async fn api(State(s): State<Arc<HttpState>>, Query(q): Query<AuditQuery>) -> Response {
    let requested = q.repo.as_deref().unwrap_or(crate::repos::DEFAULT_REPO);
    let Ok(repo) = crate::repos::RepoStore::canonical_name(requested) else {
        return json_error(
            StatusCode::NOT_FOUND,
            &format!("no repository `{requested}`"),
        );
    };
    let exists: Result<bool, _> = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM git_repos WHERE name = $1) AS "exists!""#,
        repo
    )
    .fetch_one(&s.pool)
    .await;
    match exists {
        Ok(true) => {}
        Ok(false) => return json_error(StatusCode::NOT_FOUND, &format!("no repository `{repo}`")),
        Err(e) => {
            tracing::error!(error = %e, "audit: database error");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
        }
    }
    let deadline = tokio::time::Instant::now() + API_WAIT;
    match state(&s, &repo, deadline).await {
        Progress::Ready(summary) => axum::Json(Audited {
            repo: &repo,
            audit: Some(&summary),
        })
        .into_response(),
        Progress::Empty => axum::Json(Audited {
            repo: &repo,
            audit: None,
        })
        .into_response(),
        Progress::Counting => {
            let mut r = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit of this tip is still being counted; try again shortly",
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            r
        }
        Progress::Failed(why) => json_error(StatusCode::SERVICE_UNAVAILABLE, &why),
    }
}

/// `GET /api/audit`'s answer: the audit of the repository's tip (`null`: an empty
/// repository).
#[derive(Serialize)]
struct Audited<'a> {
    repo: &'a str,
    audit: Option<&'a Summary>,
}

fn json_error(status: StatusCode, message: &str) -> Response {
    super::api::answers::Error::response(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skills::{Check, Level, Problem};

    #[test]
    fn counts_are_by_check_and_level() {
        let mut warning = Problem::new(Check::AgentInstructions, "skills/a.md", "x");
        warning.level = Level::Warning;
        let error = Problem::new(Check::Secret, "skills/b.md", "y");
        let s = Summary::of("abc".into(), 3, &[warning.clone(), warning, error]);
        assert_eq!((s.files, s.errors, s.warnings), (3, 1, 2));
        assert_eq!(
            s.checks["agent-instructions"],
            Counts {
                errors: 0,
                warnings: 2
            }
        );
        assert_eq!(
            s.checks["secret"],
            Counts {
                errors: 1,
                warnings: 0
            }
        );
    }
}
