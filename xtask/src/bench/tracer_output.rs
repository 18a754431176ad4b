//! What a tracer recorded in one run: the tcpchurn trace's own accounting, or the
//! files tcpstates and bpftrace wrote.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tcpchurn_harness::trace_stat::{self, TraceEndStat};

use super::tools::Tools;

/// CPU and run counts of one BPF program of a tracer (with `kernel.bpf_stats_enabled`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgStat {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// What a tracer produced in one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TracerOut {
    pub recorded: u64,
    pub lost: u64,
    /// CPU seconds of the tracer process while the churn ran.
    pub cpu_churn_s: f64,
    /// CPU seconds of the tracer process from start to exit.
    pub cpu_total_s: f64,
    pub maxrss_kib: u64,
    pub bytes: u64,
    /// Bytes on disk per recorded event (none when nothing was recorded).
    pub bytes_per_event: Option<f64>,
    /// tcpchurn only: the end block and the file's own accounting.
    pub detail: Option<RecordingDetail>,
    pub programs: Vec<ProgStat>,
}

/// What a tcpchurn trace holds, and whether the kernel's count agrees with the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingDetail {
    pub records: u64,
    pub kinds: BTreeMap<String, u64>,
    pub patterns: BTreeMap<String, u64>,
    pub other_sequences: u64,
    pub end: Option<TraceEndStat>,
    /// Transitions, resets and socket errors in the file: what the kernel submitted.
    pub kernel_events_in_file: u64,
    /// The end block's `kernel_submitted` equals `kernel_events_in_file`.
    pub kernel_submitted_matches_file: bool,
    pub damage: Vec<String>,
}

/// What was measured while the churn ran.
pub struct During {
    pub cpu_s: f64,
    pub programs: Vec<ProgStat>,
}

/// (recorded, lost, bytes, detail) of one run.
pub type Read = (u64, u64, u64, Option<RecordingDetail>);

pub fn read_trace(tools: &Tools, trace: &Path) -> anyhow::Result<Read> {
    let stat = trace_stat::stat(&tools.trace_tool, trace).context("tcpchurn-trace-tool stat")?;
    let _removed = std::fs::remove_file(trace);
    let lost = stat.lost_in_gaps + stat.end.as_ref().map_or(0, |e| e.lost_decode_failed);
    let kernel_events = stat.transitions
        + stat.kind("reset_sent")
        + stat.kind("reset_received")
        + stat.kind("socket_error");
    let detail = RecordingDetail {
        records: stat.records,
        kinds: stat.kinds,
        patterns: stat.patterns,
        other_sequences: stat.other_sequences,
        kernel_submitted_matches_file: stat
            .end
            .as_ref()
            .is_some_and(|e| e.kernel_submitted == kernel_events),
        end: stat.end,
        kernel_events_in_file: kernel_events,
        damage: stat.damage,
    };
    Ok((stat.transitions, lost, stat.bytes, Some(detail)))
}

pub fn read_tcpstates(out: &Path, err: &Path, ports: &[u16]) -> Read {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    // SKADDR C-PID C-COMM LADDR LPORT RADDR RPORT OLDSTATE -> NEWSTATE MS, counted from
    // the end (a comm may contain spaces).
    let recorded = text
        .lines()
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let n = f.len();
            n >= 11
                && [f[n - 7], f[n - 5]]
                    .iter()
                    .any(|p| p.parse::<u16>().is_ok_and(|p| ports.contains(&p)))
        })
        .count() as u64;
    let errors = std::fs::read_to_string(err).unwrap_or_default();
    // libbpf-tools: "lost N events on CPU #C".
    let lost = errors
        .lines()
        .filter_map(|l| l.strip_prefix("lost "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let bytes = std::fs::metadata(out).map_or(0, |m| m.len());
    let _removed = std::fs::remove_file(out);
    (recorded, lost, bytes, None)
}

pub fn read_bpftrace(out: &Path) -> Read {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let recorded = text
        .lines()
        .filter_map(|l| l.strip_prefix("@transitions:"))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum();
    let bytes = std::fs::metadata(out).map_or(0, |m| m.len());
    let _removed = std::fs::remove_file(out);
    (recorded, 0, bytes, None)
}
