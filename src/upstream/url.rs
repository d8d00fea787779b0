//! The upstream's address: `ssh://[user@]host[:port]/path` or scp-like
//! `[user@]host:path`. Nothing else: no other scheme, no password, nothing that a
//! command line could take for an option.

use super::UpstreamError;

/// Where a mirror pushes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// The repository path as the upstream's `git-receive-pack` gets it: absolute
    /// (`/org/repo.git`) from an `ssh://` URL, as written (`org/repo.git`) from the
    /// scp-like form.
    pub path: String,
}

const DEFAULT_USER: &str = "git";
const DEFAULT_PORT: u16 = 22;

fn bad(url: &str, why: &str) -> UpstreamError {
    UpstreamError::Url(format!("`{}`: {why}", redact(url)))
}

/// The URL with anything that looks like a password taken out, for messages.
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}{user}:***{}", &rest[at..])
        }
        _ => format!("{scheme}{rest}"),
    }
}

const PASSWORD: &str =
    "a password in the URL is not allowed; mirrors authenticate with their SSH key";
const NOT_SSH: &str = "not an SSH address (ssh://[user@]host[:port]/path or [user@]host:path)";

impl UpstreamUrl {
    /// Parses `s` with gix's URL parser (git's rules for `ssh://` and the scp-like
    /// form), then holds it to skillsd's: SSH only, no password, nothing an SSH client
    /// or the upstream's shell could take for an option or a command.
    pub fn parse(s: &str) -> Result<Self, UpstreamError> {
        use gix::url::Scheme;
        let url = s.trim();
        if url.is_empty() {
            return Err(UpstreamError::Url("empty URL".into()));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad(url, "spaces and control characters are not allowed"));
        }
        let split = url.split_once("://");
        let scheme = split.map(|(scheme, _)| scheme);
        // `user:password@host:path` reads, scp-like, as host `user`: refused, not guessed.
        if scheme.is_none() && scp_password(url) {
            return Err(bad(url, PASSWORD));
        }
        // Scheme names are case-insensitive (`SSH://`); gix takes them in lowercase.
        let lowered = match split {
            Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
            None => url.to_string(),
        };
        let parsed = gix::url::parse(lowered.as_str()).map_err(|_| bad(url, NOT_SSH))?;
        match (&parsed.scheme, scheme) {
            (Scheme::Ssh, _) => {}
            (_, Some(scheme)) => {
                return Err(bad(
                    url,
                    &format!("only ssh:// URLs and user@host:path are supported, not {scheme}://"),
                ));
            }
            (_, None) => return Err(bad(url, NOT_SSH)),
        }
        if parsed.password().is_some() {
            return Err(bad(url, PASSWORD));
        }
        // gix reads `ssh://@host/x` as naming no user: an `@` before the host names one.
        let authority = match split {
            Some((_, rest)) => rest.split('/').next().unwrap_or_default(),
            None => url.split(':').next().unwrap_or_default(),
        };
        let user = match parsed.user() {
            Some("") => return Err(bad(url, "empty user name")),
            None if authority.contains('@') => return Err(bad(url, "empty user name")),
            Some(u) => u.to_string(),
            None => DEFAULT_USER.to_string(),
        };
        if user.starts_with('-') || user.contains(['@', ':']) {
            return Err(bad(url, "invalid user name"));
        }
        let host = parsed
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or_default()
            .to_string();
        if host.is_empty() {
            return Err(bad(url, "empty host"));
        }
        if host.starts_with('-') {
            return Err(bad(url, "a host cannot start with `-`"));
        }
        if host.contains(['/', '\\', '\'', '"', '`', '$', ';', '@']) {
            return Err(bad(url, "invalid host name"));
        }
        let port = match parsed.port {
            None => DEFAULT_PORT,
            Some(0) => return Err(bad(url, "invalid port")),
            Some(_) if scheme.is_none() => {
                return Err(bad(url, "the user@host:path form has no port; use ssh://"));
            }
            Some(p) => p,
        };
        let path = String::from_utf8(parsed.path.to_vec())
            .map_err(|_| bad(url, "the repository path is not UTF-8"))?;
        let bare = path.trim_start_matches('/');
        if bare.is_empty() {
            return Err(bad(url, "empty repository path"));
        }
        if bare.starts_with('-') {
            return Err(bad(url, "a repository path cannot start with `-`"));
        }
        if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad(url, "spaces and control characters are not allowed"));
        }
        Ok(UpstreamUrl {
            user,
            host,
            port,
            path,
        })
    }

    /// The address as shown to users (it holds no secret: passwords are refused).
    pub fn display(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.path.starts_with('/') {
            if self.port == DEFAULT_PORT {
                format!("ssh://{}@{host}{}", self.user, self.path)
            } else {
                format!("ssh://{}@{host}:{}{}", self.user, self.port, self.path)
            }
        } else if self.port == DEFAULT_PORT {
            format!("{}@{host}:{}", self.user, self.path)
        } else {
            format!("ssh://{}@{host}:{}/{}", self.user, self.port, self.path)
        }
    }

    /// The command the upstream runs: `git-receive-pack '<path>'`, quoted as git
    /// quotes it.
    pub fn receive_pack_command(&self) -> Result<String, UpstreamError> {
        Ok(format!("git-receive-pack {}", sq_quote(&self.path)?))
    }
}

impl std::fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// Does the scp-like `url` hold a password (`user:password@host:path`)? Its first
/// colon is then followed, before any `/`, by an `@` and another colon.
fn scp_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once(':') else {
        return false;
    };
    match rest.find('@') {
        Some(at) => !rest[..at].contains('/') && rest[at + 1..].contains(':'),
        None => false,
    }
}

/// `'...'` with every `'` as `'\''`, as git's `sq_quote_buf` does. A newline is
/// refused: git-shell splits on it, and no repository path needs one.
pub fn sq_quote(s: &str) -> Result<String, UpstreamError> {
    if s.contains(['\n', '\r', '\0']) {
        return Err(UpstreamError::Url(
            "a repository path cannot contain a newline".into(),
        ));
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '!' => out.push_str("'\\!'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> UpstreamUrl {
        UpstreamUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refused(s: &str) -> String {
        match UpstreamUrl::parse(s) {
            Err(UpstreamError::Url(m)) => m,
            other => panic!("{s}: expected a URL error, got {other:?}"),
        }
    }

    #[test]
    fn ssh_urls() {
        let u = ok("ssh://git@github.com/org/repo.git");
        assert_eq!(
            u,
            UpstreamUrl {
                user: "git".into(),
                host: "github.com".into(),
                port: 22,
                path: "/org/repo.git".into()
            }
        );
        let u = ok("ssh://deploy@gitlab.example.org:2222/group/sub/repo.git");
        assert_eq!((u.user.as_str(), u.port), ("deploy", 2222));
        assert_eq!(u.path, "/group/sub/repo.git");
        assert_eq!(
            u.display(),
            "ssh://deploy@gitlab.example.org:2222/group/sub/repo.git"
        );
        let u = ok("ssh://example.org/srv/git/x.git");
        assert_eq!((u.user.as_str(), u.port), ("git", 22));
        assert_eq!(u.display(), "ssh://git@example.org/srv/git/x.git");
        let u = ok("ssh://git@[::1]:2200/x.git");
        assert_eq!((u.host.as_str(), u.port), ("::1", 2200));
        assert_eq!(u.display(), "ssh://git@[::1]:2200/x.git");
        assert_eq!(ok("SSH://h/x").host, "h");
        assert_eq!(ok("git+ssh://h/x").host, "h");
        assert_eq!(ok("ssh+git://h/x").host, "h");
        // gix decodes the path's escapes: what is left is checked as any path.
        assert_eq!(ok("ssh://h/a%2Db.git").path, "/a-b.git");
        assert!(refused("ssh://h/a%20b").contains("spaces"));
        assert!(refused("ssh://h/%2Dx").contains("cannot start with `-`"));
    }

    #[test]
    fn scp_like() {
        let u = ok("git@github.com:org/repo.git");
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port, u.path.as_str()),
            ("git", "github.com", 22, "org/repo.git")
        );
        assert_eq!(u.display(), "git@github.com:org/repo.git");
        let u = ok("example.org:/srv/x.git");
        assert_eq!((u.user.as_str(), u.path.as_str()), ("git", "/srv/x.git"));
        assert_eq!(ok("[::1]:x.git").host, "::1");
    }

    #[test]
    fn refusals() {
        assert!(refused("ssh://git:hunter2@github.com/org/repo.git").contains("password"));
        assert!(!refused("ssh://git:hunter2@github.com/org/repo.git").contains("hunter2"));
        assert!(refused("git:hunter2@github.com:org/repo.git").contains("password"));
        assert!(refused("https://github.com/org/repo.git").contains("https://"));
        refused("file:///srv/x.git");
        refused("git://github.com/org/repo.git");
        refused("/srv/x.git");
        refused("./a:b");
        refused("");
        refused("ssh:///x.git");
        refused("ssh://host");
        refused("ssh://host/");
        refused("host:");
        refused(":path");
        refused("ssh://-oProxyCommand=evil/x.git");
        refused("-oProxyCommand=evil:x.git");
        refused("ssh://host/-x.git");
        refused("host:-x.git");
        refused("ssh://host:0/x");
        refused("ssh://host:99999/x");
        refused("ssh://host:22a/x");
        refused("ssh://host/a b");
        refused("ssh://host/a\nb");
        refused("ssh://@host/x");
        refused("ssh://-u@host/x");
    }

    #[test]
    fn quoting() {
        assert_eq!(sq_quote("/srv/x.git").unwrap(), "'/srv/x.git'");
        assert_eq!(sq_quote("it's").unwrap(), "'it'\\''s'");
        assert_eq!(sq_quote("a!b").unwrap(), "'a'\\!'b'");
        assert!(sq_quote("a\nb").is_err());
        let u = ok("git@h:org/repo.git");
        assert_eq!(
            u.receive_pack_command().unwrap(),
            "git-receive-pack 'org/repo.git'"
        );
    }
}
