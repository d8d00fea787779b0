//! The commit an edit makes: each file's edit checked against the base (stale
//! `sha`s, paths that are not files), written onto it in a scratch repository, the
//! skills validated under the new tree's rules, then pushed in process; a refusal
//! mapped to the editor's error.

use super::*;
use crate::receive::outcome::{Reason, Refusal};

/// In a scratch repository over `copy`: the files written onto the base (the change's
/// head, else the branch's tip), checked, committed and pushed to `refs/for/BRANCH`.
#[allow(clippy::too_many_arguments)]
pub(super) fn commit_and_push(
    svc: &crate::review::Service,
    user: &User,
    rt: tokio::runtime::Handle,
    name: String,
    copy: gix::Repository,
    branch: &str,
    base_of_change: Option<ObjectId>,
    files: &[Decoded],
    (full_name, email): (&str, &str),
    message: &str,
    options: &[String],
) -> Result<(ObjectId, String), EditError> {
    let branch_ref = format!("refs/heads/{branch}");
    let Some(tip) = crate::repos::ref_target(&copy, &branch_ref) else {
        return Err(EditError::NotFound(format!(
            "there is no branch `{branch}` in {name}"
        )));
    };
    let base = base_of_change.unwrap_or(tip);
    let scratch = crate::receive::in_process::Scratch::new(&copy).map_err(git_error)?;
    let repo = scratch.repo();
    let base_tree = repo
        .find_commit(base)
        .map_err(git_error)?
        .tree()
        .map_err(git_error)?;
    let rules = crate::skills::rules::Rules::load(&crate::commit_tree::TreeSource {
        tree: base_tree.clone(),
    })
    .unwrap_or_else(|_| crate::skills::rules::Rules::builtin());
    let entry_at = |path: &str| entry_in(&base_tree, path);
    let mut editor = repo.edit_tree(base_tree.id).map_err(git_error)?;
    let mut written: Vec<(String, Vec<u8>)> = Vec::new();
    for f in files {
        for p in std::iter::once(&f.path).chain(f.from_path.iter()) {
            if !rules.governs(p) {
                return Err(EditError::BadRequest(format!(
                    "`{p}` is outside the skill roots of {name} ({}): only skills are edited here",
                    rules.roots().join(", ")
                )));
            }
        }
        let existing = check_edit(f, &entry_at, branch)?;
        written.extend(apply_edit(&mut editor, repo, f, existing, &entry_at)?);
    }
    let tree = editor.write().map_err(git_error)?.detach();
    if tree == base_tree.id {
        return Err(EditError::BadRequest(
            "the files are as they are already: nothing to change".into(),
        ));
    }
    // The skills' problems, as JSON, before anything is pushed (the push checks again,
    // with every rule: this is for a precise answer).
    check_written(repo, tree, &written)?;
    let now = gix::date::Time::now_local_or_utc();
    let signature = gix::actor::Signature {
        name: full_name.into(),
        email: email.into(),
        time: now,
    };
    let commit = gix::objs::Commit {
        tree,
        parents: [base].into_iter().collect(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    let id = repo.write_object(&commit).map_err(git_error)?.detach();
    let (ids, _) = crate::protocol::pack::objects_to_send(repo, &[id], &[base, tip], None)
        .map_err(git_error)?;
    let ctx = svc.in_process(user, rt, name, copy, None);
    let target = format!("{}{branch}", crate::review::open::FOR_PREFIX);
    let (messages, refused_by) = crate::receive::in_process::push_in_process(
        &ctx,
        repo,
        scratch.dir(),
        &target,
        None,
        id,
        ids,
        options,
    )
    .map_err(git_error)?;
    match refused_by {
        None => Ok((id, messages)),
        Some(refusal) => Err(refused(&refusal, &messages, branch)),
    }
}

/// The entry at `path` in `tree`: (mode, id), or None.
fn entry_in(
    tree: &gix::Tree<'_>,
    path: &str,
) -> Result<Option<(gix::object::tree::EntryMode, ObjectId)>, EditError> {
    Ok(tree
        .lookup_entry(path.split('/').map(str::as_bytes))
        .map_err(git_error)?
        .map(|e| (e.mode(), e.object_id())))
}

type EntryAt<'a> =
    dyn Fn(&str) -> Result<Option<(gix::object::tree::EntryMode, ObjectId)>, EditError> + 'a;

/// One file's edit checked against the base: the path free or the file as the editor
/// opened it (its sha), its folders folders. Returns what the base holds at the path.
fn check_edit(
    f: &Decoded,
    entry_at: &EntryAt<'_>,
    branch: &str,
) -> Result<Option<(gix::object::tree::EntryMode, ObjectId)>, EditError> {
    let existing = entry_at(&f.path)?;
    if let Some((mode, _)) = &existing
        && !mode.is_blob()
        && !(f.op == Operation::Create)
    {
        return Err(EditError::BadRequest(format!(
            "`{}` is not a regular file (a folder, a symbolic link or a submodule)",
            f.path
        )));
    }
    let stale = |path: &str, current: Option<ObjectId>, why: String| EditError::Stale {
        path: path.to_string(),
        current: current.map(|c| c.to_string()),
        message: why,
    };
    match f.op {
        Operation::Create => {
            if let Some((_, id)) = existing {
                return Err(stale(
                    &f.path,
                    Some(id),
                    format!(
                        "`{}` exists already: update it with its sha instead",
                        f.path
                    ),
                ));
            }
        }
        Operation::Update | Operation::Delete => match existing {
            None => {
                return Err(stale(
                    &f.path,
                    None,
                    format!("`{}` does not exist (any more) on {branch}", f.path),
                ));
            }
            Some((_, id)) if Some(id) != f.sha => {
                return Err(stale(
                    &f.path,
                    Some(id),
                    format!("`{}` changed since you opened it: it is {} now", f.path, id),
                ));
            }
            Some(_) => {}
        },
        Operation::Rename => {
            let from = f.from_path.as_deref().unwrap_or_default();
            match entry_at(from)? {
                None => {
                    return Err(stale(
                        from,
                        None,
                        format!("`{from}` does not exist (any more) on {branch}"),
                    ));
                }
                Some((mode, _)) if !mode.is_blob() => {
                    return Err(EditError::BadRequest(format!(
                        "`{from}` is not a regular file (a folder, a symbolic link or a submodule)"
                    )));
                }
                Some((_, id)) if Some(id) != f.sha => {
                    return Err(stale(
                        from,
                        Some(id),
                        format!("`{from}` changed since you opened it: it is {id} now"),
                    ));
                }
                Some(_) => {}
            }
            if let Some((_, id)) = existing {
                return Err(stale(
                    &f.path,
                    Some(id),
                    format!("`{}` exists already", f.path),
                ));
            }
        }
    }
    // The parents of a new path must be folders, not files.
    let parts: Vec<&str> = f.path.split('/').collect();
    for i in 1..parts.len() {
        let parent = parts[..i].join("/");
        if let Some((mode, _)) = entry_at(&parent)?
            && !mode.is_tree()
        {
            return Err(EditError::BadRequest(format!(
                "`{}`: `{parent}` is a file, not a folder",
                f.path
            )));
        }
    }
    Ok(existing)
}

/// One file's edit applied to the tree being built; the content written, for the
/// checks (`None`: a deletion).
fn apply_edit(
    editor: &mut gix::object::tree::Editor<'_>,
    repo: &gix::Repository,
    f: &Decoded,
    existing: Option<(gix::object::tree::EntryMode, ObjectId)>,
    entry_at: &EntryAt<'_>,
) -> Result<Option<(String, Vec<u8>)>, EditError> {
    let kind_of = |mode: Option<gix::object::tree::EntryMode>| match mode {
        Some(m) if m.is_executable() => gix::object::tree::EntryKind::BlobExecutable,
        _ => gix::object::tree::EntryKind::Blob,
    };
    match f.op {
        Operation::Delete => {
            editor.remove(f.path.as_str()).map_err(git_error)?;
        }
        Operation::Create | Operation::Update => {
            let bytes = f.content.clone().unwrap_or_default();
            let id = repo.write_blob(&bytes).map_err(git_error)?.detach();
            editor
                .upsert(f.path.as_str(), kind_of(existing.map(|e| e.0)), id)
                .map_err(git_error)?;
            return Ok(Some((f.path.clone(), bytes)));
        }
        Operation::Rename => {
            let from = f.from_path.as_deref().unwrap_or_default();
            let (mode, old_id) = entry_at(from)?.expect("checked above");
            let (id, bytes) = match &f.content {
                Some(bytes) => (
                    repo.write_blob(bytes).map_err(git_error)?.detach(),
                    bytes.clone(),
                ),
                None => (
                    old_id,
                    repo.find_object(old_id).map_err(git_error)?.detach().data,
                ),
            };
            editor.remove(from).map_err(git_error)?;
            editor
                .upsert(f.path.as_str(), kind_of(Some(mode)), id)
                .map_err(git_error)?;
            return Ok(Some((f.path.clone(), bytes)));
        }
    }
    Ok(None)
}

/// The written files validated under the new tree's rules: any error refuses the edit
/// with every problem, before anything is pushed.
fn check_written(
    repo: &gix::Repository,
    tree: ObjectId,
    written: &[(String, Vec<u8>)],
) -> Result<(), EditError> {
    let new_tree = repo.find_tree(tree).map_err(git_error)?;
    let rules =
        match crate::skills::rules::Rules::load(&crate::commit_tree::TreeSource { tree: new_tree })
        {
            Ok(r) => r,
            Err(problems) => {
                return Err(EditError::Invalid {
                    message: crate::skills::summary_line(&problems),
                    problems,
                });
            }
        };
    let mut problems = Vec::new();
    for (path, bytes) in written {
        if rules.is_skill(path) {
            if let Err(p) = rules.validate(path, bytes) {
                problems.extend(p);
            }
        } else {
            problems.extend(rules.validate_other(path, bytes));
        }
    }
    if problems
        .iter()
        .any(|p| p.level == crate::skills::Level::Error)
    {
        return Err(EditError::Invalid {
            message: crate::skills::summary_line(&problems),
            problems,
        });
    }
    Ok(())
}

/// A refused push of an edit as the editor's error: stale when the branch or the
/// change moved meanwhile, else invalid with the push's messages. (Who may edit, and
/// which change, the editor checked before it pushed.)
fn refused(refusal: &Refusal, messages: &str, branch: &str) -> EditError {
    let text = format!("{}\n{messages}", refusal.message);
    if refusal.reason == Reason::Stale {
        return EditError::Stale {
            path: String::new(),
            current: None,
            message: format!("{branch} moved while committing; try again\n{text}"),
        };
    }
    EditError::Invalid {
        problems: Vec::new(),
        message: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_answered_by_its_reason_not_its_words() {
        // Stale by its reason, whatever the words say.
        let moved = Refusal::new(Reason::Stale, "change 3's ref moved meanwhile; push again");
        match refused(&moved, "remote words", "main") {
            EditError::Stale { message, .. } => {
                assert!(
                    message.starts_with("main moved while committing"),
                    "{message}"
                );
                assert!(message.contains("remote words"), "{message}");
            }
            other => panic!("not stale: {other:?}"),
        }
        // Words that once meant "stale" do not make a policy refusal one.
        let policy = Refusal::new(Reason::Policy, "stale info: fetch first");
        assert!(matches!(
            refused(&policy, "", "main"),
            EditError::Invalid { .. }
        ));
    }
}
