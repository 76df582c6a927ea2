//! The served OpenAPI document drives these tests, so a route added later is covered
//! without editing them: every documented operation exists; every protected one refuses
//! requests without a token (401), refuses a role below the one it documents (403; a viewer
//! can never write), and never shows or touches another organization's orchestrators,
//! messages, costs, tokens, audit entries or live events (403/404, nothing leaked). A write
//! an org_admin may make needs a sample body below, so a new one cannot skip the scope check.

use std::collections::BTreeSet;
use std::time::Duration;

use moolai_bus::Kind;
use moolai_bus::events::StatusEvent;
use moolai_protocol::Status;
use moolai_store::{Actor, NewMessage, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{SseReader, TestApp, assert_error, spawn_app};

/// Operations that need no token. Anything else must be documented as bearer-protected.
const PUBLIC: [&str; 4] = [
    "GET /api/v1/controller/health",
    "POST /api/v1/internal/auth/login",
    "GET /api/v1/openapi.json",
    "GET /health",
];

/// Writes any authenticated caller may make about their own session. Every other write must
/// need more than the viewer role.
const SELF_SERVICE: [&str; 2] = [
    "POST /api/v1/internal/auth/logout",
    "PUT /api/v1/internal/auth/password",
];

/// A body for each write an org_admin may make, aimed at the other organization's resources
/// (the path parameters are filled in with them). Without one, a new write would fail its
/// body parsing before reaching the scope check, and the test would prove nothing.
const SCOPE_BODIES: [(&str, &str); 10] = [
    (
        "PUT /api/v1/internal/orchestrators/{orchestrator_id}/independence",
        r#"{"is_independent": true}"#,
    ),
    (
        "PUT /api/v1/internal/orchestrators/{orchestrator_id}/config",
        r#"{"session_config": {"hijacked": true}}"#,
    ),
    (
        "POST /api/v1/internal/orchestrators/register",
        r#"{"orchestrator_id": "orch-bravo-new", "organization_id": "org-bravo"}"#,
    ),
    (
        "POST /api/v1/internal/orchestrators/{orchestrator_id}/deregister",
        "{}",
    ),
    (
        "POST /api/v1/internal/orchestrators/{orchestrator_id}/messages",
        r#"{"message_type": "recommendation", "content": "planted"}"#,
    ),
    (
        "PUT /api/v1/internal/messages/{message_id}/status",
        r#"{"status": "accepted"}"#,
    ),
    (
        "POST /api/v1/internal/organizations/{organization_id}/enrollment-tokens",
        r#"{"name": "planted"}"#,
    ),
    (
        "DELETE /api/v1/internal/enrollment-tokens/{credential_id}",
        "{}",
    ),
    (
        "POST /api/v1/internal/orchestrators/{orchestrator_id}/tokens",
        r#"{"name": "planted"}"#,
    ),
    (
        "DELETE /api/v1/internal/orchestrator-tokens/{credential_id}",
        "{}",
    ),
];

struct Operation {
    method: Method,
    path: String,
    /// The least role the document says it needs; `None` for a public operation.
    min_role: Option<String>,
    /// Declares an `organization_id` query parameter.
    org_filter: bool,
    /// Answers with an event stream.
    stream: bool,
}

impl Operation {
    fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 0,
        "org_admin" => 1,
        "superadmin" => 2,
        other => panic!("unknown role {other:?} in the document"),
    }
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
            let min_role = op["security"].as_array().and_then(|reqs| {
                reqs.iter().find_map(|r| {
                    let roles = r.get("bearer")?.as_array()?;
                    assert_eq!(roles.len(), 1, "{method} {path}: one least role");
                    roles[0].as_str().map(str::to_owned)
                })
            });
            if min_role.is_some() {
                for code in ["401", "403"] {
                    assert!(
                        op["responses"].get(code).is_some(),
                        "{method} {path} documents no {code}"
                    );
                }
            }
            let org_filter = op["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == "organization_id" && p["in"] == "query")
            });
            let stream = op["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some();
            out.push(Operation {
                method: method.to_uppercase().parse().unwrap(),
                path: path.clone(),
                min_role,
                org_filter,
                stream,
            });
        }
    }
    out
}

#[tokio::test]
async fn only_login_health_and_the_document_are_public_and_all_else_needs_a_token() {
    let app = spawn_app().await;
    let ops = operations(&app).await;
    assert_eq!(ops.len(), 42, "documented operations");
    let public: BTreeSet<String> = ops
        .iter()
        .filter(|o| o.min_role.is_none())
        .map(Operation::key)
        .collect();
    let expected: BTreeSet<String> = PUBLIC.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(public, expected);

    for op in ops.iter().filter(|o| o.min_role.is_some()) {
        let path = fill(&op.path, &Ids::placeholder());
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
        for wrong in [
            "not-a-token",
            &"ab".repeat(32),
            &format!("moo_api_{}", "cd".repeat(32)),
        ] {
            let response = app
                .client
                .request(op.method.clone(), app.url(&path))
                .bearer_auth(wrong)
                .json(&json!({}))
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
    }
    for op in ops.iter().filter(|o| o.min_role.is_none()) {
        let path = fill(&op.path, &Ids::placeholder());
        let response = app
            .client
            .request(op.method.clone(), app.url(&path))
            .json(&json!({"username": "x", "password": "y"}))
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

/// Ids to put into a path template.
struct Ids {
    orchestrator: String,
    organization: String,
    message: String,
    enrollment: String,
    orchestrator_token: String,
    username: String,
    api_token: String,
}

impl Ids {
    fn placeholder() -> Self {
        Self {
            orchestrator: "orch-x".into(),
            organization: "org-x".into(),
            message: "msg_x".into(),
            enrollment: "crd_x".into(),
            orchestrator_token: "crd_y".into(),
            username: "nobody".into(),
            api_token: "apt_x".into(),
        }
    }
}

fn fill(path: &str, ids: &Ids) -> String {
    let credential = if path.contains("/enrollment-tokens/") {
        &ids.enrollment
    } else {
        &ids.orchestrator_token
    };
    let filled = path
        .replace("{orchestrator_id}", &ids.orchestrator)
        .replace("{organization_id}", &ids.organization)
        .replace("{message_id}", &ids.message)
        .replace("{credential_id}", credential)
        .replace("{username}", &ids.username)
        .replace("{token_id}", &ids.api_token);
    assert!(!filled.contains('{'), "unknown path parameter in {path}");
    filled
}

async fn create_token(app: &TestApp, path: &str, body: Value) -> (String, String) {
    let response = app.post(path).json(&body).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "POST {path}: {body}");
    let id = body["data"]["credential_id"]
        .as_str()
        .or_else(|| body["data"]["token_id"].as_str())
        .unwrap()
        .to_owned();
    (id, body["token"].as_str().unwrap().to_owned())
}

async fn message(app: &TestApp, orchestrator_id: &str, content: &str) -> String {
    app.store
        .create_message(&NewMessage {
            orchestrator_id: orchestrator_id.into(),
            message_type: "recommendation".into(),
            content: content.into(),
            metadata: json!({}),
            source: "api".into(),
            actor: Actor::system(),
        })
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    app.organization("org-doc").await;
    app.hello("org-doc", "orch-doc").await;
    app.hello("org-doc", "orch-doomed").await;
    let (enrollment, _) = create_token(
        &app,
        "/api/v1/internal/organizations/org-doc/enrollment-tokens",
        json!({}),
    )
    .await;
    let (orchestrator_token, _) = create_token(
        &app,
        "/api/v1/internal/orchestrators/orch-doc/tokens",
        json!({}),
    )
    .await;
    let (api_token, _) = create_token(
        &app,
        "/api/v1/internal/api-tokens",
        json!({"name": "doc", "role": "viewer"}),
    )
    .await;
    app.user_token("doc-user", "viewer", &["org-doc"]).await;
    let ids = Ids {
        orchestrator: "orch-doc".into(),
        organization: "org-doc".into(),
        message: message(&app, "orch-doc", "enable the cache").await,
        enrollment,
        orchestrator_token,
        username: "doc-user".into(),
        api_token,
    };

    let mut ops = operations(&app).await;
    // Deletions and deregistration remove what later operations read: run them last.
    ops.sort_by_key(|o| o.method == Method::DELETE || o.path.ends_with("/deregister"));
    for op in ops.iter().filter(|o| !o.stream) {
        let path = if op.path.ends_with("/deregister") {
            fill(
                &op.path,
                &Ids {
                    orchestrator: "orch-doomed".into(),
                    ..Ids::placeholder()
                },
            )
        } else {
            fill(&op.path, &ids)
        };
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

/// Everything a "bravo" leak could show: ids, names and contents of the other organization.
struct Bravo {
    markers: Vec<String>,
}

impl Bravo {
    fn assert_absent(&self, what: &str, body: &str) {
        self.assert_absent_beyond(what, body, "");
    }

    /// Like [`Self::assert_absent`], except for what the request itself named (an error may
    /// repeat the id the caller asked for: that tells the caller nothing new).
    fn assert_absent_beyond(&self, what: &str, body: &str, request: &str) {
        for marker in self
            .markers
            .iter()
            .filter(|m| !request.contains(m.as_str()))
        {
            assert!(
                !body.contains(marker.as_str()),
                "{what} leaked {marker:?}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn every_operation_enforces_roles_and_organization_scopes() {
    let app = spawn_app().await;
    app.organization("org-alpha").await;
    app.organization("org-bravo").await;
    app.hello("org-alpha", "orch-alpha").await;
    app.hello("org-bravo", "orch-bravo").await;
    let now = chrono::Utc::now();
    app.usage(
        "org-alpha",
        "orch-alpha",
        Some("alpha-model"),
        3,
        (10, 5),
        0.5,
        now,
    )
    .await;
    app.usage(
        "org-bravo",
        "orch-bravo",
        Some("bravo-model"),
        7,
        (70, 7),
        7.0,
        now,
    )
    .await;
    let alpha_message = message(&app, "orch-alpha", "alpha content").await;
    let bravo_message = message(&app, "orch-bravo", "bravo-secret-content").await;
    let (alpha_enrollment, _) = create_token(
        &app,
        "/api/v1/internal/organizations/org-alpha/enrollment-tokens",
        json!({"name": "alpha enrollment"}),
    )
    .await;
    let (bravo_enrollment, _) = create_token(
        &app,
        "/api/v1/internal/organizations/org-bravo/enrollment-tokens",
        json!({"name": "bravo enrollment"}),
    )
    .await;
    let (alpha_orchestrator_token, _) = create_token(
        &app,
        "/api/v1/internal/orchestrators/orch-alpha/tokens",
        json!({"name": "alpha own"}),
    )
    .await;
    let (bravo_orchestrator_token, _) = create_token(
        &app,
        "/api/v1/internal/orchestrators/orch-bravo/tokens",
        json!({"name": "bravo own"}),
    )
    .await;
    let (api_token, _) = create_token(
        &app,
        "/api/v1/internal/api-tokens",
        json!({"name": "scoped", "role": "viewer", "organization_ids": ["org-alpha"]}),
    )
    .await;
    // Audit entries of org-bravo.
    let response = app
        .put("/api/v1/internal/orchestrators/orch-bravo/config")
        .json(&json!({"session_config": {"bravo": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let viewer = app
        .user_token("viewer-alpha", "viewer", &["org-alpha"])
        .await;
    let admin = app
        .user_token("admin-alpha", "org_admin", &["org-alpha"])
        .await;
    let bravo = Bravo {
        markers: vec![
            "org-bravo".into(),
            "orch-bravo".into(),
            "bravo-secret-content".into(),
            "bravo-model".into(),
            "bravo enrollment".into(),
            "bravo own".into(),
            r#""bravo":1"#.into(),
            bravo_message.clone(),
            bravo_enrollment.clone(),
            bravo_orchestrator_token.clone(),
        ],
    };
    let alpha_ids = Ids {
        orchestrator: "orch-alpha".into(),
        organization: "org-alpha".into(),
        message: alpha_message,
        enrollment: alpha_enrollment,
        orchestrator_token: alpha_orchestrator_token,
        username: "viewer-alpha".into(),
        api_token: api_token.clone(),
    };
    let bravo_ids = Ids {
        orchestrator: "orch-bravo".into(),
        organization: "org-bravo".into(),
        message: bravo_message.clone(),
        enrollment: bravo_enrollment.clone(),
        orchestrator_token: bravo_orchestrator_token.clone(),
        username: "viewer-alpha".into(),
        api_token,
    };
    let bodies: std::collections::HashMap<&str, &str> = SCOPE_BODIES.into_iter().collect();

    let ops = operations(&app).await;
    let mut scope_checked = 0;
    for op in ops.iter() {
        let Some(min_role) = op.min_role.as_deref() else {
            continue;
        };
        let key = op.key();
        if op.is_write() && !SELF_SERVICE.contains(&key.as_str()) {
            assert!(rank(min_role) > 0, "{key}: a write open to viewers");
        }

        // Roles: below the documented one is 403 before anything else happens.
        for (token, role) in [(&viewer, "viewer"), (&admin, "org_admin")] {
            if rank(role) < rank(min_role) {
                let response = app
                    .with_token(op.method.clone(), &fill(&op.path, &bravo_ids), token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let message = assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
                bravo.assert_absent_beyond(&key, &message, &fill(&op.path, &bravo_ids));
            }
        }

        // Reads within the caller's own organization work for both roles (a control: the
        // refusals below are not just everything failing).
        if !op.is_write() && !op.stream {
            for token in [&viewer, &admin]
                .into_iter()
                .filter(|_| rank(min_role) == 0)
            {
                let path = fill(&op.path, &alpha_ids);
                let response = app
                    .with_token(Method::GET, &path, token)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let text = response.text().await.unwrap();
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{key} on its own organization: {text}"
                );
                bravo.assert_absent(&key, &text);
            }
        }

        // Scope: the org_admin of org-alpha aims at org-bravo.
        if rank(min_role) > 1 || SELF_SERVICE.contains(&key.as_str()) {
            continue;
        }
        scope_checked += 1;
        let path = fill(&op.path, &bravo_ids);
        if op.stream {
            let url = format!("{path}?organization_id=org-bravo");
            let response = app
                .with_token(Method::GET, &url, &admin)
                .send()
                .await
                .unwrap();
            assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
            live_events_stay_in_scope(&app, &path, &admin, &bravo).await;
            continue;
        }
        let url = format!("{path}?organization_id=org-bravo&orchestrator_id=orch-bravo");
        let mut request = app.with_token(op.method.clone(), &url, &admin);
        let mut sent = url.clone();
        if op.is_write() {
            let body = bodies
                .get(key.as_str())
                .unwrap_or_else(|| panic!("{key}: add a sample body to SCOPE_BODIES"));
            sent.push_str(body);
            request = request
                .header("content-type", "application/json")
                .body(*body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        bravo.assert_absent_beyond(&key, &text, &sent);
        let has_path_param = op.path.contains('{');
        if op.is_write() || has_path_param || op.org_filter {
            assert!(
                matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                "{key} aimed at another organization answered {status}: {text}"
            );
        } else {
            assert_eq!(status, StatusCode::OK, "{key}: {text}");
        }
        // Without the explicit filter, a listing is simply scoped.
        if op.org_filter && !has_path_param {
            let response = app
                .with_token(Method::GET, &path, &admin)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{key} unfiltered");
            bravo.assert_absent(&key, &response.text().await.unwrap());
        }
    }
    assert!(
        scope_checked >= 25,
        "only {scope_checked} operations scope-checked"
    );

    // Nothing of org-bravo changed.
    let orchestrator = app
        .get_ok("/api/v1/controller/orchestrators/orch-bravo")
        .await;
    assert_eq!(orchestrator["data"]["is_independent"], false);
    assert_eq!(orchestrator["data"]["config_version"], 1);
    assert_eq!(orchestrator["data"]["session_config"], json!({"bravo": 1}));
    let message = app
        .store
        .get_message(&bravo_message)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.status, moolai_store::MessageStatus::Pending);
    let messages = app
        .get_ok("/api/v1/internal/orchestrators/orch-bravo/messages")
        .await;
    assert_eq!(messages["data"].as_array().unwrap().len(), 1);
    for id in [&bravo_enrollment, &bravo_orchestrator_token] {
        let credential = app
            .store
            .get_orchestrator_credential(id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            credential.revoked_at, None,
            "{id} revoked by another organization"
        );
    }
    let tokens = app
        .get_ok("/api/v1/internal/organizations/org-bravo/enrollment-tokens")
        .await;
    assert_eq!(tokens["data"]["total"], 1);
    assert!(
        app.store
            .get_orchestrator("orch-bravo-new")
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

/// An org_admin's unfiltered stream carries its organization's events and never another's.
async fn live_events_stay_in_scope(app: &TestApp, path: &str, token: &str, bravo: &Bravo) {
    let response = app
        .with_token(Method::GET, path, token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader::new(response);
    for (org, orch) in [("org-bravo", "orch-bravo"), ("org-alpha", "orch-alpha")] {
        let event = StatusEvent {
            orchestrator_id: orch.into(),
            organization_id: org.into(),
            status: Status::Active,
            previous_status: Some(Status::Inactive),
            is_independent: false,
            last_seen: None,
            reason: "heartbeat".into(),
            at: chrono::Utc::now(),
        };
        let subject = app.bus.subjects().orchestrator(Kind::Status, org, orch);
        app.bus.publish(subject, &event).await.unwrap();
    }
    app.bus.flush().await.unwrap();
    // Events arrive in publication order: bravo's would come before alpha's.
    let first = reader
        .next_event(Duration::from_secs(5))
        .await
        .expect("alpha's event");
    bravo.assert_absent("the live stream", &first.data);
    assert!(first.data.contains("orch-alpha"), "{}", first.data);
}
