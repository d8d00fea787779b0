//! Namespaces (`namespaces = ["plugins/*"]` in skillsd.toml): skills whose names repeat
//! in different plugin folders get distinct keys (`plugin:name`), which the cache, the
//! JSON API and the agents' index use; a name repeated inside one namespace stays an
//! error; a move between namespaces keeps the skill's id. And the root ".": skills at
//! the top of the repository, in both layouts. End to end: real git over real SSH to
//! the real server and PostgreSQL.

use crate::common;

use common::{Git, Server, assert_contains_all, skill};

fn agent_skill(name: &str, extra_metadata: &str) -> String {
    format!(
        "---\nname: {name}\ndescription: Does {name} things. Use when asked to {name}.\nmetadata:\n  owner: team\n{extra_metadata}---\n# {name}\n\nBody.\n"
    )
}

const PLUGINS: &str =
    "layout = \"agent-skills\"\nroots = [\"plugins/*/skills\"]\nnamespaces = [\"plugins/*\"]\n";

fn cached(server: &Server) -> Vec<(String, String, String, String)> {
    server.query(async {
        sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT slug, namespace, path, status FROM skills WHERE repo = 'skills' ORDER BY slug",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

fn id_of(server: &Server, slug: &str) -> Option<String> {
    server.query(async {
        sqlx::query_scalar::<_, String>(
            "SELECT id::text FROM skills WHERE repo = 'skills' AND slug = $1",
        )
        .bind(slug)
        .fetch_optional(&server.pool)
        .await
        .unwrap()
    })
}

#[test]
fn repeated_names_in_different_namespaces_get_distinct_stable_keys() {
    let server = Server::start_with(true);
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    // `review` in two plugins; `metadata.status` of the collection's own (free-form,
    // as the Agent Skills specification leaves metadata) is no `invalid-status`.
    git.commit_files(
        &dir,
        &[
            ("skillsd.toml", PLUGINS.to_string()),
            (
                "plugins/alpha/skills/review/SKILL.md",
                agent_skill("review", "  status: deprecated\n"),
            ),
            (
                "plugins/beta/skills/review/SKILL.md",
                agent_skill("review", ""),
            ),
            (
                "plugins/beta/skills/lint/SKILL.md",
                agent_skill("lint", "  status: DRAFT\n"),
            ),
        ],
        "two plugins with a skill called review",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let rows = cached(&server);
    let keys: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(s, n, _, st)| (s.as_str(), n.as_str(), st.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("alpha:review", "alpha", "PUBLISHED"),
            ("beta:lint", "beta", "DRAFT"),
            ("beta:review", "beta", "PUBLISHED"),
        ]
    );
    let frontmatter = server.count(
        "SELECT count(*) FROM skills WHERE slug = 'alpha:review' AND frontmatter->'metadata'->>'status' = 'deprecated'",
    );
    assert_eq!(frontmatter, 1);

    // The JSON API finds a skill by its key; the agents' index serves it under it.
    let api: serde_json::Value =
        serde_json::from_str(&server.get("/api/skills/alpha:review")).unwrap();
    assert_eq!(api["path"], "plugins/alpha/skills/review/SKILL.md");
    let index: serde_json::Value =
        serde_json::from_str(&server.get("/.well-known/agent-skills/index.json")).unwrap();
    let mut names: Vec<String> = index["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["alpha:review", "beta:review"]);
    // The pages: the list links each skill by its key, and its page answers to it.
    let list = server.get("/skills");
    assert!(list.contains("href=\"/skills/alpha:review?repo="), "{list}");
    assert!(list.contains("href=\"/skills/beta:review?repo="), "{list}");
    let page = server.get("/skills/beta:review");
    assert!(
        page.contains("plugins/beta/skills/review/SKILL.md"),
        "{page}"
    );
    let served = server.get("/.well-known/agent-skills/beta:review/SKILL.md");
    assert!(served.contains("name: review"), "{served}");

    // A move to another namespace is a rename: same id, new key, logged with it.
    let id = id_of(&server, "alpha:review").unwrap();
    std::fs::create_dir_all(dir.join("plugins/gamma/skills")).unwrap();
    git.ok(
        &dir,
        &[
            "mv",
            "plugins/alpha/skills/review",
            "plugins/gamma/skills/review",
        ],
    );
    git.ok(&dir, &["commit", "-q", "-m", "review moves to gamma"]);
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    assert_eq!(id_of(&server, "alpha:review"), None);
    assert_eq!(id_of(&server, "gamma:review").as_deref(), Some(id.as_str()));
    let logged = server.count(&format!(
        "SELECT count(*) FROM skill_sync_log WHERE skill_id = '{id}' AND operation = 'rename' AND slug = 'gamma:review' AND path = 'plugins/gamma/skills/review/SKILL.md'"
    ));
    assert_eq!(logged, 1);
}

#[test]
fn a_name_repeated_within_a_namespace_or_a_bad_namespace_is_refused() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    // Two roots in one plugin: the same name twice in the namespace `beta`.
    git.commit_files(
        &dir,
        &[
            (
                "skillsd.toml",
                "layout = \"agent-skills\"\nroots = [\"plugins/*/skills\", \"plugins/*/more\"]\nnamespaces = [\"plugins/*\"]\n".to_string(),
            ),
            ("plugins/beta/skills/dup/SKILL.md", agent_skill("dup", "")),
            ("plugins/beta/more/dup/SKILL.md", agent_skill("dup", "")),
            ("plugins/Bad_Plugin/skills/ok/SKILL.md", agent_skill("ok", "")),
        ],
        "a duplicate inside one namespace, and a namespace that is no slug",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_contains_all(
        &stderr,
        &[
            "slug `beta:dup` is already used by plugins/beta/",
            "hint: names are unique within a namespace (`beta`, from `namespaces` in skillsd.toml): rename one of the folders",
            "plugins/Bad_Plugin/skills/ok/SKILL.md:1: namespace: namespace folder `Bad_Plugin` is not a valid slug",
            "rename the folder to `bad-plugin`",
            "push refused, nothing was written.",
        ],
    );
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE path LIKE 'plugins/%'"),
        0
    );

    // Without namespaces, a name repeated in two plugins is refused with a hint that
    // names `namespaces`.
    git.ok(&dir, &["reset", "-q", "--hard", &main]);
    git.commit_files(
        &dir,
        &[
            (
                "skillsd.toml",
                "layout = \"agent-skills\"\nroots = [\"plugins/*/skills\"]\n".to_string(),
            ),
            ("plugins/a/skills/dup/SKILL.md", agent_skill("dup", "")),
            ("plugins/b/skills/dup/SKILL.md", agent_skill("dup", "")),
        ],
        "the same name in two plugins",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_contains_all(
        &stderr,
        &[
            "slug `dup` is already used by plugins/",
            "or give each folder of skills its own namespace with `namespaces` in skillsd.toml",
        ],
    );
}

#[test]
fn skills_at_the_root_of_the_repository() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    // Agent-skills at the top: `<name>/SKILL.md`. The repository's own files at the
    // top (README.md, LICENSE, skillsd.toml), hidden folders (.github, .claude-plugin)
    // and folders without a SKILL.md (the template's skills/ and rules/, docs/) are no
    // skills and no problems.
    git.commit_files(
        &dir,
        &[
            (
                "skillsd.toml",
                "layout = \"agent-skills\"\nroots = [\".\"]\n".to_string(),
            ),
            ("pdf/SKILL.md", agent_skill("pdf", "")),
            ("pdf/scripts/fill.py", "print('fill')\n".to_string()),
            ("docx/SKILL.md", agent_skill("docx", "")),
            ("LICENSE", "MIT\n".to_string()),
            ("docs/guide.md", "# Guide\n".to_string()),
            (".github/workflows/ci.yml", "on: push\n".to_string()),
            (
                ".claude-plugin/marketplace.json",
                "{\"name\": \"m\"}\n".to_string(),
            ),
        ],
        "skills at the top",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let slugs: Vec<String> = cached(&server).into_iter().map(|r| r.0).collect();
    assert_eq!(slugs, vec!["docx", "pdf"]);

    // A SKILL.md inside a hidden folder is outside the root: named, never silent.
    git.commit_files(
        &dir,
        &[(".claude/skills/x/SKILL.md", agent_skill("x", ""))],
        "a skill in a hidden folder",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_contains_all(
        &stderr,
        &[".claude/skills/x/SKILL.md", "[skill-outside-roots]"],
    );
    git.ok(&dir, &["reset", "-q", "--hard", "HEAD~1"]);

    // The flat layout at the top: lowercase `*.md` files are skills, the repository's
    // documents (README.md, RULES.md, CHANGELOG.md) are not.
    git.commit_files(
        &dir,
        &[
            ("skillsd.toml", "roots = [\".\"]\n".to_string()),
            ("deploy.md", skill("Deploy", "")),
            ("CHANGELOG.md", "# Changes\n".to_string()),
        ],
        "flat skills at the top",
    );
    // The agent-skills folders are no flat skills: remove them first.
    git.ok(&dir, &["rm", "-q", "-r", "pdf", "docx", "docs"]);
    git.ok(&dir, &["commit", "-q", "-m", "flat only"]);
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let slugs: Vec<String> = cached(&server).into_iter().map(|r| r.0).collect();
    assert!(slugs.contains(&"deploy".to_string()), "{slugs:?}");
    // The template's skills under skills/ are flat skills under "." too.
    assert!(slugs.contains(&"commit-messages".to_string()), "{slugs:?}");
    assert!(!slugs.iter().any(|s| s.eq_ignore_ascii_case("changelog")));
}
