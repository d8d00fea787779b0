//! Paths under skills/ that would hurt someone: folders that differ only in case,
//! symbolic links, submodules, characters Windows cannot check out. Each is refused
//! with a clear message and nothing is written.

use crate::common;

use common::{Git, Server, skill};

#[test]
fn hostile_paths_are_refused() {
    let server = Server::start();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    let files = server.object_files("skills");

    git.commit_files(
        &dir,
        &[
            ("skills/Ops/one.md", &skill("One", "")),
            ("skills/ops/two.md", &skill("Two", "")),
            ("skills/we:ird/three.md", &skill("Three", "")),
        ],
        "paths",
    );
    std::os::unix::fs::symlink("../git/commit-messages.md", dir.join("skills/ops/link.md"))
        .unwrap();
    git.ok(&dir, &["add", "-A"]);
    // A submodule entry (a gitlink) under skills/.
    git.ok(
        &dir,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{main},skills/vendor"),
        ],
    );
    git.ok(&dir, &["commit", "-q", "-m", "more"]);
    let stderr = git.fails(&dir, &["push", "origin", "main"]);
    for expected in [
        "skills/ops/two.md: `skills/ops` and `skills/Ops` differ only in upper and lower case",
        "skills/ops/link.md: symbolic links are not allowed under skills/",
        "skills/vendor: submodules are not allowed under skills/",
        "skills/we:ird/three.md: name `we:ird` contains characters that break on some systems: ':'",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
    assert_eq!(
        server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(main.as_str())
    );
    assert_eq!(server.object_files("skills"), files);
}
