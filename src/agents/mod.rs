//! Skills for agents, straight from skillsd: the Agent Skills discovery index
//! (`/.well-known/agent-skills/index.json`) of the published skills of a repository's
//! default branch, each skill's files and, for a folder, a deterministic `.tar.gz`.
//!
//! * [`index`]: what is published (the cache's `PUBLISHED` rows at the commit
//!   `sync_state` names) and the bytes of it (this node's copy of git, by blob id),
//!   with their digests; the index document.
//! * [`serve`]: the routes, ETags and `If-None-Match`, `Cache-Control`, refusals.
//! * [`mcp`]: the same published skills over MCP (`/mcp`): tools, `skill://`
//!   resources, SEP-2640's `skills/list` and `skills/get`, change notifications.
//! * [`marketplace`]: Claude Code's and Codex's plugin marketplace manifests of the
//!   same skills, each entry a git source pinned to the published commit.
//! * [`versions`]: `/api/skills/{slug}/versions`, each version read from git history.
//!
//! [`Catalog`] keeps each repository's built index in memory, keyed by what the cache
//! reflects ([`index::Key`]): a request asks the database for that key and is answered
//! from memory while it holds; a push or reconcile that moves the cache moves the key,
//! and the next request builds the index again (skills whose files did not change are
//! carried over, not read again). The key is read by a query that starts after the
//! request arrived, so a push that returned before it is served, on every node; under
//! load, the requests that arrive while one query runs share the next one
//! ([`KeyReads`]).

pub mod index;
pub mod marketplace;
pub mod mcp;
pub mod serve;
pub mod versions;

use index::{Key, Published, Row};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where the well-known paths start.
pub const WELL_KNOWN: &str = "/.well-known/agent-skills";

/// Is `path` (as requested, percent-encoded) one of the agents' paths:
/// `/.well-known/agent-skills[/…]` or a marketplace manifest
/// ([`marketplace::is_manifest_path`]), at the root or under `/{repo}`?
pub fn is_agents_path(path: &str) -> bool {
    fn under(p: &str) -> bool {
        p.strip_prefix(WELL_KNOWN)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            || marketplace::is_manifest_path(p)
    }
    under(path)
        || path
            .strip_prefix('/')
            .and_then(|p| p.find('/').map(|i| &path[i + 1..]))
            .is_some_and(under)
}

/// Why the published skills cannot be had now.
#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error("database unavailable")]
    Database(#[from] sqlx::Error),
    #[error("the repository's skills cannot be read: {0}")]
    Git(String),
}

/// One repository's published skills: the last built (`ready`, read without waiting)
/// and the lock a build is made under.
#[derive(Default)]
struct Slot {
    ready: Mutex<Option<Arc<Published>>>,
    building: tokio::sync::Mutex<()>,
    keys: KeyReads,
}

/// Reads of one repository's [`Key`], shared by the requests that wait for the same
/// query. A request joins the batch whose query has not started yet, so what it gets
/// was read after it arrived: a push that returned before the request is seen, on any
/// node. Queries run one at a time: the requests that arrive while one runs form the
/// next batch, and one query answers them all (under load, a few queries a
/// millisecond instead of one per request). A query that fails or is cancelled is run
/// again by the next waiter of its batch.
#[derive(Default)]
struct KeyReads {
    /// The batch whose query has not started.
    pending: Mutex<Option<Batch>>,
    /// Held while a query runs.
    running: tokio::sync::Mutex<()>,
}

/// What one query read: the key, `None` when the repository does not exist.
type Batch = Arc<tokio::sync::OnceCell<Option<Key>>>;

impl KeyReads {
    async fn key(&self, pool: &PgPool, repo: &str) -> Result<Option<Key>, AgentsError> {
        let batch = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Default::default)
            .clone();
        let read = batch
            .get_or_try_init(|| async {
                let _running = self.running.lock().await;
                // The query starts now, after every request of the batch arrived: the
                // ones arriving from here on wait for the next.
                {
                    let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    if pending.as_ref().is_some_and(|p| Arc::ptr_eq(p, &batch)) {
                        *pending = None;
                    }
                }
                key_of(pool, repo).await
            })
            .await?;
        Ok(read.clone())
    }
}

/// What the agents' endpoints share. The web's state holds one
/// ([`crate::web::HttpState::agents`]) and hands it to [`router`].
pub struct AgentsState {
    pub pool: PgPool,
    pub repos: crate::repos::RepoStore,
    /// The published skills as agents fetch them, built once per state of the cache.
    pub catalog: Catalog,
    /// The MCP server's sessions and change notifications ([`mcp`]).
    pub mcp: mcp::Mcp,
    /// Only signed-in users may read (`SKILLSD_WEB_ACCESS=signed-in`): answers are
    /// private to them, never shared by caches.
    pub signed_in: bool,
    /// The cache's changes, as the live pages get them ([`crate::web::live::relay`]).
    pub events: tokio::sync::broadcast::Sender<String>,
    /// The SSH clone address the marketplace manifests name (`SKILLSD_SSH_URL`;
    /// `None`: made from the addresses below, [`marketplace::ssh_base`]).
    pub ssh_url: Option<String>,
    /// The SSH listener's address.
    pub ssh_addr: Option<std::net::SocketAddr>,
    /// `SKILLSD_PUBLIC_URL`.
    pub public_url: Option<String>,
}

/// Every endpoint agents use: the discovery index and its files ([`serve`]), the
/// versions ([`versions`]), the marketplaces ([`marketplace`]) and MCP ([`mcp`]).
pub fn router<S: Clone + Send + Sync + 'static>(state: Arc<AgentsState>) -> axum::Router<S> {
    axum::Router::new()
        .merge(serve::router())
        .merge(mcp::router())
        .merge(marketplace::router())
        .merge(versions::router())
        .with_state(state)
}

/// Each repository's published skills, built at most once per [`Key`].
#[derive(Default)]
pub struct Catalog {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Rendered marketplace manifests: per repository, format and clone URL.
    pub(crate) manifests: Mutex<ManifestCache>,
}

type ManifestCache = HashMap<(String, marketplace::Flavor, String), Arc<marketplace::Rendered>>;

impl Catalog {
    /// The published skills of `repo` as the cache has them now; `None` when there is
    /// no such repository. One query when the index in memory is current; otherwise
    /// it is built again (one build per repository at a time: the others wait for it).
    pub async fn current(
        &self,
        pool: &PgPool,
        repos: &crate::repos::RepoStore,
        repo: &str,
    ) -> Result<Option<Arc<Published>>, AgentsError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.get(repo) {
                Some(slot) => slot.clone(),
                None => slots.entry(repo.to_string()).or_default().clone(),
            }
        };
        let Some(key) = slot.keys.key(pool, repo).await? else {
            return Ok(None);
        };
        let ready = |slot: &Slot| {
            slot.ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .filter(|p| p.key == key)
                .cloned()
        };
        if let Some(p) = ready(&slot) {
            return Ok(Some(p));
        }
        let _building = slot.building.lock().await;
        if let Some(p) = ready(&slot) {
            return Ok(Some(p));
        }
        let previous = slot.ready.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (key, rows) = snapshot(pool, repo).await?;
        let (_, copy) = crate::storage::replica::open(pool, repos, repo, false)
            .await
            .map_err(|e| AgentsError::Git(e.to_string()))?;
        let name = repo.to_string();
        let built = tokio::task::spawn_blocking(move || {
            index::build(
                &copy,
                &name,
                &key,
                &rows,
                previous.as_deref(),
                index::MEMORY_BUDGET,
            )
        })
        .await
        .map_err(|e| AgentsError::Git(e.to_string()))?
        .map_err(|e| AgentsError::Git(e.to_string()))?;
        tracing::info!(
            repo = %built.repo,
            commit = built.key.commit.as_deref().unwrap_or("none"),
            served = built.skills.len(),
            left_out = built.left_out.len(),
            "agent skills index built"
        );
        for (path, why) in &built.left_out {
            tracing::debug!(repo = %built.repo, %path, %why, "published skill not served to agents");
        }
        let built = Arc::new(built);
        *slot.ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(built.clone());
        Ok(Some(built))
    }
}

/// The [`Key`] of `repo`'s cache, `None` when the repository does not exist.
async fn key_of(pool: &PgPool, repo: &str) -> Result<Option<Key>, AgentsError> {
    let row = sqlx::query!(
        r#"SELECT s.commit_sha AS "commit_sha?", s.updated_at AS "updated_at?"
         FROM git_repos r LEFT JOIN sync_state s ON s.repo = r.name AND s.branch = $2
         WHERE r.name = $1"#,
        repo,
        crate::repos::DEFAULT_BRANCH,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Key {
        commit: r.commit_sha,
        synced_at: r.updated_at,
    }))
}

/// The key and the `PUBLISHED` rows of `repo`, read in one snapshot.
async fn snapshot(pool: &PgPool, repo: &str) -> Result<(Key, Vec<Row>), AgentsError> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let key = sqlx::query!(
        "SELECT commit_sha, updated_at FROM sync_state WHERE repo = $1 AND branch = $2",
        repo,
        crate::repos::DEFAULT_BRANCH,
    )
    .fetch_optional(&mut *tx)
    .await?;
    // The latest version comes through a LEFT JOIN: absent before the first.
    let rows = sqlx::query!(
        r#"SELECT s.slug, s.path, s.blob_sha, s.frontmatter,
                  v.version AS "version?", v.digest AS "digest?"
         FROM skills s
         LEFT JOIN LATERAL (SELECT version, digest FROM skill_versions
                            WHERE skill_id = s.id ORDER BY version DESC LIMIT 1) v ON true
         WHERE s.repo = $1 AND s.status = 'PUBLISHED' ORDER BY s.slug"#,
        repo,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let key = Key {
        commit: key.as_ref().map(|k| k.commit_sha.clone()),
        synced_at: key.map(|k| k.updated_at),
    };
    let rows = rows
        .into_iter()
        .map(|r| Row {
            slug: r.slug,
            path: r.path,
            blob_sha: r.blob_sha,
            frontmatter: r.frontmatter,
            version: r.version.zip(r.digest).map(|(n, d)| (i64::from(n), d)),
        })
        .collect();
    Ok((key, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_paths_are_the_well_known_ones_at_the_root_or_under_one_repository() {
        assert!(is_agents_path("/.well-known/agent-skills/index.json"));
        assert!(is_agents_path("/.well-known/agent-skills"));
        assert!(is_agents_path("/.well-known/agent-skills/x/SKILL.md"));
        assert!(is_agents_path("/team/.well-known/agent-skills/index.json"));
        assert!(is_agents_path("/skills/.well-known/agent-skills/a.tar.gz"));
        assert!(!is_agents_path("/.well-known/agent-skillsx"));
        assert!(!is_agents_path("/a/b/.well-known/agent-skills/index.json"));
        assert!(!is_agents_path("/skills/commit-messages"));
        assert!(!is_agents_path("/.well-known/other"));
        assert!(!is_agents_path("/"));
        assert!(is_agents_path("/.claude-plugin/marketplace.json"));
        assert!(is_agents_path("/team/.claude-plugin/marketplace.json"));
        assert!(is_agents_path("/.agents/plugins/marketplace.json"));
        assert!(is_agents_path("/team/.agents/plugins/marketplace.json"));
        assert!(!is_agents_path("/a/b/.claude-plugin/marketplace.json"));
        assert!(!is_agents_path("/.claude-plugin/plugin.json"));
    }
}
