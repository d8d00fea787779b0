//! The MCP server (`/mcp`), driven by the official Python SDK (`mcp` on PyPI, installed by
//! `scripts/deps` under `$SKILLSD_TEST_TOOLS/mcp`) running tests/mcp/client.py, in both
//! of its modes: `legacy` (the initialize handshake, sessions, a GET stream) and `auto`
//! (the SDK's default: 2026-07-28, no sessions, `subscriptions/listen`); and by curl for
//! what no SDK would send.

use crate::common;

use common::{Git, Key, Server};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MODES: [&str; 2] = ["legacy", "auto"];

/// Where `scripts/deps` put the MCP Python SDK.
fn sdk_dir() -> PathBuf {
    let tools = match std::env::var_os("SKILLSD_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/skillsd-test-tools"),
    };
    let dir = tools.join("mcp");
    assert!(
        dir.join("mcp").is_dir(),
        "the MCP Python SDK is missing under {}: run scripts/deps",
        dir.display()
    );
    dir
}

/// tests/mcp/client.py with `args`.
fn client(args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/python3");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py"))
        .args(args)
        .env("PYTHONPATH", sdk_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost");
    c
}

/// Runs the client to its end; the JSON document on its last line.
fn run(args: &[&str]) -> Value {
    let out = client(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "client.py {}: {stdout}\n{stderr}",
        args.join(" ")
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "client.py {}: not JSON ({e}): {stdout}\n{stderr}",
            args.join(" ")
        )
    })
}

fn endpoint(server: &Server, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", server.http_port)
}

fn sha256(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

const LAYOUT: &str = "layout = \"agent-skills\"\nroots = [\"skills\"]\n";

/// A binary file of the deploy skill: not UTF-8, served as a base64 blob.
const LOGO: &[u8] = &[
    0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0x80,
];

/// The skills of the test: path and bytes. `deploy` says "rollback" most, `git-workflow`
/// once; `old-way` is archived.
fn skill_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("skillsd.toml", LAYOUT.into()),
        (
            "skills/git-workflow/SKILL.md",
            "---\nname: git-workflow\ndescription: Follow the team's Git conventions for branches and commits.\n---\n\n# Git workflow\n\nBranch from main, keep commits small; a rollback is a revert commit.\n".into(),
        ),
        (
            "skills/deploy/SKILL.md",
            "---\nname: deploy\ndescription: Deploy the service safely, with a rollback plan.\nlicense: MIT\nmetadata:\n  owner: platform\n  tags: \"ops, release\"\n---\n\n# Deploy\n\nRun scripts/run.sh. Before a rollout, write the rollback steps; if the rollout fails, rollback at once and say why the rollback was needed.\n".into(),
        ),
        (
            "skills/deploy/scripts/run.sh",
            "#!/bin/sh\nset -eu\necho deploying \"$@\"\n".into(),
        ),
        (
            "skills/deploy/references/guide.md",
            "# Deploy guide\n\nRoll out one region at a time.\n".into(),
        ),
        ("skills/deploy/assets/logo.png", LOGO.to_vec()),
        (
            "skills/old-way/SKILL.md",
            "---\nname: old-way\ndescription: How we used to deploy, with a rollback by hand.\nmetadata:\n  status: ARCHIVED\n---\n\n# Old way\n\nrollback rollback rollback\n".into(),
        ),
    ]
}

/// Writes `files` into the clone (`.sh` files executable), commits and pushes them.
fn push_files(git: &Git, dir: &Path, files: &[(&str, Vec<u8>)], message: &str) {
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
}

/// A clone of `repo` in the agent-skills layout with the test's skills pushed, and an
/// open change that proposes one more skill (`proposed`), which is never published.
fn agent_skills_repo(server: &Server, key: &Key, repo: &str) -> (Git, PathBuf) {
    let git = Git::new(common::GIT_NEW, key, server);
    let dir = git.clone(&server.url(&format!("{repo}.git")), &[]);
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    push_files(&git, &dir, &skill_files(), "agent skills");
    push_files_to_change(&git, &dir);
    (git, dir)
}

fn push_files_to_change(git: &Git, dir: &Path) {
    std::fs::create_dir_all(dir.join("skills/proposed")).unwrap();
    std::fs::write(
        dir.join("skills/proposed/SKILL.md"),
        "---\nname: proposed\ndescription: Not merged yet, a rollback proposal.\n---\n\n# Proposed\n\nrollback\n",
    )
    .unwrap();
    git.ok(dir, &["add", "-A"]);
    git.ok(dir, &["commit", "-q", "-m", "proposal"]);
    git.ok(dir, &["push", "-q", "origin", "HEAD:refs/for/main"]);
    git.ok(dir, &["reset", "-q", "--hard", "HEAD~1"]);
}

/// The published files: `skill://` URI → bytes.
fn published_files() -> BTreeMap<String, Vec<u8>> {
    skill_files()
        .into_iter()
        .filter_map(|(path, bytes)| {
            let rest = path.strip_prefix("skills/")?;
            (!rest.starts_with("old-way/")).then(|| (format!("skill://{rest}"), bytes))
        })
        .collect()
}

fn hit_names(result: &Value) -> Vec<String> {
    result["structured"]["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits: {result}"))
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

fn error_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {v}"))
}

#[test]
fn an_agent_finds_reads_and_verifies_exactly_the_published_skills() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    agent_skills_repo(&server, &alice, "skills");
    let files = published_files();
    let url = endpoint(&server, "/mcp");

    for mode in MODES {
        let tour = run(&["tour", &url, mode]);
        let m = |what: &str| format!("{mode}: {what}: {tour}");
        if mode == "legacy" {
            assert_eq!(tour["protocolVersion"], "2025-11-25", "{}", m("version"));
        } else {
            assert_eq!(tour["protocolVersion"], "2026-07-28", "{}", m("version"));
        }

        // initialize (or server/discover): tools, resources with list_changed, SEP-2640.
        let caps = &tour["capabilities"];
        assert!(caps["tools"].is_object(), "{}", m("tools capability"));
        assert_eq!(caps["resources"]["listChanged"], true, "{}", m("resources"));
        assert_eq!(
            caps["extensions"]["io.modelcontextprotocol/skills"],
            json!({"directoryRead": true}),
            "{}",
            m("the skills extension, with directory reads")
        );
        let tools: Vec<&str> = tour["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(tools, ["search_skills", "get_skill"], "{}", m("tools/list"));
        assert_eq!(
            tour["tools"][0]["inputSchema"]["required"],
            json!(["query"]),
            "{}",
            m("schema")
        );

        // search_skills: the cache's full-text search, ranked, published skills only.
        let search = &tour["search"];
        assert_eq!(hit_names(&search["deploy"]), ["deploy"], "{}", m("deploy"));
        let hit = &search["deploy"]["structured"]["hits"][0];
        assert_eq!(
            hit["description"],
            "Deploy the service safely, with a rollback plan."
        );
        assert_eq!(hit["uri"], "skill://deploy/SKILL.md");
        let snippet = hit["snippet"].as_str().unwrap();
        assert!(snippet.contains("**"), "{}", m("a snippet marks its match"));
        assert_eq!(
            hit_names(&search["conventions"]),
            ["git-workflow"],
            "{}",
            m("conventions")
        );
        // Both published skills say "rollback"; deploy says it most and ranks first.
        let both = client_search(&url, mode, "rollback");
        assert_eq!(
            hit_names(&both),
            ["deploy", "git-workflow"],
            "{mode}: {both}"
        );
        let ranks: Vec<f64> = both["structured"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["rank"].as_f64().unwrap())
            .collect();
        assert!(ranks[0] > ranks[1], "{mode}: {both}");
        assert!(
            both["structured"]["hits"][0]["snippet"]
                .as_str()
                .unwrap()
                .contains("**rollback**"),
            "{mode}: {both}"
        );
        for q in ["proposed", "old", "region", "zzzqqq"] {
            assert_eq!(hit_names(&search[q]), Vec::<String>::new(), "{}", m(q));
        }
        assert_eq!(
            hit_names(&tour["search_limit_1"]).len(),
            1,
            "{}",
            m("limit")
        );
        for (case, v) in tour["search_bad"].as_object().unwrap() {
            assert_eq!(v["isError"], true, "{}", m(case));
        }

        // get_skill: SKILL.md's text and the files with their digests.
        let got = &tour["get_skill"]["deploy"];
        assert_eq!(got["isError"], false, "{}", m("get_skill"));
        // Its current version, as /api/skills/deploy/versions has it.
        assert_eq!(
            got["structured"]["version"],
            1,
            "{}",
            m("get_skill version")
        );
        let skill_md = &files["skill://deploy/SKILL.md"];
        assert_eq!(
            got["structured"]["skillMd"].as_str().unwrap().as_bytes(),
            skill_md.as_slice()
        );
        assert_eq!(
            got["text"][0].as_str().unwrap().as_bytes(),
            skill_md.as_slice()
        );
        let listed: BTreeMap<String, (String, u64)> = got["structured"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["uri"].as_str().unwrap().to_string(),
                    (
                        f["digest"].as_str().unwrap().to_string(),
                        f["size"].as_u64().unwrap(),
                    ),
                )
            })
            .collect();
        let want: BTreeMap<String, (String, u64)> = files
            .iter()
            .filter(|(uri, _)| uri.starts_with("skill://deploy/"))
            .map(|(uri, b)| (uri.clone(), (sha256(b), b.len() as u64)))
            .collect();
        assert_eq!(listed, want, "{}", m("get_skill files"));
        for name in ["old-way", "proposed", "nope", "../deploy"] {
            let v = &tour["get_skill"][name];
            assert_eq!(v["isError"], true, "{}", m(name));
            assert!(
                v["text"][0]
                    .as_str()
                    .unwrap()
                    .contains("no published skill"),
                "{}",
                m(name)
            );
        }
        assert_eq!(
            error_code(&tour["unknown_tool"]),
            -32602,
            "{}",
            m("unknown tool")
        );

        // resources/list and resources/read: every published file, git's bytes.
        let resources: BTreeMap<String, &Value> = tour["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["uri"].as_str().unwrap().to_string(), r))
            .collect();
        assert_eq!(
            resources.keys().collect::<Vec<_>>(),
            files.keys().collect::<Vec<_>>(),
            "{}",
            m("resources/list")
        );
        let md = resources["skill://deploy/SKILL.md"];
        assert_eq!(md["name"], "deploy");
        assert_eq!(md["mimeType"], "text/markdown");
        assert_eq!(
            md["description"],
            "Deploy the service safely, with a rollback plan."
        );
        assert_eq!(
            resources["skill://deploy/assets/logo.png"]["mimeType"],
            "application/octet-stream"
        );
        for (uri, bytes) in &files {
            let read = &tour["reads"][uri]["ok"];
            assert_eq!(read["digest"], sha256(bytes), "{}", m(uri));
            assert_eq!(read["size"], bytes.len(), "{}", m(uri));
            assert_eq!(read["mimeType"], resources[uri]["mimeType"], "{}", m(uri));
            assert_eq!(resources[uri]["size"], bytes.len(), "{}", m(uri));
        }
        assert_eq!(
            tour["reads"]["skill://deploy/assets/logo.png"]["ok"]["kind"],
            "blob"
        );
        assert_eq!(
            tour["reads"]["skill://deploy/SKILL.md"]["ok"]["kind"],
            "text"
        );
        let templates: Vec<&str> = tour["templates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["uriTemplate"].as_str().unwrap())
            .collect();
        assert_eq!(
            templates,
            ["skill://{name}/SKILL.md", "skill://{name}/{+path}"]
        );
        // Traversal, other schemes, unknown, archived and proposed skills: refused.
        for (uri, v) in tour["bad_reads"].as_object().unwrap() {
            let code = error_code(v);
            assert!([-32602, -32002].contains(&code), "{}", m(uri));
            assert!(v.get("ok").is_none(), "{}", m(uri));
        }

        // SEP-2640: skills/list and skills/get, frontmatter verbatim, every file with
        // its digest and size; the bytes read match them.
        let listing = &tour["skills_list"]["ok"];
        assert_eq!(
            listing["resultType"],
            if mode == "auto" {
                json!("complete")
            } else {
                Value::Null
            }
        );
        let skills = listing["skills"].as_array().unwrap();
        let names: Vec<&str> = skills
            .iter()
            .map(|s| s["frontmatter"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["deploy", "git-workflow"], "{}", m("skills/list"));
        let deploy = &skills[0];
        assert_eq!(deploy["uri"], "skill://deploy/SKILL.md");
        assert_eq!(
            deploy["frontmatter"],
            json!({
                "name": "deploy",
                "description": "Deploy the service safely, with a rollback plan.",
                "license": "MIT",
                "metadata": {"owner": "platform", "tags": "ops, release"},
            }),
            "{}",
            m("frontmatter")
        );
        let mut entries = BTreeMap::new();
        for s in skills {
            for r in s["resources"].as_array().unwrap() {
                entries.insert(
                    r["uri"].as_str().unwrap().to_string(),
                    (r["digest"].clone(), r["size"].clone()),
                );
            }
        }
        assert_eq!(
            entries.keys().collect::<Vec<_>>(),
            files.keys().collect::<Vec<_>>(),
            "{}",
            m("every file listed")
        );
        for (uri, (digest, size)) in &entries {
            let read = &tour["reads"][uri]["ok"];
            assert_eq!(&read["digest"], digest, "{}", m(uri));
            assert_eq!(&read["size"], size, "{}", m(uri));
        }
        let get = &tour["skills_get"]["skill://deploy/SKILL.md"]["ok"]["skill"];
        assert_eq!(get, deploy, "{}", m("skills/get is the listing's entry"));
        for uri in [
            "skill://old-way/SKILL.md",
            "skill://nope/SKILL.md",
            "skill://deploy/references/guide.md",
            "skill://deploy/../git-workflow/SKILL.md",
        ] {
            assert_eq!(error_code(&tour["skills_get"][uri]), -32602, "{}", m(uri));
        }

        // resources/directory/read: a skill's folder and the folders in it, one level,
        // files as resources/list has them, folders as inode/directory.
        let dirs = &tour["directories"];
        let children = |uri: &str| -> Vec<(String, String, String)> {
            dirs[uri]["ok"]
                .as_array()
                .unwrap_or_else(|| panic!("{}", m(uri)))
                .iter()
                .map(|r| {
                    (
                        r["uri"].as_str().unwrap().to_string(),
                        r["name"].as_str().unwrap().to_string(),
                        r["mimeType"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let d = |uri: &str, name: &str| {
            (
                uri.to_string(),
                name.to_string(),
                "inode/directory".to_string(),
            )
        };
        assert_eq!(
            children("skill://deploy"),
            [
                (
                    "skill://deploy/SKILL.md".to_string(),
                    "deploy".to_string(),
                    "text/markdown".to_string()
                ),
                d("skill://deploy/assets", "assets"),
                d("skill://deploy/references", "references"),
                d("skill://deploy/scripts", "scripts"),
            ],
            "{}",
            m("the deploy folder")
        );
        assert_eq!(
            children("skill://deploy/scripts"),
            [(
                "skill://deploy/scripts/run.sh".to_string(),
                "deploy/scripts/run.sh".to_string(),
                "text/plain".to_string()
            )],
            "{}",
            m("scripts/")
        );
        assert_eq!(
            children("skill://git-workflow").len(),
            1,
            "{}",
            m("git-workflow")
        );
        for uri in [
            "skill://deploy/SKILL.md",
            "skill://deploy/nope",
            "skill://deploy/",
            "skill://nope",
            "skill://old-way",
            "skill://deploy/..",
            "skill://deploy/%2e%2e/git-workflow",
        ] {
            assert_eq!(error_code(&dirs[uri]), -32602, "{}", m(uri));
        }
        assert!(
            dirs["skill://deploy/SKILL.md"]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not a directory resource"),
            "{}",
            m("a file is no directory")
        );
    }

    // Another repository, at /{repo}/mcp: its own skills.
    let out = server.cli(&["init", "team"]);
    assert!(out.status.success(), "{out:?}");
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("team.git"), &[]);
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    push_files(
        &git,
        &dir,
        &[
            ("skillsd.toml", LAYOUT.into()),
            (
                "skills/oncall/SKILL.md",
                "---\nname: oncall\ndescription: Take the pager.\n---\n\n# On call\n".into(),
            ),
        ],
        "team skills",
    );
    for mode in MODES {
        let v = run(&["skills", &endpoint(&server, "/team/mcp"), mode]);
        assert_eq!(v["ok"], json!(["oncall"]), "{mode}: {v}");
        let v = run(&["skills", &url, mode]);
        assert_eq!(v["ok"], json!(["deploy", "git-workflow"]), "{mode}: {v}");
    }
}

fn client_search(url: &str, mode: &str, query: &str) -> Value {
    run(&["search", url, mode, query])
}

/// Waits for the client's `{"ready": true}` line; the client keeps running.
fn spawn_ready(args: &[&str]) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = client(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    if line.trim() != r#"{"ready": true}"# {
        let _ = child.kill();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
        panic!("client.py {}: {line}\n{err}", args.join(" "));
    }
    (child, out)
}

fn finish(
    args: &[&str],
    mut child: std::process::Child,
    mut out: BufReader<std::process::ChildStdout>,
) -> Value {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
    assert!(
        status.success(),
        "client.py {}: {rest}\n{err}",
        args.join(" ")
    );
    serde_json::from_str(rest.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("client.py {}: {e}: {rest}\n{err}", args.join(" ")))
}

#[test]
fn a_push_tells_connected_clients_and_they_read_the_new_content() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let (git, dir) = agent_skills_repo(&server, &alice, "skills");
    let url = endpoint(&server, "/mcp");
    let uri = "skill://deploy/SKILL.md";
    for (round, mode) in MODES.iter().enumerate() {
        let args = ["watch", url.as_str(), mode, uri];
        let (child, out) = spawn_ready(&args);
        let new = format!(
            "---\nname: deploy\ndescription: Deploy the service safely, round {round}.\n---\n\n# Deploy\n\nNew steps.\n"
        );
        push_files(
            &git,
            &dir,
            &[("skills/deploy/SKILL.md", new.clone().into_bytes())],
            "deploy changes",
        );
        let v = finish(&args, child, out);
        // The handshake era's GET stream carries the notification; 2026-07-28's
        // `subscriptions/listen` stream gives the SDK's typed event.
        let expected = if *mode == "legacy" {
            "notifications/resources/list_changed"
        } else {
            "ResourcesListChanged"
        };
        assert!(
            v["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == expected),
            "{mode}: {v}"
        );
        if *mode == "auto" {
            assert_eq!(v["honored"]["resourcesListChanged"], true, "{mode}: {v}");
        }
        assert_ne!(v["before"]["digest"], v["after"]["digest"], "{mode}: {v}");
        assert_eq!(v["after"]["digest"], sha256(new.as_bytes()), "{mode}: {v}");
        assert_eq!(v["after"]["text"], new, "{mode}: {v}");
        let entry = v["skills_list"]["skills"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["uri"] == uri)
            .unwrap()
            .clone();
        assert_eq!(
            entry["frontmatter"]["description"],
            format!("Deploy the service safely, round {round}."),
            "{mode}: {v}"
        );
        assert_eq!(entry["resources"][0]["digest"], sha256(new.as_bytes()));
    }
}

/// `token create` for `key` (the token on the output's last line).
fn token(server: &Server, key: &Key, args: &[&str]) -> String {
    let out = common::ssh_to(key, server.port)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    text.lines().last().unwrap().trim().to_string()
}

/// curl `method` on the HTTP listener: status, headers (names in lower case), body.
fn curl(server: &Server, path: &str, extra: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-D", "/dev/stderr", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(endpoint(server, path))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        String::from_utf8_lossy(&out.stderr).to_ascii_lowercase(),
        body.to_string(),
    )
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;

fn post(server: &Server, path: &str, body: &str, headers: &[&str]) -> (u16, String, String) {
    let mut args = vec![
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-H",
        "Accept: application/json, text/event-stream",
    ];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.extend(["--data-binary", body]);
    curl(server, path, &args)
}

/// The client was refused with 401 and never served.
fn assert_refused(v: &Value, mode: &str) {
    assert!(v.get("error").is_some(), "{mode}: {v}");
    let statuses = v["statuses"].as_array().unwrap();
    assert!(statuses.iter().any(|s| s == 401), "{mode}: {v}");
    assert!(statuses.iter().all(|s| s != 200), "{mode}: {v}");
}

#[test]
fn signed_in_mode_needs_a_token_and_a_revoked_or_expired_one_is_refused() {
    let server = Server::start_tuned(true, |s| {
        s.web_access = skillsd::config::WebAccess::SignedIn;
    });
    let alice = server.add_user("alice", "writer");
    agent_skills_repo(&server, &alice, "skills");
    let url = endpoint(&server, "/mcp");

    for path in ["/mcp", "/skills/.well-known/agent-skills/index.json"] {
        let (status, _, body) = if path == "/mcp" {
            post(&server, path, INITIALIZE, &[])
        } else {
            curl(&server, path, &[])
        };
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("\"error\""), "{path}: {body}");
        assert!(!body.contains("deploy"), "{path}: {body}");
    }
    let forged = "ab".repeat(32);
    for mode in MODES {
        for t in ["", forged.as_str()] {
            assert_refused(&run(&["call", &url, mode, t]), mode);
        }
    }

    let good = token(&server, &alice, &["token", "create", "--name", "agent"]);
    let old = token(&server, &alice, &["token", "create", "--name", "old"]);
    for mode in MODES {
        let v = run(&["call", &url, mode, &good]);
        assert_eq!(
            v["ok"],
            json!(["search_skills", "get_skill"]),
            "{mode}: {v}"
        );
        let v = run(&["tour", &url, mode, &good]);
        assert_eq!(
            v["skills_list"]["ok"]["skills"].as_array().unwrap().len(),
            2,
            "{mode}: {v}"
        );
    }
    // The admin token works as on the rest of the API.
    let (status, _, body) = post(
        &server,
        "/mcp",
        INITIALIZE,
        &[&format!("Authorization: Bearer {}", common::ADMIN_TOKEN)],
    );
    assert_eq!(status, 200, "{body}");

    // Revoked: refused at once, however the client talks.
    token(&server, &alice, &["token", "revoke", "agent"]);
    // Expired: its time is up.
    server.query(async {
        sqlx::query(
            "UPDATE web_sessions SET expires_at = now() - interval '1 second' WHERE label = 'old'",
        )
        .execute(&server.pool)
        .await
        .unwrap()
    });
    for t in [&good, &old] {
        for mode in MODES {
            assert_refused(&run(&["call", &url, mode, t]), mode);
        }
        let (status, _, _) = post(
            &server,
            "/mcp",
            INITIALIZE,
            &[&format!("Authorization: Bearer {t}")],
        );
        assert_eq!(status, 401);
    }
}

#[test]
fn bad_requests_are_answered_with_errors_and_the_server_stays_up() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    agent_skills_repo(&server, &alice, "skills");
    let url = endpoint(&server, "/mcp");

    // A body over the limit: 413 with a JSON-RPC error, read no further.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"x":"{}"}}}}"#,
        "a".repeat(3 * 1024 * 1024)
    );
    let body_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body_file.path(), &huge).unwrap();
    let (status, _, body) = post(
        &server,
        "/mcp",
        &format!("@{}", body_file.path().display()),
        &[],
    );
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["error"]["code"], -32600);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );

    // Not JSON, not one message, not an MCP message: 400 with a JSON-RPC error.
    for (body, code) in [
        ("{\"jsonrpc\":\"2.0\",\"id\":1,", -32700),
        ("", -32700),
        ("[]", -32600),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#,
            -32600,
        ),
        ("42", -32600),
        (r#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#, -32600),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":5}"#,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"capabilities":"x"}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"skills/get","params":{"uri":5}}"#,
            -32602,
        ),
    ] {
        let (status, _, answer) = post(&server, "/mcp", body, &[]);
        assert_eq!(status, 400, "{body:?}: {answer}");
        let v: Value =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{body:?}: {e}: {answer}"));
        assert_eq!(v["jsonrpc"], "2.0", "{body:?}");
        assert_eq!(v["error"]["code"], code, "{body:?}: {answer}");
    }
    // Bytes that are not text.
    std::fs::write(body_file.path(), b"\x00\x01\xff binary").unwrap();
    let (status, _, answer) = post(
        &server,
        "/mcp",
        &format!("@{}", body_file.path().display()),
        &[],
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["error"]["code"],
        -32700
    );
    // The id is answered when there is one.
    let (_, _, answer) = post(
        &server,
        "/mcp",
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":5}"#,
        &[],
    );
    assert_eq!(serde_json::from_str::<Value>(&answer).unwrap()["id"], 7);
    // A repository that does not exist, and paths that are no endpoint.
    let (status, _, answer) = post(&server, "/nope/mcp", INITIALIZE, &[]);
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("no repository `nope`"), "{answer}");
    // A session id nobody was given: 404 (the client starts a new session).
    let (status, _, _) = post(
        &server,
        "/mcp",
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        &["Mcp-Session-Id: 00000000-0000-0000-0000-000000000000"],
    );
    assert_eq!(status, 404);

    // After all that, a real client is served as before.
    for mode in MODES {
        let v = run(&["call", &url, mode, ""]);
        assert_eq!(
            v["ok"],
            json!(["search_skills", "get_skill"]),
            "{mode}: {v}"
        );
    }
    let (status, _, _) = curl(&server, "/healthz", &[]);
    assert_eq!(status, 200);
}

#[test]
fn sessions_are_capped_and_the_idlest_is_closed_first() {
    let server = Server::start_tuned(true, |s| {
        s.mcp.max_sessions = 3;
    });
    let alice = server.add_user("alice", "writer");
    agent_skills_repo(&server, &alice, "skills");
    let url = endpoint(&server, "/mcp");
    // Sessions 0, 1, 2; session 0 asks again (session 1 is now the idlest); session 3
    // opens: session 1 is closed, the others work.
    let v = run(&["sessions", &url, "3"]);
    assert_eq!(
        v["first_again"]["ok"],
        json!(["search_skills", "get_skill"]),
        "{v}"
    );
    let after = v["after"].as_array().unwrap();
    assert_eq!(after.len(), 4, "{v}");
    for i in [0, 2, 3] {
        assert_eq!(
            after[i]["ok"],
            json!(["search_skills", "get_skill"]),
            "session {i}: {v}"
        );
    }
    assert!(after[1].get("error").is_some(), "{v}");
    // 2026-07-28 has no sessions: its change subscriptions are capped alike, and the
    // one over the cap is refused with an error.
    let v = run(&["listeners", &url, "3"]);
    assert!(v["over_cap"].get("error").is_some(), "{v}");
    assert_eq!(
        v["statuses"].as_array().unwrap().last(),
        Some(&json!(503)),
        "{v}"
    );
}

#[test]
fn an_idle_session_is_closed() {
    let server = Server::start_tuned(true, |s| {
        s.mcp.idle = std::time::Duration::from_secs(2);
    });
    let url = endpoint(&server, "/mcp");
    let v = run(&["idle", &url, "4"]);
    assert_eq!(
        v["before"]["ok"],
        json!(["search_skills", "get_skill"]),
        "{v}"
    );
    assert!(v["after"].get("error").is_some(), "{v}");
    // A session that keeps asking stays.
    let v = run(&["idle", &url, "1"]);
    assert_eq!(
        v["after"]["ok"],
        json!(["search_skills", "get_skill"]),
        "{v}"
    );
}

/// A file of exactly `n` bytes of plain text (every such file is the same blob).
fn text_of(n: usize) -> Vec<u8> {
    let line = b"Reference data for the limits test, nothing hidden in it at all.\n";
    line.iter().copied().cycle().take(n).collect()
}

fn skill_md(name: &str) -> Vec<u8> {
    format!("---\nname: {name}\ndescription: A skill at or over the per-skill limits.\n---\n\n# {name}\n")
        .into_bytes()
}

/// SEP-2640 fixes 512 files and 16 MiB per skill: a server should not serve a skill
/// over either. At the limits a skill is served in full; over them it is in no list,
/// and asking for it says why. The MCP series of /metrics count what was asked.
#[test]
fn skills_over_the_extensions_limits_are_not_served_and_metrics_count_requests() {
    let server = Server::start_with(true);
    let alice = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    const MIB: usize = 1024 * 1024;
    let mut files: Vec<(String, Vec<u8>)> = vec![("skillsd.toml".into(), LAYOUT.into())];
    // `many`: 512 files (SKILL.md and 511 more); `toomany`: 513.
    for (name, count) in [("many", 512), ("toomany", 513)] {
        files.push((format!("skills/{name}/SKILL.md"), skill_md(name)));
        for i in 1..count {
            files.push((
                format!("skills/{name}/references/r{i:03}.md"),
                format!("Reference {i}.\n").into_bytes(),
            ));
        }
    }
    // `full`: exactly 16 MiB; `heavy`: one byte more.
    for (name, extra) in [("full", 0), ("heavy", 1)] {
        let md = skill_md(name);
        let rest = 16 * MIB - md.len() + extra;
        files.push((format!("skills/{name}/SKILL.md"), md));
        for i in 0..15 {
            files.push((format!("skills/{name}/data/d{i:02}.txt"), text_of(MIB)));
        }
        files.push((
            format!("skills/{name}/data/last.txt"),
            text_of(rest - 15 * MIB),
        ));
    }
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    push_files(&git, &dir, &refs, "skills at and over the limits");

    let url = endpoint(&server, "/mcp");
    for mode in MODES {
        let v = run(&["limits", &url, mode]);
        let m = |what: &str| format!("{mode}: {what}: {v}");
        assert_eq!(
            v["listed"],
            json!({"full": 17, "many": 512}),
            "{}",
            m("skills/list")
        );
        assert_eq!(
            v["resource_skills"],
            json!(["full", "many"]),
            "{}",
            m("resources/list")
        );
        for name in ["many", "full"] {
            assert!(v["get"][name]["ok"]["skill"].is_object(), "{}", m(name));
        }
        for (name, files, bytes) in [
            ("toomany", "513 files", ""),
            ("heavy", "17 files", "16777217 bytes"),
        ] {
            let e = &v["get"][name];
            assert_eq!(error_code(e), -32602, "{}", m(name));
            let message = e["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(files) && message.contains(bytes),
                "{}",
                m(name)
            );
            assert!(message.contains("SEP-2640"), "{}", m(name));
        }
        assert!(
            v["read"]["many"]["ok"]["size"].is_u64(),
            "{}",
            m("read many")
        );
        assert_eq!(
            error_code(&v["read"]["toomany"]),
            -32602,
            "{}",
            m("read toomany")
        );
        assert_eq!(
            v["tool"]["full"]["isError"],
            false,
            "{}",
            m("get_skill full")
        );
        assert_eq!(
            v["tool"]["heavy"]["isError"],
            true,
            "{}",
            m("get_skill heavy")
        );
        assert!(
            v["tool"]["heavy"]["text"][0]
                .as_str()
                .unwrap()
                .contains("not served over MCP"),
            "{}",
            m("get_skill heavy")
        );
        // 511 children: two pages, put together by the client.
        assert_eq!(
            v["directory"]["skill://many/references"]["ok"]
                .as_array()
                .map(Vec::len),
            Some(511),
            "{}",
            m("directory pages")
        );
        assert_eq!(
            error_code(&v["directory"]["skill://toomany/references"]),
            -32602,
            "{}",
            m("directory of toomany")
        );
    }

    // /metrics: the requests of both runs by method, the errors among them.
    let metrics = server.get("/metrics");
    for line in [
        "skillsd_mcp_requests_total{method=\"skills/list\"} 2",
        "skillsd_mcp_requests_total{method=\"skills/get\"} 8",
        "skillsd_mcp_errors_total{method=\"skills/get\"} 4",
        "skillsd_mcp_requests_total{method=\"resources/read\"} 4",
        "skillsd_mcp_errors_total{method=\"resources/read\"} 2",
        "skillsd_mcp_requests_total{method=\"tools/call\"} 4",
        "skillsd_mcp_errors_total{method=\"tools/call\"} 2",
        "skillsd_mcp_requests_total{method=\"resources/directory/read\"} 6",
        "skillsd_mcp_errors_total{method=\"resources/directory/read\"} 2",
        "skillsd_mcp_errors_total{method=\"skills/list\"} 0",
        "skillsd_mcp_requests_total{method=\"initialize\"} 1",
        "# TYPE skillsd_mcp_sessions_open gauge",
        "# TYPE skillsd_mcp_subscriptions_open gauge",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in /metrics:\n{metrics}"
        );
    }
    // A body that is not JSON: an error with no method.
    let (status, _, _) = post(&server, "/mcp", "{not json", &[]);
    assert_eq!(status, 400);
    let metrics = server.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "skillsd_mcp_errors_total{method=\"other\"} 1"),
        "{metrics}"
    );
}

/// The value of the unlabelled series `name` in /metrics.
fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// Waits up to 15 s for the series `name` to read `want`.
fn wait_for_metric(server: &Server, name: &str, want: f64) {
    common::eventually(15, &format!("{name} reads {want}"), || {
        metric(server, name) == want
    });
}

/// Reads the client's next line of output as JSON.
fn next_line(out: &mut BufReader<std::process::ChildStdout>) -> Value {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// A change stream opened with a token gets notifications while the token works; once
/// it is revoked, the next change sends it nothing and its stream (2026-07-28's
/// subscription) or session (the handshake era's) is closed on the server.
#[test]
fn a_revoked_tokens_open_change_stream_gets_nothing_more_and_is_closed() {
    let server = Server::start_tuned(true, |s| {
        s.web_access = skillsd::config::WebAccess::SignedIn;
    });
    let alice = server.add_user("alice", "writer");
    let (git, dir) = agent_skills_repo(&server, &alice, "skills");
    let url = endpoint(&server, "/mcp");
    for (round, mode) in MODES.iter().enumerate() {
        let name = format!("agent-{round}");
        let t = token(&server, &alice, &["token", "create", "--name", &name]);
        let args = ["revoked", url.as_str(), mode, t.as_str()];
        let (child, mut out) = spawn_ready(&args);
        let open = if *mode == "legacy" {
            "skillsd_mcp_sessions_open"
        } else {
            "skillsd_mcp_subscriptions_open"
        };
        wait_for_metric(&server, open, 1.0);
        let change = |n: usize| {
            let text = format!(
                "---\nname: deploy\ndescription: Deploy the service safely, change {round}.{n}.\n---\n\n# Deploy\n"
            );
            push_files(
                &git,
                &dir,
                &[("skills/deploy/SKILL.md", text.into_bytes())],
                "deploy changes",
            );
        };
        // While the token works, a change is told.
        change(1);
        let first = next_line(&mut out);
        assert_eq!(
            first["first"].as_array().map(Vec::len),
            Some(1),
            "{mode}: {first}"
        );
        // Revoked: the next change tells it nothing, and the server closes it while the
        // client still waits.
        token(&server, &alice, &["token", "revoke", &name]);
        change(2);
        wait_for_metric(&server, open, 0.0);
        let v = finish(&args, child, out);
        assert_eq!(v["after"], json!([]), "{mode}: {v}");
        if *mode == "auto" {
            assert_eq!(v["ended"], true, "{mode}: the subscription ends: {v}");
        }
    }
}
