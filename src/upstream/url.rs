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

impl UpstreamUrl {
    pub fn parse(s: &str) -> Result<Self, UpstreamError> {
        let url = s.trim();
        if url.is_empty() {
            return Err(UpstreamError::Url("empty URL".into()));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad(url, "spaces and control characters are not allowed"));
        }
        let (authority, path) = if let Some((scheme, rest)) = url.split_once("://") {
            if !scheme.eq_ignore_ascii_case("ssh") && !scheme.eq_ignore_ascii_case("git+ssh") {
                return Err(bad(
                    url,
                    &format!("only ssh:// URLs and user@host:path are supported, not {scheme}://"),
                ));
            }
            let slash = rest
                .find('/')
                .ok_or_else(|| bad(url, "no repository path"))?;
            (&rest[..slash], rest[slash..].to_string())
        } else {
            // scp-like: the first colon outside of [brackets], and no slash before it
            // (git's rule; `./a:b` or `/a:b` are local paths).
            let colon = scp_colon(url).ok_or_else(|| {
                bad(
                    url,
                    "not an SSH address (ssh://[user@]host[:port]/path or [user@]host:path)",
                )
            })?;
            let path = &url[colon + 1..];
            // `user:password@host:path` reads as host `user`: refused, not guessed.
            if let Some(at) = path.find('@')
                && !path[..at].contains('/')
                && path[at + 1..].contains(':')
            {
                return Err(bad(
                    url,
                    "a password in the URL is not allowed; mirrors authenticate with their SSH key",
                ));
            }
            (&url[..colon], path.to_string())
        };
        let scp = !url.contains("://");
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let user = match userinfo {
            Some(u) if u.contains(':') => {
                return Err(bad(
                    url,
                    "a password in the URL is not allowed; mirrors authenticate with their SSH key",
                ));
            }
            Some("") => return Err(bad(url, "empty user name")),
            Some(u) => u.to_string(),
            None => DEFAULT_USER.to_string(),
        };
        if user.starts_with('-') || user.contains('@') {
            return Err(bad(url, "invalid user name"));
        }
        let (host, port) = split_host_port(hostport, scp).map_err(|why| bad(url, why))?;
        if host.is_empty() {
            return Err(bad(url, "empty host"));
        }
        if host.starts_with('-') {
            return Err(bad(url, "a host cannot start with `-`"));
        }
        if host.contains(['/', '\\', '\'', '"', '`', '$', ';', '@']) {
            return Err(bad(url, "invalid host name"));
        }
        let bare = path.trim_start_matches('/');
        if bare.is_empty() {
            return Err(bad(url, "empty repository path"));
        }
        if bare.starts_with('-') {
            return Err(bad(url, "a repository path cannot start with `-`"));
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

/// The colon of an scp-like address, if `url` is one.
fn scp_colon(url: &str) -> Option<usize> {
    let mut in_brackets = false;
    for (i, c) in url.char_indices() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            '/' if !in_brackets => return None,
            ':' if !in_brackets => return Some(i),
            _ => {}
        }
    }
    None
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` (no port in the scp-like form).
fn split_host_port(s: &str, scp: bool) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed `[` in the host")?;
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("invalid host"),
        };
        (&rest[..end], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(_) if scp => return Err("the user@host:path form has no port; use ssh://"),
        None | Some("") => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err("invalid port"),
        },
    };
    Ok((host.to_string(), port))
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
