//! The database goes away: pushes are refused up front with a clear message and
//! nothing is written; logins and clones keep working (keys seen recently, the copy
//! as last verified). A push whose transaction the database drops leaves nothing.

use crate::common;

use common::{Git, Server, skill};
use std::time::{Duration, Instant};

fn wait_for_watermark(server: &Server, tip: &str) {
    common::eventually(60, "the cache caught up", || {
        let w: Option<String> = server.query(async {
            sqlx::query_scalar("SELECT commit_sha FROM sync_state WHERE repo = 'skills'")
                .fetch_optional(&server.pool)
                .await
                .ok()
                .flatten()
        });
        w.as_deref() == Some(tip)
    });
}

/// The pid of the session waiting on a lock in this database, once there is one (a push
/// that reached its cache write while the test holds the table).
fn wait_for_lock_waiter(rt: &tokio::runtime::Runtime, pool: &sqlx::PgPool) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: Option<i32> = rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT pid FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'
                       AND pid <> pg_backend_pid()",
                )
                .fetch_optional(pool),
            )
            .unwrap();
        if let Some(pid) = waiting {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "the push never reached its cache write"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The push (git, running) ends refused because its transaction failed.
fn assert_not_stored(push: std::process::Child) {
    let out = push.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the push could not be stored, nothing was written"),
        "{stderr}"
    );
}

#[test]
fn pushes_are_refused_while_the_database_is_down() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]); // the key is now known
    let main = git.head(&dir);
    let files = server.object_files("skills");
    git.commit_files(&dir, &[("skills/o/outage.md", &skill("Outage", ""))], "o");

    server.database_down();
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains(
            "ERROR: the database is unavailable; nothing was written. Try again in a moment."
        ),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(server.object_files("skills"), files);
    // Reading still works.
    let clone = git.clone(&server.url("skills.git"), &[]);
    assert_eq!(git.head(&clone), main);

    server.database_up();
    git.ok(&dir, &["push", "origin", "main"]);
    let tip = git.head(&dir);
    wait_for_watermark(&server, &tip);
}

/// The database drops the push's connection in the middle of its transaction (as a
/// restart does): the push is refused with the reason, and nothing of it is anywhere —
/// no ref, no pack, no cache row, no push record; the same push then goes through.
#[test]
fn a_database_restart_in_the_middle_of_a_push_leaves_nothing() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    let files = server.object_files("skills");
    let packs_before = server.count("SELECT count(*) FROM git_packs");
    let tip = git.commit_files(&dir, &[("skills/o/midway.md", &skill("Midway", ""))], "o");

    // The push's transaction waits on this lock when it writes the cache...
    let mut blocker = server.query(server.pool.begin()).unwrap();
    server
        .query(sqlx::query("LOCK TABLE skills IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker))
        .unwrap();
    let push = git.spawn(&dir, &["push", "origin", "main"]);
    let pid = wait_for_lock_waiter(&server.rt, &server.pool);
    // ... and the database ends its connection there.
    server.query(async {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&server.pool)
            .await
            .unwrap()
    });
    server.query(blocker.rollback()).unwrap();
    assert_not_stored(push);
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(server.object_files("skills"), files);
    assert_eq!(server.count("SELECT count(*) FROM git_packs"), packs_before);
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE slug = 'midway'"),
        0
    );
    assert_eq!(
        server.count(&format!(
            "SELECT count(*) FROM git_refs WHERE target = '{tip}'"
        )),
        0
    );
    assert_eq!(
        server.count("SELECT count(*) FROM pushes WHERE accepted"),
        0,
        "no accepted push is recorded"
    );

    git.ok(&dir, &["push", "origin", "main"]);
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(tip.as_str())
    );
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE slug = 'midway'"),
        1
    );
    server.assert_fsck("skills");
}

/// PostgreSQL itself restarts while a push is in its transaction (a cluster of this
/// test's own, so no other test loses its database): the push is refused with the
/// reason and nothing of it remains; once the database is back the node takes the
/// same push, without a restart of its own.
#[test]
fn a_real_database_restart_in_the_middle_of_a_push() {
    use common::{ChildServer, Key, SKILLSD, git_at, stdout_of};
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // The cluster runs as `postgres` when the tests run as root: it must reach the dir.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pg = skillsd::localpg::LocalPg::new(&tmp.path().join("pg")).unwrap();
    pg.ensure_running(false).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pg.create_database("skillsd")).unwrap();
    let url = pg.url("skillsd");
    let data = tmp.path().join("data");
    let mut node = ChildServer::start(&data, &url);
    let key = Key::generate("restart");
    let mut add = std::process::Command::new(SKILLSD);
    add.args(["user", "add", "restart", "--role", "writer", "--key"])
        .arg(&key.public)
        .arg("--data-dir")
        .arg(&data)
        .env("DATABASE_URL", &url);
    stdout_of(add);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = home.join("work");
    let git = |args: &[&str]| {
        let mut c = git_at(
            &key,
            node.port,
            &home,
            if work.exists() { &work } else { &home },
        );
        c.args(args);
        c
    };
    let mut clone = git(&["clone", "-q", &node.url("skills.git")]);
    clone.arg(&work);
    stdout_of(clone);
    let main = stdout_of(git(&["rev-parse", "HEAD"]));
    std::fs::write(work.join("skills/restarted.md"), skill("Restarted", "")).unwrap();
    stdout_of(git(&["add", "-A"]));
    stdout_of(git(&["commit", "-q", "-m", "across a restart"]));
    let tip = stdout_of(git(&["rev-parse", "HEAD"]));

    let pool = rt.block_on(skillsd::db::connect(&url)).unwrap();
    let mut blocker = rt.block_on(pool.begin()).unwrap();
    rt.block_on(sqlx::query("LOCK TABLE skills IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker))
        .unwrap();
    let push = git(&["push", "origin", "main"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lock_waiter(&rt, &pool);
    // The restart, with the push waiting inside its transaction.
    pg.stop().unwrap();
    rt.block_on(async move {
        drop(blocker);
        pool.close().await
    });
    pg.ensure_running(false).unwrap();
    assert_not_stored(push);

    let pool = rt.block_on(skillsd::db::connect(&url)).unwrap();
    let state = |pool: &sqlx::PgPool| -> (Option<String>, i64) {
        rt.block_on(
            sqlx::query_as(
                "SELECT (SELECT target FROM git_refs WHERE repo = 'skills' AND name = 'refs/heads/main'),
                        (SELECT count(*) FROM skills WHERE slug = 'restarted')",
            )
            .fetch_one(pool),
        )
        .unwrap()
    };
    assert_eq!(state(&pool), (Some(main), 0));
    // The node reconnects by itself: the same push now lands.
    stdout_of(git(&["push", "-q", "origin", "main"]));
    assert_eq!(state(&pool), (Some(tip), 1));
    rt.block_on(pool.close());
    node.kill();
    pg.stop().unwrap();
}
