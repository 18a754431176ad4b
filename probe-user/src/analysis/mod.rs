//! The verdict: from a stream of trace events to connections, per-pair statistics,
//! reconnect loops, TIME_WAIT by side and CLOSE_WAIT leaks. Pure: no files, no
//! formatting. The rules are documented in `docs/verdicts.md`.
//!
//! Replay streams: [`Analyzer::on_event`] takes one event at a time, and memory grows
//! with the connections open at once (plus the TIME_WAIT entries of the last 60 s and
//! one aggregate per client→server pair), never with the length of the trace.
//!
//! The path of an event: [`crate::owner::OwnerTracker`] names its owner, the
//! connection tracker turns events into connections and hands each ended one to the
//! aggregates (pairs, TIME_WAIT, CLOSE_WAIT, rows), and [`Analyzer::finish`] ranks
//! what they hold into an [`Analysis`]. [`findings`] turns that into the typed lines of
//! the verdict, which the renderers put into words.

mod aggregates;
mod analyzer;
mod close_wait;
mod findings;
mod gaps;
mod histogram;
mod keys;
mod live;
mod options;
mod pair_names;
mod pair_table;
mod pairs;
mod result;
mod rows;
mod timewait;
mod trace_info;
mod tracker;
mod trend;
mod verdict;
mod workloads;

pub use self::{
    analyzer::Analyzer,
    close_wait::CloseWaitLeak,
    findings::{
        Closes, Finding, LeakGroup, MAX_PAIRS, PairVerdict, Served, Severity, SideCloses,
        TimeWaitHolders, findings, leak_groups,
    },
    gaps::{GapWindow, MAX_GAP_WINDOWS},
    histogram::LogHistogram,
    live::LiveVerdict,
    options::AnalyzerOptions,
    pair_names::SideNames,
    pair_table::PairReport,
    pairs::{ConnectionOutcome, LoopClass, LoopEvidence, LoopRule, PairKey, PairStats, Run},
    result::Analysis,
    rows::ConnectionRow,
    timewait::TIME_WAIT_NS,
    trace_info::{HostInfo, KernelLimit, TraceInfo, UnmergedEnds},
    trend::{PairTrend, Pulse, Trend},
    verdict::{CloseHow, CloseVerdict, ClosedFirst, Side},
    workloads::{Ends, WorkloadBook},
};

#[cfg(test)]
pub(crate) mod tests;
