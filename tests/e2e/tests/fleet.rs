//! The three services as separate processes (two edges), driven by orchestrators of both
//! dialects, an operator over HTTP, and an outside system subscribed to NATS.

use moolai_e2e::scenario::fleet_scenario;
use moolai_e2e::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_end_to_end() {
    let stack = Stack::start(StackOptions {
        edges: 2,
        states: 2,
        heartbeat_ttl_sec: 3,
        extra: Vec::new(),
    })
    .await
    .expect("stack");
    let result = tokio::spawn(fleet_scenario(
        stack.api_url(),
        stack.login().await.expect("login"),
        Some(stack.env.prefix.clone()),
        [stack.edge_url(0, "/ws"), stack.edge_url(1, "/")],
    ))
    .await;
    if result.is_ok() {
        // Each service exposes its own metrics, with the counters the scenario moved.
        let edge = stack.scrape("edge0").await.expect("edge metrics");
        assert!(edge.contains("moolai_edge_hellos_total"), "{edge}");
        assert!(edge.contains("moolai_edge_frames_total"), "{edge}");
        // Heartbeats are counted through a handle the edge takes at start: it must be the
        // installed recorder's, not a no-op one.
        let mut beats = 0.0;
        for edge in ["edge0", "edge1"] {
            let text = stack.scrape(edge).await.expect("edge metrics");
            beats += counter_sum(&text, "moolai_edge_frames_total{type=\"i_am_alive\"}");
        }
        assert!(beats >= 1.0, "no heartbeat frames counted by either edge");
        let mut written = 0.0;
        for state in ["state0", "state1"] {
            let text = stack.scrape(state).await.expect("state metrics");
            written += counter_sum(&text, "moolai_state_heartbeats_written_total");
        }
        assert!(
            written >= 1.0,
            "no heartbeat writes counted by either state replica"
        );
        let api = stack.scrape("api").await.expect("api metrics");
        assert!(api.contains("# TYPE"), "{api}");
    }
    if let Err(e) = result {
        let logs = stack.logs();
        stack.shutdown().await;
        panic!("scenario failed: {e}\n{logs}");
    }
    stack.shutdown().await;
}

/// Sum of the samples in a Prometheus text whose line starts with `prefix`.
fn counter_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}
