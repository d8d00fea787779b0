//! Push mirrors against a real upstream: OpenSSH's sshd with git-shell on loopback
//! (Debian's git 2.39 and git 2.47), fed by skillsd's own SSH client. Pushes and tags
//! arrive; a refused push never does; a diverged upstream is not overwritten (unless
//! the mirror forces) and `mirror list` says why; a wrong host key is refused; an
//! upstream that is down for a while is caught up by itself.

use crate::common;

use common::eventually;
use common::upstream::Upstream;
use common::*;
use std::path::Path;
use std::process::Command;

/// `skillsd mirror add` (with `extra` flags); returns the key it printed, which the
/// upstream then authorizes.
fn add_mirror(server: &Server, upstream: &Upstream, repo: &Path, extra: &[&str]) -> String {
    let url = upstream.url(repo);
    let mut args = vec!["mirror", "add", "skills", &url];
    args.extend_from_slice(extra);
    let out = server.cli(&args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let key = text
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .unwrap_or_else(|| panic!("no key line in: {text}"))
        .to_string();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    upstream.authorize(&key);
    key
}

fn mirror_list(server: &Server) -> String {
    let out = server.cli(&["mirror", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn upstream_has(up: &Path, name: &str, target: &str) -> bool {
    ref_of(up, name).as_deref() == Some(target)
}

#[test]
fn pushes_and_tags_arrive_and_a_refused_push_never_does() {
    let server = Server::start_tuned(true, fast_retries);
    let upstream = Upstream::start("/usr/local/bin/git-shell");
    let up = upstream.bare("mirror.git");
    let out_key = add_mirror(&server, &upstream, &up, &[]);
    assert!(
        out_key.contains("skillsd-mirror-skills@127.0.0.1"),
        "{out_key}"
    );
    let main = server.server_ref("skills", "refs/heads/main").unwrap();
    // The template's commit goes first (the mirror retries until the key is in).
    eventually(30, "the upstream has main", || {
        upstream_has(&up, "refs/heads/main", &main)
    });

    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let work = git.clone(&server.url("skills"), &[]);
    let c1 = git.commit_files(&work, &[("skills/one.md", skill("One", ""))], "One");
    git.ok(&work, &["tag", "-a", "v1", "-m", "release 1"]);
    git.ok(&work, &["checkout", "-q", "-b", "draft"]);
    let draft = git.commit_files(&work, &[("skills/two.md", skill("Two", ""))], "Two");
    git.ok(&work, &["push", "-q", "origin", "main", "draft", "v1"]);
    let tag = server.server_ref("skills", "refs/tags/v1").unwrap();
    eventually(30, "main, draft and v1 upstream", || {
        upstream_has(&up, "refs/heads/main", &c1)
            && upstream_has(&up, "refs/heads/draft", &draft)
            && upstream_has(&up, "refs/tags/v1", &tag)
    });
    assert_fsck_at(&up);
    let list = mirror_list(&server);
    assert!(list.contains("in-sync"), "{list}");
    assert!(list.contains("refs behind 0"), "{list}");

    // A refused push reaches nobody.
    git.ok(&work, &["checkout", "-q", "main"]);
    let bad = git.commit_files(
        &work,
        &[("skills/bad.md", "---\ntitle: [unclosed\n---\n")],
        "Bad",
    );
    git.fails(&work, &["push", "-q", "origin", "main"]);
    let out = server.cli(&["mirror", "sync", "skills"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(upstream_has(&up, "refs/heads/main", &c1));
    let exists = Command::new(common::GIT_NEW)
        .arg("--git-dir")
        .arg(&up)
        .args(["cat-file", "-e", &bad])
        .status()
        .unwrap();
    assert!(!exists.success(), "the refused commit reached the upstream");

    // A branch deleted here is deleted there; the next push goes on.
    git.ok(&work, &["reset", "-q", "--hard", &c1]);
    git.ok(&work, &["push", "-q", "origin", ":draft"]);
    let c2 = git.commit_files(&work, &[("skills/three.md", skill("Three", ""))], "Three");
    git.ok(&work, &["push", "-q", "origin", "main"]);
    eventually(30, "draft deleted and main moved upstream", || {
        ref_of(&up, "refs/heads/draft").is_none() && upstream_has(&up, "refs/heads/main", &c2)
    });
    assert_fsck_at(&up);

    // The state everywhere it is shown.
    eventually(10, "in sync", || mirror_list(&server).contains("in-sync"));
    let api: serde_json::Value = serde_json::from_str(&server.get("/api/mirrors")).unwrap();
    let m = &api["mirrors"][0];
    assert_eq!(m["state"], "in-sync", "{api:#}");
    assert_eq!(m["refs_behind"], 0);
    assert!(m["last_success_at"].is_string());
    assert!(m.get("private_key").is_none(), "{api:#}");
    let metrics = server.get("/metrics");
    assert!(
        metrics.contains("skillsd_mirror_refs_behind{repo=\"skills\",mirror=\"1\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("skillsd_mirror_failing{repo=\"skills\",mirror=\"1\"} 0"));
    let dashboard = server.get("/");
    assert!(dashboard.contains("Mirrors") && dashboard.contains("in sync"));
    let status = stdout_of({
        let mut c = ssh_to(&key, server.port);
        c.arg("status");
        c
    });
    assert!(
        status.contains(&format!("mirror: {} in-sync behind 0", upstream.url(&up))),
        "{status}"
    );

    // A tag an admin deletes on the server (pushes cannot) is deleted there too.
    let out = server.cli(&["ref", "delete", "refs/tags/v1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(30, "the tag deleted upstream", || {
        ref_of(&up, "refs/tags/v1").is_none()
    });
    assert!(upstream_has(&up, "refs/heads/main", &c2));
}

/// Someone pushes to the upstream directly: skillsd does not overwrite it, says why,
/// and a mirror added with --force does.
#[test]
fn a_diverged_upstream_is_not_overwritten_and_says_why() {
    let server = Server::start_tuned(false, fast_retries);
    let upstream = Upstream::start("/usr/bin/git-shell");
    let up = upstream.bare("mirror.git");
    add_mirror(&server, &upstream, &up, &[]);
    let main = server.server_ref("skills", "refs/heads/main").unwrap();
    eventually(30, "the upstream has main", || {
        upstream_has(&up, "refs/heads/main", &main)
    });

    // A commit made on the upstream itself.
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let elsewhere = git.clone(&format!("file://{}", up.display()), &[]);
    let theirs = git.commit_files(&elsewhere, &[("README.upstream", "theirs\n")], "Theirs");
    git.ok(&elsewhere, &["push", "-q", "origin", "main"]);

    let work = git.clone(&server.url("skills"), &[]);
    let ours = git.commit_files(&work, &[("skills/ours.md", skill("Ours", ""))], "Ours");
    git.ok(&work, &["push", "-q", "origin", "main"]);
    eventually(30, "the mirror failing", || {
        mirror_list(&server).contains("failing")
    });
    let list = mirror_list(&server);
    assert!(
        list.contains("refs/heads/main: diverged on the upstream"),
        "{list}"
    );
    assert!(list.contains(&theirs[..12]), "{list}");
    assert!(list.contains("--force"), "{list}");
    assert!(list.contains("refs behind 1"), "{list}");
    let out = server.cli(&["mirror", "sync", "skills", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(upstream_has(&up, "refs/heads/main", &theirs), "overwritten");

    // The same upstream mirrored with --force: ours wins.
    let url = upstream.url(&up);
    let out = server.cli(&["mirror", "remove", "skills", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(mirror_list(&server).contains("no mirrors"));
    add_mirror(&server, &upstream, &up, &["--force"]);
    eventually(30, "forced", || upstream_has(&up, "refs/heads/main", &ours));
    assert_fsck_at(&up);
}

#[test]
fn a_wrong_host_key_is_refused_and_nothing_is_pushed() {
    let server = Server::start_tuned(false, fast_retries);
    let upstream = Upstream::start("/usr/local/bin/git-shell");
    let up = upstream.bare("mirror.git");
    let tmp = tempfile::tempdir().unwrap();
    let other = Key::generate("impostor");
    let other_pub = std::fs::read_to_string(&other.public).unwrap();
    let known = tmp.path().join("known_hosts");

    // A known_hosts without the host: refused at once, with the way out.
    std::fs::write(&known, format!("[elsewhere]:22 {other_pub}")).unwrap();
    let out = server.cli(&[
        "mirror",
        "add",
        "skills",
        &upstream.url(&up),
        "--known-hosts",
        known.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no key for 127.0.0.1"),
        "{}",
        stderr(&out)
    );

    // A known_hosts with another key for it: the mirror never talks to that host.
    std::fs::write(&known, format!("[127.0.0.1]:{} {other_pub}", upstream.port)).unwrap();
    add_mirror(
        &server,
        &upstream,
        &up,
        &["--known-hosts", known.to_str().unwrap()],
    );
    eventually(30, "the mirror failing", || {
        mirror_list(&server).contains("failing")
    });
    let list = mirror_list(&server);
    assert!(list.contains("host key"), "{list}");
    assert!(
        ref_of(&up, "refs/heads/main").is_none(),
        "pushed to a wrong host"
    );

    // With the right key in known_hosts, the same upstream is mirrored.
    let out = server.cli(&["mirror", "remove", "skills", "1"]);
    assert!(out.status.success());
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", upstream.port, upstream.host_key()),
    )
    .unwrap();
    add_mirror(
        &server,
        &upstream,
        &up,
        &["--known-hosts", known.to_str().unwrap()],
    );
    let main = server.server_ref("skills", "refs/heads/main").unwrap();
    eventually(30, "mirrored", || {
        upstream_has(&up, "refs/heads/main", &main)
    });
}

#[test]
fn an_upstream_down_for_a_while_is_caught_up_by_itself() {
    let server = Server::start_tuned(false, fast_retries);
    let mut upstream = Upstream::start("/usr/local/bin/git-shell");
    let up = upstream.bare("mirror.git");
    let out = add_mirror(&server, &upstream, &up, &[]);
    let list = mirror_list(&server);
    assert!(
        list.contains("host key: SHA256:"),
        "pinned when added: {list}"
    );
    let _ = out;
    let main = server.server_ref("skills", "refs/heads/main").unwrap();
    eventually(30, "the upstream has main", || {
        upstream_has(&up, "refs/heads/main", &main)
    });

    upstream.stop();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let work = git.clone(&server.url("skills"), &[]);
    git.commit_files(&work, &[("skills/a.md", skill("A", ""))], "A");
    git.ok(&work, &["push", "-q", "origin", "main"]);
    let last = git.commit_files(&work, &[("skills/b.md", skill("B", ""))], "B");
    git.ok(&work, &["push", "-q", "origin", "main"]);
    eventually(30, "the mirror failing while the upstream is down", || {
        let l = mirror_list(&server);
        l.contains("failing") && l.contains("cannot connect")
    });
    let list = mirror_list(&server);
    assert!(list.contains("lag "), "{list}");
    assert!(list.contains("refs behind 1"), "main is behind: {list}");

    upstream.resume();
    eventually(30, "caught up without a manual sync", || {
        upstream_has(&up, "refs/heads/main", &last)
    });
    eventually(10, "in sync", || mirror_list(&server).contains("in-sync"));
    assert_fsck_at(&up);
}

/// Three nodes on one database: each push reaches the upstream once (one node claims
/// the mirror's delivery; the upstream's sshd counts the logins).
#[test]
fn with_several_nodes_one_node_pushes_each_change() {
    let env = ChildEnv::new();
    let retry = [
        ("SKILLSD_DELIVERY_RETRY_SECS", "1"),
        ("SKILLSD_DELIVERY_RETRY_MAX_SECS", "1"),
    ];
    let mut nodes: Vec<ChildServer> = (0..3).map(|i| env.node(i, &retry)).collect();
    let upstream = Upstream::start("/usr/local/bin/git-shell");
    let up = upstream.bare("mirror.git");
    let out = env.cli(&["mirror", "add", "skills", &upstream.url(&up)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mirror_key = text
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .unwrap();
    upstream.authorize(mirror_key);
    let logins = || upstream.log().matches("Accepted publickey").count();
    eventually(30, "the first delivery", || {
        ref_of(&up, "refs/heads/main").is_some()
    });

    let key = env.add_writer("w");
    let home = env.tmp.path().join("home");
    let work = clone_from(&key, &nodes[0], &home);
    for (i, node) in nodes.iter().enumerate() {
        let before = logins();
        let head = commit_and_push(
            &key,
            node,
            &home,
            &work,
            &format!("skills/n{i}.md"),
            &skill(&format!("N {i}"), ""),
        );
        eventually(30, "the push upstream", || {
            ref_of(&up, "refs/heads/main").as_deref() == Some(head.as_str())
        });
        // Settled: the upstream has what was wanted and nobody holds a claim, so no
        // node has another delivery of it to make.
        eventually(30, "the delivery settled", || {
            env.count(
                "SELECT count(*) FROM mirrors
                 WHERE synced_generation = wanted_generation AND lease_until IS NULL
                   AND pending_since IS NULL",
            ) == 1
        });
        assert_eq!(
            logins(),
            before + 1,
            "one delivery per push: {}",
            upstream.log()
        );
    }
    for n in &mut nodes {
        n.kill();
    }
}
