//! Settings. Every setting of `skillsd` can come from (highest precedence first): a
//! command-line flag, an environment variable, the TOML file named by `--config` /
//! `SKILLSD_CONFIG` (default `/etc/skillsd.toml` when it exists), or the built-in
//! default. [`Settings::load`] reads them all once, into one typed [`Settings`] that
//! is passed to what uses it; a malformed value stops the start, naming the setting
//! and the value. A key in the file is the environment variable's
//! name in lower case without the `SKILLSD_` prefix (`database_url` for
//! `DATABASE_URL`).

//!
//! [`table`] lists every setting (file key, environment variable, meaning, default);
//! [`reader`] reads them into [`Settings`], naming every malformed value.

mod reader;
mod table;

pub use table::{SETTINGS, defaults_toml, help};

use reader::Reader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `skillsd serve` serves the status pages unless told otherwise (`--http ADDR`,
/// `--http off`): loopback only, so nothing is exposed by default.
pub const DEFAULT_HTTP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// `--http ADDR` or `--http off`.
pub fn parse_http(value: &str) -> Result<Option<SocketAddr>, String> {
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("`{value}` is not an address like 127.0.0.1:8080, nor `off`"))
}

/// The values given on the command line: they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub listen: Option<SocketAddr>,
    /// `Some(None)`: `--http off`.
    pub http: Option<Option<SocketAddr>>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// Empty: not given.
    pub admin_keys: Vec<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line, with the span fields.
    Json,
}

pub use crate::web::{MetricsAccess, WebAccess};

/// Every setting, typed: filled once by [`Settings::load`] (flag > environment >
/// config file > default) and passed to what uses it. Nothing else reads settings
/// from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SSH address (`SKILLSD_LISTEN`).
    pub listen: SocketAddr,
    /// HTTP address (`SKILLSD_HTTP`, default [`DEFAULT_HTTP`]; `None`: `off`, no HTTP).
    pub http: Option<SocketAddr>,
    /// `SKILLSD_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `DATABASE_URL` (`None`: the private cluster under the data dir).
    pub database_url: Option<String>,
    /// Public key files of the first admins (`SKILLSD_ADMIN_KEYS`).
    pub admin_keys: Vec<PathBuf>,
    /// Bearer token of the HTTP admin API (`SKILLSD_ADMIN_TOKEN`; `None`: API off).
    pub admin_token: Option<String>,
    /// The host key file every node presents (`SKILLSD_HOST_KEY`; `None`: the one
    /// in the database).
    pub host_key: Option<PathBuf>,
    /// Log filter (`SKILLSD_LOG`).
    pub log: String,
    /// `SKILLSD_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Who may read the status pages (`SKILLSD_WEB_ACCESS`).
    pub web_access: WebAccess,
    /// Who may read `/metrics` (`SKILLSD_METRICS`; default: open when the pages are,
    /// a token when they need signing in).
    pub metrics: MetricsAccess,
    /// `/metrics`' bearer token (`SKILLSD_METRICS_TOKEN`; `None`: the admin token).
    pub metrics_token: Option<String>,
    /// The status pages' address for browsers (`SKILLSD_PUBLIC_URL`; `None`:
    /// `http://` and the HTTP address).
    pub public_url: Option<String>,
    /// The SSH address clients clone from, without the repository
    /// (`SKILLSD_SSH_URL`: `ssh://git@skills.example.com:2222`; `None`: made from the
    /// public URL's host or the listener's address and the listener's port).
    pub ssh_url: Option<String>,
    /// Sessions, authentication and the session time limit.
    pub limits: crate::ssh::Limits,
    /// Ref rules and push limits (the pushed objects' and the pack's included).
    pub policy: crate::receive::pre_receive::Policy,
    /// The HTTP listener's limits.
    pub http_limits: crate::net::HttpLimits,
    /// How long packs a gc replaced stay for readers (`SKILLSD_PACK_GRACE_SECS`).
    pub pack_grace: Duration,
    /// Pack count that starts a background gc (`SKILLSD_GC_PACKS`; `None`: off).
    pub gc_packs: Option<usize>,
    /// A connection without a command for this long is closed
    /// (`SKILLSD_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// How long an SSH connection may take to sign in (`SKILLSD_LOGIN_GRACE_SECS`).
    pub login_grace: Duration,
    /// SSH connections not signed in yet, in all and per address
    /// (`SKILLSD_MAX_STARTUPS`, `SKILLSD_MAX_STARTUPS_PER_SOURCE`).
    pub max_startups: usize,
    pub max_startups_per_source: usize,
    /// Balancers whose SSH connections start with a PROXY header
    /// (`SKILLSD_PROXY_PROTOCOL`): the client it names is the connection's address.
    pub proxy_protocol: crate::net::proxy::Trusted,
    /// SSH connections open at once (`SKILLSD_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long shutdown waits for sessions (`SKILLSD_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace: Duration,
    /// Periodic reconcile (`SKILLSD_RECONCILE_SECS`; `None`: off).
    pub reconcile_every: Option<Duration>,
    /// Fewest skills for a reconcile into an empty cache to build indexes last
    /// (`SKILLSD_BULK_LOAD_FROM`; `None`: never).
    pub bulk_load_from: Option<usize>,
    /// Retries and time limits of mirror and webhook deliveries.
    pub delivery: crate::deliver::Settings,
    /// The MCP server's sessions (`SKILLSD_MCP_MAX_SESSIONS`,
    /// `SKILLSD_MCP_SESSION_IDLE_SECS`).
    pub mcp: crate::agents::mcp::Limits,
}

impl Default for Settings {
    fn default() -> Self {
        let store = crate::repos::StoreSettings::default();
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            http: Some(DEFAULT_HTTP),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            admin_keys: Vec::new(),
            admin_token: None,
            host_key: None,
            log: "info,sqlx=warn,russh=warn".to_string(),
            log_format: LogFormat::Text,
            web_access: WebAccess::Open,
            metrics: MetricsAccess::Open,
            metrics_token: None,
            public_url: None,
            ssh_url: None,
            limits: Default::default(),
            policy: Default::default(),
            http_limits: Default::default(),
            pack_grace: store.pack_grace,
            gc_packs: store.gc_packs,
            idle_timeout: Duration::from_secs(300),
            max_connections: 1000,
            login_grace: Duration::from_secs(30),
            max_startups: 256,
            max_startups_per_source: 128,
            proxy_protocol: Default::default(),
            shutdown_grace: Duration::from_secs(30),
            reconcile_every: Some(Duration::from_secs(600)),
            bulk_load_from: store.bulk_load_from,
            delivery: Default::default(),
            mcp: Default::default(),
        }
    }
}

impl Settings {
    /// Every setting from `flags`, else the environment (`env` looks a variable up),
    /// else the config `file`, else its default. Every malformed value is named in
    /// the one error, with the setting and the value; nothing falls back to a
    /// default without a word.
    pub fn load(
        flags: &Flags,
        env: impl Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Result<Settings, ConfigError> {
        let from_file = match file {
            Some(path) => read(path)?,
            None => Vec::new(),
        };
        let lookup = |name: &str| {
            env(name).or_else(|| {
                from_file
                    .iter()
                    .find(|(e, _)| *e == name)
                    .map(|(_, v)| v.clone())
            })
        };
        let mut r = Reader {
            lookup: &lookup,
            bad: Vec::new(),
        };
        let s = r.settings(flags);
        if r.bad.is_empty() {
            Ok(s)
        } else {
            Err(ConfigError::Invalid(r.bad.join("; ")))
        }
    }

    /// What the repository store needs: pack retention, automatic gc, and the pack
    /// limits a gc reads its own pack through.
    pub fn store(&self) -> crate::repos::StoreSettings {
        crate::repos::StoreSettings {
            pack_grace: self.pack_grace,
            gc_packs: self.gc_packs,
            pack_limits: self.policy.pack,
            bulk_load_from: self.bulk_load_from,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// (The cause is in the error's chain.)
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("invalid setting: {0}")]
    Invalid(String),
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// (The cause is in the error's chain.)
    #[error("{0}")]
    Toml(PathBuf, #[source] toml::de::Error),
}

/// The settings in `path` as (environment variable, value) pairs.
pub fn read(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml(path.to_path_buf(), e))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let Some((_, env, _)) = SETTINGS.iter().find(|(k, _, _)| *k == key) else {
            let known: Vec<&str> = SETTINGS.iter().map(|(k, _, _)| *k).collect();
            return Err(ConfigError::Parse(
                path.to_path_buf(),
                format!(
                    "unknown setting `{key}`; known settings: {}",
                    known.join(", ")
                ),
            ));
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => if b { "1" } else { "0" }.to_string(),
            other => {
                return Err(ConfigError::Parse(
                    path.to_path_buf(),
                    format!(
                        "`{key}` must be a string, a number or a boolean, not {}",
                        other.type_str()
                    ),
                ));
            }
        };
        out.push((*env, value));
    }
    Ok(out)
}

/// Which file to read: `explicit` (`--config`/`SKILLSD_CONFIG`), else
/// `/etc/skillsd.toml` if present.
pub fn locate(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| Some(PathBuf::from("/etc/skillsd.toml")).filter(|p| p.is_file()))
}

#[cfg(test)]
mod tests;
