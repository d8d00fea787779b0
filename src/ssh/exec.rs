//! Running what an `exec` asked for: a git service on a blocking thread with the
//! channel bridged to `std::io` (with the minimum-rate guard on what the client sends),
//! or one of the other commands; the exit status, the messages and the incidents.

use super::*;

/// One command of a session, from start to exit status: a git service, or one of
/// the other commands (`help`, `whoami`...).
pub(super) async fn run_exec(
    state: Arc<AppState>,
    user: User,
    channel: Channel<Msg>,
    command: String,
    version: Version,
    cancel: Arc<std::sync::atomic::AtomicBool>,
) {
    // No trim while the command runs; its end asks for one, once the client has its
    // answer (the guard is dropped after the channel ends), off its critical path.
    let _working = crate::alloc::working();
    let (read_half, write_half) = channel.split();
    crate::metrics::METRICS.session_started();
    let code = match parse_command(&command) {
        None => run_command(&state, &user, &command, &write_half).await,
        Some(service) => {
            let git = Git {
                state: &state,
                user,
                version,
                cancel,
            };
            match git.run(service, read_half, &write_half).await {
                Some(code) => code,
                // Past the time limit: the channel closes, nothing more to do.
                None => {
                    end_channel(&write_half, 1).await;
                    return;
                }
            }
        }
    };
    end_channel(&write_half, code).await;
}

/// The exit status, EOF, close.
pub(super) async fn end_channel(write_half: &russh::ChannelWriteHalf<Msg>, code: u32) {
    crate::metrics::METRICS.session_ended();
    let _ = write_half.exit_status(code).await;
    let _ = write_half.eof().await;
    let _ = write_half.close().await;
}

/// One line on the client's stderr.
pub(super) async fn say(write_half: &russh::ChannelWriteHalf<Msg>, msg: String) {
    let _ = write_half
        .extended_data_bytes(1, format!("{msg}\n").into_bytes())
        .await;
}

/// A command that is not git (`help`, `whoami`, ...): its output and exit code.
pub(super) async fn run_command(
    state: &AppState,
    user: &User,
    command: &str,
    write_half: &russh::ChannelWriteHalf<Msg>,
) -> u32 {
    let review = crate::commands::review::run(&state.review(), user, command).await;
    let ran = match review {
        Some(out) => Some(out),
        None => {
            crate::commands::run(
                &state.pool,
                &state.repos,
                state.web_url.as_deref(),
                user,
                command,
            )
            .await
        }
    };
    match ran {
        Some(out) => {
            if !out.stdout.is_empty() {
                let _ = write_half.data_bytes(out.stdout.into_bytes()).await;
            }
            if !out.stderr.is_empty() {
                let _ = write_half
                    .extended_data_bytes(1, out.stderr.into_bytes())
                    .await;
            }
            out.code
        }
        None => {
            say(
                write_half,
                format!(
                    "skillsd: `{command}` is not available here; run `help` for what is (this server speaks git)"
                ),
            )
            .await;
            1
        }
    }
}

/// A git service for one user: the repository opened, access checked, the service
/// run on a blocking thread within the session time limit.
pub(super) struct Git<'a> {
    state: &'a Arc<AppState>,
    user: User,
    version: Version,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl Git<'_> {
    /// The exit code, or `None` when the session ran past its time limit.
    async fn run(
        self,
        service: Service,
        read_half: russh::ChannelReadHalf,
        write_half: &russh::ChannelWriteHalf<Msg>,
    ) -> Option<u32> {
        let (path, pushing) = match &service {
            Service::UploadPack(p) => (p.clone(), false),
            Service::ReceivePack(p) => (p.clone(), true),
        };
        let (opened, user) = self.open(&path, pushing).await;
        let (name, repo) = match opened {
            Err(e) => return Some(refuse_open(write_half, &e, &path, pushing).await),
            Ok(_) if pushing && !user.role.can_push() => {
                say(
                    write_half,
                    format!(
                        "ERROR: {} has read-only access (role: {}); ask an admin for the writer role to push",
                        user.name,
                        user.role.as_str()
                    ),
                )
                .await;
                crate::metrics::METRICS.push_refused(crate::metrics::Reason::Permission);
                return Some(1);
            }
            Ok(opened) => opened,
        };
        if !pushing {
            crate::metrics::METRICS.fetch();
        }
        let work = self.spawn_service(&user, name, repo, pushing, read_half, write_half);
        // A session may not run forever (a client trickling bytes): past the limit the
        // channel closes and the cancel flag stops the git work.
        let limit = self.state.limits.session_timeout;
        let result = match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => {
                self.cancel
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(user = %user.name, "session time limit reached; closing");
                say(
                    write_half,
                    format!("ERROR: the session took longer than {} s", limit.as_secs()),
                )
                .await;
                return None;
            }
        };
        Some(exit_code(write_half, &user.name, result).await)
    }

    /// The copy brought to the database's generation first (a push needs the
    /// database, a read may be served from the copy as last verified), and at the same
    /// time the user's role on this repository (a grant there replaces the global
    /// role).
    async fn open(
        &self,
        path: &str,
        pushing: bool,
    ) -> (Result<(String, gix::Repository), OpenError>, User) {
        let state = self.state;
        let canonical = RepoStore::canonical_name(path).unwrap_or_default();
        let (opened, role) = tokio::join!(
            crate::storage::replica::open(&state.pool, &state.repos, path, pushing),
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                users::role_on(&state.login_pool, &self.user, &canonical),
            )
        );
        let user = match (&opened, role) {
            (Ok(_), Ok(Ok(role))) => User {
                role,
                ..self.user.clone()
            },
            _ => self.user.clone(),
        };
        (opened, user)
    }

    /// Runs upload-pack or receive-pack on a blocking thread, the channel bridged to
    /// `std::io`; no gc deletes a pack while it reads the repository.
    fn spawn_service(
        &self,
        user: &User,
        name: String,
        repo: gix::Repository,
        pushing: bool,
        read_half: russh::ChannelReadHalf,
        write_half: &russh::ChannelWriteHalf<Msg>,
    ) -> tokio::task::JoinHandle<Result<(), crate::protocol::ProtocolError>> {
        let reading = crate::maintenance::read_guard(repo.path());
        let writer = write_half.make_writer();
        let rt = tokio::runtime::Handle::current();
        let pool = self.state.pool.clone();
        let user = user.clone();
        let repos = self.state.repos.clone();
        let mut policy = self.state.policy.clone();
        policy.pusher_is_admin = user.role == crate::db::users::Role::Admin;
        policy.pusher = user.name.clone();
        policy.pusher_role = user.role.as_str();
        let web_url = self.state.web_url.clone();
        let cancel = self.cancel.clone();
        let version = self.version;
        let window = self.state.limits.min_rate_window;
        tokio::task::spawn_blocking(move || {
            let mut read_half = read_half;
            let reader = Box::pin(MinRate::new(read_half.make_reader(), window));
            let input = Counted(SyncIoBridge::new_with_handle(reader, rt.clone()));
            let mut output = std::io::BufWriter::with_capacity(
                64 * 1024,
                Counted(SyncIoBridge::new_with_handle(writer, rt.clone())),
            );
            let result = if pushing {
                let ctx = receive::Context {
                    repo,
                    repo_name: name,
                    default_branch: crate::repos::DEFAULT_BRANCH.to_string(),
                    policy,
                    user,
                    pool,
                    rt,
                    repos,
                    cancel,
                    web_url,
                    merging: None,
                };
                receive::serve(&ctx, input, &mut output).map(drop)
            } else {
                upload_pack::serve(&repo, input, &mut output, version, &user.name)
            };
            let flushed = output.flush();
            drop(output);
            drop(reading);
            result.and(flushed.map_err(Into::into))
        })
    }
}

/// Why a repository could not be opened, told to the client; the exit code.
pub(super) async fn refuse_open(
    write_half: &russh::ChannelWriteHalf<Msg>,
    error: &OpenError,
    path: &str,
    pushing: bool,
) -> u32 {
    if pushing && matches!(error, OpenError::DatabaseDown) {
        say(
            write_half,
            "ERROR: the database is unavailable; nothing was written. Try again in a moment."
                .to_string(),
        )
        .await;
        crate::metrics::METRICS.push_refused(crate::metrics::Reason::Database);
    } else {
        say(
            write_half,
            format!(
                "ERROR: repository `{}` not found. The skills repository is ssh://git@HOST:PORT/skills.git",
                path.trim_start_matches('/')
            ),
        )
        .await;
    }
    1
}

/// The exit code of a finished git service; a failure on the server's side is an
/// incident.
pub(super) async fn exit_code(
    write_half: &russh::ChannelWriteHalf<Msg>,
    user: &str,
    result: Result<Result<(), crate::protocol::ProtocolError>, tokio::task::JoinError>,
) -> u32 {
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(
            e
            @ (crate::protocol::ProtocolError::Request(_) | crate::protocol::ProtocolError::Io(_)),
        )) => {
            // The client was told (an ERR line) or is gone.
            tracing::info!(user = %user, error = %e, "git session ended early");
            128
        }
        Ok(Err(e)) => report_incident(write_half, user, e.to_string(), "git session failed").await,
        // A panic in one session ends that session only (the blocking task catches it).
        Err(e) => report_incident(write_half, user, e.to_string(), "git session panicked").await,
    }
}

/// A session that failed on the server's side: the details (they may name server
/// paths) go to the log, the client gets an incident id to quote. Returns the exit code.
pub(super) async fn report_incident(
    write_half: &russh::ChannelWriteHalf<Msg>,
    user: &str,
    error: String,
    what: &'static str,
) -> u32 {
    let incident = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(user = %user, %error, %incident, "{what}");
    let _ = write_half
        .extended_data_bytes(
            1,
            format!("ERROR: skillsd could not complete the request (incident {incident})\n")
                .into_bytes(),
        )
        .await;
    128
}

/// A client's input that must keep coming while the server waits for it: of each
/// `window` the reader spent waiting (time the server spends working does not
/// count), at least [`MIN_RATE_BYTES`] must arrive, else the read fails with
/// `TimedOut`. Nothing legitimate is that slow; a client trickling a byte every few
/// seconds to hold a session (and its memory) is.
pub(super) struct MinRate<R> {
    inner: R,
    window: std::time::Duration,
    /// Waiting counted in this window before the current wait.
    waited: std::time::Duration,
    /// Bytes received in this window.
    got: u64,
    /// When the current wait began, and the timer for the window's end.
    waiting: Option<(tokio::time::Instant, std::pin::Pin<Box<tokio::time::Sleep>>)>,
}

impl<R> MinRate<R> {
    fn new(inner: R, window: std::time::Duration) -> Self {
        MinRate {
            inner,
            window,
            waited: std::time::Duration::ZERO,
            got: 0,
            waiting: None,
        }
    }

    /// The current wait ends (data came, or the window's check ran).
    fn stop_waiting(&mut self) {
        if let Some((since, _)) = self.waiting.take() {
            self.waited += since.elapsed();
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for MinRate<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.stop_waiting();
                this.got += (buf.filled().len() - before) as u64;
                if this.got >= MIN_RATE_BYTES {
                    // Enough came: a new window starts.
                    this.waited = std::time::Duration::ZERO;
                    this.got = 0;
                }
                Poll::Ready(result)
            }
            Poll::Pending => loop {
                if this.waiting.is_none() {
                    let left = this.window.saturating_sub(this.waited);
                    let now = tokio::time::Instant::now();
                    this.waiting = Some((now, Box::pin(tokio::time::sleep_until(now + left))));
                }
                let Some((_, timer)) = this.waiting.as_mut() else {
                    unreachable!("set above")
                };
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.stop_waiting();
                if this.got < MIN_RATE_BYTES {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "the client sent {} bytes in {} s of waiting for it (fewer than {MIN_RATE_BYTES})",
                            this.got,
                            this.window.as_secs()
                        ),
                    )));
                }
                this.waited = std::time::Duration::ZERO;
                this.got = 0;
            },
        }
    }
}

/// Counts the bytes of a git session for the metrics.
pub(super) struct Counted<T>(T);

impl<T: std::io::Read> std::io::Read for Counted<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        crate::metrics::METRICS.received(n);
        Ok(n)
    }
}

impl<T: std::io::Write> std::io::Write for Counted<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        crate::metrics::METRICS.sent(n);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
