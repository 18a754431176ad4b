//! The benchmark's options.

use tcpchurn_harness::churn::CloseMode;

#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Seconds of churn per run.
    #[arg(long, default_value_t = 4.0)]
    pub duration: f64,
    /// Repetitions of every variant (rounds), per close mode.
    #[arg(long, default_value_t = 5)]
    pub reps: u32,
    /// Client/server pairs of the load generator.
    #[arg(long, default_value_t = 2)]
    pub pairs: u16,
    /// Close modes to run: client, server.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "client,server"
    )]
    pub close: Vec<CloseMode>,
    /// `tcpchurn record` arguments of the second tcpchurn variant.
    #[arg(long, default_value = "--ring-size 4M")]
    pub alt_args: String,
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

    /// The close mode of the single-mode passes (kernel cost).
    pub fn first_mode(&self) -> CloseMode {
        self.close.first().copied().unwrap_or(CloseMode::Client)
    }
}
