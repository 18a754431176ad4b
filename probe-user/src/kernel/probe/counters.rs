//! The kernel program's loss accounting: per-CPU counters of submitted events and of
//! events the full ring refused, and the runs the kernel skipped.

use aya::maps::{MapData, PerCpuArray};
use probe_common::counter;

use super::KernelError;

/// The kernel program's counters, one value per possible CPU, and the runs the kernel
/// skipped (per program, summed over the event programs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub submitted: Vec<u64>,
    pub ring_full: Vec<u64>,
    pub recursion_missed: u64,
}

impl KernelCounters {
    pub fn submitted_total(&self) -> u64 {
        self.submitted.iter().sum()
    }
}

/// The programs whose skipped runs are lost events (the softirq trackers are not:
/// they emit nothing). Only one of the two state-change programs is loaded, and one of
/// the two error-report programs.
pub(super) const EVENT_PROGRAMS: [&str; 6] = [
    "inet_sock_set_state_btf",
    "inet_sock_set_state",
    "tcp_send_reset",
    "tcp_receive_reset",
    "inet_sk_error_report_raw",
    "inet_sk_error_report",
];

/// The runs the kernel skipped, summed over the event programs' fds: each program's
/// `recursion_misses` from its `/proc/self/fdinfo` entry (5.12+; aya 0.14 does not
/// expose it). A kernel without the field reports 0.
pub(super) fn recursion_misses(program_fds: &[i32]) -> u64 {
    program_fds
        .iter()
        .map(|fd| {
            std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find_map(|l| l.strip_prefix("recursion_misses:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .unwrap_or(0)
        })
        .sum()
}

/// Reads the per-CPU counters (also from an already detached probe); the skipped runs
/// are left at 0 for the caller.
pub(super) fn read_counters(
    counters: &PerCpuArray<MapData, u64>,
) -> Result<KernelCounters, KernelError> {
    let per_cpu = |index: u32| -> Result<Vec<u64>, KernelError> {
        Ok(counters
            .get(&index, 0)
            .map_err(|source| KernelError::Map {
                what: "reading COUNTERS",
                source,
            })?
            .iter()
            .copied()
            .collect())
    };
    Ok(KernelCounters {
        submitted: per_cpu(counter::SUBMITTED)?,
        ring_full: per_cpu(counter::RING_FULL)?,
        recursion_missed: 0,
    })
}
