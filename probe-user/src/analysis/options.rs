//! What the analysis looks at, and by which rules.

use crate::{
    analysis::pairs::LoopRule,
    model::{EndpointFilter, TimeWindow, WorkloadFilter},
};

/// What to analyse, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyzerOptions {
    pub filter: EndpointFilter,
    /// `--pod`/`--container`: only connections with a selected workload at either end.
    pub workloads: WorkloadFilter,
    /// Only connections opened inside count, and the analysis ends at its end, as if
    /// the trace ended there.
    pub window: TimeWindow,
    /// CLOSE_WAIT for longer than this is a leak.
    pub close_wait_ns: u64,
    pub rule: LoopRule,
    /// Keep a row for every connection ([`crate::analysis::Analyzer::drain_rows`]).
    pub connections: bool,
}

impl Default for AnalyzerOptions {
    fn default() -> Self {
        Self {
            filter: EndpointFilter::default(),
            workloads: WorkloadFilter::default(),
            window: TimeWindow::default(),
            close_wait_ns: 5_000_000_000,
            rule: LoopRule::default(),
            connections: false,
        }
    }
}
