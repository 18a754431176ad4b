//! `cargo xtask setup`: installs what is missing, says what it does, changes nothing
//! that is already right.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::run::{is_root, output, run};

const LLVM_PACKAGES: [&str; 3] = ["llvm-22-dev", "libclang-22-dev", "libpolly-22-dev"];
const TOOL_PACKAGES: [&str; 4] = ["iproute2", "util-linux", "bpftool", "procps"];
/// The scenario packages: ZooKeeper and a JRE to run it.
pub const ZOOKEEPER_PACKAGES: [&str; 2] = ["zookeeper", "default-jre-headless"];
const BPF_LINKER_VERSION: &str = "0.13.0";

#[derive(Debug, Default, clap::Args)]
pub struct SetupArgs {
    /// Also install ZooKeeper and a JRE (for the ZooKeeper scenario).
    #[arg(long)]
    pub zookeeper: bool,
}

fn installed(package: &str) -> bool {
    output("dpkg-query", &["-W", "-f=${Status}", package])
        .is_some_and(|s| s.contains("install ok installed"))
}

/// Installs Debian packages that are missing.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {missing:?}; run `cargo xtask setup` as root to install them"
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    // The package index may be stale (or empty) on a fresh machine.
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn nightly_has_rust_src() -> bool {
    output("rustup", &["+nightly", "component", "list", "--installed"])
        .is_some_and(|list| list.lines().any(|l| l.starts_with("rust-src")))
}

fn bpf_linker_ok() -> bool {
    output("bpf-linker", &["--version"]).is_some_and(|v| v.contains(BPF_LINKER_VERSION))
}

pub fn setup(args: &SetupArgs) -> anyhow::Result<()> {
    apt_install(&TOOL_PACKAGES)?;
    if output("rustup", &["+nightly", "--version"]).is_none() {
        bail!("no nightly Rust toolchain: install one with `rustup toolchain install nightly`");
    }
    if !nightly_has_rust_src() {
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    if !bpf_linker_ok() {
        apt_install(&LLVM_PACKAGES)?;
        let path = format!(
            "/usr/lib/llvm-22/bin:{}",
            std::env::var("PATH").context("PATH is not set")?
        );
        run(Command::new("cargo")
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
            .env("PATH", path))?;
    }
    if args.zookeeper {
        apt_install(&ZOOKEEPER_PACKAGES)?;
    }
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
