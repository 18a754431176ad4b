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
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    demo::build,
    run::{is_root, workspace_root},
    scenario::{
        Process, Recorder, Topology, catch_interrupts, check_interrupted, remove_stale_namespaces,
        sleep, wait_listening,
    },
    setup::{SetupArgs, setup},
};

const PORT: u16 = 7000;
const CONNECTIONS_PER_ROUND: u32 = 2000;

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long to record.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Rotate the trace at this size.
    #[arg(long, default_value = "8M")]
    pub max_size: String,
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
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

/// Transitions and lost events in one trace file, and any damage the replay reported.
fn count(tcpchurn: &Path, part: &Path) -> anyhow::Result<(u64, u64, String)> {
    let out = Command::new(tcpchurn)
        .args(["replay", "--events", "--json"])
        .arg(part)
        .output()
        .with_context(|| format!("replaying {}", part.display()))?;
    if !out.status.success() {
        bail!(
            "replay of {} failed: {}",
            part.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (mut transitions, mut lost) = (0u64, 0u64);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.contains(r#""kind":"transition""#) {
            transitions += 1;
        } else if line.contains(r#""kind":"lost""#) {
            let value: serde_json::Value = serde_json::from_str(line)?;
            lost += value["lost"].as_u64().unwrap_or(0);
        }
    }
    Ok((
        transitions,
        lost,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

pub fn soak(args: &SoakArgs) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the soak test needs root (eBPF, network namespaces)");
    }
    setup(&SetupArgs { zookeeper: false })?;
    let binaries = build()?;
    catch_interrupts()?;
    remove_stale_namespaces()?;
    let dir = workspace_root().join("target/soak");
    let _fresh = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let trace = dir.join("soak.trace");

    let topology = Topology::create(Ipv4Addr::new(10, 81, 0, 1), Ipv4Addr::new(10, 81, 0, 2))?;
    let [_, server_ns, _, node_ns] = topology.netns_args();
    let record_args = [
        "--netns",
        server_ns,
        "--netns",
        node_ns,
        "--max-size",
        &args.max_size,
        // Keep every file: the check counts every event.
        "--rotate",
        "100000",
    ];
    let mut recorder = Recorder::start(&binaries.tcpchurn, &trace, &record_args)?;
    let server_addr = format!("{}:{PORT}", topology.server_ip);
    let mut server_cmd = Topology::command(&topology.server, &binaries.peer);
    server_cmd.args([
        "server",
        "--listen",
        &server_addr,
        "--count",
        "0",
        "--behaviour",
        "wait-peer",
    ]);
    let mut server = Process::spawn("server", server_cmd, &dir.join("server.log"))?;
    wait_listening(&topology.server, PORT, &mut server, Duration::from_secs(10))?;

    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let started = Instant::now();
    let mut rounds = 0u64;
    let (mut connected, mut no_port) = (0u64, 0u64);
    let mut rss = Vec::new();
    let mut next_sample = Instant::now();
    eprintln!("xtask soak: churning for {:.1} minutes...", args.minutes);
    while started.elapsed() < duration {
        check_interrupted()?;
        recorder.check_running()?;
        let round = Topology::command(&topology.node, &binaries.peer)
            .args(["client", "--connect", &server_addr, "--count"])
            .arg(CONNECTIONS_PER_ROUND.to_string())
            .args(["--behaviour", "close"])
            .output()?;
        if !round.status.success() {
            bail!("a churn round failed ({})", round.status);
        }
        for line in String::from_utf8_lossy(&round.stdout).lines() {
            match line.split_whitespace().next() {
                Some("connected") => connected += 1,
                Some("error") if line == "error 99" => no_port += 1,
                Some("closed" | "done") => {}
                _ => bail!("unexpected churn outcome: {line}"),
            }
        }
        rounds += 1;
        if Instant::now() >= next_sample {
            let kib = rss_kib(recorder.pid()).unwrap_or(0);
            rss.push((started.elapsed().as_secs(), kib));
            eprintln!(
                "xtask soak: {:>4} s  {:>9} connections  recorder RSS {:>6} KiB",
                started.elapsed().as_secs(),
                connected,
                kib
            );
            next_sample += Duration::from_secs(30);
        }
    }
    // The server's exit closes its listener (LISTEN->CLOSE).
    server.signal(libc::SIGTERM);
    sleep(Duration::from_millis(500))?;
    let recording = recorder.stop()?;
    if !recording.status.success() {
        bail!("the recorder failed: {}", recording.summary.join("\n"));
    }

    let connections = connected;
    let expected = 10 * connected + 2 * no_port + 2;
    let (mut out, mut lost) = (0, 0);
    let files = parts(&trace);
    for part in &files {
        let (transitions, gaps, damage) = count(&binaries.tcpchurn, part)?;
        if !damage.trim().is_empty() {
            bail!("{} replays with damage: {damage}", part.display());
        }
        out += transitions;
        lost += gaps;
    }
    let bytes: u64 = files
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    // Memory is flat when the second half of the run needed no more than the first
    // (plus a little slack for allocator noise).
    let half = rss.len() / 2;
    let first = rss[..half.max(1).min(rss.len())]
        .iter()
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let last = rss[half..].iter().map(|s| s.1).max().unwrap_or(0);
    let flat = last <= first + first / 10 + 4096;
    let balanced = out <= expected && expected <= out + lost;

    println!(
        "soak: {:.1} minutes, {connections} connections in {rounds} rounds ({no_port} attempts found no free port)",
        started.elapsed().as_secs_f64() / 60.0
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
        "soak: {} files, {bytes} bytes ({:.1} bytes/event)",
        files.len(),
        bytes as f64 / out.max(1) as f64
    );
    println!(
        "soak: recorder RSS max {first} KiB in the first half, {last} KiB in the second: {}",
        if flat { "flat" } else { "GROWING" }
    );
    let report = serde_json::json!({
        "minutes": started.elapsed().as_secs_f64() / 60.0,
        "connections": connections,
        "attempts_without_port": no_port,
        "events_in": expected,
        "events_out": out,
        "lost": lost,
        "files": files.len(),
        "bytes": bytes,
        "rss_kib": rss,
        "balanced": balanced,
        "flat": flat,
    });
    fs::write(dir.join("result.json"), serde_json::to_vec_pretty(&report)?)?;
    if !balanced {
        bail!("events went missing without a loss record: in {expected} > out {out} + lost {lost}");
    }
    if !flat {
        bail!("the recorder's memory grew: {first} KiB -> {last} KiB");
    }
    Ok(())
}
