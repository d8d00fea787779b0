//! Pack maintenance: pushes add packs, a background gc consolidates them once there
//! are too many, `skillsd gc` does it on demand, and clones keep working throughout.

use crate::common;

use common::{Git, Server, skill};
use std::time::{Duration, Instant};

fn packs(server: &Server) -> usize {
    skillsd::maintenance::pack_count(&server.repo_path("skills"))
}

fn loose(server: &Server) -> usize {
    server
        .object_files("skills")
        .iter()
        .filter(|f| f.len() == 41 && f.as_bytes()[2] == b'/')
        .count()
}

#[test]
fn a_new_repository_is_one_pack() {
    let server = Server::start();
    assert_eq!(packs(&server), 1);
    assert_eq!(loose(&server), 0);
    server.assert_fsck("skills");
}

#[test]
fn gc_consolidates_while_clones_run() {
    let server = Server::start();
    let key = server.add_user("gary", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    for i in 0..6 {
        git.commit_files(
            &dir,
            &[(
                &format!("skills/gc/skill-{i}.md"),
                &skill(&format!("S{i}"), ""),
            )],
            "s",
        );
        git.ok(&dir, &["push", "-q", "origin", "main"]);
    }
    assert_eq!(packs(&server), 7);
    let tip = git.head(&dir);

    // Clones in a loop while gc runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = server.url("skills.git");
    let cloner = {
        let stop = stop.clone();
        let tip = tip.clone();
        let git = Git::new(common::GIT_OLD, &key, &server);
        std::thread::spawn(move || {
            // When each clone ran: some must overlap the gc.
            let mut spans = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                let d = git.clone(&url, &["-q"]);
                assert_eq!(git.head(&d), tip);
                spans.push((started, Instant::now()));
            }
            spans
        })
    };
    // One gc per repository across nodes: while another holds the database lock,
    // `skillsd gc` says so and changes nothing.
    let mut holder = server.query(server.pool.acquire()).unwrap();
    server
        .query(
            sqlx::query("SELECT pg_advisory_lock(hashtextextended('skillsd:gc:skills', 0))")
                .execute(&mut *holder),
        )
        .unwrap();
    let busy = server.cli(&["gc", "skills"]);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr)
            .contains("another node is running a gc of this repository"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert_eq!(packs(&server), 7);
    server
        .query(
            sqlx::query("SELECT pg_advisory_unlock(hashtextextended('skillsd:gc:skills', 0))")
                .execute(&mut *holder),
        )
        .unwrap();
    // Back to the pool inside the runtime (a pooled connection returns through it).
    server.query(async move { drop(holder) });
    let gc_started = Instant::now();
    let out = server.cli(&["gc", "skills"]);
    let gc_ended = Instant::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("7 packs consolidated into 1 pack"),
        "{stdout}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let spans = cloner.join().expect("every clone during gc succeeded");
    assert!(
        spans
            .iter()
            .any(|(start, end)| *start < gc_ended && *end > gc_started),
        "no clone ran while the gc did ({} clones)",
        spans.len()
    );
    assert_eq!(packs(&server), 1);
    server.assert_fsck("skills");
    // Nothing left behind, one live pack in the database, and a fresh clone has
    // everything.
    assert!(
        !server
            .object_files("skills")
            .iter()
            .any(|f| f.starts_with("incoming-") || f.contains("tmp"))
    );
    assert_eq!(
        server.count("SELECT count(*) FROM git_packs WHERE retired_at IS NULL"),
        1
    );
    let fresh = git.clone(&server.url("skills.git"), &[]);
    assert_eq!(git.head(&fresh), tip);
    assert_eq!(git.ok(&fresh, &["rev-list", "--count", "HEAD"]).trim(), "7");
}

#[test]
fn many_pushes_trigger_a_background_gc() {
    let server = Server::start();
    let key = server.add_user("gary", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let n = skillsd::maintenance::AUTO_GC_PACKS + 2;
    for i in 0..n {
        git.commit_files(
            &dir,
            &[(
                &format!("skills/auto/skill-{i}.md"),
                &skill(&format!("A{i}"), ""),
            )],
            "a",
        );
        git.ok(&dir, &["push", "-q", "origin", "main"]);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while packs(&server) > skillsd::maintenance::AUTO_GC_PACKS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let count = packs(&server);
    assert!(count <= 3, "packs were not consolidated: {count}");
    // Let a gc that is still finishing complete before checking.
    loop {
        let free: bool = server.query(async {
            let mut conn = server.pool.acquire().await.unwrap();
            let free: bool = sqlx::query_scalar(
                "SELECT pg_try_advisory_lock(hashtextextended('skillsd:gc:skills', 0))",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            if free {
                sqlx::query("SELECT pg_advisory_unlock(hashtextextended('skillsd:gc:skills', 0))")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
            free
        });
        if free {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.assert_fsck("skills");
    let fresh = git.clone(&server.url("skills.git"), &[]);
    assert_eq!(git.head(&fresh), git.head(&dir));
}

/// Objects stored before the inflation budget existed (or under a larger one): many
/// deltas copying one large base. A gc would pay minutes of CPU for them at every run;
/// it is refused with the reason instead, leaves the packs as they are, and goes
/// through when the admin raises the ratio for that run.
#[test]
fn a_gc_of_objects_beyond_the_inflation_budget_is_refused() {
    use common::packs::{self, BLOB, Pack};
    use skillsd::incoming::inspect::PackLimits;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("stored.git");
    let git = |args: &[&str], stdin: Option<Vec<u8>>| {
        let mut c = std::process::Command::new("git");
        c.arg("-C").arg(&repo).args(args);
        c.stdin(std::process::Stdio::piped());
        c.stdout(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(data) = stdin {
            std::io::Write::write_all(&mut input, &data).unwrap();
        }
        drop(input);
        assert!(child.wait().unwrap().success(), "git {args:?}");
    };
    std::fs::create_dir(&repo).unwrap();
    git(&["init", "-q", "--bare"], None);
    // 8 MiB of zeros (8 KiB deflated), then 80 deltas of a few bytes that each copy
    // all of it: 648 MiB to produce from a pack of about 10 KiB. Stored with git's
    // own index-pack, as a repository from before the limits would have it.
    let size: u64 = 8 << 20;
    let mut bomb = Pack::new();
    let base = bomb.raw(BLOB, size, &packs::deflate_zeros(size));
    for i in 0..80u8 {
        let mut delta = packs::delta_varint(size);
        delta.extend(packs::delta_varint(size + 1));
        delta.extend(packs::copy_op(0, 4 << 20));
        delta.extend(packs::copy_op(4 << 20, 4 << 20));
        delta.extend([1, i]);
        bomb.ofs_delta(base, &delta);
    }
    git(&["index-pack", "--stdin"], Some(bomb.finish()));
    let mut small = Pack::new();
    small.object(BLOB, b"an ordinary file\n");
    git(&["index-pack", "--stdin"], Some(small.finish()));
    let pack_count = || skillsd::maintenance::pack_count(&repo);
    assert_eq!(pack_count(), 2);

    // Two packs: a budget of two floors (512 MiB) plus 200 times the bytes.
    let err = skillsd::maintenance::gc(&repo, PackLimits::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, skillsd::maintenance::GcError::Refused(_)),
        "{text}"
    );
    assert!(
        text.contains("inflate to more than 200 times its size")
            && text.contains("raise SKILLSD_MAX_INFLATE_RATIO")
            && !text.contains("push in smaller parts"),
        "{text}"
    );
    assert_eq!(pack_count(), 2, "the packs stay as they were");
    let leftovers: Vec<_> = std::fs::read_dir(repo.join("objects"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "pack" && n != "info")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // With the ratio raised for the run, the same packs are consolidated.
    let raised = PackLimits {
        max_inflate_ratio: Some(1_000_000),
        ..PackLimits::default()
    };
    let done = skillsd::maintenance::gc(&repo, raised).unwrap();
    assert_eq!((done.packs_before, done.objects), (2, 82));
    assert_eq!(pack_count(), 1);
    git(&["fsck", "--no-dangling"], None);
}
