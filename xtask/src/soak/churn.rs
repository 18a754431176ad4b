//! The soak's load: rounds of connections from the client namespace, with the
//! recorder's memory sampled as they go.

use std::time::{Duration, Instant};

use anyhow::bail;
use tcpchurn_harness::{Recorder, Topology, interrupt::check_interrupted, procfs};

use crate::binaries::Binaries;

/// The server's port.
pub const PORT: u16 = 7000;
const CONNECTIONS_PER_ROUND: u32 = 2000;
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(30);

/// What the churn client did, over every round.
#[derive(Debug, Default)]
pub struct Churned {
    pub rounds: u64,
    pub connected: u64,
    /// Attempts that found no free source port (`error 99`, EADDRNOTAVAIL).
    pub no_port: u64,
    /// (seconds since the start, recorder RSS in KiB), every 30 s.
    pub rss: Vec<(u64, u64)>,
}

impl Churned {
    /// Events in: ten transitions per connection, two per attempt without a port, two
    /// for the listener.
    pub fn expected(&self) -> u64 {
        10 * self.connected + 2 * self.no_port + 2
    }

    /// Memory is flat when the second half of the run needed no more than the first
    /// (plus a little slack for allocator noise). Returns (first, second, flat).
    pub fn rss_flat(&self) -> (u64, u64, bool) {
        let half = self.rss.len() / 2;
        let first = self.rss[..half.max(1).min(self.rss.len())]
            .iter()
            .map(|s| s.1)
            .max()
            .unwrap_or(0);
        let last = self.rss[half..].iter().map(|s| s.1).max().unwrap_or(0);
        (first, last, last <= first + first / 10 + 4096)
    }
}

/// Runs churn rounds from the client namespace until `duration` has passed, sampling
/// the recorder's memory.
pub fn churn(
    binaries: &Binaries,
    topology: &Topology,
    recorder: &mut Recorder,
    duration: Duration,
) -> anyhow::Result<Churned> {
    let server_addr = format!("{}:{PORT}", topology.server_v4);
    let started = Instant::now();
    let mut churned = Churned::default();
    let mut next_sample = Instant::now();
    while started.elapsed() < duration {
        check_interrupted()?;
        recorder.check_running()?;
        let round = topology
            .client
            .command(&binaries.peer)
            .args(["client", "--connect", &server_addr, "--count"])
            .arg(CONNECTIONS_PER_ROUND.to_string())
            .args(["--behaviour", "close"])
            .output()?;
        if !round.status.success() {
            bail!("a churn round failed ({})", round.status);
        }
        for line in String::from_utf8_lossy(&round.stdout).lines() {
            match line.split_whitespace().next() {
                Some("connected") => churned.connected += 1,
                Some("error") if line == "error 99" => churned.no_port += 1,
                Some("closed" | "done") => {}
                _ => bail!("unexpected churn outcome: {line}"),
            }
        }
        churned.rounds += 1;
        if Instant::now() >= next_sample {
            let kib = procfs::status_kib(recorder.pid(), "VmRSS:").unwrap_or(0);
            churned.rss.push((started.elapsed().as_secs(), kib));
            eprintln!(
                "xtask soak: {:>4} s  {:>9} connections  recorder RSS {:>6} KiB",
                started.elapsed().as_secs(),
                churned.connected,
                kib
            );
            next_sample += RSS_SAMPLE_EVERY;
        }
    }
    Ok(churned)
}
