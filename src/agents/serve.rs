//! The agents' routes, behind the same gate as the JSON API (`SKILLSD_WEB_ACCESS`):
//!
//! * `GET /.well-known/agent-skills/index.json` — the default repository's index;
//!   `GET /{repo}/.well-known/agent-skills/index.json` — another repository's (what
//!   the `skills` CLI asks for when given `http://HOST/{repo}`).
//! * `…/{name}/SKILL.md` and `…/{name}/{path}` — a skill's files, git's bytes.
//! * `…/{name}.tar.gz` — an `archive` skill's folder.
//!
//! Every answer carries `ETag: "sha256:…"` (the digest of its bytes, as the index
//! gives it) and `Cache-Control`; `If-None-Match` with that tag gets `304`. Paths are
//! taken from the request as sent: a `.` or `..` segment, an empty one, or an encoded
//! `/` or `\` is a `400`; a name or file the skill does not have is a `404` (JSON).
//! Only the files listed for a skill can be served, so no path reaches anything else.

use super::index::{self, Kind, Published, Skill};
use crate::agents::AgentsState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// The routes (both the default repository's and any repository's).
pub fn router() -> Router<Arc<AgentsState>> {
    Router::new()
        .route("/.well-known/agent-skills", get(any))
        .route("/.well-known/agent-skills/", get(any))
        .route("/.well-known/agent-skills/{*rest}", get(any))
        .route("/{repo}/.well-known/agent-skills", get(any))
        .route("/{repo}/.well-known/agent-skills/", get(any))
        .route("/{repo}/.well-known/agent-skills/{*rest}", get(any))
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    Index,
    File { name: String, path: String },
    Archive { name: String },
}

/// A refusal: status and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub StatusCode, pub String);

/// The repository (`None`: the default one) and what is asked of it, from the path as
/// the client sent it (percent-encoded).
pub fn parse(raw: &str) -> Result<(Option<String>, Wanted), Refused> {
    let bad = |m: &str| Refused(StatusCode::BAD_REQUEST, m.to_string());
    let not_found = || Refused(StatusCode::NOT_FOUND, "no such file".to_string());
    let (repo, rest) = match raw.strip_prefix(super::WELL_KNOWN) {
        Some(rest) => (None, rest),
        None => {
            let p = raw.strip_prefix('/').ok_or_else(not_found)?;
            let (first, tail) = p.split_at(p.find('/').ok_or_else(not_found)?);
            let rest = tail.strip_prefix(super::WELL_KNOWN).ok_or_else(not_found)?;
            let repo = segment(first).map_err(|m| bad(&m))?;
            let repo = crate::repos::RepoStore::canonical_name(&repo)
                .map_err(|_| Refused(StatusCode::NOT_FOUND, format!("no repository `{repo}`")))?;
            (Some(repo), rest)
        }
    };
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(not_found());
    };
    if rest.is_empty() {
        return Err(not_found());
    }
    let segments = rest
        .split('/')
        .map(segment)
        .collect::<Result<Vec<String>, String>>()
        .map_err(|m| bad(&m))?;
    let wanted = match segments.as_slice() {
        [one] if one == "index.json" => Wanted::Index,
        [one] => match one.strip_suffix(".tar.gz") {
            Some(name) if !name.is_empty() => Wanted::Archive {
                name: name.to_string(),
            },
            _ => return Err(not_found()),
        },
        [name, path @ ..] => Wanted::File {
            name: name.clone(),
            path: path.join("/"),
        },
        [] => return Err(not_found()),
    };
    Ok((repo, wanted))
}

/// One path segment, percent-decoded: not empty, not `.` or `..`, without `/`, `\` or
/// NUL once decoded, valid UTF-8.
pub(crate) fn segment(raw: &str) -> Result<String, String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "the path is not UTF-8".to_string())?;
    if decoded.is_empty() {
        return Err("the path has an empty segment".into());
    }
    if decoded == "." || decoded == ".." {
        return Err("the path has a `.` or `..` segment".into());
    }
    if decoded.contains(['/', '\\', '\0']) {
        return Err("the path has an encoded `/`, `\\` or NUL".into());
    }
    Ok(decoded.into_owned())
}

/// `status` with `{"error": message}`, as every JSON answer of skillsd's says it.
pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    #[derive(serde::Serialize)]
    struct Refused<'a> {
        error: &'a str,
    }
    (status, axum::Json(Refused { error: message })).into_response()
}

/// Does `If-None-Match` name `etag` (weak comparison, as RFC 9110 says for it)?
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// How long clients and caches may keep an answer.
#[derive(Clone, Copy)]
pub(crate) enum Freshness {
    /// The index: changes with every push.
    Index,
    /// A file or archive: its URL serves other bytes only when the skill changes.
    Content,
    /// A file or archive of a skill's numbered version: its URL always serves the
    /// same bytes ([`super::versions`]).
    Version,
}

fn cache_control(s: &AgentsState, freshness: Freshness) -> &'static str {
    let private = s.signed_in;
    match (freshness, private) {
        (Freshness::Index, false) => "public, max-age=60",
        (Freshness::Index, true) => "private, max-age=60",
        (Freshness::Content, false) => "public, max-age=300, must-revalidate",
        (Freshness::Content, true) => "private, max-age=300, must-revalidate",
        (Freshness::Version, false) => "public, max-age=86400",
        (Freshness::Version, true) => "private, max-age=86400",
    }
}

/// The answer with `bytes`, or `304` when the client has them.
pub(crate) fn answer(
    s: &AgentsState,
    headers: &HeaderMap,
    digest: &str,
    content_type: &str,
    freshness: Freshness,
    bytes: Option<Bytes>,
) -> Response {
    let etag = format!("\"{digest}\"");
    let mut response = if not_modified(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = bytes.unwrap_or_default().into_response();
        if let Ok(v) = HeaderValue::from_str(content_type) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control(s, freshness)),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // What pushers wrote is never run by a browser on this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if s.signed_in {
        h.insert(
            header::VARY,
            HeaderValue::from_static("Authorization, Cookie"),
        );
    } else {
        // Open to anyone: browser-based clients may read it too.
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("ETag"),
        );
    }
    response
}

/// The content type of a skill file: Markdown, JSON, other text, or bytes. Never
/// HTML.
pub fn content_type(path: &str, data: &[u8]) -> &'static str {
    content_type_of(path, std::str::from_utf8(data).is_ok())
}

/// [`content_type`] of a file whose bytes are UTF-8 text (`text`) or not.
pub fn content_type_of(path: &str, text: bool) -> &'static str {
    let lower = path.to_ascii_lowercase();
    if !text {
        "application/octet-stream"
    } else if lower.ends_with(".md") || lower.ends_with(".markdown") {
        "text/markdown; charset=utf-8"
    } else if lower.ends_with(".json") {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}

async fn any(State(s): State<Arc<AgentsState>>, uri: Uri, headers: HeaderMap) -> Response {
    let (repo, wanted) = match parse(uri.path()) {
        Ok(found) => found,
        Err(Refused(status, message)) => return json_error(status, &message),
    };
    let repo = repo.unwrap_or_else(|| crate::repos::DEFAULT_REPO.to_string());
    let published = match s.catalog.current(&s.pool, &s.repos, &repo).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return json_error(StatusCode::NOT_FOUND, &format!("no repository `{repo}`"));
        }
        Err(e) => {
            tracing::error!(repo = %repo, error = %e, "agent skills unavailable");
            let message = match e {
                super::AgentsError::Database(_) => "database unavailable",
                super::AgentsError::Git(_) => "the repository's skills cannot be read now",
            };
            return json_error(StatusCode::SERVICE_UNAVAILABLE, message);
        }
    };
    match wanted {
        Wanted::Index => answer(
            &s,
            &headers,
            &published.index_digest,
            "application/json",
            Freshness::Index,
            Some(published.index.clone()),
        ),
        Wanted::File { name, path } => {
            let Some(skill) = published.skills.get(&name) else {
                return no_skill(&published, &name);
            };
            file(&s, &headers, &published, skill, &path).await
        }
        Wanted::Archive { name } => {
            let Some(skill) = published.skills.get(&name) else {
                return no_skill(&published, &name);
            };
            archive(&s, &headers, &published, skill).await
        }
    }
}

fn no_skill(p: &Published, name: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        &format!("no published skill `{name}` in {}", p.repo),
    )
}

async fn file(
    s: &Arc<AgentsState>,
    headers: &HeaderMap,
    published: &Published,
    skill: &Arc<Skill>,
    path: &str,
) -> Response {
    let Some(f) = skill.file(path) else {
        return json_error(
            StatusCode::NOT_FOUND,
            &format!("the skill `{}` has no file `{path}`", skill.name),
        );
    };
    let etag = format!("\"{}\"", f.digest);
    if not_modified(headers, &etag) {
        return answer(s, headers, &f.digest, "", Freshness::Content, None);
    }
    let data = match file_bytes(&s.repos, &published.repo, f).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(repo = %published.repo, skill = %skill.name, %path, error = %e, "cannot serve a skill file");
            let status = match e {
                ReadError::Digest => StatusCode::INTERNAL_SERVER_ERROR,
                ReadError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            return json_error(status, e.public());
        }
    };
    let ct = content_type(path, &data);
    answer(s, headers, &f.digest, ct, Freshness::Content, Some(data))
}

/// Why a skill file's bytes cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the file's bytes differ from its digest")]
    Digest,
    #[error("the file cannot be read: {0}")]
    Unavailable(String),
}

impl ReadError {
    /// What a client is told (no server detail).
    pub fn public(&self) -> &'static str {
        match self {
            ReadError::Digest => "the file differs from its digest",
            ReadError::Unavailable(_) => "the file cannot be read now",
        }
    }
}

/// The bytes of `f`, a file of `repo`'s published skills: the ones kept in memory, or
/// read again from this node's copy of git and checked against the digest the index
/// gave.
pub async fn file_bytes(
    repos: &crate::repos::RepoStore,
    repo: &str,
    f: &index::File,
) -> Result<Bytes, ReadError> {
    if let Some(d) = &f.data {
        return Ok(d.clone());
    }
    let (blob, repo, repos) = (f.blob, repo.to_string(), repos.clone());
    let read = tokio::task::spawn_blocking(move || {
        let (_, copy) = repos.open(&repo).map_err(|e| e.to_string())?;
        index::read_blob(&copy, blob).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(ReadError::Unavailable)?;
    if index::digest(&read) == f.digest {
        Ok(Bytes::from(read))
    } else {
        Err(ReadError::Digest)
    }
}

async fn archive(
    s: &Arc<AgentsState>,
    headers: &HeaderMap,
    published: &Published,
    skill: &Arc<Skill>,
) -> Response {
    let (Kind::Archive, Some(digest)) = (skill.kind, skill.archive_digest.clone()) else {
        return json_error(
            StatusCode::NOT_FOUND,
            &format!(
                "the skill `{}` is a lone SKILL.md: fetch {}/SKILL.md",
                skill.name, skill.name
            ),
        );
    };
    let etag = format!("\"{digest}\"");
    if not_modified(headers, &etag) {
        return answer(s, headers, &digest, "", Freshness::Content, None);
    }
    let data = match &skill.archive {
        Some(d) => d.clone(),
        None => {
            let (skill2, repo, s2) = (skill.clone(), published.repo.clone(), s.clone());
            let made = tokio::task::spawn_blocking(move || {
                let (_, copy) = s2.repos.open(&repo).map_err(|e| e.to_string())?;
                index::make_archive(&copy, &skill2.files).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match made {
                // Made again: checked against the digest the index gave.
                Ok(d) if index::digest(&d) == digest => Bytes::from(d),
                Ok(_) => {
                    tracing::error!(repo = %published.repo, skill = %skill.name, "a skill's archive differs from its digest");
                    return json_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the archive differs from its digest",
                    );
                }
                Err(e) => {
                    tracing::error!(repo = %published.repo, skill = %skill.name, error = %e, "cannot make a skill's archive");
                    return json_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the archive cannot be made now",
                    );
                }
            }
        }
    };
    answer(
        s,
        headers,
        &digest,
        "application/gzip",
        Freshness::Content,
        Some(data),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, path: &str) -> Wanted {
        Wanted::File {
            name: name.into(),
            path: path.into(),
        }
    }

    #[test]
    fn paths_name_a_repository_and_what_is_wanted() {
        let p = |s: &str| parse(s).map_err(|r| r.0);
        assert_eq!(
            p("/.well-known/agent-skills/index.json"),
            Ok((None, Wanted::Index))
        );
        assert_eq!(
            p("/team/.well-known/agent-skills/index.json"),
            Ok((Some("team".into()), Wanted::Index))
        );
        assert_eq!(
            p("/.well-known/agent-skills/deploy/SKILL.md"),
            Ok((None, file("deploy", "SKILL.md")))
        );
        assert_eq!(
            p("/.well-known/agent-skills/deploy/scripts/run.sh"),
            Ok((None, file("deploy", "scripts/run.sh")))
        );
        assert_eq!(
            p("/.well-known/agent-skills/deploy/a%20b.md"),
            Ok((None, file("deploy", "a b.md")))
        );
        assert_eq!(
            p("/.well-known/agent-skills/deploy.tar.gz"),
            Ok((
                None,
                Wanted::Archive {
                    name: "deploy".into()
                }
            ))
        );
        assert_eq!(
            p("/x/.well-known/agent-skills/deploy.tar.gz"),
            Ok((
                Some("x".into()),
                Wanted::Archive {
                    name: "deploy".into()
                }
            ))
        );
    }

    #[test]
    fn traversal_and_encoded_separators_are_refused() {
        let code = |s: &str| parse(s).err().map(|r| r.0);
        for bad in [
            "/.well-known/agent-skills/deploy/../../etc/passwd",
            "/.well-known/agent-skills/../index.json",
            "/.well-known/agent-skills/deploy/%2e%2e/x",
            "/.well-known/agent-skills/deploy/scripts%2Frun.sh",
            "/.well-known/agent-skills/deploy%2fSKILL.md",
            "/.well-known/agent-skills/deploy/a%5Cb",
            "/.well-known/agent-skills/deploy//etc/passwd",
            "/.well-known/agent-skills/deploy/./SKILL.md",
            "/.well-known/agent-skills/deploy/%00",
            "/.well-known/agent-skills/deploy/%ff",
            "/%2e%2e/.well-known/agent-skills/index.json",
        ] {
            assert_eq!(code(bad), Some(StatusCode::BAD_REQUEST), "{bad}");
        }
        for missing in [
            "/.well-known/agent-skills",
            "/.well-known/agent-skills/",
            "/.well-known/agent-skills/.tar.gz",
            "/Bad_Repo!/.well-known/agent-skills/index.json",
        ] {
            assert_eq!(code(missing), Some(StatusCode::NOT_FOUND), "{missing}");
        }
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        let tag = "\"sha256:ab\"";
        assert!(!not_modified(&h, tag));
        h.insert(
            header::IF_NONE_MATCH,
            "\"x\", W/\"sha256:ab\"".parse().unwrap(),
        );
        assert!(not_modified(&h, tag));
        h.insert(header::IF_NONE_MATCH, "*".parse().unwrap());
        assert!(not_modified(&h, tag));
        h.insert(header::IF_NONE_MATCH, "\"sha256:abc\"".parse().unwrap());
        assert!(!not_modified(&h, tag));
    }

    #[test]
    fn skill_files_are_never_served_as_html() {
        assert_eq!(
            content_type("SKILL.md", b"# x"),
            "text/markdown; charset=utf-8"
        );
        assert_eq!(
            content_type("page.html", b"<p>"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(content_type("a.json", b"{}"), "application/json");
        assert_eq!(
            content_type("logo.png", &[0x89, 0xff]),
            "application/octet-stream"
        );
    }
}
