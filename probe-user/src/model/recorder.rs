//! What the recorder says about a recording: how it was set up (filters, tracepoints,
//! socket offsets), kept in the trace header, and what it produced (its summary).

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::{Scope, SocketTuple};

/// What a recording keeps: the `--port` and `--netns` filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filters {
    /// Kept only events where either port is one of these (empty = all ports).
    pub ports: Vec<u16>,
    /// Kept only sockets in these network namespaces (inode numbers; empty = all).
    pub netns: Vec<u32>,
    /// `--pod` selectors (`NAMESPACE/NAME` or `NAME`): kept only the sockets of these
    /// pods' containers and network namespaces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
    /// `--container` selectors (names or id prefixes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
            && self.netns.is_empty()
            && self.pods.is_empty()
            && self.containers.is_empty()
    }

    /// Whether a socket in `scope` with `tuple` passes: a port at either end, and its
    /// namespace, among those asked for. (`pods` and `containers` are decided per scope
    /// by the recorder, which can name workloads.)
    #[inline]
    pub fn keeps(&self, scope: &Scope, tuple: &SocketTuple) -> bool {
        let ports_ok = self.ports.is_empty()
            || self
                .ports
                .iter()
                .any(|&p| p == tuple.local.port() || p == tuple.remote.port());
        let netns_ok = self.netns.is_empty() || self.netns.contains(&scope.netns);
        ports_ok && netns_ok
    }
}

/// One tracepoint the recorder wanted, and whether it got it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TracepointStatus {
    /// `category:name`.
    pub name: String,
    pub attached: bool,
    /// Why it is not attached (missing on this kernel, layout not understood...).
    pub detail: Option<String>,
}

/// Which socket fields the kernel program could read, from the kernel's BTF.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SocketOffsetsInfo {
    /// The netns inode of each socket was read from the socket (BTF offsets found).
    pub netns: bool,
    /// The cgroup id of each socket was read from the socket.
    pub cgroup: bool,
    /// The `struct tcp_sock` counters read at the state changes that carry them
    /// (`bytes_sent`, `bytes_acked`...); empty in traces from before they were recorded.
    pub counters: Vec<String>,
    /// What could not be resolved, and why.
    pub missing: Vec<String>,
}

/// What this kernel's tracepoints give, where kernels differ (docs/kernels.md). A replay
/// says what a verdict cannot know when one is missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KernelFeatures {
    /// `tcp:tcp_send_reset` gives why the RST was sent (`reason`, 6.10+).
    pub reset_reason: bool,
    /// `tcp:tcp_send_reset` also fires for RSTs sent without a full socket: connects
    /// refused for want of a listener, segments for a timewait socket (6.10+; before,
    /// `tcp_v4_send_reset` traced only full sockets).
    pub reset_without_socket: bool,
    /// Error reports name their socket (the raw tracepoint, which needs the socket's
    /// offsets from BTF: the kernel's or a `--btf` file); otherwise each is paired with the
    /// last socket event on its CPU, which fails when another socket's event comes in
    /// between or the report comes late.
    pub error_report_socket: bool,
}

/// What a recording produced; printed when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordSummary {
    /// `interrupted`, `terminated` or `duration`.
    pub stop_reason: String,
    pub files: Vec<PathBuf>,
    pub duration: Duration,
    /// Records written (transitions, resets, errors, snapshot sockets, gaps).
    pub records: u64,
    pub transitions: u64,
    pub connections: u64,
    pub lost: Losses,
    /// Bytes written, over all files.
    pub bytes: u64,
}

/// Events a recording lost, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// The ring buffer was full.
    pub ring_full: u64,
    /// Runs the kernel skipped while another BPF program was running.
    pub recursion: u64,
    /// Transitions the kernel neither delivered nor counted (a lower bound).
    pub unreported: u64,
    /// Entries that arrived but could not be read or decoded.
    pub unreadable: u64,
}

impl Losses {
    pub fn total(&self) -> u64 {
        self.ring_full + self.recursion + self.unreported + self.unreadable
    }
}
