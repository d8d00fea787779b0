//! Many clients pushing to the same branch at once, each retrying with fetch + rebase
//! when it loses the race: no update is lost, the cache equals the final tree, and
//! every change is logged exactly once.

use crate::common;

use common::{Git, Server, skill};
use std::collections::BTreeMap;
use std::sync::Arc;

const CLIENTS: usize = 32;
const COMMITS: usize = 2;

#[test]
fn concurrent_pushes_lose_nothing() {
    let server = Arc::new(Server::start_tuned(false, |s| {
        s.limits.max_sessions_per_user = 4 * CLIENTS
    }));
    let key = Arc::new(server.add_user("crowd", "writer"));
    // Every client owns some skills; seed them in one push.
    let seeder = Git::new(common::GIT_NEW, &key, &server);
    let seed = seeder.clone(&server.url("skills.git"), &[]);
    let files: Vec<(String, String)> = (0..CLIENTS)
        .map(|c| {
            (
                format!("skills/crowd/client-{c}.md"),
                skill(&format!("Client {c} v0"), ""),
            )
        })
        .collect();
    seeder.commit_files(&seed, &files, "seed");
    seeder.ok(&seed, &["push", "-q", "origin", "main"]);
    let log_before = server.last_log_id();

    // Clone first (a failure here must not leave the others waiting at the barrier).
    let clients: Vec<(Git, std::path::PathBuf)> = (0..CLIENTS)
        .map(|c| {
            let bin = if c % 2 == 0 {
                common::GIT_OLD
            } else {
                common::GIT_NEW
            };
            let git = Git::new(bin, &key, &server);
            let dir = git.clone(&server.url("skills.git"), &["-q"]);
            (git, dir)
        })
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(CLIENTS));
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, (git, dir))| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut retries = 0;
                for n in 1..=COMMITS {
                    let path = format!("skills/crowd/client-{c}.md");
                    git.commit_files(
                        &dir,
                        &[(&path, &skill(&format!("Client {c} v{n}"), ""))],
                        "edit",
                    );
                    loop {
                        let (ok, _, stderr) = git.run(&dir, &["push", "-q", "origin", "main"]);
                        if ok {
                            break;
                        }
                        assert!(
                            stderr.contains("fetch first")
                                || stderr.contains("non-fast-forward")
                                || stderr.contains("stale info")
                                || stderr.contains("failed to lock"),
                            "unexpected push failure: {stderr}"
                        );
                        retries += 1;
                        assert!(retries < 500, "client {c} starved");
                        git.ok(&dir, &["pull", "-q", "--rebase", "origin", "main"]);
                    }
                }
                retries
            })
        })
        .collect();
    let retries: usize = handles
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .sum();
    eprintln!("{CLIENTS} clients x {COMMITS} commits: {retries} retries");

    // Every client's last version is in the tree and in the cache.
    let titles: BTreeMap<String, String> = server.query(async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT path, title FROM skills WHERE path LIKE 'skills/crowd/%'",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
    });
    assert_eq!(titles.len(), CLIENTS);
    for c in 0..CLIENTS {
        assert_eq!(
            titles[&format!("skills/crowd/client-{c}.md")],
            format!("Client {c} v{COMMITS}")
        );
    }
    let tip = server.server_ref("skills", "refs/heads/main").unwrap();
    let blobs: Vec<(String, String)> = server.query(async {
        sqlx::query_as(
            "SELECT path, blob_sha FROM skills WHERE path LIKE 'skills/crowd/%' ORDER BY path",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    for (path, blob) in blobs {
        let out = std::process::Command::new(common::GIT_NEW)
            .arg("--git-dir")
            .arg(server.repo_path("skills"))
            .args(["rev-parse", &format!("{tip}:{path}")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), blob, "{path}");
    }
    let watermark: String =
        server.scalar("SELECT commit_sha FROM sync_state WHERE repo = 'skills'");
    assert_eq!(watermark, tip);
    // Each change logged exactly once, with the commit that made it: one update row
    // per client per commit, each naming a distinct commit.
    let per_path: Vec<(String, i64, i64)> = server.query(async {
        sqlx::query_as(
            "SELECT path, count(*), count(DISTINCT git_commit_sha) FROM skill_sync_log
             WHERE id > $1 AND operation = 'update' AND status = 'success' GROUP BY path ORDER BY path",
        )
        .bind(log_before)
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(per_path.len(), CLIENTS);
    for (path, n, distinct) in &per_path {
        assert_eq!((*n, *distinct), (COMMITS as i64, COMMITS as i64), "{path}");
    }
    let others: i64 = server.query(async {
        sqlx::query_scalar(
            "SELECT count(*) FROM skill_sync_log WHERE id > $1 AND operation <> 'update'",
        )
        .bind(log_before)
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(others, 0);
    server.assert_fsck("skills");
}

#[test]
fn concurrent_pushes_to_different_branches() {
    let server = Arc::new(Server::start_tuned(false, |s| {
        s.limits.max_sessions_per_user = 4 * CLIENTS
    }));
    let key = Arc::new(server.add_user("crowd", "writer"));
    let rows_before: i64 = server.scalar("SELECT count(*) FROM skills");
    let clients: Vec<(Git, std::path::PathBuf, String)> = (0..CLIENTS)
        .map(|c| {
            let bin = if c % 2 == 0 {
                common::GIT_OLD
            } else {
                common::GIT_NEW
            };
            let git = Git::new(bin, &key, &server);
            let dir = git.clone(&server.url("skills.git"), &["-q"]);
            let branch = format!("topic-{c}");
            git.ok(&dir, &["checkout", "-q", "-b", &branch]);
            (git, dir, branch)
        })
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(CLIENTS));
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, (git, dir, branch))| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut tip = String::new();
                for n in 1..=COMMITS {
                    tip = git.commit_files(
                        &dir,
                        &[(
                            &format!("skills/topics/t{c}.md"),
                            &skill(&format!("T{c} v{n}"), ""),
                        )],
                        "t",
                    );
                    git.ok(&dir, &["push", "-q", "origin", &branch]);
                }
                (branch, tip)
            })
        })
        .collect();
    for h in handles {
        let (branch, tip) = h.join().expect("client thread");
        assert_eq!(
            server.server_ref("skills", &format!("refs/heads/{branch}")),
            Some(tip)
        );
    }
    // Topic branches never touch the cache of main.
    let rows_after: i64 = server.scalar("SELECT count(*) FROM skills");
    assert_eq!(rows_after, rows_before);
    server.assert_fsck("skills");
}

#[test]
fn waiting_pushes_queue_on_the_node_not_in_the_database_pool() {
    const PUSHERS: usize = 20;
    let server = Arc::new(Server::start_tuned(true, |s| {
        s.limits.max_sessions_per_user = 4 * PUSHERS
    }));
    let key = server.add_user("crowd", "writer");
    let clients: Vec<(Git, std::path::PathBuf)> = (0..PUSHERS)
        .map(|c| {
            let git = Git::new(common::GIT_NEW, &key, &server);
            let dir = git.clone(&server.url("skills.git"), &["-q"]);
            git.commit_files(
                &dir,
                &[(
                    format!("skills/q/client-{c}.md"),
                    skill(&format!("Client {c}"), ""),
                )],
                "mine",
            );
            (git, dir)
        })
        .collect();
    // Another writer (another node, say) holds the repository's row: every push
    // waits to store.
    let lock = server.query(async {
        let mut tx = server.pool.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM git_repos WHERE name = 'skills' FOR UPDATE")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx
    });
    // Each pusher's messages in a file, read while it waits.
    let logs = tempfile::tempdir().unwrap();
    let said = |c: usize| logs.path().join(format!("pusher-{c}.err"));
    let pushes: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(c, (git, dir))| {
            git.cmd(dir)
                .args([
                    "push",
                    "--progress",
                    "origin",
                    &format!("HEAD:refs/heads/q{c}"),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(said(c)).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    // Every pusher but the one at the lock has been told it waits on this node.
    let queued_now = || {
        (0..PUSHERS)
            .filter(|c| {
                std::fs::read_to_string(said(*c))
                    .is_ok_and(|t| t.contains("queued: another push to skills is being stored"))
            })
            .count()
    };
    common::eventually(60, "the pushers queued", || queued_now() >= PUSHERS - 1);
    // Meanwhile logins and reads are served: the waiting pushes do not hold the
    // pool's connections.
    let newcomer = server.add_user("newcomer", "reader");
    let started = std::time::Instant::now();
    let out = common::ssh_to(&newcomer, server.port)
        .arg("whoami")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let body = server.get("/api/skills/sync/status");
    assert!(body.contains("\"healthy\""), "{body}");
    let in_database = server.count(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
    );
    assert!(
        in_database <= 1,
        "{in_database} pushes wait in the database"
    );
    server.query(lock.rollback()).unwrap();
    for (c, mut p) in pushes.into_iter().enumerate() {
        let status = p.wait().unwrap();
        assert!(
            status.success(),
            "{}",
            std::fs::read_to_string(said(c)).unwrap_or_default()
        );
    }
    let branches = server
        .count("SELECT count(*) FROM git_refs WHERE repo = 'skills' AND name LIKE 'refs/heads/q%'");
    assert_eq!(branches, PUSHERS as i64);
}

#[test]
fn logins_and_pages_have_connections_of_their_own() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    // Every connection of the main pool taken (by pushes, reads, anything).
    // (Some are the server's own listeners already: take what is left.)
    let held: Vec<_> = server.query(async {
        let mut held = Vec::new();
        while let Ok(Ok(c)) =
            tokio::time::timeout(std::time::Duration::from_secs(1), server.pool.acquire()).await
        {
            held.push(c);
            assert!(held.len() <= 16, "the pool has more than 16 connections");
        }
        held
    });
    assert!(!held.is_empty());
    // A key never seen before still logs in at once.
    let started = std::time::Instant::now();
    let out = common::ssh_to(&alice, server.port)
        .arg("whoami")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("user: alice"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The pages and the API answer too.
    let body = server.get("/api/skills/sync/status");
    assert!(body.contains("\"healthy\""), "{body}");
    assert!(server.get("/readyz").starts_with("ready"));
    // Given back on the runtime (a pooled connection is returned by a task).
    server.query(async move { drop(held) });
}

/// The work of a push that needs no database — reading and validating every changed
/// file, looking for renames — is done before it takes the repository's lock: a push
/// that deletes 300 skills and adds 300 others has finished all of it while it still
/// waits for the lock (held here by the test), and holds the lock for the writes only.
/// (Rename detection inside the transaction once held the lock for minutes.)
#[test]
fn a_push_prepares_its_cache_work_before_taking_the_repository_lock() {
    use common::{ChildFixture, stdout_of};
    let f = ChildFixture::start_with(
        "alice",
        &[],
        &[(
            "SKILLSD_LOG",
            "info,skillsd::cache::sync=debug,skillsd::receive::publish=debug,sqlx=warn,russh=warn",
        )],
    );
    let log_path = f.data.with_extension("log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let count = |what: &str| log().matches(what).count();
    for i in 0..300 {
        let dir = f.work.join("skills/old");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("s{i}.md")), skill(&format!("Old {i}"), "")).unwrap();
    }
    f.commit_all("300 skills");
    let mut push = f.git();
    push.args(["push", "-q", "origin", "main"]);
    stdout_of(push);
    std::fs::remove_dir_all(f.work.join("skills/old")).unwrap();
    for i in 0..300 {
        let dir = f.work.join("skills/new");
        std::fs::create_dir_all(&dir).unwrap();
        let body = format!("Entirely different text number {i}.\n").repeat(20);
        std::fs::write(
            dir.join(format!("t{i}.md")),
            skill(&format!("New {i}"), "") + &body,
        )
        .unwrap();
    }
    let tip = f.commit_all("300 deleted, 300 others added");

    let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    let mut held = f.rt.block_on(pool.begin()).unwrap();
    f.rt.block_on(
        sqlx::query("SELECT generation FROM git_repos WHERE name = 'skills' FOR UPDATE")
            .execute(&mut *held),
    )
    .unwrap();
    let prepared_before = count("sync prepared");
    let released_before = count("repository lock released");
    let mut pushing = f.push_in_background();
    let waiting = || -> i64 {
        f.rt.block_on(
            sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE '%FROM git_repos%FOR UPDATE%'",
            )
            .fetch_one(&pool),
        )
        .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while waiting() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the push never waited for the lock"
        );
        assert!(
            pushing.try_wait().unwrap().is_none(),
            "the push ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Waiting for the lock, the push has read, validated and diffed everything...
    assert_eq!(count("sync prepared"), prepared_before + 1, "{}", log());
    // ...and written nothing yet.
    let old_rows: i64 =
        f.rt.block_on(
            sqlx::query_scalar(
                "SELECT count(*) FROM skills WHERE repo = 'skills' AND path LIKE 'skills/old/%'",
            )
            .fetch_one(&pool),
        )
        .unwrap();
    assert_eq!(old_rows, 300);
    f.rt.block_on(held.rollback()).unwrap();
    let out = pushing.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(f.main(), tip);
    // Not prepared again under the lock (the watermark was the one guessed).
    assert_eq!(count("sync prepared"), prepared_before + 1);
    assert_eq!(count("repository lock released"), released_before + 1);
    let rows: Vec<(String, i64)> =
        f.rt.block_on(
            sqlx::query_as(
                "SELECT split_part(path, '/', 2), count(*) FROM skills
                 WHERE repo = 'skills' AND path ~ '^skills/(old|new)/'
                 GROUP BY 1 ORDER BY 1",
            )
            .fetch_all(&pool),
        )
        .unwrap();
    assert_eq!(rows, vec![("new".to_string(), 300)]);
}
