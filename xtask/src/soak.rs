//! `cargo xtask soak`: record churn for a long time with rotation, then check that
//! nothing was lost silently and that the recorder's memory stayed flat.
//!
//! Events in: the churn client reports every attempt. A connection is 10 transitions
//! (both ends over veth); an attempt that found no free source port (`EADDRNOTAVAIL`:
//! the client holds TIME_WAIT for every connection it closed, and a minute of churn
//! from one address outlasts the ephemeral range) is CLOSE->SYN_SENT->CLOSE; the
//! listener adds CLOSE->LISTEN and LISTEN->CLOSE. Events out: the transitions in every
//! file of the rotated recording. Lost: the gap records in those files, whatever the
//! cause. Every missing event must be accounted for: out <= in <= out + lost. Lost can
//! exceed what went missing: the kernel counts skipped runs (`recursion_misses`) before
//! the program filters by namespace, so other users' sockets are in that count.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tcpchurn_harness::{
    Addresses, Recorder, Spawn, Topology,
    interrupt::{catch_interrupts, check_interrupted, sleep},
    procfs,
    ready::wait_listening,
    replay,
    runner::is_root,
    workspace,
};

use crate::{
    binaries::Binaries,
    setup::{SetupArgs, setup},
};

const PORT: u16 = 7000;
const CONNECTIONS_PER_ROUND: u32 = 2000;
/// The soak's addresses: 10.81.0.1 (server) and 10.81.0.2 (client).
const SUBNET: u8 = 81;
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long to record.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Rotate the trace at this size.
    #[arg(long, default_value = "8M")]
    pub max_size: String,
}

/// What the churn client did, over every round.
#[derive(Debug, Default)]
struct Churned {
    rounds: u64,
    connected: u64,
    /// Attempts that found no free source port (`error 99`, EADDRNOTAVAIL).
    no_port: u64,
    /// (seconds since the start, recorder RSS in KiB), every 30 s.
    rss: Vec<(u64, u64)>,
}

impl Churned {
    /// Events in: ten transitions per connection, two per attempt without a port, two
    /// for the listener.
    fn expected(&self) -> u64 {
        10 * self.connected + 2 * self.no_port + 2
    }

    /// Memory is flat when the second half of the run needed no more than the first
    /// (plus a little slack for allocator noise). Returns (first, second, flat).
    fn rss_flat(&self) -> (u64, u64, bool) {
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

/// Events out: what the files of the rotated recording hold.
#[derive(Debug, Default)]
struct Recorded {
    files: usize,
    bytes: u64,
    transitions: u64,
    lost: u64,
}

/// `target/soak/result.json`.
#[derive(Debug, Serialize, Deserialize)]
struct SoakResult {
    minutes: f64,
    connections: u64,
    attempts_without_port: u64,
    events_in: u64,
    events_out: u64,
    lost: u64,
    files: usize,
    bytes: u64,
    rss_kib: Vec<(u64, u64)>,
    balanced: bool,
    flat: bool,
}

/// Files of a rotated recording, in order: `soak.trace`, `soak.trace.1`, ...
fn parts(base: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<(u32, PathBuf)> = fs::read_dir(base.parent().unwrap_or(Path::new(".")))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let base_name = base.file_name()?.to_str()?;
            let index = match name.strip_prefix(base_name)? {
                "" => 0,
                rest => rest.strip_prefix('.')?.parse().ok()?,
            };
            Some((index, entry.path()))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, path)| path).collect()
}

/// The fields of a replayed event the soak counts.
#[derive(Deserialize)]
struct EventCount {
    kind: String,
    #[serde(default)]
    lost: u64,
}

/// Transitions and lost events in every file of the recording; fails on any damage.
fn count_recorded(tcpchurn: &Path, trace: &Path) -> anyhow::Result<Recorded> {
    let files = parts(trace);
    let mut recorded = Recorded {
        files: files.len(),
        ..Recorded::default()
    };
    for part in &files {
        let damage = replay::each_event(tcpchurn, part, |event: EventCount| {
            match event.kind.as_str() {
                "transition" => recorded.transitions += 1,
                "lost" => recorded.lost += event.lost,
                _ => {}
            }
        })?;
        if !damage.trim().is_empty() {
            bail!("{} replays with damage: {damage}", part.display());
        }
        recorded.bytes += fs::metadata(part).map_or(0, |m| m.len());
    }
    Ok(recorded)
}

/// Runs churn rounds from the client namespace until `duration` has passed, sampling
/// the recorder's memory.
fn churn(
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

pub fn soak(args: &SoakArgs) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the soak test needs root (eBPF, network namespaces)");
    }
    setup(&SetupArgs { zookeeper: false })?;
    let binaries = Binaries::build()?;
    catch_interrupts()?;
    let dir = workspace::root().join("target/soak");
    let _fresh = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let trace = dir.join("soak.trace");

    let topology = Topology::create("soak", Addresses::subnet(SUBNET))?;
    let mut record_args = topology.netns_args();
    // Keep every file: the check counts every event.
    record_args.extend(["--max-size".into(), args.max_size.clone()]);
    record_args.extend(["--rotate".into(), "100000".into()]);
    let mut recorder = Recorder::start(&binaries.tcpchurn, &trace, &record_args)?;
    let server_addr = format!("{}:{PORT}", topology.server_v4);
    let mut server_cmd = topology.server.command(&binaries.peer);
    server_cmd.args(["server", "--listen", &server_addr, "--count", "0"]);
    server_cmd.args(["--behaviour", "wait-peer"]);
    let mut server = Spawn::new("server", server_cmd)
        .log_to(&dir.join("server.log"))
        .start()?;
    wait_listening(&topology.server, PORT, &mut server, Duration::from_secs(10))?;

    eprintln!("xtask soak: churning for {:.1} minutes...", args.minutes);
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let churned = churn(&binaries, &topology, &mut recorder, duration)?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    // The server's exit closes its listener (LISTEN->CLOSE).
    server.signal(libc::SIGTERM);
    sleep(Duration::from_millis(500))?;
    recorder
        .stop()?
        .ensure_success()
        .context("the recorder failed")?;
    let recorded = count_recorded(&binaries.tcpchurn, &trace)?;
    judge(&dir, minutes, &churned, &recorded)
}

/// Prints the books, writes `result.json`, and fails unless they balance and memory
/// stayed flat.
fn judge(dir: &Path, minutes: f64, churned: &Churned, recorded: &Recorded) -> anyhow::Result<()> {
    let (expected, out, lost) = (churned.expected(), recorded.transitions, recorded.lost);
    let (first, last, flat) = churned.rss_flat();
    let balanced = out <= expected && expected <= out + lost;
    println!(
        "soak: {minutes:.1} minutes, {} connections in {} rounds ({} attempts found no free port)",
        churned.connected, churned.rounds, churned.no_port
    );
    println!(
        "soak: events in {expected}, out {out}, lost {lost}: every missing event accounted for: {}",
        if balanced { "yes" } else { "NO" }
    );
    if balanced && out + lost > expected {
        println!(
            "soak: lost counts {} more than went missing (kernel skip counts include other namespaces)",
            out + lost - expected
        );
    }
    println!(
        "soak: {} files, {} bytes ({:.1} bytes/event)",
        recorded.files,
        recorded.bytes,
        recorded.bytes as f64 / out.max(1) as f64
    );
    println!(
        "soak: recorder RSS max {first} KiB in the first half, {last} KiB in the second: {}",
        if flat { "flat" } else { "GROWING" }
    );
    let result = SoakResult {
        minutes,
        connections: churned.connected,
        attempts_without_port: churned.no_port,
        events_in: expected,
        events_out: out,
        lost,
        files: recorded.files,
        bytes: recorded.bytes,
        rss_kib: churned.rss.clone(),
        balanced,
        flat,
    };
    fs::write(dir.join("result.json"), serde_json::to_vec_pretty(&result)?)?;
    if !balanced {
        bail!("events went missing without a loss record: in {expected} > out {out} + lost {lost}");
    }
    if !flat {
        bail!("the recorder's memory grew: {first} KiB -> {last} KiB");
    }
    Ok(())
}
