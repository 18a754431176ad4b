//! The trace file: what `tcpchurn record` writes and `tcpchurn replay` reads.
//! The byte-level specification is `docs/trace-format.md`.

mod block;
mod meta;
mod reader;
mod records;
mod varint;
mod writer;

pub use block::{FORMAT_MAJOR, FORMAT_MINOR};
pub use meta::{
    Attribution, Filters, PartInfo, RecorderInfo, SocketOffsetsInfo, TraceEnd, TraceMeta,
    TracepointStatus,
};
pub use reader::{Damage, TraceError, TraceReader};
pub use writer::{TraceEncoder, TraceWriter};
