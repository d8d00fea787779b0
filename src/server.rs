//! `skillsd serve`: prepares the data directory (host key, database, migrations,
//! default repository) and runs the SSH server until shut down.

use crate::config::Settings;
use crate::localpg::LocalPg;
use crate::repos::{DEFAULT_REPO, RepoStore};
use crate::ssh::{AppState, SshServer};
use russh::keys::PrivateKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// (The cause is in the error's chain: `main` prints it after the message.)
    #[error("cannot listen on {addr} (choose another address with --listen ADDR or --http ADDR)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    HostKey(#[from] crate::storage::identity::IdentityError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    LocalPg(#[from] crate::localpg::LocalPgError),
    #[error(transparent)]
    Repo(#[from] crate::repos::RepoError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the database is.
pub enum Database {
    Url(String),
    /// A private cluster under `<data-dir>/postgres`.
    Local,
}

impl Database {
    /// The database the settings name: a URL, else the private cluster.
    pub fn of(settings: &Settings) -> Database {
        match &settings.database_url {
            Some(u) if !u.is_empty() => Database::Url(u.clone()),
            _ => Database::Local,
        }
    }
}

/// Resolves the database URL, starting the private cluster when needed; when this
/// call started it, the guard that stops it again.
pub async fn database_url(
    db: &Database,
    data_dir: &Path,
) -> Result<(String, Option<crate::localpg::StartedCluster>), ServeError> {
    match db {
        Database::Url(u) => Ok((u.clone(), None)),
        Database::Local => {
            let pg = LocalPg::new(&data_dir.join("postgres"))?;
            let pg2 = pg.clone();
            let started = tokio::task::spawn_blocking(move || pg2.ensure_running(true)).await??;
            let guard = started.then(|| pg.clone().stop_on_drop());
            pg.create_database("skillsd").await?;
            Ok((pg.url("skillsd"), guard))
        }
    }
}

/// A prepared server: everything but the listening socket.
pub struct Prepared {
    pub state: Arc<AppState>,
    /// What it was prepared with; `run` takes its connection limits, timeouts and the
    /// HTTP admin token from here.
    pub settings: Settings,
    pub host_key: PrivateKey,
    pub data_dir: PathBuf,
    /// The database in use (with its password, if any: redact before showing).
    pub database_url: String,
    /// The private PostgreSQL this start launched: stopped when dropped, after the
    /// server has shut down.
    pub private_pg: Option<crate::localpg::StartedCluster>,
    /// This node's mirror and webhook worker ([`crate::deliver::spawn`]): stopped at
    /// shutdown, and its leases given back for another node.
    pub deliveries: tokio::task::JoinHandle<()>,
}

/// First-start work, with `settings`: data dir, host key, database and migrations,
/// the default repository, leftover quarantines.
pub async fn prepare(settings: &Settings) -> Result<Prepared, ServeError> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let data_dir = std::path::absolute(&settings.data_dir)?;
    let (url, private_pg) = database_url(&Database::of(settings), &data_dir).await?;
    let pool = crate::db::connect(&url).await?;
    crate::cache::prepare(&pool).await?;
    let login_pool = crate::db::connect_logins(&url)?;
    let (host_key, key_origin) =
        crate::storage::identity::host_key(&pool, &data_dir, settings.host_key.as_deref()).await?;
    tracing::info!(
        fingerprint = %crate::storage::identity::fingerprint(&host_key),
        from = %key_origin,
        "SSH host key"
    );
    let repos = RepoStore::new(&data_dir, settings.store());
    for name in repos.list() {
        let objects = repos.path_of(&name).join("objects");
        match crate::incoming::quarantine::remove_leftovers(&objects) {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(repo = %name, count = n, "removed quarantines left by an earlier crash")
            }
            Err(e) => {
                tracing::warn!(repo = %name, error = %e, "could not check for leftover quarantines")
            }
        }
    }
    adopt_repositories(&pool, &repos).await?;
    reconcile_all(&pool, &repos).await;
    // Vectors a crash left unfilled, indexes left unbuilt, pending lists not moved.
    crate::cache::catch_up_in_background(&tokio::runtime::Handle::current(), &pool);
    crate::cache::periodic::spawn(pool.clone(), repos.clone(), settings.reconcile_every);
    crate::storage::replica::spawn_prefetch(pool.clone(), repos.clone());
    let deliveries = crate::deliver::spawn(pool.clone(), repos.clone(), settings.delivery.clone());
    Ok(Prepared {
        state: Arc::new(
            AppState::new(
                pool,
                repos,
                settings.policy.clone(),
                settings.limits.clone(),
            )
            .with_login_pool(login_pool)
            .with_web_url(
                settings
                    .public_url
                    .clone()
                    .or_else(|| settings.http.map(|a| format!("http://{a}"))),
            ),
        ),
        settings: settings.clone(),
        host_key,
        data_dir,
        database_url: url,
        private_pg,
        deliveries,
    })
}

/// Brings the data dir and the database together at start: a repository only this
/// data dir has (the single-node layout, or `skillsd init`) is imported into the
/// database; the default repository is created from the template when neither has
/// it; every repository of the database gets a current copy here.
pub async fn adopt_repositories(pool: &sqlx::PgPool, repos: &RepoStore) -> Result<(), ServeError> {
    let in_db = crate::storage::replica::db_repos(pool).await?;
    if !in_db.iter().any(|n| n == DEFAULT_REPO) && !repos.exists(DEFAULT_REPO) {
        repos.create(DEFAULT_REPO, false)?;
        tracing::info!(
            repo = DEFAULT_REPO,
            "created repository from the skills template"
        );
    }
    let rt = tokio::runtime::Handle::current();
    for name in repos.list() {
        if in_db.contains(&name) {
            continue;
        }
        let (rt, pool, repos, name2) = (rt.clone(), pool.clone(), repos.clone(), name.clone());
        let imported = tokio::task::spawn_blocking(move || {
            crate::storage::import::import(&rt, &pool, &repos, &name2)
        })
        .await??;
        match imported {
            Some(i) => tracing::info!(
                repo = %name, refs = i.refs, packs = i.packs, bytes = i.bytes,
                skipped = ?i.skipped, "imported the repository into the database"
            ),
            None => {
                tracing::info!(repo = %name, "the database already holds this repository; this copy follows it")
            }
        }
    }
    for name in crate::storage::replica::db_repos(pool).await? {
        // Every read tries again; the node serves what it can meanwhile.
        if let Err(e) = crate::storage::replica::refresh_async(pool, repos, &name).await {
            tracing::error!(repo = %name, error = %e, "cannot bring this node's copy up to date");
        }
    }
    Ok(())
}

/// Reconciles every repository's cache with its default branch (after a crash, a push
/// made while the database was away, a cache edited by hand, or a repository created
/// from the template).
pub async fn reconcile_all(pool: &sqlx::PgPool, repos: &RepoStore) {
    for name in repos.list() {
        let (name, repo) = match repos.open(&name) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(repo = %name, error = %e, "cannot open repository");
                continue;
            }
        };
        let rt = tokio::runtime::Handle::current();
        let pool = pool.clone();
        let bulk_from = repos.settings.bulk_load_from;
        let result = tokio::task::spawn_blocking(move || {
            // Pushes the last run stopped in first: their changes are logged under
            // their pushers, then the reconcile checks everything.
            let branch = crate::repos::DEFAULT_BRANCH;
            if let Err(e) = crate::cache::sync::finish_interrupted(&rt, &pool, &repo, &name, branch) {
                tracing::error!(repo = %name, error = %e, "could not complete the interrupted pushes");
            }
            crate::cache::sync::reconcile(&rt, &pool, &repo, &name, branch, bulk_from)
                .map(|o| (name, o))
        })
        .await;
        match result {
            Ok(Ok((name, outcome))) => {
                tracing::info!(repo = %name, summary = %outcome.summary(), "cache in step with git")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cache reconcile failed"),
            Err(e) => tracing::error!(error = %e, "cache reconcile panicked"),
        }
    }
}

/// The russh configuration; connections without traffic for `idle` are closed.
pub fn ssh_config(host_key: PrivateKey, idle: Duration) -> russh::server::Config {
    russh::server::Config {
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(20),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        // A connection with no traffic for this long (also one that authenticated and
        // never ran a command) is closed: SKILLSD_IDLE_TIMEOUT_SECS, default 300.
        inactivity_timeout: Some(idle),
        keepalive_interval: Some(Duration::from_secs(30)),
        keys: vec![host_key],
        nodelay: true,
        ..Default::default()
    }
}

/// Serves SSH on `listener` (and HTTP on `http`, when given) until `shutdown` completes.
pub async fn run(
    prepared: Prepared,
    listener: tokio::net::TcpListener,
    http: Option<tokio::net::TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let deliveries = prepared.deliveries;
    if let Some(http) = http {
        start_http(
            &prepared.settings,
            &prepared.state,
            &prepared.database_url,
            http,
            listener.local_addr().ok(),
            &stop_rx,
        );
    }
    let state = prepared.state.clone();
    let settings = &prepared.settings;
    let shared = Shared::new(prepared.state.clone(), prepared.host_key, settings);
    // Our own accept loop, so that shutting down stops new connections but lets the
    // sessions in flight (pushes, clones) finish, up to a grace period.
    let (force_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = crate::net::AcceptBackoff::default();
    // Most SSH connections open at once: a connection over the cap is closed at
    // once, so idle connections cannot take every file descriptor.
    let cap = crate::net::ConnectionCap::new(settings.max_connections);
    let proxy_protocol = settings.proxy_protocol.clone();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => {
                        backoff.succeeded();
                        a
                    }
                    Err(e) => {
                        // Out of descriptors (or memory): wait, never spin.
                        let wait = backoff.failed("ssh", &e);
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        continue;
                    }
                };
                let Some(permit) = cap.try_take() else {
                    tracing::debug!(%peer, "SSH connection cap reached; closing");
                    crate::metrics::METRICS.connection_refused();
                    continue;
                };
                // A balancer's connection names its client in a PROXY header, read
                // in the connection's task (under the login grace); admission is by
                // that client's address.
                let early = if proxy_protocol.sends_header(peer.ip()) {
                    None
                } else {
                    let Some(startup) = shared.admit(peer) else { continue };
                    Some(startup)
                };
                let _ = socket.set_nodelay(true);
                let connection = Connection {
                    socket,
                    peer,
                    early,
                    force: force_tx.subscribe(),
                };
                let shared = shared.clone();
                state.tasks.spawn(async move {
                    let _permit = permit;
                    shared.serve(connection).await;
                });
            }
        }
    }
    drop(listener);
    drain(
        &state,
        deliveries,
        &force_tx,
        stop_tx,
        settings.shutdown_grace,
    )
    .await;
    Ok(())
}

/// The status pages, the API and MCP on their own listener, with the tasks that feed
/// them (the live stream, MCP's catalog watch), until `stop` says so.
fn start_http(
    settings: &Settings,
    app: &Arc<AppState>,
    database_url: &str,
    http: tokio::net::TcpListener,
    ssh_addr: Option<SocketAddr>,
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    let stop_rx = stop;
    // The pages and the API read through a pool of their own.
    let web_pool = crate::db::connect_web(database_url).unwrap_or_else(|_| app.pool.clone());
    let events = crate::web::live::channel();
    let agents = Arc::new(crate::agents::AgentsState {
        pool: web_pool.clone(),
        repos: app.repos.clone(),
        catalog: crate::agents::Catalog::default(),
        mcp: crate::agents::mcp::Mcp::new(settings.mcp),
        signed_in: settings.web_access == crate::web::WebAccess::SignedIn,
        events: events.clone(),
        ssh_url: settings.ssh_url.clone(),
        ssh_addr,
        public_url: settings.public_url.clone(),
    });
    let state = Arc::new(crate::web::HttpState {
        pool: web_pool,
        repos: app.repos.clone(),
        admin_token: settings.admin_token.clone(),
        web_access: settings.web_access,
        metrics_access: settings.metrics,
        metrics_token: settings.metrics_token.clone(),
        secure_cookies: settings
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
        events: events.clone(),
        streams: crate::web::live::stream_admission(),
        review: crate::review::Service {
            pool: app.pool.clone(),
            ..app.review()
        },
        agents: agents.clone(),
        public_url: settings.public_url.clone(),
    });
    tokio::spawn(crate::agents::mcp::watch(agents, stop_rx.clone()));
    tokio::spawn(crate::web::live::relay(
        state.pool.clone(),
        state.events.clone(),
        stop_rx.clone(),
    ));
    let limits = settings.http_limits;
    let mut rx = stop_rx.clone();
    tokio::spawn(async move {
        let stopped = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = crate::web::serve(http, state, limits, stopped).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
}

/// What every SSH connection's task shares.
#[derive(Clone)]
struct Shared {
    server: SshServer,
    config: Arc<russh::server::Config>,
    startups: Arc<crate::net::Admission>,
    login_grace: Duration,
    idle: Duration,
}

/// One accepted SSH connection.
struct Connection {
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    /// Its place among the connections signing in, when taken at accept (`None`:
    /// a balancer's connection, admitted by the client its PROXY header names).
    early: Option<crate::net::Admitted>,
    /// Says when the shutdown's grace period is over.
    force: tokio::sync::broadcast::Receiver<()>,
}

impl Shared {
    fn new(state: Arc<AppState>, host_key: PrivateKey, settings: &Settings) -> Shared {
        Shared {
            server: SshServer { state },
            config: Arc::new(ssh_config(host_key, settings.idle_timeout)),
            // Connections that have not signed in yet: a few per address, a reserve for
            // new addresses, and each must sign in within the login grace time — sockets
            // that never speak cannot lock out everyone's logins (OpenSSH's MaxStartups,
            // PerSourceMaxStartups, LoginGraceTime).
            startups: crate::net::Admission::new(
                settings.max_startups,
                settings.max_startups_per_source,
                (settings.max_startups / 5).max(2),
            ),
            login_grace: settings.login_grace,
            idle: settings.idle_timeout,
        }
    }

    /// A place among the connections signing in for `peer`'s address (`None`: none
    /// left; the connection is closed).
    fn admit(&self, peer: SocketAddr) -> Option<crate::net::Admitted> {
        let startup = self.startups.admit(peer.ip());
        if startup.is_none() {
            tracing::info!(%peer, "too many connections signing in (from this address or in all); closing");
            crate::metrics::METRICS.connection_refused();
        }
        startup
    }

    /// A balancer's connection: the client its PROXY header names (read within the
    /// login grace time), admitted by that client's address (`None`: closed).
    async fn behind_balancer(
        &self,
        socket: &mut tokio::net::TcpStream,
        peer: SocketAddr,
        deadline: tokio::time::Instant,
    ) -> Option<(SocketAddr, crate::net::Admitted)> {
        let client =
            match tokio::time::timeout_at(deadline, crate::net::proxy::read_header(socket)).await {
                Ok(Ok(client)) => client.unwrap_or(peer),
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "balancer connection closed");
                    return None;
                }
                Err(_) => {
                    tracing::info!(%peer, "no PROXY header within the login grace time; closed");
                    return None;
                }
            };
        let Some(startup) = self.startups.admit(client.ip()) else {
            tracing::info!(peer = %client, balancer = %peer, "too many connections signing in (from this address or in all); closing");
            crate::metrics::METRICS.connection_refused();
            return None;
        };
        Some((client, startup))
    }

    /// One connection, from its PROXY header (behind a balancer) to its end: signed
    /// in within the login grace time, closed when idle, or at the end of a shutdown.
    async fn serve(mut self, connection: Connection) {
        let Connection {
            socket,
            peer,
            early,
            mut force,
        } = connection;
        let (idle, config) = (self.idle, self.config.clone());
        let deadline = tokio::time::Instant::now() + self.login_grace;
        let mut socket = socket;
        let (peer, startup) = match early {
            Some(startup) => (peer, startup),
            None => match self.behind_balancer(&mut socket, peer, deadline).await {
                Some(admitted) => admitted,
                None => return,
            },
        };
        let server = &mut self.server;
        let mut handler = russh::server::Server::new_client(server, Some(peer));
        handler.hold_startup(startup);
        let authenticated = handler.authenticated();
        let activity = handler.activity();
        let socket = crate::net::QuickAck(socket);
        let session = match tokio::time::timeout_at(
            deadline,
            russh::server::run_stream(config, socket, handler),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "ssh handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "no SSH greeting within the login grace time; closed");
                return;
            }
        };
        let handle = session.handle();
        // Closes a connection that has not signed in by the deadline.
        let grace = async move {
            tokio::time::sleep_until(deadline).await;
            if authenticated.load(std::sync::atomic::Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        // Closes a connection that has run no command for the idle time,
        // whatever keepalives it sends.
        let watchdog = async move {
            let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                tokio::time::sleep(every).await;
                if activity.idle_for().is_some_and(|d| d >= idle) {
                    break;
                }
            }
        };
        tokio::select! {
            result = session => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "ssh session ended with an error");
                }
            }
            _ = grace => {
                tracing::info!(%peer, "not signed in within the login grace time; closed");
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "login grace time over".into(), "".into())
                    .await;
            }
            _ = watchdog => {
                tracing::info!(%peer, "idle connection closed");
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "idle for too long".into(), "".into())
                    .await;
            }
            _ = force.recv() => {
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "skillsd is shutting down".into(), "".into())
                    .await;
            }
        }
        // The session's buffers are freed now, after its commands' own ask.
        crate::alloc::release_soon();
    }
}

/// The end of a shutdown: the pages stopped, this node's deliveries given back, the
/// sessions in flight let finish for `grace`, then the rest disconnected.
async fn drain(
    state: &Arc<AppState>,
    deliveries: tokio::task::JoinHandle<()>,
    force_tx: &tokio::sync::broadcast::Sender<()>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    grace: Duration,
) {
    let _ = stop_tx.send(true);
    // A mirror push or webhook in flight is abandoned and its lease given back: another
    // node (or this one, restarted) takes it at once instead of after the lease.
    deliveries.abort();
    let _ = deliveries.await;
    let pool = state.pool.clone();
    match tokio::time::timeout(Duration::from_secs(5), crate::deliver::release(&pool)).await {
        Ok(Ok(n)) if n > 0 => {
            tracing::info!(
                released = n,
                "gave back the deliveries this node had claimed"
            )
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "could not give back this node's deliveries"),
        _ => {}
    }
    state.tasks.close();
    tracing::info!(
        sessions = state.tasks.len(),
        grace_secs = grace.as_secs(),
        "no longer accepting; letting sessions finish"
    );
    if tokio::time::timeout(grace, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            sessions = state.tasks.len(),
            "grace period over; disconnecting the rest"
        );
        let _ = force_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), state.tasks.wait()).await;
    }
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and its address.
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
