//! One benchmark run's world: its database, subject prefix, service processes, simulator
//! processes and the sampler watching all of them. [`Bench::cleanup`] stops every process
//! and drops the database, and runs whether the benchmark succeeded, failed or was
//! interrupted.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::db::{Database, track_backends};
use crate::procs::{Proc, Sampler, Spawn, Who};

/// Where things are; from the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Directory of the release binaries (default: this executable's directory).
    #[arg(long, global = true)]
    pub bin_dir: Option<PathBuf>,
    /// Administrative PostgreSQL URL (databases are created and dropped through it).
    #[arg(
        long,
        global = true,
        env = "MOOLAI_BENCH_ADMIN_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_database_url: String,
    #[arg(
        long,
        global = true,
        env = "MOOLAI_BENCH_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// Logs of every process go under this directory.
    #[arg(long, global = true, default_value = "target/bench")]
    pub work_dir: PathBuf,
    /// Also append the markdown section to this file.
    #[arg(long, global = true)]
    pub out: Option<PathBuf>,
}

/// The latest progress report of a simulator process (its `--json` lines).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SimProgress {
    pub connected: usize,
    pub handshakes: u64,
    pub handshake_p50_ms: Option<f64>,
    pub handshake_p99_ms: Option<f64>,
    pub handshake_max_ms: Option<f64>,
    pub heartbeats_sent: u64,
    pub reconnects: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// A running simulator: its latest progress report, updated every `--report-every-sec`.
#[derive(Clone)]
pub struct SimHandle {
    latest: Arc<Mutex<Option<(Instant, SimProgress)>>>,
}

impl SimHandle {
    #[must_use]
    pub fn latest(&self) -> Option<SimProgress> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, p)| p.clone())
    }

    /// Waits until `check` holds for the latest report; returns it.
    ///
    /// # Errors
    /// When `deadline` passes, with the last report.
    pub async fn wait_for(
        &self,
        deadline: Duration,
        what: &str,
        check: impl Fn(&SimProgress) -> bool,
    ) -> anyhow::Result<SimProgress> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(p) = self.latest()
                && check(&p)
            {
                return Ok(p);
            }
            if Instant::now() > until {
                bail!(
                    "timed out after {deadline:?} waiting for {what}; last simulator report: {:?}",
                    self.latest()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

pub struct Bench {
    pub common: Common,
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub prefix: String,
    pub admin_password: String,
    /// Enrollment token of the `bench` organization: every simulated orchestrator and probe
    /// registers with it (`ORCHESTRATOR_AUTH=token`, the default).
    pub enrollment_token: String,
    pub db: Option<Database>,
    /// Small pool on the administrative database (pg_stat_activity, pg_stat_database).
    pub admin: PgPool,
    pub procs: Vec<Proc>,
    pub sampler: Sampler,
    pub http: reqwest::Client,
    backends: Arc<Mutex<Vec<u32>>>,
    stop: CancellationToken,
}

/// The organization every benchmark's orchestrators enroll in.
pub const BENCH_ORGANIZATION: &str = "bench";

pub use moolai_e2e::free_port;

impl Bench {
    /// # Errors
    /// When the binaries or PostgreSQL are missing.
    pub async fn new(common: Common, name: &str) -> anyhow::Result<Self> {
        let bin_dir = match &common.bin_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("no executable directory")?
                .to_path_buf(),
        };
        for bin in [
            "moolai-ws-edge",
            "moolai-state",
            "moolai-api",
            "moolai-simulator",
        ] {
            if !bin_dir.join(bin).exists() {
                bail!(
                    "{bin} not found in {}: run `cargo build --release --locked --workspace --bins` first",
                    bin_dir.display()
                );
            }
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        let log_dir = common.work_dir.join(format!("{name}-{stamp}"));
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let admin = PgPoolOptions::new()
            .max_connections(3)
            .connect(&common.admin_database_url)
            .await
            .with_context(|| format!("connecting to {}", common.admin_database_url))?;
        let sampler = Sampler::start(Duration::from_secs(1));
        sampler.add("nats-server", Who::Comm("nats-server".into()));
        sampler.add("postgres (all processes)", Who::Comm("postgres".into()));
        Ok(Self {
            bin_dir,
            log_dir,
            prefix: format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            admin_password: uuid::Uuid::new_v4().simple().to_string(),
            enrollment_token: String::new(),
            db: None,
            admin,
            procs: Vec::new(),
            sampler,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            backends: Arc::default(),
            stop: CancellationToken::new(),
            common,
        })
    }

    pub fn db(&self) -> anyhow::Result<&Database> {
        self.db.as_ref().context("no database yet")
    }

    /// Creates the run's database and migrates it with `moolai-state migrate`.
    ///
    /// # Errors
    /// When creation or migration fails.
    pub async fn create_database(&mut self) -> anyhow::Result<()> {
        let db = Database::create(&self.common.admin_database_url).await?;
        eprintln!("database {}", db.name);
        track_backends(
            self.admin.clone(),
            db.name.clone(),
            self.backends.clone(),
            self.stop.clone(),
        );
        self.sampler.add(
            "postgres (bench db backends)",
            Who::Pids(self.backends.clone()),
        );
        self.db = Some(db);
        let (mut migrate, _) = Proc::spawn(Spawn {
            name: "migrate",
            bin: &self.bin_dir.join("moolai-state"),
            args: vec!["migrate".into()],
            env: self.service_env(&[])?,
            log_dir: &self.log_dir,
            pipe_stderr: false,
        })?;
        let status = migrate.wait(Duration::from_secs(60)).await?;
        if !status.success() {
            bail!("moolai-state migrate failed:\n{}", migrate.log_tail(30));
        }
        let (mut enroll, _) = Proc::spawn(Spawn {
            name: "enrollment-token",
            bin: &self.bin_dir.join("moolai-api"),
            args: [
                "admin",
                "create-enrollment-token",
                "--organization",
                BENCH_ORGANIZATION,
                "--name",
                "bench",
            ]
            .map(String::from)
            .to_vec(),
            env: self.service_env(&[])?,
            log_dir: &self.log_dir,
            pipe_stderr: false,
        })?;
        let status = enroll.wait(Duration::from_secs(60)).await?;
        let output = std::fs::read_to_string(&enroll.log).unwrap_or_default();
        // The token is printed once; keep it out of the log directory.
        let _ = std::fs::remove_file(&enroll.log);
        self.enrollment_token = output
            .split_whitespace()
            .find(|w| w.starts_with("moo_enr_"))
            .map(str::to_owned)
            .with_context(|| {
                format!(
                    "no enrollment token from `moolai-api admin create-enrollment-token` ({status})"
                )
            })?;
        Ok(())
    }

    /// The environment every service shares, plus `extra`.
    ///
    /// # Errors
    /// Before the database exists.
    pub fn service_env(&self, extra: &[(&str, String)]) -> anyhow::Result<Vec<(String, String)>> {
        let mut env = vec![
            ("DATABASE_URL".to_owned(), self.db()?.url.clone()),
            ("NATS_URL".to_owned(), self.common.nats_url.clone()),
            ("NATS_SUBJECT_PREFIX".to_owned(), self.prefix.clone()),
            ("CONTROLLER_HOST".to_owned(), "127.0.0.1".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
            ("MOOLAI_ADMIN_USERNAME".to_owned(), "admin".to_owned()),
            (
                "MOOLAI_ADMIN_PASSWORD".to_owned(),
                self.admin_password.clone(),
            ),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push(((*k).to_owned(), v.clone()));
        }
        Ok(env)
    }

    fn spawn_service(
        &mut self,
        name: &str,
        bin: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<u32> {
        let env = self.service_env(extra)?;
        let (proc, _) = Proc::spawn(Spawn {
            name,
            bin: &self.bin_dir.join(bin),
            args: Vec::new(),
            env,
            log_dir: &self.log_dir,
            pipe_stderr: false,
        })?;
        let pid = proc.pid;
        self.sampler.add(name, Who::Pid(pid));
        self.procs.push(proc);
        Ok(pid)
    }

    /// Starts `moolai-state`; returns its metrics port once it answers.
    ///
    /// # Errors
    /// When it does not start.
    pub async fn start_state(
        &mut self,
        name: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<u16> {
        let metrics = free_port()?;
        let mut env = vec![("STATE_METRICS_PORT", metrics.to_string())];
        env.extend(extra.iter().cloned());
        self.spawn_service(name, "moolai-state", &env)?;
        self.wait_http(name, &format!("http://127.0.0.1:{metrics}/healthz"))
            .await?;
        Ok(metrics)
    }

    /// Starts `moolai-ws-edge` on `port`; returns its metrics port once it listens.
    ///
    /// # Errors
    /// When it does not start.
    pub async fn start_edge(
        &mut self,
        name: &str,
        port: u16,
        extra: &[(&str, String)],
    ) -> anyhow::Result<u16> {
        let metrics = free_port()?;
        let mut env = vec![
            ("WS_EDGE_PORT", port.to_string()),
            ("WS_EDGE_METRICS_PORT", metrics.to_string()),
            ("EDGE_ID", "bench-edge".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        self.spawn_service(name, "moolai-ws-edge", &env)?;
        self.wait_http(name, &format!("http://127.0.0.1:{metrics}/healthz"))
            .await?;
        let until = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > until {
                bail!("{name} does not listen on {port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(metrics)
    }

    /// Starts `moolai-api`; returns (port, metrics port) once `/health` answers 200.
    ///
    /// # Errors
    /// When it does not start.
    pub async fn start_api(
        &mut self,
        name: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<(u16, u16)> {
        let port = free_port()?;
        let metrics = free_port()?;
        let mut env = vec![
            ("CONTROLLER_PORT", port.to_string()),
            ("API_METRICS_PORT", metrics.to_string()),
        ];
        env.extend(extra.iter().cloned());
        self.spawn_service(name, "moolai-api", &env)?;
        self.wait_http(name, &format!("http://127.0.0.1:{port}/health"))
            .await?;
        Ok((port, metrics))
    }

    async fn wait_http(&mut self, name: &str, url: &str) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            let alive = self.proc_mut(name).is_some_and(Proc::running);
            if !alive || Instant::now() > until {
                let tail = self.proc(name).map(|p| p.log_tail(30)).unwrap_or_default();
                bail!("{name} did not become ready at {url}:\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[must_use]
    pub fn proc(&self, name: &str) -> Option<&Proc> {
        self.procs.iter().find(|p| p.name == name)
    }

    pub fn proc_mut(&mut self, name: &str) -> Option<&mut Proc> {
        self.procs.iter_mut().find(|p| p.name == name)
    }

    /// Stops a process (`signal`, then SIGKILL after `deadline`) and forgets it.
    pub async fn stop_proc(&mut self, name: &str, signal: &str, deadline: Duration) {
        if let Some(i) = self.procs.iter().position(|p| p.name == name) {
            let mut p = self.procs.remove(i);
            p.stop(signal, deadline).await;
            self.sampler.remove(name);
        }
    }

    /// Starts a `moolai-simulator` process with `args` (plus `--json --report-every-sec 1`).
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn start_simulator(&mut self, name: &str, args: &[String]) -> anyhow::Result<SimHandle> {
        let mut all: Vec<String> = args.to_vec();
        all.extend(["--json".into(), "--report-every-sec".into(), "1".into()]);
        let (proc, stderr) = Proc::spawn(Spawn {
            name,
            bin: &self.bin_dir.join("moolai-simulator"),
            args: all,
            env: vec![
                ("RUST_LOG".into(), "warn".into()),
                ("MOOLAI_SIM_TOKEN".into(), self.enrollment_token.clone()),
            ],
            log_dir: &self.log_dir,
            pipe_stderr: true,
        })?;
        let latest: Arc<Mutex<Option<(Instant, SimProgress)>>> = Arc::default();
        if let Some(stderr) = stderr {
            let latest = latest.clone();
            let log = self.log_dir.join(format!("{name}.stderr.log"));
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                let mut file = tokio::fs::File::create(&log).await.ok();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with('{')
                        && let Ok(p) = serde_json::from_str::<SimProgress>(&line)
                    {
                        *latest.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some((Instant::now(), p));
                        continue;
                    }
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                    }
                }
            });
        }
        self.sampler.add(name, Who::Pid(proc.pid));
        self.procs.push(proc);
        Ok(SimHandle { latest })
    }

    /// Logs in as the configured admin.
    ///
    /// # Errors
    /// When login fails.
    pub async fn login(&self, api_port: u16) -> anyhow::Result<String> {
        moolai_e2e::login_admin(
            &format!("http://127.0.0.1:{api_port}"),
            &self.admin_password,
        )
        .await
    }

    /// Stops every process (newest first: simulators before the services they talk to) and
    /// drops the database.
    pub async fn cleanup(&mut self) {
        while let Some(mut p) = self.procs.pop() {
            let signal = if p.name.starts_with("sim") {
                "INT"
            } else {
                "TERM"
            };
            p.stop(signal, Duration::from_secs(20)).await;
        }
        self.stop.cancel();
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}
