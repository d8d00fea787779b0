//! The rest of the protocol surface with real git: tags, ls-remote, atomic pushes,
//! push options, several refs at once, force-pushing a topic branch, pushing objects
//! the server already has.

use crate::common;

use common::{GITS, Git, Server, skill};
use sqlx::Row;

#[test]
fn tags_and_ls_remote() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    for (i, bin) in GITS.iter().enumerate() {
        let git = Git::new(bin, &key, &server);
        let dir = git.clone(&server.url("skills.git"), &[]);
        let head = git.head(&dir);
        let annotated = format!("v{i}.0");
        let light = format!("light-{i}");
        git.ok(&dir, &["tag", "-a", &annotated, "-m", "release"]);
        git.ok(&dir, &["tag", &light]);
        git.ok(&dir, &["push", "origin", &annotated, &light]);
        let tag_obj = git.ok(&dir, &["rev-parse", &annotated]).trim().to_string();
        assert_eq!(
            server
                .server_ref("skills", &format!("refs/tags/{annotated}"))
                .as_deref(),
            Some(tag_obj.as_str())
        );
        server.assert_fsck("skills");
        for proto in ["2", "0"] {
            let out = git.ok(
                &dir,
                &[
                    "-c",
                    &format!("protocol.version={proto}"),
                    "ls-remote",
                    &server.url("skills.git"),
                ],
            );
            assert!(out.contains(&format!("{head}\tHEAD\n")), "{out}");
            assert!(out.contains(&format!("{head}\trefs/heads/main\n")), "{out}");
            assert!(
                out.contains(&format!("{tag_obj}\trefs/tags/{annotated}\n")),
                "{out}"
            );
            assert!(
                out.contains(&format!("{head}\trefs/tags/{annotated}^{{}}\n")),
                "{out}"
            );
            assert!(
                out.contains(&format!("{head}\trefs/tags/{light}\n")),
                "{out}"
            );
            // A fresh clone gets the tags.
            let clone = git.clone(
                &server.url("skills.git"),
                &["-c", &format!("protocol.version={proto}")],
            );
            let tags = git.ok(&clone, &["tag", "-l"]);
            assert!(tags.contains(&annotated) && tags.contains(&light), "{tags}");
            assert_eq!(
                git.ok(&clone, &["cat-file", "-t", &annotated]).trim(),
                "tag"
            );
        }
    }
}

#[test]
fn atomic_push_is_all_or_nothing() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    git.ok(&dir, &["branch", "topic"]);
    // Deleting main is refused; with --atomic the new branch is refused with it.
    let stderr = git.fails(&dir, &["push", "--atomic", "origin", "topic", ":main"]);
    assert!(
        stderr.contains("deleting the default branch is not allowed"),
        "{stderr}"
    );
    assert_eq!(server.server_ref("skills", "refs/heads/topic"), None);
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    // Without --atomic the branch lands and main stays.
    let stderr = git.fails(&dir, &["push", "origin", "topic", ":main"]);
    assert!(
        stderr.contains("deleting the default branch is not allowed"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/topic").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    server.assert_fsck("skills");
}

#[test]
fn several_refs_options_force_and_known_objects() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);

    // Objects the server already has: a new branch at main's tip sends an empty pack.
    git.ok(&dir, &["push", "origin", "main:refs/heads/same"]);
    assert_eq!(
        server.server_ref("skills", "refs/heads/same").as_deref(),
        Some(main.as_str())
    );

    // Several branches in one push, with push options (recorded).
    git.ok(&dir, &["checkout", "-q", "-b", "a"]);
    let a = git.commit_files(&dir, &[("skills/t/topic-a.md", &skill("A", ""))], "a");
    git.ok(&dir, &["checkout", "-q", "-b", "b", "main"]);
    let b = git.commit_files(&dir, &[("skills/t/topic-b.md", &skill("B", ""))], "b");
    git.ok(
        &dir,
        &[
            "push",
            "-o",
            "ci.skip",
            "-o",
            "reason=two topics",
            "origin",
            "a",
            "b",
        ],
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/a").as_deref(),
        Some(a.as_str())
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/b").as_deref(),
        Some(b.as_str())
    );
    let (options, refs): (Vec<String>, serde_json::Value) = server.query(async {
        let r =
            sqlx::query("SELECT push_options, refs FROM pushes ORDER BY started_at DESC LIMIT 1")
                .fetch_one(&server.pool)
                .await
                .unwrap();
        (r.get(0), r.get(1))
    });
    assert_eq!(options, vec!["ci.skip", "reason=two topics"]);
    assert_eq!(refs.as_array().unwrap().len(), 2);

    // A force-push to a topic branch is allowed.
    git.ok(&dir, &["reset", "-q", "--hard", "main"]);
    let b2 = git.commit_files(&dir, &[("skills/t/topic-b2.md", &skill("B2", ""))], "b2");
    git.fails(&dir, &["push", "origin", "b"]);
    git.ok(&dir, &["push", "-f", "origin", "b"]);
    assert_eq!(
        server.server_ref("skills", "refs/heads/b").as_deref(),
        Some(b2.as_str())
    );

    // A push with nothing to do.
    let (ok, _, stderr) = git.run(&dir, &["push", "origin", "b"]);
    assert!(ok && stderr.contains("Everything up-to-date"), "{stderr}");
    server.assert_fsck("skills");
    // Topic branches never touch the cache of main.
    let n: i64 = server.scalar("SELECT count(*) FROM skills WHERE slug LIKE 'topic-%'");
    assert_eq!(n, 0);
}

#[test]
fn report_status_v2_is_used_by_new_gits() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let tip = git.commit_files(&dir, &[("skills/v2/report.md", &skill("Report", ""))], "r");
    let out = git
        .cmd(&dir)
        .env("GIT_TRACE_PACKET", "1")
        .args(["push", "origin", "main"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The client asked for report-status-v2 on its command line and got a report.
    assert!(
        stderr.lines().any(|l| l.contains("> ")
            && l.contains("refs/heads/main")
            && l.contains("report-status-v2")),
        "{stderr}"
    );
    assert!(stderr.contains("< ok refs/heads/main"), "{stderr}");
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(tip.as_str())
    );
}

#[test]
fn mirror_clone_and_filtered_clone() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.ok(&dir, &["tag", "-a", "v1", "-m", "v1"]);
    git.ok(&dir, &["push", "origin", "v1", "main:refs/heads/other"]);
    for bin in GITS {
        let git = Git::new(bin, &key, &server);
        // --mirror takes every ref.
        let mirror = git.home.path().join("mirror.git");
        git.ok(
            git.home.path(),
            &[
                "clone",
                "--mirror",
                &server.url("skills.git"),
                mirror.to_str().unwrap(),
            ],
        );
        let refs = git.ok(&mirror, &["for-each-ref", "--format=%(refname)"]);
        assert_eq!(
            refs, "refs/heads/main\nrefs/heads/other\nrefs/tags/v1\n",
            "{bin}"
        );
        git.ok(&mirror, &["fsck"]);
        // --filter is offered (tests/partial_clone.rs): a partial clone whose
        // checkout fetches the blobs it needs.
        let filtered = git.home.path().join("filtered");
        let (ok, _, stderr) = git.run(
            git.home.path(),
            &[
                "clone",
                "--filter=blob:none",
                &server.url("skills.git"),
                filtered.to_str().unwrap(),
            ],
        );
        assert!(ok, "{bin}: {stderr}");
        assert!(
            !stderr.contains("filtering not recognized by server"),
            "{bin}: {stderr}"
        );
        assert_eq!(
            git.ok(&filtered, &["config", "remote.origin.promisor"])
                .trim(),
            "true",
            "{bin}"
        );
        assert!(filtered.join("skills/git/commit-messages.md").is_file());
    }
}

#[test]
fn dry_run_push_option_validates_and_writes_nothing() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    let files = server.object_files("skills");
    git.commit_files(&dir, &[("skills/d/dry.md", &skill("Dry", ""))], "dry");
    let stderr = git.fails(&dir, &["push", "-o", "dry-run", "origin", "main"]);
    assert!(
        stderr.contains("remote: dry run: 1 ref update passed every check; nothing was written."),
        "{stderr}"
    );
    assert!(
        stderr.contains("! [remote rejected] main -> main (dry run: valid, nothing written)"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(server.object_files("skills"), files);
    // An invalid one reports its problems as usual.
    git.commit_files(&dir, &[("skills/d/wet.md", "---\n---\n")], "wet");
    let stderr = git.fails(&dir, &["push", "-o", "dry-run", "origin", "main"]);
    assert!(
        stderr.contains("skills/d/wet.md:2: title: required field is missing"),
        "{stderr}"
    );
    assert!(!stderr.contains("dry run: 1 ref"), "{stderr}");
    assert_eq!(server.object_files("skills"), files);
    // Nothing reached the cache.
    let n: i64 = server.scalar("SELECT count(*) FROM skills WHERE path LIKE 'skills/d/%'");
    assert_eq!(n, 0);
}

#[test]
fn long_checks_report_progress_unless_quiet() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let files: Vec<(String, String)> = (0..1100)
        .map(|i| {
            (
                format!("skills/p{}/progress-{i}.md", i % 10),
                skill(&format!("P{i}"), ""),
            )
        })
        .collect();
    git.commit_files(&dir, &files, "many");
    // git asks for quiet when its stderr is not a terminal; --progress asks for progress.
    let (ok, _, stderr) = git.run(&dir, &["push", "--progress", "origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.split(['\r', '\n']).any(|l| l
            .trim_end()
            .starts_with("remote: Checking skills: 100% (")
            && l.trim_end().ends_with("), done.")),
        "{stderr}"
    );
    assert!(stderr.contains("Checking skills:  50%"), "{stderr}");
    // -q asks for quiet: no progress, and still accepted.
    let more: Vec<(String, String)> = (0..1100)
        .map(|i| {
            (
                format!("skills/q{}/quiet-{i}.md", i % 10),
                skill(&format!("Q{i}"), ""),
            )
        })
        .collect();
    git.commit_files(&dir, &more, "more");
    let (ok, _, stderr) = git.run(&dir, &["push", "-q", "origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("Checking skills"), "{stderr}");
}
