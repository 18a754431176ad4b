//! Trace helpers for `cargo xtask bench`, built on the real trace code
//! (`tcpchurn::trace`):
//!
//! - `synth`: writes a large synthetic churn trace through the real `TraceWriter`:
//!   loopback client/server pairs, both ends of every connection, ten transitions per
//!   connection, with the contexts and owners a real recording has.
//! - `stat`: reads a trace and prints one JSON object: what it holds by kind, its end
//!   block, and how many connections follow the exact churn patterns.
//! - `read`: only streams the events (`TraceReader::next_event`), to time the reader.

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io::BufWriter,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tcpchurn::{
    model::{ConnId, TcpState, TraceEvent},
    synth::{Churn, Closer},
    trace::{Filters, PartInfo, RecorderInfo, TraceEnd, TraceMeta, TraceWriter},
};
use tcpchurn_harness::trace_stat::{TraceEndStat, TraceStat};
use tcpchurn_tests::open_trace;

#[derive(Debug, Parser)]
#[command(about = "Synthetic traces and trace statistics for the benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a synthetic churn trace.
    Synth {
        #[arg(long)]
        out: PathBuf,
        /// Transitions to write (rounded up to whole connections).
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Client/server pairs, interleaved.
        #[arg(long, default_value_t = 2)]
        pairs: u16,
        /// Records per block (the recorder closes a block per flush interval; at full
        /// churn that is about this many).
        #[arg(long, default_value_t = 262_144)]
        block_records: u32,
        /// Events per second of trace time (one connection is ten events); the gaps
        /// between events vary by +-50% around the mean.
        #[arg(long, default_value_t = 300_000)]
        rate: u64,
    },
    /// Print what a trace holds, as JSON.
    Stat { file: PathBuf },
    /// Stream every event and print the count and the rate.
    Read { file: PathBuf },
}

const NETNS: u32 = 4_026_532_177;

fn synth(out: &Path, events: u64, pairs: u16, block_records: u32, rate: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let meta = TraceMeta {
        tool: "tcpchurn".into(),
        tool_version: "synthetic".into(),
        hostname: "bench".into(),
        kernel: "6.18.44".into(),
        machine: "x86_64".into(),
        filters: Filters {
            ports: Vec::new(),
            netns: vec![NETNS],
            ..Filters::default()
        },
        recorder: RecorderInfo {
            pid: 1,
            ring_bytes: 16 << 20,
            flush_interval_ms: 1000,
            cpus: 2,
        },
        part: PartInfo::default(),
        ..TraceMeta::default()
    };
    let file = File::create(out).with_context(|| out.display().to_string())?;
    let mut writer = TraceWriter::new(BufWriter::with_capacity(1 << 20, file), &meta)?
        .with_block_records(block_records);
    let churned = Churn {
        connections: events.div_ceil(10),
        pairs,
        clients: 1,
        closer: Closer::Alternate,
        gap_ns: 1_000_000_000 / rate.max(1),
    }
    .write(&mut writer)?;
    let records = writer.records();
    drop(writer.finish(&TraceEnd {
        end_ns: churned.last_ts_ns + 1_000,
        stop_reason: "synthetic".into(),
        connections: churned.last_conn,
        kernel_submitted: churned.transitions,
        ..TraceEnd::default()
    })?);
    let bytes = std::fs::metadata(out)?.len();
    let secs = started.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "file": out.display().to_string(),
        "transitions": churned.transitions,
        "records": records,
        "connections": churned.last_conn,
        "bytes": bytes,
        "bytes_per_event": bytes as f64 / records as f64,
        "write_s": secs,
    });
    println!("{summary}");
    Ok(())
}

fn state_code(old: TcpState, new: TcpState) -> u64 {
    (u64::from(old as u8) << 4) | u64::from(new as u8)
}

/// The exact transition sequences of one end of a loopback churn connection.
fn churn_patterns() -> Vec<(&'static str, u64)> {
    use TcpState::*;
    let seq = |steps: &[(TcpState, TcpState)]| {
        steps
            .iter()
            .fold(0u64, |acc, &(o, n)| (acc << 8) | state_code(o, n))
    };
    vec![
        (
            "client_active_close",
            seq(&[
                (Close, SynSent),
                (SynSent, Established),
                (Established, FinWait1),
                (FinWait1, FinWait2),
                (FinWait2, Close),
            ]),
        ),
        (
            "server_passive_close",
            seq(&[
                (Listen, SynRecv),
                (SynRecv, Established),
                (Established, CloseWait),
                (CloseWait, LastAck),
                (LastAck, Close),
            ]),
        ),
        (
            "server_active_close",
            seq(&[
                (Listen, SynRecv),
                (SynRecv, Established),
                (Established, FinWait1),
                (FinWait1, FinWait2),
                (FinWait2, Close),
            ]),
        ),
        (
            "client_passive_close",
            seq(&[
                (Close, SynSent),
                (SynSent, Established),
                (Established, CloseWait),
                (CloseWait, LastAck),
                (LastAck, Close),
            ]),
        ),
        (
            "client_reset",
            seq(&[
                (Close, SynSent),
                (SynSent, Established),
                (Established, Close),
            ]),
        ),
        (
            "server_reset",
            seq(&[
                (Listen, SynRecv),
                (SynRecv, Established),
                (Established, Close),
            ]),
        ),
        ("listener", seq(&[(Close, Listen), (Listen, Close)])),
    ]
}

fn stat(path: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let bytes = std::fs::metadata(path)?.len();
    let mut reader = open_trace(path)?;
    let mut records = 0u64;
    let mut transitions = 0u64;
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut lost = 0u64;
    // Per connection: its transitions packed 8 bits each (the last 8), and how many.
    let mut sequences: HashMap<ConnId, (u64, u32)> = HashMap::new();
    while let Some(event) = reader.next_event()? {
        records += 1;
        let kind = match &event {
            TraceEvent::Transition(t) => {
                transitions += 1;
                let entry = sequences.entry(t.conn.id).or_default();
                entry.0 = (entry.0 << 8) | state_code(t.old, t.new);
                entry.1 += 1;
                "transition"
            }
            TraceEvent::Snapshot(_) => "snapshot",
            TraceEvent::ResetSent(_) => "reset_sent",
            TraceEvent::ResetReceived(_) => "reset_received",
            TraceEvent::SocketError(_) => "socket_error",
            TraceEvent::Lost(gap) => {
                lost += gap.lost;
                "gap"
            }
        };
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    let patterns = churn_patterns();
    let mut by_pattern: BTreeMap<String, u64> = BTreeMap::new();
    let mut other = 0u64;
    for (code, count) in sequences.values() {
        match patterns.iter().find(|(_, p)| *p == *code && *count <= 5) {
            Some((name, _)) => *by_pattern.entry((*name).to_owned()).or_default() += 1,
            None => other += 1,
        }
    }
    let end = reader.end().map(|e| TraceEndStat {
        records: e.records,
        connections: e.connections,
        kernel_submitted: e.kernel_submitted,
        kernel_rescued: e.kernel_rescued,
        lost_ring_full: e.lost_ring_full,
        lost_recursion: e.lost_recursion,
        lost_unreported: e.lost_unreported,
        lost_read_failed: e.lost_read_failed,
        lost_decode_failed: e.lost_decode_failed,
        stop_reason: e.stop_reason.clone(),
    });
    let summary = TraceStat {
        file: path.display().to_string(),
        bytes,
        records,
        transitions,
        kinds,
        lost_in_gaps: lost,
        connections: sequences.len() as u64,
        patterns: by_pattern,
        other_sequences: other,
        damage: reader.damage().iter().map(ToString::to_string).collect(),
        end,
        read_s: started.elapsed().as_secs_f64(),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut reader = open_trace(path)?;
    let mut events = 0u64;
    while reader.next_event()?.is_some() {
        events += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "events": events,
            "read_s": secs,
            "events_per_s": events as f64 / secs,
        })
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Synth {
            out,
            events,
            pairs,
            block_records,
            rate,
        } => synth(&out, events, pairs.max(1), block_records, rate),
        Cmd::Stat { file } => stat(&file),
        Cmd::Read { file } => read(&file),
    }
}
