//! Commands over SSH besides git, like soft-serve's and gitolite's:
//! `ssh -p 2222 git@host help | whoami | keys | status [REPO] | ls [REPO] |
//! show SKILL [REPO] | log SKILL [REPO] | reconcile [REPO]` (the last for admins). Plain, script-friendly output: one
//! `key: value` or tab-separated record per line.

pub mod review;

use crate::db::users::{Role, User};
use crate::repos::{DEFAULT_BRANCH, DEFAULT_REPO, RepoStore};
use sqlx::PgPool;

/// fingerprint, algorithm, comment, last used.
type KeyRow = (
    String,
    String,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
);
/// started, operation, status, commit, by, path, error.
type LogRow = (
    chrono::DateTime<chrono::Utc>,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

/// What a command printed and its exit status.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: u32,
}

pub(crate) fn ok(stdout: String) -> Output {
    Output {
        stdout,
        stderr: String::new(),
        code: 0,
    }
}

pub(crate) fn fail(stderr: String) -> Output {
    Output {
        stdout: String::new(),
        stderr,
        code: 1,
    }
}

pub const HELP: &str = "\
skillsd: commands over ssh (besides git clone/fetch/push)
  help                 this text
  whoami               your user name and role
  keys                 your SSH keys
  status [REPO]        the branch tip, what the cache reflects, sync health
  ls [REPO]            every cached skill: slug, title, status, sync state
  show SKILL [REPO]    a skill's file as the cache has it (by slug)
  log SKILL [REPO]     the sync history of a skill, renames included
  reconcile [REPO]     repair the cache from git (admin)
  web-login            a one-time link that signs you in to the status pages
  api-token [LABEL]    a bearer token for the JSON API (Authorization: Bearer TOKEN)
  api-token list       your API tokens that still work
  api-token revoke     ends every API token of yours
  token create [--name N] [--expires DAYS] [--write]
                       a bearer token for the API and agents (shown once); read-only
                       unless --write (then it may also open changes: contents API)
  token list           your tokens: name, created, expires, last used
  token revoke NAME|--all
                       ends your tokens of that name, or all of them
  profile [USER] [--name FULL NAME] [--email ADDRESS]
                       the author name and email of commits made for you in the
                       browser or the contents API (admins: anyone's)
";

/// `api-token`: a new bearer token for the JSON API, the list of yours, or all of
/// them revoked.
async fn api_token(pool: &PgPool, user: &User, args: &[&str]) -> Output {
    use crate::db::credentials as auth;
    match args {
        ["list"] => match auth::api_tokens(pool, &user.name).await {
            Ok(rows) => {
                let mut out = String::new();
                for row in rows {
                    out.push_str(&format!(
                        "{}\tcreated {}\texpires {}\tlast used {}\n",
                        row.label.as_deref().unwrap_or("-"),
                        row.created_at.format("%Y-%m-%d %H:%M"),
                        row.expires_at.format("%Y-%m-%d %H:%M"),
                        row.last_used_at.map_or("never".to_string(), |u| u
                            .format("%Y-%m-%d %H:%M")
                            .to_string())
                    ));
                }
                ok(out)
            }
            Err(e) => fail(format!("error: cannot list your tokens: {e}\n")),
        },
        ["revoke"] => match auth::revoke_api_tokens(pool, &user.name).await {
            Ok(n) => ok(format!(
                "revoked {n} API token{}\n",
                if n == 1 { "" } else { "s" }
            )),
            Err(e) => fail(format!("error: cannot revoke your tokens: {e}\n")),
        },
        [] | [_] => {
            let label = args.first().copied().unwrap_or("api");
            if label.chars().count() > 64 || label.chars().any(char::is_control) {
                return fail("error: a token's label is at most 64 printable characters\n".into());
            }
            let days = auth::API_TOKEN_TTL.as_secs() / 86_400;
            match auth::issue_api_token(pool, &user.name, label).await {
                Ok(token) => ok(format!(
                    "An API token for {} ({}), valid {days} days, ended by a change of your role \
                     or `api-token revoke`; send it as `Authorization: Bearer TOKEN`:\n{token}\n",
                    user.name,
                    user.role.as_str()
                )),
                Err(e) => fail(format!("error: cannot make a token: {e}\n")),
            }
        }
        _ => fail(format!("skillsd: wrong arguments for `api-token`\n{HELP}")),
    }
}

/// The longest a token made by `token create` may last.
pub const MAX_TOKEN_DAYS: u64 = 365;

/// `token create [--name N] [--expires DAYS]`, `token list`, `token revoke NAME|--all`:
/// personal bearer tokens for the JSON API and the agents' index (what an agent or a
/// script reads with). They read what the user may read; nothing acts with them.
async fn token(pool: &PgPool, user: &User, args: &[&str]) -> Output {
    use crate::db::credentials as auth;
    match args {
        ["create", rest @ ..] => {
            let mut name = "token".to_string();
            let mut days = auth::API_TOKEN_TTL.as_secs() / 86_400;
            let mut write = false;
            let mut i = 0;
            while i < rest.len() {
                if rest[i] == "--write" {
                    write = true;
                    i += 1;
                    continue;
                }
                match (rest[i], rest.get(i + 1)) {
                    ("--name", Some(v)) => name = v.to_string(),
                    ("--expires", Some(v)) => match v.parse::<u64>() {
                        Ok(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => days = d,
                        _ => {
                            return fail(format!(
                                "error: --expires takes a number of days from 1 to {MAX_TOKEN_DAYS}\n"
                            ));
                        }
                    },
                    (flag, _) => {
                        return fail(format!(
                            "error: `token create` takes --name NAME, --expires DAYS and --write, not `{flag}`\n"
                        ));
                    }
                }
                i += 2;
            }
            if name.is_empty()
                || name.chars().count() > 64
                || name.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return fail(
                    "error: a token's name is 1 to 64 printable characters without spaces\n".into(),
                );
            }
            let ttl = std::time::Duration::from_secs(days * 86_400);
            if write && user.role == crate::db::users::Role::Reader {
                return fail(format!(
                    "error: {} has read-only access (role: reader): a --write token could do nothing more\n",
                    user.name
                ));
            }
            match auth::issue_token(pool, &user.name, &name, ttl, write).await {
                Ok(token) => ok(format!(
                    "A {} token `{name}` for {} ({}), valid {days} day{}; it is shown once, \
                     send it as `Authorization: Bearer TOKEN`; `token revoke {name}` ends it:\n{token}\n",
                    if write {
                        "read-write (opens changes)"
                    } else {
                        "read-only"
                    },
                    user.name,
                    user.role.as_str(),
                    if days == 1 { "" } else { "s" }
                )),
                Err(e) => fail(format!("error: cannot make a token: {e}\n")),
            }
        }
        ["list"] => api_token(pool, user, &["list"]).await,
        ["revoke", "--all"] => api_token(pool, user, &["revoke"]).await,
        ["revoke", name] => match auth::revoke_api_token(pool, &user.name, name).await {
            Ok(0) => fail(format!(
                "error: you have no token named `{name}` (`token list` shows yours)\n"
            )),
            Ok(n) => ok(format!(
                "revoked {n} token{} named {name}\n",
                if n == 1 { "" } else { "s" }
            )),
            Err(e) => fail(format!("error: cannot revoke the token: {e}\n")),
        },
        _ => fail(format!("skillsd: wrong arguments for `token`\n{HELP}")),
    }
}

/// A one-time sign-in link to the status pages for `user`.
async fn web_login(pool: &PgPool, web_url: Option<&str>, user: &User) -> Output {
    let minutes = crate::db::credentials::LINK_TTL.as_secs() / 60;
    match crate::db::credentials::issue_link(pool, &user.name).await {
        Ok(token) => ok(match web_url {
            Some(url) => format!(
                "Sign in to the status pages as {} (the link works once, within {minutes} minutes):\n{url}/login?token={token}\n",
                user.name
            ),
            // No address to put in front: the path alone, and why.
            None => format!(
                "Sign in to the status pages as {} (works once, within {minutes} minutes): this node \
                 does not know the pages' address (its operator can set SKILLSD_PUBLIC_URL); open \
                 this path on a node that serves them (skillsd serve --http):\n/login?token={token}\n",
                user.name
            ),
        }),
        Err(e) => fail(format!("error: cannot make a sign-in link: {e}\n")),
    }
}

/// `profile [USER] [--name FULL NAME] [--email ADDRESS]`: the name and email of the
/// commits the server makes for a user (the contents API, the editor pages). Anyone
/// sets their own; admins set anyone's. Without options: shows them.
async fn profile(pool: &PgPool, user: &User, args: &[&str]) -> Output {
    use crate::db::users::Role;
    let (target, rest) = match args.first() {
        Some(a) if !a.starts_with("--") => (a.to_string(), &args[1..]),
        _ => (user.name.clone(), args),
    };
    if target != user.name && user.role != Role::Admin {
        return fail(format!(
            "error: only admins set another user's profile; `profile --name … --email …` sets yours ({})\n",
            user.name
        ));
    }
    let mut name: Option<String> = None;
    let mut email: Option<String> = None;
    let mut i = 0;
    while i < rest.len() {
        let flag = rest[i];
        let mut value = Vec::new();
        i += 1;
        while i < rest.len() && !rest[i].starts_with("--") {
            value.push(rest[i]);
            i += 1;
        }
        let value = value.join(" ");
        match flag {
            "--name" if !value.is_empty() => name = Some(value),
            "--email" if !value.is_empty() => email = Some(value),
            _ => {
                return fail(format!(
                    "error: `profile` takes [USER] --name FULL NAME --email ADDRESS, not `{flag} {value}`\n"
                ));
            }
        }
    }
    if let Some(n) = &name
        && (n.chars().count() > 200 || n.contains(['<', '>', '\n', '\r']))
    {
        return fail("error: a name is 1 to 200 characters, without < or >\n".into());
    }
    if let Some(e) = &email {
        let parts: Vec<&str> = e.split('@').collect();
        if parts.len() != 2
            || parts.iter().any(|p| p.is_empty())
            || e.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        {
            return fail(format!(
                "error: `{e}` is not an email address (name@example.com)\n"
            ));
        }
    }
    let updated = if name.is_some() || email.is_some() {
        sqlx::query!(
            "UPDATE users SET full_name = COALESCE($2, full_name), email = COALESCE($3, email)
             WHERE name = $1",
            target,
            name,
            email,
        )
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    } else {
        Ok(1)
    };
    match updated {
        Ok(0) => return fail(format!("error: there is no user `{target}`\n")),
        Ok(_) => {}
        Err(e) => return fail(format!("skillsd: database unavailable: {e}\n")),
    }
    match crate::edit::identity(pool, &target).await {
        Ok(Some((n, e))) => ok(format!(
            "user: {target}\nname: {n}\nemail: {e}\n(commits made for {target} in the browser or \
             through the contents API carry these)\n"
        )),
        Ok(None) => fail(format!("error: there is no user `{target}`\n")),
        Err(e) => fail(format!("skillsd: database unavailable: {e}\n")),
    }
}

/// Runs `command` for `user`; `None` when it is not one of these commands.
pub async fn run(
    pool: &PgPool,
    repos: &RepoStore,
    web_url: Option<&str>,
    user: &User,
    command: &str,
) -> Option<Output> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let (&name, args) = words.split_first()?;
    Some(match (name, args) {
        ("help", []) => ok(format!("{HELP}{}", review::HELP)),
        ("whoami", []) => ok(format!(
            "user: {}\nrole: {}\nkey: {}\n",
            user.name,
            user.role.as_str(),
            user.key_fingerprint.as_deref().unwrap_or("-")
        )),
        ("keys", []) => keys(pool, user).await,
        ("web-login", []) => web_login(pool, web_url, user).await,
        ("api-token", rest) => api_token(pool, user, rest).await,
        ("token", rest) => token(pool, user, rest).await,
        ("profile", rest) => profile(pool, user, rest).await,
        ("status", rest) if rest.len() <= 1 => status(pool, repos, rest.first().copied()).await,
        ("ls", rest) if rest.len() <= 1 => list(pool, repos, rest.first().copied()).await,
        ("show", rest) if !rest.is_empty() && rest.len() <= 2 => {
            show(pool, repos, rest[0], rest.get(1).copied()).await
        }
        ("log", rest) if !rest.is_empty() && rest.len() <= 2 => {
            log(pool, rest[0], rest.get(1).copied()).await
        }
        ("reconcile", rest) if rest.len() <= 1 => {
            reconcile(pool, repos, user, rest.first().copied()).await
        }
        ("help" | "whoami" | "keys" | "status" | "ls" | "show" | "log" | "reconcile", _) => {
            fail(format!("skillsd: wrong arguments for `{name}`\n{HELP}"))
        }
        _ => return None,
    })
}

async fn keys(pool: &PgPool, user: &User) -> Output {
    let rows: Result<Vec<KeyRow>, _> = sqlx::query!(
        "SELECT k.fingerprint, k.algorithm, k.comment, k.last_used_at FROM ssh_keys k
             JOIN users u ON u.id = k.user_id WHERE u.name = $1 ORDER BY k.id",
        user.name,
    )
    .fetch_all(pool)
    .await
    .map(|rows| {
        rows.into_iter()
            .map(|r| (r.fingerprint, r.algorithm, r.comment, r.last_used_at))
            .collect()
    });
    match rows {
        Ok(rows) => ok(rows
            .into_iter()
            .map(|(fp, alg, comment, used)| {
                format!(
                    "{fp}\t{alg}\t{}\t{}\n",
                    comment.unwrap_or_default(),
                    used.map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "never".into())
                )
            })
            .collect()),
        Err(e) => fail(format!("skillsd: database unavailable: {e}\n")),
    }
}

/// The repository, from a copy brought to the database's state.
async fn open(
    pool: &PgPool,
    repos: &RepoStore,
    repo: Option<&str>,
) -> Result<(String, gix::Repository), Output> {
    crate::storage::replica::open(pool, repos, repo.unwrap_or(DEFAULT_REPO), false)
        .await
        .map_err(|_| {
            fail(format!(
                "ERROR: repository `{}` not found\n",
                repo.unwrap_or(DEFAULT_REPO)
            ))
        })
}

async fn status(pool: &PgPool, repos: &RepoStore, repo: Option<&str>) -> Output {
    let (name, git) = match open(pool, repos, repo).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let tip = crate::repos::ref_target(&git, &format!("refs/heads/{DEFAULT_BRANCH}"))
        .map(|id| id.to_string());
    let cached: Option<String> = sqlx::query_scalar!(
        "SELECT commit_sha FROM sync_state WHERE repo = $1 AND branch = $2",
        name,
        DEFAULT_BRANCH,
    )
    .fetch_optional(pool)
    .await
    .ok()
    .flatten();
    let counts: Option<(i64, i64, i64)> = sqlx::query!(
        r#"SELECT count(*) AS "total!", count(*) FILTER (WHERE sync_status = 'pending') AS "pending!",
                  count(*) FILTER (WHERE sync_status = 'failed') AS "failed!"
         FROM skills WHERE repo = $1"#,
        name,
    )
    .fetch_one(pool)
    .await
    .ok()
    .map(|r| (r.total, r.pending, r.failed));
    let in_sync = tip.is_some() && tip == cached;
    let mut out = format!(
        "repo: {name}\nbranch: {DEFAULT_BRANCH}\ntip: {}\ncache: {}\nin-sync: {}\n",
        tip.as_deref().unwrap_or("(empty)"),
        cached.as_deref().unwrap_or("(none)"),
        if in_sync { "yes" } else { "no" }
    );
    match counts {
        Some((total, pending, failed)) => out.push_str(&format!(
            "skills: {total}\npending: {pending}\nfailed: {failed}\n"
        )),
        None => out.push_str("database: unavailable\n"),
    }
    // One line per mirror: `mirror: URL STATE behind N [lag S s] [error: …]`.
    if let Ok(mirrors) = crate::deliver::mirrors::list(pool, Some(&name)).await {
        for m in mirrors {
            out.push_str(&format!(
                "mirror: {} {} behind {}",
                m.url, m.state, m.refs_behind
            ));
            if let Some(lag) = m.lag_seconds {
                out.push_str(&format!(" lag {lag:.0} s"));
            }
            if let Some(e) = &m.last_error {
                out.push_str(&format!(" error: {}", e.replace('\n', " ")));
            }
            out.push('\n');
        }
    }
    ok(out)
}

/// `slug<TAB>title<TAB>status<TAB>sync state` per cached skill, by slug.
async fn list(pool: &PgPool, repos: &RepoStore, repo: Option<&str>) -> Output {
    let name = match open(pool, repos, repo).await {
        Ok((name, _)) => name,
        Err(o) => return o,
    };
    let rows: Result<Vec<(String, String, String, String)>, _> = sqlx::query!(
        "SELECT slug, title, status, sync_status FROM skills WHERE repo = $1 ORDER BY slug",
        name,
    )
    .fetch_all(pool)
    .await
    .map(|rows| {
        rows.into_iter()
            .map(|r| (r.slug, r.title, r.status, r.sync_status))
            .collect()
    });
    match rows {
        Ok(rows) => ok(rows
            .into_iter()
            .map(|(slug, title, status, sync)| {
                format!(
                    "{slug}\t{}\t{status}\t{sync}\n",
                    title.replace(['\t', '\n'], " ")
                )
            })
            .collect()),
        Err(e) => fail(format!("skillsd: database unavailable: {e}\n")),
    }
}

/// The file the cache row of `slug` was made from: the blob it names, read from git.
async fn show(pool: &PgPool, repos: &RepoStore, slug: &str, repo: Option<&str>) -> Output {
    let row: Result<Option<(String, String)>, _> = sqlx::query!(
        "SELECT path, blob_sha FROM skills WHERE repo = $1 AND slug = $2",
        repo.unwrap_or(DEFAULT_REPO),
        slug,
    )
    .fetch_optional(pool)
    .await
    .map(|r| r.map(|r| (r.path, r.blob_sha)));
    let (path, blob) = match row {
        Ok(Some(r)) => r,
        Ok(None) => return fail(format!("skillsd: no skill `{slug}`; `ls` lists them\n")),
        Err(e) => return fail(format!("skillsd: database unavailable: {e}\n")),
    };
    let (_, git) = match open(pool, repos, repo).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let text = gix::ObjectId::from_hex(blob.as_bytes())
        .ok()
        .and_then(|id| git.find_object(id).ok())
        .map(|o| String::from_utf8_lossy(&o.data).into_owned());
    match text {
        Some(text) => ok(text),
        None => fail(format!(
            "skillsd: the file of `{slug}` ({path}, blob {blob}) is missing\n"
        )),
    }
}

/// The sync history of the skill now called `slug` (or last called so, if deleted),
/// followed by its id through renames: newest first, 20 rows.
async fn log(pool: &PgPool, slug: &str, repo: Option<&str>) -> Output {
    let rows: Result<Vec<LogRow>, _> = sqlx::query!(
        "WITH target AS (
             SELECT COALESCE(
                 (SELECT id FROM skills WHERE repo = $1 AND slug = $2),
                 (SELECT skill_id FROM skill_sync_log
                  WHERE repo = $1 AND slug = $2 AND skill_id IS NOT NULL
                  ORDER BY id DESC LIMIT 1)) AS id)
         SELECT l.started_at, l.operation, l.status, l.git_commit_sha, l.synced_by, l.path,
                l.error
         FROM skill_sync_log l, target
         WHERE l.repo = $1
           AND (l.skill_id = target.id OR (target.id IS NULL AND l.slug = $2))
         ORDER BY l.started_at DESC, l.id DESC LIMIT 20",
        repo.unwrap_or(DEFAULT_REPO),
        slug,
    )
    .fetch_all(pool)
    .await
    .map(|rows| {
        rows.into_iter()
            .map(|r| {
                (
                    r.started_at,
                    r.operation,
                    r.status,
                    r.git_commit_sha,
                    r.synced_by,
                    r.path,
                    r.error,
                )
            })
            .collect()
    });
    match rows {
        Ok(rows) if rows.is_empty() => fail(format!("skillsd: no history for `{slug}`\n")),
        Ok(rows) => ok(rows
            .into_iter()
            .map(|(at, op, status, sha, by, path, error)| {
                let mut line = format!(
                    "{}\t{op}\t{status}\t{}\t{by}\t{}",
                    at.to_rfc3339(),
                    sha.unwrap_or_default(),
                    path.unwrap_or_default()
                );
                if let Some(e) = error {
                    line.push('\t');
                    line.push_str(&e.replace('\n', " "));
                }
                line.push('\n');
                line
            })
            .collect()),
        Err(e) => fail(format!("skillsd: database unavailable: {e}\n")),
    }
}

async fn reconcile(pool: &PgPool, repos: &RepoStore, user: &User, repo: Option<&str>) -> Output {
    if user.role != Role::Admin {
        return fail(format!(
            "ERROR: reconcile needs the admin role; {} is a {}\n",
            user.name,
            user.role.as_str()
        ));
    }
    let (name, git) = match open(pool, repos, repo).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let pool = pool.clone();
    let rt = tokio::runtime::Handle::current();
    let n = name.clone();
    let bulk_from = repos.settings.bulk_load_from;
    let result = tokio::task::spawn_blocking(move || {
        crate::cache::sync::reconcile(&rt, &pool, &git, &n, DEFAULT_BRANCH, bulk_from)
    })
    .await;
    match result {
        Ok(Ok(o)) => ok(format!(
            "reconciled {name}: cache at {}: {}\n",
            o.commit.as_deref().unwrap_or("(empty branch)"),
            o.reconcile_summary()
        )),
        Ok(Err(e)) => fail(format!("skillsd: reconcile failed: {e}\n")),
        Err(e) => fail(format!("skillsd: reconcile failed: {e}\n")),
    }
}
