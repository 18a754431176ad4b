//! The load: a workload's generator in a fresh namespace per run, and what it says it
//! did.

use serde::{Deserialize, Serialize};
use tcpchurn_harness::{
    Netns,
    churn::{ChurnLoad, ChurnReport},
    udp_flood::{UdpFloodLoad, UdpFloodReport},
};

use super::{tools::Tools, workloads::Workload};

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

/// The churn generator's settings for a TCP workload; `count` stops each client after
/// that many connections. `None` for a workload that is not TCP churn.
pub fn churn_load(workload: &Workload, duration_s: f64, count: Option<u64>) -> Option<ChurnLoad> {
    let (pairs, close, payload) = workload.churn()?;
    Some(ChurnLoad {
        pairs,
        duration_s,
        close,
        payload,
        port: PORT_BASE,
        count,
    })
}

/// Runs `workload` in `netns` for `duration_s`.
pub fn run_load(
    workload: &Workload,
    tools: &Tools,
    netns: &Netns,
    duration_s: f64,
) -> anyhow::Result<ChurnOut> {
    if let Some(load) = churn_load(workload, duration_s, None) {
        return Ok(load.run(&tools.churn, netns)?.into());
    }
    let flood = UdpFloodLoad {
        pairs: workload.pairs(),
        duration_s,
        port: PORT_BASE,
    };
    Ok(flood.run(&tools.udp_flood, netns)?.into())
}

/// The listening ports of `pairs` pairs.
pub fn ports(pairs: u16) -> Vec<u16> {
    (0..pairs).map(|i| PORT_BASE + i).collect()
}

/// What the load generator says it did, in a run's record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChurnOut {
    /// Connections completed (TCP churn), datagrams sent (UDP flood).
    pub completed: u64,
    pub elapsed_s: f64,
    /// `completed` per second (named for the TCP churn; datagrams for the UDP flood).
    pub conn_per_s: f64,
    /// Transitions a tracer must see.
    #[serde(rename = "expected_events")]
    pub expected: u64,
    #[serde(rename = "churn_failures")]
    pub failed: u64,
    /// UDP flood only: NET_RX softirqs on the machine during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_rx_softirqs: Option<u64>,
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
            net_rx_softirqs: None,
            foreign_tracers: 0,
        }
    }
}

impl From<UdpFloodReport> for ChurnOut {
    fn from(report: UdpFloodReport) -> Self {
        Self {
            completed: report.sent,
            elapsed_s: report.elapsed_s,
            conn_per_s: report.sent_per_s,
            expected: 0,
            failed: 0,
            net_rx_softirqs: Some(report.net_rx_softirqs),
            foreign_tracers: 0,
        }
    }
}
