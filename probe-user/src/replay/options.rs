//! What `tcpchurn replay` was asked to do.

use std::{path::PathBuf, time::Duration};

use crate::{
    model::{EndpointFilter, TimeWindow, WorkloadFilter},
    render::style::ColorChoice,
};

/// Validated `replay` options.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Trace files, directories of them, or patterns.
    pub files: Vec<PathBuf>,
    /// Every event instead of the verdict.
    pub events: bool,
    pub json: bool,
    /// A row per connection in the verdict.
    pub connections: bool,
    pub filter: EndpointFilter,
    /// `--pod`/`--container`, matched against the names the trace recorded.
    pub workloads: WorkloadFilter,
    pub window: TimeWindow,
    /// CLOSE_WAIT for longer than this is a leak.
    pub close_wait: Duration,
    pub color: ColorChoice,
    /// Text events show seconds since the start instead of wall-clock time.
    pub relative_time: bool,
    /// `--follow`: follow the trace as it is written, with the verdict every so often.
    pub follow: Option<Duration>,
}

impl ReplayOptions {
    /// The defaults of `tcpchurn replay FILE`: the text verdict of the whole trace.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self {
            files: vec![file.into()],
            events: false,
            json: false,
            connections: false,
            filter: EndpointFilter::default(),
            workloads: WorkloadFilter::default(),
            window: TimeWindow::default(),
            close_wait: Duration::from_secs(5),
            color: ColorChoice::Never,
            relative_time: false,
            follow: None,
        }
    }
}
