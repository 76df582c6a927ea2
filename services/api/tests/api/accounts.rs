//! Operator accounts, login throttling, API tokens and orchestrator credentials over HTTP.

use std::time::{Duration, Instant};

use futures::StreamExt;
use moolai_bus::Kind;
use moolai_bus::events::Command;
use moolai_store::{AuditQuery, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{DEADLINE, assert_error, random_secret, spawn_app, spawn_app_with};

#[tokio::test]
async fn repeated_failures_lock_out_a_name_and_an_address_with_the_same_answer_for_unknown_names() {
    let app = spawn_app_with(
        |s| {
            s.login_max_failures = 3;
            s.login_max_failures_per_address = 7;
            s.login_lockout_sec = 60;
        },
        |s| s,
    )
    .await;
    // Three failures of an existing name lock it, even for the right password.
    for _ in 0..3 {
        let response = app.login(&app.admin_username, "wrong-password-123").await;
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let response = app.login(&app.admin_username, &app.admin_password).await;
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    let locked = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    // An unknown name is locked out the same way: the lockout tells nothing about existence.
    for _ in 0..3 {
        let response = app.login("nobody-here", "wrong-password-123").await;
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let response = app.login("nobody-here", "wrong-password-123").await;
    let unknown_locked =
        assert_error(response, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
    assert_eq!(
        locked.split(';').next(),
        unknown_locked.split(';').next(),
        "same answer"
    );
    // The address has now failed 6 times; one more name fails once more and the address
    // (7) is locked for every name, even a good login of a user who never failed.
    let other = app.user_token("carol", "viewer", &[]).await;
    assert_eq!(other.len(), 64);
    let response = app.login("dave", "wrong-password-123").await;
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let response = app.login("carol", "whatever-password").await;
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;

    let throttled = app
        .store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 100,
            action: Some("auth.login".into()),
            success: Some(false),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(
        throttled
            .items
            .iter()
            .any(|a| a.details["outcome"] == "throttled"),
        "throttled attempts are audited"
    );
    assert!(
        throttled
            .items
            .iter()
            .all(|a| !a.details.to_string().contains("wrong-password")),
        "no password in the audit log"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_look_the_same_and_take_similar_time() {
    let app = spawn_app().await;
    let mut unknown = Duration::MAX;
    let mut wrong = Duration::MAX;
    for i in 0..3 {
        let started = Instant::now();
        let response = app.login(&format!("ghost-{i}"), "some-long-password").await;
        unknown = unknown.min(started.elapsed());
        let a = assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let started = Instant::now();
        let response = app.login(&app.admin_username, "some-long-password").await;
        wrong = wrong.min(started.elapsed());
        let b = assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert_eq!(a, b);
    }
    // Both verify an argon2id hash; an unknown name must not answer in a fraction of the time
    // (the shared test machine makes exact equality meaningless).
    assert!(
        unknown * 3 >= wrong,
        "unknown user answered in {unknown:?}, wrong password in {wrong:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn superadmins_manage_users_whose_changes_end_their_sessions() {
    let app = spawn_app().await;
    app.organization("org-a").await;
    let carol = app.user_token("carol", "org_admin", &["org-a"]).await;
    let me: Value = app
        .with_token(Method::GET, "/api/v1/internal/auth/me", &carol)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["role"], "org_admin");
    assert_eq!(me["data"]["organization_ids"], json!(["org-a"]));

    let listed = app.get_ok("/api/v1/internal/users").await;
    let names: Vec<&str> = listed["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"carol") && names.contains(&app.admin_username.as_str()));
    assert!(
        !listed.to_string().contains("argon2"),
        "no hash is ever served"
    );

    // Bad input.
    for (body, code) in [
        (
            json!({"username": "x y", "password": "long-enough-password", "role": "viewer"}),
            422,
        ),
        (
            json!({"username": "short", "password": "short", "role": "viewer"}),
            422,
        ),
        (
            json!({"username": "ok", "password": "long-enough-password", "role": "root"}),
            422,
        ),
        (
            json!({"username": "ok", "password": "long-enough-password", "role": "viewer",
                   "organization_ids": ["org-missing"]}),
            404,
        ),
        (
            json!({"username": "carol", "password": "long-enough-password", "role": "viewer"}),
            409,
        ),
    ] {
        let response = app
            .post("/api/v1/internal/users")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code, "{body}");
    }

    // Demoting carol ends her session at once.
    let response = app
        .put("/api/v1/internal/users/carol")
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .with_token(Method::GET, "/api/v1/internal/auth/me", &carol)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // A disabled user cannot log in (same answer as a wrong password).
    let password = random_secret("pw");
    let response = app
        .put("/api/v1/internal/users/carol")
        .json(&json!({"password": password, "disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.login("carol", &password).await;
    let message = assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(message, "invalid username or password");
    let response = app
        .put("/api/v1/internal/users/carol")
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.login("carol", &password).await.status(), StatusCode::OK);

    // A superadmin cannot lock themselves out.
    let me = format!("/api/v1/internal/users/{}", app.admin_username);
    let response = app
        .put(&me)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::CONFLICT, "conflict").await;
    let response = app.authed(Method::DELETE, &me).send().await.unwrap();
    assert_error(response, StatusCode::CONFLICT, "conflict").await;

    let response = app
        .authed(Method::DELETE, "/api/v1/internal/users/carol")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .get("/api/v1/internal/users/carol")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;

    let audit = app
        .get_ok(&format!(
            "/api/v1/controller/logs?actor=user:{}",
            app.admin_username
        ))
        .await;
    let actions: Vec<&str> = audit["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for action in ["user.create", "user.update", "user.delete"] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn users_change_their_own_password() {
    let app = spawn_app().await;
    let token = app.user_token("erin", "viewer", &[]).await;
    let path = "/api/v1/internal/auth/password";
    let response = app
        .with_token(Method::PUT, path, &token)
        .json(
            &json!({"current_password": "not-my-password", "new_password": "a-brand-new-password"}),
        )
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    // Learn erin's password the way she would: it was set at creation; reset it to a known one.
    let known = random_secret("pw");
    let response = app
        .put("/api/v1/internal/users/erin")
        .json(&json!({"password": known}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = app.login("erin", &known).await.json().await.unwrap();
    let token = body["user"]["token"].as_str().unwrap().to_owned();
    let response = app
        .with_token(Method::PUT, path, &token)
        .json(&json!({"current_password": known, "new_password": "short"}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    let response = app
        .with_token(Method::PUT, path, &token)
        .json(&json!({"current_password": known, "new_password": "a-brand-new-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The session ended; the new password works, the old one does not.
    let response = app
        .with_token(Method::GET, "/api/v1/internal/auth/me", &token)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        app.login("erin", &known).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("erin", "a-brand-new-password").await.status(),
        StatusCode::OK
    );
    // The dev token is not a user: nothing to change.
    let response = app
        .with_token(Method::PUT, path, &app.dev_token)
        .json(&json!({"current_password": "x", "new_password": "a-brand-new-password"}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_are_shown_once_scoped_and_revocable() {
    let app = spawn_app().await;
    app.organization("org-a").await;
    app.organization("org-b").await;
    app.hello("org-a", "orch-a").await;
    app.hello("org-b", "orch-b").await;
    let response = app
        .post("/api/v1/internal/api-tokens")
        .json(&json!({"name": "ci", "role": "viewer", "organization_ids": ["org-a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let token_id = body["data"]["token_id"].as_str().unwrap().to_owned();
    assert!(
        token.starts_with("moo_api_") && token.len() == 8 + 64,
        "{token}"
    );
    assert!(body["data"].get("token_hash").is_none());

    let listed = app.get_ok("/api/v1/internal/api-tokens").await;
    assert!(
        !listed.to_string().contains(&token),
        "a token is shown once"
    );
    assert_eq!(listed["data"]["items"][0]["name"], "ci");

    // Hostile names are stored and returned intact, as JSON strings.
    let hostile = "'; DROP TABLE api_tokens; -- <script>alert(1)</script> \"quoted\" 🚀";
    let response = app
        .post("/api/v1/internal/api-tokens")
        .json(&json!({"name": hostile, "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let listed = app.get_ok("/api/v1/internal/api-tokens").await;
    assert_eq!(listed["data"]["items"][0]["name"], hostile);
    assert_eq!(listed["data"]["total"], 2);

    let orchestrators: Value = app
        .with_token(Method::GET, "/api/v1/controller/orchestrators", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(orchestrators["data"]["total"], 1);
    assert_eq!(
        orchestrators["data"]["items"][0]["orchestrator_id"],
        "orch-a"
    );
    let response = app
        .with_token(
            Method::PUT,
            "/api/v1/internal/orchestrators/orch-a/independence",
            &token,
        )
        .json(&json!({"is_independent": true}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    let me: Value = app
        .with_token(Method::GET, "/api/v1/internal/auth/me", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["auth"], "api_token");

    let response = app
        .authed(
            Method::DELETE,
            &format!("/api/v1/internal/api-tokens/{token_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .with_token(Method::GET, "/api/v1/controller/orchestrators", &token)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let audit = app
        .get_ok("/api/v1/controller/logs?action=api_token.revoke")
        .await;
    assert_eq!(audit["data"]["total"], 1);
    app.stop().await;
}

#[tokio::test]
async fn revoking_an_orchestrator_credential_closes_its_sockets_with_4001() {
    let app = spawn_app().await;
    app.organization("org-a").await;
    let token = app.user_token("ops-a", "org_admin", &["org-a"]).await;
    let response = app
        .with_token(
            Method::POST,
            "/api/v1/internal/organizations/org-a/enrollment-tokens",
            &token,
        )
        .json(&json!({"name": "fleet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let secret = body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("moo_enr_"), "{secret}");
    let credential_id = body["data"]["credential_id"].as_str().unwrap().to_owned();

    // An orchestrator registered with it (as state would record the hello).
    let registered = app
        .store
        .register_hello(&moolai_store::HelloRegistration {
            orchestrator_id: "orch-a1".into(),
            organization_id: Some("org-a".into()),
            default_organization_id: "default".into(),
            name: None,
            location: None,
            features: None,
            metadata: serde_json::Map::new(),
            session_id: "session-a1".into(),
            edge_id: "edge-test".into(),
            remote_addr: None,
            dialect: moolai_protocol::Dialect::Hld,
            credential_id: Some(credential_id.clone()),
        })
        .await
        .unwrap();
    assert_eq!(registered.organization_id, "org-a");

    let mut commands = app.subscribe(Kind::Command, "org-a", "orch-a1").await;
    // The wrong kind of path does not revoke it.
    let response = app
        .with_token(
            Method::DELETE,
            &format!("/api/v1/internal/orchestrator-tokens/{credential_id}"),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .with_token(
            Method::DELETE,
            &format!("/api/v1/internal/enrollment-tokens/{credential_id}"),
            &token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let delivery = tokio::time::timeout(DEADLINE, commands.next())
        .await
        .expect("a close command")
        .expect("subscription");
    let command: Command = delivery.json().unwrap();
    assert_eq!(
        command,
        Command::Close {
            code: 4001,
            reason: "credential revoked".into(),
            session_id: Some("session-a1".into()),
        }
    );
    let listed = app
        .get_ok("/api/v1/internal/organizations/org-a/enrollment-tokens?include_revoked=true")
        .await;
    assert!(listed["data"]["items"][0]["revoked_at"].is_string());
    assert!(!listed.to_string().contains(&secret));
    app.stop().await;
}

#[tokio::test]
async fn the_configured_superadmin_is_created_once_and_its_password_follows_the_environment() {
    // The reset is made beside this process (as another replica's start would make it), so
    // remembered callers are off here; how long they last is tested in `auth.rs`.
    let app = spawn_app_with(|s| s.api_auth_cache_ms = 0, |s| s).await;
    let store: &dyn Store = app.store.as_ref();
    let name = app.admin_username.clone();
    // Same password: nothing changes, the session stays.
    moolai_api::startup::seed_superadmin(store, &name, &app.admin_password)
        .await
        .unwrap();
    app.get_ok("/api/v1/internal/auth/me").await;
    // Another password (an operator changed MOOLAI_ADMIN_PASSWORD): reset, sessions end.
    let new_password = random_secret("pw");
    moolai_api::startup::seed_superadmin(store, &name, &new_password)
        .await
        .unwrap();
    let response = app.get("/api/v1/internal/auth/me").send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        app.login(&name, &app.admin_password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(&name, &new_password).await.status(),
        StatusCode::OK
    );
    let users = store.list_users(1, 10).await.unwrap();
    assert_eq!(users.total, 1);
    assert_eq!(users.items[0].role, moolai_store::Role::Superadmin);
    app.stop().await;
}

#[tokio::test]
async fn an_open_event_stream_ends_when_its_user_is_disabled() {
    let app = spawn_app().await;
    app.organization("org-a").await;
    let token = app.user_token("watcher", "viewer", &["org-a"]).await;
    let response = app
        .with_token(Method::GET, "/api/v1/controller/events", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(DEADLINE, body.next())
        .await
        .expect("the stream opens")
        .expect("a chunk")
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("connected"));

    let response = app
        .put("/api/v1/internal/users/watcher")
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let within = moolai_api::routes::events::CREDENTIAL_RECHECK + Duration::from_secs(5);
    let ended = tokio::time::timeout(within, async {
        // Keep-alive comments may arrive first; the stream must then end.
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its user's session");
    app.stop().await;
}
