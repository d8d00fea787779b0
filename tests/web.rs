//! The status pages, loaded in a real headless browser (Debian's chromium) from a
//! server with real pushes: the dashboard's counts are the database's, search finds by
//! a word of the body and only those skills, the skill page shows rendered Markdown,
//! a hostile skill runs nothing, a refused push shows what its pusher read.

use crate::common;

use common::{Git, Server, assert_contains_all, skill};
use std::process::Command;

/// The DOM of `path` after the browser loaded it and ran whatever it would run.
fn dom(server: &Server, path: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--timeout=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://127.0.0.1:{}{path}", server.http_port))
        .output()
        .expect("chromium is installed (scripts/deps)");
    assert!(out.status.success(), "chromium: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the element with id `id` (its first text run).
fn text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let open = dom[start..].find('>').unwrap() + start + 1;
    let close = dom[open..].find('<').unwrap() + open;
    dom[open..close].to_string()
}

fn text_between(text: &str, from: &str, to: &str) -> String {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("no `{from}` in {text}"));
    let end = text[start..].find(to).map_or(text.len(), |e| start + e);
    text[start..end].to_string()
}

const HOSTILE: &str = "---\ntitle: \"<script>document.body.setAttribute('data-pwned','title')</script>\"\ndescription: \"<img src=x onerror=\\\"document.body.setAttribute('data-pwned','desc')\\\">\"\n---\n# Hostile\n\n<script>document.body.setAttribute('data-pwned','body')</script>\n\n<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">\n\n[click](javascript:document.body.setAttribute('data-pwned','link'))\n";

#[test]
fn pages_show_the_database_and_run_nothing_a_pusher_wrote() {
    let server = Server::start_with(true);
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.commit_files(
        &dir,
        &[
            (
                "skills/ops/rollback.md",
                "---\ntitle: Roll back a release\ncategory: ops\nowner: sre\ntags: [deploy]\n---\n## Steps\n\nRun the *zeppelin* procedure, then check the dashboards.\n".to_string(),
            ),
            ("skills/ops/hostile.md", HOSTILE.to_string()),
            ("skills/eng/review.md", skill("Review code", "category: eng\n")),
        ],
        "three skills",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    // A second author changes the rollback skill: the history shows both.
    std::fs::write(
        dir.join("skills/ops/rollback.md"),
        "---\ntitle: Roll back a release\ncategory: ops\nowner: sre\ntags: [deploy]\n---\n## Steps\n\nRun the *zeppelin* procedure within the hour.\n",
    )
    .unwrap();
    git.ok(
        &dir,
        &[
            "commit",
            "-qa",
            "--author",
            "Grace Hopper <grace@example.com>",
            "-m",
            "Say how long the rollback window is",
        ],
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    // A refused push, for its page.
    git.commit_files(
        &dir,
        &[("skills/eng/Bad_Name.md", "---\ntitle: x\n---\n")],
        "bad",
    );
    git.fails(&dir, &["push", "origin", "main"]);

    // The dashboard's counts are the health view's.
    let (synced, total): (i64, i64) = server.query(async {
        sqlx::query_as("SELECT synced, total FROM skill_sync_health")
            .fetch_one(&server.pool)
            .await
            .unwrap()
    });
    let page = dom(&server, "/");
    assert_eq!(text_of(&page, "count-synced"), synced.to_string());
    assert_eq!(text_of(&page, "count-total"), total.to_string());
    assert!(page.contains("skills synced"), "{page}");
    assert_eq!(text_of(&page, "count-failed"), "0");
    assert_contains_all(&page, &["in sync", "accepted", "refused", "alice"]);

    // Search by a word of the body finds that skill, and only it.
    let found = dom(&server, "/skills?q=zeppelin");
    assert_eq!(text_of(&found, "result-count"), "1 skill");
    assert!(found.contains("Roll back a release"), "{found}");
    assert!(!found.contains("Review code"), "{found}");
    let eng = dom(&server, "/skills?category=eng&q=");
    assert_eq!(text_of(&eng, "result-count"), "1 skill");
    assert!(
        eng.contains("Review code") && !eng.contains("Roll back"),
        "{eng}"
    );
    let tagged = dom(&server, "/skills?tag=deploy&status=PUBLISHED");
    assert_eq!(text_of(&tagged, "result-count"), "1 skill");

    // The skill page renders the Markdown body.
    let page = dom(&server, "/skills/rollback");
    assert_contains_all(
        &page,
        &[
            "<h2>Steps</h2>",
            "<em>zeppelin</em>",
            "skills/ops/rollback.md",
            "sre",
        ],
    );

    let history = text_between(&page, "id=\"history\"", "</table>");
    assert_contains_all(
        &history,
        &[
            "Grace Hopper",
            "Say how long the rollback window is",
            "three skills",
            "create",
            "update",
        ],
    );
    let first_author: String =
        server.scalar("SELECT author_name FROM commits WHERE message LIKE 'three skills%'");
    assert!(history.contains(&first_author), "{history}");
    assert_ne!(first_author, "Grace Hopper");

    // The JSON twins.
    let api: serde_json::Value =
        serde_json::from_str(&server.get("/api/skills?q=zeppelin")).unwrap();
    assert_eq!(api["total"], 1);
    assert_eq!(api["skills"][0]["slug"], "rollback");
    let api: serde_json::Value =
        serde_json::from_str(&server.get("/api/skills/rollback/history")).unwrap();
    let authors: Vec<&str> = api["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["authorName"].as_str().unwrap())
        .collect();
    assert_eq!(authors, vec!["Grace Hopper", first_author.as_str()]);
    assert_eq!(
        api["history"][0]["message"],
        "Say how long the rollback window is\n"
    );

    // A hostile title, description and body: shown as text, nothing runs.
    let page = dom(&server, "/skills/hostile");
    assert!(!page.contains("data-pwned=\""), "something ran:\n{page}");
    assert!(
        page.contains("&lt;script&gt;document.body.setAttribute"),
        "{page}"
    );
    assert!(!page.contains("href=\"javascript"), "{page}");
    let list = dom(&server, "/skills");
    assert!(!list.contains("data-pwned=\""), "something ran:\n{list}");

    // The refused push, as its pusher read it.
    let id: uuid::Uuid = server.scalar("SELECT id FROM pushes WHERE NOT accepted");
    let page = dom(&server, &format!("/pushes/{id}"));
    assert_contains_all(
        &page,
        &[
            "refused",
            "skills/eng/Bad_Name.md:1: slug: file name `Bad_Name.md` is not a valid slug [slug-format]",
            "invalid skills: 1 error in 1 file",
        ],
    );
}

#[test]
fn every_page_sends_a_strict_content_security_policy() {
    let server = Server::start_with(true);
    for path in ["/", "/skills", "/skills/no-such-skill", "/pushes/nope"] {
        let out = Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null"])
            .arg(format!("http://127.0.0.1:{}{path}", server.http_port))
            .output()
            .unwrap();
        let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            headers.contains("content-security-policy: default-src 'none'; style-src 'self'"),
            "{path}: {headers}"
        );
        assert!(
            headers.contains("x-content-type-options: nosniff"),
            "{path}"
        );
        let expected = if path.contains("no") { "404" } else { "200" };
        assert!(
            headers.starts_with(&format!("http/1.1 {expected}")),
            "{path}: {headers}"
        );
    }
}

/// `curl` with a cookie jar: (status, body) of a GET, or of a POST of `form`.
fn browser(
    server: &Server,
    jar: &std::path::Path,
    path: &str,
    form: Option<&str>,
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-L", "-w", "\n%{http_code}", "-c"])
        .arg(jar)
        .arg("-b")
        .arg(jar);
    if let Some(form) = form {
        c.args(["--data", form]);
    }
    let out = c
        .arg(format!("http://127.0.0.1:{}{path}", server.http_port))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn sign_in_link(server: &Server, key: &common::Key) -> String {
    let out = common::ssh_to(key, server.port)
        .arg("web-login")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    // The in-process server has no address for its pages: the path, and why.
    assert!(
        text.contains("can set SKILLSD_PUBLIC_URL") && text.contains("\n/login?token="),
        "{text}"
    );
    let token = text
        .split("token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no link in {text}"))
        .trim()
        .to_string();
    format!("/login?token={token}")
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no form in {page}"))
        + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_string()
}

#[test]
fn signed_in_pages_one_time_links_and_the_manual_sync_for_admins_only() {
    let server = Server::start_tuned(true, |s| {
        s.web_access = skillsd::config::WebAccess::SignedIn;
    });
    let alice = server.add_user("alice", "writer");
    let root = server.add_user("root", "admin");
    let tmp = tempfile::tempdir().unwrap();

    // Nobody signed in: no page, only the way to sign in.
    let (code, body) = browser(&server, &tmp.path().join("none"), "/", None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("web-login"), "{body}");
    let (code, _) = browser(&server, &tmp.path().join("none"), "/skills", None);
    assert_eq!(code, 401);

    // The link works in a browser, once.
    let link = sign_in_link(&server, &alice);
    let page = dom(&server, &link);
    assert!(page.contains("alice (writer)"), "{page}");
    assert!(page.contains("Dashboard"), "{page}");
    let again = dom(&server, &link);
    assert!(again.contains("already used"), "{again}");
    assert!(!again.contains("alice (writer)"), "{again}");

    // A writer sees no sync button and is refused the sync, even with its own token.
    let jar = tmp.path().join("alice");
    let (code, page) = browser(&server, &jar, &sign_in_link(&server, &alice), None);
    assert_eq!(code, 200, "{page}");
    assert!(!page.contains("Sync now"), "{page}");
    let csrf = csrf_of(&page); // the sign-out form's
    let (code, body) = browser(
        &server,
        &jar,
        "/reconcile",
        Some(&format!("csrf={csrf}&repo=skills")),
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("Only admins"), "{body}");

    // An admin: refused without the session's form token, served with it.
    let jar = tmp.path().join("root");
    let (code, page) = browser(&server, &jar, &sign_in_link(&server, &root), None);
    assert_eq!(code, 200);
    assert!(page.contains("Sync now"), "{page}");
    let (code, _) = browser(&server, &jar, "/reconcile", Some("csrf=forged&repo=skills"));
    assert_eq!(code, 403);
    let (code, _) = browser(
        &server,
        &tmp.path().join("none"),
        "/reconcile",
        Some("csrf=x&repo=skills"),
    );
    assert_eq!(code, 401);
    // The cache drifted (a row deleted behind skillsd's back): the sync repairs it.
    let count = |server: &Server| -> i64 {
        server.scalar("SELECT count(*) FROM skills WHERE repo = 'skills'")
    };
    let before = count(&server);
    server.query(async {
        sqlx::query("DELETE FROM skills WHERE path = (SELECT min(path) FROM skills)")
            .execute(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(count(&server), before - 1);
    let csrf = csrf_of(&page);
    let (code, body) = browser(
        &server,
        &jar,
        "/reconcile",
        Some(&format!("csrf={csrf}&repo=skills")),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Synced skills"), "{body}");
    assert!(body.contains("1 created"), "{body}");
    assert_eq!(count(&server), before);

    // Signing out ends the session: the cookie no longer opens pages.
    let (code, _) = browser(&server, &jar, "/logout", Some(&format!("csrf={csrf}")));
    assert_eq!(
        code, 401,
        "after sign-out the redirect lands on a closed page"
    );
    let sessions: i64 = server.scalar("SELECT count(*) FROM web_sessions WHERE user_name = 'root'");
    assert_eq!(sessions, 0);
}

#[test]
fn the_cache_s_changes_stream_to_open_pages() {
    let server = Server::start_with(true);
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    // The page loads the script, and the policy lets it and its stream through.
    let page = dom(&server, "/");
    assert!(
        page.contains("<script src=\"/static/live.js\" defer=\"\"></script>"),
        "{page}"
    );
    assert!(
        server
            .get("/static/live.js")
            .contains("new EventSource(\"/events\")")
    );
    // A reader of /events, then a push.
    let mut reader = Command::new("curl")
        .args(["-sN", "--max-time", "20"])
        .arg(format!("http://127.0.0.1:{}/events", server.http_port))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = reader.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("data:");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    // The stream is open once the server holds a subscriber; pushes before that are
    // not seen, so push until one is (the first normally is).
    let mut pushed = 0;
    while !lines.is_finished() && pushed < 5 {
        pushed += 1;
        git.commit_files(
            &dir,
            &[(format!("skills/live/live-{pushed}.md"), skill("Live", ""))],
            "live",
        );
        git.ok(&dir, &["push", "-q", "origin", "main"]);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let seen = lines.join().unwrap();
    let _ = reader.kill();
    let _ = reader.wait();
    assert!(seen.iter().any(|l| l == "event: cache"), "{seen:?}");
    let data = seen.last().unwrap().strip_prefix("data:").unwrap().trim();
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["repo"], "skills");
    let slug = event["slugs"][0].as_str().unwrap();
    assert!(slug.starts_with("live-"), "{event}");
    let synced: i64 = server.scalar("SELECT synced FROM skill_sync_health");
    assert!(
        event["health"]["synced"].as_i64().unwrap() <= synced,
        "{event}"
    );
    assert!(event["health"]["synced"].as_i64().unwrap() >= 3, "{event}");
}

/// (status, body) of a GET with `headers` (`-H` values).
fn get_with(server: &Server, path: &str, headers: &[String]) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-g", "-w", "\n%{http_code}"]);
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c
        .arg(format!("http://127.0.0.1:{}{path}", server.http_port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn bearer(token: &str) -> Vec<String> {
    vec![format!("Authorization: Bearer {token}")]
}

/// `ssh ... api-token` for `key`: the token on the output's last line.
fn api_token(server: &Server, key: &common::Key) -> String {
    let out = common::ssh_to(key, server.port)
        .args(["api-token", "ci"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let token = text.lines().last().unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "{text}");
    token
}

/// Every JSON endpoint the pages' data comes from, `/metrics`, and the agents' index
/// and files.
const CLOSED: &[&str] = &[
    "/api/skills",
    "/api/skills?status=PUBLISHED",
    "/api/skills/commit-messages",
    "/api/skills/commit-messages/history",
    "/api/skills/commit-messages/sync-logs",
    "/api/skills/sync/status",
    "/api/mirrors",
    "/api/changes",
    "/metrics",
    "/",
    "/skills",
    "/changes",
    "/events",
    "/.well-known/agent-skills/index.json",
    "/skills/.well-known/agent-skills/index.json",
    "/.well-known/agent-skills/commit-messages/SKILL.md",
];

#[test]
fn signed_in_mode_closes_the_json_api_and_metrics_and_sessions_end_with_their_user() {
    let server = Server::start_tuned(true, |s| {
        s.web_access = skillsd::config::WebAccess::SignedIn;
        s.metrics = skillsd::config::MetricsAccess::Token;
        s.metrics_token = Some("metrics-secret".into());
    });
    let alice = server.add_user("alice", "writer");

    // Nobody: nothing but health, readiness and the way to sign in.
    for path in CLOSED {
        let (code, body) = get_with(&server, path, &[]);
        assert_eq!(code, 401, "{path} answered anonymously: {body}");
        assert!(!body.contains("commit-messages\""), "{path}: {body}");
    }
    let (code, body) = get_with(&server, "/api/skills", &[]);
    assert!(body.contains("api-token"), "{body}");
    assert_eq!(get_with(&server, "/healthz", &[]).0, 200);
    assert_eq!(get_with(&server, "/readyz", &[]).0, 200);
    assert_eq!(code, 401);
    // A made-up bearer or cookie opens nothing.
    let forged = "ab".repeat(32);
    assert_eq!(get_with(&server, "/api/skills", &bearer(&forged)).0, 401);
    assert_eq!(
        get_with(
            &server,
            "/api/skills",
            &[format!("Cookie: skillsd_session={forged}")]
        )
        .0,
        401
    );

    // A user's API token opens the API (not /metrics, which has its own token).
    let token = api_token(&server, &alice);
    for path in CLOSED.iter().filter(|p| p.starts_with("/api/")) {
        let (code, body) = get_with(&server, path, &bearer(&token));
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (code, body) = get_with(
        &server,
        "/.well-known/agent-skills/index.json",
        &bearer(&token),
    );
    assert_eq!(code, 200, "{body}");
    let (_, body) = get_with(&server, "/api/skills/commit-messages", &bearer(&token));
    assert!(body.contains("\"frontmatter\""), "{body}");
    assert_eq!(get_with(&server, "/metrics", &bearer(&token)).0, 401);
    let (code, body) = get_with(&server, "/metrics", &bearer("metrics-secret"));
    assert_eq!(code, 200);
    assert!(body.contains("skillsd_pushes_total"), "{body}");
    // The admin token opens the API too.
    let (code, _) = get_with(&server, "/api/skills", &bearer(common::ADMIN_TOKEN));
    assert_eq!(code, 200);
    // A browser session's cookie opens the API, but is no bearer token (and a token
    // is no cookie).
    let tmp = tempfile::tempdir().unwrap();
    let jar = tmp.path().join("alice");
    let (code, _) = browser(&server, &jar, &sign_in_link(&server, &alice), None);
    assert_eq!(code, 200);
    let (code, body) = browser(&server, &jar, "/api/skills/sync/status", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        get_with(
            &server,
            "/api/skills",
            &[format!("Cookie: skillsd_session={token}")]
        )
        .0,
        401
    );
    let listed = common::ssh_to(&alice, server.port)
        .args(["api-token", "list"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).starts_with("ci\t"),
        "{listed:?}"
    );

    // A change of role ends the token and the session: signing in again gives the new
    // role.
    let out = server.cli(&[
        "user",
        "add",
        "alice",
        "--role",
        "admin",
        "--key",
        alice.public.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(get_with(&server, "/api/skills", &bearer(&token)).0, 401);
    assert_eq!(browser(&server, &jar, "/", None).0, 401);
    let (code, page) = browser(&server, &jar, &sign_in_link(&server, &alice), None);
    assert_eq!(code, 200);
    assert!(page.contains("alice (admin)"), "{page}");

    // Removed, and the name given to someone else: the old session and token are
    // gone, and open nothing of the newcomer's.
    let token = api_token(&server, &alice);
    assert_eq!(get_with(&server, "/api/skills", &bearer(&token)).0, 200);
    let out = server.cli(&["user", "remove", "alice"]);
    assert!(out.status.success(), "{out:?}");
    let sessions = server.count("SELECT count(*) FROM web_sessions");
    assert_eq!(sessions, 0, "the user's sessions went with the user");
    let _newcomer = server.add_user("alice", "reader");
    assert_eq!(get_with(&server, "/api/skills", &bearer(&token)).0, 401);
    let (code, page) = browser(&server, &jar, "/", None);
    assert_eq!(code, 401, "{page}");
    assert!(!page.contains("alice ("), "{page}");
    // Revoking ends a token at once.
    let bob = server.add_user("bob", "reader");
    let token = api_token(&server, &bob);
    assert_eq!(get_with(&server, "/api/skills", &bearer(&token)).0, 200);
    let out = common::ssh_to(&bob, server.port)
        .args(["api-token", "revoke"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("revoked 1 API token"),
        "{out:?}"
    );
    assert_eq!(get_with(&server, "/api/skills", &bearer(&token)).0, 401);

    // Named tokens with their own lifetime (what an agent or a script reads with),
    // listed, and revoked one by one.
    let ssh = |args: &[&str]| {
        let out = common::ssh_to(&bob, server.port)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, _) = ssh(&["token", "create", "--name", "agent", "--expires", "7"]);
    assert!(ok && out.contains("valid 7 days"), "{out}");
    let agent = out.lines().last().unwrap().trim().to_string();
    let (ok, out, _) = ssh(&["token", "create", "--name", "nightly"]);
    assert!(ok, "{out}");
    let nightly = out.lines().last().unwrap().trim().to_string();
    for t in [&agent, &nightly] {
        assert_eq!(get_with(&server, "/api/skills", &bearer(t)).0, 200);
    }
    let (_, listed, _) = ssh(&["token", "list"]);
    let expires: Vec<&str> = listed
        .lines()
        .filter(|l| l.starts_with("agent\t"))
        .collect();
    assert_eq!(expires.len(), 1, "{listed}");
    let in_a_week = (chrono::Utc::now() + chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        expires[0].contains(&format!("expires {in_a_week}")),
        "{listed}"
    );
    let (ok, _, err) = ssh(&["token", "create", "--expires", "9999"]);
    assert!(!ok && err.contains("from 1 to 365"), "{err}");
    let (ok, _, err) = ssh(&["token", "revoke", "nosuch"]);
    assert!(!ok && err.contains("no token named `nosuch`"), "{err}");
    let (ok, out, _) = ssh(&["token", "revoke", "agent"]);
    assert!(ok && out.contains("revoked 1 token named agent"), "{out}");
    assert_eq!(get_with(&server, "/api/skills", &bearer(&agent)).0, 401);
    assert_eq!(get_with(&server, "/api/skills", &bearer(&nightly)).0, 200);
    let (ok, _, _) = ssh(&["token", "revoke", "--all"]);
    assert!(ok);
    assert_eq!(get_with(&server, "/api/skills", &bearer(&nightly)).0, 401);
}

#[test]
fn bad_paging_and_nul_in_queries_are_bad_requests_not_database_errors() {
    let server = Server::start_with(true);
    for path in [
        "/api/skills?page=9223372036854775807",
        "/api/skills?page=0",
        "/api/skills?page=-5",
        "/api/skills?limit=100000",
        "/api/skills?q=a%00b",
        "/api/skills?tag=%00",
        "/api/skills/a%00b",
        "/api/skills/a%00b/history",
        "/api/skills/a%00b/sync-logs",
        "/skills?page=9223372036854775807",
        "/skills?q=%00",
        "/skills/x%00y",
    ] {
        let (code, body) = get_with(&server, path, &[]);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(!body.contains("database"), "{path}: {body}");
    }
    let long = "x".repeat(5000);
    assert_eq!(
        get_with(&server, &format!("/api/skills?q={long}"), &[]).0,
        400
    );
    // The database was never asked: still healthy, and a good query still answers.
    let (code, body) = get_with(&server, "/api/skills?page=1&q=commit", &[]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(get_with(&server, "/readyz", &[]).0, 200);
}
