//! A private PostgreSQL cluster for when no `DATABASE_URL` is given: created with
//! `initdb` under the data directory, started with `pg_ctl`, reachable only through a
//! Unix socket in its own directory (no TCP port, so it never clashes with another
//! server). As root, the server runs as the `postgres` system user, as PostgreSQL
//! requires.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    #[error(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found; install PostgreSQL \
         (Debian: `apt-get install postgresql`) or pass --database-url"
    )]
    NotInstalled,
    #[error("{0}")]
    Failed(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A local cluster.
#[derive(Debug, Clone)]
pub struct LocalPg {
    pub data: PathBuf,
    pub socket_dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

/// `psql`: from the newest PostgreSQL installed, else from `PATH`.
pub fn psql() -> PathBuf {
    find_bin()
        .map(|b| b.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

fn find_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    // The newest version: compared as numbers (`15` after `9.6`), not as text.
    candidates.sort_by_key(|bin| version_key(bin));
    if let Some(best) = candidates.pop() {
        return Some(best);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    })
}

/// `/usr/lib/postgresql/<version>/bin` → the version's numbers (`9.6` → `[9, 6]`).
fn version_key(bin: &Path) -> Vec<u64> {
    bin.parent()
        .and_then(|p| p.file_name())
        .map(|v| {
            v.to_string_lossy()
                .split('.')
                .map(|n| n.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

impl LocalPg {
    /// A cluster in `dir` (`dir/data`, socket in `dir/sock`).
    pub fn new(dir: &Path) -> Result<LocalPg, LocalPgError> {
        let bin = find_bin().ok_or(LocalPgError::NotInstalled)?;
        let dir = std::path::absolute(dir)?;
        Ok(LocalPg {
            data: dir.join("data"),
            socket_dir: dir.join("sock"),
            bin,
            as_postgres: is_root(),
        })
    }

    /// Whether `dir` holds a cluster (made by [`LocalPg::ensure_running`]), without
    /// creating or starting anything.
    pub fn exists(dir: &Path) -> bool {
        dir.join("data").join("PG_VERSION").is_file()
    }

    fn cmd(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.arg("-u").arg("postgres").arg("--").arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<(), LocalPgError> {
        let out = cmd.output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(LocalPgError::Failed(format!(
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            )))
        }
    }

    /// Creates the cluster if needed and starts it if it is not running. `durable =
    /// false` turns off fsync (for tests). Returns whether this call started it (it
    /// was not running): only then is it the caller's to stop.
    pub fn ensure_running(&self, durable: bool) -> Result<bool, LocalPgError> {
        let root = self.data.parent().expect("data has a parent");
        std::fs::create_dir_all(root)?;
        std::fs::create_dir_all(&self.socket_dir)?;
        if self.as_postgres {
            chown_postgres(root)?;
            chown_postgres(&self.socket_dir)?;
        }
        if !self.data.join("PG_VERSION").is_file() {
            let mut c = self.cmd("initdb");
            c.arg("-D").arg(&self.data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                // Whatever the environment's locale: C.UTF-8 sorts by code point and
                // lower-cases as skillsd's full-text vectors expect.
                "--locale=C.UTF-8",
                "--no-instructions",
            ]);
            if !durable {
                c.arg("--no-sync");
            }
            self.run(c, "initdb").map_err(|e| {
                LocalPgError::Failed(format!(
                    "{e}\n(the directory {} must be reachable by the user running PostgreSQL)",
                    root.display()
                ))
            })?;
        }
        let mut status = self.cmd("pg_ctl");
        status.arg("status").arg("-D").arg(&self.data);
        if status.output()?.status.success() {
            return Ok(false);
        }
        let mut opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c max_connections=200",
            self.socket_dir.display()
        );
        if !durable {
            opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let mut start = self.cmd("pg_ctl");
        start
            .arg("start")
            .arg("-w")
            .arg("-t")
            .arg("60")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.join("server.log"))
            .arg("-o")
            .arg(opts);
        self.run(start, "pg_ctl start")?;
        Ok(true)
    }

    /// A guard that stops this cluster when dropped (for the process that started it).
    pub fn stop_on_drop(self) -> StartedCluster {
        StartedCluster(self)
    }

    pub fn stop(&self) -> Result<(), LocalPgError> {
        let mut c = self.cmd("pg_ctl");
        c.arg("stop").arg("-D").arg(&self.data).args(["-m", "fast"]);
        self.run(c, "pg_ctl stop")
    }

    /// Connection URL for `database` over the cluster's socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.socket_dir.display()
        )
    }

    /// Creates `database` if it does not exist.
    pub async fn create_database(&self, database: &str) -> Result<(), LocalPgError> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| {
                LocalPgError::Failed(format!("cannot connect to the local PostgreSQL: {e}"))
            })?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await
                .map_err(|e| LocalPgError::Failed(e.to_string()))?;
        if !exists {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{}\"",
                database.replace('"', "")
            )))
            .execute(&mut conn)
            .await
            .map_err(|e| LocalPgError::Failed(e.to_string()))?;
        }
        Ok(())
    }
}

fn is_root() -> bool {
    // SAFETY-free check: the effective uid via /proc, no libc needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn chown_postgres(path: &Path) -> Result<(), LocalPgError> {
    let out = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LocalPgError::Failed(format!(
            "chown postgres {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// A private cluster this process started: stopped when the guard is dropped, so
/// `skillsd serve` (or any command) leaves no PostgreSQL running behind it. A cluster
/// found running is someone else's and has no guard.
pub struct StartedCluster(LocalPg);

impl Drop for StartedCluster {
    fn drop(&mut self) {
        match self.0.stop() {
            Ok(()) => tracing::info!("stopped the private PostgreSQL this process started"),
            Err(e) => tracing::warn!(error = %e, "could not stop the private PostgreSQL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_numbers() {
        let mut bins: Vec<PathBuf> = ["9.6", "15", "10", "16"]
            .iter()
            .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")))
            .collect();
        bins.sort_by_key(|b| version_key(b));
        let order: Vec<String> = bins
            .iter()
            .map(|b| {
                b.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(order, ["9.6", "10", "15", "16"]);
    }
}
