//! Verdicts on hand-built event sequences, shaped like what the kernel emits
//! (kernel-facts §1.2): every verdict, lost events, cut and pre-existing connections.

use super::*;
use crate::{
    model::{
        Conn, EndpointFilter, ResetReason, Scope, SnapshotSocket, SocketRef, Task, TcpState,
        TimeWindow, TraceEvent,
    },
    synth::{CLIENT_NS, SERVER_NS, Script, task, tuple},
};

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

#[test]
fn client_closes_first_and_holds_time_wait() {
    let mut s = Script::default();
    s.listener(SERVER_NS, "10.0.0.1:80", java());
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S)
        .open(e, app())
        .at(S + 5 * MS)
        .fin_close(e.client, e.server, app(), java());
    let (analysis, rows) = s.run(with_rows(), 10 * S);
    let pair = only_pair(&analysis);
    assert_eq!(
        pair.stats.key.to_string_pair(),
        ("10.0.0.2".into(), "10.0.0.1:80".into())
    );
    assert_eq!(
        pair.stats.connections, 1,
        "both ends merged into one connection"
    );
    assert_eq!(pair.stats.closed_first, [1, 0, 0, 0, 0]);
    assert_eq!(pair.stats.closed_by[0][CloseHow::Fin.index()], 1);
    assert_eq!(pair.stats.time_wait_live, [1, 0]);
    assert_eq!(pair.stats.time_wait_peak, [1, 0]);
    assert_eq!(pair.reconnect_loop, None);
    let row = rows[0];
    assert_eq!(row.verdict.closed_first, ClosedFirst::Client);
    assert_eq!(row.verdict.how, Some(CloseHow::Fin));
    assert_eq!(row.lifetime_ns(), Some(6 * MS));
    assert_eq!(row.client_owner.unwrap().pid, 7);
    assert_eq!(row.server_owner.unwrap().pid, 42);
    assert_eq!(
        (row.client_netns, row.server_netns),
        (Some(CLIENT_NS), Some(SERVER_NS))
    );
    assert_eq!(row.time_wait(), [true, false]);
    assert_eq!(row.time_wait_ns[0], Some(S + 6 * MS));
    assert!(!row.incomplete && !row.preexisting);
}

#[test]
fn server_closes_first_and_holds_time_wait() {
    let mut s = Script::default();
    s.listener(SERVER_NS, "10.0.0.1:80", java());
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S)
        .open(e, app())
        .at(S + 5 * MS)
        .fin_close(e.server, e.client, java(), app());
    let (analysis, rows) = s.run(with_rows(), 10 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.closed_first, [0, 1, 0, 0, 0]);
    assert_eq!(pair.stats.time_wait_live, [0, 1]);
    assert_eq!(rows[0].verdict.how, Some(CloseHow::Fin));
    // One server close is not a loop.
    assert_eq!(pair.reconnect_loop, None);
}

/// ZooKeeper over `maxClientCnxns`: the server accepts, then aborts with linger 0
/// (RST) within milliseconds; the client reconnects about every 0.7 s.
pub(crate) fn zookeeper_loop(s: &mut Script, attempts: u64) {
    use TcpState::*;
    s.snapshot(
        Conn {
            id: 999,
            scope: Scope {
                netns: SERVER_NS,
                cgroup: 0,
            },
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

#[test]
fn server_resets_right_after_accept_in_a_loop() {
    let mut s = Script::default();
    zookeeper_loop(&mut s, 20);
    let (analysis, rows) = s.run(with_rows(), 20 * S);
    let pair = only_pair(&analysis);
    let stats = &pair.stats;
    assert_eq!(stats.connections, 20);
    assert_eq!(stats.closed_first, [0, 20, 0, 0, 0]);
    assert_eq!(stats.closed_by[1][CloseHow::Rst.index()], 20);
    assert_eq!(stats.resets, [0, 20]);
    assert_eq!(
        stats.time_wait_live,
        [0, 0],
        "an aborted connection leaves no TIME_WAIT"
    );
    let evidence = pair.reconnect_loop.expect("must be flagged");
    assert_eq!(evidence.server_rst, 20);
    assert_eq!(evidence.run.len, 20);
    assert!(evidence.close_delay_p99_ms.unwrap() <= 2.2);
    assert!((stats.connects_per_s() - 1.0 / 0.7).abs() < 0.01);
    assert!(
        rows.iter()
            .all(|r| r.server_owner.is_some_and(|t| t.pid == 42))
    );
    assert!(rows.iter().all(|r| r.verdict.how == Some(CloseHow::Rst)));
}

#[test]
fn an_http10_client_closing_its_own_connections_is_not_a_loop() {
    let mut s = Script::default();
    s.listener(SERVER_NS, "10.0.0.1:80", java());
    for i in 0..50 {
        let e = s.ends(&format!("10.0.0.2:{}", 40000 + i), "10.0.0.1:80");
        s.at(S + i * 100 * MS).open(e, app());
        s.at(S + i * 100 * MS + MS)
            .fin_close(e.client, e.server, app(), java());
    }
    let (analysis, _) = s.run(AnalyzerOptions::default(), 30 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.closed_first, [50, 0, 0, 0, 0]);
    assert_eq!(pair.reconnect_loop, None);
    assert_eq!(pair.stats.time_wait_live, [50, 0]);
    assert!(pair.stats.lifetime.quantile_ms(0.5).unwrap() > 1.8);
}

fn refused(s: &mut Script, port: u16, traced_server_host: bool) {
    use TcpState::*;
    let client = s.socket(CLIENT_NS, &format!("10.0.0.2:{port}"), "10.0.0.1:81");
    s.tr(client, Close, SynSent, Some(app()));
    if traced_server_host {
        s.rst_sent(
            SocketRef::Unmatched {
                scope: Scope {
                    netns: SERVER_NS,
                    cgroup: 0,
                },
                tuple: tuple("10.0.0.1:81", &format!("10.0.0.2:{port}")),
            },
            ResetReason::NO_SOCKET,
            None,
        );
    }
    s.rst_received(client)
        .tr(client, SynSent, Close, None)
        .error(client, 111)
        .error(client, 0);
}

#[test]
fn refused_connects_are_counted_once_with_the_servers_reset() {
    let mut s = Script::default();
    for i in 0..6 {
        s.at(S + i * S);
        refused(&mut s, 40000 + i as u16, true);
    }
    let (analysis, rows) = s.run(with_rows(), 10 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.connections, 6);
    assert_eq!(pair.stats.refused, 6);
    assert_eq!(pair.stats.closed_first, [0, 6, 0, 0, 0]);
    assert_eq!(pair.stats.resets, [0, 6]);
    assert_eq!(rows[0].verdict.how, Some(CloseHow::Refused));
    assert!(
        pair.reconnect_loop.is_some(),
        "a client retrying refused connects loops"
    );
}

#[test]
fn a_refusal_seen_only_by_the_server_host_is_still_a_refused_connect() {
    let mut s = Script::default();
    s.rst_sent(
        SocketRef::Unmatched {
            scope: Scope::default(),
            tuple: tuple("10.0.0.1:81", "10.0.0.9:5555"),
        },
        ResetReason::NO_SOCKET,
        None,
    );
    let (analysis, rows) = s.run(with_rows(), S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.key.client.to_string(), "10.0.0.9");
    assert_eq!(pair.stats.refused, 1);
    assert_eq!(rows[0].conn, None);
}

#[test]
fn stray_resets_after_an_abort_are_not_refusals() {
    let mut s = Script::default();
    zookeeper_loop(&mut s, 1);
    let e_server = tuple("10.0.0.1:2181", "10.0.0.2:40000");
    s.at(S + 3 * MS).rst_sent(
        SocketRef::Unmatched {
            scope: Scope::default(),
            tuple: e_server,
        },
        ResetReason::NO_SOCKET,
        None,
    );
    let (analysis, _) = s.run(AnalyzerOptions::default(), 5 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.connections, 1);
    assert_eq!(pair.stats.refused, 0);

    // Long after the connection was forgotten (a far client, a long round trip), a
    // no-socket RST from the listening port is still not a refused connect.
    s.at(4 * S).rst_sent(
        SocketRef::Unmatched {
            scope: Scope {
                netns: SERVER_NS,
                cgroup: 0,
            },
            tuple: e_server,
        },
        ResetReason::NO_SOCKET,
        None,
    );
    let (analysis, _) = s.run(AnalyzerOptions::default(), 5 * S);
    assert_eq!(only_pair(&analysis).stats.refused, 0);
}

#[test]
fn connect_timeouts_and_unreachable() {
    use TcpState::*;
    let mut s = Script::default();
    let a = s.socket(CLIENT_NS, "10.0.0.2:40000", "10.0.0.3:80");
    let b = s.socket(CLIENT_NS, "10.0.0.2:40001", "10.0.0.3:80");
    let c = s.socket(CLIENT_NS, "10.0.0.2:40002", "10.0.0.3:80");
    s.tr(a, Close, SynSent, Some(app()))
        .tr(b, Close, SynSent, Some(app()))
        .tr(c, Close, SynSent, Some(app()))
        .at(131 * S)
        .tr(a, SynSent, Close, None)
        .error(a, 110)
        .tr(b, SynSent, Close, None)
        .error(b, 113)
        // The application gave up first.
        .tr(c, SynSent, Close, Some(app()));
    let (analysis, rows) = s.run(with_rows(), 140 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.timed_out, 2);
    assert_eq!(pair.stats.closed_first, [2, 0, 0, 1, 0]);
    let how: Vec<_> = rows.iter().map(|r| r.verdict.how).collect();
    assert!(how.contains(&Some(CloseHow::Unreachable)));
    assert_eq!(pair.reconnect_loop, None);
}

#[test]
fn close_wait_leaks_name_the_owner() {
    use TcpState::*;
    let mut s = Script::default();
    s.listener(SERVER_NS, "10.0.0.1:80", java());
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S).open(e, app());
    s.at(2 * S)
        .tr(e.client, Established, FinWait1, Some(app()))
        .tr(e.server, Established, CloseWait, None)
        .tr(e.client, FinWait1, FinWait2, None)
        // The client's orphaned FIN_WAIT2 goes to a timewait socket at once.
        .tr(e.client, FinWait2, Close, None);
    // A second one that the server does close, but late.
    let late = s.ends("10.0.0.2:40001", "10.0.0.1:80");
    s.at(S).open(late, app());
    s.at(2 * S)
        .fin_close(late.client, late.server, app(), java());
    s.at(2 * S).tr(late.server, LastAck, Close, None);
    let (analysis, rows) = s.run(with_rows(), 30 * S);
    assert_eq!(analysis.close_wait.len(), 1);
    let leak = analysis.close_wait[0];
    assert_eq!(leak.owner.unwrap().pid, 42);
    assert_eq!(leak.age_ns, 28 * S);
    assert_eq!(leak.local.to_string(), "10.0.0.1:80");
    assert_eq!(leak.peer.to_string(), "10.0.0.2:40000");
    assert_eq!(leak.netns, SERVER_NS);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.closed_first, [2, 0, 0, 0, 0]);
    let leaked = rows.iter().find(|r| r.client.port() == 40000).unwrap();
    assert_eq!(leaked.lifetime_ns(), None, "the server end is still open");
    // A threshold longer than the leak's age reports nothing.
    let (quiet, _) = s.run(
        AnalyzerOptions {
            close_wait_ns: 60 * S,
            ..AnalyzerOptions::default()
        },
        30 * S,
    );
    assert!(quiet.close_wait.is_empty());
}

#[test]
fn a_connection_cut_by_the_end_of_the_trace_is_open() {
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S).open(e, app());
    let (analysis, rows) = s.run(with_rows(), 5 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.closed_first, [0, 0, 0, 0, 1]);
    assert_eq!(pair.stats.connects, 1);
    assert_eq!(rows[0].verdict, CloseVerdict::OPEN);
    assert_eq!(rows[0].lifetime_ns(), None);
    assert_eq!(pair.stats.lifetime.count(), 0);
}

#[test]
fn a_connection_open_before_the_trace_comes_from_the_start_snapshot() {
    use TcpState::*;
    let mut s = Script::default();
    let listener = s.socket(SERVER_NS, "0.0.0.0:80", "0.0.0.0:0");
    s.snapshot(listener, Listen, Some(java()), false);
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.snapshot(e.client, Established, Some(app()), false)
        .snapshot(e.server, Established, Some(java()), false);
    s.at(3 * S).fin_close(e.server, e.client, java(), app());
    let (analysis, rows) = s.run(with_rows(), 5 * S);
    let pair = only_pair(&analysis);
    assert_eq!(
        pair.stats.connections, 1,
        "both ends of a pre-existing connection merge"
    );
    assert_eq!(pair.stats.preexisting, 1);
    assert_eq!(pair.stats.connects, 0);
    assert_eq!(pair.stats.closed_first, [0, 1, 0, 0, 0]);
    assert_eq!(pair.stats.key.server.to_string(), "10.0.0.1:80");
    let row = rows[0];
    assert!(row.preexisting);
    assert_eq!(row.start_ns, None);
    assert_eq!(row.client_owner.unwrap().pid, 7);
}

#[test]
fn lost_events_in_the_middle_mark_what_may_be_incomplete() {
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S).open(e, app());
    s.at(2 * S).lost(2 * S, 2 * S + 10 * MS, 17);
    s.at(2 * S + 500 * MS)
        .lost(2 * S + 500 * MS, 2 * S + 600 * MS, 3);
    s.at(3 * S).fin_close(e.client, e.server, app(), java());
    // A connection that lived entirely after the gap is complete.
    let after = s.ends("10.0.0.2:40001", "10.0.0.1:80");
    s.at(4 * S)
        .open(after, app())
        .fin_close(after.client, after.server, app(), java());
    let (analysis, rows) = s.run(with_rows(), 10 * S);
    assert!(analysis.incomplete());
    assert_eq!(analysis.lost, 20);
    assert_eq!(
        analysis.gaps.len(),
        1,
        "nearby gaps merge: {:?}",
        analysis.gaps
    );
    assert_eq!(
        (analysis.gaps[0].from_ns, analysis.gaps[0].to_ns),
        (2 * S, 2 * S + 600 * MS)
    );
    assert_eq!(only_pair(&analysis).stats.incomplete, 1);
    let incomplete: Vec<_> = rows
        .iter()
        .map(|r| (r.client.port(), r.incomplete))
        .collect();
    assert!(incomplete.contains(&(40000, true)) && incomplete.contains(&(40001, false)));
}

#[test]
fn a_socket_first_seen_in_mid_life_is_incomplete_with_a_guessed_role() {
    use TcpState::*;
    let mut s = Script::default();
    let server = s.socket(SERVER_NS, "10.0.0.1:80", "10.0.0.2:40000");
    s.at(S)
        .tr(server, Established, FinWait1, Some(java()))
        .tr(server, FinWait1, FinWait2, None)
        .tr(server, FinWait2, Close, None);
    let (analysis, rows) = s.run(with_rows(), 3 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.key.server.to_string(), "10.0.0.1:80");
    assert_eq!(pair.stats.closed_first, [0, 1, 0, 0, 0]);
    assert!(rows[0].incomplete && rows[0].role_guessed);
}

#[test]
fn time_wait_expires_after_60s_or_when_the_tuple_is_reused() {
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S)
        .open(e, app())
        .fin_close(e.client, e.server, app(), java());
    let other = s.ends("10.0.0.2:40001", "10.0.0.1:80");
    s.at(2 * S)
        .open(other, app())
        .fin_close(other.server, other.client, java(), app());
    let (analysis, _) = s.run(AnalyzerOptions::default(), 30 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.time_wait_live, [1, 1]);
    let (later, _) = s.run(AnalyzerOptions::default(), 70 * S);
    assert_eq!(only_pair(&later).stats.time_wait_live, [0, 0]);
    assert_eq!(only_pair(&later).stats.time_wait_peak, [1, 1]);

    // The client reconnects from the same port: the new SYN ends the TIME_WAIT early.
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S)
        .open(e, app())
        .fin_close(e.client, e.server, app(), java());
    let again = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(5 * S).open(again, app());
    let (analysis, _) = s.run(AnalyzerOptions::default(), 10 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.time_wait_live, [0, 0]);
    assert_eq!(pair.stats.connections, 2);
}

#[test]
fn the_end_snapshot_gives_the_kernels_time_wait_count() {
    let mut s = Script::default();
    s.listener(SERVER_NS, "10.0.0.1:80", java());
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S)
        .open(e, app())
        .fin_close(e.client, e.server, app(), java());
    let tw = Conn {
        id: 500,
        scope: Scope {
            netns: CLIENT_NS,
            cgroup: 0,
        },
        tuple: e.client.tuple,
    };
    s.at(3 * S).snapshot(tw, TcpState::TimeWait, None, true);
    let (analysis, _) = s.run(AnalyzerOptions::default(), 3 * S);
    assert!(analysis.end_snapshot);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.time_wait_live, [1, 0]);
    assert_eq!(pair.stats.time_wait_observed, [1, 0]);
}

#[test]
fn start_snapshot_time_wait_sockets_count_until_their_timer_fires() {
    let mut s = Script::default();
    let conn = s.socket(SERVER_NS, "10.0.0.1:80", "10.0.0.2:40000");
    s.events.push(TraceEvent::Snapshot(SnapshotSocket {
        ts_ns: 0,
        conn,
        state: TcpState::TimeWait,
        owner: None,
        inode: 0,
        uid: 0,
        timer_ms: Some(10_000),
        at_end: false,
    }));
    let (analysis, _) = s.run(AnalyzerOptions::default(), 5 * S);
    assert_eq!(only_pair(&analysis).stats.time_wait_live, [0, 1]);
    let (analysis, _) = s.run(AnalyzerOptions::default(), 11 * S);
    assert_eq!(only_pair(&analysis).stats.time_wait_live, [0, 0]);
}

#[test]
fn simultaneous_close() {
    use TcpState::*;
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S)
        .open(e, app())
        .tr(e.client, Established, FinWait1, Some(app()))
        .tr(e.server, Established, FinWait1, Some(java()))
        .tr(e.client, FinWait1, Closing, None)
        .tr(e.server, FinWait1, Closing, None)
        .tr(e.client, Closing, Close, None)
        .tr(e.server, Closing, Close, None);
    let (analysis, _) = s.run(AnalyzerOptions::default(), 3 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.closed_first, [0, 0, 1, 0, 0]);
    assert_eq!(pair.stats.time_wait_live, [1, 1]);
}

#[test]
fn an_abort_without_reset_events_is_unknown() {
    use TcpState::*;
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    s.at(S)
        .open(e, app())
        .tr(e.server, Established, Close, Some(java()))
        .tr(e.client, Established, Close, None);
    let (analysis, _) = s.run(AnalyzerOptions::default(), 3 * S);
    assert_eq!(only_pair(&analysis).stats.closed_first, [0, 0, 0, 1, 0]);
}

#[test]
fn ambiguous_ends_are_not_merged() {
    let mut s = Script::default();
    // Two client namespaces use the same addresses towards the same server.
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
    let twin = s.socket(CLIENT_NS + 1, "10.0.0.2:40000", "10.0.0.1:80");
    s.at(S)
        .tr(e.client, TcpState::Close, TcpState::SynSent, Some(app()))
        .tr(twin, TcpState::Close, TcpState::SynSent, Some(app()))
        .tr(e.server, TcpState::Listen, TcpState::SynRecv, None);
    let (analysis, rows) = s.run(with_rows(), 3 * S);
    assert_eq!(analysis.connections, 3);
    assert!(
        rows.iter()
            .all(|r| r.client_conn.is_none() || r.server_conn.is_none())
    );
}

#[test]
fn filters_and_windows() {
    let mut s = Script::default();
    for (i, server) in ["10.0.0.1:80", "10.0.0.1:81", "10.0.0.3:80"]
        .iter()
        .enumerate()
    {
        let e = s.ends(&format!("10.0.0.2:{}", 40000 + i), server);
        s.at(S * (i as u64 + 1))
            .open(e, app())
            .fin_close(e.client, e.server, app(), java());
    }
    let only = |server: &str| AnalyzerOptions {
        filter: EndpointFilter {
            server: Some(EndpointFilter::parse_server(server).unwrap()),
            client: None,
        },
        ..AnalyzerOptions::default()
    };
    let (analysis, _) = s.run(only("10.0.0.1"), 10 * S);
    assert_eq!(analysis.pairs.len(), 2);
    let (analysis, _) = s.run(only("10.0.0.1:81"), 10 * S);
    assert_eq!(only_pair(&analysis).stats.key.server.port(), 81);
    let window = AnalyzerOptions {
        window: TimeWindow {
            since_ns: Some(2 * S),
            until_ns: Some(2 * S + 500 * MS),
        },
        ..AnalyzerOptions::default()
    };
    let (analysis, _) = s.run(window, 10 * S);
    let counted: Vec<_> = analysis
        .pairs
        .iter()
        .filter(|p| p.stats.connections > 0)
        .map(|p| p.stats.key.server.port())
        .collect();
    assert_eq!(counted, [81]);
    // The earlier connection's TIME_WAIT is still held inside the window.
    assert_eq!(analysis.pairs.len(), 2);
    assert_eq!(analysis.end_ns, 2 * S + 500 * MS);
}

impl PairKey {
    fn to_string_pair(self) -> (String, String) {
        (self.client.to_string(), self.server.to_string())
    }
}

/// The same loop seen from one host only: the ZooKeeper server's (clients remote), or
/// a client's (server remote).
#[test]
fn a_loop_is_flagged_from_either_end_alone() {
    let mut full = Script::default();
    zookeeper_loop(&mut full, 10);
    for traced_netns in [SERVER_NS, CLIENT_NS] {
        let one_host = Script::from_events(
            full.events
                .iter()
                .filter(|e| match e {
                    TraceEvent::Transition(t) => t.conn.scope.netns == traced_netns,
                    TraceEvent::ResetSent(r) => match r.socket {
                        SocketRef::Conn(c) => c.scope.netns == traced_netns,
                        SocketRef::Unmatched { scope, .. } => scope.netns == traced_netns,
                    },
                    TraceEvent::ResetReceived(r) => r.conn.scope.netns == traced_netns,
                    TraceEvent::SocketError(e) => match e.socket {
                        SocketRef::Conn(c) => c.scope.netns == traced_netns,
                        SocketRef::Unmatched { scope, .. } => scope.netns == traced_netns,
                    },
                    TraceEvent::Snapshot(s) => s.conn.scope.netns == traced_netns,
                    TraceEvent::Lost(_) => true,
                })
                .copied()
                .collect(),
        );
        let (analysis, _) = one_host.run(AnalyzerOptions::default(), 20 * S);
        let pair = only_pair(&analysis);
        assert_eq!(pair.stats.key.server.to_string(), "10.0.0.1:2181");
        assert_eq!(pair.stats.key.client.to_string(), "10.0.0.2");
        assert_eq!(
            pair.stats.closed_first,
            [0, 10, 0, 0, 0],
            "netns {traced_netns}"
        );
        assert_eq!(pair.stats.resets, [0, 10], "netns {traced_netns}");
        assert!(pair.reconnect_loop.is_some(), "netns {traced_netns}");
    }
}

/// ZooKeeper's `fastCloseSock` when the client's ACK of the FIN arrives before
/// `close()`: FIN_WAIT2→CLOSE, then the linger-0 RST. The transition looks like a
/// hand-over to TIME_WAIT; the RST traced after it says it was an abort (no timewait
/// socket exists; `ss` shows none).
#[test]
fn a_linger_zero_abort_from_fin_wait2_is_not_time_wait() {
    use TcpState::*;
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:2181");
    s.at(S)
        .open(e, app())
        .tr(e.server, Established, FinWait1, Some(java()))
        .tr(e.client, Established, CloseWait, None)
        .tr(e.server, FinWait1, FinWait2, None)
        .at(S + 100 * MS)
        .tr(e.server, FinWait2, Close, Some(java()))
        .rst_sent(
            SocketRef::Conn(e.server),
            ResetReason::TCP_STATE,
            Some(java()),
        )
        .rst_received(e.client)
        .tr(e.client, CloseWait, Close, None);
    let (analysis, rows) = s.run(with_rows(), 3 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.time_wait_peak, [0, 0]);
    assert_eq!(pair.stats.time_wait_live, [0, 0]);
    assert_eq!(pair.stats.closed_first, [0, 1, 0, 0, 0]);
    assert_eq!(pair.stats.resets, [0, 1]);
    assert_eq!(rows[0].time_wait(), [false, false]);
}

/// Data arriving after `shutdown(SHUT_RD)`: the kernel resets the socket itself
/// (`tcp_reset()` fires tcp_receive_reset on the *server* socket) and sends an RST
/// with reason TCP_ABORT_ON_DATA. The client sent no RST.
#[test]
fn an_abort_on_data_is_the_servers_reset_not_the_clients() {
    use TcpState::*;
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:2181");
    s.at(S)
        .open(e, app())
        .tr(e.server, Established, FinWait1, Some(java()))
        .tr(e.client, Established, CloseWait, None)
        .tr(e.server, FinWait1, FinWait2, None)
        .at(S + MS)
        .rst_received(e.server)
        .tr(e.server, FinWait2, Close, None)
        .rst_sent(
            SocketRef::Conn(e.server),
            ResetReason::TCP_ABORT_ON_DATA,
            None,
        )
        .rst_received(e.client)
        .tr(e.client, CloseWait, Close, None);
    let (analysis, _) = s.run(AnalyzerOptions::default(), 3 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.resets, [0, 1]);
    assert_eq!(pair.stats.closed_first, [0, 1, 0, 0, 0]);
    assert_eq!(pair.stats.time_wait_peak, [0, 0]);
}

/// An orphaned active close whose peer never closes (a CLOSE_WAIT leak on the other
/// side): the kernel hands over to a timewait socket at once, but it waits in its
/// FIN_WAIT2 substate (`ss` lists FIN-WAIT-2), not TIME_WAIT. When the peer finally
/// sends its FIN, TIME_WAIT starts from that FIN.
#[test]
fn an_orphaned_fin_wait2_enters_time_wait_only_with_the_peers_fin() {
    use TcpState::*;
    let mut s = Script::default();
    let e = s.ends("10.0.0.2:40000", "10.0.0.1:8080");
    s.at(S)
        .open(e, app())
        .tr(e.client, Established, FinWait1, Some(app()))
        .tr(e.server, Established, CloseWait, None)
        .tr(e.client, FinWait1, FinWait2, None)
        .tr(e.client, FinWait2, Close, None);
    let (analysis, rows) = s.run(with_rows(), 10 * S);
    let pair = only_pair(&analysis);
    assert_eq!(
        pair.stats.time_wait_peak,
        [0, 0],
        "the leaker's peer holds FIN_WAIT2"
    );
    assert_eq!(rows[0].time_wait(), [false, false]);

    // The leaking server closes at 20 s: the client's timewait socket gets the FIN
    // and stays in TIME_WAIT for 60 s from then.
    s.at(20 * S)
        .tr(e.server, CloseWait, LastAck, Some(java()))
        .tr(e.server, LastAck, Close, None);
    let (analysis, rows) = s.run(with_rows(), 70 * S);
    let pair = only_pair(&analysis);
    assert_eq!(pair.stats.time_wait_live, [1, 0]);
    assert_eq!(rows[0].time_wait_ns[0], Some(20 * S));
    let (analysis, _) = s.run(AnalyzerOptions::default(), 81 * S);
    assert_eq!(only_pair(&analysis).stats.time_wait_live, [0, 0]);
}
