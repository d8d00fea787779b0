//! A push's outcome is one type: each refused ref carries its reason, and the pusher's
//! report, the stored push record and the metrics all read it. A dry run, a stale push
//! and a failed transaction are each counted under their own reason (before, the
//! metrics guessed by elimination and counted all three as `policy`).
//!
//! A test binary of its own (not a module of `suite`), with one test: the server runs
//! in process, so the process-wide counters are its own.

mod common;

use common::{Git, Server, skill};
use std::path::Path;
use std::time::{Duration, Instant};

/// The value of the series `name` in `/metrics` (0 when absent).
fn series(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// The `refusal` each ref of the push records of this database carries, per push
/// (`None` for an accepted ref).
fn recorded_refusals(server: &Server) -> Vec<Vec<Option<String>>> {
    let rows: Vec<serde_json::Value> = server.query(async {
        sqlx::query_scalar("SELECT refs FROM pushes ORDER BY started_at")
            .fetch_all(&server.pool)
            .await
            .unwrap()
    });
    rows.iter()
        .map(|refs| {
            refs.as_array()
                .unwrap()
                .iter()
                .map(|r| r["refusal"].as_str().map(str::to_string))
                .collect()
        })
        .collect()
}

/// An ssh command for git that holds the client's side (its commands and pack) until
/// `gate` exists, and copies what the server sends to `seen`: the test learns when the
/// client has the ref advertisement, and decides when it may answer.
fn gated_ssh(git: &Git, dir: &Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let gate = dir.join("gate");
    let seen = dir.join("seen");
    let script = dir.join("gated-ssh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ until [ -e '{gate}' ]; do sleep 0.02; done; exec cat; }} | {ssh} \"$@\" | tee '{seen}'\n",
            gate = gate.display(),
            seen = seen.display(),
            ssh = git.ssh_command,
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script.display().to_string(), gate, seen)
}

#[test]
fn a_dry_run_a_stale_push_and_a_failed_transaction_are_each_counted_under_their_reason() {
    let server = Server::start_with(true);
    let key = server.add_user("alice", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let first = git.clone(&server.url("skills.git"), &[]);
    let second = git.clone(&server.url("skills.git"), &[]);

    // A dry run: valid, nothing written.
    git.commit_files(&first, &[("skills/o/dry.md", &skill("Dry", ""))], "dry");
    let stderr = git.fails(&first, &["push", "-o", "dry-run", "origin", "main"]);
    assert!(
        stderr.contains("dry run: valid, nothing written"),
        "{stderr}"
    );

    // A stale push: `second` has the advertisement (main at the clone's tip) when
    // `first` moves main; only then may it send its update, whose old value is gone.
    git.commit_files(&second, &[("skills/o/late.md", &skill("Late", ""))], "late");
    let (ssh, gate, seen) = gated_ssh(&git, second.parent().unwrap());
    let late = git
        .cmd(&second)
        .env("GIT_SSH_COMMAND", &ssh)
        // OpenSSH's options as they are (else git first runs the script with `-G` to
        // learn which ssh it is, and that output would count as the advertisement).
        .env("GIT_SSH_VARIANT", "ssh")
        .args(["push", "origin", "main"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&seen).map_or(0, |m| m.len()) == 0 {
        assert!(
            Instant::now() < deadline,
            "the gated push never got the advertisement"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    git.ok(&first, &["push", "-q", "origin", "main"]);
    std::fs::write(&gate, "").unwrap();
    let out = late.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let saw = String::from_utf8_lossy(&std::fs::read(&seen).unwrap()).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("stale info"),
        "{stderr}\nthe client saw: {saw:?}"
    );

    // A failed transaction: the database refuses the new ref's row.
    server.query(async {
        for sql in [
            "CREATE FUNCTION test_refuse_ref() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'this ref cannot be stored (test)'; END $$",
            "CREATE TRIGGER test_refuse_ref BEFORE INSERT ON git_refs FOR EACH ROW
             WHEN (NEW.name = 'refs/heads/doomed') EXECUTE FUNCTION test_refuse_ref()",
        ] {
            sqlx::query(sql).execute(&server.pool).await.unwrap();
        }
    });
    let stderr = git.fails(&first, &["push", "origin", "main:refs/heads/doomed"]);
    assert!(
        stderr.contains("the push could not be stored, nothing was written"),
        "{stderr}"
    );
    assert_eq!(server.server_ref("skills", "refs/heads/doomed"), None);

    // Each under its own reason; none guessed as `policy`.
    let metrics = server.get("/metrics");
    let reason = |r: &str| {
        series(
            &metrics,
            &format!("skillsd_push_refusals_total{{reason=\"{r}\"}}"),
        )
    };
    assert_eq!(reason("dry_run"), 1, "{metrics}");
    assert_eq!(reason("stale"), 1, "{metrics}");
    assert_eq!(reason("database"), 1, "{metrics}");
    assert_eq!(reason("policy"), 0, "{metrics}");
    assert_eq!(reason("invalid_skills"), 0, "{metrics}");
    assert_eq!(
        series(&metrics, "skillsd_pushes_total{result=\"accepted\"}"),
        1
    );
    assert_eq!(
        series(&metrics, "skillsd_pushes_total{result=\"refused\"}"),
        3
    );

    // The push records say the same, ref by ref (in any order: the stale push began
    // before the one that overtook it).
    let mut recorded = recorded_refusals(&server);
    recorded.sort();
    assert_eq!(
        recorded,
        [
            vec![None],
            vec![Some("database".to_string())],
            vec![Some("dry_run".to_string())],
            vec![Some("stale".to_string())],
        ]
    );
}
