//! Bad input of every kind gets a clear refusal and changes nothing: garbage
//! pkt-lines, truncated or corrupt packs, missing objects, non-commit branch tips,
//! invalid ref names. These talk the receive-pack protocol directly through the real
//! OpenSSH client, as a broken or hostile client would.

use crate::common;

use common::{Git, Key, Server, skill};
use std::io::Write;
use std::process::Stdio;

fn pkt(s: &[u8]) -> Vec<u8> {
    let mut v = format!("{:04x}", s.len() + 4).into_bytes();
    v.extend_from_slice(s);
    v
}

/// Runs `git-receive-pack '/skills.git'` over ssh with `input` on stdin.
fn raw(server: &Server, key: &Key, service: &str, input: &[u8]) -> (String, String) {
    let mut child = common::ssh_to(key, server.port)
        .arg(format!("{service} '/skills.git'"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A command line with capabilities (report-status only: no side-band, so the report
/// is readable as plain pkt-lines).
fn command(old: &str, new: &str, name: &str) -> Vec<u8> {
    pkt(format!("{old} {new} {name}\0report-status\n").as_bytes())
}

const ZERO: &str = "0000000000000000000000000000000000000000";

/// A pack made by `git pack-objects` from object ids given on stdin.
fn pack_of(git: &Git, dir: &std::path::Path, ids: &[&str]) -> Vec<u8> {
    let mut child = git
        .cmd(dir)
        .args(["pack-objects", "--stdout", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for id in ids {
        writeln!(stdin, "{id}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

struct Fixture {
    server: Server,
    key: Key,
    git: Git,
    dir: std::path::PathBuf,
    main: String,
    /// A new commit (one valid skill) not yet on the server, and its objects.
    commit: String,
    objects: Vec<String>,
}

fn fixture() -> Fixture {
    let server = Server::start();
    let key = server.add_user("mallory", "writer");
    let git = Git::new(common::GIT_NEW, &key, &server);
    let dir = git.clone(&server.url("skills.git"), &[]);
    let main = git.head(&dir);
    let commit = git.commit_files(&dir, &[("skills/h/new-skill.md", &skill("New", ""))], "new");
    let objects: Vec<String> = git
        .ok(
            &dir,
            &["rev-list", "--objects", &format!("{main}..{commit}")],
        )
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    Fixture {
        server,
        key,
        git,
        dir,
        main,
        commit,
        objects,
    }
}

impl Fixture {
    /// Nothing changed on the server: ref, object files, fsck.
    fn assert_untouched(&self, files_before: &[String]) {
        assert_eq!(
            self.server
                .server_ref("skills", "refs/heads/main")
                .as_deref(),
            Some(self.main.as_str())
        );
        assert_eq!(self.server.object_files("skills"), files_before);
        self.server.assert_fsck("skills");
    }
}

#[test]
fn garbage_pkt_lines_are_refused() {
    let f = fixture();
    let before = f.server.object_files("skills");
    let overlong = [&b"fff9"[..], &[b'x'; 200][..]].concat();
    // Each is answered with an `ERR` line after the advertisement, except a stream
    // that ends inside a length (then there is nothing to answer: the advertisement
    // alone, and nothing written).
    for (input, refused) in [
        (&b"zzzzgarbage"[..], true),
        (b"00", false),
        (b"0003", true),
        (&[0xffu8; 64][..], true),
        (&overlong[..], true),
    ] {
        let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", input);
        let advertisement_end = stdout.find("0000").expect("an advertisement") + 4;
        let after = &stdout[advertisement_end..];
        if refused {
            assert!(
                after.starts_with("00") && after.contains("ERR "),
                "{input:?}: {stdout:?}"
            );
        } else {
            assert_eq!(after, "", "{input:?}: {stdout:?}");
        }
        f.assert_untouched(&before);
    }
    // A malformed command line.
    let mut input = pkt(b"not a command\0report-status\n");
    input.extend_from_slice(b"0000");
    let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", &input);
    assert!(stdout.contains("ERR malformed command line"), "{stdout:?}");
    f.assert_untouched(&before);
    // upload-pack: garbage after the advertisement.
    let (stdout, _) = raw(
        &f.server,
        &f.key,
        "git-upload-pack",
        b"0010want garbage\n0000",
    );
    assert!(stdout.contains("ERR invalid object id"), "{stdout:?}");
}

#[test]
fn truncated_and_corrupt_packs_are_refused() {
    let f = fixture();
    let before = f.server.object_files("skills");
    let ids: Vec<&str> = f.objects.iter().map(String::as_str).collect();
    let pack = pack_of(&f.git, &f.dir, &ids);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated (client hung up mid-pack)",
            pack[..pack.len() / 2].to_vec(),
        ),
        ("bad trailer", {
            let mut p = pack.clone();
            let n = p.len();
            p[n - 1] ^= 0xff;
            p
        }),
        ("corrupt object data", {
            let mut p = pack.clone();
            for b in &mut p[20..40] {
                *b ^= 0x5a;
            }
            p
        }),
        (
            "not a pack",
            b"this is not a pack at all, just some text".to_vec(),
        ),
    ];
    for (what, data) in cases {
        let mut input = command(&f.main, &f.commit, "refs/heads/main");
        input.extend_from_slice(b"0000");
        input.extend_from_slice(&data);
        let (stdout, stderr) = raw(&f.server, &f.key, "git-receive-pack", &input);
        assert!(
            stdout.contains("unpack ") && !stdout.contains("unpack ok"),
            "{what}: {stdout:?} {stderr}"
        );
        assert!(
            stdout.contains("ng refs/heads/main unpacker error"),
            "{what}: {stdout:?}"
        );
        f.assert_untouched(&before);
    }
    // The same pack, whole, is accepted: the cases above failed for their damage only.
    let mut input = command(&f.main, &f.commit, "refs/heads/main");
    input.extend_from_slice(b"0000");
    input.extend_from_slice(&pack);
    let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", &input);
    assert!(
        stdout.contains("unpack ok") && stdout.contains("ok refs/heads/main"),
        "{stdout:?}"
    );
    assert_eq!(
        f.server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(f.commit.as_str())
    );
    f.server.assert_fsck("skills");
}

#[test]
fn missing_objects_and_non_commit_tips_are_refused() {
    let f = fixture();
    let before = f.server.object_files("skills");
    // Only the commit: its tree and blob are missing.
    let pack = pack_of(&f.git, &f.dir, &[&f.commit]);
    let mut input = command(&f.main, &f.commit, "refs/heads/main");
    input.extend_from_slice(b"0000");
    input.extend_from_slice(&pack);
    let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", &input);
    assert!(stdout.contains("unpack ok"), "{stdout:?}");
    assert!(
        stdout.contains("ng refs/heads/main missing necessary objects"),
        "{stdout:?}"
    );
    f.assert_untouched(&before);

    // A branch pointing at a blob.
    let blob = f
        .git
        .ok(&f.dir, &["rev-parse", "HEAD:skills/h/new-skill.md"])
        .trim()
        .to_string();
    let pack = pack_of(&f.git, &f.dir, &[&blob]);
    let mut input = command(ZERO, &blob, "refs/heads/blobby");
    input.extend_from_slice(b"0000");
    input.extend_from_slice(&pack);
    let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", &input);
    assert!(
        stdout.contains("ng refs/heads/blobby a branch must point to a commit, not a blob"),
        "{stdout:?}"
    );
    assert_eq!(f.server.server_ref("skills", "refs/heads/blobby"), None);
    f.assert_untouched(&before);

    // A command naming an object that is nowhere.
    let ghost = "1234567890123456789012345678901234567890";
    let mut input = command(ZERO, ghost, "refs/heads/ghost");
    input.extend_from_slice(b"0000");
    input.extend_from_slice(&pack_of(&f.git, &f.dir, &[]));
    let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", &input);
    assert!(
        stdout.contains("ng refs/heads/ghost missing necessary objects"),
        "{stdout:?}"
    );
    f.assert_untouched(&before);
}

#[test]
fn invalid_ref_names_are_refused() {
    let f = fixture();
    let before = f.server.object_files("skills");
    for name in [
        "refs/heads/../x",
        "HEAD",
        "refs/heads/a\x01b",
        "refs/heads/x.lock",
        "refs/heads/a..b",
        "refs/heads/ends/",
        "refs/heads/.hidden",
        "refs/heads/a b",
        "refs/heads/x@{1}",
    ] {
        let mut input = command(ZERO, &f.main, name);
        input.extend_from_slice(b"0000");
        input.extend_from_slice(&pack_of(&f.git, &f.dir, &[]));
        let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", &input);
        assert!(
            stdout.contains(&format!("ng {name} invalid ref name")),
            "{name:?}: {stdout:?}"
        );
        f.assert_untouched(&before);
    }
    // Outside refs/heads and refs/tags.
    let mut input = command(ZERO, &f.main, "refs/notes/x");
    input.extend_from_slice(b"0000");
    input.extend_from_slice(&pack_of(&f.git, &f.dir, &[]));
    let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", &input);
    assert!(
        stdout.contains("ng refs/notes/x only branches"),
        "{stdout:?}"
    );
    f.assert_untouched(&before);
}

#[test]
fn a_stale_old_value_is_a_conflict() {
    let f = fixture();
    let ids: Vec<&str> = f.objects.iter().map(String::as_str).collect();
    let wrong_old = f.commit.clone(); // not what main is at
    let mut input = command(&wrong_old, &f.commit, "refs/heads/main");
    input.extend_from_slice(b"0000");
    input.extend_from_slice(&pack_of(&f.git, &f.dir, &ids));
    let (stdout, _) = raw(&f.server, &f.key, "git-receive-pack", &input);
    assert!(
        stdout.contains("ng refs/heads/main stale info"),
        "{stdout:?}"
    );
    assert_eq!(
        f.server.server_ref("skills", "refs/heads/main").as_deref(),
        Some(f.main.as_str())
    );
    f.server.assert_fsck("skills");
}
