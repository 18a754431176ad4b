//! The programs the benchmark runs and where it writes.

use std::path::PathBuf;

use tcpchurn_harness::workspace;

pub const TCPSTATES: &str = "/usr/sbin/tcpstates";

pub struct Tools {
    pub tcpchurn: PathBuf,
    /// The load generators.
    pub churn: PathBuf,
    pub udp_flood: PathBuf,
    /// Synthetic traces and trace statistics.
    pub trace_tool: PathBuf,
    /// `target/bench`: scratch files and the results.
    pub out_dir: PathBuf,
}

impl Tools {
    pub fn release() -> anyhow::Result<Self> {
        let out_dir = workspace::root().join("target/bench");
        std::fs::create_dir_all(&out_dir)?;
        Ok(Self {
            tcpchurn: workspace::release_bin("tcpchurn"),
            churn: workspace::release_bin("tcpchurn-churn"),
            udp_flood: workspace::release_bin("tcpchurn-udp-flood"),
            trace_tool: workspace::release_bin("tcpchurn-trace-tool"),
            out_dir,
        })
    }
}
