//! The edge in-process against the real NATS, with a stand-in for the state service that
//! answers hellos and frames. Covers the socket rules: close codes, limits, dialects,
//! commands, replacement and shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use moolai_bus::events::{
    Command, DisconnectEvent, FrameReply, HeartbeatEvent, HelloReply, HelloRequest,
};
use moolai_bus::{Bus, Kind, Subjects};
use moolai_e2e::client::{
    TestSocket, connect_and_hello, connect_and_hello_with, handshake, register, with_token,
};
use moolai_protocol::{MonitoringChange, Provisioning, ServerFrame};
use moolai_ws_edge::EdgeSettings;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(5);

fn settings() -> EdgeSettings {
    serde_json::from_value(json!({
        "controller_host": "127.0.0.1",
        "ws_edge_port": 0,
        "ws_edge_metrics_port": 0,
        "edge_id": "edge-test",
        "ws_max_frame_bytes": 4096,
        "ws_hello_timeout_sec": 1,
        "ws_rate_limit_per_sec": 20,
        "ws_rate_limit_burst": 20,
        "ws_max_invalid_frames": 5,
        "ws_max_connections": 50,
        "shutdown_grace_sec": 3,
        // The stand-in state accepts every hello; token mode has its own tests below.
        "orchestrator_auth": "open"
    }))
    .expect("settings")
}

/// (orchestrator id, auth_token) of each hello the stand-in state answered.
type SeenTokens = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Harness {
    url: String,
    http_url: String,
    /// The `auth_token` of every hello the stand-in state received, by orchestrator id.
    tokens: SeenTokens,
    bus: Bus,
    stop: CancellationToken,
    edge: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Starts an edge; with `state`, also a stand-in state that accepts every hello
/// (rejecting ids starting with `reject-`) and acknowledges every frame.
async fn start(settings: EdgeSettings, state: bool) -> Harness {
    let prefix = format!("edge{}", uuid::Uuid::new_v4().simple());
    let bus = Bus::connect(
        &moolai_e2e::nats_url(),
        Subjects::new(&prefix).expect("prefix"),
        "edge-test",
    )
    .await
    .expect("nats");
    let tokens = Arc::new(Mutex::new(Vec::new()));
    if state {
        let mut hellos = bus.subscribe(bus.subjects().hello()).await.expect("sub");
        let seen = tokens.clone();
        let mut frames = bus
            .subscribe(bus.subjects().all(Kind::Frame))
            .await
            .expect("sub");
        let b = bus.clone();
        tokio::spawn(async move {
            while let Some(d) = hellos.next().await {
                let req: HelloRequest = d.json().expect("hello request");
                seen.lock()
                    .expect("lock")
                    .push((req.orchestrator_id.clone(), req.auth_token.clone()));
                if req.orchestrator_id.starts_with("race-") {
                    // An operator switches independence on right after this hello read the
                    // state: the command goes out before the edge has bound the socket.
                    let command = Command::Send {
                        frame: ServerFrame::StopMonitoring(MonitoringChange {
                            orchestrator_id: req.orchestrator_id.clone(),
                            is_independent: true,
                            ts: "now".into(),
                            reason: None,
                        }),
                        message_id: None,
                    };
                    let org = req
                        .organization_id
                        .clone()
                        .unwrap_or_else(|| "org-t".into());
                    b.publish(
                        b.subjects()
                            .orchestrator(Kind::Command, &org, &req.orchestrator_id),
                        &command,
                    )
                    .await
                    .expect("publish");
                    b.flush().await.expect("flush");
                }
                let reply = if req.orchestrator_id.starts_with("reject-") {
                    HelloReply::Rejected {
                        code: "organization_mismatch".into(),
                        message: "belongs elsewhere".into(),
                    }
                } else {
                    HelloReply::Accepted {
                        provisioning: Provisioning {
                            orchestrator_id: req.orchestrator_id.clone(),
                            organization_id: req
                                .organization_id
                                .clone()
                                .unwrap_or_else(|| "org-t".into()),
                            is_independent: req.orchestrator_id.starts_with("indep-"),
                            monitoring_enabled: true,
                            ..Provisioning::default()
                        },
                        pending_messages: vec![],
                    }
                };
                b.respond(&d, &reply).await.expect("respond");
            }
        });
        let b = bus.clone();
        tokio::spawn(async move {
            while let Some(d) = frames.next().await {
                let reply = FrameReply {
                    frames: vec![ServerFrame::Ack {
                        ack_type: "frame".into(),
                        id: None,
                    }],
                };
                b.respond(&d, &reply).await.expect("respond");
            }
        });
        bus.flush().await.expect("flush");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    let edge = tokio::spawn(moolai_ws_edge::launch_with_listener(
        settings,
        bus.clone(),
        listener,
        stop.clone(),
    ));
    Harness {
        url: format!("ws://127.0.0.1:{port}/ws"),
        http_url: format!("http://127.0.0.1:{port}/"),
        tokens,
        bus,
        stop,
        edge,
    }
}

#[tokio::test]
async fn hello_in_both_dialects_and_heartbeats_are_published() {
    let h = start(settings(), true).await;
    let mut beats = h
        .bus
        .subscribe(h.bus.subjects().all(Kind::Heartbeat))
        .await
        .expect("sub");
    h.bus.flush().await.expect("flush");

    let (mut a, prov) = connect_and_hello(&h.url, &register("orch-1", "org-9"), T)
        .await
        .expect("hello");
    assert_eq!(prov["data"]["organization_id"], "org-9");
    a.send(&json!({"type": "i_am_alive", "orchestrator_id": "orch-1"}))
        .await
        .expect("send");
    let m = tokio::time::timeout(T, beats.next())
        .await
        .expect("beat")
        .expect("msg");
    assert_eq!(
        m.subject,
        h.bus
            .subjects()
            .orchestrator(Kind::Heartbeat, "org-9", "orch-1")
    );
    let ev: HeartbeatEvent = m.json().expect("json");
    assert_eq!(ev.edge_id, "edge-test");

    // Deployed dialect at `/`, heartbeat without an id.
    let root = h.url.trim_end_matches("/ws").to_owned() + "/";
    let (mut b, _) = connect_and_hello(&root, &handshake("orch-2"), T)
        .await
        .expect("hello");
    b.send(&json!({"type": "i_am_alive", "timestamp": "t"}))
        .await
        .expect("send");
    let m = tokio::time::timeout(T, beats.next())
        .await
        .expect("beat")
        .expect("msg");
    assert_eq!(
        m.subject,
        h.bus
            .subjects()
            .orchestrator(Kind::Heartbeat, "org-t", "orch-2")
    );

    // Other frames go to state as requests and its answer comes back.
    b.send(&json!({"type": "provisioning_request"}))
        .await
        .expect("send");
    let ack = b.expect("ack", T).await.expect("ack");
    assert_eq!(ack["ack_type"], "frame");
    // Unknown types get an error and the socket stays open; so does one larger than the
    // edge's 1 KiB read buffer (under the 4 KiB limit), read in several chunks, handled whole.
    for padding in [0, 3500] {
        b.send(&json!({"type": "from_the_future", "padding": "p".repeat(padding)}))
            .await
            .expect("send");
        assert_eq!(
            b.expect("error", T).await.expect("error")["code"],
            "unknown_type"
        );
        b.send(&json!({"type": "keepalive"})).await.expect("send");
        b.expect("keepalive_ack", T).await.expect("still open");
    }
    h.stop.cancel();
}

#[tokio::test]
async fn independent_orchestrators_get_stop_monitoring_on_connect() {
    let h = start(settings(), true).await;
    let (mut s, prov) = connect_and_hello(&h.url, &register("indep-1", "org"), T)
        .await
        .expect("hello");
    assert_eq!(prov["data"]["is_independent"], true);
    let stop = s
        .expect("stop_monitoring", T)
        .await
        .expect("stop_monitoring");
    assert_eq!(stop["is_independent"], true);
    h.stop.cancel();
}

#[tokio::test]
async fn bad_first_frames_close_with_1008_1003_and_timeouts() {
    let h = start(settings(), true).await;
    // no hello within the (1 s) deadline
    let mut s = TestSocket::connect(&h.url).await.expect("connect");
    let c = s.expect_close(T).await.expect("close");
    assert_eq!(c.code, 1008);
    assert!(c.reason.contains("within 1s"), "{c:?}");
    // first frame is not a hello
    let mut s = TestSocket::connect(&h.url).await.expect("connect");
    s.send(&json!({"type": "i_am_alive", "orchestrator_id": "x"}))
        .await
        .expect("send");
    assert_eq!(s.expect_close(T).await.expect("close").code, 1008);
    // garbage first frame
    let mut s = TestSocket::connect(&h.url).await.expect("connect");
    s.send_raw(Message::text("{not json")).await.expect("send");
    assert_eq!(s.expect_close(T).await.expect("close").code, 1008);
    // hostile id
    let mut s = TestSocket::connect(&h.url).await.expect("connect");
    s.send(&json!({"type": "register", "orchestrator_id": "a.>"}))
        .await
        .expect("send");
    let c = s.expect_close(T).await.expect("close");
    assert_eq!(c.code, 1008);
    assert!(c.reason.contains("invalid hello"), "{c:?}");
    // binary frame
    let mut s = TestSocket::connect(&h.url).await.expect("connect");
    s.send_raw(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(s.expect_close(T).await.expect("close").code, 1003);
    // rejected by state
    let mut s = TestSocket::connect(&h.url).await.expect("connect");
    s.send(&register("reject-1", "org")).await.expect("send");
    assert_eq!(
        s.expect("error", T).await.expect("error")["code"],
        "organization_mismatch"
    );
    assert_eq!(s.expect_close(T).await.expect("close").code, 1008);
    h.stop.cancel();
}

#[tokio::test]
async fn hello_without_a_state_service_asks_to_retry_with_1013() {
    let h = start(settings(), false).await;
    let mut s = TestSocket::connect(&h.url).await.expect("connect");
    s.send(&register("orch-1", "org")).await.expect("send");
    let err = s
        .expect("error", Duration::from_secs(15))
        .await
        .expect("error");
    assert_eq!(err["code"], "unavailable");
    assert_eq!(err["retry_after_sec"], 5);
    assert_eq!(s.expect_close(T).await.expect("close").code, 1013);
    h.stop.cancel();
}

#[tokio::test]
async fn oversized_binary_flooding_and_garbage_close_the_socket() {
    let h = start(settings(), true).await;
    let (mut s, _) = connect_and_hello(&h.url, &register("big", "org"), T)
        .await
        .expect("hello");
    let big = json!({"type": "update_metadata", "metadata": {"x": "y".repeat(8000)}});
    s.send(&big).await.expect("send");
    assert_eq!(s.expect_close(T).await.expect("close").code, 1009);

    let (mut s, _) = connect_and_hello(&h.url, &register("bin", "org"), T)
        .await
        .expect("hello");
    s.send_raw(Message::binary(vec![0u8; 10]))
        .await
        .expect("send");
    assert_eq!(s.expect_close(T).await.expect("close").code, 1003);

    let (mut s, _) = connect_and_hello(&h.url, &register("flood", "org"), T)
        .await
        .expect("hello");
    for _ in 0..200 {
        if s.send(&json!({"type": "keepalive"})).await.is_err() {
            break;
        }
    }
    let err = s.expect("error", T).await.expect("rate limited error");
    assert_eq!(err["code"], "rate_limited");
    let c = s.expect_close(T).await.expect("close");
    assert_eq!(c.code, 1008);
    assert!(c.reason.contains("rate"), "{c:?}");

    let (mut s, _) = connect_and_hello(&h.url, &register("garbage", "org"), T)
        .await
        .expect("hello");
    for _ in 0..5 {
        s.send_raw(Message::text("nope")).await.expect("send");
    }
    let c = s.expect_close(T).await.expect("close");
    assert_eq!(c.code, 1008);
    assert!(c.reason.contains("invalid"), "{c:?}");
    h.stop.cancel();
}

#[tokio::test]
async fn commands_reach_the_socket_and_a_newer_session_replaces_the_old() {
    let h = start(settings(), true).await;
    let mut disconnects = h
        .bus
        .subscribe(h.bus.subjects().all(Kind::Disconnect))
        .await
        .expect("sub");
    h.bus.flush().await.expect("flush");
    let (mut old, _) = connect_and_hello(&h.url, &register("dup", "org"), T)
        .await
        .expect("hello");

    let cmd = Command::Send {
        frame: ServerFrame::StopMonitoring(MonitoringChange {
            orchestrator_id: "dup".into(),
            is_independent: true,
            ts: "now".into(),
            reason: None,
        }),
        message_id: None,
    };
    let started = std::time::Instant::now();
    h.bus
        .publish(
            h.bus.subjects().orchestrator(Kind::Command, "org", "dup"),
            &cmd,
        )
        .await
        .expect("publish");
    old.expect("stop_monitoring", T)
        .await
        .expect("command delivered");
    assert!(started.elapsed() < T);

    let (_new, _) = connect_and_hello(&h.url, &register("dup", "org"), T)
        .await
        .expect("second hello");
    let c = old.expect_close(T).await.expect("old closed");
    assert_eq!(c.code, 4000);
    let m = tokio::time::timeout(T, disconnects.next())
        .await
        .expect("disconnect")
        .expect("msg");
    let ev: DisconnectEvent = m.json().expect("json");
    assert_eq!(ev.reason, "replaced");

    // Close command (deregistration).
    let close = Command::Close {
        code: 4004,
        reason: "deregistered".into(),
        session_id: None,
    };
    h.bus
        .publish(
            h.bus.subjects().orchestrator(Kind::Command, "org", "dup"),
            &close,
        )
        .await
        .expect("publish");
    h.stop.cancel();
}

#[tokio::test]
async fn a_command_published_while_the_hello_commits_is_not_lost() {
    let h = start(settings(), true).await;
    let (mut socket, _) = connect_and_hello(&h.url, &register("race-1", "org"), T)
        .await
        .expect("hello");
    // The provisioning said "supervised"; the command that followed it must still arrive.
    let frame = socket
        .expect("stop_monitoring", T)
        .await
        .expect("the command sent during the hello reaches the socket");
    assert_eq!(frame["is_independent"], true);
    h.stop.cancel();
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_reports_no_disconnect() {
    let h = start(settings(), true).await;
    let mut disconnects = h
        .bus
        .subscribe(h.bus.subjects().all(Kind::Disconnect))
        .await
        .expect("sub");
    h.bus.flush().await.expect("flush");
    let (mut a, _) = connect_and_hello(&h.url, &register("s1", "org"), T)
        .await
        .expect("hello");
    let (mut b, _) = connect_and_hello(&h.url, &handshake("s2"), T)
        .await
        .expect("hello");
    h.stop.cancel();
    assert_eq!(a.expect_close(T).await.expect("close").code, 1001);
    assert_eq!(b.expect_close(T).await.expect("close").code, 1001);
    tokio::time::timeout(T, h.edge)
        .await
        .expect("edge stopped in time")
        .expect("join")
        .expect("clean exit");
    let extra = tokio::time::timeout(Duration::from_millis(300), disconnects.next()).await;
    assert!(extra.is_err(), "shutdown reported a disconnect: {extra:?}");
}

#[tokio::test]
async fn a_handshake_storm_past_the_rate_gets_503_with_retry_after() {
    let mut s = settings();
    s.ws_max_handshakes_per_sec = 3;
    let h = start(s, true).await;
    let http = reqwest::Client::new();
    let mut hints: Vec<u64> = Vec::new();
    for _ in 0..10 {
        // A bare upgrade request is enough to meet admission control.
        let r = http
            .get(&h.http_url)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
            .await
            .expect("request");
        if r.status().as_u16() == 503 {
            let hint = r.headers()["retry-after"]
                .to_str()
                .ok()
                .and_then(|v| v.parse().ok())
                .expect("Retry-After in whole seconds");
            hints.push(hint);
        }
    }
    let refused = hints.len();
    assert!(
        refused >= 6,
        "only {refused} of 10 refused at 3 handshakes/s"
    );
    // The hint grows with the crowd (n refusals at 3/s take ceil(n / 3) seconds; the exact
    // arithmetic over time is the limiter's unit test).
    assert_eq!(hints[0], 1, "{hints:?}");
    assert!(hints.windows(2).all(|w| w[0] <= w[1]), "{hints:?}");
    assert!(hints.last().is_some_and(|&h| h >= 2), "{hints:?}");

    // A refused upgrade is answered and the connection closed by the edge (the 503 says
    // `Connection: close`), not left to the client or kept alive.
    let authority = h
        .http_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    let mut refused_raw = None;
    for _ in 0..10 {
        let mut raw = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(
            &mut raw,
            format!(
                "GET /ws HTTP/1.1\r\nHost: {authority}\r\nConnection: upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("request");
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut answer),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer).to_lowercase();
        // Admitted (the bucket refilled meanwhile): an upgraded socket stays open; try again.
        if answer.starts_with("http/1.1 101") {
            continue;
        }
        assert!(
            matches!(closed, Ok(Ok(_))),
            "the edge did not close the connection after its answer: {answer}"
        );
        refused_raw = Some(answer);
        break;
    }
    let answer = refused_raw.expect("a refused upgrade within 10 tries at 3/s");
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    h.stop.cancel();
}

#[tokio::test]
async fn admission_control_refuses_upgrades_past_the_cap() {
    let mut s = settings();
    s.ws_max_connections = 1;
    let h = start(s, true).await;
    let (_a, _) = connect_and_hello(&h.url, &register("only", "org"), T)
        .await
        .expect("hello");
    let err = TestSocket::connect(&h.url)
        .await
        .err()
        .expect("second upgrade refused");
    assert!(format!("{err:#}").contains("503"), "{err:#}");
    // A plain GET without upgrade is told what this endpoint is.
    let r = reqwest::get(&h.http_url).await.expect("get");
    assert_eq!(r.status().as_u16(), 426);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "upgrade_required");
    h.stop.cancel();
}

// ---- orchestrator authentication --------------------------------------------------------------

fn token_mode() -> EdgeSettings {
    EdgeSettings {
        orchestrator_auth: moolai_config::OrchestratorAuth::Token,
        ..settings()
    }
}

#[tokio::test]
async fn token_mode_refuses_a_hello_without_a_token_before_any_acknowledgement() {
    let h = start(token_mode(), true).await;
    for hello in [register("no-token", "org"), handshake("no-token")] {
        let mut s = TestSocket::connect(&h.url).await.expect("connect");
        s.send(&hello).await.expect("send");
        let first = s.next(T).await.expect("a frame");
        assert_eq!(first["type"], "error", "{first}");
        assert_eq!(first["code"], "unauthorized");
        let closed = s.expect_close(T).await.expect("closed");
        assert_eq!(closed.code, 1008);
        assert_eq!(closed.reason, "hello rejected: unauthorized");
    }
    // State was never asked.
    assert!(h.tokens.lock().expect("lock").is_empty());
    h.stop.cancel();
}

#[tokio::test]
async fn the_token_reaches_state_from_the_upgrade_header_or_the_hello() {
    let h = start(token_mode(), true).await;
    let (_a, _) = connect_and_hello_with(
        &h.url,
        &register("by-header", "org"),
        Some("moo_enr_header"),
        T,
    )
    .await
    .expect("hello with a header token");
    let (_b, _) = connect_and_hello(
        &h.url,
        &with_token(handshake("by-hello"), "moo_enr_hello"),
        T,
    )
    .await
    .expect("hello with an auth_token");
    // The header wins when both are given.
    let (_c, _) = connect_and_hello_with(
        &h.url,
        &with_token(handshake("both"), "moo_enr_hello"),
        Some("moo_enr_header"),
        T,
    )
    .await
    .expect("hello with both");
    let tokens = h.tokens.lock().expect("lock").clone();
    assert_eq!(
        tokens,
        vec![
            ("by-header".to_owned(), Some("moo_enr_header".to_owned())),
            ("by-hello".to_owned(), Some("moo_enr_hello".to_owned())),
            ("both".to_owned(), Some("moo_enr_header".to_owned())),
        ]
    );
    h.stop.cancel();
}

#[tokio::test]
async fn a_revoked_credential_closes_only_the_session_that_used_it_with_4001() {
    let h = start(settings(), true).await;
    let mut disconnects = h
        .bus
        .subscribe(h.bus.subjects().all(Kind::Disconnect))
        .await
        .expect("sub");
    h.bus.flush().await.expect("flush");
    let mut a = TestSocket::connect(&h.url).await.expect("connect");
    a.send(&register("rev", "org")).await.expect("hello");
    let ack = a.expect("handshake_ack", T).await.expect("ack");
    let session = ack["session_id"].as_str().expect("session id").to_owned();
    a.expect("provisioning", T).await.expect("provisioning");

    // A revocation naming another session (an older socket of the same orchestrator) leaves
    // this one open.
    let subject = h.bus.subjects().orchestrator(Kind::Command, "org", "rev");
    let revoke = |session_id: &str| Command::Close {
        code: 4001,
        reason: "credential revoked".into(),
        session_id: Some(session_id.to_owned()),
    };
    h.bus
        .publish(subject.clone(), &revoke("an-older-session"))
        .await
        .expect("publish");
    a.send(&json!({"type": "keepalive"})).await.expect("send");
    a.expect("keepalive_ack", T).await.expect("still open");

    h.bus
        .publish(subject, &revoke(&session))
        .await
        .expect("publish");
    let started = std::time::Instant::now();
    let closed = a.expect_close(T).await.expect("closed");
    assert_eq!(closed.code, 4001);
    assert_eq!(closed.reason, "credential revoked");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let m = tokio::time::timeout(T, disconnects.next())
        .await
        .expect("disconnect")
        .expect("msg");
    let ev: DisconnectEvent = m.json().expect("json");
    assert_eq!(ev.reason, "credential_revoked");
    h.stop.cancel();
}
