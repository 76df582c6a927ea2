//! Whatever an outsider sends gets the JSON error shape with the right status, never axum's
//! plain text, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn malformed_bodies_queries_and_paths_get_the_error_shape() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    let path = "/api/v1/internal/orchestrators/orch-1/messages";

    // Not JSON at all, truncated JSON, JSON of the wrong type.
    for (body, status, code) in [
        ("not json", StatusCode::BAD_REQUEST, "bad_request"),
        (
            "{\"message_type\": \"monitoring\",",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        ("[1, 2, 3]", StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        (
            "{\"message_type\": 7, \"content\": \"x\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        ("null", StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
    ] {
        let response = app
            .post(path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(response, status, code).await;
    }
    // A JSON body without its content type.
    let response = app
        .post(path)
        .body("{\"message_type\":\"monitoring\",\"content\":\"x\"}")
        .send()
        .await
        .unwrap();
    let message = assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    assert!(message.contains("application/json"), "{message}");

    for query in [
        "/api/v1/controller/orchestrators?page=%FF",
        "/api/v1/controller/orchestrators?page=1e3",
        "/api/v1/controller/orchestrators?page=99999999999999999999999",
        "/api/v1/internal/messages?limit=-5",
        "/api/v1/controller/costs?granularity=DAY",
        "/api/v1/controller/costs?from=2026-13-01",
    ] {
        let response = app.get(query).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    for bad_path in [
        "/api/v1/controller/orchestrators/orch%20one",
        "/api/v1/controller/orchestrators/orch.one",
        "/api/v1/controller/organizations/%F0%9F%9A%80",
        "/api/v1/controller/organizations/%FF%FE",
        "/api/v1/internal/orchestrators/a%2Fb/independence",
    ] {
        let response = app.get(bad_path).send().await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let long_id = "x".repeat(129);
    let response = app
        .get(&format!("/api/v1/controller/orchestrators/{long_id}"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_404_and_405() {
    let app = spawn_app().await;
    for path in [
        "/nope",
        "/api/v1/controller/nope",
        "/api/v2/controller/overview",
    ] {
        let response = app.get(path).send().await.unwrap();
        assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let response = app
        .authed(Method::DELETE, "/api/v1/controller/overview")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let response = app
        .authed(
            Method::PATCH,
            "/api/v1/internal/orchestrators/orch-1/independence",
        )
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let response = app
        .client
        .get(app.url("/api/v1/internal/auth/login"))
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = spawn_app_with(|s| s.api_max_body_bytes = 2048, |s| s).await;
    app.hello("org-a", "orch-1").await;
    let response = app
        .post("/api/v1/internal/orchestrators/orch-1/messages")
        .json(&json!({ "message_type": "monitoring", "content": "x".repeat(4096) }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let response = app
        .post("/api/v1/internal/orchestrators/orch-1/messages")
        .json(&json!({ "message_type": "monitoring", "content": "x".repeat(1024) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .client
        .post(app.url("/api/v1/internal/auth/login"))
        .json(&json!({ "username": "u".repeat(4096), "password": "p" }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    app.stop().await;
}

#[tokio::test]
async fn cors_headers_only_for_configured_origins() {
    let app = spawn_app_with(
        |s| s.cors_allowed_origins = Some("https://dash.example, http://localhost:5173".into()),
        |s| s,
    )
    .await;
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/api/v1/controller/overview"))
        .header("Origin", "https://dash.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    assert!(
        !preflight
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    let response = app
        .get("/api/v1/controller/overview")
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    app.stop().await;

    let app = spawn_app().await;
    let response = app
        .get("/api/v1/controller/overview")
        .header("Origin", "https://dash.example")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    app.stop().await;
}
