//! Who may connect and what they may do: unknown keys, readers, shells, unknown
//! repositories, and the `user` commands.

use crate::common;

use common::{Git, Key, Server, skill};
use std::process::Command;

fn ssh(server: &Server, key: &Key, extra: &[&str]) -> std::process::Output {
    common::ssh_to(key, server.port)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn unknown_key_is_refused() {
    let server = Server::start();
    server.add_user("alice", "writer");
    let stranger = Key::generate("stranger");
    let git = Git::new(common::GIT_NEW, &stranger, &server);
    let stderr = git.fails(git.home.path(), &["clone", &server.url("skills.git"), "x"]);
    assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");
    assert!(!git.home.path().join("x").exists());
}

#[test]
fn reader_can_clone_but_not_push() {
    let server = Server::start();
    let key = server.add_user("rita", "reader");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let before = server.server_ref("skills", "refs/heads/main").unwrap();
    let files_before = server.object_files("skills");
    git.commit_files(&dir, &[("skills/x/new-one.md", &skill("New", ""))], "new");
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("ERROR: rita has read-only access (role: reader); ask an admin for the writer role to push"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").unwrap(),
        before
    );
    assert_eq!(server.object_files("skills"), files_before);
}

#[test]
fn shell_access_is_refused_politely() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let out = ssh(&server, &key, &[]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("Hi alice! You've authenticated, but there is no shell access."),
        "{all}"
    );
    assert_eq!(out.status.code(), Some(1));
    // An arbitrary command is refused too.
    let out = ssh(&server, &key, &["cat", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "skillsd: `cat /etc/passwd` is not available here; run `help` for what is (this server speaks git)\n"
    );
    // skillsd's own `ls` names repositories, not paths.
    let out = ssh(&server, &key, &["ls", "/"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ERROR: repository `/` not found\n"
    );
}

#[test]
fn unknown_repositories_get_the_same_not_found() {
    let server = Server::start();
    let key = server.add_user("alice", "admin");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let data_dir = server.data.path().to_string_lossy().into_owned();
    let mut messages = Vec::new();
    for repo in [
        "nope.git",
        "../skills.git",
        "etc/passwd",
        "skills.git/../../x",
    ] {
        let stderr = git.fails(git.home.path(), &["clone", &server.url(repo), "x"]);
        assert!(!stderr.contains(&data_dir), "no server paths: {stderr}");
        assert!(stderr.contains("ERROR: repository"), "{stderr}");
        assert!(stderr.contains("not found"), "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains("ERROR"))
            .unwrap()
            .replace(repo.trim_start_matches('/'), "<repo>");
        messages.push(line);
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:?}");
}

#[test]
fn user_commands_manage_keys() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let out = server.cli(&["user", "list"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let fp_out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f", key.public.to_str().unwrap()])
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp_out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(listing, format!("alice\twriter\t{fp}\n"));

    // The key works, then stops working once the user is removed.
    let git = Git::new(common::GIT_NEW, &key, &server);
    git.clone(&server.url("skills.git"), &[]);
    let out = server.cli(&["user", "remove", "alice"]);
    assert!(out.status.success());
    let stderr = git.fails(git.home.path(), &["ls-remote", &server.url("skills.git")]);
    assert!(stderr.contains("Permission denied"), "{stderr}");
    let out = server.cli(&["user", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");

    // Bad input is refused clearly.
    let out = server.cli(&["user", "remove", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named `nobody`"));
    let junk = server.data.path().join("junk.pub");
    std::fs::write(&junk, "not a key\n").unwrap();
    let out = server.cli(&[
        "user",
        "add",
        "x",
        "--role",
        "writer",
        "--key",
        junk.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an OpenSSH public key"));
    let out = server.cli(&[
        "user",
        "add",
        "x",
        "--role",
        "owner",
        "--key",
        key.public.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
}

#[test]
fn forwarding_sftp_and_ptys_are_refused() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    // Port forwarding to anywhere (direct-tcpip, as `ssh -W`).
    let out = ssh(&server, &key, &["-W", "127.0.0.1:22"]);
    assert_eq!(out.status.code(), Some(255));
    // Remote forwarding (tcpip-forward).
    let out = common::ssh_to(&key, server.port)
        .args([
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "0:127.0.0.1:9",
            "git-upload-pack",
            "'/skills.git'",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("remote port forwarding failed"), "{stderr}");
    // X11 forwarding is refused and the session goes on to its command. (Agent
    // forwarding is requested without a reply; it is refused, and skillsd never opens
    // an agent channel anyway.)
    let out = common::ssh_to(&key, server.port)
        .args(["-X", "-A", "-o", "ForwardX11Trusted=yes", "-v", "whoami"])
        .env("DISPLAY", ":0")
        .env("SSH_AUTH_SOCK", "/nonexistent/agent.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("user: alice\n"),
        "{stderr}"
    );
    assert!(stderr.contains("X11 forwarding request failed"), "{stderr}");
    assert!(
        stderr.contains("X11 forwarding request failed on channel"),
        "{stderr}"
    );
    // sftp subsystem.
    let out = ssh(&server, &key, &["-s", "sftp"]);
    assert!(!out.status.success());
    // From a real terminal (script(1) gives ssh one): the pty is refused, then the
    // shell, politely.
    let cmd = format!(
        "ssh {} -p {} git@127.0.0.1",
        common::ssh_options(&key),
        server.port
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("PTY allocation request failed"), "{all}");
    assert!(
        all.contains("Hi alice! You've authenticated, but there is no shell access."),
        "{all}"
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
}

#[test]
fn per_repository_grants_replace_the_global_role() {
    let server = Server::start();
    let key = server.add_user("bob", "reader");
    assert!(server.cli(&["init", "notes", "--empty"]).status.success());
    let out = server.cli(&["user", "grant", "bob", "notes.git", "--role", "writer"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bob is writer on notes\n"
    );
    let git = Git::new(common::GIT_NEW, &key, &server);
    // Writer on notes...
    let notes = git.clone(&server.url("notes.git"), &[]);
    git.commit_files(&notes, &[("skills/first.md", &skill("First", ""))], "first");
    git.ok(&notes, &["push", "origin", "main"]);
    // ...still a reader on skills.
    let skills = git.clone(&server.url("skills.git"), &[]);
    git.commit_files(&skills, &[("skills/x/nope.md", &skill("Nope", ""))], "nope");
    let stderr = git.fails(&skills, &["push", "origin", "main"]);
    assert!(
        stderr.contains("bob has read-only access (role: reader)"),
        "{stderr}"
    );
    // Revoked: a reader on notes again.
    assert!(
        server
            .cli(&["user", "revoke", "bob", "notes"])
            .status
            .success()
    );
    git.commit_files(
        &notes,
        &[("skills/second.md", &skill("Second", ""))],
        "second",
    );
    let stderr = git.fails(&notes, &["push", "origin", "main"]);
    assert!(stderr.contains("bob has read-only access"), "{stderr}");
    // Mistakes are named.
    let out = server.cli(&["user", "grant", "nobody", "notes", "--role", "writer"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named `nobody`"));
    let out = server.cli(&["user", "revoke", "bob", "notes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("`bob` has no grant on `notes`"));
}
