//! A state change in softirq that interrupts the kernel program on its CPU: the kernel
//! skips the nested run of the same program (docs/kernel-facts.md §4.1). Provoked here
//! on purpose: loopback packets are steered (RPS) to one CPU, so the other CPU's packets
//! reach it by inter-processor interrupt, whose softirq interrupts whatever that CPU
//! runs, the kernel program in a task's `connect()` or `close()` included.
//!
//! With kernel BTF the rescue program records what the main program had to skip: no
//! skipped run is lost. On the classic path the skipped runs are lost, and the trace
//! must say so. On both paths this provoked load also loses a few softirq transitions
//! in bursts of 1-2 ms without any skipped run counted (about 100 of 600,000 on 6.18,
//! the same on both paths); the trace must report those too (from the sockets'
//! broken sequences).
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::path::Path;

use tcpchurn::model::TraceEvent;
use tcpchurn_harness::churn::{ChurnLoad, CloseMode};
use tcpchurn_tests::{
    Netns, Scratch, kernel_has_btf, netns, open_trace, record, require_root, test_classic_path,
};

/// Connections per client: a few seconds of churn on a shared machine.
const CONNECTIONS_PER_PAIR: u64 = 15_000;
const PAIRS: u16 = 4;

/// What a recording of the provoked churn holds, and what the kernel said.
struct Outcome {
    expected: u64,
    transitions: u64,
    rescued: u64,
    lost_recursion: u64,
    lost_unreported: u64,
    lost_ring_full: u64,
    attachment: String,
}

/// Steers every loopback packet of `ns` to its last CPU.
fn steer_to_one_cpu(ns: &Netns) -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cpus < 2 {
        return false;
    }
    let mask = format!("{:x}", 1u64 << (cpus.min(64) - 1));
    ns.run(
        "sh",
        &[
            "-c",
            &format!("echo {mask} > /sys/class/net/lo/queues/rx-0/rps_cpus"),
        ],
    )
    .unwrap();
    true
}

fn churn_under_recorder(tag: &str, extra: &[&str]) -> Outcome {
    let ns = netns(tag);
    let steered = steer_to_one_cpu(&ns);
    let scratch = Scratch::new(tag);
    let trace = scratch.path("t.trace");
    let mut args = ns.netns_args();
    // A large ring: this test is about skipped runs, not about a recorder that a busy
    // machine delays.
    args.extend(["--no-snapshot", "--ring-size", "64M"].map(String::from));
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let recorder = record(&trace, args);
    let load = ChurnLoad {
        pairs: PAIRS,
        duration_s: 60.0,
        close: CloseMode::Server,
        payload: false,
        port: 23_500,
        count: Some(CONNECTIONS_PER_PAIR),
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_tcpchurn-churn"));
    let report = load.run(bin, &ns).unwrap();
    recorder.stop().unwrap().ensure_success().unwrap();
    assert_eq!(report.failures(), 0, "{report:?}");
    if !steered {
        eprintln!("nesting: one CPU: no inter-processor interrupts to provoke nesting");
    }

    let mut reader = open_trace(&trace).unwrap();
    let mut transitions = 0;
    while let Some(event) = reader.next_event().unwrap() {
        if matches!(event, TraceEvent::Transition(_)) {
            transitions += 1;
        }
    }
    let end = reader.end().cloned().expect("the trace has no end block");
    let attachment = reader
        .meta()
        .tracepoints
        .iter()
        .find(|t| t.name == "sock:inet_sock_set_state")
        .and_then(|t| t.detail.clone())
        .unwrap_or_default();
    Outcome {
        expected: report.expected_transitions,
        transitions,
        rescued: end.kernel_rescued,
        lost_recursion: end.lost_recursion,
        lost_unreported: end.lost_unreported,
        lost_ring_full: end.lost_ring_full,
        attachment,
    }
}

/// Every transition missing from the trace is reported lost: the kernel's counted
/// skipped runs, or the sockets whose sequence broke (a lower bound, so only "some").
fn missing_is_reported(o: &Outcome) {
    let lost = o.lost_recursion + o.lost_unreported + o.lost_ring_full;
    assert!(
        o.transitions <= o.expected,
        "{} transitions recorded, {} expected",
        o.transitions,
        o.expected
    );
    assert!(
        o.transitions == o.expected || lost > 0,
        "{} of {} transitions missing, none reported lost",
        o.expected - o.transitions,
        o.expected
    );
}

#[test]
fn a_state_change_that_interrupts_the_program_is_recorded_by_the_rescue_program() {
    if !require_root("a_state_change_that_interrupts_the_program_is_recorded_by_the_rescue") {
        return;
    }
    if !kernel_has_btf() || test_classic_path() {
        // Not a skip: on this path there is no rescue program, and the classic test
        // below checks what this path promises.
        eprintln!(
            "nesting: the classic path (no kernel BTF, or TCPCHURN_TEST_NO_TP_BTF): no rescue \
             program to test"
        );
        return;
    }
    let o = churn_under_recorder("nest", &[]);
    assert_eq!(
        o.attachment, "tp_btf",
        "the rescue program must be attached"
    );
    assert_eq!(
        o.lost_ring_full, 0,
        "ring full: the test's ring is too small"
    );
    // Every run the kernel skipped the main program for was recorded by the rescue.
    assert_eq!(o.lost_recursion, 0, "skipped runs nothing recorded");
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cpus >= 2 {
        assert!(
            o.rescued > 0,
            "no nesting was provoked: the rescue program recorded nothing"
        );
    }
    missing_is_reported(&o);
    eprintln!(
        "nesting: {} of {} transitions, {} of them recorded by the rescue program; {} \
         missing without a skipped run (inferred: at least {})",
        o.transitions,
        o.expected,
        o.rescued,
        o.expected - o.transitions,
        o.lost_unreported
    );
}

#[test]
fn skipped_runs_of_the_classic_program_are_reported_as_lost() {
    if !require_root("skipped_runs_of_the_classic_program_are_reported_as_lost") {
        return;
    }
    let o = churn_under_recorder("nestc", &["--no-tp-btf"]);
    assert!(
        o.attachment.starts_with("classic tracepoint"),
        "{}",
        o.attachment
    );
    assert_eq!(o.rescued, 0);
    // A transition missing from the trace is reported lost: counted as a skipped run
    // (6.7 and later count them), or inferred from its socket's broken sequence.
    missing_is_reported(&o);
    eprintln!(
        "nesting (classic): {} of {} transitions recorded; {} counted skipped runs, at \
         least {} more inferred",
        o.transitions, o.expected, o.lost_recursion, o.lost_unreported
    );
}
