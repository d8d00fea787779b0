//! The early ref check: a command whose ref this node's copy shows moved since the
//! advertisement is refused before its pack is stored. The decisive compare-and-swap
//! runs in the database ([`super::publish`]).

use super::commands::Command;
use super::outcome::{Outcome, Reason, Refusal};

/// Marks the commands whose ref no longer has the value the pusher saw (someone
/// pushed first) before anything is stored; with `--atomic`, all of them.
pub fn precheck(
    repo: &gix::Repository,
    commands: &[Command],
    results: &mut [Outcome],
    atomic: bool,
) {
    let mut stale = false;
    for (cmd, r) in commands.iter().zip(results.iter_mut()) {
        if r.is_some() {
            continue;
        }
        if is_stale(repo, cmd) {
            *r = Some(Refusal::new(Reason::Stale, STALE));
            stale = true;
        }
    }
    if atomic && stale {
        for r in results.iter_mut().filter(|r| r.is_none()) {
            *r = Some(Refusal::new(Reason::NotStored, ATOMIC_REFUSED));
        }
    }
}

/// Does the ref no longer hold the value the pusher saw (someone pushed first)?
fn is_stale(repo: &gix::Repository, cmd: &Command) -> bool {
    crate::repos::ref_target(repo, &cmd.name) != (!cmd.is_create()).then_some(cmd.old)
}

pub const STALE: &str = "stale info: the ref changed since you fetched; fetch and try again";
pub const ATOMIC_REFUSED: &str = "atomic push failed: another ref in this push was refused";
