//! Bytes on real connections, from the sockets' own counters: a server that answers
//! each request and closes first serves (it is no reconnect loop, however often it
//! repeats), one that closes without a byte rejects (a loop), an error line is an
//! answer whose bytes show, and a known transfer is counted exactly from either end.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{thread, time::Duration};

use serde_json::Value;
use tcpchurn_tests::{
    Program, Scenario, Scratch, assert_program, connections_of, privileged_tests, record,
    replay_verdict, tcpchurn, verdict_pair,
};

const CLIENTS: u64 = 12;
const REQUEST: u64 = 18;
const PAGE: u64 = 2_000;

/// `CLIENTS` requests of `REQUEST` bytes, 100 ms apart, to a server behaving as
/// `server_args` says; the verdict of the recording.
fn requests(s: &mut Scenario, server_args: &[&str]) -> Value {
    let request = REQUEST.to_string();
    let mut args = vec!["--count", "0", "--request-bytes", &request];
    args.extend_from_slice(server_args);
    let server = s.server(&args);
    let count = CLIENTS.to_string();
    let client = s.client(&[
        "--count",
        &count,
        "--behaviour",
        "request",
        "--request-bytes",
        &request,
        "--interval-ms",
        "100",
    ]);
    client.wait();
    thread::sleep(Duration::from_millis(200));
    let verdict = s.verdict(&[]);
    server.kill();
    assert_program(&verdict, s.program());
    verdict
}

fn u64_of(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

/// The text verdict of the scenario's trace.
fn text_verdict(verdict: &Value) -> String {
    let file = verdict["trace"]["file"].as_str().unwrap();
    let out = tcpchurn(&["replay", "--color", "never", "--connections", file]);
    String::from_utf8(out.stdout).unwrap()
}

/// A scenario's tag: its namespaces' names, apart for each program.
fn tag(base: &str, program: Program) -> String {
    match program {
        Program::TpBtf => base.to_owned(),
        Program::Classic => format!("{base}c"),
    }
}

/// A client fetching a page again and again from a server that answers each request
/// and closes first (HTTP/1.0 style).
fn answered_requests_are_served(veth: bool, program: Program) {
    let mut s = Scenario::start_with(veth, &tag("bs", program), 5201, program);
    let page = PAGE.to_string();
    let verdict = requests(&mut s, &["--behaviour", "answer", "--answer-bytes", &page]);
    let pair = s.pair(&verdict);
    assert_eq!(pair["connections"], CLIENTS, "{pair:#}");
    assert_eq!(pair["closed_first"]["server"], CLIENTS, "{pair:#}");
    assert_eq!(
        pair["reconnect_loop"], false,
        "served, not rejected: {pair:#}"
    );
    assert_eq!(
        (u64_of(&pair["served"]), u64_of(&pair["rejected"])),
        (CLIENTS, 0)
    );
    assert_eq!(pair["bytes"]["client"], CLIENTS * REQUEST, "{pair:#}");
    assert_eq!(pair["bytes"]["server"], CLIENTS * PAGE, "{pair:#}");
    let rows = connections_of(&verdict, s.port);
    assert_eq!(rows.len() as u64, CLIENTS);
    for c in rows {
        assert_eq!(c["closed_first"], "server", "{c}");
        assert_eq!(c["bytes"]["client"], REQUEST, "{c}");
        assert_eq!(c["bytes"]["server"], PAGE, "{c}");
        assert!(c["retransmits"]["client"].is_u64(), "{c}");
        assert!(c["retransmits"]["server"].is_u64(), "{c}");
        assert!(c["rtt_ms"].as_f64().unwrap() > 0.0, "{c}");
    }
    let text = text_verdict(&verdict);
    let flat = text.replace("\n    ", " ");
    assert!(!flat.contains("reconnect loop"), "{text}");
    assert!(
        flat.contains("all after answering (median request 18 B, answer 2.0 KiB)"),
        "{text}"
    );
    assert!(flat.contains("keep-alive would avoid it"), "{text}");
}

/// The same client against a server that closes each connection without a byte.
fn silent_closes_are_rejections(veth: bool, program: Program) {
    let mut s = Scenario::start_with(veth, &tag("bj", program), 5202, program);
    let verdict = requests(&mut s, &["--behaviour", "close"]);
    let pair = s.pair(&verdict);
    assert_eq!(pair["reconnect_loop"], true, "must be flagged: {pair:#}");
    assert_eq!(pair["closed_first"]["server"], CLIENTS, "{pair:#}");
    assert_eq!(
        (u64_of(&pair["rejected"]), u64_of(&pair["served"])),
        (CLIENTS, 0)
    );
    assert_eq!(pair["rejected_untold"], 0, "the counters tell: {pair:#}");
    for c in connections_of(&verdict, s.port) {
        assert_eq!(c["bytes"]["server"], 0, "{c}");
    }
    let reason = pair["reconnect_loop_reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "{CLIENTS} of {CLIENTS} ended connections were rejected"
        )),
        "{reason}"
    );
}

/// A server that answers each request with a short error line: the bytes say it.
fn an_error_line_shows_its_bytes(veth: bool, program: Program) {
    let mut s = Scenario::start_with(veth, &tag("be", program), 5203, program);
    let verdict = requests(&mut s, &["--behaviour", "error-line"]);
    let error_line = "ERR too many connections\n".len();
    for c in connections_of(&verdict, s.port) {
        assert_eq!(c["bytes"]["server"], error_line, "{c}");
        assert_eq!(c["bytes"]["client"], REQUEST, "{c}");
    }
    let pair = s.pair(&verdict);
    assert_eq!(pair["served_median_bytes"]["server"], 25.0, "{pair:#}");
    // In the table, next to the owners: 18 bytes in, 25 out.
    let text = text_verdict(&verdict);
    let row = text
        .lines()
        .find(|l| l.contains(&format!(":{} ", s.port)) && l.contains(" server "))
        .unwrap_or_else(|| panic!("no row:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[7..9], ["18", "25"], "{row}");
}

const REQUEST_10K: u64 = 10 * 1024;
const ANSWER_1M: u64 = 1024 * 1024;

/// 10 KiB one way, 1 MiB back, recorded at both ends at once, and at each end alone
/// (two more recorders, one per namespace; the client's with the classic tracepoint
/// program, which reads the counters through the socket's address): the bytes are
/// exact in every trace.
fn known_transfer() {
    let mut s = Scenario::start(true, "bx", 5204);
    let scratch = Scratch::new("bytes-ends");
    let ns_args = |ns: &tcpchurn_tests::Netns| ns.netns_args();
    let server_only = record(&scratch.path("server.trace"), ns_args(s.layout.server_ns()));
    let mut classic = ns_args(s.layout.client_ns());
    classic.push("--no-tp-btf".to_owned());
    let client_only = record(&scratch.path("client.trace"), classic);
    let (request, answer) = (REQUEST_10K.to_string(), ANSWER_1M.to_string());
    let server = s.server(&[
        "--count",
        "1",
        "--behaviour",
        "answer",
        "--request-bytes",
        &request,
        "--answer-bytes",
        &answer,
    ]);
    let client = s.client(&["--behaviour", "request", "--request-bytes", &request]);
    let lines = client.wait();
    assert!(
        lines.contains(&format!("received {ANSWER_1M}")),
        "{lines:?}"
    );
    server.wait();
    thread::sleep(Duration::from_millis(200));
    let both = s.verdict(&[]);
    server_only.stop().unwrap().ensure_success().unwrap();
    client_only.stop().unwrap().ensure_success().unwrap();
    let client_ip = s.client_ip().to_string();
    for (name, verdict) in [
        ("both ends", both),
        (
            "server end",
            replay_verdict(&scratch.path("server.trace"), &["--connections"]),
        ),
        (
            "client end",
            replay_verdict(&scratch.path("client.trace"), &["--connections"]),
        ),
    ] {
        let rows = connections_of(&verdict, s.port);
        assert_eq!(rows.len(), 1, "{name}: {verdict:#}");
        assert_eq!(
            rows[0]["bytes"]["client"], REQUEST_10K,
            "{name}: {}",
            rows[0]
        );
        assert_eq!(rows[0]["bytes"]["server"], ANSWER_1M, "{name}: {}", rows[0]);
        let pair = verdict_pair(&verdict, &client_ip, &s.server_addr());
        assert_eq!(pair["bytes"]["server"], ANSWER_1M, "{name}: {pair:#}");
    }
}

mod veth {
    use tcpchurn_tests::Program::TpBtf;

    tcpchurn_tests::privileged_tests! {
        answered_requests_are_served: super::answered_requests_are_served(true, TpBtf);
        silent_closes_are_rejections: super::silent_closes_are_rejections(true, TpBtf);
        an_error_line_shows_its_bytes: super::an_error_line_shows_its_bytes(true, TpBtf);
    }
}

/// The same with the classic tracepoint program, which reads the counters through the
/// socket's address with probe reads.
mod classic {
    use tcpchurn_tests::Program::Classic;

    tcpchurn_tests::privileged_tests! {
        answered_requests_are_served: super::answered_requests_are_served(true, Classic);
        silent_closes_are_rejections: super::silent_closes_are_rejections(true, Classic);
        an_error_line_shows_its_bytes: super::an_error_line_shows_its_bytes(true, Classic);
    }
}

mod loopback {
    use tcpchurn_tests::Program::TpBtf;

    tcpchurn_tests::privileged_tests! {
        answered_requests_are_served: super::answered_requests_are_served(false, TpBtf);
        silent_closes_are_rejections: super::silent_closes_are_rejections(false, TpBtf);
        an_error_line_shows_its_bytes: super::an_error_line_shows_its_bytes(false, TpBtf);
    }
}

privileged_tests! {
    a_known_transfer_is_counted_exactly_from_either_end:
        known_transfer();
}
