//! Ref updates with compare-and-swap: a ref moves only if it still has the value the
//! pusher saw. With `--atomic` all updates go in one transaction.

use super::commands::Command;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;

fn edit(cmd: &Command) -> Result<RefEdit, String> {
    let name = gix::refs::FullName::try_from(cmd.name.as_str())
        .map_err(|_| "invalid ref name".to_string())?;
    let expected = if cmd.is_create() {
        PreviousValue::MustNotExist
    } else {
        PreviousValue::MustExistAndMatch(Target::Object(cmd.old))
    };
    let change = if cmd.is_delete() {
        Change::Delete {
            expected,
            log: RefLog::AndReference,
        }
    } else {
        Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: "push".into(),
            },
            expected,
            new: Target::Object(cmd.new),
        }
    };
    Ok(RefEdit {
        change,
        name,
        deref: false,
    })
}

/// Why an edit of `cmd` failed: a ref that no longer has the value the pusher saw is
/// "stale info" (someone pushed first); anything else is reported with its causes.
fn explain(repo: &gix::Repository, cmd: &Command, e: &dyn std::error::Error) -> String {
    if is_stale(repo, cmd) {
        return STALE.into();
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if text.to_lowercase().contains("lock") {
        return "failed to lock the ref: another push is updating it; try again".into();
    }
    format!("failed to update the ref: {text}")
}

/// Marks the commands whose ref no longer has the value the pusher saw (someone
/// pushed first) before anything is stored; with `--atomic`, all of them.
pub fn precheck(
    repo: &gix::Repository,
    commands: &[Command],
    results: &mut [Option<String>],
    atomic: bool,
) {
    let mut stale = false;
    for (cmd, r) in commands.iter().zip(results.iter_mut()) {
        if r.is_some() {
            continue;
        }
        if is_stale(repo, cmd) {
            *r = Some(STALE.into());
            stale = true;
        }
    }
    if atomic && stale {
        for r in results.iter_mut().filter(|r| r.is_none()) {
            *r = Some(ATOMIC_REFUSED.into());
        }
    }
}

/// Does the ref no longer hold the value the pusher saw (someone pushed first)?
fn is_stale(repo: &gix::Repository, cmd: &Command) -> bool {
    crate::repos::ref_target(repo, &cmd.name) != (!cmd.is_create()).then_some(cmd.old)
}

const STALE: &str = "stale info: the ref changed since you fetched; fetch and try again";
const ATOMIC_REFUSED: &str = "atomic push failed: another ref in this push was refused";

/// Applies the updates of the commands whose slot in `results` is `None`, recording a
/// reason for each one that fails. Atomic: all or none.
pub fn update(
    repo: &gix::Repository,
    commands: &[Command],
    results: &mut [Option<String>],
    atomic: bool,
) {
    if atomic {
        let mut edits = Vec::new();
        for (cmd, r) in commands.iter().zip(results.iter_mut()) {
            if r.is_none() {
                match edit(cmd) {
                    Ok(e) => edits.push(e),
                    Err(reason) => *r = Some(reason),
                }
            }
        }
        if results.iter().any(Option::is_some) {
            for r in results.iter_mut().filter(|r| r.is_none()) {
                *r = Some(ATOMIC_REFUSED.into());
            }
            return;
        }
        if let Err(e) = repo.edit_references_as(edits, None) {
            for (cmd, r) in commands.iter().zip(results.iter_mut()) {
                *r = Some(explain(repo, cmd, &e));
            }
        }
        return;
    }
    for (cmd, r) in commands.iter().zip(results.iter_mut()) {
        if r.is_some() {
            continue;
        }
        let result = edit(cmd).and_then(|e| {
            repo.edit_references_as([e], None)
                .map_err(|err| explain(repo, cmd, &err))
        });
        if let Err(reason) = result {
            *r = Some(reason);
        }
    }
}
