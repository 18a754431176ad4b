//! Reading a trace file with the project's own reader.

use std::{fs::File, io::BufReader, path::Path};

use anyhow::Context as _;
use serde_json::Value;
use tcpchurn::{
    model::{Identity, WorkloadKey},
    trace::{KernelFeatures, TraceMeta, TraceReader, TraceWriter},
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
    attachment(path, "sock:inet_sock_set_state")
}

/// How a trace's header says a tracepoint (`category:name`) was attached.
pub fn attachment(path: &Path, tracepoint: &str) -> String {
    let status = trace_meta(path)
        .tracepoints
        .into_iter()
        .find(|t| t.name == tracepoint)
        .unwrap_or_else(|| panic!("{tracepoint} is not in the trace header"));
    assert!(status.attached, "{status:?}");
    status.detail.unwrap_or_default()
}

/// Copies a trace with its meta block changed by `change` (names, events and end block
/// as they were): what another host's recorder, with its own clock, would have written.
pub fn rewrite_meta(input: &Path, output: &Path, change: impl FnOnce(&mut TraceMeta)) {
    let mut reader = open_trace(input).unwrap();
    let mut meta = reader.meta().clone();
    change(&mut meta);
    let mut writer = TraceWriter::new(File::create(output).unwrap(), &meta).unwrap();
    while let Some(event) = reader.next_event().unwrap() {
        for table in reader.take_workloads() {
            writer.push_workloads(&table);
        }
        writer.push(&event).unwrap();
    }
    let end = reader.end().cloned().expect("a trace that stopped cleanly");
    writer.finish(&end).unwrap();
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

/// What the recording's kernel gave, from the trace header: tests expect what each
/// kernel can show (docs/kernels.md).
pub fn kernel_features(path: &Path) -> KernelFeatures {
    trace_meta(path)
        .kernel_features
        .expect("the trace header says what the kernel gives")
}

/// The reset reason replay shows for `reason` on the recording's kernel: the name
/// where `tcp_send_reset` has a reason (6.10+), else null.
pub fn expected_reason(features: &KernelFeatures, reason: &str) -> Value {
    if features.reset_reason {
        Value::from(reason)
    } else {
        Value::Null
    }
}

/// A trace's header.
pub fn trace_meta(path: &Path) -> TraceMeta {
    open_trace(path).unwrap().meta().clone()
}
