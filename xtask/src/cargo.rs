//! Cargo commands in the workspace, with the stable or the nightly toolchain.

use std::process::Command;

use tcpchurn_harness::workspace;

/// `cargo` of the toolchain xtask runs with.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace::root());
    cmd
}

/// `cargo` of the nightly toolchain (formatting options and the eBPF target need it).
pub fn cargo_nightly() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .current_dir(workspace::root());
    cmd
}
