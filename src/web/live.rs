//! Live status pages: one task per process listens to `skills_changed` (the cache's own
//! notification, sent in the transaction of every sync) on a connection of its own,
//! reads the health view once per notification, and hands the result to every open
//! `/events` stream (server-sent events). `/static/live.js` applies them to the page:
//! the status bar's counts and the changed skills' badges. Without JavaScript the
//! pages are the same, just not live.

use crate::cache::announce::{Changed, LiveEvent};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use sqlx::PgPool;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast;

use crate::web::HttpState;

/// The channel of cache changes, as JSON events.
pub type Events = broadcast::Sender<String>;

pub fn channel() -> Events {
    broadcast::channel(64).0
}

/// Listens for `skills_changed` until `stop` says so, and sends one event per
/// notification: the health view's counts, the repository and the changed slugs.
/// Reconnects (with a pause) when the database goes away.
pub async fn relay(pool: PgPool, events: Events, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "live pages: cannot listen yet");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => continue,
                }
            }
        };
        if let Err(e) = listener.listen(crate::cache::announce::CHANNEL).await {
            tracing::debug!(error = %e, "live pages: LISTEN failed");
            continue;
        }
        loop {
            let notification = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                n = listener.recv() => n,
            };
            let payload = match notification {
                Ok(n) => Changed::parse(n.payload()),
                Err(e) => {
                    tracing::debug!(error = %e, "live pages: the listening connection ended");
                    break;
                }
            };
            if events.receiver_count() == 0 {
                continue;
            }
            match crate::cache::health::read(&pool).await {
                Ok(health) => {
                    let event = LiveEvent {
                        health: health.into(),
                        repo: Some(payload.repo).filter(|r| !r.is_empty()),
                        commit: Some(payload.commit).filter(|c| !c.is_empty()),
                        slugs: payload.slugs,
                    };
                    let _ = events.send(serde_json::to_string(&event).unwrap_or_default());
                }
                Err(e) => tracing::debug!(error = %e, "live pages: cannot read the health view"),
            }
        }
    }
}

/// Most live streams open at once, in all and per address: well under the HTTP
/// listener's connections, so open pages never crowd out health checks and requests.
pub const MAX_STREAMS: usize = 64;
pub const MAX_STREAMS_PER_ADDRESS: usize = 4;

/// The places of open streams.
pub fn stream_admission() -> Arc<crate::net::Admission> {
    crate::net::Admission::new(MAX_STREAMS, MAX_STREAMS_PER_ADDRESS, 0)
}

/// `GET /events`: the cache's changes as server-sent events named `cache`; 503 when
/// this address, or everyone, has as many streams open as allowed (the pages work
/// without: they are just not live).
pub async fn events(
    State(s): State<Arc<HttpState>>,
    axum::extract::ConnectInfo(crate::net::Peer(peer)): axum::extract::ConnectInfo<
        crate::net::Peer,
    >,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(place) = s.streams.admit(peer.ip()) else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "30")],
            "too many live streams open; the pages work without them\n",
        )
            .into_response();
    };
    let rx = s.events.subscribe();
    let stream = futures_util::stream::unfold((rx, place), |(mut rx, place)| async move {
        loop {
            match rx.recv().await {
                Ok(data) => {
                    return Some((
                        Ok::<_, Infallible>(Event::default().event("cache").data(data)),
                        (rx, place),
                    ));
                }
                // A slow reader missed some: the next event has the whole state anyway.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
