//! The results file, `target/bench/bench-<unix time>.json` (and `latest.json`): every
//! run, the summary, the kernel cost, the replay speed and the targets.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    host::Host, kernel_cost::KernelCosts, replay_speed::ReplaySpeed, runs::RunRecord,
    summary::Summary, targets::Target, validation::Validation, variants::Variant,
    workloads::Workload,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Document {
    pub tool: String,
    pub started_unix: u64,
    pub host: Host,
    pub config: Config,
    pub validation: Vec<Validation>,
    pub runs_with_foreign_tracers: usize,
    pub summary: Summary,
    pub kernel_cost: KernelCosts,
    pub replay: Option<ReplaySpeed>,
    pub targets: Vec<Target>,
    pub runs: Vec<RunRecord>,
}

/// The options the benchmark ran with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub duration_s: f64,
    pub reps: u32,
    pub workloads: Vec<Workload>,
    pub alt_args: String,
    /// The second tcpchurn variant's binary when it is another build (`--alt-binary`,
    /// or `--alt-rev` with the revision).
    pub alt_build: Option<String>,
    pub variants: Vec<Variant>,
    pub skipped: Vec<String>,
}

impl Document {
    /// Writes the results into `dir`; returns the file's path.
    pub fn write(&self, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("bench-{}.json", self.started_unix));
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, &text)?;
        std::fs::write(dir.join("latest.json"), &text)?;
        Ok(path)
    }
}
