//! What this process runs as, and under: root or not, CI or not.

/// True when running as root (eBPF, network namespaces and cgroups need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// How many times slower than the host timing-based steps may run
/// (`TCPCHURN_TEST_TIME_SCALE`, set by `cargo xtask kernels` in emulated guests;
/// default 1).
pub fn time_scale() -> u32 {
    std::env::var("TCPCHURN_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s| s >= 1)
        .unwrap_or(1)
}

/// True under `CI=true` (or any value but empty, `false` and `0`): there a skipped
/// privileged test or check is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}
