//! Settings. Every setting of `skillsd` can come from (highest precedence first): a
//! command-line flag, an environment variable, the TOML file named by `--config` /
//! `SKILLSD_CONFIG` (default `/etc/skillsd.toml` when it exists), or the built-in
//! default. [`Settings::load`] reads them all once, into one typed [`Settings`] that
//! is passed to what uses it; a malformed value stops the start, naming the setting
//! and the value. A key in the file is the environment variable's
//! name in lower case without the `SKILLSD_` prefix (`database_url` for
//! `DATABASE_URL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File key → environment variable, with what it means (for errors and `--help`).
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("listen", "SKILLSD_LISTEN", "SSH address [127.0.0.1:2222]"),
    (
        "http",
        "SKILLSD_HTTP",
        "HTTP address of the status pages, health and the JSON API; off = none [127.0.0.1:8080]",
    ),
    ("data_dir", "SKILLSD_DATA_DIR", "data directory [./data]"),
    (
        "database_url",
        "DATABASE_URL",
        "PostgreSQL URL [private cluster in the data dir]",
    ),
    (
        "admin_keys",
        "SKILLSD_ADMIN_KEYS",
        "public key files of the first admins, ','-separated",
    ),
    (
        "admin_token",
        "SKILLSD_ADMIN_TOKEN",
        "bearer token of the HTTP admin API [off]",
    ),
    (
        "host_key",
        "SKILLSD_HOST_KEY",
        "OpenSSH private key file every node presents [the one in the database]",
    ),
    (
        "log",
        "SKILLSD_LOG",
        "log filter [info,sqlx=warn,russh=warn]",
    ),
    ("log_format", "SKILLSD_LOG_FORMAT", "text or json [text]"),
    (
        "web_access",
        "SKILLSD_WEB_ACCESS",
        "who may read the status pages: open or signed-in [open]",
    ),
    (
        "metrics",
        "SKILLSD_METRICS",
        "who may read /metrics: open or token [open; token with web_access = signed-in]",
    ),
    (
        "metrics_token",
        "SKILLSD_METRICS_TOKEN",
        "bearer token for /metrics when metrics = token [the admin token]",
    ),
    (
        "public_url",
        "SKILLSD_PUBLIC_URL",
        "the HTTP listener's address as browsers reach it, for sign-in links [http://HTTP]",
    ),
    (
        "ssh_url",
        "SKILLSD_SSH_URL",
        "the SSH address as clients clone from it, for the marketplace manifests \
         [ssh://git@HOST:PORT from the public URL or the listener]",
    ),
    (
        "db_down",
        "SKILLSD_DB_DOWN",
        "pushes while PostgreSQL is away: always refused, it stores the git data [refuse]",
    ),
    (
        "pack_grace_secs",
        "SKILLSD_PACK_GRACE_SECS",
        "how long packs a gc replaced stay for readers [3600]",
    ),
    (
        "max_pack_bytes",
        "SKILLSD_MAX_PACK_BYTES",
        "largest pack one push may send [536870912]",
    ),
    (
        "max_files_per_push",
        "SKILLSD_MAX_FILES_PER_PUSH",
        "skill files one push may add or change [20000]",
    ),
    (
        "max_file_bytes",
        "SKILLSD_MAX_FILE_BYTES",
        "largest skill file, at most 1 MiB [1048576]",
    ),
    (
        "admins_may_rewrite_main",
        "SKILLSD_ADMINS_MAY_REWRITE_MAIN",
        "1 lets admins force-push or delete main [0]",
    ),
    (
        "ref_pattern",
        "SKILLSD_REF_PATTERN",
        "regular expression every pushed ref's full name must match \
         [refs/(heads|tags)/[A-Za-z0-9][A-Za-z0-9._/@+-]*]",
    ),
    (
        "mutable_tags",
        "SKILLSD_MUTABLE_TAGS",
        "1 lets pushed tags move [0]",
    ),
    (
        "max_sessions",
        "SKILLSD_MAX_SESSIONS",
        "commands running at once [200]",
    ),
    (
        "max_sessions_per_user",
        "SKILLSD_MAX_SESSIONS_PER_USER",
        "... per user [64]",
    ),
    (
        "max_auth_failures",
        "SKILLSD_MAX_AUTH_FAILURES",
        "refused keys per address and window [20]",
    ),
    (
        "auth_window_secs",
        "SKILLSD_AUTH_WINDOW_SECS",
        "that window [300]",
    ),
    (
        "idle_timeout_secs",
        "SKILLSD_IDLE_TIMEOUT_SECS",
        "idle connections close after [300]",
    ),
    (
        "session_timeout_secs",
        "SKILLSD_SESSION_TIMEOUT_SECS",
        "longest a git session may run [3600]",
    ),
    (
        "shutdown_grace_secs",
        "SKILLSD_SHUTDOWN_GRACE_SECS",
        "how long shutdown waits for sessions [30]",
    ),
    (
        "reconcile_secs",
        "SKILLSD_RECONCILE_SECS",
        "periodic reconcile, 0 = off [600]",
    ),
    (
        "gc_packs",
        "SKILLSD_GC_PACKS",
        "pack count that starts a background gc, 0 = off [16]",
    ),
    (
        "max_tree_entries",
        "SKILLSD_MAX_TREE_ENTRIES",
        "most files and folders a pushed commit's tree may expand to [2000000]",
    ),
    (
        "max_tree_depth",
        "SKILLSD_MAX_TREE_DEPTH",
        "deepest path in a pushed tree, like git's core.maxTreeDepth [4096]",
    ),
    (
        "max_commit_bytes",
        "SKILLSD_MAX_COMMIT_BYTES",
        "largest pushed commit or tag object, message included [1048576]",
    ),
    (
        "max_object_bytes",
        "SKILLSD_MAX_OBJECT_BYTES",
        "largest pushed object (or delta result), inflated [33554432]",
    ),
    (
        "max_objects",
        "SKILLSD_MAX_OBJECTS",
        "most objects in one pushed pack [2000000]",
    ),
    (
        "max_delta_depth",
        "SKILLSD_MAX_DELTA_DEPTH",
        "longest delta chain in a pushed pack [4095]",
    ),
    (
        "max_delta_base_bytes",
        "SKILLSD_MAX_DELTA_BASE_BYTES",
        "total size of the objects a pack's deltas build on [201326592]",
    ),
    (
        "max_inflate_ratio",
        "SKILLSD_MAX_INFLATE_RATIO",
        "what a pushed pack may inflate to, as a multiple of its size, above 256 MiB; 0 = unbounded [200]",
    ),
    (
        "max_connections",
        "SKILLSD_MAX_CONNECTIONS",
        "SSH connections open at once [1000]",
    ),
    (
        "http_max_connections",
        "SKILLSD_HTTP_MAX_CONNECTIONS",
        "HTTP connections open at once [256]",
    ),
    (
        "http_max_per_address",
        "SKILLSD_HTTP_MAX_PER_ADDRESS",
        "... from one address (an eighth more is kept for new addresses) [32]",
    ),
    (
        "http_header_secs",
        "SKILLSD_HTTP_HEADER_SECS",
        "a new HTTP connection's first byte must come within [10]",
    ),
    (
        "login_grace_secs",
        "SKILLSD_LOGIN_GRACE_SECS",
        "an SSH connection must sign in within (OpenSSH's LoginGraceTime) [30]",
    ),
    (
        "max_startups",
        "SKILLSD_MAX_STARTUPS",
        "SSH connections not signed in yet, in all (a fifth more for new addresses) [256]",
    ),
    (
        "max_startups_per_source",
        "SKILLSD_MAX_STARTUPS_PER_SOURCE",
        "... from one address (CI runners behind one NAT sign in together) [128]",
    ),
    (
        "proxy_protocol",
        "SKILLSD_PROXY_PROTOCOL",
        "balancers (addresses or networks, comma-separated) whose SSH connections start \
         with a PROXY header naming the client (HAProxy's send-proxy-v2) [none]",
    ),
    (
        "http_idle_secs",
        "SKILLSD_HTTP_IDLE_SECS",
        "an HTTP connection without traffic closes after [60]",
    ),
    (
        "http_lifetime_secs",
        "SKILLSD_HTTP_LIFETIME_SECS",
        "longest an HTTP connection may live [300]",
    ),
    (
        "bulk_load_from",
        "SKILLSD_BULK_LOAD_FROM",
        "skills an empty cache is rebuilt indexes-last from, 0 = never [10000]",
    ),
    (
        "delivery_retry_secs",
        "SKILLSD_DELIVERY_RETRY_SECS",
        "first wait before a mirror or webhook delivery is retried, doubled each time [10]",
    ),
    (
        "delivery_retry_max_secs",
        "SKILLSD_DELIVERY_RETRY_MAX_SECS",
        "longest wait between retries of a mirror or webhook delivery [600]",
    ),
    (
        "webhook_attempts",
        "SKILLSD_WEBHOOK_ATTEMPTS",
        "attempts of a webhook delivery before it is marked failed [8]",
    ),
    (
        "webhook_timeout_secs",
        "SKILLSD_WEBHOOK_TIMEOUT_SECS",
        "one webhook request, connecting included [10]",
    ),
    (
        "mirror_timeout_secs",
        "SKILLSD_MIRROR_TIMEOUT_SECS",
        "one push to a mirror, connecting included [600]",
    ),
    (
        "mcp_max_sessions",
        "SKILLSD_MCP_MAX_SESSIONS",
        "MCP sessions (and change subscriptions) open at once; the idlest closes first [256]",
    ),
    (
        "mcp_session_idle_secs",
        "SKILLSD_MCP_SESSION_IDLE_SECS",
        "an MCP session without a request closes after [1800]",
    ),
];

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

/// Reads raw values and collects what is malformed.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    bad: Vec<String>,
}

impl Reader<'_> {
    fn settings(&mut self, flags: &Flags) -> Settings {
        use crate::incoming::inspect::PackLimits;
        use crate::receive::connectivity;
        let d = Settings::default();
        let (dl, dp, dh) = (&d.limits, &d.policy, &d.http_limits);
        let (dc, dk) = (&dp.limits, &dp.pack);
        let address = "an address like 127.0.0.1:2222";
        let listen = flags
            .listen
            .or_else(|| self.parsed("SKILLSD_LISTEN", address))
            .unwrap_or(d.listen);
        let http = match flags.http {
            Some(given) => given,
            None => match self.text("SKILLSD_HTTP").as_deref() {
                Some("off") => None,
                Some(_) => self
                    .parsed("SKILLSD_HTTP", "an address like 127.0.0.1:8080, or off")
                    .or(d.http),
                None => d.http,
            },
        };
        let admin_keys = if flags.admin_keys.is_empty() {
            self.text("SKILLSD_ADMIN_KEYS")
                .map(|v| {
                    v.split(',')
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            flags.admin_keys.clone()
        };
        let log = self.text("SKILLSD_LOG").unwrap_or(d.log);
        if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
            self.refuse("SKILLSD_LOG", &log, "a log filter like info,sqlx=warn");
        }
        let log_format = match self.one_of("SKILLSD_LOG_FORMAT", &["text", "json"]) {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let web_access = match self.one_of("SKILLSD_WEB_ACCESS", &["open", "signed-in"]) {
            Some("signed-in") => WebAccess::SignedIn,
            _ => WebAccess::Open,
        };
        let metrics = match self.one_of("SKILLSD_METRICS", &["open", "token"]) {
            Some("open") => MetricsAccess::Open,
            Some("token") => MetricsAccess::Token,
            _ if web_access == WebAccess::SignedIn => MetricsAccess::Token,
            _ => MetricsAccess::Open,
        };
        let public_url = self.text("SKILLSD_PUBLIC_URL");
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                let url = url.clone();
                self.refuse("SKILLSD_PUBLIC_URL", &url, "an http:// or https:// address");
            }
        }
        let ssh_url = self.text("SKILLSD_SSH_URL");
        if let Some(url) = &ssh_url {
            let rest = url.strip_prefix("ssh://").unwrap_or_default();
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
                let url = url.clone();
                self.refuse(
                    "SKILLSD_SSH_URL",
                    &url,
                    "an ssh:// address without a path (ssh://git@HOST:PORT)",
                );
            }
        }
        // Pushes while the database is away are always refused: the only value.
        self.one_of("SKILLSD_DB_DOWN", &["refuse"]);
        let limits = crate::ssh::Limits {
            max_sessions: self.count("SKILLSD_MAX_SESSIONS", dl.max_sessions),
            max_sessions_per_user: self
                .count("SKILLSD_MAX_SESSIONS_PER_USER", dl.max_sessions_per_user),
            max_auth_failures: self.count("SKILLSD_MAX_AUTH_FAILURES", dl.max_auth_failures),
            auth_window: self.secs("SKILLSD_AUTH_WINDOW_SECS", dl.auth_window),
            session_timeout: self.secs("SKILLSD_SESSION_TIMEOUT_SECS", dl.session_timeout),
            // A running command's client must keep sending while the command waits
            // for it: the idle time is the window of that rule too.
            min_rate_window: self.secs("SKILLSD_IDLE_TIMEOUT_SECS", d.idle_timeout),
        };
        let ref_pattern = match self.text("SKILLSD_REF_PATTERN") {
            None => d.policy.ref_pattern.clone(),
            Some(p) => match crate::receive::pre_receive::ref_pattern(&p) {
                Ok(re) => re,
                Err(e) => {
                    let expected = format!("a regular expression ({e})");
                    self.refuse("SKILLSD_REF_PATTERN", &p, &expected);
                    d.policy.ref_pattern.clone()
                }
            },
        };
        let proxy_protocol = match self.text("SKILLSD_PROXY_PROTOCOL") {
            None => d.proxy_protocol.clone(),
            Some(t) => crate::net::proxy::Trusted::parse(&t).unwrap_or_else(|e| {
                self.refuse(
                    "SKILLSD_PROXY_PROTOCOL",
                    &t,
                    &format!("addresses or networks, comma-separated ({e})"),
                );
                d.proxy_protocol.clone()
            }),
        };
        let policy = crate::receive::pre_receive::Policy {
            ref_pattern,
            mutable_tags: self.flag("SKILLSD_MUTABLE_TAGS"),
            max_files_per_push: self.count("SKILLSD_MAX_FILES_PER_PUSH", dp.max_files_per_push),
            max_pack_bytes: self.count("SKILLSD_MAX_PACK_BYTES", dp.max_pack_bytes),
            // At most the built-in limit (the default).
            max_file_bytes: self
                .count("SKILLSD_MAX_FILE_BYTES", dp.max_file_bytes)
                .min(dp.max_file_bytes),
            admins_may_rewrite_default: self.flag("SKILLSD_ADMINS_MAY_REWRITE_MAIN"),
            limits: connectivity::Limits {
                max_tree_depth: self.count("SKILLSD_MAX_TREE_DEPTH", dc.max_tree_depth),
                max_commit_bytes: self.count("SKILLSD_MAX_COMMIT_BYTES", dc.max_commit_bytes),
                max_tree_entries: self.count("SKILLSD_MAX_TREE_ENTRIES", dc.max_tree_entries),
                ..*dc
            },
            pack: PackLimits {
                max_object_bytes: self.count("SKILLSD_MAX_OBJECT_BYTES", dk.max_object_bytes),
                max_objects: self.count("SKILLSD_MAX_OBJECTS", dk.max_objects),
                max_delta_depth: self.count("SKILLSD_MAX_DELTA_DEPTH", dk.max_delta_depth),
                max_delta_base_bytes: self
                    .count("SKILLSD_MAX_DELTA_BASE_BYTES", dk.max_delta_base_bytes),
                max_inflate_ratio: self
                    .count_or_off("SKILLSD_MAX_INFLATE_RATIO", dk.max_inflate_ratio),
                inflate_floor: dk.inflate_floor,
            },
            ..d.policy.clone()
        };
        let http_limits = crate::net::HttpLimits {
            max_connections: self.count("SKILLSD_HTTP_MAX_CONNECTIONS", dh.max_connections),
            max_per_address: self.count("SKILLSD_HTTP_MAX_PER_ADDRESS", dh.max_per_address),
            header: self.secs("SKILLSD_HTTP_HEADER_SECS", dh.header),
            idle: self.secs("SKILLSD_HTTP_IDLE_SECS", dh.idle),
            lifetime: self.secs("SKILLSD_HTTP_LIFETIME_SECS", dh.lifetime),
        };
        Settings {
            listen,
            http,
            data_dir: flags
                .data_dir
                .clone()
                .or_else(|| self.text("SKILLSD_DATA_DIR").map(PathBuf::from))
                .unwrap_or(d.data_dir),
            database_url: flags
                .database_url
                .clone()
                .filter(|u| !u.is_empty())
                .or_else(|| self.text("DATABASE_URL")),
            admin_keys,
            admin_token: self.text("SKILLSD_ADMIN_TOKEN"),
            host_key: self.text("SKILLSD_HOST_KEY").map(PathBuf::from),
            log,
            log_format,
            web_access,
            metrics,
            metrics_token: self.text("SKILLSD_METRICS_TOKEN"),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            ssh_url: ssh_url.map(|u| u.trim_end_matches('/').to_string()),
            limits,
            policy,
            http_limits,
            pack_grace: self.secs("SKILLSD_PACK_GRACE_SECS", d.pack_grace),
            gc_packs: self.count_or_off("SKILLSD_GC_PACKS", d.gc_packs),
            idle_timeout: self.secs("SKILLSD_IDLE_TIMEOUT_SECS", d.idle_timeout),
            max_connections: self.count("SKILLSD_MAX_CONNECTIONS", d.max_connections),
            login_grace: self.secs("SKILLSD_LOGIN_GRACE_SECS", d.login_grace),
            max_startups: self.count("SKILLSD_MAX_STARTUPS", d.max_startups),
            max_startups_per_source: self
                .count("SKILLSD_MAX_STARTUPS_PER_SOURCE", d.max_startups_per_source),
            proxy_protocol,
            shutdown_grace: self.secs("SKILLSD_SHUTDOWN_GRACE_SECS", d.shutdown_grace),
            reconcile_every: self
                .count_or_off(
                    "SKILLSD_RECONCILE_SECS",
                    d.reconcile_every.map(|t| t.as_secs()),
                )
                .map(Duration::from_secs),
            bulk_load_from: self.count_or_off("SKILLSD_BULK_LOAD_FROM", d.bulk_load_from),
            delivery: self.delivery(&d.delivery),
            mcp: self.mcp(&d.mcp),
        }
    }

    fn refuse(&mut self, env: &str, value: &str, expected: &str) {
        let key = SETTINGS
            .iter()
            .find(|(_, e, _)| *e == env)
            .map_or_else(|| env.to_lowercase(), |(k, _, _)| k.to_string());
        self.bad.push(format!(
            "{env}={value:?} (`{key}` in the file): expected {expected}"
        ));
    }

    /// A value that means something (an empty one is no value).
    fn text(&self, env: &str) -> Option<String> {
        (self.lookup)(env).filter(|v| !v.is_empty())
    }

    fn parsed<T: std::str::FromStr>(&mut self, env: &str, expected: &str) -> Option<T> {
        let value = self.text(env)?;
        let parsed = value.parse().ok();
        if parsed.is_none() {
            self.refuse(env, &value, expected);
        }
        parsed
    }

    /// A whole number, exactly (no sign, no spaces; an empty value is malformed too).
    fn number<T: std::str::FromStr>(&mut self, env: &str) -> Option<T> {
        let value = (self.lookup)(env)?;
        let parsed = value
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| value.parse().ok())
            .flatten();
        if parsed.is_none() {
            self.refuse(env, &value, "a whole number");
        }
        parsed
    }

    fn count<T: std::str::FromStr>(&mut self, env: &str, default: T) -> T {
        self.number(env).unwrap_or(default)
    }

    fn delivery(&mut self, d: &crate::deliver::Settings) -> crate::deliver::Settings {
        let s = crate::deliver::Settings {
            retry_base: self.secs("SKILLSD_DELIVERY_RETRY_SECS", d.retry_base),
            retry_max: self.secs("SKILLSD_DELIVERY_RETRY_MAX_SECS", d.retry_max),
            webhook_attempts: self.count("SKILLSD_WEBHOOK_ATTEMPTS", d.webhook_attempts),
            webhook_timeout: self.secs("SKILLSD_WEBHOOK_TIMEOUT_SECS", d.webhook_timeout),
            mirror_timeout: self.secs("SKILLSD_MIRROR_TIMEOUT_SECS", d.mirror_timeout),
        };
        let zero = |d: Duration| d.is_zero();
        for (env, bad) in [
            ("SKILLSD_DELIVERY_RETRY_SECS", zero(s.retry_base)),
            ("SKILLSD_WEBHOOK_TIMEOUT_SECS", zero(s.webhook_timeout)),
            ("SKILLSD_MIRROR_TIMEOUT_SECS", zero(s.mirror_timeout)),
            ("SKILLSD_WEBHOOK_ATTEMPTS", s.webhook_attempts == 0),
        ] {
            if bad {
                self.refuse(env, "0", "a number of at least 1");
            }
        }
        if s.retry_max < s.retry_base {
            let v = s.retry_max.as_secs().to_string();
            self.refuse(
                "SKILLSD_DELIVERY_RETRY_MAX_SECS",
                &v,
                "at least SKILLSD_DELIVERY_RETRY_SECS",
            );
        }
        s
    }

    fn mcp(&mut self, d: &crate::agents::mcp::Limits) -> crate::agents::mcp::Limits {
        let limits = crate::agents::mcp::Limits {
            max_sessions: self.count("SKILLSD_MCP_MAX_SESSIONS", d.max_sessions),
            idle: self.secs("SKILLSD_MCP_SESSION_IDLE_SECS", d.idle),
        };
        for (env, bad) in [
            ("SKILLSD_MCP_MAX_SESSIONS", limits.max_sessions == 0),
            ("SKILLSD_MCP_SESSION_IDLE_SECS", limits.idle.is_zero()),
        ] {
            if bad {
                self.refuse(env, "0", "a number of at least 1");
            }
        }
        limits
    }

    fn secs(&mut self, env: &str, default: Duration) -> Duration {
        self.number(env).map_or(default, Duration::from_secs)
    }

    /// A count where 0 turns the feature off.
    fn count_or_off<T: std::str::FromStr + PartialEq + Default>(
        &mut self,
        env: &str,
        default: Option<T>,
    ) -> Option<T> {
        match self.number::<T>(env) {
            Some(n) if n == T::default() => None,
            Some(n) => Some(n),
            None => default,
        }
    }

    fn flag(&mut self, env: &str) -> bool {
        match (self.lookup)(env).as_deref() {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                let other = other.to_string();
                self.refuse(env, &other, "1, 0, true or false");
                false
            }
        }
    }

    fn one_of(&mut self, env: &str, words: &[&'static str]) -> Option<&'static str> {
        let value = (self.lookup)(env)?;
        let found = words.iter().find(|w| **w == value).copied();
        if found.is_none() {
            self.refuse(env, &value, &format!("one of {}", words.join(", ")));
        }
        found
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
                ))
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

/// Text for `--help`: every setting with its environment variable.
pub fn help() -> String {
    let mut s = String::from(
        "Settings (flag > environment > config file > default); in the file, use the key on the left:\n",
    );
    for (key, env, what) in SETTINGS {
        s.push_str(&format!("  {key:<22} {env:<31} {what}\n"));
    }
    s
}

/// Every setting on its default, as a config file (README.md's block is this text, and
/// a test keeps it so): `key = value` where the default is a value (checked: loading
/// it gives the built-in default), else a comment with what the default is.
pub fn defaults_toml() -> String {
    let builtin = format!("{:?}", Settings::default());
    let mut s = String::new();
    for (key, env, what) in SETTINGS {
        let (about, default) = split_default(what);
        let literal = default.filter(|d| {
            let given = |name: &str| (name == *env).then(|| d.to_string());
            Settings::load(&Flags::default(), given, None)
                .is_ok_and(|loaded| format!("{loaded:?}") == builtin)
        });
        match literal {
            Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {
                s.push_str(&format!("{key} = {d}\n"));
            }
            Some(d) => s.push_str(&format!(
                "{key} = \"{}\"\n",
                d.replace('\\', "\\\\").replace('"', "\\\"")
            )),
            None => s.push_str(&format!(
                "# {key}: {about}{}\n",
                default.map_or(String::new(), |d| format!(" [{d}]"))
            )),
        }
    }
    s
}

/// `what [default]` → (`what`, `default`).
fn split_default(what: &str) -> (&str, Option<&str>) {
    match what.strip_suffix(']').and_then(|w| w.rsplit_once(" [")) {
        Some((about, default)) => (about, Some(default)),
        None => (what, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md's block of defaults is what the settings table and the code say.
    #[test]
    fn readme_defaults_block_is_the_defaults() {
        let readme = include_str!("../README.md");
        let begin = "<!-- defaults: generated by config::defaults_toml -->\n```toml\n";
        let start = readme.find(begin).expect("README has the defaults block") + begin.len();
        let len = readme[start..].find("```\n").expect("the block ends");
        let expected = defaults_toml();
        assert!(
            readme[start..start + len] == expected,
            "README.md's defaults block differs from the code; it should be:\n{expected}"
        );
    }

    /// A default written as a number in the table is the number the code uses (a
    /// number that drifted would turn into a comment line above, silently).
    #[test]
    fn numeric_defaults_in_the_table_are_the_code_defaults() {
        let block = defaults_toml();
        for (key, _, what) in SETTINGS {
            if let (_, Some(d)) = split_default(what) {
                if d.bytes().all(|b| b.is_ascii_digit()) && !d.is_empty() {
                    assert!(
                        block.contains(&format!("\n{key} = {d}\n"))
                            || block.starts_with(&format!("{key} = {d}\n")),
                        "`{key}`: the table says [{d}], the code differs"
                    );
                }
            }
        }
        for key in [
            "listen",
            "http",
            "data_dir",
            "log",
            "web_access",
            "max_pack_bytes",
        ] {
            assert!(
                block.lines().any(|l| l.starts_with(&format!("{key} = "))),
                "{key}: {block}"
            );
        }
    }

    /// A lookup over fixed pairs, like the environment.
    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load(&Flags::default(), env(pairs), None)
    }

    #[test]
    fn malformed_values_are_refused_by_name() {
        let s = load_env(&[
            ("SKILLSD_MAX_PACK_BYTES", "1048576"),
            ("SKILLSD_MUTABLE_TAGS", "true"),
            ("SKILLSD_DB_DOWN", "refuse"),
            ("SKILLSD_LISTEN", "0.0.0.0:22"),
            ("SKILLSD_WEB_ACCESS", "signed-in"),
            ("SKILLSD_PUBLIC_URL", "https://skills.example.com/"),
        ])
        .unwrap();
        assert_eq!(s.web_access, WebAccess::SignedIn);
        assert_eq!(
            s.metrics,
            MetricsAccess::Token,
            "signed-in pages keep /metrics closed too"
        );
        assert_eq!(load_env(&[]).unwrap().metrics, MetricsAccess::Open);
        let open = load_env(&[
            ("SKILLSD_WEB_ACCESS", "signed-in"),
            ("SKILLSD_METRICS", "open"),
        ])
        .unwrap();
        assert_eq!(open.metrics, MetricsAccess::Open);
        assert!(load_env(&[("SKILLSD_METRICS", "public")]).is_err());
        let wide = load_env(&[("SKILLSD_REF_PATTERN", "refs/(heads|tags)/.+")]).unwrap();
        assert!(wide.policy.ref_pattern.is_match("refs/heads/café"));
        assert!(!wide.policy.ref_pattern.is_match("refs/notes/x"));
        assert!(!s.policy.ref_pattern.is_match("refs/heads/café"));
        assert!(s.policy.ref_pattern.is_match("refs/heads/feature/x-1.2"));
        let err = load_env(&[("SKILLSD_REF_PATTERN", "refs/(heads")]).unwrap_err();
        assert!(err.to_string().contains("SKILLSD_REF_PATTERN"), "{err}");
        assert_eq!(s.public_url.as_deref(), Some("https://skills.example.com"));
        assert_eq!(s.policy.max_pack_bytes, 1_048_576);
        assert!(s.policy.mutable_tags);
        assert_eq!(s.listen, "0.0.0.0:22".parse().unwrap());
        let err = load_env(&[
            ("SKILLSD_MAX_PACK_BYTES", "lots"),
            ("SKILLSD_MUTABLE_TAGS", "yes"),
            ("SKILLSD_DB_DOWN", "accept"),
            ("SKILLSD_HTTP_IDLE_SECS", "-1"),
            ("SKILLSD_MAX_OBJECTS", " 5"),
            ("SKILLSD_LISTEN", "localhost"),
            ("SKILLSD_LOG_FORMAT", "xml"),
            ("SKILLSD_WEB_ACCESS", "everyone"),
            ("SKILLSD_PUBLIC_URL", "skills.example.com"),
        ])
        .unwrap_err()
        .to_string();
        for part in [
            "SKILLSD_MAX_PACK_BYTES=\"lots\" (`max_pack_bytes` in the file): expected a whole number",
            "SKILLSD_MUTABLE_TAGS=\"yes\"",
            "SKILLSD_DB_DOWN=\"accept\" (`db_down` in the file): expected one of refuse",
            "SKILLSD_HTTP_IDLE_SECS=\"-1\"",
            "SKILLSD_MAX_OBJECTS=\" 5\"",
            "SKILLSD_LISTEN=\"localhost\" (`listen` in the file): expected an address",
            "SKILLSD_LOG_FORMAT=\"xml\"",
            "SKILLSD_WEB_ACCESS=\"everyone\" (`web_access` in the file): expected one of open, signed-in",
            "SKILLSD_PUBLIC_URL=\"skills.example.com\" (`public_url` in the file): expected an http:// or https:// address",
        ] {
            assert!(err.contains(part), "{err}");
        }
    }

    /// Every documented setting is read by the loader, and every one with a numeric
    /// default refuses a value that is not a number.
    #[test]
    fn every_documented_setting_is_read() {
        let asked = std::cell::RefCell::new(Vec::<String>::new());
        Settings::load(
            &Flags::default(),
            |name: &str| {
                asked.borrow_mut().push(name.to_string());
                None
            },
            None,
        )
        .unwrap();
        for (_, env, what) in SETTINGS {
            assert!(
                asked.borrow().iter().any(|a| a == env),
                "{env} is never read"
            );
            let default = what.rsplit('[').next().unwrap_or("").trim_end_matches(']');
            if default.parse::<u64>().is_ok() {
                let err = load_env(&[(env, "many")]).unwrap_err().to_string();
                assert!(err.contains(&format!("{env}=\"many\"")), "{env}: {err}");
            }
        }
    }

    /// flag > environment > config file > default, setting by setting; a malformed
    /// value in the file is refused naming the setting.
    #[test]
    fn precedence_flag_environment_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skillsd.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:3000\"\nhttp = \"127.0.0.1:3001\"\n\
             max_pack_bytes = 1000\nmax_file_bytes = 2000\nmutable_tags = true\n",
        )
        .unwrap();
        let flags = Flags {
            listen: Some("127.0.0.1:4000".parse().unwrap()),
            ..Flags::default()
        };
        let s = Settings::load(
            &flags,
            env(&[
                ("SKILLSD_LISTEN", "127.0.0.1:5000"),
                ("SKILLSD_HTTP", "127.0.0.1:5001"),
                ("SKILLSD_MAX_PACK_BYTES", "3000"),
            ]),
            Some(&file),
        )
        .unwrap();
        // flag over environment and file
        assert_eq!(s.listen, "127.0.0.1:4000".parse().unwrap());
        // environment over file
        assert_eq!(s.http, Some("127.0.0.1:5001".parse().unwrap()));
        assert_eq!(s.policy.max_pack_bytes, 3000);
        // file over default
        assert_eq!(s.policy.max_file_bytes, 2000);
        assert!(s.policy.mutable_tags);
        // default
        let d = Settings::default();
        assert_eq!(s.policy.max_files_per_push, d.policy.max_files_per_push);
        assert_eq!(s.data_dir, d.data_dir);
        // A malformed environment value hidden by a flag is not in the way.
        let s = Settings::load(&flags, env(&[("SKILLSD_LISTEN", "nowhere")]), None).unwrap();
        assert_eq!(s.listen, "127.0.0.1:4000".parse().unwrap());

        std::fs::write(&file, "max_file_bytes = \"big\"\ngc_packs = 0\n").unwrap();
        let err = Settings::load(&Flags::default(), env(&[]), Some(&file))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "SKILLSD_MAX_FILE_BYTES=\"big\" (`max_file_bytes` in the file): expected a whole number"
            ),
            "{err}"
        );
        // ... unless the environment overrides it.
        let s = Settings::load(
            &Flags::default(),
            env(&[("SKILLSD_MAX_FILE_BYTES", "10")]),
            Some(&file),
        )
        .unwrap();
        assert_eq!(s.policy.max_file_bytes, 10);
        assert_eq!(s.gc_packs, None, "0 turns automatic gc off");
    }

    #[test]
    fn delivery_settings_are_read_and_checked() {
        let s = load_env(&[
            ("SKILLSD_DELIVERY_RETRY_SECS", "2"),
            ("SKILLSD_DELIVERY_RETRY_MAX_SECS", "30"),
            ("SKILLSD_WEBHOOK_ATTEMPTS", "3"),
            ("SKILLSD_WEBHOOK_TIMEOUT_SECS", "4"),
            ("SKILLSD_MIRROR_TIMEOUT_SECS", "50"),
        ])
        .unwrap();
        let d = &s.delivery;
        assert_eq!(d.retry_base, Duration::from_secs(2));
        assert_eq!(d.retry_max, Duration::from_secs(30));
        assert_eq!(d.webhook_attempts, 3);
        assert_eq!(d.webhook_timeout, Duration::from_secs(4));
        assert_eq!(d.mirror_timeout, Duration::from_secs(50));
        let e = load_env(&[
            ("SKILLSD_DELIVERY_RETRY_SECS", "60"),
            ("SKILLSD_DELIVERY_RETRY_MAX_SECS", "10"),
            ("SKILLSD_WEBHOOK_ATTEMPTS", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("delivery_retry_max_secs"), "{e}");
        assert!(e.contains("webhook_attempts"), "{e}");
    }

    #[test]
    fn limits_and_offs() {
        let s = load_env(&[
            ("SKILLSD_MAX_FILE_BYTES", "99999999"),
            ("SKILLSD_RECONCILE_SECS", "0"),
            ("SKILLSD_BULK_LOAD_FROM", "5"),
            ("SKILLSD_ADMIN_KEYS", "a.pub,b.pub"),
            ("SKILLSD_ADMIN_TOKEN", ""),
            ("DATABASE_URL", ""),
        ])
        .unwrap();
        assert_eq!(
            s.policy.max_file_bytes,
            crate::skills::validate::MAX_FILE_BYTES as u64,
            "at most the built-in limit"
        );
        assert_eq!(s.reconcile_every, None);
        assert_eq!(s.bulk_load_from, Some(5));
        assert_eq!(
            s.admin_keys,
            vec![PathBuf::from("a.pub"), PathBuf::from("b.pub")]
        );
        assert_eq!(s.admin_token, None, "an empty token is no token");
        assert_eq!(s.database_url, None);
    }

    #[test]
    fn reads_settings_and_refuses_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("skillsd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(
            &p,
            "listen = \"0.0.0.0:22\"\nmax_sessions = 5\nmutable_tags = true\n",
        )
        .unwrap();
        let got = read(&p).unwrap();
        assert_eq!(
            got,
            vec![
                ("SKILLSD_LISTEN", "0.0.0.0:22".to_string()),
                ("SKILLSD_MAX_SESSIONS", "5".to_string()),
                ("SKILLSD_MUTABLE_TAGS", "1".to_string()),
            ]
        );
        std::fs::write(&p, "lisen = 1\n").unwrap();
        assert!(read(&p)
            .unwrap_err()
            .to_string()
            .contains("unknown setting `lisen`"));
        std::fs::write(&p, "listen = [1]\n").unwrap();
        assert!(read(&p)
            .unwrap_err()
            .to_string()
            .contains("must be a string"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_ssh_url_is_an_ssh_address_without_a_path() {
        let s = load_env(&[("SKILLSD_SSH_URL", "ssh://git@skills.example.com:2222/")]).unwrap();
        assert_eq!(
            s.ssh_url.as_deref(),
            Some("ssh://git@skills.example.com:2222")
        );
        assert_eq!(load_env(&[]).unwrap().ssh_url, None);
        for bad in [
            "skills.example.com",
            "ssh://",
            "ssh://h/skills.git",
            "https://h",
        ] {
            let err = load_env(&[("SKILLSD_SSH_URL", bad)]).unwrap_err();
            assert!(err.to_string().contains("SKILLSD_SSH_URL"), "{bad}: {err}");
        }
    }
}
