//! skillsd as a child process (`skillsd serve`): for tests that kill, restart or run
//! several nodes; ports read back from its banner.

use super::*;

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

    /// The value of the unlabelled series `name` on `/metrics` (the server must run
    /// with `--http`).
    pub fn metric(&self, name: &str) -> f64 {
        let port = self.http_port.expect("a server started with --http");
        let out = Command::new("curl")
            .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET /metrics: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
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

/// A port nobody listens on right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

impl Drop for ChildEnv {
    fn drop(&mut self) {
        run_sql_admin(
            &self.rt,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name),
        );
    }
}

/// A key pair made by ssh-keygen, registered for `name` with `role` by `skillsd user
/// add` run through `cli`.
pub(crate) fn register(cli: impl Fn(&[&str]) -> Output, name: &str, role: &str) -> Key {
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
