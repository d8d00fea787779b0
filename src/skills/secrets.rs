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
mod tests {
    use super::*;

    /// Fake credentials, made at run time so that no scanner takes this file for a
    /// leak: `prefix` + `n` characters from a shuffled alphabet.
    fn fake(prefix: &str, n: usize) -> String {
        const ALPHABET: &[u8] = b"q7Wm2KxR9pLz4TbN8vHc3JsF6dYg5UkE1aPr0XnMtQeZwBiVoClGuSyDhAjI";
        let mut s = String::from(prefix);
        let mut i = 7usize;
        for _ in 0..n {
            i = (i * 31 + 17) % ALPHABET.len();
            s.push(ALPHABET[i] as char);
        }
        s
    }

    fn kinds(text: &str) -> Vec<(u32, u32, String)> {
        scan("skills/x/SKILL.md", text, &Secrets::default())
            .into_iter()
            .map(|p| {
                assert_eq!(p.check, Check::Secret);
                (p.line.unwrap(), p.column.unwrap(), p.message)
            })
            .collect()
    }

    fn aws_secret() -> String {
        // 40 characters of base64 with both cases, digits and a slash.
        format!("{}/{}", fake("", 20), fake("", 19))
    }

    #[test]
    fn every_kind_is_found_and_never_shown() {
        let pem_body: String = (0..6).map(|i| fake("", 60 + i) + "\n").collect();
        let gcp_key = format!(
            "-----BEGIN PRIVATE KEY-----\\n{}-----END PRIVATE KEY-----\\n",
            pem_body.replace('\n', "\\n")
        );
        let jwt_header = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"RS256","typ":"JWT"}
        let cases: Vec<(String, &str, String)> = vec![
            (format!("token: {}\n", fake("ghp_", 36)), "GitHub token", fake("ghp_", 36)),
            (format!("x {} y", fake("gho_", 36)), "GitHub token", fake("gho_", 36)),
            (fake("ghs_", 40), "GitHub token", fake("ghs_", 40)),
            (
                format!("GH={}", fake("github_pat_", 22) + "_" + &fake("", 59)),
                "GitHub fine-grained",
                fake("github_pat_", 22) + "_" + &fake("", 59),
            ),
            (format!("- {}", fake("glpat-", 20)), "GitLab", fake("glpat-", 20)),
            (
                format!("SLACK={}", fake("xoxb-2847561930-", 24)),
                "Slack token",
                fake("xoxb-2847561930-", 24),
            ),
            (
                format!("curl {}", fake("https://hooks.slack.com/services/T0AB12CD3/B0EF45GH6/", 24)),
                "Slack webhook URL",
                fake("https://hooks.slack.com/services/T0AB12CD3/B0EF45GH6/", 24),
            ),
            (fake("sk_live_", 24), "Stripe live key", fake("sk_live_", 24)),
            (fake("rk_live_", 30), "Stripe live key", fake("rk_live_", 30)),
            (
                format!(
                    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={}==;EndpointSuffix=core.windows.net",
                    fake("", 86)
                ),
                "Azure storage account key",
                fake("", 86) + "==",
            ),
            (
                format!("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={}=", fake("", 43)),
                "Azure shared access key",
                fake("", 43) + "=",
            ),
            (
                format!("aws_access_key_id = {}\naws_secret_access_key = {}\n", fake("AKIA", 0) + "QX7M2KXR5PLZ4TBN", aws_secret()),
                "AWS secret access key",
                aws_secret(),
            ),
            (
                format!("-----BEGIN RSA PRIVATE KEY-----\n{pem_body}-----END RSA PRIVATE KEY-----\n"),
                "private key (PEM)",
                pem_body.replace('\n', ""),
            ),
            (
                format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body}-----END OPENSSH PRIVATE KEY-----\n"),
                "OpenSSH private key",
                pem_body.replace('\n', ""),
            ),
            (
                format!("{{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\",\n  \"private_key\": \"{gcp_key}\"\n}}\n"),
                "GCP service account private key",
                pem_body.replace('\n', ""),
            ),
            (
                format!("Authorization: Bearer {jwt_header}.{}.{}", fake("eyJ", 40), fake("", 43).replace('/', "_")),
                "signed JWT",
                format!("{jwt_header}.{}.{}", fake("eyJ", 40), fake("", 43).replace('/', "_")),
            ),
        ];
        for (text, kind, secret) in &cases {
            let p = scan("skills/x/run.sh", text, &Secrets::default());
            assert_eq!(p.len(), 1, "{kind}: {text}: {p:?}");
            let rendered = format!("{} {}", p[0].message, p[0].hint.as_deref().unwrap());
            assert!(p[0].message.starts_with(kind), "{kind}: {}", p[0].message);
            assert!(
                p[0].message
                    .contains(&format!("(fingerprint {})", fingerprint(secret))),
                "{kind}: {} vs {}",
                p[0].message,
                fingerprint(secret)
            );
            // Not the secret, nor any long piece of it.
            for piece in secret.as_bytes().chunks(12).filter(|c| c.len() == 12) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(
                    !rendered.contains(piece),
                    "{kind} shows {piece}: {rendered}"
                );
            }
            assert!(
                rendered.contains("[secrets] allow = [\"sha256:"),
                "{rendered}"
            );
            assert!(rendered.contains("rotate it"));
        }
        // Located at the secret: line and character column.
        let text = format!("---\nname: x\n---\nÜber: {}\n", fake("ghp_", 36));
        assert_eq!(kinds(&text)[0].0, 4);
        assert_eq!(kinds(&text)[0].1, 7);
        assert_eq!(fingerprint("abc"), "sha256:ba7816bf8f01");
    }

    #[test]
    fn placeholders_and_near_misses_pass() {
        let hex_sha = "3f786850e387550fdab836ed7e6dc881de23001b";
        for text in [
            // AWS's documented example pair.
            "AKIAIOSFODNN7EXAMPLE\nwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string(),
            // A key id alone, or beside a hex hash; a secret-looking string alone.
            "AKIAQX7M2KXR5PLZ4TBN".to_string(),
            format!("AKIAQX7M2KXR5PLZ4TBN\ncommit {hex_sha}"),
            aws_secret(),
            // A key id with a secret too far away.
            format!("AKIAQX7M2KXR5PLZ4TBN{}{}", "\n".repeat(10), aws_secret()),
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_string(),
            "ghp_000000000000000000000000000000000000".to_string(),
            "ghp_short".to_string(),
            "GITHUB_TOKEN=ghp_YourTokenHere".to_string(),
            "xoxb-your-token".to_string(),
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX".to_string(),
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc".to_string(),
            "sk_live_...".to_string(),
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n-----END RSA PRIVATE KEY-----".to_string(),
            "Paste the key between `-----BEGIN OPENSSH PRIVATE KEY-----` and the END line.".to_string(),
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmwIDAQAB\n-----END PUBLIC KEY-----".to_string(),
            // jwt.io's example; an unsigned JWT (alg none); a header that is no JSON.
            PUBLIC_EXAMPLES[1].to_string(),
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXN0dWZm".to_string(),
            format!("eyJub3QganNvbg.{}.{}", fake("eyJ", 20), fake("", 30)),
            // Azurite's development key.
            format!("AccountName=devstoreaccount1;AccountKey={}", PUBLIC_EXAMPLES[0]),
        ] {
            assert!(kinds(&text).is_empty(), "{text}: {:?}", kinds(&text));
        }
    }

    #[test]
    fn passwords_in_urls_are_found_in_prose_code_and_config_and_never_shown() {
        let pw = fake("", 14);
        let cases = [
            format!("Clone https://deploy:{pw}@git.internal.acme.dev/repo.git first."),
            format!("```sh\ncurl -s \"https://bot:{pw}@api.acme.dev/v1/x\" | jq\n```"),
            format!("DATABASE_URL=postgres://app:{pw}@10.0.3.7:5432/prod"),
            format!("url: 'redis://default:{pw}@cache.acme.dev:6379/0'"),
            format!("see <ftp://ops:{pw}@[fd00::7]/pub>"),
            format!("amqp://guest:{pw}@localhost:5672//"),
        ];
        for text in &cases {
            let found = kinds(text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert!(found[0].2.starts_with("password in a URL"), "{found:?}");
            assert!(!found[0].2.contains(&pw), "the password is never shown");
        }
        // Located at the URL's first character.
        let found = kinds(&format!("# x\n\n  git clone https://u:{pw}@acme.dev/r"));
        assert_eq!((found[0].0, found[0].1), (3, 13));
        // Allowed by the fingerprint of scheme://user:password@host.
        let text = &cases[2];
        let secrets = Secrets {
            allow: BTreeSet::from([fingerprint(&format!("postgres://app:{pw}@10.0.3.7"))]),
        };
        assert!(scan("skills/x/SKILL.md", text, &secrets).is_empty());
    }

    #[test]
    fn placeholder_passwords_and_documentation_hosts_in_urls_pass() {
        let pw = fake("", 14);
        for text in [
            "postgres://postgres:postgres@localhost:5432/db".to_string(),
            "https://user:password@host.acme.dev/".to_string(),
            "https://user:<password>@host.acme.dev/".to_string(),
            "https://user:${GITHUB_TOKEN}@github.com/o/r.git".to_string(),
            "https://user:$TOKEN@github.com/o/r.git".to_string(),
            "mysql://root:%(pw)s@db/x".to_string(),
            "https://u:{{ secret }}@h.acme.dev".to_string(),
            "https://u:****@h.acme.dev".to_string(),
            "https://admin:changeme@h.acme.dev".to_string(),
            "https://u:YOUR_PASSWORD@h.acme.dev".to_string(),
            "https://u:xxxxxxxx@h.acme.dev".to_string(),
            format!("https://alice:{pw}@example.com/x"),
            format!("https://alice:{pw}@db.example.org/x"),
            format!("https://alice:{pw}@db.internal.test/x"),
            // No password: a user alone, an email address, an scp-style remote.
            "https://alice@git.acme.dev/r.git".to_string(),
            "mailto:ops@acme.dev".to_string(),
            "git@github.com:o/r.git".to_string(),
            "ssh://git@host.acme.dev:2222/skills.git".to_string(),
            // A port, not a password.
            "http://host.acme.dev:8080/path@v2".to_string(),
        ] {
            assert!(kinds(&text).is_empty(), "{text}: {:?}", kinds(&text));
        }
    }

    #[test]
    fn the_allowlist_lets_a_fixture_through_by_fingerprint() {
        let token = fake("ghp_", 36);
        let other = fake("glpat-", 24);
        let text = format!("a {token}\nb {other}\n");
        let fp = fingerprint(&token);
        let secrets = Secrets {
            allow: BTreeSet::from([fp.clone()]),
        };
        let p = scan("skills/x/SKILL.md", &text, &secrets);
        assert_eq!(p.len(), 1);
        assert!(p[0].message.starts_with("GitLab"));
        assert!(!p[0].message.contains(&fp));
    }

    #[test]
    fn bad_allowlist_entries_are_located_rules_problems() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            secrets: SecretsFile,
        }
        let text = "[secrets]\nallow = [\n  \"sha256:0123456789ab\",\n  \"ghp_oops\",\n  \"sha256:XYZ\",\n]\n";
        let doc: Doc = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        let secrets = build(doc.secrets, text, &mut problems);
        assert_eq!(
            secrets.allow,
            BTreeSet::from(["sha256:0123456789ab".to_string()])
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].line, Some(4));
        assert_eq!(problems[1].line, Some(5));
        assert_eq!(problems[0].check, Check::Rules);
        assert_eq!(problems[0].field.as_deref(), Some("secrets.allow"));
        assert!(problems[0]
            .message
            .contains("`ghp_oops` is not a secret's fingerprint"));
        assert!(toml::from_str::<Doc>("[secrets]\nalow = []\n").is_err());
    }

    #[test]
    fn padding_hides_nothing_and_scans_stay_linear() {
        let token = fake("ghp_", 36);
        let padded = format!("# ok\n{}\n{token}\n", " ".repeat(4 << 20));
        assert_eq!(kinds(&padded)[0].0, 3);
        // Adversarial megabytes: prefixes that never complete, BEGIN lines without END,
        // JWT-looking runs, key ids with base64 around them.
        let inputs = [
            "ghp_aaaa ".repeat(120_000),
            "-----BEGIN PRIVATE KEY-----\nQUJD\n".repeat(30_000),
            "eyJhbGciOiJIUzI1NiJ9.eyJ.".repeat(40_000),
            format!("AKIAQX7M2KXR5PLZ4TBN\n{}", "Ab1+".repeat(250_000)),
            "xoxb-1-".repeat(150_000),
            "AccountKey=".repeat(100_000),
        ];
        for text in &inputs {
            let start = std::time::Instant::now();
            let _ = kinds(text);
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "{:?} took {:?}",
                &text[..40],
                start.elapsed()
            );
        }
    }
}
