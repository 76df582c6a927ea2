//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the services export spans over OTLP/HTTP, and the
//! trace context carried in NATS headers makes the edge's socket span and state's hello span
//! one trace.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use moolai_e2e::client::{connect_and_hello, register};
use moolai_e2e::{Stack, StackOptions, free_port, wait_until};
use serde_json::Value;

type Spans = Arc<Mutex<Vec<(String, String, String)>>>;

/// (service, trace id, span name) of every span in an OTLP/JSON export body.
fn spans_of(body: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rs in body["resourceSpans"].as_array().into_iter().flatten() {
        let service = rs["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_owned();
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for span in ss["spans"].as_array().into_iter().flatten() {
                out.push((
                    service.clone(),
                    span["traceId"].as_str().unwrap_or_default().to_owned(),
                    span["name"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_edge_and_state() {
    let spans: Spans = Arc::default();
    let sink = spans.clone();
    let collector = Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    sink.lock().expect("lock").extend(spans_of(&v));
                }
                "{}"
            }
        }),
    );
    let port = free_port().expect("port");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let stack = Stack::start(StackOptions {
        edges: 1,
        states: 1,
        extra: vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/json".into()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
            // About traces, not credentials: the orchestrator connects without a token.
            ("ORCHESTRATOR_AUTH".into(), "open".into()),
        ],
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let (socket, _) = connect_and_hello(
        &stack.edge_url(0, "/ws"),
        &register("traced", "org-t"),
        Duration::from_secs(10),
    )
    .await
    .expect("hello");
    let shared = wait_until(
        Duration::from_secs(20),
        "edge and state spans in one trace",
        || {
            let spans = spans.clone();
            async move {
                let spans = spans.lock().expect("lock");
                let mut by_service: HashMap<&str, HashSet<&str>> = HashMap::new();
                for (service, trace, _) in spans.iter() {
                    by_service.entry(service).or_default().insert(trace);
                }
                match (
                    by_service.get("moolai-ws-edge"),
                    by_service.get("moolai-state"),
                ) {
                    (Some(edge), Some(state)) => !edge.is_disjoint(state),
                    _ => false,
                }
            }
        },
    )
    .await;
    let seen = spans.lock().expect("lock").clone();
    let logs = stack.logs();
    drop(socket);
    stack.shutdown().await;
    shared.unwrap_or_else(|e| panic!("{e}; spans: {seen:?}\n{logs}"));
    // edge → state → database: the hello's trace holds the edge's commit request, state's
    // hello handler, the batch it was registered in and the store's registration.
    let edge_traces: HashSet<&str> = seen
        .iter()
        .filter(|(s, _, n)| s == "moolai-ws-edge" && n == "hello_commit")
        .map(|(_, t, _)| t.as_str())
        .collect();
    for name in ["hello", "hello_batch", "register_hellos"] {
        assert!(
            seen.iter().any(|(s, t, n)| s == "moolai-state"
                && n == name
                && edge_traces.contains(t.as_str())),
            "no state span {name} in the edge's hello trace: {seen:?}"
        );
    }
}
