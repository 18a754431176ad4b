//! Verdicts on hand-built event sequences, shaped like what the kernel emits
//! (`docs/kernel-facts.md §1.2`), by theme; the helpers they share are here.

use super::*;
use crate::{
    model::{
        Conn, EndpointFilter, ResetReason, Scope, SnapshotSocket, SocketRef, Task, TcpState,
        TimeWindow, TraceEvent,
    },
    synth::{CLIENT_NS, SERVER_NS, Script, task, tuple},
};

mod closes;
mod loops;
mod snapshots;
mod time_wait;
mod trace_edges;
pub(crate) mod workloads;

pub(crate) const MS: u64 = 1_000_000;

pub(crate) const S: u64 = 1_000_000_000;

/// Runs a script through the analysis.
pub(crate) trait Analyse {
    fn run(&self, options: AnalyzerOptions, end_ns: u64) -> (Analysis, Vec<ConnectionRow>);
}

impl Analyse for Script {
    fn run(&self, options: AnalyzerOptions, end_ns: u64) -> (Analysis, Vec<ConnectionRow>) {
        let mut analyzer = Analyzer::new(options);
        for event in &self.events {
            analyzer.on_event(event);
        }
        analyzer.finish(end_ns)
    }
}

fn with_rows() -> AnalyzerOptions {
    AnalyzerOptions {
        connections: true,
        ..AnalyzerOptions::default()
    }
}

fn only_pair(analysis: &Analysis) -> &PairReport {
    assert_eq!(analysis.pairs.len(), 1, "{:#?}", analysis.pairs);
    &analysis.pairs[0]
}

pub(crate) fn java() -> Task {
    task(42, "java")
}

pub(crate) fn app() -> Task {
    task(7, "app")
}

/// ZooKeeper over `maxClientCnxns`: the server accepts, then aborts with linger 0
/// (RST) within milliseconds; the client reconnects about every 0.7 s.
pub(crate) fn zookeeper_loop(s: &mut Script, attempts: u64) {
    use TcpState::*;
    s.snapshot(
        Conn {
            id: 999,
            scope: Scope::new(SERVER_NS, 0),
            tuple: tuple("0.0.0.0:2181", "0.0.0.0:0"),
        },
        Listen,
        Some(java()),
        false,
    );
    for i in 0..attempts {
        let start = S + i * 700 * MS;
        let e = s.ends(&format!("10.0.0.2:{}", 40000 + i), "10.0.0.1:2181");
        s.at(start).open(e, app());
        s.at(start + 2 * MS).reset_by_server(e, java());
    }
}

/// The ZooKeeper loop (`attempts`), `http` HTTP/1.0-style connections to port 80 from
/// 10.0.0.3 every `http_every_ms` from 2 s (the client closes first), a CLOSE_WAIT
/// leak from 3 s (10.0.0.4, never closed by the server), and `lost` events at 4 s.
pub(crate) fn incident(s: &mut Script, attempts: u64, http: u64, http_every_ms: u64, lost: u64) {
    zookeeper_loop(s, attempts);
    s.listener(SERVER_NS, "10.0.0.1:80", java());
    for i in 0..http {
        let e = s.ends(&format!("10.0.0.3:{}", 50000 + i), "10.0.0.1:80");
        s.at(2 * S + i * http_every_ms * MS).open(e, app());
        s.fin_close(e.client, e.server, app(), java());
    }
    let leak = s.ends("10.0.0.4:41000", "10.0.0.1:80");
    s.at(3 * S).open(leak, app()).tr(
        leak.server,
        TcpState::Established,
        TcpState::CloseWait,
        None,
    );
    s.at(4 * S).lost(4 * S, 4 * S + MS, lost);
}

impl PairKey {
    fn to_string_pair(self) -> (String, String) {
        (self.client.to_string(), self.server.to_string())
    }
}
