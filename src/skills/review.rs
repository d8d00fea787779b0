//! `[review]` in `skillsd.toml`: whether changes to a branch need approvals, who may
//! still push to it directly, and whose approval a path needs (CODEOWNERS-like). Read
//! from the target branch's tip like every rule, so a change cannot relax the review
//! it is under.
//!
//! ```toml
//! [review]
//! required_approvals = 1          # 0 (the default): no review
//! direct_push = ["admin"]         # roles (reader, writer, admin) or user names
//! dismiss_stale = true            # a new patch set clears approvals
//! [review.owners]
//! "skills/security/**" = ["alice", "admin"]
//! ```

use super::rules::CONFIG_PATH;
use super::skill::{Check, Problem};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The most approvals a branch may require.
pub const MAX_REQUIRED_APPROVALS: i64 = 20;

/// The roles an entry of `direct_push` or `owners` may name.
pub const ROLES: [&str; 3] = ["reader", "writer", "admin"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewFile {
    required_approvals: Option<i64>,
    direct_push: Option<Vec<String>>,
    dismiss_stale: Option<bool>,
    #[serde(default)]
    owners: BTreeMap<String, OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The review a branch asks for.
#[derive(Debug, Clone)]
pub struct Review {
    /// Approvals (by others than the author) a change needs to merge; 0: review off.
    pub required_approvals: u32,
    /// Who may still push to the branch directly: roles or user names.
    pub direct_push: Vec<String>,
    /// Does a new patch set clear the approvals given before?
    pub dismiss_stale: bool,
    /// Paths whose changes need an approval from one of their owners.
    pub owners: Vec<Owners>,
}

/// One `[review.owners]` entry.
#[derive(Debug, Clone)]
pub struct Owners {
    /// As written.
    pub pattern: String,
    matcher: globset::GlobMatcher,
    /// Roles or user names; an approval from any one of them satisfies the entry.
    pub who: Vec<String>,
}

impl Default for Review {
    fn default() -> Review {
        Review {
            required_approvals: 0,
            direct_push: vec!["admin".to_string()],
            dismiss_stale: true,
            owners: Vec::new(),
        }
    }
}

/// Does `entry` (a role or a user name) name `user` with `role`?
pub fn names(entry: &str, user: &str, role: &str) -> bool {
    if ROLES.contains(&entry) {
        // Roles are ordered: `writer` includes admins.
        rank(role) >= rank(entry)
    } else {
        entry == user
    }
}

fn rank(role: &str) -> u8 {
    match role {
        "admin" => 2,
        "writer" => 1,
        _ => 0,
    }
}

impl Review {
    /// Does the branch take changes only through review?
    pub fn enabled(&self) -> bool {
        self.required_approvals > 0 || !self.owners.is_empty()
    }

    /// May `user` (with `role` on the repository) push to the branch directly?
    pub fn may_push_directly(&self, user: &str, role: &str) -> bool {
        !self.enabled() || self.direct_push.iter().any(|e| names(e, user, role))
    }

    /// The owner entries whose pattern matches `path`.
    pub fn owners_of<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Owners> + 'a {
        self.owners.iter().filter(move |o| o.matcher.is_match(path))
    }
}

/// Compiles `[review]`; every problem goes to `problems`, located in `text` where the
/// key can be found.
pub(crate) fn build(file: ReviewFile, text: &str, problems: &mut Vec<Problem>) -> Review {
    let mut review = Review::default();
    let at = |problem: Problem, key: &str| match line_of(text, key) {
        Some(line) => problem.at(line, None),
        None => problem,
    };
    if let Some(n) = file.required_approvals {
        if (0..=MAX_REQUIRED_APPROVALS).contains(&n) {
            review.required_approvals = n as u32;
        } else {
            problems.push(at(
                Problem::new(Check::Rules, CONFIG_PATH, format!("{n} is out of range"))
                    .field("review.required_approvals")
                    .hint(format!(
                        "use a number from 0 (no review) to {MAX_REQUIRED_APPROVALS}"
                    )),
                "required_approvals",
            ));
        }
    }
    if let Some(dismiss) = file.dismiss_stale {
        review.dismiss_stale = dismiss;
    }
    if let Some(list) = file.direct_push {
        for entry in &list {
            if let Some(p) = bad_entry(entry, "review.direct_push") {
                problems.push(at(p, "direct_push"));
            }
        }
        review.direct_push = list;
    }
    for (pattern, who) in file.owners {
        let field = format!("review.owners.\"{pattern}\"");
        let who = match who {
            OneOrMany::One(w) => vec![w],
            OneOrMany::Many(w) => w,
        };
        let mut bad = false;
        if who.is_empty() {
            problems.push(at(
                Problem::new(Check::Rules, CONFIG_PATH, "no owner is named")
                    .field(&field)
                    .hint("name at least one user or role, e.g. [\"alice\", \"admin\"]"),
                &pattern,
            ));
            bad = true;
        }
        for entry in &who {
            if let Some(p) = bad_entry(entry, &field) {
                problems.push(at(p, &pattern));
                bad = true;
            }
        }
        let trimmed = pattern
            .trim()
            .trim_start_matches("./")
            .trim_start_matches('/');
        // A folder (`skills/security/`) means everything in it.
        let glob = if trimmed.ends_with('/') {
            format!("{trimmed}**")
        } else {
            trimmed.to_string()
        };
        match globset::GlobBuilder::new(&glob)
            .literal_separator(true)
            .build()
        {
            Ok(g) if !trimmed.is_empty() => {
                if !bad {
                    review.owners.push(Owners {
                        pattern: pattern.clone(),
                        matcher: g.compile_matcher(),
                        who,
                    });
                }
            }
            Ok(_) => problems.push(at(
                Problem::new(Check::Rules, CONFIG_PATH, "an empty pattern matches no file")
                    .field(&field)
                    .hint("name files or folders, e.g. \"skills/security/**\""),
                &pattern,
            )),
            Err(e) => problems.push(at(
                Problem::new(
                    Check::Rules,
                    CONFIG_PATH,
                    format!("`{pattern}` is not a valid pattern: {}", e.kind()),
                )
                .field(&field)
                .hint("`*` stands for one name, `**` for any number of folders: \"skills/security/**\""),
                &pattern,
            )),
        }
    }
    review
}

/// A problem with one entry of a list of users and roles.
fn bad_entry(entry: &str, field: &str) -> Option<Problem> {
    let ok = !entry.is_empty()
        && entry.len() <= 64
        && entry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    (!ok).then(|| {
        Problem::new(
            Check::Rules,
            CONFIG_PATH,
            format!("`{}` is not a user name or a role", entry.escape_debug()),
        )
        .field(field)
        .hint("name users as they sign in (`alice`) or roles: \"writer\", \"admin\"")
    })
}

/// The first line of `text` (1-based) that mentions `key`.
fn line_of(text: &str, key: &str) -> Option<u32> {
    text.lines()
        .position(|l| l.contains(key))
        .map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Review, Vec<Problem>) {
        #[derive(Deserialize)]
        struct Doc {
            review: ReviewFile,
        }
        let doc: Doc = toml::from_str(text).expect("toml");
        let mut problems = Vec::new();
        let review = build(doc.review, text, &mut problems);
        (review, problems)
    }

    #[test]
    fn defaults_are_off_and_admins_only() {
        let r = Review::default();
        assert!(!r.enabled());
        assert!(r.may_push_directly("bob", "writer"));
        let (r, p) = parse("[review]\nrequired_approvals = 1\n");
        assert!(p.is_empty());
        assert!(r.enabled());
        assert!(r.dismiss_stale);
        assert!(!r.may_push_directly("bob", "writer"));
        assert!(r.may_push_directly("root", "admin"));
    }

    #[test]
    fn roles_rank_and_users_are_named() {
        assert!(names("writer", "x", "admin"));
        assert!(!names("admin", "x", "writer"));
        assert!(names("alice", "alice", "reader"));
        assert!(!names("alice", "bob", "admin"));
    }

    #[test]
    fn owners_match_paths_and_folders() {
        let (r, p) = parse(
            "[review]\nrequired_approvals = 1\n[review.owners]\n\"skills/security/\" = \"alice\"\n\"skills/*.md\" = [\"bob\", \"admin\"]\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let of = |path: &str| {
            r.owners_of(path)
                .map(|o| o.pattern.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(of("skills/security/a/SKILL.md"), vec!["skills/security/"]);
        assert_eq!(of("skills/x.md"), vec!["skills/*.md"]);
        assert!(of("skills/x/y.md").is_empty());
    }

    #[test]
    fn bad_values_are_located_problems() {
        let text = "[review]\nrequired_approvals = 99\ndirect_push = [\"a b\"]\n[review.owners]\n\"skills/[\" = []\n";
        let (_, p) = parse(text);
        assert_eq!(p.len(), 4, "{p:?}");
        assert_eq!(p[0].line, Some(2));
        assert_eq!(p[1].line, Some(3));
        assert!(p.iter().all(|p| p.hint.is_some()));
    }
}
