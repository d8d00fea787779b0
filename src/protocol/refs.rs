//! The refs a repository advertises: every ref with its object id, the peeled
//! target of annotated tags, and where `HEAD` points.

use super::{ProtocolError, Result};
use gix::ObjectId;

#[derive(Debug, Clone)]
pub struct AdvertisedRef {
    pub name: String,
    pub oid: ObjectId,
    /// For an annotated tag: the object it finally points at.
    pub peeled: Option<ObjectId>,
}

#[derive(Debug, Clone)]
pub struct RefList {
    pub refs: Vec<AdvertisedRef>,
    /// The ref `HEAD` points at (e.g. `refs/heads/main`), whether or not it exists.
    pub head_target: Option<String>,
    /// The object `HEAD` resolves to, if the branch exists.
    pub head_oid: Option<ObjectId>,
}

impl RefList {
    pub fn read(repo: &gix::Repository) -> Result<RefList> {
        let mut refs = Vec::new();
        let platform = repo.references().map_err(ProtocolError::git)?;
        for r in platform.all().map_err(ProtocolError::git)? {
            let mut r = r.map_err(ProtocolError::git)?;
            let name = r.name().as_bstr().to_string();
            let Some(oid) = r.target().try_id().map(|id| id.to_owned()) else {
                continue; // symbolic refs other than HEAD are not advertised
            };
            // A ref that cannot be served (its object or a tag's target missing) is
            // left out and logged: one bad ref must not make the whole repository
            // unreachable, and it is never offered to a client.
            let peeled = match repo.find_header(oid) {
                Ok(h) if h.kind() == gix::object::Kind::Tag => match r.peel_to_id() {
                    Ok(id) => Some(id.detach()),
                    Err(e) => {
                        tracing::error!(r#ref = %name, %oid, error = %e, "ref skipped: its tag cannot be peeled");
                        continue;
                    }
                },
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(r#ref = %name, %oid, error = %e, "ref skipped: its object is missing");
                    continue;
                }
            };
            refs.push(AdvertisedRef { name, oid, peeled });
        }
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        let head = repo.find_reference("HEAD").ok();
        let head_target = head
            .as_ref()
            .and_then(|h| h.target().try_name().map(|n| n.as_bstr().to_string()));
        let head_oid = match &head_target {
            Some(t) => refs.iter().find(|r| &r.name == t).map(|r| r.oid),
            None => head
                .as_ref()
                .and_then(|h| h.target().try_id().map(|i| i.to_owned())),
        };
        Ok(RefList {
            refs,
            head_target,
            head_oid,
        })
    }

    pub fn get(&self, name: &str) -> Option<&AdvertisedRef> {
        self.refs.iter().find(|r| r.name == name)
    }

    /// Is `oid` the tip (or peeled tip) of an advertised ref? Only such objects may be
    /// asked for.
    pub fn is_tip(&self, oid: &ObjectId) -> bool {
        self.head_oid.as_ref() == Some(oid)
            || self
                .refs
                .iter()
                .any(|r| &r.oid == oid || r.peeled.as_ref() == Some(oid))
    }
}
