//! The same stages as git hooks under a stock git server: a bare repository with
//! hooks/pre-receive and hooks/post-receive installed, pushed to over file:// by both
//! gits. Invalid skills are refused and nothing is written; valid pushes reach the
//! cache with the pusher's name.

use crate::common;

use common::{GITS, SKILLSD, Server, skill};
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(bin: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(bin)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "H")
        .env("GIT_AUTHOR_EMAIL", "h@example.com")
        .env("GIT_COMMITTER_NAME", "H")
        .env("GIT_COMMITTER_EMAIL", "h@example.com")
        .envs(env.iter().copied())
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A bare repository `<dir>/<name>.git` with skillsd's pre- and post-receive hooks.
fn bare_with_hooks(bin: &str, dir: &Path, name: &str) -> PathBuf {
    let bare = dir.join(format!("{name}.git"));
    let (ok, out) = git(
        bin,
        dir,
        &["init", "-q", "--bare", bare.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{out}");
    for hook in ["pre-receive", "post-receive"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("hooks")
                .join(hook),
            bare.join("hooks").join(hook),
        )
        .unwrap();
    }
    bare
}

/// A bare repository `<dir>/<name>.git` with the hooks, cloned to `<dir>/work`, and
/// the environment the hooks need to reach `server`'s database.
fn hooked_clone<'a>(
    bin: &str,
    dir: &Path,
    name: &str,
    server: &'a Server,
) -> (PathBuf, PathBuf, [(&'static str, &'a str); 3]) {
    let bare = bare_with_hooks(bin, dir, name);
    let env = [
        ("SKILLSD", SKILLSD),
        ("DATABASE_URL", server.db_url.as_str()),
        ("SKILLSD_USER", "hook-user"),
    ];
    let work = dir.join("work");
    let url = format!("file://{}", bare.display());
    let (ok, out) = git(
        bin,
        dir,
        &["clone", "-q", &url, work.to_str().unwrap()],
        &env,
    );
    assert!(ok, "{out}");
    (bare, work, env)
}

#[test]
fn a_big_push_through_the_hook_is_searchable_when_it_returns() {
    // The hook process ends with the push: it fills the search vectors itself.
    let server = Server::start();
    let bin = GITS[0];
    let tmp = tempfile::tempdir().unwrap();
    let (_, work, env) = hooked_clone(bin, tmp.path(), "bulk", &server);
    // More rows whose vectors PostgreSQL must compute (a URL in each body: skillsd
    // leaves such text to it) than a sync computes inline: the hook fills them.
    let n = skillsd::cache::sync::SEARCH_INLINE_ROWS + 10;
    std::fs::create_dir_all(work.join("skills/b")).unwrap();
    for i in 0..n {
        std::fs::write(
            work.join(format!("skills/b/bulk-{i:04}.md")),
            format!("---\ntitle: Bulk {i}\n---\n\nSee https://example.com/b/{i}.\n"),
        )
        .unwrap();
    }
    git(bin, &work, &["add", "-A"], &env);
    git(bin, &work, &["commit", "-q", "-m", "bulk"], &env);
    let (ok, out) = git(bin, &work, &["push", "origin", "main"], &env);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("skillsd: cache updated: {n} created")),
        "{out}"
    );
    let (rows, pending): (i64, i64) = server.query(async {
        sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE search IS NULL) FROM skills WHERE repo = 'bulk'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!((rows, pending), (n as i64, 0));
}

#[test]
fn stock_git_with_skillsd_hooks() {
    // The database comes from a test server; the repository is plain git's.
    let server = Server::start();
    for (i, bin) in GITS.iter().enumerate() {
        let bin = *bin;
        let tmp = tempfile::tempdir().unwrap();
        let name = format!("team-skills-{i}");
        let (bare, work, env) = hooked_clone(bin, tmp.path(), &name, &server);
        std::fs::create_dir_all(work.join("skills/h")).unwrap();
        std::fs::write(work.join("skills/h/hooked.md"), skill("Hooked", "")).unwrap();
        git(bin, &work, &["add", "-A"], &env);
        git(bin, &work, &["commit", "-q", "-m", "first"], &env);
        let (ok, out) = git(bin, &work, &["push", "origin", "main"], &env);
        assert!(ok, "{bin}: {out}");
        assert!(
            out.contains("skillsd: cache updated: 1 created"),
            "{bin}: {out}"
        );
        let rows: Vec<(String, String)> = server.query(async {
            sqlx::query_as(
                "SELECT s.slug, l.synced_by FROM skills s JOIN skill_sync_log l ON l.skill_id = s.id
                 WHERE s.repo = $1",
            )
            .bind(&name)
            .fetch_all(&server.pool)
            .await
            .unwrap()
        });
        assert_eq!(rows, vec![("hooked".to_string(), "hook-user".to_string())]);

        // An invalid skill is refused by pre-receive, with the same messages.
        let tip = git(bin, &bare, &["rev-parse", "main"], &[]).1;
        std::fs::write(work.join("skills/h/Bad.md"), "---\nstatus: nope\n---\n").unwrap();
        git(bin, &work, &["add", "-A"], &env);
        git(bin, &work, &["commit", "-q", "-m", "bad"], &env);
        let bad_blob = git(bin, &work, &["rev-parse", "HEAD:skills/h/Bad.md"], &[]).1;
        let (ok, out) = git(bin, &work, &["push", "origin", "main"], &env);
        assert!(!ok, "{out}");
        for expected in [
            "remote: error: skills/h/Bad.md",
            "remote:   skills/h/Bad.md:1: slug: file name `Bad.md` is not a valid slug",
            "remote:   skills/h/Bad.md:2: title: required field is missing",
            "remote:   skills/h/Bad.md:2:1: status: `nope` is not a valid status",
            "remote: 3 errors in 1 file; push refused, nothing was written.",
            "pre-receive hook declined",
        ] {
            assert!(
                out.contains(expected),
                "{bin}: missing `{expected}` in {out}"
            );
        }
        assert_eq!(git(bin, &bare, &["rev-parse", "main"], &[]).1, tip);
        let (exists, _) = git(bin, &bare, &["cat-file", "-e", bad_blob.trim()], &[]);
        assert!(!exists, "git dropped the quarantine");

        // The rules in the pushed commit apply under the hooks too: switching to the
        // Agent Skills layout checks every skill again, and the old flat one breaks it.
        git(bin, &work, &["reset", "-q", "--hard", "origin/main"], &env);
        std::fs::write(work.join("skillsd.toml"), "layout = \"agent-skills\"\n").unwrap();
        git(bin, &work, &["add", "-A"], &env);
        git(bin, &work, &["commit", "-q", "-m", "agent skills"], &env);
        let (ok, out) = git(bin, &work, &["push", "origin", "main"], &env);
        assert!(!ok, "{out}");
        for expected in [
            "remote: The rules changed (agent-skills layout under skills/, built-in schema): checking every skill.",
            "remote:   skills/h/SKILL.md: skill folder `skills/h/` has no SKILL.md",
        ] {
            assert!(
                out.contains(expected),
                "{bin}: missing `{expected}` in {out}"
            );
        }
        assert_eq!(git(bin, &bare, &["rev-parse", "main"], &[]).1, tip);
        let (ok, out) = git(bin, &bare, &["fsck", "--strict"], &[]);
        assert!(ok, "{out}");
    }
}

#[test]
fn check_command_and_pre_commit_hook() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("skills/a")).unwrap();
    std::fs::write(root.join("skills/a/good.md"), skill("Good", "")).unwrap();
    std::fs::write(root.join("skills/README.md"), "docs, not a skill").unwrap();
    let run = |args: &[&str]| Command::new(SKILLSD).args(args).output().unwrap();
    let out = run(&["check", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 skill checked, no problems\n"
    );
    std::fs::write(root.join("skills/a/bad.md"), "---\ntitle: [x\n---\n").unwrap();
    let out = run(&["check", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error: skills/a/bad.md\n  skills/a/bad.md:"),
        "{text}"
    );
    assert!(
        text.contains("1 error in 1 file (2 skills checked)"),
        "{text}"
    );
    let out = run(&["check", root.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["checked"], 2);
    assert_eq!(json["errors"][0]["path"], "skills/a/bad.md");

    // The pre-commit hook refuses the commit.
    let (ok, out) = git(common::GIT_NEW, root, &["init", "-q"], &[]);
    assert!(ok, "{out}");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/pre-commit"),
        root.join(".git/hooks/pre-commit"),
    )
    .unwrap();
    git(common::GIT_NEW, root, &["add", "-A"], &[]);
    let (ok, out) = git(
        common::GIT_NEW,
        root,
        &["commit", "-q", "-m", "x"],
        &[("SKILLSD", SKILLSD)],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("skills/a/bad.md"), "{out}");
    std::fs::remove_file(root.join("skills/a/bad.md")).unwrap();
    git(common::GIT_NEW, root, &["add", "-A"], &[]);
    let (ok, out) = git(
        common::GIT_NEW,
        root,
        &["commit", "-q", "-m", "x"],
        &[("SKILLSD", SKILLSD)],
    );
    assert!(ok, "{out}");
}

#[test]
fn deep_trees_are_refused_by_the_hook_and_by_check() {
    use common::packs::{self, BLOB, COMMIT, Pack, TREE};
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_with_hooks(common::GIT_NEW, tmp.path(), "deep");
    // A commit whose tree is 5,000 levels deep, as an attacker would send it straight
    // to stock git's receive-pack.
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"leaf\n");
    let mut t = pack.object(TREE, &packs::tree(&[("100644", "f", blob)]));
    for _ in 0..5000 {
        t = pack.object(TREE, &packs::tree(&[("40000", "d", t)]));
    }
    let commit = pack.object(COMMIT, &packs::commit(t, None, b"deep\n"));
    let zero = "0".repeat(40);
    let request = packs::push_request(
        &[(zero, commit.to_string(), "refs/heads/main".into())],
        &pack.finish(),
    );
    let mut child = Command::new(common::GIT_NEW)
        .args(["receive-pack", bare.to_str().unwrap()])
        .env(
            "PATH",
            format!(
                "{}:{}",
                Path::new(SKILLSD).parent().unwrap().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .env("SKILLSD", SKILLSD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&request);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    let text = String::from_utf8_lossy(&out.stdout);
    // The messages as the client reads them: side-band 2's payloads joined (where a
    // packet ends depends on what comes before).
    let messages = side_band_2(&out.stdout);
    assert!(
        messages.contains("folders are nested more than 4096 levels deep"),
        "{messages}"
    );
    assert!(text.contains("ng refs/heads/main"), "{text}");
    let (ok, _) = git(
        common::GIT_NEW,
        &bare,
        &["rev-parse", "--verify", "-q", "refs/heads/main"],
        &[],
    );
    assert!(!ok, "the deep commit was stored under main");

    // `skillsd check` on a working tree nested past the limit (10 here).
    let root = tmp.path().join("tree");
    let mut dir = root.join("skills");
    for _ in 0..12 {
        dir = dir.join("d");
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deep.md"), skill("Deep", "")).unwrap();
    let out = Command::new(SKILLSD)
        .args(["check", root.to_str().unwrap()])
        .env("SKILLSD_MAX_TREE_DEPTH", "10")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("folders are nested more than 10 levels deep"),
        "{text}"
    );
}

/// The variables the hooks read: the pusher from Gitea's or GitLab's variable when
/// `SKILLSD_USER` is not set, the cache's repository name from `SKILLSD_REPO`, the
/// branch the cache follows from `SKILLSD_BRANCH` (a push to another branch leaves the
/// cache alone).
#[test]
fn the_hooks_read_the_pusher_repository_and_branch_from_the_environment() {
    let server = Server::start();
    let bin = GITS[1];
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_with_hooks(bin, tmp.path(), "hosted");
    let work = tmp.path().join("work");
    let url = format!("file://{}", bare.display());
    let base = [
        ("SKILLSD", SKILLSD),
        ("DATABASE_URL", server.db_url.as_str()),
    ];
    let (ok, out) = git(
        bin,
        tmp.path(),
        &["clone", "-q", &url, work.to_str().unwrap()],
        &base,
    );
    assert!(ok, "{out}");
    std::fs::create_dir_all(work.join("skills/v")).unwrap();
    let synced = |slug: &str| -> Vec<(String, String)> {
        server.query(async {
            sqlx::query_as("SELECT repo, synced_by FROM skill_sync_log WHERE slug = $1 ORDER BY id")
                .bind(slug)
                .fetch_all(&server.pool)
                .await
                .unwrap()
        })
    };
    // Gitea names the pusher; SKILLSD_REPO names the repository in the cache.
    std::fs::write(work.join("skills/v/from-gitea.md"), skill("From Gitea", "")).unwrap();
    git(bin, &work, &["add", "-A"], &base);
    git(bin, &work, &["commit", "-q", "-m", "gitea"], &base);
    let env = [
        base[0],
        base[1],
        ("GITEA_PUSHER_NAME", "gitea-gail"),
        ("SKILLSD_REPO", "team-skills"),
    ];
    let (ok, out) = git(bin, &work, &["push", "origin", "main"], &env);
    assert!(ok, "{out}");
    assert_eq!(
        synced("from-gitea"),
        vec![("team-skills".to_string(), "gitea-gail".to_string())]
    );
    // GitLab's variable, and SKILLSD_BRANCH: the cache follows `release`, so a push
    // to main leaves it alone and a push to release reaches it.
    std::fs::write(
        work.join("skills/v/from-gitlab.md"),
        skill("From GitLab", ""),
    )
    .unwrap();
    git(bin, &work, &["add", "-A"], &base);
    git(bin, &work, &["commit", "-q", "-m", "gitlab"], &base);
    let env = [
        base[0],
        base[1],
        ("GL_USERNAME", "gitlab-gus"),
        ("SKILLSD_REPO", "team-skills"),
        ("SKILLSD_BRANCH", "release"),
    ];
    let (ok, out) = git(bin, &work, &["push", "origin", "main"], &env);
    assert!(ok, "{out}");
    assert!(!out.contains("cache updated"), "{out}");
    assert_eq!(synced("from-gitlab"), vec![]);
    let (ok, out) = git(bin, &work, &["push", "origin", "main:release"], &env);
    assert!(ok, "{out}");
    assert!(out.contains("skillsd: cache updated: 1 created"), "{out}");
    assert_eq!(
        synced("from-gitlab"),
        vec![("team-skills".to_string(), "gitlab-gus".to_string())]
    );
}

/// The payloads of side-band 2 (the messages) in receive-pack's answer `out`: the
/// pkt-lines after the advertisement, each `0x02` one's text joined.
fn side_band_2(out: &[u8]) -> String {
    let mut text = Vec::new();
    let mut rest = out;
    while rest.len() >= 4 {
        let Some(len) = std::str::from_utf8(&rest[..4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            break;
        };
        if len < 4 {
            rest = &rest[4..];
            continue;
        }
        if rest.len() < len {
            break;
        }
        if rest[4] == 2 {
            text.extend_from_slice(&rest[5..len]);
        }
        rest = &rest[len..];
    }
    String::from_utf8_lossy(&text).into_owned()
}
