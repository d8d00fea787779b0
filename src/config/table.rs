//! Every setting once, as the operator sees it: its key in the file, its environment
//! variable, what it means and its default (`[...]`, checked against the code's
//! defaults by the tests); `--help` and the defaults file are made from it.

use super::{Flags, Settings};

/// Declares each setting once: its file key, its environment variable and what it
/// means (with its default in brackets). Makes `SETTINGS` (the table `--help`, the
/// defaults file and the file reader use) and a constant per setting in [`env`]
/// holding its variable's name, which the reader reads it by: a setting the reader
/// names is in the table, or the build fails.
macro_rules! settings {
    ($($name:ident: $key:literal, $env:literal, $about:expr;)*) => {
        /// File key → environment variable, with what it means (for errors and `--help`).
        pub const SETTINGS: &[(&str, &str, &str)] = &[$(($key, $env, $about)),*];

        /// Each setting's environment variable, by the setting's name.
        pub mod env {
            $(pub const $name: &str = $env;)*
        }
    };
}

settings! {
    LISTEN: "listen", "SKILLSD_LISTEN", "SSH address [127.0.0.1:2222]";
    HTTP: "http", "SKILLSD_HTTP", "HTTP address of the status pages, health and the JSON API; off = none [127.0.0.1:8080]";
    DATA_DIR: "data_dir", "SKILLSD_DATA_DIR", "data directory [./data]";
    DATABASE_URL: "database_url", "DATABASE_URL", "PostgreSQL URL [private cluster in the data dir]";
    ADMIN_KEYS: "admin_keys", "SKILLSD_ADMIN_KEYS", "public key files of the first admins, ','-separated";
    ADMIN_TOKEN: "admin_token", "SKILLSD_ADMIN_TOKEN", "bearer token of the HTTP admin API [off]";
    HOST_KEY: "host_key", "SKILLSD_HOST_KEY", "OpenSSH private key file every node presents [the one in the database]";
    LOG: "log", "SKILLSD_LOG", "log filter [info,sqlx=warn,russh=warn]";
    LOG_FORMAT: "log_format", "SKILLSD_LOG_FORMAT", "text or json [text]";
    WEB_ACCESS: "web_access", "SKILLSD_WEB_ACCESS", "who may read the status pages: open or signed-in [open]";
    METRICS: "metrics", "SKILLSD_METRICS", "who may read /metrics: open or token [open; token with web_access = signed-in]";
    METRICS_TOKEN: "metrics_token", "SKILLSD_METRICS_TOKEN", "bearer token for /metrics when metrics = token [the admin token]";
    PUBLIC_URL: "public_url", "SKILLSD_PUBLIC_URL", "the HTTP listener's address as browsers reach it, for sign-in links [http://HTTP]";
    SSH_URL: "ssh_url", "SKILLSD_SSH_URL", "the SSH address as clients clone from it, for the marketplace manifests \
         [ssh://git@HOST:PORT from the public URL or the listener]";
    DB_DOWN: "db_down", "SKILLSD_DB_DOWN", "pushes while PostgreSQL is away: always refused, it stores the git data [refuse]";
    PACK_GRACE_SECS: "pack_grace_secs", "SKILLSD_PACK_GRACE_SECS", "how long packs a gc replaced stay for readers [3600]";
    MAX_PACK_BYTES: "max_pack_bytes", "SKILLSD_MAX_PACK_BYTES", "largest pack one push may send [536870912]";
    MAX_FILES_PER_PUSH: "max_files_per_push", "SKILLSD_MAX_FILES_PER_PUSH", "skill files one push may add or change [20000]";
    MAX_FILE_BYTES: "max_file_bytes", "SKILLSD_MAX_FILE_BYTES", "largest skill file, at most 1 MiB [1048576]";
    ADMINS_MAY_REWRITE_MAIN: "admins_may_rewrite_main", "SKILLSD_ADMINS_MAY_REWRITE_MAIN", "1 lets admins force-push or delete main [0]";
    REF_PATTERN: "ref_pattern", "SKILLSD_REF_PATTERN", "regular expression every pushed ref's full name must match \
         [refs/(heads|tags)/[A-Za-z0-9][A-Za-z0-9._/@+-]*]";
    MUTABLE_TAGS: "mutable_tags", "SKILLSD_MUTABLE_TAGS", "1 lets pushed tags move [0]";
    MAX_SESSIONS: "max_sessions", "SKILLSD_MAX_SESSIONS", "commands running at once [200]";
    MAX_SESSIONS_PER_USER: "max_sessions_per_user", "SKILLSD_MAX_SESSIONS_PER_USER", "... per user [64]";
    MAX_AUTH_FAILURES: "max_auth_failures", "SKILLSD_MAX_AUTH_FAILURES", "refused keys per address and window [20]";
    AUTH_WINDOW_SECS: "auth_window_secs", "SKILLSD_AUTH_WINDOW_SECS", "that window [300]";
    IDLE_TIMEOUT_SECS: "idle_timeout_secs", "SKILLSD_IDLE_TIMEOUT_SECS", "idle connections close after [300]";
    SESSION_TIMEOUT_SECS: "session_timeout_secs", "SKILLSD_SESSION_TIMEOUT_SECS", "longest a git session may run [3600]";
    SHUTDOWN_GRACE_SECS: "shutdown_grace_secs", "SKILLSD_SHUTDOWN_GRACE_SECS", "how long shutdown waits for sessions [30]";
    RECONCILE_SECS: "reconcile_secs", "SKILLSD_RECONCILE_SECS", "periodic reconcile, 0 = off [600]";
    GC_PACKS: "gc_packs", "SKILLSD_GC_PACKS", "pack count that starts a background gc, 0 = off [16]";
    MAX_TREE_ENTRIES: "max_tree_entries", "SKILLSD_MAX_TREE_ENTRIES", "most files and folders a pushed commit's tree may expand to [2000000]";
    MAX_TREE_DEPTH: "max_tree_depth", "SKILLSD_MAX_TREE_DEPTH", "deepest path in a pushed tree, like git's core.maxTreeDepth [4096]";
    MAX_COMMIT_BYTES: "max_commit_bytes", "SKILLSD_MAX_COMMIT_BYTES", "largest pushed commit or tag object, message included [1048576]";
    MAX_OBJECT_BYTES: "max_object_bytes", "SKILLSD_MAX_OBJECT_BYTES", "largest pushed object (or delta result), inflated [33554432]";
    MAX_OBJECTS: "max_objects", "SKILLSD_MAX_OBJECTS", "most objects in one pushed pack [2000000]";
    MAX_DELTA_DEPTH: "max_delta_depth", "SKILLSD_MAX_DELTA_DEPTH", "longest delta chain in a pushed pack [4095]";
    MAX_DELTA_BASE_BYTES: "max_delta_base_bytes", "SKILLSD_MAX_DELTA_BASE_BYTES", "total size of the objects a pack's deltas build on [201326592]";
    MAX_INFLATE_RATIO: "max_inflate_ratio", "SKILLSD_MAX_INFLATE_RATIO", "what a pushed pack may inflate to, as a multiple of its size, above 256 MiB; 0 = unbounded [200]";
    MAX_CONNECTIONS: "max_connections", "SKILLSD_MAX_CONNECTIONS", "SSH connections open at once [1000]";
    HTTP_MAX_CONNECTIONS: "http_max_connections", "SKILLSD_HTTP_MAX_CONNECTIONS", "HTTP connections open at once [256]";
    HTTP_MAX_PER_ADDRESS: "http_max_per_address", "SKILLSD_HTTP_MAX_PER_ADDRESS", "... from one address (an eighth more is kept for new addresses) [32]";
    HTTP_HEADER_SECS: "http_header_secs", "SKILLSD_HTTP_HEADER_SECS", "a new HTTP connection's first byte must come within [10]";
    LOGIN_GRACE_SECS: "login_grace_secs", "SKILLSD_LOGIN_GRACE_SECS", "an SSH connection must sign in within (OpenSSH's LoginGraceTime) [30]";
    MAX_STARTUPS: "max_startups", "SKILLSD_MAX_STARTUPS", "SSH connections not signed in yet, in all (a fifth more for new addresses) [256]";
    MAX_STARTUPS_PER_SOURCE: "max_startups_per_source", "SKILLSD_MAX_STARTUPS_PER_SOURCE", "... from one address (CI runners behind one NAT sign in together) [128]";
    PROXY_PROTOCOL: "proxy_protocol", "SKILLSD_PROXY_PROTOCOL", "balancers (addresses or networks, comma-separated) whose SSH connections start \
         with a PROXY header naming the client (HAProxy's send-proxy-v2) [none]";
    HTTP_IDLE_SECS: "http_idle_secs", "SKILLSD_HTTP_IDLE_SECS", "an HTTP connection without traffic closes after [60]";
    HTTP_LIFETIME_SECS: "http_lifetime_secs", "SKILLSD_HTTP_LIFETIME_SECS", "longest an HTTP connection may live [300]";
    BULK_LOAD_FROM: "bulk_load_from", "SKILLSD_BULK_LOAD_FROM", "skills an empty cache is rebuilt (or a first push imported) indexes-last from, 0 = never [10000]";
    DELIVERY_RETRY_SECS: "delivery_retry_secs", "SKILLSD_DELIVERY_RETRY_SECS", "first wait before a mirror or webhook delivery is retried, doubled each time [10]";
    DELIVERY_RETRY_MAX_SECS: "delivery_retry_max_secs", "SKILLSD_DELIVERY_RETRY_MAX_SECS", "longest wait between retries of a mirror or webhook delivery [600]";
    WEBHOOK_ATTEMPTS: "webhook_attempts", "SKILLSD_WEBHOOK_ATTEMPTS", "attempts of a webhook delivery before it is marked failed [8]";
    WEBHOOK_TIMEOUT_SECS: "webhook_timeout_secs", "SKILLSD_WEBHOOK_TIMEOUT_SECS", "one webhook request, connecting included [10]";
    MIRROR_TIMEOUT_SECS: "mirror_timeout_secs", "SKILLSD_MIRROR_TIMEOUT_SECS", "one push to a mirror, connecting included [600]";
    MCP_MAX_SESSIONS: "mcp_max_sessions", "SKILLSD_MCP_MAX_SESSIONS", "MCP sessions (and change subscriptions) open at once; the idlest closes first [256]";
    MCP_SESSION_IDLE_SECS: "mcp_session_idle_secs", "SKILLSD_MCP_SESSION_IDLE_SECS", "an MCP session without a request closes after [1800]";
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
pub(super) fn split_default(what: &str) -> (&str, Option<&str>) {
    match what.strip_suffix(']').and_then(|w| w.rsplit_once(" [")) {
        Some((about, default)) => (about, Some(default)),
        None => (what, None),
    }
}
