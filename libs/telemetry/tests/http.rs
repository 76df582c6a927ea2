//! The public listeners' deadlines: connections that never finish a request are closed.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn server(header_timeout: Duration) -> (u16, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    let app =
        Router::new().route(
            "/",
            get(
                |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                    std::net::SocketAddr,
                >| async move { peer.ip().to_string() },
            ),
        );
    tokio::spawn(moolai_telemetry::http::serve_with(
        listener,
        app,
        stop.clone(),
        header_timeout,
        Duration::from_secs(1),
    ));
    (port, stop)
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn until_closed(tcp: &mut TcpStream, within: Duration) -> Option<(String, Duration)> {
    let start = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0_u8; 1024];
    loop {
        match tokio::time::timeout(within.saturating_sub(start.elapsed()), tcp.read(&mut buf)).await
        {
            Ok(Ok(0) | Err(_)) => {
                return Some((String::from_utf8_lossy(&all).into_owned(), start.elapsed()));
            }
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_deadline() {
    let (port, stop) = server(Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (_, after) = until_closed(&mut tcp, Duration::from_secs(5))
        .await
        .expect("closed by the server");
    assert!(
        after >= Duration::from_millis(250),
        "closed too early: {after:?}"
    );
    stop.cancel();
}

#[tokio::test]
async fn unfinished_headers_are_closed_at_the_deadline() {
    let (port, stop) = server(Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    until_closed(&mut tcp, Duration::from_secs(5))
        .await
        .expect("closed by the server");
    stop.cancel();
}

#[tokio::test]
async fn a_whole_request_is_served_with_the_peer_address() {
    let (port, stop) = server(Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (response, _) = until_closed(&mut tcp, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("127.0.0.1"), "{response}");
    stop.cancel();
}

/// `bind` listens with the backlog asked for (capped by the kernel), resolving host names,
/// and reports an address in use instead of stealing it.
#[tokio::test]
async fn bind_listens_with_a_deep_backlog() {
    let listener = moolai_telemetry::http::bind("localhost:0", 4096)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    assert!(addr.ip().is_loopback());
    // More connections than tokio's default backlog (1024) complete their TCP handshake
    // while nobody accepts: the kernel queues them.
    let mut clients = Vec::new();
    for _ in 0..1100 {
        clients.push(
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            .expect("connected without waiting for accept")
            .expect("connect"),
        );
    }
    let taken = moolai_telemetry::http::bind(&addr.to_string(), 16).await;
    assert!(taken.is_err(), "a second listener on {addr}");
    drop(listener);
}
