//! `cargo xtask setup`: installs what is missing, says what it does, changes nothing
//! that is already right.

use std::process::Command;

use anyhow::{Context as _, bail};
use tcpchurn_harness::{
    apt::install_missing,
    duckdb,
    exec::{run_shown, try_stdout},
    prometheus, tmux, zookeeper,
};

const LLVM_PACKAGES: [&str; 3] = ["llvm-22-dev", "libclang-22-dev", "libpolly-22-dev"];
/// `python3-venv`: the export tests read the tables back with DuckDB and pyarrow from
/// PyPI, in a virtual environment in `target/` ([`duckdb::install`]).
const TOOL_PACKAGES: [&str; 5] = [
    "iproute2",
    "util-linux",
    "bpftool",
    "procps",
    "python3-venv",
];
const BPF_LINKER_VERSION: &str = "0.13.0";

#[derive(Debug, Default, clap::Args)]
pub struct SetupArgs {
    /// Also install ZooKeeper and a JRE (for the ZooKeeper scenario).
    #[arg(long)]
    pub zookeeper: bool,
    /// Also install the other tracers `cargo xtask bench` compares with (bpftrace, and
    /// libbpf-tools' tcpstates).
    #[arg(long)]
    pub bench_peers: bool,
}

/// The tracers the benchmark runs next to tcpchurn when they are installed.
const BENCH_PEER_PACKAGES: [&str; 2] = ["bpftrace", "libbpf-tools"];

fn nightly_has_rust_src() -> bool {
    try_stdout("rustup", &["+nightly", "component", "list", "--installed"])
        .is_some_and(|list| list.lines().any(|l| l.starts_with("rust-src")))
}

fn bpf_linker_ok() -> bool {
    try_stdout("bpf-linker", &["--version"]).is_some_and(|v| v.contains(BPF_LINKER_VERSION))
}

pub fn setup(args: &SetupArgs) -> anyhow::Result<()> {
    install_missing(&TOOL_PACKAGES)?;
    // The tests of the live views: a terminal for --live, Prometheus for --metrics.
    install_missing(&[tmux::PACKAGE])?;
    install_missing(&prometheus::PACKAGES)?;
    if try_stdout("rustup", &["+nightly", "--version"]).is_none() {
        bail!("no nightly Rust toolchain: install one with `rustup toolchain install nightly`");
    }
    if !nightly_has_rust_src() {
        run_shown(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    if !bpf_linker_ok() {
        install_missing(&LLVM_PACKAGES)?;
        let path = format!(
            "/usr/lib/llvm-22/bin:{}",
            std::env::var("PATH").context("PATH is not set")?
        );
        run_shown(
            Command::new("cargo")
                .args([
                    "install",
                    "bpf-linker",
                    "--locked",
                    "--version",
                    BPF_LINKER_VERSION,
                    "--no-default-features",
                    "--features",
                    "llvm-22",
                ])
                .env("PATH", path),
        )?;
    }
    if args.zookeeper {
        zookeeper::install()?;
    }
    if args.bench_peers {
        install_missing(&BENCH_PEER_PACKAGES)?;
    }
    crate::dist::install_tools()?;
    duckdb::install()?;
    eprintln!("xtask: setup complete");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn package_lists_are_not_empty() {
        assert!(!super::LLVM_PACKAGES.is_empty());
    }
}
