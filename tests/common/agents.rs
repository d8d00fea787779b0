//! Helpers of the tests of what agents fetch (tests/versions.rs, tests/marketplace.rs):
//! HTTP requests with curl (status, headers and body kept), digests, pushes of
//! agent-skills files, and where `scripts/deps` put the agents' real clients.

use super::{Git, Server};
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An answer: status, headers (names in lower case) and body bytes.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` on the HTTP listener with extra `headers` (`Name: value`); the path is
/// sent exactly as written.
pub fn request(server: &Server, path: &str, headers: &[String]) -> Reply {
    request_method(server, "GET", path, headers)
}

/// `method path` on the HTTP listener with extra `headers` (`Name: value`); the path
/// is sent exactly as written (`HEAD` as curl's `-I`).
pub fn request_method(server: &Server, method: &str, path: &str, headers: &[String]) -> Reply {
    let mut c = Command::new("curl");
    c.args(["-s", "--path-as-is", "-g"]);
    if method == "HEAD" {
        c.arg("-I");
    } else {
        c.args(["-i", "-X", method]);
    }
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c
        .arg(format!("http://127.0.0.1:{}{path}", server.http_port))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {path}: {out:?}");
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(server: &Server, path: &str) -> Reply {
    request(server, path, &[])
}

/// `sha256:` and the hex of the SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An Agent Skills `SKILL.md`.
pub fn skill_md(name: &str, description: &str, extra: &str) -> String {
    format!(
        "---\nname: {name}\ndescription: {description}\n{extra}---\n\n# {name}\n\nDo it this way.\n"
    )
}

/// Writes `files` into the clone (`.sh` files executable), commits them.
pub fn commit(git: &Git, dir: &Path, files: &[(&str, String)], message: &str) -> String {
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        if path.ends_with(".sh") {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    git.ok(dir, &["add", "-A"]);
    git.ok(dir, &["commit", "-q", "-m", message]);
    git.head(dir)
}

/// [`commit`], then pushes to `main`; returns the commit.
pub fn push(git: &Git, dir: &Path, files: &[(&str, String)], message: &str) -> String {
    let head = commit(git, dir, files, message);
    git.ok(dir, &["push", "-q", "origin", "HEAD:main"]);
    head
}

/// Where `scripts/deps` put Node.js, the `skills` CLI and Claude Code.
pub fn tools() -> PathBuf {
    match std::env::var_os("SKILLSD_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/skillsd-test-tools"),
    }
}
