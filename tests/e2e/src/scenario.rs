//! The fleet scenario of the end-to-end tests, shared by the process topology (three
//! services, two edges) and the single binary: orchestrators of both dialects, an operator over
//! HTTP and, when the bus is NATS, an outside system subscribed to the public subjects.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::client::{
    TestSocket, connect_and_hello, connect_and_hello_with, handshake, register, with_token,
};
use crate::{nats_url, wait_until};

const T: Duration = Duration::from_secs(10);

pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        let status = r.status();
        let body: Value = r.json().await.expect("json body");
        assert!(status.is_success(), "GET {path} -> {status}: {body}");
        body
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    pub async fn orchestrator(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/controller/orchestrators/{id}"))
            .await["data"]
            .clone()
    }

    pub async fn status_of(&self, id: &str) -> String {
        self.orchestrator(id).await["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Creates the organization (when missing) and an enrollment token for it; returns the
    /// token, which an orchestrator presents to register in that organization.
    pub async fn enrollment_token(&self, organization_id: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/controller/organizations",
                &json!({"organization_id": organization_id, "name": organization_id}),
            )
            .await;
        assert!(
            status == 201 || status == 409,
            "create {organization_id}: {body}"
        );
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/internal/organizations/{organization_id}/enrollment-tokens"),
                &json!({"name": "e2e"}),
            )
            .await;
        assert_eq!(status, 201, "enrollment token: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn wait_status(&self, id: &str, want: &str, timeout: Duration) {
        let result = wait_until(timeout, &format!("{id} to be {want}"), || async {
            self.status_of(id).await == want
        })
        .await;
        if let Err(e) = result {
            panic!("{e}; last seen {}", self.orchestrator(id).await);
        }
    }
}

async fn heartbeat(s: &mut TestSocket, id: Option<&str>) {
    let frame = match id {
        Some(id) => json!({"type": "i_am_alive", "orchestrator_id": id}),
        None => json!({"type": "i_am_alive", "timestamp": "2026-11-27T10:00:30Z"}),
    };
    s.send(&frame).await.expect("heartbeat");
}

/// Runs the whole scenario; `nats_prefix` enables the outside-subscriber checks. The TTL of
/// the controller under test must be 3 s, its flush and sweep intervals short.
///
/// # Panics
/// On the first expectation that does not hold.
pub async fn fleet_scenario(
    api_url: String,
    token: String,
    nats_prefix: Option<String>,
    edges: [String; 2],
) {
    let api = Api {
        base: api_url,
        token,
        http: reqwest::Client::new(),
    };

    // An outside system watching the public subjects (when the bus is NATS).
    let mut outside = match &nats_prefix {
        Some(prefix) => {
            let client = async_nats::connect(nats_url()).await.expect("nats");
            let beats = client
                .subscribe(format!("{prefix}.v1.*.*.heartbeat"))
                .await
                .expect("sub");
            let statuses = client
                .subscribe(format!("{prefix}.v1.*.*.status"))
                .await
                .expect("sub");
            client.flush().await.expect("flush");
            Some((client, beats, statuses))
        }
        None => None,
    };
    // The dashboard's live stream, read as a browser would.
    let live = LiveEvents::subscribe(&api).await;

    // Orchestrators enroll with a token of their organization: in the upgrade's
    // Authorization header (orch-a) or in the hello (orch-b, a deployed client that cannot set
    // headers; its hello names no organization, the token decides).
    let e2e_token = api.enrollment_token("org-e2e").await;
    let default_token = api.enrollment_token("default").await;

    // HLD dialect on edge 0 at /ws; deployed dialect on edge 1 at /.
    let (mut a, prov_a) = connect_and_hello_with(
        &edges[0],
        &register("orch-a", "org-e2e"),
        Some(&e2e_token),
        T,
    )
    .await
    .expect("hello a");
    assert_eq!(prov_a["data"]["orchestrator_id"], "orch-a");
    assert_eq!(prov_a["data"]["organization_id"], "org-e2e");
    assert_eq!(prov_a["data"]["is_independent"], false);
    let (mut b, prov_b) = connect_and_hello(
        &edges[1],
        &with_token(handshake("orch-b"), &default_token),
        T,
    )
    .await
    .expect("hello b");
    assert_eq!(prov_b["data"]["orchestrator_id"], "orch-b");
    assert_eq!(prov_b["data"]["organization_id"], "default");
    assert!(
        !prov_b.to_string().contains(&default_token),
        "the token is not echoed"
    );
    assert_eq!(prov_b["data"]["features"]["cache"], true);

    // Heartbeats make both active in the listing.
    heartbeat(&mut a, Some("orch-a")).await;
    heartbeat(&mut b, None).await;
    api.wait_status("orch-a", "active", T).await;
    api.wait_status("orch-b", "active", T).await;
    let list = api
        .get("/api/v1/controller/orchestrators?page=1&page_size=50")
        .await;
    assert_eq!(list["success"], true);
    assert_eq!(list["data"]["total"], 2);
    let ids: Vec<&str> = list["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["orchestrator_id"].as_str().unwrap_or(""))
        .collect();
    assert!(
        ids.contains(&"orch-a") && ids.contains(&"orch-b"),
        "{ids:?}"
    );
    assert_eq!(api.orchestrator("orch-b").await["name"], "orch-b gateway");

    // The outside subscriber saw a heartbeat with org and orchestrator in subject and payload.
    if let Some((_, beats, _)) = outside.as_mut() {
        let hb = tokio::time::timeout(T, beats.next())
            .await
            .expect("heartbeat event")
            .expect("message");
        let hb_json: Value = serde_json::from_slice(&hb.payload).expect("json");
        assert!(hb.subject.as_str().ends_with(&format!(
            "{}.{}.heartbeat",
            hb_json["organization_id"].as_str().expect("org"),
            hb_json["orchestrator_id"].as_str().expect("id")
        )));
    }

    // Keepalive, request_status, unknown types and garbage on a registered socket.
    b.send(&json!({"type": "keepalive", "timestamp": "x"}))
        .await
        .expect("send");
    b.expect("keepalive_ack", T).await.expect("keepalive_ack");
    a.send(&json!({"type": "request_status", "orchestrator_id": "orch-a"}))
        .await
        .expect("send");
    let st = a.expect("status", T).await.expect("status");
    assert_eq!(st["data"]["status"], "active");
    a.send(&json!({"type": "telemetry_v9", "x": 1}))
        .await
        .expect("send");
    let err = a.expect("error", T).await.expect("error frame");
    assert_eq!(err["code"], "unknown_type");
    a.send(&json!({"type": "i_am_alive", "orchestrator_id": "orch-b"}))
        .await
        .expect("send");
    let err = a.expect("error", T).await.expect("mismatch");
    assert_eq!(err["code"], "orchestrator_mismatch");

    // Metadata, config snapshot and usage frames are stored and acknowledged.
    b.send(&json!({"type": "update_metadata", "metadata": {"version": "1.4.3"}}))
        .await
        .expect("send");
    b.expect("ack", T).await.expect("metadata ack");
    b.send(&json!({"type": "o_config_snapshot", "data": {"cache": {"ttl": 300}}}))
        .await
        .expect("send");
    b.expect("ack", T).await.expect("snapshot ack");
    b.send(&json!({"type": "usage", "usage": [{"model": "gpt-4o", "requests": 4, "input_tokens": 100, "output_tokens": 50, "cost": 0.5}]})).await.expect("send");
    b.expect("ack", T).await.expect("usage ack");
    heartbeat(&mut a, Some("orch-a")).await;
    a.send(&json!({"type": "i_am_alive", "orchestrator_id": "orch-a", "usage": {"model": "claude", "requests": 1, "cost": 0.25}})).await.expect("send");
    let orch_b = api.orchestrator("orch-b").await;
    assert_eq!(orch_b["metadata"]["version"], "1.4.3");
    assert_eq!(orch_b["config_snapshot"]["cache"]["ttl"], 300);
    wait_until(T, "costs to include both reports", || async {
        let c = api.get("/api/v1/controller/costs").await;
        (c["data"]["totals"]["cost"].as_f64().unwrap_or(0.0) - 0.75).abs() < 1e-9
    })
    .await
    .expect("costs");
    let costs = api.get("/api/v1/controller/costs").await;
    assert_eq!(costs["data"]["totals"]["requests"], 5);

    // Independence on: stop_monitoring reaches the socket on the other edge, status follows,
    // heartbeats no longer move last_seen.
    let (code, body) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/internal/orchestrators/orch-b/independence",
            &json!({"is_independent": true}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["is_independent"], true);
    let stop = b
        .expect("stop_monitoring", T)
        .await
        .expect("stop_monitoring");
    assert_eq!(stop["orchestrator_id"], "orch-b");
    assert_eq!(api.status_of("orch-b").await, "independent");
    let frozen = api.orchestrator("orch-b").await["last_seen"].clone();
    for _ in 0..3 {
        heartbeat(&mut b, None).await;
    }
    // A heartbeat from another socket is flushed after b's: once it lands, b's have too.
    heartbeat(&mut a, Some("orch-a")).await;
    let a_before = api.orchestrator("orch-a").await["last_seen"].clone();
    wait_until(T, "orch-a's heartbeat to land", || async {
        api.orchestrator("orch-a").await["last_seen"] != a_before
    })
    .await
    .ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        api.orchestrator("orch-b").await["last_seen"],
        frozen,
        "a heartbeat moved last_seen while independent"
    );

    // Independence off: resume_monitoring, and the next heartbeat makes it active again.
    let (code, _) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/internal/orchestrators/orch-b/independence",
            &json!({"is_independent": false}),
        )
        .await;
    assert_eq!(code, 200);
    b.expect("resume_monitoring", T)
        .await
        .expect("resume_monitoring");
    heartbeat(&mut b, None).await;
    wait_until(T, "orch-b's heartbeat to move last_seen again", || async {
        api.orchestrator("orch-b").await["last_seen"] != frozen
    })
    .await
    .expect("heartbeats processed again");
    assert_eq!(api.status_of("orch-b").await, "active");

    // A message about orch-a: created, listed, accepted, delivered over its socket.
    let (code, created) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/internal/orchestrators/orch-a/messages",
            &json!({"message_type": "recommendation", "content": "Enable the semantic cache"}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let message_id = created["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();
    let listed = api
        .get("/api/v1/internal/messages?status=pending&orchestrator_id=orch-a")
        .await;
    assert!(
        listed["data"]
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m["id"] == message_id.as_str())
    );
    let (code, body) = api
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/internal/messages/{message_id}/status"),
            &json!({"status": "accepted"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let delivered = a.expect("message", T).await.expect("message frame");
    assert_eq!(delivered["data"]["id"], message_id.as_str());
    assert_eq!(delivered["data"]["content"], "Enable the semantic cache");
    wait_until(T, "the delivery to be recorded", || async {
        let l = api
            .get("/api/v1/internal/messages?orchestrator_id=orch-a")
            .await;
        l["data"].as_array().is_some_and(|v| {
            v.iter()
                .any(|m| m["id"] == message_id.as_str() && !m["delivered_at"].is_null())
        })
    })
    .await
    .expect("delivered_at");

    // A second connection for orch-a on the other edge replaces the first cleanly.
    let (mut a2, _) = connect_and_hello_with(&edges[1], &handshake("orch-a"), Some(&e2e_token), T)
        .await
        .expect("hello a2");
    let closed = a.expect_close(T).await.expect("old socket closed");
    assert_eq!(closed.code, 4000, "{closed:?}");
    heartbeat(&mut a2, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let orch_a = api.orchestrator("orch-a").await;
    assert_eq!(
        orch_a["status"], "active",
        "the replaced socket's cleanup marked the new one inactive: {orch_a}"
    );
    assert_eq!(orch_a["connected"], true);

    // Explicit disconnect: inactive at once, without waiting for the TTL.
    b.close().await;
    api.wait_status("orch-b", "inactive", Duration::from_secs(2))
        .await;

    // TTL expiry: a2 stops heartbeating but keeps its socket; inactive after the 3 s TTL.
    api.wait_status("orch-a", "inactive", Duration::from_secs(8))
        .await;

    // The outside subscriber and the dashboard's live stream saw the transitions, with reasons.
    let wanted = [
        "orch-b:independent:independence_on",
        "orch-b:inactive:disconnected",
        "orch-a:inactive:ttl_expired",
    ];
    // The sweep (every second) publishes the TTL transition some time after the status is
    // derived inactive: wait for the events with a deadline, not for a quiet spell.
    if let Some((_, _, statuses)) = outside.as_mut() {
        let mut reasons = Vec::new();
        let deadline = tokio::time::Instant::now() + T;
        while !wanted.iter().all(|w| reasons.iter().any(|r| r == w)) {
            match tokio::time::timeout_at(deadline, statuses.next()).await {
                Ok(Some(m)) => {
                    let v: Value = serde_json::from_slice(&m.payload).expect("json");
                    reasons.push(status_key(&v));
                }
                _ => break,
            }
        }
        for want in wanted {
            assert!(
                reasons.iter().any(|r| r == want),
                "missing status event {want} on NATS in {reasons:?}"
            );
        }
    }
    let streamed = live.collected_until(&wanted, T).await;
    for want in wanted {
        assert!(
            streamed.iter().any(|r| r == want),
            "missing status event {want} in the SSE stream: {streamed:?}"
        );
    }
    a2.close().await;
}

fn status_key(v: &Value) -> String {
    format!(
        "{}:{}:{}",
        v["orchestrator_id"].as_str().unwrap_or(""),
        v["status"].as_str().unwrap_or(""),
        v["reason"].as_str().unwrap_or("")
    )
}

/// Reads `/api/v1/controller/events` in the background and keeps every status event.
struct LiveEvents {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveEvents {
    async fn subscribe(api: &Api) -> Self {
        let response = api
            .http
            .get(format!(
                "{}/api/v1/controller/events?access_token={}",
                api.base, api.token
            ))
            .send()
            .await
            .expect("SSE request");
        assert!(response.status().is_success(), "SSE: {}", response.status());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    if !event.lines().any(|l| l == "event: status") {
                        continue;
                    }
                    let data: String = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    if let Ok(v) = serde_json::from_str::<Value>(&data) {
                        sink.lock().expect("lock").push(status_key(&v));
                    }
                }
            }
        });
        Self { seen, task }
    }

    /// What was seen once every `wanted` event arrived, or at the deadline.
    async fn collected_until(self, wanted: &[&str], within: Duration) -> Vec<String> {
        let seen = self.seen.clone();
        let _ = wait_until(within, "the live events", || {
            let seen = seen.clone();
            async move {
                let seen = seen.lock().expect("lock");
                wanted.iter().all(|w| seen.iter().any(|s| s == w))
            }
        })
        .await;
        self.task.abort();
        self.seen.lock().expect("lock").clone()
    }
}
