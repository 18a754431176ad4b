//! What the privileged integration tests share, on top of the project's harness
//! (`tcpchurn-harness`: namespaces, processes, the recorder): the binaries under test,
//! peers with known pids, where two peers run, and reading what was recorded.
//!
//! Tests call [`require_root`] first. Without root they skip with a printed reason;
//! under `CI=true` a skip is a failure.
#![allow(
    clippy::unwrap_used,
    reason = "test harness: a failed step must fail the test loudly"
)]

mod binaries;
mod duckdb;
mod events;
mod kernel;
pub mod kubelet;
mod layout;
mod peer;
pub mod podman;
mod privileged;
mod recording;
mod scenario;
mod scratch;
mod ss;
mod trace_file;
mod verdict;

pub use tcpchurn_harness::{Netns, Recorder, Recording, Topology, runner::time_scale};

pub use crate::{
    binaries::{peer_bin, tcpchurn_bin},
    duckdb::DuckDb,
    events::{conns_where, count_kind, event_ip, lost_by_cause, lost_total, transitions_of},
    kernel::{kernel_has_btf, test_btf, test_classic_path},
    layout::Layout,
    peer::Peer,
    privileged::require_root,
    recording::{
        netns, record, replay_events, replay_verdict, replay_with_warnings, tcpchurn, topology,
    },
    scenario::{Program, Scenario, assert_program, connections_of},
    scratch::Scratch,
    ss::{SsSocket, ss},
    trace_file::{
        attachment, expected_reason, kernel_features, open_trace, rewrite_meta,
        state_change_attachment, trace_meta, trace_names,
    },
    verdict::verdict_pair,
};
