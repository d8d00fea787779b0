//! Partial clones (`--filter`), with both gits and both protocol versions over real
//! ssh: `blob:none` with a sparse checkout of one skill (what Claude Code's
//! `git-subdir` source does), the lazy fetches of blobs that are no ref's tip,
//! `blob:limit`, `tree:0`, `combine:`, filters with `--depth`, fetch and push from a
//! partial clone, and the refusals: unknown and malformed filters, objects no ref
//! reaches (a deleted branch's, whose objects stay in the server's packs).

use crate::common;

use common::{GITS, Git, Key, Server, packs::pkt};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

const LAYOUT: &str = "layout = \"agent-skills\"\nroots = [\"skills\"]\n";
const SKILLS: [&str; 3] = ["alpha", "beta", "gamma"];
/// Bigger than the `blob:limit` the tests use (100k).
const BIG: usize = 200 * 1024;

fn skill_md(name: &str, rev: &str) -> String {
    format!(
        "---\nname: {name}\ndescription: The {name} skill, {rev}.\n---\n\n# {name}\n\nDo it the {name} way ({rev}).\n"
    )
}

/// The repository of the tests: the template's skills replaced by three skill
/// folders (SKILL.md, a reference, a script) in the agent-skills layout, a big data
/// file outside the skills, then a second commit that changes beta.
struct Fixture {
    server: Server,
    key: Key,
    author: Git,
    work: PathBuf,
    /// The commit before beta's v2: its `skills/beta/SKILL.md` is v1.
    first: String,
}

fn fixture() -> Fixture {
    let server = Server::start();
    let key = server.add_user("sam", "writer");
    let author = Git::new(common::GIT_NEW, &key, &server);
    let work = author.clone(&server.url("skills.git"), &[]);
    author.ok(
        &work,
        &["rm", "-q", "-r", "skills/git", "skills/getting-started"],
    );
    let mut files: Vec<(String, Vec<u8>)> = vec![("skillsd.toml".into(), LAYOUT.into())];
    for name in SKILLS {
        files.push((
            format!("skills/{name}/SKILL.md"),
            skill_md(name, "v1").into(),
        ));
        files.push((
            format!("skills/{name}/references/guide.md"),
            format!("# The {name} guide\n\nStep one.\n").into(),
        ));
        files.push((
            format!("skills/{name}/scripts/run.py"),
            format!("print('{name}')\n").into(),
        ));
    }
    let big: Vec<u8> = (0..BIG).map(|i| b"skills\n"[i % 7]).collect();
    files.push(("data/big.txt".into(), big));
    let first = author.commit_files(&work, &files, "three skills and a big file");
    author.commit_files(
        &work,
        &[("skills/beta/SKILL.md", skill_md("beta", "v2"))],
        "beta v2",
    );
    author.ok(&work, &["push", "-q", "origin", "main"]);
    Fixture {
        server,
        key,
        author,
        work,
        first,
    }
}

/// Object ids present in the repository, by type — read without any lazy fetch.
fn present(git: &Git, dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let out = git.ok(
        dir,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objecttype) %(objectname)",
        ],
    );
    let mut by_kind: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in out.lines() {
        let (kind, id) = line.split_once(' ').unwrap();
        by_kind
            .entry(kind.to_string())
            .or_default()
            .insert(id.to_string());
    }
    by_kind
}

fn blobs(git: &Git, dir: &Path) -> BTreeSet<String> {
    present(git, dir).remove("blob").unwrap_or_default()
}

/// Objects the history names that the repository lacks (`?` lines), no lazy fetch.
fn missing(git: &Git, dir: &Path) -> BTreeSet<String> {
    git.ok(dir, &["rev-list", "--objects", "--missing=print", "--all"])
        .lines()
        .filter_map(|l| l.strip_prefix('?'))
        .map(str::to_string)
        .collect()
}

/// Path → blob id of every file of `rev` in the author's repository.
fn files_of(git: &Git, dir: &Path, rev: &str) -> BTreeMap<String, String> {
    git.ok(dir, &["ls-tree", "-r", rev])
        .lines()
        .map(|l| {
            let (meta, path) = l.split_once('\t').unwrap();
            (
                path.to_string(),
                meta.split(' ').nth(2).unwrap().to_string(),
            )
        })
        .collect()
}

/// What a cone-mode sparse checkout of `skills/<skill>` reads: the files at the top,
/// the files directly in `skills/`, and everything of that skill.
fn in_cone(path: &str, skill: &str) -> bool {
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
    parent.is_empty() || parent == "skills" || path.starts_with(&format!("skills/{skill}/"))
}

#[test]
fn sparse_partial_clone_fetches_one_skill_then_fetch_and_push_work() {
    let f = fixture();
    for bin in GITS {
        for proto in ["2", "0"] {
            let git = Git::new(bin, &f.key, &f.server);
            let p = format!("protocol.version={proto}");
            let dir = git.clone(
                &f.server.url("skills.git"),
                &["-c", &p, "--filter=blob:none", "--sparse"],
            );
            // The lazy fetches run as their own git processes: they read this.
            git.ok(&dir, &["config", "protocol.version", proto]);
            git.ok(&dir, &["sparse-checkout", "set", "skills/alpha"]);
            let tip = f.author.head(&f.work);
            assert_eq!(git.head(&dir), tip);
            let files = files_of(&f.author, &f.work, "HEAD");
            let wanted: BTreeSet<String> = files
                .iter()
                .filter(|(path, _)| in_cone(path, "alpha"))
                .map(|(_, id)| id.clone())
                .collect();
            // Exactly the blobs of the checkout are here: alpha's, none of beta's,
            // gamma's or the big file, none of history.
            assert_eq!(blobs(&git, &dir), wanted, "{bin} v{proto}");
            for (path, id) in &files {
                assert_eq!(
                    missing(&git, &dir).contains(id),
                    !in_cone(path, "alpha"),
                    "{bin} v{proto}: {path}"
                );
            }
            // Commits and trees all came with the clone.
            let kinds = present(&git, &dir);
            let commits: usize = f
                .author
                .ok(&f.work, &["rev-list", "--count", "HEAD"])
                .trim()
                .parse()
                .unwrap();
            assert_eq!(kinds["commit"].len(), commits, "{bin} v{proto}");
            assert!(kinds["tree"].len() > 10, "{bin} v{proto}");
            // The checkout is right.
            for name in ["SKILL.md", "references/guide.md", "scripts/run.py"] {
                let path = format!("skills/alpha/{name}");
                assert_eq!(
                    std::fs::read(dir.join(&path)).unwrap(),
                    std::fs::read(f.work.join(&path)).unwrap(),
                    "{bin} v{proto}: {path}"
                );
            }
            assert!(!dir.join("skills/beta").exists());
            assert!(!dir.join("data").exists());

            // A lazy fetch of a blob of history that is nobody's tip.
            let old = git.ok(
                &dir,
                &["show", &format!("{}:skills/beta/SKILL.md", f.first)],
            );
            assert_eq!(old, skill_md("beta", "v1"), "{bin} v{proto}");
            assert_eq!(blobs(&git, &dir).len(), wanted.len() + 1);

            // New work on the server: a fetch brings commits and trees, the pull's
            // checkout fetches the changed alpha blob, not gamma's.
            let new = f.author.commit_files(
                &f.work,
                &[
                    (
                        "skills/alpha/SKILL.md",
                        skill_md("alpha", &format!("{bin} {proto}")),
                    ),
                    (
                        "skills/gamma/SKILL.md",
                        skill_md("gamma", &format!("{bin} {proto}")),
                    ),
                ],
                "alpha and gamma",
            );
            f.author.ok(&f.work, &["push", "-q", "origin", "main"]);
            git.ok(&dir, &["pull", "-q", "--ff-only"]);
            assert_eq!(git.head(&dir), new);
            assert_eq!(
                std::fs::read_to_string(dir.join("skills/alpha/SKILL.md")).unwrap(),
                skill_md("alpha", &format!("{bin} {proto}"))
            );
            let now = files_of(&f.author, &f.work, "HEAD");
            assert!(missing(&git, &dir).contains(&now["skills/gamma/SKILL.md"]));
            assert!(!missing(&git, &dir).contains(&now["skills/alpha/SKILL.md"]));

            // A push from the partial clone.
            let pushed = git.commit_files(
                &dir,
                &[(
                    "skills/alpha/references/guide.md",
                    format!("# The alpha guide\n\nPushed by {bin} v{proto}.\n"),
                )],
                "alpha guide",
            );
            git.ok(&dir, &["push", "-q", "origin", "main"]);
            assert_eq!(
                f.server.server_ref("skills", "refs/heads/main").as_deref(),
                Some(pushed.as_str())
            );
            f.author.ok(&f.work, &["pull", "-q", "--ff-only"]);
            // The clone is sound as a partial clone (missing promised objects allowed).
            git.ok(&dir, &["fsck", "--no-dangling"]);
        }
    }
    f.server.assert_fsck("skills");
}

#[test]
fn size_depth_and_combined_filters_with_and_without_depth() {
    let f = fixture();
    let files = files_of(&f.author, &f.work, "HEAD");
    let big = files["data/big.txt"].clone();
    let all_blobs = blobs(&f.author, &f.work);
    for bin in GITS {
        for proto in ["2", "0"] {
            let git = Git::new(bin, &f.key, &f.server);
            let p = format!("protocol.version={proto}");
            let url = f.server.url("skills.git");
            let ctx = format!("{bin} v{proto}");

            // blob:limit leaves out the big blob only; the checkout fetches it.
            let dir = git.clone(
                &url,
                &["-c", &p, "--filter=blob:limit=100k", "--no-checkout"],
            );
            git.ok(&dir, &["config", "protocol.version", proto]);
            let mut small = all_blobs.clone();
            small.remove(&big);
            assert_eq!(blobs(&git, &dir), small, "{ctx} blob:limit");
            assert_eq!(missing(&git, &dir), BTreeSet::from([big.clone()]), "{ctx}");
            git.ok(&dir, &["checkout", "-q", "main"]);
            assert_eq!(
                std::fs::read(dir.join("data/big.txt")).unwrap(),
                std::fs::read(f.work.join("data/big.txt")).unwrap()
            );

            // tree:0: commits only; the checkout fetches the trees, then the blobs.
            let dir = git.clone(&url, &["-c", &p, "--filter=tree:0", "--no-checkout"]);
            git.ok(&dir, &["config", "protocol.version", proto]);
            let kinds = present(&git, &dir);
            assert_eq!(
                kinds.keys().collect::<Vec<_>>(),
                vec!["commit"],
                "{ctx} tree:0"
            );
            git.ok(&dir, &["checkout", "-q", "main"]);
            for path in files.keys() {
                assert_eq!(
                    std::fs::read(dir.join(path)).unwrap(),
                    std::fs::read(f.work.join(path)).unwrap(),
                    "{ctx} tree:0: {path}"
                );
            }
            git.ok(&dir, &["fsck", "--no-dangling"]);

            // Two filters (git sends combine:): trees down to depth 2 (the root,
            // skills/, skills/alpha/), blobs down to depth 2 and under 100 KiB.
            let dir = git.clone(
                &url,
                &[
                    "-c",
                    &p,
                    "--filter=tree:3",
                    "--filter=blob:limit=100k",
                    "--no-checkout",
                ],
            );
            let have = present(&git, &dir);
            let has = |id: &str| have.values().any(|s| s.contains(id));
            let tree_of = |path: &str| {
                f.author
                    .ok(&f.work, &["rev-parse", &format!("HEAD:{path}")])
                    .trim()
                    .to_string()
            };
            assert!(has(&files["skillsd.toml"]), "{ctx} combine: depth 1");
            assert!(has(&files["skills/README.md"]), "{ctx} combine: depth 2");
            assert!(has(&tree_of("skills/alpha")), "{ctx} combine: tree at 2");
            assert!(!has(&big), "{ctx} combine: too big");
            assert!(
                !has(&files["skills/alpha/SKILL.md"]),
                "{ctx} combine: depth 3"
            );
            assert!(!has(&tree_of("skills/alpha/references")), "{ctx} combine");

            // With --depth: one commit, its trees, the checkout's blobs; deepening
            // and a lazy fetch of the older commit's file work.
            let dir = git.clone(
                &url,
                &["-c", &p, "--depth=1", "--filter=blob:none", "--sparse"],
            );
            git.ok(&dir, &["config", "protocol.version", proto]);
            git.ok(&dir, &["sparse-checkout", "set", "skills/beta"]);
            assert_eq!(present(&git, &dir)["commit"].len(), 1, "{ctx} shallow");
            assert_eq!(
                std::fs::read_to_string(dir.join("skills/beta/SKILL.md")).unwrap(),
                std::fs::read_to_string(f.work.join("skills/beta/SKILL.md")).unwrap()
            );
            let wanted = files
                .iter()
                .filter(|(path, _)| in_cone(path, "beta"))
                .count();
            assert_eq!(blobs(&git, &dir).len(), wanted, "{ctx} shallow");
            git.ok(&dir, &["fetch", "-q", "--deepen=1"]);
            assert_eq!(present(&git, &dir)["commit"].len(), 2, "{ctx} deepen");
            assert_eq!(
                blobs(&git, &dir).len(),
                wanted,
                "{ctx}: deepen sent no blob"
            );
            let old = git.ok(&dir, &["show", "HEAD~1:skills/beta/SKILL.md"]);
            assert_eq!(old, skill_md("beta", "v1"), "{ctx}");
        }
    }
    f.server.assert_fsck("skills");
}

/// Runs `git-upload-pack` over ssh with a raw request; returns stdout.
fn raw_upload_pack(f: &Fixture, version: &str, input: Vec<u8>) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn v2_fetch(lines: &[String]) -> Vec<u8> {
    let mut request = pkt(b"command=fetch\n");
    request.extend_from_slice(b"0001");
    for l in lines {
        request.extend_from_slice(&pkt(format!("{l}\n").as_bytes()));
    }
    request.extend_from_slice(b"0000");
    request
}

fn v0_fetch(lines: &[String]) -> Vec<u8> {
    let mut request = Vec::new();
    for l in lines {
        request.extend_from_slice(&pkt(format!("{l}\n").as_bytes()));
    }
    request.extend_from_slice(b"0000");
    request.extend_from_slice(&pkt(b"done\n"));
    request
}

#[test]
fn bad_filters_and_unreachable_objects_are_refused() {
    let f = fixture();
    let url = f.server.url("skills.git");
    // A branch with a secret, then deleted: its objects stay in the server's packs.
    f.author.ok(&f.work, &["checkout", "-q", "-b", "secret"]);
    let secret_commit = f.author.commit_files(
        &f.work,
        &[(
            "skills/alpha/references/secret.md",
            "# Not for you\n\nThe launch code is 0000.\n",
        )],
        "secret",
    );
    let secret_blob = f
        .author
        .ok(
            &f.work,
            &["rev-parse", "HEAD:skills/alpha/references/secret.md"],
        )
        .trim()
        .to_string();
    let secret_tree = f
        .author
        .ok(&f.work, &["rev-parse", "HEAD:skills/alpha/references"])
        .trim()
        .to_string();
    f.author.ok(&f.work, &["push", "-q", "origin", "secret"]);
    f.author.ok(&f.work, &["push", "-q", "origin", ":secret"]);
    f.author.ok(&f.work, &["checkout", "-q", "main"]);
    assert_eq!(f.server.server_ref("skills", "refs/heads/secret"), None);
    let server_has = |id: &str| {
        std::process::Command::new(common::GIT_NEW)
            .arg("--git-dir")
            .arg(f.server.repo_path("skills"))
            .args(["cat-file", "-e", id])
            .status()
            .unwrap()
            .success()
    };
    assert!(server_has(&secret_blob) && server_has(&secret_commit));
    let main = f.author.head(&f.work);
    let reachable_blob = files_of(&f.author, &f.work, "HEAD~1")["skills/beta/SKILL.md"].clone();

    for bin in GITS {
        for proto in ["2", "0"] {
            let git = Git::new(bin, &f.key, &f.server);
            let p = format!("protocol.version={proto}");
            let ctx = format!("{bin} v{proto}");
            // A filter git knows and this server does not: refused, the reason shown.
            let dest = git.home.path().join("typed");
            let stderr = git.fails(
                git.home.path(),
                &[
                    "-c",
                    &p,
                    "clone",
                    "--filter=object:type=blob",
                    &url,
                    dest.to_str().unwrap(),
                ],
            );
            assert!(
                stderr.contains("remote error: filter `object:type=blob` is not supported: this server supports blob:none"),
                "{ctx}: {stderr}"
            );
            assert!(!dest.join("skills").exists());

            // A deleted branch's blob, tree and commit: the lazy fetch is refused.
            let dir = git.clone(&url, &["-c", &p, "--filter=blob:none", "--no-checkout"]);
            git.ok(&dir, &["config", "protocol.version", proto]);
            for id in [&secret_blob, &secret_tree] {
                let stderr = git.fails(&dir, &["cat-file", "-p", id]);
                assert!(
                    stderr.contains(&format!("not our ref {id}")),
                    "{ctx}: {stderr}"
                );
            }
            let stderr = git.fails(&dir, &["fetch", "origin", &secret_commit]);
            assert!(
                stderr.contains(&format!("not our ref {secret_commit}")),
                "{ctx}: {stderr}"
            );
            assert!(!blobs(&git, &dir).contains(&secret_blob));
            // What the refs reach is served.
            assert_eq!(
                git.ok(&dir, &["cat-file", "-p", &reachable_blob]),
                skill_md("beta", "v1")
            );
        }
    }

    // Malformed specs (git itself never sends them) and a second filter line, in
    // both versions: an ERR line with the reason, no pack.
    for (filter, says) in [
        (
            "tree:x",
            "filter `tree:x`: the depth must be a whole number",
        ),
        (
            "blob:limit=12q",
            "filter `blob:limit=12q`: the limit must be a whole number of bytes",
        ),
        (
            "nonsense",
            "unknown filter `nonsense`: this server supports",
        ),
        (
            "combine:blob%3",
            "filter `combine:blob%3`: a malformed %-escape in `blob%3`",
        ),
    ] {
        for (version, request) in [
            (
                "version=2",
                v2_fetch(&[
                    format!("want {main}"),
                    format!("filter {filter}"),
                    "done".into(),
                ]),
            ),
            (
                "version=0",
                v0_fetch(&[
                    format!("want {main} side-band-64k"),
                    format!("filter {filter}"),
                ]),
            ),
        ] {
            let out = raw_upload_pack(&f, version, request);
            assert!(
                out.contains(&format!("ERR {says}")),
                "{version} {filter}: {out}"
            );
            assert!(!out.contains("packfile") && !out.contains("PACK"), "{out}");
        }
    }
    let out = raw_upload_pack(
        &f,
        "version=2",
        v2_fetch(&[
            format!("want {main}"),
            "filter blob:none".into(),
            "filter tree:0".into(),
            "done".into(),
        ]),
    );
    assert!(out.contains("ERR more than one filter line"), "{out}");

    // A v0 client writes `done` after its want list without reading in between: the
    // session stays open for it after the refusal (were it closed, git's next write
    // could fail with a broken pipe before it reads the reason), until it hangs up.
    let mut child = common::ssh_to(&f.key, f.server.port)
        .args(["-o", "SetEnv=GIT_PROTOCOL=version=0"])
        .arg("git-upload-pack '/skills.git'")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut wants = pkt(format!("want {main} side-band-64k\n").as_bytes());
    wants.extend_from_slice(&pkt(b"filter tree:x\n"));
    wants.extend_from_slice(b"0000");
    stdin.write_all(&wants).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "closed before the client's done"
    );
    stdin.write_all(&pkt(b"done\n")).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ERR filter `tree:x`"), "{text}");

    // An object that does not exist gets the same answer as one no ref reaches: the
    // answer does not tell which.
    let absent = "0123456789abcdef0123456789abcdef01234567";
    for id in [absent, secret_blob.as_str(), secret_commit.as_str()] {
        for (version, request) in [
            (
                "version=2",
                v2_fetch(&[format!("want {id}"), "done".into()]),
            ),
            ("version=0", v0_fetch(&[format!("want {id} side-band-64k")])),
        ] {
            let out = raw_upload_pack(&f, version, request);
            assert!(
                out.contains(&format!(
                    "ERR upload-pack: not our ref {id}: no ref you can see reaches this object"
                )),
                "{version} {id}: {out}"
            );
            assert!(!out.contains("PACK"), "{out}");
        }
    }
    // A tip and a reachable blob in one request are served.
    let out = raw_upload_pack(
        &f,
        "version=2",
        v2_fetch(&[
            format!("want {main}"),
            format!("want {reachable_blob}"),
            "filter blob:none".into(),
            "done".into(),
        ]),
    );
    assert!(out.contains("packfile") && out.contains("PACK"), "{out}");
    f.server.assert_fsck("skills");
}
