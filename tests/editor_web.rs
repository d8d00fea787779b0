//! Editing skills in the browser (issue 29's editor pages): a real chromium driven
//! through WebDriver (Debian's `chromedriver`, selenium from PyPI as `scripts/deps`
//! installs it, `tests/editor_web.py`) signs in with a `web-login` link, edits a
//! skill while problems appear and go as it types, lands on the change, makes a new
//! skill, archives one, and meets a conflict; a reader sees no button and a forged
//! post of theirs is refused. The same forms are also posted with curl, with no
//! script at all. Every change is then fetched with the real git: its commit is by
//! the user's profile name and email, and holds exactly the composed file.

use crate::common;

use base64::Engine;
use common::{Git, Key, Server};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const PATH: &str = "skills/git/commit-messages.md";
const SLUG: &str = "commit-messages";

fn ssh(server: &Server, key: &Key, command: &str) -> String {
    let out = common::ssh_to(key, server.port)
        .arg(command)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command}: {text}");
    text
}

/// A `web-login` link's path (`/login?token=…`).
fn login_link(server: &Server, key: &Key) -> String {
    let text = ssh(server, key, "web-login");
    let token = text
        .split("token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no link in {text}"))
        .trim()
        .to_string();
    format!("/login?token={token}")
}

/// A token printed by `token create …` (its last line).
fn token(server: &Server, key: &Key, args: &str) -> String {
    ssh(server, key, &format!("token create {args}"))
        .trim()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

/// A reply: status, `Location` (without the server's address), body.
struct Reply {
    code: u16,
    location: Option<String>,
    body: String,
}

/// A request with curl and a cookie jar (no redirect followed); `form`: POSTed,
/// each pair URL-encoded; `bearer`: an API token.
fn request(
    server: &Server,
    jar: &Path,
    path: &str,
    form: Option<&[(&str, &str)]>,
    bearer: Option<&str>,
) -> Reply {
    let mut c = Command::new("curl");
    c.args(["-s", "-g", "-w", "\n%{http_code} %{redirect_url}", "-c"])
        .arg(jar)
        .arg("-b")
        .arg(jar);
    if let Some(t) = bearer {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(pairs) = form {
        if pairs.is_empty() {
            c.args(["-X", "POST"]);
        }
        for (k, v) in pairs {
            c.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
    }
    let out = c
        .arg(format!("http://127.0.0.1:{}{path}", server.http_port))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (code, location) = tail.split_once(' ').unwrap();
    let location = Some(location.trim()).filter(|l| !l.is_empty()).map(|l| {
        l.strip_prefix(&format!("http://127.0.0.1:{}", server.http_port))
            .unwrap_or(l)
            .to_string()
    });
    Reply {
        code: code.parse().unwrap(),
        location,
        body: body.to_string(),
    }
}

/// A signed-in cookie jar for `key`'s user.
fn sign_in(server: &Server, key: &Key, jar: &Path) {
    let r = request(server, jar, &login_link(server, key), None, None);
    assert_eq!(
        (r.code, r.location.as_deref()),
        (303, Some("/")),
        "{}",
        r.body
    );
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the input named `name` in `page` (maud writes `name` before `value`).
fn input_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no input {name} in {page}"))
        + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    unescape(&page[start..end])
}

/// The text of the text area named `name` (the newline after its tag is the parser's).
fn textarea(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no text area {name} in {page}"));
    let start = page[at..].find('>').unwrap() + at + 1;
    let end = page[start..].find("</textarea>").unwrap() + start;
    let text = unescape(&page[start..end]);
    text.strip_prefix('\n').unwrap_or(&text).to_string()
}

/// Every field of the editor form in `page`, as a browser would send them.
fn form_of(page: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for name in ["csrf", "repo", "sha", "keys", "path"] {
        pairs.push((name.to_string(), input_value(page, name)));
    }
    for name in [
        "f.title",
        "f.category",
        "f.owner",
        "f.tags",
        "f.slug",
        "summary",
    ] {
        pairs.push((name.to_string(), input_value(page, name)));
    }
    // The selected status (maud writes `selected` after `value`).
    let status = page
        .split("<option ")
        .filter(|o| o.split('>').next().unwrap_or("").contains(" selected"))
        .find_map(|o| o.split("value=\"").nth(1)?.split('"').next())
        .unwrap_or("")
        .to_string();
    pairs.push(("f.status".into(), status));
    for name in ["f.description", "other", "body", "message"] {
        pairs.push((name.to_string(), textarea(page, name)));
    }
    pairs
}

fn set(pairs: &mut [(String, String)], name: &str, value: &str) {
    pairs
        .iter_mut()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1 = value.to_string();
}

fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn changes(server: &Server) -> i64 {
    server.count("SELECT count(*) FROM changes")
}

/// The change a 303 names.
fn change_of(location: Option<&str>) -> i64 {
    let l = location.expect("a redirect");
    let rest = l
        .strip_prefix("/changes/")
        .unwrap_or_else(|| panic!("not a change: {l}"));
    rest.split('?').next().unwrap().parse().unwrap()
}

/// A change's commit fetched with git: (author and committer, the file at `path`).
fn fetched(git: &Git, dir: &Path, number: i64, path: &str) -> (String, String) {
    git.ok(
        dir,
        &[
            "fetch",
            "-q",
            "origin",
            &format!("refs/changes/{number}/head"),
        ],
    );
    let who = git
        .ok(
            dir,
            &["log", "-1", "--format=%an <%ae>|%cn <%ce>", "FETCH_HEAD"],
        )
        .trim()
        .to_string();
    let file = git.ok(dir, &["show", &format!("FETCH_HEAD:{path}")]);
    (who, file)
}

/// Bob changes `path` through the contents API and publishes it at once (the
/// template's rules need no approval): `main` moves under an open editor.
fn published_meanwhile(
    server: &Server,
    bob_token: &str,
    path: &str,
    edit: impl Fn(&str) -> String,
) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let api = |method: &str, url: &str, body: Option<Value>| -> Value {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Command::new("curl");
        c.args(["-s", "-g", "-X", method])
            .args(["-H", &format!("Authorization: Bearer {bob_token}")]);
        if let Some(b) = body {
            let f = tmp.path().join("b.json");
            std::fs::write(&f, b.to_string()).unwrap();
            c.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(format!("@{}", f.display()));
        }
        let out = c
            .arg(format!("http://127.0.0.1:{}{url}", server.http_port))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let file = api("GET", &format!("/api/repos/skills/contents/{path}"), None);
    let text = String::from_utf8(b64.decode(file["content"].as_str().unwrap()).unwrap()).unwrap();
    let done = api(
        "POST",
        "/api/repos/skills/changes",
        Some(json!({
            "title": "Bob's edit",
            "publish": true,
            "files": [{"operation": "update", "path": path, "sha": file["sha"],
                       "content": b64.encode(edit(&text))}]
        })),
    );
    assert_eq!(done["published"], true, "{done}");
}

/// alice (writer, with a profile), bob (writer, with a write token), rita (reader).
fn team(server: &Server) -> (Key, Key, String, Key) {
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    let rita = server.add_user("rita", "reader");
    ssh(
        server,
        &alice,
        "profile --name Alice Liddell --email alice@example.com",
    );
    let bob_token = token(server, &bob, "--write --name bob");
    (alice, bob, bob_token, rita)
}

#[test]
fn the_editor_forms_work_without_javascript() {
    let server = Server::start_with(true);
    let (alice, _bob, bob_token, rita) = team(&server);
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let original = std::fs::read_to_string(dir.join(PATH)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let jar = tmp.path().join("alice");
    sign_in(&server, &alice, &jar);

    // The skill's page and the list offer the buttons to a writer.
    let skill_page = request(&server, &jar, &format!("/skills/{SLUG}"), None, None);
    assert!(
        skill_page.body.contains("id=\"edit\""),
        "{}",
        skill_page.body
    );
    assert!(skill_page.body.contains("id=\"archive\""));
    let list = request(&server, &jar, "/skills", None, None);
    assert!(list.body.contains("id=\"new-skill\""));

    // The form: the schema's fields filled from the file, the blob id, the body.
    let page = request(&server, &jar, &format!("/skills/{SLUG}/edit"), None, None);
    assert_eq!(page.code, 200, "{}", page.body);
    let sha = input_value(&page.body, "sha");
    assert_eq!(
        sha,
        git.ok(&dir, &["rev-parse", &format!("HEAD:{PATH}")]).trim()
    );
    assert_eq!(
        input_value(&page.body, "f.title"),
        "Write a good commit message"
    );
    assert_eq!(input_value(&page.body, "f.tags"), "git, writing");
    assert!(
        page.body.contains("<option value=\"PUBLISHED\" selected>"),
        "{}",
        page.body
    );
    let body = textarea(&page.body, "body");
    assert!(original.ends_with(&body), "{body:?}");
    assert!(page.body.contains("src=\"/static/editor.js\""));
    assert!(page.body.contains("id=\"preview\""));

    // A broken field: the form again (422) with the problem and the user's text.
    let mut form = form_of(&page.body);
    let typed_body = format!("{body}- Say what you tested.\n");
    set(&mut form, "body", &typed_body);
    set(&mut form, "f.title", "");
    set(&mut form, "f.slug", "Not A Slug");
    let r = request(&server, &jar, "/edit", Some(&borrowed(&form)), None);
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(r.body.contains("data-field=\"title\""), "{}", r.body);
    assert!(r.body.contains("data-field=\"slug\""), "{}", r.body);
    assert!(r.body.contains("hint:"), "{}", r.body);
    assert_eq!(
        textarea(&r.body, "body"),
        typed_body,
        "the user's text is kept"
    );
    assert_eq!(input_value(&r.body, "f.slug"), "Not A Slug");
    assert_eq!(changes(&server), 0, "nothing was proposed");

    // Fixed: 303 to the change; the commit is Alice's, with exactly the one line
    // of the frontmatter changed and the body as typed.
    set(&mut form, "f.title", "Write a clear commit message");
    set(&mut form, "f.slug", "");
    set(&mut form, "summary", "Say what was tested");
    let r = request(&server, &jar, "/edit", Some(&borrowed(&form)), None);
    assert_eq!(r.code, 303, "{}", r.body);
    let edited = change_of(r.location.as_deref());
    let (who, file) = fetched(&git, &dir, edited, PATH);
    assert_eq!(
        who,
        "Alice Liddell <alice@example.com>|Alice Liddell <alice@example.com>"
    );
    let expected = original
        .replace(
            "title: Write a good commit message",
            "title: Write a clear commit message",
        )
        .replace(&body, &typed_body);
    assert_eq!(file, expected);
    let page_of_change = request(&server, &jar, r.location.as_deref().unwrap(), None, None);
    assert!(page_of_change.body.contains("Say what was tested"));

    // A conflict: Bob publishes an edit of the same file meanwhile; saving the form
    // opened before says so, shows the difference, keeps the text, and carries the
    // new blob id, so that saving again goes through.
    let page = request(&server, &jar, &format!("/skills/{SLUG}/edit"), None, None);
    let mut form = form_of(&page.body);
    let mine = format!("{body}- Mine: keep the subject short.\n");
    set(&mut form, "body", &mine);
    published_meanwhile(&server, &bob_token, PATH, |t| {
        t.replace(
            "- Body: explain",
            "- Bob: link the ticket.\n- Body: explain",
        )
    });
    let r = request(&server, &jar, "/edit", Some(&borrowed(&form)), None);
    assert_eq!(r.code, 409, "{}", r.body);
    assert!(r.body.contains("changed since you opened it"), "{}", r.body);
    assert!(r.body.contains("id=\"stale-diff\""));
    assert!(
        r.body.contains(
            "<div class=\"add\"><span class=\"sign\">+</span>- Bob: link the ticket.</div>"
        ),
        "{}",
        r.body
    );
    assert_eq!(textarea(&r.body, "body"), mine, "the user's text is kept");
    let new_sha = input_value(&r.body, "sha");
    git.ok(&dir, &["pull", "-q", "origin", "main"]);
    assert_eq!(
        new_sha,
        git.ok(&dir, &["rev-parse", &format!("HEAD:{PATH}")]).trim()
    );
    assert_ne!(new_sha, sha);
    let before = changes(&server);
    let again = form_of(&r.body);
    let r = request(&server, &jar, "/edit", Some(&borrowed(&again)), None);
    assert_eq!(r.code, 303, "{}", r.body);
    assert_eq!(changes(&server), before + 1);
    let (_, file) = fetched(&git, &dir, change_of(r.location.as_deref()), PATH);
    assert!(file.ends_with(&mine), "{file}");

    // A new skill: its path asked for, checked against the layout.
    let page = request(&server, &jar, "/edit/new", None, None);
    assert_eq!(page.code, 200, "{}", page.body);
    assert_eq!(input_value(&page.body, "path"), "skills/");
    let csrf = input_value(&page.body, "csrf");
    let new_skill = |path: &str, title: &str| -> Reply {
        request(
            &server,
            &jar,
            "/edit",
            Some(&[
                ("csrf", &csrf),
                ("repo", "skills"),
                ("sha", ""),
                ("keys", "[]"),
                ("path", path),
                ("f.title", title),
                ("f.tags", "ops, first-aid"),
                ("f.status", "DRAFT"),
                ("body", "# First aid\r\n\r\nStop the bleeding first.\r\n"),
            ]),
            None,
        )
    };
    let before = changes(&server);
    let r = new_skill("docs/first-aid.md", "First aid");
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(r.body.contains("is not where a skill goes"), "{}", r.body);
    let r = new_skill("skills/../first-aid.md", "First aid");
    assert_eq!(r.code, 400, "{}", r.body);
    let r = new_skill(PATH, "First aid");
    assert_eq!(r.code, 409, "{}", r.body);
    assert!(r.body.contains("exists already"), "{}", r.body);
    assert_eq!(changes(&server), before);
    let r = new_skill("skills/ops/first-aid.md", "First aid");
    assert_eq!(r.code, 303, "{}", r.body);
    let (who, file) = fetched(
        &git,
        &dir,
        change_of(r.location.as_deref()),
        "skills/ops/first-aid.md",
    );
    assert!(who.starts_with("Alice Liddell <alice@example.com>|"));
    assert_eq!(
        file,
        "---\ntitle: First aid\ntags: [ops, first-aid]\nstatus: DRAFT\n---\n# First aid\n\nStop the bleeding first.\n"
    );

    // Archive: the status set through the same path, nothing else changed.
    let other = "skills/getting-started/write-a-skill.md";
    let page = request(&server, &jar, "/skills/write-a-skill", None, None);
    let archive_sha = input_value(&page.body, "sha");
    let r = request(
        &server,
        &jar,
        "/edit/archive",
        Some(&[
            ("csrf", &csrf),
            ("repo", "skills"),
            ("path", other),
            ("sha", &archive_sha),
        ]),
        None,
    );
    assert_eq!(r.code, 303, "{}", r.body);
    let archived = change_of(r.location.as_deref());
    let (who, file) = fetched(&git, &dir, archived, other);
    assert!(who.starts_with("Alice Liddell <alice@example.com>|"));
    let before_file = std::fs::read_to_string(dir.join(other)).unwrap();
    let status_line = before_file
        .lines()
        .find(|l| l.starts_with("status:"))
        .map(|l| format!("{l}\n"));
    let expected = match status_line {
        Some(l) => before_file.replace(&l, "status: ARCHIVED\n"),
        None => before_file.replacen("\n---\n", "\nstatus: ARCHIVED\n---\n", 1),
    };
    assert_eq!(file, expected);
    let change_page = request(&server, &jar, &format!("/changes/{archived}"), None, None);
    assert!(
        change_page.body.contains("Archive "),
        "{}",
        change_page.body
    );

    // Refusals, each with nothing proposed.
    let before = changes(&server);
    let page = request(&server, &jar, &format!("/skills/{SLUG}/edit"), None, None);
    let mut form = form_of(&page.body);
    set(&mut form, "f.title", "Forged");
    // No CSRF token, or a wrong one: 403.
    let no_csrf: Vec<(&str, &str)> = borrowed(&form)
        .into_iter()
        .filter(|(k, _)| *k != "csrf")
        .collect();
    let r = request(&server, &jar, "/edit", Some(&no_csrf), None);
    assert_eq!(r.code, 403, "{}", r.body);
    let mut wrong = form.clone();
    set(&mut wrong, "csrf", &"0".repeat(64));
    let r = request(&server, &jar, "/edit", Some(&borrowed(&wrong)), None);
    assert_eq!(r.code, 403, "{}", r.body);
    // No session: 401.
    let nobody = tmp.path().join("nobody");
    let r = request(&server, &nobody, "/edit", Some(&borrowed(&form)), None);
    assert_eq!(r.code, 401, "{}", r.body);
    let r = request(
        &server,
        &nobody,
        &format!("/skills/{SLUG}/edit"),
        None,
        None,
    );
    assert_eq!(r.code, 401, "{}", r.body);
    // A reader: no buttons, no form, and their own CSRF token does not help.
    let rita_jar = tmp.path().join("rita");
    sign_in(&server, &rita, &rita_jar);
    let r = request(&server, &rita_jar, &format!("/skills/{SLUG}"), None, None);
    assert_eq!(r.code, 200);
    assert!(!r.body.contains("id=\"edit\"") && !r.body.contains("id=\"archive\""));
    assert!(
        !request(&server, &rita_jar, "/skills", None, None)
            .body
            .contains("id=\"new-skill\"")
    );
    let r = request(
        &server,
        &rita_jar,
        &format!("/skills/{SLUG}/edit"),
        None,
        None,
    );
    assert_eq!(r.code, 403, "{}", r.body);
    let rita_csrf = input_value(&request(&server, &rita_jar, "/", None, None).body, "csrf");
    let mut forged = form.clone();
    set(&mut forged, "csrf", &rita_csrf);
    let r = request(&server, &rita_jar, "/edit", Some(&borrowed(&forged)), None);
    assert_eq!(r.code, 403, "{}", r.body);
    assert!(r.body.contains("read-only"), "{}", r.body);
    let r = request(
        &server,
        &rita_jar,
        "/edit/archive",
        Some(&[("csrf", &rita_csrf), ("path", PATH), ("sha", &new_sha)]),
        None,
    );
    assert_eq!(r.code, 403, "{}", r.body);
    // A read-only API token, with the CSRF token a page shows it: 403.
    let read_only = token(&server, &alice, "--name reading");
    let bare = tmp.path().join("bare");
    let token_csrf = input_value(
        &request(&server, &bare, "/", None, Some(&read_only)).body,
        "csrf",
    );
    let mut with_token = form.clone();
    set(&mut with_token, "csrf", &token_csrf);
    let r = request(
        &server,
        &bare,
        "/edit",
        Some(&borrowed(&with_token)),
        Some(&read_only),
    );
    assert_eq!(r.code, 403, "{}", r.body);
    assert_eq!(
        changes(&server),
        before,
        "no refused form proposed anything"
    );

    // The preview the script asks for: the composed file and the body rendered with
    // raw HTML as text.
    let mut form = form_of(&page.body);
    set(&mut form, "body", "# Hi\n\n<script>alert(1)</script>\n");
    let r = request(&server, &jar, "/edit/preview", Some(&borrowed(&form)), None);
    assert_eq!(r.code, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["path"], PATH);
    assert!(
        v["content"]
            .as_str()
            .unwrap()
            .ends_with("---\n# Hi\n\n<script>alert(1)</script>\n")
    );
    assert!(
        v["html"].as_str().unwrap().contains("&lt;script&gt;"),
        "{v}"
    );
    assert!(!v["html"].as_str().unwrap().contains("<script"), "{v}");
}

/// Where `scripts/deps` put selenium (PyPI), next to Node.js and the `skills` CLI.
fn tools() -> PathBuf {
    match std::env::var_os("SKILLSD_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/skillsd-test-tools"),
    }
}

#[test]
fn a_real_browser_edits_proposes_and_meets_a_conflict() {
    let selenium = tools().join("selenium");
    assert!(
        selenium.join("selenium").is_dir() && Path::new("/usr/bin/chromedriver").is_file(),
        "selenium (under {}) or /usr/bin/chromedriver is missing: run scripts/deps",
        selenium.display()
    );
    let server = Server::start_with(true);
    let (alice, _bob, bob_token, rita) = team(&server);
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let original = std::fs::read_to_string(dir.join(PATH)).unwrap();
    let before_main = git.head(&dir);
    let out_dir = tempfile::tempdir().unwrap();
    let report = out_dir.path().join("report.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/editor_web.py");
    let out = Command::new("timeout")
        .arg("300")
        .arg("/usr/bin/python3")
        .arg(&script)
        .env("PYTHONPATH", &selenium)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SE_OFFLINE", "true")
        .env("BASE", format!("http://127.0.0.1:{}", server.http_port))
        .env("ALICE_LOGIN", login_link(&server, &alice))
        .env("RITA_LOGIN", login_link(&server, &rita))
        .env("BOB_TOKEN", &bob_token)
        .env("SKILL_SLUG", SLUG)
        .env("SKILL_PATH", PATH)
        .env("NEW_TITLE", "Write a clear commit message")
        .env("ARCHIVE_SLUG", "write-a-skill")
        .env("ARCHIVE_TITLE", "Write a skill")
        .env("REPORT", &report)
        .env("HOME", out_dir.path())
        .output()
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser script failed:\n{log}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    println!("{log}\n{v}");

    // Each change the browser made is Alice's commit, as her profile says.
    let alice_is = "Alice Liddell <alice@example.com>|Alice Liddell <alice@example.com>";
    let (who, file) = fetched(&git, &dir, v["edited"].as_i64().unwrap(), PATH);
    assert_eq!(who, alice_is);
    assert!(
        file.contains("title: Write a clear commit message\n"),
        "{file}"
    );
    assert!(file.ends_with("- Say what you tested.\n"), "{file}");
    assert_eq!(
        file.lines().filter(|l| !original.contains(l)).count(),
        2,
        "only the title and the new line: {file}"
    );
    let (who, file) = fetched(
        &git,
        &dir,
        v["created"].as_i64().unwrap(),
        "skills/ops/first-aid.md",
    );
    assert_eq!(who, alice_is);
    assert!(file.starts_with("---\ntitle: First aid\n"), "{file}");
    let (who, file) = fetched(
        &git,
        &dir,
        v["archived"].as_i64().unwrap(),
        "skills/getting-started/write-a-skill.md",
    );
    assert_eq!(who, alice_is);
    assert!(file.contains("\nstatus: ARCHIVED\n"), "{file}");
    let (who, file) = fetched(&git, &dir, v["conflict"].as_i64().unwrap(), PATH);
    assert_eq!(who, alice_is);
    assert!(file.contains("- Mine: keep the subject short."), "{file}");
    // Only Bob's publish moved main; the reader's forged post proposed nothing.
    git.ok(&dir, &["fetch", "-q", "origin"]);
    assert_eq!(
        git.ok(
            &dir,
            &[
                "rev-list",
                "--count",
                &format!("{before_main}..origin/main")
            ]
        )
        .trim(),
        "1"
    );
    assert_eq!(changes(&server), 5, "alice's four and bob's one");
}

#[test]
fn the_agent_skills_layout_gets_its_own_fields_paths_and_archive() {
    let server = Server::start_with(true);
    let root = server.add_user("root", "admin");
    let (alice, _bob, _bob_token, _rita) = team(&server);
    // An admin moves the repository to the Agent Skills layout (a direct push).
    let admin = Git::new(common::GIT_NEW, &root, &server);
    let dir = admin.clone(&server.url("skills.git"), &[]);
    admin.ok(&dir, &["rm", "-q", "-r", "skills"]);
    let config = "layout = \"agent-skills\"\nroots = [\"skills\"]\nschema = \"rules/agent-skills.schema.json\"\n";
    let pdf = "---\nname: pdf\ndescription: Fill PDF forms. Use when asked to fill a PDF.\nlicense: MIT\nmetadata:\n  owner: docs-team\n  status: PUBLISHED\n---\n# PDF\n\nOpen it, fill it.\n";
    admin.commit_files(
        &dir,
        &[("skillsd.toml", config), ("skills/pdf/SKILL.md", pdf)],
        "agent skills",
    );
    admin.ok(&dir, &["push", "-q", "origin", "main"]);
    let tmp = tempfile::tempdir().unwrap();
    let jar = tmp.path().join("alice");
    sign_in(&server, &alice, &jar);

    // The schema's fields; `metadata` (a mapping) kept as YAML.
    let page = request(&server, &jar, "/skills/pdf/edit", None, None);
    assert_eq!(page.code, 200, "{}", page.body);
    assert_eq!(input_value(&page.body, "f.name"), "pdf");
    assert_eq!(input_value(&page.body, "f.license"), "MIT");
    assert!(!page.body.contains("name=\"f.title\""));
    assert_eq!(
        textarea(&page.body, "other"),
        "metadata:\n  owner: docs-team\n  status: PUBLISHED\n"
    );
    let csrf = input_value(&page.body, "csrf");
    let sha = input_value(&page.body, "sha");

    // A new skill is a folder with its SKILL.md.
    let page = request(&server, &jar, "/edit/new", None, None);
    assert!(
        page.body.contains("skills/&lt;name&gt;/SKILL.md"),
        "{}",
        page.body
    );
    let create = |path: &str| {
        request(
            &server,
            &jar,
            "/edit",
            Some(&[
                ("csrf", csrf.as_str()),
                ("sha", ""),
                ("path", path),
                ("f.name", "ocr"),
                (
                    "f.description",
                    "Read text from scans. Use for scanned PDFs.",
                ),
                ("other", "metadata:\n  owner: docs-team\n"),
                ("body", "# OCR\n"),
            ]),
            None,
        )
    };
    let r = create("skills/ocr.md");
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(r.body.contains("SKILL.md"), "{}", r.body);
    let r = create("skills/ocr/SKILL.md");
    assert_eq!(r.code, 303, "{}", r.body);
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let clone = git.clone(&server.url("skills.git"), &[]);
    let (_, file) = fetched(
        &git,
        &clone,
        change_of(r.location.as_deref()),
        "skills/ocr/SKILL.md",
    );
    assert_eq!(
        file,
        "---\nname: ocr\ndescription: Read text from scans. Use for scanned PDFs.\nmetadata:\n  owner: docs-team\n---\n# OCR\n"
    );

    // Archive sets `metadata.status`, keeping the mapping's other keys.
    let r = request(
        &server,
        &jar,
        "/edit/archive",
        Some(&[
            ("csrf", csrf.as_str()),
            ("path", "skills/pdf/SKILL.md"),
            ("sha", sha.as_str()),
        ]),
        None,
    );
    assert_eq!(r.code, 303, "{}", r.body);
    let (who, file) = fetched(
        &git,
        &clone,
        change_of(r.location.as_deref()),
        "skills/pdf/SKILL.md",
    );
    assert!(
        who.starts_with("Alice Liddell <alice@example.com>|"),
        "{who}"
    );
    assert_eq!(file, pdf.replace("status: PUBLISHED", "status: ARCHIVED"));
}
