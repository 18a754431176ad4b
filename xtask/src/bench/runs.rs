//! Runs: one variant on a fresh namespace's churn, and the rounds that alternate the
//! variants with untraced runs.

use std::{thread, time::Duration};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tcpchurn_harness::{Netns, bpftool, interrupt::check_interrupted, procfs};

use super::{
    args::BenchArgs,
    load::{ChurnOut, fresh_netns, ports, run_load},
    tools::Tools,
    tracers::{During, ProgStat, Tracer, TracerOut},
    variants::Variant,
    workloads::Workload,
};

/// One run in the results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub variant: String,
    /// The workload's name.
    pub workload: String,
    pub round: u32,
    /// Position in the whole sequence of runs.
    pub seq: usize,
    #[serde(flatten)]
    pub churn: ChurnOut,
    pub tracer: Option<TracerOut>,
}

pub struct Bench<'a> {
    pub args: &'a BenchArgs,
    pub tools: &'a Tools,
}

/// Tracing BPF programs loaded on the machine (other users' recorders, tests, demos).
/// Called between runs, when no tracer of ours is running: every one of them runs on
/// the churn's events too, in every variant alike.
fn foreign_tracing_programs() -> usize {
    bpftool::loaded_programs().map_or(0, |progs| progs.iter().filter(|p| p.is_tracing()).count())
}

/// The run counts and times of the BPF programs a process holds.
fn prog_stats(pid: u32) -> Vec<ProgStat> {
    let loaded = bpftool::loaded_programs().unwrap_or_default();
    procfs::bpf_prog_ids(pid)
        .into_iter()
        .filter_map(|id| loaded.iter().find(|p| p.id == id))
        .map(|p| ProgStat {
            name: p.name.clone().unwrap_or_else(|| "?".into()),
            run_cnt: p.run_cnt,
            run_time_ns: p.run_time_ns,
        })
        .collect()
}

impl Bench<'_> {
    /// One run of one variant in a fresh namespace.
    pub fn run(
        &self,
        variant: &Variant,
        workload: &Workload,
        duration: f64,
        with_programs: bool,
    ) -> anyhow::Result<(ChurnOut, Option<TracerOut>)> {
        // Between runs, Ctrl-C stops the benchmark through the normal error path, so
        // that namespaces are deleted and `kernel.bpf_stats_enabled` is restored.
        check_interrupted()?;
        let foreign_before = foreign_tracing_programs();
        let netns = fresh_netns()?;
        let result = self.run_in(&netns, variant, workload, duration, with_programs);
        drop(netns);
        // Namespace teardown (TIME_WAIT purge) runs in a kernel worker: let it finish
        // before the next run starts.
        thread::sleep(Duration::from_millis(700));
        let foreign = foreign_before.max(foreign_tracing_programs());
        result.map(|(mut churn, tracer)| {
            churn.foreign_tracers = foreign;
            (churn, tracer)
        })
    }

    fn run_in(
        &self,
        netns: &Netns,
        variant: &Variant,
        workload: &Workload,
        duration: f64,
        with_programs: bool,
    ) -> anyhow::Result<(ChurnOut, Option<TracerOut>)> {
        let pairs = workload.pairs();
        let Some(tracer) = Tracer::start(&variant.kind, self.tools, netns, pairs)? else {
            return run_load(workload, self.tools, netns, duration).map(|out| (out, None));
        };
        let pid = tracer.pid();
        let cpu_before = procfs::cpu_seconds(pid).unwrap_or(0.0);
        let churn = run_load(workload, self.tools, netns, duration);
        // Transitions driven by timers and the last ACKs land just after the generator
        // exits.
        thread::sleep(Duration::from_millis(300));
        let cpu_after = procfs::cpu_seconds(pid).unwrap_or(cpu_before);
        let programs = if with_programs {
            prog_stats(pid)
        } else {
            Vec::new()
        };
        let stopped = tracer.stop()?;
        let churn = churn?;
        let during = During {
            cpu_s: cpu_after - cpu_before,
            programs,
        };
        let out = stopped.read(self.tools, &ports(pairs), during)?;
        Ok((churn, Some(out)))
    }

    /// Rounds, per workload: untraced, then each traced variant followed by an untraced
    /// run, so that every traced run is compared with the untraced runs right before
    /// and after it; the order of the traced variants rotates every round. Other tools
    /// on the tracepoint (tcpstates, bpftrace) run on the TCP workloads only.
    pub fn rounds(
        &self,
        variants: &[Variant],
        workloads: &[Workload],
    ) -> anyhow::Result<Vec<RunRecord>> {
        let args = self.args;
        let mut runs: Vec<RunRecord> = Vec::new();
        let untraced = &variants[0];
        let traced_on = |workload: &Workload| -> Vec<&Variant> {
            variants[1..]
                .iter()
                .filter(|v| workload.is_tcp() || !v.is_peer())
                .collect()
        };
        let total: usize = workloads
            .iter()
            .map(|w| args.reps as usize * (2 * traced_on(w).len() + 1))
            .sum();
        for workload in workloads {
            let traced = traced_on(workload);
            let _warm = self.run(&Variant::warmup(), workload, 1.0, false)?;
            for round in 0..args.reps {
                let n = traced.len();
                let mut order = vec![untraced];
                for k in 0..n {
                    order.push(traced[(k + round as usize) % n]);
                    order.push(untraced);
                }
                for variant in order {
                    let (churn, tracer) = self
                        .run(variant, workload, args.duration, false)
                        .with_context(|| {
                            format!("{} ({}, round {round})", variant.name, workload.name)
                        })?;
                    let run = RunRecord {
                        variant: variant.name.clone(),
                        workload: workload.name.clone(),
                        round,
                        seq: runs.len(),
                        churn,
                        tracer,
                    };
                    eprintln!("bench: [{}/{total}] {}", runs.len() + 1, progress(&run));
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    }
}

/// One line per run while the benchmark goes.
fn progress(run: &RunRecord) -> String {
    let churn = &run.churn;
    format!(
        "{}, round {}, {:<18} {:>8.0}/s{}{}",
        run.workload,
        run.round,
        run.variant,
        churn.conn_per_s,
        if churn.foreign_tracers > 0 {
            format!(" (+{} foreign tracing programs)", churn.foreign_tracers)
        } else {
            String::new()
        },
        run.tracer.as_ref().map_or(String::new(), |t| format!(
            ", {} of {} events, {} lost, CPU {:.2} s, RSS {:.1} MiB, {:.2} B/event",
            t.recorded,
            churn.expected,
            t.lost,
            t.cpu_churn_s,
            t.maxrss_kib as f64 / 1024.0,
            t.bytes_per_event.unwrap_or(f64::NAN)
        ))
    )
}
