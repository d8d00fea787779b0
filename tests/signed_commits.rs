//! Signed commits (`[commits] require_signed = true`): with both git versions, a
//! commit signed with SSH (`gpg.format=ssh`) by a key registered to a skillsd user goes
//! through; an unsigned one, one signed by a key nobody registered, and one changed
//! after it was signed are refused with the commit named and nothing written. Commits
//! the server makes for a signed-in user (the contents API) are its own.

use crate::common;

use common::{GITS, Git, Key, Server, skill};
use std::path::Path;

fn require_signed(server: &Server, key: &Key) {
    let git = Git::new(common::GIT_NEW, key, server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let mut config = std::fs::read_to_string(dir.join("skillsd.toml")).unwrap();
    config.push_str("\n[commits]\nrequire_signed = true\n");
    git.commit_files(&dir, &[("skillsd.toml", config)], "signed commits only");
    // Rules are read from the branch's tip before a push: this push is not yet bound.
    git.ok(&dir, &["push", "-q", "origin", "main"]);
}

fn main_tip(server: &Server) -> String {
    server.server_ref("skills", "refs/heads/main").unwrap()
}

/// Commits `path` signed with `signing_key` (a private key file), or unsigned.
fn commit(git: &Git, dir: &Path, path: &str, title: &str, signing_key: Option<&Path>) -> String {
    std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
    std::fs::write(dir.join(path), skill(title, "")).unwrap();
    git.ok(dir, &["add", "-A"]);
    match signing_key {
        Some(k) => git.ok(
            dir,
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("user.signingkey={}", k.display()),
                "commit",
                "-q",
                "-S",
                "-m",
                title,
            ],
        ),
        None => git.ok(dir, &["commit", "-q", "-m", title]),
    };
    git.head(dir)
}

#[test]
fn only_commits_signed_by_registered_keys_reach_a_branch_that_requires_them() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    require_signed(&server, &alice);
    let stranger = Key::generate("stranger");
    for bin in GITS {
        let git = Git::new(bin, &alice, &server);
        let dir = git.clone(&server.url("skills.git"), &[]);
        let before = main_tip(&server);

        // Unsigned: refused, the commit named, nothing written.
        let unsigned = commit(&git, &dir, "skills/a.md", "Unsigned", None);
        let err = git.fails(&dir, &["push", "origin", "main"]);
        assert!(
            err.contains(&format!(
                "commit {} cannot go to refs/heads/main: it is not signed",
                &unsigned[..7]
            )) && err.contains("gpg.format ssh"),
            "{bin}: {err}"
        );
        assert_eq!(main_tip(&server), before);

        // Signed by a key no user has: refused, the key named.
        git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);
        commit(
            &git,
            &dir,
            "skills/b.md",
            "Stranger",
            Some(&stranger.private),
        );
        let err = git.fails(&dir, &["push", "origin", "main"]);
        assert!(
            err.contains("signed by a key no skillsd user has (SHA256:"),
            "{bin}: {err}"
        );
        assert_eq!(main_tip(&server), before);

        // Signed, then changed (its message rewritten, the signature kept): refused.
        git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);
        let signed = commit(&git, &dir, "skills/c.md", "Genuine", Some(&alice.private));
        let raw = git.ok(&dir, &["cat-file", "commit", &signed]);
        let forged_text = raw.replace("Genuine", "Forged");
        let mut hash = git.cmd(&dir);
        hash.args(["hash-object", "-t", "commit", "-w", "--stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = hash.spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), forged_text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let forged = String::from_utf8(out.stdout).unwrap().trim().to_string();
        git.ok(&dir, &["update-ref", "refs/heads/main", &forged]);
        let err = git.fails(&dir, &["push", "origin", "main"]);
        assert!(err.contains("does not verify"), "{bin}: {err}");
        assert_eq!(main_tip(&server), before);

        // Signed by alice's registered key: accepted.
        git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);
        let good = commit(
            &git,
            &dir,
            &format!("skills/signed-{}.md", bin.len()),
            "Signed",
            Some(&alice.private),
        );
        git.ok(&dir, &["push", "-q", "origin", "main"]);
        assert_eq!(main_tip(&server), good);
    }

    // The contents API's commits are the server's own, made for a signed-in user.
    let out = common::ssh_to(&alice, server.port)
        .arg("token create --write")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = text.trim().lines().last().unwrap().trim().to_string();
    let body = serde_json::json!({"publish": true, "files": [{"operation": "create",
        "path": "skills/from-the-browser.md",
        "content": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, skill("Browser", ""))}]});
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body.to_string(),
        ])
        .arg(format!(
            "http://127.0.0.1:{}/api/repos/skills/changes",
            server.http_port
        ))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(answer.trim_end().ends_with("201"), "{answer}");
    assert!(answer.contains("\"published\":true"), "{answer}");

    // The history says which commits were signed, and by whom.
    let history = |slug: &str| -> serde_json::Value {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                &format!(
                    "http://127.0.0.1:{}/api/skills/{slug}/history",
                    server.http_port
                ),
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let signed = history("signed-18");
    let latest = &signed["history"][0];
    assert_eq!(latest["signature"], "verified", "{signed}");
    assert_eq!(latest["signedBy"], "alice", "{signed}");
    assert!(
        latest["signingKey"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:"),
        "{signed}"
    );
    let browser = history("from-the-browser");
    assert_eq!(browser["history"][0]["signature"], "unsigned", "{browser}");
    let page = std::process::Command::new("curl")
        .args([
            "-s",
            &format!("http://127.0.0.1:{}/skills/signed-18", server.http_port),
        ])
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(page.contains("✓ verified: alice"), "{page}");
    server.assert_fsck("skills");
}
