//! Crash safety: skillsd is killed with SIGKILL at arbitrary points while pushes are in
//! flight, then restarted. Every time: each ref holds either its old or its new value,
//! `git fsck --strict` is clean, no quarantine survives the restart, and the cache
//! equals the tip once the startup reconcile has run.

mod common;

use common::{fresh_database, run_sql_admin, skill, ChildServer, Key, SKILLSD};
use std::process::Command;
use std::time::Duration;

/// 50 in CI; `scripts/crash-trials N` runs more.
fn trials() -> usize {
    std::env::var("SKILLSD_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn git_cmd(key: &Key, port: u16, home: &std::path::Path) -> Command {
    let mut c = Command::new("/usr/local/bin/git");
    c.env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o BatchMode=yes -o LogLevel=ERROR -p {port}",
                key.private.display()
            ),
        )
        .env("GIT_AUTHOR_NAME", "K")
        .env("GIT_AUTHOR_EMAIL", "k@example.com")
        .env("GIT_COMMITTER_NAME", "K")
        .env("GIT_COMMITTER_EMAIL", "k@example.com");
    c
}

fn run(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn sigkill_during_pushes_never_leaves_a_half_state() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (db_name, db_url) = fresh_database(&rt);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = ChildServer::start(&data, &db_url);
    let key = Key::generate("crash");
    let out = Command::new(SKILLSD)
        .args([
            "user",
            "add",
            "crash",
            "--role",
            "writer",
            "--key",
            key.public.to_str().unwrap(),
        ])
        .env("DATABASE_URL", &db_url)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = home.join("work");
    let mut c = git_cmd(&key, server.port, &home);
    c.args(["clone", "-q", &server.url("skills.git")])
        .arg(&work);
    run(c);
    let repo = data.join("repos/skills.git");
    let pool = rt.block_on(skillsd::db::connect(&db_url)).unwrap();

    let mut seed: u64 = 0x5eed;
    let mut landed = 0;
    let trials = trials();
    for trial in 0..trials {
        let old = run({
            let mut c = Command::new("/usr/local/bin/git");
            c.arg("--git-dir")
                .arg(&repo)
                .args(["rev-parse", "refs/heads/main"]);
            c
        });
        // A commit with a few skills, pushed while the server is killed.
        let dir = work.join(format!("skills/crash-{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3 {
            std::fs::write(
                dir.join(format!("s-{trial}-{i}.md")),
                skill(&format!("T{trial} {i}"), ""),
            )
            .unwrap();
        }
        let mut add = git_cmd(&key, server.port, &home);
        add.current_dir(&work).args(["add", "-A"]);
        run(add);
        let mut commit = git_cmd(&key, server.port, &home);
        commit
            .current_dir(&work)
            .args(["commit", "-q", "-m", &format!("trial {trial}")]);
        run(commit);
        let mut head = git_cmd(&key, server.port, &home);
        head.current_dir(&work).args(["rev-parse", "HEAD"]);
        let new = run(head);

        let mut push = git_cmd(&key, server.port, &home);
        let push = push
            .current_dir(&work)
            .args(["push", "-q", "origin", "main"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 150));
        server.kill();
        let _ = push.wait_with_output();

        // The ref is either where it was or where the push wanted it.
        let now = run({
            let mut c = Command::new("/usr/local/bin/git");
            c.arg("--git-dir")
                .arg(&repo)
                .args(["rev-parse", "refs/heads/main"]);
            c
        });
        assert!(
            now == old || now == new,
            "trial {trial}: main is {now}, neither {old} nor {new}"
        );
        if now == new {
            landed += 1;
        }

        server.restart();
        let leftovers: Vec<_> = std::fs::read_dir(repo.join("objects"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("incoming-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "trial {trial}: quarantine left behind"
        );
        let fsck = Command::new("/usr/local/bin/git")
            .arg("--git-dir")
            .arg(&repo)
            .args(["fsck", "--strict", "--no-dangling"])
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "trial {trial}: {}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        // The startup reconcile ran before the port opened: the cache is at the tip.
        let (watermark, rows): (String, i64) = rt.block_on(async {
            sqlx::query_as(
                "SELECT (SELECT commit_sha FROM sync_state WHERE repo = 'skills'),
                        (SELECT count(*) FROM skills WHERE repo = 'skills')",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        });
        assert_eq!(watermark, now, "trial {trial}");
        let files = run({
            let mut c = Command::new("/usr/local/bin/git");
            c.arg("--git-dir")
                .arg(&repo)
                .args(["ls-tree", "-r", "--name-only", "main", "skills/"]);
            c
        });
        let skill_files = files
            .lines()
            .filter(|l| l.ends_with(".md") && !l.ends_with("README.md"))
            .count();
        assert_eq!(rows as usize, skill_files, "trial {trial}");
    }
    eprintln!("{trials} trials, {landed} pushes landed before the kill");
    drop(server);
    rt.block_on(pool.close());
    run_sql_admin(
        &rt,
        &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
    );
}
