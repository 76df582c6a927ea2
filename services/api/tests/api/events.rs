//! The live status stream: one NATS subscription per process, fanned out over SSE.

use std::time::{Duration, Instant};

use chrono::Utc;
use moolai_bus::Kind;
use moolai_bus::events::StatusEvent;
use moolai_protocol::Status;
use reqwest::StatusCode;

use crate::helpers::{SseReader, TestApp, assert_error, spawn_app};

fn status_event(organization_id: &str, orchestrator_id: &str, reason: &str) -> StatusEvent {
    StatusEvent {
        orchestrator_id: orchestrator_id.into(),
        organization_id: organization_id.into(),
        status: Status::Inactive,
        previous_status: Some(Status::Active),
        is_independent: false,
        last_seen: Some(Utc::now()),
        reason: reason.into(),
        at: Utc::now(),
    }
}

async fn publish(app: &TestApp, event: &StatusEvent) {
    let subject = app.bus.subjects().orchestrator(
        Kind::Status,
        &event.organization_id,
        &event.orchestrator_id,
    );
    app.bus.publish(subject, event).await.unwrap();
    app.bus.flush().await.unwrap();
}

async fn open_stream(app: &TestApp, query: &str) -> SseReader {
    let response = app
        .get(&format!("/api/v1/controller/events{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    SseReader::new(response)
}

#[tokio::test]
async fn a_status_event_published_on_nats_reaches_sse_clients_within_a_second() {
    let app = spawn_app().await;
    let mut all = open_stream(&app, "").await;
    let mut org_b_only = open_stream(&app, "?organization_id=org-b").await;

    let sent = status_event("org-a", "orch-1", "ttl_expired");
    let started = Instant::now();
    publish(&app, &sent).await;
    let received = all
        .next_event(Duration::from_secs(1))
        .await
        .expect("no event within a second");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(received.event, "status");
    let decoded: StatusEvent = serde_json::from_str(&received.data).unwrap();
    assert_eq!(decoded, sent);

    // The filtered client skips org-a and gets org-b's event.
    let other = status_event("org-b", "orch-9", "disconnected");
    publish(&app, &other).await;
    let received = org_b_only
        .next_event(Duration::from_secs(1))
        .await
        .expect("no org-b event");
    let decoded: StatusEvent = serde_json::from_str(&received.data).unwrap();
    assert_eq!(decoded, other);
    let received = all.next_event(Duration::from_secs(1)).await.unwrap();
    let decoded: StatusEvent = serde_json::from_str(&received.data).unwrap();
    assert_eq!(decoded.orchestrator_id, "orch-9");
    app.stop().await;
}

#[tokio::test]
async fn the_api_s_own_status_changes_reach_the_stream() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    let mut stream = open_stream(&app, "").await;
    let response = app
        .put("/api/v1/internal/orchestrators/orch-1/independence")
        .json(&serde_json::json!({ "is_independent": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let received = stream.next_event(Duration::from_secs(1)).await.unwrap();
    let decoded: StatusEvent = serde_json::from_str(&received.data).unwrap();
    assert_eq!(decoded.reason, "independence_on");
    assert_eq!(decoded.status, Status::Independent);
    app.stop().await;
}

#[tokio::test]
async fn event_source_clients_authenticate_with_access_token() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url(&format!(
            "/api/v1/controller/events?access_token={}",
            app.token
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = SseReader::new(response);
    let sent = status_event("org-a", "orch-2", "registered");
    publish(&app, &sent).await;
    let received = stream.next_event(Duration::from_secs(1)).await.unwrap();
    assert_eq!(received.event, "status");
    assert_eq!(
        serde_json::from_str::<StatusEvent>(&received.data).unwrap(),
        sent
    );

    let response = app
        .client
        .get(app.url("/api/v1/controller/events?access_token=wrong"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let response = app
        .get("/api/v1/controller/events?organization_id=bad%20org")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    // Shutdown ends open streams, so stopping does not hang on them.
    app.stop().await;
}
