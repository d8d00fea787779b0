//! Clients: keys made by ssh-keygen, the real git over the real OpenSSH client, and
//! raw SSH sessions.

use super::*;

/// An SSH key pair made by ssh-keygen.
pub struct Key {
    pub dir: TempDir,
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Key {
    pub fn generate(name: &str) -> Key {
        let dir = tempfile::Builder::new()
            .prefix("skillsd-key-")
            .tempdir()
            .unwrap();
        let private = dir.path().join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&private)
            .output()
            .unwrap();
        assert!(out.status.success());
        let public = private.with_extension("pub");
        Key {
            dir,
            private,
            public,
        }
    }
}

/// A git client: one git binary, one key, an isolated HOME.
pub struct Git {
    pub bin: &'static str,
    pub home: TempDir,
    pub ssh_command: String,
}

impl Git {
    pub fn new(bin: &'static str, key: &Key, server: &Server) -> Git {
        let home = tempfile::Builder::new()
            .prefix("skillsd-home-")
            .tempdir()
            .unwrap();
        let ssh_command = format!("ssh {} -p {}", ssh_options(key), server.port);
        Git {
            bin,
            home,
            ssh_command,
        }
    }

    pub fn cmd(&self, dir: &Path) -> Command {
        let mut c = Command::new(self.bin);
        c.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_SSH_COMMAND", &self.ssh_command)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "Test Author")
            .env("GIT_COMMITTER_EMAIL", "author@example.com")
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "advice.detachedHead=false",
            ]);
        c
    }

    /// Runs git in `dir`; returns (success, stdout, stderr).
    pub fn run(&self, dir: &Path, args: &[&str]) -> (bool, String, String) {
        let out = self.cmd(dir).args(args).output().expect("run git");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs git with a terminal (script(1) gives it one), as a person at a prompt
    /// does: git then asks the server for progress (no `quiet`). Returns everything
    /// the terminal showed.
    pub fn run_in_tty(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        let mut line = String::from(self.bin);
        for a in args {
            line.push(' ');
            line.push_str(a);
        }
        let probe = self.cmd(dir);
        let mut c = Command::new("script");
        c.current_dir(dir).env_clear();
        for (k, v) in probe.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.args(["-qec", &line, "/dev/null"]);
        let out = c.output().expect("run script");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        )
    }

    /// Starts git in the background (stdout and stderr captured).
    pub fn spawn(&self, dir: &Path, args: &[&str]) -> std::process::Child {
        self.cmd(dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start git")
    }

    /// Runs git and asserts success; returns stdout.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(dir, args);
        assert!(
            ok,
            "`{} {}` failed:\n{stdout}\n{stderr}",
            self.bin,
            args.join(" ")
        );
        stdout
    }

    /// Runs git and asserts failure; returns stderr.
    pub fn fails(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(dir, args);
        assert!(
            !ok,
            "`{} {}` should have failed:\n{stdout}\n{stderr}",
            self.bin,
            args.join(" ")
        );
        stderr
    }

    /// Clones `url` into a new directory under HOME and returns its path.
    pub fn clone(&self, url: &str, extra: &[&str]) -> PathBuf {
        let dest = self
            .home
            .path()
            .join(format!("clone-{}", uuid::Uuid::new_v4().simple()));
        let mut args = vec!["clone"];
        args.extend_from_slice(extra);
        args.push(url);
        args.push(dest.to_str().unwrap());
        self.ok(self.home.path(), &args);
        dest
    }

    pub fn head(&self, dir: &Path) -> String {
        self.ok(dir, &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Writes a file (creating folders), `git add`s everything and commits.
    pub fn commit_files<P: AsRef<str>, C: AsRef<[u8]>>(
        &self,
        dir: &Path,
        files: &[(P, C)],
        message: &str,
    ) -> String {
        for (path, content) in files {
            let p = dir.join(path.as_ref());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
        }
        self.ok(dir, &["add", "-A"]);
        self.ok(dir, &["commit", "-q", "-m", message]);
        self.head(dir)
    }
}

/// The OpenSSH client options every test uses: only this key, no host key checks
/// (every server has a fresh host key), no prompts.
pub fn ssh_options(key: &Key) -> String {
    format!(
        "-i {} -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o BatchMode=yes -o LogLevel=ERROR",
        key.private.display()
    )
}

/// `ssh git@127.0.0.1 -p PORT` with [`ssh_options`]; append extra options and the command.
pub fn ssh_to(key: &Key, port: u16) -> Command {
    let mut c = Command::new("ssh");
    c.args(ssh_options(key).split(' '))
        .args(["-p", &port.to_string(), "git@127.0.0.1"])
        .stdin(std::process::Stdio::null());
    c
}

/// A git command for tests that run skillsd as a child process: `/usr/local/bin/git`
/// in `dir`, HOME at `home`, ssh with `key` to `port`, a fixed identity.
pub fn git_at(key: &Key, port: u16, home: &Path, dir: &Path) -> Command {
    let mut c = Command::new(GIT_NEW);
    c.current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "GIT_SSH_COMMAND",
            format!("ssh {} -p {port}", ssh_options(key)),
        )
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com");
    c
}

/// A ref of a repository (`None`: absent).
pub fn ref_of(git_dir: &Path, name: &str) -> Option<String> {
    let out = Command::new(GIT_NEW)
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "--verify", "-q", name])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Asserts that `git fsck --strict` finds the repository at `dir` (bare, or a clone's
/// working tree) clean.
pub fn assert_fsck_at(dir: &Path) {
    let out = Command::new(GIT_NEW)
        .current_dir(dir)
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An upload-pack session of `key` held open (it waits for wants that never come),
/// returned once its advertisement arrived, so the session surely runs.
pub fn hold_session(key: &Key, port: u16) -> std::process::Child {
    use std::io::Read;
    let mut held = ssh_to(key, port)
        .arg("git-upload-pack '/skills.git'")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4];
    held.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    held
}
