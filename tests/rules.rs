//! Rules as code: `skillsd.toml` and the JSON Schema live in the repository, are read
//! from the pushed commit, refuse the push when they do not load, and when they change,
//! every skill is checked again. The Agent Skills layout, end to end, with the cache.

use crate::common;

use common::{Git, SKILLSD, Server, assert_contains_all, skill};
use std::path::Path;

/// The template's flat schema with `owner` required and checked as a mail address.
fn strict_schema() -> String {
    let mut schema: serde_json::Value =
        serde_json::from_str(skillsd::skills::rules::FLAT_SCHEMA).unwrap();
    schema["required"] = serde_json::json!(["title", "owner"]);
    schema["properties"]["owner"] = serde_json::json!({
        "type": "string",
        "format": "email",
        "x-hint": "the owner is a team's mail address, e.g. owner: platform@example.com"
    });
    serde_json::to_string_pretty(&schema).unwrap()
}

fn cached(server: &Server) -> Vec<(String, String, Option<String>)> {
    server.query(async {
        sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT slug, path, owner FROM skills WHERE repo = 'skills' ORDER BY slug",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

#[test]
fn changed_rules_check_every_skill_and_broken_rules_are_refused() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.commit_files(
        &dir,
        &[(
            "skills/ops/deploy.md",
            &skill("Deploy", "owner: ops-team\n"),
        )],
        "a skill whose owner is not a mail address",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let main = git.head(&dir);
    let objects = server.object_files("skills");

    // Only the schema changes; the skills that break it are old and untouched.
    git.commit_files(
        &dir,
        &[("rules/flat.schema.json", &strict_schema())],
        "owners are mail addresses",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_contains_all(
        &stderr,
        &[
            "The rules changed (flat layout under skills/, schema rules/flat.schema.json): checking every skill.",
            "skills/ops/deploy.md:3:1: owner: `ops-team` is not a valid email",
            "hint: the owner is a team's mail address, e.g. owner: platform@example.com",
            "skills/git/commit-messages.md:5:1: owner: `skills-maintainers` is not a valid email",
            "skills/getting-started/write-a-skill.md:5:1: owner: `skills-maintainers` is not a valid email",
            "3 errors in 3 files",
        ],
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(server.object_files("skills"), objects);

    // Rules that do not load refuse the push, located in the rules file.
    git.ok(&dir, &["reset", "-q", "--hard", &main]);
    std::fs::write(
        dir.join("skillsd.toml"),
        "layout = \"flat\"\nroots = [\"skills\"]\nschema = \"rules/flat.schema.json\"\nmax_file_bytes = 10\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rules/flat.schema.json"),
        "{\n  \"type\": \"object\",\n}\n",
    )
    .unwrap();
    git.ok(&dir, &["commit", "-qam", "broken rules"]);
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("skillsd.toml:4:1: unknown field `max_file_bytes`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the keys are layout, roots, schema, nested_skills, [limits]"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );

    git.ok(&dir, &["reset", "-q", "--hard", &main]);
    std::fs::write(
        dir.join("rules/flat.schema.json"),
        "{\n  \"type\": \"object\",\n}\n",
    )
    .unwrap();
    git.ok(&dir, &["commit", "-qam", "a schema that is not JSON"]);
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("rules/flat.schema.json:3:1: the schema is not valid JSON"),
        "{stderr}"
    );

    git.ok(&dir, &["reset", "-q", "--hard", &main]);
    std::fs::write(dir.join("rules/flat.schema.json"), "{\"type\": \"strnig\"}").unwrap();
    git.ok(&dir, &["commit", "-qam", "a schema with a typo"]);
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("rules/flat.schema.json: the schema is not a valid JSON Schema"),
        "{stderr}"
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(server.object_files("skills"), objects);

    // The new rules with every skill fixed: accepted, and the cache follows.
    git.ok(&dir, &["reset", "-q", "--hard", &main]);
    let fix = |text: String| {
        text.replace("owner: ops-team", "owner: ops@example.com")
            .replace("owner: skills-maintainers", "owner: skills@example.com")
    };
    let mut files = Vec::new();
    for path in [
        "skills/ops/deploy.md",
        "skills/git/commit-messages.md",
        "skills/getting-started/write-a-skill.md",
    ] {
        files.push((path, fix(std::fs::read_to_string(dir.join(path)).unwrap())));
    }
    files.push(("rules/flat.schema.json", strict_schema()));
    git.commit_files(&dir, &files, "owners are mail addresses");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let owners: Vec<Option<String>> = cached(&server).into_iter().map(|r| r.2).collect();
    assert_eq!(
        owners,
        vec![
            Some("skills@example.com".to_string()),
            Some("ops@example.com".to_string()),
            Some("skills@example.com".to_string())
        ]
    );

    // With the rules unchanged, an old file is not checked again: a new skill that
    // follows the rules goes in even though nothing else is touched.
    git.commit_files(
        &dir,
        &[(
            "skills/ops/rollback.md",
            &skill("Rollback", "owner: ops@example.com\n"),
        )],
        "another skill",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    // …and one that breaks them is refused with the schema's words.
    git.commit_files(
        &dir,
        &[("skills/ops/restart.md", &skill("Restart", ""))],
        "no owner",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("skills/ops/restart.md:2: owner: required field is missing"),
        "{stderr}"
    );
    assert!(!stderr.contains("The rules changed"), "{stderr}");
    server.assert_fsck("skills");
}

const PDF_SKILL: &str = "---\nname: pdf-tools\ndescription: Fill PDF forms. Use when asked to fill in a PDF.\nlicense: MIT\nallowed-tools: Bash(python:*) Read\nmetadata:\n  owner: docs-team\n  tags: pdf, forms\n---\n# PDF tools\n";

fn agent_config() -> &'static str {
    "layout = \"agent-skills\"\nroots = [\"skills\"]\nschema = \"rules/agent-skills.schema.json\"\n"
}

#[test]
fn agent_skills_layout_end_to_end() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    assert_eq!(cached(&server).len(), 2);

    // One push moves the repository to the Agent Skills layout.
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    git.commit_files(
        &dir,
        &[
            ("skillsd.toml", agent_config()),
            ("skills/pdf-tools/SKILL.md", PDF_SKILL),
            ("skills/pdf-tools/scripts/fill.py", "print('fill')\n"),
        ],
        "the Agent Skills layout",
    );
    let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("The rules changed (agent-skills layout"),
        "{stderr}"
    );
    assert_eq!(
        cached(&server),
        vec![(
            "pdf-tools".to_string(),
            "skills/pdf-tools/SKILL.md".to_string(),
            Some("docs-team".to_string())
        )]
    );
    let main = git.head(&dir);
    let objects = server.object_files("skills");

    // Every kind of mistake, all reported at once.
    git.commit_files(
        &dir,
        &[
            (
                "skills/Bad_Name/SKILL.md",
                "---\nname: bad-name\ndescription: x\n---\n",
            ),
            (
                "skills/csv/SKILL.md",
                "---\nname: csv-tools\ndescription: \"\"\nversion: 2\n---\n",
            ),
            ("skills/notes.txt", "loose\n"),
            ("skills/empty/reference.md", "no SKILL.md here\n"),
            (
                "skills/lower/skill.md",
                "---\nname: lower\ndescription: x\n---\n",
            ),
        ],
        "mistakes",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_contains_all(
        &stderr,
        &[
            "skills/Bad_Name/SKILL.md:1: name: folder name `Bad_Name` may contain only lowercase letters a-z, digits and hyphens",
            "hint: a skill's folder is its name: rename the folder to `bad-name`",
            "skills/Bad_Name/SKILL.md:2:1: name: `bad-name` does not match the folder name `Bad_Name`",
            "skills/csv/SKILL.md:2:1: name: `csv-tools` does not match the folder name `csv`",
            "skills/csv/SKILL.md:3:1: description: must not be empty",
            "skills/csv/SKILL.md:4:1: version: unknown field",
            "put anything else under `metadata:`",
            "skills/notes.txt: file is not inside a skill folder",
            "skills/empty/SKILL.md: skill folder `skills/empty/` has no SKILL.md",
            "skills/lower/SKILL.md: skill folder `skills/lower/` has no SKILL.md",
            "hint: the file must be named exactly SKILL.md: rename `skills/lower/skill.md`",
        ],
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(server.object_files("skills"), objects);

    // A skill's other files belong to it: removing SKILL.md but not its folder is caught.
    git.ok(&dir, &["reset", "-q", "--hard", &main]);
    git.ok(&dir, &["rm", "-q", "skills/pdf-tools/SKILL.md"]);
    git.ok(&dir, &["commit", "-q", "-m", "drop the skill file only"]);
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains(
            "skills/pdf-tools/SKILL.md: skill folder `skills/pdf-tools/` has no SKILL.md"
        ),
        "{stderr}"
    );

    // A change to a skill's other file checks the skill again (here: still valid).
    git.ok(&dir, &["reset", "-q", "--hard", &main]);
    git.commit_files(
        &dir,
        &[("skills/pdf-tools/scripts/fill.py", "print('fill v2')\n")],
        "script",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    assert_eq!(cached(&server).len(), 1);
    server.assert_fsck("skills");
}

#[test]
fn check_reads_the_rules_of_the_working_tree() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let write = |path: &str, text: &str| {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("skillsd.toml", "layout = \"agent-skills\"\n");
    write("skills/pdf-tools/SKILL.md", PDF_SKILL);
    write("skills/csv/SKILL.md", "---\nname: csv\n---\n");
    let check = |path: &Path, json: bool| {
        let mut cmd = std::process::Command::new(SKILLSD);
        cmd.arg("check").arg(path);
        if json {
            cmd.args(["--format", "json"]);
        }
        cmd.output().unwrap()
    };

    let out = check(root, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("skills/csv/SKILL.md:2: description: required field is missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 error in 1 file (2 skills checked)"),
        "{stdout}"
    );

    // A path inside the tree checks only what is under it, with the tree's rules.
    let out = check(&root.join("skills/pdf-tools"), false);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 skill checked, no problems\n"
    );

    // Broken rules: reported like any other problem, exit 1.
    write("skillsd.toml", "layout = \"tree\"\n");
    let out = check(root, true);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["errors"][0]["path"], "skillsd.toml");
    assert_eq!(json["errors"][0]["line"], 1);
}

/// Slugs are unique across the repository: a new file whose slug another skill has
/// (already on `main`, or in the same push) is refused, naming both files.
#[test]
fn slugs_are_unique_across_the_repository() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    // `commit-messages` is on main already (skills/git/commit-messages.md).
    git.commit_files(
        &dir,
        &[
            ("skills/other/commit-messages.md", &skill("Again", "")),
            ("skills/a/twin.md", &skill("Twin A", "")),
            ("skills/b/twin.md", &skill("Twin B", "")),
        ],
        "duplicates",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_contains_all(
        &stderr,
        &[
            "skills/other/commit-messages.md:1: slug: slug `commit-messages` is already used by skills/git/commit-messages.md",
            "slug `twin` is already used by skills/",
            "hint: slugs are unique across the repository: rename one of the files",
            "push refused, nothing was written.",
        ],
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(
        server.count(
            "SELECT count(*) FROM skills WHERE slug IN ('twin') OR path LIKE 'skills/other/%'"
        ),
        0
    );
}
