//! The topology under test: 2 ws-edge, 2 state, 2 api as processes, a private NATS, PostgreSQL
//! (a fresh database on the machine's server, or a private cluster the harness can crash),
//! and balancers in front of the edges and the apis.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use moolai_e2e::{Service, StackEnv, free_port, unique_prefix, wait_until};
use moolai_store_postgres::testing::TestDatabase;

use crate::balancer::Balancer;
use crate::infra::{PrivateNats, PrivatePostgres};

/// Which kind of process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Edge,
    State,
    Api,
}

impl Role {
    fn bin(self) -> &'static str {
        match self {
            Self::Edge => "moolai-ws-edge",
            Self::State => "moolai-state",
            Self::Api => "moolai-api",
        }
    }
}

/// One process slot: its fixed ports survive restarts, so balancers and clients need no news.
struct Slot {
    role: Role,
    index: usize,
    port: u16,
    metrics_port: u16,
    service: Option<Service>,
    /// How many times the slot's process was started (names its log files).
    starts: usize,
}

pub struct Options {
    pub edges: usize,
    pub states: usize,
    pub apis: usize,
    pub heartbeat_ttl_sec: u64,
    /// A private PostgreSQL cluster the scenario can crash, instead of the machine's.
    pub private_postgres: bool,
    pub extra: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            edges: 2,
            states: 2,
            apis: 2,
            heartbeat_ttl_sec: 10,
            private_postgres: false,
            extra: Vec::new(),
        }
    }
}

pub struct Topology {
    pub env: StackEnv,
    pub nats: PrivateNats,
    pub postgres: Option<PrivatePostgres>,
    db: Option<TestDatabase>,
    slots: Vec<Slot>,
    pub edge_balancer: Balancer,
    pub api_balancer: Balancer,
    pub admin_password: String,
    pub database_url: String,
    started: Instant,
}

impl Topology {
    /// Starts everything and waits until every process is ready.
    ///
    /// # Errors
    /// When anything does not start; the logs are in the error.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let prefix = unique_prefix();
        let log_dir = std::env::temp_dir().join(format!("moolai-faults-{prefix}"));
        std::fs::create_dir_all(&log_dir)?;
        let nats = PrivateNats::start(&log_dir).await?;
        let (postgres, db, database_url) = if options.private_postgres {
            let pg = PrivatePostgres::start(&log_dir).await?;
            pg.create_database().await?;
            let url = pg.url("moolai");
            (Some(pg), None, url)
        } else {
            let db = TestDatabase::create().await;
            let url = db.url();
            (None, Some(db), url)
        };
        let admin_password = uuid::Uuid::new_v4().simple().to_string();
        let mut vars = vec![
            ("NATS_URL".to_owned(), nats.url()),
            (
                "HEARTBEAT_TTL_SEC".to_owned(),
                options.heartbeat_ttl_sec.to_string(),
            ),
            ("HEARTBEAT_INTERVAL_SEC".to_owned(), "1".to_owned()),
            ("HEARTBEAT_FLUSH_INTERVAL_MS".to_owned(), "100".to_owned()),
            ("SWEEP_INTERVAL_SEC".to_owned(), "1".to_owned()),
            ("SHUTDOWN_GRACE_SEC".to_owned(), "5".to_owned()),
            ("MOOLAI_ADMIN_USERNAME".to_owned(), "admin".to_owned()),
            ("MOOLAI_ADMIN_PASSWORD".to_owned(), admin_password.clone()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        vars.extend(options.extra);
        let env = StackEnv {
            database_url: database_url.clone(),
            prefix,
            vars,
            log_dir,
        };
        let mut migrate = env.spawn_with_args("moolai-state", "migrate", &["migrate"], &[])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while migrate.is_running() {
            if Instant::now() > deadline {
                bail!("migrate did not finish: {}", migrate.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !migrate.log_text().contains("migrations applied") {
            bail!("migrate failed: {}", migrate.log_text());
        }

        let mut slots = Vec::new();
        for (role, count) in [
            (Role::State, options.states),
            (Role::Edge, options.edges),
            (Role::Api, options.apis),
        ] {
            for index in 0..count {
                slots.push(Slot {
                    role,
                    index,
                    port: free_port()?,
                    metrics_port: free_port()?,
                    service: None,
                    starts: 0,
                });
            }
        }
        let ports = |role: Role| -> Vec<u16> {
            slots
                .iter()
                .filter(|s| s.role == role)
                .map(|s| s.port)
                .collect()
        };
        let edge_balancer = Balancer::start(ports(Role::Edge)).await?;
        let api_balancer = Balancer::start(ports(Role::Api)).await?;
        let mut topology = Self {
            env,
            nats,
            postgres,
            db,
            slots,
            edge_balancer,
            api_balancer,
            admin_password,
            database_url,
            started: Instant::now(),
        };
        for role in [Role::State, Role::Edge, Role::Api] {
            for i in 0..topology.count(role) {
                topology.start_process(role, i).await?;
            }
        }
        Ok(topology)
    }

    fn count(&self, role: Role) -> usize {
        self.slots.iter().filter(|s| s.role == role).count()
    }

    fn slot(&mut self, role: Role, index: usize) -> anyhow::Result<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| s.role == role && s.index == index)
            .with_context(|| format!("no {role:?} {index}"))
    }

    /// The orchestrators' URL: the balancer in front of the edges.
    #[must_use]
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.edge_balancer.port)
    }

    /// The operators' URL: the balancer in front of the apis.
    #[must_use]
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_balancer.port)
    }

    /// Seconds since the topology started, for log lines.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Starts (or restarts) one process on its slot's ports and waits until it is ready:
    /// an edge listens, an api answers `/health`, a state serves its metrics and has
    /// subscribed (its log says so).
    ///
    /// # Errors
    /// When it does not become ready within 30 s.
    pub async fn start_process(&mut self, role: Role, index: usize) -> anyhow::Result<()> {
        let env = self.env.clone();
        let slot = self.slot(role, index)?;
        if slot.service.is_some() {
            bail!("{role:?} {index} is already running");
        }
        slot.starts += 1;
        let name = format!("{}{}-{}", role.bin(), index, slot.starts);
        let port = slot.port.to_string();
        let metrics = slot.metrics_port.to_string();
        let extra: Vec<(&str, String)> = match role {
            Role::Edge => vec![
                ("WS_EDGE_PORT", port),
                ("WS_EDGE_METRICS_PORT", metrics),
                ("EDGE_ID", format!("edge{index}")),
            ],
            Role::State => vec![("STATE_METRICS_PORT", metrics)],
            Role::Api => vec![("CONTROLLER_PORT", port), ("API_METRICS_PORT", metrics)],
        };
        let service = env.spawn(role.bin(), &name, &extra)?;
        let (port, metrics_port) = (slot.port, slot.metrics_port);
        slot.service = Some(service);
        let http = reqwest::Client::new();
        let ready = match role {
            Role::Edge => {
                wait_until(Duration::from_secs(30), "an edge to listen", || async {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                })
                .await
            }
            Role::Api => {
                wait_until(Duration::from_secs(30), "an api to answer", || async {
                    http.get(format!("http://127.0.0.1:{port}/health"))
                        .send()
                        .await
                        .is_ok()
                })
                .await
            }
            Role::State => {
                wait_until(Duration::from_secs(30), "a state to serve", || async {
                    http.get(format!("http://127.0.0.1:{metrics_port}/healthz"))
                        .send()
                        .await
                        .is_ok()
                })
                .await
            }
        };
        ready.map_err(|e| anyhow::anyhow!("{e}\n{}", self.logs()))
    }

    /// The port a process listens on (edges and apis), for clients that bypass the balancer.
    ///
    /// # Errors
    /// When there is no such process.
    pub fn port(&mut self, role: Role, index: usize) -> anyhow::Result<u16> {
        Ok(self.slot(role, index)?.port)
    }

    /// Resident memory of a running process, in KiB (from `/proc`).
    ///
    /// # Errors
    /// When it is not running or `/proc` cannot be read.
    pub fn rss_kib(&mut self, role: Role, index: usize) -> anyhow::Result<u64> {
        let pid = self
            .slot(role, index)?
            .service
            .as_ref()
            .and_then(Service::pid)
            .context("not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS")
    }

    /// `kill -9`.
    ///
    /// # Errors
    /// When the process was not running.
    pub fn kill(&mut self, role: Role, index: usize) -> anyhow::Result<()> {
        let slot = self.slot(role, index)?;
        let mut service = slot.service.take().context("not running")?;
        service.kill()
    }

    /// SIGTERM, then waits for a clean exit (graceful shutdown).
    ///
    /// # Errors
    /// When it does not exit cleanly within 15 s.
    pub fn stop(&mut self, role: Role, index: usize) -> anyhow::Result<()> {
        let slot = self.slot(role, index)?;
        let mut service = slot.service.take().context("not running")?;
        let status = service.terminate(Duration::from_secs(15))?;
        if !status.success() {
            bail!(
                "{role:?} {index} exited with {status}: {}",
                service.log_text()
            );
        }
        Ok(())
    }

    /// Names of processes that are supposed to run but exited by themselves.
    pub fn crashed(&mut self) -> Vec<String> {
        self.slots
            .iter_mut()
            .filter_map(|s| {
                let service = s.service.as_mut()?;
                (!service.is_running()).then(|| service.name.clone())
            })
            .collect()
    }

    /// The Prometheus text of one process.
    ///
    /// # Errors
    /// When it does not answer.
    pub async fn scrape(&mut self, role: Role, index: usize) -> anyhow::Result<String> {
        let port = self.slot(role, index)?.metrics_port;
        Ok(reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await?)
    }

    /// The tail of every process's log, for failure messages.
    #[must_use]
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(&self.env.log_dir) else {
            return out;
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
        {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            out.push_str(&format!("---- {} ----\n{tail}\n", path.display()));
        }
        out
    }

    /// Logs in as the configured admin through the api balancer.
    ///
    /// # Errors
    /// When login fails.
    pub async fn login(&self) -> anyhow::Result<String> {
        moolai_e2e::login_admin(&self.api_url(), &self.admin_password).await
    }

    /// A pool on the topology's database (a private cluster may be down: this fails then).
    ///
    /// # Errors
    /// When the database is unreachable.
    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&self.database_url)
            .await?)
    }

    /// Stops every process and drops the database.
    pub async fn shutdown(mut self) {
        for slot in &mut self.slots {
            slot.service = None;
        }
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
        drop(self.postgres.take());
        if std::env::var_os("MOOLAI_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.env.log_dir);
        }
    }
}
