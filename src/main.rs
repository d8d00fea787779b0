//! The `skillsd` command line.

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use skillsd::config::{Flags, LogFormat, Settings};
use skillsd::db::users::{self, Role};
use skillsd::repos::{RepoStore, DEFAULT_BRANCH, DEFAULT_REPO};
use skillsd::server::{self, Database};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "skillsd",
    version,
    about = "SSH git server for a repository of skills, with a PostgreSQL cache",
    after_help = skillsd::config::help()
)]
struct Cli {
    /// A TOML file with settings (keys: see below); default /etc/skillsd.toml if present.
    #[arg(long, global = true, env = "SKILLSD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

/// Flags of every command that uses the data dir or the database. Without them, the
/// settings (environment, config file, default) decide.
#[derive(Args, Clone)]
struct Common {
    /// Where repositories, the host key and (without --database-url) the private
    /// PostgreSQL cluster live [env SKILLSD_DATA_DIR; default ./data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL [env DATABASE_URL]. Without it, skillsd runs a private cluster
    /// under the data dir.
    #[arg(long, global = true)]
    database_url: Option<String>,
}

/// The database of `settings`, migrated; a private cluster this command started is
/// stopped again when the returned handle is dropped. Refuses, creating nothing, when
/// it would have to make a new data dir or a new private cluster: an admin command
/// run in the wrong folder must not answer for a database no server reads.
async fn pool(settings: &Settings) -> Result<Db> {
    refuse_without_data(settings)?;
    open_pool(settings).await
}

/// Whether the settings name a database: a URL, or a data dir that holds the private
/// cluster `skillsd serve` made. Otherwise the error that says how to name one.
fn refuse_without_data(settings: &Settings) -> Result<()> {
    if !matches!(Database::of(settings), Database::Local)
        || skillsd::localpg::LocalPg::exists(&settings.data_dir.join("postgres"))
    {
        return Ok(());
    }
    let dir = settings.data_dir.display();
    let what = if settings.data_dir.exists() {
        format!("{dir} holds no skillsd database (no private PostgreSQL under {dir}/postgres)")
    } else {
        format!("there is no data dir {dir}")
    };
    bail!(
        "{what}, and no --database-url is given; nothing was created.\n\
         Name the server's data with --data-dir DIR (or SKILLSD_DATA_DIR; the folder \
         `skillsd serve` printed on its `users:` line), or its database with \
         --database-url URL (or DATABASE_URL). `skillsd serve` creates a new data dir."
    )
}

/// [`pool`] without the refusal: for `init` told where (it creates a data dir, and
/// says so).
async fn open_pool(settings: &Settings) -> Result<Db> {
    let (url, cluster) = server::database_url(&Database::of(settings), &settings.data_dir).await?;
    let pool = skillsd::db::connect(&url)
        .await
        .context("cannot connect to the database")?;
    skillsd::cache::prepare(&pool).await?;
    Ok(Db {
        pool,
        _cluster: cluster,
    })
}

/// This node's repositories, kept as the settings say.
fn store(settings: &Settings) -> RepoStore {
    RepoStore::new(&settings.data_dir, settings.store())
}

/// A pool, and the private cluster behind it when this process started it (dropped
/// after the pool: fields drop in order).
struct Db {
    pool: sqlx::PgPool,
    _cluster: Option<skillsd::localpg::StartedCluster>,
}

impl std::ops::Deref for Db {
    type Target = sqlx::PgPool;
    fn deref(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

/// `--http ADDR` or `--http off` (`None`).
#[derive(Clone, Copy)]
struct Http(Option<SocketAddr>);

fn parse_http(value: &str) -> Result<Http, String> {
    skillsd::config::parse_http(value).map(Http)
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the SSH git server.
    Serve {
        /// Address to listen on [env SKILLSD_LISTEN; default 127.0.0.1:2222].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Where to serve the status pages (the dashboard, pushes, skills), health,
        /// readiness and the JSON API: an address, or `off` [env SKILLSD_HTTP; default
        /// 127.0.0.1:8080, loopback only]. The banner prints the dashboard's address.
        #[arg(long, value_name = "ADDR|off", value_parser = parse_http)]
        http: Option<Http>,
        /// Register these public key files for the user `admin` (role admin) unless they
        /// are registered already: the way in on a fresh install (repeat the flag, or
        /// separate files with ',' in SKILLSD_ADMIN_KEYS).
        #[arg(long, value_delimiter = ',')]
        admin_key: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Create a repository (default `skills`) from the skills template.
    Init {
        #[arg(default_value = DEFAULT_REPO)]
        repo: String,
        /// Create it with no commit at all.
        #[arg(long)]
        empty: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Manage users and their SSH keys.
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Validate the skills in a working tree, with the server's rules and messages.
    Check {
        /// List every problem (repeated ones are otherwise shown a few at a time, then
        /// counted).
        #[arg(long)]
        all: bool,
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Output format.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// Without a skillsd.toml, list every error of the built-in rules (else, past
        /// 20 errors, only their count and how to make a skillsd.toml).
        #[arg(long)]
        builtin_rules: bool,
        /// Print a complete skillsd.toml for the tree instead (layout, roots,
        /// nested_skills, namespaces, [levels]), each choice explained; exit status 1
        /// when a push would still be refused.
        #[arg(long)]
        suggest_config: bool,
    },
    /// Compare the cache with the default branch's tip and repair it.
    Reconcile {
        #[arg(default_value = DEFAULT_REPO)]
        repo: String,
        #[command(flatten)]
        common: Common,
    },
    /// Check every object every ref of a repository reaches, as a push's are checked
    /// (present, within the limits, valid for `git fsck --strict`), and the refs'
    /// names against each other; exit status 1 when anything is wrong, with the fix.
    Fsck {
        #[arg(default_value = DEFAULT_REPO)]
        repo: String,
        #[command(flatten)]
        common: Common,
    },
    /// Run every check a push runs — frontmatter, hidden text, credentials, padding,
    /// instructions aimed at the agent — on every file of the default branch, not only
    /// what a push changes (a collection adopted before a check existed); exit status 1
    /// when there are errors.
    Audit {
        #[arg(default_value = DEFAULT_REPO)]
        repo: String,
        #[command(flatten)]
        common: Common,
    },
    /// Consolidate a repository's packs into one (also runs by itself after pushes
    /// once there are more than 16 packs).
    Gc {
        #[arg(default_value = DEFAULT_REPO)]
        repo: String,
        #[command(flatten)]
        common: Common,
    },
    /// List a repository's refs (marking those that cannot be served), or delete one.
    Ref {
        #[command(subcommand)]
        command: RefCmd,
    },
    /// Run a stage as a git server hook (for stock git, Gitea, GitLab): `pre-receive`
    /// validates, `post-receive` updates the cache. See hooks/.
    Hook {
        #[arg(value_parser = ["pre-receive", "post-receive"])]
        stage: String,
        /// PostgreSQL URL (post-receive) [env DATABASE_URL].
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Write a repository from the database into DIR as a plain bare repository (for
    /// backups, or for leaving skillsd).
    Export {
        repo: String,
        dir: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Import skills and land them through the checks and the cache of a push: the rows
    /// of a legacy table (`--from-postgres URL --table NAME [REPO]`; one commit per
    /// skill, dated by its `updatedAt`), or the files of a collection (`DIR [REPO]`).
    /// Files that do not pass are reported and left out (all refused with `--strict`).
    Import {
        /// `[REPO]` with --from-postgres; else `DIR [REPO]`.
        #[arg(num_args = 0..=2)]
        args: Vec<String>,
        /// The legacy database (a table shaped like the seed's `Skill` model).
        #[arg(long, value_name = "URL")]
        from_postgres: Option<String>,
        /// The table to read, e.g. `Skill` or `public.skills`.
        #[arg(long, requires = "from_postgres")]
        table: Option<String>,
        /// Statuses to import (repeat or comma-separate; `all` for every row).
        #[arg(long, default_values_t = Vec::<String>::new())]
        status: Vec<String>,
        /// Import nothing if any row or file does not pass.
        #[arg(long)]
        strict: bool,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Author and committer of the commits.
        #[arg(long, default_value = "skillsd import <import@skillsd.invalid>")]
        author: String,
        #[command(flatten)]
        common: Common,
    },
    /// Push mirrors: after every accepted push, the changed branches and tags are
    /// pushed to an upstream over SSH (GitHub, GitLab, any git server), with a key of
    /// the mirror's own.
    Mirror {
        #[command(subcommand)]
        command: MirrorCmd,
    },
    /// Webhooks: after every accepted push, a signed JSON POST (GitHub's push event
    /// plus the skills changed).
    Webhook {
        #[command(subcommand)]
        command: WebhookCmd,
    },
    /// Open psql on the configured database (the private cluster included; it is
    /// started for the session if it is not running, and stopped again after).
    Psql {
        #[command(flatten)]
        common: Common,
        /// Further arguments for psql (after `--`), e.g. `-- -c 'SELECT 1'`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Apply database migrations.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum RefCmd {
    /// Every ref with its target; refs that cannot be served (a missing object, a tag
    /// that cannot be peeled) are marked and make the exit status 1.
    List {
        #[arg(default_value = DEFAULT_REPO)]
        repo: String,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a ref whatever it points to (e.g. `refs/tags/broken`); pushes cannot
    /// delete tags or the default branch, an admin on the server can.
    Delete {
        /// The full ref name, e.g. `refs/tags/v1`.
        name: String,
        #[arg(long, default_value = DEFAULT_REPO)]
        repo: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum MirrorCmd {
    /// Add a mirror of REPO at URL (`ssh://git@host[:port]/path.git` or
    /// `git@host:path.git`). Prints the public key the upstream must authorize with
    /// write access (a deploy key on GitHub).
    Add {
        repo: String,
        url: String,
        /// Check the upstream's host key against this known_hosts file (else the key
        /// it shows now is pinned, and printed).
        #[arg(long, value_name = "FILE")]
        known_hosts: Option<PathBuf>,
        /// Overwrite refs that diverged on the upstream (else the mirror stops at them
        /// and says why).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Every mirror: in sync or not, refs behind, lag, last success, last error.
    List {
        repo: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a mirror (by the id `list` shows, or its URL).
    Remove {
        repo: String,
        mirror: String,
        #[command(flatten)]
        common: Common,
    },
    /// Push to REPO's mirrors now (or to one, by id or URL), and say how it went.
    Sync {
        repo: String,
        mirror: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum WebhookCmd {
    /// Add a webhook of REPO posting to URL (http:// or https://). Addresses that are
    /// loopback, private, link-local or cloud metadata are refused unless
    /// --allow-private.
    Add {
        repo: String,
        url: String,
        /// The HMAC key of the X-Hub-Signature-256 header [env SKILLSD_WEBHOOK_SECRET].
        #[arg(long, env = "SKILLSD_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// Let this hook reach loopback, private and link-local addresses.
        #[arg(long)]
        allow_private: bool,
        /// `push` (every accepted push, a delivery per ref) and/or `skills` (pushes
        /// that changed skills on the default branch).
        #[arg(long, value_delimiter = ',', default_value = "push")]
        events: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Every webhook and its newest delivery.
    List {
        repo: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a webhook (by the id `list` shows, or its URL).
    Remove {
        repo: String,
        webhook: String,
        #[command(flatten)]
        common: Common,
    },
    /// Send a `ping` to a webhook now and print the answer.
    Test {
        repo: String,
        webhook: i64,
        #[command(flatten)]
        common: Common,
    },
    /// A webhook's recent deliveries: status, response code, duration, error.
    Deliveries {
        repo: String,
        webhook: i64,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Send a delivery again (a new delivery with the same body), now.
    Redeliver {
        repo: String,
        delivery: uuid::Uuid,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user with a key (or add a key / change the role of an existing user).
    Add {
        /// The user's name, as pushes, the sync log and the pages show it (e.g. alice);
        /// an existing user gets the key added and the role set.
        name: String,
        /// reader: clone and fetch; writer: also push; admin: everything.
        #[arg(long, value_parser = ["reader", "writer", "admin"])]
        role: String,
        /// An OpenSSH public key file (e.g. ~/.ssh/id_ed25519.pub).
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// List users, their roles and key fingerprints.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Remove a user and all their keys.
    Remove {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Give a user a role on one repository (it replaces their global role there).
    Grant {
        name: String,
        repo: String,
        #[arg(long, value_parser = ["reader", "writer", "admin"])]
        role: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a user's role on one repository (their global role applies again).
    Revoke {
        name: String,
        repo: String,
        #[command(flatten)]
        common: Common,
    },
}

fn main() {
    let cli = Cli::parse();
    // Every setting, once: a malformed one stops the start before anything runs.
    let settings = match load_settings(&cli) {
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
            return suggest_config_for(path, &settings);
        }
        return check(path, format, *builtin_rules, *all, &settings);
    }
    if let Cmd::Hook { stage, .. } = &cli.command {
        if stage == "pre-receive" {
            return hook_pre_receive(&settings);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(skillsd::ssh::SERVICE_STACK_BYTES)
        .build()?;
    rt.block_on(run_async(cli, settings))
}

/// More errors than this, without a `skillsd.toml`, and `check` says what is missing
/// instead of listing them.
const FLOOD: usize = 20;

/// Whether the working tree at `path` has no `skillsd.toml` (the built-in rules).
fn check_rules_missing(path: &std::path::Path) -> bool {
    skillsd::check::rules_file(path).is_none()
}

fn check(
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
        let out = serde_json::json!({ "checked": count, "errors": errors, "warnings": warnings });
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
fn suggest_config_for(path: &std::path::Path, settings: &Settings) -> Result<i32> {
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

/// This node's copy of `requested`, brought to the database's state first.
/// `skillsd import`: a legacy table or a folder, landed through the push path.
async fn import(
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
    import::print(&report, dry_run, &mut std::io::stdout());
    Ok(report.exit_code())
}

async fn fresh_copy(
    pool: &sqlx::PgPool,
    store: &RepoStore,
    requested: &str,
) -> Result<(String, gix::Repository)> {
    let name = RepoStore::canonical_name(requested)?;
    skillsd::storage::replica::refresh_async(pool, store, &name).await?;
    Ok(store.open(&name)?)
}

async fn run_async(cli: Cli, settings: Settings) -> Result<i32> {
    let s = &settings;
    match cli.command {
        Cmd::Serve { .. } => serve(s).await,
        Cmd::Init { repo, empty, .. } => init(s, repo, empty).await,
        Cmd::User { command } => match command {
            UserCmd::Add {
                name, role, key, ..
            } => user_add(s, name, role, key).await,
            UserCmd::List { .. } => user_list(s).await,
            UserCmd::Grant {
                name, repo, role, ..
            } => user_grant(s, name, repo, role).await,
            UserCmd::Revoke { name, repo, .. } => user_revoke(s, name, repo).await,
            UserCmd::Remove { name, .. } => user_remove(s, name).await,
        },
        Cmd::Reconcile { repo, .. } => reconcile(s, repo).await,
        Cmd::Check {
            path,
            format,
            builtin_rules,
            all,
            ..
        } => check(&path, &format, builtin_rules, all, s),
        Cmd::Hook { stage, .. } => {
            if stage == "pre-receive" {
                return hook_pre_receive(s);
            }
            hook_post_receive(s.database_url.clone()).await
        }
        Cmd::Gc { repo, .. } => gc(s, repo).await,
        Cmd::Fsck { repo, .. } => fsck(s, repo).await,
        Cmd::Audit { repo, .. } => audit(s, repo).await,
        Cmd::Ref {
            command: RefCmd::List { repo, .. },
        } => ref_list(s, repo).await,
        Cmd::Ref {
            command: RefCmd::Delete { name, repo, .. },
        } => ref_delete(s, name, repo).await,
        Cmd::Export { repo, dir, .. } => export(s, repo, dir).await,
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
            import(s, args, from_postgres, table, options).await
        }
        Cmd::Mirror { command } => match command {
            MirrorCmd::Add {
                repo,
                url,
                known_hosts,
                force,
                ..
            } => mirror_add(s, repo, url, known_hosts, force).await,
            MirrorCmd::List { repo, .. } => mirror_list(s, repo).await,
            MirrorCmd::Remove { repo, mirror, .. } => mirror_remove(s, repo, mirror).await,
            MirrorCmd::Sync { repo, mirror, .. } => mirror_sync(s, repo, mirror).await,
        },
        Cmd::Webhook { command } => match command {
            WebhookCmd::Add {
                repo,
                url,
                secret,
                allow_private,
                events,
                ..
            } => webhook_add(s, repo, url, secret, allow_private, events).await,
            WebhookCmd::List { repo, .. } => webhook_list(s, repo).await,
            WebhookCmd::Remove { repo, webhook, .. } => webhook_remove(s, repo, webhook).await,
            WebhookCmd::Test { repo, webhook, .. } => webhook_test(s, repo, webhook).await,
            WebhookCmd::Deliveries {
                repo,
                webhook,
                limit,
                ..
            } => webhook_deliveries(s, repo, webhook, limit).await,
            WebhookCmd::Redeliver { repo, delivery, .. } => {
                webhook_redeliver(s, repo, delivery).await
            }
        },
        Cmd::Psql { args, .. } => psql(s, args).await,
        Cmd::Migrate { .. } => migrate(s).await,
    }
}

/// `skillsd serve`: the addresses bound first (a port already taken is said at once,
/// before the database, the migrations and the reconcile), then the start's work,
/// the first admins, the banner, and the server until SIGTERM or Ctrl-C.
async fn serve(settings: &Settings) -> Result<i32> {
    skillsd::alloc::tune_allocator();
    let (listener, addr) = server::bind(settings.listen).await?;
    // The default address taken (another skillsd on this machine) does not stop the
    // server: the banner says the pages are off and how to place them. An address
    // asked for must be had.
    let mut pages_note = None;
    let http = match settings.http {
        Some(a) if a == skillsd::config::DEFAULT_HTTP => match server::bind(a).await {
            Ok(bound) => Some(bound),
            Err(e) => {
                tracing::warn!(error = %e, "the status pages are off: their default address is taken");
                pages_note = Some(format!(
                    "off: {a} is taken (another skillsd?); place them with --http ADDR"
                ));
                None
            }
        },
        Some(a) => Some(server::bind(a).await?),
        None => None,
    };
    // Pages off: no web address for links either.
    let adjusted = (http.is_none() && settings.http.is_some()).then(|| Settings {
        http: None,
        ..settings.clone()
    });
    let settings = adjusted.as_ref().unwrap_or(settings);
    let prepared = server::prepare(settings).await?;
    register_admins(&prepared.state.pool, &settings.admin_keys).await?;
    let http = http.map(|(listener, a)| {
        let shown = match a.ip() {
            ip if ip.is_unspecified() => format!("127.0.0.1:{}", a.port()),
            _ => a.to_string(),
        };
        let url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{shown}"));
        pages_note = Some(format!(
            "{url}/ (the dashboard: pushes, skills, health; JSON under /api, /healthz, /readyz)"
        ));
        listener
    });
    print_banner(&prepared, addr, settings);
    match &pages_note {
        Some(note) => println!("  pages:  {note}"),
        None => println!("  pages:  off (--http ADDR serves them)"),
    }
    server::run(prepared, listener, http, shutdown_signal()).await?;
    Ok(0)
}

/// Registers each public key file for the user `admin` unless the key is known.
async fn register_admins(pool: &sqlx::PgPool, keys: &[PathBuf]) -> Result<()> {
    for path in keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let key = users::parse_public_key(&text)?;
        if users::find_by_key(pool, &key).await?.is_none() {
            let fp = users::add(pool, "admin", Role::Admin, &key).await?;
            println!("  admin:  user `admin` can connect with key {fp}");
        }
    }
    Ok(())
}

/// What the operator needs to know at start: the address, how to clone, add users,
/// check the host key and reach the database.
fn print_banner(prepared: &server::Prepared, addr: SocketAddr, settings: &Settings) {
    let host = prepared.data_dir.join("ssh_host_ed25519_key.pub");
    println!("skillsd listening on {addr}");
    println!(
        "  clone:  git clone ssh://git@{}:{}/skills.git",
        addr.ip(),
        addr.port()
    );
    println!(
        "  users:  skillsd user add NAME --role writer --key ~/.ssh/id_ed25519.pub --data-dir {}",
        prepared.data_dir.display()
    );
    println!(
        "  host key: {} ({}; ssh asks to confirm it on first connect)",
        skillsd::storage::identity::fingerprint(&prepared.host_key),
        host.display()
    );
    let private =
        prepared.private_pg.is_some() || matches!(Database::of(settings), Database::Local);
    println!(
        "  database: {}{}",
        skillsd::db::redact_url(&prepared.database_url),
        if private {
            " (the private cluster under the data dir)"
        } else {
            ""
        }
    );
    println!(
        "  psql:   skillsd psql --data-dir {}{}",
        prepared.data_dir.display(),
        if private { "" } else { " --database-url URL" }
    );
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// `skillsd init [REPO]`: a repository from the template, imported into the database.
async fn init(settings: &Settings, repo: String, empty: bool) -> Result<i32> {
    // `init` may set up a new data dir, but only one it was told of: in a folder
    // without one, `skillsd init` alone is refused like every admin command.
    let named = settings.data_dir != Settings::default().data_dir;
    let new_dir = named && refuse_without_data(settings).is_err();
    let pool = if named {
        open_pool(settings).await?
    } else {
        pool(settings).await?
    };
    if new_dir {
        println!(
            "new data dir {} (with a private PostgreSQL cluster): start the server on it \
             with `skillsd serve --data-dir {}`",
            settings.data_dir.display(),
            settings.data_dir.display()
        );
    }
    let store = store(settings);
    let requested = RepoStore::canonical_name(&repo)?;
    if skillsd::storage::replica::db_generation(&pool, &requested)
        .await?
        .is_some()
    {
        bail!("repository `{requested}` already exists");
    }
    let name = store.create(&repo, empty)?;
    let (rt, p2, s2, n2) = (
        tokio::runtime::Handle::current(),
        pool.pool.clone(),
        store.clone(),
        name.clone(),
    );
    let imported =
        tokio::task::spawn_blocking(move || skillsd::storage::import::import(&rt, &p2, &s2, &n2))
            .await??;
    if imported.is_none() {
        bail!("repository `{name}` was created by another node meanwhile");
    }
    println!(
        "created repository {name} (in the database; this node's copy is {})",
        store.path_of(&name).display()
    );
    Ok(0)
}

/// `skillsd user add`.
async fn user_add(settings: &Settings, name: String, role: String, key: PathBuf) -> Result<i32> {
    let role = Role::parse(&role).expect("clap checked the role");
    let text =
        std::fs::read_to_string(&key).with_context(|| format!("cannot read {}", key.display()))?;
    let key = users::parse_public_key(&text)?;
    let pool = pool(settings).await?;
    let fp = users::add(&pool, &name, role, &key).await?;
    println!("{name} ({}) can now connect with key {fp}", role.as_str());
    Ok(0)
}

/// `skillsd user list`.
async fn user_list(settings: &Settings) -> Result<i32> {
    let pool = pool(settings).await?;
    for u in users::list(&pool).await? {
        println!("{}\t{}\t{}", u.name, u.role, u.fingerprints.join(","));
    }
    Ok(0)
}

/// `skillsd user grant`.
async fn user_grant(settings: &Settings, name: String, repo: String, role: String) -> Result<i32> {
    let role = Role::parse(&role).expect("clap checked the role");
    let repo = RepoStore::canonical_name(&repo)
        .map_err(|_| anyhow::anyhow!("`{repo}` is not a repository name"))?;
    let pool = pool(settings).await?;
    users::grant(&pool, &name, &repo, role).await?;
    println!("{name} is {} on {repo}", role.as_str());
    Ok(0)
}

/// `skillsd user revoke`.
async fn user_revoke(settings: &Settings, name: String, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    if users::revoke(&pool, &name, &repo).await? {
        println!("{name} has their global role on {repo} again");
        Ok(0)
    } else {
        bail!("`{name}` has no grant on `{repo}`")
    }
}

/// `skillsd user remove`.
async fn user_remove(settings: &Settings, name: String) -> Result<i32> {
    let pool = pool(settings).await?;
    if users::remove(&pool, &name).await? {
        println!("removed {name} and their keys");
        Ok(0)
    } else {
        bail!("no user named `{name}`")
    }
}

/// `skillsd reconcile [REPO]`: the cache compared with the default branch and repaired.
async fn reconcile(settings: &Settings, repo: String) -> Result<i32> {
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
    // This process ends here: fill the search vectors a big reconcile left
    // before it does (a server would do it in the background).
    if outcome.search_deferred {
        skillsd::cache::search::fill(&pool, skillsd::cache::search::workers()).await?;
        println!(
            "search vectors: all filled ({:.2} s after the rows)",
            (started.elapsed() - rows_took).as_secs_f64()
        );
    }
    Ok(0)
}

/// `skillsd gc [REPO]`: the live packs consolidated into one, published.
async fn gc(settings: &Settings, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let (name, _) = fresh_copy(&pool, &store, &repo).await?;
    let (rt, p2, n2) = (
        tokio::runtime::Handle::current(),
        pool.pool.clone(),
        name.clone(),
    );
    let o = tokio::task::spawn_blocking(move || skillsd::storage::gc::gc(&rt, &p2, &store, &n2))
        .await??;
    if o.packs_before <= 1 {
        println!("{name}: {} pack, nothing to consolidate", o.packs_before);
    } else {
        println!(
            "{name}: {} packs consolidated into 1 pack of {} objects, published",
            o.packs_before, o.objects
        );
    }
    Ok(0)
}

/// `skillsd ref list [REPO]`: exit status 1 when a ref cannot be served.
async fn ref_list(settings: &Settings, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let (_, repo) = fresh_copy(&pool, &store, &repo).await?;
    let mut bad = 0;
    for r in skillsd::repos::ref_states(&repo)? {
        match &r.problem {
            None => println!("{} {}", r.target, r.name),
            Some(p) => {
                bad += 1;
                println!("{} {}  (cannot be served: {p})", r.target, r.name);
            }
        }
    }
    if let Some(why) = skillsd::repos::unservable(&repo) {
        println!("the repository cannot be served: {why}");
        bad += 1;
    }
    Ok(if bad == 0 { 0 } else { 1 })
}

/// `skillsd fsck [REPO]`: exit status 1 when anything is wrong.
async fn fsck(settings: &Settings, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let name = RepoStore::canonical_name(&repo)?;
    let refs = skillsd::storage::refs(&pool, &name).await?;
    let (name, copy) = fresh_copy(&pool, &store, &name).await?;
    let limits = settings.policy.limits;
    let found = tokio::task::spawn_blocking(move || {
        skillsd::receive::connectivity::fsck(&copy, &refs, &limits)
    })
    .await?;
    if found.is_empty() {
        println!("{name}: every ref and every object it reaches is valid");
        return Ok(0);
    }
    for f in &found {
        println!("{}: {}", f.ref_name, f.problem);
    }
    let mut names: Vec<&str> = found.iter().map(|f| f.ref_name.as_str()).collect();
    names.dedup();
    println!(
        "{name}: {} ref{} with problems; remove each with `skillsd ref delete --repo {name} REF` \
         (the default branch: push a repaired history with SKILLSD_ADMINS_MAY_REWRITE_MAIN=1)",
        names.len(),
        if names.len() == 1 { "" } else { "s" }
    );
    Ok(1)
}

/// `skillsd audit [REPO]`: the checks over the whole tree of the default branch.
async fn audit(settings: &Settings, repo: String) -> Result<i32> {
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

/// `skillsd ref delete NAME`.
async fn ref_delete(settings: &Settings, name: String, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let repo_name = RepoStore::canonical_name(&repo)?;
    let mut tx = pool.begin().await?;
    let Some(generation) =
        skillsd::storage::publish::delete_ref(&mut tx, &repo_name, &name).await?
    else {
        bail!("no ref `{name}` in {repo_name}");
    };
    // The repository's mirrors delete it too, in the same transaction.
    skillsd::deliver::mirrors::wanted(&mut tx, &repo_name, generation).await?;
    tx.commit().await?;
    fresh_copy(&pool, &store, &repo_name).await?;
    println!("{repo_name}: deleted {name}");
    Ok(0)
}

/// `skillsd mirror add`: the key to authorize on its own line, for copying.
async fn mirror_add(
    settings: &Settings,
    repo: String,
    url: String,
    known_hosts: Option<PathBuf>,
    force: bool,
) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    let added =
        skillsd::deliver::mirrors::add(&pool, &repo, &url, known_hosts.as_deref(), force).await?;
    println!("mirror {} of {repo} added. Authorize this key on the upstream, with write access (on GitHub: the repository's Settings > Deploy keys > Allow write access):", added.id);
    println!();
    println!("{}", added.public_key);
    println!();
    for k in &added.host_keys {
        println!("upstream host key: {k}");
    }
    println!("host key {}", added.host_keys_from);
    if force {
        println!("--force: refs that diverged on the upstream are overwritten");
    }
    println!(
        "every accepted push is mirrored from now on; `skillsd mirror sync {repo}` pushes now"
    );
    Ok(0)
}

fn ago(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match t {
        None => "never".into(),
        Some(t) => {
            let secs = (chrono::Utc::now() - t).num_seconds().max(0);
            match secs {
                0..=119 => format!("{secs} s ago"),
                120..=7199 => format!("{} min ago", secs / 60),
                _ => format!("{} h ago", secs / 3600),
            }
        }
    }
}

fn print_mirror(m: &skillsd::deliver::mirrors::Mirror) {
    println!(
        "{:>3}  {}  {}  {}{}",
        m.id,
        m.repo,
        m.url,
        m.state,
        if m.force { "  (force)" } else { "" }
    );
    let lag = m
        .lag_seconds
        .map(|s| format!(", lag {:.0} s", s))
        .unwrap_or_default();
    println!(
        "     refs behind {}{lag}, last success {}, last attempt {}",
        m.refs_behind,
        ago(m.last_success_at),
        ago(m.last_attempt_at)
    );
    if let Some(e) = &m.last_error {
        println!("     last error: {e}");
    }
    if m.state != "in-sync" {
        if let Some(next) = m.next_attempt_at {
            let secs = (next - chrono::Utc::now()).num_seconds().max(0);
            println!("     next attempt in {secs} s");
        }
    }
    match m.host_keys.as_slice() {
        [] => println!("     host key: not pinned yet (pinned at the first contact)"),
        keys => println!("     host key: {}", keys.join(", ")),
    }
    println!("     key: {}", m.public_key);
}

async fn mirror_list(settings: &Settings, repo: Option<String>) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = repo.map(|r| RepoStore::canonical_name(&r)).transpose()?;
    let mirrors = skillsd::deliver::mirrors::list(&pool, repo.as_deref()).await?;
    if mirrors.is_empty() {
        println!("no mirrors (add one with `skillsd mirror add REPO URL`)");
    }
    for m in &mirrors {
        print_mirror(m);
    }
    Ok(0)
}

async fn mirror_remove(settings: &Settings, repo: String, which: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    if !skillsd::deliver::mirrors::remove(&pool, &repo, &which).await? {
        bail!("{repo} has no mirror `{which}` (see `skillsd mirror list`)");
    }
    println!("{repo}: mirror {which} removed (the upstream keeps what it has)");
    Ok(0)
}

/// `skillsd mirror sync`: exit status 1 when a mirror is not in sync after it.
async fn mirror_sync(settings: &Settings, repo: String, which: Option<String>) -> Result<i32> {
    let pool = pool(settings).await?;
    let store = store(settings);
    let repo = RepoStore::canonical_name(&repo)?;
    let done = skillsd::deliver::mirrors::sync_now(
        &pool,
        &store,
        &settings.delivery,
        &repo,
        which.as_deref(),
    )
    .await?;
    let mut status = 0;
    for (m, note) in &done {
        print_mirror(m);
        if let Some(n) = note {
            println!("     {n}");
        }
        if m.state != "in-sync" {
            status = 1;
        }
    }
    Ok(status)
}

async fn webhook_add(
    settings: &Settings,
    repo: String,
    url: String,
    secret: String,
    allow_private: bool,
    events: Vec<String>,
) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    let (id, note) =
        skillsd::deliver::webhooks::add(&pool, &repo, &url, &secret, allow_private, &events)
            .await?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    println!("webhook {id} of {repo} added; `skillsd webhook test {repo} {id}` sends a ping");
    Ok(0)
}

async fn webhook_list(settings: &Settings, repo: Option<String>) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = repo.map(|r| RepoStore::canonical_name(&r)).transpose()?;
    let hooks = skillsd::deliver::webhooks::list(&pool, repo.as_deref()).await?;
    if hooks.is_empty() {
        println!("no webhooks (add one with `skillsd webhook add REPO URL --secret S`)");
    }
    for h in &hooks {
        println!(
            "{:>3}  {}  {}  events {}{}",
            h.id,
            h.repo,
            h.url,
            h.events.join(","),
            if h.allow_private {
                "  (private addresses allowed)"
            } else {
                ""
            }
        );
        match &h.last_status {
            None => println!("     no deliveries yet"),
            Some(status) => println!(
                "     last delivery {status}{} {}{}",
                h.last_code
                    .map(|c| format!(" (HTTP {c})"))
                    .unwrap_or_default(),
                ago(h.last_at),
                h.last_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        }
        println!("     {} pending, {} failed", h.pending, h.failed);
    }
    Ok(0)
}

async fn webhook_remove(settings: &Settings, repo: String, which: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    if !skillsd::deliver::webhooks::remove(&pool, &repo, &which).await? {
        bail!("{repo} has no webhook `{which}` (see `skillsd webhook list`)");
    }
    println!("{repo}: webhook {which} removed");
    Ok(0)
}

/// Exit status 1 when the receiver did not take it.
fn print_sent(id: uuid::Uuid, s: skillsd::deliver::webhooks::Sent) -> i32 {
    let code = s.code.map(|c| format!("HTTP {c}, ")).unwrap_or_default();
    let ms = s.duration.as_millis();
    match s.error {
        None => {
            println!("delivery {id}: delivered ({code}{ms} ms)");
            0
        }
        Some(e) => {
            println!("delivery {id}: failed ({code}{ms} ms): {e}; it will be retried");
            1
        }
    }
}

/// `skillsd webhook test`: exit status 1 when the receiver did not take the ping.
async fn webhook_test(settings: &Settings, repo: String, hook: i64) -> Result<i32> {
    use skillsd::deliver::webhooks;
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    let (id, sent) = webhooks::ping(&pool, &settings.delivery, &repo, hook).await?;
    Ok(print_sent(id, sent))
}

async fn webhook_deliveries(
    settings: &Settings,
    repo: String,
    hook: i64,
    limit: i64,
) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    let list = skillsd::deliver::webhooks::deliveries(&pool, &repo, hook, limit).await?;
    if list.is_empty() {
        println!("webhook {hook} of {repo}: no deliveries");
    }
    for d in &list {
        println!(
            "{}  {}  {:<9} {} attempt{}{}{}  {}",
            d.id,
            d.event,
            d.status,
            d.attempts,
            if d.attempts == 1 { "" } else { "s" },
            d.response_code
                .map(|c| format!(", HTTP {c}"))
                .unwrap_or_default(),
            d.duration_ms
                .map(|ms| format!(", {ms} ms"))
                .unwrap_or_default(),
            ago(Some(d.created_at)),
        );
        if let Some(e) = &d.last_error {
            println!("    {e}");
        }
    }
    Ok(0)
}

async fn webhook_redeliver(settings: &Settings, repo: String, of: uuid::Uuid) -> Result<i32> {
    use skillsd::deliver::webhooks;
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    let (id, sent) = webhooks::redeliver(&pool, &settings.delivery, &repo, of).await?;
    Ok(print_sent(id, sent))
}

/// `skillsd export REPO DIR`.
async fn export(settings: &Settings, repo: String, dir: PathBuf) -> Result<i32> {
    let pool = pool(settings).await?;
    let name = RepoStore::canonical_name(&repo)?;
    let (rt, p2, n2, d2) = (
        tokio::runtime::Handle::current(),
        pool.pool.clone(),
        name.clone(),
        dir.clone(),
    );
    let done =
        tokio::task::spawn_blocking(move || skillsd::storage::export::export(&rt, &p2, &n2, &d2))
            .await??;
    println!(
        "exported {name} (generation {}, {} packs) to {}: a plain bare repository",
        done.generation,
        done.fetched,
        dir.display()
    );
    Ok(0)
}

/// `skillsd psql [-- ARGS]`.
async fn psql(settings: &Settings, args: Vec<String>) -> Result<i32> {
    refuse_without_data(settings)?;
    let (url, cluster) = server::database_url(&Database::of(settings), &settings.data_dir).await?;
    let psql = skillsd::localpg::psql();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&psql)
            .arg(&url)
            .args(&args)
            .status()
            .with_context(|| format!("cannot run {}", psql.display()))
    })
    .await??;
    drop(cluster);
    Ok(status.code().unwrap_or(1) as i32)
}

/// `skillsd migrate`.
async fn migrate(settings: &Settings) -> Result<i32> {
    pool(settings).await?;
    println!("migrations applied");
    Ok(0)
}

fn hook_pre_receive(settings: &Settings) -> Result<i32> {
    use skillsd::hook;
    let commands = hook::read_updates(std::io::stdin().lock())?;
    let (_, repo) = hook::open_repo()?;
    let (view, _tmp) = hook::quarantine_view(&repo)?;
    let (text, accept) = hook::pre_receive(&view, &repo, &commands, &settings.policy);
    eprint!("{text}");
    Ok(if accept { 0 } else { 1 })
}

async fn hook_post_receive(database_url: Option<String>) -> Result<i32> {
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

/// The flags that name settings, whichever command they came with.
fn flags(cli: &Cli) -> Flags {
    let common = |c: &Common| Flags {
        data_dir: c.data_dir.clone(),
        database_url: c.database_url.clone(),
        ..Flags::default()
    };
    match &cli.command {
        Cmd::Serve {
            listen,
            http,
            admin_key,
            common: c,
        } => Flags {
            listen: *listen,
            http: http.map(|h| h.0),
            admin_keys: admin_key.clone(),
            ..common(c)
        },
        Cmd::Hook { database_url, .. } => Flags {
            database_url: database_url.clone(),
            ..Flags::default()
        },
        Cmd::Check { .. } => Flags::default(),
        Cmd::Init { common: c, .. }
        | Cmd::Reconcile { common: c, .. }
        | Cmd::Gc { common: c, .. }
        | Cmd::Fsck { common: c, .. }
        | Cmd::Audit { common: c, .. }
        | Cmd::Export { common: c, .. }
        | Cmd::Import { common: c, .. }
        | Cmd::Psql { common: c, .. }
        | Cmd::Migrate { common: c }
        | Cmd::Ref {
            command: RefCmd::List { common: c, .. } | RefCmd::Delete { common: c, .. },
        }
        | Cmd::User {
            command:
                UserCmd::Add { common: c, .. }
                | UserCmd::List { common: c }
                | UserCmd::Remove { common: c, .. }
                | UserCmd::Grant { common: c, .. }
                | UserCmd::Revoke { common: c, .. },
        }
        | Cmd::Mirror {
            command:
                MirrorCmd::Add { common: c, .. }
                | MirrorCmd::List { common: c, .. }
                | MirrorCmd::Remove { common: c, .. }
                | MirrorCmd::Sync { common: c, .. },
        }
        | Cmd::Webhook {
            command:
                WebhookCmd::Add { common: c, .. }
                | WebhookCmd::List { common: c, .. }
                | WebhookCmd::Remove { common: c, .. }
                | WebhookCmd::Test { common: c, .. }
                | WebhookCmd::Deliveries { common: c, .. }
                | WebhookCmd::Redeliver { common: c, .. },
        } => common(c),
    }
}

/// Every setting: the flags, then the environment, then the config file (`--config
/// FILE` / `SKILLSD_CONFIG` / `/etc/skillsd.toml`), then the defaults.
fn load_settings(cli: &Cli) -> Result<Settings> {
    let file = skillsd::config::locate(cli.config.clone());
    Ok(Settings::load(
        &flags(cli),
        |name| std::env::var(name).ok(),
        file.as_deref(),
    )?)
}
