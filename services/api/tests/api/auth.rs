//! Login, sessions, the dev token and rejection of everything else.

use chrono::Utc;
use moolai_store::{AuditQuery, NewSession, Store};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

async fn login_audit(app: &crate::helpers::TestApp) -> Vec<moolai_store::AuditRecord> {
    app.store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 100,
            action: Some("auth.login".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn login_returns_a_session_token_that_authenticates_until_logout() {
    let app = spawn_app().await;
    let response = app.login(&app.admin_username, &app.admin_password).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Login successful");
    assert_eq!(body["user"]["username"], app.admin_username.as_str());
    assert_eq!(body["user"]["role"], "superadmin");
    let token = body["user"]["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let expires: chrono::DateTime<Utc> =
        serde_json::from_value(body["user"]["expires_at"].clone()).unwrap();
    let ttl = expires - Utc::now();
    assert!(ttl > chrono::Duration::seconds(43_100) && ttl <= chrono::Duration::seconds(43_200));

    let me: Value = app
        .client
        .get(app.url("/api/v1/internal/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["username"], app.admin_username.as_str());
    assert_eq!(me["data"]["role"], "superadmin");
    assert_eq!(me["data"]["auth"], "session");

    // The operator user exists (ensure_user at start) and both logins were audited.
    let overview = app.get_ok("/api/v1/controller/overview").await;
    assert_eq!(overview["data"]["total_users"], 1);
    let audit = login_audit(&app).await;
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|a| a.success));
    assert_eq!(audit[0].actor, format!("user:{}", app.admin_username));
    assert_eq!(audit[0].client_addr.as_deref(), Some("127.0.0.1"));

    let response = app
        .client
        .post(app.url("/api/v1/internal/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Logged out");
    let response = app
        .client
        .get(app.url("/api/v1/internal/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // The other session is untouched.
    let me = app.get_ok("/api/v1/internal/auth/me").await;
    assert_eq!(me["data"]["auth"], "session");
    app.stop().await;
}

/// A session ended where this process cannot see it (another api replica, or the database
/// directly) stops working here within `API_AUTH_CACHE_MS`.
#[tokio::test]
async fn a_session_ended_elsewhere_stops_working_within_the_auth_cache_ttl() {
    let app = spawn_app_with(|s| s.api_auth_cache_ms = 300, |s| s).await;
    let response = app.login(&app.admin_username, &app.admin_password).await;
    let body: Value = response.json().await.unwrap();
    let token = body["user"]["token"].as_str().unwrap().to_owned();
    let me = |token: String| {
        let request = app
            .client
            .get(app.url("/api/v1/internal/auth/me"))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(me(token.clone()).await, StatusCode::OK);

    app.store
        .delete_session(&moolai_api::auth::hash_token(&token))
        .await
        .unwrap();
    let deleted = std::time::Instant::now();
    while me(token.clone()).await == StatusCode::OK {
        assert!(
            deleted.elapsed() < std::time::Duration::from_secs(5),
            "the deleted session still authenticates"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(me(token).await, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn wrong_credentials_get_401_in_the_error_shape_and_are_audited() {
    let app = spawn_app().await;
    let wrong_password = app.login(&app.admin_username, "not-the-password").await;
    assert!(wrong_password.headers().contains_key("www-authenticate"));
    let m1 = assert_error(wrong_password, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let wrong_user = app.login("someone-else", &app.admin_password).await;
    let m2 = assert_error(wrong_user, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Same answer whichever half was wrong.
    assert_eq!(m1, m2);
    assert_eq!(m1, "invalid username or password");

    let failures: Vec<_> = login_audit(&app)
        .await
        .into_iter()
        .filter(|a| !a.success)
        .collect();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].details["username"], "someone-else");
    assert_eq!(failures[1].details["username"], app.admin_username.as_str());
    assert!(failures.iter().all(|a| a.actor == "anonymous"));
    // The password never reaches the audit log.
    for f in &failures {
        assert!(!f.details.to_string().contains(&app.admin_password));
    }
    app.stop().await;
}

#[tokio::test]
async fn without_a_configured_credential_nobody_logs_in_until_a_user_exists() {
    let app = spawn_app_with(
        |s| {
            s.moolai_admin_username = None;
            s.moolai_admin_password = None;
        },
        |s| s,
    )
    .await;
    let response = app.login("admin", "admin-password").await;
    let message = assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(message, "invalid username or password");
    let overview = app.get_ok("/api/v1/controller/overview").await;
    assert_eq!(overview["data"]["total_users"], 0);
    // A user created through the API (here with the dev token) can.
    let token = app.user_token("first-admin", "superadmin", &[]).await;
    let me: Value = app
        .with_token(reqwest::Method::GET, "/api/v1/internal/auth/me", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["username"], "first-admin");
    assert_eq!(me["data"]["role"], "superadmin");
    app.stop().await;
}

#[tokio::test]
async fn the_dev_token_authenticates_as_token_dev() {
    let app = spawn_app().await;
    let me: Value = app
        .client
        .get(app.url("/api/v1/internal/auth/me"))
        .bearer_auth(&app.dev_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["auth"], "dev_token");
    assert_eq!(me["data"]["role"], "superadmin");
    assert_eq!(me["data"]["expires_at"], Value::Null);

    // Audited writes name the dev token as the actor.
    let response = app
        .client
        .post(app.url("/api/v1/controller/organizations"))
        .bearer_auth(&app.dev_token)
        .json(&serde_json::json!({"organization_id": "org-dev", "name": "Dev org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let logs = app
        .get_ok("/api/v1/controller/logs?action=organization.create")
        .await;
    assert_eq!(logs["data"]["total"], 1);
    assert_eq!(logs["data"]["items"][0]["actor"], "token:dev");
    assert_eq!(logs["data"]["items"][0]["target"], "organization:org-dev");
    app.stop().await;
}

#[tokio::test]
async fn bad_expired_and_malformed_credentials_are_refused() {
    let app = spawn_app().await;
    // An expired session in the store: its token must not work.
    let expired = "ab".repeat(32);
    app.store
        .create_session(&NewSession {
            token_hash: moolai_api::auth::hash_token(&expired),
            username: app.admin_username.clone(),
            role: "superadmin".into(),
            expires_at: Utc::now() - chrono::Duration::seconds(1),
            client_addr: None,
        })
        .await
        .unwrap();
    let path = "/api/v1/controller/overview";
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("expired session", Some(format!("Bearer {expired}"))),
        (
            "unknown session",
            Some(format!("Bearer {}", "cd".repeat(32))),
        ),
        ("wrong scheme", Some(format!("Basic {}", app.token))),
        ("no token", Some("Bearer ".into())),
        (
            "dev token prefix",
            Some(format!("Bearer {}", &app.dev_token[..10])),
        ),
        (
            "garbage",
            Some("Bearer '; DROP TABLE login_sessions; --".into()),
        ),
    ];
    for (name, header) in cases {
        let mut request = app.client.get(app.url(path));
        if let Some(h) = header {
            request = request.header("Authorization", h);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // The scheme is case-insensitive.
    let response = app
        .client
        .get(app.url(path))
        .header("Authorization", format!("bearer {}", app.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // access_token in the query is only for the event stream.
    let response = app
        .client
        .get(app.url(&format!("{path}?access_token={}", app.token)))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    app.stop().await;
}
