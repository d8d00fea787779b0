//! Changes under review, as data: their rows ([`store`]), states, the `[review]` of a
//! target branch, and what a push that merges one carries ([`Merging`]). Below both
//! the push ([`crate::receive`], which opens changes and marks them merged inside its
//! transaction) and the actions on changes ([`crate::review`]: approve, reject, merge),
//! so that neither imports the other's way up.

pub mod store;

use gix::ObjectId;

/// A change's state, in the seed's words (a merged change's skills are PUBLISHED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeState {
    Draft,
    InReview,
    Merged,
    Abandoned,
}

impl ChangeState {
    pub const ALL: [&'static str; 4] = ["DRAFT", "IN_REVIEW", "MERGED", "ABANDONED"];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Draft => "DRAFT",
            ChangeState::InReview => "IN_REVIEW",
            ChangeState::Merged => "MERGED",
            ChangeState::Abandoned => "ABANDONED",
        }
    }

    /// `IN_REVIEW`, `in_review`, `in-review` and `open` (DRAFT and IN_REVIEW) are read.
    pub fn parse(s: &str) -> Option<ChangeState> {
        match s.to_ascii_uppercase().replace('-', "_").as_str() {
            "DRAFT" => Some(ChangeState::Draft),
            "IN_REVIEW" => Some(ChangeState::InReview),
            "MERGED" => Some(ChangeState::Merged),
            "ABANDONED" => Some(ChangeState::Abandoned),
            _ => None,
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, ChangeState::Draft | ChangeState::InReview)
    }
}

/// The states a `--state` / `?state=` filter names: `open`, `all`, or one state.
pub fn states_filter(filter: Option<&str>) -> Option<Vec<&'static str>> {
    match filter.map(str::to_ascii_lowercase).as_deref() {
        None | Some("open") => Some(vec!["DRAFT", "IN_REVIEW"]),
        Some("all") => Some(Vec::new()),
        Some("closed") => Some(vec!["MERGED", "ABANDONED"]),
        Some(s) => ChangeState::parse(s).map(|st| vec![st.as_str()]),
    }
}

/// A push that merges a change: its transaction checks again, under the change's
/// lock, that the change may be merged, and marks it merged.
#[derive(Debug, Clone)]
pub struct Merging {
    pub change: store::Change,
    /// The patch set being merged (its commit is what the branch gets, or a parent of
    /// the merge commit).
    pub patch_set: i32,
    /// The target branch's `[review]`, read from its tip the merge starts from.
    pub review: crate::skills::review::Review,
    /// The files the change touches (for `[review.owners]`).
    pub paths: Vec<String>,
}

/// The address of a change's page, when the pages' address is known.
pub fn page_url(web_url: Option<&str>, repo: &str, number: i32) -> Option<String> {
    web_url.map(|u| {
        if repo == crate::repos::DEFAULT_REPO {
            format!("{}/changes/{number}", u.trim_end_matches('/'))
        } else {
            format!(
                "{}/changes/{number}?repo={}",
                u.trim_end_matches('/'),
                percent_encoding::utf8_percent_encode(repo, percent_encoding::NON_ALPHANUMERIC)
            )
        }
    })
}

/// A branch's `[review]`, read from its tip `tip` (the built-in rules' — no review —
/// when they do not load: those are the push's own problem to report).
pub fn target_review(repo: &gix::Repository, tip: ObjectId) -> crate::skills::review::Review {
    repo.find_commit(tip)
        .ok()
        .and_then(|c| c.tree().ok())
        .and_then(|tree| crate::skills::Rules::load(&crate::commit_tree::TreeSource { tree }).ok())
        .map(|r| r.review.clone())
        .unwrap_or_default()
}
