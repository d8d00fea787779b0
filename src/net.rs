//! Sockets: the SSH connection's, tuned for request/response traffic; accept loops
//! that back off on errors; connection caps; the HTTP listener's timeouts.
//!
//! The SSH connection's socket:
//!
//! A git client over OpenSSH writes a request in several small TCP segments and Nagle's
//! algorithm on its side holds the next one until the previous is acknowledged, while
//! Linux may delay that acknowledgement by up to 40 ms: measured as `git ls-remote`
//! runs that took either ~15 ms or ~55 ms. `TCP_QUICKACK` (re-armed after every read,
//! as the kernel clears it) makes the server acknowledge at once.

pub mod proxy;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that acknowledges what it reads without delay.
pub struct QuickAck(pub TcpStream);

impl QuickAck {
    fn rearm(&self) {
        // Failure only means the acknowledgement may be delayed.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.0).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.rearm();
        }
        result
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// What an accept loop does when `accept` fails (out of file descriptors, out of
/// memory): wait before trying again, longer each time (10 ms doubling to 1 s), and
/// log at most once a second with the number of failures in between. Without it the
/// loop would retry at once forever: a core at 100 % and a flood of log lines.
#[derive(Debug)]
pub struct AcceptBackoff {
    delay: std::time::Duration,
    failures: u64,
    last_log: Option<std::time::Instant>,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            delay: Self::FIRST,
            failures: 0,
            last_log: None,
        }
    }
}

impl AcceptBackoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(10);
    const MAX: std::time::Duration = std::time::Duration::from_secs(1);

    /// After a failed accept: logs (rate-limited) and returns how long to wait.
    pub fn failed(&mut self, what: &str, error: &io::Error) -> std::time::Duration {
        self.failures += 1;
        let now = std::time::Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(1))
        {
            tracing::warn!(listener = what, %error, failures = self.failures, "accept failed; backing off");
            self.last_log = Some(now);
            self.failures = 0;
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(Self::MAX);
        wait
    }

    /// After a successful accept.
    pub fn succeeded(&mut self) {
        self.delay = Self::FIRST;
    }
}

/// A cap on open connections: a connection holds a permit for its whole life, and a
/// connection accepted over the cap is closed at once (instead of waiting in the
/// kernel's queue while holding a descriptor).
#[derive(Clone, Debug)]
pub struct ConnectionCap(std::sync::Arc<tokio::sync::Semaphore>);

impl ConnectionCap {
    pub fn new(max: usize) -> Self {
        ConnectionCap(std::sync::Arc::new(tokio::sync::Semaphore::new(max)))
    }

    /// A permit, or `None` when the cap is reached.
    pub fn try_take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// Admission by source address, like OpenSSH's `MaxStartups` and
/// `PerSourceMaxStartups`: at most `per_source` from one address, at most `max` in
/// all, and above `max` a `reserve` only for addresses that hold none yet — so one
/// address (or a few) opening sockets that never finish cannot lock everyone else out.
#[derive(Debug)]
pub struct Admission {
    max: usize,
    per_source: usize,
    reserve: usize,
    /// Admitted per address, and their sum.
    held: std::sync::Mutex<(std::collections::HashMap<std::net::IpAddr, usize>, usize)>,
}

/// One admitted connection's place; given back on drop.
#[derive(Debug)]
pub struct Admitted {
    admission: std::sync::Arc<Admission>,
    ip: std::net::IpAddr,
}

impl Admission {
    pub fn new(max: usize, per_source: usize, reserve: usize) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Admission {
            max,
            per_source,
            reserve,
            held: Default::default(),
        })
    }

    /// A place for a connection from `ip`, or `None` when its address or everyone's
    /// share is used up.
    pub fn admit(self: &std::sync::Arc<Self>, ip: std::net::IpAddr) -> Option<Admitted> {
        let mut held = self.held.lock().ok()?;
        let (per, total) = &mut *held;
        let mine = per.get(&ip).copied().unwrap_or(0);
        if mine >= self.per_source {
            return None;
        }
        if *total >= self.max && (mine > 0 || *total >= self.max + self.reserve) {
            return None;
        }
        *per.entry(ip).or_insert(0) += 1;
        *total += 1;
        Some(Admitted {
            admission: self.clone(),
            ip,
        })
    }

    /// How many are admitted now.
    pub fn held(&self) -> usize {
        self.held.lock().map_or(0, |h| h.1)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut held) = self.admission.held.lock() {
            let (per, total) = &mut *held;
            if let Some(n) = per.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    per.remove(&self.ip);
                }
            }
            *total = total.saturating_sub(1);
        }
    }
}

/// A connection of SSH that has not signed in yet holds one of these.
pub type StartupSlot = Admitted;

/// Limits of the HTTP listener: connections at once, and how long a connection may
/// sit without traffic or live at all (a client trickling a request's headers byte
/// by byte is cut off by the lifetime).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    /// ... from one address (a reserve of an eighth of `max_connections` above the
    /// cap is kept for addresses that hold none: health checks, new visitors).
    pub max_per_address: usize,
    /// How long a new connection may take to send its first byte.
    pub header: std::time::Duration,
    pub idle: std::time::Duration,
    pub lifetime: std::time::Duration,
}

impl Default for HttpLimits {
    /// `SKILLSD_HTTP_MAX_CONNECTIONS` (256), `SKILLSD_HTTP_MAX_PER_ADDRESS` (32),
    /// `SKILLSD_HTTP_HEADER_SECS` (10), `SKILLSD_HTTP_IDLE_SECS` (60),
    /// `SKILLSD_HTTP_LIFETIME_SECS` (300).
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            max_per_address: 32,
            header: std::time::Duration::from_secs(10),
            idle: std::time::Duration::from_secs(60),
            lifetime: std::time::Duration::from_secs(300),
        }
    }
}

/// The HTTP listener: accept errors back off, connections are capped, and each
/// connection is a [`Timed`] stream.
pub struct HttpListener {
    inner: tokio::net::TcpListener,
    admission: std::sync::Arc<Admission>,
    limits: HttpLimits,
    backoff: AcceptBackoff,
}

impl HttpListener {
    pub fn new(inner: tokio::net::TcpListener, limits: HttpLimits) -> Self {
        HttpListener {
            inner,
            admission: Admission::new(
                limits.max_connections,
                limits.max_per_address,
                (limits.max_connections / 8).max(4),
            ),
            limits,
            backoff: AcceptBackoff::default(),
        }
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = Timed<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    self.backoff.succeeded();
                    let Some(permit) = self.admission.admit(addr.ip()) else {
                        tracing::debug!(%addr, "HTTP connection cap reached (in all or for this address); closing");
                        crate::metrics::METRICS.connection_refused();
                        continue; // dropped: closed at once
                    };
                    // A response goes out in several writes (headers, then the body or
                    // an event stream's events): without this, the second waits for the
                    // client's delayed acknowledgement of the first (40 ms a call for
                    // MCP over Streamable HTTP, measured by bench/agents.sh).
                    let _ = stream.set_nodelay(true);
                    return (Timed::new(stream, self.limits, permit), addr);
                }
                Err(e) => {
                    let wait = self.backoff.failed("http", &e);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod admission_tests {
    use super::Admission;

    #[test]
    fn one_address_cannot_take_every_place_and_new_ones_have_a_reserve() {
        let a = Admission::new(4, 2, 2);
        let ip = |n: u8| std::net::IpAddr::from([127, 0, 0, n]);
        let x1 = a.admit(ip(2)).unwrap();
        let _x2 = a.admit(ip(2)).unwrap();
        assert!(a.admit(ip(2)).is_none(), "per address");
        let _y = (a.admit(ip(3)).unwrap(), a.admit(ip(3)).unwrap());
        assert_eq!(a.held(), 4);
        // Full: an address already holding one gets nothing, a new one the reserve.
        assert!(a.admit(ip(3)).is_none());
        let _z = a.admit(ip(4)).unwrap();
        let _w = a.admit(ip(5)).unwrap();
        assert!(a.admit(ip(6)).is_none(), "the reserve is used up");
        drop(x1);
        assert_eq!(a.held(), 5);
        assert!(a.admit(ip(2)).is_none(), "still over the cap");
    }
}

#[cfg(test)]
mod listener_tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_send_small_writes_at_once() {
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = HttpListener::new(inner, HttpLimits::default());
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (io, _) = listener.accept().await;
        assert!(io.inner.nodelay().unwrap());
    }
}

/// The address a request came from (axum's `ConnectInfo` on [`HttpListener`]).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, HttpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, HttpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A stream that fails with `TimedOut` once it has waited `idle` for traffic (the
/// shorter `header` for its first byte), or once its lifetime is over; it holds its
/// place in the listener's admission until dropped.
pub struct Timed<S> {
    inner: S,
    idle: std::time::Duration,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    end: Pin<Box<tokio::time::Sleep>>,
    _permit: Admitted,
}

impl<S> Timed<S> {
    fn new(inner: S, limits: HttpLimits, permit: Admitted) -> Self {
        Timed {
            inner,
            idle: limits.idle,
            idle_timer: Box::pin(tokio::time::sleep(limits.header.min(limits.idle))),
            end: Box::pin(tokio::time::sleep(limits.lifetime)),
            _permit: permit,
        }
    }

    /// `Ready(Err)` when a limit is over; registers the timers otherwise.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.end.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection lifetime over",
            )));
        }
        if self.idle_timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle",
            )));
        }
        Poll::Pending
    }

    fn progressed(&mut self) {
        let deadline = tokio::time::Instant::now() + self.idle;
        self.idle_timer.as_mut().reset(deadline);
    }
}

use std::future::Future as _;

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.expired(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.expired(cx).map(|r| r.map(|_| 0)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.expired(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
