//! Graceful shutdown: on SIGTERM skillsd stops accepting connections, lets the push in
//! flight finish (cache included), and exits 0.

mod common;

use common::{fresh_database, run_sql_admin, skill, ChildServer, Key, SKILLSD};
use std::process::Command;
use std::time::Duration;

fn git(key: &Key, port: u16, home: &std::path::Path, dir: &std::path::Path) -> Command {
    let mut c = Command::new("/usr/local/bin/git");
    c.current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o BatchMode=yes -o LogLevel=ERROR -p {port}",
                key.private.display()
            ),
        )
        .env("GIT_AUTHOR_NAME", "G")
        .env("GIT_AUTHOR_EMAIL", "g@example.com")
        .env("GIT_COMMITTER_NAME", "G")
        .env("GIT_COMMITTER_EMAIL", "g@example.com");
    c
}

#[test]
fn sigterm_lets_the_push_in_flight_finish() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (db_name, db_url) = fresh_database(&rt);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = ChildServer::start(&data, &db_url);
    let key = Key::generate("grace");
    let out = Command::new(SKILLSD)
        .args([
            "user",
            "add",
            "grace",
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
    let home = tmp.path().to_path_buf();
    let work = home.join("work");
    let out = git(&key, server.port, &home, &home)
        .args(["clone", "-q", &server.url("skills.git")])
        .arg(&work)
        .output()
        .unwrap();
    assert!(out.status.success());
    // A push big enough to still be in flight when the signal arrives.
    for i in 0..3000 {
        let dir = work.join(format!("skills/bulk-{}", i % 30));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("bulk-{i}.md")),
            skill(&format!("Bulk {i}"), ""),
        )
        .unwrap();
    }
    assert!(git(&key, server.port, &home, &work)
        .args(["add", "-A"])
        .output()
        .unwrap()
        .status
        .success());
    assert!(git(&key, server.port, &home, &work)
        .args(["commit", "-q", "-m", "bulk"])
        .output()
        .unwrap()
        .status
        .success());
    let tip = String::from_utf8(
        git(&key, server.port, &home, &work)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let push = git(&key, server.port, &home, &work)
        .args(["push", "-q", "origin", "main"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = server.terminate();
    let pushed = push.wait_with_output().unwrap();
    assert!(
        pushed.status.success(),
        "the push in flight finished: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert_eq!(status.code(), Some(0), "skillsd exits cleanly");
    // Its cache write landed before the process exited.
    let pool = rt.block_on(skillsd::db::connect(&db_url)).unwrap();
    let (watermark, rows): (String, i64) = rt.block_on(async {
        sqlx::query_as(
            "SELECT (SELECT commit_sha FROM sync_state WHERE repo = 'skills'), (SELECT count(*) FROM skills)",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    });
    assert_eq!(watermark, tip);
    assert_eq!(rows, 3002);
    // The push was in flight when the signal came.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("letting sessions finish"))
        .expect("shutdown logged");
    assert!(!line.contains("sessions=0"), "{line}");
    // Nothing accepts connections any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err());
    rt.block_on(pool.close());
    run_sql_admin(
        &rt,
        &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
    );
}
