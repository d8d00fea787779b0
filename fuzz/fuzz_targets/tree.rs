//! Any bytes as a tree object (in a pack with a commit naming it): parsing and the
//! connectivity walk (depth, shape, missing blobs) never panic or recurse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skillsd::receive::connectivity::{Limits, Walk};
use skillsd::incoming::quarantine::{IndexLimits, Quarantine};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

fn repo() -> &'static gix::ThreadSafeRepository {
    static REPO: OnceLock<gix::ThreadSafeRepository> = OnceLock::new();
    REPO.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("skillsd-fuzz-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        gix::init_bare(&dir).expect("a bare repository").into_sync()
    })
}

fn entry(kind: u8, data: &[u8], out: &mut Vec<u8>) {
    out.extend(skillsd::incoming::inspect::entry_header(kind, data.len() as u64));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(data).unwrap();
    out.extend(z.finish().unwrap());
}

fuzz_target!(|data: &[u8]| {
    let repo = repo().to_thread_local();
    let tree_id = gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::object::Kind::Tree, data)
        .unwrap();
    let commit = format!(
        "tree {tree_id}\nauthor F <f@example.com> 1 +0000\ncommitter F <f@example.com> 1 +0000\n\nfuzz\n"
    );
    let commit_id =
        gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::object::Kind::Commit, commit.as_bytes())
            .unwrap();
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x02".to_vec();
    entry(2, data, &mut pack);
    entry(1, commit.as_bytes(), &mut pack);
    let mut h = gix::hash::hasher(gix::hash::Kind::Sha1);
    h.update(&pack);
    pack.extend_from_slice(h.try_finalize().unwrap().as_bytes());

    let Ok(quarantine) = Quarantine::create(&repo) else {
        return;
    };
    let never = AtomicBool::new(false);
    let limits = IndexLimits {
        max_pack_bytes: 1 << 22,
        pack: Default::default(),
    };
    if quarantine.index(&repo, &pack[..], &limits, &never, None).is_err() {
        return;
    }
    let Ok(view) = quarantine.view(&repo) else {
        return;
    };
    let mut walk = Walk::new(&never);
    let _ = walk.tip(&view, commit_id, &[], &Limits::default());
});
