//! Webhooks against a real receiver on loopback: a push is delivered signed (the
//! signature checked by Python's hmac, not by skillsd's code), with its commits and
//! the skills it changed; a 500 is retried with the same delivery id; a refused push
//! delivers nothing; redelivery and `webhook test`; the SSRF guard at `add` and at
//! delivery time; a delivery that keeps failing is marked failed.

use crate::common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A minimal HTTP/1.1 receiver: answers the n-th request of each event (the
/// `X-Skillsd-Event` header) with the n-th status of `statuses` (the last one
/// repeats; 0: never answers), and records it.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(statuses: &[u16]) -> Receiver {
        Self::start_on(0, statuses)
    }

    fn start_on(port: u16, statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Request>>> = Arc::default();
        let statuses = statuses.to_vec();
        let record = got.clone();
        std::thread::spawn(move || {
            let mut seen: std::collections::HashMap<String, usize> = Default::default();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let event = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("x-skillsd-event"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let n = *seen
                    .entry(event.clone())
                    .and_modify(|n| *n += 1)
                    .or_insert(0);
                record.lock().unwrap().push(Request {
                    path,
                    headers,
                    body,
                });
                let status = statuses[n.min(statuses.len() - 1)];
                if status == 0 {
                    // Never answer: hold the connection open.
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_secs(120));
                        drop(stream);
                    });
                    continue;
                }
                let text = format!("status {status}");
                // A redirect points back here: following it would show as a request.
                let location = if (300..400).contains(&status) {
                    format!("Location: http://127.0.0.1:{port}/followed\r\n")
                } else {
                    String::new()
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        Receiver { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook?token=t0ps3cret", self.port)
    }

    /// Waits until `n` requests came (panics after 30 s).
    fn wait_for(&self, n: usize) -> Vec<Request> {
        let start = Instant::now();
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the receiver got {} requests, not {n}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

/// HMAC-SHA256 by Python's standard library: an implementation that is not skillsd's.
fn python_signature(secret: &str, body: &[u8]) -> String {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; \
             print('sha256=' + hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())",
            secret,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_push_is_delivered_signed_with_its_commits_and_skills_and_retried_after_a_500() {
    let server = Server::start_tuned(false, fast_retries);
    let receiver = Receiver::start(&[500, 200]);
    let secret = "It's a Secret to Everybody";
    let out = server.cli(&[
        "webhook",
        "add",
        "skills",
        &receiver.url(),
        "--secret",
        secret,
        "--allow-private",
        "--events",
        "push,skills",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("webhook 1 of skills added"),
        "{}",
        stdout(&out)
    );

    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let work = git.clone(&server.url("skills"), &[]);
    let before = git.head(&work);
    let after = git.commit_files(
        &work,
        &[("skills/deploy-checklist.md", skill("Deploy checklist", ""))],
        "Add the deploy checklist",
    );
    git.ok(&work, &["push", "-q", "origin", "main"]);

    // push: a 500, then the same delivery again (200); skills: a 500, then a 200.
    let got = receiver.wait_for(4);
    let push: Vec<&Request> = got
        .iter()
        .filter(|r| r.header("X-Skillsd-Event") == Some("push"))
        .collect();
    assert_eq!(push.len(), 2, "{got:#?}");
    assert_eq!(
        push[0].header("X-Skillsd-Delivery"),
        push[1].header("X-Skillsd-Delivery"),
        "a retry is the same delivery"
    );
    assert_eq!(push[0].body, push[1].body, "a retry sends the same body");
    let r = push[1];
    assert_eq!(r.path, "/hook?token=t0ps3cret");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("X-GitHub-Event"), Some("push"));
    assert_eq!(
        r.header("X-Hub-Signature-256").unwrap(),
        python_signature(secret, &r.body),
        "the signature verifies with the secret"
    );
    assert_ne!(
        r.header("X-Hub-Signature-256").unwrap(),
        python_signature("another secret", &r.body)
    );
    let body = r.json();
    assert_eq!(body["ref"], "refs/heads/main");
    assert_eq!(body["before"], before.as_str());
    assert_eq!(body["after"], after.as_str());
    assert_eq!(body["pusher"]["name"], "alice");
    assert_eq!(body["repository"]["name"], "skills");
    let commits = body["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 1, "{body:#}");
    assert_eq!(commits[0]["id"], after.as_str());
    assert_eq!(commits[0]["message"], "Add the deploy checklist\n");
    assert_eq!(commits[0]["author"]["email"], "author@example.com");
    assert_eq!(body["head_commit"]["id"], after.as_str());
    let skills = body["skills"].as_array().unwrap();
    assert_eq!(skills.len(), 1, "{body:#}");
    assert_eq!(skills[0]["slug"], "deploy-checklist");
    assert_eq!(skills[0]["path"], "skills/deploy-checklist.md");
    assert_eq!(skills[0]["operation"], "create");
    let id: uuid::Uuid = server
        .query(
            sqlx::query_scalar("SELECT id FROM skills WHERE slug = 'deploy-checklist'")
                .fetch_one(&server.pool),
        )
        .unwrap();
    assert_eq!(skills[0]["id"], id.to_string());
    let skills_event: Vec<&Request> = got
        .iter()
        .filter(|r| r.header("X-Skillsd-Event") == Some("skills"))
        .collect();
    assert_eq!(skills_event.len(), 2);
    assert_eq!(
        skills_event[1].json()["skills"][0]["slug"],
        "deploy-checklist"
    );

    // Every attempt is recorded.
    let start = Instant::now();
    while server.count("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'") < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "not recorded");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, attempts, code): (String, i32, Option<i32>) = server
        .query(
            sqlx::query_as(
                "SELECT status, attempts, response_code FROM webhook_deliveries
                 WHERE event = 'push' AND redelivery_of IS NULL",
            )
            .fetch_one(&server.pool),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), attempts, code),
        ("delivered", 2, Some(200))
    );
    let out = server.cli(&["webhook", "deliveries", "skills", "1"]);
    let text = stdout(&out);
    assert!(
        text.contains("push  delivered 2 attempts, HTTP 200"),
        "{text}"
    );
    let out = server.cli(&["webhook", "list"]);
    assert!(
        stdout(&out).contains("last delivery delivered (HTTP 200)"),
        "{}",
        stdout(&out)
    );

    // A refused push reaches no webhook.
    let deliveries = server.count("SELECT count(*) FROM webhook_deliveries");
    git.commit_files(
        &work,
        &[("skills/broken.md", "---\ntitle: [unclosed\n---\nbody\n")],
        "Broken",
    );
    git.fails(&work, &["push", "-q", "origin", "main"]);
    assert_eq!(
        server.count("SELECT count(*) FROM webhook_deliveries"),
        deliveries
    );

    // Redelivery: the same body, a new delivery id, sent at once.
    let first = push[0].header("X-Skillsd-Delivery").unwrap().to_string();
    let out = server.cli(&["webhook", "redeliver", "skills", &first]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("delivered (HTTP 200"),
        "{}",
        stdout(&out)
    );
    let got = receiver.wait_for(5);
    let again = &got[4];
    assert_eq!(again.body, push[0].body);
    assert_ne!(again.header("X-Skillsd-Delivery"), Some(first.as_str()));
    // Nothing else will be sent: no delivery is pending, and the receiver saw every
    // attempt the database counts.
    common::eventually(10, "every delivery settled", || {
        server.count("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'") == 0
    });
    assert_eq!(
        server.count("SELECT coalesce(sum(attempts), 0)::int8 FROM webhook_deliveries"),
        5
    );
    assert_eq!(receiver.count(), 5, "nothing else was sent");
}

#[test]
fn webhook_test_sends_a_ping_and_says_what_the_receiver_answered() {
    let server = Server::start_tuned(false, fast_retries);
    let ok = Receiver::start(&[200]);
    let failing = Receiver::start(&[503]);
    for url in [ok.url(), failing.url()] {
        let out = server.cli(&[
            "webhook",
            "add",
            "skills",
            &url,
            "--secret",
            "s",
            "--allow-private",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = server.cli(&["webhook", "test", "skills", "1"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("delivered (HTTP 200"),
        "{}",
        stdout(&out)
    );
    let ping = &ok.wait_for(1)[0];
    assert_eq!(ping.header("X-Skillsd-Event"), Some("ping"));
    assert_eq!(ping.json()["hook_id"], 1);

    let out = server.cli(&["webhook", "test", "skills", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("failed (HTTP 503"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("status 503"),
        "the answer's body is shown"
    );
    // A redirect is not followed.
    let redirecting = Receiver::start(&[302]);
    let out = server.cli(&[
        "webhook",
        "add",
        "skills",
        &redirecting.url(),
        "--secret",
        "s",
        "--allow-private",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = server.cli(&["webhook", "test", "skills", "3"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("redirects are not followed"),
        "{}",
        stdout(&out)
    );
    // `webhook test` returns after its request's answer: a redirect followed would
    // have been requested by then.
    assert_eq!(redirecting.count(), 1, "the redirect was followed");

    // A name that does not resolve now is added with a note; its ping says why.
    let out = server.cli(&[
        "webhook",
        "add",
        "skills",
        "https://no-such-host.invalid/x",
        "--secret",
        "s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot resolve no-such-host.invalid"),
        "{}",
        stderr(&out)
    );
    let out = server.cli(&["webhook", "test", "skills", "4"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("failed ("), "{}", stdout(&out));

    let out = server.cli(&["webhook", "test", "skills", "9"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("skills has no webhook 9"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn private_addresses_are_refused_at_add_and_at_delivery() {
    let server = Server::start_tuned(true, |s| {
        fast_retries(s);
        s.delivery.webhook_attempts = 2;
    });
    let receiver = Receiver::start(&[200]);
    for (url, why) in [
        (receiver.url(), "loopback"),
        (format!("http://localhost:{}/x", receiver.port), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data".to_string(),
            "metadata",
        ),
        ("http://10.0.0.8/x".to_string(), "private"),
        ("http://[::1]:8080/x".to_string(), "loopback"),
    ] {
        let out = server.cli(&["webhook", "add", "skills", &url, "--secret", "s"]);
        assert!(!out.status.success(), "{url} was added");
        let e = stderr(&out);
        assert!(
            e.contains(why) && e.contains("--allow-private"),
            "{url}: {e}"
        );
    }
    for (url, why) in [
        ("ftp://example.com/x", "http:// or https://"),
        ("https://user:pw@example.com/x", "no user or password"),
    ] {
        let out = server.cli(&["webhook", "add", "skills", url, "--secret", "s"]);
        assert!(!out.status.success(), "{url} was added");
        assert!(stderr(&out).contains(why), "{url}: {}", stderr(&out));
        assert!(!stderr(&out).contains("pw@"), "the password is not echoed");
    }
    assert_eq!(server.count("SELECT count(*) FROM webhooks"), 0);

    // A hook that was public when added and is not now (a name that resolves
    // elsewhere later; written here directly): delivery checks again, sends nothing,
    // retries, then gives up.
    server.query(
        sqlx::query(
            "INSERT INTO webhooks (repo, url, secret) VALUES ('skills', $1, 's'), ('skills', $2, 's')",
        )
        .bind(receiver.url())
        .bind(format!("http://localhost:{}/by-name", receiver.port))
        .execute(&server.pool),
    )
    .unwrap();
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_OLD, &key, &server);
    let work = git.clone(&server.url("skills"), &[]);
    git.commit_files(&work, &[("skills/a.md", skill("A", ""))], "A");
    git.ok(&work, &["push", "-q", "origin", "main"]);
    let start = Instant::now();
    while server.count("SELECT count(*) FROM webhook_deliveries WHERE status = 'failed'") < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the deliveries were not marked failed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(receiver.count(), 0, "nothing reached the receiver");
    let errors: Vec<(String, i32)> = server
        .query(
            sqlx::query_as(
                "SELECT last_error, attempts FROM webhook_deliveries ORDER BY webhook_id",
            )
            .fetch_all(&server.pool),
        )
        .unwrap();
    for (e, attempts) in &errors {
        assert!(e.contains("loopback"), "{e}");
        assert_eq!(*attempts, 2);
    }
    let out = server.cli(&["webhook", "list", "skills"]);
    let text = stdout(&out);
    assert_eq!(text.matches("0 pending, 1 failed").count(), 2, "{text}");
    let metrics = server.get("/metrics");
    assert!(
        metrics.contains("skillsd_webhook_deliveries_failed{repo=\"skills\",webhook=\"1\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("by-name"), "no URL in the metrics");

    // Deliveries that ended over 30 days ago are pruned; recent ones stay.
    server.query(
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, completed_at)
             SELECT gen_random_uuid(), min(id), 'push', '{}', 'delivered', now() - interval '31 days'
             FROM webhooks",
        )
        .execute(&server.pool),
    )
    .unwrap();
    let pruned = server
        .query(skillsd::deliver::webhooks::prune(&server.pool))
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(server.count("SELECT count(*) FROM webhook_deliveries"), 2);
}

/// Node `i` on `env`'s database, retrying deliveries every second.
fn node(env: &ChildEnv, i: usize) -> ChildServer {
    env.node(
        i,
        &[
            ("SKILLSD_DELIVERY_RETRY_SECS", "1"),
            ("SKILLSD_DELIVERY_RETRY_MAX_SECS", "1"),
        ],
    )
}

/// `skillsd webhook add skills URL --allow-private` on `env`'s database.
fn add_hook(env: &ChildEnv, url: &str) {
    let out = env.cli(&[
        "webhook",
        "add",
        "skills",
        url,
        "--secret",
        "s",
        "--allow-private",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn each_delivery_is_sent_by_one_node_and_survives_every_node_restarting() {
    let env = ChildEnv::new();
    let mut nodes = vec![node(&env, 0), node(&env, 1), node(&env, 2)];
    let key = env.add_writer("writer");
    let receiver = Receiver::start(&[200]);
    add_hook(&env, &receiver.url());

    // Five pushes, through every node in turn; three workers compete for each delivery.
    let home = env.tmp.path().join("home");
    let work = clone_from(&key, &nodes[0], &home);
    for i in 0..5 {
        commit_and_push(
            &key,
            &nodes[i % 3],
            &home,
            &work,
            &format!("skills/s{i}.md"),
            &skill(&format!("S {i}"), ""),
        );
    }
    let got = receiver.wait_for(5);
    // Each of the five deliveries was settled by one attempt: no node sends it again.
    let pool = env.rt.block_on(skillsd::db::connect(&env.db_url)).unwrap();
    let settled = || -> (i64, i64, i64) {
        env.rt
            .block_on(
                sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE status = 'pending'),
                            count(*) FILTER (WHERE status = 'delivered' AND attempts = 1),
                            count(*)
                     FROM webhook_deliveries",
                )
                .fetch_one(&pool),
            )
            .unwrap()
    };
    common::eventually(20, "every delivery settled", || settled().0 == 0);
    assert_eq!(
        settled(),
        (0, 5, 5),
        "each delivery delivered at its first attempt"
    );
    let got_all = receiver.got.lock().unwrap().clone();
    assert_eq!(got_all.len(), 5, "one request per delivery: {}", got.len());
    let ids: std::collections::HashSet<&str> = got_all
        .iter()
        .map(|r| r.header("X-Skillsd-Delivery").unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "five deliveries, each sent once");

    // The receiver goes away; a push is accepted and its delivery waits.
    let port = free_port();
    let out = env.cli(&["webhook", "remove", "skills", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    add_hook(&env, &format!("http://127.0.0.1:{port}/later"));
    commit_and_push(
        &key,
        &nodes[0],
        &home,
        &work,
        "skills/late.md",
        &skill("Late", ""),
    );
    let pool = env.rt.block_on(skillsd::db::connect(&env.db_url)).unwrap();
    let failed_once = || -> i64 {
        env.rt
            .block_on(
                sqlx::query_scalar(
                    "SELECT count(*) FROM webhook_deliveries
                     WHERE status = 'pending' AND attempts >= 1 AND last_error LIKE '%connect%'",
                )
                .fetch_one(&pool),
            )
            .unwrap()
    };
    let start = Instant::now();
    while failed_once() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no failed attempt"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every node stops at once (no goodbye), then one new node starts; the receiver
    // is back.
    for n in &mut nodes {
        n.kill();
    }
    let later = Receiver::start_on(port, &[200]);
    let mut fresh = node(&env, 3);
    let got = later.wait_for(1);
    let body = got[0].json();
    assert_eq!(body["skills"][0]["slug"], "late", "{body:#}");
    fresh.kill();
}

/// A node stopped (SIGTERM) while its delivery hangs gives the delivery back: another
/// node sends it at once, not after the lease (40 s here) runs out.
#[test]
fn a_node_that_stops_mid_delivery_gives_it_back() {
    let env = ChildEnv::new();
    let mut first = node(&env, 0);
    let key = env.add_writer("writer");
    let receiver = Receiver::start(&[0, 200]);
    add_hook(&env, &receiver.url());
    let home = env.tmp.path().join("home");
    let work = clone_from(&key, &first, &home);
    commit_and_push(
        &key,
        &first,
        &home,
        &work,
        "skills/held.md",
        &skill("Held", ""),
    );
    // The first node's request hangs at the receiver.
    receiver.wait_for(1);
    let mut second = node(&env, 1);
    let stopped = Instant::now();
    assert!(first.terminate().success());
    let got = receiver.wait_for(2);
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "taken over after {:?}",
        stopped.elapsed()
    );
    assert_eq!(
        got[0].header("X-Skillsd-Delivery"),
        got[1].header("X-Skillsd-Delivery")
    );
    let pool = env.rt.block_on(skillsd::db::connect(&env.db_url)).unwrap();
    let start = Instant::now();
    loop {
        let status: String = env
            .rt
            .block_on(sqlx::query_scalar("SELECT status FROM webhook_deliveries").fetch_one(&pool))
            .unwrap();
        if status == "delivered" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    second.kill();
}

#[test]
fn a_silent_mirror_upstream_holds_no_webhook_back() {
    let env = ChildEnv::new();
    let first = env.node(
        0,
        &[
            ("SKILLSD_DELIVERY_RETRY_SECS", "1"),
            ("SKILLSD_DELIVERY_RETRY_MAX_SECS", "1"),
            ("SKILLSD_MIRROR_TIMEOUT_SECS", "120"),
        ],
    );
    let key = env.add_writer("writer");
    // An upstream that accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().take(50).flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let out = env.cli(&[
        "mirror",
        "add",
        "skills",
        &format!("ssh://git@127.0.0.1:{silent_port}/skills.git"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let receiver = Receiver::start(&[200]);
    add_hook(&env, &receiver.url());
    let home = env.tmp.path().join("home");
    let work = clone_from(&key, &first, &home);
    commit_and_push(
        &key,
        &first,
        &home,
        &work,
        "skills/one.md",
        &skill("One", ""),
    );
    receiver.wait_for(1);
    // The mirror's delivery is hanging on the silent upstream now.
    let start = Instant::now();
    while held.lock().unwrap().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the mirror never connected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A second push's webhook is delivered at once, not after the mirror's time limit.
    let pushed = Instant::now();
    commit_and_push(
        &key,
        &first,
        &home,
        &work,
        "skills/two.md",
        &skill("Two", ""),
    );
    receiver.wait_for(2);
    assert!(
        pushed.elapsed() < Duration::from_secs(10),
        "the webhook waited {:?} behind the mirror",
        pushed.elapsed()
    );
}

#[test]
fn a_receiver_answering_with_gigabytes_costs_a_few_kilobytes() {
    let env = ChildEnv::new();
    let node = node(&env, 0);
    let key = env.add_writer("writer");
    // A receiver that answers 500 with a body of 1.5 GiB, streamed until the
    // connection is closed on it; it counts what it managed to send.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(3).flatten() {
            let record = record.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // The request's headers, then its body by Content-Length.
                let mut len = 0usize;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let total: u64 = 1536 << 20;
                let _ = write!(
                    stream,
                    "HTTP/1.1 500 Oops\r\nContent-Length: {total}\r\nContent-Type: text/plain\r\n\r\n"
                );
                let chunk = vec![b'x'; 1 << 20];
                let mut n = 0u64;
                while n < total {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                    n += chunk.len() as u64;
                }
                record.lock().unwrap().push(n);
            });
        }
    });
    add_hook(&env, &format!("http://127.0.0.1:{port}/hook"));
    node.reset_peak_rss();
    let home = env.tmp.path().join("home");
    let work = clone_from(&key, &node, &home);
    commit_and_push(
        &key,
        &node,
        &home,
        &work,
        "skills/big.md",
        &skill("Big", ""),
    );
    let start = Instant::now();
    while sent.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no answer was sent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let streamed = sent.lock().unwrap()[0];
    let peak = node.peak_rss_kib();
    eprintln!(
        "receiver streamed {} MiB before the connection was closed; node peak RSS {} MiB",
        streamed >> 20,
        peak >> 10
    );
    assert!(streamed < 1536 << 20, "the whole answer was read");
    assert!(peak < 512 * 1024, "peak RSS {peak} KiB");
    // The attempt is recorded with the start of the answer.
    let pool = env.rt.block_on(skillsd::db::connect(&env.db_url)).unwrap();
    let start = Instant::now();
    loop {
        let error: Option<String> = env
            .rt
            .block_on(
                sqlx::query_scalar("SELECT last_error FROM webhook_deliveries LIMIT 1")
                    .fetch_one(&pool),
            )
            .unwrap();
        if let Some(e) = error {
            assert!(e.starts_with("HTTP 500"), "{e}");
            assert!(e.len() < 1024, "{} bytes of error kept", e.len());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no attempt recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_change_is_delivered_as_it_opens_is_approved_and_merges() {
    let server = Server::start_tuned(false, fast_retries);
    let receiver = Receiver::start(&[200]);
    let out = server.cli(&[
        "webhook",
        "add",
        "skills",
        &receiver.url(),
        "--secret",
        "s3cret",
        "--allow-private",
        "--events",
        "change",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let alice = server.add_user("alice", "writer");
    let bob = server.add_user("bob", "writer");
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let work = git.clone(&server.url("skills"), &[]);
    git.commit_files(
        &work,
        &[("skills/proposed.md", skill("Proposed", ""))],
        "Propose a skill",
    );
    git.ok(
        &work,
        &[
            "push",
            "-q",
            "-o",
            "topic=p",
            "origin",
            "HEAD:refs/for/main",
        ],
    );
    for command in ["review 1 --approve", "review 1 --merge"] {
        let out = ssh_to(&bob, server.port).arg(command).output().unwrap();
        assert!(out.status.success(), "{command}: {out:?}");
    }
    let got = receiver.wait_for(3);
    let actions: Vec<String> = got
        .iter()
        .map(|r| {
            assert_eq!(r.header("X-Skillsd-Event"), Some("change"));
            let body = r.json();
            assert_eq!(body["change"]["number"], 1);
            assert_eq!(body["change"]["title"], "Propose a skill");
            body["action"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(actions, ["opened", "approved", "merged"]);
    let merged = got[2].json();
    assert_eq!(merged["change"]["state"], "MERGED");
    assert_eq!(merged["sender"]["login"], "bob");
    // Only `change` was asked for: the merge's push is not delivered (deliveries are
    // written in the push's transaction, so none exists for it now, nor later).
    assert_eq!(
        server.count("SELECT count(*) FROM webhook_deliveries WHERE event <> 'change'"),
        0
    );
    assert_eq!(
        server.count("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'"),
        0
    );
    assert_eq!(receiver.count(), 3);
}
