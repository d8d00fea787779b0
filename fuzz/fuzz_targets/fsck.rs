//! Any bytes as a pushed commit, tag or tree, through the checks `git fsck --strict`
//! makes (`skillsd::incoming::fsck`): they never panic, and what they accept is what
//! gix can parse as that kind of object (an accepted tree's entries are sorted and
//! unique; an accepted tag names a real type).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skillsd::incoming::fsck;

fuzz_target!(|data: &[u8]| {
    if fsck::commit(data).is_ok() {
        assert!(gix::objs::CommitRef::from_bytes(data, gix::hash::Kind::Sha1).is_ok());
    }
    if let Ok((_, kind)) = fsck::tag(data) {
        assert!(matches!(
            kind,
            gix::object::Kind::Commit
                | gix::object::Kind::Tree
                | gix::object::Kind::Blob
                | gix::object::Kind::Tag
        ));
    }
    if let Ok(entries) = fsck::tree(data) {
        let mut names = std::collections::HashSet::new();
        for e in &entries {
            assert!(!e.name.is_empty() && !e.name.contains(&b'/'));
            assert!(names.insert(e.name), "duplicates are refused");
        }
    }
});
