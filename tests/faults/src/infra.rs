//! Private NATS and PostgreSQL instances the harness can kill and restart without touching the
//! machine's own (which other tests use at the same time).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use moolai_e2e::{free_port, wait_until};

/// A `nats-server` of its own on a fixed port, so clients reconnect to the same address.
pub struct PrivateNats {
    pub port: u16,
    bin: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts `nats-server` (`MOOLAI_TEST_NATS_SERVER`, else `/usr/sbin/nats-server`, else the
    /// one on `PATH`) on a free port and waits until it accepts connections.
    ///
    /// # Errors
    /// When the server binary is missing or does not start.
    pub async fn start(log_dir: &Path) -> anyhow::Result<Self> {
        let bin = std::env::var_os("MOOLAI_TEST_NATS_SERVER")
            .map(PathBuf::from)
            .or_else(|| {
                let debian = PathBuf::from("/usr/sbin/nats-server");
                debian.exists().then_some(debian)
            })
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        let mut nats = Self {
            port: free_port()?,
            bin,
            log: log_dir.join("nats.log"),
            child: None,
        };
        nats.launch().await?;
        Ok(nats)
    }

    #[must_use]
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (install nats-server or set MOOLAI_TEST_NATS_SERVER)",
                    self.bin.display()
                )
            })?;
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(10), "nats-server to listen", || {
            listening(port)
        })
        .await
    }

    /// SIGKILL: the broker vanishes with every subscription and buffered message.
    ///
    /// # Errors
    /// When it was not running.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("nats-server is not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Starts the broker again on the same port.
    ///
    /// # Errors
    /// When it does not come back.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("nats-server is still running");
        }
        self.launch().await
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A PostgreSQL cluster of its own (initdb in a temporary directory), stopped and started with
/// `pg_ctl`. As root, the cluster belongs to the `postgres` user (PostgreSQL refuses root).
pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    as_user: Option<&'static str>,
    running: bool,
}

impl PrivatePostgres {
    /// Creates and starts a cluster (trust authentication, fsync off: it is thrown away).
    ///
    /// # Errors
    /// When PostgreSQL's server binaries are missing or the cluster does not start.
    pub async fn start(log_dir: &Path) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let dir = log_dir.join("pgdata");
        std::fs::create_dir_all(&dir)?;
        // PostgreSQL refuses to run as root: then the cluster runs as `postgres`.
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let as_user = is_root.then_some("postgres");
        if let Some(user) = as_user {
            run(Command::new("chown").args(["-R", user, &path_str(log_dir)?]))?;
        }
        let pg = Self {
            port: free_port()?,
            bin,
            dir,
            as_user,
            running: false,
        };
        run(&mut pg.command(
            "initdb",
            &[
                "-D",
                &path_str(&pg.dir)?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        ))?;
        let mut pg = pg;
        pg.start_again().await?;
        Ok(pg)
    }

    /// URL of database `name` on this cluster.
    #[must_use]
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program).args(args);
                c
            }
            None => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
        }
    }

    /// Stops the cluster the way a crash would (`pg_ctl stop -m immediate`): connections are
    /// cut, nothing is flushed, recovery runs at the next start.
    ///
    /// # Errors
    /// When `pg_ctl` fails.
    pub fn crash(&mut self) -> anyhow::Result<()> {
        run(&mut self.command(
            "pg_ctl",
            &["-D", &path_str(&self.dir)?, "-m", "immediate", "-w", "stop"],
        ))?;
        self.running = false;
        Ok(())
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    ///
    /// # Errors
    /// When it does not start.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let dir = path_str(&self.dir)?;
        let options = format!(
            "-p {} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port
        );
        let log = format!("{dir}/postgres.log");
        run(&mut self.command(
            "pg_ctl",
            &["-D", &dir, "-l", &log, "-o", &options, "-w", "start"],
        ))?;
        self.running = true;
        let port = self.port;
        wait_until(Duration::from_secs(30), "PostgreSQL to listen", || {
            listening(port)
        })
        .await
    }

    /// Creates the database `moolai` (see [`url`](Self::url)).
    ///
    /// # Errors
    /// When PostgreSQL refuses.
    pub async fn create_database(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        sqlx::raw_sql("CREATE DATABASE moolai")
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running
            && let Ok(dir) = path_str(&self.dir)
        {
            let _ = self
                .command("pg_ctl", &["-D", &dir, "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `MOOLAI_TEST_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MOOLAI_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context(
            "PostgreSQL server binaries not found in /usr/lib/postgresql (set MOOLAI_TEST_PG_BIN)",
        )?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no initdb under /usr/lib/postgresql/*/bin (set MOOLAI_TEST_PG_BIN)")
}

fn path_str(p: &Path) -> anyhow::Result<String> {
    p.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}
