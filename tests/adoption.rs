//! Adopting a real skill collection as it is: check ids and levels, warnings that let
//! a push through and are cached with the skill, root patterns, nested skills, keys a
//! repository's schema allows, cache columns from the team's own fields, and no
//! `SKILL.md` ever left out without a word.

use crate::common;

use common::{Git, SKILLSD, Server, assert_contains_all};
use std::path::Path;

/// A skill as public collections write them: client-specific keys, tools as a list,
/// non-string metadata, an over-long description, a name unlike its folder.
fn collected_skill(name: &str, description: &str) -> String {
    format!(
        "---\nname: {name}\ndescription: {description}\nargument-hint: \"[file]\"\nuser-invocable: true\nallowed-tools:\n  - Read\n  - Bash(git:*)\nmetadata:\n  author: docs-team\n  version: 2\n  related:\n    - name: other\n---\n# {name}\n\nUse it when a PDF must be filled.\n"
    )
}

fn files() -> Vec<(&'static str, String)> {
    vec![
        (
            "skills/pdf/SKILL.md",
            collected_skill("pdf", &"d".repeat(1280)),
        ),
        // A skill inside another skill's folder.
        (
            "skills/pdf/forms/SKILL.md",
            collected_skill("forms", "Fill forms."),
        ),
        (
            "plugins/git/skills/commit/SKILL.md",
            collected_skill("Commit Helper", "Write commit messages."),
        ),
        (
            "plugins/docs/skills/readme/SKILL.md",
            collected_skill("readme", "Write a README."),
        ),
        // Looks like a skill, outside every root.
        (
            "examples/template/SKILL.md",
            collected_skill("template", "An example."),
        ),
    ]
}

const STRICT: &str = "layout = \"agent-skills\"\nroots = [\"skills\", \"plugins/*/skills\"]\n[columns]\nowner = [\"owner\", \"metadata.author\"]\n";

const RELAXED: &str = "layout = \"agent-skills\"\nroots = [\"skills\", \"plugins/*/skills\"]\n[levels]\ndescription-too-long = \"warning\"\nallowed-tools-type = \"warning\"\nmetadata-type = \"warning\"\nunknown-field = \"warning\"\nname-format = \"warning\"\nnested-skill = \"warning\"\nskill-outside-roots = \"warning\"\n[columns]\nowner = [\"owner\", \"metadata.author\"]\n";

type Row = (
    String,
    String,
    Option<String>,
    serde_json::Value,
    serde_json::Value,
);

fn rows(server: &Server) -> Vec<Row> {
    server.query(async {
        sqlx::query_as::<_, Row>(
            "SELECT slug, path, owner, frontmatter, warnings FROM skills WHERE repo = 'skills' ORDER BY path",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

#[test]
fn a_collection_is_adopted_with_warnings_and_every_skill_md_is_accounted_for() {
    let server = Server::start_with(true);
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    let mut first = files();
    first.push(("skillsd.toml", STRICT.to_string()));
    git.commit_files(&dir, &first, "import a public collection");
    let before = server_main(&server);

    // As the checks are by default: refused, every problem named with its check, and
    // the checks that could be relaxed listed once.
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_contains_all(
        &stderr,
        &[
            "remote: error: skills/pdf/SKILL.md",
            "skills/pdf/SKILL.md:3:1: description: is 1280 characters long, more than 1024 [description-too-long]",
            "skills/pdf/SKILL.md:4:1: argument-hint: unknown field [unknown-field]",
            "skills/pdf/SKILL.md:6:1: allowed-tools: must be a string, found a list [allowed-tools-type]",
            // The values' own lines, with hints that fix them.
            "skills/pdf/SKILL.md:11:3: metadata.version: must be a string, found a number [metadata-type]",
            "hint: metadata holds strings only: quote it, version: \"2\"",
            "skills/pdf/SKILL.md:12:3: metadata.related: must be a string, found a list [metadata-type]",
            "hint: metadata holds strings only: write the list as one string, related: \"a, b\"",
            "skills/pdf/forms/SKILL.md: this SKILL.md is inside the skill folder `skills/pdf/`, so it is not a skill of its own [nested-skill]",
            "plugins/git/skills/commit/SKILL.md:2:1: name: `Commit Helper` may contain only lowercase letters a-z, digits and hyphens [name-format]",
            "e.g. `commit-helper`",
            "examples/template/SKILL.md: a SKILL.md outside the folders that hold skills: it is not a skill [skill-outside-roots]",
            "add \"examples\" to `roots` in skillsd.toml",
            "push refused, nothing was written.",
            "Adopting an existing collection? `skillsd check --suggest-config`",
            // Relaxing the checks that would store nothing is not offered as such:
            // the fixes that store those skills are.
            "These keep skills out of the cache: relaxing them would let the push through but store none of those skills. To store them:",
            "remote:   nested-skill (1): set `nested_skills = true` in skillsd.toml",
            "remote:   skill-outside-roots (1): add \"examples\" to `roots` in skillsd.toml",
            "These checks can be relaxed while you fix the files:",
            "Under [levels] in skillsd.toml",
        ],
    );
    assert!(!stderr.contains("nested-skill = \"warning\""), "{stderr}");
    assert_eq!(server_main(&server), before, "nothing was written");

    // With the tripped checks set to warnings: accepted, the warnings shown and cached.
    git.commit_files(&dir, &[("skillsd.toml", RELAXED)], "adopt it as it is");
    let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
    assert!(ok, "{stderr}");
    assert_contains_all(
        &stderr,
        &[
            "remote: warning: skills/pdf/SKILL.md",
            "[description-too-long]",
            "remote: warning: skills/pdf/forms/SKILL.md",
            "remote: warning: examples/template/SKILL.md",
            "warnings do not refuse the push.",
            // Relaxed, the checks that store nothing say so, with the fix that stores.
            "remote: Not stored in the cache: these checks are relaxed to warnings, so the files they name are in git but are not skills. To store them:",
            "remote:   nested-skill (1): set `nested_skills = true` in skillsd.toml",
            "remote:   skill-outside-roots (1): add \"examples\" to `roots` in skillsd.toml",
        ],
    );
    assert!(!stderr.contains("remote: error:"), "{stderr}");
    let rows = rows(&server);
    let paths: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "plugins/docs/skills/readme/SKILL.md",
            "plugins/git/skills/commit/SKILL.md",
            "skills/pdf/SKILL.md",
        ]
    );
    // Every SKILL.md of the tree is a cache row or named in a warning.
    for (path, _) in files() {
        assert!(
            paths.contains(&path) || stderr.contains(&format!("remote: warning: {path}")),
            "{path} is neither cached nor named:\n{stderr}"
        );
    }
    let pdf = &rows[2];
    assert_eq!(pdf.0, "pdf");
    assert_eq!(
        pdf.2.as_deref(),
        Some("docs-team"),
        "owner from metadata.author"
    );
    assert_eq!(pdf.3["argument-hint"], "[file]", "unknown keys are kept");
    assert_eq!(pdf.3["user-invocable"], true);
    let warned: Vec<&str> = pdf
        .4
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["check"].as_str().unwrap())
        .collect();
    for check in [
        "description-too-long",
        "unknown-field",
        "allowed-tools-type",
        "metadata-type",
    ] {
        assert!(warned.contains(&check), "{check} not in {warned:?}");
    }
    assert!(
        pdf.4
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["level"] == "warning")
    );
    assert_eq!(rows[1].0, "commit");

    // The health view and the API show them.
    let with_warnings: i64 = server.scalar("SELECT with_warnings FROM skill_sync_health");
    assert_eq!(with_warnings, 3);
    let body = server.get("/api/skills/pdf?repo=skills");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["owner"], "docs-team");
    assert!(json["warnings"].as_array().unwrap().len() >= 5, "{json}");
    let status = server.get("/api/skills/sync/status");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["withWarnings"], 3);

    // `skillsd check` reports the same, with ids and levels in JSON, and exits 0 on
    // warnings alone.
    let out = std::process::Command::new(SKILLSD)
        .args(["check", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["errors"].as_array().unwrap().len(), 0, "{json}");
    let warnings = json["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w["check"] == "nested-skill"
        && w["path"] == "skills/pdf/forms/SKILL.md"
        && w["level"] == "warning"));
    assert!(warnings.iter().any(|w| w["check"] == "skill-outside-roots"));

    // Nested skills as skills of their own.
    let nested = RELAXED.replace("[levels]", "nested_skills = true\n[levels]");
    git.commit_files(&dir, &[("skillsd.toml", nested.as_str())], "nested skills");
    let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
    assert!(ok, "{stderr}");
    let slugs: Vec<String> = rows_slugs(&server);
    assert_eq!(slugs, vec!["commit", "forms", "pdf", "readme"]);
}

fn server_main(server: &Server) -> String {
    server
        .server_ref("skills", "refs/heads/main")
        .expect("main exists")
}

fn rows_slugs(server: &Server) -> Vec<String> {
    let mut slugs: Vec<String> = rows(server).into_iter().map(|r| r.0).collect();
    slugs.sort();
    slugs
}

#[test]
fn skill_md_files_pushed_to_a_flat_repository_get_one_word_about_the_layout() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = server_main(&server);
    let mut files: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("skills/s{i}/SKILL.md"),
                format!("---\nname: s{i}\ndescription: Skill {i}.\n---\nBody\n"),
            )
        })
        .collect();
    // The skills' own references: no frontmatter, one name in two folders.
    for i in 0..2 {
        files.push((
            format!("skills/s{i}/reference/api.md"),
            "# API notes\n".to_string(),
        ));
    }
    git.commit_files(&dir, &files, "an Agent Skills collection");
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_eq!(
        stderr
            .matches("This repository is on the flat layout")
            .count(),
        1,
        "{stderr}"
    );
    assert_contains_all(
        &stderr,
        &[
            "commit `layout = \"agent-skills\"` in skillsd.toml",
            "skills/s0/SKILL.md: an Agent Skills file (SKILL.md), but this repository is on the flat layout, where it is not a skill [layout-mismatch]",
            "5 errors in 5 files; push refused",
        ],
    );
    // Not the misleading flat-layout complaints about each file, nor advice to relax.
    assert!(!stderr.contains("api.md"), "{stderr}");
    assert!(
        !stderr.contains("Adopting an existing collection?"),
        "{stderr}"
    );
    assert!(!stderr.contains("add a line `title:"), "{stderr}");
    assert!(!stderr.contains("is not a valid slug"), "{stderr}");
    assert_eq!(server_main(&server), main);
}

#[test]
fn check_names_the_layout_for_skill_md_files_in_a_working_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("skills/café")).unwrap();
    std::fs::write(
        root.join("skills/café/SKILL.md"),
        "---\nname: café\ndescription: Coffee.\n---\n",
    )
    .unwrap();
    std::fs::write(root.join("skillsd.toml"), "layout = \"agent-skills\"\n").unwrap();
    let out = std::process::Command::new(SKILLSD)
        .arg("check")
        .arg(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // Suggestions transliterate instead of dropping letters.
    assert_contains_all(
        &stdout,
        &[
            "rename the folder to `cafe`",
            "[slug-format]",
            "e.g. `cafe`",
        ],
    );
    assert!(!stdout.contains("`caf`"), "{stdout}");
    assert!(Path::new(SKILLSD).exists());
}
