//! `skillsd user add|list|remove|grant|revoke`: users, their roles and SSH keys.

use super::Common;
use super::db::pool;
use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use skillsd::config::Settings;
use skillsd::db::users::{self, Role};
use skillsd::repos::RepoStore;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum UserCmd {
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

/// `skillsd user ...`.
pub(crate) async fn run(s: &Settings, command: UserCmd) -> Result<i32> {
    match command {
        UserCmd::Add {
            name, role, key, ..
        } => user_add(s, name, role, key).await,
        UserCmd::List { .. } => user_list(s).await,
        UserCmd::Grant {
            name, repo, role, ..
        } => user_grant(s, name, repo, role).await,
        UserCmd::Revoke { name, repo, .. } => user_revoke(s, name, repo).await,
        UserCmd::Remove { name, .. } => user_remove(s, name).await,
    }
}

/// `skillsd user add`.
pub(crate) async fn user_add(
    settings: &Settings,
    name: String,
    role: String,
    key: PathBuf,
) -> Result<i32> {
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
pub(crate) async fn user_list(settings: &Settings) -> Result<i32> {
    let pool = pool(settings).await?;
    for u in users::list(&pool).await? {
        println!("{}\t{}\t{}", u.name, u.role, u.fingerprints.join(","));
    }
    Ok(0)
}

/// `skillsd user grant`.
pub(crate) async fn user_grant(
    settings: &Settings,
    name: String,
    repo: String,
    role: String,
) -> Result<i32> {
    let role = Role::parse(&role).expect("clap checked the role");
    let repo = RepoStore::canonical_name(&repo)
        .map_err(|_| anyhow::anyhow!("`{repo}` is not a repository name"))?;
    let pool = pool(settings).await?;
    users::grant(&pool, &name, &repo, role).await?;
    println!("{name} is {} on {repo}", role.as_str());
    Ok(0)
}

/// `skillsd user revoke`.
pub(crate) async fn user_revoke(settings: &Settings, name: String, repo: String) -> Result<i32> {
    let pool = pool(settings).await?;
    if users::revoke(&pool, &name, &repo).await? {
        println!("{name} has their global role on {repo} again");
        Ok(0)
    } else {
        bail!("`{name}` has no grant on `{repo}`")
    }
}

/// `skillsd user remove`.
pub(crate) async fn user_remove(settings: &Settings, name: String) -> Result<i32> {
    let pool = pool(settings).await?;
    if users::remove(&pool, &name).await? {
        println!("removed {name} and their keys");
        Ok(0)
    } else {
        bail!("no user named `{name}`")
    }
}
