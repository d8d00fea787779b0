//! Signed commits (`[commits] require_signed = true` in `skillsd.toml`, read from the
//! branch's tip before the push, never from the push itself): every commit a push
//! brings to that branch must carry an SSH signature (git's `gpg.format=ssh`) that
//! verifies, in the `git` namespace, with a key registered to a skillsd user. The
//! signature is read by gix (`Commit::signature`: the armored text and the bytes it
//! covers) and verified by the `ssh-key` crate's `sshsig` implementation (russh's own).
//!
//! Commits the server makes itself — a review's merge commit, an edit in the browser
//! or the contents API, made for a signed-in user — carry no signature; their pushes
//! are in process and say so ([`super::pre_receive::Policy::server_made`]).

use crate::signing::Signature;
use crate::skills::{Check, Problem};
use gix::ObjectId;
use std::collections::HashMap;
use std::sync::Arc;

/// Who holds each registered key: `SHA256:…` fingerprint -> user name.
pub type Signers = HashMap<String, String>;

/// Reads the registered keys when a push needs them (one query, only then).
#[derive(Clone)]
pub struct SignersSource(pub Arc<dyn Fn() -> sqlx::Result<Signers> + Send + Sync>);

impl std::fmt::Debug for SignersSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignersSource")
    }
}

/// The registered keys, from the database.
pub async fn load(pool: &sqlx::PgPool) -> sqlx::Result<Signers> {
    let rows = sqlx::query!(
        "SELECT k.fingerprint, u.name FROM ssh_keys k JOIN users u ON u.id = k.user_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.fingerprint, r.name)).collect())
}

/// A commit's signature as verified against the registered keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// By this user's key (its fingerprint).
    By { user: String, key: String },
    /// Not signed at all.
    Unsigned,
    /// Signed, but not acceptably: why.
    Bad(Bad),
}

/// Why a signed commit is not acceptably signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bad {
    #[error(transparent)]
    Unreadable(#[from] crate::signing::Unreadable),
    #[error(
        "its signature by {user}'s key {key} does not verify ({why}): the commit was changed after it was signed"
    )]
    Changed {
        user: String,
        key: String,
        why: russh::keys::ssh_key::Error,
    },
    #[error("its signature does not verify ({why}), and its key {key} is no skillsd user's")]
    Invalid {
        key: String,
        why: russh::keys::ssh_key::Error,
    },
    #[error(
        "it is signed by a key no skillsd user has ({key}); register it with `skillsd user key add`"
    )]
    Unregistered { key: String },
}

/// Why a push's commits could not be walked to check their signatures.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Read(#[from] crate::signing::ReadError),
    #[error("cannot walk the pushed commits: {0}")]
    Walk(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the database is unavailable: {0}")]
    Signers(#[source] sqlx::Error),
    #[error("no user database to read the signing keys from")]
    NoSigners,
}

/// Verifies `commit`'s signature against the registered keys.
pub fn verify(
    repo: &gix::Repository,
    commit: ObjectId,
    signers: &Signers,
) -> Result<Verified, crate::signing::ReadError> {
    Ok(match crate::signing::inspect(repo, commit)? {
        Signature::Unsigned => Verified::Unsigned,
        Signature::Unreadable(why) => Verified::Bad(why.into()),
        Signature::Invalid { key, why } => Verified::Bad(match signers.get(&key) {
            Some(user) => Bad::Changed {
                user: user.clone(),
                key,
                why,
            },
            None => Bad::Invalid { key, why },
        }),
        Signature::Valid { key } => match signers.get(&key) {
            Some(user) => Verified::By {
                user: user.clone(),
                key,
            },
            None => Verified::Bad(Bad::Unregistered { key }),
        },
    })
}

/// The commits `new` brings that `hidden` does not reach, each checked: a problem per
/// commit that is unsigned or not acceptably signed (`ref_name` is what it is pushed
/// to). At most `limit` commits are read; more is a problem of its own.
pub fn check(
    repo: &gix::Repository,
    ref_name: &str,
    new: ObjectId,
    hidden: &[ObjectId],
    signers: &Signers,
    limit: usize,
) -> Result<Vec<Problem>, CheckError> {
    // The walk stops at commits: refs to tags are peeled, refs to anything else left out.
    let hidden: Vec<ObjectId> = hidden
        .iter()
        .filter_map(|id| {
            repo.find_object(*id)
                .ok()?
                .peel_to_kind(gix::object::Kind::Commit)
                .ok()
                .map(|c| c.id)
        })
        .collect();
    let walk = repo
        .rev_walk([new])
        .with_hidden(hidden)
        .all()
        .map_err(|e| CheckError::Walk(Box::new(e)))?;
    let mut problems = Vec::new();
    for (n, info) in walk.enumerate() {
        let info = info.map_err(|e| CheckError::Walk(Box::new(e)))?;
        if n >= limit {
            problems.push(
                Problem::new(
                    Check::Push,
                    ref_name,
                    format!("more than {limit} new commits to verify in one push"),
                )
                .hint("push the history in parts"),
            );
            break;
        }
        let short = &info.id.to_string()[..7];
        let why = match verify(repo, info.id, signers)? {
            Verified::By { .. } => continue,
            Verified::Unsigned => "it is not signed".to_string(),
            Verified::Bad(why) => why.to_string(),
        };
        problems.push(
            Problem::new(
                Check::Push,
                ref_name,
                format!("commit {short} cannot go to {ref_name}: {why}"),
            )
            .field("commits.require_signed")
            .hint(
                "this branch requires signed commits: `git config gpg.format ssh`, \
                 `git config user.signingkey ~/.ssh/id_ed25519.pub` (a key skillsd knows), then \
                 `git rebase --exec 'git commit --amend --no-edit -S' ORIGIN/BRANCH` and push again",
            ),
        );
    }
    Ok(problems)
}
