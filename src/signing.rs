//! A git commit's signature, read by gix (`Commit::signature`: the armored text and the
//! bytes it covers) and checked by the `ssh-key` crate's `sshsig` implementation
//! (russh's own) with the key the signature carries, in git's namespace. Whether that
//! key belongs to someone is the caller's question: the push's gate
//! ([`crate::receive::signatures`]) and the cache's history ([`crate::cache::commits`]).

use gix::ObjectId;
use russh::keys::ssh_key::SshSig;
use russh::keys::{HashAlg, PublicKey};

/// What a commit's signature is, on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    Unsigned,
    /// Not an SSH signature, or not readable as one: why.
    Unreadable(Unreadable),
    /// An SSH signature that verifies with the key it carries (`SHA256:…`).
    Valid {
        key: String,
    },
    /// An SSH signature that does not verify: its key, and why.
    Invalid {
        key: String,
        why: russh::keys::ssh_key::Error,
    },
}

/// Why a signature cannot be read as an SSH signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error(
        "it is signed with OpenPGP; skillsd verifies SSH signatures (git config gpg.format ssh)"
    )]
    OpenPgp,
    #[error("it is signed with X.509; skillsd verifies SSH signatures (git config gpg.format ssh)")]
    X509,
    #[error("its signature cannot be read ({0})")]
    NotSshSig(#[source] russh::keys::ssh_key::Error),
}

impl Signature {
    /// The cache's words: `valid`, `invalid`, `unsigned`.
    pub fn state(&self) -> &'static str {
        match self {
            Signature::Unsigned => "unsigned",
            Signature::Valid { .. } => "valid",
            Signature::Invalid { .. } | Signature::Unreadable(_) => "invalid",
        }
    }

    /// The signing key's fingerprint, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Signature::Valid { key } | Signature::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A commit that could not be read to look at its signature, with the git error.
#[derive(Debug, thiserror::Error)]
#[error("cannot read commit {commit}: {source}")]
pub struct ReadError {
    pub commit: ObjectId,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// Reads and checks `commit`'s signature.
pub fn inspect(repo: &gix::Repository, id: ObjectId) -> Result<Signature, ReadError> {
    let read = |e: Box<dyn std::error::Error + Send + Sync>| ReadError {
        commit: id,
        source: e,
    };
    let commit = repo.find_commit(id).map_err(|e| read(e.into()))?;
    let Some((signature, signed)) = commit.signature().map_err(|e| read(e.into()))? else {
        return Ok(Signature::Unsigned);
    };
    let text = String::from_utf8_lossy(signature.as_ref()).into_owned();
    if text.contains("BEGIN PGP SIGNATURE") {
        return Ok(Signature::Unreadable(Unreadable::OpenPgp));
    }
    if text.contains("BEGIN SIGNED MESSAGE") || text.contains("BEGIN CERTIFICATE") {
        return Ok(Signature::Unreadable(Unreadable::X509));
    }
    let sig = match SshSig::from_pem(text.trim().as_bytes()) {
        Ok(s) => s,
        Err(e) => return Ok(Signature::Unreadable(Unreadable::NotSshSig(e))),
    };
    let key = PublicKey::from(sig.public_key().clone());
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let payload = signed.to_bstring();
    Ok(match key.verify("git", payload.as_ref(), &sig) {
        Ok(()) => Signature::Valid { key: fingerprint },
        Err(why) => Signature::Invalid {
            key: fingerprint,
            why,
        },
    })
}
