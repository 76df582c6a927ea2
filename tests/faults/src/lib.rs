//! Fault-injection harness of the controller.
//!
//! Starts a real topology as processes on this machine ([`topology`]: 2 ws-edge, 2 state,
//! 2 api, a private `nats-server`, PostgreSQL — a fresh database on the machine's server or a
//! private cluster — and TCP balancers in front of the edges and the apis), a fleet of
//! orchestrators built on the reference client library ([`fleet`]), an operator making API
//! calls, and the invariant checks ([`watch`]). The scenarios live in `tests/scenarios.rs`;
//! each is bounded in time and stops everything it started. `RELIABILITY.md` at the
//! repository root says what each one proves and what it measured.
//!
//! The service binaries come from the cargo target directory (`cargo build --workspace
//! --bins` first, as `scripts/test` does).

pub mod balancer;
pub mod fleet;
pub mod infra;
pub mod topology;
pub mod watch;

use std::time::{Duration, Instant};

use crate::fleet::{Fleet, FleetOptions, Operator};
use crate::topology::{Options, Topology};
use crate::watch::InactiveWatch;

/// A topology with a connected, heartbeating fleet and the watch running: where every
/// scenario starts.
pub struct Running {
    pub topology: Topology,
    pub operator: Operator,
    pub fleet: Fleet,
    pub fleet_options: FleetOptions,
    pub watch: InactiveWatch,
    pub ttl: Duration,
}

/// Starts the topology, enrolls an organization, connects `count` orchestrators through the
/// edge balancer and waits until each has a session and a `last_seen`; then starts watching
/// for false inactives.
///
/// # Errors
/// When any step fails; the process logs are in the error.
pub async fn bring_up(
    options: Options,
    count: usize,
    heartbeat_interval: Option<Duration>,
) -> anyhow::Result<Running> {
    let ttl = Duration::from_secs(options.heartbeat_ttl_sec);
    let topology = Topology::start(options).await?;
    let token = topology.login().await?;
    let operator = Operator::new(topology.api_url(), token)?;
    let organization = "faults-org";
    let enrollment = operator.enrollment_token(organization).await?;
    let fleet_options = FleetOptions {
        count,
        id_prefix: "orch-".into(),
        organization_id: organization.into(),
        token: Some(enrollment),
        heartbeat_interval,
        heartbeat_while_independent: true,
    };
    let fleet = Fleet::start(&topology.ws_url(), &fleet_options)?;
    let connected = fleet.wait_connected(Duration::from_secs(60)).await;
    if let Err(e) = connected {
        anyhow::bail!("{e}\n{}", topology.logs());
    }
    let pool = topology.pool().await?;
    let start = Instant::now();
    loop {
        let now = watch::db_now(&pool).await?;
        let behind = watch::stale(&pool, &fleet.ids, now - chrono::Duration::seconds(5)).await?;
        if behind.is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            anyhow::bail!(
                "{} orchestrators have no recent last_seen, e.g. {:?}\n{}",
                behind.len(),
                behind.first(),
                topology.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let watch = InactiveWatch::start(
        &topology.nats.url(),
        &topology.env.prefix,
        &topology.database_url,
        fleet.ids.clone(),
        ttl,
    )
    .await?;
    Ok(Running {
        topology,
        operator,
        fleet,
        fleet_options,
        watch,
        ttl,
    })
}

/// Prints one line of a scenario's report (shown by the test runner on failure, and with
/// `--no-capture`); `RELIABILITY.md` quotes these.
pub fn report(scenario: &str, line: &str) {
    println!("[{scenario}] {line}");
}
