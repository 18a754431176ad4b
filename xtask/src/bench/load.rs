//! The load: the churn generator in a fresh namespace per run, and what it says it did.

use serde::{Deserialize, Serialize};
use tcpchurn_harness::{
    Netns,
    churn::{ChurnLoad, ChurnReport, CloseMode},
};

/// The first listening port; pair i listens on `PORT_BASE + i`.
pub const PORT_BASE: u16 = 23_100;

/// A fresh namespace for one run: other traffic on the machine (and TIME_WAIT left by
/// earlier runs) never reaches it.
pub fn fresh_netns() -> anyhow::Result<Netns> {
    let netns = Netns::create("bench")?;
    // Room for the churn's ephemeral ports (TIME_WAIT holds each for 60 s; loopback
    // reuses them after 1 s with the default tcp_tw_reuse=2).
    netns.run(
        "sysctl",
        &["-qw", "net.ipv4.ip_local_port_range=10000 65000"],
    )?;
    Ok(netns)
}

/// The generator's settings for a run.
pub fn load(pairs: u16, mode: CloseMode, duration_s: f64, count: Option<u64>) -> ChurnLoad {
    ChurnLoad {
        pairs,
        duration_s,
        close: mode,
        port: PORT_BASE,
        count,
    }
}

/// The listening ports of `pairs` pairs.
pub fn ports(pairs: u16) -> Vec<u16> {
    (0..pairs).map(|i| PORT_BASE + i).collect()
}

/// What the load generator says it did, in a run's record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChurnOut {
    pub completed: u64,
    pub elapsed_s: f64,
    pub conn_per_s: f64,
    /// Transitions a tracer must see.
    #[serde(rename = "expected_events")]
    pub expected: u64,
    #[serde(rename = "churn_failures")]
    pub failed: u64,
    /// Tracing programs of others loaded at the start or end of the run.
    #[serde(rename = "foreign_tracing_programs")]
    pub foreign_tracers: usize,
}

impl From<ChurnReport> for ChurnOut {
    fn from(report: ChurnReport) -> Self {
        Self {
            completed: report.completed,
            elapsed_s: report.elapsed_s,
            conn_per_s: report.conn_per_s,
            expected: report.expected_transitions,
            failed: report.failures(),
            foreign_tracers: 0,
        }
    }
}
