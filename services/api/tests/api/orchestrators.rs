//! Operator writes about one orchestrator and what they publish on NATS.

use moolai_bus::Kind;
use moolai_bus::events::{Command, StatusEvent};
use moolai_protocol::{ServerFrame, Status};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_error, next_json, spawn_app};

#[tokio::test]
async fn independence_is_persisted_published_and_commanded() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    let mut status = app.subscribe(Kind::Status, "org-a", "orch-1").await;
    let mut commands = app.subscribe(Kind::Command, "org-a", "orch-1").await;

    let response = app
        .put("/api/v1/internal/orchestrators/orch-1/independence")
        .json(&json!({ "is_independent": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "success": true,
            "message": "Independence mode updated",
            "orchestrator_id": "orch-1",
            "is_independent": true,
            "status": "independent",
        })
    );

    let event: StatusEvent = next_json(&mut status).await;
    assert_eq!(event.orchestrator_id, "orch-1");
    assert_eq!(event.organization_id, "org-a");
    assert_eq!(event.status, Status::Independent);
    assert_eq!(event.previous_status, Some(Status::Active));
    assert!(event.is_independent);
    assert_eq!(event.reason, "independence_on");
    assert!(event.last_seen.is_some());

    let command: Command = next_json(&mut commands).await;
    let Command::Send {
        frame: ServerFrame::StopMonitoring(change),
        message_id: None,
    } = command
    else {
        panic!("expected stop_monitoring, got {command:?}");
    };
    assert_eq!(change.orchestrator_id, "orch-1");
    assert!(change.is_independent);
    assert_eq!(
        change.reason.as_deref(),
        Some("independence enabled by operator")
    );

    let state = app
        .get_ok("/api/v1/internal/orchestrators/orch-1/independence")
        .await;
    assert_eq!(
        state,
        json!({"success": true, "data": {"orchestrator_id": "orch-1", "is_independent": true, "status": "independent"}})
    );
    let detail = app.get_ok("/api/v1/controller/orchestrators/orch-1").await;
    assert_eq!(detail["data"]["status"], "independent");

    // Repeating the toggle re-sends the command (level-triggered) but publishes no status
    // change: the next status event is the one from switching it off.
    let response = app
        .put("/api/v1/internal/orchestrators/orch-1/independence")
        .json(&json!({ "is_independent": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let command: Command = next_json(&mut commands).await;
    assert!(matches!(
        command,
        Command::Send {
            frame: ServerFrame::StopMonitoring(_),
            ..
        }
    ));

    let response = app
        .put("/api/v1/internal/orchestrators/orch-1/independence")
        .json(&json!({ "is_independent": false }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["is_independent"], false);
    assert_eq!(body["status"], "active");
    let event: StatusEvent = next_json(&mut status).await;
    assert_eq!(event.reason, "independence_off");
    assert_eq!(event.previous_status, Some(Status::Independent));
    assert_eq!(event.status, Status::Active);
    assert!(!event.is_independent);
    let command: Command = next_json(&mut commands).await;
    let Command::Send {
        frame: ServerFrame::ResumeMonitoring(change),
        ..
    } = command
    else {
        panic!("expected resume_monitoring, got {command:?}");
    };
    assert!(!change.is_independent);

    let response = app
        .put("/api/v1/internal/orchestrators/orch-missing/independence")
        .json(&json!({ "is_independent": true }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .put("/api/v1/internal/orchestrators/orch-1/independence")
        .json(&json!({ "is_independent": "yes" }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    let response = app
        .get("/api/v1/internal/orchestrators/orch-missing/independence")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn a_config_update_bumps_the_version_and_is_sent_to_the_orchestrator() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    let before = app.get_ok("/api/v1/controller/orchestrators/orch-1").await;
    let version = before["data"]["config_version"].as_i64().unwrap();
    let mut commands = app.subscribe(Kind::Command, "org-a", "orch-1").await;
    let config = json!({"cache": {"enabled": true, "ttl_sec": 300}, "models": ["gpt-4o"]});

    let response = app
        .put("/api/v1/internal/orchestrators/orch-1/config")
        .json(&json!({ "session_config": config }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Configuration updated");
    assert_eq!(body["config_version"], version + 1);
    assert_eq!(body["data"]["session_config"], config);
    assert_eq!(body["data"]["config_version"], version + 1);

    let command: Command = next_json(&mut commands).await;
    let Command::Send {
        frame: ServerFrame::ConfigUpdate { data },
        message_id: None,
    } = command
    else {
        panic!("expected config_update, got {command:?}");
    };
    assert_eq!(data.orchestrator_id, "orch-1");
    assert_eq!(data.session_config, config);
    assert_eq!(data.config_version, version + 1);

    for bad in [
        json!({"session_config": [1]}),
        json!({"session_config": "x"}),
        json!({}),
    ] {
        let response = app
            .put("/api/v1/internal/orchestrators/orch-1/config")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    }
    let response = app
        .put("/api/v1/internal/orchestrators/orch-missing/config")
        .json(&json!({ "session_config": {} }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn registration_and_deregistration() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    let response = app
        .post("/api/v1/internal/orchestrators/register")
        .json(&json!({
            "orchestrator_id": "orch-new",
            "organization_id": "org-a",
            "name": "New one",
            "location": "Porto",
            "session_config": {"mode": "strict"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["orchestrator_id"], "orch-new");
    assert_eq!(body["data"]["organization_id"], "org-a");
    assert_eq!(body["data"]["name"], "New one");
    assert_eq!(body["data"]["status"], "inactive");
    assert_eq!(body["data"]["connected"], false);
    assert_eq!(body["data"]["session_config"], json!({"mode": "strict"}));

    let response = app
        .post("/api/v1/internal/orchestrators/register")
        .json(&json!({ "orchestrator_id": "orch-new", "organization_id": "org-a" }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::CONFLICT, "conflict").await;
    for bad in [
        json!({ "orchestrator_id": "orch.dot", "organization_id": "org-a" }),
        json!({ "orchestrator_id": "orch-x", "organization_id": "org a" }),
        json!({ "orchestrator_id": "orch-x", "organization_id": "org-a", "name": "n".repeat(256) }),
        json!({ "orchestrator_id": "orch-x", "organization_id": "org-a", "features": "all" }),
        json!({ "organization_id": "org-a" }),
    ] {
        let response = app
            .post("/api/v1/internal/orchestrators/register")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    }

    let mut status = app.subscribe(Kind::Status, "org-a", "orch-1").await;
    let mut commands = app.subscribe(Kind::Command, "org-a", "orch-1").await;
    let response = app
        .post("/api/v1/internal/orchestrators/orch-1/deregister")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Orchestrator deregistered");
    assert_eq!(body["data"]["orchestrator_id"], "orch-1");
    let command: Command = next_json(&mut commands).await;
    assert_eq!(
        command,
        Command::Close {
            code: 4004,
            reason: "deregistered".into(),
            session_id: None,
        }
    );
    let event: StatusEvent = next_json(&mut status).await;
    assert_eq!(event.reason, "deregistered");
    assert_eq!(event.status, Status::Inactive);
    assert_eq!(event.previous_status, Some(Status::Active));

    let response = app
        .get("/api/v1/controller/orchestrators/orch-1")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .post("/api/v1/internal/orchestrators/orch-1/deregister")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}
