//! Pack maintenance: pushes add packs, a background gc consolidates them once there
//! are too many, `skillsd gc` does it on demand, and clones keep working throughout.

mod common;

use common::{skill, Git, Server};
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
    let git = Git::new("/usr/local/bin/git", &key, &server);
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
        let git = Git::new("/usr/bin/git", &key, &server);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n == 0 {
                let d = git.clone(&url, &["-q"]);
                assert_eq!(git.head(&d), tip);
                n += 1;
            }
            n
        })
    };
    // A lock file left by a gc that crashed does not block the next one (the lock is
    // an flock, released by the kernel with the process).
    std::fs::write(
        server
            .repo_path("skills")
            .join("objects/pack/skillsd-gc.lock"),
        "",
    )
    .unwrap();
    let out = server.cli(&["gc", "skills"]);
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
    let clones = cloner.join().expect("every clone during gc succeeded");
    assert!(clones >= 1);
    assert_eq!(packs(&server), 1);
    server.assert_fsck("skills");
    // Nothing left behind (the gc lock file stays, unlocked), and a fresh clone has
    // everything.
    assert!(!skillsd::maintenance::gc_running(
        &server.repo_path("skills")
    ));
    assert!(!server
        .object_files("skills")
        .iter()
        .any(|f| f.starts_with("incoming-")
            || (f.ends_with(".lock") && !f.ends_with("skillsd-gc.lock"))));
    let fresh = git.clone(&server.url("skills.git"), &[]);
    assert_eq!(git.head(&fresh), tip);
    assert_eq!(git.ok(&fresh, &["rev-list", "--count", "HEAD"]).trim(), "7");
}

#[test]
fn many_pushes_trigger_a_background_gc() {
    let server = Server::start();
    let key = server.add_user("gary", "writer");
    let git = Git::new("/usr/local/bin/git", &key, &server);
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
    while skillsd::maintenance::gc_running(&server.repo_path("skills")) {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.assert_fsck("skills");
    let fresh = git.clone(&server.url("skills.git"), &[]);
    assert_eq!(git.head(&fresh), git.head(&dir));
}
