//! What a trace holds, as `tcpchurn-trace-tool stat` (tests crate) reports it: the
//! tool prints this type, the benchmark reads it.

use std::{collections::BTreeMap, path::Path, process::Command};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::exec;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TraceStat {
    pub file: String,
    pub bytes: u64,
    /// Every record, gaps and snapshots included.
    pub records: u64,
    pub transitions: u64,
    /// Records by kind: transition, snapshot, reset_sent, reset_received,
    /// socket_error, gap.
    pub kinds: BTreeMap<String, u64>,
    /// Events the gap records say were lost.
    pub lost_in_gaps: u64,
    pub connections: u64,
    /// Connections whose transitions follow one of the churn's exact sequences, by
    /// name (client_active_close, server_passive_close, ..., listener).
    pub patterns: BTreeMap<String, u64>,
    /// Connections that follow none of them.
    pub other_sequences: u64,
    /// What the reader found damaged, one message each.
    pub damage: Vec<String>,
    /// The end block, if the recording ended cleanly.
    pub end: Option<TraceEndStat>,
    pub read_s: f64,
}

impl TraceStat {
    /// Records of one kind.
    pub fn kind(&self, kind: &str) -> u64 {
        self.kinds.get(kind).copied().unwrap_or(0)
    }
}

/// The recorder's own accounting, from the trace's end block.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TraceEndStat {
    pub records: u64,
    pub connections: u64,
    /// Events the kernel program submitted to the ring.
    pub kernel_submitted: u64,
    /// State changes the rescue program recorded for the skipped main program.
    #[serde(default)]
    pub kernel_rescued: u64,
    pub lost_ring_full: u64,
    /// Skipped runs nothing recorded.
    #[serde(default)]
    pub lost_recursion: u64,
    /// Transitions inferred missing from broken state sequences.
    #[serde(default)]
    pub lost_unreported: u64,
    pub lost_read_failed: u64,
    pub lost_decode_failed: u64,
    pub stop_reason: String,
}

/// Runs `trace_tool stat TRACE`.
pub fn stat(trace_tool: &Path, trace: &Path) -> anyhow::Result<TraceStat> {
    let text = exec::stdout(Command::new(trace_tool).arg("stat").arg(trace))?;
    serde_json::from_str(&text).with_context(|| format!("the trace tool's statistics {text:?}"))
}
