//! The GIN indexes' pending lists (`cache::pending_lists`): no push moves them inside
//! its transaction; the server moves them after the commit. A test binary of its own
//! (not a module of `suite`): one cleaner per process waits for another's lock, and other tests' servers in the
//! same process must not be that one.

mod common;

use common::{Git, Key, Server, skill};

/// Each GIN index of `skills`: its name, its storage options, and the pages of its
/// pending list (`pgstattuple`'s `pgstatginindex`).
fn gin_indexes(server: &Server) -> Vec<(String, Vec<String>, i64)> {
    server.query(async {
        sqlx::query_as(
            "SELECT c.relname::text, coalesce(c.reloptions, '{}'),
                    (pgstatginindex(c.oid)).pending_pages::bigint
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_am am ON am.oid = c.relam
             WHERE i.indrelid = 'skills'::regclass AND am.amname = 'gin' ORDER BY 1",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

/// The pages of the GIN indexes' pending lists, by index.
fn pending_pages(server: &Server) -> Vec<(String, i64)> {
    gin_indexes(server)
        .into_iter()
        .map(|(name, _, pages)| (name, pages))
        .collect()
}

/// Both lists empty.
fn empty() -> Vec<(String, i64)> {
    vec![
        ("skills_search_idx".to_string(), 0),
        ("skills_tags_idx".to_string(), 0),
    ]
}

/// A server whose lists were moved once it started (the template's two skills), with
/// `pgstattuple` to read them, and a writer's key and git.
fn started() -> (Server, Key, Git) {
    let server = Server::start();
    server.query(async {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            .execute(&server.pool)
            .await
            .unwrap()
    });
    common::eventually(30, "the lists moved at start", || {
        pending_pages(&server) == empty()
    });
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    (server, key, git)
}

/// `n` skills (with tags) named after `prefix`, committed into a clone of `skills`
/// and pushed, which must succeed.
fn push_skills(git: &Git, server: &Server, prefix: &str, n: usize) {
    let dir = git.clone(&server.url("skills.git"), &[]);
    let files: Vec<(String, String)> = (0..n)
        .map(|i| {
            let extra = format!(
                "description: About {prefix} {i}.\ntags: [{prefix}, t{}]\n",
                i % 5
            );
            (
                format!("skills/{prefix}-{i:03}.md"),
                skill(&format!("{prefix} {i}"), &extra),
            )
        })
        .collect();
    git.commit_files(&dir, &files, "skills");
    let (ok, _, err) = git.run(&dir, &["push", "origin", "main"]);
    assert!(ok && err.contains(&format!("{n} created")), "{err}");
}

/// Skills whose text has `word`, by the full-text index.
fn found(server: &Server, word: &str) -> i64 {
    server.count(&format!(
        "SELECT count(*) FROM skills WHERE search @@ websearch_to_tsquery('english', '{word}')"
    ))
}

/// A push's rows go into the GIN indexes' pending lists, with a limit no push
/// reaches (migration 0020), so no push moves the lists inside its transaction; the
/// server moves them after the commit. The pushed skills are found by a search all
/// along, and the lists are empty once moved.
#[test]
fn the_gin_pending_lists_are_moved_after_a_push_commits() {
    let (server, _key, git) = started();
    let limits: Vec<(String, Vec<String>)> = gin_indexes(&server)
        .into_iter()
        .map(|(name, options, _)| (name, options))
        .collect();
    let limit = vec!["gin_pending_list_limit=65536".to_string()];
    assert_eq!(
        limits,
        vec![
            ("skills_search_idx".to_string(), limit.clone()),
            ("skills_tags_idx".to_string(), limit)
        ]
    );
    push_skills(&git, &server, "gamma", 60);
    assert_eq!(found(&server, "gamma"), 60);
    common::eventually(30, "the lists moved after the push", || {
        pending_pages(&server) == empty()
    });
}

/// A cleaner that finds another at work (here: this test holding the cleaners' lock)
/// does not give up, since the one at work may have passed its entries: it asks
/// again, and moves the lists once the lock is free.
#[test]
fn a_cleaner_behind_another_moves_the_lists_once_it_is_done() {
    let (server, _key, git) = started();
    let holder = server.query(async {
        let mut holder = server.pool.begin().await.unwrap();
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('skillsd:gin-pending-lists', 0))",
        )
        .execute(&mut *holder)
        .await
        .unwrap();
        holder
    });
    push_skills(&git, &server, "delta", 40);
    assert_eq!(found(&server, "delta"), 40);
    // The push's cleaner is shut out while the lock is held: the entries wait in the
    // lists (found by the search above all the same).
    let waiting = pending_pages(&server);
    assert!(
        waiting.iter().any(|(_, pages)| *pages > 0),
        "the lists moved while another cleaner held the lock: {waiting:?}"
    );
    server.query(async move { holder.rollback().await.unwrap() });
    common::eventually(30, "the lists moved once the lock was free", || {
        pending_pages(&server) == empty()
    });
}
