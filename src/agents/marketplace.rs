//! Plugin marketplace manifests of a repository's published skills, behind the gate of
//! the JSON API (`SKILLSD_WEB_ACCESS`):
//!
//! * `GET [/{repo}]/.claude-plugin/marketplace.json` — Claude Code's format (`name`,
//!   `owner`, `plugins[]`), for `/plugin marketplace add http://HOST/.claude-plugin/marketplace.json`.
//! * `GET [/{repo}]/.agents/plugins/marketplace.json` — Codex's (`name`,
//!   `interface.displayName`, `plugins[]` with `policy`), for `~/.agents/plugins/marketplace.json`.
//!
//! Both are made from what the discovery index serves ([`super::index::Published`]:
//! the cache's `PUBLISHED` skills at the commit `sync_state` names), and every entry's
//! `source` is a `git-subdir` source — the SSH clone URL, the folder, `ref` the default
//! branch and `sha` that commit — so a client fetches exactly the published files with
//! a sparse clone, over SSH with the user's own key.
//!
//! * A **plugin folder** ([`super::index::Plugin`]: a root's parent with
//!   `.claude-plugin/plugin.json` or `.codex-plugin/plugin.json`, as `plugins/*/skills`
//!   roots give) is one entry named by its manifest, when every skill file in it is
//!   served: a folder with an archived, draft or unfit skill would hand that skill out
//!   too, so its served skills are listed one by one instead (Claude Code only).
//! * **Any other served skill** of the agent-skills layout is one Claude Code entry:
//!   its folder, `strict: false` and `skills: ["./"]` (the folder is the plugin and its
//!   one skill), `version` the skill's current version number. Left out: flat-layout
//!   skills (a file, not a folder a plugin can be), a skill whose folder holds another
//!   skill, and a name another entry has.
//! * Codex's manifest lists plugin folders only: Codex refuses to install a folder
//!   without a plugin manifest (`missing plugin.json`, tests/marketplace.rs), and a
//!   Codex marketplace entry cannot declare one or name the skills.
//!
//! The SSH clone URL is `SKILLSD_SSH_URL` + `/{repo}.git` when set; else
//! `ssh://git@HOST:PORT/{repo}.git` with the SSH listener's port and, for HOST, the
//! host of `SKILLSD_PUBLIC_URL`, else the SSH listener's address when it is a specific
//! one, else the host the request was sent to. Answers carry `ETag` (the digest of
//! the bytes), `If-None-Match` gets `304`, as for the index.

use super::index::{Plugin, Published};
use super::serve::{Freshness, answer, json_error};
use crate::agents::AgentsState;
use crate::skills::rules::SKILL_FILE;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Claude Code's manifest path.
pub const CLAUDE: &str = "/.claude-plugin/marketplace.json";
/// Codex's manifest path.
pub const CODEX: &str = "/.agents/plugins/marketplace.json";

/// The routes (the default repository's and any repository's).
pub fn router() -> Router<Arc<AgentsState>> {
    Router::new()
        .route(CLAUDE, get(manifest))
        .route(CODEX, get(manifest))
        .route("/{repo}/.claude-plugin/marketplace.json", get(manifest))
        .route("/{repo}/.agents/plugins/marketplace.json", get(manifest))
}

/// Which client's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    Claude,
    Codex,
}

/// Is `rest` (a path after the optional `/{repo}`) a manifest's path?
pub fn is_manifest_path(rest: &str) -> bool {
    rest == CLAUDE || rest == CODEX
}

/// The repository (`None`: the default one) and the format a path asks for.
pub fn parse(path: &str) -> Option<(Option<String>, Flavor)> {
    let flavor = |rest: &str| match rest {
        CLAUDE => Some(Flavor::Claude),
        CODEX => Some(Flavor::Codex),
        _ => None,
    };
    if let Some(f) = flavor(path) {
        return Some((None, f));
    }
    let p = path.strip_prefix('/')?;
    let (first, rest) = p.split_at(p.find('/')?);
    let repo = percent_encoding::percent_decode_str(first)
        .decode_utf8()
        .ok()?;
    let repo = crate::repos::RepoStore::canonical_name(&repo).ok()?;
    Some((Some(repo), flavor(rest)?))
}

/// A plugin name both clients take: letters, digits, `.`, `_`, `-`, starting with a
/// letter or digit, at most 128 characters.
pub fn plugin_name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The marketplace's name: `skillsd-` and the repository, in kebab case.
pub fn marketplace_name(repo: &str) -> String {
    let mut name = String::from("skillsd-");
    for c in repo.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    name.trim_end_matches('-').to_string()
}

// The manifest's types. Their fields are declared in the order of their names: the
// order the manifests have always been written in (their bytes are their ETag).

/// A Claude Code marketplace (`.claude-plugin/marketplace.json`).
#[derive(Serialize)]
struct ClaudeMarketplace<'a> {
    metadata: Described,
    name: String,
    owner: Named,
    plugins: Vec<Entry<'a>>,
}

/// A Codex marketplace.
#[derive(Serialize)]
struct CodexMarketplace<'a> {
    interface: Interface,
    name: String,
    plugins: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Described {
    description: String,
}

#[derive(Serialize)]
struct Named {
    name: &'static str,
}

#[derive(Serialize)]
struct Interface {
    #[serde(rename = "displayName")]
    display_name: String,
}

/// One plugin of a marketplace: a plugin folder, or (Claude) a skill's folder as a
/// plugin of its own.
#[derive(Serialize)]
struct Entry<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<Policy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skills: Option<[&'static str; 1]>,
    source: Source<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

/// Codex's install policy of a plugin.
#[derive(Serialize)]
struct Policy {
    authentication: &'static str,
    installation: &'static str,
}

/// The `git-subdir` source of a folder at the published commit.
#[derive(Serialize)]
struct Source<'a> {
    path: &'a str,
    #[serde(rename = "ref")]
    reference: &'static str,
    sha: &'a str,
    source: &'static str,
    url: &'a str,
}

fn source<'a>(clone_url: &'a str, folder: &'a str, commit: &'a str) -> Source<'a> {
    Source {
        path: folder,
        reference: crate::repos::DEFAULT_BRANCH,
        sha: commit,
        source: "git-subdir",
        url: clone_url,
    }
}

/// What a plugin folder's manifest says, when it can be listed as one entry.
fn listable(plugin: &Plugin) -> Result<(String, Option<String>), String> {
    let manifest = plugin.manifest.as_ref().map_err(Clone::clone)?;
    let name = match manifest.get("name") {
        Some(Value::String(n)) if plugin_name_ok(n) => n.clone(),
        Some(Value::String(n)) => {
            return Err(format!("its plugin name `{n}` is not one clients take"));
        }
        _ => return Err("its plugin manifest has no `name`".into()),
    };
    if plugin.unserved > 0 {
        return Err(format!(
            "{} of its skills {} not served (not published, or not fit for an agent)",
            plugin.unserved,
            if plugin.unserved == 1 { "is" } else { "are" }
        ));
    }
    if plugin.skills.is_empty() {
        return Err("it holds no served skill".into());
    }
    let description = match manifest.get("description") {
        Some(Value::String(d)) if !d.trim().is_empty() => Some(d.clone()),
        _ => None,
    };
    Ok((name, description))
}

/// The manifest of `published` in `flavor`'s format, with `clone_url` as every source's
/// URL; entries left out are logged (debug) with the reason.
pub fn render(published: &Published, flavor: Flavor, clone_url: &str) -> Vec<u8> {
    let commit = published.key.commit.as_deref().unwrap_or_default();
    let mut entries: Vec<Entry<'_>> = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    // Skills a listed plugin folder carries.
    let mut carried: BTreeSet<&str> = BTreeSet::new();
    for plugin in &published.plugins {
        match listable(plugin) {
            Ok((name, description)) => {
                if !names.insert(name.clone()) {
                    tracing::debug!(repo = %published.repo, folder = %plugin.folder, "plugin left out of the marketplace: its name is taken");
                    continue;
                }
                carried.extend(plugin.skills.iter().map(String::as_str));
                entries.push(Entry {
                    description: description.filter(|_| flavor == Flavor::Claude),
                    name,
                    policy: (flavor == Flavor::Codex).then_some(Policy {
                        authentication: "ON_INSTALL",
                        installation: "AVAILABLE",
                    }),
                    skills: None,
                    source: source(clone_url, &plugin.folder, commit),
                    strict: None,
                    version: None,
                });
            }
            Err(why) => {
                tracing::debug!(repo = %published.repo, folder = %plugin.folder, %why, "plugin folder not listed as one plugin");
            }
        }
    }
    if flavor == Flavor::Claude {
        for skill in published.skills.values() {
            if carried.contains(skill.name.as_str()) {
                continue;
            }
            let why = match skill.path.strip_suffix(&format!("/{SKILL_FILE}")) {
                None => Some("a flat-layout skill is a file, not a folder a plugin can be"),
                Some(_) if skill.holds_skills => Some("its folder holds another skill"),
                Some(_) if names.contains(&skill.name) => Some("its name is a plugin's"),
                Some(_) => None,
            };
            if let Some(why) = why {
                tracing::debug!(repo = %published.repo, skill = %skill.name, %why, "skill left out of the marketplace");
                continue;
            }
            let folder = &skill.path[..skill.path.len() - SKILL_FILE.len() - 1];
            names.insert(skill.name.clone());
            entries.push(Entry {
                description: Some(skill.description.clone()),
                name: skill.name.clone(),
                policy: None,
                // The folder is the plugin, and its one skill.
                skills: Some(["./"]),
                source: source(clone_url, folder, commit),
                strict: Some(false),
                version: (skill.version > 0).then(|| skill.version.to_string()),
            });
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let name = marketplace_name(&published.repo);
    let description = format!(
        "The published skills of {} on skillsd, at commit {commit}",
        published.repo
    );
    let mut bytes = match flavor {
        Flavor::Claude => serde_json::to_vec_pretty(&ClaudeMarketplace {
            metadata: Described { description },
            name,
            owner: Named { name: "skillsd" },
            plugins: entries,
        }),
        Flavor::Codex => serde_json::to_vec_pretty(&CodexMarketplace {
            interface: Interface {
                display_name: format!("skillsd: {}", published.repo),
            },
            name,
            plugins: entries,
        }),
    }
    .unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The SSH address clients clone from, without the repository: `SKILLSD_SSH_URL`, or
/// `ssh://git@HOST:PORT` ([`self`]'s rules); `None` when no host can be told.
pub fn ssh_base(s: &AgentsState, headers: &HeaderMap) -> Option<String> {
    if let Some(u) = &s.ssh_url {
        return Some(u.clone());
    }
    let addr = s.ssh_addr?;
    let from_public = s
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    let from_listener = (!addr.ip().is_unspecified()).then(|| match addr.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    });
    let host = from_public
        .or(from_listener)
        .or_else(|| request_host(headers))?;
    Some(format!("ssh://git@{host}:{}", addr.port()))
}

/// The host name (no port) the request was sent to, when it is a plain one.
fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = if let Some(rest) = host.strip_prefix('[') {
        format!("[{}]", rest.split(']').next()?)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h).to_string()
    };
    let plain = name.len() <= 253
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    plain.then_some(name)
}

/// One rendered manifest, for the key of the published skills it was made from.
pub(crate) struct Rendered {
    key: super::index::Key,
    bytes: Bytes,
    digest: String,
}

/// Manifests kept in memory: per repository, format and clone URL.
const KEEP: usize = 64;

async fn manifest(State(s): State<Arc<AgentsState>>, uri: Uri, headers: HeaderMap) -> Response {
    let Some((repo, flavor)) = parse(uri.path()) else {
        return json_error(StatusCode::NOT_FOUND, "no such repository");
    };
    let repo = repo.unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string());
    let published = match s.catalog.current(&s.pool, &s.repos, &repo).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return json_error(StatusCode::NOT_FOUND, &format!("no repository `{repo}`"));
        }
        Err(e) => {
            tracing::error!(repo = %repo, error = %e, "marketplace unavailable");
            let message = match e {
                super::AgentsError::Database(_) => "database unavailable",
                super::AgentsError::Git(_) => "the repository's skills cannot be read now",
            };
            return json_error(StatusCode::SERVICE_UNAVAILABLE, message);
        }
    };
    let Some(base) = ssh_base(&s, &headers) else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the SSH clone address is unknown: set SKILLSD_SSH_URL",
        );
    };
    let clone_url = format!("{base}/{repo}.git");
    let slot = (repo.clone(), flavor, clone_url.clone());
    let kept = {
        let held = s
            .catalog
            .manifests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        held.get(&slot)
            .filter(|r| r.key == published.key)
            .map(|r| (r.bytes.clone(), r.digest.clone()))
    };
    let (bytes, digest) = match kept {
        Some(k) => k,
        None => {
            let bytes = Bytes::from(render(&published, flavor, &clone_url));
            let digest = super::index::digest(&bytes);
            let mut held = s
                .catalog
                .manifests
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if held.len() >= KEEP {
                held.clear();
            }
            held.insert(
                slot,
                Arc::new(Rendered {
                    key: published.key.clone(),
                    bytes: bytes.clone(),
                    digest: digest.clone(),
                }),
            );
            (bytes, digest)
        }
    };
    answer(
        &s,
        &headers,
        &digest,
        "application/json",
        Freshness::Index,
        Some(bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_name_a_repository_and_a_format() {
        assert_eq!(parse(CLAUDE), Some((None, Flavor::Claude)));
        assert_eq!(parse(CODEX), Some((None, Flavor::Codex)));
        assert_eq!(
            parse("/team/.claude-plugin/marketplace.json"),
            Some((Some("team".into()), Flavor::Claude))
        );
        assert_eq!(
            parse("/team.git/.agents/plugins/marketplace.json"),
            Some((Some("team".into()), Flavor::Codex))
        );
        assert_eq!(parse("/Bad!/.claude-plugin/marketplace.json"), None);
        assert_eq!(parse("/%2e%2e/.claude-plugin/marketplace.json"), None);
        assert_eq!(parse("/a/b/.claude-plugin/marketplace.json"), None);
        assert_eq!(parse("/.claude-plugin/plugin.json"), None);
    }

    #[test]
    fn names_are_what_the_clients_take() {
        assert_eq!(marketplace_name("skills"), "skillsd-skills");
        assert_eq!(marketplace_name("team_a.b"), "skillsd-team-a-b");
        assert!(plugin_name_ok("git-tools"));
        assert!(plugin_name_ok("a.b_c-1"));
        assert!(!plugin_name_ok("Git Tools"));
        assert!(!plugin_name_ok("-x"));
        assert!(!plugin_name_ok(""));
        assert!(!plugin_name_ok(&"a".repeat(129)));
    }

    #[test]
    fn the_request_host_is_taken_only_when_plain() {
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            request_host(&m)
        };
        assert_eq!(
            host("skills.example.com:8080").as_deref(),
            Some("skills.example.com")
        );
        assert_eq!(host("10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(host("evil.com/x@y"), None);
        assert_eq!(host("a b"), None);
    }
}
