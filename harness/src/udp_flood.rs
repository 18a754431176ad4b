//! The UDP flood (`tcpchurn-udp-flood`, tests crate): softirq work that is not TCP, to
//! show what a TCP tracer costs a machine busy with something else.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::{netns::Netns, spawn::Spawn};

/// What `tcpchurn-udp-flood` did: its one line of JSON on stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UdpFloodReport {
    pub pairs: u16,
    pub elapsed_s: f64,
    /// Datagrams sent; on loopback each one is delivered in a NET_RX softirq.
    pub sent: u64,
    pub received: u64,
    pub sent_per_s: f64,
    /// NET_RX softirqs on the whole machine while the flood ran (`/proc/softirqs`).
    pub net_rx_softirqs: u64,
}

/// One run of the flood: `pairs` sender/receiver pairs on loopback ports `port`,
/// `port + 1`, ..., for `duration_s`.
#[derive(Clone, Copy, Debug)]
pub struct UdpFloodLoad {
    pub pairs: u16,
    pub duration_s: f64,
    pub port: u16,
}

impl UdpFloodLoad {
    /// Runs the flood `program` inside `netns` to its end.
    pub fn run(&self, program: &Path, netns: &Netns) -> anyhow::Result<UdpFloodReport> {
        let mut cmd = netns.command(program);
        cmd.args(["--pairs", &self.pairs.to_string()])
            .args(["--duration", &self.duration_s.to_string()])
            .args(["--port", &self.port.to_string()]);
        let mut process = Spawn::new("tcpchurn-udp-flood", cmd)
            .stdout_piped()
            .start()?;
        let mut stdout = process.take_stdout().context("the flood's stdout")?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text)
            .context("reading the flood's report")?;
        let exit = process.wait()?;
        if !exit.status.success() {
            bail!("tcpchurn-udp-flood failed ({})", exit.status);
        }
        serde_json::from_str(text.trim()).with_context(|| format!("flood report {text:?}"))
    }
}
