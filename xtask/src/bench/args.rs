//! The benchmark's options.

use std::path::PathBuf;

use super::workloads::{Workload, workloads};

/// The second tcpchurn variant's arguments when it runs the same binary.
const DEFAULT_ALT_ARGS: &str = "--ring-size 4M";

#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Seconds of load per run.
    #[arg(long, default_value_t = 4.0)]
    pub duration: f64,
    /// Repetitions of every variant (rounds), per workload.
    #[arg(long, default_value_t = 5)]
    pub reps: u32,
    /// Client/server pairs of the request/response workloads (`client`, `server`).
    #[arg(long, default_value_t = 2)]
    pub pairs: u16,
    /// Workloads to run, in order: client, server (request/response, `--pairs` pairs,
    /// the client or the server closes first), bare-server, bare-client (4 pairs,
    /// connect and close without payload), reset (4 pairs, the server aborts with an
    /// RST), udp-flood (UDP over loopback: softirq work without TCP).
    #[arg(
        long,
        alias = "close",
        value_delimiter = ',',
        default_value = "client,server,bare-server,reset,udp-flood"
    )]
    pub workloads: Vec<String>,
    /// `tcpchurn record` arguments of the second tcpchurn variant (default: `--ring-size
    /// 4M`, or none with `--alt-binary`/`--alt-rev`).
    #[arg(long)]
    pub alt_args: Option<String>,
    /// The second tcpchurn variant runs this binary instead (a before/after comparison
    /// of two builds, alternated in the same rounds).
    #[arg(long, conflicts_with = "alt_rev")]
    pub alt_binary: Option<PathBuf>,
    /// The second tcpchurn variant runs `tcpchurn` built from this git revision (in
    /// target/bench/rev, with its own target directory).
    #[arg(long)]
    pub alt_rev: Option<String>,
    /// Leave out tcpstates and bpftrace even when installed.
    #[arg(long)]
    pub no_peers: bool,
    /// Leave out the tcpchurn variants with live views (--live, --metrics).
    #[arg(long)]
    pub no_live: bool,
    /// Events in the synthetic replay trace (0: no replay measurements).
    #[arg(long, default_value_t = 10_000_000)]
    pub replay_events: u64,
    /// Repetitions of each replay measurement.
    #[arg(long, default_value_t = 3)]
    pub replay_reps: u32,
    /// Skip the kernel-cost pass (kernel.bpf_stats_enabled).
    #[arg(long)]
    pub no_kernel_cost: bool,
    /// A quick smoke run: 2 s runs, 2 rounds, a 7-million-event replay trace (70 s
    /// of trace time, longer than the TIME_WAIT window).
    #[arg(long)]
    pub quick: bool,
    /// Use the binaries in target/release as they are.
    #[arg(long)]
    pub no_build: bool,
}

impl BenchArgs {
    /// The options a run uses: `--quick` replaces the durations and repetitions.
    pub fn resolved(&self) -> Self {
        if !self.quick {
            return self.clone();
        }
        Self {
            duration: 2.0,
            reps: 2,
            replay_events: 7_000_000,
            replay_reps: 1,
            ..self.clone()
        }
    }

    /// The workloads, in the order given.
    pub fn workloads(&self) -> anyhow::Result<Vec<Workload>> {
        workloads(&self.workloads, self.pairs).map_err(anyhow::Error::msg)
    }

    /// Whether the second tcpchurn variant runs another build.
    pub fn alt_is_other_build(&self) -> bool {
        self.alt_binary.is_some() || self.alt_rev.is_some()
    }

    /// The second tcpchurn variant's `record` arguments.
    pub fn alt_args(&self) -> String {
        match &self.alt_args {
            Some(args) => args.clone(),
            None if self.alt_is_other_build() => String::new(),
            None => DEFAULT_ALT_ARGS.to_owned(),
        }
    }
}
