//! What the container tests need: podman with runc (crun's cgroup v1 support is
//! partial, and this project's CI hosts are hybrid), conmon, catatonit (podman's pod
//! infra process, from which podman builds its pause image locally: nothing is
//! pulled), and a static busybox whose applets (`nc`, `sh`, `sleep`) make the tests'
//! container image from a local rootfs tarball.

use tcpchurn_harness::{apt::install_missing, runner::is_root};

pub const CONTAINER_PACKAGES: [&str; 5] =
    ["podman", "runc", "conmon", "catatonit", "busybox-static"];

/// Installs the container test packages that are missing, as root (the tests that
/// use them are privileged); fast when all are there.
pub fn install() -> anyhow::Result<()> {
    if is_root() {
        install_missing(&CONTAINER_PACKAGES)?;
    }
    Ok(())
}
