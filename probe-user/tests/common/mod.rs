//! What the command-line tests share: scratch directories, synthetic traces, the
//! binary under test.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "tests: a failed step must fail the test loudly; each test uses a part"
)]

use std::{
    fs,
    path::{Path, PathBuf},
};

use tcpchurn::{
    synth::Churn,
    trace::{TraceEnd, TraceMeta, TraceWriter},
};

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tcpchurn-cli-{tag}-{}", std::process::id()));
        let _fresh = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _removed = fs::remove_dir_all(&self.0);
    }
}

/// A trace of `connections` loopback connections, about 3.3 ms of trace time each.
pub fn churn_trace(dir: &Path, connections: u64) -> PathBuf {
    let path = dir.join(format!("churn-{connections}.trace"));
    let file = fs::File::create(&path).unwrap();
    let mut writer = TraceWriter::new(file, &TraceMeta::default()).unwrap();
    let churned = Churn {
        connections,
        ..Churn::default()
    }
    .write(&mut writer)
    .unwrap();
    writer
        .finish(&TraceEnd {
            end_ns: churned.last_ts_ns,
            stop_reason: "interrupted".into(),
            ..TraceEnd::default()
        })
        .unwrap();
    path
}

/// The binary under test: this package's, or `TCPCHURN_BIN` (another build).
pub fn tcpchurn_bin() -> PathBuf {
    std::env::var_os("TCPCHURN_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_tcpchurn")),
        PathBuf::from,
    )
}
