//! `NOTIFY skills_changed`: what a sync announces in its own transaction
//! ([`Changed`]), and the event the live pages hand to their streams and the MCP
//! sessions read ([`LiveEvent`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The channel every sync notifies.
pub const CHANNEL: &str = "skills_changed";

/// NOTIFY payloads are limited to 8000 bytes: past this, the slugs are left out.
const MAX_PAYLOAD: usize = 7000;

/// What one sync changed: its repository, branch and commit, its counts and, when
/// they fit, the changed skills' slugs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Changed {
    pub repo: String,
    pub branch: String,
    pub commit: String,
    pub created: usize,
    pub updated: usize,
    pub renamed: usize,
    pub deleted: usize,
    pub failed: usize,
    /// `None`: too many to send.
    pub slugs: Option<BTreeSet<String>>,
}

impl Changed {
    /// The payload to send: without the slugs when they do not fit.
    pub fn payload(mut self) -> String {
        let text = serde_json::to_string(&self).unwrap_or_default();
        if text.len() <= MAX_PAYLOAD {
            return text;
        }
        self.slugs = None;
        serde_json::to_string(&self).unwrap_or_default()
    }

    /// A payload as sent; one that does not parse names nothing.
    pub fn parse(payload: &str) -> Changed {
        serde_json::from_str(payload).unwrap_or_default()
    }
}

/// One live event: the cache's counts now, and what changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveEvent {
    pub health: LiveHealth,
    pub repo: Option<String>,
    pub commit: Option<String>,
    pub slugs: Option<BTreeSet<String>>,
}

/// The health counts a live page shows.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LiveHealth {
    pub synced: i64,
    pub pending: i64,
    pub failed: i64,
    pub unknown: i64,
    pub total: i64,
    pub search_pending: i64,
    pub with_warnings: i64,
    pub healthy: bool,
}

impl From<super::health::Health> for LiveHealth {
    fn from(h: super::health::Health) -> Self {
        LiveHealth {
            synced: h.synced,
            pending: h.pending,
            failed: h.failed,
            unknown: h.unknown,
            total: h.total,
            search_pending: h.search_pending,
            with_warnings: h.with_warnings,
            healthy: h.healthy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_that_do_not_fit_are_left_out() {
        let few = Changed {
            repo: "skills".into(),
            slugs: Some(["a".to_string()].into()),
            ..Default::default()
        };
        assert_eq!(Changed::parse(&few.clone().payload()), few);
        let many = Changed {
            slugs: Some((0..1000).map(|i| format!("skill-{i}")).collect()),
            ..few
        };
        let sent = many.payload();
        assert!(sent.len() <= MAX_PAYLOAD, "{}", sent.len());
        assert_eq!(Changed::parse(&sent).slugs, None);
        assert_eq!(Changed::parse("not json"), Changed::default());
    }
}
