//! Hostile pushes, built by hand and sent as an attacker would: raw `git-receive-pack`
//! over the real OpenSSH client to skillsd running as its own process, with packs no
//! `git` would write (trees thousands of levels deep, deflate and delta bombs, long
//! delta chains, huge commit messages, tags of missing objects, lying headers).
//!
//! For each: the refusal the pusher reads, the server process still up and serving
//! others, its peak resident memory (reset before each case, read from
//! `/proc/PID/status`) under the 512 MiB budget, nothing written (`main`, the object
//! files) and `git fsck --strict` clean. Peaks are printed (`--nocapture`).

use crate::common;

use common::packs::{self, BLOB, COMMIT, Pack, TAG, TREE};
use common::{ChildFixture, stdout_of};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const BUDGET_KIB: u64 = 512 * 1024;
const ZERO: &str = "0000000000000000000000000000000000000000";

struct Attack<'a> {
    f: &'a mut ChildFixture,
    main: String,
    files: Vec<String>,
    pid: u32,
}

impl<'a> Attack<'a> {
    fn new(f: &'a mut ChildFixture) -> Attack<'a> {
        let main = f.main();
        let files = object_files(f);
        let pid = f.server.pid().unwrap();
        Attack {
            f,
            main,
            files,
            pid,
        }
    }

    /// Sends `request` to `git-receive-pack`; returns what the client received and
    /// the server's peak RSS (KiB) meanwhile.
    fn push(&mut self, name: &str, request: &[u8]) -> (String, u64) {
        self.f.server.reset_peak_rss();
        let mut child = common::ssh_to(&self.f.key, self.f.server.port)
            .arg("git-receive-pack '/skills.git'")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let request = request.to_vec();
        // Written on a thread: the server may answer (and stop reading) early.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&request);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        assert!(self.f.server.alive(), "{name}: the server died");
        let peak = self.f.server.peak_rss_kib();
        eprintln!(
            "hostile push `{name}`: peak RSS {:.1} MiB",
            peak as f64 / 1024.0
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (text, peak)
    }

    /// Sends `request` and checks it was refused cleanly with every one of `expected`.
    fn refused(&mut self, name: &str, request: &[u8], expected: &[&str]) {
        let (text, peak) = self.push(name, request);
        self.assert_refused_cleanly(name, &text, peak, expected);
    }

    /// The server survived, kept its memory within budget, wrote nothing, and serves
    /// others.
    fn assert_refused_cleanly(&mut self, name: &str, text: &str, peak: u64, expected: &[&str]) {
        common::assert_contains_all(text, expected);
        assert!(
            peak < BUDGET_KIB,
            "{name}: peak RSS {peak} KiB is over the budget"
        );
        assert!(self.f.server.alive(), "{name}: the server died");
        assert_eq!(
            self.f.server.pid(),
            Some(self.pid),
            "{name}: the server restarted"
        );
        assert_eq!(self.f.main(), self.main, "{name}: main moved");
        assert_eq!(
            object_files(self.f),
            self.files,
            "{name}: objects were written"
        );
        fsck(self.f);
        // Someone else is served as usual.
        let mut ls = self.f.git();
        ls.args(["ls-remote", "origin", "refs/heads/main"]);
        assert!(stdout_of(ls).starts_with(&self.main), "{name}: ls-remote");
    }
}

/// Every file under the repository's `objects/` (the locks gc keeps aside).
fn object_files(f: &ChildFixture) -> Vec<String> {
    let root = f.data.join("repos/skills.git/objects");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().ends_with(".lock")
                && !p.to_string_lossy().ends_with(".flock")
            {
                out.push(p.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn fsck(f: &ChildFixture) {
    let out = Command::new(common::GIT_NEW)
        .arg("--git-dir")
        .arg(f.data.join("repos/skills.git"))
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A push of `main` from `old` to `new` with `pack`.
fn update_main(old: &str, new: gix::ObjectId, pack: &[u8]) -> Vec<u8> {
    packs::push_request(
        &[(old.to_string(), new.to_string(), "refs/heads/main".into())],
        pack,
    )
}

/// A push of `main` from the current tip to a commit on `tree`.
fn push_tree(pack: &mut Pack, main: &str, tree: gix::ObjectId, message: &[u8]) -> Vec<u8> {
    let parent = gix::ObjectId::from_hex(main.as_bytes()).unwrap();
    let commit = pack.object(COMMIT, &packs::commit(tree, Some(parent), message));
    packs::push_request(
        &[(
            main.to_string(),
            commit.to_string(),
            "refs/heads/main".into(),
        )],
        &pack.finish(),
    )
}

/// `depth` trees nested as `<top>/d/d/.../f` (`top` wrapping the chain), optionally
/// under `skills/`.
fn deep_tree(pack: &mut Pack, depth: usize, under_skills: bool) -> gix::ObjectId {
    let blob = pack.object(BLOB, b"leaf\n");
    let mut id = pack.object(TREE, &packs::tree(&[("100644", "f", blob)]));
    for _ in 0..depth {
        id = pack.object(TREE, &packs::tree(&[("40000", "d", id)]));
    }
    let top = pack.object(TREE, &packs::tree(&[("40000", "deep", id)]));
    if under_skills {
        pack.object(TREE, &packs::tree(&[("40000", "skills", top)]))
    } else {
        top
    }
}

#[test]
fn deep_trees_are_refused_without_harm() {
    let mut f = ChildFixture::start("mallory");
    let mut a = Attack::new(&mut f);
    for (depth, under_skills) in [(5_000, false), (5_000, true), (100_000, false)] {
        let name = format!(
            "tree {depth} deep{}",
            if under_skills { " under skills/" } else { "" }
        );
        let mut pack = Pack::new();
        let root = deep_tree(&mut pack, depth, under_skills);
        let request = push_tree(&mut pack, &a.main.clone(), root, b"deep\n");
        let (text, peak) = a.push(&name, &request);
        let prefix = if under_skills {
            "skills/deep/d/d/d/d/d/d/…"
        } else {
            "deep/d/d/d/d/d/d/d/…"
        };
        a.assert_refused_cleanly(
            &name,
            &text,
            peak,
            &[
                "folders are nested more than 4096 levels deep",
                prefix,
                "ng refs/heads/main trees nested more than 4096 levels deep",
            ],
        );
    }
    // Just within the limit is a legitimate tree: accepted.
    let mut pack = Pack::new();
    // `deep`, 1,998 `d` and `f`: 2,000 levels, a path of 4,002 bytes (under the
    // 4,096 bytes any path may have).
    let root = deep_tree(&mut pack, 1998, false);
    let request = push_tree(&mut pack, &a.main.clone(), root, b"deep but allowed\n");
    let (text, peak) = a.push("tree 2000 deep", &request);
    assert!(text.contains("ok refs/heads/main"), "{text}");
    assert!(peak < BUDGET_KIB);
    assert!(a.f.server.alive());
    fsck(a.f);
    // Served whole (a bare clone: the checkout's absolute paths would pass PATH_MAX).
    let mut clone = a.f.git();
    clone
        .args(["clone", "--bare", "-q", &a.f.server.url("skills.git")])
        .arg(a.f.home.join("deep-clone"));
    stdout_of(clone);
    let mut fsck = Command::new(common::GIT_NEW);
    fsck.arg("--git-dir")
        .arg(a.f.home.join("deep-clone"))
        .args(["fsck", "--strict"]);
    stdout_of(fsck);
}

#[test]
fn bombs_are_refused_before_they_inflate() {
    let mut f = ChildFixture::start("mallory");
    let mut a = Attack::new(&mut f);
    let main = a.main.clone();

    // A blob of 2 GiB of zeros: ~2 MiB on the wire.
    let mut pack = Pack::new();
    pack.raw(BLOB, 2 << 30, &packs::deflate_zeros(2 << 30));
    let fake = packs::object_id(BLOB, b"");
    let request = update_main(&main, fake, &pack.finish());
    a.refused(
        "deflate bomb (2 GiB blob)",
        &request,
        &["an object of 2147483648 bytes (entry 0) is larger than the limit of 33554432 bytes"],
    );

    // The same stream under a small declared size: stopped as it inflates.
    let mut pack = Pack::new();
    pack.raw(BLOB, 100, &packs::deflate_zeros(256 << 20));
    let request = update_main(&main, fake, &pack.finish());
    a.refused(
        "lying deflate bomb",
        &request,
        &["entry 0 inflates to more than the 100 bytes it declares"],
    );

    // A delta of a few hundred bytes that claims a 16 GiB result.
    let mut pack = Pack::new();
    let base = pack.object(BLOB, &[b'x'; 1000]);
    let mut delta = packs::delta_varint(1000);
    delta.extend(packs::delta_varint(16 << 30));
    for _ in 0..80 {
        delta.extend(packs::copy_op(0, 1000));
    }
    pack.ref_delta(base, &delta);
    let request = update_main(&main, fake, &pack.finish());
    a.refused(
        "delta bomb (16 GiB result)",
        &request,
        &["declares a result of 17179869184 bytes, more than the limit"],
    );

    // A commit whose message is 100 MB.
    let mut pack = Pack::new();
    let tree = pack.object(TREE, &packs::tree(&[]));
    let parent = gix::ObjectId::from_hex(main.as_bytes()).unwrap();
    let mut message = packs::commit(tree, Some(parent), b"");
    let header_len = message.len();
    message.resize(header_len + 100_000_000, b'a');
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&message).unwrap();
    let deflated = e.finish().unwrap();
    pack.raw(COMMIT, message.len() as u64, &deflated);
    let commit = packs::object_id(COMMIT, &message);
    drop(message);
    let request = packs::push_request(
        &[(main.clone(), commit.to_string(), "refs/heads/main".into())],
        &pack.finish(),
    );
    a.refused(
        "commit with a 100 MB message",
        &request,
        &["is larger than the limit of 33554432 bytes"],
    );

    // A 2 MB message passes the object limit but not the commit limit (1 MiB).
    let mut pack = Pack::new();
    let tree = pack.object(TREE, &packs::tree(&[]));
    let request = push_tree(&mut pack, &main, tree, &vec![b'a'; 2_000_000]);
    a.refused(
        "commit with a 2 MB message",
        &request,
        &[
            "bytes, more than the limit of 1048576",
            "shorten the commit message",
        ],
    );
}

#[test]
fn delta_chains_and_lying_packs_are_refused() {
    let mut f = ChildFixture::start("mallory");
    let mut a = Attack::new(&mut f);
    let main = a.main.clone();
    let fake = packs::object_id(BLOB, b"");

    // A chain of 10,000 offset deltas, each rebuilding the same 1 KiB blob.
    let chain = |size: u32, n: usize| {
        let mut pack = Pack::new();
        let mut prev = pack.next_offset();
        pack.object(BLOB, &vec![b'z'; size as usize]);
        let mut delta = packs::delta_varint(size.into());
        delta.extend(packs::delta_varint(size.into()));
        delta.extend(packs::copy_op(0, size));
        for _ in 0..n {
            prev = pack.ofs_delta(prev, &delta);
        }
        pack
    };
    let pack = chain(1024, 10_000);
    let request = update_main(&main, fake, &pack.finish());
    a.refused(
        "offset delta chain 10,000 long",
        &request,
        &["a delta chain is longer than the limit of 4095 (entry 4096)"],
    );

    // A "comb" the indexer would keep whole in memory (every base alive until its
    // last delta is resolved): 4,000 deltas of 64 KiB objects, each on the last.
    let pack = chain(65536, 4_000);
    let request = update_main(&main, fake, &pack.finish());
    a.refused(
        "4,000 deltas on 250 MiB of bases",
        &request,
        &["the pack's deltas build on more than 192 MiB of objects (the limit)"],
    );

    // A chain by object id: its depth is known once indexed, and refused then.
    let mut pack = Pack::new();
    let mut data = b"v0\n".to_vec();
    let mut base = pack.object(BLOB, &data);
    for i in 1..=5_000u32 {
        let next = format!("v{i}\n").into_bytes();
        let mut delta = packs::delta_varint(data.len() as u64);
        delta.extend(packs::delta_varint(next.len() as u64));
        delta.push(next.len() as u8); // insert instruction
        delta.extend_from_slice(&next);
        pack.ref_delta(base, &delta);
        base = packs::object_id(BLOB, &next);
        data = next;
    }
    let request = update_main(&main, fake, &pack.finish());
    a.refused(
        "id delta chain 5,000 long",
        &request,
        &["a delta chain is longer than the limit of 4095"],
    );

    // Headers that lie: 4 billion objects; one object more than sent; a wrong trailer.
    let mut pack = Pack::new();
    pack.object(BLOB, b"hello\n");
    pack.declared_count = Some(u32::MAX);
    let request = update_main(&main, fake, &pack.finish());
    a.refused(
        "pack declaring 4 billion objects",
        &request,
        &["the pack declares 4294967295 objects, more than the limit"],
    );
    pack.declared_count = Some(2);
    let request = update_main(&main, fake, &pack.finish());
    a.refused("pack declaring one object more", &request, &["unpack "]);
    pack.declared_count = None;
    let mut bad_trailer = pack.finish();
    let n = bad_trailer.len();
    bad_trailer[n - 1] ^= 0xff;
    let request = update_main(&main, fake, &bad_trailer);
    a.refused("pack with a wrong trailer", &request, &["unpack "]);
    let truncated = &pack.finish()[..20];
    let request = update_main(&main, fake, truncated);
    a.refused("truncated pack", &request, &["unpack "]);
}

#[test]
fn huge_trees_and_many_refs_are_refused() {
    let mut f = ChildFixture::start("mallory");
    let mut a = Attack::new(&mut f);
    let main = a.main.clone();

    // A tree of 1,000,000 entries (34 MB): over the object limit.
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"same\n");
    let names: Vec<String> = (0..1_000_000).map(|i| format!("{i:06}")).collect();
    let entries: Vec<(&str, &str, gix::ObjectId)> =
        names.iter().map(|n| ("100644", n.as_str(), blob)).collect();
    let root = pack.object(TREE, &packs::tree(&entries));
    drop(entries);
    let request = push_tree(&mut pack, &main, root, b"wide\n");
    a.refused(
        "tree with 1,000,000 entries",
        &request,
        &["is larger than the limit of 33554432 bytes"],
    );

    // A tree bomb: every level names the same subtree twice; 31 objects expand to
    // 2^30 paths. Refused from the walk's counts, before anything lists them.
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"x\n");
    let mut t = pack.object(TREE, &packs::tree(&[("100644", "f", blob)]));
    for _ in 0..30 {
        t = pack.object(TREE, &packs::tree(&[("40000", "a", t), ("40000", "b", t)]));
    }
    let root = pack.object(TREE, &packs::tree(&[("40000", "skills", t)]));
    let request = push_tree(&mut pack, &main, root, b"bomb\n");
    a.refused(
        "tree bomb (2^30 paths)",
        &request,
        &[
            "the tree expands to",
            "more than the limit of 2000000 entries",
        ],
    );
    // Paths longer than any system can check out: 20 folders of 250-byte names.
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"x\n");
    let long = "n".repeat(250);
    let mut t = pack.object(TREE, &packs::tree(&[("100644", "f", blob)]));
    for _ in 0..20 {
        t = pack.object(TREE, &packs::tree(&[("40000", &long, t)]));
    }
    let request = push_tree(&mut pack, &main, t, b"long\n");
    a.refused(
        "a path of 5,000 bytes",
        &request,
        &["the tree expands to a path of 5021 bytes, more than the limit of 4096 bytes per path"],
    );

    // 100,000 invalid skills in one small pack: refused at the file limit while the
    // change is walked, not after validating every one.
    let mut pack = Pack::new();
    let bad = pack.object(BLOB, b"no frontmatter\n");
    let names: Vec<String> = (0..100_000).map(|i| format!("s{i}.md")).collect();
    let entries: Vec<(&str, &str, gix::ObjectId)> =
        names.iter().map(|n| ("100644", n.as_str(), bad)).collect();
    let folder = pack.object(TREE, &packs::tree(&entries));
    let skills = pack.object(TREE, &packs::tree(&[("40000", "many", folder)]));
    let root = pack.object(TREE, &packs::tree(&[("40000", "skills", skills)]));
    let request = push_tree(&mut pack, &main, root, b"many\n");
    let started = std::time::Instant::now();
    a.refused(
        "100,000 invalid skills",
        &request,
        &["adds or changes 100000 skill files, more than the limit of 20000"],
    );
    eprintln!("100,000 invalid skills refused in {:?}", started.elapsed());

    // 10,000 ref updates in one push.
    let mut pack = Pack::new();
    let tree = pack.object(TREE, &packs::tree(&[]));
    let parent = gix::ObjectId::from_hex(main.as_bytes()).unwrap();
    let commit = pack.object(COMMIT, &packs::commit(tree, Some(parent), b"refs\n"));
    let commands: Vec<(String, String, String)> = (0..10_000)
        .map(|i| {
            (
                ZERO.to_string(),
                commit.to_string(),
                format!("refs/heads/b{i}"),
            )
        })
        .collect();
    let request = packs::push_request(&commands, &pack.finish());
    a.refused(
        "10,000 refs",
        &request,
        &["too many ref updates in one push (at most 1000)"],
    );

    // A tag of a commit that does not exist: refused, the repository stays usable.
    let ghost = gix::ObjectId::from_hex(b"feedfacefeedfacefeedfacefeedfacefeedface").unwrap();
    let mut pack = Pack::new();
    let t = pack.object(TAG, &packs::tag(ghost, "commit", "ghosttag"));
    let request = packs::push_request(
        &[(ZERO.to_string(), t.to_string(), "refs/tags/ghosttag".into())],
        &pack.finish(),
    );
    a.refused(
        "tag of a missing commit",
        &request,
        &["missing necessary objects (object feedfacefeedfacefeedfacefeedfacefeedface is missing)"],
    );
    // A tag of a tag of a missing blob.
    let mut pack = Pack::new();
    let inner = pack.object(TAG, &packs::tag(ghost, "blob", "inner"));
    let outer = pack.object(TAG, &packs::tag(inner, "tag", "outer"));
    let request = packs::push_request(
        &[(
            ZERO.to_string(),
            outer.to_string(),
            "refs/tags/outer".into(),
        )],
        &pack.finish(),
    );
    a.refused(
        "tag of a tag of a missing blob",
        &request,
        &["missing necessary objects"],
    );
    // A tag of a tree whose blob is missing.
    let mut pack = Pack::new();
    let tree = pack.object(TREE, &packs::tree(&[("100644", "gone", ghost)]));
    let t = pack.object(TAG, &packs::tag(tree, "tree", "treetag"));
    let request = packs::push_request(
        &[(ZERO.to_string(), t.to_string(), "refs/tags/treetag".into())],
        &pack.finish(),
    );
    a.refused(
        "tag of a tree with a missing blob",
        &request,
        &["blob feedfacefeedfacefeedfacefeedfacefeedface is missing"],
    );
}

/// `skillsd` run against the fixture's data directory and database.
fn cli(f: &ChildFixture, args: &[&str]) -> std::process::Output {
    Command::new(common::SKILLSD)
        .args(args)
        .arg("--data-dir")
        .arg(&f.data)
        .env("DATABASE_URL", &f.db_url)
        .output()
        .unwrap()
}

#[test]
fn tags_of_trees_and_blobs_are_served_whole_and_bad_refs_never_block() {
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut f = ChildFixture::start_with("alice", &["--http", &format!("127.0.0.1:{http}")], &[]);
    let main = f.main();
    // A tag of a tree (with a blob inside) and a tag of a blob: legitimate, accepted.
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"inside the tagged tree\n");
    let inner = pack.object(TREE, &packs::tree(&[("100644", "file.txt", blob)]));
    let tree = pack.object(TREE, &packs::tree(&[("40000", "dir", inner)]));
    let tree_tag = pack.object(TAG, &packs::tag(tree, "tree", "treetag"));
    let lone = pack.object(BLOB, b"a blob of its own\n");
    let blob_tag = pack.object(TAG, &packs::tag(lone, "blob", "blobtag"));
    let request = packs::push_request(
        &[
            (
                ZERO.into(),
                tree_tag.to_string(),
                "refs/tags/treetag".into(),
            ),
            (
                ZERO.into(),
                blob_tag.to_string(),
                "refs/tags/blobtag".into(),
            ),
        ],
        &pack.finish(),
    );
    let mut a = Attack::new(&mut f);
    let (text, _) = a.push("tags of a tree and a blob", &request);
    assert!(
        text.contains("ok refs/tags/treetag") && text.contains("ok refs/tags/blobtag"),
        "{text}"
    );
    // Every new clone, with both gits, gets everything the tags need.
    for (i, git) in common::GITS.iter().enumerate() {
        let dest = f.home.join(format!("tags-{i}"));
        let out = Command::new(git)
            .args(["clone", "-q", &f.server.url("skills.git")])
            .arg(&dest)
            .env("HOME", &f.home)
            .env(
                "GIT_SSH_COMMAND",
                format!("ssh {} -p {}", common::ssh_options(&f.key), f.server.port),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{git}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let show = Command::new(git)
            .arg("-C")
            .arg(&dest)
            .args(["cat-file", "-p", "treetag^{tree}:dir/file.txt"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&show.stdout),
            "inside the tagged tree\n",
            "{git}"
        );
        let fsck = Command::new(git)
            .arg("-C")
            .arg(&dest)
            .args(["fsck", "--strict"])
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{git}: {}",
            String::from_utf8_lossy(&fsck.stderr)
        );
    }

    // A ref that names a missing object (left by an older version, a disk problem):
    // listings skip it, clones and pushes go on, `skillsd ref` shows and deletes it.
    // Planted in the database, the store of record; the node's copy takes it from there.
    let repo = f.data.join("repos/skills.git");
    {
        let pool = f.rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
        f.rt.block_on(async {
            sqlx::query(
                "INSERT INTO git_refs (repo, name, target)
                 VALUES ('skills', 'refs/tags/ghost', 'feedfacefeedfacefeedfacefeedfacefeedface')",
            )
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("UPDATE git_repos SET generation = generation + 1 WHERE name = 'skills'")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        });
    }
    let mut ls = f.git();
    ls.args(["ls-remote", "origin"]);
    let listed = stdout_of(ls);
    assert!(
        listed.contains("refs/heads/main") && !listed.contains("ghost"),
        "{listed}"
    );
    let mut clone = f.git();
    clone
        .args(["clone", "-q", &f.server.url("skills.git")])
        .arg(f.home.join("after-ghost"));
    stdout_of(clone);
    let out = cli(&f, &["ref", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refs/tags/ghost  (cannot be served: its object feedface"),
        "{text}"
    );
    let ready = |f: &ChildFixture| {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-w",
            " %{http_code}",
            &format!("http://127.0.0.1:{http}/readyz"),
        ]);
        let _ = f;
        stdout_of(c)
    };
    assert_eq!(ready(&f), "ready\n 200");
    let out = cli(&f, &["ref", "delete", "refs/tags/ghost"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!repo.join("refs/tags/ghost").exists());
    let out = cli(&f, &["ref", "list"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A default branch naming a missing object: the repository cannot be served, and
    // readiness says so.
    std::fs::write(
        repo.join("refs/heads/main"),
        "feedfacefeedfacefeedfacefeedfacefeedface\n",
    )
    .unwrap();
    let text = ready(&f);
    assert!(
        text.ends_with(" 503")
            && text.contains("skills: refs/heads/main points to a missing object"),
        "{text}"
    );
    std::fs::write(repo.join("refs/heads/main"), format!("{main}\n")).unwrap();
    assert_eq!(ready(&f), "ready\n 200");
}

#[test]
fn refused_refs_store_nothing_and_colliding_names_are_refused() {
    let mut f = ChildFixture::start("alice");
    let main = f.main();
    let parent = gix::ObjectId::from_hex(main.as_bytes()).unwrap();
    let request_for = |name: &str, old: &str, body: &[u8]| {
        let mut pack = Pack::new();
        let blob = pack.object(BLOB, body);
        let tree = pack.object(TREE, &packs::tree(&[("100644", "x.txt", blob)]));
        let commit = pack.object(COMMIT, &packs::commit(tree, Some(parent), b"b\n"));
        packs::push_request(
            &[(old.to_string(), commit.to_string(), name.to_string())],
            &pack.finish(),
        )
    };
    let mut a = Attack::new(&mut f);
    // Another client created `refs/heads/topic` first: this push's pack is not kept.
    let (text, _) = a.push(
        "create topic",
        &request_for("refs/heads/topic", ZERO, b"first\n"),
    );
    assert!(text.contains("ok refs/heads/topic"), "{text}");
    a.files = object_files(a.f);
    let (text, peak) = a.push(
        "create topic again",
        &request_for("refs/heads/topic", ZERO, b"second\n"),
    );
    a.assert_refused_cleanly(
        "stale create",
        &text,
        peak,
        &["ng refs/heads/topic stale info"],
    );
    // Names that collide with existing refs.
    for (name, why) in [
        (
            "refs/heads/MAIN",
            "ref conflict: `refs/heads/main` differs only in case",
        ),
        (
            "refs/heads/Topic",
            "ref conflict: `refs/heads/topic` differs only in case",
        ),
        (
            "refs/heads/main/x",
            "ref conflict: `refs/heads/main` exists; a ref name cannot also be a folder",
        ),
        (
            "refs/heads/topic/sub",
            "ref conflict: `refs/heads/topic` exists",
        ),
    ] {
        a.refused(name, &request_for(name, ZERO, name.as_bytes()), &[why]);
    }
}

/// CPU time (user + system) a process has used, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_client_that_leaves_stops_the_work_it_started() {
    let mut f = ChildFixture::start("mallory");
    let main = f.main();
    // 20,000 skills of 40 KB each: ~800 MB to index and check, a few MB on the wire.
    let mut pack = Pack::new();
    let filler = "All work and no play makes a dull skill.\n".repeat(1000);
    let mut names = Vec::new();
    let mut ids = Vec::new();
    for i in 0..20_000 {
        let body = format!("---\ntitle: Skill {i}\n---\n{filler}");
        ids.push(pack.object(BLOB, body.as_bytes()));
        names.push(format!("s-{i}.md"));
    }
    let entries: Vec<(&str, &str, gix::ObjectId)> = names
        .iter()
        .zip(&ids)
        .map(|(n, id)| ("100644", n.as_str(), *id))
        .collect();
    let folder = pack.object(TREE, &packs::tree(&entries));
    let skills = pack.object(TREE, &packs::tree(&[("40000", "many", folder)]));
    let root = pack.object(TREE, &packs::tree(&[("40000", "skills", skills)]));
    let request = push_tree(&mut pack, &main, root, b"big\n");
    let a = Attack::new(&mut f);
    let files = a.files.clone();
    let pid = a.pid;

    let mut child = common::ssh_to(&f.key, f.server.port)
        .arg("git-receive-pack '/skills.git'")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&request).unwrap();
    // Once the server is visibly busy with the pack (on a loaded machine it may take
    // a moment to get there), the client leaves.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let busy = loop {
        let from = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(500));
        let busy = cpu_ticks(pid) - from;
        if busy >= 10 || std::time::Instant::now() > deadline {
            break busy;
        }
    };
    child.kill().unwrap();
    let _ = child.wait();
    drop(stdin);
    std::thread::sleep(Duration::from_millis(1500));
    let idle_from = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let after = cpu_ticks(pid) - idle_from;
    eprintln!(
        "server CPU: {busy} ticks in 0.5 s while working, {after} ticks in 2 s after the client left"
    );
    assert!(
        busy >= 10,
        "the server was not working on the push ({busy} ticks): the test proves nothing"
    );
    assert!(
        after <= 20,
        "the server kept working for a client that left ({after} ticks in 2 s)"
    );
    assert!(f.server.alive());
    assert_eq!(f.main(), main);
    assert_eq!(object_files(&f), files);
}

#[test]
fn a_schema_built_to_crash_the_compiler_is_refused() {
    let f = ChildFixture::start("mallory");
    let main = f.main();
    // 2,000 `$ref` links through `unevaluatedProperties` (148 KB, under the rules-file
    // limit): compiling it by recursion overflowed the stack and aborted the server.
    let mut defs = serde_json::Map::new();
    for i in 0..2000 {
        defs.insert(
            format!("a{i}"),
            serde_json::json!({"unevaluatedProperties": false,
                               "allOf": [{"$ref": format!("#/$defs/a{}", i + 1)}]}),
        );
    }
    defs.insert("a2000".into(), serde_json::json!({"type": "object"}));
    let schema = serde_json::json!({"$ref": "#/$defs/a0", "$defs": defs});
    std::fs::write(f.work.join("rules/flat.schema.json"), schema.to_string()).unwrap();
    let mut add = f.git();
    add.args(["commit", "-qam", "a schema"]);
    stdout_of(add);
    let mut push = f.git();
    push.args(["push", "origin", "main"]);
    let out = push.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    common::assert_contains_all(
        &stderr,
        &[
            "rules/flat.schema.json",
            "the schema has 2001 `$ref`s, more than 1000",
        ],
    );
    let mut f = f;
    assert!(f.server.alive());
    assert_eq!(f.main(), main);
    // The server serves on.
    let mut ls = f.git();
    ls.args(["ls-remote", "origin", "refs/heads/main"]);
    assert!(stdout_of(ls).starts_with(&main));
}

#[test]
fn fetch_requests_cannot_grow_without_bound() {
    let mut f = ChildFixture::start("reader");
    let main = f.main();
    // Protocol v2: a fetch whose arguments go on and on (48 MB of `have` lines).
    let mut request = packs::pkt(b"command=fetch\n");
    request.extend_from_slice(b"0001");
    let have = packs::pkt(format!("have {main}\n").as_bytes());
    while request.len() < 48 << 20 {
        request.extend_from_slice(&have);
    }
    request.extend_from_slice(b"0000");
    // Protocol v0: 400,000 `have` lines after a want.
    let mut v0 = packs::pkt(format!("want {main} side-band-64k\n").as_bytes());
    v0.extend_from_slice(b"0000");
    for _ in 0..400_000 {
        v0.extend_from_slice(&have);
    }
    for (name, version, input, expected) in [
        (
            "v2 fetch of 48 MB",
            "version=2",
            request,
            "the fetch request is larger than 32 MiB",
        ),
        (
            "v0 with 400,000 haves",
            "version=0",
            v0,
            "more than 300000 want/have lines",
        ),
    ] {
        f.server.reset_peak_rss();
        let mut child = common::ssh_to(&f.key, f.server.port)
            .args(["-o", &format!("SetEnv=GIT_PROTOCOL={version}")])
            .arg("git-upload-pack '/skills.git'")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(f.server.alive(), "{name}: the server died");
        let peak = f.server.peak_rss_kib();
        eprintln!(
            "hostile fetch `{name}`: peak RSS {:.1} MiB",
            peak as f64 / 1024.0
        );
        assert!(text.contains(expected), "{name}: {text:.300}");
        assert!(peak < BUDGET_KIB, "{name}: peak {peak} KiB");
    }
    let mut clone = f.git();
    clone
        .args(["clone", "-q", &f.server.url("skills.git")])
        .arg(f.home.join("after"));
    stdout_of(clone);
}

/// A tree's bytes from entries `(mode, name, id)` exactly in the order given (no
/// sorting: duplicates and disorder as an attacker writes them).
fn raw_tree(entries: &[(&str, &[u8], gix::ObjectId)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (mode, name, id) in entries {
        out.extend_from_slice(mode.as_bytes());
        out.push(b' ');
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// A commit of `tree` on `parent` whose author line is `author`.
fn commit_by(tree: gix::ObjectId, parent: gix::ObjectId, author: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut out = format!("tree {tree}\nparent {parent}\nauthor ").into_bytes();
    out.extend_from_slice(author);
    out.extend_from_slice(b"\ncommitter Mallory <m@example.com> 1700000000 +0000\n");
    out.extend_from_slice(extra);
    out.extend_from_slice(b"\nmessage\n");
    out
}

#[test]
fn objects_git_fsck_refuses_are_refused_with_the_object_and_the_reason() {
    let mut f = ChildFixture::start("alice");
    let main = f.main();
    let parent = gix::ObjectId::from_hex(main.as_bytes()).unwrap();
    let mut a = Attack::new(&mut f);

    // Commits on main that `git fsck --strict` refuses: each refused with git's id.
    for (what, author, extra, id) in [
        (
            "negative date",
            &b"Mallory <m@example.com> -1700000000 +0000"[..],
            &b""[..],
            "badDate",
        ),
        (
            "overflowing date",
            b"Mallory <m@example.com> 99999999999999999999 +0000",
            b"",
            "badDateOverflow",
        ),
        (
            "timezone +99999",
            b"Mallory <m@example.com> 1700000000 +99999",
            b"",
            "badTimezone",
        ),
        (
            "bad ident",
            b"Mallory <a@x>> 1700000000 +0000",
            b"",
            "missingSpaceBeforeDate",
        ),
        (
            "NUL in a header",
            b"Mallory <m@example.com> 1700000000 +0000",
            b"x-evil a\0b\n",
            "nulInHeader",
        ),
    ] {
        let mut pack = Pack::new();
        let blob = pack.object(BLOB, what.as_bytes());
        let tree = pack.object(TREE, &packs::tree(&[("100644", "x.txt", blob)]));
        let commit = pack.object(COMMIT, &commit_by(tree, parent, author, extra));
        let request = update_main(&main, commit, &pack.finish());
        a.refused(
            what,
            &request,
            &[
                &format!("invalid commit {commit}"),
                &format!("({id})"),
                "ng refs/heads/main",
                "git fsck --strict",
            ],
        );
    }

    // Trees git refuses, on a new branch.
    let mut base = Pack::new();
    let blob_id = packs::object_id(BLOB, b"x\n");
    let sub_id = packs::object_id(TREE, &packs::tree(&[("100644", "f", blob_id)]));
    for (i, (what, entries, id)) in [
        (
            "duplicate entries",
            vec![("100644", &b"a"[..], blob_id), ("100644", b"a", blob_id)],
            "duplicateEntries",
        ),
        (
            "a .git entry",
            vec![("40000", b".git", sub_id)],
            "hasDotgit",
        ),
        (
            "a .GIT entry",
            vec![("40000", b".GIT", sub_id)],
            "hasDotgit",
        ),
        (
            "a slash in a name",
            vec![("100644", b"a/b", blob_id)],
            "fullPathname",
        ),
        (
            "unsorted entries",
            vec![("100644", b"b", blob_id), ("100644", b"a", blob_id)],
            "treeNotSorted",
        ),
        // Objects that lie about their type: a file entry naming a tree.
        (
            "a file that is a tree",
            vec![("100644", b"file", sub_id)],
            "badType",
        ),
        (
            "a folder that is a blob",
            vec![("40000", b"dir", blob_id)],
            "badType",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut pack = Pack::new();
        pack.object(BLOB, b"x\n");
        pack.object(TREE, &packs::tree(&[("100644", "f", blob_id)]));
        let tree = pack.object(TREE, &raw_tree(&entries));
        let commit = pack.object(COMMIT, &packs::commit(tree, Some(parent), b"evil\n"));
        let name = format!("refs/heads/evil-{i}");
        let request = packs::push_request(
            &[(ZERO.to_string(), commit.to_string(), name.clone())],
            &pack.finish(),
        );
        a.refused(
            what,
            &request,
            &[
                &format!("invalid tree {tree}"),
                &format!("({id})"),
                &format!("ng {name}"),
            ],
        );
    }
    let _ = &mut base;
    // A new tree that names a tree the repository has had since an earlier push as a
    // file: the trees a repository holds are trusted, the new ones are checked,
    // whatever their entries name.
    let mut c = Command::new(common::GIT_NEW);
    c.arg("--git-dir")
        .arg(a.f.data.join("repos/skills.git"))
        .args(["rev-parse", &format!("{main}^{{tree}}")]);
    let existing = gix::ObjectId::from_hex(stdout_of(c).as_bytes()).unwrap();
    let mut pack = Pack::new();
    let tree = pack.object(TREE, &raw_tree(&[("100644", b"file", existing)]));
    let commit = pack.object(COMMIT, &packs::commit(tree, Some(parent), b"evil\n"));
    let request = packs::push_request(
        &[(
            ZERO.to_string(),
            commit.to_string(),
            "refs/heads/evil-old".into(),
        )],
        &pack.finish(),
    );
    a.refused(
        "a file that is a tree the repository has",
        &request,
        &[
            &format!("invalid tree {tree}"),
            &format!("names the tree {existing}"),
            "(badType)",
            "ng refs/heads/evil-old",
        ],
    );
    // The same name and id as an entry of the parent's tree, but the mode of a file:
    // the entries a new tree shares with its parent's are trusted only as they were
    // (name, kind and id), anything else is checked.
    let mut c = Command::new(common::GIT_NEW);
    c.arg("--git-dir")
        .arg(a.f.data.join("repos/skills.git"))
        .args(["rev-parse", &format!("{main}:skills")]);
    let folder = gix::ObjectId::from_hex(stdout_of(c).as_bytes()).unwrap();
    let mut pack = Pack::new();
    let tree = pack.object(TREE, &raw_tree(&[("100644", b"skills", folder)]));
    let commit = pack.object(COMMIT, &packs::commit(tree, Some(parent), b"evil\n"));
    let request = packs::push_request(
        &[(
            ZERO.to_string(),
            commit.to_string(),
            "refs/heads/evil-same-name".into(),
        )],
        &pack.finish(),
    );
    a.refused(
        "a folder of the parent's tree, as a file of the same name",
        &request,
        &[
            &format!("invalid tree {tree}"),
            &format!("names the tree {folder}"),
            "(badType)",
            "ng refs/heads/evil-same-name",
        ],
    );

    // A tag whose type says commit while its object is a blob, and a malformed tag.
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"not a commit\n");
    let liar = pack.object(TAG, &packs::tag(blob, "commit", "liar"));
    let request = packs::push_request(
        &[(ZERO.into(), liar.to_string(), "refs/tags/liar".into())],
        &pack.finish(),
    );
    a.refused(
        "a tag lying about its object's type",
        &request,
        &[
            &format!("invalid tag {liar}"),
            "is a blob, not the commit its 'type' line says (badType)",
            "ng refs/tags/liar",
        ],
    );
    let mut pack = Pack::new();
    let bad = pack.object(
        TAG,
        format!("object {parent}\ntype commit\n\nno tag line\n").as_bytes(),
    );
    let request = packs::push_request(
        &[(ZERO.into(), bad.to_string(), "refs/tags/bad".into())],
        &pack.finish(),
    );
    a.refused(
        "a tag without a tag line",
        &request,
        &[&format!("invalid tag {bad}"), "(missingTagEntry)"],
    );

    // The same objects made right are accepted: the checks refuse only what git does.
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"fine\n");
    let tree = pack.object(TREE, &packs::tree(&[("100644", ".gitignore", blob)]));
    let commit = pack.object(
        COMMIT,
        &commit_by(tree, parent, b"Mallory <m@example.com> 0 -0130", b""),
    );
    let (text, _) = a.push(
        "a valid commit",
        &update_main(&main, commit, &pack.finish()),
    );
    assert!(text.contains("ok refs/heads/main"), "{text}");
}

/// A push that creates `name` at a new commit on `parent`.
fn create_on(parent: gix::ObjectId, name: &str, body: &[u8]) -> Vec<u8> {
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, body);
    let tree = pack.object(TREE, &packs::tree(&[("100644", "x.txt", blob)]));
    let commit = pack.object(COMMIT, &packs::commit(tree, Some(parent), b"b\n"));
    packs::push_request(
        &[(ZERO.to_string(), commit.to_string(), name.to_string())],
        &pack.finish(),
    )
}

#[test]
fn look_alike_names_and_refs_a_stale_advertisement_would_let_collide_are_refused() {
    let mut f = ChildFixture::start("alice");
    let main = f.main();
    let parent = gix::ObjectId::from_hex(main.as_bytes()).unwrap();
    let request_for = |name: &str, body: &[u8]| create_on(parent, name, body);
    {
        let mut a = Attack::new(&mut f);
        for name in [
            "refs/heads/ma\u{131}n",   // dotless i
            "refs/heads/MA\u{130}N",   // dotted capital I
            "refs/heads/main\u{200b}", // zero-width space
            "refs/heads/m\u{430}in",   // Cyrillic a
            "refs/heads/-rf",
        ] {
            a.refused(
                name,
                &request_for(name, name.as_bytes()),
                &["ref name not allowed", "ASCII letters, digits"],
            );
        }
        a.refused(
            "HEAD",
            &request_for("refs/heads/HEAD", b"head"),
            &["`HEAD` is not a branch or tag name"],
        );
    }

    // Session B reads the advertisement; A creates `x` and `feature`; then B sends
    // `x/y` and `Feature`. One of each pair is refused, and the repository stays
    // servable on every later push.
    let mut b = common::ssh_to(&f.key, f.server.port)
        .arg("git-receive-pack '/skills.git'")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b_out = b.stdout.take().unwrap();
    {
        // The advertisement ends with a flush packet.
        use std::io::Read;
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"0000") {
            b_out.read_exact(&mut byte).unwrap();
            seen.push(byte[0]);
        }
    }
    {
        let mut a = Attack::new(&mut f);
        for name in ["refs/heads/x", "refs/heads/feature"] {
            let (text, _) = a.push(name, &request_for(name, b"first"));
            assert!(text.contains(&format!("ok {name}")), "{text}");
        }
    }
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"second");
    let tree = pack.object(TREE, &packs::tree(&[("100644", "x.txt", blob)]));
    let commit = pack.object(COMMIT, &packs::commit(tree, Some(parent), b"b\n"));
    let request = packs::push_request(
        &[
            (ZERO.into(), commit.to_string(), "refs/heads/x/y".into()),
            (ZERO.into(), commit.to_string(), "refs/heads/Feature".into()),
        ],
        &pack.finish(),
    );
    let mut stdin = b.stdin.take().unwrap();
    stdin.write_all(&request).unwrap();
    drop(stdin);
    let mut text = String::new();
    {
        use std::io::Read;
        let mut rest = Vec::new();
        b_out.read_to_end(&mut rest).unwrap();
        text.push_str(&String::from_utf8_lossy(&rest));
    }
    let _ = b.wait();
    assert!(
        text.contains("ng refs/heads/x/y ref conflict: `refs/heads/x` exists"),
        "{text}"
    );
    assert!(
        text.contains(
            "ng refs/heads/Feature ref conflict: `refs/heads/feature` differs only in case"
        ),
        "{text}"
    );
    let refs = f.rt.block_on(async {
        let pool = skillsd::db::connect(&f.db_url).await.unwrap();
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM git_refs WHERE repo = 'skills' ORDER BY name")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        names
    });
    assert_eq!(
        refs,
        ["refs/heads/feature", "refs/heads/main", "refs/heads/x"],
        "nothing of B's push was stored"
    );
    // Later pushes go on.
    std::fs::write(f.work.join("later.txt"), "later\n").unwrap();
    f.commit_all("later");
    let mut push = f.git();
    push.args(["push", "-q", "origin", "main"]);
    stdout_of(push);
    fsck(&f);

    // With a wider pattern, names from other scripts are allowed, but not those that
    // look like an existing ref.
    let mut wide = ChildFixture::start_with(
        "alice",
        &[],
        &[("SKILLSD_REF_PATTERN", "refs/(heads|tags)/.+")],
    );
    let wide_main = gix::ObjectId::from_hex(wide.main().as_bytes()).unwrap();
    let request_for = |name: &str, body: &[u8]| create_on(wide_main, name, body);
    let mut a = Attack::new(&mut wide);
    let (text, _) = a.push("café", &request_for("refs/heads/caf\u{e9}", b"cafe"));
    assert!(text.contains("ok refs/heads/caf\u{e9}"), "{text}");
    a.files = object_files(a.f);
    a.main = a.f.main();
    for name in [
        "refs/heads/ma\u{131}n",
        "refs/heads/main\u{200b}",
        "refs/heads/m\u{430}in",
    ] {
        a.refused(
            name,
            &request_for(name, name.as_bytes()),
            &["looks like `refs/heads/main`"],
        );
    }
}

/// Plants refs and a pack in the database as an older skillsd (or a bug) could have
/// left them, bypassing every check: the store of record, which every node follows.
fn plant(f: &ChildFixture, pack: &[u8], refs: &[(&str, gix::ObjectId)]) {
    // A runtime whose workers drive the connection while this thread blocks on it
    // (the upload is written for a blocking thread).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("planted.pack");
    std::fs::write(&loose, pack).unwrap();
    let out = Command::new(common::GIT_NEW)
        .arg("index-pack")
        .arg(&loose)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Named as packs are: by the checksum index-pack prints.
    let sum = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let pack_path = dir.path().join(format!("pack-{sum}.pack"));
    std::fs::rename(&loose, &pack_path).unwrap();
    std::fs::rename(loose.with_extension("idx"), pack_path.with_extension("idx")).unwrap();
    let rt = runtime.handle().clone();
    let pool = rt.block_on(skillsd::db::connect(&f.db_url)).unwrap();
    let mut conn = rt.block_on(pool.acquire()).unwrap();
    let mut tx = rt.block_on(sqlx::Connection::begin(&mut *conn)).unwrap();
    let generation = rt
        .block_on(skillsd::storage::publish::lock(&mut tx, "skills"))
        .unwrap();
    skillsd::storage::packs::upload(
        &rt,
        &mut tx,
        "skills",
        &pack_path,
        &pack_path.with_extension("idx"),
        generation + 1,
    )
    .unwrap();
    for (name, target) in refs {
        rt.block_on(
            sqlx::query("INSERT INTO git_refs (repo, name, target) VALUES ('skills', $1, $2)")
                .bind(name)
                .bind(target.to_string())
                .execute(&mut *tx),
        )
        .unwrap();
    }
    rt.block_on(skillsd::storage::publish::bump(&mut tx, "skills"))
        .unwrap();
    rt.block_on(tx.commit()).unwrap();
    drop(conn);
    rt.block_on(pool.close());
}

#[test]
fn skillsd_fsck_finds_what_older_versions_let_in_and_ref_delete_repairs_it() {
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = ChildFixture::start_with("alice", &["--http", &format!("127.0.0.1:{http}")], &[]);
    let main = gix::ObjectId::from_hex(f.main().as_bytes()).unwrap();
    let ready = || {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-w",
            " %{http_code}",
            &format!("http://127.0.0.1:{http}/readyz"),
        ]);
        stdout_of(c)
    };
    let clone = |dest: &str| {
        Command::new(common::GIT_NEW)
            .args(["clone", "-q", &f.server.url("skills.git")])
            .arg(f.home.join(dest))
            .env("HOME", &f.home)
            .env(
                "GIT_SSH_COMMAND",
                format!("ssh {} -p {}", common::ssh_options(&f.key), f.server.port),
            )
            .output()
            .unwrap()
    };
    let out = cli(&f, &["fsck"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("every ref and every object it reaches is valid")
    );

    // A tag that says commit of a blob, and a branch whose name is another's folder.
    let mut pack = Pack::new();
    let blob = pack.object(BLOB, b"not a commit\n");
    let liar = pack.object(TAG, &packs::tag(blob, "commit", "poison"));
    plant(
        &f,
        &pack.finish(),
        &[
            ("refs/tags/poison", liar),
            ("refs/heads/x", main),
            ("refs/heads/x/y", main),
        ],
    );
    // The poison is real: a fresh clone fails on it.
    let out = clone("poisoned");
    assert!(
        !out.status.success(),
        "the planted tag should break clones: {out:?}"
    );
    let text = ready();
    assert!(
        text.ends_with(" 503")
            && text.contains("refs/tags/poison is a tag of a commit whose object"),
        "{text}"
    );
    let out = cli(&f, &["fsck"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    common::assert_contains_all(
        &text,
        &[
            &format!("refs/tags/poison: invalid tag {liar}"),
            "(badType)",
            "refs/heads/x/y: `refs/heads/x` is a ref too",
            "2 refs with problems",
            "skillsd ref delete --repo skills REF",
        ],
    );
    // Pushes still work meanwhile (the copy leaves out the ref it cannot hold).
    std::fs::write(f.work.join("meanwhile.txt"), "meanwhile\n").unwrap();
    f.commit_all("meanwhile");
    let mut push = f.git();
    push.args(["push", "-q", "origin", "main"]);
    stdout_of(push);

    // The documented way out: delete the refs; everything is valid and clones again.
    for name in ["refs/tags/poison", "refs/heads/x/y"] {
        let out = cli(&f, &["ref", "delete", "--repo", "skills", name]);
        assert!(out.status.success(), "{out:?}");
    }
    let out = cli(&f, &["fsck"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ready(), "ready\n 200");
    let out = clone("repaired");
    assert!(out.status.success(), "{out:?}");
}

/// What a request is, seen from the server: held (all of it read and kept: the bytes
/// the server holds grew by at least `cost`), or refused (the session ended). Whichever
/// the server shows first; neither is inferred from time passing.
fn held_or_refused(
    f: &ChildFixture,
    child: &mut std::process::Child,
    before: f64,
    cost: f64,
) -> bool {
    common::eventually_some(120, "the request held or refused", || {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(false);
        }
        (f.server.metric(HELD) >= before + cost).then_some(true)
    })
}

const HELD: &str = "skillsd_fetch_requests_held_bytes";

#[test]
fn one_reader_cannot_hold_many_large_requests_at_once() {
    let f = ChildFixture::start_with("reader", &["--http", "127.0.0.1:0"], &[]);
    let main = f.main();
    // A v2 fetch of 20 MB (29 MiB as held) that never ends (no flush): held until
    // the session ends.
    let mut request = packs::pkt(b"command=fetch\n");
    request.extend_from_slice(b"0001");
    let have = packs::pkt(format!("have {main}\n").as_bytes());
    while request.len() < 20 << 20 {
        request.extend_from_slice(&have);
    }
    // As the server counts a held v2 argument: its text and a `String`; nine tenths
    // of it is more than a refused request can reach before its refusal.
    let lines = (request.len() / have.len()) as f64;
    let cost = 0.9 * lines * (have.len() - 5 + std::mem::size_of::<String>()) as f64;
    f.server.reset_peak_rss();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..4 {
        let before = f.server.metric(HELD);
        let mut child = common::ssh_to(&f.key, f.server.port)
            .args(["-o", "SetEnv=GIT_PROTOCOL=version=2"])
            .arg("git-upload-pack '/skills.git'")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // A refused request is cut off while it is written: a broken pipe.
        let _ = stdin.write_all(&request);
        if !held_or_refused(&f, &mut child, before, cost) {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("your requests in progress hold as much as one user may"),
                "{text:.300}"
            );
            refused += 1;
        } else {
            held.push((child, stdin));
        }
    }
    // 64 MiB per user: two are held, the others refused at once.
    assert_eq!((held.len(), refused), (2, 2));
    assert!(f.server.metric(HELD) >= 2.0 * cost);
    let peak = f.server.peak_rss_kib();
    eprintln!("held requests: peak RSS {:.1} MiB", peak as f64 / 1024.0);
    assert!(peak < BUDGET_KIB, "peak {peak} KiB");
    // The held ones given back, the same reader is served again.
    for (mut child, stdin) in held {
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
    }
    common::eventually(30, "the held requests given back", || {
        f.server.metric(HELD) == 0.0
    });
    let mut clone = f.git();
    clone
        .args(["clone", "-q", &f.server.url("skills.git")])
        .arg(f.home.join("after"));
    stdout_of(clone);
}

#[test]
fn one_reader_cannot_hold_many_large_v0_negotiations_at_once() {
    let f = ChildFixture::start_with("reader", &["--http", "127.0.0.1:0"], &[]);
    let main = f.main();
    // A protocol v0 fetch: one want, then 290,000 `have` lines of a commit the
    // server has (each kept as common), never `done`: held until the session ends.
    // Without multi_ack the server answers only the first (a client that sends
    // everything at once while the server ACKs each line stalls the session's flow
    // control: see the notes).
    let mut request = packs::pkt(format!("want {main} side-band-64k\n").as_bytes());
    request.extend_from_slice(b"0000");
    let have = packs::pkt(format!("have {main}\n").as_bytes());
    for _ in 0..290_000 {
        request.extend_from_slice(&have);
    }
    // As the server counts a kept v0 line: two object ids; nine tenths of it is more
    // than a refused negotiation can reach before its refusal.
    let cost = 0.9 * 290_000.0 * 2.0 * std::mem::size_of::<gix::ObjectId>() as f64;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..7 {
        let before = f.server.metric(HELD);
        let mut child = common::ssh_to(&f.key, f.server.port)
            .arg("git-upload-pack '/skills.git'")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Whatever the server answers is read as it comes.
        let mut stdout = child.stdout.take().unwrap();
        let answer = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut all);
            all
        });
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&request);
        let _ = stdin.flush();
        if !held_or_refused(&f, &mut child, before, cost) {
            let text = String::from_utf8_lossy(&answer.join().unwrap()).into_owned();
            assert!(
                text.contains("your requests in progress hold as much as one user may"),
                "{}",
                &text[text.len().saturating_sub(300)..]
            );
            refused += 1;
        } else {
            held.push((child, stdin));
        }
    }
    // 64 MiB per user, about 12 MB per negotiation as held: five are held.
    assert_eq!((held.len(), refused), (5, 2));
    for (mut child, stdin) in held {
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
    }
    common::eventually(30, "the held negotiations given back", || {
        f.server.metric(HELD) == 0.0
    });
    let mut clone = f.git();
    clone
        .args(["clone", "-q", &f.server.url("skills.git")])
        .arg(f.home.join("after-v0"));
    stdout_of(clone);
}

#[test]
fn many_deltas_on_one_large_base_are_refused_before_they_cost_minutes() {
    let mut f = ChildFixture::start("alice");
    let main = f.main();
    let mut a = Attack::new(&mut f);
    // A 30 MiB blob of zeros (30 KiB deflated), then 100 deltas of a few bytes that
    // each copy all of it: 3 GiB to produce from a pack of about 35 KiB.
    let size: u64 = 30 << 20;
    let mut pack = Pack::new();
    let base = pack.raw(BLOB, size, &packs::deflate_zeros(size));
    for i in 0..100u8 {
        let mut delta = packs::delta_varint(size);
        delta.extend(packs::delta_varint(size + 1));
        delta.extend(packs::copy_op(0, 15 << 20));
        delta.extend(packs::copy_op(15 << 20, 15 << 20));
        delta.extend([1, i]); // one literal byte: every result differs
        pack.ofs_delta(base, &delta);
    }
    let blob = packs::object_id(BLOB, b"x");
    let request = push_tree(
        &mut pack,
        &main,
        packs::object_id(TREE, &packs::tree(&[("100644", "x", blob)])),
        b"amplified\n",
    );
    // Refused by the guard in front of the indexer: nothing was inflated.
    a.refused(
        "deltas copying one large base",
        &request,
        &[
            "inflate to more than 200 times its size",
            "push in smaller parts",
        ],
    );
}
