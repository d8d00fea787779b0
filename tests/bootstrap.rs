//! First start on a fresh install: `--admin-key` registers the first admin, and
//! `SKILLSD_LOG_FORMAT=json` gives one JSON object per log line.

use crate::common;

use common::{ChildEnv, Key, ssh_to};

#[test]
fn admin_key_and_json_logs() {
    let env = ChildEnv::new();
    let key = Key::generate("first-admin");
    let mut server = env.start(
        &["--admin-key", key.public.to_str().unwrap()],
        &[("SKILLSD_LOG_FORMAT", "json")],
    );
    let out = ssh_to(&key, server.port).arg("whoami").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("user: admin\nrole: admin\n"), "{stdout}");
    // A restart with the same key changes nothing (the key is already registered).
    server.kill();
    server.restart();
    let out = ssh_to(&key, server.port).arg("whoami").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("user: admin\nrole: admin\n"));
    server.kill();
    let log = std::fs::read_to_string(env.data.with_extension("log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("\"user\":\"admin\"")),
        "the exec span names the user"
    );
}

#[test]
fn config_file_with_environment_taking_precedence() {
    let env = ChildEnv::new();
    let key = Key::generate("config-admin");
    let config = env.tmp.path().join("skillsd.toml");
    std::fs::write(
        &config,
        format!(
            "admin_keys = \"{}\"\nlog_format = \"json\"\nmax_sessions_per_user = 1\n",
            key.public.display()
        ),
    )
    .unwrap();
    // The environment wins over the file: text logs, not JSON.
    let mut server = env.start(
        &["--config", config.to_str().unwrap()],
        &[("SKILLSD_LOG_FORMAT", "text")],
    );
    let out = ssh_to(&key, server.port).arg("whoami").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("user: admin\nrole: admin\n"));
    // The file's `max_sessions_per_user = 1` applies: with one session held open, a
    // second one is refused.
    let mut held = common::hold_session(&key, server.port);
    let out = ssh_to(&key, server.port).arg("whoami").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("admin already has 1 sessions running (the limit)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    held.kill().unwrap();
    held.wait().unwrap();
    server.kill();
    let log = std::fs::read_to_string(env.data.with_extension("log")).unwrap();
    assert!(log.lines().any(|l| l.contains("INFO")), "{log}");
    assert!(!log.lines().any(|l| l.starts_with('{')), "{log}");

    // A mistake in the file stops the start with a clear message.
    std::fs::write(&config, "lisen = \"0.0.0.0:22\"\n").unwrap();
    let out = std::process::Command::new(common::SKILLSD)
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown setting `lisen`"), "{stderr}");
    // --help lists every setting.
    let out = std::process::Command::new(common::SKILLSD)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("max_pack_bytes") && help.contains("SKILLSD_MAX_PACK_BYTES"),
        "{help}"
    );
}

#[test]
fn sessions_have_a_time_limit() {
    let env = ChildEnv::new();
    let key = Key::generate("slow");
    let server = env.start(
        &["--admin-key", key.public.to_str().unwrap()],
        &[("SKILLSD_SESSION_TIMEOUT_SECS", "1")],
    );
    // upload-pack waits for wants that never come.
    let started = std::time::Instant::now();
    let mut child = ssh_to(&key, server.port)
        .arg("git-upload-pack '/skills.git'")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _keep_open = child.stdin.take();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("ERROR: the session took longer than 1 s"),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(1));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn idle_connections_that_never_run_a_command_are_closed() {
    let env = ChildEnv::new();
    let key = Key::generate("idle");
    let server = env.start(
        &["--admin-key", key.public.to_str().unwrap()],
        &[("SKILLSD_IDLE_TIMEOUT_SECS", "1")],
    );
    // -N: authenticate, then run nothing at all. -v: ssh says when it authenticated.
    let started = std::time::Instant::now();
    let out = ssh_to(&key, server.port)
        .args(["-v", "-N"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Authenticated to 127.0.0.1"), "{stderr}");
    assert!(
        took >= std::time::Duration::from_millis(900),
        "closed after {took:?}, before the idle timeout: {stderr}"
    );
    assert!(
        took < std::time::Duration::from_secs(20),
        "the idle connection was not closed"
    );
}

/// `serve` without `DATABASE_URL` runs a private PostgreSQL under the data dir; on
/// SIGTERM it stops the cluster it started. A command that started the cluster stops
/// it too; a cluster found running (someone else's) is left running.
#[test]
fn the_private_postgres_is_stopped_by_whoever_started_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // The cluster runs as `postgres` when the tests run as root: it must reach the dir.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    let pid_file = data.join("postgres/data/postmaster.pid");
    let banner = tmp.path().join("banner");
    let mut serve = std::process::Command::new(common::SKILLSD)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("DATABASE_URL")
        .env("SKILLSD_LOG", "warn")
        .env("SKILLSD_HTTP", "off")
        .stdout(std::fs::File::create(&banner).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let port = common::read_banner(&banner, std::time::Duration::from_secs(120), || {
        serve.try_wait().unwrap().is_none()
    })
    .ssh;
    common::wait_ready(port, std::time::Duration::from_secs(120));
    assert!(serve.try_wait().unwrap().is_none(), "skillsd exited");
    assert!(pid_file.exists(), "no private PostgreSQL is running");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(serve.wait().unwrap().success());
    assert!(
        !pid_file.exists(),
        "the private PostgreSQL was left running"
    );
    // The banner: the host key's fingerprint as ssh-keygen shows it, the database in
    // use and the command that opens it.
    let banner = std::fs::read_to_string(tmp.path().join("banner")).unwrap();
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(data.join("ssh_host_ed25519_key.pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&keygen.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let abs = std::path::absolute(&data).unwrap();
    common::assert_contains_all(
        &banner,
        &[
            &format!("  host key: {fingerprint} ("),
            &format!(
                "  database: postgres://postgres@localhost/skillsd?host={}/postgres/sock (the private cluster under the data dir)\n",
                abs.display()
            ),
            &format!("  psql:   skillsd psql --data-dir {}\n", abs.display()),
        ],
    );
    // `skillsd psql` opens that database, starting the cluster for the session only.
    let psql = std::process::Command::new(common::SKILLSD)
        .args(["psql", "--data-dir"])
        .arg(&data)
        .args(["--", "-XAtc", "SELECT name FROM git_repos"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&psql.stdout),
        "skills\n",
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    assert!(
        !pid_file.exists(),
        "`skillsd psql` left the cluster running"
    );

    let user_list = || {
        std::process::Command::new(common::SKILLSD)
            .args(["user", "list", "--data-dir"])
            .arg(&data)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = user_list();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !pid_file.exists(),
        "`user list` left the cluster it started running"
    );

    let pg = skillsd::localpg::LocalPg::new(&data.join("postgres")).unwrap();
    assert!(
        pg.ensure_running(true).unwrap(),
        "the cluster was not stopped"
    );
    let out = user_list();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pid_file.exists(), "a cluster found running was stopped");
    pg.stop().unwrap();
}

/// A malformed setting stops the start with its name and value (it used to be replaced
/// by the default without a word), from the environment and from the config file.
#[test]
fn malformed_settings_stop_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::SKILLSD)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env("SKILLSD_MAX_PACK_BYTES", "lots")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SKILLSD_MAX_PACK_BYTES=\"lots\" (`max_pack_bytes` in the file): expected a whole number"),
        "{stderr}"
    );
    let config = tmp.path().join("skillsd.toml");
    std::fs::write(&config, "max_tree_depth = \"deep\"\n").unwrap();
    let out = std::process::Command::new(common::SKILLSD)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env_remove("SKILLSD_MAX_TREE_DEPTH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SKILLSD_MAX_TREE_DEPTH=\"deep\""),
        "{stderr}"
    );
}

/// A port already taken is said at once, before the database is even tried.
#[test]
fn a_taken_port_is_reported_before_the_database() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(common::SKILLSD)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        // A database that does not answer: reached first, it would be the error.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("--listen ADDR"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(taken);
}

/// `skillsd migrate` applies the schema to an empty database, and again changes nothing.
#[test]
fn migrate_applies_the_schema_once() {
    let env = ChildEnv::new();
    for _ in 0..2 {
        let out = std::process::Command::new(common::SKILLSD)
            .args(["migrate", "--database-url", &env.db_url, "--data-dir"])
            .arg(&env.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "migrations applied\n");
    }
    let pool = env.rt.block_on(skillsd::db::connect(&env.db_url)).unwrap();
    let (tables, migrations): (i64, i64) = env.rt.block_on(async {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM information_schema.tables
                     WHERE table_schema = 'public' AND table_name IN
                       ('skills', 'skill_sync_log', 'pushes', 'sync_state', 'users', 'ssh_keys',
                        'git_repos', 'git_refs', 'git_packs', 'git_pack_chunks', 'server_identity')),
                    (SELECT count(*) FROM _sqlx_migrations WHERE success)",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    });
    assert_eq!(tables, 11);
    assert_eq!(migrations, skillsd::db::MIGRATOR.iter().count() as i64);
    env.rt.block_on(pool.close());
}

/// Push limits from the config file and the environment really take effect in
/// `skillsd serve`: the file's `max_file_bytes` refuses a bigger file, and the
/// environment's `SKILLSD_MAX_FILES_PER_PUSH` wins over the file's `max_files_per_push`.
#[test]
fn push_limits_from_the_file_and_the_environment_apply() {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("skillsd.toml");
    std::fs::write(&config, "max_file_bytes = 2000\nmax_files_per_push = 1\n").unwrap();
    let f = common::ChildFixture::start_with(
        "limited",
        &["--config", config.to_str().unwrap()],
        &[("SKILLSD_MAX_FILES_PER_PUSH", "3")],
    );
    let push = |f: &common::ChildFixture| {
        let out = f.git().args(["push", "origin", "main"]).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Two files: over the file's limit of 1, within the environment's 3.
    for name in ["one", "two"] {
        std::fs::create_dir_all(f.work.join("skills/lim")).unwrap();
        std::fs::write(
            f.work.join(format!("skills/lim/{name}.md")),
            common::skill(name, ""),
        )
        .unwrap();
    }
    let two = f.commit_all("two small skills");
    let (ok, stderr) = push(&f);
    assert!(ok, "{stderr}");
    assert_eq!(f.main(), two);
    // Four files: over the environment's 3.
    for name in ["a", "b", "c", "d"] {
        std::fs::write(
            f.work.join(format!("skills/lim/{name}.md")),
            common::skill(name, ""),
        )
        .unwrap();
    }
    f.commit_all("four more");
    let (ok, stderr) = push(&f);
    assert!(!ok);
    assert!(
        stderr.contains("adds or changes 4 skill files, more than the limit of 3"),
        "{stderr}"
    );
    assert_eq!(f.main(), two);
    let mut reset = f.git();
    reset.args(["reset", "-q", "--hard", &two]);
    common::stdout_of(reset);
    // One file over the file's 2,000 bytes.
    let big = format!("---\ntitle: Big\n---\n{}\n", "x".repeat(3000));
    std::fs::write(f.work.join("skills/lim/big.md"), big).unwrap();
    f.commit_all("big");
    let (ok, stderr) = push(&f);
    assert!(!ok);
    assert!(
        stderr.contains("skills/lim/big.md: file is 3020 bytes, more than the limit of 2000"),
        "{stderr}"
    );
    assert_eq!(f.main(), two);
}
