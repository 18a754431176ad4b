//! The replay verdict on real connections between two network namespaces, recorded by
//! the real kernel program: who closes first, reconnect loops, CLOSE_WAIT leaks,
//! refused connects, and TIME_WAIT counts checked against `ss` at the end.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{thread, time::Duration};

use serde_json::Value;
use tcpchurn_tests::{Scenario, connections_of};

fn pair<'a>(verdict: &'a Value, s: &Scenario) -> &'a Value {
    s.pair(verdict)
}

fn assert_time_wait(pair: &Value, ss: (u64, u64)) {
    assert_eq!(
        (
            pair["time_wait"]["client"].as_u64().unwrap(),
            pair["time_wait"]["server"].as_u64().unwrap()
        ),
        ss,
        "inferred TIME_WAIT differs from ss: {pair:#}"
    );
    assert_eq!(
        (
            pair["time_wait_kernel"]["client"].as_u64().unwrap(),
            pair["time_wait_kernel"]["server"].as_u64().unwrap()
        ),
        ss,
        "end snapshot differs from ss: {pair:#}"
    );
}

/// What three connections, 50 ms apart, left behind.
struct ThreeConnections {
    verdict: Value,
    /// TIME_WAIT sockets of (client, server), from `ss`.
    ss: (u64, u64),
    server_pid: u32,
    client_pid: u32,
}

/// Three connections where `closer` (`client` or `server`) closes first and the other
/// side waits for it.
fn three_closed_by(s: &mut Scenario, closer: &str) -> ThreeConnections {
    let (server_behaviour, client_behaviour, time_wait) = if closer == "client" {
        ("wait-peer", "close", (3, 0))
    } else {
        ("close", "wait-peer", (0, 3))
    };
    let server = s.server(&["--count", "3", "--behaviour", server_behaviour]);
    let client = s.client(&[
        "--count",
        "3",
        "--behaviour",
        client_behaviour,
        "--interval-ms",
        "50",
    ]);
    let (server_pid, client_pid) = (server.pid(), client.pid());
    client.wait();
    server.wait();
    // Waits for the kernel, then the test checks what `ss` shows.
    let ss = s.ss_time_wait_reaching(time_wait);
    ThreeConnections {
        verdict: s.verdict(&[]),
        ss,
        server_pid,
        client_pid,
    }
}

fn client_closes_first(veth: bool) {
    let mut s = Scenario::start(veth, "vc", 5101);
    let ThreeConnections {
        verdict,
        ss,
        server_pid,
        client_pid,
    } = three_closed_by(&mut s, "client");
    let pair = pair(&verdict, &s);
    assert_eq!(pair["connections"], 3, "both ends merged: {pair:#}");
    assert_eq!(pair["closed_first"]["client"], 3, "{pair:#}");
    assert_eq!(pair["closed_by"]["client"]["fin"], 3, "{pair:#}");
    assert_eq!(pair["reconnect_loop"], false);
    assert_eq!(ss, (3, 0), "the client holds TIME_WAIT, the server none");
    assert_time_wait(pair, ss);
    for c in connections_of(&verdict, s.port) {
        assert_eq!(c["closed_first"], "client", "{c}");
        assert_eq!(c["how"], "fin", "{c}");
        assert_eq!(c["time_wait"], "client", "{c}");
        assert_eq!(c["client_pid"], client_pid, "{c}");
        assert_eq!(c["server_pid"], server_pid, "{c}");
        assert_eq!(c["client_comm"], "tcpchurn-peer", "{c}");
        assert!(c["lifetime_ms"].as_f64().unwrap() < 1000.0, "{c}");
    }
}

fn server_closes_first(veth: bool) {
    let mut s = Scenario::start(veth, "vs", 5102);
    let ThreeConnections {
        verdict,
        ss,
        server_pid,
        ..
    } = three_closed_by(&mut s, "server");
    let pair = pair(&verdict, &s);
    assert_eq!(pair["connections"], 3, "{pair:#}");
    assert_eq!(pair["closed_first"]["server"], 3, "{pair:#}");
    assert_eq!(pair["closed_by"]["server"]["fin"], 3, "{pair:#}");
    assert_eq!(ss, (0, 3), "the server holds TIME_WAIT, the client none");
    assert_time_wait(pair, ss);
    // Three server closes, each right after accept, are not yet a loop (five are).
    assert_eq!(pair["reconnect_loop"], false, "{pair:#}");
    for c in connections_of(&verdict, s.port) {
        assert_eq!(c["closed_first"], "server", "{c}");
        assert_eq!(c["time_wait"], "server", "{c}");
        assert_eq!(c["server_pid"], server_pid, "{c}");
    }
}

/// ZooKeeper over `maxClientCnxns`: the server keeps one connection and resets every
/// other one right after accepting it; the client keeps reconnecting.
fn server_resets_in_a_loop(veth: bool) {
    let mut s = Scenario::start(veth, "vl", 5103);
    let server = s.server(&["--count", "0", "--limit", "1", "--behaviour", "hold"]);
    let mut client = s.client(&[
        "--count",
        "15",
        "--behaviour",
        "hold",
        "--interval-ms",
        "100",
    ]);
    let server_pid = server.pid();
    client.wait_for("done", Duration::from_secs(30));
    thread::sleep(Duration::from_millis(200));
    let ss = s.ss_time_wait();
    let verdict = s.verdict(&[]);
    client.kill();
    server.kill();
    let pair = pair(&verdict, &s);
    assert_eq!(pair["connections"], 15, "{pair:#}");
    assert_eq!(pair["reconnect_loop"], true, "must be flagged: {pair:#}");
    assert_eq!(pair["closed_first"]["server"], 14, "{pair:#}");
    assert_eq!(pair["closed_by"]["server"]["rst"], 14, "{pair:#}");
    assert_eq!(
        pair["closed_first"]["open"], 1,
        "the kept connection: {pair:#}"
    );
    assert_eq!(pair["resets"]["server"], 14, "{pair:#}");
    assert_eq!(pair["resets"]["client"], 0, "{pair:#}");
    assert!(pair["connects_per_s"].as_f64().unwrap() > 3.0, "{pair:#}");
    assert!(
        pair["server_close_p99_ms"].as_f64().unwrap() < 100.0,
        "{pair:#}"
    );
    let reason = pair["reconnect_loop_reason"].as_str().unwrap();
    assert!(reason.contains("14 of 14"), "{reason}");
    assert_eq!(ss, (0, 0), "aborted connections leave no TIME_WAIT");
    assert_time_wait(pair, ss);
    let rejected: Vec<_> = connections_of(&verdict, s.port)
        .into_iter()
        .filter(|c| c["closed_first"] == "server")
        .collect();
    assert_eq!(rejected.len(), 14);
    for c in rejected {
        assert_eq!(c["how"], "rst", "{c}");
        assert_eq!(c["server_pid"], server_pid, "{c}");
    }
    // The text verdict says so first, and why.
    let text = tcpchurn_tests::tcpchurn(&[
        "replay",
        "--color",
        "never",
        verdict["trace"]["file"].as_str().unwrap(),
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    let expected = format!(
        "  {} -> {}:{}: reconnect loop, 15 connections in",
        s.client_ip(),
        s.server_ip(),
        s.port
    );
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("by RST within"), "{text}");
    assert!(
        text.contains("flagged because 14 of 14 ended connections"),
        "{text}"
    );
}

/// A server that never closes accepted sockets after the client leaves.
fn close_wait_leak(veth: bool) {
    let mut s = Scenario::start(veth, "vw", 5104);
    let server = s.server(&["--count", "2", "--behaviour", "hold"]);
    let client = s.client(&["--count", "2", "--behaviour", "close"]);
    let server_pid = server.pid();
    client.wait();
    thread::sleep(Duration::from_millis(1500));
    let verdict = s.verdict(&["--close-wait", "1s"]);
    server.kill();
    let leaks: Vec<_> = verdict["close_wait"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["local"] == s.server_addr())
        .collect();
    assert_eq!(leaks.len(), 2, "{verdict:#}");
    for leak in leaks {
        assert_eq!(leak["pid"], server_pid, "{leak}");
        assert_eq!(leak["comm"], "tcpchurn-peer", "{leak}");
        assert!(
            leak["peer"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}:", s.client_ip())),
            "{leak}"
        );
        assert!(leak["age_s"].as_f64().unwrap() >= 1.0, "{leak}");
    }
    let pair = pair(&verdict, &s);
    assert_eq!(pair["closed_first"]["client"], 2, "{pair:#}");
}

fn refused_connects(veth: bool) {
    let mut s = Scenario::start(veth, "vr", 5105);
    let client = s.client(&[
        "--count",
        "6",
        "--behaviour",
        "close",
        "--interval-ms",
        "50",
    ]);
    let lines = client.wait();
    assert_eq!(
        lines.iter().filter(|l| *l == "refused").count(),
        6,
        "{lines:?}"
    );
    let verdict = s.verdict(&[]);
    let pair = pair(&verdict, &s);
    assert_eq!(
        pair["connections"], 6,
        "the server host's RSTs join the connects: {pair:#}"
    );
    assert_eq!(pair["refused"], 6, "{pair:#}");
    assert_eq!(pair["closed_first"]["server"], 6, "{pair:#}");
    assert_eq!(pair["resets"]["server"], 6, "{pair:#}");
    assert_eq!(pair["reconnect_loop"], true, "{pair:#}");
    for c in connections_of(&verdict, s.port) {
        assert_eq!(c["how"], "refused", "{c}");
    }
}

/// Two namespaces joined by veth: the two ends are in different namespaces.
mod veth {
    tcpchurn_tests::privileged_tests! {
        client_closes_first: super::client_closes_first(true);
        server_closes_first: super::server_closes_first(true);
        server_resets_in_a_loop: super::server_resets_in_a_loop(true);
        close_wait_leak: super::close_wait_leak(true);
        refused_connects: super::refused_connects(true);
    }
}

/// One namespace over loopback: the kernel runs each side's softirq in the other
/// side's task, and both ends have the same addresses.
mod loopback {
    tcpchurn_tests::privileged_tests! {
        client_closes_first: super::client_closes_first(false);
        server_closes_first: super::server_closes_first(false);
        server_resets_in_a_loop: super::server_resets_in_a_loop(false);
        close_wait_leak: super::close_wait_leak(false);
        refused_connects: super::refused_connects(false);
    }
}
