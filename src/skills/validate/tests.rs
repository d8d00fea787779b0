use super::*;

const GOOD: &str = "---\ntitle: Deploy safely\ndescription: How\ncategory: ops\nowner: team-a\ntags: [deploy, ci]\nstatus: DRAFT\nextra: kept\n---\n# Body\n";

#[test]
fn skill_paths() {
    let rules = Rules::builtin();
    assert!(rules.is_skill("skills/a.md"));
    assert!(rules.is_skill("skills/ops/deploy.md"));
    assert!(!rules.is_skill("skills/README.md"));
    assert!(!rules.is_skill("skills/ops/readme.md"));
    assert!(!rules.is_skill("README.md"));
    assert!(!rules.is_skill("skills/ops/notes.txt"));
    assert!(!rules.is_skill("other/a.md"));
}

#[test]
fn paths() {
    assert!(path_problems("skills/", "skills/ops/deploy.md", false, false).is_empty());
    assert_eq!(
        path_problems("skills/", "skills/ops/x.md", true, false)[0].message,
        "symbolic links are not allowed under skills/"
    );
    assert_eq!(
        path_problems("skills/", "skills/vendor", false, true)[0].message,
        "submodules are not allowed under skills/"
    );
    assert_eq!(
        path_problems("docs/skills/", "docs/skills/x.md", true, false)[0].message,
        "symbolic links are not allowed under docs/skills/"
    );
    assert!(
        path_problems("skills/", "skills/a:b/x.md", false, false)[0]
            .message
            .contains("':'")
    );
    assert!(
        path_problems("skills/", "skills/a\tb/x.md", false, false)[0]
            .message
            .contains("'\\t'")
    );
    assert!(
        path_problems("skills/", "skills/dot./x.md", false, false)[0]
            .message
            .contains("ends with a dot")
    );
    let long = format!("skills/{}/x.md", "d".repeat(300));
    assert!(
        path_problems("skills/", &long, false, false)[0]
            .message
            .contains("more than 255")
    );
}

#[test]
fn slugs() {
    assert!(is_valid_slug("deploy-safely-2"));
    assert!(!is_valid_slug("Deploy"));
    assert!(!is_valid_slug("-x"));
    assert!(!is_valid_slug("x-"));
    assert!(!is_valid_slug("a_b"));
    assert!(!is_valid_slug(""));
    assert_eq!(suggest_slug("My Skill_v2"), "my-skill-v2");
}

#[test]
fn a_good_skill() {
    let s = validate_skill("skills/ops/deploy-safely.md", GOOD.as_bytes()).unwrap();
    assert_eq!(s.slug, "deploy-safely");
    assert_eq!(s.title, "Deploy safely");
    assert_eq!(s.tags, vec!["deploy", "ci"]);
    assert_eq!(s.status, Status::Draft);
    assert_eq!(s.category.as_deref(), Some("ops"));
    assert_eq!(s.frontmatter["extra"], "kept");
    assert_eq!(s.body, "# Body\n");
}

#[test]
fn status_defaults_to_published() {
    let s = validate_skill("skills/a.md", b"---\ntitle: A\n---\n").unwrap();
    assert_eq!(s.status, Status::Published);
}

#[test]
fn every_problem_is_reported() {
    let text = "---\ntitle: \"\"\nstatus: done\ntags: nope\nslug: other\n---\n";
    let p = validate_skill("skills/Bad_Name.md", text.as_bytes()).unwrap_err();
    let fields: Vec<_> = p
        .iter()
        .map(|p| (p.field.as_deref().unwrap(), p.line.unwrap()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("slug", 1),
            ("title", 2),
            ("tags", 4),
            ("status", 3),
            ("slug", 5)
        ]
    );
    assert_eq!(p[3].message, "`done` is not a valid status");
}

#[test]
fn lowercase_status_gets_a_precise_hint() {
    let p = validate_skill("skills/a.md", b"---\ntitle: A\nstatus: published\n---\n").unwrap_err();
    assert_eq!(
        p[0].hint.as_deref(),
        Some("statuses are upper case: status: PUBLISHED")
    );
}

#[test]
fn missing_title() {
    let p = validate_skill("skills/a.md", b"---\nowner: x\n---\n").unwrap_err();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].field.as_deref(), Some("title"));
    assert_eq!(p[0].message, "required field is missing");
}

#[test]
fn binary_and_encoding() {
    let p = validate_skill("skills/a.md", b"---\ntitle: A\n\0\n---\n").unwrap_err();
    assert!(p[0].message.contains("NUL"));
    // A lone surrogate escape cannot become a Rust (or PostgreSQL) string: refused
    // by the parser with a located message, never stored.
    for text in [
        "---\ntitle: \"\\ud800\"\n---\n",
        "---\ntitle: \"\\udfffb\"\n---\n",
    ] {
        let p = validate_skill("skills/a.md", text.as_bytes()).unwrap_err();
        assert_eq!((p[0].line, p[0].column), (Some(2), Some(8)), "{p:?}");
        assert!(p[0].message.contains("surrogate"), "{p:?}");
        assert!(!p[0].message.contains("line 1"), "{p:?}");
    }
    // Escaped NULs, in a value, deep in a list, in a key: refused with the field.
    for (text, field) in [
        ("---\ntitle: \"a\\0b\"\n---\n", "title"),
        ("---\ntitle: T\ntags: [a, \"\\x00\"]\n---\n", "tags"),
        ("---\ntitle: T\nmeta:\n  \"k\\0\": 1\n---\n", "meta"),
    ] {
        let p = validate_skill("skills/a.md", text.as_bytes()).unwrap_err();
        assert_eq!(p.len(), 1, "{text}: {p:?}");
        assert!(p[0].message.contains("NUL character"), "{p:?}");
        assert_eq!(p[0].field.as_deref(), Some(field));
        assert_eq!(p[0].line, Some(if field == "title" { 2 } else { 3 }));
    }
    assert!(p[0].message.contains("NUL"));
    assert_eq!(p[0].line, Some(3));
    let p = validate_skill("skills/a.md", b"---\ntitle: \xff\n---\n").unwrap_err();
    assert_eq!(p[0].message, "file is not valid UTF-8");
    assert_eq!(p[0].line, Some(2));
}

#[test]
fn too_large() {
    let mut big = b"---\ntitle: A\n---\n".to_vec();
    big.resize(MAX_FILE_BYTES + 1, b'x');
    let p = validate_skill("skills/a.md", &big).unwrap_err();
    assert!(p[0].message.contains("more than the limit"));
}

#[test]
fn no_frontmatter() {
    let p = validate_skill("skills/a.md", b"# Title\n").unwrap_err();
    assert_eq!(p[0].line, Some(1));
    assert!(p[0].message.contains("does not start with a `---`"));
}

#[test]
fn a_missing_frontmatter_is_hinted_in_the_layouts_own_fields() {
    let flat = Rules::builtin();
    let p = flat
        .validate("skills/a.md", b"# No frontmatter\n")
        .unwrap_err();
    assert!(p[0].hint.as_deref().unwrap().contains("`title: ...`"));
    let agent = Rules::load(&AgentConfig).unwrap();
    let p = agent
        .validate("skills/pdf/SKILL.md", b"# No frontmatter\n")
        .unwrap_err();
    let hint = p[0].hint.as_deref().unwrap();
    assert!(
        hint.contains("`name: pdf`, then `description: ...`"),
        "{hint}"
    );
    assert!(!hint.contains("title"), "{hint}");
}

struct AgentConfig;
impl crate::skills::rules::RulesSource for AgentConfig {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok((path == crate::skills::rules::CONFIG_PATH)
            .then(|| b"layout = \"agent-skills\"\n".to_vec()))
    }
}
