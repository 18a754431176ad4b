//! The meta block that starts each file of a recording: the host, the kernel, the
//! filters, and what the kernel program could attach and read.

use std::path::Path;

use crate::{
    kernel::{
        host::{self, Uname},
        offsets::KernelBtf,
        probe::{self, KernelProbe},
    },
    record::options::RecordOptions,
    trace::{Attribution, PartInfo, RecorderInfo, TraceEncoder, TraceMeta},
};

/// The meta of a recording's first file; later files differ only in their part.
#[derive(Clone, Debug)]
pub struct Header {
    meta: TraceMeta,
}

impl Header {
    /// `start` is the kernel CLOCK_MONOTONIC and wall clock at trace time 0.
    pub fn new(
        options: &RecordOptions,
        probe: &KernelProbe,
        btf: &KernelBtf,
        (start_monotonic_ns, start_unix_ns): (u64, u64),
    ) -> Self {
        let Uname {
            hostname,
            release,
            machine,
        } = host::uname();
        let meta = TraceMeta {
            tool: "tcpchurn".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            hostname,
            kernel: release,
            machine,
            boot_id: host::boot_id(),
            start_monotonic_ns,
            start_unix_ns,
            filters: options.filters.clone(),
            tracepoints: probe.tracepoints.clone(),
            attribution: Attribution {
                softirq_tracking: probe.softirq_tracking,
                socket_lock: probe.socket_lock,
            },
            socket_offsets: btf.info.clone(),
            kernel_features: Some(probe.features),
            recorder: RecorderInfo {
                pid: std::process::id(),
                ring_bytes: options.ring_bytes,
                flush_interval_ms: u64::try_from(options.flush_interval.as_millis())
                    .unwrap_or(u64::MAX),
                cpus: probe::possible_cpus(),
            },
            part: PartInfo::default(),
        };
        Self { meta }
    }

    /// The first bytes of file `part` (0 for the first), which follows the file at
    /// `previous`: the file header and the meta.
    pub fn bytes(&self, part: u32, previous: Option<&Path>) -> Vec<u8> {
        TraceEncoder::start(&TraceMeta {
            part: PartInfo {
                index: part,
                previous: previous.map(|path| path.display().to_string()),
            },
            ..self.meta.clone()
        })
    }
}
