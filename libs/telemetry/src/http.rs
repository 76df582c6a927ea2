//! Serving the public HTTP listeners (api, ws-edge, the single binary) with the deadlines
//! `axum::serve` does not set.
//!
//! A peer that opens connections and never finishes a request (slowloris, or half-open
//! WebSocket upgrades by the thousand) would otherwise hold a connection task, its buffers
//! and a file descriptor forever. Here every connection must deliver its request headers
//! within a deadline or is closed.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a connection has to send its request headers (each request, and the first one
/// from the moment the connection is accepted).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long requests in flight may take to finish after `shutdown` fires (unless told
/// otherwise). Upgraded WebSocket
/// connections are not waited for here: their owners close them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pending connections a public listener queues by default (the kernel caps it at
/// `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: u32 = 65_535;

/// Binds a listening TCP socket with room for `backlog` connections the accept loop has not
/// taken yet. `TcpListener::bind` asks for 1024: a reconnect storm's thousands of SYNs in a
/// second overflow that, and each dropped SYN is retried by the client's kernel after 1, 3, 7,
/// 15, 31 s — the storm stretches by a minute for clients the edge would have admitted.
///
/// # Errors
/// When `addr` does not resolve or the socket cannot be bound.
pub async fn bind(addr: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for resolved in tokio::net::lookup_host(addr).await? {
        let socket = if resolved.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(resolved).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} resolves to no address"),
        )
    }))
}

/// Serves `router` on `listener`, with the peer address available as
/// `ConnectInfo<SocketAddr>` and WebSocket upgrades allowed, until `shutdown` fires; then
/// stops accepting and lets requests in flight finish (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    serve_with(
        listener,
        router,
        shutdown,
        HEADER_READ_TIMEOUT,
        SHUTDOWN_GRACE,
    )
    .await;
}

/// [`serve`] with other deadlines.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    header_timeout: Duration,
    grace: Duration,
) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    request.map(axum::body::Body::new)
                });
        let stop = shutdown.clone();
        connections.spawn(async move {
            // hyper's header deadline starts at the first byte: a connection that sends
            // nothing at all gets the same deadline here.
            let mut first = [0_u8; 1];
            if !matches!(
                tokio::time::timeout(header_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                return;
            }
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = connections.len(),
            "HTTP connections still open at the shutdown deadline"
        );
    }
}
