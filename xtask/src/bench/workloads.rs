//! What the benchmark runs its variants on: loopback TCP churn of a few shapes, and a
//! UDP flood (softirq work without TCP).

use std::fmt;

use serde::{Deserialize, Serialize};
use tcpchurn_harness::churn::CloseMode;

/// One load, by the name `--workloads` takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    #[serde(flatten)]
    pub kind: WorkloadKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "load", rename_all = "snake_case")]
pub enum WorkloadKind {
    /// `tcpchurn-churn`: loopback client/server pairs.
    Churn {
        pairs: u16,
        close: CloseMode,
        /// A request and a response on every connection.
        payload: bool,
    },
    /// `tcpchurn-udp-flood`: loopback sender/receiver pairs, no TCP at all.
    UdpFlood { pairs: u16 },
}

/// The workloads `--workloads` knows, with `--pairs` for the request/response ones.
pub const NAMES: [&str; 6] = [
    "client",
    "server",
    "bare-server",
    "bare-client",
    "reset",
    "udp-flood",
];

/// Pairs of the workloads without payload: more connections at once, each shorter.
const BARE_PAIRS: u16 = 4;
const UDP_PAIRS: u16 = 2;

impl Workload {
    /// The workload called `name`; `pairs` is the pair count of the request/response
    /// churn (`client`, `server`).
    pub fn named(name: &str, pairs: u16) -> Option<Self> {
        let churn = |pairs, close, payload| WorkloadKind::Churn {
            pairs,
            close,
            payload,
        };
        let kind = match name {
            "client" => churn(pairs, CloseMode::Client, true),
            "server" => churn(pairs, CloseMode::Server, true),
            "bare-server" => churn(BARE_PAIRS, CloseMode::Server, false),
            "bare-client" => churn(BARE_PAIRS, CloseMode::Client, false),
            "reset" => churn(BARE_PAIRS, CloseMode::Reset, false),
            "udp-flood" => WorkloadKind::UdpFlood { pairs: UDP_PAIRS },
            _ => return None,
        };
        Some(Self {
            name: name.to_owned(),
            kind,
        })
    }

    pub const fn is_tcp(&self) -> bool {
        matches!(self.kind, WorkloadKind::Churn { .. })
    }

    /// The TCP churn's shape, if it is one.
    pub const fn churn(&self) -> Option<(u16, CloseMode, bool)> {
        match self.kind {
            WorkloadKind::Churn {
                pairs,
                close,
                payload,
            } => Some((pairs, close, payload)),
            WorkloadKind::UdpFlood { .. } => None,
        }
    }

    pub const fn pairs(&self) -> u16 {
        match self.kind {
            WorkloadKind::Churn { pairs, .. } | WorkloadKind::UdpFlood { pairs } => pairs,
        }
    }

    /// What the rate counts.
    pub const fn unit(&self) -> &'static str {
        match self.kind {
            WorkloadKind::Churn { .. } => "conn/s",
            WorkloadKind::UdpFlood { .. } => "datagrams/s",
        }
    }
}

impl fmt::Display for Workload {
    /// `server (4 pairs, no payload, server closes first)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            WorkloadKind::Churn {
                pairs,
                close,
                payload,
            } => {
                let payload = if payload {
                    "request/response"
                } else {
                    "no payload"
                };
                let end = match close {
                    CloseMode::Client => "client closes first",
                    CloseMode::Server => "server closes first",
                    CloseMode::Reset => "server resets",
                };
                write!(f, "{} ({pairs} pairs, {payload}, {end})", self.name)
            }
            WorkloadKind::UdpFlood { pairs } => write!(
                f,
                "{} ({pairs} UDP sender/receiver pairs, no TCP: softirq work a TCP tracer should not tax)",
                self.name
            ),
        }
    }
}

/// The workloads of `names`, or the first unknown name.
pub fn workloads(names: &[String], pairs: u16) -> Result<Vec<Workload>, String> {
    names
        .iter()
        .map(|name| {
            Workload::named(name, pairs)
                .ok_or_else(|| format!("unknown workload {name:?} (known: {})", NAMES.join(", ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_is_a_workload_and_others_are_refused() {
        for name in NAMES {
            let w = Workload::named(name, 2).unwrap();
            assert_eq!(w.name, name);
        }
        assert_eq!(
            Workload::named("bare-server", 2).unwrap().churn(),
            Some((4, CloseMode::Server, false))
        );
        assert_eq!(Workload::named("client", 3).unwrap().pairs(), 3);
        assert!(!Workload::named("udp-flood", 2).unwrap().is_tcp());
        assert!(
            workloads(&["server".into(), "nope".into()], 2)
                .unwrap_err()
                .contains("\"nope\"")
        );
    }
}
