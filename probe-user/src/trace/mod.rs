//! The trace file: what `tcpchurn record` writes and `tcpchurn replay` reads.
//! The byte-level specification is `docs/trace-format.md`.

mod block;
pub mod follow;
mod meta;
pub mod queue;
mod reader;
mod records;
mod sections;
pub mod set;
mod varint;
mod workloads;
mod writer;

pub use block::{FORMAT_MAJOR, FORMAT_MINOR, records_in};
pub use meta::{Attribution, PartInfo, RecorderInfo, TraceEnd, TraceMeta};
pub use reader::{Damage, Opening, Polled, TraceError, TraceReader};
pub use records::BlockKeys;
pub use writer::{TraceEncoder, TraceWriter};

/// The parts of the meta block that the model defines (the recorder fills them in).
pub use crate::model::{Filters, KernelFeatures, SocketOffsetsInfo, TracepointStatus};
