//! Commands over SSH besides git: help, whoami, keys, status, ls, show, log, reconcile
//! — each one's exact output.

use crate::common;

use common::{Git, Key, Server, skill};
use std::process::Command;

fn ssh(server: &Server, key: &Key, command: &str) -> (i32, String, String) {
    let out = common::ssh_to(key, server.port)
        .arg(command)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn self_service_and_admin_commands() {
    let server = Server::start();
    let alice = server.add_user("alice", "writer");
    let root = server.add_user("root", "admin");

    let (code, out, _) = ssh(&server, &alice, "help");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "skillsd: commands over ssh (besides git clone/fetch/push)\n  help                 this text\n  whoami               your user name and role\n  keys                 your SSH keys\n  status [REPO]        the branch tip, what the cache reflects, sync health\n  ls [REPO]            every cached skill: slug, title, status, sync state\n  show SKILL [REPO]    a skill's file as the cache has it (by slug)\n  log SKILL [REPO]     the sync history of a skill, renames included\n  reconcile [REPO]     repair the cache from git (admin)\n  web-login            a one-time link that signs you in to the status pages\n  api-token [LABEL]    a bearer token for the JSON API (Authorization: Bearer TOKEN)\n  api-token list       your API tokens that still work\n  api-token revoke     ends every API token of yours\n  token create [--name N] [--expires DAYS] [--write]\n                       a bearer token for the API and agents (shown once); read-only\n                       unless --write (then it may also open changes: contents API)\n  token list           your tokens: name, created, expires, last used\n  token revoke NAME|--all\n                       ends your tokens of that name, or all of them\n  profile [USER] [--name FULL NAME] [--email ADDRESS]\n                       the author name and email of commits made for you in the\n                       browser or the contents API (admins: anyone's)\n{}",
            skillsd::commands::review::HELP
        )
    );

    let fp = {
        let o = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&alice.public)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let (code, out, _) = ssh(&server, &alice, "whoami");
    assert_eq!(
        (code, out),
        (0, format!("user: alice\nrole: writer\nkey: {fp}\n"))
    );

    let (code, out, _) = ssh(&server, &alice, "keys");
    assert_eq!(code, 0);
    let fields: Vec<&str> = out.trim_end().split('\t').collect();
    assert_eq!(&fields[..3], &[fp.as_str(), "ssh-ed25519", "alice"]);
    assert_ne!(fields[3], "never", "last_used_at is recorded at login");

    // A push, then status and the skill's log.
    let git = Git::new(common::GIT_NEW, &alice, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let tip = git.commit_files(
        &dir,
        &[("skills/c/commanded.md", &skill("Commanded", ""))],
        "c",
    );
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let (code, out, _) = ssh(&server, &alice, "status");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "repo: skills\nbranch: main\ntip: {tip}\ncache: {tip}\nin-sync: yes\nskills: 3\npending: 0\nfailed: 0\n"
        )
    );
    let (code, out, _) = ssh(&server, &alice, "log commanded");
    assert_eq!(code, 0);
    let fields: Vec<&str> = out.trim_end().split('\t').collect();
    assert_eq!(
        &fields[1..],
        &[
            "create",
            "success",
            tip.as_str(),
            "alice",
            "skills/c/commanded.md"
        ]
    );
    // ls and show: what the cache holds, without psql.
    let (code, out, _) = ssh(&server, &alice, "ls");
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "commanded\tCommanded\tPUBLISHED\tsynced\ncommit-messages\tWrite a good commit message\tPUBLISHED\tsynced\nwrite-a-skill\tWrite a skill\tPUBLISHED\tsynced\n"
        )
    );
    let (code, out, _) = ssh(&server, &alice, "show commanded");
    assert_eq!((code, out), (0, skill("Commanded", "")));
    let (code, _, err) = ssh(&server, &alice, "show nothing-here");
    assert_eq!(
        (code, err.as_str()),
        (1, "skillsd: no skill `nothing-here`; `ls` lists them\n")
    );
    // A rename keeps the skill's history: `log` follows its id, not its slug.
    git.ok(
        &dir,
        &["mv", "skills/c/commanded.md", "skills/c/renamed-skill.md"],
    );
    git.ok(&dir, &["commit", "-q", "-m", "rename"]);
    git.ok(&dir, &["push", "-q", "origin", "main"]);
    let renamed_at = git.head(&dir);
    let (code, out, _) = ssh(&server, &alice, "log renamed-skill");
    assert_eq!(code, 0);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split('\t').skip(1).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![
                "rename",
                "success",
                renamed_at.as_str(),
                "alice",
                "skills/c/renamed-skill.md"
            ],
            vec![
                "create",
                "success",
                tip.as_str(),
                "alice",
                "skills/c/commanded.md"
            ],
        ]
    );
    let tip = renamed_at;
    let (code, _, err) = ssh(&server, &alice, "log nothing-here");
    assert_eq!(
        (code, err.as_str()),
        (1, "skillsd: no history for `nothing-here`\n")
    );

    // reconcile is for admins.
    let (code, _, err) = ssh(&server, &alice, "reconcile");
    assert_eq!(code, 1);
    assert!(
        err.contains("reconcile needs the admin role; alice is a writer"),
        "{err}"
    );
    let (code, out, err) = ssh(&server, &root, "reconcile skills");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("reconciled skills: cache at {tip}: 0 created, 0 refreshed, 0 deleted\n")
    );

    // Unknown repository and wrong arguments.
    let (code, _, err) = ssh(&server, &alice, "status nope");
    assert_eq!(
        (code, err.as_str()),
        (1, "ERROR: repository `nope` not found\n")
    );
    let (code, _, err) = ssh(&server, &alice, "whoami please");
    assert_eq!(code, 1);
    assert!(err.contains("wrong arguments for `whoami`"), "{err}");
}
