//! A clone's memory does not grow with the repository: the pack is streamed from the
//! packs on disk, a few objects at a time. skillsd runs as its own process; its
//! anonymous memory (`RssAnon`: the heap, not the mapped pack files) is sampled
//! while clones of a repository of 160 MiB of incompressible files run.

use crate::common;

use common::{ChildFixture, stdout_of};
use std::time::Duration;

/// The process's anonymous resident memory, in KiB.
fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn clone_memory_does_not_grow_with_the_repository() {
    let f = ChildFixture::start("alice");
    let pid = f.server.pid().unwrap();
    // 160 files of 1 MiB of random bytes, outside the skill folders.
    std::fs::create_dir_all(f.work.join("data")).unwrap();
    let mut random = std::fs::File::open("/dev/urandom").unwrap();
    for i in 0..160 {
        let mut bytes = vec![0u8; 1 << 20];
        std::io::Read::read_exact(&mut random, &mut bytes).unwrap();
        std::fs::write(f.work.join(format!("data/blob-{i}.bin")), bytes).unwrap();
    }
    f.commit_all("160 MiB of data");
    let mut push = f.git();
    push.args(["push", "-q", "origin", "main"]);
    stdout_of(push);
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_anon_kib(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_anon_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    // Two clones at once.
    let clones: Vec<_> = (0..2)
        .map(|i| {
            let mut c = f.git();
            c.args(["clone", "-q", "--no-checkout", &f.server.url("skills.git")])
                .arg(f.home.join(format!("clone-{i}")));
            c.spawn().unwrap()
        })
        .collect();
    for mut c in clones {
        assert!(c.wait().unwrap().success());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    eprintln!(
        "anonymous memory: {} MiB before, {} MiB at the peak of two clones of 160 MiB",
        before >> 10,
        peak >> 10
    );
    assert!(
        peak < before + 96 * 1024,
        "two clones of 160 MiB grew the server's heap from {} to {} MiB",
        before >> 10,
        peak >> 10
    );
}
