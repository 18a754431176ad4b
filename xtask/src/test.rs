//! `cargo xtask test`: what CI runs. Setup, lint, unit tests, then the privileged
//! tests against the real kernel. Under `CI=true` the privileged tests must run: not
//! being root is a failure, not a skip.

use anyhow::bail;
use tcpchurn_harness::{
    exec::run_shown,
    runner::{in_ci, is_root},
};

use crate::{
    binaries::build_tcpchurn,
    cargo::cargo,
    dist::{DistArgs, X86_64, dist, dist_dir, kubernetes_validate},
    lint::lint,
    setup::{SetupArgs, setup},
    setup_containers,
};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip `xtask setup`.
    #[arg(long)]
    pub no_setup: bool,
    /// Skip formatting and clippy.
    #[arg(long)]
    pub no_lint: bool,
    /// Run only the unit tests.
    #[arg(long, conflicts_with = "privileged_only")]
    pub unit_only: bool,
    /// Run only the privileged tests.
    #[arg(long)]
    pub privileged_only: bool,
    /// Only privileged tests whose name contains this.
    pub filter: Option<String>,
}

pub fn test(args: &TestArgs) -> anyhow::Result<()> {
    if !args.no_setup {
        setup(&SetupArgs {
            zookeeper: is_root(),
            ..SetupArgs::default()
        })?;
        setup_containers::install()?;
    }
    if !args.no_lint && !args.privileged_only {
        lint()?;
    }
    if !args.privileged_only {
        run_shown(cargo().args([
            "test",
            "--workspace",
            "--exclude",
            "probe-ebpf",
            "--exclude",
            "tcpchurn-tests",
        ]))?;
    }
    if args.unit_only {
        return Ok(());
    }
    if !is_root() {
        let reason = "the privileged tests need root (eBPF, network namespaces)";
        if in_ci() {
            bail!("{reason}, and CI=true: a skipped privileged test is a failed one");
        }
        eprintln!("xtask: SKIPPED privileged tests: {reason}; run `cargo xtask test` as root");
        return Ok(());
    }
    let tcpchurn = build_tcpchurn()?;
    // What ships (static binary, tarball, .deb) is tested as shipped (tests/tests/ship.rs).
    dist(&DistArgs {
        aarch64: false,
        no_deb: false,
    })?;
    let mut cmd = cargo();
    // All test binaries run even when one fails, so one CI run shows every failure.
    cmd.args([
        "test",
        "--release",
        "--no-fail-fast",
        "-p",
        "tcpchurn-tests",
        "--",
    ])
    // The tests share one kernel: run them one at a time.
    .args(["--test-threads=1"])
    .env("TCPCHURN_BIN", &tcpchurn)
    .env("TCPCHURN_DIST", dist_dir().join(X86_64.name()))
    .env("TCPCHURN_KUBE_VALIDATE", kubernetes_validate())
    .env("RUST_BACKTRACE", "1");
    if let Some(filter) = &args.filter {
        cmd.arg(filter);
    }
    run_shown(&mut cmd)?;
    eprintln!("xtask: all tests passed");
    Ok(())
}
