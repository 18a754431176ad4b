//! `tcpchurn record --live`: the verdict as it forms. On a terminal, a full screen
//! ([`screen`], drawn with ratatui); otherwise a text block per refresh ([`plain`]),
//! which is the text verdict of a replay under a status line.
//!
//! Both show a [`Live`] value: the verdict as of now ([`TraceInfo`], [`Analysis`]),
//! what changed since the previous one ([`Pulse`]), and the recording's [`Status`].

mod pairs;
pub mod plain;
pub mod screen;

pub use self::pairs::{PairRow, SortKey, pair_rows};
use crate::analysis::{Analysis, Pulse, TraceInfo};

/// How the recording is going.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Still recording; false once it stopped (the verdict is then a replay's).
    pub recording: bool,
    /// Bytes written (or, with `-o /dev/null`, produced), over every file.
    pub bytes: u64,
    /// Files written (more than one when rotating).
    pub files: u32,
    /// No file is kept (`-o /dev/null`).
    pub discarded: bool,
    /// Records the live view fell too far behind to take in (the file has them).
    pub skipped_records: u64,
}

/// One refresh of the live view.
#[derive(Clone, Debug, PartialEq)]
pub struct Live {
    pub trace: TraceInfo,
    pub analysis: Analysis,
    pub pulse: Pulse,
    pub status: Status,
}

/// What the viewer chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewState {
    pub sort: SortKey,
    /// The screen is not redrawn (the recording goes on).
    pub paused: bool,
    /// `q` was pressed: the recording is stopping.
    pub stopping: bool,
}
