//! The skills cache: `reconcile` (compared with the default branch, repaired),
//! `audit` (every check over the whole tree), `import` (a legacy table or a folder,
//! landed through the push path).

use super::db::{fresh_copy, pool, store};
use anyhow::{Context as _, Result};
use skillsd::config::Settings;
use skillsd::repos::{DEFAULT_BRANCH, RepoStore};
use std::path::PathBuf;

/// `skillsd reconcile [REPO]`: the cache compared with the default branch and repaired.
pub(crate) async fn reconcile(settings: &Settings, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let (name, repo) = fresh_copy(&pool, &store, &repo).await?;
    let store_name = name.clone();
    let rt = tokio::runtime::Handle::current();
    let started = std::time::Instant::now();
    let rows_pool = pool.clone();
    let bulk_from = settings.bulk_load_from;
    let outcome = tokio::task::spawn_blocking(move || {
        skillsd::cache::sync::reconcile(&rt, &rows_pool, &repo, &name, DEFAULT_BRANCH, bulk_from)
    })
    .await??;
    let rows_took = started.elapsed();
    println!(
        "reconciled {}: cache at {}: {} ({:.2} s)",
        store_name,
        outcome.commit.as_deref().unwrap_or("(empty branch)"),
        outcome.reconcile_summary(),
        rows_took.as_secs_f64()
    );
    if outcome.bulk_loaded {
        println!("the cache was empty: rows loaded first, indexes built after them");
    }
    // This process ends here: fill the search vectors a big reconcile left, build
    // the indexes its bulk load left and move the GIN pending lists its rows went
    // into, before it does (a server would do all three in the background).
    if outcome.search_deferred {
        skillsd::cache::search::fill(&pool, skillsd::cache::search::workers()).await?;
        println!(
            "search vectors: all filled ({:.2} s after the rows)",
            (started.elapsed() - rows_took).as_secs_f64()
        );
    }
    if outcome.indexes_deferred {
        let built_from = started.elapsed();
        skillsd::cache::index_builds::build(&pool).await?;
        println!(
            "indexes: built after the commit ({:.2} s)",
            (started.elapsed() - built_from).as_secs_f64()
        );
    }
    skillsd::cache::pending_lists::clean(&pool).await?;
    Ok(0)
}

/// `skillsd audit [REPO]`: the checks over the whole tree of the default branch.
pub(crate) async fn audit(settings: &Settings, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let name = RepoStore::canonical_name(&repo)?;
    let (name, copy) = fresh_copy(&pool, &store, &name).await?;
    let branch = format!("refs/heads/{}", settings.policy.default_branch);
    let Some(tip) = skillsd::repos::ref_target(&copy, &branch) else {
        println!("{name}: {branch} does not exist yet: nothing to audit");
        return Ok(0);
    };
    let max_file_bytes = settings.policy.max_file_bytes;
    let (count, problems) = tokio::task::spawn_blocking(move || {
        skillsd::receive::pre_receive::audit(&copy, tip, max_file_bytes)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    print!("{}", skillsd::check::report(count, &problems, true));
    let errors = problems
        .iter()
        .filter(|p| p.level == skillsd::skills::Level::Error)
        .count();
    let mut by_check: std::collections::BTreeMap<&str, usize> = Default::default();
    for p in &problems {
        *by_check.entry(p.check.id()).or_default() += 1;
    }
    let counts: Vec<String> = by_check.iter().map(|(c, n)| format!("{c}: {n}")).collect();
    println!(
        "{name} at {}: {count} skill files, {errors} errors, {} warnings{}",
        &tip.to_string()[..7],
        problems.len() - errors,
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        }
    );
    Ok(if errors > 0 { 1 } else { 0 })
}

/// `skillsd import`: a legacy table or a folder, landed through the push path.
pub(crate) async fn import(
    settings: &Settings,
    args: Vec<String>,
    from_postgres: Option<String>,
    table: Option<String>,
    options: skillsd::import::Options,
) -> Result<i32> {
    use skillsd::import;
    let dry_run = options.dry_run;
    let (dir, repo) = match (&from_postgres, args.as_slice()) {
        (Some(_), []) => (None, skillsd::repos::DEFAULT_REPO.to_string()),
        (Some(_), [repo]) => (None, repo.clone()),
        (None, [dir]) => (
            Some(PathBuf::from(dir)),
            skillsd::repos::DEFAULT_REPO.to_string(),
        ),
        (None, [dir, repo]) => (Some(PathBuf::from(dir)), repo.clone()),
        _ => anyhow::bail!("give either --from-postgres URL --table NAME [REPO], or DIR [REPO]"),
    };
    let pool = pool(settings).await?;
    let target = import::Target {
        pool: pool.pool.clone(),
        store: store(settings),
        repo: RepoStore::canonical_name(&repo)?,
        policy: settings.policy.clone(),
    };
    let report = match (from_postgres, dir) {
        (Some(url), _) => {
            let table = table.context("--from-postgres needs --table NAME")?;
            import::import_table(&target, &url, &table, &options).await?
        }
        (None, Some(dir)) => import::import_dir(&target, &dir, &options).await?,
        (None, None) => unreachable!("matched above"),
    };
    // This process ends here: what the push left for after its commit (the vectors
    // of a big import only PostgreSQL computes, the full-text index of a bulk load,
    // the GIN pending lists) is done before it does, not cut off with the runtime (a
    // server would do it in the background).
    if !dry_run {
        skillsd::cache::search::fill(&pool, skillsd::cache::search::workers()).await?;
        skillsd::cache::index_builds::build(&pool).await?;
        skillsd::cache::pending_lists::clean(&pool).await?;
    }
    import::print(&report, dry_run, &mut std::io::stdout());
    Ok(report.exit_code())
}
