//! What a newcomer following the README meets in the first hour (issue 32): admin
//! commands that would answer for a database no server reads, the push summary
//! without a terminal, the status pages on the defaults, `check` outside a skills
//! repository.

use crate::common;

use common::{Key, SKILLSD};
use std::path::Path;
use std::process::{Command, Output};

/// `skillsd ARGS` in `dir`, with no database or data dir named by the environment or
/// a config file: what a user in another folder gets.
fn skillsd_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(SKILLSD)
        .current_dir(dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SKILLSD_DATA_DIR")
        .env_remove("SKILLSD_CONFIG")
        .env("SKILLSD_LOG", "warn")
        .output()
        .unwrap()
}

/// In a folder without a data dir, every admin command is refused, names both ways to
/// point it at the server's data, and creates nothing: no `./data`, no cluster, no
/// folder named by `--data-dir` either.
#[test]
fn admin_commands_refuse_without_a_data_dir_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Key::generate("alice");
    let elsewhere = tmp.path().join("elsewhere");
    let key_path = key.public.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "user", "add", "alice", "--role", "writer", "--key", key_path,
        ],
        vec!["user", "list"],
        vec!["migrate"],
        vec!["reconcile"],
        vec!["init"],
        vec!["psql", "--", "-c", "SELECT 1"],
        vec!["ref", "list"],
        vec!["user", "list", "--data-dir", elsewhere.to_str().unwrap()],
    ];
    for args in cases {
        let out = skillsd_in(tmp.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("--data-dir DIR")
                && stderr.contains("--database-url URL")
                && stderr.contains("nothing was created"),
            "{args:?}: {stderr}"
        );
        assert!(!stdout.contains("can now connect"), "{args:?}: {stdout}");
        assert!(!tmp.path().join("data").exists(), "{args:?} created ./data");
        assert!(!elsewhere.exists(), "{args:?} created --data-dir");
    }
    // An existing folder that holds no cluster (a typo, or the wrong folder) is
    // refused the same way, and stays as it was.
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    let out = skillsd_in(tmp.path(), &["user", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("./data holds no skillsd database"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("data")).unwrap().count(),
        0,
        "something was created in ./data"
    );
}

/// `skillsd serve` on an SSH port it binds itself (read back from the banner) and this
/// test's database, with stdout (the banner) in a file; `http` are extra arguments
/// (none: the default pages address).
fn serve(env: &common::ChildEnv, name: &str, http: &[&str]) -> (std::process::Child, u16) {
    let banner = env.tmp.path().join(name);
    let mut child = Command::new(SKILLSD)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&env.data)
        .args(["--database-url", &env.db_url])
        .args(http)
        .env_remove("SKILLSD_HTTP")
        .env_remove("SKILLSD_CONFIG")
        .env("SKILLSD_LOG", "warn")
        .stdout(std::fs::File::create(&banner).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let port = common::read_banner(&banner, std::time::Duration::from_secs(60), || {
        child.try_wait().unwrap().is_none()
    })
    .ssh;
    common::wait_ready(port, std::time::Duration::from_secs(60));
    (child, port)
}

fn stop(mut child: std::process::Child) {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success());
}

/// `GET url`: (status code, body); status 0 when nothing answers.
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "10",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The status pages are on by default, on loopback at a fixed port, and the banner
/// prints the dashboard's address; `--http off` turns them off; the default address
/// taken (another skillsd) leaves the server running and the banner says so.
/// (The only test that uses the default address: every other server the tests start
/// has its own port or none.)
#[test]
fn the_status_pages_are_served_on_the_defaults() {
    let default = skillsd::config::DEFAULT_HTTP;
    assert_eq!(default.to_string(), "127.0.0.1:8080");
    let env = common::ChildEnv::new();

    // Taken: the server starts anyway, and says where the pages are not.
    let holder = std::net::TcpListener::bind(default)
        .expect("this test needs 127.0.0.1:8080 free (the default pages address)");
    let (child, _) = serve(&env, "taken", &[]);
    stop(child);
    let banner = std::fs::read_to_string(env.tmp.path().join("taken")).unwrap();
    assert!(
        banner.contains("  pages:  off: 127.0.0.1:8080 is taken (another skillsd?); place them with --http ADDR\n"),
        "{banner}"
    );
    drop(holder);

    // The defaults: the dashboard answers at the address the banner prints.
    let (child, _) = serve(&env, "banner", &[]);
    let banner = std::fs::read_to_string(env.tmp.path().join("banner")).unwrap();
    assert!(
        banner.contains("  pages:  http://127.0.0.1:8080/ (the dashboard"),
        "{banner}"
    );
    let (code, body) = get("http://127.0.0.1:8080/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<html") && body.contains("skills"), "{body}");
    let (code, body) = get("http://127.0.0.1:8080/healthz");
    assert_eq!(code, 200, "{body}");
    stop(child);

    // Off: nothing listens there, and the banner says how to turn them on.
    let (child, port) = serve(&env, "off", &["--http", "off"]);
    let banner = std::fs::read_to_string(env.tmp.path().join("off")).unwrap();
    assert!(
        banner.contains("  pages:  off (--http ADDR serves them)\n"),
        "{banner}"
    );
    assert_eq!(get("http://127.0.0.1:8080/healthz").0, 0);
    assert!(port > 0);
    stop(child);

    // A malformed --http is refused up front.
    let out = Command::new(SKILLSD)
        .args(["serve", "--http", "eighty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nor `off`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `serve --help` says where the pages are.
    let out = Command::new(SKILLSD)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("status pages") && help.contains("127.0.0.1:8080") && help.contains("off"),
        "{help}"
    );
}

/// A folder of Markdown that is not a skills repository (no skillsd.toml): `check`
/// says what is missing and where to start, instead of thousands of errors; the
/// errors are still there on request, and a skillsd.toml makes it a normal check.
#[test]
fn check_without_skillsd_toml_says_so_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for i in 0..40 {
        let dir = root.join(format!("skills/topic-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        // Frontmatter without the built-in rules' `title`.
        std::fs::write(dir.join("notes.md"), "---\nname: notes\n---\n\nText.\n").unwrap();
    }
    let check = |args: &[&str]| {
        Command::new(SKILLSD)
            .arg("check")
            .args(args)
            .current_dir(root)
            .env_remove("SKILLSD_CONFIG")
            .output()
            .unwrap()
    };
    let out = check(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    common::assert_contains_all(
        &stdout,
        &[
            "no skillsd.toml in .:",
            "errors in 40 files (40 skills checked)",
            "`skillsd check --suggest-config`",
            "skills-template/skillsd.toml",
            "`skillsd check --builtin-rules`",
        ],
    );
    assert!(stdout.lines().count() < 8, "{stdout}");
    assert!(!stdout.contains("error: skills/"), "{stdout}");

    // With the built-in rules, the errors are listed as any check lists them: a few of
    // each kind, then counted; `--all` lists every one.
    let out = check(&["--builtin-rules"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.matches("error: skills/topic-").count(),
        3,
        "{stdout}"
    );
    common::assert_contains_all(
        &stdout,
        &[
            "… and 37 more `missing-field` errors (40 in all)",
            "`skillsd check --all` lists every problem.",
            "80 errors in 40 files (40 skills checked)",
        ],
    );
    let out = check(&["--builtin-rules", "--all"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout.matches("error: skills/topic-").count(),
        40,
        "{stdout}"
    );

    // With the rules file, the errors are the repository's own: listed.
    std::fs::write(root.join("skillsd.toml"), "layout = \"flat\"\n").unwrap();
    let out = check(&["--all"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains("no skillsd.toml"), "{stdout}");
    assert_eq!(
        stdout.matches("error: skills/topic-").count(),
        40,
        "{stdout}"
    );
}

/// The newest push's id.
fn last_push(server: &common::Server) -> uuid::Uuid {
    server.scalar("SELECT id FROM pushes ORDER BY started_at DESC LIMIT 1")
}

/// The text of `<pre id="problems">` on a page, unescaped.
fn transcript_on(page: &str) -> Vec<String> {
    let start = page
        .find("<pre id=\"problems\">")
        .expect("the page shows what the pusher read");
    let body = &page[start + "<pre id=\"problems\">".len()..];
    let body = &body[..body.find("</pre>").unwrap()];
    let text = body
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    text.lines().map(|l| l.trim_end().to_string()).collect()
}

/// The `remote:` lines git showed its user.
fn remote_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("remote:"))
        .map(str::to_string)
        .collect()
}

/// A push's page shows exactly the `remote:` lines its pusher read (problems in their
/// order, the summary), links each skill by its stable id and says when it was
/// renamed or deleted since, and a passing dry run has a badge of its own.
#[test]
fn push_pages_show_what_the_pusher_read_and_follow_renames() {
    use common::{GITS, Git, skill};
    let server = common::Server::start_with(true);
    let key = server.add_user("alice", "writer");
    for bin in GITS {
        let git = Git::new(bin, &key, &server);
        let dir = git.clone(&server.url("skills.git"), &[]);
        git.commit_files(
            &dir,
            &[
                ("skills/x/Bad_Name.md", skill("Bad", "").as_str()),
                ("skills/x/untitled.md", "---\ndescription: none\n---\n"),
                ("skills/x/wrong-status.md", &skill("S", "status: done\n")),
            ],
            "three problems",
        );
        let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
        assert!(!ok, "{bin}: {stderr}");
        let read = remote_lines(&stderr);
        assert!(read.len() > 5, "{bin}: {stderr}");
        let page = server.get(&format!("/pushes/{}", last_push(&server)));
        assert_eq!(transcript_on(&page), read, "{bin}: {page}");
        assert!(page.contains("badge bad"), "{page}");
        // No push options: no empty row for them.
        assert!(!page.contains("push options"), "{page}");
    }

    let git = Git::new(GITS[1], &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    git.commit_files(
        &dir,
        &[
            ("skills/t/alpha.md", skill("Alpha", "").as_str()),
            ("skills/t/beta.md", skill("Beta", "").as_str()),
        ],
        "two",
    );
    let (ok, _, stderr) = git.run(&dir, &["push", "origin", "main"]);
    assert!(ok, "{stderr}");
    let created = last_push(&server);
    let page = server.get(&format!("/pushes/{created}"));
    let read = remote_lines(&stderr);
    assert!(
        read.iter()
            .any(|l| l.starts_with("remote: skills: 2 created")),
        "{stderr}"
    );
    assert_eq!(transcript_on(&page), read, "{page}");
    let alpha: uuid::Uuid = server.scalar("SELECT id FROM skills WHERE slug = 'alpha'");
    assert!(
        page.contains(&format!("href=\"/skills/{alpha}?repo=skills\">alpha</a>")),
        "{page}"
    );

    // Rename one, delete the other: the old push's page follows.
    git.ok(&dir, &["mv", "skills/t/alpha.md", "skills/t/gamma.md"]);
    git.ok(&dir, &["rm", "-q", "skills/t/beta.md"]);
    git.ok(&dir, &["commit", "-q", "-m", "rename and delete"]);
    git.ok(&dir, &["push", "origin", "main"]);
    let page = server.get(&format!("/pushes/{created}"));
    assert!(
        page.contains(&format!(
            "renamed to <a href=\"/skills/{alpha}?repo=skills\">gamma</a>"
        )),
        "{page}"
    );
    assert!(
        page.contains("beta <span class=\"muted\">deleted</span>"),
        "{page}"
    );
    assert!(!page.contains("href=\"/skills/beta"), "{page}");
    // The id link opens the skill under its new name.
    let skill_page = server.get(&format!("/skills/{alpha}?repo=skills"));
    assert!(skill_page.contains("skills/t/gamma.md"), "{skill_page}");

    // A dry run that passes: its own badge, not "refused".
    git.commit_files(&dir, &[("skills/t/delta.md", skill("Delta", ""))], "dry");
    let stderr = git.fails(&dir, &["push", "-o", "dry-run", "origin", "main"]);
    assert!(stderr.contains("nothing was written"), "{stderr}");
    let dry = last_push(&server);
    let page = server.get(&format!("/pushes/{dry}"));
    assert!(page.contains("dry run: passed"), "{page}");
    assert!(!page.contains(">refused<"), "{page}");
    assert!(page.contains("<dd>dry-run</dd>"), "{page}");
    let dashboard = server.get("/");
    let row = &dashboard[dashboard.find(&format!("/pushes/{dry}")).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("dry run: passed") && !row.contains(">refused<"),
        "{row}"
    );
}

/// The sign-in pages name this server's real SSH host and port, not placeholders.
#[test]
fn sign_in_pages_show_the_real_ssh_command() {
    let server = common::Server::start_tuned(true, |s| {
        s.web_access = skillsd::config::WebAccess::SignedIn;
    });
    let command = format!("ssh -p {} git@127.0.0.1 web-login", server.port);
    let (code, body) = get(&format!("http://127.0.0.1:{}/", server.http_port));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains(&command), "{body}");
    assert!(!body.contains("PORT"), "{body}");
    let (code, body) = get(&format!(
        "http://127.0.0.1:{}/login?token=used",
        server.http_port
    ));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains(&command), "{body}");
    let (code, body) = get(&format!("http://127.0.0.1:{}/api/skills", server.http_port));
    assert_eq!(code, 401, "{body}");
    assert!(
        body.contains(&format!("ssh -p {} git@127.0.0.1 api-token", server.port))
            && !body.contains("  "),
        "{body}"
    );
}
