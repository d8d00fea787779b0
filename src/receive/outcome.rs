//! A push's outcome, per ref: accepted (`None`), or refused with a [`Refusal`] — a
//! reason from [`Reason`] and the words the pusher reads. The report-status lines
//! (`ok`/`ng`), the stored push record and the metrics all derive from it; nothing is
//! inferred from the text.

pub use crate::metrics::Reason;

/// Why one ref update was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    /// What the pusher reads on the ref's `ng` line.
    pub message: String,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}

/// One ref update's outcome: `None` is accepted.
pub type Outcome = Option<Refusal>;

/// The reason a refused push is counted under: that of its first ref refused for its
/// own sake (a ref refused only because an atomic push's other ref was is not);
/// `None` when a ref was accepted.
pub fn push_reason(results: &[Outcome]) -> Option<Reason> {
    if results.iter().any(Option::is_none) {
        return None;
    }
    let reasons = results.iter().flatten().map(|r| r.reason);
    reasons
        .clone()
        .find(|r| *r != Reason::NotStored)
        .or_else(|| reasons.clone().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_counts_under_its_first_own_reason() {
        let stale = Some(Refusal::new(Reason::Stale, "stale info"));
        let atomic = Some(Refusal::new(Reason::NotStored, "atomic push failed"));
        assert_eq!(push_reason(&[None, stale.clone()]), None);
        assert_eq!(push_reason(&[atomic.clone(), stale]), Some(Reason::Stale));
        assert_eq!(push_reason(&[atomic]), Some(Reason::NotStored));
        assert_eq!(push_reason(&[]), None);
    }
}
