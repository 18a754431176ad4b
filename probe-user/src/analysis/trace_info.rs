//! What a verdict says about the trace itself, beside the analysis.

use crate::model::TimeWindow;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceInfo {
    /// The file, as given.
    pub file: String,
    pub host: String,
    pub kernel: String,
    pub start_unix_ns: u64,
    /// How the recording stopped; `None` when the file has no end block (cut).
    pub stop_reason: Option<String>,
    /// Tracepoints the recorder could not attach, with why.
    pub missing_tracepoints: Vec<String>,
    /// Damage the reader worked around.
    pub damage: Vec<String>,
    /// `--since`/`--until`.
    pub window: TimeWindow,
    /// `--close-wait`.
    pub close_wait_ns: u64,
}
