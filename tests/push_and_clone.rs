//! End to end: the real git (2.39 and 2.47) over the real OpenSSH client against
//! skillsd, with a real PostgreSQL. Covers clone/fetch (protocol v2 and v0), pushes
//! that add, modify, rename and delete skills, refused pushes, branches.

use crate::common;

use common::{GITS, Git, Server, skill};
use sqlx::Row;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
struct SkillRow {
    id: uuid::Uuid,
    slug: String,
    path: String,
    title: String,
    status: String,
    tags: Vec<String>,
    blob_sha: String,
    git_commit_sha: String,
    sync_status: String,
}

fn skills(server: &Server) -> Vec<SkillRow> {
    server.query(async {
        sqlx::query(
            "SELECT id, slug, path, title, status, tags, blob_sha, git_commit_sha, sync_status
             FROM skills WHERE repo = 'skills' ORDER BY path",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| SkillRow {
            id: r.get("id"),
            slug: r.get("slug"),
            path: r.get("path"),
            title: r.get("title"),
            status: r.get("status"),
            tags: r.get("tags"),
            blob_sha: r.get("blob_sha"),
            git_commit_sha: r.get("git_commit_sha"),
            sync_status: r.get("sync_status"),
        })
        .collect()
    })
}

/// (operation, slug, path, synced_by, git_commit_sha) of the sync-log rows after row `after`.
fn sync_log(server: &Server, after: i64) -> Vec<(String, String, String, String, String)> {
    server.query(async {
        sqlx::query(
            "SELECT operation, slug, path, synced_by, git_commit_sha FROM skill_sync_log
             WHERE id > $1 ORDER BY operation, path",
        )
        .bind(after)
        .fetch_all(&server.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
    })
}

fn watermark(server: &Server) -> Option<String> {
    server.query(async {
        sqlx::query_scalar(
            "SELECT commit_sha FROM sync_state WHERE repo = 'skills' AND branch = 'main'",
        )
        .fetch_optional(&server.pool)
        .await
        .unwrap()
    })
}

/// (accepted, user, refs json, errors json) of the pushes, oldest first.
fn pushes(server: &Server) -> Vec<(bool, String, serde_json::Value, serde_json::Value)> {
    server.query(async {
        sqlx::query("SELECT accepted, user_name, refs, errors FROM pushes ORDER BY started_at, completed_at")
            .fetch_all(&server.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    })
}

fn blob_of(git: &Git, dir: &Path, path: &str) -> String {
    git.ok(dir, &["rev-parse", &format!("HEAD:{path}")])
        .trim()
        .to_string()
}

#[test]
fn clone_with_protocol_v2_and_v0_on_both_gits() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let main = server
        .server_ref("skills", "refs/heads/main")
        .expect("template commit");
    for bin in GITS {
        let git = Git::new(bin, &key, &server);
        for (proto, marker_expected) in [("2", true), ("0", false)] {
            let dest = git.home.path().join(format!("v{proto}"));
            let out = git
                .cmd(git.home.path())
                .env("GIT_TRACE_PACKET", "1")
                .args(["-c", &format!("protocol.version={proto}"), "clone"])
                .arg(server.url("skills.git"))
                .arg(&dest)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{bin} v{proto} clone failed: {stderr}"
            );
            assert_eq!(
                stderr.contains("< version 2"),
                marker_expected,
                "{bin} v{proto}: {stderr}"
            );
            assert_eq!(git.head(&dest), main);
            assert!(dest.join("skills/git/commit-messages.md").is_file());
            assert_eq!(git.ok(&dest, &["status", "--porcelain"]), "");
            // HEAD points at main.
            assert_eq!(
                git.ok(&dest, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
                "main"
            );
        }
    }
    // The template's skills are in the cache from the first start.
    let rows = skills(&server);
    let slugs: Vec<&str> = rows.iter().map(|r| r.slug.as_str()).collect();
    assert_eq!(slugs, vec!["write-a-skill", "commit-messages"]);
    assert_eq!(watermark(&server).as_deref(), Some(main.as_str()));
}

#[test]
fn every_repository_url_form_works() {
    let server = Server::start();
    let key = server.add_user("alice", "reader");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let main = server.server_ref("skills", "refs/heads/main").unwrap();
    let port = server.port;
    for url in [
        format!("ssh://git@127.0.0.1:{port}/skills.git"),
        format!("ssh://git@127.0.0.1:{port}/skills"),
        format!("ssh://anyone@127.0.0.1:{port}/skills.git"),
        format!("ssh://git@127.0.0.1:{port}/~/skills.git"),
    ] {
        let dest = git.clone(&url, &[]);
        assert_eq!(git.head(&dest), main, "{url}");
    }
    // scp-style, with the port in ~/.ssh/config
    std::fs::create_dir_all(git.home.path().join(".ssh")).unwrap();
    std::fs::write(
        git.home.path().join(".ssh/config"),
        format!("Host skillsd-test\n  HostName 127.0.0.1\n  Port {port}\n  User git\n"),
    )
    .unwrap();
    let ssh_config = git.home.path().join(".ssh/config");
    let out = git
        .cmd(git.home.path())
        .env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -F {} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o BatchMode=yes -o LogLevel=ERROR",
                ssh_config.display(),
                key.private.display()
            ),
        )
        .args(["clone", "skillsd-test:skills.git", "scp"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(git.head(&git.home.path().join("scp")), main);
}

#[test]
fn pushes_add_modify_rename_delete_update_the_cache() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    for (round, bin) in GITS.iter().enumerate() {
        let git = Git::new(bin, &key, &server);
        let dir = git.clone(&server.url("skills.git"), &[]);
        let ops = format!("ops{round}");

        // Add two skills.
        let log0 = server.last_log_id();
        let deploy = format!("skills/{ops}/deploy-safely-{round}.md");
        let rollback = format!("skills/{ops}/roll-back-{round}.md");
        let c1 = git.commit_files(
            &dir,
            &[
                (
                    &deploy,
                    &skill(
                        "Deploy safely",
                        "status: DRAFT\ntags: [deploy, ci]\nowner: team-a\nextra: kept\n",
                    ),
                ),
                (&rollback, &skill("Roll back", "")),
            ],
            "add two skills",
        );
        let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
        assert!(ok, "{bin}: {stderr}");
        assert_eq!(
            server.server_ref("skills", "refs/heads/main").as_deref(),
            Some(c1.as_str())
        );
        assert_eq!(watermark(&server).as_deref(), Some(c1.as_str()));
        server.assert_fsck("skills");
        let rows = skills(&server);
        let d = rows.iter().find(|r| r.path == deploy).expect("deploy row");
        assert_eq!(d.slug, format!("deploy-safely-{round}"));
        assert_eq!(d.title, "Deploy safely");
        assert_eq!(d.status, "DRAFT");
        assert_eq!(d.tags, vec!["deploy", "ci"]);
        assert_eq!(d.blob_sha, blob_of(&git, &dir, &deploy));
        assert_eq!(d.git_commit_sha, c1);
        assert_eq!(d.sync_status, "synced");
        let r = rows
            .iter()
            .find(|r| r.path == rollback)
            .expect("rollback row");
        assert_eq!(r.status, "PUBLISHED");
        let fm: serde_json::Value = server.query(async {
            sqlx::query_scalar("SELECT frontmatter FROM skills WHERE slug = $1")
                .bind(format!("deploy-safely-{round}"))
                .fetch_one(&server.pool)
                .await
                .unwrap()
        });
        assert_eq!(fm["extra"], "kept");
        assert_eq!(
            sync_log(&server, log0),
            vec![
                (
                    "create".into(),
                    format!("deploy-safely-{round}"),
                    deploy.clone(),
                    "alice".into(),
                    c1.clone()
                ),
                (
                    "create".into(),
                    format!("roll-back-{round}"),
                    rollback.clone(),
                    "alice".into(),
                    c1.clone()
                ),
            ]
        );
        let deploy_id = d.id;

        // Modify one (a large file, so git sends a thin pack with a delta).
        let log1 = server.last_log_id();
        let long_body =
            "A line of the runbook that is long enough to make a delta worthwhile.\n".repeat(300);
        let c2 = git.commit_files(
            &dir,
            &[(
                &deploy,
                &skill(
                    "Deploy safely, v2",
                    &format!("status: PUBLISHED\n---\n{long_body}\nignored: x\n"),
                ),
            )],
            "edit",
        );
        git.ok(&dir, &["push", "origin", "main"]);
        let c2b = git.commit_files(
            &dir,
            &[(
                &deploy,
                &skill(
                    "Deploy safely, v3",
                    &format!("status: PUBLISHED\n---\n{long_body}one more line\nignored: x\n"),
                ),
            )],
            "edit again",
        );
        let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
        assert!(ok, "{stderr}");
        assert_eq!(
            server.server_ref("skills", "refs/heads/main").as_deref(),
            Some(c2b.as_str())
        );
        assert_eq!(
            server.server_ref("skills", &format!("{c2b}^")).as_deref(),
            Some(c2.as_str())
        );
        server.assert_fsck("skills");
        let rows = skills(&server);
        let d = rows.iter().find(|r| r.path == deploy).unwrap();
        assert_eq!(d.id, deploy_id, "an update keeps the id");
        assert_eq!(d.title, "Deploy safely, v3");
        assert_eq!(d.status, "PUBLISHED");
        assert_eq!(d.git_commit_sha, c2b);
        let log = sync_log(&server, log1);
        assert_eq!(log.len(), 2);
        assert!(
            log.iter()
                .all(|l| l.0 == "update" && l.1 == format!("deploy-safely-{round}"))
        );

        // Rename (git mv): same id, new slug and path.
        let log2 = server.last_log_id();
        let renamed = format!("skills/{ops}/ship-safely-{round}.md");
        git.ok(&dir, &["mv", &deploy, &renamed]);
        git.ok(&dir, &["commit", "-q", "-m", "rename"]);
        let c3 = git.head(&dir);
        git.ok(&dir, &["push", "origin", "main"]);
        let rows = skills(&server);
        assert!(rows.iter().all(|r| r.path != deploy));
        let s = rows
            .iter()
            .find(|r| r.path == renamed)
            .expect("renamed row");
        assert_eq!(s.id, deploy_id, "a rename keeps the id");
        assert_eq!(s.slug, format!("ship-safely-{round}"));
        assert_eq!(
            sync_log(&server, log2),
            vec![(
                "rename".into(),
                format!("ship-safely-{round}"),
                renamed.clone(),
                "alice".into(),
                c3.clone()
            )]
        );

        // Delete.
        let log3 = server.last_log_id();
        git.ok(&dir, &["rm", "-q", &rollback]);
        git.ok(&dir, &["commit", "-q", "-m", "delete"]);
        let c4 = git.head(&dir);
        git.ok(&dir, &["push", "origin", "main"]);
        assert!(skills(&server).iter().all(|r| r.path != rollback));
        assert_eq!(
            sync_log(&server, log3),
            vec![(
                "delete".into(),
                format!("roll-back-{round}"),
                rollback.clone(),
                "alice".into(),
                c4.clone()
            )]
        );
        assert_eq!(watermark(&server).as_deref(), Some(c4.as_str()));
        server.assert_fsck("skills");
    }
    // Every push was recorded as accepted, by alice.
    let p = pushes(&server);
    assert_eq!(p.len(), 2 * 5);
    assert!(p.iter().all(|(accepted, user, refs, errors)| *accepted
        && user == "alice"
        && refs[0]["result"] == "ok"
        && errors.as_array().unwrap().is_empty()));
    // Pushed objects are kept in packs, not loose.
    let files = server.object_files("skills");
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("pack/") && f.ends_with(".pack"))
    );
    assert!(
        !files.iter().any(|f| f.starts_with("incoming-")),
        "{files:?}"
    );
}

#[test]
fn invalid_push_is_refused_with_every_problem_and_writes_nothing() {
    let server = Server::start();
    let key = server.add_user("bob", "writer");
    for bin in GITS {
        let git = Git::new(bin, &key, &server);
        let dir = git.clone(&server.url("skills.git"), &[]);
        let before_ref = server.server_ref("skills", "refs/heads/main").unwrap();
        let before_files = server.object_files("skills");
        let before_rows = skills(&server);
        let before_log = server.last_log_id();
        git.commit_files(
            &dir,
            &[
                (
                    "skills/ops/Bad_Name.md",
                    "---\ntitle: \"\"\nstatus: done\n---\nbody\n",
                ),
                ("skills/ops/no-frontmatter.md", "# just markdown\n"),
                (
                    "skills/ops/broken-yaml.md",
                    "---\ntitle: A\ntags: [unclosed\n---\n",
                ),
                ("skills/ops/good.md", &skill("Good", "")),
                ("skills/ops/binary.md", "---\ntitle: x\n\0\0\0\n---\n"),
            ],
            "bad skills",
        );
        let bad_blob = blob_of(&git, &dir, "skills/ops/no-frontmatter.md");
        let stderr = git.fails(&dir, &["push", "origin", "main"]);
        for expected in [
            "remote: error: skills/ops/Bad_Name.md",
            "remote:   skills/ops/Bad_Name.md:1: slug: file name `Bad_Name.md` is not a valid slug",
            "remote:     hint: use lowercase a-z, 0-9 and '-' only, e.g. rename the file to `bad-name.md`",
            "remote:   skills/ops/Bad_Name.md:2:1: title: must not be empty",
            "remote:   skills/ops/Bad_Name.md:3:1: status: `done` is not a valid status",
            "remote:     hint: use one of DRAFT, IN_REVIEW, PUBLISHED, ARCHIVED",
            "remote:   skills/ops/no-frontmatter.md:1: the file does not start with a `---` frontmatter block",
            "remote:   skills/ops/broken-yaml.md:3",
            "remote:   skills/ops/binary.md:3: file contains a NUL byte",
            "remote: 6 errors in 4 files; push refused, nothing was written.",
            "! [remote rejected] main -> main (invalid skills: 6 errors in 4 files)",
        ] {
            assert!(
                stderr.contains(expected),
                "{bin}: missing `{expected}` in:\n{stderr}"
            );
        }
        assert!(!stderr.contains("good.md"), "{stderr}");
        assert!(!stderr.contains("/tmp/"), "no server paths: {stderr}");
        // Nothing written: ref, objects, cache, sync log.
        assert_eq!(
            server.server_ref("skills", "refs/heads/main").unwrap(),
            before_ref
        );
        assert_eq!(server.object_files("skills"), before_files);
        let (exists, _, _) = git.run(
            &dir,
            &[
                "--git-dir",
                server.repo_path("skills").to_str().unwrap(),
                "cat-file",
                "-e",
                &bad_blob,
            ],
        );
        assert!(!exists, "the refused blob must not be in the repository");
        assert_eq!(skills(&server), before_rows);
        assert_eq!(server.last_log_id(), before_log);
        server.assert_fsck("skills");
    }
    // Both refused pushes are recorded with their errors.
    let p = pushes(&server);
    assert_eq!(p.len(), 2);
    for (accepted, user, refs, errors) in p {
        assert!(!accepted);
        assert_eq!(user, "bob");
        assert_eq!(refs[0]["result"], "rejected");
        assert_eq!(refs[0]["reason"], "invalid skills: 6 errors in 4 files");
        let errors = errors.as_array().unwrap();
        assert_eq!(errors.len(), 6);
        assert_eq!(errors[0]["path"], "skills/ops/Bad_Name.md");
        assert_eq!(errors[0]["field"], "slug");
    }
}

#[test]
fn branches_deletes_and_non_fast_forward() {
    let server = Server::start();
    let key = server.add_user("carol", "writer");
    for bin in GITS {
        let git = Git::new(bin, &key, &server);
        let dir = git.clone(&server.url("skills.git"), &[]);
        let rows_before = skills(&server);
        let main_before = server.server_ref("skills", "refs/heads/main").unwrap();

        // A new branch with a valid skill: accepted, the cache (main only) unchanged.
        git.ok(&dir, &["checkout", "-q", "-b", "feature"]);
        let tip = git.commit_files(
            &dir,
            &[("skills/new/feature-skill.md", &skill("Feature", ""))],
            "feature",
        );
        git.ok(&dir, &["push", "origin", "feature"]);
        assert_eq!(
            server.server_ref("skills", "refs/heads/feature").as_deref(),
            Some(tip.as_str())
        );
        assert_eq!(skills(&server), rows_before);
        server.assert_fsck("skills");

        // An invalid skill on a branch is refused too.
        git.commit_files(
            &dir,
            &[("skills/new/bad.md", "---\nstatus: NOPE\n---\n")],
            "bad",
        );
        let stderr = git.fails(&dir, &["push", "origin", "feature"]);
        assert!(
            stderr.contains("skills/new/bad.md:2: title: required field is missing"),
            "{stderr}"
        );
        assert!(
            stderr.contains(
                "! [remote rejected] feature -> feature (invalid skills: 2 errors in 1 file)"
            ),
            "{stderr}"
        );
        assert_eq!(
            server.server_ref("skills", "refs/heads/feature").as_deref(),
            Some(tip.as_str())
        );
        git.ok(&dir, &["reset", "-q", "--hard", "HEAD~1"]);

        // Delete the branch.
        git.ok(&dir, &["push", "origin", "--delete", "feature"]);
        assert_eq!(server.server_ref("skills", "refs/heads/feature"), None);

        // A non-fast-forward push to main is refused, even forced.
        git.ok(&dir, &["checkout", "-q", "main"]);
        git.commit_files(&dir, &[("skills/new/one.md", &skill("One", ""))], "one");
        git.ok(&dir, &["push", "origin", "main"]);
        let pushed = git.head(&dir);
        git.ok(&dir, &["reset", "-q", "--hard", "HEAD~1"]);
        git.commit_files(&dir, &[("skills/new/two.md", &skill("Two", ""))], "two");
        let stderr = git.fails(&dir, &["push", "-f", "origin", "main"]);
        assert!(
            stderr.contains("! [remote rejected] main -> main (non-fast-forward"),
            "{stderr}"
        );
        assert_eq!(
            server.server_ref("skills", "refs/heads/main").as_deref(),
            Some(pushed.as_str())
        );
        assert!(skills(&server).iter().all(|r| r.slug != "two"));

        // Deleting main is refused.
        let stderr = git.fails(&dir, &["push", "origin", "--delete", "main"]);
        assert!(
            stderr.contains("deleting the default branch is not allowed"),
            "{stderr}"
        );
        assert_eq!(
            server.server_ref("skills", "refs/heads/main").as_deref(),
            Some(pushed.as_str())
        );

        // Clean up for the next git: drop the skill we added.
        git.ok(&dir, &["reset", "-q", "--hard", &pushed]);
        git.ok(&dir, &["rm", "-q", "skills/new/one.md"]);
        git.ok(&dir, &["commit", "-q", "-m", "cleanup"]);
        git.ok(&dir, &["push", "origin", "main"]);
        // main moved on from where it was by exactly the pushed commits.
        let log = git.ok(
            &dir,
            &[
                "rev-list",
                "--first-parent",
                &format!("{main_before}..origin/main"),
            ],
        );
        assert_eq!(log.lines().count(), 2, "{log}");
        server.assert_fsck("skills");
    }
}

#[test]
fn fetch_after_another_push_gets_only_the_new_objects() {
    let server = Server::start();
    let key = server.add_user("dave", "writer");
    for bin in GITS {
        for proto in ["2", "0"] {
            let pusher = Git::new(bin, &key, &server);
            let fetcher = Git::new(bin, &key, &server);
            let a = pusher.clone(&server.url("skills.git"), &[]);
            let b = fetcher.clone(
                &server.url("skills.git"),
                &["-c", &format!("protocol.version={proto}")],
            );
            fetcher.ok(&b, &["config", "protocol.version", proto]);
            // One changed file, three folders deep: commit, 3 trees, 1 blob.
            let content = skill(&format!("Commit messages ({bin} v{proto})"), "");
            let new_tip =
                pusher.commit_files(&a, &[("skills/git/commit-messages.md", &content)], "edit");
            pusher.ok(&a, &["push", "origin", "main"]);
            let before = fetcher.ok(&b, &["count-objects", "-v"]);
            assert!(before.contains("count: 0\n"), "{before}");
            fetcher.ok(&b, &["pull", "-q", "--ff-only"]);
            assert_eq!(fetcher.head(&b), new_tip);
            let after = fetcher.ok(&b, &["count-objects", "-v"]);
            assert!(after.contains("count: 5\n"), "{bin} v{proto}: {after}");
            assert!(!after.contains("count: 0\n"));
            assert_eq!(
                std::fs::read_to_string(b.join("skills/git/commit-messages.md")).unwrap(),
                content
            );
        }
    }
}

#[test]
fn empty_repository_clone_and_first_push() {
    let server = Server::start();
    let out = server.cli(&["init", "notes", "--empty"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = server.add_user("erin", "writer");
    for bin in GITS {
        let git = Git::new(bin, &key, &server);
        for proto in ["2", "0"] {
            let dest = git.home.path().join(format!("empty-v{proto}"));
            let (ok, _, stderr) = git.run(
                git.home.path(),
                &[
                    "-c",
                    &format!("protocol.version={proto}"),
                    "clone",
                    &server.url("notes.git"),
                    dest.to_str().unwrap(),
                ],
            );
            assert!(ok, "{bin} v{proto}: {stderr}");
            assert!(stderr.contains("empty repository"), "{stderr}");
        }
    }
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("notes.git"), &[]);
    let tip = git.commit_files(&dir, &[("skills/first.md", &skill("First", ""))], "first");
    let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        server.server_ref("notes", "refs/heads/main").as_deref(),
        Some(tip.as_str())
    );
    server.assert_fsck("notes");
    let rows: Vec<(String, String)> = server.query(async {
        sqlx::query_as("SELECT slug, git_commit_sha FROM skills WHERE repo = 'notes'")
            .fetch_all(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(rows, vec![("first".to_string(), tip.clone())]);
    // A fresh clone now has the commit.
    let clone = git.clone(&server.url("notes"), &[]);
    assert_eq!(git.head(&clone), tip);
}

/// An accepted push says what it did to the cache in one line. It is the push's
/// result, so it is shown however git asked: at a terminal (script(1) gives one), with
/// `git push -q`, and with stderr a pipe (scripts, CI, editors), where git asks the
/// server for quiet by itself.
#[test]
fn an_accepted_push_prints_one_summary_line_even_when_quiet() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    for bin in GITS {
        let git = Git::new(bin, &key, &server);
        let dir = git.clone(&server.url("skills.git"), &[]);
        let tip = git.commit_files(
            &dir,
            &[
                (
                    format!("skills/t/told-{}.md", bin.len()).as_str(),
                    skill("Told", "").as_str(),
                ),
                (
                    "skills/git/commit-messages.md",
                    skill(&format!("Edited by {bin}"), "").as_str(),
                ),
            ],
            "two",
        );
        let (ok, shown) = git.run_in_tty(&dir, &["push", "origin", "main"]);
        assert!(ok, "{bin}: {shown}");
        let expected = format!(
            "remote: skills: 1 created, 1 updated, 0 renamed, 0 deleted; cache at {}",
            &tip[..7]
        );
        assert_eq!(
            shown.lines().filter(|l| l.trim_end() == expected).count(),
            1,
            "{bin}: {shown}"
        );
        let tip = git.commit_files(
            &dir,
            &[(
                &format!("skills/t/quiet-{}.md", bin.len()),
                &skill("Quiet", ""),
            )],
            "quiet",
        );
        let (ok, shown) = git.run_in_tty(&dir, &["push", "-q", "origin", "main"]);
        assert!(ok, "{bin}: {shown}");
        let expected = format!(
            "remote: skills: 1 created, 0 updated, 0 renamed, 0 deleted; cache at {}",
            &tip[..7]
        );
        // The summary, and nothing else from the server (no progress).
        let remote: Vec<&str> = shown
            .lines()
            .map(str::trim_end)
            .filter(|l| l.starts_with("remote:"))
            .collect();
        assert_eq!(remote, vec![expected.as_str()], "{bin}: {shown}");
        assert_eq!(
            server.server_ref("skills", "refs/heads/main").as_deref(),
            Some(tip.as_str())
        );
        // No terminal at all: stderr is a pipe, as in a script or CI.
        let tip = git.commit_files(
            &dir,
            &[(
                &format!("skills/t/piped-{}.md", bin.len()),
                &skill("Piped", ""),
            )],
            "piped",
        );
        let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
        assert!(ok, "{bin}: {stderr}");
        let expected = format!(
            "remote: skills: 1 created, 0 updated, 0 renamed, 0 deleted; cache at {}",
            &tip[..7]
        );
        assert_eq!(
            stderr.lines().filter(|l| l.trim_end() == expected).count(),
            1,
            "{bin}: {stderr}"
        );
    }
}
