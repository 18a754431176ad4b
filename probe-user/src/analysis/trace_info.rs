//! What a verdict says about the trace itself, beside the analysis.

use crate::{
    model::TimeWindow,
    trace::set::{HostClock, UnmatchedEnds},
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
