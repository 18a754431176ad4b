//! Synthetic traces: `tcpchurn-trace-tool synth` (tests crate) writes a churn trace of
//! any length through the real trace writer, and reports what it wrote.

use std::{path::Path, process::Command};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::exec;

/// What the trace tool says it wrote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Synthesized {
    pub file: String,
    pub transitions: u64,
    /// Records in the file (the transitions, and nothing else).
    pub records: u64,
    pub connections: u64,
    pub bytes: u64,
    pub bytes_per_event: f64,
    pub write_s: f64,
}

/// Writes a synthetic churn trace of about `events` events, `rate` events per second
/// of trace time, to `out`.
pub fn write(trace_tool: &Path, out: &Path, events: u64, rate: u64) -> anyhow::Result<Synthesized> {
    let text = exec::stdout(
        Command::new(trace_tool)
            .args(["synth", "--events", &events.to_string()])
            .args(["--rate", &rate.to_string(), "--out"])
            .arg(out),
    )
    .context("writing the synthetic trace")?;
    serde_json::from_str(&text).with_context(|| format!("the trace tool's report {text:?}"))
}
