//! Protected refs and push limits: tags cannot be moved or deleted, packs over the
//! size limit are refused while they stream, pushes over the file limit are refused;
//! each refusal writes nothing.

use crate::common;

use common::{Git, Server, skill};

#[test]
fn tags_cannot_be_moved_or_deleted() {
    let server = Server::start();
    let key = server.add_user("alice", "admin");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.ok(&dir, &["tag", "-a", "v1", "-m", "v1"]);
    git.ok(&dir, &["push", "origin", "v1"]);
    let v1 = server.server_ref("skills", "refs/tags/v1").unwrap();
    git.commit_files(&dir, &[("skills/t/later.md", &skill("Later", ""))], "later");
    git.ok(&dir, &["push", "origin", "main"]);
    git.ok(&dir, &["tag", "-f", "-a", "v1", "-m", "moved"]);
    let stderr = git.fails(&dir, &["push", "-f", "origin", "v1"]);
    assert!(
        stderr.contains("tags cannot be moved or deleted once pushed"),
        "{stderr}"
    );
    let stderr = git.fails(&dir, &["push", "origin", ":refs/tags/v1"]);
    assert!(
        stderr.contains("tags cannot be moved or deleted once pushed"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/tags/v1").as_deref(),
        Some(v1.as_str())
    );
}

#[test]
fn oversized_packs_are_refused_while_streaming() {
    let server = Server::start_tuned(false, |s| s.policy.max_pack_bytes = 20_000);
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    let files = server.object_files("skills");
    // ~60 KB that does not compress: a pseudo-random body.
    let mut x: u64 = 42;
    let body: String = (0..60_000)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect();
    git.commit_files(
        &dir,
        &[(
            "skills/big/large.md",
            &format!("---\ntitle: Large\n---\n{body}\n"),
        )],
        "big",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("the pack is larger than the limit of 20000 bytes"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(server.object_files("skills"), files);
    // A small push still goes through.
    git.ok(&dir, &["reset", "-q", "--hard", &main]);
    git.commit_files(
        &dir,
        &[("skills/big/small.md", &skill("Small", ""))],
        "small",
    );
    git.ok(&dir, &["push", "origin", "main"]);
    server.assert_fsck("skills");
}

#[test]
fn pushes_over_the_file_limit_are_refused() {
    let server = Server::start_tuned(false, |s| s.policy.max_files_per_push = 3);
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    let files: Vec<(String, String)> = (0..5)
        .map(|i| (format!("skills/many/s-{i}.md"), skill(&format!("S{i}"), "")))
        .collect();
    git.commit_files(&dir, &files, "five");
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("(this push): adds or changes 5 skill files, more than the limit of 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: split the change into several smaller pushes"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
}

#[test]
fn sessions_per_user_are_limited() {
    let server = Server::start_tuned(false, |s| s.limits.max_sessions_per_user = 1);
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "reader");
    // Alice holds a session open: upload-pack waits for her wants.
    let mut held = common::hold_session(&alice, server.port);
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let stderr = git.fails(git.home.path(), &["ls-remote", &server.url("skills.git")]);
    assert!(
        stderr.contains(
            "ERROR: alice already has 1 sessions running (the limit); try again when one ends"
        ),
        "{stderr}"
    );
    // Others are not affected.
    let other = Git::new(common::GIT_NEW, &bob, &server);
    other.ok(other.home.path(), &["ls-remote", &server.url("skills.git")]);
    // When the held session ends, alice may connect again.
    drop(held.stdin.take());
    held.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (ok, _, _) = git.run(git.home.path(), &["ls-remote", &server.url("skills.git")]);
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn an_address_with_too_many_refused_keys_is_slowed_not_locked_out() {
    let server = Server::start_tuned(false, |s| s.limits.max_auth_failures = 2);
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "reader");
    let stranger = common::Key::generate("stranger");
    let git = Git::new(common::GIT_NEW, &alice, &server);
    git.ok(git.home.path(), &["ls-remote", &server.url("skills.git")]);
    let intruder = Git::new(common::GIT_NEW, &stranger, &server);
    for _ in 0..2 {
        intruder.fails(
            intruder.home.path(),
            &["ls-remote", &server.url("skills.git")],
        );
    }
    // Further unknown keys from this address wait longer and longer.
    let started = std::time::Instant::now();
    for _ in 0..4 {
        let stderr = intruder.fails(
            intruder.home.path(),
            &["ls-remote", &server.url("skills.git")],
        );
        assert!(stderr.contains("Permission denied"), "{stderr}");
    }
    let slowed = started.elapsed();
    assert!(
        slowed >= std::time::Duration::from_millis(1200),
        "four throttled attempts took only {slowed:?}"
    );
    // People behind the same address still get in: a key seen lately at once, a key
    // never seen after its turn.
    git.ok(git.home.path(), &["ls-remote", &server.url("skills.git")]);
    let bob_git = Git::new(common::GIT_NEW, &bob, &server);
    bob_git.ok(
        bob_git.home.path(),
        &["ls-remote", &server.url("skills.git")],
    );
}

#[test]
fn configured_admins_may_rewrite_main_and_file_size_is_configurable() {
    let server = Server::start_tuned(false, |s| {
        s.policy.admins_may_rewrite_default = true;
        s.policy.max_file_bytes = 2000;
    });
    let admin = server.add_user("root", "admin");
    let writer = server.add_user("wendy", "writer");
    let a = Git::new(common::GIT_NEW, &admin, &server);
    let w = Git::new(common::GIT_NEW, &writer, &server);
    let dir = a.clone(&server.url("skills.git"), &[]);
    let base = a.head(&dir);
    a.commit_files(&dir, &[("skills/r/one.md", &skill("One", ""))], "one");
    a.ok(&dir, &["push", "origin", "main"]);
    // A writer still cannot rewrite main...
    let wdir = w.clone(&server.url("skills.git"), &[]);
    w.ok(&wdir, &["reset", "-q", "--hard", &base]);
    w.commit_files(&wdir, &[("skills/r/two.md", &skill("Two", ""))], "two");
    let stderr = w.fails(&wdir, &["push", "-f", "origin", "main"]);
    assert!(stderr.contains("non-fast-forward"), "{stderr}");
    // ...an admin can, when the configuration says so.
    a.ok(&dir, &["reset", "-q", "--hard", &base]);
    let rewritten = a.commit_files(&dir, &[("skills/r/three.md", &skill("Three", ""))], "three");
    a.ok(&dir, &["push", "-f", "origin", "main"]);
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(rewritten.as_str())
    );
    // Files above the configured size are refused before they are read.
    let big = format!("---\ntitle: Big\n---\n{}\n", "x".repeat(3000));
    a.commit_files(&dir, &[("skills/r/big.md", &big)], "big");
    let stderr = a.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("skills/r/big.md: file is 3020 bytes, more than the limit of 2000"),
        "{stderr}"
    );
}

#[test]
fn unknown_keys_hammering_from_one_address_never_refuse_a_known_key() {
    let server = Server::start_tuned(false, |s| s.limits.max_auth_failures = 2);
    let stranger = common::Key::generate("stranger");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Unknown keys, several at a time, from the same address as the user, for as long
    // as the user's logins take (bounded: 40 s at most).
    let hammers: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            let port = server.port;
            let private = stranger.private.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let mut tries = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && started.elapsed() < std::time::Duration::from_secs(40)
                {
                    let _ = std::process::Command::new("ssh")
                        .args([
                            "-o",
                            "BatchMode=yes",
                            "-o",
                            "StrictHostKeyChecking=no",
                            "-o",
                            "UserKnownHostsFile=/dev/null",
                            "-o",
                            "IdentitiesOnly=yes",
                            "-o",
                            "LogLevel=ERROR",
                            "-i",
                        ])
                        .arg(&private)
                        .args(["-p", &port.to_string(), "git@127.0.0.1", "whoami"])
                        .stdin(std::process::Stdio::null())
                        .output();
                    tries += 1;
                }
                tries
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(3));
    // A key never seen before (not in any cache) logs in at once, every time.
    let alice = server.add_user("alice", "writer");
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let out = common::ssh_to(&alice, server.port)
            .arg("whoami")
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "a known key was refused: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            took < std::time::Duration::from_secs(3),
            "a known key waited {took:?}"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let tries: usize = hammers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(tries >= 6, "the unknown keys were hardly tried ({tries})");
}
