//! The `skillsd` command line: parse, load every setting, start the logs, dispatch
//! to the commands in `cli/` (one file per group).

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Cmd};
use skillsd::config::{LogFormat, Settings};

mod cli;

fn main() {
    let cli = Cli::parse();
    // Every setting, once: a malformed one stops the start before anything runs.
    let settings = match cli::load_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skillsd: {e:#}");
            std::process::exit(2);
        }
    };
    init_logs(&settings);
    let code = match run(cli, settings) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skillsd: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// Logs to stderr with the settings' filter; `SKILLSD_LOG_FORMAT=json`: one JSON
/// object per line, with the span fields.
fn init_logs(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match settings.log_format {
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs.init(),
    }
}

fn run(cli: Cli, settings: Settings) -> Result<i32> {
    if let Cmd::Check {
        path,
        format,
        builtin_rules,
        all,
        suggest_config,
    } = &cli.command
    {
        if *suggest_config {
            return cli::check::suggest_config_for(path, &settings);
        }
        return cli::check::check(path, format, *builtin_rules, *all, &settings);
    }
    if let Cmd::Hook { stage, .. } = &cli.command
        && stage == "pre-receive"
    {
        return cli::check::hook_pre_receive(&settings);
    }
    // Before any thread: glibc caps the heaps only as new ones are made, so a cap set
    // once the runtime's workers have allocated leaves the heaps they made.
    if let Cmd::Serve { .. } = &cli.command {
        skillsd::alloc::tune_allocator();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(skillsd::ssh::SERVICE_STACK_BYTES)
        .build()?;
    rt.block_on(run_async(cli, settings))
}

async fn run_async(cli: Cli, settings: Settings) -> Result<i32> {
    let s = &settings;
    match cli.command {
        Cmd::Serve { .. } => cli::serve::serve(s).await,
        Cmd::Init { repo, empty, .. } => cli::repos::init(s, repo, empty).await,
        Cmd::User { command } => cli::users::run(s, command).await,
        Cmd::Reconcile { repo, .. } => cli::cache::reconcile(s, repo).await,
        Cmd::Check {
            path,
            format,
            builtin_rules,
            all,
            ..
        } => cli::check::check(&path, &format, builtin_rules, all, s),
        Cmd::Hook { stage, .. } => {
            if stage == "pre-receive" {
                return cli::check::hook_pre_receive(s);
            }
            cli::check::hook_post_receive(s.database_url.clone()).await
        }
        Cmd::Gc { repo, .. } => cli::repos::gc(s, repo).await,
        Cmd::Fsck { repo, .. } => cli::repos::fsck(s, repo).await,
        Cmd::Audit { repo, .. } => cli::cache::audit(s, repo).await,
        Cmd::Ref { command } => cli::repos::run_ref(s, command).await,
        Cmd::Export { repo, dir, .. } => cli::repos::export(s, repo, dir).await,
        Cmd::Import {
            args,
            from_postgres,
            table,
            status,
            strict,
            dry_run,
            author,
            ..
        } => {
            let options = skillsd::import::Options {
                statuses: skillsd::import::statuses(&status),
                strict,
                dry_run,
                author,
            };
            cli::cache::import(s, args, from_postgres, table, options).await
        }
        Cmd::Mirror { command } => cli::deliver::mirror(s, command).await,
        Cmd::Webhook { command } => cli::deliver::webhook(s, command).await,
        Cmd::Psql { args, .. } => cli::db::psql(s, args).await,
        Cmd::Migrate { .. } => cli::db::migrate(s).await,
    }
}
