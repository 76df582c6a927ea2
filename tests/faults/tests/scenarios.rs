//! The fault scenarios. Each starts its own topology (private NATS, its own database), a fleet
//! of a few hundred orchestrators and an operator, injects one kind of fault, and checks the
//! invariants: no orchestrator shown inactive while it was reconnecting within the TTL, every
//! acknowledged hello stored, `last_seen` moving again, independence taking effect with no
//! heartbeat after the toggle moving `last_seen`, and no process crashing.
//!
//! Run one with its report lines: `cargo nextest run -p moolai-faults --no-capture edge`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moolai_client::{Client, ClientHandle};
use moolai_faults::fleet::{Recorder, Traffic, client_config};
use moolai_faults::topology::{Options, Role};
use moolai_faults::watch::{activity, db_now, last_seen, missing_acked_hellos, stale};
use moolai_faults::{Running, bring_up, report};

const FLEET: usize = 300;

/// An independence toggle made during a fault, checked afterwards.
struct Toggle {
    id: String,
    /// `last_seen` right after the toggle committed: no later heartbeat may move it.
    frozen: Option<DateTime<Utc>>,
    /// When the call that committed it was made.
    committed: Instant,
}

/// Switches `id` to independence, retrying for up to 30 s while the api refuses, and reads
/// `last_seen` right after the commit.
async fn toggle(r: &Running, id: &str) -> Toggle {
    let start = Instant::now();
    let mut refused = Vec::new();
    let committed = loop {
        let sent = Instant::now();
        let answer = r.operator.set_independence(id, true).await;
        if answer.status == 200 {
            break sent;
        }
        refused.push(answer.status);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "independence never committed: {answer:?} (earlier answers: {refused:?})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let pool = r.topology.pool().await.expect("database after the toggle");
    let frozen = last_seen(&pool, &[id.to_owned()])
        .await
        .expect("last_seen")
        .get(id)
        .copied()
        .flatten();
    Toggle {
        id: id.to_owned(),
        frozen,
        committed,
    }
}

/// The orchestrator received `stop_monitoring` (within `within` of the commit) and its
/// `last_seen` has not moved since, although it kept heartbeating. Returns the delay from the
/// commit to the delivery.
async fn verify_toggle(r: &Running, t: &Toggle, within: Duration) -> Duration {
    verify_toggle_at(r, t, within)
        .await
        .saturating_duration_since(t.committed)
}

/// As [`verify_toggle`], returning when `stop_monitoring` arrived.
async fn verify_toggle_at(r: &Running, t: &Toggle, within: Duration) -> Instant {
    let delivered = loop {
        if let Some((true, at)) = r.fleet.told_independent(&t.id) {
            break at;
        }
        assert!(
            t.committed.elapsed() < within,
            "{} never received stop_monitoring within {within:?}\n{}",
            t.id,
            r.topology.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The client keeps heartbeating while independent (configured so): give those heartbeats
    // time to reach the database if anything let them.
    let before = r.fleet.clients[index_of(r, &t.id)].state().heartbeats_sent;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = r.fleet.clients[index_of(r, &t.id)].state().heartbeats_sent;
    assert!(
        after > before,
        "{} stopped heartbeating; the check would prove nothing",
        t.id
    );
    let pool = r.topology.pool().await.expect("database");
    let now = last_seen(&pool, std::slice::from_ref(&t.id))
        .await
        .expect("last_seen");
    assert_eq!(
        now.get(&t.id).copied().flatten(),
        t.frozen,
        "a heartbeat after the toggle moved last_seen of {}",
        t.id
    );
    delivered
}

fn index_of(r: &Running, id: &str) -> usize {
    r.fleet.ids.iter().position(|i| i == id).expect("fleet id")
}

/// Waits until every fleet orchestrator except `except` has a `last_seen` after `after`;
/// returns how long that took.
async fn wait_fresh(
    r: &Running,
    after: DateTime<Utc>,
    except: &[&str],
    within: Duration,
) -> Duration {
    let start = Instant::now();
    let ids: Vec<String> = r
        .fleet
        .ids
        .iter()
        .filter(|i| !except.contains(&i.as_str()))
        .cloned()
        .collect();
    loop {
        let pool = r.topology.pool().await.ok();
        let behind = match &pool {
            Some(pool) => stale(pool, &ids, after)
                .await
                .unwrap_or_else(|_| ids.clone()),
            None => ids.clone(),
        };
        if behind.is_empty() {
            return start.elapsed();
        }
        if start.elapsed() > within {
            let sessions = match &pool {
                Some(pool) => activity(pool).await,
                None => "database unreachable".into(),
            };
            panic!(
                "{} orchestrators have no last_seen after {after} within {within:?} (e.g. {:?})\n\
                 database sessions:\n{sessions}\n{}",
                behind.len(),
                behind.first(),
                r.topology.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// New orchestrators connecting (and leaving) all the time: every acknowledged hello must be
/// in the database whatever happens meanwhile.
struct Churn {
    recorder: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
    attempts: Arc<Mutex<u32>>,
}

impl Churn {
    fn start(r: &Running, every: Duration) -> Self {
        let recorder = Arc::new(Recorder::default());
        let attempts = Arc::new(Mutex::new(0));
        let (rec, n) = (recorder.clone(), attempts.clone());
        let url = r.topology.ws_url();
        let mut options = r.fleet_options.clone();
        options.id_prefix = "churn-".into();
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            let mut live: Vec<(Instant, ClientHandle)> = Vec::new();
            loop {
                let id = format!("churn-{next:05}");
                let config = client_config(&url, &id, next, &options, rec.clone());
                if let Ok(c) = Client::spawn(config) {
                    live.push((Instant::now(), c));
                    *n.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                }
                next += 1;
                // Each stays about two seconds, then leaves cleanly.
                let (old, young): (Vec<_>, Vec<_>) = live
                    .into_iter()
                    .partition(|(at, _)| at.elapsed() > Duration::from_secs(2));
                live = young;
                for (_, c) in old {
                    drop(c);
                }
                tokio::time::sleep(every).await;
            }
        });
        Self {
            recorder,
            task,
            attempts,
        }
    }

    fn stop(self) -> (Vec<(String, String)>, u32) {
        self.task.abort();
        let acked = self.recorder.with(|s| s.acked.clone());
        let attempts = *self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        (acked, attempts)
    }
}

/// The end of every scenario: no false inactive, no acknowledged hello lost, no process
/// crashed, no client gave up.
async fn finish(scenario: &str, mut r: Running, churn_acked: Vec<(String, String)>) {
    let crashed = r.topology.crashed();
    assert!(
        crashed.is_empty(),
        "processes exited: {crashed:?}\n{}",
        r.topology.logs()
    );
    let stopped = r.fleet.stopped();
    assert!(stopped.is_empty(), "clients gave up: {stopped:?}");
    let mut acked = r.fleet.recorder.with(|s| s.acked.clone());
    acked.extend(churn_acked);
    let pool = r.topology.pool().await.expect("database");
    let missing = missing_acked_hellos(&pool, &acked).await.expect("query");
    report(
        scenario,
        &format!(
            "acknowledged hellos: {}, stored: {}, lost: {}",
            acked.len(),
            acked.len() - missing.len(),
            missing.len()
        ),
    );
    assert!(
        missing.is_empty(),
        "acknowledged hellos not stored: {missing:?}"
    );
    let db_errors = *r
        .watch
        .db_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let false_inactive = r.watch.stop();
    report(
        scenario,
        &format!(
            "false inactive: {} (database polls that failed: {db_errors}); client disconnects by kind: {:?}",
            false_inactive.len(),
            r.fleet.recorder.with(|s| s.disconnects.clone())
        ),
    );
    let first: Vec<_> = false_inactive.iter().take(5).collect();
    assert!(
        false_inactive.is_empty(),
        "{} orchestrators shown inactive while connected or reconnecting within the TTL, e.g. {first:?}\n{}",
        false_inactive.len(),
        r.topology.logs()
    );
    r.fleet.shutdown().await;
    r.topology.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_killed_its_orchestrators_move_to_the_other_edge() {
    let s = "edge-kill";
    let mut r = bring_up(Options::default(), FLEET, None)
        .await
        .expect("topology");
    let pool = r.topology.pool().await.expect("pool");
    let killed_at = db_now(&pool).await.expect("now");
    let t0 = Instant::now();
    r.topology.kill(Role::Edge, 0).expect("kill edge 0");
    let toggled = toggle(&r, "orch-0000").await;
    // Clients notice the dead socket through the balancer within milliseconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dropped: u32 = r.fleet.recorder.with(|s| s.disconnects.values().sum());
    r.fleet
        .wait_connected(Duration::from_secs(30))
        .await
        .expect("everyone reconnects");
    let reconnected = t0.elapsed();
    wait_fresh(&r, killed_at, &["orch-0000"], Duration::from_secs(20)).await;
    let fresh = t0.elapsed();
    let delivered = verify_toggle(&r, &toggled, Duration::from_secs(20)).await;
    report(
        s,
        &format!(
            "{FLEET} orchestrators over 2 edges; kill -9 edge 0 dropped {dropped} sessions; all \
             {FLEET} had a session again {:.2} s after the kill and every last_seen had moved \
             past the kill {:.2} s after it; independence toggled during the fault reached the \
             orchestrator in {:.0} ms",
            reconnected.as_secs_f64(),
            fresh.as_secs_f64(),
            delivered.as_secs_f64() * 1000.0
        ),
    );
    assert!(
        dropped > 0,
        "the killed edge held no orchestrator: the scenario proved nothing"
    );
    // The edge comes back and takes new connections.
    r.topology
        .start_process(Role::Edge, 0)
        .await
        .expect("edge 0 again");
    finish(s, r, Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_killed_under_load_the_other_replica_carries_on() {
    let s = "state-kill";
    // 300 orchestrators heartbeating every 200 ms (1,500 heartbeats/s) plus a stream of new
    // orchestrators registering.
    let mut r = bring_up(Options::default(), FLEET, Some(Duration::from_millis(200)))
        .await
        .expect("topology");
    let churn = Churn::start(&r, Duration::from_millis(50));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pool = r.topology.pool().await.expect("pool");
    let killed_at = db_now(&pool).await.expect("now");
    r.topology.kill(Role::State, 0).expect("kill state 0");
    let toggled = toggle(&r, "orch-0001").await;
    let fresh = wait_fresh(&r, killed_at, &["orch-0001"], Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (churn_acked, attempts) = churn.stop();
    let delivered = verify_toggle(&r, &toggled, Duration::from_secs(10)).await;
    report(
        s,
        &format!(
            "{FLEET} orchestrators at 1,500 heartbeats/s and {attempts} new orchestrators \
             registering; after kill -9 of state 0, every last_seen moved past the kill within \
             {:.2} s; independence toggled during the fault reached the orchestrator in {:.0} ms",
            fresh.as_secs_f64(),
            delivered.as_secs_f64() * 1000.0
        ),
    );
    assert!(
        churn_acked.len() > 50,
        "too few registrations to prove anything: {}",
        churn_acked.len()
    );
    finish(s, r, churn_acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_everything_reconnects_and_commands_are_repaired() {
    let s = "nats-restart";
    let mut r = bring_up(Options::default(), FLEET, None)
        .await
        .expect("topology");
    r.topology.nats.kill().expect("kill nats");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The api commits the toggle in the database; the command cannot be published now.
    let toggled = toggle(&r, "orch-0002").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pool = r.topology.pool().await.expect("pool");
    let back_at = db_now(&pool).await.expect("now");
    let t0 = Instant::now();
    r.topology.nats.restart().await.expect("nats again");
    let fresh = wait_fresh(&r, back_at, &["orch-0002"], Duration::from_secs(30)).await;
    let delivered_at = verify_toggle_at(&r, &toggled, Duration::from_secs(30)).await;
    r.fleet
        .wait_connected(Duration::from_secs(30))
        .await
        .expect("everyone connected");
    let health = r.operator.get("/health").await;
    assert_eq!(health.status, 200, "health after NATS returned: {health:?}");
    report(
        s,
        &format!(
            "NATS down for 3 s (kill -9, then started again on the same port); every service \
             reconnected by itself and every last_seen moved past the restart within {:.2} s; \
             the independence toggle committed during the outage reached the orchestrator \
             {:.2} s after NATS returned",
            fresh.as_secs_f64(),
            delivered_at.saturating_duration_since(t0).as_secs_f64()
        ),
    );
    finish(s, r, Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_state_buffers_and_the_api_answers_503() {
    let s = "postgres-restart";
    let options = Options {
        private_postgres: true,
        ..Options::default()
    };
    let mut r = bring_up(options, FLEET, None).await.expect("topology");
    let traffic = Traffic::start(r.operator.clone(), Duration::from_millis(100));
    let pool = r.topology.pool().await.expect("pool");
    let crashed_at = db_now(&pool).await.expect("now");
    pool.close().await;
    r.topology
        .postgres
        .as_mut()
        .expect("private cluster")
        .crash()
        .expect("crash PostgreSQL");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Each of these waits for the api's connection pool to give up (its acquire timeout):
    // asked together, so the outage stays well inside the TTL.
    let (list, health, refused) = tokio::join!(
        r.operator.get("/api/v1/controller/orchestrators"),
        r.operator.get("/health"),
        r.operator.set_independence("orch-0003", true)
    );
    let answered_in = t0.elapsed();
    assert_eq!(
        list.status, 503,
        "listing while the database is down: {list:?}"
    );
    assert_eq!(list.body["success"], false, "{list:?}");
    assert!(
        list.body["error"]["message"].is_string(),
        "no error message: {list:?}"
    );
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.body["database"], "down", "{health:?}");
    assert_eq!(
        refused.status, 503,
        "a toggle cannot commit now: {refused:?}"
    );
    r.topology
        .postgres
        .as_mut()
        .expect("private cluster")
        .start_again()
        .await
        .expect("PostgreSQL again");
    let down_for = t0.elapsed();
    let back = Instant::now();
    loop {
        if r.operator
            .get("/api/v1/controller/orchestrators")
            .await
            .status
            == 200
        {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "the api did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api_recovered = back.elapsed();
    // The newest heartbeat of every orchestrator, held in memory during the outage, lands.
    let fresh = wait_fresh(&r, crashed_at, &[], Duration::from_secs(20)).await;
    let toggled = toggle(&r, "orch-0003").await;
    let delivered = verify_toggle(&r, &toggled, Duration::from_secs(10)).await;
    let (tally, failures) = traffic.stop();
    for f in &failures {
        assert!(
            f.status == 503 && f.body["success"] == false,
            "an answer during the outage was not a clear 503: {f:?}"
        );
    }
    report(
        s,
        &format!(
            "PostgreSQL crashed (pg_ctl stop -m immediate) for {:.1} s; the api answered {:?} \
             (status: count; a 503 took {:.1} s, the pool's acquire timeout) meanwhile and served \
             again {:.2} s after the database returned; \
             every last_seen moved past the crash within {:.2} s of its return; independence \
             (refused with 503 during the outage) committed afterwards and reached the \
             orchestrator in {:.0} ms",
            down_for.as_secs_f64(),
            tally,
            answered_in.as_secs_f64(),
            api_recovered.as_secs_f64(),
            fresh.as_secs_f64(),
            delivered.as_secs_f64() * 1000.0
        ),
    );
    finish(s, r, Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_loses_nothing() {
    let s = "rolling-restart";
    let mut r = bring_up(Options::default(), FLEET, Some(Duration::from_millis(500)))
        .await
        .expect("topology");
    let churn = Churn::start(&r, Duration::from_millis(100));
    let traffic = Traffic::start(r.operator.clone(), Duration::from_millis(100));
    let t0 = Instant::now();
    let mut toggled = None;
    for (role, index) in [
        (Role::Edge, 0),
        (Role::Edge, 1),
        (Role::State, 0),
        (Role::State, 1),
        (Role::Api, 0),
        (Role::Api, 1),
    ] {
        r.topology.stop(role, index).expect("graceful stop");
        if role == Role::State && index == 0 {
            toggled = Some(toggle(&r, "orch-0004").await);
        }
        r.topology
            .start_process(role, index)
            .await
            .expect("start again");
        r.fleet
            .wait_connected(Duration::from_secs(30))
            .await
            .expect("everyone connected between restarts");
    }
    let took = t0.elapsed();
    let pool = r.topology.pool().await.expect("pool");
    let now = db_now(&pool).await.expect("now");
    wait_fresh(&r, now, &["orch-0004"], Duration::from_secs(30)).await;
    let (churn_acked, attempts) = churn.stop();
    let (tally, failures) = traffic.stop();
    let toggled = toggled.expect("toggled");
    let delivered = verify_toggle(&r, &toggled, Duration::from_secs(15)).await;
    report(
        s,
        &format!(
            "every process restarted one at a time (SIGTERM, clean exit, start) in {:.1} s \
             with {FLEET} orchestrators at 600 heartbeats/s and {attempts} registering; operator \
             answers by status: {tally:?}; independence toggled while a state replica was down \
             reached the orchestrator in {:.0} ms",
            took.as_secs_f64(),
            delivered.as_secs_f64() * 1000.0
        ),
    );
    assert!(
        failures.is_empty(),
        "operator calls failed during the rolling restart: {failures:?}"
    );
    finish(s, r, churn_acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_do_not_hurt_the_fleet() {
    use moolai_e2e::client::{TestSocket, register, with_token};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;

    let s = "hostile-peers";
    let options = Options {
        extra: vec![("WS_HELLO_TIMEOUT_SEC".into(), "3".into())],
        ..Options::default()
    };
    let mut r = bring_up(options, FLEET, None).await.expect("topology");
    let port = r.topology.port(Role::Edge, 0).expect("edge port");
    let direct = format!("ws://127.0.0.1:{port}/ws");
    let rss_before = r.topology.rss_kib(Role::Edge, 0).expect("rss");
    let pool = r.topology.pool().await.expect("pool");
    let attack_started = db_now(&pool).await.expect("now");
    let t0 = Instant::now();

    // 10,000 upgrade attempts that never finish: half send part of the headers, half nothing.
    const HALF_OPEN: usize = 10_000;
    let mut half_open = Vec::with_capacity(HALF_OPEN);
    for n in 0..HALF_OPEN {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        if n % 2 == 0 {
            tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
                .await
                .expect("partial request");
        }
        half_open.push(tcp);
    }
    // 300 upgraded sockets that never say hello.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TestSocket::connect(&direct).await.expect("upgrade"));
    }
    // Sockets that break the protocol after a valid hello, each its own way.
    let token = r.fleet_options.token.clone().expect("token");
    let mut hostile = Vec::new();
    for (n, kind) in ["oversized", "binary", "garbage", "flood"]
        .iter()
        .cycle()
        .take(40)
        .enumerate()
    {
        let mut socket = TestSocket::connect(&direct).await.expect("upgrade");
        let hello = with_token(register(&format!("hostile-{n:02}"), "faults-org"), &token);
        socket.send(&hello).await.expect("hello");
        socket
            .expect("provisioning", Duration::from_secs(10))
            .await
            .expect("provisioning");
        match *kind {
            "oversized" => {
                let _ = socket.send_raw(Message::text("x".repeat(200_000))).await;
            }
            "binary" => {
                let _ = socket.send_raw(Message::binary(vec![0_u8; 64])).await;
            }
            "garbage" => {
                for _ in 0..20 {
                    let _ = socket.send_raw(Message::text("{not json")).await;
                }
            }
            _ => {
                for _ in 0..500 {
                    let heartbeat = serde_json::json!({"type": "i_am_alive"});
                    if socket.send(&heartbeat).await.is_err() {
                        break;
                    }
                }
            }
        }
        hostile.push((*kind, socket));
    }
    // An orchestrator that stops reading while the controller has 36 MB of frames for it:
    // once the socket buffers are full, its bounded outbound queue overflows and the edge
    // closes it instead of buffering.
    let mut non_reader = TestSocket::connect(&direct).await.expect("upgrade");
    non_reader
        .send(&with_token(register("non-reader", "faults-org"), &token))
        .await
        .expect("hello");
    non_reader
        .expect("provisioning", Duration::from_secs(10))
        .await
        .expect("provisioning");
    let bus = moolai_bus::Bus::connect(
        &r.topology.nats.url(),
        moolai_bus::Subjects::new(&r.topology.env.prefix).expect("prefix"),
        "faults-commands",
    )
    .await
    .expect("nats");
    let subject =
        bus.subjects()
            .orchestrator(moolai_bus::Kind::Command, "faults-org", "non-reader");
    for version in 1..=600_i64 {
        let command = serde_json::json!({
            "command": "send",
            "frame": {
                "type": "config_update",
                "data": {
                    "orchestrator_id": "non-reader",
                    "session_config": { "padding": "x".repeat(60_000) },
                    "config_version": version,
                    "ts": "2026-11-27T00:00:00Z"
                }
            }
        });
        bus.publish(subject.clone(), &command)
            .await
            .expect("publish");
    }
    bus.flush().await.expect("flush");
    let rss_peak = r.topology.rss_kib(Role::Edge, 0).expect("rss");

    // Meanwhile the fleet's heartbeats keep landing and a new orchestrator gets in quickly.
    let fresh = wait_fresh(&r, attack_started, &[], Duration::from_secs(20)).await;
    let newcomer_started = Instant::now();
    let newcomer_options = moolai_faults::fleet::FleetOptions {
        count: 1,
        id_prefix: "newcomer-".into(),
        ..r.fleet_options.clone()
    };
    let newcomer = moolai_faults::fleet::Fleet::start(&r.topology.ws_url(), &newcomer_options)
        .expect("newcomer");
    newcomer
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("a newcomer connects during the attack");
    let newcomer_latency = newcomer_started.elapsed();
    newcomer.shutdown().await;

    // Every hostile socket was closed with the code the protocol says.
    let mut codes = std::collections::BTreeMap::new();
    for (kind, mut socket) in hostile {
        let closed = socket
            .expect_close(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{kind} socket not closed: {e}"));
        let want = match kind {
            "oversized" => 1009,
            "binary" => 1003,
            _ => 1008,
        };
        assert_eq!(closed.code, want, "{kind}");
        *codes.entry(format!("{kind}:{}", closed.code)).or_insert(0) += 1;
    }
    // Silent sockets are closed at the hello deadline (3 s here).
    let mut silent_closed = 0;
    for mut socket in silent {
        let closed = socket
            .expect_close(Duration::from_secs(10))
            .await
            .expect("a silent socket is closed at the hello deadline");
        assert_eq!(closed.code, 1008);
        silent_closed += 1;
    }
    // Half-open requests: the edge ends them once the header deadline (10 s) passes.
    let mut half_open_closed = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    for tcp in &mut half_open {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut buf = [0_u8; 256];
        // EOF, a reset or a 408: anything but silence means the edge ended it.
        if tokio::time::timeout(left, tcp.read(&mut buf)).await.is_ok() {
            half_open_closed += 1;
        }
    }
    // The edge gave up on the non-reader and said why.
    let non_reader_end = {
        let pool = r.topology.pool().await.expect("pool");
        let started = Instant::now();
        loop {
            let reason: Option<String> = sqlx::query_scalar(
                "SELECT disconnect_reason FROM orchestrator_connections \
                 WHERE orchestrator_id = 'non-reader' AND disconnected_at IS NOT NULL",
            )
            .fetch_optional(&pool)
            .await
            .expect("query")
            .flatten();
            if let Some(reason) = reason {
                break (reason, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the edge kept a socket that never reads\n{}",
                r.topology.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(
        ["slow_consumer", "write_failed"].contains(&non_reader_end.0.as_str()),
        "{non_reader_end:?}"
    );
    drop(non_reader);
    let rss_after = r.topology.rss_kib(Role::Edge, 0).expect("rss");
    drop(half_open);
    let pool = r.topology.pool().await.expect("pool");
    let settled = db_now(&pool).await.expect("now");
    let fresh_after = wait_fresh(&r, settled, &[], Duration::from_secs(20)).await;
    report(
        s,
        &format!(
            "against one edge holding ~150 of the fleet: {HALF_OPEN} half-open upgrade requests, \
             300 sockets that never said hello, 40 protocol breakers ({codes:?}), one \
             orchestrator that stopped reading with 36 MB of frames queued for it (closed by \
             the edge: {}); edge RSS {} MiB \
             before, {} MiB at the peak, {} MiB after; the fleet's heartbeats kept landing ({:.2} s \
             to see every last_seen move), a new orchestrator connected in {:.0} ms; silent \
             sockets closed at the deadline: {silent_closed}/300; half-open requests ended by the \
             edge: {half_open_closed}/{HALF_OPEN} ({:.0} s after the attack began); every \
             last_seen moved again {:.2} s after that",
            non_reader_end.0,
            rss_before / 1024,
            rss_peak / 1024,
            rss_after / 1024,
            fresh.as_secs_f64(),
            newcomer_latency.as_secs_f64() * 1000.0,
            t0.elapsed().as_secs_f64(),
            fresh_after.as_secs_f64()
        ),
    );
    assert_eq!(
        half_open_closed, HALF_OPEN,
        "half-open requests left open by the edge"
    );
    assert!(
        rss_peak.saturating_sub(rss_before) < 256 * 1024,
        "edge memory grew by {} MiB under the attack",
        (rss_peak - rss_before) / 1024
    );
    finish(s, r, Vec::new()).await;
}
