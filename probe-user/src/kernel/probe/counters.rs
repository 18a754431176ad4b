//! The kernel program's loss accounting: per-CPU counters of submitted events and of
//! events the full ring refused, and the runs the kernel skipped.

use aya::maps::{MapData, PerCpuArray};
use probe_common::counter;

use super::KernelError;

/// The kernel program's counters, one value per possible CPU, and the runs the kernel
/// skipped (per program, summed over the event programs) that nothing recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub submitted: Vec<u64>,
    pub ring_full: Vec<u64>,
    /// State changes the rescue program took over from the skipped main program.
    pub rescued: Vec<u64>,
    pub recursion_missed: u64,
}

impl KernelCounters {
    pub fn submitted_total(&self) -> u64 {
        self.submitted.iter().sum()
    }

    pub fn rescued_total(&self) -> u64 {
        self.rescued.iter().sum()
    }
}

/// The programs whose skipped runs are lost events (the softirq trackers and the
/// `tp_btf` arming and rescue programs are not: they emit nothing, or only for the main
/// program). Only one of the two state-change programs is attached, and one of the two
/// error-report programs. The `tp_btf` state-change program is apart
/// ([`attach::BTF_STATE_MAIN`](super::attach::BTF_STATE_MAIN)): its skipped runs are
/// the ones the rescue program records.
pub(super) const EVENT_PROGRAMS: [&str; 5] = [
    "inet_sock_set_state",
    "tcp_send_reset",
    "tcp_receive_reset",
    "inet_sk_error_report_raw",
    "inet_sk_error_report",
];

/// The skipped runs nothing recorded: the other event programs' `recursion_misses`,
/// and those of the `tp_btf` state-change program less the state changes the rescue
/// program recorded for it (each rescue follows its skip within the same tracepoint
/// call). Exact once the rescue program is detached before the misses are read; while
/// it runs, a skip between the two reads can make this one short, never more.
pub(super) fn unrescued_misses(main_misses: u64, other_misses: u64, rescued: u64) -> u64 {
    other_misses + main_misses.saturating_sub(rescued)
}

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
/// are left at 0 for the caller, who reads them first.
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
    // Per CPU, the sum over the program families' slots.
    let families = |base: u32| -> Result<Vec<u64>, KernelError> {
        let mut sum = per_cpu(base)?;
        for family in 1..counter::FAMILIES {
            for (total, value) in sum.iter_mut().zip(per_cpu(base + family)?) {
                *total += value;
            }
        }
        Ok(sum)
    };
    Ok(KernelCounters {
        submitted: families(counter::SUBMITTED)?,
        ring_full: families(counter::RING_FULL)?,
        rescued: per_cpu(counter::RESCUED)?,
        recursion_missed: 0,
    })
}
