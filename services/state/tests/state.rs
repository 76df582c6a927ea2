//! The state service in-process against the real NATS and PostgreSQL: two replicas share the
//! queue group; hellos are answered after commit; heartbeats are coalesced; disconnects only
//! count for the current session; the sweep publishes expiry.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use moolai_bus::events::{DisconnectEvent, HeartbeatEvent, HelloReply, HelloRequest, StatusEvent};
use moolai_bus::{Bus, Kind, Subjects};
use moolai_config::{LivenessSettings, OrchestratorAuth};
use moolai_e2e::wait_until;
use moolai_protocol::{Dialect, Status};
use moolai_state::StateSettings;
use moolai_store::{Actor, CredentialKind, NewOrchestratorCredential, NewOrganization, Store};
use moolai_store_postgres::testing::TestDatabase;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(10);

/// Tests about other rules run with `open` authentication (hellos without tokens); the
/// credential tests below use `token`.
fn settings() -> StateSettings {
    StateSettings {
        orchestrator_auth: OrchestratorAuth::Open,
        controller_host: "127.0.0.1".into(),
        state_metrics_port: 0,
        heartbeat_flush_interval_ms: 50,
        heartbeat_batch_max: 10_000,
        heartbeat_pending_max: 100_000,
        sweep_interval_sec: 1,
        default_organization_id: "default".into(),
        state_request_concurrency: 8,
        hello_batch_max: 500,
        hello_batch_concurrency: 4,
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
    start_with(replicas, ttl_sec, OrchestratorAuth::Open).await
}

async fn start_with(replicas: usize, ttl_sec: u64, auth: OrchestratorAuth) -> Harness {
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
            StateSettings {
                orchestrator_auth: auth,
                ..settings()
            },
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
        self.request(&hello(id, session)).await
    }

    async fn request(&self, request: &HelloRequest) -> HelloReply {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            match self
                .bus
                .request(self.bus.subjects().hello(), request, Duration::from_secs(5))
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

// ---- orchestrator credentials ----------------------------------------------------------------

fn token_hello(id: &str, organization_id: Option<&str>, token: Option<&str>) -> HelloRequest {
    HelloRequest {
        organization_id: organization_id.map(Into::into),
        auth_token: token.map(Into::into),
        ..hello(id, &format!("s-{id}-{}", uuid::Uuid::new_v4().simple()))
    }
}

/// Creates a credential through the store (as the api would) and returns its token.
async fn credential(
    store: &dyn Store,
    kind: CredentialKind,
    organization_id: &str,
    orchestrator_id: Option<&str>,
) -> (String, String) {
    let prefix = match kind {
        CredentialKind::Enrollment => moolai_store::ENROLLMENT_TOKEN_PREFIX,
        CredentialKind::Orchestrator => moolai_store::ORCHESTRATOR_TOKEN_PREFIX,
    };
    let token = format!(
        "{prefix}{}",
        uuid::Uuid::new_v4().simple().to_string().repeat(2)
    );
    let record = store
        .create_orchestrator_credential(
            &NewOrchestratorCredential {
                kind,
                organization_id: organization_id.into(),
                orchestrator_id: orchestrator_id.map(Into::into),
                name: None,
                token_hash: moolai_store::token_hash(&token),
                expires_at: None,
            },
            &Actor::system(),
        )
        .await
        .expect("credential");
    (record.credential_id, token)
}

async fn organization(store: &dyn Store, id: &str) {
    store
        .create_organization(
            &NewOrganization {
                organization_id: id.into(),
                name: id.into(),
                location: None,
                metadata: None,
                features: None,
                settings: None,
            },
            &Actor::system(),
        )
        .await
        .expect("organization");
}

fn refused(reply: &HelloReply) -> &str {
    match reply {
        HelloReply::Rejected { code, .. } => code,
        HelloReply::Accepted { .. } => panic!("accepted: {reply:?}"),
    }
}

#[tokio::test]
async fn token_mode_requires_a_valid_credential_of_the_right_organization() {
    let h = start_with(1, 120, OrchestratorAuth::Token).await;
    let store = h.store.as_ref();
    organization(store, "org-a").await;
    organization(store, "org-b").await;
    let (enroll_a_id, enroll_a) =
        credential(store, CredentialKind::Enrollment, "org-a", None).await;
    let (_, enroll_b) = credential(store, CredentialKind::Enrollment, "org-b", None).await;

    // No token, a malformed one, an unknown one.
    assert_eq!(
        refused(&h.request(&token_hello("o-1", None, None)).await),
        "unauthorized"
    );
    for bad in [
        "tok_abc",
        "moo_enr_short",
        &format!("moo_enr_{}", "0".repeat(64)),
    ] {
        let reply = h.request(&token_hello("o-1", None, Some(bad))).await;
        assert_eq!(refused(&reply), "unauthorized", "{bad}");
    }
    assert!(
        h.store
            .get_orchestrator("o-1")
            .await
            .expect("read")
            .is_none()
    );

    // An enrollment token registers a new id in its organization, whatever the hello names.
    let reply = h.request(&token_hello("o-1", None, Some(&enroll_a))).await;
    let HelloReply::Accepted { provisioning, .. } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(provisioning.organization_id, "org-a");
    let reply = h
        .request(&token_hello("o-2", Some("org-b"), Some(&enroll_a)))
        .await;
    assert_eq!(refused(&reply), "organization_mismatch");
    // Another organization's token cannot claim org-a's orchestrator.
    let reply = h.request(&token_hello("o-1", None, Some(&enroll_b))).await;
    assert_eq!(refused(&reply), "organization_mismatch");
    let rec = h
        .store
        .get_orchestrator("o-1")
        .await
        .expect("read")
        .expect("o-1");
    assert_eq!(rec.organization_id, "org-a");

    // A per-orchestrator token: only for its orchestrator; once it exists, the enrollment
    // token no longer claims that orchestrator.
    let (_, own) = credential(store, CredentialKind::Orchestrator, "org-a", Some("o-1")).await;
    let reply = h.request(&token_hello("o-9", None, Some(&own))).await;
    assert_eq!(refused(&reply), "forbidden");
    let reply = h.request(&token_hello("o-1", None, Some(&own))).await;
    assert!(matches!(reply, HelloReply::Accepted { .. }), "{reply:?}");
    let reply = h.request(&token_hello("o-1", None, Some(&enroll_a))).await;
    assert_eq!(refused(&reply), "unauthorized");

    // A revoked token stops working.
    h.store
        .revoke_orchestrator_credential(&enroll_a_id, &Actor::system())
        .await
        .expect("revoke")
        .expect("exists");
    let reply = h.request(&token_hello("o-3", None, Some(&enroll_a))).await;
    assert_eq!(refused(&reply), "unauthorized");
    h.stop().await;
}

#[tokio::test]
async fn open_mode_accepts_legacy_hellos_but_still_checks_presented_tokens() {
    let h = start_with(1, 120, OrchestratorAuth::Open).await;
    let reply = h.request(&token_hello("legacy", Some("org-l"), None)).await;
    assert!(matches!(reply, HelloReply::Accepted { .. }), "{reply:?}");
    let bad = format!("moo_orc_{}", "a".repeat(64));
    let reply = h
        .request(&token_hello("legacy", Some("org-l"), Some(&bad)))
        .await;
    assert_eq!(refused(&reply), "unauthorized");
    h.stop().await;
}

/// A burst of hellos (a reconnect storm in miniature), some of them refused, through two
/// replicas that take them in batches: every one is answered, each with its own outcome, and
/// every accepted one is committed before its reply.
#[tokio::test]
async fn a_burst_of_hellos_is_answered_one_by_one() {
    let h = start(2, 120).await;
    // Both replicas subscribed before the burst.
    let HelloReply::Accepted { .. } = h.hello("warm-up", "warm-up").await else {
        panic!("warm-up hello refused")
    };
    let requests: Vec<HelloRequest> = (0..400)
        .map(|i| {
            let mut request = hello(&format!("burst-{i:03}"), &format!("burst-s-{i:03}"));
            if i % 50 == 7 {
                request.orchestrator_id = "not a valid id!".into();
            }
            request
        })
        .collect();
    let replies = futures::future::join_all(requests.iter().map(|r| h.request(r))).await;
    for (i, (request, reply)) in requests.iter().zip(&replies).enumerate() {
        if i % 50 == 7 {
            assert!(
                matches!(reply, HelloReply::Rejected { code, .. } if code == "invalid_id"),
                "hello {i}: {reply:?}"
            );
            continue;
        }
        let HelloReply::Accepted { provisioning, .. } = reply else {
            panic!("hello {i} refused: {reply:?}")
        };
        assert_eq!(provisioning.orchestrator_id, request.orchestrator_id);
        let record = h
            .store
            .get_orchestrator(&request.orchestrator_id)
            .await
            .expect("read")
            .expect("committed before the reply");
        assert_eq!(
            record.session_id.as_deref(),
            Some(request.session_id.as_str())
        );
    }
    h.stop().await;
}
