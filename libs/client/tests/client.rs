//! The client against a scripted controller on a real socket: dialects, heartbeats,
//! independence, config updates, reconnects, retry hints, and when to give up.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use moolai_client::moolai_protocol::UsageEntry;
use moolai_client::{
    Client, ClientError, ClientEvent, Dialect, DisconnectKind, Observer, StopReason,
};
use serde_json::json;
use support::{Incoming, Server, T, config, wait_event};
use tokio::time::Instant;

#[tokio::test]
async fn hld_dialect_hello_then_heartbeats_at_the_interval_the_controller_asks_for() {
    let mut server = Server::start().await;
    let mut config = config(&server.url, "orch-hld", Dialect::Hld);
    config.organization_id = Some("org-1".into());
    config.auth_token = Some("tok_abc".into());
    config.metadata = json!({"name": "Gateway", "version": "2.0.0"})
        .as_object()
        .cloned()
        .expect("object");
    // Not pinned: the ack's 1 s replaces the 30 s default.
    let client = Client::spawn(config).expect("spawn");
    let mut events = client.events();

    let mut conn = server.accept().await;
    assert_eq!(conn.authorization.as_deref(), Some("Bearer tok_abc"));
    assert_eq!(conn.path, "/ws");
    let hello = conn.welcome(Some(1), false).await;
    assert_eq!(
        hello,
        json!({"type": "register", "orchestrator_id": "orch-hld", "organization_id": "org-1",
               "metadata": {"name": "Gateway", "version": "2.0.0"}, "auth_token": "tok_abc"})
    );

    let connected = wait_event(&mut events, "Connected", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;
    let ClientEvent::Connected {
        session_id,
        provisioning,
        handshake_latency,
    } = connected
    else {
        unreachable!()
    };
    assert_eq!(session_id.as_deref(), Some("session-orch-hld"));
    assert_eq!(provisioning.config_version, 3);
    assert!(handshake_latency > Duration::ZERO && handshake_latency < T);

    // First heartbeat right after provisioning, in the HLD shape, nothing else in it.
    let first = conn.frame().await;
    assert_eq!(
        first,
        json!({"type": "i_am_alive", "orchestrator_id": "orch-hld"})
    );
    // The controller's heartbeat and unknown types get no answer and do not end the session.
    conn.send(json!({"type": "controller_heartbeat", "ts": "2026-11-27T10:00:20.000Z"}))
        .await;
    conn.send(json!({"type": "telemetry_v9", "x": 1})).await;
    conn.send(json!({"type": "keepalive_ack", "ts": "x"})).await;
    let started = Instant::now();
    let second = conn.frame().await;
    let gap = started.elapsed();
    assert_eq!(second, first);
    assert!(
        gap > Duration::from_millis(700) && gap < Duration::from_millis(2500),
        "second heartbeat after {gap:?}, expected ~1 s"
    );

    let state = client.state();
    assert!(state.connected);
    assert!(!state.independent);
    assert_eq!(state.session_id.as_deref(), Some("session-orch-hld"));
    assert_eq!(state.config_version, Some(3));
    assert_eq!(state.session_config, json!({"cache": {"enabled": true}}));
    assert_eq!(state.heartbeat_interval, Some(Duration::from_secs(1)));
    assert!(state.heartbeats_sent >= 2);
    assert_eq!(state.reconnects, 0);

    let shutdown = tokio::spawn(client.shutdown());
    assert_eq!(conn.expect_close().await, 1000);
    assert_eq!(shutdown.await.expect("join"), StopReason::Shutdown);
}

#[tokio::test]
async fn deployed_dialect_hello_and_a_pinned_heartbeat_interval() {
    let mut server = Server::start().await;
    let mut config = config(&server.url, "orch-dep", Dialect::Deployed);
    config.auth_token = Some("tok_dep".into());
    config.heartbeat_interval = Duration::from_millis(200);
    config.pin_heartbeat_interval = true;
    let client = Client::spawn(config).expect("spawn");

    let mut conn = server.accept().await;
    assert_eq!(conn.authorization.as_deref(), Some("Bearer tok_dep"));
    // The controller asks for 30 s; the pinned 200 ms wins.
    let hello = conn.welcome(Some(30), false).await;
    assert_eq!(hello["type"], "handshake");
    assert_eq!(hello["service"], "orchestrator");
    assert_eq!(hello["data"]["orchestrator_id"], "orch-dep");
    assert_eq!(hello["data"]["metadata"], json!({}));
    assert_eq!(hello["auth_token"], "tok_dep");
    assert!(hello["timestamp"].is_string(), "{hello}");

    let started = Instant::now();
    for _ in 0..4 {
        let beat = conn.frame().await;
        assert_eq!(beat["type"], "i_am_alive");
        assert!(beat["timestamp"].is_string(), "{beat}");
        let keys: Vec<_> = beat.as_object().expect("object").keys().cloned().collect();
        assert_eq!(keys.len(), 2, "deployed heartbeats carry no id: {beat}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed > Duration::from_millis(500) && elapsed < Duration::from_millis(1500),
        "4 heartbeats took {elapsed:?}"
    );
    assert_eq!(
        client.state().heartbeat_interval,
        Some(Duration::from_millis(200))
    );
    client.shutdown().await;
}

#[tokio::test]
async fn independence_stops_heartbeats_and_resume_restarts_them() {
    let mut server = Server::start().await;
    let mut config = config(&server.url, "orch-ind", Dialect::Hld);
    config.heartbeat_interval = Duration::from_millis(300);
    config.pin_heartbeat_interval = true;
    let client = Client::spawn(config).expect("spawn");
    let mut events = client.events();

    let mut conn = server.accept().await;
    conn.welcome(None, false).await;
    assert_eq!(conn.frame().await["type"], "i_am_alive");

    conn.send(
        json!({"type": "stop_monitoring", "orchestrator_id": "orch-ind",
        "is_independent": true, "ts": "x", "reason": "independence enabled by operator"}),
    )
    .await;
    wait_event(&mut events, "Independence(true)", |e| {
        *e == ClientEvent::Independence(true)
    })
    .await;
    assert!(client.state().independent);
    // A heartbeat may have been in flight; after that, silence over 3 intervals.
    while conn.recv(Duration::from_millis(150)).await.is_some() {}
    let sent = client.state().heartbeats_sent;
    assert_eq!(conn.recv(Duration::from_millis(900)).await, None);
    assert_eq!(client.state().heartbeats_sent, sent);

    let resumed_at = Instant::now();
    conn.send(
        json!({"type": "resume_monitoring", "orchestrator_id": "orch-ind",
        "is_independent": false, "ts": "x"}),
    )
    .await;
    let beat = conn.frame().await;
    assert_eq!(beat["type"], "i_am_alive");
    assert!(
        resumed_at.elapsed() < Duration::from_millis(200),
        "heartbeat resumed only after {:?}",
        resumed_at.elapsed()
    );
    wait_event(&mut events, "Independence(false)", |e| {
        *e == ClientEvent::Independence(false)
    })
    .await;
    assert!(!client.state().independent);

    // A session that starts independent (provisioning says so) never heartbeats.
    conn.close(1001, "edge shutting down").await;
    let mut conn = server.accept().await;
    conn.welcome(None, true).await;
    wait_event(&mut events, "Connected", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;
    assert_eq!(conn.recv(Duration::from_millis(900)).await, None);
    assert!(client.state().independent);
    client.shutdown().await;
}

#[tokio::test]
async fn config_updates_are_applied_and_stale_ones_ignored() {
    let mut server = Server::start().await;
    let client = Client::spawn(config(&server.url, "orch-cfg", Dialect::Deployed)).expect("spawn");
    let mut events = client.events();
    let mut conn = server.accept().await;
    conn.welcome(None, false).await;
    wait_event(&mut events, "Connected", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;

    let update = |version: i64, enabled: bool| {
        json!({"type": "config_update", "data": {"orchestrator_id": "orch-cfg",
            "session_config": {"cache": {"enabled": enabled}}, "config_version": version,
            "ts": "2026-11-27T10:05:00.000Z"}})
    };
    conn.send(update(4, false)).await;
    let applied = wait_event(&mut events, "ConfigUpdate", |e| {
        matches!(e, ClientEvent::ConfigUpdate(_))
    })
    .await;
    let ClientEvent::ConfigUpdate(data) = applied else {
        unreachable!()
    };
    assert_eq!(data.config_version, 4);
    let state = client.state();
    assert_eq!(state.config_version, Some(4));
    assert_eq!(state.session_config, json!({"cache": {"enabled": false}}));

    // An older version arriving late is ignored; the next newer one applies.
    conn.send(update(2, true)).await;
    conn.send(update(5, true)).await;
    let next = wait_event(&mut events, "ConfigUpdate", |e| {
        matches!(e, ClientEvent::ConfigUpdate(_))
    })
    .await;
    let ClientEvent::ConfigUpdate(data) = next else {
        unreachable!()
    };
    assert_eq!(data.config_version, 5, "the stale update was applied");
    assert_eq!(client.state().config_version, Some(5));
    client.shutdown().await;
}

#[tokio::test]
async fn a_going_away_close_reconnects_after_a_jittered_backoff() {
    let mut server = Server::start().await;
    let client = Client::spawn(config(&server.url, "orch-bye", Dialect::Hld)).expect("spawn");
    let mut events = client.events();
    let mut conn = server.accept().await;
    conn.welcome(None, false).await;
    wait_event(&mut events, "Connected", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;

    let closed_at = Instant::now();
    conn.close(1001, "edge shutting down").await;
    let disconnected = wait_event(&mut events, "Disconnected", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    let ClientEvent::Disconnected {
        code,
        kind,
        session,
        reason,
    } = disconnected
    else {
        unreachable!()
    };
    assert_eq!(code, Some(1001));
    assert_eq!(kind, DisconnectKind::Closed(1001));
    assert_eq!(kind.to_string(), "close_1001");
    assert_eq!(reason, "edge shutting down");
    assert!(session.is_some());
    let reconnecting = wait_event(&mut events, "Reconnecting", |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;
    let ClientEvent::Reconnecting { attempt, delay } = reconnecting else {
        unreachable!()
    };
    // First retry: uniform in [0, initial = 200 ms], below the 1 s cap.
    assert_eq!(attempt, 0);
    assert!(delay > Duration::ZERO, "no backoff at all");
    assert!(delay <= Duration::from_millis(200), "{delay:?}");

    let mut again = server.accept().await;
    let gap = again.at.duration_since(closed_at);
    assert!(
        gap >= delay,
        "reconnected after {gap:?}, before the {delay:?} backoff"
    );
    assert!(
        gap < Duration::from_secs(1),
        "reconnected only after {gap:?}"
    );
    again.welcome(None, false).await;
    wait_event(&mut events, "Connected again", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;
    let state = client.state();
    assert!(state.connected);
    assert_eq!(state.reconnects, 1);
    assert_eq!(state.last_disconnect, Some(DisconnectKind::Closed(1001)));
    client.shutdown().await;
}

#[tokio::test]
async fn retry_after_on_a_503_upgrade_is_a_floor() {
    let mut server = Server::start().await;
    server.refuse_next(503, Some(2));
    let client = Client::spawn(config(&server.url, "orch-503", Dialect::Hld)).expect("spawn");
    let mut events = client.events();

    let Incoming::Refused {
        at: refused_at,
        status,
    } = server.next().await
    else {
        panic!("the first upgrade should have been refused")
    };
    assert_eq!(status, 503);
    let disconnected = wait_event(&mut events, "Disconnected", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(
            disconnected,
            ClientEvent::Disconnected {
                kind: DisconnectKind::Http(503),
                session: None,
                ..
            }
        ),
        "{disconnected:?}"
    );
    let ClientEvent::Reconnecting { delay, .. } = wait_event(&mut events, "Reconnecting", |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(
        delay >= Duration::from_secs(2) && delay <= Duration::from_secs(4),
        "{delay:?}"
    );

    let mut conn = server.accept().await;
    let gap = conn.at.duration_since(refused_at);
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?} despite Retry-After: 2"
    );
    assert!(
        gap < Duration::from_millis(4500),
        "retried only after {gap:?}"
    );
    conn.welcome(None, false).await;
    wait_event(&mut events, "Connected", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;
    client.shutdown().await;
}

#[tokio::test]
async fn retry_after_sec_in_an_error_frame_is_a_floor() {
    let mut server = Server::start().await;
    let client = Client::spawn(config(&server.url, "orch-busy", Dialect::Deployed)).expect("spawn");
    let mut events = client.events();

    let mut conn = server.accept().await;
    conn.frame().await; // hello
    conn.send(json!({"type": "error", "code": "unavailable",
        "message": "the controller cannot register orchestrators right now; retry later",
        "retry_after_sec": 1}))
        .await;
    let closed_at = Instant::now();
    conn.close(1013, "controller unavailable, retry later")
        .await;

    let error = wait_event(&mut events, "ServerError", |e| {
        matches!(e, ClientEvent::ServerError(_))
    })
    .await;
    assert!(matches!(error, ClientEvent::ServerError(f) if f.retry_after_sec == Some(1)));
    let ClientEvent::Reconnecting { delay, .. } = wait_event(&mut events, "Reconnecting", |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(delay >= Duration::from_secs(1), "{delay:?}");
    let conn = server.accept().await;
    assert!(conn.at.duration_since(closed_at) >= Duration::from_secs(1));
    assert_eq!(client.state().stopped, None);
    client.shutdown().await;
}

#[tokio::test]
async fn replaced_or_deregistered_clients_stop_instead_of_fighting() {
    let mut server = Server::start().await;
    let client = Client::spawn(config(&server.url, "orch-old", Dialect::Hld)).expect("spawn");
    let mut events = client.events();
    let mut conn = server.accept().await;
    conn.welcome(None, false).await;
    wait_event(&mut events, "Connected", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;
    conn.close(4000, "replaced by a newer connection").await;
    let stopped = wait_event(&mut events, "Stopped", |e| {
        matches!(e, ClientEvent::Stopped { .. })
    })
    .await;
    assert_eq!(
        stopped,
        ClientEvent::Stopped {
            why: StopReason::Replaced {
                reason: "replaced by a newer connection".into()
            }
        }
    );
    // The backoff would have retried within 200 ms: nothing comes.
    server.expect_no_attempt(Duration::from_millis(1200)).await;
    assert!(client.state().stopped.is_some());
    assert!(!client.state().connected);
    assert!(matches!(client.wait().await, StopReason::Replaced { .. }));

    let gone = Client::spawn(config(&server.url, "orch-gone", Dialect::Deployed)).expect("spawn");
    let mut conn = server.accept().await;
    conn.welcome(None, false).await;
    conn.close(4004, "deregistered by an operator").await;
    let why = tokio::time::timeout(T, gone.wait()).await.expect("stops");
    assert!(matches!(why, StopReason::Deregistered { .. }), "{why:?}");
    server.expect_no_attempt(Duration::from_millis(600)).await;
}

#[tokio::test]
async fn a_replaced_client_can_be_configured_to_reconnect() {
    let mut server = Server::start().await;
    let mut config = config(&server.url, "orch-stubborn", Dialect::Hld);
    config.reconnect.stop_when_replaced = false;
    let client = Client::spawn(config).expect("spawn");
    let mut conn = server.accept().await;
    conn.welcome(None, false).await;
    conn.frame_of("i_am_alive").await;
    conn.close(4000, "replaced by a newer connection").await;
    let mut again = server.accept().await;
    again.welcome(None, false).await;
    again.frame_of("i_am_alive").await;
    assert_eq!(client.state().reconnects, 1);
    client.shutdown().await;
}

#[tokio::test]
async fn a_refused_hello_stops_the_client() {
    let mut server = Server::start().await;
    let client = Client::spawn(config(&server.url, "orch-bad", Dialect::Hld)).expect("spawn");
    let mut conn = server.accept().await;
    conn.frame().await; // hello
    conn.send(json!({"type": "error", "code": "unauthorized", "message": "invalid token"}))
        .await;
    conn.close(1008, "hello rejected: unauthorized").await;
    let why = tokio::time::timeout(T, client.wait()).await.expect("stops");
    let StopReason::Rejected { reason } = why else {
        panic!("expected Rejected, got {why:?}")
    };
    assert!(reason.contains("unauthorized"), "{reason}");
    server.expect_no_attempt(Duration::from_millis(600)).await;

    // 401 on the upgrade is a refusal too.
    server.refuse_next(401, None);
    let client = Client::spawn(config(&server.url, "orch-401", Dialect::Hld)).expect("spawn");
    assert!(matches!(
        server.next().await,
        Incoming::Refused { status: 401, .. }
    ));
    let why = tokio::time::timeout(T, client.wait()).await.expect("stops");
    assert!(matches!(why, StopReason::Rejected { .. }), "{why:?}");
}

#[tokio::test]
async fn a_first_frame_other_than_handshake_ack_is_a_protocol_error() {
    let mut server = Server::start().await;
    let client =
        Client::spawn(config(&server.url, "orch-proto", Dialect::Deployed)).expect("spawn");
    let mut events = client.events();
    let mut conn = server.accept().await;
    conn.frame().await; // hello
    conn.send(support::provisioning("orch-proto", false, 1))
        .await;
    assert_eq!(conn.expect_close().await, 1002);
    let disconnected = wait_event(&mut events, "Disconnected", |e| {
        matches!(e, ClientEvent::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(&disconnected, ClientEvent::Disconnected { kind: DisconnectKind::Protocol, reason, .. } if reason.contains("provisioning")),
        "{disconnected:?}"
    );
    // Not a refusal: it tries again.
    let mut again = server.accept().await;
    again.welcome(None, false).await;
    wait_event(&mut events, "Connected", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;
    client.shutdown().await;
}

#[tokio::test]
async fn frames_sent_through_the_handle_have_the_protocol_shape() {
    let mut server = Server::start().await;
    let client = Client::spawn(config(&server.url, "orch-send", Dialect::Hld)).expect("spawn");
    let mut events = client.events();
    let mut conn = server.accept().await;
    conn.welcome(None, false).await;
    wait_event(&mut events, "Connected", |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await;

    client
        .send_message("monitoring", "p99 latency above 2s")
        .await
        .expect("message");
    assert_eq!(
        conn.frame_of("message").await,
        json!({"type": "message", "message_type": "monitoring", "content": "p99 latency above 2s"})
    );
    conn.send(json!({"type": "ack", "ack_type": "message", "id": "msg_1"}))
        .await;
    let ack = wait_event(&mut events, "Ack", |e| matches!(e, ClientEvent::Ack { .. })).await;
    assert_eq!(
        ack,
        ClientEvent::Ack {
            ack_type: "message".into(),
            id: Some("msg_1".into())
        }
    );

    client
        .report_usage(vec![UsageEntry {
            model: Some("gpt-4o".into()),
            requests: 3,
            input_tokens: 1200,
            output_tokens: 300,
            cost: 0.25,
        }])
        .await
        .expect("usage");
    assert_eq!(
        conn.frame_of("usage").await,
        json!({"type": "usage", "usage": [{"model": "gpt-4o", "requests": 3,
            "input_tokens": 1200, "output_tokens": 300, "cost": 0.25}]})
    );

    let status = tokio::spawn(async move {
        let request = conn.frame_of("request_status").await;
        assert_eq!(
            request,
            json!({"type": "request_status", "orchestrator_id": "orch-send"})
        );
        conn.send(
            json!({"type": "status", "data": {"orchestrator_id": "orch-send",
            "status": "active", "is_independent": false, "last_seen": null, "ts": "x"}}),
        )
        .await;
        conn
    });
    let reply = client.request_status().await.expect("status");
    assert_eq!(reply.status, "active");
    let mut conn = status.await.expect("server side");

    // Refused locally, nothing written.
    assert!(matches!(
        client.send_message("gossip", "x").await,
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        client.report_usage(vec![]).await,
        Err(ClientError::Invalid(_))
    ));

    // Between sessions: NotConnected.
    conn.close(1001, "bye").await;
    wait_event(&mut events, "Reconnecting", |e| {
        matches!(e, ClientEvent::Reconnecting { .. })
    })
    .await;
    let result = client.send_message("monitoring", "while away").await;
    // Whether still in the backoff or already in the next (unanswered) hello: NotConnected
    // until provisioning arrives.
    assert_eq!(result, Err(ClientError::NotConnected));
    client.shutdown().await;
}

#[tokio::test]
async fn the_socket_is_bound_to_the_configured_source_address() {
    let mut server = Server::start().await;
    let mut config = config(&server.url, "orch-src", Dialect::Hld);
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    config.local_address = Some(source);
    let client = Client::spawn(config).expect("spawn");
    let conn = server.accept().await;
    assert_eq!(conn.peer.ip(), source);
    client.shutdown().await;
}

struct Counter(AtomicUsize);

impl Observer for Counter {
    fn on_event(&self, orchestrator_id: &str, event: &ClientEvent) {
        assert_eq!(orchestrator_id, "orch-quiet");
        if matches!(event, ClientEvent::Connected { .. }) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn events_can_be_turned_off_and_an_observer_still_sees_them() {
    let mut server = Server::start().await;
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let mut config = config(&server.url, "orch-quiet", Dialect::Deployed);
    config.event_capacity = 0;
    config.observer = Some(counter.clone());
    let client = Client::spawn(config).expect("spawn");
    let mut events = client.events();
    assert!(matches!(
        events.recv().await,
        Err(tokio::sync::broadcast::error::RecvError::Closed)
    ));
    let mut conn = server.accept().await;
    conn.welcome(None, false).await;
    conn.frame_of("i_am_alive").await;
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(client.state().connected);
    client.shutdown().await;
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_up_front() {
    let bad_id = support::config("ws://127.0.0.1:1/ws", "has space", Dialect::Hld);
    assert!(Client::spawn(bad_id).is_err());
    let tls = support::config("wss://example.com/ws", "orch", Dialect::Hld);
    assert!(Client::spawn(tls).is_err());
    let mut zero = support::config("ws://127.0.0.1:1/ws", "orch", Dialect::Hld);
    zero.backoff.initial = Duration::ZERO;
    assert!(Client::spawn(zero).is_err());
}

#[tokio::test]
async fn a_healthy_session_resets_the_backoff_and_short_ones_keep_climbing() {
    let mut server = Server::start().await;
    let mut config = config(&server.url, "orch-flap", Dialect::Hld);
    config.backoff.initial = Duration::from_millis(20);
    config.backoff.max = Duration::from_millis(100);
    config.healthy_session_reset = Duration::from_millis(400);
    let client = Client::spawn(config).expect("spawn");
    let mut events = client.events();
    let mut attempts = Vec::new();
    // Two sessions dropped at once, then one that lasts past the healthy threshold.
    for lasts in [Duration::ZERO, Duration::ZERO, Duration::from_millis(500)] {
        let mut conn = server.accept().await;
        conn.welcome(None, false).await;
        wait_event(&mut events, "Connected", |e| {
            matches!(e, ClientEvent::Connected { .. })
        })
        .await;
        tokio::time::sleep(lasts).await;
        conn.close(1001, "bye").await;
        let ClientEvent::Reconnecting { attempt, .. } =
            wait_event(&mut events, "Reconnecting", |e| {
                matches!(e, ClientEvent::Reconnecting { .. })
            })
            .await
        else {
            unreachable!()
        };
        attempts.push(attempt);
    }
    assert_eq!(attempts, [0, 1, 0]);
    client.shutdown().await;
}
