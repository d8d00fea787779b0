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
        (
            format!("token: {}\n", fake("ghp_", 36)),
            "GitHub token",
            fake("ghp_", 36),
        ),
        (
            format!("x {} y", fake("gho_", 36)),
            "GitHub token",
            fake("gho_", 36),
        ),
        (fake("ghs_", 40), "GitHub token", fake("ghs_", 40)),
        (
            format!("GH={}", fake("github_pat_", 22) + "_" + &fake("", 59)),
            "GitHub fine-grained",
            fake("github_pat_", 22) + "_" + &fake("", 59),
        ),
        (
            format!("- {}", fake("glpat-", 20)),
            "GitLab",
            fake("glpat-", 20),
        ),
        (
            format!("SLACK={}", fake("xoxb-2847561930-", 24)),
            "Slack token",
            fake("xoxb-2847561930-", 24),
        ),
        (
            format!(
                "curl {}",
                fake("https://hooks.slack.com/services/T0AB12CD3/B0EF45GH6/", 24)
            ),
            "Slack webhook URL",
            fake("https://hooks.slack.com/services/T0AB12CD3/B0EF45GH6/", 24),
        ),
        (
            fake("sk_live_", 24),
            "Stripe live key",
            fake("sk_live_", 24),
        ),
        (
            fake("rk_live_", 30),
            "Stripe live key",
            fake("rk_live_", 30),
        ),
        (
            format!(
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={}==;EndpointSuffix=core.windows.net",
                fake("", 86)
            ),
            "Azure storage account key",
            fake("", 86) + "==",
        ),
        (
            format!(
                "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={}=",
                fake("", 43)
            ),
            "Azure shared access key",
            fake("", 43) + "=",
        ),
        (
            format!(
                "aws_access_key_id = {}\naws_secret_access_key = {}\n",
                fake("AKIA", 0) + "QX7M2KXR5PLZ4TBN",
                aws_secret()
            ),
            "AWS secret access key",
            aws_secret(),
        ),
        (
            format!("-----BEGIN RSA PRIVATE KEY-----\n{pem_body}-----END RSA PRIVATE KEY-----\n"),
            "private key (PEM)",
            pem_body.replace('\n', ""),
        ),
        (
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body}-----END OPENSSH PRIVATE KEY-----\n"
            ),
            "OpenSSH private key",
            pem_body.replace('\n', ""),
        ),
        (
            format!(
                "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\",\n  \"private_key\": \"{gcp_key}\"\n}}\n"
            ),
            "GCP service account private key",
            pem_body.replace('\n', ""),
        ),
        (
            format!(
                "Authorization: Bearer {jwt_header}.{}.{}",
                fake("eyJ", 40),
                fake("", 43).replace('/', "_")
            ),
            "signed JWT",
            format!(
                "{jwt_header}.{}.{}",
                fake("eyJ", 40),
                fake("", 43).replace('/', "_")
            ),
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
    let text =
        "[secrets]\nallow = [\n  \"sha256:0123456789ab\",\n  \"ghp_oops\",\n  \"sha256:XYZ\",\n]\n";
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
    assert!(
        problems[0]
            .message
            .contains("`ghp_oops` is not a secret's fingerprint")
    );
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
