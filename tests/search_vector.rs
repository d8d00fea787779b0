//! skillsd computes the full-text vector of plain text itself (`cache::vector`); it must
//! equal what PostgreSQL's `skills_search_vector` computes, exactly. Compared here on
//! generated text full of the characters the two could disagree on, and end to end on
//! pushed skills.

use crate::common;

use common::{Git, Server};
use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};
use skillsd::cache::vector::{SearchVector, search_vector};

/// proptest's deterministic generator from a seed, so a failure is reproducible.
struct Rng(TestRng);

impl Rng {
    fn seeded(seed: u64) -> Rng {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..].copy_from_slice(&(!seed).to_le_bytes());
        Rng(TestRng::from_seed(RngAlgorithm::XorShift, &bytes))
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "the",
    "Rotate",
    "keys",
    "k8s",
    "x",
    "a",
    "B",
    "0123",
    "42",
    "1st",
    "v2",
    "API",
    "e",
    "g",
    "foo",
    "bar",
    "work",
    "mem",
    "ok",
    "Z9",
    "abc123def",
    "README",
];
/// Separators skillsd handles itself in some context (before some words, not others).
const PLAIN: &[&str] = &[
    "  ", "\n", "\n\n", "\t", "\r\n", ".", ". ", ",", ", ", ";", ":", ": ", "!", "?", "(", ")",
    "[", "]", "{", "}", "\"", "'", "*", "**", "#", "## ", "`", "```", "=", "|", ">", "_", "__",
    "-", "--", "- ", " -", "-.", "...", "-_", "_-",
];
/// Every other printable ASCII punctuation character, and a few non-ASCII ones.
const OTHER: &[&str] = &[
    "/", "@", "&", "<", "\\", "~", "%", "+", "$", "^", "é", "—", "\u{b}", "\u{0}", ":/", "&amp;",
];

/// Text made of words and separators, the shape of prose and Markdown: mostly spaces,
/// often other plain separators, and (when `other`) sometimes anything.
fn words_text(rng: &mut Rng, max_tokens: usize, other: bool) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(max_tokens + 1) {
        s.push_str(rng.pick(WORDS));
        s.push_str(match rng.below(10) {
            0..=5 => " ",
            6..=8 => rng.pick(PLAIN),
            _ if other => rng.pick(OTHER),
            _ => "\n",
        });
    }
    s
}

/// Text of random characters from a small alphabet with every plain kind of character
/// and (when `other`) the others.
fn chars_text(rng: &mut Rng, max_len: usize, other: bool) -> String {
    let plain: Vec<char> = "abcXYZ019 -.:_';,!?#*`=|>\n\t".chars().collect();
    let others: Vec<char> = "/@&<\\~%+$é".chars().collect();
    (0..rng.below(max_len + 1))
        .map(|_| match rng.below(20) {
            0 if other => others[rng.below(others.len())],
            _ => plain[rng.below(plain.len())],
        })
        .collect()
}

/// Prose the way skills are written: words of letters (hyphenated at times) and
/// digits, sentences, lists, headings, inline code.
fn prose_text(rng: &mut Rng, tokens: usize) -> String {
    const SEPS: &[&str] = &[
        " ", " ", " ", " ", " ", "\n", ", ", ". ", "\n\n## ", "\n- ", " `", "` ", " (", ") ",
        " **", "** ", "_", "'", " - ", ": ", "!\n", "?\n\n",
    ];
    const LETTERS: &[&str] = &["rotate", "Keys", "the", "a", "work", "mem", "API", "readme"];
    let mut s = String::new();
    for _ in 0..tokens {
        if rng.below(8) == 0 {
            s.push_str(rng.pick(LETTERS));
            s.push('-');
            s.push_str(rng.pick(LETTERS));
        } else {
            s.push_str(rng.pick(WORDS));
        }
        s.push_str(rng.pick(SEPS));
    }
    s
}

struct Row {
    title: String,
    description: Option<String>,
    tags: Vec<String>,
    body: String,
}

fn row(rng: &mut Rng, text: &mut dyn FnMut(&mut Rng) -> String) -> Row {
    Row {
        title: text(rng),
        description: (rng.below(4) > 0).then(|| text(rng)),
        tags: (0..rng.below(4)).map(|_| text(rng)).collect(),
        body: text(rng),
    }
}

/// Rows whose computed vector differs from PostgreSQL's, as (index, ours, theirs).
fn mismatches(server: &Server, rows: &[Row], ours: &[SearchVector]) -> Vec<(i32, String, String)> {
    let idx: Vec<i32> = (0..rows.len() as i32).collect();
    let titles: Vec<&str> = rows.iter().map(|r| r.title.as_str()).collect();
    let descriptions: Vec<Option<&str>> = rows.iter().map(|r| r.description.as_deref()).collect();
    let tags: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(&r.tags).unwrap())
        .collect();
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    server.query(async {
        sqlx::query_as(
            "SELECT i, v::text, skills_search_vector(t, d, g, b)::text
             FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::tsvector[])
                  AS u(i, t, d, tags, b, v),
                  LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)) AS g) t0
             WHERE v IS DISTINCT FROM skills_search_vector(t, d, g, b)
             ORDER BY i LIMIT 10",
        )
        .bind(&idx)
        .bind(&titles)
        .bind(&descriptions)
        .bind(&tags)
        .bind(&bodies)
        .bind(ours)
        .fetch_all(&server.pool)
        .await
        .unwrap()
    })
}

/// Checks every row skillsd vectorizes against PostgreSQL; returns how many it did.
fn compare(server: &Server, rows: Vec<Row>) -> usize {
    let mut checked = 0;
    for chunk in rows.chunks(2_000) {
        let (plain, ours): (Vec<&Row>, Vec<SearchVector>) = chunk
            .iter()
            .filter_map(|r| {
                search_vector(&r.title, r.description.as_deref(), &r.tags, &r.body).map(|v| (r, v))
            })
            .unzip();
        let plain: Vec<Row> = plain
            .into_iter()
            .map(|r| Row {
                title: r.title.clone(),
                description: r.description.clone(),
                tags: r.tags.clone(),
                body: r.body.clone(),
            })
            .collect();
        let bad = mismatches(server, &plain, &ours);
        if let Some((i, v, pg)) = bad.first() {
            let r = &plain[*i as usize];
            panic!(
                "{} of these rows differ from PostgreSQL; first:\n  title {:?}\n  description {:?}\n  tags {:?}\n  body {:?}\n  skillsd:    {v}\n  PostgreSQL: {pg}",
                bad.len(),
                r.title,
                r.description,
                r.tags,
                r.body
            );
        }
        checked += plain.len();
    }
    checked
}

#[test]
fn vectors_of_plain_text_equal_postgresql_s() {
    let server = Server::start();
    // A deeper run: SKILLSD_TEST_VECTOR_ROWS=500000 SKILLSD_TEST_VECTOR_SEED=7 cargo test …
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let mut rng = Rng::seeded(env("SKILLSD_TEST_VECTOR_SEED").unwrap_or(0x5eed_cafe_f00d_0001));
    let total = env("SKILLSD_TEST_VECTOR_ROWS").unwrap_or(12_000) as usize;
    let rows: Vec<Row> = (0..total)
        .map(|i| row(&mut rng, &mut |r| words_text(r, 12, i % 2 == 0)))
        .collect();
    let checked = compare(&server, rows);
    eprintln!("words: {checked} of {total} rows vectorized by skillsd, all equal");
    // The generator uses every separator, so many rows are left to PostgreSQL; enough
    // must not be, or this test would prove nothing.
    assert!(
        checked > total / 20,
        "only {checked} of {total} rows were vectorized by skillsd"
    );

    let rows: Vec<Row> = (0..total)
        .map(|i| row(&mut rng, &mut |r| chars_text(r, 24, i % 2 == 0)))
        .collect();
    let checked = compare(&server, rows);
    eprintln!("characters: {checked} of {total} rows vectorized by skillsd, all equal");
    assert!(
        checked > total / 50,
        "only {checked} of {total} rows were vectorized by skillsd"
    );
}

#[test]
fn long_texts_near_the_limits_equal_postgresql_s() {
    let server = Server::start();
    let mut rng = Rng::seeded(0x0bad_5eed_0002);
    let mut rows = Vec::new();
    // Prose-sized bodies (a few KB), bodies with a word repeated up to the limit, and
    // bodies close to the position limit.
    for _ in 0..300 {
        let body = (0..40)
            .map(|_| prose_text(&mut rng, 10))
            .collect::<Vec<_>>()
            .join("\n\n");
        rows.push(Row {
            title: prose_text(&mut rng, 5),
            description: Some(prose_text(&mut rng, 12)),
            tags: vec!["api".into(), "k8s".into()],
            body,
        });
    }
    for n in [250, 254, 255] {
        rows.push(Row {
            title: "word".into(),
            description: None,
            tags: vec!["word".into()],
            body: "word ".repeat(n - 2),
        });
    }
    for n in [16_000, 16_382, 16_383] {
        rows.push(Row {
            title: String::new(),
            description: None,
            tags: vec![],
            body: (0..n)
                .map(|i| format!("w{}", i % 200))
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    let n = rows.len();
    let checked = compare(&server, rows);
    assert!(
        checked > n / 2,
        "only {checked} of {n} rows were vectorized by skillsd"
    );
}

#[test]
fn pushed_skills_get_postgresql_s_vector_whoever_computes_it() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let files = [
        (
            "skills/s/plain.md",
            "---\ntitle: Rotate signing keys\ndescription: When a key leaks.\ntags: [security, pgp]\n---\n# Steps\n\n- Revoke the old key-pair first.\n- Publish the new one.\n",
        ),
        (
            "skills/s/urls.md",
            "---\ntitle: Read the docs\ntags: [docs]\n---\nSee https://example.com/a/b and e.g. v1.2.3 or me@example.com.\n",
        ),
        (
            "skills/s/accents.md",
            "---\ntitle: Café résumé\n---\nNaïve text.\n",
        ),
    ];
    git.commit_files(&dir, &files, "three");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let rows: i64 = server.scalar("SELECT count(*) FROM skills WHERE path LIKE 'skills/s/%'");
    assert_eq!(rows, 3);
    assert_eq!(server.vectors_unlike_postgres(), 0);
    let found: Vec<String> = server.query(async {
        sqlx::query_scalar(
            "SELECT slug FROM skills WHERE search @@ websearch_to_tsquery('simple', 'key-pair') ORDER BY slug",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(found, vec!["plain"]);
}

#[test]
fn a_big_push_of_plain_skills_is_searchable_when_it_returns() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    // More rows than PostgreSQL computes vectors for inline: skillsd computes these.
    let n = skillsd::cache::sync::SEARCH_INLINE_ROWS * 2;
    let files: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("skills/bulk/bulk-{i:04}.md"),
                format!("---\ntitle: Bulk {i}\ntags: [bulk]\n---\n# Bulk\n\nword{i} appears here, once.\n"),
            )
        })
        .collect();
    git.commit_files(&dir, &files, "bulk");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    // No wait: the vectors were written with the rows.
    let (rows, pending): (i64, i64) = server.query(async {
        sqlx::query_as(
            "SELECT count(*), (SELECT search_pending FROM skill_sync_health)
             FROM skills WHERE path LIKE 'skills/bulk/%'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!((rows, pending), (n as i64, 0));
    assert_eq!(server.vectors_unlike_postgres(), 0);
    let found: Vec<String> = server.query(async {
        sqlx::query_scalar(
            "SELECT slug FROM skills WHERE search @@ websearch_to_tsquery('simple', 'word917')",
        )
        .fetch_all(&server.pool)
        .await
        .unwrap()
    });
    assert_eq!(found, vec!["bulk-0917"]);
}
