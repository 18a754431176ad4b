//! Whether this process can record on this kernel: privileges and the kernel version,
//! checked before any kernel work. Each failure is one sentence saying what to do.

use std::fs;

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The capabilities the recorder uses, and what for (docs/kubernetes.md lists them).
pub const RECORDER_CAPABILITIES: [(u32, &str, &str); 5] = [
    (CAP_BPF, "CAP_BPF", "load the kernel program and its maps"),
    (CAP_PERFMON, "CAP_PERFMON", "attach it to tracepoints"),
    (
        CAP_SYS_ADMIN,
        "CAP_SYS_ADMIN",
        "enter other network namespaces for their socket snapshots, mount tracefs",
    ),
    (
        CAP_SYS_PTRACE,
        "CAP_SYS_PTRACE",
        "follow other users' /proc/PID/fd links and open their /proc/PID/ns/net",
    ),
    (
        CAP_DAC_READ_SEARCH,
        "CAP_DAC_READ_SEARCH",
        "list other users' /proc/PID/fd directories (mode 0500)",
    ),
];

/// Names of the [`RECORDER_CAPABILITIES`] held in `cap_eff`, and of CAP_NET_ADMIN
/// (shown because people expect it to matter; sock_diag dumps do not need it).
pub fn held_capabilities(cap_eff: u64) -> Vec<&'static str> {
    RECORDER_CAPABILITIES
        .iter()
        .map(|&(cap, name, _)| (cap, name))
        .chain([(CAP_NET_ADMIN, "CAP_NET_ADMIN")])
        .filter(|&(cap, _)| cap_eff & (1u64 << cap) != 0)
        .map(|(_, name)| name)
        .collect()
}

/// This process's effective capabilities, if `/proc/self/status` says.
pub fn own_capabilities() -> Option<u64> {
    effective_capabilities(&fs::read_to_string("/proc/self/status").unwrap_or_default())
}

/// `RLIMIT_MEMLOCK` (soft limit in bytes; `None` = unlimited). Only kernels before 5.11
/// charge BPF maps to it; later ones charge the memory cgroup.
pub fn memlock_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut limit) } != 0 {
        return Some(0);
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// The active lockdown mode from `/sys/kernel/security/lockdown` (`none [integrity]
/// confidentiality` → `integrity`); `None` without the lockdown LSM.
pub fn lockdown_mode(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')?;
    Some(text[start + 1..start + end].to_owned())
}

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

    #[test]
    fn names_held_capabilities_and_lockdown() {
        assert_eq!(
            held_capabilities((1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_NET_ADMIN)),
            vec!["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]
        );
        assert!(held_capabilities(0).is_empty());
        assert_eq!(
            lockdown_mode("none [integrity] confidentiality\n").as_deref(),
            Some("integrity")
        );
        assert_eq!(
            lockdown_mode("[none] integrity confidentiality").as_deref(),
            Some("none")
        );
        assert_eq!(lockdown_mode(""), None);
    }
}
