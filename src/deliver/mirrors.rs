//! Push mirrors: a repository's branches and tags pushed to an upstream (GitHub,
//! GitLab, any SSH git server) after every accepted push, natively
//! ([`crate::upstream`]: the russh client and this server's pack generator).
//!
//! A mirror follows its repository rather than a list of events: a push raises the
//! mirror's `wanted_generation` ([`wanted`]) and a delivery pushes every ref that
//! differs from what the upstream holds, then records the generation it reached. Many
//! pushes while the upstream is down are one delivery when it is back. Without
//! `force`, a ref the upstream moved on its own is not overwritten: the mirror is
//! marked failing with the reason.

use super::{DeliverError, NOTIFY_CHANNEL, Result, Settings, backoff};
use crate::repos::RepoStore;
use crate::upstream::{self, HostKeys, PushOutcome, PushRequest, UpstreamUrl};
use chrono::{DateTime, Utc};
use gix::ObjectId;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

/// A mirror as `mirror list`, `status`, the API and the status pages show it (no key
/// but the public one).
#[derive(Debug, Clone, Serialize)]
pub struct Mirror {
    pub id: i64,
    pub repo: String,
    pub url: String,
    pub force: bool,
    pub public_key: String,
    /// SHA-256 fingerprints of the upstream host keys accepted (empty: pinned on the
    /// first contact).
    pub host_keys: Vec<String>,
    /// `in-sync`, `pending` or `failing`.
    pub state: String,
    /// The repository's branches and tags the upstream does not hold as they are here
    /// (as far as this mirror knows), and refs deleted here still there.
    pub refs_behind: i32,
    /// Seconds since the oldest push the upstream does not have yet.
    pub lag_seconds: Option<f64>,
    pub failures: i32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What `mirror add` made.
#[derive(Debug)]
pub struct Added {
    pub id: i64,
    /// The line the upstream must authorize (`ssh-ed25519 AAAA… skillsd-mirror-…`).
    pub public_key: String,
    /// The host keys accepted for the upstream, as fingerprints, and where they came
    /// from.
    pub host_keys: Vec<String>,
    pub host_keys_from: String,
}

/// Adds a mirror of `repo` to `url` with a key of its own. The upstream's host key
/// comes from `known_hosts` when given; otherwise it is asked for now and pinned, or,
/// when the upstream cannot be reached, pinned at the first contact.
pub async fn add(
    pool: &PgPool,
    repo: &str,
    url: &str,
    known_hosts: Option<&Path>,
    force: bool,
) -> Result<Added> {
    let parsed = UpstreamUrl::parse(url)?;
    super::repo_exists(pool, repo).await?;
    let (keys, from) = match known_hosts {
        Some(path) => {
            let keys = upstream::known_host_keys_file(path, &parsed.host, parsed.port)?;
            if keys.is_empty() {
                return Err(DeliverError::Invalid(format!(
                    "{} has no key for {} (port {}): add the upstream's host key to it \
                     (ssh-keyscan -p {} {}) or leave --known-hosts out to pin the key it shows",
                    path.display(),
                    parsed.host,
                    parsed.port,
                    parsed.port,
                    parsed.host
                )));
            }
            (keys, format!("from {}", path.display()))
        }
        None => match upstream::host_key(&parsed, Duration::from_secs(10)).await {
            Ok(key) => (
                vec![key],
                "pinned now: the key the upstream showed (check it against the \
                 provider's published fingerprints)"
                    .to_string(),
            ),
            Err(e) => (
                Vec::new(),
                format!("not pinned yet ({e}): it will be at the first contact"),
            ),
        },
    };
    let (private_key, public_key) =
        upstream::generate_key(&format!("skillsd-mirror-{repo}@{}", parsed.host));
    let key_texts: Vec<String> = keys.iter().map(public_key_text).collect();
    let id: Option<i64> = sqlx::query_scalar!(
        "INSERT INTO mirrors (repo, url, force, private_key, public_key, host_keys,
                              wanted_generation, pending_since)
         SELECT $1, $2, $3, $4, $5, $6, generation, now() FROM git_repos WHERE name = $1
         ON CONFLICT (repo, url) DO NOTHING RETURNING id",
        repo,
        parsed.display(),
        force,
        private_key,
        public_key,
        &key_texts,
    )
    .fetch_optional(pool)
    .await?;
    let id = id.ok_or_else(|| {
        DeliverError::Invalid(format!(
            "{repo} already has a mirror to {} (remove it first to change it)",
            parsed.display()
        ))
    })?;
    Ok(Added {
        id,
        public_key,
        host_keys: keys.iter().map(upstream::fingerprint).collect(),
        host_keys_from: from,
    })
}

/// Every mirror (of `repo`, or of all).
pub async fn list(pool: &PgPool, repo: Option<&str>) -> Result<Vec<Mirror>> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.repo, m.url, m.force, m.public_key, m.host_keys,
                ((SELECT count(*) FROM git_refs g
                   WHERE g.repo = m.repo AND (g.name LIKE 'refs/heads/%' OR g.name LIKE 'refs/tags/%')
                     AND (m.pushed_refs ->> g.name) IS DISTINCT FROM g.target)
                 + (SELECT count(*) FROM jsonb_object_keys(m.pushed_refs) k
                     WHERE NOT EXISTS (SELECT 1 FROM git_refs g WHERE g.repo = m.repo AND g.name = k))
                )::int AS "refs_behind!",
                m.failures, m.last_attempt_at, m.last_success_at, m.last_error, m.next_attempt_at,
                m.created_at, m.synced_generation < m.wanted_generation AS "pending!",
                extract(epoch FROM now() - m.pending_since)::float8 AS lag
         FROM mirrors m WHERE $1::text IS NULL OR m.repo = $1 ORDER BY m.repo, m.id"#,
        repo
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let (failures, pending, refs_behind) = (r.failures, r.pending, r.refs_behind);
            let state = if failures > 0 {
                "failing"
            } else if pending || refs_behind > 0 {
                "pending"
            } else {
                "in-sync"
            };
            Mirror {
                id: r.id,
                repo: r.repo,
                url: r.url,
                force: r.force,
                public_key: r.public_key,
                host_keys: r
                    .host_keys
                    .iter()
                    .filter_map(|k| parse_public_key(k).ok())
                    .map(|k| upstream::fingerprint(&k))
                    .collect(),
                state: state.to_string(),
                refs_behind,
                lag_seconds: if pending { r.lag } else { None },
                failures,
                last_attempt_at: r.last_attempt_at,
                last_success_at: r.last_success_at,
                last_error: r.last_error,
                next_attempt_at: (state != "in-sync").then_some(r.next_attempt_at),
                created_at: r.created_at,
            }
        })
        .collect())
}

/// Removes a mirror (by id, or by URL) of `repo`.
pub async fn remove(pool: &PgPool, repo: &str, which: &str) -> Result<bool> {
    let id: Option<i64> = which.parse().ok();
    let shown = UpstreamUrl::parse(which).map(|u| u.display()).ok();
    let done = sqlx::query!(
        "DELETE FROM mirrors WHERE repo = $1 AND (id = $2 OR url = $3 OR url = $4)",
        repo,
        id,
        which,
        shown,
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Inside a push's transaction: the repository's mirrors want its new state (the
/// generation the push is about to commit, `generation`), now.
pub async fn wanted(tx: &mut PgConnection, repo: &str, generation: i64) -> sqlx::Result<()> {
    let n = sqlx::query!(
        "UPDATE mirrors SET wanted_generation = greatest(wanted_generation, $2),
                            pending_since = coalesce(pending_since, now()),
                            next_attempt_at = now()
         WHERE repo = $1",
        repo,
        generation,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n > 0 {
        sqlx::query!("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A mirror claimed for one delivery.
struct Claimed {
    id: i64,
    repo: String,
    url: String,
    force: bool,
    private_key: String,
    host_keys: Vec<String>,
    pushed_refs: serde_json::Value,
    /// Failed deliveries in a row before this one.
    failures: i32,
}

fn lease(settings: &Settings) -> f64 {
    (settings.mirror_timeout + Duration::from_secs(60)).as_secs_f64()
}

/// Delivers every mirror that is behind and due, one at a time. Returns how many were
/// tried.
pub async fn deliver_due(pool: &PgPool, repos: &RepoStore, settings: &Settings) -> Result<usize> {
    let mut tried = 0;
    loop {
        let claimed = sqlx::query_as!(
            Claimed,
            "UPDATE mirrors SET lease_until = now() + make_interval(secs => $1),
                                lease_owner = $2, last_attempt_at = now()
             WHERE id = (SELECT id FROM mirrors
                          WHERE synced_generation < wanted_generation AND next_attempt_at <= now()
                            AND (lease_until IS NULL OR lease_until < now())
                          ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id, repo, url, force, private_key, host_keys, pushed_refs, failures",
            lease(settings),
            crate::storage::node_id(),
        )
        .fetch_optional(pool)
        .await?;
        let Some(claimed) = claimed else {
            return Ok(tried);
        };
        tried += 1;
        deliver(pool, repos, settings, claimed).await?;
    }
}

/// `mirror sync`: delivers the mirrors of `repo` now (all, or the one named by id or
/// URL), whether or not they are behind. A mirror another node is delivering is
/// skipped and said so.
pub async fn sync_now(
    pool: &PgPool,
    repos: &RepoStore,
    settings: &Settings,
    repo: &str,
    which: Option<&str>,
) -> Result<Vec<(Mirror, Option<String>)>> {
    let id: Option<i64> = which.and_then(|w| w.parse().ok());
    let shown = which.and_then(|w| UpstreamUrl::parse(w).ok().map(|u| u.display()));
    let ids: Vec<i64> = sqlx::query_scalar!(
        "SELECT id FROM mirrors WHERE repo = $1
           AND ($2::text IS NULL OR id = $3 OR url = $2 OR url = $4) ORDER BY id",
        repo,
        which,
        id,
        shown,
    )
    .fetch_all(pool)
    .await?;
    if ids.is_empty() {
        return Err(DeliverError::Invalid(match which {
            Some(w) => format!("{repo} has no mirror `{w}` (see `skillsd mirror list`)"),
            None => format!("{repo} has no mirrors (add one with `skillsd mirror add`)"),
        }));
    }
    let mut notes = HashMap::new();
    for &id in &ids {
        let claimed = sqlx::query_as!(
            Claimed,
            "UPDATE mirrors SET lease_until = now() + make_interval(secs => $1),
                                lease_owner = $3, last_attempt_at = now()
             WHERE id = $2 AND (lease_until IS NULL OR lease_until < now())
             RETURNING id, repo, url, force, private_key, host_keys, pushed_refs, failures",
            lease(settings),
            id,
            crate::storage::node_id(),
        )
        .fetch_optional(pool)
        .await?;
        match claimed {
            Some(claimed) => deliver(pool, repos, settings, claimed).await?,
            None => {
                notes.insert(
                    id,
                    "another node is delivering it now; not tried".to_string(),
                );
            }
        }
    }
    // Their state after it all.
    let states: Vec<Mirror> = list(pool, Some(repo))
        .await?
        .into_iter()
        .filter(|m| ids.contains(&m.id))
        .collect();
    if states.len() < ids.len() {
        return Err(DeliverError::Invalid(
            "the mirror was removed meanwhile".into(),
        ));
    }
    Ok(states
        .into_iter()
        .map(|m| {
            let note = notes.remove(&m.id);
            (m, note)
        })
        .collect())
}

/// One delivery of a claimed mirror, recorded whatever its outcome (only a database
/// error is returned).
async fn deliver(pool: &PgPool, repos: &RepoStore, settings: &Settings, m: Claimed) -> Result<()> {
    let pushed: HashMap<String, ObjectId> = m
        .pushed_refs
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    let attempt = attempt(pool, repos, settings, &m, &pushed).await;
    match attempt {
        Ok((generation, ours, outcome)) => {
            record_outcome(pool, settings, &m, pushed, generation, &ours, &outcome).await
        }
        Err(e) => {
            let error = e.to_string();
            tracing::warn!(mirror = m.id, repo = %m.repo, url = %m.url, error, "mirror push failed");
            crate::metrics::global().mirror_push(false);
            sqlx::query!(
                "UPDATE mirrors SET failures = failures + 1, last_error = $2,
                        next_attempt_at = now() + make_interval(secs => $3), lease_until = NULL
                 WHERE id = $1",
                m.id,
                error,
                failure_wait(settings, &m),
            )
            .execute(pool)
            .await?;
            Ok(())
        }
    }
}

/// The wait after this delivery failed too (seconds).
fn failure_wait(settings: &Settings, m: &Claimed) -> f64 {
    backoff(settings, m.failures as u32 + 1).as_secs_f64()
}

/// Brings the copy current, reads its branches and tags, and pushes. Returns the
/// generation the refs were read at, the refs, and the upstream's answers.
async fn attempt(
    pool: &PgPool,
    repos: &RepoStore,
    settings: &Settings,
    m: &Claimed,
    pushed: &HashMap<String, ObjectId>,
) -> Result<(i64, Vec<(String, ObjectId)>, PushOutcome)> {
    let url = UpstreamUrl::parse(&m.url)?;
    let (name, repo) = crate::storage::replica::open(pool, repos, &m.repo, true)
        .await
        .map_err(|e| DeliverError::Invalid(format!("cannot read {}: {e}", m.repo)))?;
    let path = repos.path_of(&name);
    // No gc deletes a pack of the copy while the pack for the upstream is made.
    let guard_path = path.clone();
    let _reading = tokio::task::spawn_blocking(move || crate::maintenance::read_guard(&guard_path))
        .await
        .map_err(DeliverError::git)?;
    let generation = crate::storage::replica::local_generation(&path).unwrap_or(0);
    let ours: Vec<(String, ObjectId)> = crate::repos::ref_states(&repo)
        .map_err(DeliverError::git)?
        .into_iter()
        .filter(|r| r.problem.is_none())
        .filter(|r| r.name.starts_with("refs/heads/") || r.name.starts_with("refs/tags/"))
        .filter_map(|r| Some((r.name, r.target.parse().ok()?)))
        .collect();
    drop(repo);
    let keys = m
        .host_keys
        .iter()
        .map(|k| parse_public_key(k))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let host_keys = HostKeys {
        accept_any: keys.is_empty(),
        keys,
    };
    let outcome = upstream::push(PushRequest {
        url: &url,
        private_key_pem: &m.private_key,
        host_keys: &host_keys,
        repo_path: &path,
        refs: ours.clone(),
        last_pushed: pushed.clone(),
        force: m.force,
        timeout: settings.mirror_timeout,
    })
    .await?;
    Ok((generation, ours, outcome))
}

/// Records an attempt the upstream answered: what it now holds (as far as this mirror
/// wrote it), the host key pinned on first contact, and success or the reasons.
async fn record_outcome(
    pool: &PgPool,
    settings: &Settings,
    m: &Claimed,
    mut pushed: HashMap<String, ObjectId>,
    generation: i64,
    ours: &[(String, ObjectId)],
    outcome: &PushOutcome,
) -> Result<()> {
    let mut problems = Vec::new();
    for u in &outcome.updates {
        match (&u.result, u.new) {
            (Ok(()), Some(new)) => {
                pushed.insert(u.name.clone(), new);
            }
            (Ok(()), None) => {
                pushed.remove(&u.name);
            }
            (Err(why), _) => problems.push(format!("{}: the upstream refused it: {why}", u.name)),
        }
    }
    let ours_map: HashMap<&str, ObjectId> = ours.iter().map(|(n, o)| (n.as_str(), *o)).collect();
    for name in &outcome.in_sync {
        if let Some(o) = ours_map.get(name.as_str()) {
            pushed.insert(name.clone(), *o);
        }
    }
    for d in &outcome.diverged {
        problems.push(format!(
            "{}: diverged on the upstream (it has {}, which is not in this repository's \
             history of the ref); not overwritten: bring the upstream back to skillsd's \
             history, or re-add the mirror with --force",
            d.name,
            short(&d.upstream)
        ));
    }
    let behind = ours
        .iter()
        .filter(|(n, o)| pushed.get(n) != Some(o))
        .count()
        + pushed
            .keys()
            .filter(|n| !ours_map.contains_key(n.as_str()))
            .count();
    let pushed_json: BTreeMap<String, String> = pushed
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let pin = (m.host_keys.is_empty()).then(|| public_key_text(&outcome.host_key));
    let ok = problems.is_empty() && behind == 0;
    crate::metrics::global().mirror_push(ok);
    if ok {
        tracing::info!(mirror = m.id, repo = %m.repo, url = %m.url, generation, "mirror in sync");
        sqlx::query!(
            "UPDATE mirrors SET pushed_refs = $2, synced_generation = greatest(synced_generation, $3),
                    pending_since = CASE WHEN wanted_generation > $3 THEN now() END,
                    failures = 0, last_error = NULL, last_success_at = now(),
                    host_keys = CASE WHEN $4::text IS NULL THEN host_keys ELSE ARRAY[$4] END,
                    lease_until = NULL
             WHERE id = $1",
            m.id,
            sqlx::types::Json(&pushed_json) as _,
            generation,
            pin,
        )
        .execute(pool)
        .await?;
    } else {
        let error = if problems.is_empty() {
            format!("{behind} refs are not on the upstream yet")
        } else {
            problems.join("; ")
        };
        tracing::warn!(mirror = m.id, repo = %m.repo, url = %m.url, error, "mirror push incomplete");
        sqlx::query!(
            "UPDATE mirrors SET pushed_refs = $2, failures = failures + 1, last_error = $3,
                    next_attempt_at = now() + make_interval(secs => $4),
                    host_keys = CASE WHEN $5::text IS NULL THEN host_keys ELSE ARRAY[$5] END,
                    lease_until = NULL
             WHERE id = $1",
            m.id,
            sqlx::types::Json(&pushed_json) as _,
            error,
            failure_wait(settings, m),
            pin,
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// The mirrors as Prometheus gauges, one series per mirror (`repo`, `mirror` id).
pub fn render_metrics(mirrors: &[Mirror]) -> String {
    crate::metrics::render_gauges(
        mirrors,
        |m| vec![("repo", m.repo.clone()), ("mirror", m.id.to_string())],
        &[
            (
                "skillsd_mirror_lag_seconds",
                "Seconds since the oldest push the mirror lacks (0: in sync).",
                |m| m.lag_seconds.unwrap_or(0.0),
            ),
            (
                "skillsd_mirror_refs_behind",
                "Branches and tags the upstream does not hold as they are here.",
                |m| f64::from(m.refs_behind),
            ),
            (
                "skillsd_mirror_failing",
                "1 when the mirror's last attempt failed.",
                |m| f64::from(u8::from(m.state == "failing")),
            ),
            (
                "skillsd_mirror_last_success_timestamp_seconds",
                "When the mirror was last in sync (0: never).",
                |m| {
                    m.last_success_at
                        .map(|t| t.timestamp() as f64)
                        .unwrap_or(0.0)
                },
            ),
        ],
    )
}

/// A host key as stored: its OpenSSH public line.
fn public_key_text(key: &russh::keys::PublicKey) -> String {
    key.to_openssh().unwrap_or_default()
}

fn parse_public_key(text: &str) -> Result<russh::keys::PublicKey> {
    russh::keys::PublicKey::from_openssh(text)
        .map_err(|e| DeliverError::Invalid(format!("a stored host key does not parse: {e}")))
}

fn short(id: &ObjectId) -> String {
    id.to_string()[..12].to_string()
}
