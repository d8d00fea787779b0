//! The `skillsd` command line (the binary's own modules; `anyhow` stays here, at the
//! edge): the clap definitions and the settings they name, then one file per group
//! of commands. `main.rs` parses, loads the settings and dispatches.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use skillsd::config::{Flags, Settings};
use skillsd::repos::DEFAULT_REPO;
use std::net::SocketAddr;
use std::path::PathBuf;

pub(crate) mod cache;
pub(crate) mod check;
pub(crate) mod db;
pub(crate) mod deliver;
pub(crate) mod repos;
pub(crate) mod serve;
pub(crate) mod users;

use deliver::{MirrorCmd, WebhookCmd};
use repos::RefCmd;
use users::UserCmd;

#[derive(Parser)]
#[command(
    name = "skillsd",
    version,
    about = "SSH git server for a repository of skills, with a PostgreSQL cache",
    after_help = skillsd::config::help()
)]
pub(crate) struct Cli {
    /// A TOML file with settings (keys: see below); default /etc/skillsd.toml if present.
    #[arg(long, global = true, env = "SKILLSD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

/// Flags of every command that uses the data dir or the database. Without them, the
/// settings (environment, config file, default) decide.
#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Where repositories, the host key and (without --database-url) the private
    /// PostgreSQL cluster live [env SKILLSD_DATA_DIR; default ./data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL [env DATABASE_URL]. Without it, skillsd runs a private cluster
    /// under the data dir.
    #[arg(long, global = true)]
    database_url: Option<String>,
}

/// `--http ADDR` or `--http off` (`None`).
#[derive(Clone, Copy)]
pub(crate) struct Http(Option<SocketAddr>);

pub(crate) fn parse_http(value: &str) -> Result<Http, String> {
    skillsd::config::parse_http(value).map(Http)
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
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
        /// Without a skillsd.toml, list the errors of the built-in rules (else, past
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

/// The flags that name settings, whichever command they came with.
pub(crate) fn flags(cli: &Cli) -> Flags {
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
pub(crate) fn load_settings(cli: &Cli) -> Result<Settings> {
    let file = skillsd::config::locate(cli.config.clone());
    Ok(Settings::load(
        &flags(cli),
        |name| std::env::var(name).ok(),
        file.as_deref(),
    )?)
}
