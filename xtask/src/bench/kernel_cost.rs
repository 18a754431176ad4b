//! Kernel cost per program: more runs per tracer with `kernel.bpf_stats_enabled=1`,
//! reading `run_time_ns`/`run_cnt` of the tracer's own programs (found through its
//! fds). The run with the median total cost is reported: other users' load makes
//! single runs jumpy.
//!
//! It runs on the first TCP workload (cost per recorded event) and on the UDP flood
//! when it is selected (cost per datagram: what the recorder's programs cost a load
//! that has no TCP at all).

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{runs::Bench, stats::Spread, variants::Variant, workloads::Workload};

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

/// What one tracer's programs cost in the kernel, on one workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelCost {
    /// What the cost is divided by: `event` (recorded events) or `datagram` (sent by
    /// the UDP flood).
    pub per: String,
    /// Events (or datagrams) in the reported run.
    pub events: u64,
    /// BPF run time per event (or datagram), in the reported run.
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

/// Per workload name, per variant name.
pub type KernelCosts = BTreeMap<String, BTreeMap<String, KernelCost>>;

/// The workloads the kernel cost is measured on.
fn measured(workloads: &[Workload]) -> Vec<&Workload> {
    let tcp = workloads.iter().find(|w| w.is_tcp());
    let other = workloads.iter().find(|w| !w.is_tcp());
    tcp.into_iter().chain(other).collect()
}

/// The kernel cost of every traced tcpchurn variant (and of the peers on TCP).
pub fn kernel_cost(
    bench: &Bench<'_>,
    variants: &[Variant],
    workloads: &[Workload],
) -> anyhow::Result<KernelCosts> {
    let mut costs = KernelCosts::new();
    let _stats = BpfStats::enable()?;
    for workload in measured(workloads) {
        let per = if workload.is_tcp() {
            "event"
        } else {
            "datagram"
        };
        for variant in variants
            .iter()
            .filter(|v| v.is_traced() && (workload.is_tcp() || !v.is_peer()))
        {
            let mut samples = Vec::new();
            for _ in 0..KERNEL_COST_RUNS {
                let (churn, tracer) = bench.run(variant, workload, bench.args.duration, true)?;
                let Some(tracer) = tracer else { continue };
                let count = if workload.is_tcp() {
                    tracer.recorded
                } else {
                    churn.completed
                };
                let total_ns: u64 = tracer.programs.iter().map(|p| p.run_time_ns).sum();
                samples.push((total_ns as f64 / count.max(1) as f64, count, tracer));
            }
            samples.sort_by(|a, b| a.0.total_cmp(&b.0));
            let all = Spread::of(samples.iter().map(|(ns, ..)| *ns));
            let Some((ns_per_event, count, tracer)) = samples.get(samples.len() / 2) else {
                continue;
            };
            let units = (*count).max(1) as f64;
            let programs = tracer
                .programs
                .iter()
                .filter(|p| p.run_cnt > 0)
                .map(|p| ProgramCost {
                    name: p.name.clone(),
                    run_cnt: p.run_cnt,
                    run_time_ns: p.run_time_ns,
                    ns_per_run: p.run_time_ns as f64 / p.run_cnt as f64,
                    ns_per_event: p.run_time_ns as f64 / units,
                })
                .collect();
            costs.entry(workload.name.clone()).or_default().insert(
                variant.name.clone(),
                KernelCost {
                    per: per.to_owned(),
                    events: *count,
                    ns_per_event: *ns_per_event,
                    ns_per_event_runs: all,
                    programs,
                },
            );
        }
    }
    Ok(costs)
}
