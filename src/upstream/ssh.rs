//! The SSH client: connect, check the host key, authenticate with the mirror's key,
//! run `git-receive-pack` and bridge its channel to the blocking conversation of
//! [`super::session`].

use super::keys::fingerprint;
use super::session::{self, Done};
use super::{HostKeys, PushOutcome, PushRequest, UpstreamError, UpstreamUrl};
use russh::ChannelMsg;
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::io::SyncIoBridge;

/// Checks the upstream's host key against [`HostKeys`] and keeps what it presented.
pub(super) struct Client {
    host_keys: HostKeys,
    seen: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Host certificates are not trusted: a mirror pins plain keys.
        let PublicKeyOrCertificate::PublicKey { key, .. } = presented else {
            return Ok(false);
        };
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
        Ok(self.host_keys.allows(key))
    }
}

pub(super) type Handle = client::Handle<Client>;

fn ssh_error(e: russh::Error) -> UpstreamError {
    UpstreamError::Ssh(e.to_string())
}

/// Connects and checks the host key; returns the session and the key presented.
pub(super) async fn connect(
    url: &UpstreamUrl,
    host_keys: &HostKeys,
) -> Result<(Handle, PublicKey), UpstreamError> {
    let addr = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|source| UpstreamError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        ..Default::default()
    });
    let seen = Arc::new(Mutex::new(None));
    let handler = Client {
        host_keys: host_keys.clone(),
        seen: seen.clone(),
    };
    let connected = client::connect_stream(config, stream, handler).await;
    let presented = seen.lock().unwrap_or_else(|e| e.into_inner()).take();
    match (connected, presented) {
        (Ok(handle), Some(key)) => {
            tracing::debug!(host_key = %fingerprint(&key), "upstream host key accepted");
            Ok((handle, key))
        }
        (Err(russh::Error::UnknownKey), presented) => Err(UpstreamError::HostKeyMismatch {
            presented: presented
                .as_ref()
                .map(fingerprint)
                .unwrap_or_else(|| "(a certificate)".into()),
            expected: host_keys.keys.iter().map(fingerprint).collect(),
        }),
        (Err(russh::Error::IO(source)), _) => Err(UpstreamError::Connect { addr, source }),
        (Err(e), _) => Err(ssh_error(e)),
        (Ok(_), None) => Err(UpstreamError::Ssh("no host key was presented".into())),
    }
}

pub(super) async fn disconnect(handle: &Handle) {
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
}

/// The longest the TCP connection and SSH handshake to an upstream may take.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub(super) async fn push(req: PushRequest<'_>) -> Result<PushOutcome, UpstreamError> {
    let deadline = Instant::now() + req.timeout;
    let timed_out = || UpstreamError::Timeout(req.timeout);
    let command = req.url.receive_pack_command()?;
    // The key's text is never quoted in an error.
    let key = russh::keys::decode_secret_key(req.private_key_pem, None)
        .map_err(|_| UpstreamError::Key("the mirror's private key cannot be read".into()))?;
    // Reaching the upstream and its SSH greeting has a deadline of its own: an
    // address that swallows packets fails in seconds, not at the end of the push's
    // whole time limit.
    let connected_by = deadline.min(Instant::now() + CONNECT_TIMEOUT);
    let (mut handle, host_key) =
        tokio::time::timeout_at(connected_by, connect(req.url, req.host_keys))
            .await
            .map_err(|_| UpstreamError::Timeout(CONNECT_TIMEOUT.min(req.timeout)))??;
    let conversation = session::Request {
        repo_path: req.repo_path.to_path_buf(),
        refs: req.refs,
        last_pushed: req.last_pushed,
        force: req.force,
    };
    let result = tokio::time::timeout_at(
        deadline,
        run(&mut handle, key, &req.url.user, command, conversation),
    )
    .await;
    disconnect(&handle).await;
    let done = result.map_err(|_| timed_out())??;
    Ok(PushOutcome {
        host_key,
        updates: done.updates,
        diverged: done.diverged,
        in_sync: done.in_sync,
    })
}

/// What the upstream's process left besides its stdout.
#[derive(Default)]
struct Tail {
    stderr: Vec<u8>,
    exit_status: Option<u32>,
    exit_signal: Option<String>,
    exec_refused: bool,
}

impl Tail {
    fn said(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stderr).trim().to_string();
        if self.exec_refused {
            s = format!("the upstream refused to run git-receive-pack. {s}");
        }
        match (self.exit_status, &self.exit_signal) {
            (_, Some(sig)) => format!("{s} (killed by {sig})"),
            (Some(code), _) if code != 0 => format!("{s} (exit status {code})"),
            _ => s,
        }
        .trim()
        .to_string()
    }
}

const MAX_STDERR: usize = 16 * 1024;

/// Authenticates, runs `git-receive-pack` and the conversation.
async fn run(
    handle: &mut Handle,
    key: russh::keys::PrivateKey,
    user: &str,
    command: String,
    conversation: session::Request,
) -> Result<Done, UpstreamError> {
    sign_in(handle, key, user).await?;
    let channel = handle.channel_open_session().await.map_err(ssh_error)?;
    tracing::debug!(%command, "exec");
    channel
        .exec(true, command.into_bytes())
        .await
        .map_err(ssh_error)?;
    let (read_half, write_half) = channel.split();
    // The upstream's stdout goes through a pipe to the blocking side; its stderr and
    // exit status are kept by the pump.
    let (pipe_in, pipe_out) = tokio::io::duplex(1 << 20);
    let rt = tokio::runtime::Handle::current();
    let writer = write_half.make_writer();
    // When this attempt ends (its time ran out), a write waiting for the channel's
    // window stops too: the blocking thread does not outlive the attempt.
    let cancel = tokio_util::sync::CancellationToken::new();
    let _stop_writes = cancel.clone().drop_guard();
    let blocking = tokio::task::spawn_blocking(move || {
        let input = SyncIoBridge::new_with_handle(pipe_out, rt.clone());
        let mut out = std::io::BufWriter::with_capacity(
            64 * 1024,
            ChannelWriter {
                inner: Box::pin(writer),
                rt,
                cancel,
            },
        );
        let result = session::run(conversation, input, &mut out);
        tracing::trace!(ok = result.is_ok(), "conversation thread ends");
        result
    });
    let work = async {
        let result = match blocking.await {
            Ok(r) => r,
            Err(e) => Err(UpstreamError::Protocol(format!(
                "the push task failed: {e}"
            ))),
        };
        tracing::trace!(ok = result.is_ok(), "conversation over");
        let _ = write_half.eof().await;
        if result.is_err() {
            let _ = write_half.close().await;
        }
        result
    };
    let mut tail = Tail::default();
    let result = {
        let pump = pump(read_half, pipe_in, &mut tail);
        tokio::pin!(pump, work);
        tokio::select! {
            () = &mut pump => work.await,
            result = &mut work => {
                // The upstream's last words (stderr, exit status) follow shortly, but
                // its channel close may never be relayed once ours is sent.
                let _ = tokio::time::timeout(AFTERWORDS, &mut pump).await;
                result
            }
        }
    };
    let said = tail.said();
    if !said.is_empty() {
        tracing::debug!(stderr = %said, "upstream said");
    }
    match result {
        Ok(done) => {
            if !done.messages.trim().is_empty() {
                tracing::debug!(messages = %done.messages.trim(), "upstream messages");
            }
            Ok(done)
        }
        // The upstream stopped the conversation: what it said tells why.
        Err(UpstreamError::Protocol(m)) if !said.is_empty() => {
            Err(UpstreamError::Upstream(format!("{said} [{m}]")))
        }
        Err(UpstreamError::Upstream(m)) if !said.is_empty() => {
            Err(UpstreamError::Upstream(format!("{m}; {said}")))
        }
        Err(e) => Err(e),
    }
}

/// Public-key authentication as `user` with `key` (an RSA key with the best hash the
/// upstream supports).
async fn sign_in(
    handle: &mut Handle,
    key: russh::keys::PrivateKey,
    user: &str,
) -> Result<(), UpstreamError> {
    let public = key.public_key().clone();
    let hash = if key.algorithm().is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .map_err(ssh_error)?
            .flatten()
    } else {
        None
    };
    let auth = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await
        .map_err(ssh_error)?;
    if !auth.success() {
        return Err(UpstreamError::Auth {
            user: user.to_string(),
            key: fingerprint(&public),
        });
    }
    Ok(())
}

/// The channel as a blocking writer whose writes stop when `cancel` fires.
struct ChannelWriter {
    inner: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    rt: tokio::runtime::Handle,
    cancel: tokio_util::sync::CancellationToken,
}

impl ChannelWriter {
    fn stopped() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the push attempt ended")
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (inner, cancel) = (&mut self.inner, &self.cancel);
        self.rt.block_on(async {
            tokio::select! {
                r = inner.write(buf) => r,
                () = cancel.cancelled() => Err(Self::stopped()),
            }
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let (inner, cancel) = (&mut self.inner, &self.cancel);
        self.rt.block_on(async {
            tokio::select! {
                r = inner.flush() => r,
                () = cancel.cancelled() => Err(Self::stopped()),
            }
        })
    }
}

/// How long the upstream's stderr and exit status are awaited after the
/// conversation.
const AFTERWORDS: Duration = Duration::from_secs(2);

/// Reads the channel until it closes (or has ended with an exit status): stdout into
/// the pipe, stderr and the exit status kept.
async fn pump(mut read: russh::ChannelReadHalf, pipe: tokio::io::DuplexStream, tail: &mut Tail) {
    let mut pipe = Some(pipe);
    let mut eof = false;
    while let Some(msg) = read.wait().await {
        tracing::trace!(?msg, "channel");
        match msg {
            ChannelMsg::Data { data } => {
                if let Some(p) = pipe.as_mut()
                    && p.write_all(&data).await.is_err()
                {
                    pipe = None; // the conversation is over
                }
            }
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                let room = MAX_STDERR.saturating_sub(tail.stderr.len());
                tail.stderr.extend_from_slice(&data[..data.len().min(room)]);
            }
            ChannelMsg::Eof => {
                pipe = None;
                eof = true;
            }
            ChannelMsg::ExitStatus { exit_status } => tail.exit_status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                tail.exit_signal = Some(format!("{signal_name:?}"))
            }
            ChannelMsg::Failure => {
                tail.exec_refused = true;
                pipe = None;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
        if eof && (tail.exit_status.is_some() || tail.exit_signal.is_some()) {
            break; // nothing more can come
        }
    }
}
