//! The settings read from their raw values (flag > environment > file > default) into
//! the types the modules own; every malformed value is collected, named by its
//! setting and value, and refuses the start.

use super::table::{SETTINGS, env};
use super::{Flags, LogFormat, MetricsAccess, Settings, WebAccess};
use std::path::PathBuf;
use std::time::Duration;

/// Reads raw values and collects what is malformed.
pub(super) struct Reader<'a> {
    pub(super) lookup: &'a dyn Fn(&str) -> Option<String>,
    pub(super) bad: Vec<String>,
}

impl Reader<'_> {
    pub(super) fn settings(&mut self, flags: &Flags) -> Settings {
        let d = Settings::default();
        let address = "an address like 127.0.0.1:2222";
        let listen = flags
            .listen
            .or_else(|| self.parsed(env::LISTEN, address))
            .unwrap_or(d.listen);
        let http = match flags.http {
            Some(given) => given,
            None => match self.text(env::HTTP).as_deref() {
                Some("off") => None,
                Some(_) => self
                    .parsed(env::HTTP, "an address like 127.0.0.1:8080, or off")
                    .or(d.http),
                None => d.http,
            },
        };
        let admin_keys = self.admin_keys(flags);
        let log = self.text(env::LOG).unwrap_or(d.log);
        if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
            self.refuse(env::LOG, &log, "a log filter like info,sqlx=warn");
        }
        let log_format = match self.one_of(env::LOG_FORMAT, &["text", "json"]) {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let (web_access, metrics) = self.access();
        let (public_url, ssh_url) = self.urls();
        // Pushes while the database is away are always refused: the only value.
        self.one_of(env::DB_DOWN, &["refuse"]);
        let limits = self.ssh_limits(&d.limits, d.idle_timeout);
        let policy = self.policy(&d.policy);
        let proxy_protocol = match self.text(env::PROXY_PROTOCOL) {
            None => d.proxy_protocol.clone(),
            Some(t) => crate::net::proxy::Trusted::parse(&t).unwrap_or_else(|e| {
                self.refuse(
                    env::PROXY_PROTOCOL,
                    &t,
                    &format!("addresses or networks, comma-separated ({e})"),
                );
                d.proxy_protocol.clone()
            }),
        };
        let http_limits = self.http_limits(&d.http_limits);
        Settings {
            listen,
            http,
            data_dir: flags
                .data_dir
                .clone()
                .or_else(|| self.text(env::DATA_DIR).map(PathBuf::from))
                .unwrap_or(d.data_dir),
            database_url: flags
                .database_url
                .clone()
                .filter(|u| !u.is_empty())
                .or_else(|| self.text(env::DATABASE_URL)),
            admin_keys,
            admin_token: self.text(env::ADMIN_TOKEN),
            host_key: self.text(env::HOST_KEY).map(PathBuf::from),
            log,
            log_format,
            web_access,
            metrics,
            metrics_token: self.text(env::METRICS_TOKEN),
            public_url,
            ssh_url,
            limits,
            policy,
            http_limits,
            pack_grace: self.secs(env::PACK_GRACE_SECS, d.pack_grace),
            gc_packs: self.count_or_off(env::GC_PACKS, d.gc_packs),
            idle_timeout: self.secs(env::IDLE_TIMEOUT_SECS, d.idle_timeout),
            max_connections: self.count(env::MAX_CONNECTIONS, d.max_connections),
            login_grace: self.secs(env::LOGIN_GRACE_SECS, d.login_grace),
            max_startups: self.count(env::MAX_STARTUPS, d.max_startups),
            max_startups_per_source: self
                .count(env::MAX_STARTUPS_PER_SOURCE, d.max_startups_per_source),
            proxy_protocol,
            shutdown_grace: self.secs(env::SHUTDOWN_GRACE_SECS, d.shutdown_grace),
            reconcile_every: self
                .count_or_off(env::RECONCILE_SECS, d.reconcile_every.map(|t| t.as_secs()))
                .map(Duration::from_secs),
            bulk_load_from: self.count_or_off(env::BULK_LOAD_FROM, d.bulk_load_from),
            delivery: self.delivery(&d.delivery),
            mcp: self.mcp(&d.mcp),
        }
    }

    /// The admins' public key files: the flags, else the comma-separated list.
    fn admin_keys(&mut self, flags: &Flags) -> Vec<PathBuf> {
        if !flags.admin_keys.is_empty() {
            return flags.admin_keys.clone();
        }
        self.text(env::ADMIN_KEYS)
            .map(|v| {
                v.split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Who may read the pages and the JSON API, and who `/metrics` (a token by default
    /// when the pages need signing in).
    fn access(&mut self) -> (WebAccess, MetricsAccess) {
        let web_access = match self.one_of(env::WEB_ACCESS, &["open", "signed-in"]) {
            Some("signed-in") => WebAccess::SignedIn,
            _ => WebAccess::Open,
        };
        let metrics = match self.one_of(env::METRICS, &["open", "token"]) {
            Some("open") => MetricsAccess::Open,
            Some("token") => MetricsAccess::Token,
            _ if web_access == WebAccess::SignedIn => MetricsAccess::Token,
            _ => MetricsAccess::Open,
        };
        (web_access, metrics)
    }

    /// The public addresses (`SKILLSD_PUBLIC_URL`, `SKILLSD_SSH_URL`), checked, without
    /// a trailing slash.
    fn urls(&mut self) -> (Option<String>, Option<String>) {
        let public_url = self.text(env::PUBLIC_URL);
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            let url = url.clone();
            self.refuse(env::PUBLIC_URL, &url, "an http:// or https:// address");
        }
        let ssh_url = self.text(env::SSH_URL);
        if let Some(url) = &ssh_url {
            let rest = url.strip_prefix("ssh://").unwrap_or_default();
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
                let url = url.clone();
                self.refuse(
                    env::SSH_URL,
                    &url,
                    "an ssh:// address without a path (ssh://git@HOST:PORT)",
                );
            }
        }
        (
            public_url.map(|u| u.trim_end_matches('/').to_string()),
            ssh_url.map(|u| u.trim_end_matches('/').to_string()),
        )
    }

    /// The SSH side's limits; the idle time is also the window of the minimum rate.
    fn ssh_limits(&mut self, dl: &crate::ssh::Limits, idle: Duration) -> crate::ssh::Limits {
        crate::ssh::Limits {
            max_sessions: self.count(env::MAX_SESSIONS, dl.max_sessions),
            max_sessions_per_user: self.count(env::MAX_SESSIONS_PER_USER, dl.max_sessions_per_user),
            max_auth_failures: self.count(env::MAX_AUTH_FAILURES, dl.max_auth_failures),
            auth_window: self.secs(env::AUTH_WINDOW_SECS, dl.auth_window),
            session_timeout: self.secs(env::SESSION_TIMEOUT_SECS, dl.session_timeout),
            // A running command's client must keep sending while the command waits
            // for it: the idle time is the window of that rule too.
            min_rate_window: self.secs(env::IDLE_TIMEOUT_SECS, idle),
        }
    }

    /// What a push may be: ref names, sizes, the walk's and the pack's limits.
    fn policy(
        &mut self,
        dp: &crate::receive::pre_receive::Policy,
    ) -> crate::receive::pre_receive::Policy {
        use crate::incoming::inspect::PackLimits;
        use crate::receive::connectivity;
        let (dc, dk) = (&dp.limits, &dp.pack);
        let ref_pattern = match self.text(env::REF_PATTERN) {
            None => dp.ref_pattern.clone(),
            Some(p) => match crate::receive::pre_receive::ref_pattern(&p) {
                Ok(re) => re,
                Err(e) => {
                    let expected = format!("a regular expression ({e})");
                    self.refuse(env::REF_PATTERN, &p, &expected);
                    dp.ref_pattern.clone()
                }
            },
        };
        crate::receive::pre_receive::Policy {
            ref_pattern,
            mutable_tags: self.flag(env::MUTABLE_TAGS),
            max_files_per_push: self.count(env::MAX_FILES_PER_PUSH, dp.max_files_per_push),
            max_pack_bytes: self.count(env::MAX_PACK_BYTES, dp.max_pack_bytes),
            // At most the built-in limit (the default).
            max_file_bytes: self
                .count(env::MAX_FILE_BYTES, dp.max_file_bytes)
                .min(dp.max_file_bytes),
            admins_may_rewrite_default: self.flag(env::ADMINS_MAY_REWRITE_MAIN),
            limits: connectivity::Limits {
                max_tree_depth: self.count(env::MAX_TREE_DEPTH, dc.max_tree_depth),
                max_commit_bytes: self.count(env::MAX_COMMIT_BYTES, dc.max_commit_bytes),
                max_tree_entries: self.count(env::MAX_TREE_ENTRIES, dc.max_tree_entries),
                ..*dc
            },
            pack: PackLimits {
                max_object_bytes: self.count(env::MAX_OBJECT_BYTES, dk.max_object_bytes),
                max_objects: self.count(env::MAX_OBJECTS, dk.max_objects),
                max_delta_depth: self.count(env::MAX_DELTA_DEPTH, dk.max_delta_depth),
                max_delta_base_bytes: self
                    .count(env::MAX_DELTA_BASE_BYTES, dk.max_delta_base_bytes),
                max_inflate_ratio: self.count_or_off(env::MAX_INFLATE_RATIO, dk.max_inflate_ratio),
                inflate_floor: dk.inflate_floor,
            },
            ..dp.clone()
        }
    }

    /// The HTTP side's connection limits.
    fn http_limits(&mut self, dh: &crate::net::HttpLimits) -> crate::net::HttpLimits {
        crate::net::HttpLimits {
            max_connections: self.count(env::HTTP_MAX_CONNECTIONS, dh.max_connections),
            max_per_address: self.count(env::HTTP_MAX_PER_ADDRESS, dh.max_per_address),
            header: self.secs(env::HTTP_HEADER_SECS, dh.header),
            idle: self.secs(env::HTTP_IDLE_SECS, dh.idle),
            lifetime: self.secs(env::HTTP_LIFETIME_SECS, dh.lifetime),
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
            retry_base: self.secs(env::DELIVERY_RETRY_SECS, d.retry_base),
            retry_max: self.secs(env::DELIVERY_RETRY_MAX_SECS, d.retry_max),
            webhook_attempts: self.count(env::WEBHOOK_ATTEMPTS, d.webhook_attempts),
            webhook_timeout: self.secs(env::WEBHOOK_TIMEOUT_SECS, d.webhook_timeout),
            mirror_timeout: self.secs(env::MIRROR_TIMEOUT_SECS, d.mirror_timeout),
        };
        let zero = |d: Duration| d.is_zero();
        for (env, bad) in [
            (env::DELIVERY_RETRY_SECS, zero(s.retry_base)),
            (env::WEBHOOK_TIMEOUT_SECS, zero(s.webhook_timeout)),
            (env::MIRROR_TIMEOUT_SECS, zero(s.mirror_timeout)),
            (env::WEBHOOK_ATTEMPTS, s.webhook_attempts == 0),
        ] {
            if bad {
                self.refuse(env, "0", "a number of at least 1");
            }
        }
        if s.retry_max < s.retry_base {
            let v = s.retry_max.as_secs().to_string();
            self.refuse(
                env::DELIVERY_RETRY_MAX_SECS,
                &v,
                "at least SKILLSD_DELIVERY_RETRY_SECS",
            );
        }
        s
    }

    fn mcp(&mut self, d: &crate::agents::mcp::Limits) -> crate::agents::mcp::Limits {
        let limits = crate::agents::mcp::Limits {
            max_sessions: self.count(env::MCP_MAX_SESSIONS, d.max_sessions),
            idle: self.secs(env::MCP_SESSION_IDLE_SECS, d.idle),
        };
        for (env, bad) in [
            (env::MCP_MAX_SESSIONS, limits.max_sessions == 0),
            (env::MCP_SESSION_IDLE_SECS, limits.idle.is_zero()),
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
