//! MCP sessions (the handshake-era protocol's `Mcp-Session-Id`), at most
//! [`super::Limits::max_sessions`] at once: rmcp's in-memory session manager, with the
//! time of each session's last request kept beside it. A new session over the cap
//! closes the one idle longest first; a session idle for [`super::Limits::idle`]
//! closes by itself (rmcp's keep-alive).

use futures_util::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session manager of `/mcp`.
pub struct Capped {
    inner: LocalSessionManager,
    max: usize,
    /// Each open session and when it was last asked something.
    last_used: Mutex<HashMap<SessionId, Instant>>,
    /// One session is made at a time, so the count never overshoots.
    making: tokio::sync::Mutex<()>,
}

impl Capped {
    pub fn new(max: usize, idle: Duration) -> Capped {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        Capped {
            inner,
            max: max.max(1),
            last_used: Mutex::new(HashMap::new()),
            making: tokio::sync::Mutex::new(()),
        }
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Instant>> {
        self.last_used.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self, id: &SessionId) {
        if let Some(t) = self.lock().get_mut(id) {
            *t = Instant::now();
        }
    }

    /// The session idle longest, taken out of the count, when the count is at the cap.
    fn take_idlest(&self) -> Option<SessionId> {
        let mut sessions = self.lock();
        if sessions.len() < self.max {
            return None;
        }
        let id = sessions
            .iter()
            .min_by_key(|(_, used)| **used)
            .map(|(id, _)| id.clone())?;
        sessions.remove(&id);
        Some(id)
    }
}

impl SessionManager for Capped {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.making.lock().await;
        while let Some(idlest) = self.take_idlest() {
            tracing::info!(
                session = %idlest,
                max = self.max,
                "MCP sessions at the cap: the one idle longest is closed"
            );
            if let Err(e) = self.inner.close_session(&idlest).await {
                tracing::debug!(session = %idlest, error = %e, "closing an idle MCP session");
            }
        }
        let (id, transport) = self.inner.create_session().await?;
        self.lock().insert(id.clone(), Instant::now());
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.lock().remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.resume(id, last_event_id).await
    }
}
