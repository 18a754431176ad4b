//! What a verdict says about the trace itself, beside the analysis.

use crate::{
    model::TimeWindow,
    trace::{Damage, TraceEnd, TraceMeta},
};

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
            damage: damage.iter().map(ToString::to_string).collect(),
            window: TimeWindow::default(),
            close_wait_ns: 0,
        }
    }
}
