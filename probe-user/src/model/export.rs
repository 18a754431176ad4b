//! What `tcpchurn export` wrote; printed when it is done.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    pub events: u64,
    pub connections: u64,
    pub hosts: usize,
    pub files: usize,
    /// The events table, then the connections table.
    pub tables: [PathBuf; 2],
}
