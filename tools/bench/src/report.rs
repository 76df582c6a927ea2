//! Markdown pieces: the machine, and CPU/RSS tables from the sampler.

use std::fmt::Write as _;

use crate::procs::WindowUsage;

fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Date, CPU, memory, kernel, PostgreSQL and NATS versions, the commit.
#[must_use]
pub fn machine(pg_version: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem = command_output("free", &["-g"])
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|g| format!("{g} GiB"))
        .unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(s, "- date: {}", command_output("date", &[]));
    let _ = writeln!(
        s,
        "- machine: {} × {cpu}, {mem} RAM, kernel {}",
        command_output("nproc", &[]),
        command_output("uname", &["-r"])
    );
    let _ = writeln!(s, "- PostgreSQL: {pg_version}");
    let _ = writeln!(
        s,
        "- NATS: {}",
        command_output("nats-server", &["--version"])
    );
    let _ = writeln!(
        s,
        "- commit: {}{}",
        command_output("git", &["rev-parse", "--short", "HEAD"]),
        if command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
            ""
        } else {
            " (with uncommitted changes)"
        }
    );
    s
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Per-process CPU and RSS over a window.
#[must_use]
pub fn usage_table(title: &str, u: &WindowUsage) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{title} ({:.0} s window; CPU in % of one core, this machine has {} cores; memory is VmRSS for one process, the sum of PSS for a group of processes):\n",
        u.seconds,
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    let _ = writeln!(s, "| process | CPU % | memory at end (MiB) | peak (MiB) |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: |");
    for g in &u.groups {
        let name = if g.pids > 1 {
            format!("{} ({} pids)", g.name, g.pids)
        } else {
            g.name.clone()
        };
        let _ = writeln!(
            s,
            "| {name} | {:.0} | {} | {} |",
            g.cpu_pct,
            mib(g.rss_last_kib),
            mib(g.rss_max_kib)
        );
    }
    let _ = writeln!(
        s,
        "| whole machine (of which kernel softirq: {:.0}) | {:.0} | | |",
        u.softirq_pct, u.machine_pct
    );
    if !u.top.is_empty() {
        let top: Vec<String> = u
            .top
            .iter()
            .map(|(comm, pct)| format!("`{comm}` {pct:.0}"))
            .collect();
        let _ = writeln!(
            s,
            "\nBusiest commands on the machine in this window (% of one core, anyone's): {}.",
            top.join(", ")
        );
    }
    if u.compiling {
        let _ = writeln!(
            s,
            "\n**A `rustc` process was running during this window (another compile): numbers are pessimistic.**"
        );
    }
    s
}

/// `12345.6` → `12,346`.
#[must_use]
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Percentile of a sample list (nearest rank), in the sample's unit.
#[must_use]
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_ranks() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
