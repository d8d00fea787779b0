//! Test harness: a real PostgreSQL (one private cluster for the test run, a fresh
//! database per test), skillsd started in-process on an ephemeral port with its own
//! data directory, keys made by `ssh-keygen`, and the real `git` over the real OpenSSH
//! client.
#![allow(dead_code)]

//!
//! `db.rs`: the cluster and a fresh database per test; `server.rs`: skillsd
//! in-process; `child.rs`: skillsd as a child process, and clusters of them;
//! `git.rs`: keys, git and raw SSH clients. Everything is re-exported here.

pub mod agents;
mod child;
mod db;
mod git;
pub mod packs;
mod server;
pub mod upstream;

pub use child::*;
pub use db::*;
pub use git::*;
pub use server::*;

use skillsd::config::Settings;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

/// Waits (up to `secs`) until `check` holds; fails naming `what` otherwise. The one
/// way the tests wait for something that happens after a call returns.
pub fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    eventually_some(secs, what, || check().then_some(()));
}

/// Waits (up to `secs`) until `check` gives a value, and returns it.
pub fn eventually_some<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(secs),
            "not within {secs} s: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Debian's git (2.39).
pub const GIT_OLD: &str = "/usr/bin/git";
/// The newer git under /usr/local (2.47).
pub const GIT_NEW: &str = "/usr/local/bin/git";
/// Both gits on the machine: every client-facing behaviour is tested with each.
pub const GITS: [&str; 2] = [GIT_OLD, GIT_NEW];

pub const SKILLSD: &str = env!("CARGO_BIN_EXE_skillsd");

/// The HTTP admin token of test servers.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A valid skill file.
pub fn skill(title: &str, extra: &str) -> String {
    format!("---\ntitle: {title}\n{extra}---\n\n# {title}\n\nSome body text.\n")
}

/// Runs a command, asserts success, returns its trimmed stdout.
pub fn stdout_of(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A command's standard output, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `text` contains every one of `expected`, naming the first one missing.
pub fn assert_contains_all(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "missing `{e}` in:\n{text}");
    }
}
