//! The cache: reconcile repairs any drift, the watermark makes a late sync catch up,
//! NOTIFY is sent with each change, and the health view adds up.

use crate::common;

use common::{Git, Server, skill};
use sqlx::Row;
use std::collections::BTreeMap;

/// path → blob of every skill on the server's main, from `git ls-tree`.
fn tree_skills(server: &Server) -> BTreeMap<String, String> {
    let out = std::process::Command::new(common::GIT_NEW)
        .arg("--git-dir")
        .arg(server.repo_path("skills"))
        .args(["ls-tree", "-r", "main", "skills/"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (meta, path) = l.split_once('\t')?;
            let blob = meta.split_whitespace().nth(2)?;
            (path.ends_with(".md") && !path.ends_with("README.md"))
                .then(|| (path.to_string(), blob.to_string()))
        })
        .collect()
}

fn cache_skills(server: &Server) -> BTreeMap<String, String> {
    server.query(async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT path, blob_sha FROM skills WHERE repo = 'skills'",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
    })
}

/// Runs `skillsd reconcile skills`, which must succeed; its output.
fn reconcile(server: &Server) -> String {
    let out = server.cli(&["reconcile", "skills"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cache row with no file behind it.
fn insert_orphan(server: &Server) {
    exec(
        server,
        "INSERT INTO skills (repo, slug, path, title, blob_sha, git_commit_sha)
         VALUES ('skills', 'ghost', 'skills/x/ghost.md', 'Ghost', 'abc', 'abc')",
    );
}

fn exec(server: &Server, sql: &str) {
    server.query(async {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&server.pool)
            .await
            .unwrap();
    });
}

#[test]
fn reconcile_repairs_missing_stale_and_orphan_rows() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.commit_files(
        &dir,
        &[
            ("skills/a/one.md", &skill("One", "")),
            ("skills/a/two.md", &skill("Two", "")),
            ("skills/b/three.md", &skill("Three", "")),
        ],
        "three skills",
    );
    git.ok(&dir, &["push", "origin", "main"]);
    assert_eq!(cache_skills(&server), tree_skills(&server));
    let two_id: uuid::Uuid = server.scalar("SELECT id FROM skills WHERE slug = 'two'");

    // Drift: a row lost, a row stale, an orphan row.
    exec(&server, "DELETE FROM skills WHERE slug = 'one'");
    exec(
        &server,
        "UPDATE skills SET title = 'wrong', blob_sha = 'deadbeef' WHERE slug = 'two'",
    );
    insert_orphan(&server);
    assert_ne!(cache_skills(&server), tree_skills(&server));
    let log_before = server.last_log_id();

    let stdout = reconcile(&server);
    assert!(
        stdout.contains("1 created, 1 refreshed, 1 deleted"),
        "{stdout}"
    );
    assert_eq!(cache_skills(&server), tree_skills(&server));
    let (title, id): (String, uuid::Uuid) = server.query(async {
        sqlx::query_as("SELECT title, id FROM skills WHERE slug = 'two'")
            .fetch_one(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(title, "Two");
    assert_eq!(id, two_id, "a refresh keeps the id");
    let log: Vec<(String, String, String)> = server.query(async {
        sqlx::query_as(
            "SELECT operation, slug, synced_by FROM skill_sync_log WHERE id > $1 ORDER BY operation",
        )
        .bind(log_before)
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(
        log,
        vec![
            ("create".into(), "one".into(), "system".into()),
            ("delete".into(), "ghost".into(), "system".into()),
            ("refresh".into(), "two".into(), "system".into()),
        ]
    );

    // A second reconcile finds nothing to do.
    let out = server.cli(&["reconcile"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 created, 0 refreshed, 0 deleted"));
}

#[test]
fn a_cache_left_behind_catches_up_with_the_next_push() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let template = git.head(&dir);
    git.commit_files(&dir, &[("skills/a/early.md", &skill("Early", ""))], "early");
    git.ok(&dir, &["push", "origin", "main"]);
    // Simulate a sync that never happened: the cache is back at the template commit.
    exec(&server, "DELETE FROM skills WHERE slug = 'early'");
    exec(
        &server,
        &format!("UPDATE sync_state SET commit_sha = '{template}'"),
    );
    // The next push brings the cache to the tip, including the earlier change.
    let tip = git.commit_files(&dir, &[("skills/a/late.md", &skill("Late", ""))], "late");
    git.ok(&dir, &["push", "origin", "main"]);
    assert_eq!(cache_skills(&server), tree_skills(&server));
    let watermark: String = server
        .scalar("SELECT commit_sha FROM sync_state WHERE repo = 'skills' AND branch = 'main'");
    assert_eq!(watermark, tip);
}

/// The next notification `listener` receives (within 10 s).
fn next_notification(
    server: &Server,
    listener: &mut sqlx::postgres::PgListener,
) -> sqlx::postgres::PgNotification {
    server.query(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
            .await
            .expect("a notification arrives")
            .unwrap()
    })
}

#[test]
fn a_push_notifies_listeners_in_the_same_transaction() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let mut listener = server.query(async {
        let mut l = sqlx::postgres::PgListener::connect(&server.db_url)
            .await
            .unwrap();
        l.listen("skills_changed").await.unwrap();
        l
    });
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let tip = git.commit_files(
        &dir,
        &[("skills/n/notified.md", &skill("Notified", ""))],
        "n",
    );
    git.ok(&dir, &["push", "origin", "main"]);
    let note = next_notification(&server, &mut listener);
    let payload: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({
            "repo": "skills", "branch": "main", "commit": tip,
            "created": 1, "updated": 0, "renamed": 0, "deleted": 0, "failed": 0,
            "slugs": ["notified"],
        })
    );
    // By the time the notification is seen, the row is there.
    let n: i64 = server.scalar("SELECT count(*) FROM skills WHERE slug = 'notified'");
    assert_eq!(n, 1);
    // A list of slugs that would not fit in a notification (PostgreSQL's limit is 8,000
    // bytes) is left out: `slugs` is null, the counts stay.
    let many: Vec<(String, String)> = (0..400)
        .map(|i| {
            (
                format!("skills/n/a-rather-long-notified-skill-name-{i}.md"),
                skill(&format!("Many {i}"), ""),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = many.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let tip = git.commit_files(&dir, &files, "many");
    git.ok(&dir, &["push", "origin", "main"]);
    let note = next_notification(&server, &mut listener);
    assert!(note.payload().len() < 8000);
    let payload: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({
            "repo": "skills", "branch": "main", "commit": tip,
            "created": 400, "updated": 0, "renamed": 0, "deleted": 0, "failed": 0,
            "slugs": null,
        })
    );
    // The listener must be dropped inside the runtime (it returns its connection there).
    server.query(async move { drop(listener) });
}

#[test]
fn sync_health_view_adds_up() {
    let server = Server::start();
    let row = server.query(async {
        sqlx::query("SELECT synced, pending, failed, unknown, total, recent_failures, healthy FROM skill_sync_health")
            .fetch_one(&server.pool)
            .await
            .unwrap()
    });
    // The template's two skills, synced at start.
    assert_eq!(row.get::<i64, _>("synced"), 2);
    assert_eq!(row.get::<i64, _>("pending"), 0);
    assert_eq!(row.get::<i64, _>("failed"), 0);
    assert_eq!(row.get::<i64, _>("unknown"), 0);
    assert_eq!(row.get::<i64, _>("total"), 2);
    assert_eq!(row.get::<i64, _>("recent_failures"), 0);
    assert!(row.get::<bool, _>("healthy"));
    exec(
        &server,
        "UPDATE skills SET sync_status = 'failed' WHERE slug = 'write-a-skill'",
    );
    let (failed, healthy): (i64, bool) = server.query(async {
        sqlx::query_as("SELECT failed, healthy FROM skill_sync_health")
            .fetch_one(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!((failed, healthy), (1, false));
}

/// The cache is written in the push's own transaction: when that write fails, the
/// push is refused with the database's reason and nothing of it exists anywhere — no
/// ref, no pack, no row, no log entry. Once the database accepts the write again, the
/// same push goes through.
#[test]
fn a_failed_cache_write_refuses_the_push_and_writes_nothing() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    // Inject a failure into every write of the skills table while the switch is on.
    exec(&server, "CREATE TABLE fail_switch (on_ boolean)");
    exec(
        &server,
        "CREATE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF EXISTS (SELECT 1 FROM fail_switch) THEN RAISE EXCEPTION 'injected failure'; END IF;
           RETURN NEW;
         END $$",
    );
    exec(
        &server,
        "CREATE TRIGGER fail_writes BEFORE INSERT OR UPDATE OF title, blob_sha ON skills
         FOR EACH ROW EXECUTE FUNCTION injected_failure()",
    );
    exec(&server, "INSERT INTO fail_switch VALUES (true)");

    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let old = git.head(&dir);
    let files = server.object_files("skills");
    let before = cache_skills(&server);
    let log_rows = server.last_log_id();
    let packs = server.count("SELECT count(*) FROM git_packs");
    let tip = git.commit_files(
        &dir,
        &[
            ("skills/r/retried.md", &skill("Retried", "")),
            (
                "skills/git/commit-messages.md",
                &skill("Commit messages, edited", ""),
            ),
        ],
        "while the cache is failing",
    );
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    assert!(
        stderr.contains("error: the push could not be stored, nothing was written"),
        "{stderr}"
    );
    assert!(stderr.contains("injected failure"), "{stderr}");
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(old.as_str())
    );
    assert_eq!(server.object_files("skills"), files);
    assert_eq!(server.count("SELECT count(*) FROM git_packs"), packs);
    assert_eq!(
        server.count(&format!(
            "SELECT count(*) FROM git_refs WHERE target = '{tip}'"
        )),
        0
    );
    assert_eq!(cache_skills(&server), before);
    assert_eq!(server.last_log_id(), log_rows, "no sync-log row");
    assert_eq!(
        server.count("SELECT count(*) FROM pushes WHERE accepted"),
        0
    );
    // The refused push is on record, with its reason.
    assert_eq!(
        server.count("SELECT count(*) FROM pushes WHERE NOT accepted AND refs::text LIKE '%injected failure%'"),
        1
    );

    // The database recovers: the same push lands, refs and cache together.
    exec(&server, "DELETE FROM fail_switch");
    git.ok(&dir, &["push", "origin", "main"]);
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(tip.as_str())
    );
    assert_eq!(cache_skills(&server), tree_skills(&server));
    let by: Vec<String> = server.query(async {
        sqlx::query_scalar("SELECT synced_by FROM skill_sync_log WHERE status = 'success' AND path = 'skills/r/retried.md'")
            .fetch_all(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(by, vec!["alice"]);
    server.assert_fsck("skills");
}

#[test]
fn full_text_search_finds_skills_by_title_tags_and_body() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.commit_files(
        &dir,
        &[
            ("skills/s/rotate-keys.md", "---\ntitle: Rotate signing keys\ntags: [security, pgp]\n---\nUse the vault CLI.\n"),
            ("skills/s/tune-postgres.md", "---\ntitle: Tune Postgres\ntags: [database]\n---\nRaise work_mem carefully; vault not needed.\n"),
        ],
        "two",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let search = |q: &str| -> Vec<String> {
        server.query(async {
            sqlx::query_scalar(
                "SELECT slug FROM skills, websearch_to_tsquery('simple', $1) q
                 WHERE search @@ q ORDER BY ts_rank(search, q) DESC, slug",
            )
            .bind(q)
            .fetch_all(&server.pool)
            .await
            .unwrap()
        })
    };
    assert_eq!(search("rotate"), vec!["rotate-keys"]);
    assert_eq!(search("pgp"), vec!["rotate-keys"]);
    assert_eq!(search("work_mem"), vec!["tune-postgres"]);
    // Title matches rank above body matches.
    assert_eq!(search("vault"), vec!["rotate-keys", "tune-postgres"]);
    assert_eq!(search("postgres"), vec!["tune-postgres"]);
}

#[test]
fn a_big_reconcile_streams_batches_and_fills_the_vectors() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    // More than one write batch (2,000 rows), read on every core; every third body
    // has a URL (its vector is PostgreSQL's to compute, after the rows).
    let n = 4_100;
    let files: Vec<(String, String)> = (0..n)
        .map(|i| {
            let body = if i % 3 == 0 {
                format!("See https://example.com/{i}.")
            } else {
                format!("Plain words, number {i}.")
            };
            (
                format!("skills/r{}/many-{i:05}.md", i % 7),
                format!("---\ntitle: Many {i}\n---\n\n{body}\n"),
            )
        })
        .collect();
    git.commit_files(&dir, &files, "many");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    assert_eq!(cache_skills(&server), tree_skills(&server));

    // Rebuild from nothing but one row, which is stale, and one orphan.
    exec(&server, "DELETE FROM skills WHERE slug <> 'many-00001'");
    exec(
        &server,
        "UPDATE skills SET blob_sha = 'deadbeef' WHERE slug = 'many-00001'",
    );
    insert_orphan(&server);
    let log_before = server.last_log_id();
    let stdout = reconcile(&server);
    // The template's two skills and 4,099 generated ones are created.
    assert!(
        stdout.contains("4101 created, 1 refreshed, 1 deleted"),
        "{stdout}"
    );
    assert!(stdout.contains("search vectors: all filled"), "{stdout}");
    assert_eq!(cache_skills(&server), tree_skills(&server));
    let (pending, logged): (i64, i64) = server.query(async {
        sqlx::query_as(
            "SELECT (SELECT search_pending FROM skill_sync_health),
                    (SELECT count(*) FROM skill_sync_log WHERE id > $1 AND synced_by = 'system')",
        )
        .bind(log_before)
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(pending, 0);
    assert_eq!(logged, 4101 + 1 + 1, "one log row per change");
    assert_eq!(server.vectors_unlike_postgres(), 0);
}

#[test]
fn a_big_push_is_searchable_once_its_vectors_are_filled() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    // More rows whose vectors PostgreSQL must compute (skillsd leaves text with URLs to
    // it) than a sync writes with their vectors inline.
    let n = skillsd::cache::sync::SEARCH_INLINE_ROWS + 20;
    let files: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("skills/bulk/bulk-{i:04}.md"),
                format!("---\ntitle: Bulk {i}\n---\nword{i} appears at https://example.com/{i}.\n"),
            )
        })
        .collect();
    git.commit_files(&dir, &files, "bulk");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    // The rows are there when the push returns.
    let rows: i64 = server.scalar("SELECT count(*) FROM skills WHERE path LIKE 'skills/bulk/%'");
    assert_eq!(rows, n as i64);
    // The vectors follow within moments; the health view counts the ones to come.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pending: i64 = server.scalar("SELECT search_pending FROM skill_sync_health");
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pending} vectors never filled"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let found: Vec<String> = server.query(async {
        sqlx::query_scalar(
            "SELECT slug FROM skills, websearch_to_tsquery('simple', 'word517') q WHERE search @@ q",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(found, vec!["bulk-0517"]);
    assert_eq!(server.vectors_unlike_postgres(), 0);
    let empty: i64 = server.scalar("SELECT count(*) FROM skills WHERE search = ''::tsvector");
    assert_eq!(empty, 0);
}

#[test]
fn each_commit_of_a_push_is_logged_with_its_own_sha() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let before = server.last_log_id();
    // Three commits in one push; the middle one breaks a file the last one fixes.
    let c1 = git.commit_files(&dir, &[("skills/m/multi.md", &skill("One", ""))], "1");
    git.commit_files(&dir, &[("skills/m/multi.md", "---\ntitle: ''\n---\n")], "2");
    let c3 = git.commit_files(&dir, &[("skills/m/multi.md", &skill("Three", ""))], "3");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let log: Vec<(String, String, String)> = server.query(async {
        sqlx::query_as("SELECT operation, status, git_commit_sha FROM skill_sync_log WHERE id > $1 ORDER BY id")
            .bind(before)
            .fetch_all(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(
        log,
        vec![
            ("create".to_string(), "success".to_string(), c1.clone()),
            ("update".to_string(), "success".to_string(), c3.clone()),
        ]
    );
    let (sha, healthy): (String, bool) = server.query(async {
        sqlx::query_as("SELECT (SELECT git_commit_sha FROM skills WHERE slug = 'multi'), (SELECT healthy FROM skill_sync_health)")
            .fetch_one(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!((sha.as_str(), healthy), (c3.as_str(), true));
}

#[test]
fn big_columns_are_compressed_with_lz4() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    // A body big enough to be compressed (over the ~2 KB TOAST threshold).
    let body = "Rotate the keys before the window closes, then verify. ".repeat(100);
    let text = format!("---\ntitle: Big one\n---\n{body}\n");
    git.commit_files(&dir, &[("skills/s/big-one.md", &text)], "big");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let (methods, body_method): (Vec<String>, Option<String>) = server.query(async {
        let methods = sqlx::query_scalar(
            "SELECT attname || '=' || attcompression::text FROM pg_attribute
             WHERE attrelid = 'skills'::regclass AND attname IN ('body', 'frontmatter', 'search')
             ORDER BY attname",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap();
        let body_method = sqlx::query_scalar(
            "SELECT pg_column_compression(body) FROM skills WHERE slug = 'big-one'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap();
        (methods, body_method)
    });
    assert_eq!(methods, vec!["body=l", "frontmatter=l", "search=l"]);
    // Vectors do not compress: they are stored as they are (out of line when big).
    let storage: String = server.scalar(
        "SELECT attstorage::text FROM pg_attribute
             WHERE attrelid = 'skills'::regclass AND attname = 'search'",
    );
    assert_eq!(storage, "e");
    assert_eq!(body_method.as_deref(), Some("lz4"));
}

/// The `skills` table's indexes and constraints: (name, definition), by name.
fn skill_indexes(server: &Server) -> Vec<(String, String)> {
    server.query(async {
        sqlx::query_as(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE tablename = 'skills'
             UNION ALL
             SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = 'skills'::regclass
             ORDER BY 1, 2",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

/// Every column of every cached row that does not change when a row is written again
/// (not its id, timestamps or commit), as text, by path.
fn cache_rows(server: &Server) -> Vec<Vec<Option<String>>> {
    server.query(async {
        sqlx::query(
            "SELECT path, slug, title, description, category, owner, tags::text, status,
                    frontmatter::text, body, blob_sha, sync_status,
                    search::text, (last_synced_at IS NOT NULL)::text
             FROM skills ORDER BY path",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
        .collect()
    })
}

/// The first row that differs, rather than two thousand rows printed.
fn assert_same_rows(got: &[Vec<Option<String>>], want: &[Vec<Option<String>>]) {
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len());
}

/// `n` skill files named `{prefix}-{i}`, with tags and descriptions; the bodies of
/// those `i % url_every == 0` have a URL (PostgreSQL computes their vectors).
fn varied_skills(prefix: &str, n: usize, url_every: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let body = if i % url_every == 0 {
                format!("Read https://example.com/{prefix}/{i} first.")
            } else {
                format!("Rotate the {prefix} keys, step {i}.")
            };
            let extra = format!(
                "description: About {prefix} {i}.\ntags: [{prefix}, t{}]\n",
                i % 5
            );
            (
                format!("skills/b{}/{prefix}-{i:04}.md", i % 4),
                format!("---\ntitle: {prefix} {i}\n{extra}---\n\n{body}\n"),
            )
        })
        .collect()
}

/// A server whose `skills` repository has `files` pushed on top of the template; the
/// pusher's key (it must outlive the git), git and clone, to push more.
fn server_with(files: &[(String, String)]) -> (Server, common::Key, Git, std::path::PathBuf) {
    let (server, key, git, dir) = cloned_by_alice();
    git.commit_files(&dir, files, "more skills");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    (server, key, git, dir)
}

/// A new server, its writer alice (her key must outlive the git), her git and her
/// clone of `skills`.
fn cloned_by_alice() -> (Server, common::Key, Git, std::path::PathBuf) {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    (server, key, git, dir)
}

/// `skillsd reconcile skills` with `SKILLSD_BULK_LOAD_FROM=from`, which must succeed;
/// its output.
fn reconcile_bulk_from(server: &Server, from: &str) -> String {
    let out = server.cli_with(
        &[("SKILLSD_BULK_LOAD_FROM", from)],
        &["reconcile", "skills"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn an_empty_cache_is_rebuilt_rows_first_and_indexes_after() {
    // 1 in 3 bodies with a URL: 234 vectors for PostgreSQL, computed with the rows.
    let (server, _key, git, dir) = server_with(&varied_skills("alpha", 700, 3));
    let indexes = skill_indexes(&server);
    assert!(indexes.len() >= 10, "{indexes:?}");
    let rows = cache_rows(&server);
    assert_eq!(rows.len(), 702);

    exec(&server, "DELETE FROM skills");
    let log_before = server.last_log_id();
    let stdout = reconcile_bulk_from(&server, "500");
    assert!(
        stdout.contains("702 created, 0 refreshed, 0 deleted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rows loaded first, indexes built after them"),
        "{stdout}"
    );
    assert!(!stdout.contains("search vectors"), "{stdout}");
    // The full-text index built after the commit, before the command returns.
    assert!(
        stdout.contains("indexes: built after the commit"),
        "{stdout}"
    );
    assert_eq!(server.count("SELECT count(*) FROM skill_index_builds"), 0);
    // The same indexes, the same rows, every vector PostgreSQL's own.
    assert_eq!(skill_indexes(&server), indexes);
    assert_same_rows(&cache_rows(&server), &rows);
    assert_eq!(server.vectors_unlike_postgres(), 0);
    let commits: Vec<String> = server.query(async {
        sqlx::query_scalar("SELECT DISTINCT git_commit_sha FROM skills")
            .fetch_all(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(commits, vec![server.server_ref("skills", "main").unwrap()]);
    // One `create` per skill, naming the row's id.
    let (logged, matching): (i64, i64) = server.query(async {
        sqlx::query_as(
            "SELECT count(*), count(s.id) FILTER (WHERE l.operation = 'create' AND l.synced_by = 'system'
                                                   AND l.slug = s.slug AND l.path = s.path
                                                   AND l.status = 'success' AND l.error IS NULL
                                                   AND l.direction = 'git-to-db'
                                                   AND l.completed_at IS NOT NULL
                                                   AND l.git_commit_sha = s.git_commit_sha
                                                   AND l.push_id IS NULL)
             FROM skill_sync_log l LEFT JOIN skills s ON s.id = l.skill_id WHERE l.id > $1",
        )
        .bind(log_before)
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!((logged, matching), (702, 702));
    // Every published row (each a new id) got its version 1, as a sync records it:
    // the same digest as the row's version before the cache was emptied.
    let (published, versioned, same_digest): (i64, i64, i64) = server.query(async {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM skills WHERE status = 'PUBLISHED'),
                    count(*) FILTER (WHERE v.version = 1 AND v.path = s.path AND v.slug = s.slug
                                     AND v.commit_sha = s.git_commit_sha AND v.pushed_by IS NULL),
                    count(*) FILTER (WHERE v.digest = (SELECT o.digest FROM skill_versions o
                                                        WHERE o.path = s.path AND o.skill_id <> s.id
                                                        ORDER BY o.version DESC LIMIT 1))
             FROM skills s JOIN skill_versions v ON v.skill_id = s.id",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    assert!(published > 600, "{published}");
    assert_eq!((versioned, same_digest), (published, published));
    // The rebuilt GIN index answers searches.
    let found: i64 = server.scalar(
        "SELECT count(*) FROM skills WHERE search @@ to_tsquery('simple', 'rotate & alpha')",
    );
    assert_eq!(found, 700 - 234);

    // More than 500 vectors for PostgreSQL: they are filled after the rows commit.
    git.commit_files(&dir, &varied_skills("beta", 600, 1), "beta");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    // The push left those vectors for after its commit, too: wait for them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.vectors_unlike_postgres() > 0 {
        assert!(std::time::Instant::now() < deadline, "vectors never filled");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let rows = cache_rows(&server);
    exec(&server, "DELETE FROM skills");
    let stdout = reconcile_bulk_from(&server, "500");
    assert!(stdout.contains("1302 created"), "{stdout}");
    assert!(stdout.contains("rows loaded first"), "{stdout}");
    assert!(stdout.contains("search vectors: all filled"), "{stdout}");
    assert_eq!(skill_indexes(&server), indexes);
    assert_same_rows(&cache_rows(&server), &rows);
    assert_eq!(server.vectors_unlike_postgres(), 0);
}

#[test]
fn a_table_with_rows_or_readers_is_rebuilt_row_by_row() {
    let (server, _key, _git, _dir) = server_with(&varied_skills("gamma", 120, 4));
    let indexes = skill_indexes(&server);
    let rows = cache_rows(&server);

    // Another repository's row: the table is not empty, its indexes stay.
    exec(&server, "DELETE FROM skills");
    exec(
        &server,
        "INSERT INTO skills (repo, slug, path, title, blob_sha, git_commit_sha)
         VALUES ('other', 'kept', 'skills/x/kept.md', 'Kept', 'abc', 'abc')",
    );
    let stdout = reconcile_bulk_from(&server, "10");
    assert!(stdout.contains("122 created"), "{stdout}");
    assert!(!stdout.contains("rows loaded first"), "{stdout}");
    exec(&server, "DELETE FROM skills WHERE repo = 'other'");
    assert_same_rows(&cache_rows(&server), &rows);

    // An empty table someone is reading: the reconcile does not wait on the reader
    // (nor make every later reader wait behind it); it writes row by row.
    exec(&server, "DELETE FROM skills");
    let reader = server.query(async {
        let mut tx = server.pool.begin().await.unwrap();
        sqlx::query("SELECT count(*) FROM skills")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx
    });
    let stdout = reconcile_bulk_from(&server, "10");
    assert!(stdout.contains("122 created"), "{stdout}");
    assert!(!stdout.contains("rows loaded first"), "{stdout}");
    server.query(reader.rollback()).unwrap();
    assert_same_rows(&cache_rows(&server), &rows);
    assert_eq!(skill_indexes(&server), indexes);
    assert_eq!(server.vectors_unlike_postgres(), 0);

    // A foreign key on the primary key (a table of the web application's, say): the
    // key cannot be dropped, so nothing is, and the rows go in one by one.
    exec(&server, "DELETE FROM skills");
    exec(
        &server,
        "CREATE TABLE favourites (skill_id uuid REFERENCES skills (id))",
    );
    let stdout = reconcile_bulk_from(&server, "10");
    assert!(stdout.contains("122 created"), "{stdout}");
    assert!(!stdout.contains("rows loaded first"), "{stdout}");
    assert_same_rows(&cache_rows(&server), &rows);
    assert_eq!(skill_indexes(&server), indexes);
}

/// `n` letters that do not compress (xorshift): a value that stays over PostgreSQL's
/// 2,704-byte limit on a B-tree index entry, compressed or not.
fn incompressible(n: usize) -> String {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect()
}

/// A row PostgreSQL refuses (here a `category` too long for its B-tree index) fails that
/// skill alone: the other skills of the push are cached, the watermark moves on, the
/// failure is logged with the database's reason, and the next push lands as usual.
#[test]
fn a_row_the_database_refuses_fails_that_skill_only() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    // Over the 2,704-byte index entry limit.
    let long = incompressible(6000);
    let tip = git.commit_files(
        &dir,
        &[
            ("skills/a/fine.md", skill("Fine", "")),
            (
                "skills/a/huge.md",
                skill("Huge", &format!("category: {long}\n")),
            ),
        ],
        "two",
    );
    git.ok(&dir, &["push", "origin", "main"]);
    let (watermark, fine, huge, error): (String, i64, i64, String) = server.query(async {
        let w: String = sqlx::query_scalar(
            "SELECT commit_sha FROM sync_state WHERE repo = 'skills' AND branch = 'main'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap();
        let fine: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM skills WHERE repo = 'skills' AND path = 'skills/a/fine.md'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap();
        let huge: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM skills WHERE repo = 'skills' AND path = 'skills/a/huge.md'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap();
        let error: String = sqlx::query_scalar(
            "SELECT error FROM skill_sync_log WHERE path = 'skills/a/huge.md' AND status = 'failed'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap();
        (w, fine, huge, error)
    });
    assert_eq!(watermark, tip, "the cache moved on to the pushed commit");
    assert_eq!((fine, huge), (1, 0));
    assert!(
        error.contains("the database refused this skill") && error.contains("index row"),
        "{error}"
    );
    // A later push still reaches the cache.
    let next = git.commit_files(&dir, &[("skills/a/later.md", skill("Later", ""))], "later");
    git.ok(&dir, &["push", "origin", "main"]);
    let later: i64 = server.query(async {
        sqlx::query_scalar(
            "SELECT count(*) FROM skills WHERE path = 'skills/a/later.md' AND git_commit_sha = $1",
        )
        .bind(&next)
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(later, 1);
    // Rebuilding an empty cache by bulk load (`COPY`, which fails whole on one bad
    // row) falls back to row by row: every other skill is back, the bad one fails.
    exec(&server, "DELETE FROM skills");
    let stdout = reconcile_bulk_from(&server, "1");
    assert!(stdout.contains("1 failed"), "{stdout}");
    let rows = cache_skills(&server);
    assert!(rows.contains_key("skills/a/fine.md") && rows.contains_key("skills/a/later.md"));
    assert!(!rows.contains_key("skills/a/huge.md"));
}

/// The binary `COPY` stream bulk loads write (`cache/binary_copy.rs`), read back by
/// PostgreSQL itself: every kind of field, with the edge cases (NULL, empty and
/// non-ASCII text, an empty array, a timestamp before 2000, nested JSON).
#[test]
fn binary_copy_rows_read_back_equal() {
    use skillsd::cache::binary_copy::CopyBuffer;
    let server = Server::start();
    let id = uuid::Uuid::new_v4();
    let early = chrono::DateTime::parse_from_rfc3339("1999-12-31T23:59:59.123456Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let late = chrono::DateTime::parse_from_rfc3339("2026-12-01T06:00:00.000001Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut buf = CopyBuffer::new();
    buf.row(6);
    buf.uuid(&id);
    buf.text("Grüße, 世界 — \"quoted\"\ttab");
    buf.null();
    buf.text_array(&["one".into(), "zwei–drei".into(), String::new()]);
    buf.jsonb(r#"{"a": [1, {"b": null}], "c": "ü"}"#);
    buf.timestamptz(&early);
    buf.row(6);
    buf.uuid(&uuid::Uuid::nil());
    buf.text("");
    buf.opt_text(Some("present"));
    buf.text_array(&[]);
    buf.jsonb("{}");
    buf.timestamptz(&late);
    buf.finish();
    type Row = (
        uuid::Uuid,
        String,
        Option<String>,
        Vec<String>,
        serde_json::Value,
        chrono::DateTime<chrono::Utc>,
    );
    let rows: Vec<Row> = server.query(async {
        let mut conn = server.pool.acquire().await.unwrap();
        sqlx::query(
            "CREATE TEMP TABLE copied (id uuid, t text, o text, a text[], j jsonb, at timestamptz)",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let mut copy = conn
            .copy_in_raw("COPY copied FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        copy.send(buf.bytes()).await.unwrap();
        assert_eq!(copy.finish().await.unwrap(), 2);
        sqlx::query_as("SELECT id, t, o, a, j, at FROM copied ORDER BY t DESC")
            .fetch_all(&mut *conn)
            .await
            .unwrap()
    });
    assert_eq!(
        rows,
        vec![
            (
                id,
                "Grüße, 世界 — \"quoted\"\ttab".to_string(),
                None,
                vec!["one".to_string(), "zwei–drei".to_string(), String::new()],
                serde_json::json!({"a": [1, {"b": null}], "c": "ü"}),
                early,
            ),
            (
                uuid::Uuid::nil(),
                String::new(),
                Some("present".to_string()),
                vec![],
                serde_json::json!({}),
                late,
            ),
        ]
    );
}

/// Every cached skill's id by path.
fn ids_by_path(server: &Server) -> BTreeMap<String, uuid::Uuid> {
    server.query(async {
        sqlx::query_as::<_, (String, uuid::Uuid)>(
            "SELECT path, id FROM skills WHERE repo = 'skills'",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
    })
}

#[test]
fn renames_with_edits_are_searched_within_a_bound_and_plain_moves_always_keep_ids() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let body = |i: usize, edit: &str| {
        let lines: String = (0..30)
            .map(|l| format!("Step {l} of skill {i}: do the thing carefully.\n"))
            .collect();
        format!("---\ntitle: Skill {i}\n---\n\n{lines}{edit}")
    };
    let n = 150;
    let files: Vec<(String, String)> = (0..n)
        .map(|i| (format!("skills/bulk/s-{i}.md"), body(i, "")))
        .collect();
    git.commit_files(&dir, &files, "many");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let ids = ids_by_path(&server);
    let id_of = |ids: &BTreeMap<String, uuid::Uuid>, p: String| ids[&p];

    // Every file moved unchanged: found by id, however many.
    git.ok(&dir, &["mv", "skills/bulk", "skills/moved"]);
    git.ok(&dir, &["commit", "-q", "-m", "move all"]);
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let moved = ids_by_path(&server);
    for i in 0..n {
        assert_eq!(
            id_of(&moved, format!("skills/moved/s-{i}.md")),
            id_of(&ids, format!("skills/bulk/s-{i}.md"))
        );
    }

    // A few moved and edited: still renames (same ids).
    for i in 0..10 {
        std::fs::remove_file(dir.join(format!("skills/moved/s-{i}.md"))).unwrap();
    }
    let edited: Vec<(String, String)> = (0..10)
        .map(|i| (format!("skills/few/s-{i}.md"), body(i, "One more line.\n")))
        .collect();
    git.commit_files(&dir, &edited, "move and edit a few");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let after = ids_by_path(&server);
    for i in 0..10 {
        assert_eq!(
            id_of(&after, format!("skills/few/s-{i}.md")),
            id_of(&ids, format!("skills/bulk/s-{i}.md")),
            "a moved and edited skill kept its id"
        );
    }

    // Many moved and edited in one commit: past the bound, each is a delete and a
    // create (new ids), and the push goes through with the cache complete.
    for i in 10..n {
        std::fs::remove_file(dir.join(format!("skills/moved/s-{i}.md"))).unwrap();
    }
    let edited: Vec<(String, String)> = (10..n)
        .map(|i| (format!("skills/many/s-{i}.md"), body(i, "One more line.\n")))
        .collect();
    git.commit_files(&dir, &edited, "move and edit many");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let after = ids_by_path(&server);
    assert!((n - 10) * (n - 10) > skillsd::cache::changes::RENAME_LIMIT.pow(2));
    for i in 10..n {
        assert_ne!(
            id_of(&after, format!("skills/many/s-{i}.md")),
            id_of(&ids, format!("skills/bulk/s-{i}.md"))
        );
    }
    assert_eq!(tree_skills(&server), cache_skills(&server));
}

#[test]
fn a_push_of_more_commits_than_the_replay_bound_is_synced_by_one_diff_to_its_tip() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let before = server.last_log_id();
    // Many commits each changing one skill, made at once with fast-import.
    let n = skillsd::cache::sync::MAX_REPLAY + 20;
    let head = git.ok(&dir, &["rev-parse", "HEAD"]).trim().to_string();
    let mut stream = String::new();
    for i in 0..n {
        let body = skill(&format!("Version {i}"), "");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter A <a@example.com> {} +0000\ndata 2\nc\n{}M 100644 inline skills/m/many.md\ndata {}\n{}\n",
            1_700_000_000 + i,
            if i == 0 { format!("from {head}\n") } else { String::new() },
            body.len(),
            body
        ));
    }
    let mut fi = git.cmd(&dir);
    fi.args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped());
    let mut child = fi.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stream.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    git.ok(&dir, &["reset", "-q", "--hard", "main"]);
    let tip = git.ok(&dir, &["rev-parse", "HEAD"]).trim().to_string();
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    // One row for the skill, logged once, at the tip; the cache is the tip's.
    let log: Vec<(String, String)> = server.query(async {
        sqlx::query_as(
            "SELECT operation, git_commit_sha FROM skill_sync_log WHERE id > $1 ORDER BY id",
        )
        .bind(before)
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(log, vec![("create".to_string(), tip.clone())]);
    let title: String = server.scalar("SELECT title FROM skills WHERE slug = 'many'");
    assert_eq!(title, format!("Version {}", n - 1));
    assert_eq!(tree_skills(&server), cache_skills(&server));
}

/// `files` committed into a clone of the empty repository `repo` and pushed, which
/// must succeed: what the pusher read.
fn import(git: &Git, server: &Server, repo: &str, files: &[(String, String)]) -> String {
    let dir = git.clone(&server.url(&format!("{repo}.git")), &[]);
    git.commit_files(&dir, files, "import");
    let (ok, _, err) = git.run(&dir, &["push", "origin", "main"]);
    assert!(ok, "{err}");
    err
}

/// The object ids of the `skills` table's indexes: a bulk load drops and creates them
/// again (new ids); a push that writes row by row leaves them as they were.
fn skill_index_oids(server: &Server) -> Vec<u32> {
    server.query(async {
        sqlx::query_scalar::<_, sqlx::postgres::types::Oid>(
            "SELECT indexrelid FROM pg_index WHERE indrelid = 'skills'::regclass ORDER BY 1",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.0)
        .collect()
    })
}

/// An index build waiting for the `skills` table behind a long writer steps out of
/// the lock queue rather than hold up the writers that come after it: a write
/// compatible with the long one goes through while it still runs.
#[test]
fn an_index_build_never_holds_up_writers_behind_a_long_one() {
    let server = Server::start();
    let definition: String = server.scalar("SELECT pg_get_indexdef('skills_search_idx'::regclass)");
    exec(&server, "DROP INDEX skills_search_idx");
    server.query(async {
        let mut long = server.pool.begin().await.unwrap();
        sqlx::query("LOCK TABLE skills IN ROW EXCLUSIVE MODE")
            .execute(&mut *long)
            .await
            .unwrap();
        // Recorded once the long writer holds the table: no builder (the server runs
        // its own too) can build it before the long writer ends.
        sqlx::query(
            "INSERT INTO skill_index_builds (name, definition) VALUES ('skills_search_idx', $1)",
        )
        .bind(&definition)
        .execute(&server.pool)
        .await
        .unwrap();
        let pool = server.pool.clone();
        let builder = tokio::spawn(async move { skillsd::cache::index_builds::build(&pool).await });
        // The build asks for the table and waits behind the long writer.
        let waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'skills'::regclass
                       AND mode = 'ShareLock' AND NOT granted";
        let mut seen = false;
        for _ in 0..1000 {
            let n: i64 = sqlx::query_scalar(waiting)
                .fetch_one(&server.pool)
                .await
                .unwrap();
            if n > 0 {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(seen, "the build never asked for the table");
        // Another writer: queued behind a build that never steps out, it would wait
        // for the long writer too, past its timeout.
        let mut other = server.pool.acquire().await.unwrap();
        sqlx::query("SET statement_timeout = '20s'")
            .execute(&mut *other)
            .await
            .unwrap();
        let updated = sqlx::query("UPDATE skills SET title = title")
            .execute(&mut *other)
            .await
            .expect("a write goes through while the long writer runs")
            .rows_affected();
        assert!(updated > 0);
        sqlx::query("RESET statement_timeout")
            .execute(&mut *other)
            .await
            .unwrap();
        drop(other);
        long.commit().await.unwrap();
        // Built by this call or by the server's own builder (its start and periodic
        // rounds run the same loop): either way, once.
        builder.await.unwrap().unwrap();
    });
    assert_eq!(server.count("SELECT count(*) FROM skill_index_builds"), 0);
    assert_eq!(
        server.count("SELECT count(*) FROM pg_class WHERE relname = 'skills_search_idx'"),
        1
    );
}

/// What a server that dies between a bulk load's commit and the full-text index's
/// build leaves (the index recorded in `skill_index_builds`, not there) is built when
/// a server starts again: the same definition, the record gone.
#[test]
fn an_index_left_unbuilt_is_built_when_a_server_starts() {
    let mut f = common::ChildFixture::start("alice");
    let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    f.server.kill();
    let definition: String = f.rt.block_on(async {
        let definition: String =
            sqlx::query_scalar("SELECT pg_get_indexdef('skills_search_idx'::regclass)")
                .fetch_one(&pool)
                .await
                .unwrap();
        sqlx::query("DROP INDEX skills_search_idx")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO skill_index_builds (name, definition) VALUES ('skills_search_idx', $1)",
        )
        .bind(&definition)
        .execute(&pool)
        .await
        .unwrap();
        definition
    });
    let health = |rt: &tokio::runtime::Runtime, pool: &sqlx::PgPool| {
        rt.block_on(async {
            sqlx::query_as::<_, (i64, Option<String>)>(
                "SELECT (SELECT indexes_pending FROM skill_sync_health),
                        (SELECT pg_get_indexdef(to_regclass('skills_search_idx')))",
            )
            .fetch_one(pool)
            .await
            .unwrap()
        })
    };
    assert_eq!(health(&f.rt, &pool), (1, None));
    f.server.restart();
    common::eventually(60, "the index built at start", || {
        health(&f.rt, &pool) == (0, Some(definition.clone()))
    });
}

/// An import push into a new server (its cache holds the template's two skills) loads
/// its rows first and builds the indexes after them, as a reconcile into an empty
/// table does, inside the push's transaction; rows, sync log, versions and vectors are
/// what a push writes row by row. Into a table of more than a tenth as many rows the
/// push writes row by row. A row an index refuses rolls the bulk load back and the
/// push writes row by row: that skill fails alone, the indexes stay as they were.
#[test]
fn an_import_push_into_a_new_server_loads_rows_first() {
    let server = Server::start_tuned(false, |s| s.bulk_load_from = Some(100));
    let indexes = skill_indexes(&server);
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    for repo in ["big", "other", "bigger"] {
        let out = server.cli(&["init", repo, "--empty"]);
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(server.count("SELECT count(*) FROM skills"), 2);

    let oids = skill_index_oids(&server);
    let err = import(&git, &server, "big", &varied_skills("alpha", 150, 3));
    assert!(err.contains("150 created, 0 updated"), "{err}");
    // Every index but the full-text one built in the push's transaction (the one
    // that wrote the rows); that one right after it, off the pusher's time.
    common::eventually(60, "the full-text index built after the push", || {
        server.count("SELECT count(*) FROM skill_index_builds") == 0
            && server.count("SELECT count(*) FROM pg_class WHERE relname = 'skills_search_idx'")
                == 1
    });
    let with_rows: Vec<(String, bool)> = server.query(async {
        sqlx::query_as(
            "SELECT c.relname::text,
                    c.xmin = (SELECT xmin FROM skills WHERE repo = 'big' LIMIT 1)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = 'skills'::regclass ORDER BY 1",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert!(with_rows.len() >= 10, "{with_rows:?}");
    for (name, same) in &with_rows {
        assert_eq!(*same, name != "skills_search_idx", "{with_rows:?}");
    }
    let rebuilt = skill_index_oids(&server);
    assert!(
        rebuilt.iter().all(|o| !oids.contains(o)),
        "every index built again: {oids:?} -> {rebuilt:?}"
    );
    assert_eq!(skill_indexes(&server), indexes, "the same definitions");
    assert_eq!(server.vectors_unlike_postgres(), 0);
    let tip = server.server_ref("big", "main").unwrap();
    let (rows, logged, versioned): (i64, i64, i64) = server.query(async {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM skills WHERE repo = 'big' AND git_commit_sha = $1
                       AND sync_status = 'synced' AND search IS NOT NULL),
                    (SELECT count(*) FROM skill_sync_log l JOIN skills s ON s.id = l.skill_id
                      WHERE l.repo = 'big' AND l.operation = 'create' AND l.status = 'success'
                        AND l.synced_by = 'alice' AND l.push_id IS NOT NULL AND l.path = s.path),
                    (SELECT count(*) FROM skill_versions v JOIN skills s ON s.id = v.skill_id
                      WHERE v.repo = 'big' AND v.version = 1 AND v.commit_sha = $1
                        AND v.pushed_by = 'alice')",
        )
        .bind(&tip)
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    let published =
        server.count("SELECT count(*) FROM skills WHERE repo = 'big' AND status = 'PUBLISHED'");
    assert_eq!((rows, logged, versioned), (150, 150, published));
    let watermark = server.count(&format!(
        "SELECT count(*) FROM sync_state WHERE repo = 'big' AND commit_sha = '{tip}'"
    ));
    assert_eq!(watermark, 1);
    // A search finds them at once.
    let found = server.count(
        "SELECT count(*) FROM skills WHERE repo = 'big' AND search @@ websearch_to_tsquery('simple', 'rotate alpha keys')",
    );
    assert!(found > 0);

    // 152 rows now: an import of 150 more goes row by row.
    let oids = skill_index_oids(&server);
    let err = import(&git, &server, "other", &varied_skills("gamma", 150, 3));
    assert!(err.contains("150 created, 0 updated"), "{err}");
    assert_eq!(skill_index_oids(&server), oids, "the indexes kept");
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE repo = 'other'"),
        150
    );

    // Empty; one skill of the next import has a category no B-tree index takes.
    exec(&server, "DELETE FROM skills");
    let oids = skill_index_oids(&server);
    // Over the 2,704-byte index entry limit.
    let long = incompressible(6000);
    let mut files = varied_skills("beta", 150, 3);
    files.push((
        "skills/huge.md".into(),
        skill("Huge", &format!("category: {long}\n")),
    ));
    let err = import(&git, &server, "bigger", &files);
    assert!(
        err.contains("150 created") && err.contains("1 failed"),
        "{err}"
    );
    assert_eq!(
        skill_index_oids(&server),
        oids,
        "rolled back: the same indexes"
    );
    assert_eq!(skill_indexes(&server), indexes);
    let rows = server.count("SELECT count(*) FROM skills WHERE repo = 'bigger'");
    assert_eq!(rows, 150);
    let error: String = server.scalar(
        "SELECT error FROM skill_sync_log WHERE repo = 'bigger' AND path = 'skills/huge.md'
               AND status = 'failed'",
    );
    assert!(error.contains("index row"), "{error}");
    assert_eq!(server.vectors_unlike_postgres(), 0);
}

/// Per operation, the sync-log rows after `after` whose skill id is the cached row's
/// at that path (every row a sync wrote names the skill it wrote).
fn logged_operations(server: &Server, after: i64) -> BTreeMap<String, i64> {
    server.query(async {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT l.operation, count(*) FROM skill_sync_log l
             JOIN skills s ON s.id = l.skill_id AND s.path = l.path
             WHERE l.id > $1 AND l.status = 'success'
             GROUP BY l.operation",
        )
        .bind(after)
        .fetch_all(&server.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
    })
}

/// The sync-log rows after `after` as a push writes them, by path: all but their ids,
/// commits and times (whether their times are in order, and a push's id is set).
type LogLine = (
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    String,
    bool,
    bool,
);
fn log_rows(server: &Server, after: i64) -> Vec<LogLine> {
    server.query(async {
        sqlx::query_as(
            "SELECT path, slug, operation, direction, status, error, synced_by,
                    push_id IS NOT NULL, started_at <= completed_at
             FROM skill_sync_log WHERE id > $1 ORDER BY path",
        )
        .bind(after)
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

/// Every recorded version: (path, version, digest, kind, slug, whether its skill id
/// is its row's, whether it names the commit the cache is at, the pusher, whether
/// it names the push that brought the cache there).
type VersionRow = (
    String,
    i32,
    String,
    String,
    String,
    bool,
    bool,
    Option<String>,
    bool,
);

fn versions(server: &Server) -> Vec<VersionRow> {
    server.query(async {
        sqlx::query_as(
            "SELECT v.path, v.version, v.digest, v.kind, v.slug,
                    v.skill_id IS NOT DISTINCT FROM
                        (SELECT id FROM skills s WHERE s.repo = v.repo AND s.path = v.path),
                    v.commit_sha IS NOT DISTINCT FROM
                        (SELECT commit_sha FROM sync_state t WHERE t.repo = v.repo),
                    v.pushed_by,
                    v.push_id IS NOT DISTINCT FROM
                        (SELECT id FROM pushes p WHERE p.repo = v.repo
                         ORDER BY started_at DESC LIMIT 1)
             FROM skill_versions v ORDER BY v.path, v.version",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

/// A push of many new skills writes them by `COPY` (`cache/sync/write/copy.rs`, from
/// 100 new files with skillsd's vectors; the others by the upsert). The rows, the sync
/// log and the versions are what the upsert writes for the same files pushed 40 to a
/// commit (each commit a step of 40 creations, below the `COPY`'s threshold).
#[test]
fn many_new_skills_go_in_by_copy_as_the_upsert_would_write_them() {
    // 1 in 4 bodies with a URL: their vectors are PostgreSQL's, written by the upsert.
    let files = varied_skills("delta", 160, 4);
    let (copied, _key, git, dir) = cloned_by_alice();
    let before = copied.last_log_id();
    git.commit_files(&dir, &files, "160 skills");
    git.ok(&dir, &["push", "-q", "origin", "main"]);

    let (upserted, _key2, git2, dir2) = cloned_by_alice();
    let before2 = upserted.last_log_id();
    for part in files.chunks(40) {
        git2.commit_files(&dir2, part, "40 skills");
    }
    git2.ok(&dir2, &["push", "-q", "origin", "main"]);

    assert_eq!(cache_skills(&copied), tree_skills(&copied));
    assert_same_rows(&cache_rows(&copied), &cache_rows(&upserted));
    assert_eq!(copied.vectors_unlike_postgres(), 0);
    let created = BTreeMap::from([("create".to_string(), 160)]);
    assert_eq!(logged_operations(&copied, before), created);
    assert_eq!(logged_operations(&upserted, before2), created);
    // The sync log names each row the `COPY` made, as the upsert's ids.
    let (l1, l2) = (log_rows(&copied, before), log_rows(&upserted, before2));
    assert_eq!(l1.len(), 160);
    assert!(
        l1.iter().all(|l| l.7 && l.8 && l.6 == "alice"),
        "{:?}",
        l1[0]
    );
    assert_eq!(l1, l2);
    // Version 1 of each: the rows' own (by `COPY` with them on the first server, by
    // the statement after the rows on the second), the push's and the pusher's.
    let (v1, v2) = (versions(&copied), versions(&upserted));
    let new: Vec<&VersionRow> = v1.iter().filter(|v| v.0.contains("delta")).collect();
    assert_eq!(new.len(), 160, "{v1:?}");
    assert!(
        new.iter().all(|v| v.1 == 1
            && v.3 == "skill-md"
            && v.5
            && v.6
            && v.7.as_deref() == Some("alice")
            && v.8),
        "{:?}",
        new[0]
    );
    assert_eq!(v1, v2);
}

/// A push of several commits records each skill's version at the tip, whichever
/// commit made it: the rows the last commit creates get theirs with them (by `COPY`),
/// the others after the rows — here rows an earlier commit created by `COPY`, some
/// of them changed by the last. The versions are those of the same tree pushed as
/// one commit.
#[test]
fn a_push_of_several_commits_versions_each_skill_at_the_tip() {
    let first = varied_skills("eta", 120, 1000);
    let second = varied_skills("theta", 120, 1000);
    let changed: Vec<(String, String)> = first[..10]
        .iter()
        .map(|(path, text)| (path.clone(), text.replace("Rotate", "Renew")))
        .collect();

    let (steps, _key, git, dir) = cloned_by_alice();
    git.commit_files(&dir, &first, "120 skills");
    let both: Vec<(String, String)> = second.iter().chain(&changed).cloned().collect();
    git.commit_files(&dir, &both, "120 more, 10 changed");
    git.ok(&dir, &["push", "-q", "origin", "main"]);

    let (one, _key2, git2, dir2) = cloned_by_alice();
    let all: Vec<(String, String)> = first.iter().chain(&both).cloned().collect();
    git2.commit_files(&dir2, &all, "240 skills");
    git2.ok(&dir2, &["push", "-q", "origin", "main"]);

    assert_eq!(cache_skills(&steps), tree_skills(&steps));
    let (v1, v2) = (versions(&steps), versions(&one));
    let new: Vec<&VersionRow> = v1.iter().filter(|v| v.0.contains("eta")).collect();
    assert_eq!(new.len(), 240, "{v1:?}");
    assert!(
        new.iter()
            .all(|v| v.1 == 1 && v.5 && v.6 && v.7.as_deref() == Some("alice") && v.8),
        "{:?}",
        new[0]
    );
    assert_eq!(v1, v2);
}

/// A `COPY` the database refuses leaves nothing behind and the upsert writes the rows
/// instead: a new file whose path the cache already has a row for (a cache that
/// drifted) is updated in place, and a row no index takes fails alone, with its reason.
#[test]
fn new_skills_the_copy_cannot_write_go_in_by_the_upsert() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);

    let files = varied_skills("eps", 150, 1000);
    let drifted = files[149].0.clone();
    exec(
        &server,
        &format!(
            "INSERT INTO skills (repo, slug, path, title, blob_sha, git_commit_sha)
             VALUES ('skills', 'drift', '{drifted}', 'Drift', 'abc', 'abc')"
        ),
    );
    let drift_id = ids_by_path(&server)[&drifted];
    let before = server.last_log_id();
    git.commit_files(&dir, &files, "150 skills");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    assert_eq!(cache_skills(&server), tree_skills(&server));
    assert_eq!(
        logged_operations(&server, before),
        BTreeMap::from([("create".to_string(), 149), ("update".to_string(), 1)])
    );
    assert_eq!(ids_by_path(&server)[&drifted], drift_id, "updated in place");
    assert_eq!(server.vectors_unlike_postgres(), 0);

    // 120 more, one with a category over the B-tree's entry limit.
    let mut more = varied_skills("zeta", 119, 1000);
    more.push((
        "skills/b0/zeta-huge.md".to_string(),
        skill("Huge", &format!("category: {}\n", incompressible(6000))),
    ));
    let before = server.last_log_id();
    git.commit_files(&dir, &more, "120 skills");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let cached = cache_skills(&server);
    let mut tree = tree_skills(&server);
    assert!(tree.remove("skills/b0/zeta-huge.md").is_some());
    assert_eq!(cached, tree);
    assert_eq!(
        logged_operations(&server, before),
        BTreeMap::from([("create".to_string(), 119)])
    );
    let error: String = server.scalar("SELECT error FROM skill_sync_log WHERE path = 'skills/b0/zeta-huge.md' AND status = 'failed'");
    assert!(error.contains("index row"), "{error}");
}
