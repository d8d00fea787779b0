//! Review before publishing, end to end with the real git (both versions) over the
//! real SSH client: a change pushed to refs/for/main, patch sets, approvals (never
//! the author's own), stale approvals dismissed, owners, drafts, merges (fast-forward,
//! server-made merge commit, conflict, two at once), and every refusal with its one
//! clear line and nothing stored.

use crate::common;

use common::{Git, Key, Server, skill};
use std::path::Path;

fn ssh(server: &Server, key: &Key, command: &str) -> (i32, String, String) {
    let out = common::ssh_to(key, server.port)
        .arg(command)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ssh_ok(server: &Server, key: &Key, command: &str) -> String {
    let (code, out, err) = ssh(server, key, command);
    assert_eq!(code, 0, "`{command}` failed:\n{out}\n{err}");
    out
}

fn ssh_fails(server: &Server, key: &Key, command: &str) -> String {
    let (code, out, err) = ssh(server, key, command);
    assert_ne!(code, 0, "`{command}` should have failed:\n{out}\n{err}");
    err
}

const REVIEW_ON: &str =
    "layout = \"flat\"\nroots = [\"skills\"]\n\n[review]\nrequired_approvals = 1\n";

/// The server's `main`, from the database.
fn main_tip(server: &Server) -> String {
    server.query(async {
        sqlx::query_scalar::<_, String>(
            "SELECT target FROM git_refs WHERE repo = 'skills' AND name = 'refs/heads/main'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap()
    })
}

/// A writer's clone, on a branch of its own from the server's main.
fn fresh_clone(git: &Git, server: &Server) -> std::path::PathBuf {
    git.clone(&server.url("skills.git"), &[])
}

/// An admin switches review on with one line (a direct push: admins may).
fn review_on(server: &Server, root: &Key, bin: &'static str, config: &str) {
    let git = Git::new(bin, root, server);
    let dir = fresh_clone(&git, server);
    git.commit_files(&dir, &[("skillsd.toml", config)], "review on");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
}

fn push_change(git: &Git, dir: &Path, options: &[&str]) -> (bool, String) {
    let mut args = vec!["push"];
    for o in options {
        args.push("-o");
        args.push(o);
    }
    args.extend(["origin", "HEAD:refs/for/main"]);
    let (ok, _, err) = git.run(dir, &args);
    (ok, err)
}

fn lifecycle(bin: &'static str) {
    let server = Server::start();
    let root = server.add_user("root", "admin");
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    let rita = server.add_user("rita", "reader");
    review_on(&server, &root, bin, REVIEW_ON);
    let before = main_tip(&server);

    let git = Git::new(bin, &alice, &server);
    let dir = fresh_clone(&git, &server);
    git.commit_files(
        &dir,
        &[("skills/r/reviewed.md", skill("Reviewed", ""))],
        "Add the reviewed skill",
    );
    // A direct push to main: refused, one line says what to do.
    let err = git.fails(&dir, &["push", "origin", "HEAD:main"]);
    assert!(
        err.contains("main requires review: push to refs/for/main"),
        "{err}"
    );
    assert_eq!(main_tip(&server), before);

    // Opening a change: main does not move, the change's refs exist.
    let (ok, err) = push_change(&git, &dir, &["topic=reviewed"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("change 1 opened: Add the reviewed skill (IN_REVIEW)"),
        "{err}"
    );
    assert_eq!(main_tip(&server), before, "the target branch does not move");
    let patch1 = git.head(&dir);
    let remote = git.ok(&dir, &["ls-remote", "origin"]);
    assert!(
        remote.contains(&format!("{patch1}\trefs/changes/1/1")),
        "{remote}"
    );
    assert!(
        remote.contains(&format!("{patch1}\trefs/changes/1/head")),
        "{remote}"
    );
    // The proposed skill is in the database, IN_REVIEW, not in the published cache.
    assert_eq!(
        server.count(
            "SELECT count(*) FROM change_skills WHERE slug = 'reviewed' AND operation = 'create'"
        ),
        1
    );
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE slug = 'reviewed'"),
        0
    );

    // An invalid patch: refused with the validation problems, nothing stored.
    git.commit_files(
        &dir,
        &[("skills/r/broken.md", "---\ntitle: [unclosed\n---\nbody\n")],
        "broken",
    );
    let (ok, err) = push_change(&git, &dir, &["topic=reviewed"]);
    assert!(!ok);
    assert!(err.contains("skills/r/broken.md"), "{err}");
    assert_eq!(server.count("SELECT count(*) FROM change_patch_sets"), 1);
    git.ok(&dir, &["reset", "-q", "--hard", "HEAD~1"]);

    // Self-approval and a reader's approval are refused; merging needs an approval.
    let err = ssh_fails(&server, &alice, "review 1 --approve");
    assert!(err.contains("your own approval"), "{err}");
    let err = ssh_fails(&server, &rita, "review 1 --approve");
    assert!(err.contains("read-only"), "{err}");
    let err = ssh_fails(&server, &bob, "review 1 --merge");
    assert!(err.contains("1 of 1 approval"), "{err}");
    let err = ssh_fails(&server, &bob, "review 1 --reject");
    assert!(err.contains("say why"), "{err}");
    let out = ssh_ok(&server, &bob, "review 1 --approve -m looks good");
    assert_eq!(out, "change 1 approved by bob (patch set 1)\n");

    // A new patch set (same topic) dismisses the approval.
    git.commit_files(
        &dir,
        &[(
            "skills/r/reviewed.md",
            skill("Reviewed", "tags: [a]\nstatus: DRAFT\n"),
        )],
        "tags",
    );
    let (ok, err) = push_change(&git, &dir, &["topic=reviewed"]);
    assert!(ok, "{err}");
    assert!(err.contains("change 1 updated: patch set 2"), "{err}");
    let patch2 = git.head(&dir);
    let err = ssh_fails(&server, &bob, "review 1 --merge");
    assert!(err.contains("approval"), "{err}");
    let shown = ssh_ok(&server, &bob, "review 1");
    assert!(shown.contains("state: IN_REVIEW"), "{shown}");
    assert!(shown.contains("mergeable: no"), "{shown}");
    assert!(shown.contains("(dismissed)"), "{shown}");
    assert!(
        shown.contains("create\treviewed\tskills/r/reviewed.md"),
        "{shown}"
    );

    ssh_ok(&server, &bob, "review 1 --approve");
    let shown = ssh_ok(&server, &alice, "review 1");
    assert!(shown.contains("mergeable: yes"), "{shown}");

    // A reader fetches the change.
    let reader = Git::new(bin, &rita, &server);
    let rdir = fresh_clone(&reader, &server);
    reader.ok(&rdir, &["fetch", "-q", "origin", "refs/changes/1/head"]);
    assert_eq!(
        reader.ok(&rdir, &["rev-parse", "FETCH_HEAD"]).trim(),
        patch2
    );

    // The merge: a fast-forward, published and cached in the push's transaction.
    let out = ssh_ok(&server, &bob, "review 1 --merge");
    assert!(out.contains("change 1 merged into main"), "{out}");
    assert!(out.contains("fast-forward"), "{out}");
    assert_eq!(main_tip(&server), patch2);
    assert_eq!(
        server
            .count("SELECT count(*) FROM skills WHERE slug = 'reviewed' AND status = 'PUBLISHED'"),
        1
    );
    assert_eq!(
        server.count(
            "SELECT count(*) FROM skill_sync_log WHERE slug = 'reviewed' AND synced_by = 'bob'"
        ),
        2,
        "each commit of the change is replayed; both rows name who merged"
    );
    assert_eq!(
        server.count(
            "SELECT count(*) FROM skill_sync_log WHERE slug = 'reviewed' AND synced_by <> 'bob'"
        ),
        0
    );
    assert_eq!(
        server.count("SELECT count(*) FROM changes WHERE number = 1 AND state = 'MERGED' AND closed_by = 'bob'"),
        1
    );
    assert_eq!(
        server.count("SELECT count(*) FROM pushes WHERE user_name = 'bob' AND accepted"),
        1
    );
    // git keeps the change's author.
    let author = git.ok(&dir, &["log", "-1", "--format=%an", &patch2]);
    assert_eq!(author.trim(), "Test Author");

    // A merged change takes nothing more.
    let err = ssh_fails(&server, &bob, "review 1 --approve");
    assert!(err.contains("change 1 is merged"), "{err}");
    let err = ssh_fails(&server, &bob, "review 1 --merge");
    assert!(err.contains("merged"), "{err}");
    let listed = ssh_ok(&server, &bob, "changes --state all");
    assert!(listed.starts_with("1\tMERGED\tmain\talice\t"), "{listed}");
    assert_eq!(ssh_ok(&server, &bob, "changes"), "", "no open change");
    let err = ssh_fails(&server, &bob, "review 99");
    assert!(err.contains("no change 99"), "{err}");

    // Archiving is a change like any other: the skill stays cached, marked.
    git.ok(&dir, &["fetch", "-q", "origin"]);
    git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);
    git.commit_files(
        &dir,
        &[(
            "skills/r/reviewed.md",
            skill("Reviewed", "status: ARCHIVED\n"),
        )],
        "Archive the reviewed skill",
    );
    let (ok, err) = push_change(&git, &dir, &[]);
    assert!(ok && err.contains("change 2 opened"), "{err}");
    ssh_ok(&server, &bob, "review 2 --approve");
    ssh_ok(&server, &bob, "review 2 --merge");
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE slug = 'reviewed' AND status = 'ARCHIVED'"),
        1
    );
    server.assert_fsck("skills");
}

#[test]
fn lifecycle_git_2_47() {
    lifecycle(common::GIT_NEW);
}

#[test]
fn lifecycle_git_2_39() {
    lifecycle(common::GIT_OLD);
}

#[test]
fn merge_commits_conflicts_owners_and_drafts() {
    let bin = common::GIT_NEW;
    let server = Server::start();
    let root = server.add_user("root", "admin");
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    let carol = server.add_user("carol", "writer");
    review_on(
        &server,
        &root,
        bin,
        &format!("{REVIEW_ON}\n[review.owners]\n\"skills/security/\" = [\"carol\"]\n"),
    );
    let git = Git::new(bin, &alice, &server);
    let dir = fresh_clone(&git, &server);
    let start = git.head(&dir);

    // Two changes from the same tip, touching different files.
    git.commit_files(&dir, &[("skills/a/one.md", skill("One", ""))], "one");
    assert!(push_change(&git, &dir, &["topic=one"]).0);
    git.ok(&dir, &["reset", "-q", "--hard", &start]);
    git.commit_files(&dir, &[("skills/b/two.md", skill("Two", ""))], "two");
    assert!(push_change(&git, &dir, &["topic=two", "title=The second skill"]).0);
    ssh_ok(&server, &bob, "review 1 --approve");
    ssh_ok(&server, &bob, "review 2 --approve");
    assert!(ssh_ok(&server, &bob, "review 1 --merge").contains("fast-forward"));
    // main moved: the second is merged with a merge commit the server makes.
    let out = ssh_ok(&server, &bob, "review 2 --merge");
    assert!(out.contains("merge commit"), "{out}");
    git.ok(&dir, &["fetch", "-q", "origin"]);
    let parents = git.ok(&dir, &["log", "-1", "--format=%P", "origin/main"]);
    assert_eq!(parents.split_whitespace().count(), 2, "{parents}");
    let message = git.ok(&dir, &["log", "-1", "--format=%B", "origin/main"]);
    assert!(
        message.starts_with("Merge change 2: The second skill"),
        "{message}"
    );
    assert!(message.contains("Approved-by: bob"), "{message}");
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE slug IN ('one', 'two')"),
        2
    );

    // Two changes editing the same line: the second conflicts, main stays.
    git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);
    let base = git.head(&dir);
    git.commit_files(
        &dir,
        &[("skills/a/one.md", skill("One", "category: x\n"))],
        "x",
    );
    assert!(push_change(&git, &dir, &["topic=x"]).0);
    git.ok(&dir, &["reset", "-q", "--hard", &base]);
    git.commit_files(
        &dir,
        &[("skills/a/one.md", skill("One", "category: y\n"))],
        "y",
    );
    assert!(push_change(&git, &dir, &["topic=y"]).0);
    ssh_ok(&server, &bob, "review 3 --approve");
    ssh_ok(&server, &bob, "review 4 --approve");
    ssh_ok(&server, &bob, "review 3 --merge");
    let tip = main_tip(&server);
    let err = ssh_fails(&server, &bob, "review 4 --merge");
    assert!(
        err.contains("conflicts with main: rebase on main and push a new patch set"),
        "{err}"
    );
    assert_eq!(main_tip(&server), tip);
    assert_eq!(
        server.count("SELECT count(*) FROM changes WHERE number = 4 AND state = 'IN_REVIEW'"),
        1
    );

    // Owners: bob's approval is not enough for skills/security/.
    git.ok(&dir, &["fetch", "-q", "origin"]);
    git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);
    git.commit_files(
        &dir,
        &[("skills/security/s.md", skill("Secure", ""))],
        "sec",
    );
    assert!(push_change(&git, &dir, &["topic=sec", "draft"]).0);
    let err = ssh_fails(&server, &bob, "review 5 --merge");
    assert!(err.contains("draft"), "{err}");
    let err = ssh_fails(&server, &bob, "review 5 --ready");
    assert!(err.contains("only the author"), "{err}");
    ssh_ok(&server, &alice, "review 5 --ready");
    ssh_ok(&server, &bob, "review 5 --approve");
    let err = ssh_fails(&server, &bob, "review 5 --merge");
    assert!(err.contains("owner of skills/security/ (carol)"), "{err}");
    ssh_ok(&server, &carol, "review 5 --approve -m ok for security");
    ssh_ok(&server, &bob, "review 5 --merge");

    // A rejection blocks until its author approves.
    git.ok(&dir, &["fetch", "-q", "origin"]);
    git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);
    git.commit_files(&dir, &[("skills/c/three.md", skill("Three", ""))], "three");
    assert!(push_change(&git, &dir, &[]).0);
    ssh_ok(&server, &bob, "review 6 --approve");
    ssh_ok(&server, &carol, "review 6 --reject -m needs an example");
    let err = ssh_fails(&server, &bob, "review 6 --merge");
    assert!(err.contains("rejected by carol"), "{err}");
    ssh_ok(&server, &alice, "review 6 --abandon");
    assert_eq!(
        server.count("SELECT count(*) FROM changes WHERE number = 6 AND state = 'ABANDONED'"),
        1
    );
    server.assert_fsck("skills");
}

#[test]
fn bad_change_pushes_are_refused_with_one_line_and_store_nothing() {
    let bin = common::GIT_OLD;
    let server = Server::start();
    let root = server.add_user("root", "admin");
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    // A malformed [review] is a rules error like any other, located, with a hint.
    let admin = Git::new(bin, &root, &server);
    let adir = fresh_clone(&admin, &server);
    admin.commit_files(
        &adir,
        &[(
            "skillsd.toml",
            "layout = \"flat\"\n[review]\nrequired_approvals = 1\ndirect_push = [\"a b\"]\n[review.owners]\n\"skills/[\" = \"carol\"\n",
        )],
        "bad review",
    );
    let err = admin.fails(&adir, &["push", "origin", "HEAD:main"]);
    assert!(err.contains("skillsd.toml:4"), "{err}");
    assert!(err.contains("`a b` is not a user name or a role"), "{err}");
    assert!(err.contains("skillsd.toml:6"), "{err}");
    assert!(err.contains("is not a valid pattern"), "{err}");
    let mut unknown = std::fs::read_to_string(adir.join("skillsd.toml")).unwrap();
    unknown = unknown.replace("direct_push = [\"a b\"]", "approvals = 2");
    admin.ok(&adir, &["reset", "-q", "--hard", "HEAD~1"]);
    admin.commit_files(&adir, &[("skillsd.toml", unknown)], "unknown key");
    let err = admin.fails(&adir, &["push", "origin", "HEAD:main"]);
    assert!(err.contains("unknown field `approvals`"), "{err}");
    assert!(err.contains("[review] (required_approvals"), "{err}");

    review_on(&server, &root, bin, REVIEW_ON);
    let git = Git::new(bin, &alice, &server);
    let dir = fresh_clone(&git, &server);
    git.commit_files(&dir, &[("skills/a/x.md", skill("X", ""))], "x");
    let refs_before = server.count("SELECT count(*) FROM git_refs");

    let err = git.fails(&dir, &["push", "origin", "HEAD:refs/for/nosuch"]);
    assert!(err.contains("there is no branch `nosuch`"), "{err}");
    let err = git.fails(&dir, &["push", "origin", "HEAD:refs/changes/1/1"]);
    assert!(
        err.contains("refs/changes/ is written by the server"),
        "{err}"
    );
    let err = push_change(&git, &dir, &["change=7"]).1;
    assert!(err.contains("there is no change 7"), "{err}");
    let long = format!("title={}", "t".repeat(300));
    let err = push_change(&git, &dir, &[&long]).1;
    assert!(err.contains("more than 200"), "{err}");
    let err = push_change(&git, &dir, &["topic=a\u{202e}b"]).1;
    assert!(err.contains("invisible"), "{err}");
    // Nothing at all is on main yet beyond the template: no change, no ref.
    git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);
    let err = push_change(&git, &dir, &[]).1;
    assert!(err.contains("no new commits"), "{err}");
    assert_eq!(server.count("SELECT count(*) FROM changes"), 0);
    assert_eq!(server.count("SELECT count(*) FROM git_refs"), refs_before);

    // Another reviewed branch: a writer may not delete it, and a topic names one
    // change (for one branch) at a time.
    let admin = Git::new(bin, &root, &server);
    let adir = fresh_clone(&admin, &server);
    admin.ok(&adir, &["push", "-q", "origin", "HEAD:refs/heads/release"]);
    let err = git.fails(&dir, &["push", "origin", ":release"]);
    assert!(err.contains("release requires review"), "{err}");
    git.commit_files(&dir, &[("skills/a/t.md", skill("T", ""))], "t");
    assert!(push_change(&git, &dir, &["topic=shared"]).0);
    let (ok, _, err) = git.run(
        &dir,
        &[
            "push",
            "-o",
            "topic=shared",
            "origin",
            "HEAD:refs/for/release",
        ],
    );
    assert!(!ok);
    assert!(err.contains("use another topic"), "{err}");
    ssh_ok(&server, &alice, "review 1 --abandon");
    git.ok(&dir, &["reset", "-q", "--hard", "origin/main"]);

    // Someone else's change, and a merged one, take no patch set.
    git.commit_files(&dir, &[("skills/a/x.md", skill("X", ""))], "x");
    assert!(push_change(&git, &dir, &[]).0);
    let bgit = Git::new(bin, &bob, &server);
    let bdir = fresh_clone(&bgit, &server);
    bgit.commit_files(&bdir, &[("skills/b/y.md", skill("Y", ""))], "y");
    let (ok, err) = push_change(&bgit, &bdir, &["change=2"]);
    assert!(!ok);
    assert!(err.contains("change 2 is alice's"), "{err}");
    ssh_ok(&server, &bob, "review 2 --approve");
    ssh_ok(&server, &bob, "review 2 --merge");
    git.commit_files(&dir, &[("skills/a/z.md", skill("Z", ""))], "z");
    let err = push_change(&git, &dir, &["change=2"]).1;
    assert!(err.contains("change 2 is merged"), "{err}");
    let err = push_change(&git, &dir, &["change=1"]).1;
    assert!(err.contains("change 1 is abandoned"), "{err}");
    assert_eq!(server.count("SELECT count(*) FROM change_patch_sets"), 2);
}

#[test]
fn two_merges_at_once_both_land() {
    let bin = common::GIT_NEW;
    let server = Server::start();
    let root = server.add_user("root", "admin");
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    review_on(&server, &root, bin, REVIEW_ON);
    let git = Git::new(bin, &alice, &server);
    let dir = fresh_clone(&git, &server);
    let start = git.head(&dir);
    for i in 1..=4 {
        git.ok(&dir, &["reset", "-q", "--hard", &start]);
        git.commit_files(
            &dir,
            &[(format!("skills/p/s{i}.md"), skill(&format!("S{i}"), ""))],
            &format!("s{i}"),
        );
        assert!(push_change(&git, &dir, &[&format!("topic=t{i}")]).0);
        ssh_ok(&server, &bob, &format!("review {i} --approve"));
    }
    // One after another: each after the first is a merge commit on the new tip.
    for i in 1..=4 {
        let out = ssh_ok(&server, &bob, &format!("review {i} --merge"));
        assert!(
            out.contains(&format!("change {i} merged into main")),
            "{out}"
        );
    }
    // Four at once (merges on one node take turns; the branch's compare-and-swap
    // orders them against pushes and other nodes).
    for i in 5..=8 {
        git.ok(&dir, &["reset", "-q", "--hard", &start]);
        git.commit_files(
            &dir,
            &[(format!("skills/q/s{i}.md"), skill(&format!("S{i}"), ""))],
            &format!("s{i}"),
        );
        assert!(push_change(&git, &dir, &[&format!("topic=t{i}")]).0);
        ssh_ok(&server, &bob, &format!("review {i} --approve"));
    }
    // An admin pushes straight to main meanwhile (admins may): it races the merges.
    let admin = Git::new(bin, &root, &server);
    let adir = fresh_clone(&admin, &server);
    admin.commit_files(
        &adir,
        &[("skills/root/direct.md", skill("Direct", ""))],
        "direct",
    );
    let direct = admin.spawn(&adir, &["push", "-q", "origin", "HEAD:main"]);
    let spawned: Vec<_> = (5..=8)
        .map(|i| {
            common::ssh_to(&bob, server.port)
                .arg(format!("review {i} --merge"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in spawned {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The direct push won its race, or lost it cleanly (main had moved): then it is
    // pushed again on the new tip. Nothing is lost either way.
    if !direct.wait_with_output().unwrap().status.success() {
        admin.ok(&adir, &["pull", "-q", "--rebase", "origin", "main"]);
        admin.ok(&adir, &["push", "-q", "origin", "HEAD:main"]);
    }
    assert_eq!(
        server.count("SELECT count(*) FROM changes WHERE state = 'MERGED'"),
        8
    );
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE slug = 'direct'"),
        1
    );
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE slug ~ '^s[0-9]$'"),
        8,
        "every merged skill is published"
    );
    server.assert_fsck("skills");
}

#[test]
fn the_push_that_opens_a_change_names_its_page() {
    let bin = common::GIT_NEW;
    let server = Server::start_tuned(false, |s| {
        s.public_url = Some("https://skills.example.com".into())
    });
    let alice = server.add_user("alice", "writer");
    let git = Git::new(bin, &alice, &server);
    let dir = fresh_clone(&git, &server);
    git.commit_files(&dir, &[("skills/a/paged.md", skill("Paged", ""))], "Paged");
    let (ok, err) = push_change(&git, &dir, &["title=A paged change"]);
    assert!(ok, "{err}");
    common::assert_contains_all(
        &err,
        &[
            "change 1 opened: A paged change (IN_REVIEW)",
            "https://skills.example.com/changes/1",
            "git fetch origin refs/changes/1/head",
            "git push -o change=1 origin HEAD:refs/for/main",
        ],
    );
    let shown = ssh_ok(&server, &alice, "review 1");
    assert!(
        shown.contains("page: https://skills.example.com/changes/1"),
        "{shown}"
    );
}
