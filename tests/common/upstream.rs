//! A real upstream for push mirrors: OpenSSH's `sshd` on a loopback port, where every
//! key runs `git-shell` (the way git servers restrict SSH users), with bare
//! repositories in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Upstream {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The user the mirror logs in as (this process's user: sshd started by a user
    /// other than root lets in only that user).
    pub user: String,
    /// What every authorized key runs (as written in `authorized_keys`, inside double
    /// quotes).
    command: String,
    child: Option<Child>,
}

impl Upstream {
    /// sshd with its own host key, forcing every authorized key into `git_shell`.
    pub fn start(git_shell: &str) -> Upstream {
        Self::start_with_command(&format!("{git_shell} -c \\\"$SSH_ORIGINAL_COMMAND\\\""))
    }

    /// sshd where every authorized key runs `command` (as written in
    /// `authorized_keys`, inside double quotes).
    pub fn start_with_command(command: &str) -> Upstream {
        let dir = tempfile::Builder::new()
            .prefix("skillsd-upstream-")
            .tempdir()
            .unwrap();
        let key = dir.path().join("host_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen");
        std::fs::write(dir.path().join("authorized_keys"), "").unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        if user == "root" {
            // sshd's privilege separation directory.
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let mut up = Upstream {
            port: super::free_port(),
            dir,
            user,
            command: command.to_string(),
            child: None,
        };
        up.resume();
        up
    }

    fn config(&self) -> PathBuf {
        let d = self.dir.path();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nPermitRootLogin prohibit-password\nPidFile {}\nLogLevel VERBOSE\n",
                self.port,
                d.join("host_ed25519").display(),
                d.join("authorized_keys").display(),
                d.join("sshd.pid").display(),
            ),
        )
        .unwrap();
        config
    }

    /// Starts sshd (again) on the same port and waits until it accepts connections.
    pub fn resume(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sshd.log"))
            .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.config())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "sshd did not listen: {}",
                std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops sshd: the upstream is down.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The host's public key line (`ssh-ed25519 AAAA...`).
    pub fn host_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host_ed25519.pub"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// sshd's log (its errors, for failing tests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Lets `public_key` in, forced into the command.
    pub fn authorize(&self, public_key: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .unwrap();
        writeln!(f, "command=\"{}\",restrict {public_key}", self.command).unwrap();
    }

    /// A new bare repository; returns its path.
    pub fn bare(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let out = Command::new(super::GIT_NEW)
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        path
    }

    /// `ssh://USER@127.0.0.1:PORT/PATH` of a repository here.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}
