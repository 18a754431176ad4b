//! Building the programs the tasks run: `tcpchurn` and the tests crate's helpers.

use std::path::PathBuf;

use tcpchurn_harness::{exec::run_shown, workspace};

use crate::cargo::cargo;

/// The cargo arguments that build the release `tcpchurn`.
pub const BUILD_TCPCHURN: [&str; 6] = [
    "build",
    "--release",
    "-p",
    "probe-user",
    "--bin",
    "tcpchurn",
];

/// Builds the release `tcpchurn` and returns its path.
pub fn build_tcpchurn() -> anyhow::Result<PathBuf> {
    run_shown(cargo().args(BUILD_TCPCHURN))?;
    Ok(workspace::release_bin("tcpchurn"))
}

/// Builds release binaries of the tests crate (peer, churn generator, trace tool).
/// Separate from `tcpchurn`'s build: built together, the packages would unify
/// features differently and rebuild the `tcpchurn` that `xtask test` builds alone.
pub fn build_test_binaries(bins: &[&str]) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "-p", "tcpchurn-tests"]);
    for bin in bins {
        cmd.args(["--bin", bin]);
    }
    run_shown(&mut cmd)
}

/// The programs the demo and the soak run.
pub struct Binaries {
    pub tcpchurn: PathBuf,
    pub peer: PathBuf,
}

impl Binaries {
    pub fn build() -> anyhow::Result<Self> {
        let tcpchurn = build_tcpchurn()?;
        build_test_binaries(&["tcpchurn-peer"])?;
        Ok(Self {
            tcpchurn,
            peer: workspace::release_bin("tcpchurn-peer"),
        })
    }
}
