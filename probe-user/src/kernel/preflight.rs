//! Whether this process can record on this kernel: privileges and the kernel version,
//! checked before any kernel work. Each failure is one sentence saying what to do.

use std::fs;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "tcpchurn record needs root, or CAP_BPF and CAP_PERFMON (missing: {missing}); run it with \
         sudo, or as a privileged container"
    )]
    Privileges { missing: String },
    #[error("tcpchurn needs Linux 5.8 or newer (for the BPF ring buffer); this kernel is {0}")]
    KernelTooOld(String),
}

/// `(major, minor)` from a kernel release such as `6.18.44-fc-v595` or `5.4.0-150-generic`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Refuses kernels without the BPF ring buffer (5.8). An unparsable release is let
/// through: loading then fails with the kernel's own error.
pub fn check_kernel(release: &str) -> Result<(), PreflightError> {
    match kernel_version(release) {
        Some(version) if version < (5, 8) => Err(PreflightError::KernelTooOld(release.to_owned())),
        _ => Ok(()),
    }
}

/// The effective capability set from the text of `/proc/self/status`.
pub fn effective_capabilities(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// What is missing to load and attach tracepoint programs, if anything. Since 5.8,
/// CAP_BPF + CAP_PERFMON are enough; before, CAP_SYS_ADMIN was required.
pub fn missing_privileges(cap_eff: u64) -> Option<String> {
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Some(missing.join(", "))
}

pub fn check_privileges() -> Result<(), PreflightError> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    match effective_capabilities(&status).and_then(missing_privileges) {
        None if effective_capabilities(&status).is_some() => Ok(()),
        None => Err(PreflightError::Privileges {
            missing: "unknown (no CapEff in /proc/self/status)".into(),
        }),
        Some(missing) => Err(PreflightError::Privileges { missing }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
        assert_eq!(kernel_version("garbage"), None);
        assert!(check_kernel("5.8.0").is_ok());
        assert!(check_kernel("6.1.0-28-amd64").is_ok());
        assert!(check_kernel("weird").is_ok());
        let err = check_kernel("5.4.0-150-generic").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tcpchurn needs Linux 5.8 or newer (for the BPF ring buffer); this kernel is 5.4.0-150-generic"
        );
    }

    #[test]
    fn parses_capabilities() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_capabilities(status), Some(0x1ff_ffff_ffff));
        assert_eq!(missing_privileges(0x1ff_ffff_ffff), None);
        assert_eq!(missing_privileges(0), Some("CAP_BPF, CAP_PERFMON".into()));
        assert_eq!(missing_privileges(1 << CAP_BPF), Some("CAP_PERFMON".into()));
        assert_eq!(
            missing_privileges((1 << CAP_BPF) | (1 << CAP_PERFMON)),
            None
        );
        assert_eq!(missing_privileges(1 << CAP_SYS_ADMIN), None);
        assert_eq!(effective_capabilities("Name: x\n"), None);
    }
}
