//! A recorded scenario between a server namespace and a client namespace (or one
//! namespace over loopback): peers on one port, the recorder started first, and the
//! replay of what it recorded.

use std::{
    net::{IpAddr, SocketAddr},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tcpchurn_harness::{Netns, Recorder};

use crate::{
    Layout, Peer, Scratch, kernel_has_btf, record, replay_events, replay_verdict, ss,
    test_classic_path, verdict_pair,
};

pub struct Scenario {
    pub layout: Layout,
    /// Holds the trace file until the scenario ends.
    scratch: Scratch,
    recorder: Option<Recorder>,
    /// Recorder arguments beyond the namespaces.
    record_args: Vec<String>,
    pub port: u16,
}

/// Which kernel program records state changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// What `record` chooses: the `tp_btf` program where the kernel has BTF.
    TpBtf,
    /// The classic tracepoint program (`--no-tp-btf`), which reads the socket through
    /// its address.
    Classic,
}

impl Scenario {
    /// Starts recording the scenario's namespaces.
    pub fn start(veth: bool, tag: &str, port: u16) -> Self {
        Self::start_with(veth, tag, port, Program::TpBtf)
    }

    /// Starts recording the scenario's namespaces with `program`.
    pub fn start_with(veth: bool, tag: &str, port: u16, program: Program) -> Self {
        let mut scenario = Self::prepare(veth, tag, port).with(program);
        scenario.record();
        scenario
    }

    /// The namespaces, without recording yet (peers started before the recorder are
    /// in its start snapshot).
    pub fn prepare(veth: bool, tag: &str, port: u16) -> Self {
        Self {
            layout: Layout::new(veth, tag),
            scratch: Scratch::new("scenario"),
            recorder: None,
            record_args: Vec::new(),
            port,
        }
    }

    /// Records state changes with `program` (before [`Self::record`]).
    pub fn with(mut self, program: Program) -> Self {
        if program == Program::Classic {
            self.record_args.push("--no-tp-btf".to_owned());
        }
        self
    }

    /// The program state changes are recorded with.
    pub fn program(&self) -> Program {
        if self.record_args.iter().any(|a| a == "--no-tp-btf") {
            Program::Classic
        } else {
            Program::TpBtf
        }
    }

    /// Starts the recorder.
    pub fn record(&mut self) {
        let mut args = self.layout.netns_args();
        args.extend(self.record_args.iter().cloned());
        self.recorder = Some(record(&self.trace(), args));
    }

    pub fn trace(&self) -> std::path::PathBuf {
        self.scratch.path("t.trace")
    }

    /// The server's address on IPv4 (the verdicts are checked on IPv4).
    pub fn server_ip(&self) -> IpAddr {
        self.layout.addrs(false).0
    }

    pub fn client_ip(&self) -> IpAddr {
        self.layout.addrs(false).1
    }

    pub fn server_addr(&self) -> String {
        SocketAddr::new(self.server_ip(), self.port).to_string()
    }

    /// A server on the scenario's address, started with `args`.
    pub fn server(&self, args: &[&str]) -> Peer {
        let addr = self.server_addr();
        let mut full = vec!["--listen", addr.as_str()];
        full.extend_from_slice(args);
        Peer::server(Some(self.layout.server_ns()), &full)
    }

    /// A client of the scenario's server, started with `args`.
    pub fn client(&self, args: &[&str]) -> Peer {
        let addr = self.server_addr();
        let mut full = vec!["--connect", addr.as_str()];
        full.extend_from_slice(args);
        Peer::client(Some(self.layout.client_ns()), &full)
    }

    /// TIME_WAIT per side from `ss`, taken right before the recorder stops. The
    /// server's TIME_WAIT sockets have the server port as their local port, the
    /// client's have it as their peer port.
    pub fn ss_time_wait(&self) -> (u64, u64) {
        let count = |ns: &Netns, local: bool| {
            ss(ns)
                .iter()
                .filter(|s| {
                    let port = if local { s.local.1 } else { s.peer.1 };
                    s.state == "TIME-WAIT" && port == self.port
                })
                .count() as u64
        };
        (
            count(self.layout.client_ns(), false),
            count(self.layout.server_ns(), true),
        )
    }

    /// [`Self::ss_time_wait`] once it shows `expected`, or as it is after 5 s. The
    /// peers exit as soon as they have closed; the last FIN's ACK, which moves the
    /// closing socket into TIME_WAIT, may still be on its way (hundreds of
    /// milliseconds in an emulated kernel VM with two vCPUs).
    pub fn ss_time_wait_reaching(&self, expected: (u64, u64)) -> (u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.ss_time_wait();
            if seen == expected || Instant::now() > deadline {
                return seen;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops recording.
    pub fn stop(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            recorder.stop().unwrap().ensure_success().unwrap();
        }
    }

    /// Stops recording and returns the verdict (`replay --json --connections`).
    pub fn verdict(&mut self, extra: &[&str]) -> Value {
        self.stop();
        let mut args = vec!["--connections"];
        args.extend_from_slice(extra);
        replay_verdict(&self.trace(), &args)
    }

    /// Stops recording and returns every event (`replay --events --json`).
    pub fn events(&mut self) -> Vec<Value> {
        self.stop();
        replay_events(&self.trace())
    }

    /// The verdict's pair of this scenario's client and server.
    pub fn pair<'a>(&self, verdict: &'a Value) -> &'a Value {
        verdict_pair(verdict, &self.client_ip().to_string(), &self.server_addr())
    }
}

/// Checks that a verdict's trace recorded state changes with `program`: `tp_btf` where
/// the kernel has BTF, unless the tests were asked for the classic path.
pub fn assert_program(verdict: &Value, program: Program) {
    let how = verdict["trace"]["tracepoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sock:inet_sock_set_state")
        .and_then(|t| t["detail"].as_str())
        .unwrap_or_else(|| panic!("no state-change tracepoint: {}", verdict["trace"]));
    match program {
        Program::Classic => assert!(how.starts_with("classic tracepoint"), "{how}"),
        Program::TpBtf if kernel_has_btf() && !test_classic_path() => assert_eq!(how, "tp_btf"),
        Program::TpBtf => {}
    }
}

/// The `--connections` rows of a verdict whose server is on `port`.
pub fn connections_of(verdict: &Value, port: u16) -> Vec<&Value> {
    verdict["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["server"].as_str().unwrap().ends_with(&format!(":{port}")))
        .collect()
}
