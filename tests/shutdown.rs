//! Graceful shutdown: on SIGTERM skillsd stops accepting connections, lets the push in
//! flight finish (cache included), and exits 0.

use crate::common;

use common::{ChildFixture, skill};
use std::time::Duration;

#[test]
fn sigterm_lets_the_push_in_flight_finish() {
    let mut f = ChildFixture::start("grace");
    // A push big enough to still be in flight when the signal arrives.
    for i in 0..3000 {
        let dir = f.work.join(format!("skills/bulk-{}", i % 30));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("bulk-{i}.md")),
            skill(&format!("Bulk {i}"), ""),
        )
        .unwrap();
    }
    let tip = f.commit_all("bulk");
    let push = f.push_in_background();
    // The signal comes once the push is surely in flight: its quarantine exists.
    let objects = f.data.join("repos/skills.git/objects");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&objects)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("incoming-"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the push never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = f.server.terminate();
    let pushed = push.wait_with_output().unwrap();
    assert!(
        pushed.status.success(),
        "the push in flight finished: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert_eq!(status.code(), Some(0), "skillsd exits cleanly");
    // The push was in flight when the signal came.
    let log = std::fs::read_to_string(f.data.with_extension("log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("letting sessions finish"))
        .expect("shutdown logged");
    assert!(!line.contains("sessions=0"), "{line}");
    // Its cache write landed before the process exited.
    let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    let (watermark, rows): (String, i64) = f.rt.block_on(async {
        sqlx::query_as("SELECT (SELECT commit_sha FROM sync_state WHERE repo = 'skills'), (SELECT count(*) FROM skills)")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    assert_eq!(watermark, tip);
    assert_eq!(rows, 3002);
    // Nothing accepts connections any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", f.server.port)).is_err());
    f.rt.block_on(pool.close());
}
