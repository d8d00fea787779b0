//! Review before publishing, from the HTTP side: a change opened with the real git over
//! the real SSH client, then read through the JSON API (`/api/changes`,
//! `/api/changes/{n}`, `/api/skills?status=IN_REVIEW`) and the pages (`/changes`,
//! `/changes/{n}` in headless chromium: the diff shown, a hostile body escaped and run
//! by nothing), and approved and merged through the pages' forms by a second writer —
//! with the session's CSRF token, the same rules as over SSH (the author's own
//! approval and a reader's refused with the reason), and the merge published.

use crate::common;

use common::{Git, Key, Server, assert_contains_all};
use std::path::Path;
use std::process::Command;

/// The server's `main`, from the database.
fn main_tip(server: &Server) -> String {
    server.query(async {
        sqlx::query_scalar::<_, String>(
            "SELECT target FROM git_refs WHERE repo = 'skills' AND name = 'refs/heads/main'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap()
    })
}

/// An admin switches review on (a direct push: admins may), keeping the template's rules.
fn review_on(server: &Server, root: &Key) {
    let git = Git::new(common::GIT_NEW, root, server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let mut config = std::fs::read_to_string(dir.join("skillsd.toml")).unwrap();
    config.push_str("\n[review]\nrequired_approvals = 1\n");
    git.commit_files(&dir, &[("skillsd.toml", config)], "review on");
    git.ok(&dir, &["push", "-q", "origin", "main"]);
}

fn push_change(git: &Git, dir: &Path, options: &[&str]) -> (bool, String) {
    let mut args = vec!["push"];
    for o in options {
        args.push("-o");
        args.push(o);
    }
    args.extend(["origin", "HEAD:refs/for/main"]);
    let (ok, _, err) = git.run(dir, &args);
    (ok, err)
}

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

/// A request with curl and a cookie jar (no redirect followed): (status, `Location`,
/// body). `form`: POST it.
fn request(
    server: &Server,
    jar: &Path,
    path: &str,
    form: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-g", "-w", "\n%{http_code} %{redirect_url}", "-c"])
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
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (code, location) = tail.split_once(' ').unwrap();
    let location = Some(location.trim()).filter(|l| !l.is_empty()).map(|l| {
        l.strip_prefix(&format!("http://127.0.0.1:{}", server.http_port))
            .unwrap_or(l)
            .to_string()
    });
    (code.parse().unwrap(), location, body.to_string())
}

/// (status, JSON) of a GET on the API.
fn api(server: &Server, path: &str) -> (u16, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, body) = request(server, &tmp.path().join("jar"), path, None);
    let v =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
    (code, v)
}

/// A signed-in browser's cookie jar for `key`'s user (a `web-login` link opened).
fn sign_in(server: &Server, key: &Key, jar: &Path) {
    let out = common::ssh_to(key, server.port)
        .arg("web-login")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let token = text
        .split("token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no link in {text}"))
        .trim()
        .to_string();
    let (code, location, body) = request(server, jar, &format!("/login?token={token}"), None);
    assert_eq!((code, location.as_deref()), (303, Some("/")), "{body}");
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

const HOSTILE: &str = "---\ntitle: Hostile\n---\n# Hostile\n\n<script>document.body.setAttribute('data-pwned','body')</script>\n\n<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">\n";

const OLD_LINE: &str = "- Reference the issue the change belongs to.";
const NEW_LINE: &str = "- Reference the issue, and the change it follows up on.";

#[test]
fn changes_through_the_json_api_the_pages_and_their_forms() {
    let server = Server::start_with(true);
    let root = server.add_user("root", "admin");
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    let rita = server.add_user("rita", "reader");
    review_on(&server, &root);
    let before = main_tip(&server);

    // alice proposes an edit of a published skill and a new, hostile one.
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let path = "skills/git/commit-messages.md";
    let edited = std::fs::read_to_string(dir.join(path))
        .unwrap()
        .replace(OLD_LINE, NEW_LINE)
        .replace("tags: [git, writing]", "tags: [git, writing, review]")
        .replace(
            "description: A short subject line, a blank line, then why the change was made.",
            "description: A short subject, a blank line, then why.",
        );
    git.commit_files(
        &dir,
        &[(path, edited.as_str()), ("skills/web/hostile.md", HOSTILE)],
        "Sharper commit messages",
    );
    let head = git.head(&dir);
    let (ok, err) = push_change(
        &git,
        &dir,
        &[
            "topic=sharper",
            "description=Why: <b>clearer</b> history.\\nSecond line.",
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("change 1 opened"), "{err}");
    assert_eq!(main_tip(&server), before);

    // The list.
    let (code, list) = api(&server, "/api/changes");
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    let c = &list["changes"][0];
    assert_eq!(c["number"], 1);
    assert_eq!(c["repo"], "skills");
    assert_eq!(c["target"], "main");
    assert_eq!(c["title"], "Sharper commit messages");
    assert_eq!(c["author"], "alice");
    assert_eq!(c["topic"], "sharper");
    assert_eq!(c["state"], "IN_REVIEW");
    assert_eq!(c["patchSets"], 1);
    assert!(
        c["createdAt"].is_string() && c["updatedAt"].is_string(),
        "{c}"
    );
    assert!(c["closedBy"].is_null() && c["closedAt"].is_null() && c["mergedCommit"].is_null());
    assert_eq!(
        api(&server, "/api/changes?state=all&repo=skills.git").1["total"],
        1
    );
    assert_eq!(api(&server, "/api/changes?state=in-review").1["total"], 1);
    assert_eq!(api(&server, "/api/changes?state=merged").1["total"], 0);
    assert_eq!(
        api(&server, "/api/changes?page=2&limit=1").1["changes"],
        serde_json::json!([])
    );
    for bad in [
        "/api/changes?state=bogus",
        "/api/changes?limit=0",
        "/api/changes?limit=201",
        "/api/changes?page=0",
        "/api/changes/abc",
    ] {
        let (code, body) = api(&server, bad);
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    let (code, body) = api(&server, "/api/changes?state=bogus");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("state must be one of"),
        "{code} {body}"
    );
    let (code, body) = api(&server, "/api/changes/99");
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("no change 99 in skills"))
    );

    // One change: its patch sets, reviews, what it needs, its skills as diffs.
    let (code, one) = api(&server, "/api/changes/1");
    assert_eq!(code, 200, "{one}");
    assert_eq!(
        one["description"],
        "Why: <b>clearer</b> history.\nSecond line."
    );
    assert_eq!(one["patchSets"][0]["number"], 1);
    assert_eq!(one["patchSets"][0]["commit"], head.as_str());
    assert_eq!(one["patchSets"][0]["base"], before.as_str());
    assert_eq!(one["patchSets"][0]["pushedBy"], "alice");
    assert_eq!(one["reviews"], serde_json::json!([]));
    assert_eq!(one["mergeable"], false);
    let needs = one["needs"].as_array().unwrap();
    assert!(
        needs
            .iter()
            .any(|n| n.as_str().unwrap().contains("1 of 1 approval")),
        "{one}"
    );
    let skills = one["skills"].as_array().unwrap();
    assert_eq!(skills.len(), 2, "{one}");
    let updated = &skills[0];
    assert_eq!(updated["slug"], "commit-messages");
    assert_eq!(updated["path"], path);
    assert_eq!(updated["operation"], "update");
    assert_eq!(updated["title"], "Write a good commit message");
    let names: Vec<&str> = updated["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["description", "tags"], "{updated}");
    assert_eq!(
        updated["fields"][1],
        serde_json::json!({"name": "tags", "old": ["git", "writing"], "new": ["git", "writing", "review"]})
    );
    let diff = updated["diff"].as_array().unwrap();
    assert!(
        diff.contains(&serde_json::json!({"kind": "removed", "line": OLD_LINE})),
        "{updated}"
    );
    assert!(
        diff.contains(&serde_json::json!({"kind": "added", "line": NEW_LINE})),
        "{updated}"
    );
    assert!(
        diff.contains(
            &serde_json::json!({"kind": "same", "line": "# Write a good commit message"})
        )
    );
    assert_eq!(
        diff.iter().filter(|l| l["kind"] != "same").count(),
        2,
        "{updated}"
    );
    let created = &skills[1];
    assert_eq!(created["slug"], "hostile");
    assert_eq!(created["operation"], "create");
    assert!(created["oldPath"].is_null());
    assert!(created["warnings"].is_array());
    assert!(
        created["diff"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["kind"] == "added")
    );
    assert_eq!(
        created["fields"][0],
        serde_json::json!({"name": "title", "old": null, "new": "Hostile"})
    );

    // The proposed skills, where the seed's status filter looks for them.
    let (code, proposed) = api(&server, "/api/skills?status=IN_REVIEW");
    assert_eq!(code, 200, "{proposed}");
    assert_eq!(proposed["total"], 2, "{proposed}");
    let hostile = proposed["skills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slug"] == "hostile")
        .unwrap_or_else(|| panic!("{proposed}"));
    assert_eq!(hostile["operation"], "create");
    assert_eq!(hostile["path"], "skills/web/hostile.md");
    assert_eq!(hostile["title"], "Hostile");
    assert_eq!(hostile["status"], "IN_REVIEW");
    assert_eq!(
        hostile["change"],
        serde_json::json!({"number": 1, "title": "Sharper commit messages", "author": "alice", "state": "IN_REVIEW"})
    );
    assert_eq!(
        api(&server, "/api/skills?status=IN_REVIEW&q=hostile").1["total"],
        1
    );
    assert_eq!(
        api(&server, "/api/skills?status=IN_REVIEW&tag=review").1["skills"][0]["slug"],
        "commit-messages"
    );
    assert_eq!(api(&server, "/api/skills?status=DRAFT").1["total"], 0);
    assert_eq!(
        api(&server, "/api/skills?status=IN_REVIEW&limit=500").0,
        400
    );
    // PUBLISHED is still the cache's.
    let published = api(&server, "/api/skills?status=PUBLISHED").1;
    assert!(
        published["skills"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["slug"] != "hostile"),
        "{published}"
    );
    assert!(
        published["skills"][0]["syncStatus"].is_string(),
        "{published}"
    );

    // The pages, in a real browser: the list, the change, nothing of the hostile body runs.
    let listed = dom(&server, "/changes");
    assert_contains_all(
        &listed,
        &[
            "Sharper commit messages",
            "href=\"/changes/1\"",
            "in review",
            "alice",
            "1 change<",
        ],
    );
    assert!(
        listed.contains("<a href=\"/changes\">Changes</a>"),
        "the navigation links the changes"
    );
    // The skills page's IN_REVIEW is its JSON twin's: the proposed skills, with their change.
    let proposed = dom(&server, "/skills?status=IN_REVIEW");
    assert_contains_all(
        &proposed,
        &[
            "id=\"proposed-note\"",
            "2 skills<",
            "href=\"/changes/1#skill-hostile\"",
            "#1 Sharper commit messages",
        ],
    );
    let none = dom(&server, "/changes?state=merged");
    assert!(none.contains("id=\"empty\""), "{none}");
    let tmp = tempfile::tempdir().unwrap();
    let anonymous = tmp.path().join("anonymous");
    assert_eq!(
        request(&server, &anonymous, "/changes?state=bogus", None).0,
        400
    );
    assert_eq!(request(&server, &anonymous, "/changes/99", None).0, 404);

    let page = dom(&server, "/changes/1");
    assert_contains_all(
        &page,
        &[
            "Sharper commit messages",
            "git fetch origin refs/changes/1/head",
            "1 of 1 approval",
            "Why: &lt;b&gt;clearer&lt;/b&gt; history.\nSecond line.",
            // The body as a diff: the removed and the added line, marked.
            &format!("<div class=\"del\"><span class=\"sign\">-</span>{OLD_LINE}</div>"),
            &format!("<div class=\"add\"><span class=\"sign\">+</span>{NEW_LINE}</div>"),
            // The fields that changed, old → new.
            "<td class=\"del\">git, writing</td>",
            // The hostile body is text.
            "&lt;script&gt;document.body.setAttribute('data-pwned','body')&lt;/script&gt;",
            "&lt;img src=x onerror=",
        ],
    );
    assert!(!page.contains("data-pwned=\""), "something ran:\n{page}");
    assert!(!page.contains("<script>document"), "{page}");
    assert!(!page.contains("<b>clearer"), "{page}");
    // Nobody signed in: no form.
    assert!(!page.contains("name=\"csrf\""), "{page}");

    // The author, signed in: no approve form for their own change; the approval posted
    // anyway is refused with the reason, and nothing is stored.
    let alice_jar = tmp.path().join("alice");
    sign_in(&server, &alice, &alice_jar);
    let (code, _, page) = request(&server, &alice_jar, "/changes/1", None);
    assert_eq!(code, 200);
    assert!(page.contains("You wrote this change"), "{page}");
    assert!(!page.contains("value=\"approve\""), "{page}");
    assert!(page.contains("value=\"abandon\""), "{page}");
    let alice_csrf = csrf_of(&page);
    let (code, _, page) = request(
        &server,
        &alice_jar,
        "/changes/1/review",
        Some(&format!(
            "csrf={alice_csrf}&action=approve&message=mine&repo=skills"
        )),
    );
    assert_eq!(code, 403, "{page}");
    assert!(page.contains("you are the author of change 1"), "{page}");
    assert_eq!(server.count("SELECT count(*) FROM change_reviews"), 0);

    // A reader sees no review form and is refused one posted anyway.
    let rita_jar = tmp.path().join("rita");
    sign_in(&server, &rita, &rita_jar);
    let (_, _, page) = request(&server, &rita_jar, "/changes/1", None);
    assert!(
        !page.contains("value=\"approve\"") && !page.contains("value=\"merge\""),
        "{page}"
    );
    let rita_csrf = csrf_of(&page);
    let (code, _, page) = request(
        &server,
        &rita_jar,
        "/changes/1/review",
        Some(&format!("csrf={rita_csrf}&action=approve")),
    );
    assert_eq!(code, 403, "{page}");
    assert!(page.contains("read-only"), "{page}");

    // bob reviews: not without the session's form token, nor without signing in; a
    // rejection needs a reason; his approval (a multi-line message, as a browser sends
    // it) is stored and the page says so.
    let bob_jar = tmp.path().join("bob");
    sign_in(&server, &bob, &bob_jar);
    let (_, _, page) = request(&server, &bob_jar, "/changes/1", None);
    assert!(page.contains("id=\"review-form\""), "{page}");
    assert!(
        !page.contains("value=\"merge\""),
        "not mergeable yet: {page}"
    );
    let csrf = csrf_of(&page);
    let (code, _, page) = request(
        &server,
        &bob_jar,
        "/changes/1/review",
        Some("csrf=forged&action=approve"),
    );
    assert_eq!(code, 403, "{page}");
    assert!(page.contains("out of date"), "{page}");
    let (code, _, _) = request(
        &server,
        &anonymous,
        "/changes/1/review",
        Some("csrf=x&action=approve"),
    );
    assert_eq!(code, 401);
    let (code, _, page) = request(
        &server,
        &bob_jar,
        "/changes/1/review",
        Some(&format!("csrf={csrf}&action=reject&message=%20")),
    );
    assert_eq!(code, 400, "{page}");
    assert!(page.contains("say why"), "{page}");
    assert_eq!(server.count("SELECT count(*) FROM change_reviews"), 0);
    let (code, location, page) = request(
        &server,
        &bob_jar,
        "/changes/1/review",
        Some(&format!(
            "csrf={csrf}&action=approve&message=Looks%20good.%0D%0AShip%20it.&repo=skills"
        )),
    );
    assert_eq!(
        (code, location.as_deref()),
        (303, Some("/changes/1?done=approved")),
        "{page}"
    );
    let (verdict, message): (String, String) = server.query(async {
        sqlx::query_as("SELECT verdict, message FROM change_reviews WHERE reviewer = 'bob'")
            .fetch_one(&server.pool)
            .await
            .unwrap()
    });
    assert_eq!(
        (verdict.as_str(), message.as_str()),
        ("approve", "Looks good.\nShip it.")
    );
    let (code, _, page) = request(&server, &bob_jar, "/changes/1?done=approved", None);
    assert_eq!(code, 200);
    assert_contains_all(
        &page,
        &[
            "id=\"done\"",
            "Approved.",
            "Ready to merge.",
            "value=\"merge\"",
            "Looks good.\nShip it.",
        ],
    );
    let (_, one) = api(&server, "/api/changes/1");
    assert_eq!(one["mergeable"], true, "{one}");
    assert_eq!(one["needs"], serde_json::json!([]));
    assert_eq!(
        (
            one["reviews"][0]["reviewer"].as_str(),
            one["reviews"][0]["verdict"].as_str(),
            one["reviews"][0]["dismissed"].as_bool()
        ),
        (Some("bob"), Some("approve"), Some(false))
    );

    // The merge, from the page: main moves to alice's commit, the change is merged,
    // its skills published.
    let (code, location, page) = request(
        &server,
        &bob_jar,
        "/changes/1/review",
        Some(&format!("csrf={csrf}&action=merge&repo=skills")),
    );
    assert_eq!(
        (code, location.as_deref()),
        (303, Some("/changes/1?done=merged")),
        "{page}"
    );
    assert_eq!(main_tip(&server), head, "a fast-forward");
    assert_eq!(
        server.count("SELECT count(*) FROM changes WHERE number = 1 AND state = 'MERGED' AND closed_by = 'bob'"),
        1
    );
    assert_eq!(
        server.count("SELECT count(*) FROM skills WHERE slug = 'hostile' AND status = 'PUBLISHED'"),
        1
    );
    let (_, _, page) = request(&server, &bob_jar, "/changes/1?done=merged", None);
    assert_contains_all(
        &page,
        &[
            "Merged: its skills are published.",
            "data-state=\"MERGED\"",
            &head,
        ],
    );
    assert!(!page.contains("id=\"review-form\""), "{page}");
    let (_, list) = api(&server, "/api/changes?state=merged");
    assert_eq!(list["changes"][0]["mergedCommit"], head.as_str());
    assert_eq!(list["changes"][0]["closedBy"], "bob");
    assert_eq!(api(&server, "/api/changes").1["total"], 0);
    assert_eq!(api(&server, "/api/skills?status=IN_REVIEW").1["total"], 0);
    // A merged change takes nothing more.
    let (code, _, page) = request(
        &server,
        &bob_jar,
        "/changes/1/review",
        Some(&format!("csrf={csrf}&action=approve")),
    );
    assert_eq!(code, 409, "{page}");
    assert!(page.contains("change 1 is merged"), "{page}");
    server.assert_fsck("skills");
}
