//! The served OpenAPI document drives these tests, so a route added later is covered
//! without editing them: every documented operation exists, and every one that the
//! document says needs the bearer scheme refuses requests without it.

use std::collections::BTreeSet;

use moolai_store::{Actor, NewMessage, Store};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, assert_error, spawn_app};

/// Operations that need no token. Anything else must be documented as bearer-protected.
const PUBLIC: [&str; 4] = [
    "GET /api/v1/controller/health",
    "POST /api/v1/internal/auth/login",
    "GET /api/v1/openapi.json",
    "GET /health",
];

struct Operation {
    method: Method,
    path: String,
    secured: bool,
}

async fn operations(app: &TestApp) -> Vec<Operation> {
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op["security"]
                .as_array()
                .is_some_and(|reqs| reqs.iter().any(|r| r.get("bearer").is_some()));
            if secured {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} documents no 401"
                );
            }
            out.push(Operation {
                method: method.to_uppercase().parse().unwrap(),
                path: path.clone(),
                secured,
            });
        }
    }
    out
}

fn concrete(path: &str, message_id: &str) -> String {
    let orchestrator = if path.ends_with("/deregister") {
        "orch-doomed"
    } else {
        "orch-doc"
    };
    path.replace("{orchestrator_id}", orchestrator)
        .replace("{organization_id}", "org-doc")
        .replace("{message_id}", message_id)
}

#[tokio::test]
async fn only_login_health_and_the_document_are_public_and_all_else_needs_a_token() {
    let app = spawn_app().await;
    let ops = operations(&app).await;
    assert_eq!(ops.len(), 27, "documented operations");
    let public: BTreeSet<String> = ops
        .iter()
        .filter(|o| !o.secured)
        .map(|o| format!("{} {}", o.method, o.path))
        .collect();
    let expected: BTreeSet<String> = PUBLIC.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(public, expected);

    for op in ops.iter().filter(|o| o.secured) {
        let path = concrete(&op.path, "msg_missing");
        let response = app
            .client
            .request(op.method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{} {path} without a token",
            op.method
        );
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let response = app
            .client
            .request(op.method.clone(), app.url(&path))
            .bearer_auth("not-a-token")
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{} {path} with a wrong token",
            op.method
        );
    }
    for op in ops.iter().filter(|o| !o.secured) {
        let path = concrete(&op.path, "msg_missing");
        let response = app
            .client
            .request(op.method.clone(), app.url(&path))
            .json(&serde_json::json!({"username": "x", "password": "y"}))
            .send()
            .await
            .unwrap();
        assert_ne!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{} {path}",
            op.method
        );
        assert_ne!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {path}",
            op.method
        );
        if op.path != "/api/v1/internal/auth/login" {
            assert_eq!(response.status(), StatusCode::OK, "{} {path}", op.method);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    app.hello("org-doc", "orch-doc").await;
    app.hello("org-doc", "orch-doomed").await;
    let message = app
        .store
        .create_message(&NewMessage {
            orchestrator_id: "orch-doc".into(),
            message_type: "recommendation".into(),
            content: "enable the cache".into(),
            metadata: serde_json::json!({}),
            source: "api".into(),
            actor: Actor::system(),
        })
        .await
        .unwrap();

    let mut ops = operations(&app).await;
    // Deregistration deletes its orchestrator: run it last.
    ops.sort_by_key(|o| o.path.ends_with("/deregister"));
    for op in &ops {
        let path = concrete(&op.path, &message.id);
        // The dev token: logging out a session here would end the suite's session.
        let response = app
            .client
            .request(op.method.clone(), app.url(&path))
            .bearer_auth(&app.dev_token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_ne!(status, StatusCode::NOT_FOUND, "{} {path}", op.method);
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {path}",
            op.method
        );
        assert!(!status.is_server_error(), "{} {path}: {status}", op.method);
        if op.method == Method::GET {
            assert_eq!(status, StatusCode::OK, "{} {path}", op.method);
        } else if status.is_client_error() {
            // Writes without a body: refused in the error shape, never axum's plain text.
            assert_error(response, status, "bad_request").await;
        }
    }
    app.stop().await;
}
