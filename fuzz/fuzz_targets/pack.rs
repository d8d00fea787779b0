//! Any bytes as a pushed pack, indexed into a quarantine of a repository that has a
//! few objects (bases for thin packs), through the same guard as a push: indexing
//! and the connectivity walk of every object it yields never panic, and the small
//! limits here hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skillsd::receive::connectivity::{Limits, Walk};
use skillsd::incoming::inspect::PackLimits;
use skillsd::incoming::quarantine::{IndexLimits, Quarantine};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

/// A bare repository with a blob, a tree and a commit (kept for the whole run).
fn repo() -> &'static gix::ThreadSafeRepository {
    static REPO: OnceLock<gix::ThreadSafeRepository> = OnceLock::new();
    REPO.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("skillsd-fuzz-pack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = gix::init_bare(&dir).expect("a bare repository");
        let blob = repo.write_blob(b"---\ntitle: Base\n---\nbody\n").unwrap().detach();
        let mut tree = gix::objs::Tree::empty();
        tree.entries.push(gix::objs::tree::Entry {
            mode: gix::objs::tree::EntryKind::Blob.into(),
            filename: "base.md".into(),
            oid: blob,
        });
        repo.write_object(&tree).unwrap();
        repo.into_sync()
    })
}

fuzz_target!(|data: &[u8]| {
    let repo = repo().to_thread_local();
    let Ok(quarantine) = Quarantine::create(&repo) else {
        return;
    };
    let limits = IndexLimits {
        max_pack_bytes: 1 << 20,
        pack: PackLimits {
            max_object_bytes: 1 << 20,
            max_objects: 1000,
            max_delta_depth: 50,
            max_delta_base_bytes: 4 << 20,
        },
    };
    let never = AtomicBool::new(false);
    if quarantine.index(&repo, data, &limits, &never, None).is_err() {
        return;
    }
    let Ok(view) = quarantine.view(&repo) else {
        return;
    };
    // Every object of the pack as if a ref named it.
    let pack_dir = quarantine.pack_dir();
    for entry in std::fs::read_dir(&pack_dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "idx") {
            continue;
        }
        let Ok(index) = gix_pack::index::File::at(&path, gix::hash::Kind::Sha1) else {
            continue;
        };
        let mut walk = Walk::new(&never);
        for e in index.iter() {
            let _ = walk.tip(&view, e.oid, &[], &Limits::default());
        }
    }
});
