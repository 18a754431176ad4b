//! The harness the privileged integration tests (`tests/`) and the project tasks
//! (`xtask`) share: network namespaces and veth topologies, child processes inside
//! them, the real `tcpchurn` recorder and replay, ZooKeeper, and the reports of the
//! helper programs (churn generator, UDP flood, trace tool).
//!
//! Everything returns `anyhow::Result`: xtask reports errors, tests unwrap them.
//! This crate must not depend on `probe-user` (the recorder is run as a program):
//! xtask depends on it, and `cargo xtask setup` has to build before the eBPF
//! toolchain exists.

pub mod apt;
pub mod bpftool;
pub mod cgroup;
pub mod churn;
pub mod duckdb;
pub mod exec;
pub mod interrupt;
pub mod lines;
pub mod load_args;
pub mod netns;
pub mod process;
pub mod procfs;
pub mod prometheus;
pub mod ready;
pub mod recorder;
pub mod replay;
pub mod runner;
pub mod sockopt;
pub mod spawn;
pub mod synth;
pub mod tmux;
pub mod topology;
pub mod trace_stat;
pub mod udp_flood;
pub mod workspace;
pub mod zookeeper;

pub use crate::{
    lines::LineReader,
    netns::Netns,
    process::{Exit, Process},
    recorder::{Recorder, Recording},
    spawn::Spawn,
    topology::{Addresses, Topology},
};
