//! The bodies webhooks receive, one type each (GitHub's shapes where GitHub has one:
//! a push's refs, commits and people; skillsd's own for the skills and changes).

use serde::Serialize;
use uuid::Uuid;

/// A `push` (and `skills`) event: one ref a push moved.
#[derive(Serialize)]
pub struct Push<'a> {
    #[serde(rename = "ref")]
    pub reference: &'a str,
    pub before: String,
    pub after: String,
    pub created: bool,
    pub deleted: bool,
    pub repository: Repository<'a>,
    pub pusher: Pusher<'a>,
    pub sender: Sender<'a>,
    pub push_id: Uuid,
    pub commits: Vec<Commit>,
    pub commits_truncated: bool,
    pub head_commit: Option<Commit>,
    /// The skills the push's sync wrote (the default branch only), at most
    /// [`super::MAX_SKILLS`] of `skills_total`.
    pub skills: &'a [Skill],
    pub skills_total: i64,
}

#[derive(Serialize)]
pub struct Repository<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<&'a str>,
}

#[derive(Serialize)]
pub struct Pusher<'a> {
    pub name: &'a str,
}

#[derive(Serialize)]
pub struct Sender<'a> {
    pub login: &'a str,
}

/// A commit as a push event lists it.
#[derive(Serialize)]
pub struct Commit {
    pub id: String,
    pub tree_id: String,
    pub distinct: bool,
    pub message: String,
    /// The author's date, RFC 3339 with its offset.
    pub timestamp: Option<String>,
    pub author: Person,
    pub committer: Person,
}

#[derive(Serialize)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// A skill a push's sync wrote, as its sync-log row has it.
#[derive(Serialize)]
pub struct Skill {
    pub id: Option<Uuid>,
    pub slug: Option<String>,
    pub path: Option<String>,
    pub operation: String,
    pub status: String,
    pub error: Option<String>,
    pub commit: Option<String>,
}

/// A `change` event: a change under review opened, updated, approved, … merged.
#[derive(Serialize)]
pub struct ChangeEvent<'a> {
    pub action: String,
    pub change: Change<'a>,
    pub repository: Repository<'a>,
    pub sender: Sender<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change<'a> {
    pub number: i32,
    pub title: &'a str,
    pub target: &'a str,
    pub author: &'a str,
    pub topic: Option<&'a str>,
    pub state: &'a str,
    pub patch_set: i32,
    #[serde(rename = "ref")]
    pub reference: String,
}

/// A `ping`: sent when a webhook is added or tested.
#[derive(Serialize)]
pub struct Ping<'a> {
    pub zen: &'static str,
    pub hook_id: i64,
    pub hook: Hook,
    pub repository: Repository<'a>,
}

#[derive(Serialize)]
pub struct Hook {
    pub events: Vec<String>,
}
