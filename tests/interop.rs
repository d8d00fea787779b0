//! Interop with git implementations other than the git CLI: dulwich (pure Python,
//! over the OpenSSH client) and libgit2 through pygit2 (its own SSH stack, libssh2).
//! Each clones, pushes a skill, fetches it into a second clone, and has an invalid
//! push refused.

use crate::common;

use common::{Key, Server};
use std::process::Command;

fn run_client(server: &Server, key: &Key, lib: &str) -> serde_json::Value {
    let work = tempfile::Builder::new()
        .prefix("skillsd-interop-")
        .tempdir()
        .unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/client.py"
        ))
        .args([lib, &server.url("skills.git")])
        .arg(work.path())
        .arg(&key.private)
        .arg(&key.public)
        .arg(format!("{lib}-skill"))
        .env("HOME", work.path())
        .env(
            "GIT_SSH_COMMAND",
            format!("ssh {} -p {}", common::ssh_options(key), server.port),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{lib} client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

fn check(lib: &str) {
    let server = Server::start();
    // libssh2 (pygit2) and OpenSSH (dulwich) both get an ed25519 key.
    let key = server.add_user("interop", "writer");
    let before = server.server_ref("skills", "refs/heads/main").unwrap();
    let out = run_client(&server, &key, lib);
    assert_eq!(out["cloned_head"], before.as_str(), "{lib}: {out}");
    let pushed = out["pushed"].as_str().unwrap();
    assert!(out.get("push_rejected").is_none(), "{lib}: {out}");
    assert_eq!(out["fetched"], pushed, "{lib}: {out}");
    let bad = out["bad_push"].as_str().unwrap();
    assert!(
        bad.starts_with("refused") && bad.contains("invalid skills: 1 error in 1 file"),
        "{lib}: {out}"
    );
    // The valid push landed in git and in the cache; the invalid one did not.
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(pushed)
    );
    server.assert_fsck("skills");
    let slugs: Vec<String> = server.query(async {
        sqlx::query_scalar(
            "SELECT slug FROM skills WHERE path LIKE 'skills/interop/%' ORDER BY slug",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(slugs, vec![format!("{lib}-skill")]);
}

#[test]
fn dulwich_clones_fetches_and_pushes() {
    check("dulwich");
}

#[test]
fn libgit2_clones_fetches_and_pushes() {
    check("pygit2");
}
