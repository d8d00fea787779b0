//! skillsd in-process: its own data dir and database, SSH (and HTTP) on ports it
//! bound, settings tuned per test.

use super::*;

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
            .block_on(skillsd::server::prepare(&settings))
            .expect("server prepares");
        let pool = prepared.state.pool.clone();
        let (listener, addr) = rt
            .block_on(skillsd::server::bind("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let (http_listener, http_port) = if http {
            let (l, a) = rt
                .block_on(skillsd::server::bind("127.0.0.1:0".parse().unwrap()))
                .unwrap();
            (Some(l), a.port())
        } else {
            (None, 0)
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = skillsd::server::run(prepared, listener, http_listener, async {
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
        self.scalar(sql)
    }

    /// The one value one SQL query returns (its first row's first column).
    pub fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        self.query(async {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(&self.pool)
                .await
                .unwrap()
        })
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

pub(crate) fn walkdir(dir: &Path) -> Vec<PathBuf> {
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

/// Mirror and webhook retries within a test's patience: 1 s, then 2 s apart.
pub fn fast_retries(s: &mut Settings) {
    s.delivery.retry_base = std::time::Duration::from_secs(1);
    s.delivery.retry_max = std::time::Duration::from_secs(2);
}
