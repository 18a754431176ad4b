//! Validation: the generator's transitions per connection checked against the real
//! recorder and `replay --events --json`, on a small run of every TCP workload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tcpchurn_harness::{Recorder, churn::CloseMode, replay};

use super::{
    load::{churn_load, fresh_netns},
    runs::Bench,
    workloads::Workload,
};

/// Connections per pair in the validation run.
const CONNECTIONS: u64 = 50;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Validation {
    pub workload: String,
    pub connections: u64,
    pub expected_transitions: u64,
    pub replayed_transitions: u64,
    /// Connections by transition sequence: client, server, listener, unexpected.
    pub sequences: BTreeMap<String, u64>,
    pub ok: bool,
}

/// The fields of a replayed event the validation needs.
#[derive(Deserialize)]
struct ReplayedEvent {
    kind: String,
    conn: Option<u64>,
    old: Option<String>,
    new: Option<String>,
}

const ACTIVE_CLOSE: &str = "ESTABLISHED->FIN_WAIT1 FIN_WAIT1->FIN_WAIT2 FIN_WAIT2->CLOSE";
const PASSIVE_CLOSE: &str = "ESTABLISHED->CLOSE_WAIT CLOSE_WAIT->LAST_ACK LAST_ACK->CLOSE";
const RESET: &str = "ESTABLISHED->CLOSE";

/// The name of a connection's transition sequence, for the given way of ending.
fn sequence_name(mode: CloseMode, sequence: &str) -> &'static str {
    let (client_close, server_close) = match mode {
        CloseMode::Client => (ACTIVE_CLOSE, PASSIVE_CLOSE),
        CloseMode::Server => (PASSIVE_CLOSE, ACTIVE_CLOSE),
        CloseMode::Reset => (RESET, RESET),
    };
    if sequence == format!("CLOSE->SYN_SENT SYN_SENT->ESTABLISHED {client_close}") {
        "client"
    } else if sequence == format!("LISTEN->SYN_RECV SYN_RECV->ESTABLISHED {server_close}") {
        "server"
    } else if sequence == "CLOSE->LISTEN LISTEN->CLOSE" {
        "listener"
    } else {
        "unexpected"
    }
}

/// Validates a TCP workload; `None` for one that is not TCP churn.
pub fn validate(bench: &Bench<'_>, workload: &Workload) -> anyhow::Result<Option<Validation>> {
    let Some(load) = churn_load(workload, 30.0, Some(CONNECTIONS)) else {
        return Ok(None);
    };
    let mode = load.close;
    let tools = bench.tools;
    let netns = fresh_netns()?;
    let trace = tools.out_dir.join("validate.trace");
    let mut args = netns.netns_args();
    args.push("--no-snapshot".into());
    let recorder = Recorder::start(&tools.tcpchurn, &trace, &args)?;
    let churn = load.run(&tools.churn, &netns);
    let recording = recorder.stop()?;
    recording.ensure_success()?;
    let churn = churn?;
    let mut sequences: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut transitions = 0u64;
    let replayed = replay::each_event(&tools.tcpchurn, &trace, |e: ReplayedEvent| {
        if e.kind == "transition" {
            transitions += 1;
            if let Some(conn) = e.conn {
                let (old, new) = (e.old.as_deref(), e.new.as_deref());
                sequences.entry(conn).or_default().push(format!(
                    "{}->{}",
                    old.unwrap_or("?"),
                    new.unwrap_or("?")
                ));
            }
        }
    });
    let _removed = std::fs::remove_file(&trace);
    drop(netns);
    replayed?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for sequence in sequences.values() {
        *counts
            .entry(sequence_name(mode, &sequence.join(" ")).to_owned())
            .or_default() += 1;
    }
    let ok = transitions == churn.expected_transitions
        && counts.get("client") == Some(&churn.completed)
        && counts.get("server") == Some(&churn.completed)
        && !counts.contains_key("unexpected");
    Ok(Some(Validation {
        workload: workload.name.clone(),
        connections: churn.completed,
        expected_transitions: churn.expected_transitions,
        replayed_transitions: transitions,
        sequences: counts,
        ok,
    }))
}
