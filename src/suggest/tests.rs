use super::*;

#[test]
fn roots_fold_into_patterns_only_when_nothing_else_matches() {
    let all: BTreeSet<&str> = [
        "plugins",
        "plugins/a",
        "plugins/a/skills",
        "plugins/b",
        "plugins/b/skills",
        "plugins/c",
        "plugins/c/docs",
        "skills",
    ]
    .into_iter()
    .collect();
    let (roots, folded) = fold_roots(&["plugins/a/skills", "plugins/b/skills", "skills"], &all);
    assert_eq!(roots, vec!["plugins/*/skills", "skills"]);
    assert!(folded);
    // `plugins/c/skills` exists but holds no skill: the pattern would take it in.
    let mut more = all.clone();
    more.insert("plugins/c/skills");
    let (roots, _) = fold_roots(&["plugins/a/skills", "plugins/b/skills"], &more);
    assert_eq!(roots, vec!["plugins/a/skills", "plugins/b/skills"]);
    let (roots, folded) = fold_roots(&["", "skills"], &all);
    assert_eq!(roots, vec!["skills", "."]);
    assert!(!folded);
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    dir
}

fn skill(name: &str, extra: &str) -> String {
    format!("---\nname: {name}\ndescription: Does {name}.\n{extra}---\n# {name}\n")
}

#[test]
fn a_plugin_marketplace_with_repeated_names() {
    let dir = tree(&[
        ("README.md", "# Plugins\n"),
        (".claude-plugin/marketplace.json", "{}"),
        ("plugins/alpha/.claude-plugin/plugin.json", "{}"),
        ("plugins/alpha/skills/review/SKILL.md", &skill("review", "")),
        ("plugins/beta/skills/review/SKILL.md", &skill("review", "")),
        (
            "plugins/beta/skills/lint/SKILL.md",
            &skill("lint", "argument-hint: \"[file]\"\n"),
        ),
        ("plugins/beta/skills/lint/ref/SKILL.md", &skill("ref", "")),
    ]);
    let s = suggest(dir.path(), 64).unwrap();
    assert!(s.accepted(), "{}\n{:?}", s.config, s.problems);
    let rules = Rules::load(&Text(&s.config)).unwrap();
    assert_eq!(rules.layout, Layout::AgentSkills);
    assert_eq!(rules.roots(), ["plugins/*/skills/"]);
    assert_eq!(rules.namespaces(), ["plugins/*"]);
    assert!(rules.nested_skills);
    assert_eq!(rules.level(Check::UnknownField), Level::Warning);
    assert_eq!(s.skill_files, 4);
    assert_eq!(s.cached, 4);
    assert!(s.config.contains("# unknown-field ("), "{}", s.config);
    assert!(
        s.config
            .contains("A push of the tree with this file is accepted.")
    );
}

#[test]
fn skills_at_the_top_and_a_skill_md_outside_the_roots() {
    let dir = tree(&[
        ("README.md", "# Skills\n"),
        ("pdf/SKILL.md", &skill("pdf", "")),
        ("docx/SKILL.md", &skill("docx", "")),
        ("SKILL.md", &skill("top", "")),
    ]);
    let s = suggest(dir.path(), 64).unwrap();
    assert!(s.accepted(), "{}\n{:?}", s.config, s.problems);
    let rules = Rules::load(&Text(&s.config)).unwrap();
    assert!(rules.has_dot_root());
    assert_eq!(rules.level(Check::SkillOutsideRoots), Level::Warning);
    assert!(s
            .config
            .contains("# CAUTION: relaxing skill-outside-roots lets the push through with these out of the cache: 1 file (e.g. SKILL.md)"), "{}", s.config);
    assert!(s.config.contains("#   SKILL.md\n"), "{}", s.config);
    assert_eq!((s.skill_files, s.cached), (3, 2));
}

#[test]
fn what_cannot_be_relaxed_is_listed() {
    let dir = tree(&[
        ("skills/a/SKILL.md", "no frontmatter\n"),
        ("skills/b/SKILL.md", &skill("b", "")),
    ]);
    let s = suggest(dir.path(), 64).unwrap();
    assert!(!s.accepted());
    assert!(s.config.contains("A push is still REFUSED"), "{}", s.config);
    assert!(s.config.contains("#   skills/a/SKILL.md: "), "{}", s.config);
}

#[test]
fn credentials_are_listed_with_an_allowlist_to_uncomment_after_checking_them() {
    // As in a public collection's example API response (RULES.md, "Known false
    // positives"): a password in a connection URI at a real host.
    let uri = "postgresql://owner:npg_EwcS9IOgFfb7@ep-raspy-glade.aws.neon.tech/db";
    let dir = tree(&[
        ("skills/a/SKILL.md", &skill("a", "")),
        ("skills/a/references/api.md", &format!("uri: {uri}\n")),
    ]);
    let s = suggest(dir.path(), 64).unwrap();
    assert!(!s.accepted(), "{}", s.config);
    let fp = crate::skills::secrets::fingerprint(
        "postgresql://owner:npg_EwcS9IOgFfb7@ep-raspy-glade.aws.neon.tech",
    );
    assert!(
        s.config.contains(&format!("#     \"{fp}\",\n")),
        "{}",
        s.config
    );
    assert!(!s.config.contains("npg_EwcS9IOgFfb7"), "{}", s.config);
    // Uncommented, the file lets that fixture through, and the push is accepted.
    let allowed = s
        .config
        .replace("# [secrets]", "[secrets]")
        .replace("# allow = [", "allow = [")
        .replace("#     \"sha256:", "    \"sha256:")
        .replace("# ]", "]");
    std::fs::write(dir.path().join(CONFIG_PATH), allowed).unwrap();
    let (_, problems) = crate::check::check_tree(dir.path(), 64).unwrap();
    assert!(!problems.iter().any(|p| p.is_error()), "{problems:?}");
}

#[test]
fn hidden_text_is_not_relaxed_but_the_line_that_would_is_printed_commented_out() {
    let dir = tree(&[
        ("skills/a/SKILL.md", &skill("a", "")),
        (
            "skills/a/references/evasion.md",
            "Split a word: ig\u{200B}nore.\n",
        ),
    ]);
    let s = suggest(dir.path(), 64).unwrap();
    assert!(!s.accepted(), "{}", s.config);
    assert!(s.config.contains("\n[levels]\n"), "{}", s.config);
    assert!(
        s.config.contains("# CAUTION: hidden-text is not relaxed"),
        "{}",
        s.config
    );
    assert!(
        s.config.contains("\n# hidden-text = \"warning\"\n"),
        "{}",
        s.config
    );
    // Uncommented as printed, the push goes through with the finding as a warning.
    let relaxed = s.config.replace(
        "\n# hidden-text = \"warning\"\n",
        "\nhidden-text = \"warning\"\n",
    );
    std::fs::write(dir.path().join(CONFIG_PATH), relaxed).unwrap();
    let (_, problems) = crate::check::check_tree(dir.path(), 64).unwrap();
    assert!(!problems.iter().any(|p| p.is_error()), "{problems:?}");
    assert!(problems.iter().any(|p| p.check == Check::HiddenText));
}

#[test]
fn a_folder_of_skill_files_that_cannot_be_skills_is_left_outside_the_roots() {
    let dir = tree(&[
        ("skills/a/SKILL.md", &skill("a", "")),
        ("skills/b/SKILL.md", &skill("b", "")),
        ("flavors/web/a/SKILL.md", "# an overlay, no frontmatter\n"),
    ]);
    let s = suggest(dir.path(), 64).unwrap();
    assert!(s.accepted(), "{}\n{:?}", s.config, s.problems);
    let rules = Rules::load(&Text(&s.config)).unwrap();
    assert_eq!(rules.roots(), ["skills/"]);
    assert_eq!(rules.level(Check::SkillOutsideRoots), Level::Warning);
    assert!(
        s.config.contains("#   flavors/web/a/SKILL.md\n"),
        "{}",
        s.config
    );
    assert!(
        s.problems
            .iter()
            .any(|p| p.path == "flavors/web/a/SKILL.md" && p.check == Check::SkillOutsideRoots)
    );
    assert_eq!((s.skill_files, s.cached), (3, 2));
}

#[test]
fn flat_markdown() {
    let dir = tree(&[
        ("README.md", "# Prompts\n"),
        ("prompts/deploy.md", "---\ntitle: Deploy\n---\n# Deploy\n"),
        (
            "prompts/ops/rollback.md",
            "---\ndescription: Roll back\n---\n# R\n",
        ),
    ]);
    let s = suggest(dir.path(), 64).unwrap();
    assert!(s.accepted(), "{}\n{:?}", s.config, s.problems);
    let rules = Rules::load(&Text(&s.config)).unwrap();
    assert_eq!(rules.layout, Layout::Flat);
    assert_eq!(rules.roots(), ["prompts/"]);
    assert_eq!(rules.level(Check::MissingField), Level::Warning);
    assert_eq!((s.skill_files, s.cached), (2, 2));
}
