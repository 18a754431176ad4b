//! What a verdict says about the trace itself, beside the analysis.

use crate::{
    model::{KernelFeatures, TimeWindow, TracepointStatus},
    trace::{
        Damage, TraceEnd, TraceMeta,
        set::{HostClock, UnmatchedEnds},
    },
};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceInfo {
    /// The files, as given (joined with `, ` when several).
    pub file: String,
    /// The host name (joined with `, ` when several hosts).
    pub host: String,
    /// The kernel release (the distinct ones, joined, when several hosts).
    pub kernel: String,
    /// Wall-clock time of the replay's time 0.
    pub start_unix_ns: u64,
    /// How the recording stopped; `None` when the file has no end block (cut). With
    /// several hosts: the first host's.
    pub stop_reason: Option<String>,
    /// Tracepoints the recorder could not attach, with why.
    pub missing_tracepoints: Vec<String>,
    /// Every tracepoint, attached or not, and how (the trace header's list; with several
    /// hosts, the first host's).
    pub tracepoints: Vec<TracepointStatus>,
    /// What a verdict cannot know on the recording's kernel (on any host's).
    pub kernel_limits: Vec<KernelLimit>,
    /// Damage the reader worked around.
    pub damage: Vec<String>,
    /// `--since`/`--until`.
    pub window: TimeWindow,
    /// `--close-wait`.
    pub close_wait_ns: u64,
    /// Every host of the replay (one for a replay of one recording).
    pub hosts: Vec<HostInfo>,
    /// Host pairs whose connections' ends could not be matched.
    pub unmerged: Vec<UnmergedEnds>,
}

/// One host (recording) of a replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// Unique in the replay (`node#2` for a second recording of `node`).
    pub name: String,
    pub hostname: String,
    pub kernel: String,
    pub files: Vec<String>,
    /// Wall-clock time of its trace time 0, by its own clock.
    pub start_unix_ns: u64,
    pub clock: Option<HostClock>,
    /// The name of the host its clock was measured against.
    pub clock_via: Option<String>,
    pub stop_reason: Option<String>,
}

/// Connects on `client` and accepts on `server` (to `port`) that found no other end:
/// their ends stay two connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmergedEnds {
    pub client: String,
    pub server: String,
    pub ends: UnmatchedEnds,
}

impl TraceInfo {
    /// What a trace's meta and end blocks say (`end` is `None` while it is being
    /// written, or when it was cut), with the damage its reader worked around. The
    /// window and the CLOSE_WAIT threshold are the caller's.
    pub fn of_trace(
        file: String,
        meta: &TraceMeta,
        end: Option<&TraceEnd>,
        damage: &[Damage],
    ) -> Self {
        Self {
            file,
            host: meta.hostname.clone(),
            kernel: meta.kernel.clone(),
            start_unix_ns: meta.start_unix_ns,
            stop_reason: end.map(|e| e.stop_reason.clone()),
            missing_tracepoints: meta
                .tracepoints
                .iter()
                .filter(|t| !t.attached)
                .map(|t| match &t.detail {
                    Some(why) => format!("{} ({why})", t.name),
                    None => t.name.clone(),
                })
                .collect(),
            tracepoints: meta.tracepoints.clone(),
            kernel_limits: KernelLimit::of(meta.kernel_features.as_ref()),
            damage: damage.iter().map(ToString::to_string).collect(),
            window: TimeWindow::default(),
            close_wait_ns: 0,
            hosts: Vec::new(),
            unmerged: Vec::new(),
        }
    }
}

/// Something the recording's kernel did not give, so a verdict cannot know it
/// (docs/kernel-facts.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelLimit {
    /// `tcp:tcp_send_reset` has no reason (before 6.10).
    ResetReason,
    /// `tcp:tcp_send_reset` does not fire for RSTs sent without a socket (before 6.10):
    /// a connect refused here is seen only from its client's side.
    ResetWithoutSocket,
    /// Error reports do not name their socket (no BTF, so no socket offsets): each is
    /// paired with the last socket event on its CPU.
    ErrorReportSocket,
}

impl KernelLimit {
    /// What the header's `kernel_features` say is missing; nothing for traces from
    /// before the header said (format 1.0).
    pub fn of(features: Option<&KernelFeatures>) -> Vec<Self> {
        let Some(features) = features else {
            return Vec::new();
        };
        [
            (features.reset_reason, Self::ResetReason),
            (features.reset_without_socket, Self::ResetWithoutSocket),
            (features.error_report_socket, Self::ErrorReportSocket),
        ]
        .into_iter()
        .filter(|(given, _)| !given)
        .map(|(_, limit)| limit)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_what_the_kernel_did_not_give() {
        assert!(KernelLimit::of(None).is_empty());
        assert_eq!(
            KernelLimit::of(Some(&KernelFeatures::default())),
            [
                KernelLimit::ResetReason,
                KernelLimit::ResetWithoutSocket,
                KernelLimit::ErrorReportSocket
            ]
        );
        let all = KernelFeatures {
            reset_reason: true,
            reset_without_socket: true,
            error_report_socket: true,
        };
        assert!(KernelLimit::of(Some(&all)).is_empty());
        let only_btf = KernelFeatures {
            error_report_socket: true,
            ..KernelFeatures::default()
        };
        assert_eq!(
            KernelLimit::of(Some(&only_btf)),
            [KernelLimit::ResetReason, KernelLimit::ResetWithoutSocket]
        );
    }
}
