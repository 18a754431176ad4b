//! The JSON documents at the start (meta) and end of a trace file.
//!
//! They are JSON, not binary records, because they are written once and read by
//! humans and other tools as often as by tcpchurn; unknown keys are ignored so that
//! a newer minor format version can add keys without breaking older readers.

use serde::{Deserialize, Serialize};

use crate::model::{Filters, KernelFeatures, Losses, SocketOffsetsInfo, TracepointStatus};

/// What the recorder knew about itself, the host and the kernel when it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceMeta {
    pub tool: String,
    pub tool_version: String,
    pub hostname: String,
    /// `uname -r`.
    pub kernel: String,
    /// `uname -m`.
    pub machine: String,
    /// `/proc/sys/kernel/random/boot_id`: monotonic times are only comparable within
    /// one boot.
    pub boot_id: String,
    /// Kernel CLOCK_MONOTONIC (what `bpf_ktime_get_ns()` returns) at trace time 0.
    pub start_monotonic_ns: u64,
    /// Wall clock (ns since the Unix epoch) at trace time 0; trace time `t` is wall
    /// clock `start_unix_ns + t`.
    pub start_unix_ns: u64,
    pub filters: Filters,
    pub tracepoints: Vec<TracepointStatus>,
    pub attribution: Attribution,
    pub socket_offsets: SocketOffsetsInfo,
    /// What the kernel's tracepoints give that differs between kernels; absent in
    /// traces from before format 1.1.
    pub kernel_features: Option<KernelFeatures>,
    pub recorder: RecorderInfo,
    pub part: PartInfo,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Attribution {
    /// `irq:softirq_entry`/`softirq_exit` were attached: every event says whether it
    /// ran in softirq, so `current` is used only when it is the socket's own task.
    pub softirq_tracking: bool,
    /// Every event that names its socket says, from the socket lock, whether it ran in
    /// the socket owner's context (kernel BTF gave the lock's offset); the softirq
    /// tracepoints are then not used.
    pub socket_lock: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecorderInfo {
    pub pid: u32,
    pub ring_bytes: u64,
    pub flush_interval_ms: u64,
    pub cpus: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartInfo {
    /// 0 for the first file of a recording, n for the n-th rotation.
    pub index: u32,
    /// File name of the previous part, when rotating.
    pub previous: Option<String>,
}

/// Written when recording stops cleanly. A trace without it was cut (killed recorder,
/// full disk, power loss): everything before the cut still replays.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceEnd {
    /// Trace time (ns since start) when recording stopped.
    pub end_ns: u64,
    /// `interrupted`, `terminated`, `duration`, `rotated`, or `error: ...`.
    pub stop_reason: String,
    /// Records written to this file (transitions, resets, errors, snapshot sockets).
    pub records: u64,
    /// Connections seen in this file.
    pub connections: u64,
    /// Events the kernel could not deliver, by cause.
    pub lost_ring_full: u64,
    pub lost_read_failed: u64,
    pub lost_decode_failed: u64,
    /// Runs of the event programs the kernel skipped (another BPF program was running
    /// on that CPU) that nothing recorded.
    pub lost_recursion: u64,
    /// State changes the rescue program recorded because the kernel skipped the main
    /// program's run (they are in the file: not lost).
    pub kernel_rescued: u64,
    /// Transitions the kernel neither delivered nor counted, inferred from sockets
    /// whose next event did not continue from their last state (a lower bound).
    pub lost_unreported: u64,
    /// Events the kernel program submitted while this file was being written.
    pub kernel_submitted: u64,
    /// Size of this file in bytes, up to (not including) this end block.
    pub bytes: u64,
    /// File name of the next part, when rotating.
    pub next_part: Option<String>,
}

impl TraceEnd {
    pub fn lost(&self) -> u64 {
        self.losses().total()
    }

    pub fn losses(&self) -> Losses {
        Losses {
            ring_full: self.lost_ring_full,
            recursion: self.lost_recursion,
            unreported: self.lost_unreported,
            unreadable: self.lost_read_failed + self.lost_decode_failed,
        }
    }
}
