//! What the kernel matrix needs on the host, installed only when missing: QEMU,
//! udev and kmod from Debian, virtme-ng from PyPI in a virtualenv of its own, and the
//! Rust virtiofsd from crates.io (the cloud kernel has no 9p, so its root filesystem
//! must come over virtio-fs).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use tcpchurn_harness::{
    apt::install_missing,
    exec::{run_shown, try_stdout},
};

/// Debian packages: QEMU for the guests; udev, without which virtme-ng's init finds no
/// console ports and `vng` exits 255 without a word; kmod to load the kernels' modules;
/// and what building virtiofsd links against.
pub const APT_PACKAGES: [&str; 6] = [
    "qemu-system-x86",
    "udev",
    "kmod",
    "libseccomp-dev",
    "libcap-ng-dev",
    "pkg-config",
];
/// The virtme-ng release the matrix was made with.
const VIRTME_NG: &str = "virtme-ng==1.42";
const VIRTIOFSD_VERSION: &str = "1.14.0";

/// The host tools a guest needs, once installed.
#[derive(Clone, Debug)]
pub struct Tools {
    /// `vng` inside the virtualenv.
    pub vng: PathBuf,
    /// Directories to put first on `PATH` for `vng` (it runs `virtme-run` and finds
    /// `virtiofsd` through `PATH`).
    pub path: Vec<PathBuf>,
}

impl Tools {
    /// The tools where `install` puts them, without checking (`--no-install`).
    pub fn existing(cache: &Path) -> Self {
        let venv = cache.join("venv");
        Self {
            vng: venv.join("bin/vng"),
            path: vec![venv.join("bin"), cargo_bin_dir()],
        }
    }
}

fn venv_ok(venv: &Path) -> bool {
    try_stdout(venv.join("bin/vng"), &["--version"]).is_some_and(|v| v.contains("1.42"))
}

/// Creates the virtualenv with virtme-ng unless it is already there.
fn install_virtme_ng(venv: &Path) -> anyhow::Result<()> {
    if venv_ok(venv) {
        return Ok(());
    }
    // Debian's Python: the virtualenv must not depend on a user's pyenv or conda.
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| try_stdout(p, &["-c", "import venv, ensurepip"]).is_some())
        .context(
            "no Python 3 with the venv and ensurepip modules (apt-get install python3-venv)",
        )?;
    eprintln!("xtask: installing {VIRTME_NG} into {}", venv.display());
    run_shown(
        Command::new(python)
            .args(["-m", "venv", "--clear"])
            .arg(venv),
    )?;
    run_shown(Command::new(venv.join("bin/pip")).args(["install", "--quiet", VIRTME_NG]))?;
    if !venv_ok(venv) {
        bail!(
            "{} does not run after installing {VIRTME_NG}",
            venv.join("bin/vng").display()
        );
    }
    Ok(())
}

fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

fn install_virtiofsd(bin_dir: &Path) -> anyhow::Result<()> {
    let installed = try_stdout(bin_dir.join("virtiofsd"), &["--version"])
        .is_some_and(|v| v.contains(VIRTIOFSD_VERSION));
    if installed {
        return Ok(());
    }
    run_shown(Command::new("cargo").args([
        "install",
        "--locked",
        "--quiet",
        "virtiofsd",
        "--version",
        VIRTIOFSD_VERSION,
    ]))
}

/// Installs whatever is missing and returns the tools. `cache` is where the
/// virtualenv lives (kept between runs).
pub fn install(cache: &Path) -> anyhow::Result<Tools> {
    install_missing(&APT_PACKAGES)?;
    let venv = cache.join("venv");
    install_virtme_ng(&venv)?;
    let cargo_bin = cargo_bin_dir();
    install_virtiofsd(&cargo_bin)?;
    Ok(Tools {
        vng: venv.join("bin/vng"),
        path: vec![venv.join("bin"), cargo_bin],
    })
}
