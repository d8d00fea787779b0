//! Push mirrors against a real upstream: OpenSSH's `sshd` on a loopback port, the
//! mirror's key authorized with `git-shell` as its only command, bare repositories
//! made by the `git` CLI — and skillsd's native push client.

use crate::common;
use skillsd::upstream::{
    self, HostKeys, PushOutcome, PushRequest, UpstreamError, UpstreamUrl, fingerprint, generate_key,
};

use common::upstream::Upstream;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

type ObjectId = gix::ObjectId;

const TIMEOUT: Duration = Duration::from_secs(10);

/// git 2.39 (the system's) and git 2.47 (/usr/local): each git-shell runs the
/// receive-pack of its own installation (its built-in exec path).
const GIT_SHELLS: [&str; 2] = ["/usr/bin/git-shell", "/usr/local/bin/git-shell"];

/// A real `sshd` on a free loopback port (the shared harness), with the keys it lets
/// in and its host key as the client sees it.
struct Sshd {
    up: Upstream,
    host_key: russh::keys::PublicKey,
}

impl Sshd {
    /// `authorized`: public key lines, each allowed to run only `git-shell`.
    fn start(git_shell: &str, authorized: &[&str]) -> Sshd {
        Sshd::with(Upstream::start(git_shell), authorized)
    }

    /// `command`: what every authorized key runs (as written in `authorized_keys`,
    /// inside double quotes).
    fn start_with(command: &str, authorized: &[&str]) -> Sshd {
        Sshd::with(Upstream::start_with_command(command), authorized)
    }

    fn with(up: Upstream, authorized: &[&str]) -> Sshd {
        for key in authorized {
            up.authorize(key);
        }
        let line = up.host_key();
        let host_key =
            russh::keys::parse_public_key_base64(line.split_whitespace().nth(1).unwrap()).unwrap();
        Sshd { up, host_key }
    }

    fn log(&self) -> String {
        self.up.log()
    }

    fn url(&self, repo: &Path) -> UpstreamUrl {
        UpstreamUrl::parse(&self.up.url(repo)).unwrap()
    }
}

/// Logs with `RUST_LOG=skillsd=debug` (shown for failing tests).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

/// Runs `git` (the first on PATH) with a clean configuration and fixed identities.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ann")
        .env("GIT_AUTHOR_EMAIL", "ann@example.org")
        .env("GIT_COMMITTER_NAME", "Ann")
        .env("GIT_COMMITTER_EMAIL", "ann@example.org")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn commit(work: &Path, file: &str, text: &str) {
    let path = work.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", &format!("{file}: {text}")]);
}

/// Every ref of a repository, name → target.
fn refs_of(repo: &Path) -> BTreeMap<String, ObjectId> {
    git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .map(|l| {
            let (name, id) = l.split_once(' ').unwrap();
            (name.to_string(), ObjectId::from_hex(id.as_bytes()).unwrap())
        })
        .collect()
}

/// The source: a working repository whose state is mirrored into a bare one (the
/// repository the library pushes from).
struct Source {
    _dir: TempDir,
    work: PathBuf,
    bare: PathBuf,
}

impl Source {
    fn new() -> Source {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let bare = dir.path().join("src.git");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        commit(&work, "skills/a/SKILL.md", "one");
        commit(&work, "README.md", "two");
        git(&work, &["tag", "-a", "v1", "-m", "version one"]);
        git(&work, &["checkout", "-q", "-b", "feature"]);
        commit(&work, "skills/b/SKILL.md", "feature");
        git(&work, &["checkout", "-q", "main"]);
        git(dir.path(), &["init", "-q", "--bare", "src.git"]);
        let s = Source {
            _dir: dir,
            work,
            bare,
        };
        s.sync();
        s
    }

    fn sync(&self) {
        git(
            &self.work,
            &["push", "-q", "--mirror", self.bare.to_str().unwrap()],
        );
    }

    fn refs(&self) -> Vec<(String, ObjectId)> {
        refs_of(&self.bare).into_iter().collect()
    }
}

/// An upstream bare repository that keeps every received pack as a pack (so a push's
/// object count can be read back).
fn upstream_repo(dir: &Path) -> PathBuf {
    git(dir, &["init", "-q", "--bare", "up.git"]);
    let up = dir.join("up.git");
    git(&up, &["config", "receive.unpackLimit", "1"]);
    up
}

/// Objects in the newest pack of a repository.
fn newest_pack_objects(repo: &Path) -> usize {
    let packs = repo.join("objects/pack");
    let newest = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("a pack");
    let idx = std::fs::File::open(newest).unwrap();
    let out = Command::new("git")
        .args(["show-index"])
        .stdin(idx)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().lines().count()
}

/// Incompressible bytes (xorshift), so a pack is as big as its content.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// What the mirror has pushed after `outcome` (the caller's bookkeeping).
fn pushed_after(
    mut last: HashMap<String, ObjectId>,
    ours: &[(String, ObjectId)],
    outcome: &PushOutcome,
) -> HashMap<String, ObjectId> {
    for u in outcome.updates.iter().filter(|u| u.result.is_ok()) {
        match u.new {
            Some(id) => last.insert(u.name.clone(), id),
            None => last.remove(&u.name),
        };
    }
    for name in &outcome.in_sync {
        let id = ours.iter().find(|(n, _)| n == name).unwrap().1;
        last.insert(name.clone(), id);
    }
    last
}

struct Mirror {
    private: String,
    public: String,
}

impl Mirror {
    fn new() -> Mirror {
        let (private, public) = generate_key("skillsd-mirror");
        Mirror { private, public }
    }
}

async fn push(
    url: &UpstreamUrl,
    mirror: &Mirror,
    host_keys: &HostKeys,
    source: &Source,
    last_pushed: &HashMap<String, ObjectId>,
    force: bool,
) -> Result<PushOutcome, UpstreamError> {
    push_within(url, mirror, host_keys, source, last_pushed, force, TIMEOUT).await
}

/// [`push`] with a time limit of its own.
async fn push_within(
    url: &UpstreamUrl,
    mirror: &Mirror,
    host_keys: &HostKeys,
    source: &Source,
    last_pushed: &HashMap<String, ObjectId>,
    force: bool,
    timeout: Duration,
) -> Result<PushOutcome, UpstreamError> {
    upstream::push(PushRequest {
        url,
        private_key_pem: &mirror.private,
        host_keys,
        repo_path: &source.bare,
        refs: source.refs(),
        last_pushed: last_pushed.clone(),
        force,
        timeout,
    })
    .await
}

/// The whole life of a mirror against one git-shell: create, fast-forward, diverge,
/// force, delete.
async fn mirror_life(git_shell: &str) {
    logs();
    let mirror = Mirror::new();
    let sshd = Sshd::start(git_shell, &[&mirror.public]);
    let dir = tempfile::tempdir().unwrap();
    let up = upstream_repo(dir.path());
    let url = sshd.url(&up);
    let source = Source::new();

    // First contact: any key accepted and reported; every ref created.
    let first_contact = HostKeys {
        keys: vec![],
        accept_any: true,
    };
    let out = push(
        &url,
        &mirror,
        &first_contact,
        &source,
        &HashMap::new(),
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("first push: {e}\n{}", sshd.log()));
    assert_eq!(out.host_key.key_data(), sshd.host_key.key_data());
    assert!(out.all_ok(), "{:?}", out.updates);
    assert_eq!(out.updates.len(), 3, "{:?}", out.updates);
    assert!(out.updates.iter().all(|u| u.old.is_none()));
    assert!(out.diverged.is_empty() && out.in_sync.is_empty());
    assert_eq!(refs_of(&up), refs_of(&source.bare));
    common::assert_fsck_at(&up);
    let mut last = pushed_after(HashMap::new(), &source.refs(), &out);
    let pinned = HostKeys {
        keys: vec![out.host_key.clone()],
        accept_any: false,
    };

    // New commits: a fast-forward that sends only the new objects.
    let before = refs_of(&source.bare)["refs/heads/main"];
    commit(&source.work, "skills/a/SKILL.md", "three");
    source.sync();
    let after = refs_of(&source.bare)["refs/heads/main"];
    let expected_objects = git(
        &source.bare,
        &["rev-list", "--objects", &format!("{before}..{after}")],
    )
    .lines()
    .count();
    assert_eq!(expected_objects, 5); // commit, trees of /, skills/, skills/a/, the blob
    let out = push(&url, &mirror, &pinned, &source, &last, false)
        .await
        .unwrap();
    assert!(out.all_ok(), "{:?}", out.updates);
    assert_eq!(out.updates.len(), 1);
    assert_eq!(out.updates[0].name, "refs/heads/main");
    assert_eq!(out.updates[0].old, Some(before));
    assert_eq!(out.updates[0].new, Some(after));
    assert_eq!(out.in_sync, vec!["refs/heads/feature", "refs/tags/v1"]);
    assert_eq!(newest_pack_objects(&up), expected_objects);
    assert_eq!(refs_of(&up), refs_of(&source.bare));
    common::assert_fsck_at(&up);
    last = pushed_after(last, &source.refs(), &out);

    // Forgotten bookkeeping (no last_pushed): a fast-forward is still recognised
    // from history, a rewound branch is not ours to move.
    let before = after;
    commit(&source.work, "skills/c/SKILL.md", "five");
    source.sync();
    let out = push(&url, &mirror, &pinned, &source, &HashMap::new(), false)
        .await
        .unwrap();
    assert!(out.all_ok(), "{:?}", out.updates);
    assert_eq!(out.updates.len(), 1);
    assert_eq!(out.updates[0].old, Some(before));
    assert!(out.diverged.is_empty());
    last = pushed_after(last, &source.refs(), &out);
    git(&source.work, &["branch", "-q", "-f", "rewound", "main"]);
    source.sync();
    let out = push(&url, &mirror, &pinned, &source, &HashMap::new(), false)
        .await
        .unwrap();
    last = pushed_after(last, &source.refs(), &out);
    git(&source.work, &["branch", "-q", "-f", "rewound", "main~2"]);
    source.sync();
    let out = push(&url, &mirror, &pinned, &source, &HashMap::new(), false)
        .await
        .unwrap();
    assert!(out.updates.is_empty(), "{:?}", out.updates);
    assert_eq!(out.diverged.len(), 1);
    assert_eq!(out.diverged[0].name, "refs/heads/rewound");
    git(&source.work, &["branch", "-q", "-D", "rewound"]);
    source.sync();
    git(&up, &["update-ref", "-d", "refs/heads/rewound"]);
    last.remove("refs/heads/rewound");

    // Nothing changed: nothing sent, all in sync.
    let out = push(&url, &mirror, &pinned, &source, &last, false)
        .await
        .unwrap();
    assert!(out.updates.is_empty() && out.diverged.is_empty());
    assert_eq!(out.in_sync.len(), 3);

    // Someone commits to the upstream directly, and makes a branch of their own.
    let theirs = dir.path().join("theirs");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "-b",
            "main",
            up.to_str().unwrap(),
            theirs.to_str().unwrap(),
        ],
    );
    commit(&theirs, "THEIRS.md", "not ours");
    git(
        &theirs,
        &["push", "-q", "origin", "main", "main:refs/heads/theirs"],
    );
    let their_main = refs_of(&up)["refs/heads/main"];
    commit(&source.work, "skills/a/SKILL.md", "four");
    source.sync();
    let ours = refs_of(&source.bare)["refs/heads/main"];
    let out = push(&url, &mirror, &pinned, &source, &last, false)
        .await
        .unwrap();
    assert!(out.updates.is_empty(), "{:?}", out.updates);
    assert_eq!(out.diverged.len(), 1);
    assert_eq!(out.diverged[0].name, "refs/heads/main");
    assert_eq!(out.diverged[0].upstream, their_main);
    assert_eq!(out.diverged[0].ours, Some(ours));
    assert_eq!(refs_of(&up)["refs/heads/main"], their_main);
    // Forced: ours wins; their own branch is left alone.
    let out = push(&url, &mirror, &pinned, &source, &last, true)
        .await
        .unwrap();
    assert!(out.all_ok(), "{:?}", out.updates);
    assert_eq!(out.updates.len(), 1);
    assert_eq!(out.updates[0].old, Some(their_main));
    let up_refs = refs_of(&up);
    assert_eq!(up_refs["refs/heads/main"], ours);
    assert_eq!(up_refs["refs/heads/theirs"], their_main);
    common::assert_fsck_at(&up);
    last = pushed_after(last, &source.refs(), &out);

    // A branch deleted here is deleted upstream.
    git(&source.work, &["branch", "-q", "-D", "feature"]);
    source.sync();
    assert!(!refs_of(&source.bare).contains_key("refs/heads/feature"));
    let out = push(&url, &mirror, &pinned, &source, &last, false)
        .await
        .unwrap();
    assert!(out.all_ok(), "{:?}", out.updates);
    assert_eq!(out.updates.len(), 1);
    assert_eq!(out.updates[0].name, "refs/heads/feature");
    assert_eq!(out.updates[0].new, None);
    let up_refs = refs_of(&up);
    assert!(!up_refs.contains_key("refs/heads/feature"));
    assert!(up_refs.contains_key("refs/heads/theirs"));
    assert!(up_refs.contains_key("refs/tags/v1"));
    common::assert_fsck_at(&up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_life_with_git_2_39_shell() {
    mirror_life(GIT_SHELLS[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_life_with_git_2_47_shell() {
    mirror_life(GIT_SHELLS[1]).await;
}

/// Wrong pinned key, a key the upstream does not know, a repository it does not
/// have: typed errors, and nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    logs();
    let mirror = Mirror::new();
    let sshd = Sshd::start(GIT_SHELLS[1], &[&mirror.public]);
    let dir = tempfile::tempdir().unwrap();
    let up = upstream_repo(dir.path());
    let url = sshd.url(&up);
    let source = Source::new();

    // The host key, as `mirror add` pins it.
    let key = upstream::host_key(&url, TIMEOUT).await.unwrap();
    assert_eq!(key.key_data(), sshd.host_key.key_data());

    // Another host key pinned: refused before anything is sent.
    let (_, other_public) = generate_key("other");
    let other =
        russh::keys::parse_public_key_base64(other_public.split_whitespace().nth(1).unwrap())
            .unwrap();
    let wrong = HostKeys {
        keys: vec![other.clone()],
        accept_any: false,
    };
    match push(&url, &mirror, &wrong, &source, &HashMap::new(), true).await {
        Err(UpstreamError::HostKeyMismatch {
            presented,
            expected,
        }) => {
            assert_eq!(presented, fingerprint(&sshd.host_key));
            assert_eq!(expected, vec![fingerprint(&other)]);
        }
        other => panic!("expected a host key mismatch, got {other:?}"),
    }
    assert!(refs_of(&up).is_empty());
    // No key pinned and none accepted: refused too.
    let none = HostKeys::default();
    assert!(matches!(
        push(&url, &mirror, &none, &source, &HashMap::new(), false).await,
        Err(UpstreamError::HostKeyMismatch { .. })
    ));

    // A key the upstream has not authorized.
    let stranger = Mirror::new();
    let pinned = HostKeys {
        keys: vec![sshd.host_key.clone()],
        accept_any: false,
    };
    match push(&url, &stranger, &pinned, &source, &HashMap::new(), false).await {
        Err(e @ UpstreamError::Auth { .. }) => {
            let text = e.to_string();
            assert!(text.contains("authorize"), "{text}");
            assert!(!text.contains("PRIVATE"), "{text}");
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }
    assert!(refs_of(&up).is_empty());

    // A repository the upstream does not have: its own words come back.
    let missing = sshd.url(&dir.path().join("missing.git"));
    match push(&missing, &mirror, &pinned, &source, &HashMap::new(), false).await {
        Err(UpstreamError::Upstream(m)) => {
            assert!(m.contains("does not appear to be a git repository"), "{m}")
        }
        other => panic!(
            "expected the upstream's refusal, got {other:?}\n{}",
            sshd.log()
        ),
    }

    // A command git-shell does not allow for a path it rejects: still an error, no hang.
    let bad = sshd.url(Path::new("/nonexistent/'quoted'.git"));
    match push(&bad, &mirror, &pinned, &source, &HashMap::new(), false).await {
        Err(UpstreamError::Upstream(m)) => assert!(m.contains("quoted"), "{m}"),
        other => panic!("expected the upstream's refusal, got {other:?}"),
    }

    // Nothing listening: a connection error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nowhere = UpstreamUrl::parse(&format!("ssh://git@127.0.0.1:{closed}/x.git")).unwrap();
    assert!(matches!(
        push(&nowhere, &mirror, &pinned, &source, &HashMap::new(), false).await,
        Err(UpstreamError::Connect { .. })
    ));

    // A host that accepts the connection and never answers: the attempt's time
    // limit holds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = UpstreamUrl::parse(&format!(
        "ssh://git@127.0.0.1:{}/x.git",
        silent.local_addr().unwrap().port()
    ))
    .unwrap();
    let short = Duration::from_millis(500);
    let started = Instant::now();
    let timed_out = push_within(
        &silent_url,
        &mirror,
        &pinned,
        &source,
        &HashMap::new(),
        false,
        short,
    )
    .await;
    assert!(
        matches!(timed_out, Err(UpstreamError::Timeout(d)) if d == short),
        "{timed_out:?}"
    );
    assert!(matches!(
        upstream::host_key(&silent_url, short).await,
        Err(UpstreamError::Timeout(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);

    // After all that, the upstream is still empty; a good push works, with a pack
    // larger than the SSH channel's window (flow control while streaming).
    assert!(refs_of(&up).is_empty());
    let noise = noise(6_000_000);
    std::fs::write(source.work.join("big.bin"), &noise).unwrap();
    git(&source.work, &["add", "-A"]);
    git(&source.work, &["commit", "-q", "-m", "big"]);
    source.sync();
    let out = push(&url, &mirror, &pinned, &source, &HashMap::new(), false)
        .await
        .unwrap();
    assert!(out.all_ok());
    assert_eq!(refs_of(&up), refs_of(&source.bare));
    common::assert_fsck_at(&up);

    // A ref the upstream's hook declines: that ref fails with the upstream's reason,
    // the others go through.
    let hooked_dir = tempfile::tempdir().unwrap();
    let hooked = upstream_repo(hooked_dir.path());
    let hook = hooked.join("hooks/update");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$1\" in refs/heads/feature) echo 'feature is frozen' >&2; exit 1;; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = push(
        &sshd.url(&hooked),
        &mirror,
        &pinned,
        &source,
        &HashMap::new(),
        false,
    )
    .await
    .unwrap();
    assert!(!out.all_ok());
    for u in &out.updates {
        if u.name == "refs/heads/feature" {
            assert_eq!(u.result, Err("hook declined".to_string()), "{u:?}");
        } else {
            assert_eq!(u.result, Ok(()), "{u:?}");
        }
    }
    let hooked_refs = refs_of(&hooked);
    assert!(!hooked_refs.contains_key("refs/heads/feature"));
    assert!(hooked_refs.contains_key("refs/heads/main"));
}

/// An upstream that advertises and then neither reads nor answers: a push whose pack
/// does not fit the channel's window ends at its time limit, with its writer stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_times_out() {
    logs();
    let mirror = Mirror::new();
    let dir = tempfile::tempdir().unwrap();
    let caps = "report-status delete-refs side-band-64k ofs-delta";
    let line = format!("{} capabilities^{{}}\\000{caps}\\n", "0".repeat(40));
    let len = 40 + 1 + "capabilities^{}".len() + 1 + caps.len() + 1 + 4;
    let script = dir.path().join("stall.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '{len:04x}{line}0000'\nexec sleep 60\n"),
    )
    .unwrap();
    let sshd = Sshd::start_with(&format!("/bin/sh {}", script.display()), &[&mirror.public]);
    let source = Source::new();
    let noise = noise(8_000_000);
    std::fs::write(source.work.join("big.bin"), &noise).unwrap();
    git(&source.work, &["add", "-A"]);
    git(&source.work, &["commit", "-q", "-m", "big"]);
    source.sync();
    let pinned = HostKeys {
        keys: vec![sshd.host_key.clone()],
        accept_any: false,
    };
    let limit = Duration::from_secs(3);
    let started = Instant::now();
    let result = push_within(
        &sshd.url(Path::new("/stalled.git")),
        &mirror,
        &pinned,
        &source,
        &HashMap::new(),
        false,
        limit,
    )
    .await;
    assert!(
        matches!(result, Err(UpstreamError::Timeout(d)) if d == limit),
        "{result:?}\n{}",
        sshd.log()
    );
    assert!(started.elapsed() < limit + Duration::from_secs(3));
}
