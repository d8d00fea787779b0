//! What a push does to each ref, decided from our refs, the upstream's and what this
//! mirror pushed last time. Pure: the one question about history (is the upstream's
//! value an ancestor of ours?) is asked through a function.

use super::{Diverged, RefOutcome};
use gix::ObjectId;
use std::collections::{BTreeMap, HashMap};

/// Only branches and tags are mirrored.
pub fn is_mirrored(name: &str) -> bool {
    (name.starts_with("refs/heads/") && name.len() > "refs/heads/".len())
        || (name.starts_with("refs/tags/") && name.len() > "refs/tags/".len())
}

/// One command for the upstream's receive-pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    /// The upstream's current value; `None` creates the ref.
    pub old: Option<ObjectId>,
    /// `None` deletes the ref.
    pub new: Option<ObjectId>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// To send, in ref name order.
    pub commands: Vec<Command>,
    /// Not pushed: the upstream's value is not ours to move.
    pub diverged: Vec<Diverged>,
    /// Already equal.
    pub in_sync: Vec<String>,
    /// Changes we would make but cannot (not sent), with the reason.
    pub refused: Vec<RefOutcome>,
}

/// What the plan needs to know about the upstream.
pub struct Upstream<'a> {
    pub refs: &'a HashMap<String, ObjectId>,
    /// It advertised `delete-refs`.
    pub can_delete: bool,
}

/// Decides, for each ref:
/// - ours, upstream lacks it: create;
/// - equal: in sync;
/// - upstream has another value X: update if `force`, or X is what we pushed last
///   (ours to move), or X is an ancestor of ours (`is_ancestor(X, ours)`, a
///   fast-forward); else diverged, not pushed;
/// - deleted here (in `last_pushed`, not ours), upstream still has it at the value we
///   pushed (any value with `force`): delete, if the upstream accepts deletes; at
///   another value: diverged.
///
/// Refs the upstream has that we never pushed and do not have are left alone, and
/// only `refs/heads/*` and `refs/tags/*` are considered.
pub fn plan(
    ours: &[(String, ObjectId)],
    upstream: &Upstream<'_>,
    last_pushed: &HashMap<String, ObjectId>,
    force: bool,
    mut is_ancestor: impl FnMut(ObjectId, ObjectId) -> bool,
) -> Plan {
    let mut mine: BTreeMap<&str, ObjectId> = BTreeMap::new();
    for (name, id) in ours {
        if is_mirrored(name) {
            mine.entry(name.as_str()).or_insert(*id);
        }
    }
    let mut plan = Plan::default();
    for (&name, &new) in &mine {
        match upstream.refs.get(name) {
            None => plan.commands.push(Command {
                name: name.to_string(),
                old: None,
                new: Some(new),
            }),
            Some(&old) if old == new => plan.in_sync.push(name.to_string()),
            Some(&old) => {
                let ours_to_move =
                    force || last_pushed.get(name) == Some(&old) || is_ancestor(old, new);
                if ours_to_move {
                    plan.commands.push(Command {
                        name: name.to_string(),
                        old: Some(old),
                        new: Some(new),
                    });
                } else {
                    plan.diverged.push(Diverged {
                        name: name.to_string(),
                        upstream: old,
                        ours: Some(new),
                    });
                }
            }
        }
    }
    let mut deleted: Vec<(&String, &ObjectId)> = last_pushed
        .iter()
        .filter(|(name, _)| is_mirrored(name) && !mine.contains_key(name.as_str()))
        .collect();
    deleted.sort();
    for (name, pushed) in deleted {
        let Some(&current) = upstream.refs.get(name) else {
            continue; // already gone
        };
        if !force && current != *pushed {
            plan.diverged.push(Diverged {
                name: name.clone(),
                upstream: current,
                ours: None,
            });
        } else if !upstream.can_delete {
            plan.refused.push(RefOutcome {
                name: name.clone(),
                old: Some(current),
                new: None,
                result: Err("the upstream does not accept deleting refs (no delete-refs)".into()),
            });
        } else {
            plan.commands.push(Command {
                name: name.clone(),
                old: Some(current),
                new: None,
            });
        }
    }
    plan.commands.sort_by(|a, b| a.name.cmp(&b.name));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    fn refs(list: &[(&str, u8)]) -> HashMap<String, ObjectId> {
        list.iter().map(|(n, i)| (n.to_string(), id(*i))).collect()
    }

    fn ours(list: &[(&str, u8)]) -> Vec<(String, ObjectId)> {
        list.iter().map(|(n, i)| (n.to_string(), id(*i))).collect()
    }

    /// History: 1 <- 2 <- 3, and 1 <- 9 (a side branch).
    fn ancestry(old: ObjectId, new: ObjectId) -> bool {
        let chain = [id(1), id(2), id(3)];
        let pos = |x| chain.iter().position(|c| *c == x);
        match (pos(old), pos(new)) {
            (Some(a), Some(b)) => a <= b,
            _ => old == id(1) && new == id(9),
        }
    }

    fn run(
        our: &[(&str, u8)],
        up: &[(&str, u8)],
        last: &[(&str, u8)],
        force: bool,
        can_delete: bool,
    ) -> Plan {
        let up = refs(up);
        plan(
            &ours(our),
            &Upstream {
                refs: &up,
                can_delete,
            },
            &refs(last),
            force,
            ancestry,
        )
    }

    fn cmd(name: &str, old: Option<u8>, new: Option<u8>) -> Command {
        Command {
            name: name.into(),
            old: old.map(id),
            new: new.map(id),
        }
    }

    #[test]
    fn creates_and_in_sync() {
        let p = run(
            &[
                ("refs/heads/main", 3),
                ("refs/tags/v1", 2),
                ("refs/heads/x", 1),
            ],
            &[("refs/heads/x", 1)],
            &[],
            false,
            true,
        );
        assert_eq!(
            p.commands,
            vec![
                cmd("refs/heads/main", None, Some(3)),
                cmd("refs/tags/v1", None, Some(2))
            ]
        );
        assert_eq!(p.in_sync, vec!["refs/heads/x".to_string()]);
        assert!(p.diverged.is_empty() && p.refused.is_empty());
    }

    #[test]
    fn fast_forward_and_last_pushed() {
        // Upstream at 2, an ancestor of 3: fast-forward, even never pushed by us.
        let p = run(
            &[("refs/heads/main", 3)],
            &[("refs/heads/main", 2)],
            &[],
            false,
            true,
        );
        assert_eq!(p.commands, vec![cmd("refs/heads/main", Some(2), Some(3))]);
        // Upstream at 3 (what we pushed), ours rewound to 9: ours to move.
        let p = run(
            &[("refs/heads/main", 9)],
            &[("refs/heads/main", 3)],
            &[("refs/heads/main", 3)],
            false,
            true,
        );
        assert_eq!(p.commands, vec![cmd("refs/heads/main", Some(3), Some(9))]);
    }

    #[test]
    fn diverged_unless_forced() {
        // Upstream at 9 (someone else's commit), ours 3: not an ancestor, not ours.
        let p = run(
            &[("refs/heads/main", 3)],
            &[("refs/heads/main", 9)],
            &[("refs/heads/main", 2)],
            false,
            true,
        );
        assert!(p.commands.is_empty());
        assert_eq!(
            p.diverged,
            vec![Diverged {
                name: "refs/heads/main".into(),
                upstream: id(9),
                ours: Some(id(3))
            }]
        );
        let p = run(
            &[("refs/heads/main", 3)],
            &[("refs/heads/main", 9)],
            &[("refs/heads/main", 2)],
            true,
            true,
        );
        assert_eq!(p.commands, vec![cmd("refs/heads/main", Some(9), Some(3))]);
        assert!(p.diverged.is_empty());
        // A moved tag is never a fast-forward of an unknown object.
        let p = run(
            &[("refs/tags/v1", 3)],
            &[("refs/tags/v1", 7)],
            &[],
            false,
            true,
        );
        assert_eq!(p.diverged.len(), 1);
    }

    #[test]
    fn deletes() {
        // Deleted here, upstream still at what we pushed: delete.
        let p = run(
            &[("refs/heads/main", 3)],
            &[("refs/heads/main", 3), ("refs/heads/old", 2)],
            &[("refs/heads/main", 3), ("refs/heads/old", 2)],
            false,
            true,
        );
        assert_eq!(p.commands, vec![cmd("refs/heads/old", Some(2), None)]);
        // Moved upstream since: diverged; with force: deleted.
        let up = [("refs/heads/old", 9)];
        let last = [("refs/heads/old", 2)];
        let p = run(&[], &up, &last, false, true);
        assert!(p.commands.is_empty());
        assert_eq!(
            p.diverged,
            vec![Diverged {
                name: "refs/heads/old".into(),
                upstream: id(9),
                ours: None
            }]
        );
        let p = run(&[], &up, &last, true, true);
        assert_eq!(p.commands, vec![cmd("refs/heads/old", Some(9), None)]);
        // Already gone upstream: nothing.
        let p = run(&[], &[], &last, false, true);
        assert_eq!(p, Plan::default());
        // No delete-refs: refused, not sent.
        let p = run(&[], &[("refs/heads/old", 2)], &last, false, false);
        assert!(p.commands.is_empty());
        assert_eq!(p.refused.len(), 1);
        assert!(
            p.refused[0]
                .result
                .as_ref()
                .unwrap_err()
                .contains("delete-refs")
        );
    }

    #[test]
    fn upstream_refs_we_never_pushed_are_left_alone() {
        let p = run(
            &[("refs/heads/main", 3)],
            &[
                ("refs/heads/main", 3),
                ("refs/heads/theirs", 9),
                ("refs/pull/1/head", 9),
            ],
            &[],
            true,
            true,
        );
        assert!(p.commands.is_empty() && p.diverged.is_empty());
        assert_eq!(p.in_sync, vec!["refs/heads/main".to_string()]);
    }

    #[test]
    fn only_branches_and_tags() {
        let p = run(
            &[
                ("refs/heads/main", 3),
                ("refs/notes/commits", 2),
                ("HEAD", 3),
                ("refs/heads/", 1),
            ],
            &[("refs/meta/config", 1)],
            &[("refs/meta/config", 1)],
            true,
            true,
        );
        assert_eq!(p.commands, vec![cmd("refs/heads/main", None, Some(3))]);
        assert!(p.diverged.is_empty() && p.in_sync.is_empty());
    }
}
