//! Reading a trace file with the project's own reader.

use std::{fs::File, io::BufReader, path::Path};

use anyhow::Context as _;
use tcpchurn::trace::{TraceMeta, TraceReader, TraceWriter};

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

/// Copies a trace with its meta block changed by `change` (events and end block as
/// they were): what another host's recorder, with its own clock, would have written.
pub fn rewrite_meta(input: &Path, output: &Path, change: impl FnOnce(&mut TraceMeta)) {
    let mut reader = open_trace(input).unwrap();
    let mut meta = reader.meta().clone();
    change(&mut meta);
    let events = reader.collect_events().unwrap();
    let end = reader.end().cloned().expect("a trace that stopped cleanly");
    let mut writer = TraceWriter::new(File::create(output).unwrap(), &meta).unwrap();
    for event in &events {
        writer.push(event).unwrap();
    }
    writer.finish(&end).unwrap();
}
