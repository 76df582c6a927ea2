//! Health: real pings of PostgreSQL and NATS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with};
use crate::wrapped_store::WrappedStore;

#[tokio::test]
async fn health_reports_up_when_database_and_nats_answer() {
    let app = spawn_app().await;
    for path in ["/health", "/api/v1/controller/health"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "up");
        assert_eq!(body["database"], "up");
        assert_eq!(body["nats"], "up");
        let at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(body["timestamp"].clone()).unwrap();
        assert!((chrono::Utc::now() - at).num_seconds().abs() < 5);
    }
    app.stop().await;
}

#[tokio::test]
async fn health_reports_the_database_down_with_503() {
    let ping_fails = Arc::new(AtomicBool::new(false));
    let flag = ping_fails.clone();
    let app = spawn_app_with(
        |_| {},
        move |inner| {
            Arc::new(WrappedStore {
                ping_fails: flag,
                ..WrappedStore::new(inner)
            })
        },
    )
    .await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    ping_fails.store(true, Ordering::SeqCst);
    for path in ["/health", "/api/v1/controller/health"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["database"], "down");
        assert_eq!(body["nats"], "up");
    }
    ping_fails.store(false, Ordering::SeqCst);
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn request_metrics_are_labelled_by_matched_route() {
    let metrics = moolai_telemetry::metrics();
    let app = spawn_app().await;
    let response = app
        .get("/api/v1/controller/orchestrators/orch-unlabelled-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("api_http_requests_total{")
                && l.contains("route=\"/api/v1/controller/orchestrators/{orchestrator_id}\"")
                && l.contains("status=\"404\"")
        })
        .unwrap_or_else(|| panic!("no labelled counter in:\n{text}"));
    assert!(line.contains("method=\"GET\""), "{line}");
    assert!(!text.contains("orch-unlabelled-42"));
    assert!(text.contains("api_http_request_duration_seconds"));
    app.stop().await;
}
