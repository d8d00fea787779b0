//! Test harness: a real PostgreSQL (one private cluster for the test run, a fresh
//! database per test), skillsd started in-process on an ephemeral port with its own
//! data directory, keys made by `ssh-keygen`, and the real `git` over the real OpenSSH
//! client.
#![allow(dead_code)]

pub mod agents;
pub mod packs;
pub mod upstream;

use skillsd::config::Settings;
use skillsd::localpg::LocalPg;
use skillsd::server;
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use tempfile::TempDir;

/// Both git versions on the machine; every scenario runs with each.
/// Waits (up to `secs`) until `check` holds; fails naming `what` otherwise. The one
/// way the tests wait for something that happens after a call returns.
pub fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    eventually_some(secs, what, || check().then_some(()));
}

/// Waits (up to `secs`) until `check` gives a value, and returns it.
pub fn eventually_some<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(secs),
            "not within {secs} s: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Debian's git (2.39).
pub const GIT_OLD: &str = "/usr/bin/git";
/// The newer git under /usr/local (2.47).
pub const GIT_NEW: &str = "/usr/local/bin/git";
/// Both gits on the machine: every client-facing behaviour is tested with each.
pub const GITS: [&str; 2] = [GIT_OLD, GIT_NEW];

pub const SKILLSD: &str = env!("CARGO_BIN_EXE_skillsd");

/// The HTTP admin token of test servers.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// URL of a database where tests may `CREATE DATABASE`: `SKILLSD_TEST_DATABASE_URL`,
/// or a private cluster under /tmp started on first use.
fn admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("SKILLSD_TEST_DATABASE_URL") {
            return url;
        }
        let pg = LocalPg::new(Path::new("/tmp/skillsd-test-pg")).expect("PostgreSQL is installed");
        pg.ensure_running(false).expect("test PostgreSQL starts");
        pg.url("postgres")
    })
}

fn with_url_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

pub fn run_sql_admin(rt: &tokio::runtime::Runtime, sql: &str) {
    use sqlx::Connection;
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(admin_url())
            .await
            .expect("connect to admin db");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .expect("admin sql");
    });
}

/// A running skillsd with its own data dir and database.
pub struct Server {
    pub port: u16,
    /// The HTTP API's port (0 when not started).
    pub http_port: u16,
    pub data: TempDir,
    pub db_name: String,
    pub db_url: String,
    pub pool: PgPool,
    pub rt: tokio::runtime::Runtime,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(false)
    }

    /// With `http`, also serves the HTTP API on an ephemeral port ([`Server::http_port`]).
    pub fn start_with(http: bool) -> Server {
        Self::start_tuned(http, |_| {})
    }

    /// With the server's settings adjusted before it is prepared (policy, limits,
    /// timeouts): the settings a real `skillsd serve` would load, with this test's data
    /// dir, database and admin token.
    pub fn start_tuned(http: bool, tune: impl FnOnce(&mut Settings)) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let db_name = format!("skillsd_test_{}", uuid::Uuid::new_v4().simple());
        run_sql_admin(&rt, &format!("CREATE DATABASE {db_name}"));
        let db_url = with_url_db(admin_url(), &db_name);
        let data = tempfile::Builder::new()
            .prefix("skillsd-test-")
            .tempdir()
            .unwrap();
        let mut settings = Settings {
            data_dir: data.path().to_path_buf(),
            database_url: Some(db_url.clone()),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            // The listeners are this harness's own (ephemeral ports): never the fixed
            // default pages address, which parallel tests would fight over.
            http: None,
            ..Settings::default()
        };
        tune(&mut settings);
        let prepared = rt
            .block_on(server::prepare(&settings))
            .expect("server prepares");
        let pool = prepared.state.pool.clone();
        let (listener, addr) = rt
            .block_on(server::bind("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let (http_listener, http_port) = if http {
            let (l, a) = rt
                .block_on(server::bind("127.0.0.1:0".parse().unwrap()))
                .unwrap();
            (Some(l), a.port())
        } else {
            (None, 0)
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = server::run(prepared, listener, http_listener, async {
                let _ = rx.await;
            })
            .await;
            let _ = done_tx.send(());
        });
        Server {
            port: addr.port(),
            http_port,
            data,
            db_name,
            db_url,
            pool,
            rt,
            shutdown: Some(tx),
            done: std::sync::Mutex::new(Some(done_rx)),
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("ssh://git@127.0.0.1:{}/{repo}", self.port)
    }

    pub fn repo_path(&self, name: &str) -> PathBuf {
        self.data.path().join("repos").join(format!("{name}.git"))
    }

    /// Runs the skillsd binary against this server's data dir and database.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(&[], args)
    }

    /// [`Server::cli`] with more environment variables.
    pub fn cli_with(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(SKILLSD)
            .args(args)
            .env("SKILLSD_DATA_DIR", self.data.path())
            .env("DATABASE_URL", &self.db_url)
            .env("SKILLSD_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .expect("run skillsd")
    }

    /// Creates a key pair with ssh-keygen and registers it for `name` with `role`
    /// through `skillsd user add`.
    pub fn add_user(&self, name: &str, role: &str) -> Key {
        register(|args| self.cli(args), name, role)
    }

    /// `git rev-parse` of a ref in the server repository (None when absent).
    pub fn server_ref(&self, repo: &str, name: &str) -> Option<String> {
        ref_of(&self.repo_path(repo), name)
    }

    /// The newest sync-log row's id (0 when there is none): rows after it are new.
    pub fn last_log_id(&self) -> i64 {
        self.query(async {
            sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM skill_sync_log")
                .fetch_one(&self.pool)
                .await
                .unwrap()
        })
    }

    /// Cached rows whose full-text vector is not what PostgreSQL's own
    /// `skills_search_vector` gives (a NULL one counts: still to come).
    pub fn vectors_unlike_postgres(&self) -> i64 {
        self.query(async {
            sqlx::query_scalar(
                "SELECT count(*) FROM skills
                 WHERE search IS DISTINCT FROM skills_search_vector(title, description, tags, body)",
            )
            .fetch_one(&self.pool)
            .await
            .unwrap()
        })
    }

    /// Asserts that `git fsck --strict` finds the server repository clean. It reads
    /// the copy as a git session does, under the readers' lock: a gc the pushes before
    /// started in the background deletes no pack while fsck lists them.
    pub fn assert_fsck(&self, repo: &str) {
        let path = self.repo_path(repo);
        let _reading = skillsd::maintenance::read_guard(&path);
        assert_fsck_at(&path);
    }

    /// Files in the repository's object store: packs and loose objects, and any
    /// quarantine directories.
    pub fn object_files(&self, repo: &str) -> Vec<String> {
        let mut out = Vec::new();
        let objects = self.repo_path(repo).join("objects");
        for entry in walkdir(&objects) {
            out.push(
                entry
                    .strip_prefix(&objects)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        out.sort();
        out
    }

    /// The body of `GET path` on the HTTP listener (which must answer 2xx).
    pub fn get(&self, path: &str) -> String {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{}{path}", self.http_port)])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {path}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn query<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// The `bigint` one SQL query returns (e.g. a `count(*)`).
    pub fn count(&self, sql: &str) -> i64 {
        self.query(async {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(&self.pool)
                .await
                .unwrap()
        })
    }
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(p.clone());
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.lock().unwrap().take() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(10));
        }
        let pool = self.pool.clone();
        self.rt.block_on(pool.close());
        run_sql_admin(
            &self.rt,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name),
        );
    }
}

/// An SSH key pair made by ssh-keygen.
pub struct Key {
    pub dir: TempDir,
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Key {
    pub fn generate(name: &str) -> Key {
        let dir = tempfile::Builder::new()
            .prefix("skillsd-key-")
            .tempdir()
            .unwrap();
        let private = dir.path().join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&private)
            .output()
            .unwrap();
        assert!(out.status.success());
        let public = private.with_extension("pub");
        Key {
            dir,
            private,
            public,
        }
    }
}

/// A git client: one git binary, one key, an isolated HOME.
pub struct Git {
    pub bin: &'static str,
    pub home: TempDir,
    pub ssh_command: String,
}

impl Git {
    pub fn new(bin: &'static str, key: &Key, server: &Server) -> Git {
        let home = tempfile::Builder::new()
            .prefix("skillsd-home-")
            .tempdir()
            .unwrap();
        let ssh_command = format!("ssh {} -p {}", ssh_options(key), server.port);
        Git {
            bin,
            home,
            ssh_command,
        }
    }

    pub fn cmd(&self, dir: &Path) -> Command {
        let mut c = Command::new(self.bin);
        c.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_SSH_COMMAND", &self.ssh_command)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "Test Author")
            .env("GIT_COMMITTER_EMAIL", "author@example.com")
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "advice.detachedHead=false",
            ]);
        c
    }

    /// Runs git in `dir`; returns (success, stdout, stderr).
    pub fn run(&self, dir: &Path, args: &[&str]) -> (bool, String, String) {
        let out = self.cmd(dir).args(args).output().expect("run git");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs git with a terminal (script(1) gives it one), as a person at a prompt
    /// does: git then asks the server for progress (no `quiet`). Returns everything
    /// the terminal showed.
    pub fn run_in_tty(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        let mut line = String::from(self.bin);
        for a in args {
            line.push(' ');
            line.push_str(a);
        }
        let probe = self.cmd(dir);
        let mut c = Command::new("script");
        c.current_dir(dir).env_clear();
        for (k, v) in probe.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.args(["-qec", &line, "/dev/null"]);
        let out = c.output().expect("run script");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        )
    }

    /// Starts git in the background (stdout and stderr captured).
    pub fn spawn(&self, dir: &Path, args: &[&str]) -> std::process::Child {
        self.cmd(dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start git")
    }

    /// Runs git and asserts success; returns stdout.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(dir, args);
        assert!(
            ok,
            "`{} {}` failed:\n{stdout}\n{stderr}",
            self.bin,
            args.join(" ")
        );
        stdout
    }

    /// Runs git and asserts failure; returns stderr.
    pub fn fails(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(dir, args);
        assert!(
            !ok,
            "`{} {}` should have failed:\n{stdout}\n{stderr}",
            self.bin,
            args.join(" ")
        );
        stderr
    }

    /// Clones `url` into a new directory under HOME and returns its path.
    pub fn clone(&self, url: &str, extra: &[&str]) -> PathBuf {
        let dest = self
            .home
            .path()
            .join(format!("clone-{}", uuid::Uuid::new_v4().simple()));
        let mut args = vec!["clone"];
        args.extend_from_slice(extra);
        args.push(url);
        args.push(dest.to_str().unwrap());
        self.ok(self.home.path(), &args);
        dest
    }

    pub fn head(&self, dir: &Path) -> String {
        self.ok(dir, &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Writes a file (creating folders), `git add`s everything and commits.
    pub fn commit_files<P: AsRef<str>, C: AsRef<[u8]>>(
        &self,
        dir: &Path,
        files: &[(P, C)],
        message: &str,
    ) -> String {
        for (path, content) in files {
            let p = dir.join(path.as_ref());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
        }
        self.ok(dir, &["add", "-A"]);
        self.ok(dir, &["commit", "-q", "-m", message]);
        self.head(dir)
    }
}

/// A valid skill file.
pub fn skill(title: &str, extra: &str) -> String {
    format!("---\ntitle: {title}\n{extra}---\n\n# {title}\n\nSome body text.\n")
}

/// A fresh database (name, url) for tests that run skillsd as a child process.
pub fn fresh_database(rt: &tokio::runtime::Runtime) -> (String, String) {
    fresh_database_with(rt, "")
}

/// A fresh database created with extra options, e.g. `LOCALE 'tr_TR.UTF-8' TEMPLATE template0`.
pub fn fresh_database_with(rt: &tokio::runtime::Runtime, options: &str) -> (String, String) {
    let name = format!("skillsd_test_{}", uuid::Uuid::new_v4().simple());
    run_sql_admin(rt, &format!("CREATE DATABASE {name} {options}"));
    let url = with_url_db(admin_url(), &name);
    (name, url)
}

/// skillsd as a child process (`skillsd serve`), for tests that kill it.
pub struct ChildServer {
    /// The SSH port: bound by skillsd itself (`--listen 127.0.0.1:0`) and read back
    /// from its banner; a restart binds the same port again, so URLs stay valid.
    pub port: u16,
    /// The pages' port when `args` hold `--http 127.0.0.1:0` (read back from the
    /// banner at each start).
    pub http_port: Option<u16>,
    pub data: PathBuf,
    pub db_url: String,
    /// Extra arguments of `serve` and environment variables.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    child: Option<std::process::Child>,
}

impl ChildServer {
    pub fn start(data: &Path, db_url: &str) -> ChildServer {
        Self::start_with(data, db_url, &[], &[])
    }

    pub fn start_with(
        data: &Path,
        db_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ChildServer {
        let mut s = ChildServer {
            port: 0,
            http_port: None,
            data: data.to_path_buf(),
            db_url: db_url.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        s.restart();
        s
    }

    /// Starts (again): reads the ports back from the banner, then waits until SSH
    /// answers.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .unwrap();
        let banner = self.data.with_extension("banner");
        let child = Command::new(SKILLSD)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data)
            .env("DATABASE_URL", &self.db_url)
            .env("SKILLSD_LOG", "info,sqlx=warn,russh=warn")
            // Tests run many servers at once: none takes the fixed default pages
            // address (a test's own `--http ADDR` in `args` wins over this).
            .env("SKILLSD_HTTP", "off")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::fs::File::create(&banner).unwrap())
            .stderr(log)
            .spawn()
            .expect("start skillsd");
        self.child = Some(child);
        let bound = read_banner(&banner, std::time::Duration::from_secs(60), || self.alive());
        self.port = bound.ssh;
        self.http_port = bound.http;
        wait_ready(self.port, std::time::Duration::from_secs(60));
    }

    /// SIGTERM, then waits (up to a minute) for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let out = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "skillsd did not exit after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("ssh://git@127.0.0.1:{}/{repo}", self.port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Is the process still running (not exited or killed by a signal)?
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Resets the kernel's record of the peak resident memory (`VmHWM`).
    pub fn reset_peak_rss(&self) {
        let pid = self.pid().expect("running");
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    }

    /// Peak resident memory since the start or the last reset, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.pid().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Server {
    /// Makes this server's database refuse connections and drops the open ones.
    pub fn database_down(&self) {
        run_sql_admin(
            &self.rt,
            &format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
                self.db_name
            ),
        );
        run_sql_admin(
            &self.rt,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.db_name
            ),
        );
    }

    pub fn database_up(&self) {
        run_sql_admin(
            &self.rt,
            &format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                self.db_name
            ),
        );
    }
}

/// The addresses a `skillsd serve` bound, as its banner says them.
pub struct Bound {
    pub ssh: u16,
    /// The pages' port, when they are served at their own address.
    pub http: Option<u16>,
}

/// Waits for `skillsd serve`'s banner in the file `path` (its standard output) and
/// reads back the ports it bound (`--listen 127.0.0.1:0`: the kernel picks, nothing
/// is picked and then bound by someone else); panics if `alive` says the process
/// ended first.
pub fn read_banner(
    path: &Path,
    within: std::time::Duration,
    mut alive: impl FnMut() -> bool,
) -> Bound {
    let port_after = |line: &str, prefix: &str| -> Option<u16> {
        let rest = line.strip_prefix(prefix)?;
        let addr: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
            .collect();
        addr.rsplit_once(':')?.1.parse().ok()
    };
    let deadline = std::time::Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // The pages' line ends the banner.
        if let Some(pages) = text.lines().find(|l| l.starts_with("  pages:  ")) {
            let ssh = text
                .lines()
                .find_map(|l| port_after(l, "skillsd listening on "))
                .unwrap_or_else(|| panic!("no address in the banner:\n{text}"));
            return Bound {
                ssh,
                http: port_after(pages, "  pages:  http://"),
            };
        }
        assert!(alive(), "skillsd ended before its banner:\n{text}");
        assert!(
            std::time::Instant::now() < deadline,
            "skillsd did not start:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until skillsd serves SSH on `port`: its SSH banner arrives. (The port is bound
/// before the start's database work, so an open port alone does not mean ready.)
pub fn wait_ready(port: u16, within: std::time::Duration) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + within;
    loop {
        // From 127.0.0.8: a node that reads PROXY headers from 127.0.0.1 (a balancer
        // there, tests/nodes.rs) greets this address at once.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 8], 0)).into())
            .unwrap();
        let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Ok(mut s) = socket
            .connect(&to.into())
            .map(|_| std::net::TcpStream::from(socket))
        {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(500)));
            let mut banner = [0u8; 4];
            if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "skillsd did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The OpenSSH client options every test uses: only this key, no host key checks
/// (every server has a fresh host key), no prompts.
pub fn ssh_options(key: &Key) -> String {
    format!(
        "-i {} -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o BatchMode=yes -o LogLevel=ERROR",
        key.private.display()
    )
}

/// `ssh git@127.0.0.1 -p PORT` with [`ssh_options`]; append extra options and the command.
pub fn ssh_to(key: &Key, port: u16) -> Command {
    let mut c = Command::new("ssh");
    c.args(ssh_options(key).split(' '))
        .args(["-p", &port.to_string(), "git@127.0.0.1"])
        .stdin(std::process::Stdio::null());
    c
}

/// A git command for tests that run skillsd as a child process: `/usr/local/bin/git`
/// in `dir`, HOME at `home`, ssh with `key` to `port`, a fixed identity.
pub fn git_at(key: &Key, port: u16, home: &Path, dir: &Path) -> Command {
    let mut c = Command::new(GIT_NEW);
    c.current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "GIT_SSH_COMMAND",
            format!("ssh {} -p {port}", ssh_options(key)),
        )
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com");
    c
}

/// A port nobody listens on right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upload-pack session of `key` held open (it waits for wants that never come),
/// returned once its advertisement arrived, so the session surely runs.
pub fn hold_session(key: &Key, port: u16) -> std::process::Child {
    use std::io::Read;
    let mut held = ssh_to(key, port)
        .arg("git-upload-pack '/skills.git'")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4];
    held.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    held
}

/// Runs a command, asserts success, returns its trimmed stdout.
pub fn stdout_of(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh database and data directory for skillsd child processes; the database is
/// dropped at the end.
pub struct ChildEnv {
    pub rt: tokio::runtime::Runtime,
    pub db_name: String,
    pub db_url: String,
    pub tmp: TempDir,
    pub data: PathBuf,
}

impl ChildEnv {
    pub fn new() -> ChildEnv {
        Self::with_database_options("")
    }

    /// With a database created with `options` (`LOCALE ...`).
    pub fn with_database_options(options: &str) -> ChildEnv {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (db_name, db_url) = fresh_database_with(&rt, options);
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        ChildEnv {
            rt,
            db_name,
            db_url,
            tmp,
            data,
        }
    }

    /// `skillsd serve` on this database and data dir, with extra arguments and
    /// environment.
    pub fn start(&self, args: &[&str], env: &[(&str, &str)]) -> ChildServer {
        ChildServer::start_with(&self.data, &self.db_url, args, env)
    }

    /// The data dir of node `i` of a cluster on this database.
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("node{i}"))
    }

    /// `skillsd serve` as node `i`: this database, its own data dir, more environment.
    pub fn node(&self, i: usize, env: &[(&str, &str)]) -> ChildServer {
        ChildServer::start_with(
            &self.node_dir(i),
            &self.db_url,
            &["--database-url", &self.db_url],
            env,
        )
    }

    /// A skillsd command on this database (a data dir of its own, as an operator's
    /// machine would have).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(SKILLSD)
            .args(args)
            .arg("--data-dir")
            .arg(self.tmp.path().join("cli"))
            .arg("--database-url")
            .arg(&self.db_url)
            .env("SKILLSD_LOG", "warn")
            .output()
            .unwrap()
    }

    /// The `bigint` one SQL query returns on this database (e.g. a `count(*)`).
    pub fn count(&self, sql: &str) -> i64 {
        self.rt.block_on(async {
            let pool = skillsd::db::connect(&self.db_url).await.unwrap();
            let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        })
    }

    /// A key registered with `skillsd user add NAME --role writer`.
    pub fn add_writer(&self, name: &str) -> Key {
        register(|args| self.cli(args), name, "writer")
    }
}

/// A key pair made by ssh-keygen, registered for `name` with `role` by `skillsd user
/// add` run through `cli`.
fn register(cli: impl Fn(&[&str]) -> Output, name: &str, role: &str) -> Key {
    let key = Key::generate(name);
    let out = cli(&[
        "user",
        "add",
        name,
        "--role",
        role,
        "--key",
        key.public.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

/// Clones `skills` from `node` with `key` into `home/work` (HOME `home`, made here).
pub fn clone_from(key: &Key, node: &ChildServer, home: &Path) -> PathBuf {
    std::fs::create_dir_all(home).unwrap();
    let work = home.join("work");
    let mut clone = git_at(key, node.port, home, home);
    clone.args(["clone", "-q", &node.url("skills")]).arg(&work);
    stdout_of(clone);
    work
}

/// Writes `file` in the clone `work` (HOME `home`), commits it and pushes `main` to
/// `node` with `key`; returns the new head.
pub fn commit_and_push(
    key: &Key,
    node: &ChildServer,
    home: &Path,
    work: &Path,
    file: &str,
    content: &str,
) -> String {
    let path = work.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    let url = node.url("skills");
    for args in [
        vec!["add", "-A"],
        vec!["commit", "-q", "-m", file],
        vec!["push", "-q", &url, "HEAD:main"],
    ] {
        let mut c = git_at(key, node.port, home, work);
        c.args(&args);
        stdout_of(c);
    }
    let mut head = git_at(key, node.port, home, work);
    head.args(["rev-parse", "HEAD"]);
    stdout_of(head)
}

/// A command's standard output, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Mirror and webhook retries within a test's patience: 1 s, then 2 s apart.
pub fn fast_retries(s: &mut Settings) {
    s.delivery.retry_base = std::time::Duration::from_secs(1);
    s.delivery.retry_max = std::time::Duration::from_secs(2);
}

/// A ref of a repository (`None`: absent).
pub fn ref_of(git_dir: &Path, name: &str) -> Option<String> {
    let out = Command::new(GIT_NEW)
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--verify", "-q", name])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Asserts that `git fsck --strict` finds the repository at `dir` (bare, or a clone's
/// working tree) clean.
pub fn assert_fsck_at(dir: &Path) {
    let out = Command::new(GIT_NEW)
        .current_dir(dir)
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for ChildEnv {
    fn drop(&mut self) {
        run_sql_admin(
            &self.rt,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name),
        );
    }
}

/// A skillsd child process with a fresh database, a registered writer key and a clone
/// of `skills` in `home/work`.
pub struct ChildFixture {
    pub env: ChildEnv,
    pub home: PathBuf,
    pub work: PathBuf,
    pub key: Key,
    pub server: ChildServer,
}

impl std::ops::Deref for ChildFixture {
    type Target = ChildEnv;
    fn deref(&self) -> &ChildEnv {
        &self.env
    }
}

impl ChildFixture {
    pub fn start(user: &str) -> ChildFixture {
        Self::start_with(user, &[], &[])
    }

    /// With extra arguments of `serve` and environment variables.
    pub fn start_with(user: &str, args: &[&str], env_vars: &[(&str, &str)]) -> ChildFixture {
        Self::start_in(ChildEnv::new(), user, args, env_vars)
    }

    /// In `env` (e.g. a database with another locale).
    pub fn start_in(
        env: ChildEnv,
        user: &str,
        args: &[&str],
        env_vars: &[(&str, &str)],
    ) -> ChildFixture {
        let server = env.start(args, env_vars);
        let key = Key::generate(user);
        let mut add = Command::new(SKILLSD);
        add.args([
            "user",
            "add",
            user,
            "--role",
            "writer",
            "--key",
            key.public.to_str().unwrap(),
        ])
        .env("DATABASE_URL", &env.db_url)
        .arg("--data-dir")
        .arg(&env.data);
        stdout_of(add);
        let home = env.tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let work = home.join("work");
        let mut clone = git_at(&key, server.port, &home, &home);
        clone
            .args(["clone", "-q", &server.url("skills.git")])
            .arg(&work);
        stdout_of(clone);
        ChildFixture {
            env,
            home,
            work,
            key,
            server,
        }
    }

    /// git in the work clone.
    pub fn git(&self) -> Command {
        git_at(&self.key, self.server.port, &self.home, &self.work)
    }

    /// Commits everything in the work clone; its commit id.
    pub fn commit_all(&self, message: &str) -> String {
        for args in [&["add", "-A"][..], &["commit", "-q", "-m", message]] {
            let mut c = self.git();
            c.args(args);
            stdout_of(c);
        }
        let mut head = self.git();
        head.args(["rev-parse", "HEAD"]);
        stdout_of(head)
    }

    /// `git push -q origin main` from the work clone, running in the background.
    pub fn push_in_background(&self) -> std::process::Child {
        self.git()
            .args(["push", "-q", "origin", "main"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The server repository's `main`.
    pub fn main(&self) -> String {
        let mut c = Command::new(GIT_NEW);
        c.arg("--git-dir")
            .arg(self.data.join("repos/skills.git"))
            .args(["rev-parse", "refs/heads/main"]);
        stdout_of(c)
    }
}

impl Drop for ChildFixture {
    fn drop(&mut self) {
        // The server goes first; then `env` drops the database.
        self.server.kill();
    }
}

/// Asserts that `text` contains every one of `expected`, naming the first one missing.
pub fn assert_contains_all(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "missing `{e}` in:\n{text}");
    }
}
