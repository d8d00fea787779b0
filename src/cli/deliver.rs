//! Delivery after a push: `mirror add|list|remove|sync` and
//! `webhook add|list|remove|test|deliveries|redeliver`.

use super::Common;
use super::db::{pool, store};
use anyhow::{Result, bail};
use clap::Subcommand;
use skillsd::config::Settings;
use skillsd::repos::RepoStore;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum MirrorCmd {
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
pub(crate) enum WebhookCmd {
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

/// `skillsd mirror ...`.
pub(crate) async fn mirror(s: &Settings, command: MirrorCmd) -> Result<i32> {
    match command {
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
    }
}

/// `skillsd webhook ...`.
pub(crate) async fn webhook(s: &Settings, command: WebhookCmd) -> Result<i32> {
    match command {
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
        WebhookCmd::Redeliver { repo, delivery, .. } => webhook_redeliver(s, repo, delivery).await,
    }
}

/// `skillsd mirror add`: the key to authorize on its own line, for copying.
pub(crate) async fn mirror_add(
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
    println!(
        "mirror {} of {repo} added. Authorize this key on the upstream, with write access (on GitHub: the repository's Settings > Deploy keys > Allow write access):",
        added.id
    );
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

pub(crate) fn ago(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
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

pub(crate) fn print_mirror(m: &skillsd::deliver::mirrors::Mirror) {
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
    if m.state != "in-sync"
        && let Some(next) = m.next_attempt_at
    {
        let secs = (next - chrono::Utc::now()).num_seconds().max(0);
        println!("     next attempt in {secs} s");
    }
    match m.host_keys.as_slice() {
        [] => println!("     host key: not pinned yet (pinned at the first contact)"),
        keys => println!("     host key: {}", keys.join(", ")),
    }
    println!("     key: {}", m.public_key);
}

pub(crate) async fn mirror_list(settings: &Settings, repo: Option<String>) -> Result<i32> {
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

pub(crate) async fn mirror_remove(settings: &Settings, repo: String, which: String) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    if !skillsd::deliver::mirrors::remove(&pool, &repo, &which).await? {
        bail!("{repo} has no mirror `{which}` (see `skillsd mirror list`)");
    }
    println!("{repo}: mirror {which} removed (the upstream keeps what it has)");
    Ok(0)
}

/// `skillsd mirror sync`: exit status 1 when a mirror is not in sync after it.
pub(crate) async fn mirror_sync(
    settings: &Settings,
    repo: String,
    which: Option<String>,
) -> Result<i32> {
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

pub(crate) async fn webhook_add(
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

pub(crate) async fn webhook_list(settings: &Settings, repo: Option<String>) -> Result<i32> {
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

pub(crate) async fn webhook_remove(
    settings: &Settings,
    repo: String,
    which: String,
) -> Result<i32> {
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    if !skillsd::deliver::webhooks::remove(&pool, &repo, &which).await? {
        bail!("{repo} has no webhook `{which}` (see `skillsd webhook list`)");
    }
    println!("{repo}: webhook {which} removed");
    Ok(0)
}

/// Exit status 1 when the receiver did not take it.
pub(crate) fn print_sent(id: uuid::Uuid, s: skillsd::deliver::webhooks::Sent) -> i32 {
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
pub(crate) async fn webhook_test(settings: &Settings, repo: String, hook: i64) -> Result<i32> {
    use skillsd::deliver::webhooks;
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    let (id, sent) = webhooks::ping(&pool, &settings.delivery, &repo, hook).await?;
    Ok(print_sent(id, sent))
}

pub(crate) async fn webhook_deliveries(
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

pub(crate) async fn webhook_redeliver(
    settings: &Settings,
    repo: String,
    of: uuid::Uuid,
) -> Result<i32> {
    use skillsd::deliver::webhooks;
    let pool = pool(settings).await?;
    let repo = RepoStore::canonical_name(&repo)?;
    let (id, sent) = webhooks::redeliver(&pool, &settings.delivery, &repo, of).await?;
    Ok(print_sent(id, sent))
}
