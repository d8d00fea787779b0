//! Resource exhaustion: out of file descriptors, the accept loop waits instead of
//! spinning; the HTTP side caps its connections and closes idle or endless ones.
//! skillsd runs as its own process, its limits set from outside (`prlimit`).

mod common;

use common::{free_port, stdout_of, ChildFixture};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// CPU time (user + system) the process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state (field 3).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Sets the process's soft limit of open files (the hard limit stays).
fn prlimit_nofile(pid: u32, n: usize) {
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn out_of_descriptors_the_server_waits_instead_of_spinning() {
    let mut f = ChildFixture::start("alice");
    let pid = f.server.pid().unwrap();
    // A few descriptors to spare, then many connections: accept fails with EMFILE.
    prlimit_nofile(pid, open_fds(pid) + 5);
    let conns: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(("127.0.0.1", f.server.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let log = f.server.data.with_extension("log");
    let lines_before = std::fs::read_to_string(&log).unwrap().lines().count();
    let ticks = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(pid) - ticks;
    let text = std::fs::read_to_string(&log).unwrap();
    let failures = text
        .lines()
        .skip(lines_before)
        .filter(|l| l.contains("accept failed"))
        .count();
    // A spinning loop burns ~300 ticks (3 s) and logs hundreds of thousands of lines.
    assert!(
        used < 60,
        "the server used {used} ticks of CPU in 3 s while out of descriptors"
    );
    assert!(failures <= 5, "{failures} accept-failure lines in 3 s");
    assert!(
        text.contains("accept failed; backing off"),
        "no backoff line in the log"
    );
    // Descriptors back: the connections waiting are taken, and the server serves again.
    drop(conns);
    prlimit_nofile(pid, 1024);
    assert!(f.server.alive());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ls = f.git();
        ls.args(["ls-remote", "origin", "refs/heads/main"]);
        if ls.output().unwrap().status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads until EOF or an error; true when the server closed the connection within
/// `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true, // reset
        }
    }
}

#[test]
fn http_connections_are_capped_and_idle_or_endless_ones_closed() {
    let env = common::ChildEnv::new();
    let http = free_port();
    let server = env.start(
        &["--http", &format!("127.0.0.1:{http}")],
        &[
            ("SKILLSD_HTTP_MAX_CONNECTIONS", "4"),
            ("SKILLSD_HTTP_IDLE_SECS", "2"),
            ("SKILLSD_HTTP_LIFETIME_SECS", "4"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "no HTTP listener");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Four idle connections take every slot; a fifth is closed at once.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", http)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = TcpStream::connect(("127.0.0.1", http)).unwrap();
    assert!(
        closed_within(&mut fifth, Duration::from_secs(1)),
        "a fifth connection was kept"
    );
    // The idle ones are closed after the idle time.
    let started = Instant::now();
    for c in &mut idle {
        assert!(
            closed_within(c, Duration::from_secs(5)),
            "an idle connection stayed open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(idle);
    // A client trickling its headers (one byte a second) is cut off by the lifetime.
    let mut slow = TcpStream::connect(("127.0.0.1", http)).unwrap();
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1000));
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    assert!(
        cut || closed_within(&mut slow, Duration::from_secs(1)),
        "a trickling client was kept"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // Service as usual afterwards.
    let mut c = std::process::Command::new("curl");
    c.args(["-s", &format!("http://127.0.0.1:{http}/healthz")]);
    assert_eq!(stdout_of(c), "ok");
    drop(server);
}

#[test]
fn keepalives_do_not_keep_an_idle_connection_open() {
    let f = ChildFixture::start_with("alice", &[], &[("SKILLSD_IDLE_TIMEOUT_SECS", "2")]);
    // `ssh -N` runs no command and answers nothing but keepalives, every second.
    let mut ssh = common::ssh_to(&f.key, f.server.port);
    ssh.args([
        "-N",
        "-o",
        "ServerAliveInterval=1",
        "-o",
        "ServerAliveCountMax=100",
    ]);
    let mut child = ssh.spawn().unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(15) {
            child.kill().unwrap();
            panic!("an idle connection sending keepalives was kept for 15 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_secs(2),
        "closed after {lasted:?}, before the idle time"
    );
    // A connection running a command is not idle, however long the command takes:
    // a clone still works with the same timeout.
    let mut clone = f.git();
    clone
        .args(["clone", "-q", &f.server.url("skills.git")])
        .arg(f.home.join("again"));
    stdout_of(clone);
}
