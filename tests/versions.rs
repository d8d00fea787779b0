//! Versions of the published skills, end to end with the real git over the real SSH
//! client: each push (or review merge) that changes a published skill's files gives it
//! the next version with the digest the discovery index serves; pushes that do not
//! change it, refused pushes and archived skills record nothing; older versions are
//! read back from git history by number; skills from before versions existed get
//! version 1 from the reconcile every start runs.

use crate::common;

use common::agents::{commit, get, push, request, sha256, skill_md};
use common::{Git, Key, Server};
use std::path::PathBuf;

const INDEX: &str = "/.well-known/agent-skills/index.json";
const LAYOUT: &str = "layout = \"agent-skills\"\nroots = [\"skills\"]\n";
const ARCHIVED: &str = "metadata:\n  status: ARCHIVED\n";

fn files() -> Vec<(&'static str, String)> {
    vec![
        ("skillsd.toml", LAYOUT.to_string()),
        (
            "skills/deploy/SKILL.md",
            skill_md("deploy", "Deploy the service. Run scripts/run.sh.", ""),
        ),
        (
            "skills/deploy/scripts/run.sh",
            "#!/bin/sh\necho deploying\n".to_string(),
        ),
        (
            "skills/git-workflow/SKILL.md",
            skill_md("git-workflow", "Follow the team's Git conventions.", ""),
        ),
        (
            "skills/old-way/SKILL.md",
            skill_md("old-way", "How we used to deploy.", ARCHIVED),
        ),
    ]
}

/// The test's skills pushed by `key`: (git, clone, main's commit).
fn repository(server: &Server, key: &Key) -> (Git, PathBuf, String) {
    let git = Git::new(common::GIT_NEW, key, server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    let head = push(&git, &dir, &files(), "agent skills");
    (git, dir, head)
}

/// `GET /api/skills/{slug}/versions`, asserting 200.
fn versions(server: &Server, slug: &str) -> serde_json::Value {
    let reply = get(server, &format!("/api/skills/{slug}/versions"));
    assert_eq!(reply.status, 200, "{slug}: {}", reply.text());
    reply.json()
}

/// The numbers of a version list, newest first.
fn numbers(list: &serde_json::Value) -> Vec<i64> {
    list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect()
}

/// The index's entry of `name`.
fn indexed(server: &Server, name: &str) -> serde_json::Value {
    let index = get(server, INDEX).json();
    index["skills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn version_rows(server: &Server) -> i64 {
    server.count("SELECT count(*) FROM skill_versions")
}

#[test]
fn each_push_that_changes_a_skill_gives_it_the_next_version() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let (git, dir, first) = repository(&server, &alice);

    // Version 1 of each published skill, its digest the index's; none for the archived.
    let list = versions(&server, "deploy");
    assert_eq!(list["current"], 1);
    assert_eq!(list["status"], "PUBLISHED");
    let v1 = list["versions"][0].clone();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["type"], "archive");
    assert_eq!(v1["commit"], first.as_str());
    assert_eq!(v1["path"], "skills/deploy/SKILL.md");
    assert_eq!(v1["pushedBy"], "alice");
    assert!(v1["pushId"].is_string(), "{v1}");
    let entry = indexed(&server, "deploy");
    assert_eq!(v1["digest"], entry["digest"]);
    assert_eq!(entry["version"], 1, "the index carries the current version");
    let lone = versions(&server, "git-workflow");
    assert_eq!(lone["versions"][0]["type"], "skill-md");
    assert_eq!(
        lone["versions"][0]["digest"],
        sha256(files()[3].1.as_bytes()),
        "a lone SKILL.md's digest is its bytes'"
    );
    let reply = get(&server, "/api/skills/old-way/versions");
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert!(reply.json()["error"].is_string());
    assert_eq!(
        server.count(
            "SELECT count(*) FROM skill_versions WHERE slug IN ('deploy', 'git-workflow', 'old-way')"
        ),
        2
    );

    // A change to a file of deploy's folder (not its SKILL.md): version 2.
    let old_script = files()[2].1.clone();
    let second = push(
        &git,
        &dir,
        &[(
            "skills/deploy/scripts/run.sh",
            "#!/bin/sh\necho deploying, carefully\n".to_string(),
        )],
        "deploy: careful",
    );
    let list = versions(&server, "deploy");
    assert_eq!(numbers(&list), [2, 1]);
    assert_eq!(list["current"], 2);
    let v2 = &list["versions"][0];
    assert_eq!(v2["commit"], second.as_str());
    assert_ne!(v2["digest"], v1["digest"]);
    let entry = indexed(&server, "deploy");
    assert_eq!(
        v2["digest"], entry["digest"],
        "the new digest is the index's"
    );
    assert_eq!(entry["version"], 2);
    assert_eq!(
        numbers(&versions(&server, "git-workflow")),
        [1],
        "untouched"
    );

    // Pushes that leave a skill's files as they were record nothing: another file at
    // the top, a README beside the skills, a commit that changes nothing there.
    let before = version_rows(&server);
    push(
        &git,
        &dir,
        &[
            ("README.md", "# Our skills\n".to_string()),
            ("skills/README.md", "# About these skills\n".to_string()),
        ],
        "docs",
    );
    git.ok(&dir, &["commit", "-q", "--allow-empty", "-m", "nothing"]);
    git.ok(&dir, &["push", "-q", "origin", "HEAD:main"]);
    assert_eq!(version_rows(&server), before);
    assert_eq!(indexed(&server, "deploy")["version"], 2);

    // Version 1 by number, from git history: the old SKILL.md, the old files.
    let reply = get(&server, "/api/skills/deploy/versions/1");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let one = reply.json();
    // Its bytes are its ETag: written as they always were (pretty, keys by name).
    assert_eq!(
        reply.body,
        serde_json::to_vec_pretty(&one).unwrap(),
        "the version document's bytes changed"
    );
    assert_eq!(one["version"], 1);
    assert_eq!(one["verified"], true);
    assert_eq!(one["commit"], first.as_str());
    assert_eq!(one["skillMd"], files()[1].1.as_str());
    let listed: Vec<(String, String, bool)> = one["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["digest"].as_str().unwrap().to_string(),
                f["executable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("SKILL.md".into(), sha256(files()[1].1.as_bytes()), false),
            ("scripts/run.sh".into(), sha256(old_script.as_bytes()), true),
        ]
    );
    let etag = reply.header("etag").unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sha256(&reply.body)));
    let reply = get(
        &server,
        "/api/skills/deploy/versions/1/files/scripts/run.sh",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, old_script.as_bytes());
    assert_eq!(reply.header("cache-control"), Some("public, max-age=86400"));
    // Its archive: the bytes its recorded digest names, and 304 for a client that has them.
    assert_eq!(one["url"], "/api/skills/deploy/versions/1/archive.tar.gz");
    let reply = get(&server, "/api/skills/deploy/versions/1/archive.tar.gz");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/gzip"));
    assert_eq!(sha256(&reply.body), v1["digest"].as_str().unwrap());
    let tag = format!("If-None-Match: \"{}\"", v1["digest"].as_str().unwrap());
    let reply = request(
        &server,
        "/api/skills/deploy/versions/1/archive.tar.gz",
        &[tag],
    );
    assert_eq!(reply.status, 304);
    // The current one is the index's, byte for byte.
    let reply = get(&server, "/api/skills/deploy/versions/2/archive.tar.gz");
    assert_eq!(
        reply.body,
        get(&server, "/.well-known/agent-skills/deploy.tar.gz").body
    );
    // A lone SKILL.md's version is the file.
    let reply = get(
        &server,
        "/api/skills/git-workflow/versions/1/files/SKILL.md",
    );
    assert_eq!(reply.body, files()[3].1.as_bytes());
    assert_eq!(
        get(
            &server,
            "/api/skills/git-workflow/versions/1/archive.tar.gz"
        )
        .status,
        404
    );

    // A rename keeps the skill: its versions go on under the new name, and the old
    // name still finds them.
    git.ok(&dir, &["mv", "skills/git-workflow", "skills/git-flow"]);
    push(
        &git,
        &dir,
        &[(
            "skills/git-flow/SKILL.md",
            skill_md("git-flow", "Follow the team's Git conventions.", ""),
        )],
        "rename git-workflow to git-flow",
    );
    let list = versions(&server, "git-flow");
    assert_eq!(numbers(&list), [2, 1]);
    assert_eq!(list["versions"][0]["slug"], "git-flow");
    assert_eq!(list["versions"][1]["slug"], "git-workflow");
    assert_eq!(list["versions"][1]["path"], "skills/git-workflow/SKILL.md");
    assert_eq!(
        versions(&server, "git-workflow")["skillId"],
        list["skillId"]
    );
    let reply = get(&server, "/api/skills/git-flow/versions/1/files/SKILL.md");
    assert_eq!(reply.body, files()[3].1.as_bytes(), "the old name's file");

    // An archived skill gets no version while archived; published, it gets one.
    let before = version_rows(&server);
    push(
        &git,
        &dir,
        &[(
            "skills/deploy/SKILL.md",
            skill_md("deploy", "Retired.", ARCHIVED),
        )],
        "archive deploy",
    );
    assert_eq!(version_rows(&server), before);
    let list = versions(&server, "deploy");
    assert_eq!(list["status"], "ARCHIVED");
    assert_eq!(list["current"], 2);
    assert!(indexed(&server, "deploy").is_null());
    push(
        &git,
        &dir,
        &[(
            "skills/old-way/SKILL.md",
            skill_md("old-way", "How we deploy now.", ""),
        )],
        "publish old-way",
    );
    assert_eq!(numbers(&versions(&server, "old-way")), [1]);
    assert_eq!(indexed(&server, "old-way")["version"], 1);

    // A refused push records nothing.
    let before = version_rows(&server);
    commit(
        &git,
        &dir,
        &[
            (
                "skills/old-way/SKILL.md",
                skill_md("old-way", "Changed.", ""),
            ),
            (
                "skills/broken/SKILL.md",
                "---\nname: broken\n---\n".to_string(),
            ),
        ],
        "broken",
    );
    git.fails(&dir, &["push", "origin", "HEAD:main"]);
    assert_eq!(version_rows(&server), before);
    assert_eq!(numbers(&versions(&server, "old-way")), [1]);

    // Unknown skills and versions: 404 with a JSON reason; a number that is none: 400.
    for (path, status) in [
        ("/api/skills/nope/versions", 404),
        ("/api/skills/nope/versions/1", 404),
        ("/api/skills/deploy/versions/3", 404),
        ("/api/skills/deploy/versions/0", 400),
        ("/api/skills/deploy/versions/two", 400),
        ("/api/skills/deploy/versions/1/files/nope.md", 404),
        (
            "/api/skills/deploy/versions/1/files/../../../etc/passwd",
            404,
        ),
        ("/api/skills/deploy/versions?repo=nope", 404),
        ("/api/skills/deploy/versions?limit=0", 400),
        (
            "/api/skills/00000000-0000-0000-0000-000000000000/versions",
            404,
        ),
    ] {
        let reply = get(&server, path);
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{path}");
    }
    // By id, too.
    let id = list["skillId"].as_str().unwrap().to_string();
    assert_eq!(numbers(&versions(&server, &id)), [2, 1]);
}

fn ssh_ok(server: &Server, key: &Key, command: &str) -> String {
    let out = common::ssh_to(key, server.port)
        .arg(command)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{command}`: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn a_review_merge_records_the_next_version_and_a_proposal_does_not() {
    let server = Server::start_with(true);
    let root = server.add_user("root", "admin");
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    // The admin publishes the skills and turns review on (a direct push: admins may).
    let (git, dir, _) = repository(&server, &root);
    push(
        &git,
        &dir,
        &[(
            "skillsd.toml",
            format!("{LAYOUT}\n[review]\nrequired_approvals = 1\n"),
        )],
        "review on",
    );
    assert_eq!(numbers(&versions(&server, "deploy")), [1]);

    // A change proposes a new deploy: no version while it is only proposed.
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    commit(
        &git,
        &dir,
        &[(
            "skills/deploy/SKILL.md",
            skill_md("deploy", "Deploy the service, reviewed.", ""),
        )],
        "deploy: reviewed",
    );
    git.ok(&dir, &["push", "-q", "origin", "HEAD:refs/for/main"]);
    assert_eq!(numbers(&versions(&server, "deploy")), [1]);
    ssh_ok(&server, &bob, "review 1 --approve");
    ssh_ok(&server, &bob, "review 1 --merge");

    // Merged: version 2, by the merger, at the branch's new commit.
    let list = versions(&server, "deploy");
    assert_eq!(numbers(&list), [2, 1]);
    let v2 = &list["versions"][0];
    assert_eq!(v2["pushedBy"], "bob");
    let main: String = server
        .scalar("SELECT target FROM git_refs WHERE repo = 'skills' AND name = 'refs/heads/main'");
    assert_eq!(v2["commit"], main.as_str());
    let entry = indexed(&server, "deploy");
    assert_eq!(entry["digest"], v2["digest"]);
    assert_eq!(entry["version"], 2);
    assert_eq!(
        numbers(&versions(&server, "git-workflow")),
        [1],
        "the merge did not change it"
    );
}

#[test]
fn skills_published_before_versions_get_version_1_from_the_reconcile() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    repository(&server, &alice);
    let digest = indexed(&server, "deploy")["digest"].clone();
    // As a database from before the migration has it: skills, no versions.
    server.query(async {
        sqlx::query("DELETE FROM skill_versions")
            .execute(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(get(&server, "/api/skills/deploy/versions").status, 404);
    // The reconcile every start runs (here by hand) records their content as version 1.
    let out = server.cli(&["reconcile", "skills"]);
    assert!(out.status.success(), "{out:?}");
    let list = versions(&server, "deploy");
    assert_eq!(numbers(&list), [1]);
    assert_eq!(list["versions"][0]["digest"], digest);
    assert_eq!(list["versions"][0]["pushedBy"], serde_json::Value::Null);
    assert_eq!(numbers(&versions(&server, "git-workflow")), [1]);
    assert_eq!(indexed(&server, "deploy")["version"], 1);
    assert_eq!(version_rows(&server), 2, "published skills only");
    // Again: nothing new.
    let out = server.cli(&["reconcile", "skills"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(version_rows(&server), 2);
}

#[test]
fn an_emptied_cache_rebuilt_in_bulk_gives_each_published_skill_version_1() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let (_git, _dir, head) = repository(&server, &alice);
    let deploy = indexed(&server, "deploy")["digest"].clone();
    let workflow = indexed(&server, "git-workflow")["digest"].clone();
    assert_ne!(deploy, serde_json::Value::Null);
    // An emptied cache: every row comes back with a new id, by `COPY`; a lone SKILL.md's
    // version goes in with its row, a folder's archive is made after the rows.
    server.query(async {
        sqlx::query("DELETE FROM skills")
            .execute(&server.pool)
            .await
            .unwrap()
    });
    let out = server.cli_with(&[("SKILLSD_BULK_LOAD_FROM", "1")], &["reconcile", "skills"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("rows loaded first, indexes built after them"),
        "{stdout}"
    );
    let rows: Vec<(String, i32, String, String, String, Option<String>)> = server.query(async {
        sqlx::query_as(
            "SELECT s.slug, v.version, v.digest, v.kind, v.commit_sha, v.pushed_by
             FROM skills s JOIN skill_versions v ON v.skill_id = s.id ORDER BY s.slug",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    let digest = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    assert_eq!(
        rows,
        [
            (
                "deploy".to_string(),
                1,
                digest(&deploy),
                "archive".to_string(),
                head.clone(),
                None
            ),
            (
                "git-workflow".to_string(),
                1,
                digest(&workflow),
                "skill-md".to_string(),
                head.clone(),
                None
            ),
        ],
        "one version 1 per published skill, none for the archived one"
    );
    assert_eq!(numbers(&versions(&server, "git-workflow")), [1]);
    // Again: nothing new.
    let out = server.cli(&["reconcile", "skills"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        server.count("SELECT count(*) FROM skill_versions v JOIN skills s ON s.id = v.skill_id"),
        2
    );
}

#[test]
fn signed_in_mode_closes_the_versions() {
    let server = Server::start_tuned(true, |s| {
        s.web_access = skillsd::config::WebAccess::SignedIn;
    });
    let alice = server.add_user("alice", "writer");
    repository(&server, &alice);
    for path in [
        "/api/skills/deploy/versions",
        "/api/skills/deploy/versions/1",
        "/api/skills/deploy/versions/1/files/SKILL.md",
        "/api/skills/deploy/versions/1/archive.tar.gz",
    ] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 401, "{path}: {}", reply.text());
        assert!(!reply.text().contains("deploy the service"), "{path}");
    }
    let admin = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    let reply = request(&server, "/api/skills/deploy/versions/1", &[admin]);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("cache-control"),
        Some("private, max-age=86400")
    );
}
