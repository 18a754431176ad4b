//! `cargo xtask lint`: nightly rustfmt, clippy on userspace, clippy on the kernel
//! program for its real target. Warnings are errors.

use tcpchurn_harness::exec::run_shown;

use crate::cargo::{cargo, cargo_nightly};

pub fn lint() -> anyhow::Result<()> {
    run_shown(cargo_nightly().args(["fmt", "--all", "--", "--check"]))?;
    // The kernel program cannot be linted together with the rest: its panic handler
    // would be compiled twice.
    run_shown(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "probe-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_shown(
        cargo_nightly()
            .args([
                "clippy",
                "-p",
                "probe-ebpf",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Zbuild-std=core",
                "--",
                "-D",
                "warnings",
            ])
            .env("CARGO_CFG_BPF_TARGET_ARCH", "x86_64")
            .env("RUSTFLAGS", "--cfg bpf_target_arch=\"x86_64\""),
    )
}
