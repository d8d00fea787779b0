//! Bare repositories and commits for unit tests (the cache's, the agents' index).

use gix::ObjectId;

/// A bare repository for the test's commits.
pub fn repository() -> (tempfile::TempDir, gix::Repository) {
    let dir = tempfile::tempdir().unwrap();
    gix::init_bare(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("config"),
        "[core]\n\tbare = true\n[user]\n\tname = t\n\temail = t@localhost\n",
    )
    .unwrap();
    let repo = gix::open(dir.path()).unwrap();
    (dir, repo)
}

/// A commit of `parent`'s tree with `files` written (`None`: removed).
pub fn commit(
    repo: &gix::Repository,
    parent: Option<ObjectId>,
    files: &[(&str, Option<&str>)],
) -> ObjectId {
    let base = match parent {
        Some(p) => repo.find_commit(p).unwrap().tree_id().unwrap().detach(),
        None => ObjectId::empty_tree(gix::hash::Kind::Sha1),
    };
    let mut editor = repo.edit_tree(base).unwrap();
    for (path, content) in files {
        match content {
            Some(c) => {
                let blob = repo.write_blob(c.as_bytes()).unwrap();
                editor
                    .upsert(*path, gix::object::tree::EntryKind::Blob, blob)
                    .unwrap();
            }
            None => {
                editor.remove(*path).unwrap();
            }
        }
    }
    let tree = editor.write().unwrap().detach();
    drop(editor);
    let parents: Vec<ObjectId> = parent.into_iter().collect();
    repo.commit("refs/heads/main", "c", tree, parents)
        .unwrap()
        .detach()
}
