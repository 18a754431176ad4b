//! Reading a trace file with the project's own reader.

use std::{fs::File, io::BufReader, path::Path};

use anyhow::Context as _;
use tcpchurn::{
    model::{Identity, WorkloadKey},
    trace::TraceReader,
};

/// Opens a trace for reading, buffered.
pub fn open_trace(path: &Path) -> anyhow::Result<TraceReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| path.display().to_string())?;
    TraceReader::open(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// How a trace's header says `sock:inet_sock_set_state` was attached (`tp_btf`, or
/// `classic tracepoint (tp_btf: why not)`).
pub fn state_change_attachment(path: &Path) -> String {
    let reader = open_trace(path).unwrap();
    let status = reader
        .meta()
        .tracepoints
        .iter()
        .find(|t| t.name == "sock:inet_sock_set_state")
        .cloned()
        .unwrap();
    assert!(status.attached);
    status.detail.unwrap_or_default()
}

/// What a trace's names say about each key, the latest entry winning (as a replay
/// takes them).
pub fn trace_names(path: &Path) -> std::collections::BTreeMap<WorkloadKey, Identity> {
    let mut reader = open_trace(path).unwrap();
    let mut names = std::collections::BTreeMap::new();
    loop {
        let more = reader.next_event().unwrap().is_some();
        for table in reader.take_workloads() {
            for (key, identity) in table.entries() {
                names.insert(key, identity.clone());
            }
        }
        if !more {
            return names;
        }
    }
}
