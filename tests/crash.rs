//! Crash safety: skillsd is killed with SIGKILL at arbitrary points while pushes are in
//! flight, then restarted. Every time: each ref holds either its old or its new value,
//! `git fsck --strict` is clean, no quarantine survives the restart, and the cache
//! equals the tip once the startup reconcile has run.

mod common;

use common::{skill, stdout_of, ChildFixture};
use std::process::Command;
use std::time::Duration;

/// 50 in CI; `scripts/crash-trials N` runs more.
fn trials() -> usize {
    std::env::var("SKILLSD_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

#[test]
fn sigkill_during_pushes_never_leaves_a_half_state() {
    let mut f = ChildFixture::start("crash");
    let repo = f.data.join("repos/skills.git");
    let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    let server_git = |args: &[&str]| {
        let mut c = Command::new("/usr/local/bin/git");
        c.arg("--git-dir").arg(&repo).args(args);
        c
    };
    let mut seed: u64 = 0x5eed;
    let mut landed = 0;
    let trials = trials();
    for trial in 0..trials {
        let old = f.main();
        // A commit with a few skills, pushed while the server is killed.
        let dir = f.work.join(format!("skills/crash-{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3 {
            std::fs::write(
                dir.join(format!("s-{trial}-{i}.md")),
                skill(&format!("T{trial} {i}"), ""),
            )
            .unwrap();
        }
        let mut add = f.git();
        add.args(["add", "-A"]);
        stdout_of(add);
        let mut commit = f.git();
        commit.args(["commit", "-q", "-m", &format!("trial {trial}")]);
        stdout_of(commit);
        let mut head = f.git();
        head.args(["rev-parse", "HEAD"]);
        let new = stdout_of(head);

        let push = f
            .git()
            .args(["push", "-q", "origin", "main"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 150));
        f.server.kill();
        let _ = push.wait_with_output();

        // The ref is either where it was or where the push wanted it.
        let now = f.main();
        assert!(
            now == old || now == new,
            "trial {trial}: main is {now}, neither {old} nor {new}"
        );
        if now == new {
            landed += 1;
        }

        f.server.restart();
        let leftovers: Vec<_> = std::fs::read_dir(repo.join("objects"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("incoming-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "trial {trial}: quarantine left behind"
        );
        let fsck = server_git(&["fsck", "--strict", "--no-dangling"])
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "trial {trial}: {}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        // The startup reconcile ran before the port opened: the cache is at the tip.
        let (watermark, rows): (String, i64) = f.rt.block_on(async {
            sqlx::query_as(
                "SELECT (SELECT commit_sha FROM sync_state WHERE repo = 'skills'),
                        (SELECT count(*) FROM skills WHERE repo = 'skills')",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        });
        assert_eq!(watermark, now, "trial {trial}");
        let files = stdout_of(server_git(&[
            "ls-tree",
            "-r",
            "--name-only",
            "main",
            "skills/",
        ]));
        let skill_files = files
            .lines()
            .filter(|l| l.ends_with(".md") && !l.ends_with("README.md"))
            .count();
        assert_eq!(rows as usize, skill_files, "trial {trial}");
    }
    eprintln!("{trials} trials, {landed} pushes landed before the kill");
    f.rt.block_on(pool.close());
}

/// A crash after the refs moved but before the cache committed: the push is known
/// (recorded before its refs moved) and the next start completes it under its pusher,
/// not `system`.
#[test]
fn a_push_the_server_stopped_in_is_completed_under_its_pusher() {
    let mut f = ChildFixture::start("carol");
    let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    std::fs::create_dir_all(f.work.join("skills/held")).unwrap();
    std::fs::write(f.work.join("skills/held/late.md"), skill("Late", "")).unwrap();
    let mut add = f.git();
    add.args(["add", "-A"]);
    stdout_of(add);
    let mut commit = f.git();
    commit.args(["commit", "-q", "-m", "late"]);
    stdout_of(commit);
    let mut head = f.git();
    head.args(["rev-parse", "HEAD"]);
    let new = stdout_of(head);
    // The cache write blocks on a lock this test holds: the refs move, the cache does not.
    let mut blocker = f.rt.block_on(pool.begin()).unwrap();
    f.rt.block_on(sqlx::query("LOCK TABLE skills IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker))
        .unwrap();
    let push = f
        .git()
        .args(["push", "-q", "origin", "main"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while f.main() != new {
        assert!(std::time::Instant::now() < deadline, "the refs never moved");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    f.server.kill();
    f.rt.block_on(blocker.rollback()).unwrap();
    let _ = push.wait_with_output();

    f.server.restart();
    let (user, accepted, completed): (String, bool, bool) = f.rt.block_on(async {
        sqlx::query_as(
            "SELECT user_name, accepted, completed_at IS NOT NULL FROM pushes
             WHERE refs @> $1::jsonb",
        )
        .bind(format!(r#"[{{"ref": "refs/heads/main", "new": "{new}"}}]"#))
        .fetch_one(&pool)
        .await
        .unwrap()
    });
    assert_eq!((user.as_str(), accepted, completed), ("carol", true, true));
    let (synced_by, push_id_set): (String, bool) = f.rt.block_on(async {
        sqlx::query_as(
            "SELECT synced_by, push_id IS NOT NULL FROM skill_sync_log
             WHERE path = 'skills/held/late.md' AND operation = 'create'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    });
    assert_eq!((synced_by.as_str(), push_id_set), ("carol", true));
    f.rt.block_on(pool.close());
}
