//! `skillsd check` (a working tree, with the server's rules and messages) and
//! `skillsd hook pre-receive|post-receive` (the flows live in `skillsd::hook`; here
//! only stdin and what is printed).

use anyhow::{Context as _, Result, bail};
use skillsd::config::Settings;

/// More errors than this, without a `skillsd.toml`, and `check` says what is missing
/// instead of listing them.
const FLOOD: usize = 20;

/// Whether the working tree at `path` has no `skillsd.toml` (the built-in rules).
pub(crate) fn check_rules_missing(path: &std::path::Path) -> bool {
    skillsd::check::rules_file(path).is_none()
}

pub(crate) fn check(
    path: &std::path::Path,
    format: &str,
    builtin_rules: bool,
    all: bool,
    settings: &Settings,
) -> Result<i32> {
    let max_depth = settings.policy.limits.max_tree_depth;
    let (count, problems) = skillsd::check::check_tree(path, max_depth)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if format == "json" {
        let (errors, warnings): (Vec<_>, Vec<_>) = problems.iter().partition(|p| p.is_error());
        #[derive(serde::Serialize)]
        struct Checked<'a> {
            checked: usize,
            errors: Vec<&'a skillsd::skills::Problem>,
            warnings: Vec<&'a skillsd::skills::Problem>,
        }
        let out = Checked {
            checked: count,
            errors,
            warnings,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if !(builtin_rules || all)
        && problems.iter().filter(|p| p.is_error()).count() > FLOOD
        && check_rules_missing(path)
    {
        // No skillsd.toml: the built-in rules' errors on a collection that never had
        // them would flood the screen. Say what is missing instead, and stop. (A few
        // errors are listed: a repository may rely on the built-in rules.)
        let errors = problems.iter().filter(|p| p.is_error()).count();
        let files: std::collections::BTreeSet<&str> = problems
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.path.as_str())
            .collect();
        println!(
            "no skillsd.toml in {}: with the built-in rules (flat layout: every *.md \
             under skills/ is a skill with a `title`) there are {errors} error{} in {} \
             file{} ({count} skill{} checked), so this is not a skills repository yet.\n\
             - `skillsd check --suggest-config` proposes a skillsd.toml for the layout \
             found here;\n\
             - or start from the template: skills-template/skillsd.toml and \
             skills-template/RULES.md in skillsd's source (`skillsd init` makes a \
             repository from it);\n\
             - `skillsd check --builtin-rules` lists every error anyway.",
            path.display(),
            if errors == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            if count == 1 { "" } else { "s" },
        );
    } else {
        print!("{}", skillsd::check::report(count, &problems, all));
    }
    // Warnings do not fail the check, as they do not refuse a push.
    Ok(if skillsd::skills::any_error(&problems) {
        1
    } else {
        0
    })
}

/// `skillsd check --suggest-config`: the file on stdout, a summary on stderr.
pub(crate) fn suggest_config_for(path: &std::path::Path, settings: &Settings) -> Result<i32> {
    let max_depth = settings.policy.limits.max_tree_depth;
    let s = skillsd::suggest::suggest(path, max_depth)
        .with_context(|| format!("cannot read {}", path.display()))?;
    print!("{}", s.config);
    eprintln!(
        "{} skill file{}, {} cached with this configuration; {}",
        s.skill_files,
        if s.skill_files == 1 { "" } else { "s" },
        s.cached,
        if s.accepted() {
            "a push would be accepted (save it as skillsd.toml at the repository root)"
        } else {
            "a push would still be refused: see the errors at the end"
        }
    );
    Ok(if s.accepted() { 0 } else { 1 })
}

pub(crate) fn hook_pre_receive(settings: &Settings) -> Result<i32> {
    use skillsd::hook;
    let commands = hook::read_updates(std::io::stdin().lock())?;
    let (_, repo) = hook::open_repo()?;
    let (view, _tmp) = hook::quarantine_view(&repo)?;
    let (text, accept) = hook::pre_receive(&view, &repo, &commands, &settings.policy);
    eprint!("{text}");
    Ok(if accept { 0 } else { 1 })
}

pub(crate) async fn hook_post_receive(database_url: Option<String>) -> Result<i32> {
    use skillsd::hook;
    let commands = hook::read_updates(std::io::stdin().lock())?;
    let (dir, repo) = hook::open_repo()?;
    let url = database_url.filter(|u| !u.is_empty());
    let Some(url) = url else {
        if hook::touches_default_branch(&repo, &commands) {
            bail!("post-receive needs DATABASE_URL to update the skills cache");
        }
        return Ok(0);
    };
    if let Some(said) = hook::post_receive(&url, &dir, repo, &commands).await? {
        eprint!("{said}");
    }
    Ok(0)
}
