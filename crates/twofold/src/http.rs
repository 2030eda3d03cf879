//! Serving HTTP with bounds: hyper with a timer, so a client that sends half a request (or
//! keeps an idle connection open) is dropped after `header_read_timeout`; at most
//! `max_connections` open connections (more wait in the kernel's accept queue); and at
//! shutdown, connections get `drain_seconds` to finish before they are closed. axum's own
//! `serve` has none of these: it builds hyper without a timer.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// A client must send a request's headers within this long, and an idle kept-alive
    /// connection is closed after it.
    pub header_read_timeout_seconds: u64,
    /// A request taking longer is answered 408 with a problem body.
    pub request_timeout_seconds: u64,
    /// Open connections at most; further clients wait until one closes.
    pub max_connections: usize,
    /// At shutdown, how long requests in flight may take before their connections close.
    pub drain_seconds: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout_seconds: 10,
            request_timeout_seconds: 30,
            max_connections: 4096,
            drain_seconds: 10,
        }
    }
}

impl ServerSettings {
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            ("request_timeout_seconds", self.request_timeout_seconds),
            ("max_connections", self.max_connections as u64),
        ] {
            if v == 0 {
                return Err(format!("server.{name} must be at least 1"));
            }
        }
        if self.max_connections > Semaphore::MAX_PERMITS {
            return Err("server.max_connections is too large".into());
        }
        Ok(())
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let closing = CancellationToken::new();
    let header_timeout = Duration::from_secs(settings.header_read_timeout_seconds);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are written whole; waiting for the peer's ACK only adds latency.
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let closing = closing.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(header_timeout)
                .keep_alive_timeout(header_timeout);
            let io = TokioIo::new(stream);
            let conn =
                builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = closing.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    drain(&slots, settings, &closing).await;
}

/// Tells every connection to finish its request in flight and close, and waits for them up to
/// the drain deadline. Connections still open then are dropped with the runtime.
async fn drain(slots: &Semaphore, settings: &ServerSettings, closing: &CancellationToken) {
    closing.cancel();
    let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    let deadline = Duration::from_secs(settings.drain_seconds);
    match tokio::time::timeout(deadline, slots.acquire_many(all)).await {
        Ok(_) => tracing::info!("every connection finished"),
        Err(_) => tracing::warn!(
            open = settings.max_connections - slots.available_permits(),
            "connections still open after the drain deadline ({} s); closing them",
            settings.drain_seconds
        ),
    }
}

/// A failed accept: per-connection errors (the peer gave up) are nothing to wait for; running
/// out of file descriptors is, briefly, so the loop does not spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
