//! Keys of a mirror: its own (generated here), and the upstream's host keys (pinned,
//! or read from OpenSSH `known_hosts` text).

use super::UpstreamError;
use hmac::{KeyInit, Mac};
use russh::keys::ssh_encoding::base64::{Base64, Encoding};
use russh::keys::{HashAlg, PublicKey};

/// Host keys allowed for an upstream.
#[derive(Debug, Clone, Default)]
pub struct HostKeys {
    /// The presented key must be one of these (when there are any).
    pub keys: Vec<PublicKey>,
    /// With no keys: first contact, accept what is presented (the caller pins it).
    pub accept_any: bool,
}

impl HostKeys {
    /// Whether `key` may be trusted.
    pub fn allows(&self, key: &PublicKey) -> bool {
        if self.keys.is_empty() {
            return self.accept_any;
        }
        self.keys.iter().any(|k| k.key_data() == key.key_data())
    }
}

/// `SHA256:...`, as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A new ed25519 key for a mirror: (private key as OpenSSH PEM text, public line
/// `ssh-ed25519 AAAA... <comment>`).
pub fn generate_key(comment: &str) -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let mut key = russh::keys::PrivateKey::from(
        russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed),
    );
    key.set_comment(comment);
    let private = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .expect("an ed25519 key encodes")
        .to_string();
    let public = key
        .public_key()
        .to_openssh()
        .expect("an ed25519 key encodes");
    (private, public)
}

/// The keys OpenSSH `known_hosts` text holds for `host` on `port`: plain names
/// (`host`, or `[host]:port` off port 22), comma lists, `*`/`?` patterns, negations
/// (`!host`) and hashed entries (`|1|salt|hash`). `@cert-authority` lines are
/// skipped, and a `@revoked` key is never returned. Lines that do not parse are
/// skipped (as ssh does); a file with no key for the host gives an empty list.
pub fn known_host_keys(text: &str, host: &str, port: u16) -> Vec<PublicKey> {
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let mut keys = Vec::new();
    let mut revoked = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next();
        let mut marker = None;
        if let Some(m) = first.filter(|f| f.starts_with('@')) {
            marker = Some(m);
            first = fields.next();
        }
        let (Some(hosts), Some(_algorithm), Some(data)) = (first, fields.next(), fields.next())
        else {
            continue;
        };
        if !hosts_match(hosts, &name) {
            continue;
        }
        let Ok(key) = russh::keys::parse_public_key_base64(data) else {
            tracing::debug!("known_hosts: a key that does not parse, skipped");
            continue;
        };
        match marker {
            None => keys.push(key),
            Some("@revoked") => revoked.push(key),
            Some(_) => {}
        }
    }
    keys.retain(|k: &PublicKey| !revoked.iter().any(|r| r.key_data() == k.key_data()));
    keys
}

/// [`known_host_keys`] of a file.
pub fn known_host_keys_file(
    path: &std::path::Path,
    host: &str,
    port: u16,
) -> Result<Vec<PublicKey>, UpstreamError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UpstreamError::Key(format!("cannot read {}: {e}", path.display())))?;
    Ok(known_host_keys(&text, host, port))
}

/// Whether a `known_hosts` host field names `name`: a negated match excludes the line.
fn hosts_match(field: &str, name: &str) -> bool {
    if field.starts_with("|1|") {
        return hashed_match(field, name);
    }
    let mut matched = false;
    for pattern in field.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated, name) {
                return false;
            }
        } else if glob(pattern, name) {
            matched = true;
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
fn hashed_match(field: &str, name: &str) -> bool {
    let mut parts = field.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (Base64::decode_vec(salt), Base64::decode_vec(hash)) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH's host patterns: `*` any run, `?` one character; case-insensitive.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let n: Vec<char> = name.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    fn other() -> (PublicKey, String) {
        let (_, public) = generate_key("x");
        let b64 = public.split_whitespace().nth(1).unwrap().to_string();
        (key(&b64), b64)
    }

    #[test]
    fn plain_bracketed_and_patterns() {
        let (k2, b2) = other();
        let text = format!(
            "# comment\n\
             github.com,140.82.121.4 ssh-ed25519 {K1}\n\
             [git.example.org]:2222\tssh-ed25519   {b2} comment here\n\
             garbage\n\
             other.org ssh-ed25519 notbase64!!\n"
        );
        assert_eq!(known_host_keys(&text, "github.com", 22), vec![key(K1)]);
        assert_eq!(known_host_keys(&text, "140.82.121.4", 22), vec![key(K1)]);
        assert!(known_host_keys(&text, "github.com", 2222).is_empty());
        assert_eq!(known_host_keys(&text, "git.example.org", 2222), vec![k2]);
        assert!(known_host_keys(&text, "git.example.org", 22).is_empty());
        assert!(known_host_keys(&text, "other.org", 22).is_empty());
        let text = format!("*.corp.example,!bad.corp.example ssh-ed25519 {K1}\n");
        assert_eq!(known_host_keys(&text, "a.corp.example", 22), vec![key(K1)]);
        assert!(known_host_keys(&text, "bad.corp.example", 22).is_empty());
        assert!(known_host_keys(&text, "corp.example", 22).is_empty());
    }

    #[test]
    fn hashed_entries() {
        // Made with `ssh-keygen -H` from `github.com ...` and `[localhost]:2222 ...`.
        let text = format!(
            "|1|XV/h1lgjpgyVJaSj0nOwIUyWQi0=|EnH3SXB9nZcWAEzxjLjplFewpfk= ssh-ed25519 {K1}\n\
             |1|ZLxp14FNFrT5Tk/BltEbBuDSvlQ=|iDDkbe+WvlDXoV1dryk7LK2opyw= ssh-ed25519 {K1}\n"
        );
        assert_eq!(known_host_keys(&text, "github.com", 22), vec![key(K1)]);
        assert_eq!(known_host_keys(&text, "localhost", 2222), vec![key(K1)]);
        assert!(known_host_keys(&text, "gitlab.com", 22).is_empty());
        assert!(known_host_keys(&text, "localhost", 22).is_empty());
    }

    #[test]
    fn revoked_and_markers() {
        let (k2, b2) = other();
        let text = format!(
            "h ssh-ed25519 {K1}\nh ssh-ed25519 {b2}\n@revoked h ssh-ed25519 {K1}\n@cert-authority h ssh-ed25519 {b2}\n"
        );
        assert_eq!(known_host_keys(&text, "h", 22), vec![k2]);
    }

    #[test]
    fn generated_keys_round_trip() {
        let (private, public) = generate_key("skillsd-mirror");
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
        assert!(public.ends_with(" skillsd-mirror"), "{public}");
        let decoded = russh::keys::decode_secret_key(&private, None).unwrap();
        let b64 = public.split_whitespace().nth(1).unwrap();
        assert_eq!(decoded.public_key().key_data(), key(b64).key_data());
        assert!(fingerprint(&key(b64)).starts_with("SHA256:"));
        assert_ne!(generate_key("a").1, generate_key("a").1);
    }

    #[test]
    fn host_key_policy() {
        let (k2, _) = other();
        let pinned = HostKeys {
            keys: vec![key(K1)],
            accept_any: true,
        };
        assert!(pinned.allows(&key(K1)));
        assert!(!pinned.allows(&k2));
        assert!(
            HostKeys {
                keys: vec![],
                accept_any: true
            }
            .allows(&k2)
        );
        assert!(!HostKeys::default().allows(&k2));
    }
}
