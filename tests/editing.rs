//! Editing without git, through the contents API: files read with their blob ids,
//! changed with a read-write token (`ssh … token create --write`), committed on the
//! server as the user (`ssh … profile`), and opened as a change for review — checked
//! like a push (409 for a stale sha, 422 with the problems as JSON), refused for
//! readers, read-only tokens and hostile input with nothing committed; `publish: true`
//! merges through the review's path. The commits are then fetched with the real git.

use crate::common;

use base64::Engine;
use common::{Git, Key, Server, skill};
use serde_json::{Value, json};
use std::process::Command;

fn ssh(server: &Server, key: &Key, command: &str) -> (bool, String) {
    let out = common::ssh_to(key, server.port)
        .arg(command)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A token printed by `token create …` (its last line).
fn token(server: &Server, key: &Key, args: &str) -> String {
    let (ok, out) = ssh(server, key, &format!("token create {args}"));
    assert!(ok, "{out}");
    out.trim().lines().last().unwrap().trim().to_string()
}

/// (status, JSON) of a request with a bearer token.
fn call(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Command::new("curl");
    c.args(["-s", "-g", "-o"])
        .arg(tmp.path().join("body"))
        .args(["-w", "%{http_code}", "-X", method])
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(b) = body {
        let file = tmp.path().join("request.json");
        std::fs::write(&file, serde_json::to_vec(b).unwrap()).unwrap();
        c.args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", file.display()));
    }
    c.arg(format!("http://127.0.0.1:{}{path}", server.http_port));
    let out = c.output().unwrap();
    let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let text = std::fs::read_to_string(tmp.path().join("body")).unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, v)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn unb64(v: &Value) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn changes(server: &Server) -> i64 {
    server.count("SELECT count(*) FROM changes")
}

#[test]
fn the_contents_api_opens_changes_as_the_user_checked_like_a_push() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let carol = server.add_user("carol", "writer");
    let bob = server.add_user("bob", "reader");
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let run = |args: &[&str]| git.ok(&dir, args).trim().to_string();
    let deploy = skill("Deploy safely", "") + "\nRoll out in stages.\n";
    git.commit_files(&dir, &[("skills/ops/deploy.md", deploy.clone())], "deploy");
    run(&["push", "-q", "origin", "main"]);
    let main_before = run(&["rev-parse", "HEAD"]).trim().to_string();

    // Who the commits are by.
    let (ok, out) = ssh(
        &server,
        &alice,
        "profile --name Alice Liddell --email alice@example.com",
    );
    assert!(
        ok && out.contains("name: Alice Liddell") && out.contains("email: alice@example.com"),
        "{out}"
    );
    let (ok, out) = ssh(&server, &alice, "profile carol --name Not Carol");
    assert!(!ok && out.contains("only admins"), "{out}");
    let (ok, out) = ssh(&server, &alice, "profile --email not-an-address");
    assert!(!ok && out.contains("not an email address"), "{out}");

    let write = token(&server, &alice, "--write --name editor");
    let read_only = token(&server, &alice, "--name reader");
    let (ok, out) = ssh(&server, &bob, "token create --write");
    assert!(!ok && out.contains("read-only access"), "{out}");
    let bob_token = token(&server, &bob, "");

    // Reading: a file with its blob id, a folder's listing.
    let (code, file) = call(
        &server,
        &read_only,
        "GET",
        "/api/repos/skills/contents/skills/ops/deploy.md",
        None,
    );
    assert_eq!(code, 200, "{file}");
    assert_eq!(unb64(&file["content"]), deploy);
    assert_eq!(file["encoding"], "base64");
    let sha = file["sha"].as_str().unwrap().to_string();
    assert_eq!(sha, run(&["rev-parse", "HEAD:skills/ops/deploy.md"]).trim());
    let (code, listing) = call(
        &server,
        &read_only,
        "GET",
        "/api/repos/skills/contents/skills/ops",
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(listing["type"], "dir");
    assert!(
        listing["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "deploy.md" && e["sha"] == sha.as_str())
    );
    let (code, _) = call(
        &server,
        &read_only,
        "GET",
        "/api/repos/skills/contents/skills/nope.md",
        None,
    );
    assert_eq!(code, 404);
    let (code, _) = call(
        &server,
        &read_only,
        "GET",
        "/api/repos/skills/contents/skills/ops/deploy.md?ref=nobranch",
        None,
    );
    assert_eq!(code, 404);

    // An update and a new skill in one change.
    let updated = deploy.replace("in stages", "in stages, watching the error rate");
    let request = json!({
        "title": "Watch the error rate",
        "message": "Deploys stop when errors rise.\nSecond line.",
        "files": [
            {"operation": "update", "path": "skills/ops/deploy.md", "sha": sha, "content": b64(&updated)},
            {"operation": "create", "path": "skills/ops/rollback.md", "content": b64(&skill("Roll back", ""))},
        ]
    });
    let (code, _) = call(
        &server,
        &read_only,
        "POST",
        "/api/repos/skills/changes",
        Some(&request),
    );
    assert_eq!(code, 403, "a read-only token opens nothing");
    let (code, v) = call(
        &server,
        &bob_token,
        "POST",
        "/api/repos/skills/changes",
        Some(&request),
    );
    assert_eq!(code, 403, "{v}");
    assert_eq!(changes(&server), 0);
    let (code, v) = call(
        &server,
        &write,
        "POST",
        "/api/repos/skills/changes",
        Some(&request),
    );
    assert_eq!(code, 201, "{v}");
    let number = v["change"].as_i64().unwrap();
    assert_eq!(v["patch_set"], 1);
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .contains(&format!("/changes/{number}")),
        "{v}"
    );
    let (code, change) = call(
        &server,
        &read_only,
        "GET",
        &format!("/api/changes/{number}"),
        None,
    );
    assert_eq!(code, 200, "{change}");
    assert_eq!(change["title"], "Watch the error rate");
    assert_eq!(change["author"], "alice");

    // The commit, fetched with git: by Alice, on main's tip, main itself unmoved.
    run(&[
        "fetch",
        "-q",
        "origin",
        &format!("refs/changes/{number}/head"),
    ]);
    let who = run(&[
        "log",
        "-1",
        "--format=%an <%ae>|%cn <%ce>|%s|%P",
        "FETCH_HEAD",
    ]);
    assert_eq!(
        who,
        format!(
            "Alice Liddell <alice@example.com>|Alice Liddell <alice@example.com>|Watch the error rate|{main_before}"
        )
    );
    assert_eq!(
        run(&["show", "FETCH_HEAD:skills/ops/deploy.md"]).trim_end(),
        updated.trim_end()
    );
    run(&["fetch", "-q", "origin"]);
    assert_eq!(run(&["rev-parse", "origin/main"]).trim(), main_before);

    // A stale sha: 409 with the current one; nothing committed.
    let stale = json!({"files": [{"operation": "update", "path": "skills/ops/deploy.md",
        "sha": "0123456789012345678901234567890123456789", "content": b64(&updated)}]});
    let (code, v) = call(
        &server,
        &write,
        "POST",
        "/api/repos/skills/changes",
        Some(&stale),
    );
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["sha"], sha.as_str());
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("changed since you opened it"),
        "{v}"
    );
    // A file that exists already.
    let exists = json!({"files": [{"operation": "create", "path": "skills/ops/deploy.md", "content": b64(&updated)}]});
    let (code, v) = call(
        &server,
        &write,
        "POST",
        "/api/repos/skills/changes",
        Some(&exists),
    );
    assert_eq!((code, v["sha"].as_str()), (409, Some(sha.as_str())), "{v}");

    // A broken skill: 422 with the problems (file, line, field, hint), as a push shows.
    let broken = json!({"files": [{"operation": "create", "path": "skills/ops/broken.md",
        "content": b64("---\ntitle: [unclosed\n---\nbody\n")}]});
    let (code, v) = call(
        &server,
        &write,
        "POST",
        "/api/repos/skills/changes",
        Some(&broken),
    );
    assert_eq!(code, 422, "{v}");
    let problem = &v["problems"][0];
    assert_eq!(problem["path"], "skills/ops/broken.md", "{v}");
    assert!(problem["line"].as_u64().is_some(), "{v}");
    assert_eq!(changes(&server), 1);

    // Hostile or wrong input: a clear 4xx, nothing committed.
    let cases = [
        (
            json!({"files": [{"operation": "create", "path": "../escape.md", "content": b64("x")}]}),
            400,
            "`..`",
        ),
        (
            json!({"files": [{"operation": "create", "path": "/etc/x.md", "content": b64("x")}]}),
            400,
            "relative",
        ),
        (
            json!({"files": [{"operation": "create", "path": "README2.md", "content": b64(&skill("Out", ""))}]}),
            400,
            "outside the skill roots",
        ),
        (
            json!({"files": [{"operation": "create", "path": "skills/bin.md",
            "content": base64::engine::general_purpose::STANDARD.encode([0u8, 159, 146, 150])}]}),
            400,
            "binary",
        ),
        (
            json!({"branch": "nope", "files": [{"operation": "create", "path": "skills/x.md", "content": b64(&skill("X", ""))}]}),
            404,
            "no branch `nope`",
        ),
        (
            json!({"change": 99, "files": [{"operation": "create", "path": "skills/x.md", "content": b64(&skill("X", ""))}]}),
            404,
            "no change 99",
        ),
        (json!({"files": "not a list"}), 400, "not a change request"),
    ];
    for (body, want, text) in cases {
        let (code, v) = call(
            &server,
            &write,
            "POST",
            "/api/repos/skills/changes",
            Some(&body),
        );
        assert_eq!(code, want, "{body}: {v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains(text),
            "{body}: {v}"
        );
    }
    // Someone else's change.
    let carol_token = token(&server, &carol, "--write");
    let theirs = json!({"change": number, "files": [{"operation": "create", "path": "skills/x.md", "content": b64(&skill("X", ""))}]});
    let (code, v) = call(
        &server,
        &carol_token,
        "POST",
        "/api/repos/skills/changes",
        Some(&theirs),
    );
    assert_eq!(code, 403, "{v}");
    // A body over the limit.
    let huge = json!({"files": [{"operation": "create", "path": "skills/x.md", "content": "A".repeat(17 << 20)}]});
    let (code, _) = call(
        &server,
        &write,
        "POST",
        "/api/repos/skills/changes",
        Some(&huge),
    );
    assert_eq!(code, 413);
    assert_eq!(changes(&server), 1);
    assert_eq!(server.count("SELECT count(*) FROM change_patch_sets"), 1);

    // A second patch set on the change: a rename (sha as the change has it) and a delete.
    let (code, head_file) = call(
        &server,
        &write,
        "GET",
        &format!(
            "/api/repos/skills/contents/skills/ops/rollback.md?ref=refs/changes/{number}/head"
        ),
        None,
    );
    assert_eq!(code, 200, "{head_file}");
    let patch = json!({"change": number, "files": [
        {"operation": "rename", "from_path": "skills/ops/rollback.md", "path": "skills/ops/roll-back.md", "sha": head_file["sha"]},
        {"operation": "delete", "path": "skills/ops/deploy.md", "sha": v_sha(&server, &write, number, "skills/ops/deploy.md")},
    ]});
    let (code, v) = call(
        &server,
        &write,
        "POST",
        "/api/repos/skills/changes",
        Some(&patch),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        (v["change"].as_i64(), v["patch_set"].as_i64()),
        (Some(number), Some(2))
    );
    run(&[
        "fetch",
        "-q",
        "origin",
        &format!("refs/changes/{number}/head"),
    ]);
    let files = run(&["ls-tree", "-r", "--name-only", "FETCH_HEAD", "skills/ops"]);
    assert_eq!(files.trim(), "skills/ops/roll-back.md");

    // The editor's live check: the same rules, no side effects.
    let (code, v) = call(
        &server,
        &read_only,
        "POST",
        "/api/check",
        Some(&json!({"path": "skills/ops/new.md", "content": "---\ntitle: [x\n---\n"})),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["path"], "skills/ops/new.md");
    let (code, v) = call(
        &server,
        &read_only,
        "POST",
        "/api/check",
        Some(&json!({"path": "skills/ops/new.md", "content": skill("Fine", "")})),
    );
    assert_eq!((code, &v["valid"]), (200, &json!(true)), "{v}");

    // Published at once: no approvals needed on this branch, so the merge goes through.
    let now = json!({"title": "Add a runbook", "publish": true, "files": [
        {"operation": "create", "path": "skills/ops/runbook.md", "content": b64(&skill("Runbook", ""))}]});
    let (code, v) = call(
        &server,
        &write,
        "POST",
        "/api/repos/skills/changes",
        Some(&now),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["published"], true, "{v}");
    run(&["pull", "-q", "--rebase", "origin", "main"]);
    assert_eq!(
        run(&[
            "log",
            "-1",
            "--format=%an <%ae>",
            "--",
            "skills/ops/runbook.md"
        ]),
        "Alice Liddell <alice@example.com>"
    );
    let (code, skill_row) = call(&server, &read_only, "GET", "/api/skills/runbook", None);
    assert_eq!(code, 200, "{skill_row}");
    server.assert_fsck("skills");
}

/// The blob id of `path` in change `number`'s head, through the API.
fn v_sha(server: &Server, token: &str, number: i64, path: &str) -> String {
    let (code, v) = call(
        server,
        token,
        "GET",
        &format!("/api/repos/skills/contents/{path}?ref=refs/changes/{number}/head"),
        None,
    );
    assert_eq!(code, 200, "{v}");
    v["sha"].as_str().unwrap().to_string()
}

/// A read-only API token reads the pages, and with them the form token they carry, but
/// acts on nothing through their forms: approving a change with it is refused.
#[test]
fn a_read_only_token_cannot_act_through_the_pages_forms() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    let write = token(&server, &alice, "--write");
    let body = json!({"files": [{"operation": "create", "path": "skills/ops/x.md",
        "content": b64(&skill("X", ""))}]});
    let (code, v) = call(
        &server,
        &write,
        "POST",
        "/api/repos/skills/changes",
        Some(&body),
    );
    assert_eq!(code, 201, "{v}");
    let number = v["change"].as_i64().unwrap();
    // Bob's read-only token: the page, and the form token in it.
    let read_only = token(&server, &bob, "");
    let page = Command::new("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {read_only}")])
        .arg(format!(
            "http://127.0.0.1:{}/changes/{number}",
            server.http_port
        ))
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    let marker = "name=\"csrf\" value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no form token in {page}"))
        + marker.len();
    let csrf = &page[start..start + page[start..].find('"').unwrap()];
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {read_only}")])
        .args([
            "--data",
            &format!("csrf={csrf}&action=approve&message=lgtm"),
        ])
        .arg(format!(
            "http://127.0.0.1:{}/changes/{number}/review",
            server.http_port
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    assert_eq!(
        server.count("SELECT count(*) FROM change_reviews"),
        0,
        "nothing was recorded"
    );
}
