//! Advice that can be applied as printed, through real git, OpenSSH and the server: a
//! refusal sums up first what no setting relaxes, repeated problems are grouped with
//! counts, relaxing a check that would store nothing is never offered without saying
//! so (the fix that stores the skills is named instead, roots as one pattern), a
//! symbolic link is called one, and renames are proposed only to free, valid names.
//! `skillsd import DIR` is exactly a push of that folder: same tree, same cache, same
//! refusal; `--dry-run` is `skillsd check`'s report; one progress bar, on a terminal.

use crate::common;

use common::{Git, SKILLSD, Server, assert_contains_all};
use std::path::Path;
use std::process::Command;

fn agent_skill(name: &str) -> String {
    format!("---\nname: {name}\ndescription: Does {name}.\n---\n# {name}\n")
}

/// A clone of the server's `skills` repository with the template's flat skills gone
/// and `config` as its skillsd.toml (not committed yet).
fn clone_for_adoption(server: &Server, git: &Git, config: &str) -> std::path::PathBuf {
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.ok(
        &dir,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    std::fs::write(dir.join("skillsd.toml"), config).unwrap();
    dir
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn main_of(server: &Server, repo: &str) -> Option<String> {
    server.query(async {
        sqlx::query_scalar(
            "SELECT target FROM git_refs WHERE repo = $1 AND name = 'refs/heads/main'",
        )
        .bind(repo)
        .fetch_optional(&server.pool)
        .await
        .unwrap()
    })
}

#[test]
fn a_refused_push_sums_up_what_cannot_be_relaxed_first_and_groups_the_rest() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    for bin in [common::GIT_OLD, common::GIT_NEW] {
        let git = Git::new(bin, &key, &server);
        let dir = clone_for_adoption(
            &server,
            &git,
            "layout = \"agent-skills\"\nroots = [\"skills\"]\n",
        );
        // Eight skills without a description: a relaxable check, grouped.
        for i in 0..8 {
            write(
                &dir,
                &format!("skills/s{i}/SKILL.md"),
                &format!("---\nname: s{i}\n---\n# s{i}\n"),
            );
        }
        // A symbolic link for a SKILL.md: protected, and called what it is.
        write(&dir, "shared/beta.md", &agent_skill("beta"));
        std::fs::create_dir_all(dir.join("skills/beta")).unwrap();
        std::os::unix::fs::symlink("../../shared/beta.md", dir.join("skills/beta/SKILL.md"))
            .unwrap();
        write(&dir, "skills/beta/notes.md", "# Notes\n");
        // Six plugins' skills outside the roots: one pattern stores them all.
        for i in 0..6 {
            write(
                &dir,
                &format!("plugins/p{i}/skills/t{i}/SKILL.md"),
                &agent_skill(&format!("t{i}")),
            );
        }
        git.ok(&dir, &["add", "-A"]);
        git.ok(&dir, &["commit", "-q", "-m", "adopt a collection"]);
        let before = main_of(&server, "skills");
        let stderr = git.fails(&dir, &["push", "origin", "main"]);
        assert_eq!(main_of(&server, "skills"), before, "nothing was written");

        // What no setting relaxes comes first, with why.
        let summary = stderr
            .find("remote: 1 problem below cannot be relaxed in skillsd.toml: fix it in the files.")
            .unwrap_or_else(|| panic!("{stderr}"));
        let first_error = stderr.find("remote: error:").unwrap();
        assert!(summary < first_error, "{stderr}");
        assert_contains_all(
            &stderr,
            &[
                "remote:   symlink (1): a symbolic link under a root; why it cannot be relaxed: a link may point outside its skill or the repository",
                // A symbolic link is called one, with the command that fixes it.
                "skills/beta/SKILL.md: SKILL.md is a symbolic link, and symbolic links are not allowed under skills/, so `skills/beta/` is not a skill [symlink]",
                "hint: commit the file itself in place of the link: `cp --remove-destination \"$(readlink -f skills/beta/SKILL.md)\" skills/beta/SKILL.md`",
                // Grouped: three shown, then the count, once.
                "remote: … and 5 more `missing-field` errors (8 in all)",
                "remote: … and 3 more `skill-outside-roots` errors (6 in all)",
                "remote: `skillsd check --all` in your clone lists every problem.",
                "15 errors in 15 files; push refused, nothing was written.",
                // The note starts from the suggested config.
                "remote: Adopting an existing collection? `skillsd check --suggest-config`",
                // Relaxing what stores nothing is not offered without saying so; the fix
                // that stores them is one pattern.
                "remote: These keep skills out of the cache: relaxing them would let the push through but store none of those skills. To store them:",
                "remote:   skill-outside-roots (6): add \"plugins/*/skills\" to `roots` in skillsd.toml",
                "remote: These checks can be relaxed while you fix the files: missing-field (8).",
                "add \"plugins/*/skills\" to `roots` in skillsd.toml, or move the skill",
            ],
        );
        assert!(!stderr.contains("has no SKILL.md"), "{stderr}");
        assert!(
            !stderr.contains("skill-outside-roots = \"warning\""),
            "{stderr}"
        );
        assert!(!stderr.contains("add \"plugins/p0/skills\""), "{stderr}");
        assert_eq!(stderr.matches("[missing-field]").count(), 3, "{stderr}");
        assert_eq!(
            stderr.matches("[skill-outside-roots]").count(),
            3,
            "{stderr}"
        );

        // `skillsd check` in the clone: the same summary and grouping; `--all` lists
        // every problem.
        let out = Command::new(SKILLSD)
            .arg("check")
            .arg(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.starts_with("1 problem below cannot be relaxed in skillsd.toml"),
            "{stdout}"
        );
        assert_contains_all(
            &stdout,
            &[
                "… and 5 more `missing-field` errors (8 in all)",
                "`skillsd check --all` lists every problem.",
                "skill-outside-roots (6): add \"plugins/*/skills\" to `roots`",
            ],
        );
        let out = Command::new(SKILLSD)
            .args(["check", "--all"])
            .arg(&dir)
            .output()
            .unwrap();
        let all = String::from_utf8_lossy(&out.stdout);
        assert_eq!(all.matches("[missing-field]").count(), 8, "{all}");
        assert!(!all.contains("more `missing-field`"), "{all}");

        // Applied as printed: the pattern stores the plugins' skills.
        std::fs::write(
            dir.join("skillsd.toml"),
            "layout = \"agent-skills\"\nroots = [\"skills\", \"plugins/*/skills\"]\n",
        )
        .unwrap();
        let out = Command::new(SKILLSD)
            .arg("check")
            .arg(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("skill-outside-roots"), "{stdout}");
        // Reset for the other git.
        drop(dir);
    }
}

#[test]
fn renames_are_proposed_only_to_free_valid_names_and_hints_use_the_layouts_fields() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = clone_for_adoption(
        &server,
        &git,
        "layout = \"agent-skills\"\nroots = [\"plugins/*\"]\n",
    );
    // `_lib` would be `lib`, which is taken; `pdf-tools` calls itself `pdf`, also
    // taken; a plugin's manifest folder is no skill and cannot be made one.
    write(&dir, "plugins/docs/lib/SKILL.md", &agent_skill("lib"));
    write(&dir, "plugins/docs/_lib/SKILL.md", &agent_skill("lib"));
    write(&dir, "plugins/docs/pdf/SKILL.md", &agent_skill("pdf"));
    write(&dir, "plugins/docs/pdf-tools/SKILL.md", &agent_skill("pdf"));
    write(
        &dir,
        "plugins/docs/.claude-plugin/plugin.json",
        "{\"name\": \"docs\"}\n",
    );
    // No frontmatter: hinted with this layout's fields, not the flat one's `title`.
    write(
        &dir,
        "plugins/docs/bare/SKILL.md",
        "# Bare\n\nNo frontmatter.\n",
    );
    git.ok(&dir, &["add", "-A"]);
    git.ok(&dir, &["commit", "-q", "-m", "a plugin"]);
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert_contains_all(
        &stderr,
        &[
            "plugins/docs/_lib/SKILL.md:1: name: folder name `_lib` may contain only lowercase letters a-z, digits and hyphens [slug-format]",
            "hint: a skill's folder is its name: rename the folder to `lib-2` and set `name: lib-2` (`lib` is taken)",
            "plugins/docs/pdf-tools/SKILL.md:2:1: name: `pdf` does not match the folder name `pdf-tools` [name-mismatch]",
            "hint: the name is the folder's name: set `name: pdf-tools` (a folder `pdf` is there already)",
            "plugins/docs/.claude-plugin/SKILL.md: skill folder `plugins/docs/.claude-plugin/` has no SKILL.md [missing-skill-file]",
            "hint: `.claude-plugin` is not a valid skill name, so this folder cannot be a skill",
            "hint: start the file with a line `---`, then `name: bare`, then `description: ...` (what the skill does and when to use it), then a closing `---` line",
        ],
    );
    assert!(!stderr.contains("`title: ...`"), "{stderr}");
    assert!(!stderr.contains("rename the folder to `lib`"), "{stderr}");
    assert!(!stderr.contains("rename the folder to `pdf`"), "{stderr}");
    assert!(!stderr.contains("name: .claude-plugin"), "{stderr}");
    assert!(!stderr.contains("name: _lib"), "{stderr}");
}

// ---- `skillsd import DIR` is a push of that folder ----

fn import(server: &Server, node: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(SKILLSD)
        .arg("import")
        .args(args)
        .arg("--data-dir")
        .arg(node)
        .arg("--database-url")
        .arg(&server.db_url)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A collection with what import used to lose: an executable script, a binary asset,
/// a symbolic link (outside the roots, where a push keeps it).
fn collection(dir: &Path) {
    write(
        dir,
        "skillsd.toml",
        "layout = \"agent-skills\"\nroots = [\"skills\"]\n",
    );
    write(dir, "skills/pdf/SKILL.md", &agent_skill("pdf"));
    write(dir, "skills/pdf/scripts/fill.sh", "#!/bin/sh\necho fill\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("skills/pdf/scripts/fill.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("skills/pdf/assets")).unwrap();
    std::fs::write(
        dir.join("skills/pdf/assets/logo.png"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\xff\xfe",
    )
    .unwrap();
    write(dir, "skills/docx/SKILL.md", &agent_skill("docx"));
    write(dir, "docs/guide.md", "# Guide\n");
    std::os::unix::fs::symlink("docs/guide.md", dir.join("GUIDE.md")).unwrap();
}

type Row = (String, String, String);

fn cached(server: &Server, repo: &str) -> Vec<Row> {
    server.query(async {
        sqlx::query_as::<_, Row>(
            "SELECT slug, path, blob_sha FROM skills WHERE repo = $1 ORDER BY path",
        )
        .bind(repo)
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

/// Pushes the files of `from` (as they are: `cp -a`) into an empty repository `repo`.
fn push_folder(server: &Server, git: &Git, repo: &str, from: &Path) -> (bool, String) {
    let dir = git.clone(&server.url(&format!("{repo}.git")), &[]);
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    git.ok(&dir, &["add", "-A"]);
    git.ok(&dir, &["commit", "-q", "-m", "the collection"]);
    let (ok, _, stderr) = git.run(&dir, &["push", "origin", "HEAD:main"]);
    (ok, stderr)
}

fn tree_of(server: &Server, git: &Git, repo: &str) -> String {
    let dir = git.clone(&server.url(&format!("{repo}.git")), &[]);
    git.ok(&dir, &["ls-tree", "-r", "HEAD"])
}

#[test]
fn a_folder_imported_and_the_same_folder_pushed_give_the_same_tree_and_cache() {
    let server = Server::start();
    for repo in ["imported", "pushed"] {
        let out = server.cli(&["init", repo, "--empty"]);
        assert!(out.status.success(), "{out:?}");
    }
    let key = server.add_user("alice", "admin");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let folder = tempfile::tempdir().unwrap();
    collection(folder.path());
    let node = tempfile::tempdir().unwrap();

    // The dry run is `skillsd check --all`'s report, to the byte.
    let (code, dry, stderr) = import(
        &server,
        node.path(),
        &["--dry-run", folder.path().to_str().unwrap(), "imported"],
    );
    assert_eq!(code, Some(0), "{dry}{stderr}");
    let check = Command::new(SKILLSD)
        .args(["check", "--all"])
        .arg(folder.path())
        .output()
        .unwrap();
    assert_eq!(dry, String::from_utf8_lossy(&check.stdout), "{stderr}");
    assert_eq!(dry, "2 skills checked, no problems\n");
    assert_eq!(
        main_of(&server, "imported"),
        None,
        "a dry run writes nothing"
    );

    let (code, stdout, stderr) = import(
        &server,
        node.path(),
        &[folder.path().to_str().unwrap(), "imported"],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 7 files (1 executable, 1 symbolic link), skipped 0; main at"),
        "{stdout}"
    );
    // No progress lines without a terminal, no file-by-file listing.
    assert!(!stdout.contains("Checking skills"), "{stdout}");
    assert!(!stderr.contains("Importing"), "{stderr}");
    assert!(!stdout.contains("wrote "), "{stdout}");

    let (ok, pushed) = push_folder(&server, &git, "pushed", folder.path());
    assert!(ok, "{pushed}");

    // The same tree: modes (100755, 120000) and bytes (the binary asset) kept.
    let imported_tree = tree_of(&server, &git, "imported");
    assert_eq!(imported_tree, tree_of(&server, &git, "pushed"));
    assert_contains_all(
        &imported_tree,
        &[
            "100755 blob",
            "\tskills/pdf/scripts/fill.sh",
            "120000 blob",
            "\tGUIDE.md",
            "\tskills/pdf/assets/logo.png",
        ],
    );
    // The same cache.
    let rows = cached(&server, "imported");
    assert_eq!(rows.len(), 2);
    let strip = |rows: Vec<Row>| -> Vec<(String, String, String)> { rows };
    assert_eq!(strip(rows), strip(cached(&server, "pushed")));
    // And the bytes of the binary asset as they were.
    let clone = git.clone(&server.url("imported.git"), &[]);
    assert_eq!(
        std::fs::read(clone.join("skills/pdf/assets/logo.png")).unwrap(),
        std::fs::read(folder.path().join("skills/pdf/assets/logo.png")).unwrap()
    );
}

#[test]
fn a_folder_a_push_refuses_is_refused_by_import_too_in_the_same_words() {
    let server = Server::start();
    for repo in ["imported", "pushed"] {
        assert!(server.cli(&["init", repo, "--empty"]).status.success());
    }
    let key = server.add_user("alice", "admin");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let folder = tempfile::tempdir().unwrap();
    collection(folder.path());
    // A symbolic link for a SKILL.md (import used to drop it without a word), and a
    // skill that does not pass (import used to leave it out and store the rest).
    write(folder.path(), "shared/beta.md", &agent_skill("beta"));
    std::fs::create_dir_all(folder.path().join("skills/beta")).unwrap();
    std::os::unix::fs::symlink(
        "../../shared/beta.md",
        folder.path().join("skills/beta/SKILL.md"),
    )
    .unwrap();
    write(
        folder.path(),
        "skills/gamma/SKILL.md",
        "---\nname: gamma\n---\n# No description\n",
    );
    let node = tempfile::tempdir().unwrap();
    let dir_arg = folder.path().to_str().unwrap();

    let (code, dry, _) = import(&server, node.path(), &["--dry-run", dir_arg, "imported"]);
    assert_eq!(code, Some(1), "{dry}");
    let check = Command::new(SKILLSD)
        .args(["check", "--all"])
        .arg(folder.path())
        .output()
        .unwrap();
    assert_eq!(dry, String::from_utf8_lossy(&check.stdout));

    let (code, stdout, stderr) = import(&server, node.path(), &[dir_arg, "imported"]);
    assert_ne!(code, Some(0), "{stdout}{stderr}");
    let (ok, pushed) = push_folder(&server, &git, "pushed", folder.path());
    assert!(!ok, "{pushed}");
    // Every problem line the push showed, the import shows.
    let lines: Vec<&str> = pushed
        .lines()
        .filter_map(|l| l.strip_prefix("remote:   "))
        .map(str::trim_end)
        .filter(|l| l.starts_with("skills/"))
        .collect();
    assert!(lines.len() >= 2, "{pushed}");
    for line in &lines {
        assert!(stderr.contains(line), "import lacks `{line}`:\n{stderr}");
    }
    assert_contains_all(
        &stderr,
        &[
            "skills/beta/SKILL.md: SKILL.md is a symbolic link",
            "skills/gamma/SKILL.md:2: description: required field is missing [missing-field]",
            "push refused, nothing was written.",
            &format!("`skillsd import --dry-run {dir_arg}` lists every problem, writing nothing."),
        ],
    );
    assert!(!stderr.contains("in your clone"), "{stderr}");
    assert_eq!(main_of(&server, "imported"), None);
    assert_eq!(main_of(&server, "pushed"), None);
    assert!(cached(&server, "imported").is_empty());
}

#[test]
fn an_import_shows_one_progress_bar_on_a_terminal_and_none_elsewhere() {
    let server = Server::start();
    assert!(server.cli(&["init", "big", "--empty"]).status.success());
    let folder = tempfile::tempdir().unwrap();
    write(
        folder.path(),
        "skillsd.toml",
        "layout = \"agent-skills\"\nroots = [\"skills\"]\n",
    );
    write(folder.path(), "skills/ref/SKILL.md", &agent_skill("ref"));
    // Enough files for the push's own meter (1,000 and more) to speak.
    for i in 0..1100 {
        write(
            folder.path(),
            &format!("skills/ref/pages/p{i}.md"),
            &format!("# Page {i}\n"),
        );
    }
    let node = tempfile::tempdir().unwrap();
    let line = format!(
        "SKILLSD_LOG=warn {SKILLSD} import --data-dir {} --database-url '{}' {} big",
        node.path().display(),
        server.db_url,
        folder.path().display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("Importing"), "{shown}");
    assert!(shown.contains("1102/1102 files"), "{shown}");
    assert!(!shown.contains("0/0 files"), "{shown}");
    assert!(!shown.contains("Checking skills"), "{shown}");
    assert!(
        shown.contains("imported 1102 files, skipped 0; main at"),
        "{shown}"
    );
    // Its lines: the bar redraws in place (carriage returns), it does not scroll.
    let lines = shown.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines < 10, "{lines} lines:\n{shown}");
}
