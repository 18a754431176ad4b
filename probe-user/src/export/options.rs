//! What `tcpchurn export` was asked to do.

use std::{path::PathBuf, time::Duration};

/// The tables' file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportFormat {
    /// Apache Parquet, zstd-compressed.
    #[default]
    Parquet,
    /// One JSON object per line: the objects of `replay --events --json` and of
    /// `replay --connections --json`.
    Ndjson,
}

impl ExportFormat {
    /// The tables' file name extension.
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Ndjson => "ndjson",
        }
    }
}

/// Validated `export` options.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Trace files, directories of them, or patterns.
    pub files: Vec<PathBuf>,
    /// Where the tables go (created if missing).
    pub dir: PathBuf,
    pub format: ExportFormat,
    /// Replace tables that exist.
    pub force: bool,
    /// CLOSE_WAIT for longer than this is a leak (as in `replay`).
    pub close_wait: Duration,
}
