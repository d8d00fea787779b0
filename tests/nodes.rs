//! Several nodes on one PostgreSQL: every node is `skillsd serve --listen ADDR
//! --data-dir DIR --database-url URL` with the same URL and its own data dir, and
//! serves every push the moment `git push` returns, whichever node took it.

use crate::common;

use common::{
    ChildEnv, ChildServer, GITS, Key, SKILLSD, assert_fsck_at, free_port, skill, ssh_options,
    stdout_of,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// N nodes on one fresh database, a writer key, and a home for clones.
struct Cluster {
    env: ChildEnv,
    nodes: Vec<ChildServer>,
    key: Key,
    home: PathBuf,
    /// More ssh options for git (e.g. the source address).
    ssh_extra: String,
}

impl Cluster {
    fn start(n: usize, extra_env: &[(&str, &str)]) -> Cluster {
        let env = ChildEnv::new();
        let nodes = (0..n).map(|i| env.node(i, extra_env)).collect();
        Cluster::of(env, nodes)
    }

    /// `nodes` on `env`'s database, with a writer key registered and a home for clones.
    fn of(env: ChildEnv, nodes: Vec<ChildServer>) -> Cluster {
        let key = Key::generate("writer");
        let mut add = Command::new(SKILLSD);
        add.args(["user", "add", "writer", "--role", "writer", "--key"])
            .arg(&key.public)
            .arg("--data-dir")
            .arg(env.node_dir(0))
            .arg("--database-url")
            .arg(&env.db_url);
        stdout_of(add);
        let home = env.tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Cluster {
            env,
            nodes,
            key,
            home,
            ssh_extra: String::new(),
        }
    }

    fn url(&self, node: usize) -> String {
        self.nodes[node].url("skills.git")
    }

    /// git (`bin`) in `dir`, talking to whichever node the URL names.
    fn git(&self, bin: &str, dir: &Path) -> Command {
        let mut c = Command::new(bin);
        c.current_dir(dir)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env(
                "GIT_SSH_COMMAND",
                format!("ssh {} {}", ssh_options(&self.key), self.ssh_extra),
            )
            .env("GIT_AUTHOR_NAME", "Node Tester")
            .env("GIT_AUTHOR_EMAIL", "nodes@example.com")
            .env("GIT_COMMITTER_NAME", "Node Tester")
            .env("GIT_COMMITTER_EMAIL", "nodes@example.com");
        c
    }

    fn run(&self, bin: &str, dir: &Path, args: &[&str]) -> String {
        let mut c = self.git(bin, dir);
        c.args(args);
        stdout_of(c)
    }

    fn clone(&self, bin: &str, node: usize, name: &str) -> PathBuf {
        let dir = self.home.join(name);
        let mut c = self.git(bin, &self.home);
        c.args(["clone", "-q", &self.url(node)]).arg(&dir);
        stdout_of(c);
        dir
    }

    /// `main` as node `node` advertises it.
    fn ls_remote_main(&self, node: usize) -> String {
        let out = self.run(
            GITS[1],
            &self.home,
            &["ls-remote", &self.url(node), "refs/heads/main"],
        );
        out.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    fn query<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.env.rt.block_on(f)
    }

    fn pool(&self) -> sqlx::PgPool {
        self.query(skillsd::db::connect(&self.env.db_url)).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

fn commit_skill(c: &Cluster, bin: &str, dir: &Path, path: &str, title: &str) -> String {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, skill(title, "")).unwrap();
    c.run(bin, dir, &["add", "-A"]);
    c.run(bin, dir, &["commit", "-q", "-m", title]);
    c.run(bin, dir, &["rev-parse", "HEAD"])
}

/// The cache's watermark and whether the skill `slug` is cached.
fn cache_state(c: &Cluster, pool: &sqlx::PgPool, slug: &str) -> (Option<String>, i64) {
    c.query(async {
        sqlx::query_as(
            "SELECT (SELECT commit_sha FROM sync_state WHERE repo = 'skills'),
                    (SELECT count(*) FROM skills WHERE repo = 'skills' AND slug = $1)",
        )
        .bind(slug)
        .fetch_one(pool)
        .await
        .unwrap()
    })
}

#[test]
fn a_push_through_one_node_is_served_by_every_other_the_moment_it_returns() {
    let c = Cluster::start(3, &[]);
    let pool = c.pool();
    // All three present the same host key.
    let keys: Vec<String> = c
        .nodes
        .iter()
        .map(|n| {
            let out = Command::new("ssh-keyscan")
                .args(["-t", "ed25519", "-p", &n.port.to_string(), "127.0.0.1"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(!keys[0].is_empty(), "ssh-keyscan found no key");
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");

    let work = c.clone(GITS[0], 0, "work");
    let readers: Vec<PathBuf> = (0..3)
        .map(|i| c.clone(GITS[i % 2], i, &format!("reader{i}")))
        .collect();
    for round in 0..20 {
        let bin = GITS[round % 2];
        let via = round % 3;
        let slug = format!("round-{round}");
        let tip = commit_skill(&c, bin, &work, &format!("skills/r/{slug}.md"), &slug);
        c.run(bin, &work, &["push", "-q", &c.url(via), "HEAD:main"]);
        // The moment the push returns: every node advertises it, serves it, and the
        // cache holds it.
        for node in 0..3 {
            assert_eq!(c.ls_remote_main(node), tip, "round {round}, node {node}");
            let reader = &readers[node];
            c.run(GITS[node % 2], reader, &["fetch", "-q", "origin"]);
            assert_eq!(
                c.run(GITS[1], reader, &["rev-parse", "origin/main"]),
                tip,
                "round {round}: fetch through node {node}"
            );
        }
        assert_eq!(
            cache_state(&c, &pool, &slug),
            (Some(tip.clone()), 1),
            "round {round}"
        );
    }
    for reader in &readers {
        assert_fsck_at(reader);
    }
    c.query(pool.close());
}

#[test]
fn concurrent_pushes_through_different_nodes_lose_nothing() {
    let c = Cluster::start(3, &[]);
    let pool = c.pool();
    let clients: Vec<PathBuf> = (0..6)
        .map(|i| c.clone(GITS[i % 2], i % 3, &format!("client{i}")))
        .collect();
    std::thread::scope(|s| {
        for (i, dir) in clients.iter().enumerate() {
            let c = &c;
            s.spawn(move || {
                let bin = GITS[i % 2];
                let url = c.url(i % 3);
                for k in 0..3 {
                    commit_skill(
                        c,
                        bin,
                        dir,
                        &format!("skills/c{i}/c{i}-s{k}.md"),
                        &format!("c{i} s{k}"),
                    );
                    // Someone else may have pushed first: fetch, rebase, try again.
                    let mut tries = 0;
                    loop {
                        let mut push = c.git(bin, dir);
                        push.args(["push", "-q", &url, "HEAD:main"]);
                        let out = push.output().unwrap();
                        if out.status.success() {
                            break;
                        }
                        tries += 1;
                        assert!(
                            tries < 60,
                            "client {i} never got its push in: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        c.run(bin, dir, &["pull", "-q", "--rebase", &url, "main"]);
                    }
                }
            });
        }
    });
    let tips: Vec<String> = (0..3).map(|n| c.ls_remote_main(n)).collect();
    assert!(tips.iter().all(|t| *t == tips[0]), "{tips:?}");
    let check = c.clone(GITS[1], 2, "check");
    assert_eq!(c.run(GITS[1], &check, &["rev-parse", "HEAD"]), tips[0]);
    for i in 0..6 {
        for k in 0..3 {
            assert!(
                check.join(format!("skills/c{i}/c{i}-s{k}.md")).is_file(),
                "c{i} s{k} lost"
            );
        }
    }
    assert_fsck_at(&check);
    let (watermark, cached): (Option<String>, i64) = c.query(async {
        sqlx::query_as(
            "SELECT (SELECT commit_sha FROM sync_state WHERE repo = 'skills'),
                    (SELECT count(*) FROM skills WHERE repo = 'skills' AND path LIKE 'skills/c%')",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    });
    assert_eq!(watermark.as_deref(), Some(tips[0].as_str()));
    assert_eq!(cached, 18);
    c.query(pool.close());
}

#[test]
fn a_node_on_an_empty_data_dir_serves_the_whole_history_and_loses_nothing() {
    let mut c = Cluster::start(2, &[]);
    let work = c.clone(GITS[1], 0, "work");
    for i in 0..5 {
        commit_skill(
            &c,
            GITS[1],
            &work,
            &format!("skills/h/h{i}.md"),
            &format!("History {i}"),
        );
        c.run(GITS[1], &work, &["push", "-q", &c.url(i % 2), "HEAD:main"]);
    }
    c.run(
        GITS[1],
        &work,
        &["tag", "-a", "v1", "-m", "the first release"],
    );
    c.run(GITS[1], &work, &["push", "-q", &c.url(0), "v1"]);
    let tip = c.run(GITS[1], &work, &["rev-parse", "HEAD"]);
    let commits = c.run(GITS[1], &work, &["rev-list", "--count", "HEAD"]);

    // A third node on an empty data dir.
    c.nodes.push(c.env.node(2, &[]));
    let fresh = c.clone(GITS[0], 2, "fresh");
    assert_eq!(c.run(GITS[1], &fresh, &["rev-parse", "HEAD"]), tip);
    assert_eq!(
        c.run(GITS[1], &fresh, &["rev-list", "--count", "HEAD"]),
        commits
    );
    assert_eq!(c.run(GITS[1], &fresh, &["tag", "-l"]), "v1");
    assert_fsck_at(&fresh);
    assert_fsck_at(&c.env.node_dir(2).join("repos/skills.git"));

    // Node 0 loses its data dir entirely and starts again: nothing is lost.
    c.nodes[0].kill();
    std::fs::remove_dir_all(c.env.node_dir(0)).unwrap();
    c.nodes[0].restart();
    let again = c.clone(GITS[1], 0, "again");
    assert_eq!(c.run(GITS[1], &again, &["rev-parse", "HEAD"]), tip);
    assert_eq!(c.run(GITS[1], &again, &["rev-parse", "v1^{commit}"]), tip);
    assert_fsck_at(&again);
    // And it takes pushes again.
    commit_skill(&c, GITS[1], &again, "skills/h/after.md", "After the loss");
    c.run(GITS[1], &again, &["push", "-q", "origin", "HEAD:main"]);
    let after = c.run(GITS[1], &again, &["rev-parse", "HEAD"]);
    for n in 0..3 {
        assert_eq!(c.ls_remote_main(n), after);
    }
}

#[test]
fn gc_on_one_node_while_clones_run_through_the_others() {
    // No automatic gc; retired packs go at once (grace 0) so the second gc deletes them.
    let env_vars = [("SKILLSD_GC_PACKS", "0"), ("SKILLSD_PACK_GRACE_SECS", "0")];
    let c = Cluster::start(3, &env_vars);
    let pool = c.pool();
    let work = c.clone(GITS[1], 0, "work");
    for i in 0..8 {
        commit_skill(
            &c,
            GITS[1],
            &work,
            &format!("skills/g/g{i}.md"),
            &format!("Gc {i}"),
        );
        c.run(GITS[1], &work, &["push", "-q", &c.url(i % 3), "HEAD:main"]);
    }
    let tip = c.run(GITS[1], &work, &["rev-parse", "HEAD"]);
    let live = |c: &Cluster| -> i64 {
        c.query(async {
            sqlx::query_scalar("SELECT count(*) FROM git_packs WHERE retired_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap()
        })
    };
    assert!(live(&c) >= 9, "one pack per push, and the template's");

    let stop = std::sync::atomic::AtomicBool::new(false);
    let clones = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for node in [1, 2] {
            let (c, stop, clones, tip) = (&c, &stop, &clones, &tip);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n == 0 {
                    let dir = c.clone(GITS[n % 2], node, &format!("during-{node}-{n}"));
                    assert_eq!(&c.run(GITS[1], &dir, &["rev-parse", "HEAD"]), tip);
                    assert_fsck_at(&dir);
                    std::fs::remove_dir_all(&dir).unwrap();
                    n += 1;
                    clones.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        let mut gc = Command::new(SKILLSD);
        gc.args(["gc", "skills", "--data-dir"])
            .arg(c.env.node_dir(0))
            .arg("--database-url")
            .arg(&c.env.db_url)
            .envs(env_vars);
        let out = stdout_of(gc);
        assert!(out.contains("consolidated into 1 pack"), "{out}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(clones.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_eq!(live(&c), 1);
    // Every node serves from the one pack; a second gc deletes the retired rows.
    for node in 0..3 {
        let dir = c.clone(GITS[0], node, &format!("after-{node}"));
        assert_fsck_at(&dir);
    }
    let mut gc = Command::new(SKILLSD);
    gc.args(["gc", "skills", "--data-dir"])
        .arg(c.env.node_dir(1))
        .arg("--database-url")
        .arg(&c.env.db_url)
        .envs(env_vars);
    stdout_of(gc);
    let rows: i64 = c.query(async {
        sqlx::query_scalar("SELECT count(*) FROM git_packs")
            .fetch_one(&pool)
            .await
            .unwrap()
    });
    assert_eq!(rows, 1, "retired packs are deleted after the grace period");
    c.query(pool.close());
}

#[test]
fn export_writes_a_plain_bare_repository() {
    let c = Cluster::start(1, &[]);
    let work = c.clone(GITS[1], 0, "work");
    commit_skill(&c, GITS[1], &work, "skills/e/exported.md", "Exported");
    c.run(GITS[1], &work, &["push", "-q", "origin", "HEAD:main"]);
    let tip = c.run(GITS[1], &work, &["rev-parse", "HEAD"]);
    let out_dir = c.env.tmp.path().join("backup.git");
    let mut export = Command::new(SKILLSD);
    export
        .args(["export", "skills"])
        .arg(&out_dir)
        .arg("--data-dir")
        .arg(c.env.tmp.path().join("elsewhere"))
        .arg("--database-url")
        .arg(&c.env.db_url);
    let said = stdout_of(export);
    assert!(said.contains("a plain bare repository"), "{said}");
    assert_fsck_at(&out_dir);
    let mut head = Command::new(GITS[0]);
    head.arg("--git-dir")
        .arg(&out_dir)
        .args(["rev-parse", "main"]);
    assert_eq!(stdout_of(head), tip);
    // Any git clones it.
    let mut clone = Command::new(GITS[0]);
    clone
        .args(["clone", "-q"])
        .arg(&out_dir)
        .arg(c.home.join("from-backup"));
    stdout_of(clone);
    assert!(c.home.join("from-backup/skills/e/exported.md").is_file());
    // A directory that is not empty is refused.
    let mut again = Command::new(SKILLSD);
    again
        .args(["export", "skills"])
        .arg(&out_dir)
        .arg("--database-url")
        .arg(&c.env.db_url);
    let out = again.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
}

/// HAProxy running `deploy/haproxy.cfg`, killed when dropped.
struct Haproxy(std::process::Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HAProxy (deploy/haproxy.cfg, as shipped) in TCP mode in front of three nodes:
/// pushes and clones through it land on every node; a node that dies is routed
/// around.
#[test]
fn pushes_and_clones_through_haproxy_in_front_of_three_nodes() {
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("haproxy is installed (scripts/deps)");
    let env = ChildEnv::new();
    let mut nodes = Vec::new();
    let mut lb_env: Vec<(String, String)> = Vec::new();
    let mut http_ports = Vec::new();
    for i in 0..3 {
        nodes.push(ChildServer::start_with(
            &env.node_dir(i),
            &env.db_url,
            &["--database-url", &env.db_url, "--http", "127.0.0.1:0"],
            // HAProxy connects from 127.0.0.1 and names the client in a PROXY
            // header; few sign-ins per client address, to see that they are counted
            // per client, not per balancer.
            &[
                ("SKILLSD_PROXY_PROTOCOL", "127.0.0.1"),
                ("SKILLSD_MAX_STARTUPS_PER_SOURCE", "4"),
            ],
        ));
        lb_env.push((
            format!("SKILLSD_NODE{}", i + 1),
            format!("127.0.0.1:{}", nodes[i].port),
        ));
        let http = nodes[i].http_port.expect("the pages' port in the banner");
        http_ports.push(http);
        lb_env.push((format!("SKILLSD_NODE{}_HTTP_PORT", i + 1), http.to_string()));
    }
    // HAProxy's own port is picked free and then bound by it (it cannot say it back).
    let lb_port = free_port();
    lb_env.push(("SKILLSD_LB_LISTEN".into(), format!("127.0.0.1:{lb_port}")));
    let log = std::fs::File::create(env.tmp.path().join("haproxy.log")).unwrap();
    let _lb = Haproxy(
        Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg"))
            .envs(lb_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy"),
    );
    let mut c = Cluster::of(env, nodes);
    // The test's own clients come from 127.0.0.9 (to the balancer and, without a
    // PROXY header, straight to the nodes).
    c.ssh_extra = "-o BindAddress=127.0.0.9".into();
    let lb = format!("ssh://git@127.0.0.1:{lb_port}/skills.git");
    // Until HAProxy's checks have seen the nodes ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut ls = c.git(GITS[1], &c.home);
        ls.args(["ls-remote", &lb, "refs/heads/main"]);
        if ls.output().unwrap().status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "HAProxy never served");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let work = c.home.join("work");
    let mut clone = c.git(GITS[1], &c.home);
    clone.args(["clone", "-q", &lb]).arg(&work);
    stdout_of(clone);
    for round in 0..9 {
        let bin = GITS[round % 2];
        let tip = commit_skill(
            &c,
            bin,
            &work,
            &format!("skills/lb/lb-{round}.md"),
            &format!("Balanced {round}"),
        );
        c.run(bin, &work, &["push", "-q", "origin", "HEAD:main"]);
        let dir = c.home.join(format!("through-lb-{round}"));
        let mut clone = c.git(bin, &c.home);
        clone.args(["clone", "-q", &lb]).arg(&dir);
        stdout_of(clone);
        assert_eq!(
            c.run(GITS[1], &dir, &["rev-parse", "HEAD"]),
            tip,
            "round {round}"
        );
        for node in 0..3 {
            assert_eq!(c.ls_remote_main(node), tip, "round {round}, node {node}");
        }
    }
    // Idle sockets from another address (127.0.0.2) fill every node's HTTP port,
    // where HAProxy's health checks go: the checks keep their place, no node is
    // marked DOWN, and git through the balancer goes on.
    let mut idle = Vec::new();
    for port in &http_ports {
        for _ in 0..300 {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket
                .bind(
                    &"127.0.0.2:0"
                        .parse::<std::net::SocketAddr>()
                        .unwrap()
                        .into(),
                )
                .unwrap();
            let to: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if socket.connect(&to.into()).is_ok() {
                idle.push(socket);
            }
        }
    }
    assert!(
        idle.len() >= 300,
        "only {} idle sockets connected",
        idle.len()
    );
    for _ in 0..5 {
        // Two failed checks a second apart would take a node out.
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let mut ls = c.git(GITS[1], &c.home);
        ls.args(["ls-remote", &lb, "refs/heads/main"]);
        let out = ls.output().unwrap();
        assert!(
            out.status.success(),
            "through HAProxy while idle sockets wait: {out:?}"
        );
    }
    for port in &http_ports {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", *port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "/readyz of :{port} while idle sockets wait: {answer}"
        );
    }
    let log = std::fs::read_to_string(c.env.tmp.path().join("haproxy.log")).unwrap();
    assert!(!log.contains("is DOWN"), "HAProxy took a node out:\n{log}");
    drop(idle);

    // Idle SSH sockets through the balancer from 127.0.0.2, far more than a node
    // admits from one address: the nodes see 127.0.0.2 in the PROXY headers, refuse
    // its extra sockets, and still sign in the test's client (127.0.0.9) — without
    // the header all would be the balancer's 127.0.0.1, and its share used up.
    let mut idle = Vec::new();
    for _ in 0..60 {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(
                &"127.0.0.2:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        let to: std::net::SocketAddr = format!("127.0.0.1:{lb_port}").parse().unwrap();
        socket.connect(&to.into()).unwrap();
        idle.push(socket);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let refused_by_client = |c: &Cluster| {
        (0..3)
            .map(|i| {
                std::fs::read_to_string(c.env.node_dir(i).with_extension("log")).unwrap_or_default()
            })
            .flat_map(|log| {
                log.lines()
                    .filter(|l| {
                        l.contains("too many connections signing in")
                            && l.contains("peer=127.0.0.2:")
                            && l.contains("balancer=127.0.0.1:")
                    })
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .count()
    };
    while refused_by_client(&c) < 60 - 3 * 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the nodes did not refuse 127.0.0.2's extra sockets by its address"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for _ in 0..3 {
        let mut ls = c.git(GITS[1], &c.home);
        ls.args(["ls-remote", &lb, "refs/heads/main"]);
        let out = ls.output().unwrap();
        assert!(
            out.status.success(),
            "through HAProxy while 127.0.0.2's sockets wait: {out:?}"
        );
    }
    drop(idle);

    // Node 1 dies: HAProxy routes around it; pushes and clones go on.
    c.nodes[0].kill();
    for round in 0..4 {
        let tip = commit_skill(
            &c,
            GITS[1],
            &work,
            &format!("skills/lb/down-{round}.md"),
            &format!("Failover {round}"),
        );
        c.run(GITS[1], &work, &["push", "-q", "origin", "HEAD:main"]);
        let dir = c.home.join(format!("after-kill-{round}"));
        let mut clone = c.git(GITS[0], &c.home);
        clone.args(["clone", "-q", &lb]).arg(&dir);
        stdout_of(clone);
        assert_eq!(c.run(GITS[1], &dir, &["rev-parse", "HEAD"]), tip);
        assert_fsck_at(&dir);
    }
    // HAProxy says so when it takes a node out (what the idle-socket check reads).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let log = std::fs::read_to_string(c.env.tmp.path().join("haproxy.log")).unwrap();
        if log.contains("node1 is DOWN") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no DOWN in:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The upgrade path: a data dir of the single-node layout (a bare repository made and
/// pushed to by stock git: loose objects, a tag) is imported into the database on first
/// start, once: a restart and a second node change nothing, and both serve it whole.
#[test]
fn a_single_node_data_dir_is_imported_once() {
    let env = ChildEnv::new();
    let data = env.node_dir(0);
    let bare = data.join("repos/legacy.git");
    std::fs::create_dir_all(data.join("repos")).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let mut c = Command::new(GITS[1]);
        c.current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Old Timer")
            .env("GIT_AUTHOR_EMAIL", "old@example.com")
            .env("GIT_COMMITTER_NAME", "Old Timer")
            .env("GIT_COMMITTER_EMAIL", "old@example.com")
            .args(args);
        stdout_of(c)
    };
    git(
        env.tmp.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let work = env.tmp.path().join("legacy-work");
    git(
        env.tmp.path(),
        &["init", "-q", "-b", "main", work.to_str().unwrap()],
    );
    for i in 0..3 {
        let file = work.join(format!("skills/old/old-{i}.md"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, skill(&format!("Old {i}"), "")).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", &format!("old {i}")]);
    }
    git(
        &work,
        &[
            "tag",
            "-a",
            "v0",
            "-m",
            "before skillsd kept git in the database",
        ],
    );
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main", "v0"]);
    let tip = git(&work, &["rev-parse", "HEAD"]);
    // Few objects: stock receive-pack stored them loose.
    assert!(
        std::fs::read_dir(bare.join("objects"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().len() == 2)
    );

    let nodes = vec![env.node(0, &[])];
    let mut c = Cluster::of(env, nodes);
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert_eq!(
        log.matches("imported the repository into the database")
            .count(),
        2,
        "skills (from the template) and legacy: {log}"
    );
    let pool = c.pool();
    let state = |c: &Cluster| -> (i64, i64, i64) {
        c.query(async {
            sqlx::query_as(
                "SELECT (SELECT generation FROM git_repos WHERE name = 'legacy'),
                        (SELECT count(*) FROM git_refs WHERE repo = 'legacy'),
                        (SELECT count(*) FROM git_packs WHERE repo = 'legacy')",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        })
    };
    let imported = state(&c);
    assert_eq!(
        (imported.0, imported.1),
        (1, 2),
        "main and v0, generation 1"
    );
    assert!(imported.2 >= 1);
    // A restart and a second node import nothing again.
    c.nodes[0].kill();
    c.nodes[0].restart();
    c.nodes.push(c.env.node(1, &[]));
    assert_eq!(state(&c), imported);
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert_eq!(
        log.matches("imported the repository into the database")
            .count(),
        2
    );
    for (node, bin) in GITS.iter().enumerate() {
        let dir = c.home.join(format!("legacy-{node}"));
        let mut clone = c.git(bin, &c.home);
        clone
            .args(["clone", "-q", &c.nodes[node].url("legacy.git")])
            .arg(&dir);
        stdout_of(clone);
        assert_eq!(c.run(GITS[1], &dir, &["rev-parse", "HEAD"]), tip);
        assert_eq!(c.run(GITS[1], &dir, &["rev-parse", "v0^{commit}"]), tip);
        assert_fsck_at(&dir);
    }
    c.query(pool.close());
}
