//! `secret`: credentials committed in a skill's text, found by high-confidence
//! patterns only (a known prefix or structure, not "looks random"), and `[secrets]`
//! of `skillsd.toml`, the allowlist by fingerprint that is the only way past them.
//!
//! ```toml
//! [secrets]
//! allow = ["sha256:3f1c0e9a7b2d"]   # test fixtures, never live credentials
//! ```
//!
//! A finding never shows the secret: it names the kind, where it is, and its
//! fingerprint (`sha256:` and the first 12 hex digits of the SHA-256 of the secret).
//! Every pattern is compiled once, and every scan is linear in the size of the text
//! (the regex crate's guarantee; the PEM bodies are read as disjoint segments): the
//! whole file is read, however it is padded.

use super::rules::CONFIG_PATH;
use super::skill::{Check, Problem};
use regex::Regex;
use serde::Deserialize;
use sha2::Digest;
use std::collections::BTreeSet;
use std::sync::OnceLock;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretsFile {
    allow: Option<Vec<String>>,
}

/// `[secrets]`: the fingerprints of secrets that may be committed (test fixtures).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub allow: BTreeSet<String>,
}

/// Compiles `[secrets]`; every bad entry goes to `problems`, located in `text`.
pub(crate) fn build(file: SecretsFile, text: &str, problems: &mut Vec<Problem>) -> Secrets {
    let mut secrets = Secrets::default();
    for entry in file.allow.unwrap_or_default() {
        if is_fingerprint(&entry) {
            secrets.allow.insert(entry);
            continue;
        }
        let mut problem = Problem::new(
            Check::Rules,
            CONFIG_PATH,
            format!("`{}` is not a secret's fingerprint", entry.escape_debug()),
        )
        .field("secrets.allow")
        .hint("copy the fingerprint from the push's message: \"sha256:\" and 12 hex digits, e.g. allow = [\"sha256:3f1c0e9a7b2d\"]");
        let needle = format!("\"{entry}\"");
        let line = text
            .lines()
            .position(|l| !entry.is_empty() && l.contains(&needle))
            .or_else(|| {
                text.lines()
                    .position(|l| l.trim_start().starts_with("allow"))
            });
        if let Some(line) = line {
            problem = problem.at(line as u32 + 1, None);
        }
        problems.push(problem);
    }
    secrets
}

fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `sha256:` and the first 12 hex digits of the SHA-256 of `secret`.
pub fn fingerprint(secret: &str) -> String {
    let hash = sha2::Sha256::digest(secret.as_bytes());
    let mut out = String::from("sha256:");
    for b in hash.iter().take(6) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// One credential found: where (byte offsets in the text), what, and the text its
/// fingerprint is made of.
struct Finding {
    start: usize,
    end: usize,
    kind: &'static str,
    secret: String,
}

/// A pattern whose first group is the whole token.
struct Token {
    kind: &'static str,
    regex: Regex,
}

struct Patterns {
    tokens: Vec<Token>,
    aws_key_id: Regex,
    aws_secret: Regex,
    gcp_account: Regex,
    pem_begin: Regex,
    jwt: Regex,
    url_password: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("the secret patterns compile");
        let token = |kind, p: &str| Token {
            kind,
            regex: re(p),
        };
        Patterns {
            tokens: vec![
                token(
                    "GitHub token",
                    r"(?-u:\b)(gh[pousr]_[A-Za-z0-9]{36,251})(?-u:\b)",
                ),
                token(
                    "GitHub fine-grained personal access token",
                    r"(?-u:\b)(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?-u:\b)",
                ),
                token(
                    "GitLab personal access token",
                    r"(?-u:\b)(glpat-[A-Za-z0-9_-]{20,})",
                ),
                token(
                    "Slack token",
                    r"(?-u:\b)(xox[baprs]-[0-9A-Za-z]+-[0-9A-Za-z-]{10,})",
                ),
                token(
                    "Slack webhook URL",
                    r"(https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,})",
                ),
                token(
                    "Stripe live key",
                    r"(?-u:\b)([sr]k_live_[A-Za-z0-9]{20,})(?-u:\b)",
                ),
                token(
                    "Azure storage account key",
                    r"(?i:AccountKey)=([A-Za-z0-9+/]{86}==)",
                ),
                token(
                    "Azure shared access key",
                    r"(?i:SharedAccessKey)=([A-Za-z0-9+/]{43}=)",
                ),
            ],
            aws_key_id: re(r"(?-u:\b)((?:AKIA|ASIA)[A-Z2-7]{16})(?-u:\b)"),
            aws_secret: re(r"(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"),
            gcp_account: re(r#""type"\s*:\s*"service_account""#),
            pem_begin: re(r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY(?: BLOCK)?-----"),
            jwt: re(
                r"(?-u:\b)(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})",
            ),
            // scheme://user:password@host — RFC 3986 userinfo with a password, the
            // user and password without the characters that end a URL in prose or
            // code (`"`, `'`, `<`, `>`, `` ` ``, whitespace, brackets).
            url_password: re(
                r"(?i)(?-u:\b)([a-z][a-z0-9+.-]{1,30})://([^\s:/?#@\[\]`'\x22<>()]+):([^\s/?#@\[\]`'\x22<>()]+)@([a-z0-9][a-z0-9.-]*|\[[0-9a-f:.]+\])",
            ),
        }
    })
}

/// Keys and tokens published as documentation examples: not secrets (AWS's example
/// pair has `EXAMPLE` in it and passes as a placeholder).
const PUBLIC_EXAMPLES: [&str; 2] = [
    // Azurite's (the Azure Storage emulator's) well-known development account key.
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    // jwt.io's example token (HS256 with "your-256-bit-secret").
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
];

/// Does `token` read as a placeholder rather than a credential: `EXAMPLE`, `xxxx`,
/// counting runs, or one character repeated? (A random token contains one of these
/// by chance with a probability below 10⁻⁴.)
fn placeholder(token: &str) -> bool {
    let lower = token.to_ascii_lowercase();
    const WORDS: [&str; 8] = [
        "example",
        "xxxx",
        "placeholder",
        "dummy",
        "redacted",
        "0123456",
        "1234567",
        "abcdefg",
    ];
    if WORDS.iter().any(|w| lower.contains(w)) || PUBLIC_EXAMPLES.contains(&token) {
        return true;
    }
    let bytes = token.as_bytes();
    let mut run = 1;
    for w in bytes.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 8 {
            return true;
        }
    }
    false
}

/// `secret`: every credential in `text` whose fingerprint `secrets` does not allow,
/// one problem each, at its first character; the secret itself is never shown.
pub fn scan(path: &str, text: &str, secrets: &Secrets) -> Vec<Problem> {
    let mut findings = find(text);
    if findings.is_empty() {
        return Vec::new();
    }
    findings.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    // One finding per place: a key inside another's span (a GCP account's PEM key) is
    // the same credential.
    let mut kept: Vec<Finding> = Vec::new();
    for f in findings {
        if kept.last().is_some_and(|k| f.start < k.end) {
            continue;
        }
        kept.push(f);
    }
    let lines = LineIndex::new(text);
    kept.into_iter()
        .filter_map(|f| {
            let fp = fingerprint(&f.secret);
            if secrets.allow.contains(&fp) {
                return None;
            }
            let (line, column) = lines.locate(text, f.start);
            Some(
                Problem::new(
                    Check::Secret,
                    path,
                    format!("{} committed (fingerprint {fp}); the secret is not shown", f.kind),
                )
                .at(line, Some(column))
                .hint(format!(
                    "remove it from every commit of the push (git commit --amend, or git rebase -i \
                     for older commits) and rotate it: treat it as leaked. A test fixture that is \
                     no live credential may be allowed in skillsd.toml: [secrets] allow = [\"{fp}\"]"
                )),
            )
        })
        .collect()
}

/// Every credential in `text`, before the allowlist.
fn find(text: &str) -> Vec<Finding> {
    let p = patterns();
    let mut out = Vec::new();
    for t in &p.tokens {
        for c in t.regex.captures_iter(text) {
            let m = c.get(1).expect("group 1");
            if !placeholder(m.as_str()) {
                out.push(Finding {
                    start: m.start(),
                    end: m.end(),
                    kind: t.kind,
                    secret: m.as_str().to_string(),
                });
            }
        }
    }
    aws(text, p, &mut out);
    pem(text, p, &mut out);
    url_passwords(text, p, &mut out);
    for c in p.jwt.captures_iter(text) {
        let m = c.get(1).expect("group 1");
        if signed_jwt(m.as_str()) && !placeholder(m.as_str()) {
            out.push(Finding {
                start: m.start(),
                end: m.end(),
                kind: "signed JWT",
                secret: m.as_str().to_string(),
            });
        }
    }
    out
}

/// Passwords in a URL's userinfo (`https://user:password@host`, `postgres://…`): found
/// at the URL; the fingerprint is of `scheme://user:password@host`. What is plainly
/// no password passes: a placeholder (`<password>`, `${DB_PASSWORD}`, `$PASS`,
/// `%(pw)s`, `{{ pw }}`, `***`, `password`, `changeme`, …, or [`placeholder`]'s
/// words), a password equal to the user (`postgres:postgres`), and a host of the
/// names reserved for documentation (`example.com`, `.org`, `.net`, and anything
/// under `.example`, `.test`, `.invalid`; RFC 2606).
fn url_passwords(text: &str, p: &Patterns, out: &mut Vec<Finding>) {
    for c in p.url_password.captures_iter(text) {
        let (Some(all), Some(user), Some(password), Some(host)) =
            (c.get(0), c.get(2), c.get(3), c.get(4))
        else {
            continue;
        };
        let (user, password, host) = (user.as_str(), password.as_str(), host.as_str());
        if password_placeholder(password) || password == user || documentation_host(host) {
            continue;
        }
        out.push(Finding {
            start: all.start(),
            end: all.end(),
            kind: "password in a URL",
            secret: all.as_str().to_string(),
        });
    }
}

/// Is a URL's password plainly a stand-in for one?
fn password_placeholder(password: &str) -> bool {
    let lower = password.to_ascii_lowercase();
    const WORDS: [&str; 14] = [
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "secret",
        "changeme",
        "change-me",
        "change_me",
        "mypassword",
        "yourpassword",
        "token",
        "apikey",
        "api_key",
    ];
    // Interpolation and templates: $VAR, ${VAR}, %(name)s, %s, {{ x }}, {x}, <x>.
    let templated = ["$", "%", "{", "<"].iter().any(|t| password.starts_with(t))
        || password.ends_with('>')
        || password.ends_with('}');
    let masked = password
        .bytes()
        .all(|b| matches!(b, b'*' | b'.' | b'x' | b'X' | b'#'));
    templated
        || masked
        || WORDS.contains(&lower.as_str())
        || lower.starts_with("your")
        || lower.starts_with("my-")
        || lower.starts_with("my_")
        || placeholder(password)
}

/// Is `host` a name reserved for documentation (RFC 2606, RFC 6761)?
fn documentation_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ["example.com", "example.org", "example.net"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || [".example", ".test", ".invalid"]
            .iter()
            .any(|t| host.ends_with(t))
        || ["example", "test", "invalid"].contains(&host.as_str())
}

/// An AWS access key id together with a secret access key (40 characters of base64
/// with upper and lower case letters, as no hex hash has) within five
/// lines of it: found at the secret.
fn aws(text: &str, p: &Patterns, out: &mut Vec<Finding>) {
    let ids: Vec<(usize, &str)> = p
        .aws_key_id
        .captures_iter(text)
        .filter_map(|c| c.get(1))
        .filter(|m| !placeholder(m.as_str()))
        .map(|m| (m.start(), m.as_str()))
        .collect();
    if ids.is_empty() {
        return;
    }
    let lines = LineIndex::new(text);
    let id_lines: Vec<u32> = ids.iter().map(|(at, _)| lines.line(*at)).collect();
    for c in p.aws_secret.captures_iter(text) {
        let m = c.get(1).expect("group 1");
        let s = m.as_str();
        let mixed =
            s.bytes().any(|b| b.is_ascii_uppercase()) && s.bytes().any(|b| b.is_ascii_lowercase());
        if !mixed || placeholder(s) || s.starts_with("AKIA") || s.starts_with("ASIA") {
            continue;
        }
        let line = lines.line(m.start());
        // `id_lines` is sorted: the nearest key id is found by a binary search.
        let i = id_lines.partition_point(|l| *l < line.saturating_sub(5));
        if id_lines.get(i).is_some_and(|l| *l <= line + 5) {
            out.push(Finding {
                start: m.start(),
                end: m.end(),
                kind: "AWS secret access key (with its access key id)",
                secret: s.to_string(),
            });
        }
    }
}

/// PEM and OpenSSH private keys with a body (at least 64 characters of base64 in the
/// lines after `-----BEGIN … PRIVATE KEY-----`, as written or as `\n` escapes in a
/// JSON string: a GCP service account's key). A body is read up to the next BEGIN or
/// END line, so the segments read are disjoint.
fn pem(text: &str, p: &Patterns, out: &mut Vec<Finding>) {
    let begins: Vec<regex::Captures<'_>> = p.pem_begin.captures_iter(text).collect();
    if begins.is_empty() {
        return;
    }
    let gcp = p.gcp_account.is_match(text);
    for (i, c) in begins.iter().enumerate() {
        let m = c.get(0).expect("the match");
        let stop = begins
            .get(i + 1)
            .map_or(text.len(), |n| n.get(0).expect("m").start());
        let segment = &text[m.end()..stop];
        let segment = segment
            .find("-----END")
            .map_or(segment, |end| &segment[..end]);
        let mut body = String::new();
        for line in segment.split(['\n', '\r']).flat_map(|l| l.split("\\n")) {
            let line = line.trim().trim_matches('"');
            if line.is_empty() || line.contains(": ") {
                continue; // blank, or a header (Proc-Type: …, DEK-Info: …)
            }
            if !line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            {
                break;
            }
            body.push_str(line);
        }
        if body.len() < 64 || placeholder(&body) {
            continue;
        }
        let label = c.get(1).map_or("", |l| l.as_str());
        let kind = if gcp && text[..m.start()].trim_end().ends_with('"') {
            "GCP service account private key"
        } else if label.starts_with("OPENSSH") {
            "OpenSSH private key"
        } else if label.starts_with("PGP") {
            "PGP private key"
        } else {
            "private key (PEM)"
        };
        out.push(Finding {
            start: m.start(),
            end: m.end() + segment.len(),
            kind,
            secret: body,
        });
    }
}

/// Is `token` a JWT whose header names an algorithm other than `none`?
fn signed_jwt(token: &str) -> bool {
    let header = token.split('.').next().unwrap_or_default();
    let Some(json) = base64url(header) else {
        return false;
    };
    let Ok(serde_json::Value::Object(header)) = serde_json::from_slice::<serde_json::Value>(&json)
    else {
        return false;
    };
    header
        .get("alg")
        .and_then(|a| a.as_str())
        .is_some_and(|alg| !alg.eq_ignore_ascii_case("none"))
}

/// Decodes unpadded base64url (a JWT segment); `None` if it is not.
fn base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Byte offsets → 1-based line and character column.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> u32 {
        self.starts.partition_point(|s| *s <= offset) as u32
    }

    fn locate(&self, text: &str, offset: usize) -> (u32, u32) {
        let line = self.line(offset);
        let start = self.starts[line as usize - 1];
        let column = text[start..offset].chars().count() as u32 + 1;
        (line, column)
    }
}

#[cfg(test)]
mod tests;
