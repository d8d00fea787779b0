//! The HTTP side: health, readiness and the JSON API of the prototype, driven with curl.
//!
//! A test binary of its own (not a module of `suite`): it reads the process-wide
//! counters of `/metrics`, which only its own in-process server may move.

mod common;

use common::{ADMIN_TOKEN, Git, Server, skill};
use std::process::Command;

/// (status, body) of a request made with curl.
fn curl(server: &Server, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = c
        .arg(format!("http://127.0.0.1:{}{path}", server.http_port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn health_status_logs_and_trigger() {
    let server = Server::start_with(true);
    assert_eq!(curl(&server, "GET", "/healthz", None), (200, "ok\n".into()));
    assert_eq!(
        curl(&server, "GET", "/readyz", None),
        (200, "ready\n".into())
    );

    let (code, body) = curl(&server, "GET", "/api/skills/sync/status", None);
    assert_eq!(code, 200);
    assert_eq!(
        json(&body),
        serde_json::json!({"synced": 2, "pending": 0, "failed": 0, "unknown": 0, "total": 2,
                           "recentFailures": 0, "healthy": true, "withWarnings": 0})
    );

    // A push adds a log row; the history comes newest first, by slug or by id.
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let tip = git.commit_files(
        &dir,
        &[("skills/git/commit-messages.md", &skill("Edited", ""))],
        "e",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let (code, body) = curl(
        &server,
        "GET",
        "/api/skills/commit-messages/sync-logs?limit=10",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    let logs = v["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["operation"], "update");
    assert_eq!(logs[0]["syncedBy"], "alice");
    assert_eq!(logs[0]["gitCommitSha"], tip.as_str());
    assert_eq!(logs[0]["status"], "success");
    assert!(logs[0]["pushId"].is_string());
    assert_eq!(logs[1]["operation"], "create");
    assert_eq!(logs[1]["syncedBy"], "system");
    let id = v["skillId"].as_str().unwrap().to_string();
    let (code, body) = curl(
        &server,
        "GET",
        &format!("/api/skills/{id}/sync-logs?limit=1"),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(json(&body)["logs"].as_array().unwrap().len(), 1);

    // Bad requests.
    let (code, body) = curl(&server, "GET", "/api/skills/no-such-skill/sync-logs", None);
    assert_eq!(
        (code, json(&body)["error"].as_str().unwrap()),
        (404, "no skill `no-such-skill`")
    );
    let (code, _) = curl(
        &server,
        "GET",
        "/api/skills/commit-messages/sync-logs?limit=0",
        None,
    );
    assert_eq!(code, 400);

    // The trigger needs the admin token, then reconciles.
    assert_eq!(
        curl(&server, "POST", "/api/skills/sync/trigger", None).0,
        401
    );
    assert_eq!(
        curl(&server, "POST", "/api/skills/sync/trigger", Some("wrong")).0,
        401
    );
    let (code, body) = curl(
        &server,
        "POST",
        "/api/skills/sync/trigger",
        Some(ADMIN_TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["reconciled"][0]["repo"], "skills");
    assert_eq!(v["reconciled"][0]["commit"], tip.as_str());
    assert_eq!(v["reconciled"][0]["created"], 0);

    // Metrics (this test binary runs one server, so the process-wide counters are its).
    git.commit_files(&dir, &[("skills/m/Bad.md", "---\n---\n")], "bad");
    git.fails(&dir, &["push", "-q", "origin", "main"]);
    let (code, body) = curl(&server, "GET", "/metrics", None);
    assert_eq!(code, 200);
    for line in [
        "skillsd_pushes_total{result=\"accepted\"} 1",
        "skillsd_pushes_total{result=\"refused\"} 1",
        "skillsd_push_refusals_total{reason=\"invalid_skills\"} 1",
        "skillsd_validation_errors_total 2",
        "skillsd_fetches_total 1",
        "skillsd_active_sessions 0",
        "skillsd_cache_sync_seconds_count 1",
        "skillsd_cache_sync_seconds_bucket{le=\"+Inf\"} 1",
    ] {
        assert!(
            body.contains(&format!("{line}\n")),
            "missing `{line}` in:\n{body}"
        );
    }
    // Reconciles: the one at start and the triggered one.
    assert!(body.contains("skillsd_reconcile_runs_total 2\n"), "{body}");
    let received: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("skillsd_received_bytes_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(received > 0);
}
