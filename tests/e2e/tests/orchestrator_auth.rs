//! Orchestrator authentication end to end (the three services as processes, two edges,
//! `ORCHESTRATOR_AUTH=token`, the default): sockets without a token, with a wrong one, with
//! another organization's, and with one revoked mid-session are refused or closed with the
//! right close code, while the legitimate orchestrator is unaffected.

use std::time::{Duration, Instant};

use moolai_e2e::client::{
    TestSocket, connect_and_hello, connect_and_hello_with, handshake, register, with_token,
};
use moolai_e2e::scenario::Api;
use moolai_e2e::{Stack, StackOptions};
use reqwest::Method;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

/// Says hello and expects the refusal: an `error` frame first (never a `handshake_ack`),
/// then close 1008 with `hello rejected: <code>`.
async fn refused(url: &str, hello: &Value, bearer: Option<&str>, code: &str) {
    let mut socket = TestSocket::connect_with(url, bearer)
        .await
        .expect("connect");
    socket.send(hello).await.expect("send hello");
    let first = socket.next(T).await.expect("a frame");
    assert_eq!(first["type"], "error", "first frame: {first}");
    assert_eq!(first["code"], code, "{first}");
    let closed = socket.expect_close(T).await.expect("closed");
    assert_eq!(closed.code, 1008, "{closed:?}");
    assert_eq!(closed.reason, format!("hello rejected: {code}"));
}

async fn still_served(socket: &mut TestSocket) {
    socket
        .send(&json!({"type": "keepalive"}))
        .await
        .expect("send");
    socket
        .expect("keepalive_ack", T)
        .await
        .expect("the legitimate orchestrator is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_without_valid_credentials_are_refused_and_revocation_closes_them() {
    let stack = Stack::start(StackOptions {
        edges: 2,
        states: 1,
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let result = tokio::spawn(scenario(
        stack.api_url(),
        stack.login().await.expect("login"),
        [stack.edge_url(0, "/ws"), stack.edge_url(1, "/")],
    ))
    .await;
    if let Err(e) = result {
        let logs = stack.logs();
        stack.shutdown().await;
        panic!("scenario failed: {e}\n{logs}");
    }
    let edge_log = stack.edges[0].0.log_text();
    let state_log = stack.states[0].log_text();
    stack.shutdown().await;
    // No token ever reaches a log.
    for log in [&edge_log, &state_log] {
        assert!(!log.contains("moo_enr_"), "a token in the logs:\n{log}");
        assert!(!log.contains("moo_orc_"), "a token in the logs:\n{log}");
    }
}

async fn scenario(api_url: String, admin_token: String, edges: [String; 2]) {
    let api = Api {
        base: api_url,
        token: admin_token,
        http: reqwest::Client::new(),
    };
    let alpha = api.enrollment_token("org-alpha").await;
    let bravo = api.enrollment_token("org-bravo").await;

    // The legitimate orchestrator of org-alpha, on edge 0.
    let (mut legit, provisioning) = connect_and_hello_with(
        &edges[0],
        &register("orch-legit", "org-alpha"),
        Some(&alpha),
        T,
    )
    .await
    .expect("legitimate hello");
    assert_eq!(provisioning["data"]["organization_id"], "org-alpha");

    // No token (either dialect): refused before any acknowledgement.
    refused(&edges[1], &handshake("orch-legit"), None, "unauthorized").await;
    refused(
        &edges[0],
        &register("orch-new", "org-alpha"),
        None,
        "unauthorized",
    )
    .await;
    // A wrong token, in the header or in the hello.
    let wrong = format!("moo_enr_{}", "0f".repeat(32));
    refused(
        &edges[1],
        &handshake("orch-legit"),
        Some(&wrong),
        "unauthorized",
    )
    .await;
    refused(
        &edges[1],
        &with_token(handshake("orch-legit"), "not-a-token"),
        None,
        "unauthorized",
    )
    .await;
    // Another organization's token cannot claim org-alpha's orchestrator, nor name org-alpha.
    refused(
        &edges[1],
        &handshake("orch-legit"),
        Some(&bravo),
        "organization_mismatch",
    )
    .await;
    refused(
        &edges[1],
        &register("orch-new", "org-alpha"),
        Some(&bravo),
        "organization_mismatch",
    )
    .await;
    still_served(&mut legit).await;
    let record = api.orchestrator("orch-legit").await;
    assert_eq!(record["organization_id"], "org-alpha");
    assert_eq!(record["connected"], true);
    assert!(
        api.get("/api/v1/controller/orchestrators?organization_id=org-bravo")
            .await["data"]["total"]
            == 0,
        "a refused hello registered something"
    );

    // A second enrollment token of org-alpha, used by another orchestrator on edge 1, then
    // revoked mid-session: that socket closes with 4001 within a second; the legitimate one
    // (registered with the first token) stays.
    let (status, body) = api
        .send(
            Method::POST,
            "/api/v1/internal/organizations/org-alpha/enrollment-tokens",
            &json!({"name": "to revoke"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let doomed_token = body["token"].as_str().expect("token").to_owned();
    let doomed_id = body["data"]["credential_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (mut doomed, _) = connect_and_hello(
        &edges[1],
        &with_token(handshake("orch-doomed"), &doomed_token),
        T,
    )
    .await
    .expect("doomed hello");
    still_served(&mut doomed).await;
    let started = Instant::now();
    let (status, body) = api
        .send(
            Method::DELETE,
            &format!("/api/v1/internal/enrollment-tokens/{doomed_id}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let closed = doomed.expect_close(T).await.expect("closed");
    assert_eq!(closed.code, 4001, "{closed:?}");
    assert_eq!(closed.reason, "credential revoked");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closed after {:?}",
        started.elapsed()
    );
    still_served(&mut legit).await;
    // The revoked token cannot come back.
    refused(
        &edges[0],
        &handshake("orch-doomed"),
        Some(&doomed_token),
        "unauthorized",
    )
    .await;

    // A per-orchestrator token: once orch-legit has one, only it can claim orch-legit; its
    // revocation closes orch-legit's socket in turn.
    let (status, body) = api
        .send(
            Method::POST,
            "/api/v1/internal/orchestrators/orch-legit/tokens",
            &json!({"name": "own"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let own = body["token"].as_str().expect("token").to_owned();
    assert!(own.starts_with("moo_orc_"));
    let own_id = body["data"]["credential_id"]
        .as_str()
        .expect("id")
        .to_owned();
    refused(
        &edges[1],
        &handshake("orch-legit"),
        Some(&alpha),
        "unauthorized",
    )
    .await;
    refused(&edges[1], &handshake("orch-other"), Some(&own), "forbidden").await;
    let (mut own_socket, _) =
        connect_and_hello_with(&edges[1], &handshake("orch-legit"), Some(&own), T)
            .await
            .expect("hello with its own token");
    let replaced = legit.expect_close(T).await.expect("old socket replaced");
    assert_eq!(replaced.code, 4000);
    still_served(&mut own_socket).await;
    let (status, _) = api
        .send(
            Method::DELETE,
            &format!("/api/v1/internal/orchestrator-tokens/{own_id}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let closed = own_socket.expect_close(T).await.expect("closed");
    assert_eq!(closed.code, 4001);

    // Every registration and revocation is in the audit log.
    let audit = api
        .get("/api/v1/controller/logs?organization_id=org-alpha&page_size=100")
        .await;
    let actions: Vec<&str> = audit["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    for action in [
        "orchestrator.register",
        "credential.create",
        "credential.revoke",
    ] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
}
