//! The configuration file. Every setting of `skillsd serve` can come from (highest
//! precedence first): a command-line flag, an environment variable, the TOML file
//! named by `--config` / `SKILLSD_CONFIG` (default `/etc/skillsd.toml` when it
//! exists), or the built-in default. A key in the file is the environment variable's
//! name in lower case without the `SKILLSD_` prefix (`database_url` for
//! `DATABASE_URL`).

use std::path::{Path, PathBuf};

/// File key → environment variable, with what it means (for errors and `--help`).
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("listen", "SKILLSD_LISTEN", "SSH address [127.0.0.1:2222]"),
    ("http", "SKILLSD_HTTP", "HTTP address [off]"),
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
        "log",
        "SKILLSD_LOG",
        "log filter [info,sqlx=warn,russh=warn]",
    ),
    ("log_format", "SKILLSD_LOG_FORMAT", "text or json [text]"),
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
];

/// What a setting's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number (a count, bytes, seconds).
    Count,
    /// `1`/`0`/`true`/`false`.
    Flag,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Anything (addresses are checked by the command line, URLs by the connection).
    Text,
}

/// The kind of the setting behind environment variable `env`.
pub fn kind_of(env: &str) -> Kind {
    match env {
        "SKILLSD_MUTABLE_TAGS" | "SKILLSD_ADMINS_MAY_REWRITE_MAIN" => Kind::Flag,
        "SKILLSD_DB_DOWN" => Kind::OneOf(&["refuse"]),
        "SKILLSD_LOG_FORMAT" => Kind::OneOf(&["text", "json"]),
        "SKILLSD_MAX_PACK_BYTES"
        | "SKILLSD_MAX_FILES_PER_PUSH"
        | "SKILLSD_MAX_FILE_BYTES"
        | "SKILLSD_MAX_SESSIONS"
        | "SKILLSD_MAX_SESSIONS_PER_USER"
        | "SKILLSD_MAX_AUTH_FAILURES"
        | "SKILLSD_AUTH_WINDOW_SECS"
        | "SKILLSD_IDLE_TIMEOUT_SECS"
        | "SKILLSD_SESSION_TIMEOUT_SECS"
        | "SKILLSD_SHUTDOWN_GRACE_SECS"
        | "SKILLSD_RECONCILE_SECS"
        | "SKILLSD_GC_PACKS"
        | "SKILLSD_PACK_GRACE_SECS"
        | "SKILLSD_BULK_LOAD_FROM"
        | "SKILLSD_MAX_TREE_DEPTH"
        | "SKILLSD_MAX_TREE_ENTRIES"
        | "SKILLSD_MAX_COMMIT_BYTES"
        | "SKILLSD_MAX_OBJECT_BYTES"
        | "SKILLSD_MAX_OBJECTS"
        | "SKILLSD_MAX_DELTA_DEPTH"
        | "SKILLSD_MAX_DELTA_BASE_BYTES"
        | "SKILLSD_MAX_CONNECTIONS"
        | "SKILLSD_HTTP_MAX_CONNECTIONS"
        | "SKILLSD_HTTP_IDLE_SECS"
        | "SKILLSD_HTTP_LIFETIME_SECS" => Kind::Count,
        _ => Kind::Text,
    }
}

/// Checks every setting that has a value (from `value_of`, e.g. the environment after
/// the config file was merged in): a malformed value stops the start, naming the
/// setting and the value, instead of being replaced by the default without a word.
pub fn check(value_of: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let mut bad = Vec::new();
    for (key, env, _) in SETTINGS.iter().chain(EXTRA) {
        let Some(value) = value_of(env) else { continue };
        let ok = match kind_of(env) {
            Kind::Count => value.trim().parse::<u64>().is_ok() && value.trim() == value,
            Kind::Flag => matches!(value.as_str(), "1" | "0" | "true" | "false"),
            Kind::OneOf(words) => words.contains(&value.as_str()),
            Kind::Text => true,
        };
        if !ok {
            let expected = match kind_of(env) {
                Kind::Count => "a whole number".to_string(),
                Kind::Flag => "1, 0, true or false".to_string(),
                Kind::OneOf(words) => format!("one of {}", words.join(", ")),
                Kind::Text => unreachable!("text is always accepted"),
            };
            bad.push(format!(
                "{env}={value:?} (`{key}` in the file): expected {expected}"
            ));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(bad.join("; ")))
    }
}

/// Settings read from the environment only (not in the file): checked all the same.
const EXTRA: &[(&str, &str, &str)] = &[
    ("max_tree_entries", "SKILLSD_MAX_TREE_ENTRIES", ""),
    ("auth_window_secs", "SKILLSD_AUTH_WINDOW_SECS", ""),
];

/// The number in environment variable `var`, if set and well-formed ([`check`] has
/// refused malformed values at start).
pub fn number<T: std::str::FromStr>(var: &str) -> Option<T> {
    std::env::var(var).ok().and_then(|v| v.parse().ok())
}

/// A count from the environment variable `var` where 0 turns the feature off: `None`
/// for 0, the number when it parses, else `default`.
pub fn count_or_off(var: &str, default: u64) -> Option<u64> {
    match number::<u64>(var) {
        Some(0) => None,
        Some(n) => Some(n),
        None => Some(default),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid setting: {0}")]
    Invalid(String),
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
}

/// The settings in `path` as (environment variable, value) pairs.
pub fn read(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
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

/// Which file to read: `--config`/`SKILLSD_CONFIG`, else `/etc/skillsd.toml` if present.
pub fn locate(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit
        .or_else(|| std::env::var_os("SKILLSD_CONFIG").map(PathBuf::from))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_values_are_refused_by_name() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(check(env(&[
            ("SKILLSD_MAX_PACK_BYTES", "1048576"),
            ("SKILLSD_MUTABLE_TAGS", "true"),
            ("SKILLSD_DB_DOWN", "refuse"),
            ("SKILLSD_LISTEN", "0.0.0.0:22"),
        ]))
        .is_ok());
        let err = check(env(&[
            ("SKILLSD_MAX_PACK_BYTES", "lots"),
            ("SKILLSD_MUTABLE_TAGS", "yes"),
            ("SKILLSD_DB_DOWN", "accept"),
            ("SKILLSD_HTTP_IDLE_SECS", "-1"),
        ]))
        .unwrap_err()
        .to_string();
        for part in [
            "SKILLSD_MAX_PACK_BYTES=\"lots\" (`max_pack_bytes` in the file): expected a whole number",
            "SKILLSD_MUTABLE_TAGS=\"yes\"",
            "SKILLSD_DB_DOWN=\"accept\" (`db_down` in the file): expected one of refuse",
            "SKILLSD_HTTP_IDLE_SECS=\"-1\"",
        ] {
            assert!(err.contains(part), "{err}");
        }
    }

    #[test]
    fn every_setting_with_a_numeric_default_is_checked_as_a_number() {
        for (_, env, what) in SETTINGS {
            let default = what.rsplit('[').next().unwrap_or("").trim_end_matches(']');
            if default.parse::<u64>().is_ok() {
                // (flags document `[0]` as their default)
                assert!(matches!(kind_of(env), Kind::Count | Kind::Flag), "{env}");
            }
        }
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
}
