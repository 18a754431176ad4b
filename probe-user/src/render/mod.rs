//! Rendering: pure functions from values to text or JSON on any `io::Write`, one
//! printer per output and format.
//!
//! - the verdict: [`verdict_text`] and [`verdict_json`], both saying the findings in
//!   the words of [`sentences`];
//! - `--connections` rows: [`connections`]; `--events`: [`events`];
//! - `tcpchurn record`'s closing lines: [`summary`]; its live views: [`live`] and
//!   [`metrics`]; `tcpchurn doctor`: [`doctor`];
//! - shared: [`address`] (addresses and ports, an unknown part as `*` or null),
//!   [`format`](mod@format) (numbers and durations), [`text`] (wrapping, tables),
//!   [`style`] (colour), [`workload`] (pods and containers in both formats).

pub mod address;
pub mod connections;
pub mod doctor;
pub mod events;
pub mod format;
pub mod hosts;
pub mod live;
pub mod metrics;
pub mod notes;
pub mod parquet;
pub mod sentences;
pub mod style;
pub mod summary;
pub mod text;
pub mod verdict_json;
pub mod verdict_text;
pub mod workload;
