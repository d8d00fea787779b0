//! The database goes away: pushes are refused up front with a clear message and
//! nothing is written; logins and clones keep working (keys seen recently, the copy
//! as last verified). A push whose transaction the database drops leaves nothing.

mod common;

use common::{skill, Git, Server};
use std::time::{Duration, Instant};

fn wait_for_watermark(server: &Server, tip: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w: Option<String> = server.query(async {
            sqlx::query_scalar("SELECT commit_sha FROM sync_state WHERE repo = 'skills'")
                .fetch_optional(&server.pool)
                .await
                .ok()
                .flatten()
        });
        if w.as_deref() == Some(tip) {
            return;
        }
        assert!(Instant::now() < deadline, "the cache never caught up");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn pushes_are_refused_while_the_database_is_down() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new("/usr/local/bin/git", &key, &server);
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
    let git = Git::new("/usr/local/bin/git", &key, &server);
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
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid: i32 = loop {
        let waiting: Option<i32> = server.query(async {
            sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
            )
            .fetch_optional(&server.pool)
            .await
            .unwrap()
        });
        if let Some(pid) = waiting {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the push never reached the cache write"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // ... and the database ends its connection there.
    server.query(async {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&server.pool)
            .await
            .unwrap()
    });
    server.query(blocker.rollback()).unwrap();
    let out = push.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the push could not be stored, nothing was written"),
        "{stderr}"
    );
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
