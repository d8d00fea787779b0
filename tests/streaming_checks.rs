//! A push's files are checked while its pack streams in (`receive::pre_receive::early`),
//! under the rules of the default branch's tip, and those results count only when the
//! pushed tip has the same rules: `/metrics`' `skillsd_push_files_checked_total` says
//! how many files were checked as the pack came (`streaming`) and how many were read
//! from it afterwards (`after`). How many go which way depends on how much idle CPU
//! the thread found (it runs only on a core that would idle): every file is checked
//! once, either way, with the same result. (The unit tests of `early` and
//! `incoming::arriving` hold the results to what reading the files gives, exactly.)
//! Each test runs skillsd as a child process: the counters are its own.

use crate::common::{self, ChildFixture};

const STREAMING: &str = "skillsd_push_files_checked_total{when=\"streaming\"}";
const AFTER: &str = "skillsd_push_files_checked_total{when=\"after\"}";

fn fixture() -> ChildFixture {
    let http = common::free_port();
    ChildFixture::start_with("alice", &["--http", &format!("127.0.0.1:{http}")], &[])
}

/// A skill whose body is unlike every other's (no delta between two of them is worth
/// `pack-objects`' while: each blob comes whole).
fn skill(i: usize, extra: &str) -> String {
    let mut body = String::new();
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push_str(&format!("{x:016x} "));
    }
    format!("---\ntitle: \"Skill {i}\"\n{extra}---\n# Skill {i}\n\n{body}\n")
}

fn write(f: &ChildFixture, path: &str, text: &str) {
    let path = f.work.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn push(f: &ChildFixture) -> std::process::Output {
    let mut push = f.git();
    push.args(["push", "origin", "main"]);
    push.output().unwrap()
}

#[test]
fn a_push_s_files_are_each_checked_once_as_its_pack_streams_in_or_after() {
    let f = fixture();
    let (streaming, after) = (f.server.metric(STREAMING), f.server.metric(AFTER));
    let main_before = f.main();
    for i in 0..150 {
        write(&f, &format!("skills/c{}/s-{i}.md", i % 3), &skill(i, ""));
    }
    // Two that are wrong: their problems are the ones reading them again would give.
    write(
        &f,
        "skills/c0/bad-one.md",
        "---\ntitle: [not, a, string]\n---\nbody\n",
    );
    write(&f, "skills/c1/bad-two.md", "no frontmatter at all\n");
    f.commit_all("150 skills and two wrong ones");
    let out = push(&f);
    assert!(!out.status.success());
    let said = common::stderr(&out);
    common::assert_contains_all(
        &said,
        &[
            "skills/c0/bad-one.md:2:1: title: must be a string, found a list",
            "skills/c1/bad-two.md:1: the file does not start with a `---` frontmatter block",
            "[remote rejected] main -> main (invalid skills",
        ],
    );
    let checked = |f: &ChildFixture| {
        let (s, a) = (
            f.server.metric(STREAMING) - streaming,
            f.server.metric(AFTER) - after,
        );
        eprintln!("checked as the pack came: {s}, after it: {a}");
        s + a
    };
    assert_eq!(checked(&f), 152.0, "{said}");
    // Refused: nothing written, neither the branch nor a row.
    assert_eq!(f.main(), main_before);
    assert_eq!(
        f.count("SELECT count(*) FROM skills WHERE slug LIKE 's-%'"),
        0
    );

    // Mended: accepted, and the cache holds what the checks validated.
    std::fs::remove_file(f.work.join("skills/c0/bad-one.md")).unwrap();
    std::fs::remove_file(f.work.join("skills/c1/bad-two.md")).unwrap();
    f.commit_all("without the wrong ones");
    let out = push(&f);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(checked(&f), 302.0);
    assert_eq!(
        f.count("SELECT count(*) FROM skills WHERE slug LIKE 's-%' AND title LIKE 'Skill %'"),
        150
    );
}

#[test]
fn files_pushed_with_new_rules_are_checked_under_those_rules() {
    let f = fixture();
    let (streaming, after) = (f.server.metric(STREAMING), f.server.metric(AFTER));
    let main_before = f.main();
    // The push makes `owner` required, and brings skills without one: checked under
    // the rules of the branch before the push they would pass.
    let schema_path = f.work.join("rules/flat.schema.json");
    let schema = std::fs::read_to_string(&schema_path).unwrap();
    let stricter = schema.replace(
        "\"required\": [\"title\"]",
        "\"required\": [\"title\", \"owner\"]",
    );
    assert_ne!(
        schema, stricter,
        "the template's schema requires title only"
    );
    std::fs::write(&schema_path, stricter).unwrap();
    for i in 0..20 {
        write(&f, &format!("skills/new/s-{i}.md"), &skill(i, ""));
    }
    f.commit_all("owner required, and skills without one");
    let out = push(&f);
    assert!(!out.status.success());
    let said = common::stderr(&out);
    common::assert_contains_all(
        &said,
        &[
            "skills/new/s-0.md:2: owner: required field is missing",
            "20 errors in 20 files",
        ],
    );
    assert_eq!(f.server.metric(STREAMING) - streaming, 0.0, "{said}");
    assert!(f.server.metric(AFTER) - after >= 20.0);
    assert_eq!(f.main(), main_before, "refused: nothing written");
    assert_eq!(
        f.count("SELECT count(*) FROM skills WHERE path LIKE 'skills/new/%'"),
        0
    );

    // With an owner each, accepted; the next push (same rules at both ends) is
    // checked as it streams in again (or after), once.
    for i in 0..20 {
        write(
            &f,
            &format!("skills/new/s-{i}.md"),
            &skill(i, "owner: team-a\n"),
        );
    }
    f.commit_all("owners");
    let out = push(&f);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let before = f.server.metric(STREAMING) + f.server.metric(AFTER);
    write(&f, "skills/new/s-20.md", &skill(20, ""));
    f.commit_all("one more, without an owner");
    let out = push(&f);
    assert!(!out.status.success());
    common::assert_contains_all(
        &common::stderr(&out),
        &["skills/new/s-20.md:2: owner: required field is missing"],
    );
    assert_eq!(
        f.server.metric(STREAMING) + f.server.metric(AFTER) - before,
        1.0
    );
}
