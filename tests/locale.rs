//! The cache's full-text vectors on a database whose locale lower-cases differently
//! from ASCII: in Turkish, `I` becomes a dotless `ı`, so PostgreSQL indexes "API
//! Install" as `apı`, `ınstall`. skillsd checks its own vectors against the database's
//! at start and leaves them all to PostgreSQL when they differ: every cached vector
//! equals `skills_search_vector(...)` and searches by the database's rules find them.
//! (Its own process: the check's verdict is process-wide.)

use crate::common;

use common::{ChildEnv, ChildFixture, skill, stdout_of};

#[test]
fn vectors_follow_a_turkish_database() {
    let env = ChildEnv::with_database_options("LOCALE 'tr_TR.UTF-8' TEMPLATE template0");
    let f = ChildFixture::start_in(env, "ayse", &[], &[]);
    std::fs::create_dir_all(f.work.join("skills/tr")).unwrap();
    std::fs::write(
        f.work.join("skills/tr/api.md"),
        skill("API Install", "description: IMPORTANT INDEX\n"),
    )
    .unwrap();
    let mut add = f.git();
    add.args(["add", "-A"]);
    stdout_of(add);
    let mut commit = f.git();
    commit.args(["commit", "-q", "-m", "api"]);
    stdout_of(commit);
    let mut push = f.git();
    push.args(["push", "-q", "origin", "main"]);
    stdout_of(push);

    let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    let (unlike, found, total): (i64, i64, i64) = f.rt.block_on(async {
        sqlx::query_as(
            "SELECT count(*) FILTER (WHERE search IS DISTINCT FROM
                                     skills_search_vector(title, description, tags, body)),
                    count(*) FILTER (WHERE search @@ to_tsquery('simple', 'API & Install')),
                    count(*)
             FROM skills",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    });
    assert!(total >= 3, "{total} rows");
    assert_eq!(unlike, 0, "cached vectors unlike the database's own");
    assert_eq!(
        found, 1,
        "a search by the database's rules misses the skill"
    );
    let log = std::fs::read_to_string(f.server.data.with_extension("log")).unwrap();
    assert!(
        log.contains("full-text vectors: all left to PostgreSQL"),
        "{log}"
    );
    f.rt.block_on(pool.close());
}
