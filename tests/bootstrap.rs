//! First start on a fresh install: `--admin-key` registers the first admin, and
//! `SKILLSD_LOG_FORMAT=json` gives one JSON object per log line.

mod common;

use common::{fresh_database, run_sql_admin, ssh_to, ChildServer, Key};

#[test]
fn admin_key_and_json_logs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (db_name, db_url) = fresh_database(&rt);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = Key::generate("first-admin");
    let mut server = ChildServer::start_with(
        &data,
        &db_url,
        &["--admin-key", key.public.to_str().unwrap()],
        &[("SKILLSD_LOG_FORMAT", "json")],
    );
    let out = ssh_to(&key, server.port).arg("whoami").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("user: admin\nrole: admin\n"), "{stdout}");
    // A restart with the same key changes nothing (the key is already registered).
    server.kill();
    server.restart();
    let out = ssh_to(&key, server.port).arg("whoami").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("user: admin\nrole: admin\n"));
    server.kill();
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("\"user\":\"admin\"")),
        "the exec span names the user"
    );
    run_sql_admin(
        &rt,
        &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
    );
}
