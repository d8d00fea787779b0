//! Skills: what a skill file is, how its frontmatter is parsed, the rules it must
//! follow, and how problems are shown to people.
//!
//! This module is pure: it knows nothing of git, SSH or the database, so the server,
//! `skillsd check` and the git hooks all share exactly the same rules and messages.

pub(crate) mod agent;
pub mod frontmatter;
pub mod injection;
pub mod padding;
pub mod policy;
pub mod report;
pub mod review;
pub mod rules;
mod schema;
pub mod secrets;
pub mod skill;
pub mod tree;
pub mod unicode;
pub mod validate;

pub use report::{adoption_note, push_report, render_grouped, render_problems, summary_line};
pub use rules::{Layout, Rules};
pub use skill::{Check, Level, any_error};
pub use unicode::{hidden_text, invisible};
pub use validate::{Problem, Skill, Status, validate_skill};
