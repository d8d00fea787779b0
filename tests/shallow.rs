//! Shallow clones and fetches: `--depth`, `--deepen`, `--unshallow`, and pulling new
//! commits into a shallow clone, with both gits and both protocol versions.

use crate::common;

use common::{GITS, Git, Server, skill};

fn count(git: &Git, dir: &std::path::Path) -> usize {
    git.ok(dir, &["rev-list", "--count", "HEAD"])
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn depth_deepen_unshallow_and_pull() {
    let server = Server::start();
    let key = server.add_user("sam", "writer");
    let author = Git::new(common::GIT_NEW, &key, &server);
    let work = author.clone(&server.url("skills.git"), &[]);
    for i in 0..4 {
        author.commit_files(
            &work,
            &[("skills/s/shallow-skill.md", &skill(&format!("Rev {i}"), ""))],
            "rev",
        );
        author.ok(&work, &["push", "-q", "origin", "main"]);
    }
    let full = count(&author, &work); // template commit + 4
    assert_eq!(full, 5);
    for bin in GITS {
        for proto in ["2", "0"] {
            let git = Git::new(bin, &key, &server);
            let p = format!("protocol.version={proto}");
            let dir = git.clone(&server.url("skills.git"), &["-c", &p, "--depth", "1"]);
            git.ok(&dir, &["config", "protocol.version", proto]);
            assert_eq!(count(&git, &dir), 1, "{bin} v{proto}");
            let tip = git.head(&dir);
            assert_eq!(
                std::fs::read_to_string(dir.join(".git/shallow"))
                    .unwrap()
                    .trim(),
                tip
            );
            let content = std::fs::read_to_string(dir.join("skills/s/shallow-skill.md")).unwrap();
            let expected = std::fs::read_to_string(work.join("skills/s/shallow-skill.md")).unwrap();
            assert_eq!(content, expected, "{bin} v{proto}");
            git.ok(&dir, &["fsck", "--no-dangling"]);

            git.ok(&dir, &["fetch", "-q", "--deepen=2"]);
            assert_eq!(count(&git, &dir), 3, "{bin} v{proto} deepen");
            assert_eq!(
                std::fs::read_to_string(dir.join(".git/shallow"))
                    .unwrap()
                    .lines()
                    .count(),
                1,
                "one new boundary"
            );
            git.ok(&dir, &["fsck", "--no-dangling"]);

            // New work on the server arrives in the shallow clone.
            let new = author.commit_files(
                &work,
                &[(
                    "skills/s/shallow-skill.md",
                    &skill(&format!("Pull {bin} {proto}"), ""),
                )],
                "more",
            );
            author.ok(&work, &["push", "-q", "origin", "main"]);
            git.ok(&dir, &["pull", "-q", "--ff-only"]);
            assert_eq!(git.head(&dir), new);
            assert_eq!(count(&git, &dir), 4, "{bin} v{proto} pull");

            git.ok(&dir, &["fetch", "-q", "--unshallow"]);
            assert!(!dir.join(".git/shallow").exists());
            assert_eq!(
                count(&git, &dir),
                count(&author, &work),
                "{bin} v{proto} unshallow"
            );
            git.ok(&dir, &["fsck", "--no-dangling"]);
        }
    }
}

#[test]
fn shallow_since_and_shallow_exclude() {
    let server = Server::start();
    let key = server.add_user("sam", "writer");
    let author = Git::new(common::GIT_NEW, &key, &server);
    let work = author.clone(&server.url("skills.git"), &[]);
    for (i, year) in ["2020", "2021", "2022", "2023"].iter().enumerate() {
        std::fs::create_dir_all(work.join("skills/t")).unwrap();
        std::fs::write(
            work.join("skills/t/timed.md"),
            skill(&format!("Year {year}"), ""),
        )
        .unwrap();
        author.ok(&work, &["add", "-A"]);
        let date = format!("{year}-06-01T00:00:00Z");
        let out = author
            .cmd(&work)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_AUTHOR_DATE", &date)
            .args(["commit", "-q", "-m", year])
            .output()
            .unwrap();
        assert!(out.status.success());
        if i == 1 {
            author.ok(&work, &["tag", "v2021"]);
        }
    }
    author.ok(&work, &["push", "-q", "origin", "main", "v2021"]);
    for bin in GITS {
        for proto in ["2", "0"] {
            let git = Git::new(bin, &key, &server);
            let p = format!("protocol.version={proto}");
            // Commits from 2022 on: 2023 and 2022 (2022's parent is older).
            let since = git.clone(
                &server.url("skills.git"),
                &["-c", &p, "--shallow-since=2022-01-01", "--no-tags"],
            );
            assert_eq!(count(&git, &since), 2, "{bin} v{proto} --shallow-since");
            git.ok(&since, &["fsck", "--no-dangling"]);
            // Everything after the v2021 tag: 2023 and 2022.
            let exclude = git.clone(
                &server.url("skills.git"),
                &["-c", &p, "--shallow-exclude=v2021", "--no-tags"],
            );
            assert_eq!(count(&git, &exclude), 2, "{bin} v{proto} --shallow-exclude");
            git.ok(&exclude, &["fsck", "--no-dangling"]);
            let shallow = std::fs::read_to_string(exclude.join(".git/shallow")).unwrap();
            let c2022 = git
                .ok(&exclude, &["rev-parse", "HEAD~1"])
                .trim()
                .to_string();
            assert_eq!(shallow.trim(), c2022);
        }
    }
}
