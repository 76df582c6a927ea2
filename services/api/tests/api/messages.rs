//! Messages: creation, listing, decisions, delivery commands, and hostile content.

use moolai_bus::Kind;
use moolai_bus::events::Command;
use moolai_protocol::ServerFrame;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, next_json, spawn_app};

async fn create(app: &TestApp, orchestrator_id: &str, message_type: &str, content: &str) -> Value {
    let response = app
        .post(&format!(
            "/api/v1/internal/orchestrators/{orchestrator_id}/messages"
        ))
        .json(&json!({ "message_type": message_type, "content": content }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

fn contents(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn messages_are_created_and_listed_with_filters() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    app.hello("org-b", "orch-2").await;

    let response = app
        .post("/api/v1/internal/orchestrators/orch-1/messages")
        .json(&json!({
            "message_type": "recommendation",
            "content": "We recommend enabling cache to improve performance",
            "metadata": {"priority": "high"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["orchestrator_id"], "orch-1");
    let id = body["message_id"].as_str().unwrap();
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(body["data"]["id"], id);
    assert_eq!(body["data"]["status"], "pending");
    assert_eq!(body["data"]["source"], "api");
    assert_eq!(body["data"]["organization_id"], "org-a");
    assert_eq!(
        body["data"]["message_metadata"],
        json!({"priority": "high"})
    );
    assert_eq!(body["data"]["delivered_at"], Value::Null);

    create(&app, "orch-1", "monitoring", "second").await;
    create(&app, "orch-2", "monitoring", "third").await;

    let all = app.get_ok("/api/v1/internal/messages").await;
    assert_eq!(
        contents(&all),
        [
            "third",
            "second",
            "We recommend enabling cache to improve performance"
        ]
    );
    for (query, expected) in [
        ("message_type=monitoring", vec!["third", "second"]),
        (
            "orchestrator_id=orch-1&message_type=monitoring",
            vec!["second"],
        ),
        ("organization_id=org-b", vec!["third"]),
        ("status=accepted", vec![]),
        ("limit=1", vec!["third"]),
    ] {
        let body = app
            .get_ok(&format!("/api/v1/internal/messages?{query}"))
            .await;
        assert_eq!(contents(&body), expected, "{query}");
    }
    let per_orchestrator = app
        .get_ok("/api/v1/internal/orchestrators/orch-1/messages?message_type=recommendation")
        .await;
    assert_eq!(
        contents(&per_orchestrator),
        ["We recommend enabling cache to improve performance"]
    );

    for bad in [
        "limit=0",
        "limit=501",
        "status=archived",
        "message_type=spam",
        "orchestrator_id=a%20b",
    ] {
        let response = app
            .get(&format!("/api/v1/internal/messages?{bad}"))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let max = app.get_ok("/api/v1/internal/messages?limit=500").await;
    assert_eq!(contents(&max).len(), 3);

    for bad in [
        json!({ "message_type": "spam", "content": "x" }),
        json!({ "message_type": "monitoring", "content": "   " }),
        json!({ "message_type": "monitoring", "content": "x".repeat(16 * 1024 + 1) }),
        json!({ "message_type": "monitoring", "content": "x", "metadata": [1] }),
        json!({ "message_type": "monitoring" }),
    ] {
        let response = app
            .post("/api/v1/internal/orchestrators/orch-1/messages")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    }
    let response = app
        .post("/api/v1/internal/orchestrators/orch-missing/messages")
        .json(&json!({ "message_type": "monitoring", "content": "x" }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn accepting_a_message_sends_it_to_the_orchestrator_once() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    let created = create(&app, "orch-1", "recommendation", "raise the rate limit").await;
    let id = created["message_id"].as_str().unwrap().to_owned();
    let dismissed = create(&app, "orch-1", "monitoring", "noise").await;
    let dismissed_id = dismissed["message_id"].as_str().unwrap().to_owned();
    let mut commands = app.subscribe(Kind::Command, "org-a", "orch-1").await;

    // Dismissing sends nothing; accepting sends the message. Commands arrive in order, so
    // the first command seen must be the accepted message.
    let response = app
        .put(&format!("/api/v1/internal/messages/{dismissed_id}/status"))
        .json(&json!({ "status": "dismissed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["status"], "dismissed");

    let response = app
        .put(&format!("/api/v1/internal/messages/{id}/status"))
        .json(&json!({ "status": "accepted" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Message status updated");
    assert_eq!(body["data"]["id"], id.as_str());
    assert_eq!(body["data"]["status"], "accepted");

    let command: Command = next_json(&mut commands).await;
    let Command::Send {
        frame: ServerFrame::Message { data },
        message_id,
    } = command
    else {
        panic!("expected a message frame, got {command:?}");
    };
    assert_eq!(message_id.as_deref(), Some(id.as_str()));
    assert_eq!(data.id, id);
    assert_eq!(data.orchestrator_id, "orch-1");
    assert_eq!(data.message_type, "recommendation");
    assert_eq!(data.content, "raise the rate limit");
    assert_eq!(data.status, "accepted");

    // Decided messages cannot be decided again.
    for status in ["accepted", "dismissed"] {
        let response = app
            .put(&format!("/api/v1/internal/messages/{id}/status"))
            .json(&json!({ "status": status }))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::CONFLICT, "conflict").await;
    }
    let response = app
        .put("/api/v1/internal/messages/msg_does-not-exist/status")
        .json(&json!({ "status": "accepted" }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    for bad in [
        json!({ "status": "pending" }),
        json!({ "status": "archived" }),
        json!({}),
    ] {
        let response = app
            .put(&format!("/api/v1/internal/messages/{dismissed_id}/status"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    }
    let accepted = app
        .get_ok("/api/v1/internal/messages?status=accepted")
        .await;
    assert_eq!(contents(&accepted), ["raise the rate limit"]);
    app.stop().await;
}

#[tokio::test]
async fn hostile_strings_round_trip_intact() {
    let app = spawn_app().await;
    let hostile = [
        "'; DROP TABLE orchestrator_messages; --",
        "<script>alert('x')</script>",
        "\"quoted\" \\backslash\\ `tick`",
        "emoji 🚀🔥 and CJK 漢字 and RTL \u{202e}txet",
        "line one\nline two\r\nthree\ttabbed",
        "%_ wildcard % and _ underscore",
        "{\"type\":\"stop_monitoring\"}",
        "\u{feff}BOM and zero\u{200b}width",
    ];
    let response = app
        .post("/api/v1/controller/organizations")
        .json(&json!({
            "organization_id": "org-h",
            "name": hostile[0],
            "location": hostile[3],
            "metadata": { (hostile[1]): hostile[2], "nested": [hostile[4], {"k": hostile[5]}] },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let org = app.get_ok("/api/v1/controller/organizations/org-h").await;
    assert_eq!(org["data"]["name"], hostile[0]);
    assert_eq!(org["data"]["location"], hostile[3]);
    assert_eq!(
        org["data"]["metadata"],
        json!({ (hostile[1]): hostile[2], "nested": [hostile[4], {"k": hostile[5]}] })
    );

    app.hello("org-h", "orch-h").await;
    let mut ids = Vec::new();
    for content in hostile {
        let body = create(&app, "orch-h", "recommendation", content).await;
        assert_eq!(body["data"]["content"], content);
        ids.push(body["message_id"].as_str().unwrap().to_owned());
    }
    let long = "ü".repeat(8 * 1024);
    let body = create(&app, "orch-h", "monitoring", &long).await;
    assert_eq!(body["data"]["content"], long.as_str());
    let listed = app
        .get_ok("/api/v1/internal/orchestrators/orch-h/messages?limit=500")
        .await;
    let mut got = contents(&listed);
    got.retain(|c| c != &long);
    got.reverse();
    assert_eq!(got, hostile);

    // NUL cannot be stored by PostgreSQL: refused as invalid, never a 500.
    for bad in [
        json!({ "message_type": "monitoring", "content": "nul\u{0}here" }),
        json!({ "message_type": "monitoring", "content": "x", "metadata": {"k": "v\u{0}"} }),
    ] {
        let response = app
            .post("/api/v1/internal/orchestrators/orch-h/messages")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    }
    let response = app
        .get("/api/v1/controller/orchestrators?search=a%00b")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(ids.len(), hostile.len());
    app.stop().await;
}
