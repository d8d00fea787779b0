//! `skillsd serve`: bind, prepare, register_admins, print_banner, run.

use anyhow::{Context as _, Result};
use skillsd::config::Settings;
use skillsd::db::users::{self, Role};
use skillsd::server::{self, Database};
use std::net::SocketAddr;
use std::path::PathBuf;

/// `skillsd serve`: the addresses bound first (a port already taken is said at once,
/// before the database, the migrations and the reconcile), then the start's work,
/// the first admins, the banner, and the server until SIGTERM or Ctrl-C.
pub(crate) async fn serve(settings: &Settings) -> Result<i32> {
    let (listener, addr) = server::bind(settings.listen).await?;
    // The default address taken (another skillsd on this machine) does not stop the
    // server: the banner says the pages are off and how to place them. An address
    // asked for must be had.
    let mut pages_note = None;
    let http = match settings.http {
        Some(a) if a == skillsd::config::DEFAULT_HTTP => match server::bind(a).await {
            Ok(bound) => Some(bound),
            Err(e) => {
                tracing::warn!(error = %e, "the status pages are off: their default address is taken");
                pages_note = Some(format!(
                    "off: {a} is taken (another skillsd?); place them with --http ADDR"
                ));
                None
            }
        },
        Some(a) => Some(server::bind(a).await?),
        None => None,
    };
    // Pages off: no web address for links either.
    let adjusted = (http.is_none() && settings.http.is_some()).then(|| Settings {
        http: None,
        ..settings.clone()
    });
    let settings = adjusted.as_ref().unwrap_or(settings);
    let prepared = server::prepare(settings).await?;
    register_admins(&prepared.state.pool, &settings.admin_keys).await?;
    let http = http.map(|(listener, a)| {
        let shown = match a.ip() {
            ip if ip.is_unspecified() => format!("127.0.0.1:{}", a.port()),
            _ => a.to_string(),
        };
        let url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{shown}"));
        pages_note = Some(format!(
            "{url}/ (the dashboard: pushes, skills, health; JSON under /api, /healthz, /readyz)"
        ));
        listener
    });
    print_banner(&prepared, addr, settings);
    match &pages_note {
        Some(note) => println!("  pages:  {note}"),
        None => println!("  pages:  off (--http ADDR serves them)"),
    }
    server::run(prepared, listener, http, shutdown_signal()).await?;
    Ok(0)
}

/// Registers each public key file for the user `admin` unless the key is known.
pub(crate) async fn register_admins(pool: &sqlx::PgPool, keys: &[PathBuf]) -> Result<()> {
    for path in keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let key = users::parse_public_key(&text)?;
        if users::find_by_key(pool, &key).await?.is_none() {
            let fp = users::add(pool, "admin", Role::Admin, &key).await?;
            println!("  admin:  user `admin` can connect with key {fp}");
        }
    }
    Ok(())
}

/// What the operator needs to know at start: the address, how to clone, add users,
/// check the host key and reach the database.
pub(crate) fn print_banner(prepared: &server::Prepared, addr: SocketAddr, settings: &Settings) {
    let host = prepared.data_dir.join("ssh_host_ed25519_key.pub");
    println!("skillsd listening on {addr}");
    println!(
        "  clone:  git clone ssh://git@{}:{}/skills.git",
        addr.ip(),
        addr.port()
    );
    println!(
        "  users:  skillsd user add NAME --role writer --key ~/.ssh/id_ed25519.pub --data-dir {}",
        prepared.data_dir.display()
    );
    println!(
        "  host key: {} ({}; ssh asks to confirm it on first connect)",
        skillsd::storage::identity::fingerprint(&prepared.host_key),
        host.display()
    );
    let private =
        prepared.private_pg.is_some() || matches!(Database::of(settings), Database::Local);
    println!(
        "  database: {}{}",
        skillsd::db::redact_url(&prepared.database_url),
        if private {
            " (the private cluster under the data dir)"
        } else {
            ""
        }
    );
    println!(
        "  psql:   skillsd psql --data-dir {}{}",
        prepared.data_dir.display(),
        if private { "" } else { " --database-url URL" }
    );
}

/// Completes on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
