//! The client against the real services (two edges, state, api; PostgreSQL and NATS of this
//! machine). Needs the service binaries: `cargo build --workspace --bins` first.

use std::time::Duration;

use moolai_client::{Client, ClientConfig, ClientEvent, ClientHandle, Dialect};
use moolai_e2e::{Stack, StackOptions, wait_until};
use serde_json::{Value, json};
use tokio::sync::broadcast;

const T: Duration = Duration::from_secs(15);

async fn wait_event(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => panic!("timed out waiting for {what}"),
            Ok(Err(e)) => panic!("event stream failed while waiting for {what}: {e}"),
            Ok(Ok(event)) if pred(&event) => return event,
            Ok(Ok(_)) => {}
        }
    }
}

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn orchestrator(&self, id: &str) -> Value {
        let response = self
            .http
            .get(format!(
                "{}/api/v1/controller/orchestrators/{id}",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET orchestrator");
        let body: Value = response.json().await.expect("json");
        body["data"].clone()
    }

    async fn wait_status(&self, id: &str, want: &str) {
        let result = wait_until(T, &format!("{id} to be {want}"), || async {
            self.orchestrator(id).await["status"] == want
        })
        .await;
        if let Err(e) = result {
            panic!("{e}; last seen {}", self.orchestrator(id).await);
        }
    }

    async fn set_independence(&self, id: &str, on: bool) {
        let response = self
            .http
            .put(format!(
                "{}/api/v1/internal/orchestrators/{id}/independence",
                self.base
            ))
            .bearer_auth(&self.token)
            .json(&json!({"is_independent": on}))
            .send()
            .await
            .expect("PUT independence");
        assert!(response.status().is_success(), "{}", response.status());
    }
}

fn spawn(url: String, id: &str, dialect: Dialect, token: &str) -> ClientHandle {
    let mut config = ClientConfig::new(url, id, dialect);
    config.organization_id = Some("org-client-e2e".into());
    config.auth_token = Some(token.to_owned().into());
    config.metadata =
        json!({"name": format!("{id} gateway"), "location": "test", "version": "1.0.0"})
            .as_object()
            .cloned()
            .expect("object");
    // The services may still be settling: retry fast.
    config.backoff.initial = Duration::from_millis(200);
    config.backoff.max = Duration::from_secs(1);
    Client::spawn(config).expect("spawn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dialects_against_the_real_controller() {
    let stack = Stack::start(StackOptions {
        edges: 2,
        states: 1,
        heartbeat_ttl_sec: 120,
        extra: Vec::new(),
    })
    .await
    .expect("stack");
    let api = Api {
        base: stack.api_url(),
        token: stack.login().await.expect("login"),
        http: reqwest::Client::new(),
    };
    let result = tokio::spawn(scenario(
        api,
        stack.edge_url(0, "/ws"),
        stack.edge_url(1, "/"),
    ))
    .await;
    if let Err(e) = result {
        let logs = stack.logs();
        stack.shutdown().await;
        panic!("scenario failed: {e}\n{logs}");
    }
    stack.shutdown().await;
}

async fn scenario(api: Api, edge0: String, edge1: String) {
    // Orchestrators enroll with a token of their organization.
    let enrollment = moolai_e2e::scenario::Api {
        base: api.base.clone(),
        token: api.token.clone(),
        http: api.http.clone(),
    }
    .enrollment_token("org-client-e2e")
    .await;
    let hld = spawn(edge0, "cli-hld", Dialect::Hld, &enrollment);
    let deployed = spawn(edge1, "cli-dep", Dialect::Deployed, &enrollment);
    let mut hld_events = hld.events();
    let mut dep_events = deployed.events();
    for (events, id) in [(&mut hld_events, "cli-hld"), (&mut dep_events, "cli-dep")] {
        let connected = wait_event(events, "Connected", |e| {
            matches!(e, ClientEvent::Connected { .. })
        })
        .await;
        let ClientEvent::Connected {
            session_id,
            provisioning,
            ..
        } = connected
        else {
            unreachable!()
        };
        assert!(session_id.is_some());
        assert_eq!(provisioning.orchestrator_id, id);
        assert_eq!(provisioning.organization_id, "org-client-e2e");
        assert!(!provisioning.is_independent);
    }
    // The stack asks for 1 s heartbeats in handshake_ack.
    assert_eq!(hld.state().heartbeat_interval, Some(Duration::from_secs(1)));
    api.wait_status("cli-hld", "active").await;
    api.wait_status("cli-dep", "active").await;
    assert_eq!(api.orchestrator("cli-dep").await["name"], "cli-dep gateway");

    // Frames through the handle are stored and acknowledged; status round-trips.
    deployed
        .send_message("monitoring", "client e2e notice")
        .await
        .expect("message");
    let ack = wait_event(&mut dep_events, "Ack", |e| {
        matches!(e, ClientEvent::Ack { .. })
    })
    .await;
    assert!(matches!(ack, ClientEvent::Ack { ack_type, .. } if ack_type == "message"));
    let status = hld.request_status().await.expect("status");
    assert_eq!(status.status, "active");

    // Independence on: stop_monitoring reaches the client, which stops heartbeating.
    api.set_independence("cli-dep", true).await;
    wait_event(&mut dep_events, "Independence(true)", |e| {
        *e == ClientEvent::Independence(true)
    })
    .await;
    assert!(deployed.state().independent);
    api.wait_status("cli-dep", "independent").await;
    let before = deployed.state().heartbeats_sent;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        deployed.state().heartbeats_sent,
        before,
        "heartbeats continued while independent"
    );
    // The other one kept beating (1 s interval).
    let hld_beats = hld.state().heartbeats_sent;
    assert!(hld_beats >= 3, "{hld_beats}");

    // Independence off: resume_monitoring, heartbeats again, active again.
    api.set_independence("cli-dep", false).await;
    wait_event(&mut dep_events, "Independence(false)", |e| {
        *e == ClientEvent::Independence(false)
    })
    .await;
    api.wait_status("cli-dep", "active").await;
    wait_until(T, "heartbeats to resume", || async {
        deployed.state().heartbeats_sent > before
    })
    .await
    .expect("resumed");

    // A clean shutdown is an explicit disconnect: inactive at once.
    deployed.shutdown().await;
    api.wait_status("cli-dep", "inactive").await;
    hld.shutdown().await;
}
