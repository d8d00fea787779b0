use super::*;

/// A bare repository with one commit of `files` (path, content, executable).
fn repository(files: &[(&str, &str, bool)]) -> (tempfile::TempDir, gix::Repository, String) {
    let (dir, repo) = crate::cache::test_repo::repository();
    let mut editor = repo
        .edit_tree(ObjectId::empty_tree(gix::hash::Kind::Sha1))
        .unwrap();
    for (path, content, executable) in files {
        let blob = repo.write_blob(content.as_bytes()).unwrap();
        let kind = if *executable {
            gix::object::tree::EntryKind::BlobExecutable
        } else {
            gix::object::tree::EntryKind::Blob
        };
        editor.upsert(*path, kind, blob).unwrap();
    }
    let tree = editor.write().unwrap().detach();
    drop(editor);
    let commit = repo
        .commit(
            "refs/heads/main",
            "skills",
            tree,
            gix::commit::NO_PARENT_IDS,
        )
        .unwrap()
        .to_string();
    (dir, repo, commit)
}

fn blob_of(content: &str) -> String {
    gix::objs::compute_hash(
        gix::hash::Kind::Sha1,
        gix::object::Kind::Blob,
        content.as_bytes(),
    )
    .unwrap()
    .to_string()
}

const DEPLOY: &str = "---\nname: deploy\ndescription: Deploy it.\n---\n# Deploy\n";
const LONE: &str = "---\nname: lone\ndescription: Alone.\n---\n# Lone\n";

fn row(slug: &str, content: &str, description: &str) -> Row {
    Row {
        slug: slug.into(),
        path: format!("skills/{slug}/SKILL.md"),
        blob_sha: blob_of(content),
        frontmatter: serde_json::json!({"name": slug, "description": description}),
        version: None,
    }
}

#[test]
fn skills_are_read_from_the_commit_and_kept_within_the_memory_budget() {
    let (_dir, repo, commit) = repository(&[
        (
            "skillsd.toml",
            "layout = \"agent-skills\"\nroots = [\"skills\"]\n",
            false,
        ),
        ("skills/deploy/SKILL.md", DEPLOY, false),
        ("skills/deploy/scripts/run.sh", "#!/bin/sh\n", true),
        ("skills/deploy/references/guide.md", "# Guide\n", false),
        ("skills/lone/SKILL.md", LONE, false),
        ("skills/stale/SKILL.md", LONE, false),
    ]);
    let key = Key {
        commit: Some(commit),
        synced_at: None,
    };
    let mut stale = row("stale", DEPLOY, "Stale.");
    stale.path = "skills/stale/SKILL.md".into();
    let rows = [
        row("deploy", DEPLOY, "Deploy it."),
        row("lone", LONE, "Alone."),
        stale,
    ];
    let lean = build(&repo, "skills", &key, &rows, None, 0).unwrap();
    let full = build(&repo, "skills", &key, &rows, None, MEMORY_BUDGET).unwrap();
    assert_eq!(lean.index, full.index, "the same index whatever is kept");
    assert_eq!(lean.skills.keys().collect::<Vec<_>>(), ["deploy", "lone"]);
    assert_eq!(lean.left_out.len(), 1, "the row is not the commit's file");

    let deploy = &lean.skills["deploy"];
    assert_eq!(deploy.kind, Kind::Archive);
    let paths: Vec<&str> = deploy.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["SKILL.md", "references/guide.md", "scripts/run.sh"]);
    assert!(deploy.files.iter().all(|f| f.data.is_none()));
    assert!(deploy.archive.is_none());
    assert!(deploy.file("scripts/run.sh").unwrap().executable);
    // What is not kept is read or made again, to the same digests.
    let made = make_archive(&repo, &deploy.files).unwrap();
    assert_eq!(Some(digest(&made)), deploy.archive_digest);
    assert_eq!(
        full.skills["deploy"].archive.as_deref(),
        Some(made.as_slice())
    );
    for f in &deploy.files {
        assert_eq!(digest(&read_blob(&repo, f.blob).unwrap()), f.digest);
    }
    let lone = &full.skills["lone"];
    assert_eq!(lone.kind, Kind::SkillMd);
    assert_eq!(lone.digest(), digest(LONE.as_bytes()));
    assert_eq!(lone.files[0].data.as_deref(), Some(LONE.as_bytes()));

    // A build of the same content carries the skills over.
    let again = build(&repo, "skills", &key, &rows, Some(&full), MEMORY_BUDGET).unwrap();
    assert!(Arc::ptr_eq(&again.skills["deploy"], &full.skills["deploy"]));
    assert_eq!(again.index, full.index);
    // A changed description is a changed skill.
    let rows = [
        row("deploy", DEPLOY, "Deploy it, now."),
        row("lone", LONE, "Alone."),
    ];
    let changed = build(&repo, "skills", &key, &rows, Some(&full), MEMORY_BUDGET).unwrap();
    assert!(!Arc::ptr_eq(
        &changed.skills["deploy"],
        &full.skills["deploy"]
    ));
    assert!(Arc::ptr_eq(&changed.skills["lone"], &full.skills["lone"]));
}

#[test]
fn one_skill_read_from_its_folder_has_the_members_and_digest_the_index_gives_it() {
    let (_dir, repo, commit) = repository(&[
        (
            "skillsd.toml",
            "layout = \"agent-skills\"\nroots = [\"skills\"]\nnested_skills = true\n",
            false,
        ),
        ("skills/deploy/SKILL.md", DEPLOY, false),
        ("skills/deploy/scripts/run.sh", "#!/bin/sh\n", true),
        // A nested skill: its files are its own, not deploy's.
        ("skills/deploy/lone/SKILL.md", LONE, false),
        ("skills/deploy/lone/notes.md", "# Notes\n", false),
        ("skills/README.md", "# Skills\n", false),
    ]);
    let key = Key {
        commit: Some(commit.clone()),
        synced_at: None,
    };
    let mut lone = row("lone", LONE, "Alone.");
    lone.path = "skills/deploy/lone/SKILL.md".into();
    let built = build(
        &repo,
        "skills",
        &key,
        &[row("deploy", DEPLOY, "Deploy it."), lone],
        None,
        MEMORY_BUDGET,
    )
    .unwrap();
    let id = ObjectId::from_hex(commit.as_bytes()).unwrap();
    let tree = repo.find_commit(id).unwrap().tree().unwrap();
    let rules = Rules::load(&TreeSource { tree: tree.clone() }).unwrap();
    for (name, path) in [
        ("deploy", "skills/deploy/SKILL.md"),
        ("lone", "skills/deploy/lone/SKILL.md"),
    ] {
        let skill = &built.skills[name];
        let members = skill_members(&tree, &rules, path).unwrap().unwrap();
        let listed: Members = skill
            .files
            .iter()
            .map(|f| (f.path.clone(), f.blob, f.executable))
            .collect();
        assert_eq!(members, listed, "{name}");
        let made = artifact(&repo, members).unwrap();
        assert_eq!(made.digest(), skill.digest(), "{name}");
        assert_eq!(made.kind, skill.kind, "{name}");
    }
    assert!(built.skills["deploy"].holds_skills);
    assert!(!built.skills["lone"].holds_skills);
    for not_a_skill in [
        "skills/README.md",
        "skills/nope/SKILL.md",
        "skills/deploy/scripts/run.sh",
    ] {
        assert!(
            skill_members(&tree, &rules, not_a_skill).unwrap().is_none(),
            "{not_a_skill}"
        );
    }
}

#[test]
fn plugin_folders_are_the_roots_parents_with_a_manifest() {
    let (_dir, repo, commit) = repository(&[
        (
            "skillsd.toml",
            "layout = \"agent-skills\"\nroots = [\"skills\", \"plugins/*/skills\"]\n",
            false,
        ),
        ("skills/lone/SKILL.md", LONE, false),
        (
            "plugins/kit/.claude-plugin/plugin.json",
            "{\"name\": \"kit\"}",
            false,
        ),
        ("plugins/kit/skills/deploy/SKILL.md", DEPLOY, false),
        ("plugins/kit/skills/stale/SKILL.md", LONE, false),
        ("plugins/bare/skills/other/SKILL.md", LONE, false),
        ("plugins/bad/.codex-plugin/plugin.json", "[1]", false),
        ("plugins/bad/skills/x/SKILL.md", LONE, false),
    ]);
    let key = Key {
        commit: Some(commit),
        synced_at: None,
    };
    let mut deploy = row("deploy", DEPLOY, "Deploy it.");
    deploy.path = "plugins/kit/skills/deploy/SKILL.md".into();
    let built = build(
        &repo,
        "skills",
        &key,
        &[deploy, row("lone", LONE, "Alone.")],
        None,
        0,
    )
    .unwrap();
    let folders: Vec<(&str, Vec<String>, usize, bool)> = built
        .plugins
        .iter()
        .map(|p| {
            (
                p.folder.as_str(),
                p.skills.clone(),
                p.unserved,
                p.manifest.is_ok(),
            )
        })
        .collect();
    assert_eq!(
        folders,
        [
            ("plugins/bad", vec![], 1, false),
            ("plugins/kit", vec!["deploy".to_string()], 1, true),
        ]
    );
    assert_eq!(built.plugins[1].manifest.as_ref().unwrap()["name"], "kit");
}

#[test]
fn digests_are_sha256_in_lower_hex() {
    // The RFC's worked example: `# Hello\n`.
    assert_eq!(
        digest(b"# Hello\n"),
        "sha256:90f8ec5669cd34183b9b0fdf8b94f5efb4c3672876330f4aa76088c2b4ad17be"
    );
}

#[test]
fn an_empty_index_names_its_schema_and_version() {
    let bytes = render_index(&BTreeMap::new());
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"$schema": SCHEMA, "version": "0.2.0", "skills": []})
    );
}
