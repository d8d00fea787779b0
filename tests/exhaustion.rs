//! Resource exhaustion: out of file descriptors, the accept loop waits instead of
//! spinning; the HTTP side caps its connections and closes idle or endless ones.
//! skillsd runs as its own process, its limits set from outside (`prlimit`).

use crate::common;

use common::{ChildFixture, stdout_of};
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
    ended_within(stream, within).is_some()
}

/// How the server ended the connection within `within` ("EOF", or the error a read
/// gave: a reset), or `None` while it is still open. A read interrupted by a signal
/// is retried: a read with a timeout is not restarted by `SA_RESTART`.
fn ended_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some("EOF".into()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return None;
            }
            Err(e) => return Some(format!("{:?}", e.kind())),
        }
    }
}

/// The lines of a server's log about HTTP connections (for a failure's message).
fn http_lines_of(log: &std::path::Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("HTTP") || l.contains("hyper"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Of `sockets` (each with the last byte of its loopback source address, in the
/// order they were opened), how many are still open per address after a short look;
/// and a line for each one closed among the first `keep` of its address (the ones
/// the server should have kept), saying how it ended.
fn open_per_address(
    sockets: &mut [(u8, TcpStream)],
    keep: usize,
) -> (std::collections::BTreeMap<u8, usize>, Vec<String>) {
    let mut open = std::collections::BTreeMap::new();
    let mut seen = std::collections::BTreeMap::new();
    let mut early_ends = Vec::new();
    for (n, s) in sockets.iter_mut() {
        let index = *seen.entry(*n).and_modify(|i| *i += 1).or_insert(0usize);
        match ended_within(s, Duration::from_millis(20)) {
            None => *open.entry(*n).or_insert(0) += 1,
            Some(how) if index < keep => {
                early_ends.push(format!("127.0.0.{n} socket #{index} ended: {how}"))
            }
            Some(_) => {}
        }
    }
    (open, early_ends)
}

#[test]
fn http_connections_are_capped_and_idle_or_endless_ones_closed() {
    let env = common::ChildEnv::new();
    let server = env.start(
        &["--http", "127.0.0.1:0"],
        &[
            ("SKILLSD_HTTP_MAX_CONNECTIONS", "4"),
            ("SKILLSD_HTTP_IDLE_SECS", "2"),
            ("SKILLSD_HTTP_LIFETIME_SECS", "4"),
        ],
    );
    let http = server.http_port.expect("the pages' port in the banner");
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

/// A TCP connection to `port` on 127.0.0.1 from the loopback address `from`.
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    socket
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    socket.into()
}

/// `ssh ... whoami` for `f`'s user: how long it took, and whether it worked.
fn whoami(f: &ChildFixture) -> (Duration, bool) {
    let started = Instant::now();
    let out = common::ssh_to(&f.key, f.server.port)
        .args(["-o", "ConnectTimeout=20", "whoami"])
        .output()
        .unwrap();
    (started.elapsed(), out.status.success())
}

#[test]
fn sockets_that_never_sign_in_lock_nobody_out_and_are_closed_after_the_grace_time() {
    let f = ChildFixture::start_with(
        "alice",
        &["--http", "127.0.0.1:0"],
        &[
            ("SKILLSD_LOGIN_GRACE_SECS", "3"),
            ("SKILLSD_MAX_STARTUPS", "20"),
            ("SKILLSD_MAX_STARTUPS_PER_SOURCE", "5"),
            ("SKILLSD_HTTP_MAX_CONNECTIONS", "32"),
            ("SKILLSD_HTTP_MAX_PER_ADDRESS", "8"),
            // What each refused or closed connection was, should this test fail.
            (
                "SKILLSD_LOG",
                "info,sqlx=warn,russh=warn,skillsd::net=debug,hyper=debug",
            ),
        ],
    );
    let http = f.server.http_port.expect("the pages' port in the banner");
    // Three addresses open 60 SSH sockets each that never send a banner.
    let mut silent: Vec<(u8, TcpStream)> = Vec::new();
    for n in 2..5u8 {
        for _ in 0..60 {
            silent.push((n, connect_from([127, 0, 0, n], f.server.port)));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // All but five per address are closed at once.
    let (open, early_ends) = open_per_address(&mut silent, 5);
    assert_eq!(
        open,
        (2..5u8).map(|n| (n, 5)).collect(),
        "SSH sockets open per address (5 kept each); {early_ends:?}"
    );
    // Meanwhile a user logs in at once.
    let (took, ok) = whoami(&f);
    assert!(
        ok && took < Duration::from_secs(5),
        "login took {took:?}, ok {ok}"
    );
    // The silent ones are closed by the grace time (3 s), and the address may
    // open new ones.
    let started = Instant::now();
    for (_, s) in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(6)),
            "a silent socket outlived the grace time"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(6));
    let mut again = connect_from([127, 0, 0, 2], f.server.port);
    assert!(
        !closed_within(&mut again, Duration::from_millis(300)),
        "a new socket after the grace time was refused"
    );

    // HTTP: two addresses hold idle sockets; health checks and pages from another
    // address are still served.
    let mut idle: Vec<(u8, TcpStream)> = Vec::new();
    for n in [2u8, 3] {
        for _ in 0..40 {
            idle.push((n, connect_from([127, 0, 0, n], http)));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let (open, early_ends) = open_per_address(&mut idle, 8);
    assert_eq!(
        open,
        [(2, 8), (3, 8)].into(),
        "HTTP sockets open per address (8 kept each); {early_ends:?}; the server's log: {}",
        http_lines_of(&f.server.data.with_extension("log"))
    );
    let mut c = std::process::Command::new("curl");
    c.args(["-s", "-m", "5", &format!("http://127.0.0.1:{http}/healthz")]);
    assert_eq!(stdout_of(c), "ok");
    // Live streams: four per address, then 503 (pages still answer).
    let mut streams = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
        s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        statuses.push(String::from_utf8_lossy(&buf[9..12]).into_owned());
        streams.push(s);
    }
    assert_eq!(statuses, ["200", "200", "200", "200", "503", "503"]);
    let mut c = std::process::Command::new("curl");
    c.args([
        "-s",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{http}/"),
    ]);
    assert_eq!(stdout_of(c), "200");
}

#[test]
fn channels_opened_and_never_used_are_bounded_and_freed() {
    use std::sync::Arc;
    struct Accept;
    impl russh::client::Handler for Accept {
        type Error = russh::Error;
        async fn check_server_key(
            &mut self,
            _: &russh::keys::PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }
    let mut f = ChildFixture::start("alice");
    let port = f.server.port;
    let key = russh::keys::load_secret_key(&f.key.private, None).unwrap();
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let pid = f.server.pid().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rejected, before, after) = rt.block_on(async {
        let config = Arc::new(russh::client::Config::default());
        let mut handle = russh::client::connect(config, ("127.0.0.1", port), Accept)
            .await
            .unwrap();
        let auth = handle
            .authenticate_publickey(
                "git",
                russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), None),
            )
            .await
            .unwrap();
        assert!(auth.success());
        // Eight channels without a command are held; the ninth is refused.
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(handle.channel_open_session().await.unwrap());
        }
        let rejected = handle.channel_open_session().await.is_err();
        for ch in held {
            ch.close().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Warm up, then many channels opened and closed: memory stays flat.
        for _ in 0..500 {
            let ch = handle.channel_open_session().await.unwrap();
            ch.close().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss(pid);
        for _ in 0..10_000 {
            let ch = handle.channel_open_session().await.unwrap();
            ch.close().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss(pid);
        // The connection still runs commands.
        let mut ch = handle.channel_open_session().await.unwrap();
        ch.exec(true, "whoami").await.unwrap();
        let mut out = Vec::new();
        while let Some(msg) = ch.wait().await {
            if let russh::ChannelMsg::Data { data } = msg {
                out.extend_from_slice(&data);
            }
        }
        assert!(
            String::from_utf8_lossy(&out).contains("user: alice"),
            "{out:?}"
        );
        (rejected, before, after)
    });
    assert!(rejected, "a ninth idle channel was accepted");
    eprintln!("RSS before {before} KiB, after 10,000 channels {after} KiB");
    assert!(
        after < before + 8 * 1024,
        "10,000 closed channels grew the server from {before} to {after} KiB"
    );
    assert!(f.server.alive());
}

#[test]
fn a_client_trickling_or_silent_inside_a_command_is_cut_off() {
    let f = ChildFixture::start_with("alice", &[], &[("SKILLSD_IDLE_TIMEOUT_SECS", "3")]);
    for (name, trickle) in [("silent", false), ("one byte a second", true)] {
        let mut child = common::ssh_to(&f.key, f.server.port)
            .arg("git-upload-pack '/skills.git'")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let started = Instant::now();
        // A want line, a byte at a time (or nothing at all), for at most 20 s.
        let line = b"0032want 0000000000000000000000000000000000000000\n";
        let mut sent = 0;
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{name}: the session was kept for 20 s"
            );
            if trickle && sent < line.len() {
                let _ = stdin.write_all(&line[sent..sent + 1]);
                sent += 1;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let lasted = started.elapsed();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            lasted >= Duration::from_secs(3) && lasted < Duration::from_secs(12),
            "{name}: ended after {lasted:?}"
        );
        assert!(!out.status.success(), "{name}: {text}");
        drop(stdin);
    }
    // A real clone is as fast as ever with the same window.
    let mut clone = f.git();
    clone
        .args(["clone", "-q", &f.server.url("skills.git")])
        .arg(f.home.join("again"));
    stdout_of(clone);
}
