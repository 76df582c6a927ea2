//! Processes: the ones the bench starts (killed when the bench ends, however it ends) and the
//! sampler that reads CPU time and RSS of every process of interest from `/proc`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// One child process of the bench; killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
    child: Child,
}

/// How to start a process.
pub struct Spawn<'a> {
    pub name: &'a str,
    pub bin: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log_dir: &'a Path,
    /// Capture stderr here instead of the log file (the simulator's progress lines).
    pub pipe_stderr: bool,
}

impl Proc {
    /// # Errors
    /// When the binary cannot be started.
    pub fn spawn(s: Spawn<'_>) -> anyhow::Result<(Self, Option<tokio::process::ChildStderr>)> {
        let log = s.log_dir.join(format!("{}.log", s.name));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(s.bin);
        cmd.args(&s.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .kill_on_drop(true);
        if s.pipe_stderr {
            cmd.stderr(Stdio::piped());
        } else {
            cmd.stderr(file);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", s.bin.display()))?;
        let pid = child.id().context("child has no pid")?;
        let stderr = child.stderr.take();
        Ok((
            Self {
                name: s.name.to_owned(),
                pid,
                log,
                child,
            },
            stderr,
        ))
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal`, waits up to `deadline` for the exit, then kills.
    pub async fn stop(
        &mut self,
        signal: &str,
        deadline: Duration,
    ) -> Option<std::process::ExitStatus> {
        if !self.running() {
            return self.child.try_wait().ok().flatten();
        }
        self.signal(signal);
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        }
    }

    /// Waits for the process to exit by itself.
    ///
    /// # Errors
    /// On timeout or when waiting fails.
    pub async fn wait(&mut self, deadline: Duration) -> anyhow::Result<std::process::ExitStatus> {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(r) => Ok(r?),
            Err(_) => bail!("{} still running after {deadline:?}", self.name),
        }
    }

    /// The last `lines` lines of the log.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Proportional set size of a process, in KiB: shared pages are divided among the processes
/// sharing them, so a sum over PostgreSQL's processes does not count shared buffers N times.
fn pss_kib(pid: u32) -> Option<u64> {
    // Walking a PostgreSQL backend's mappings is not free (the kernel's `smaps_account`
    // showed in profiles): each process is read at most every 5 s.
    static CACHE: Mutex<Option<HashMap<u32, (std::time::Instant, u64)>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some((at, kib)) = cache.get(&pid)
        && at.elapsed() < Duration::from_secs(5)
    {
        return Some(*kib);
    }
    let kib = read_pss_kib(pid)?;
    cache.insert(pid, (std::time::Instant::now(), kib));
    Some(kib)
}

fn read_pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Every process: pid, command name, CPU ticks.
fn all_processes() -> Vec<(u32, String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let comm = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_owned();
            Some((pid, comm, cpu_ticks(pid)?))
        })
        .collect()
}

/// Pids whose `comm` is `name`.
fn pids_by_comm(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// Busy, total and softirq jiffies of the whole machine (`/proc/stat`).
fn machine_jiffies() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total, *v.get(6).unwrap_or(&0)))
}

/// Which processes make up one row of the report.
#[derive(Clone)]
pub enum Who {
    Pid(u32),
    /// Every process with this `comm` (`nats-server`, `postgres`).
    Comm(String),
    /// PostgreSQL backends connected to this database (refreshed by the caller).
    Pids(Arc<Mutex<Vec<u32>>>),
}

#[derive(Clone, Copy, Default)]
struct Point {
    /// Cumulative CPU ticks of the group since it was added (per-pid deltas, so processes
    /// that come and go are counted while they live).
    ticks: u64,
    rss_kib: u64,
    pids: usize,
}

#[derive(Clone)]
struct Sample {
    at: Instant,
    groups: HashMap<String, Point>,
    machine: (u64, u64, u64),
    compiling: bool,
    /// Cumulative CPU ticks of every process on the machine, by command name.
    by_comm: HashMap<String, u64>,
}

#[derive(Default)]
struct SamplerState {
    groups: Vec<(String, Who)>,
    last_ticks: HashMap<(String, u32), u64>,
    cumulative: HashMap<String, u64>,
    samples: Vec<Sample>,
    all_last: HashMap<u32, u64>,
    all_by_comm: HashMap<String, u64>,
}

/// Reads `/proc` every period for each registered group.
#[derive(Clone)]
pub struct Sampler {
    state: Arc<Mutex<SamplerState>>,
    clk: f64,
}

/// CPU and memory of one group over a window.
pub struct Usage {
    pub name: String,
    /// Percent of one core (200 % = both cores of this machine).
    pub cpu_pct: f64,
    pub rss_last_kib: u64,
    pub rss_max_kib: u64,
    pub pids: usize,
}

/// Everything measured over a window.
pub struct WindowUsage {
    pub groups: Vec<Usage>,
    /// The whole machine, percent of one core.
    pub machine_pct: f64,
    /// A `rustc` was running during the window (another engineer's compile).
    pub compiling: bool,
    pub seconds: f64,
    /// The busiest commands on the whole machine (percent of one core), ours included.
    pub top: Vec<(String, f64)>,
    /// Kernel softirq time (loopback TCP is processed there), percent of one core.
    pub softirq_pct: f64,
}

impl Sampler {
    /// Starts sampling every `period` until the returned sampler is dropped everywhere.
    #[must_use]
    pub fn start(period: Duration) -> Self {
        let sampler = Self {
            state: Arc::default(),
            clk: clock_ticks(),
        };
        let weak = Arc::downgrade(&sampler.state);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                let Some(state) = weak.upgrade() else { return };
                tokio::task::spawn_blocking(move || sample_once(&state))
                    .await
                    .ok();
            }
        });
        sampler
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SamplerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, name: &str, who: Who) {
        let mut s = self.lock();
        s.groups.retain(|(n, _)| n != name);
        s.groups.push((name.to_owned(), who));
    }

    pub fn remove(&self, name: &str) {
        self.lock().groups.retain(|(n, _)| n != name);
    }

    /// Takes a sample now (so a window can start or end exactly here).
    pub async fn sample_now(&self) {
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || sample_once(&state)).await;
    }

    /// Usage between two instants (the samples nearest inside the window).
    #[must_use]
    pub fn window(&self, from: Instant, to: Instant) -> WindowUsage {
        let s = self.lock();
        let inside: Vec<&Sample> = s
            .samples
            .iter()
            .filter(|x| x.at >= from && x.at <= to)
            .collect();
        let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
            return WindowUsage {
                groups: Vec::new(),
                machine_pct: 0.0,
                compiling: false,
                seconds: 0.0,
                top: Vec::new(),
                softirq_pct: 0.0,
            };
        };
        let secs = (last.at - first.at).as_secs_f64().max(1e-9);
        let mut groups = Vec::new();
        for (name, _) in &s.groups {
            let (Some(a), Some(b)) = (first.groups.get(name), last.groups.get(name)) else {
                continue;
            };
            let max = inside
                .iter()
                .filter_map(|x| x.groups.get(name))
                .map(|p| p.rss_kib)
                .max()
                .unwrap_or(0);
            groups.push(Usage {
                name: name.clone(),
                cpu_pct: b.ticks.saturating_sub(a.ticks) as f64 / self.clk / secs * 100.0,
                rss_last_kib: b.rss_kib,
                rss_max_kib: max,
                pids: b.pids,
            });
        }
        let (busy_a, total_a, soft_a) = first.machine;
        let (busy_b, total_b, soft_b) = last.machine;
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let share = |jiffies: u64| {
            if total_b > total_a {
                jiffies as f64 / (total_b - total_a) as f64 * 100.0 * cores
            } else {
                0.0
            }
        };
        let mut top: Vec<(String, f64)> = last
            .by_comm
            .iter()
            .map(|(comm, t)| {
                let before = first.by_comm.get(comm).copied().unwrap_or(*t);
                (
                    comm.clone(),
                    t.saturating_sub(before) as f64 / self.clk / secs * 100.0,
                )
            })
            .filter(|(_, pct)| *pct >= 1.0)
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(8);
        WindowUsage {
            groups,
            machine_pct: share(busy_b.saturating_sub(busy_a)),
            compiling: inside.iter().any(|x| x.compiling),
            seconds: secs,
            top,
            softirq_pct: share(soft_b.saturating_sub(soft_a)),
        }
    }

    /// Latest RSS of a group, KiB.
    #[must_use]
    pub fn rss_now(&self, name: &str) -> Option<u64> {
        let s = self.lock();
        s.samples
            .last()
            .and_then(|x| x.groups.get(name))
            .map(|p| p.rss_kib)
    }
}

/// (pid, CPU ticks, memory KiB)
type Reading = (u32, u64, u64);

fn sample_once(state: &Mutex<SamplerState>) {
    let groups: Vec<(String, Who)> = state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .groups
        .clone();
    let mut readings: Vec<(String, Vec<Reading>)> = Vec::new();
    for (name, who) in &groups {
        let (pids, proportional) = match who {
            Who::Pid(p) => (vec![*p], false),
            Who::Comm(c) => (pids_by_comm(c), true),
            Who::Pids(list) => (
                list.lock().unwrap_or_else(PoisonError::into_inner).clone(),
                true,
            ),
        };
        let memory = |pid| {
            if proportional {
                pss_kib(pid)
            } else {
                rss_kib(pid)
            }
        };
        let r = pids
            .into_iter()
            .filter_map(|pid| Some((pid, cpu_ticks(pid)?, memory(pid).unwrap_or(0))))
            .collect();
        readings.push((name.clone(), r));
    }
    let machine = machine_jiffies().unwrap_or((0, 0, 0));
    let everyone = all_processes();
    let compiling = everyone.iter().any(|(_, comm, _)| comm == "rustc");
    let at = Instant::now();

    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
    let mut seen = HashMap::with_capacity(everyone.len());
    for (pid, comm, ticks) in everyone {
        let prev = s.all_last.get(&pid).copied().unwrap_or(ticks);
        *s.all_by_comm.entry(comm).or_default() += ticks.saturating_sub(prev);
        seen.insert(pid, ticks);
    }
    s.all_last = seen;
    let by_comm = s.all_by_comm.clone();
    let mut points = HashMap::new();
    for (name, r) in readings {
        let mut rss = 0;
        for &(pid, ticks, rss_kib) in &r {
            let key = (name.clone(), pid);
            // A process first seen counts from its first sample on.
            let prev = *s.last_ticks.get(&key).unwrap_or(&ticks);
            s.last_ticks.insert(key, ticks);
            *s.cumulative.entry(name.clone()).or_default() += ticks.saturating_sub(prev);
            rss += rss_kib;
        }
        points.insert(
            name.clone(),
            Point {
                ticks: *s.cumulative.get(&name).unwrap_or(&0),
                rss_kib: rss,
                pids: r.len(),
            },
        );
    }
    s.samples.push(Sample {
        at,
        groups: points,
        machine,
        compiling,
        by_comm,
    });
}

/// Kernel socket memory (`/proc/net/sockstat`): TCP sockets in use and pages of buffers.
#[must_use]
pub fn sockstat() -> String {
    std::fs::read_to_string("/proc/net/sockstat")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .unwrap_or_default()
        .to_owned()
}

/// This process's open-file limit (soft, or hard).
#[must_use]
pub fn open_file_limit(hard: bool) -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(if hard { 4 } else { 3 }))
        .and_then(|v| v.parse().ok())
}
