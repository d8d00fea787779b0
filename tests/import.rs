//! `skillsd import`: a legacy table shaped like the seed's `Skill` model (Prisma's
//! quoted camelCase names, an enum status, a text[] of tags) becomes one commit per
//! skill through the push path; rows that do not pass are reported and skipped (or the
//! whole import refused with --strict); a folder of an existing collection lands in one
//! commit, or is refused whole, as a push of it would be (tests/advice.rs compares).

use crate::common;

use common::{Git, SKILLSD, Server, assert_contains_all};
use std::process::Command;

const LEGACY: &str = r#"
CREATE SCHEMA legacy;
CREATE TYPE legacy."SkillStatus" AS ENUM ('DRAFT', 'IN_REVIEW', 'PUBLISHED', 'ARCHIVED');
CREATE TABLE legacy."Skill" (
    id          text PRIMARY KEY,
    title       text NOT NULL,
    content     text NOT NULL,
    slug        text,
    description text,
    category    text,
    tags        text[] NOT NULL DEFAULT '{}',
    status      legacy."SkillStatus" NOT NULL DEFAULT 'DRAFT',
    "ownerId"   text,
    "createdAt" timestamp(3) NOT NULL DEFAULT now(),
    "updatedAt" timestamp(3) NOT NULL
);
INSERT INTO legacy."Skill" (id, title, content, slug, description, category, tags, status, "ownerId", "updatedAt") VALUES
 ('c3', 'Review: "the" checklist', E'# Review\n\nRead it twice.\n', NULL, 'How to review', 'eng', '{review,"code: style"}', 'PUBLISHED', 'u-7', '2024-05-03 10:00:00'),
 ('c1', 'Deploy safely', E'# Deploy\n', 'deploy-safely', NULL, 'ops', '{}', 'PUBLISHED', 'u-1', '2024-01-02 08:30:00'),
 ('c2', 'Rotate keys', E'# Keys\n', 'rotate-keys', 'Yearly', 'sec', '{keys}', 'PUBLISHED', NULL, '2024-02-01 12:00:00'),
 ('c4', 'A draft', E'# Draft\n', NULL, NULL, NULL, '{}', 'DRAFT', 'u-1', '2024-06-01 00:00:00'),
 ('c5', 'Deploy safely again', E'# Dup\n', 'deploy-safely', NULL, NULL, '{}', 'PUBLISHED', NULL, '2024-07-01 00:00:00'),
 ('c6', '   ', E'# Untitled\n', NULL, NULL, NULL, '{}', 'PUBLISHED', NULL, '2024-08-01 00:00:00');
"#;

fn import(server: &Server, data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(SKILLSD)
        .arg("import")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--database-url")
        .arg(&server.db_url)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `main` as the database has it: the import runs as another node, and this server's
/// copy only catches up when it next serves the repository.
fn main_of(server: &Server) -> String {
    server.scalar("SELECT target FROM git_refs WHERE repo = 'skills' AND name = 'refs/heads/main'")
}

#[test]
fn a_legacy_table_becomes_one_commit_per_published_skill_through_the_push_path() {
    let server = Server::start();
    server.query(async {
        sqlx::raw_sql(LEGACY).execute(&server.pool).await.unwrap();
    });
    let node = tempfile::tempdir().unwrap();
    let before = main_of(&server);
    let table = ["--from-postgres", &server.db_url, "--table", "legacy.Skill"];

    // A dry run says what it would write, and writes nothing.
    let (ok, stdout, stderr) = import(&server, node.path(), &[&table[..], &["--dry-run"]].concat());
    assert!(ok, "{stdout}{stderr}");
    assert_contains_all(
        &stdout,
        &[
            "would write skills/deploy-safely.md <- row 1 (id c1)",
            "would write skills/review-the-checklist.md <- row 3 (id c3)",
            "    title: \"Review: \\\"the\\\" checklist\"",
            "skipped row 4 (id c5):",
            "slug `deploy-safely` is already used",
            "skipped row 5 (id c6):",
            "would import 3 files, skipped 2",
        ],
    );
    assert!(
        !stdout.contains("A draft"),
        "only PUBLISHED rows by default"
    );
    assert_eq!(main_of(&server), before);

    // --strict: a row that does not pass refuses the whole import.
    let (ok, _, stderr) = import(&server, node.path(), &[&table[..], &["--strict"]].concat());
    assert!(!ok);
    assert!(
        stderr.contains("nothing was imported: 2 rows or files do not pass the rules"),
        "{stderr}"
    );
    assert_eq!(main_of(&server), before);

    let (ok, stdout, stderr) = import(
        &server,
        node.path(),
        &[&table[..], &["--author", "Ada Importer <ada@example.com>"]].concat(),
    );
    assert!(ok, "{stdout}{stderr}");
    assert_contains_all(
        &stdout,
        &[
            "wrote skills/rotate-keys.md <- row 2 (id c2)",
            "imported 3 files, skipped 2; main at",
        ],
    );

    // One commit per skill, oldest change first, dated by updatedAt, by the importer.
    let key = server.add_user("alice", "reader");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let log = git.ok(
        &dir,
        &[
            "log",
            "--format=%an <%ae>|%ad|%s|%cn",
            "--date=iso-strict",
            &format!("{before}..HEAD"),
        ],
    );
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        vec![
            "Ada Importer <ada@example.com>|2024-05-03T10:00:00+00:00|Import Review: \"the\" checklist|Ada Importer",
            "Ada Importer <ada@example.com>|2024-02-01T12:00:00+00:00|Import Rotate keys|Ada Importer",
            "Ada Importer <ada@example.com>|2024-01-02T08:30:00+00:00|Import Deploy safely|Ada Importer",
        ]
    );
    let file = std::fs::read_to_string(dir.join("skills/review-the-checklist.md")).unwrap();
    assert!(
        file.ends_with("---\n# Review\n\nRead it twice.\n"),
        "{file}"
    );

    // In the cache, with their fields; the push is recorded like any other.
    type Row = (String, String, Option<String>, Vec<String>, String);
    let rows: Vec<Row> = server.query(async {
        sqlx::query_as(
            "SELECT slug, title, owner, tags, status FROM skills
             WHERE repo = 'skills' AND frontmatter ? 'legacy-id' ORDER BY slug",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(
        rows,
        vec![
            (
                "deploy-safely".into(),
                "Deploy safely".into(),
                Some("u-1".into()),
                vec![],
                "PUBLISHED".into()
            ),
            (
                "review-the-checklist".into(),
                "Review: \"the\" checklist".into(),
                Some("u-7".into()),
                vec!["review".into(), "code: style".into()],
                "PUBLISHED".into()
            ),
            (
                "rotate-keys".into(),
                "Rotate keys".into(),
                None,
                vec!["keys".into()],
                "PUBLISHED".into()
            ),
        ]
    );
    let pushes: i64 =
        server.scalar("SELECT count(*) FROM pushes WHERE user_name = 'import' AND accepted");
    assert_eq!(pushes, 1);

    // Again: every slug is taken now, nothing is written twice.
    let tip = main_of(&server);
    let (ok, stdout, _) = import(&server, node.path(), &table);
    assert!(ok);
    assert!(stdout.contains("imported 0 files, skipped 5"), "{stdout}");
    assert_eq!(main_of(&server), tip);
}

#[test]
fn a_folder_of_an_existing_collection_lands_in_one_commit_or_not_at_all_as_a_push() {
    let server = Server::start();
    let node = tempfile::tempdir().unwrap();
    let collection = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let p = collection.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "skills/ops/runbook.md",
        "---\ntitle: Runbook\n---\n# Runbook\n",
    );
    write("skills/ops/Bad_Name.md", "---\ntitle: Bad\n---\n");
    write("skills/ops/notes.txt", "assets come along\n");
    let before = main_of(&server);
    // A file that does not pass refuses the whole folder, as it refuses a push: the
    // push's report says what must change, and nothing is written.
    let (ok, stdout, stderr) = import(&server, node.path(), &[collection.path().to_str().unwrap()]);
    assert!(!ok, "{stdout}{stderr}");
    assert_contains_all(
        &stderr,
        &[
            "nothing was imported: the push was refused:",
            "skills/ops/Bad_Name.md:1: slug: file name `Bad_Name.md` is not a valid slug [slug-format]",
            "rename the file to `bad-name.md`",
            "push refused, nothing was written.",
        ],
    );
    assert_eq!(main_of(&server), before);
    // Fixed as the hint says: it lands, in one commit, assets and all.
    std::fs::rename(
        collection.path().join("skills/ops/Bad_Name.md"),
        collection.path().join("skills/ops/bad-name.md"),
    )
    .unwrap();
    let (ok, stdout, stderr) = import(&server, node.path(), &[collection.path().to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 3 files, skipped 0; main at"),
        "{stdout}"
    );
    let after = main_of(&server);
    assert_ne!(after, before);
    let count: i64 = server.scalar(
        "SELECT count(*) FROM skills WHERE repo = 'skills' AND slug IN ('runbook', 'bad-name')",
    );
    assert_eq!(count, 2);
    let key = server.add_user("bob", "reader");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    assert_eq!(
        git.ok(&dir, &["rev-list", "--count", &format!("{before}..HEAD")])
            .trim(),
        "1"
    );
    assert!(dir.join("skills/ops/notes.txt").is_file());
}

/// A folder big enough to be bulk loaded (the repository's first sync, into a table of
/// few rows) leaves nothing for after the command: the full-text index the bulk load
/// builds after its commit is there when `skillsd import` returns, not cut off with
/// the process.
#[test]
fn a_bulk_loaded_folder_has_its_full_text_index_when_the_command_returns() {
    let server = Server::start();
    let node = tempfile::tempdir().unwrap();
    let collection = tempfile::tempdir().unwrap();
    for i in 0..40 {
        let p = collection.path().join(format!("skills/s-{i}.md"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            p,
            format!("---\ntitle: Skill {i}\n---\n# Skill {i}\n\nRotate keys.\n"),
        )
        .unwrap();
    }
    let out = server.cli(&["init", "big", "--empty"]);
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(SKILLSD)
        .arg("import")
        .arg(collection.path())
        .arg("big")
        .arg("--data-dir")
        .arg(node.path())
        .arg("--database-url")
        .arg(&server.db_url)
        .env("SKILLSD_BULK_LOAD_FROM", "20")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("imported 40 files"), "{stdout}");
    let (pending, index, rows, mine): (i64, Option<String>, i64, i64) = server.query(async {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM skill_index_builds),
                    (SELECT pg_get_indexdef(to_regclass('skills_search_idx'))),
                    (SELECT count(*) FROM skills WHERE repo = 'big' AND search IS NOT NULL),
                    (SELECT count(*) FROM pg_class WHERE relname = 'skills_search_idx'
                       AND xmin <> (SELECT xmin FROM skills WHERE repo = 'big' LIMIT 1))",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!((pending, rows), (0, 40));
    assert!(index.is_some_and(|d| d.contains("USING gin (search)")));
    // Built after the rows' transaction: the bulk load did happen.
    assert_eq!(mine, 1);
}

#[test]
fn a_bad_row_skips_only_itself_and_old_dates_make_commits_git_accepts() {
    let server = Server::start();
    server.query(async {
        sqlx::raw_sql(LEGACY).execute(&server.pool).await.unwrap();
        sqlx::raw_sql(
            r#"DELETE FROM legacy."Skill";
               INSERT INTO legacy."Skill" (id, title, content, status, "updatedAt") VALUES
                ('r1', 'README', E'# Read me\n', 'PUBLISHED', '2024-01-01 00:00:00'),
                ('r2', 'Ancient wisdom', E'# Old\n', 'PUBLISHED', '0001-01-01 00:00:00'),
                ('r3', 'Fresh advice', E'# New\n', 'PUBLISHED', '2024-02-02 00:00:00');"#,
        )
        .execute(&server.pool)
        .await
        .unwrap();
    });
    let node = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = import(
        &server,
        node.path(),
        &["--from-postgres", &server.db_url, "--table", "legacy.Skill"],
    );
    assert!(ok, "{stdout}{stderr}");
    assert_contains_all(
        &stdout,
        &[
            "skipped row",
            "README files are documentation",
            "wrote skills/ancient-wisdom.md",
            "wrote skills/fresh-advice.md",
            "imported 2 files, skipped 1",
        ],
    );
    // The commit dated 0001 is dated 1970 instead: git's fsck accepts it.
    let key = server.add_user("alice", "reader");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let log = git.ok(&dir, &["log", "--format=%at|%s", "-2"]);
    assert!(log.contains("0|Import Ancient wisdom"), "{log}");
    git.ok(&dir, &["fsck", "--strict"]);
    server.assert_fsck("skills");
}

#[test]
fn a_large_table_is_streamed_not_held() {
    let server = Server::start();
    // 1,500 rows of 82 KB each: 123 MB of content.
    server.query(async {
        sqlx::raw_sql(
            r#"CREATE TABLE big (id text PRIMARY KEY, title text, content text, status text,
                                 "updatedAt" timestamp);
               INSERT INTO big
               SELECT 'b' || g, 'Big skill ' || g, repeat(md5(g::text) || ' ', 2500),
                      'PUBLISHED', timestamp '2024-01-01' + g * interval '1 minute'
               FROM generate_series(1, 1500) g;"#,
        )
        .execute(&server.pool)
        .await
        .unwrap();
    });
    let node = tempfile::tempdir().unwrap();
    // The importer with `args`: its output (in a file: a pipe nobody reads would
    // fill), and its peak resident memory, sampled until it exits.
    let run = |args: &[&str]| -> (String, u64) {
        let log = node.path().join("import.out");
        let mut child = Command::new(SKILLSD)
            .args([
                "import",
                "--from-postgres",
                &server.db_url,
                "--table",
                "big",
            ])
            .args(args)
            .arg("--data-dir")
            .arg(node.path())
            .arg("--database-url")
            .arg(&server.db_url)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut peak = 0u64;
        while child.try_wait().unwrap().is_none() {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(child.wait().unwrap().success());
        (std::fs::read_to_string(&log).unwrap(), peak)
    };
    // Reading and checking every row (a dry run: no push, whose cache write holds a
    // batch of rows by design) holds a row at a time, not the table.
    let (stdout, peak) = run(&["--dry-run"]);
    assert!(
        stdout.contains("would import 1500 files, skipped 0"),
        "{stdout:.500}"
    );
    eprintln!("dry run over 123 MB of rows: peak RSS {} MiB", peak >> 10);
    assert!(
        peak < 64 * 1024,
        "the importer held {} MiB reading 123 MB of rows",
        peak >> 10
    );
    // The import itself: every row is a blob as it comes, the pack goes through a
    // file, and everything lands.
    let (stdout, _) = run(&[]);
    assert!(
        stdout.contains("imported 1500 files, skipped 0"),
        "{stdout:.500}"
    );
    let count: i64 = server.scalar("SELECT count(*) FROM skills WHERE slug LIKE 'big-skill-%'");
    assert_eq!(count, 1500);
}
