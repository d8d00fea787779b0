//! Server time of the pre-receive stage for big pushes: `cargo bench --bench validate`.
//!
//! Builds a repository with `git fast-import` (the skills template, then one commit
//! adding N skills of 2–4 KB, shaped like the stock anchor's generator), then runs the
//! very pre-receive check a push runs (connectivity, ref policy, rules loading, every
//! file's validation, the tree-wide checks) on the new tip, several times, and prints
//! the median and the fastest run for:
//!
//! * flat: N new skills in the flat layout (the target: under 1 s for 10,000);
//! * rules changed: the schema changes, so all N existing skills are checked again;
//! * agent-skills: N new skills in the Agent Skills layout;
//! * one skill changed in N: a push of one file, the server's case most of the time
//!   (the repository trusted as the server trusts it, its untouched trees known from
//!   the runs before).
//!
//! `SKILLS=10000 RUNS=5` by default.

use proptest::prelude::RngExt;
use proptest::test_runner::{RngAlgorithm, TestRng};
use skillsd::receive::commands::Command;
use skillsd::receive::pre_receive::{Policy, check};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

const WORDS: &[&str] = &[
    "deploy", "review", "service", "cache", "token", "pipeline", "rollback", "metric", "alert",
    "branch", "schema", "query", "index", "release", "budget", "incident", "runbook", "owner",
    "latency", "queue", "worker", "backup", "restore", "secret", "policy", "audit", "quota",
];
const CATEGORIES: &[&str] = &["ops", "security", "data", "frontend", "backend", "process"];

/// proptest's deterministic generator from a fixed seed, so every run builds the same
/// files.
struct Rng(TestRng);
impl Rng {
    fn seeded() -> Rng {
        Rng(TestRng::from_seed(
            RngAlgorithm::XorShift,
            b"skillsd-validate",
        ))
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }
    fn word(&mut self) -> &'static str {
        WORDS[self.below(WORDS.len())]
    }
    fn sentence(&mut self) -> String {
        let n = 8 + self.below(10);
        let mut s: Vec<&str> = (0..n).map(|_| self.word()).collect();
        let first = s[0];
        let mut out = first[..1].to_uppercase() + &first[1..];
        s.remove(0);
        for w in s {
            out.push(' ');
            out.push_str(w);
        }
        out.push('.');
        out
    }
}

fn body(rng: &mut Rng, title: &str) -> String {
    let target = 2000 + rng.below(2000);
    let mut body = format!("# {title}\n\n{}\n\n## Steps\n\n", rng.sentence());
    for k in 1..=(3 + rng.below(4)) {
        body.push_str(&format!("{k}. {}\n", rng.sentence()));
    }
    body.push_str("\n## Notes\n\n");
    while body.len() < target {
        body.push_str(&rng.sentence());
        body.push(' ');
    }
    body.push('\n');
    body
}

fn flat_skill(rng: &mut Rng, i: usize) -> (String, String) {
    let (a, b) = (rng.word(), rng.word());
    let title = format!("{} the {b}", &(a[..1].to_uppercase() + &a[1..]));
    let slug = format!("{a}-{b}-{i:05}");
    let category = CATEGORIES[rng.below(CATEGORIES.len())];
    let tag = rng.word();
    let text = format!(
        "---\ntitle: \"{title}\"\nslug: {slug}\ncategory: {category}\nowner: team-{}\nstatus: PUBLISHED\ntags: [{category}, {tag}]\n---\n{}",
        rng.below(20),
        body(rng, &title)
    );
    (format!("skills/{category}/{slug}.md"), text)
}

fn agent_skill(rng: &mut Rng, i: usize) -> (String, String) {
    let (a, b) = (rng.word(), rng.word());
    let name = format!("{a}-{b}-{i:05}");
    let text = format!(
        "---\nname: {name}\ndescription: {} Use it when asked to {a} a {b}.\nlicense: MIT\nmetadata:\n  owner: team-{}\n  tags: {a}, {b}\n---\n{}",
        rng.sentence(),
        rng.below(20),
        body(rng, &name)
    );
    (format!("skills/{name}/SKILL.md"), text)
}

/// Writes commits with `git fast-import`: each commit is a list of (path, content), on
/// top of the previous one. Returns the commits' ids.
fn import(dir: &std::path::Path, commits: &[Vec<(String, String)>]) -> Vec<String> {
    let mut child = Process::new("git")
        .args(["fast-import", "--quiet", "--export-marks=marks"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import");
    {
        let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
        for (n, files) in commits.iter().enumerate() {
            let msg = format!("commit {n}");
            write!(
                w,
                "commit refs/heads/main\nmark :{}\ncommitter Bench <b@example.com> 1700000000 +0000\ndata {}\n{msg}\n",
                n + 1,
                msg.len()
            )
            .unwrap();
            if n > 0 {
                writeln!(w, "from :{n}").unwrap();
            }
            for (path, text) in files {
                write!(w, "M 100644 inline {path}\ndata {}\n{text}\n", text.len()).unwrap();
            }
        }
        writeln!(w, "done").unwrap();
    }
    assert!(child.wait().unwrap().success());
    let marks = std::fs::read_to_string(dir.join("marks")).unwrap();
    let mut ids: Vec<(usize, String)> = marks
        .lines()
        .map(|l| {
            let (m, id) = l.split_once(' ').unwrap();
            (m[1..].parse().unwrap(), id.to_string())
        })
        .collect();
    ids.sort();
    ids.into_iter().map(|(_, id)| id).collect()
}

/// A commit on `parent` writing one file, in a new repository at `quarantine` that
/// borrows `repo`'s objects (as a push's quarantine does). Returns its id.
fn quarantine_commit(
    repo: &std::path::Path,
    quarantine: &std::path::Path,
    parent: &str,
    (path, text): (&str, &str),
) -> String {
    let git = |args: &[&str], input: Option<&str>| {
        let mut child = Process::new("git")
            .args(args)
            .current_dir(quarantine)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q", "--bare", "."], None);
    std::fs::write(
        quarantine.join("objects/info/alternates"),
        format!("{}\n", repo.join("objects").display()),
    )
    .unwrap();
    let msg = "one changed";
    git(
        &["fast-import", "--quiet"],
        Some(&format!(
            "commit refs/heads/main\ncommitter Bench <b@example.com> 1700000000 +0000\ndata {}\n{msg}\nfrom {parent}\nM 100644 inline {path}\ndata {}\n{text}\ndone\n",
            msg.len(),
            text.len()
        )),
    );
    git(&["rev-parse", "refs/heads/main"], None)
        .trim()
        .to_string()
}

fn measure(
    repo: &gix::Repository,
    (old, new): (&str, &str),
    known: Option<&gix::Repository>,
    runs: usize,
) -> (Duration, Duration, Vec<skillsd::skills::Problem>) {
    let old = gix::ObjectId::from_hex(old.as_bytes()).unwrap();
    let new = gix::ObjectId::from_hex(new.as_bytes()).unwrap();
    let commands = vec![Command {
        old,
        new,
        name: "refs/heads/main".to_string(),
    }];
    let current: HashMap<String, gix::ObjectId> =
        [("refs/heads/main".to_string(), old)].into_iter().collect();
    let policy = Policy {
        max_files_per_push: usize::MAX,
        ..Policy::default()
    };
    let mut times = Vec::new();
    let mut problems = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let never = std::sync::atomic::AtomicBool::new(false);
        let verdict = check(
            repo,
            &commands,
            &policy,
            &current,
            &mut |_| {},
            &never,
            known,
            None,
        );
        times.push(started.elapsed());
        problems = verdict.problems;
    }
    times.sort();
    (times[times.len() / 2], times[0], problems)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary
    // without it, and then a small smoke run checks that the benchmark still works.
    let bench = std::env::args().any(|a| a == "--bench");
    let var = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let skills = if bench { var("SKILLS", 10_000) } else { 200 };
    let runs = if bench { var("RUNS", 5) } else { 1 };
    // `ONLY=one`: only the push of one changed skill (to profile it).
    let only_one = std::env::var("ONLY").is_ok_and(|v| v == "one");
    let template: Vec<(String, String)> = skillsd::repos::TEMPLATE
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();

    let mut rng = Rng::seeded();
    let flat: Vec<_> = (0..skills).map(|i| flat_skill(&mut rng, i)).collect();
    let schema =
        skillsd::skills::rules::FLAT_SCHEMA.replace("\"maxLength\": 200", "\"maxLength\": 180");
    let agent_config = (
        "skillsd.toml".to_string(),
        "layout = \"agent-skills\"\nschema = \"rules/agent-skills.schema.json\"\n".to_string(),
    );
    let agent: Vec<_> = (0..skills).map(|i| agent_skill(&mut rng, i)).collect();

    // Flat repository: template, +N skills, schema change.
    let dir = tempfile::tempdir().unwrap();
    let ok = Process::new("git")
        .args(["init", "-q", "--bare", "."])
        .current_dir(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let ids = import(
        dir.path(),
        &[
            template.clone(),
            flat.clone(),
            vec![("rules/flat.schema.json".to_string(), schema)],
        ],
    );
    let repo = skillsd::repos::open_server_repo(dir.path()).unwrap();

    // Agent-skills repository: the template without its flat skills, in the Agent
    // Skills layout, then +N skills.
    let adir = tempfile::tempdir().unwrap();
    assert!(
        Process::new("git")
            .args(["init", "-q", "--bare", "."])
            .current_dir(adir.path())
            .status()
            .unwrap()
            .success()
    );
    let mut base: Vec<(String, String)> = template
        .iter()
        .filter(|(p, _)| !p.starts_with("skills/") || p == "skills/README.md")
        .cloned()
        .collect();
    base.push(agent_config);
    let aids = import(adir.path(), &[base, agent]);
    let arepo = skillsd::repos::open_server_repo(adir.path()).unwrap();

    println!("pre-receive check, {skills} skills, {runs} runs (median / fastest):");
    for (what, repo, old, new) in [
        ("flat: N new skills", &repo, &ids[0], &ids[1]),
        (
            "rules changed: N skills checked again",
            &repo,
            &ids[1],
            &ids[2],
        ),
        ("agent-skills: N new skills", &arepo, &aids[0], &aids[1]),
    ] {
        if only_one {
            continue;
        }
        report(what, measure(repo, (old, new), None, runs), Some(skills));
    }
    // A push of one changed skill as the server sees it: its objects in a quarantine
    // (a repository that borrows the flat one's objects), the repository trusted for
    // what it holds.
    let qdir = tempfile::tempdir().unwrap();
    let quarantine = quarantine_commit(
        dir.path(),
        qdir.path(),
        &ids[2],
        (
            &flat[skills / 2].0,
            &flat[skills / 2]
                .1
                .replace("\n## ", "\nOne more line.\n\n## "),
        ),
    );
    let view = skillsd::repos::open_server_repo(qdir.path()).unwrap();
    // One run first, as the push before it would have walked the tree.
    report(
        "one skill changed in N",
        measure(&view, (&ids[2], &quarantine), Some(&repo), runs + 1),
        None,
    );
}

/// One case's line: its median and fastest run (and per skill, given how many the
/// case checks), after making sure the generated skills passed every check.
fn report(
    what: &str,
    (median, fastest, problems): (Duration, Duration, Vec<skillsd::skills::Problem>),
    skills: Option<usize>,
) {
    assert!(
        problems.is_empty(),
        "{what}: the generated skills must be valid:\n{}",
        skillsd::skills::render_problems(&problems)
    );
    let per_skill = skills
        .map(|n| {
            format!(
                "  ({:.1} µs per skill)",
                median.as_secs_f64() * 1e6 / n as f64
            )
        })
        .unwrap_or_default();
    println!(
        "  {what:<40} {:>7.1} ms / {:>7.1} ms{per_skill}",
        median.as_secs_f64() * 1000.0,
        fastest.as_secs_f64() * 1000.0,
    );
}
