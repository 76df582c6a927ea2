//! A small fleet against the real services. Needs the service binaries:
//! `cargo build --workspace --bins` first.

use std::time::Duration;

use moolai_e2e::{Stack, StackOptions, wait_until};
use moolai_simulator::{SimDialect, SimOptions, simulate};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const FLEET: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_orchestrators_connect_heartbeat_and_are_listed_active() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let token = stack.login().await.expect("login");
    let api = stack.api_url();
    let enrollment = moolai_e2e::scenario::Api {
        base: api.clone(),
        token: token.clone(),
        http: reqwest::Client::new(),
    }
    .enrollment_token("org-sim")
    .await;
    let cancel = CancellationToken::new();
    let run = tokio::spawn(simulate(SimOptions {
        url: stack.edge_url(0, "/ws"),
        count: FLEET,
        dialect: SimDialect::Mixed,
        id_prefix: "simtest-".into(),
        organization_id: Some("org-sim".into()),
        ramp_up: Duration::from_millis(500),
        max_concurrent_handshakes: 16,
        // A safety net: the test cancels as soon as it has seen what it needs.
        duration: Some(Duration::from_secs(60)),
        report_interval: Duration::from_secs(1),
        cancel: cancel.clone(),
        token: Some(enrollment),
        ..SimOptions::default()
    }));

    let http = reqwest::Client::new();
    let active = || async {
        let body: Value = http
            .get(format!(
                "{api}/api/v1/controller/orchestrators?status=active&organization_id=org-sim&page=1&page_size=100"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET orchestrators")
            .json()
            .await
            .expect("json");
        body["data"]["total"].as_u64().unwrap_or(0)
    };
    let listed = wait_until(
        Duration::from_secs(30),
        "the API to list 50 active orchestrators",
        || async { active().await == FLEET as u64 },
    )
    .await;
    // Let the fleet heartbeat for ~3 s in all.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cancel.cancel();
    let report = run.await.expect("simulation");
    if let Err(e) = listed {
        let logs = stack.logs();
        stack.shutdown().await;
        panic!("{e}; report {report}\n{logs}");
    }

    assert_eq!(report.target, FLEET);
    assert_eq!(report.started, FLEET);
    assert_eq!(report.connected, FLEET, "{report}");
    assert_eq!(report.stopped, 0, "{report}");
    assert!(report.handshakes >= FLEET as u64, "{report}");
    let p50 = report.handshake_p50_ms.expect("p50");
    let p99 = report.handshake_p99_ms.expect("p99");
    assert!(p50 > 0.0 && p50 <= p99, "{report}");
    // The stack asks for 1 s heartbeats: every orchestrator sent a few.
    assert!(report.heartbeats_sent >= 2 * FLEET as u64, "{report}");
    assert!(report.heartbeats_per_sec > 0.0);
    assert_eq!(report.reconnects, 0, "{report}");

    // The clean shutdown is an explicit disconnect for every one of them.
    wait_until(
        Duration::from_secs(10),
        "the fleet to be inactive after the simulation",
        || async { active().await == 0 },
    )
    .await
    .expect("inactive after shutdown");
    stack.shutdown().await;
}
