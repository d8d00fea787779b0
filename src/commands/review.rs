//! `changes [REPO] [--state open|draft|in-review|merged|abandoned|closed|all]` and
//! `review N [REPO] [--approve|--reject|--merge|--abandon|--ready] [-m MESSAGE]` over
//! SSH. Plain output: one `key: value` or tab-separated record per line.

use super::Output;
use crate::db::users::User;
use crate::repos::DEFAULT_REPO;
use crate::review::store::{self, Change};
use crate::review::{Action, Service};

pub const HELP: &str = "\
  changes [REPO] [--state S]   changes: open (default), draft, in-review, merged, abandoned, closed, all
  review N [REPO]              a change: state, patch sets, reviews, what it still needs, its skills
  review N --approve [-m MSG]  approve the latest patch set (not your own change)
  review N --reject -m MSG     ask for changes
  review N --merge             publish it (a fast-forward, or a merge commit when the branch moved)
  review N --ready             a draft goes to review
  review N --abandon           close it without merging
";

use super::ok;

/// [`super::fail`], the line ended.
fn fail(stderr: String) -> Output {
    if stderr.ends_with('\n') {
        super::fail(stderr)
    } else {
        super::fail(format!("{stderr}\n"))
    }
}

/// Runs `changes` or `review`; `None` for any other command.
pub async fn run(svc: &Service, user: &User, command: &str) -> Option<Output> {
    let trimmed = command.trim_start();
    let (name, rest) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    match name {
        "changes" => Some(changes(svc, rest).await),
        "review" => Some(review(svc, user, rest).await),
        _ => None,
    }
}

async fn changes(svc: &Service, rest: &str) -> Output {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let mut repo = None;
    let mut state = None;
    let mut i = 0;
    while i < words.len() {
        match words[i] {
            "--state" | "-s" => {
                state = words.get(i + 1).copied();
                if state.is_none() {
                    return fail("error: --state needs a value: open, draft, in-review, merged, abandoned, closed or all".into());
                }
                i += 2;
            }
            w if w.starts_with("--state=") => {
                state = w.strip_prefix("--state=");
                i += 1;
            }
            w if !w.starts_with('-') && repo.is_none() => {
                repo = Some(w);
                i += 1;
            }
            w => return fail(format!("error: `changes` does not take `{w}`\n{}", HELP)),
        }
    }
    let Some(states) = crate::review::states_filter(state) else {
        return fail(format!(
            "error: `{}` is not a state: open, draft, in-review, merged, abandoned, closed or all",
            state.unwrap_or_default()
        ));
    };
    let repo = match crate::repos::RepoStore::canonical_name(repo.unwrap_or(DEFAULT_REPO)) {
        Ok(r) => r,
        Err(_) => {
            return fail(format!(
                "error: repository `{}` not found",
                repo.unwrap_or(DEFAULT_REPO)
            ));
        }
    };
    let listed = async {
        let mut conn = svc.pool.acquire().await?;
        store::list(&mut conn, Some(&repo), &states, 500, 0).await
    }
    .await;
    match listed {
        Ok(rows) => {
            let mut out = String::new();
            for c in rows {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\n",
                    c.number,
                    c.state,
                    c.target,
                    c.author,
                    c.updated_at.format("%Y-%m-%d %H:%M"),
                    c.title
                ));
            }
            ok(out)
        }
        Err(e) => fail(format!("error: the database is unavailable: {e}")),
    }
}

/// `review N [REPO] [--approve|--reject|--merge|--abandon|--ready] [-m MESSAGE]`: the
/// message is the rest of the line after `-m` (quotes around it dropped), so
/// `ssh host review 3 --approve -m looks good` works unquoted.
async fn review(svc: &Service, user: &User, rest: &str) -> Output {
    let (head, message) = match split_message(rest) {
        Some((h, m)) => (h, Some(m)),
        None => (rest, None),
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    let Some(first) = words.first() else {
        return fail(format!("error: which change? review N\n{HELP}"));
    };
    let Some(number) = first
        .trim_start_matches('#')
        .parse::<i32>()
        .ok()
        .filter(|n| *n > 0)
    else {
        return fail(format!("error: `{first}` is not a change number: review N"));
    };
    let mut repo = None;
    let mut action = None;
    for w in &words[1..] {
        let a = match *w {
            "--approve" => Action::Approve(String::new()),
            "--reject" => Action::Reject(String::new()),
            "--merge" => Action::Merge,
            "--abandon" => Action::Abandon,
            "--ready" => Action::Ready,
            w if !w.starts_with('-') && repo.is_none() => {
                repo = Some(w);
                continue;
            }
            w => return fail(format!("error: `review` does not take `{w}`\n{HELP}")),
        };
        if action.is_some() {
            return fail(
                "error: one of --approve, --reject, --merge, --abandon, --ready at a time".into(),
            );
        }
        action = Some(a);
    }
    let repo = match crate::repos::RepoStore::canonical_name(repo.unwrap_or(DEFAULT_REPO)) {
        Ok(r) => r,
        Err(_) => {
            return fail(format!(
                "error: repository `{}` not found",
                repo.unwrap_or(DEFAULT_REPO)
            ));
        }
    };
    let message = message.unwrap_or_default();
    let action = match action {
        None if !message.is_empty() => {
            return fail("error: -m goes with --approve or --reject".into());
        }
        None => return show(svc, &repo, number).await,
        Some(Action::Approve(_)) => Action::Approve(message),
        Some(Action::Reject(_)) => Action::Reject(message),
        Some(_) if !message.is_empty() => {
            return fail("error: -m goes with --approve or --reject".into());
        }
        Some(a) => a,
    };
    match crate::review::act(svc, user, &repo, number, action).await {
        Ok(line) => ok(format!("{}\n", line.trim_end())),
        Err(why) => fail(format!("error: {why}")),
    }
}

/// Splits `... -m MESSAGE` (or `--message`) into the words before and the message.
fn split_message(rest: &str) -> Option<(&str, String)> {
    let mut at = None;
    for flag in [" -m ", " --message ", " -m\t"] {
        let padded_at = format!(" {rest}").find(flag);
        if let Some(i) = padded_at {
            at = Some(at.map_or(i, |a: usize| a.min(i)));
        }
    }
    let i = at?;
    // `i` is in the padded string: the flag starts at `i` there, at `i - 1` in `rest`.
    let head = &rest[..i.saturating_sub(1).min(rest.len())];
    let after = &rest[i.saturating_sub(1)..];
    let after = after.trim_start();
    let after = after
        .strip_prefix("--message")
        .or_else(|| after.strip_prefix("-m"))
        .unwrap_or(after)
        .trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| after.strip_prefix(*q).and_then(|a| a.strip_suffix(*q)))
        .unwrap_or(after);
    Some((head, unquoted.replace("\\n", "\n")))
}

/// `review N`: the change in `key: value` lines, then its patch sets, reviews, what it
/// still needs and its skills.
async fn show(svc: &Service, repo: &str, number: i32) -> Output {
    let loaded = async {
        let mut conn = svc.pool.acquire().await?;
        let Some(change) = store::find(&mut conn, repo, number).await? else {
            return Ok(None);
        };
        let patch_sets = store::patch_sets(&mut conn, change.id).await?;
        let reviews = store::reviews(&mut conn, change.id).await?;
        let skills = store::skills(&mut conn, change.id).await?;
        Ok::<_, sqlx::Error>(Some((change, patch_sets, reviews, skills)))
    }
    .await;
    let (change, patch_sets, reviews, skills) = match loaded {
        Ok(Some(found)) => found,
        Ok(None) => return fail(format!("error: no change {number} in {repo}")),
        Err(e) => return fail(format!("error: the database is unavailable: {e}")),
    };
    let needs = crate::review::readiness(svc, &change, &reviews).await;
    ok(render(svc, &change, &patch_sets, &reviews, &skills, &needs))
}

fn render(
    svc: &Service,
    change: &Change,
    patch_sets: &[store::PatchSet],
    reviews: &[store::ReviewRow],
    skills: &[store::ChangeSkill],
    needs: &Result<Vec<String>, String>,
) -> String {
    let mut out = header(svc, change, needs);
    if !change.description.is_empty() {
        out.push_str("\ndescription:\n");
        for line in change.description.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str("\npatch sets:\n");
    for p in patch_sets {
        out.push_str(&format!(
            "  {}\t{}\t{}\t{}\n",
            p.number,
            &p.commit_sha[..p.commit_sha.len().min(12)],
            p.pushed_by,
            p.created_at.format("%Y-%m-%d %H:%M")
        ));
    }
    out.push_str("\nreviews:\n");
    if reviews.is_empty() {
        out.push_str("  (none yet)\n");
    }
    for r in reviews {
        out.push_str(&format!(
            "  {}\t{}\tpatch set {}\t{}{}\n",
            r.reviewer,
            if r.verdict == "approve" {
                "approved"
            } else {
                "rejected"
            },
            r.patch_set,
            if r.dismissed_at.is_some() {
                "(dismissed)\t"
            } else {
                ""
            },
            r.message
        ));
    }
    out.push_str("\nskills:\n");
    if skills.is_empty() {
        out.push_str("  (no skill files change)\n");
    }
    for s in skills {
        out.push_str(&format!(
            "  {}\t{}\t{}{}\t{}\n",
            s.operation,
            s.slug,
            s.path,
            s.old_path
                .as_ref()
                .map(|o| format!(" (from {o})"))
                .unwrap_or_default(),
            crate::review::diff_summary(s)
        ));
    }
    out
}

/// The change's fields, one `key: value` line each: state, who, when, its page, how to
/// fetch it, whether it can be merged.
fn header(svc: &Service, change: &Change, needs: &Result<Vec<String>, String>) -> String {
    let mut out = format!(
        "change: {}\ntitle: {}\nstate: {}\nrepo: {}\ntarget: {}\nauthor: {}\n",
        change.number, change.title, change.state, change.repo, change.target, change.author
    );
    if let Some(t) = &change.topic {
        out.push_str(&format!("topic: {t}\n"));
    }
    out.push_str(&format!(
        "created: {}\nupdated: {}\n",
        change.created_at.format("%Y-%m-%d %H:%M"),
        change.updated_at.format("%Y-%m-%d %H:%M")
    ));
    if let (Some(by), Some(at)) = (&change.closed_by, change.closed_at) {
        out.push_str(&format!(
            "{}: {by} at {}\n",
            if change.state == "MERGED" {
                "merged-by"
            } else {
                "closed-by"
            },
            at.format("%Y-%m-%d %H:%M")
        ));
    }
    if let Some(c) = &change.merged_commit {
        out.push_str(&format!("merged-commit: {c}\n"));
    }
    if let Some(url) = crate::review::page_url(svc.web_url.as_deref(), &change.repo, change.number)
    {
        out.push_str(&format!("page: {url}\n"));
    }
    out.push_str(&format!(
        "fetch: git fetch origin refs/changes/{}/head\n",
        change.number
    ));
    if change.state().is_open() {
        match needs {
            Ok(n) if n.is_empty() => out.push_str("mergeable: yes\n"),
            Ok(n) => {
                out.push_str("mergeable: no\n");
                for m in n {
                    out.push_str(&format!("needs: {m}\n"));
                }
            }
            Err(e) => out.push_str(&format!("mergeable: unknown ({e})\n")),
        }
    }
    out
}
