//! Debian packages: which are installed, and installing the missing ones.

use std::process::Command;

use anyhow::bail;

use crate::{exec, runner::is_root};

pub fn installed(package: &str) -> bool {
    exec::try_stdout("dpkg-query", &["-W", "-f=${Status}", package])
        .is_some_and(|s| s.contains("install ok installed"))
}

/// Installs the packages that are missing (root only); does nothing when all are there.
pub fn install_missing(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {missing:?}; run `cargo xtask setup` as root to install them"
        );
    }
    eprintln!("installing {}", missing.join(" "));
    // The package index may be stale (or empty) on a fresh machine. dpkg writes its
    // progress to stdout whatever `-qq` says: it is dropped (a failure's error says what
    // apt-get and dpkg wrote on stderr).
    exec::stdout(Command::new("apt-get").args(["update", "-qq"]))?;
    exec::stdout(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}
