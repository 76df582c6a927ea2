//! End-to-end harness: starts the service binaries as separate processes against the real
//! NATS and PostgreSQL of this machine, each run with its own database and subject prefix,
//! and drives them with WebSocket clients and HTTP.
//!
//! The binaries are taken from the cargo target directory next to the test executable; the
//! README's test command builds them first (`cargo build --workspace --bins`).

pub mod client;
pub mod scenario;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use moolai_store_postgres::testing::TestDatabase;

/// The broker the tests use (override with `MOOLAI_TEST_NATS_URL`).
#[must_use]
pub fn nats_url() -> String {
    std::env::var("MOOLAI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A subject prefix no other test uses.
#[must_use]
pub fn unique_prefix() -> String {
    format!("e2e{}", uuid::Uuid::new_v4().simple())
}

/// Directory holding the workspace's binaries.
///
/// # Errors
/// When the binaries have not been built.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test-exe>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .context("cannot locate the target directory")?
        .to_path_buf();
    for bin in ["moolai-ws-edge", "moolai-state", "moolai-api"] {
        if !dir.join(bin).exists() {
            bail!(
                "{} not found in {}: run `cargo build --workspace --bins` first",
                bin,
                dir.display()
            );
        }
    }
    Ok(dir)
}

/// A free TCP port on 127.0.0.1 for a service to listen on: bound once to check, then
/// released. Two rules keep the port from being taken before the service binds it:
/// - never the same port twice in one process (the kernel may hand a just-released port out
///   again, and one stack asks for several in a row: an api with its own metrics port equal
///   to its listening port refuses to start);
/// - below the kernel's ephemeral range where it can: clients (a simulator opens up to
///   100,000 connections) take their source ports from that range, and a service restarted
///   on a port one of them holds could not bind it again.
///
/// # Errors
/// When nothing can be bound.
pub fn free_port() -> anyhow::Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000u16, ephemeral_low.saturating_sub(1));
    let below_ephemeral = (high > low).then_some(low..high);
    for _ in 0..2_000 {
        let wanted = below_ephemeral.clone().map_or(0, rand::random_range);
        let Ok(listener) = TcpListener::bind(("127.0.0.1", wanted)) else {
            continue;
        };
        let port = listener.local_addr()?.port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1 that this process has not handed out already")
}

/// One service process, killed when dropped.
pub struct Service {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Service {
    /// Sends SIGTERM and waits up to `deadline` for a clean exit; returns the exit status.
    ///
    /// # Errors
    /// When the process does not stop in time.
    pub fn terminate(&mut self, deadline: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} already stopped", self.name)
        };
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if start.elapsed() > deadline {
                bail!("{} did not exit within {deadline:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL (no cleanup of any kind) and reaps it.
    ///
    /// # Errors
    /// When the process was already stopped.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("{} already stopped", self.name)
        };
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// The operating system's id of the process, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (false once it exited by itself or was stopped).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process's log so far (stderr and stdout).
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Settings every process of one stack shares.
#[derive(Clone)]
pub struct StackEnv {
    pub database_url: String,
    pub prefix: String,
    pub vars: Vec<(String, String)>,
    pub log_dir: PathBuf,
}

impl StackEnv {
    /// Starts one binary with the stack's environment plus `extra`.
    ///
    /// # Errors
    /// When the binary cannot be started.
    pub fn spawn(
        &self,
        bin: &str,
        name: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        self.spawn_with_args(bin, name, &[], extra)
    }

    /// Starts one binary with arguments.
    ///
    /// # Errors
    /// When the binary cannot be started.
    pub fn spawn_with_args(
        &self,
        bin: &str,
        name: &str,
        args: &[&str],
        extra: &[(&str, String)],
    ) -> anyhow::Result<Service> {
        let log = self.log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin_dir()?.join(bin));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("NATS_URL", nats_url())
            .env("NATS_SUBJECT_PREFIX", &self.prefix)
            .env("CONTROLLER_HOST", "127.0.0.1")
            .env("RUST_LOG", "info,moolai=debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().with_context(|| format!("starting {bin}"))?;
        Ok(Service {
            name: name.to_owned(),
            child: Some(child),
            log,
        })
    }
}

/// A running topology: edges, state replicas and one api.
pub struct Stack {
    pub env: StackEnv,
    pub db: Option<TestDatabase>,
    pub edges: Vec<(Service, u16)>,
    pub states: Vec<Service>,
    pub api: Option<(Service, u16)>,
    pub admin_password: String,
    /// Metrics listener of each process: (process name, port).
    pub metrics: Vec<(String, u16)>,
}

/// Options of a test stack.
pub struct StackOptions {
    pub edges: usize,
    pub states: usize,
    pub heartbeat_ttl_sec: u64,
    pub extra: Vec<(String, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            edges: 2,
            states: 1,
            heartbeat_ttl_sec: 120,
            extra: Vec::new(),
        }
    }
}

impl Stack {
    /// Creates a database, migrates it with `moolai-state migrate`, starts the processes and
    /// waits until the api answers its health check.
    ///
    /// # Errors
    /// When anything fails to start; the logs are in the error.
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let db = TestDatabase::create().await;
        let prefix = unique_prefix();
        let log_dir = std::env::temp_dir().join(format!("moolai-{prefix}"));
        std::fs::create_dir_all(&log_dir)?;
        let admin_password = uuid::Uuid::new_v4().simple().to_string();
        let mut vars = vec![
            (
                "HEARTBEAT_TTL_SEC".to_owned(),
                options.heartbeat_ttl_sec.to_string(),
            ),
            ("HEARTBEAT_INTERVAL_SEC".to_owned(), "1".to_owned()),
            ("HEARTBEAT_FLUSH_INTERVAL_MS".to_owned(), "50".to_owned()),
            ("SWEEP_INTERVAL_SEC".to_owned(), "1".to_owned()),
            ("MOOLAI_ADMIN_USERNAME".to_owned(), "admin".to_owned()),
            ("MOOLAI_ADMIN_PASSWORD".to_owned(), admin_password.clone()),
        ];
        vars.extend(options.extra);
        let env = StackEnv {
            database_url: db.url(),
            prefix,
            vars,
            log_dir,
        };

        let mut migrate = env.spawn_with_args("moolai-state", "migrate", &["migrate"], &[])?;
        let status = wait_exit(&mut migrate, Duration::from_secs(30))?;
        if !status.success() {
            bail!("moolai-state migrate failed: {}", migrate.log_text());
        }

        let mut stack = Self {
            env,
            db: Some(db),
            edges: Vec::new(),
            states: Vec::new(),
            api: None,
            admin_password,
            metrics: Vec::new(),
        };
        for i in 0..options.states {
            let metrics = free_port()?;
            let name = format!("state{i}");
            let s = stack.env.spawn(
                "moolai-state",
                &name,
                &[("STATE_METRICS_PORT", metrics.to_string())],
            )?;
            stack.states.push(s);
            stack.metrics.push((name, metrics));
        }
        for i in 0..options.edges {
            stack.start_edge(i)?;
        }
        let api_port = free_port()?;
        let api_metrics = free_port()?;
        let api = stack.env.spawn(
            "moolai-api",
            "api",
            &[
                ("CONTROLLER_PORT", api_port.to_string()),
                ("API_METRICS_PORT", api_metrics.to_string()),
            ],
        )?;
        stack.api = Some((api, api_port));
        stack.metrics.push(("api".into(), api_metrics));

        let http = reqwest::Client::new();
        let health = format!("{}/health", stack.api_url());
        wait_until(Duration::from_secs(30), "the api to become healthy", || {
            let http = http.clone();
            let health = health.clone();
            async move {
                matches!(http.get(&health).send().await, Ok(r) if r.status().is_success())
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", stack.logs()))?;
        for (_, port) in &stack.edges {
            let port = *port;
            wait_until(
                Duration::from_secs(30),
                "an edge to listen",
                || async move {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n{}", stack.logs()))?;
        }
        Ok(stack)
    }

    /// Starts edge number `i` on a fresh port.
    ///
    /// # Errors
    /// When the process cannot be started.
    pub fn start_edge(&mut self, i: usize) -> anyhow::Result<u16> {
        let port = free_port()?;
        let metrics = free_port()?;
        let name = format!("edge{i}-{port}");
        let edge = self.env.spawn(
            "moolai-ws-edge",
            &name,
            &[
                ("WS_EDGE_PORT", port.to_string()),
                ("WS_EDGE_METRICS_PORT", metrics.to_string()),
                ("EDGE_ID", format!("edge{i}")),
            ],
        )?;
        self.edges.push((edge, port));
        self.metrics.push((name, metrics));
        Ok(port)
    }

    #[must_use]
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api.as_ref().map_or(0, |a| a.1))
    }

    #[must_use]
    pub fn edge_url(&self, i: usize, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.edges[i].1)
    }

    /// The Prometheus text of the process named `name`.
    ///
    /// # Errors
    /// When the process is unknown or does not answer.
    pub async fn scrape(&self, name_prefix: &str) -> anyhow::Result<String> {
        let port = self
            .metrics
            .iter()
            .find(|(n, _)| n.starts_with(name_prefix))
            .map(|(_, p)| *p)
            .with_context(|| format!("no process named {name_prefix}"))?;
        Ok(reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// Every process's log, for failure messages.
    #[must_use]
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let all = self
            .edges
            .iter()
            .map(|(s, _)| s)
            .chain(self.states.iter())
            .chain(self.api.iter().map(|(s, _)| s));
        for s in all {
            let text = s.log_text();
            let tail: String = text
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            out.push_str(&format!("---- {} ----\n{tail}\n", s.name));
        }
        out
    }

    /// Logs in as the configured admin and returns the bearer token.
    ///
    /// # Errors
    /// When login fails.
    pub async fn login(&self) -> anyhow::Result<String> {
        login_admin(&self.api_url(), &self.admin_password).await
    }

    /// Stops every process and drops the database.
    pub async fn shutdown(mut self) {
        self.edges.clear();
        self.states.clear();
        self.api = None;
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}

fn wait_exit(s: &mut Service, deadline: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let start = Instant::now();
    let child = s.child.as_mut().context("not running")?;
    loop {
        if let Some(st) = child.try_wait()? {
            s.child = None;
            return Ok(st);
        }
        if start.elapsed() > deadline {
            bail!("{} still running after {deadline:?}", s.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Logs in to the api at `api_url` as `admin` with `password`; returns the session token.
///
/// # Errors
/// When login fails.
pub async fn login_admin(api_url: &str, password: &str) -> anyhow::Result<String> {
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!("{api_url}/api/v1/internal/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    response["user"]["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token in the login response")
}

/// Polls `check` every 25 ms until it returns true or `deadline` passes.
///
/// # Errors
/// When the deadline passes, naming what was awaited.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Ok(());
        }
        if start.elapsed() > deadline {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice_and_can_be_bound() {
        let mut seen = BTreeSet::new();
        for _ in 0..500 {
            let port = free_port().expect("a free port");
            assert!(seen.insert(port), "port {port} handed out twice");
            TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
        }
    }
}
