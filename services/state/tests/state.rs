//! The state service in-process against the real NATS and PostgreSQL: two replicas share the
//! queue group; hellos are answered after commit; heartbeats are coalesced; disconnects only
//! count for the current session; the sweep publishes expiry.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use moolai_bus::events::{DisconnectEvent, HeartbeatEvent, HelloReply, HelloRequest, StatusEvent};
use moolai_bus::{Bus, Kind, Subjects};
use moolai_config::LivenessSettings;
use moolai_e2e::wait_until;
use moolai_protocol::{Dialect, Status};
use moolai_state::StateSettings;
use moolai_store::Store;
use moolai_store_postgres::testing::TestDatabase;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(10);

fn settings() -> StateSettings {
    StateSettings {
        controller_host: "127.0.0.1".into(),
        state_metrics_port: 0,
        heartbeat_flush_interval_ms: 50,
        heartbeat_batch_max: 10_000,
        heartbeat_pending_max: 100_000,
        sweep_interval_sec: 1,
        default_organization_id: "default".into(),
        state_request_concurrency: 8,
    }
}

fn hello(id: &str, session: &str) -> HelloRequest {
    HelloRequest {
        orchestrator_id: id.into(),
        organization_id: Some("org-s".into()),
        name: Some(format!("{id} name")),
        location: None,
        features: None,
        metadata: serde_json::Map::new(),
        dialect: Dialect::Hld,
        auth_token: None,
        session_id: session.into(),
        edge_id: "edge-t".into(),
        remote_addr: None,
    }
}

struct Harness {
    db: TestDatabase,
    store: Arc<dyn Store>,
    bus: Bus,
    stop: CancellationToken,
    replicas: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

async fn start(replicas: usize, ttl_sec: u64) -> Harness {
    let db = TestDatabase::create().await;
    let ttl = Duration::from_secs(ttl_sec);
    let store: Arc<dyn Store> = Arc::new(db.store(ttl).await);
    let prefix = format!("st{}", uuid::Uuid::new_v4().simple());
    let subjects = Subjects::new(&prefix).expect("prefix");
    let bus = Bus::connect(&moolai_e2e::nats_url(), subjects, "state-test")
        .await
        .expect("nats");
    let stop = CancellationToken::new();
    let liveness = LivenessSettings {
        heartbeat_ttl_sec: ttl_sec,
        heartbeat_interval_sec: 1,
    };
    let mut handles = Vec::new();
    for _ in 0..replicas {
        // Each replica with its own connection, as separate processes would have.
        let replica_bus = Bus::connect(&moolai_e2e::nats_url(), bus.subjects().clone(), "state")
            .await
            .expect("nats");
        let replica_store: Arc<dyn Store> = Arc::new(db.store(ttl).await);
        handles.push(tokio::spawn(moolai_state::launch(
            settings(),
            liveness.clone(),
            replica_store,
            replica_bus,
            stop.clone(),
        )));
    }
    Harness {
        db,
        store,
        bus,
        stop,
        replicas: handles,
    }
}

impl Harness {
    async fn hello(&self, id: &str, session: &str) -> HelloReply {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            match self
                .bus
                .request(
                    self.bus.subjects().hello(),
                    &hello(id, session),
                    Duration::from_secs(5),
                )
                .await
            {
                Ok(r) => return r,
                // Replicas still subscribing.
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("hello: {e}"),
            }
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        for r in self.replicas {
            tokio::time::timeout(Duration::from_secs(20), r)
                .await
                .expect("replica stopped")
                .expect("join")
                .expect("clean");
        }
        drop(self.store);
        self.db.drop_database().await;
    }
}

#[tokio::test]
async fn hello_is_committed_before_the_reply_and_heartbeats_land_from_two_replicas() {
    let h = start(2, 120).await;
    let reply = h.hello("o-1", "s-1").await;
    let HelloReply::Accepted { provisioning, .. } = reply else {
        panic!("rejected: {reply:?}")
    };
    assert_eq!(provisioning.organization_id, "org-s");
    // Committed before the reply: visible at once.
    let rec = h
        .store
        .get_orchestrator("o-1")
        .await
        .expect("read")
        .expect("registered");
    assert_eq!(rec.status, Status::Active);

    for i in 0..50 {
        let HelloReply::Accepted { .. } = h.hello(&format!("o-{i}"), &format!("s-{i}")).await
        else {
            panic!()
        };
    }
    // 1000 heartbeats over 50 orchestrators, spread by the queue group over both replicas.
    let base = Utc::now();
    for round in 0..20 {
        for i in 0..50 {
            let id = format!("o-{i}");
            let ev = HeartbeatEvent {
                orchestrator_id: id.clone(),
                organization_id: "org-s".into(),
                session_id: format!("s-{i}"),
                received_at: base + chrono::Duration::milliseconds(round * 10 + 1000),
                edge_id: "edge-t".into(),
                usage: None,
            };
            h.bus
                .publish(
                    h.bus.subjects().orchestrator(Kind::Heartbeat, "org-s", &id),
                    &ev,
                )
                .await
                .expect("publish");
        }
    }
    let newest = base + chrono::Duration::milliseconds(19 * 10 + 1000);
    let store = h.store.clone();
    wait_until(T, "every orchestrator's newest heartbeat to land", || {
        let store = store.clone();
        async move {
            for i in 0..50 {
                let o = store
                    .get_orchestrator(&format!("o-{i}"))
                    .await
                    .ok()
                    .flatten();
                if o.and_then(|o| o.last_seen)
                    .is_none_or(|t| (t - newest).num_milliseconds().abs() > 1)
                {
                    return false;
                }
            }
            true
        }
    })
    .await
    .expect("heartbeats landed");
    h.stop().await;
}

#[tokio::test]
async fn only_the_current_sessions_disconnect_counts_and_the_sweep_expires() {
    let h = start(1, 2).await;
    let mut statuses = h
        .bus
        .subscribe(h.bus.subjects().all(Kind::Status))
        .await
        .expect("sub");
    h.bus.flush().await.expect("flush");
    let HelloReply::Accepted { .. } = h.hello("dup", "old").await else {
        panic!()
    };
    let HelloReply::Accepted { .. } = h.hello("dup", "new").await else {
        panic!()
    };
    let disconnect = |session: &str| DisconnectEvent {
        orchestrator_id: "dup".into(),
        organization_id: "org-s".into(),
        session_id: session.into(),
        edge_id: "edge-t".into(),
        reason: "client_closed".into(),
        at: Utc::now(),
    };
    h.bus
        .publish(
            h.bus
                .subjects()
                .orchestrator(Kind::Disconnect, "org-s", "dup"),
            &disconnect("old"),
        )
        .await
        .expect("publish");
    // Then one that counts, for another orchestrator, as a marker that the first was processed.
    let HelloReply::Accepted { .. } = h.hello("other", "o1").await else {
        panic!()
    };
    let mut d = disconnect("o1");
    d.orchestrator_id = "other".into();
    h.bus
        .publish(
            h.bus
                .subjects()
                .orchestrator(Kind::Disconnect, "org-s", "other"),
            &d,
        )
        .await
        .expect("publish");
    let store = h.store.clone();
    wait_until(T, "the current session's disconnect", || {
        let store = store.clone();
        async move {
            store
                .get_orchestrator("other")
                .await
                .ok()
                .flatten()
                .is_some_and(|o| o.status == Status::Inactive)
        }
    })
    .await
    .expect("disconnect processed");
    let dup = h
        .store
        .get_orchestrator("dup")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        dup.status,
        Status::Active,
        "the replaced session's disconnect marked the orchestrator inactive"
    );

    // With a 2 s TTL and no heartbeats, the sweep expires `dup` and publishes it.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let m = tokio::time::timeout_at(deadline, statuses.next())
            .await
            .expect("status event before deadline")
            .expect("msg");
        let ev: StatusEvent = m.json().expect("json");
        if ev.orchestrator_id == "dup" && ev.status == Status::Inactive {
            assert_eq!(ev.reason, "ttl_expired");
            break;
        }
    }
    h.stop().await;
}
