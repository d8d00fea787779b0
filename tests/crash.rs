//! Crash safety: skillsd is killed with SIGKILL at arbitrary points while pushes are in
//! flight, then restarted. Every time: each ref holds either its old or its new value,
//! `git fsck --strict` is clean, no quarantine survives the restart, and the cache
//! equals the tip once the startup reconcile has run.

use crate::common;

use common::{ChildFixture, skill, stdout_of};
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
        let mut c = Command::new(common::GIT_NEW);
        c.arg("--git-dir").arg(&repo).args(args);
        c
    };
    // The kill window follows how long a push takes here (a loaded machine is slower):
    // one push of the same shape, timed, then kills from 0 to twice that.
    let calibration = f.work.join("skills/calibration");
    std::fs::create_dir_all(&calibration).unwrap();
    for i in 0..3 {
        std::fs::write(
            calibration.join(format!("c-{i}.md")),
            skill(&format!("C {i}"), ""),
        )
        .unwrap();
    }
    let calibrated = f.commit_all("calibration");
    let timer = std::time::Instant::now();
    let out = f.push_in_background().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.main(), calibrated);
    let window_ms = (2 * timer.elapsed().as_millis() as u64).max(150);
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
        let new = f.commit_all(&format!("trial {trial}"));

        let push = f.push_in_background();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % window_ms));
        f.server.kill();
        let _ = push.wait_with_output();

        // The ref is either where it was or where the push wanted it (this node's copy
        // may still be behind the database when the kill came right after the commit).
        let before = f.main();
        assert!(
            before == old || before == new,
            "trial {trial}: main is {before}, neither {old} nor {new}"
        );

        f.server.restart();
        // After the restart the copy equals the database, the store of record.
        let now = f.main();
        assert_eq!(Some(now.clone()), db_main(&f, &pool), "trial {trial}");
        assert!(
            now == old || now == new,
            "trial {trial}: main is {now}, neither {old} nor {new}"
        );
        if now == new {
            landed += 1;
        }
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
    eprintln!(
        "{trials} trials, kills within {window_ms} ms, {landed} pushes landed before the kill"
    );
    // The kills must really land in the middle of pushes, and not all of them.
    assert!(landed < trials, "no trial interrupted a push: kill earlier");
    assert!(landed > 0, "no push ever landed: kill later");
    f.rt.block_on(pool.close());
}

fn db_main(f: &ChildFixture, pool: &sqlx::PgPool) -> Option<String> {
    f.rt.block_on(async {
        sqlx::query_scalar(
            "SELECT target FROM git_refs WHERE repo = 'skills' AND name = 'refs/heads/main'",
        )
        .fetch_optional(pool)
        .await
        .unwrap()
    })
}

/// The cache's watermark and its number of rows.
fn cache_of(f: &ChildFixture, pool: &sqlx::PgPool) -> (String, i64) {
    f.rt.block_on(async {
        sqlx::query_as(
            "SELECT (SELECT commit_sha FROM sync_state WHERE repo = 'skills'),
                    (SELECT count(*) FROM skills WHERE repo = 'skills')",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    })
}

/// SIGKILL while a push of 2,000 skills is on its way (in the pack, in validation, in
/// its transaction): refs and cache are either untouched or complete, together.
#[test]
fn sigkill_during_a_2000_skill_push_leaves_refs_and_cache_untouched_or_complete() {
    let mut f = ChildFixture::start("carol");
    let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    let (_, rows_before) = cache_of(&f, &pool);
    let mut outcomes = Vec::new();
    for (trial, delay_ms) in [100u64, 350, 900].into_iter().enumerate() {
        let old = f.main();
        let dir = f.work.join(format!("skills/bulk-{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..2000 {
            std::fs::write(
                dir.join(format!("b{trial}-{i}.md")),
                skill(&format!("Bulk {trial} {i}"), ""),
            )
            .unwrap();
        }
        let new = f.commit_all(&format!("bulk {trial}"));
        let push = f.push_in_background();
        std::thread::sleep(Duration::from_millis(delay_ms));
        f.server.kill();
        let _ = push.wait_with_output();
        f.server.restart();

        let now = f.main();
        assert_eq!(Some(now.clone()), db_main(&f, &pool), "trial {trial}");
        let (watermark, rows) = cache_of(&f, &pool);
        assert_eq!(
            watermark, now,
            "trial {trial}: the cache is where the refs are"
        );
        let landed = if now == new {
            true
        } else {
            assert_eq!(now, old, "trial {trial}");
            false
        };
        let expected_rows = rows_before
            + 2000 * outcomes.iter().filter(|l| **l).count() as i64
            + if landed { 2000 } else { 0 };
        assert_eq!(rows, expected_rows, "trial {trial}");
        outcomes.push(landed);
        if !landed {
            // The next trial builds on what the server has.
            let mut reset = f.git();
            reset.args(["reset", "-q", "--hard", &old]);
            stdout_of(reset);
        }
    }
    eprintln!("2,000-skill pushes killed: landed {outcomes:?}");
    f.rt.block_on(pool.close());
}

/// gix leaves `refs/heads/main.lock` behind when a process dies while writing the ref:
/// the next writer of the copy (under the refresh lock) removes it instead of failing
/// every push to `main` from then on.
#[test]
fn a_ref_lock_left_by_a_crash_does_not_block_the_next_push() {
    let mut f = ChildFixture::start("dora");
    f.server.kill();
    let lock = f.data.join("repos/skills.git/refs/heads/main.lock");
    std::fs::write(&lock, "0000000000000000000000000000000000000000\n").unwrap();
    f.server.restart();
    std::fs::write(
        f.work.join("skills/after-lock.md"),
        skill("After the lock", ""),
    )
    .unwrap();
    let new = f.commit_all("after the lock");
    let mut push = f.git();
    push.args(["push", "-q", "origin", "main"]);
    stdout_of(push);
    assert_eq!(f.main(), new);
    assert!(!lock.exists());
}

/// A node killed while it merges a change: the branch, the change's state, the cache
/// and the push record move together or not at all.
#[test]
fn sigkill_during_merges_leaves_all_or_nothing() {
    let mut f = ChildFixture::start("author");
    let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    // Review on (a writer may push it: review is not on yet), and a reviewer.
    std::fs::write(
        f.work.join("skillsd.toml"),
        "layout = \"flat\"\nroots = [\"skills\"]\n[review]\nrequired_approvals = 1\n",
    )
    .unwrap();
    f.commit_all("review on");
    let mut push = f.git();
    push.args(["push", "-q", "origin", "main"]);
    stdout_of(push);
    let reviewer = common::Key::generate("reviewer");
    let mut add = Command::new(env!("CARGO_BIN_EXE_skillsd"));
    add.args(["user", "add", "reviewer", "--role", "writer", "--key"])
        .arg(&reviewer.public)
        .env("DATABASE_URL", &f.db_url)
        .arg("--data-dir")
        .arg(&f.data);
    stdout_of(add);

    let trials = (trials() / 4).max(8);
    let mut seed: u64 = 0x3e46e;
    let mut merged = 0;
    for trial in 0..trials {
        let number = trial as i32 + 1;
        let mut sync = f.git();
        sync.args(["fetch", "-q", "origin"]);
        stdout_of(sync);
        let mut reset = f.git();
        reset.args(["reset", "-q", "--hard", "origin/main"]);
        stdout_of(reset);
        let old = db_main(&f, &pool).unwrap();
        let dir = f.work.join("skills/merge");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("m-{trial}.md")),
            skill(&format!("M{trial}"), ""),
        )
        .unwrap();
        let head = f.commit_all(&format!("merge trial {trial}"));
        let mut open = f.git();
        open.args(["push", "-q", "origin", "HEAD:refs/for/main"]);
        stdout_of(open);
        let approve = common::ssh_to(&reviewer, f.server.port)
            .arg(format!("review {number} --approve"))
            .output()
            .unwrap();
        assert!(approve.status.success(), "{approve:?}");

        let merging = common::ssh_to(&reviewer, f.server.port)
            .arg(format!("review {number} --merge"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 40));
        f.server.kill();
        let _ = merging.wait_with_output();
        f.server.restart();

        let now = db_main(&f, &pool).unwrap();
        let (state, records) = merge_state(&f, &pool, number);
        if now == head {
            merged += 1;
            assert_eq!(
                state, "MERGED",
                "trial {trial}: main moved, the change did not"
            );
            assert_eq!(records, 1, "trial {trial}: the merge's push record");
        } else {
            assert_eq!(
                now, old,
                "trial {trial}: main is neither old nor the change"
            );
            assert_eq!(
                state, "IN_REVIEW",
                "trial {trial}: the change moved, main did not"
            );
            assert_eq!(records, 0, "trial {trial}");
            // Merged after the restart instead.
            let again = common::ssh_to(&reviewer, f.server.port)
                .arg(format!("review {number} --merge"))
                .output()
                .unwrap();
            assert!(again.status.success(), "trial {trial}: {again:?}");
        }
        let (watermark, _) = cache_of(&f, &pool);
        assert_eq!(
            Some(watermark),
            db_main(&f, &pool),
            "trial {trial}: the cache"
        );
    }
    eprintln!("{trials} trials, {merged} merges landed before the kill");
    assert!(
        merged < trials,
        "no trial interrupted a merge: kill earlier"
    );
    f.rt.block_on(pool.close());
}

/// A change's state, and how many accepted pushes merged it.
fn merge_state(f: &ChildFixture, pool: &sqlx::PgPool, number: i32) -> (String, i64) {
    f.rt.block_on(async {
        sqlx::query_as(
            "SELECT c.state, (SELECT count(*) FROM pushes p WHERE p.accepted
                                AND 'merge-change=' || c.number = ANY(p.push_options))
             FROM changes c WHERE c.number = $1",
        )
        .bind(number)
        .fetch_one(pool)
        .await
        .unwrap()
    })
}
