//! The BPF programs loaded on the machine, as `bpftool prog show --json` lists them.

use std::process::Command;

use anyhow::Context as _;
use serde::Deserialize;

use crate::exec;

/// One loaded program. `run_cnt` and `run_time_ns` count only while
/// `kernel.bpf_stats_enabled` is 1.
#[derive(Clone, Debug, Deserialize)]
pub struct LoadedProgram {
    pub id: u32,
    #[serde(rename = "type")]
    pub kind: String,
    /// The kernel keeps 15 characters of it; unnamed programs have none.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub run_cnt: u64,
    #[serde(default)]
    pub run_time_ns: u64,
}

impl LoadedProgram {
    /// Attached to a tracepoint, kprobe or other tracing hook.
    pub fn is_tracing(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "tracepoint" | "raw_tracepoint" | "kprobe" | "tracing" | "perf_event"
        )
    }
}

pub fn loaded_programs() -> anyhow::Result<Vec<LoadedProgram>> {
    let text = exec::stdout(Command::new("bpftool").args(["prog", "show", "--json"]))?;
    serde_json::from_str(&text).context("reading bpftool's program list")
}
