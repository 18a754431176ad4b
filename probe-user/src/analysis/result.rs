//! What a replay's analysis found.

use crate::{
    analysis::{close_wait::CloseWaitLeak, gaps::GapWindow, pair_table::PairReport},
    model::GapCause,
};

/// The result of a replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    pub events: u64,
    pub lost: u64,
    /// Events lost, by [`crate::model::GapCause::index`].
    pub lost_by_cause: [u64; GapCause::ALL.len()],
    pub gaps: Vec<GapWindow>,
    /// Gap windows beyond [`crate::analysis::gaps::MAX_GAP_WINDOWS`].
    pub more_gaps: u64,
    /// Trace time the analysis ends at.
    pub end_ns: u64,
    /// Connections counted (after filters).
    pub connections: u64,
    /// Pairs, reconnect loops first, then by connections.
    pub pairs: Vec<PairReport>,
    pub close_wait: Vec<CloseWaitLeak>,
    /// Sockets that sat in CLOSE_WAIT past the threshold but were closed before the end.
    pub close_wait_closed_late: u64,
    /// The trace has an end snapshot: `time_wait_observed` is the kernel's count.
    pub end_snapshot: bool,
}

impl Analysis {
    pub fn incomplete(&self) -> bool {
        self.lost > 0 || !self.gaps.is_empty()
    }
}
