//! The database goes away: pushes are refused up front with a clear message and
//! nothing is written (or, with the accept policy, accepted and caught up later);
//! logins and clones keep working with the keys seen recently.

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
        stderr.contains("ERROR: the skills cache database is unavailable; nothing was written. Try again in a moment."),
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

#[test]
fn with_the_accept_policy_the_cache_catches_up_after_the_outage() {
    let server = Server::start_full(false, true);
    let key = server.add_user("alice", "writer");
    let git = Git::new("/usr/local/bin/git", &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let tip = git.commit_files(
        &dir,
        &[("skills/o/accepted.md", &skill("Accepted", ""))],
        "o",
    );

    server.database_down();
    let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: your push is stored, but the skills cache could not be updated"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(tip.as_str())
    );
    server.assert_fsck("skills");

    server.database_up();
    wait_for_watermark(&server, &tip);
    let n: i64 = server.query(async {
        sqlx::query_scalar("SELECT count(*) FROM skills WHERE slug = 'accepted'")
            .fetch_one(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(n, 1);
}
