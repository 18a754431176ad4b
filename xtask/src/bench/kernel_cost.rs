//! Kernel cost per program: more runs per tracer with `kernel.bpf_stats_enabled=1`,
//! reading `run_time_ns`/`run_cnt` of the tracer's own programs (found through its
//! fds). The run with the median total cost per event is reported: other users' load
//! makes single runs jumpy.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{runs::Bench, stats::Spread, variants::Variant};

/// Runs per tracer with `kernel.bpf_stats_enabled=1`.
pub const KERNEL_COST_RUNS: usize = 3;
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Restores `kernel.bpf_stats_enabled` when dropped.
struct BpfStats {
    previous: String,
}

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        let previous = std::fs::read_to_string(BPF_STATS)
            .context("reading kernel.bpf_stats_enabled")?
            .trim()
            .to_owned();
        std::fs::write(BPF_STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(Self { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _restored = std::fs::write(BPF_STATS, &self.previous);
    }
}

/// What one tracer's programs cost in the kernel.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelCost {
    /// Events the tracer recorded in the reported run.
    pub events: u64,
    /// BPF run time per recorded event, in the reported run.
    pub ns_per_event: f64,
    pub ns_per_event_runs: Option<Spread>,
    pub programs: Vec<ProgramCost>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgramCost {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub ns_per_run: f64,
    pub ns_per_event: f64,
}

/// The kernel cost of every traced variant, by variant name.
pub fn kernel_cost(
    bench: &Bench<'_>,
    variants: &[Variant],
) -> anyhow::Result<BTreeMap<String, KernelCost>> {
    let mut costs = BTreeMap::new();
    let _stats = BpfStats::enable()?;
    let mode = bench.args.first_mode();
    for variant in variants.iter().filter(|v| v.is_traced()) {
        let mut samples = Vec::new();
        for _ in 0..KERNEL_COST_RUNS {
            let (_churn, tracer) = bench.run(variant, mode, bench.args.duration, true)?;
            let Some(tracer) = tracer else { continue };
            let total_ns: u64 = tracer.programs.iter().map(|p| p.run_time_ns).sum();
            samples.push((total_ns as f64 / tracer.recorded.max(1) as f64, tracer));
        }
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let all = Spread::of(samples.iter().map(|(ns, _)| *ns));
        let Some((ns_per_event, tracer)) = samples.get(samples.len() / 2) else {
            continue;
        };
        let events = tracer.recorded.max(1) as f64;
        let programs = tracer
            .programs
            .iter()
            .filter(|p| p.run_cnt > 0)
            .map(|p| ProgramCost {
                name: p.name.clone(),
                run_cnt: p.run_cnt,
                run_time_ns: p.run_time_ns,
                ns_per_run: p.run_time_ns as f64 / p.run_cnt as f64,
                ns_per_event: p.run_time_ns as f64 / events,
            })
            .collect();
        costs.insert(
            variant.name.clone(),
            KernelCost {
                events: tracer.recorded,
                ns_per_event: *ns_per_event,
                ns_per_event_runs: all,
                programs,
            },
        );
    }
    Ok(costs)
}
