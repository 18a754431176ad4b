//! `cargo xtask lint`: nightly rustfmt, clippy on userspace, clippy on the kernel
//! program for its real target. Warnings are errors.

use crate::run::{cargo, cargo_nightly, run};

pub fn lint() -> anyhow::Result<()> {
    run(cargo_nightly().args(["fmt", "--all", "--", "--check"]))?;
    // The kernel program cannot be linted together with the rest: its panic handler
    // would be compiled twice.
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "probe-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo_nightly()
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
        .env("RUSTFLAGS", "--cfg bpf_target_arch=\"x86_64\""))
}
