//! Reconnect loops and refusals: what is a loop, and what is not.

use super::*;

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
                scope: Scope::new(SERVER_NS, 0),
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
            scope: Scope::new(SERVER_NS, 0),
            tuple: e_server,
        },
        ResetReason::NO_SOCKET,
        None,
    );
    let (analysis, _) = s.run(AnalyzerOptions::default(), 5 * S);
    assert_eq!(only_pair(&analysis).stats.refused, 0);
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

/// An HTTP/1.0-style server behind a client fetching a page every 0.2 s: each
/// connection is answered, then closed by the server.
fn answered(answer: u64, only_server_traced: bool) -> (Analysis, Vec<ConnectionRow>) {
    let mut s = Script::default();
    s.listener(SERVER_NS, "10.0.0.1:80", java());
    for i in 0..30 {
        let e = s.ends(&format!("10.0.0.2:{}", 40000 + i), "10.0.0.1:80");
        s.at(S + i * 200 * MS).open(e, app());
        s.at(S + i * 200 * MS + MS)
            .answered_then_closed(e, (18, answer), app(), java());
    }
    if only_server_traced {
        s.events.retain(|e| match e {
            TraceEvent::Transition(t) => t.conn.scope.netns == SERVER_NS,
            _ => true,
        });
    }
    s.run(with_rows(), 30 * S)
}

#[test]
fn a_server_answering_then_closing_serves_and_is_not_a_loop() {
    for only_server_traced in [false, true] {
        let (analysis, rows) = answered(2_000, only_server_traced);
        let pair = only_pair(&analysis);
        let stats = &pair.stats;
        assert_eq!(stats.closed_first[ClosedFirst::Server.index()], 30);
        assert_eq!(pair.reconnect_loop, None, "{only_server_traced}");
        assert_eq!((stats.served, stats.rejected), (30, 0));
        assert_eq!(stats.bytes, [30 * 18, 30 * 2_000], "{only_server_traced}");
        assert_eq!(stats.time_wait_live[Side::Server.index()], 30);
        for row in &rows {
            assert_eq!(row.bytes, [Some(18), Some(2_000)], "{row:?}");
        }
    }
}

#[test]
fn a_server_closing_without_a_byte_rejects_in_a_loop() {
    let (analysis, rows) = answered(0, false);
    let pair = only_pair(&analysis);
    let evidence = pair.reconnect_loop.expect("must be flagged");
    assert_eq!((evidence.rejected, evidence.rejected_untold), (30, 0));
    assert_eq!(pair.stats.served, 0);
    assert!(rows.iter().all(|r| r.bytes == [Some(18), Some(0)]));
}

#[test]
fn without_counters_a_server_closing_first_counts_as_rejected_and_says_it_could_not_tell() {
    let mut s = Script::default();
    s.listener(SERVER_NS, "10.0.0.1:80", java());
    for i in 0..10 {
        let e = s.ends(&format!("10.0.0.2:{}", 40000 + i), "10.0.0.1:80");
        s.at(S + i * 200 * MS).open(e, app());
        s.at(S + i * 200 * MS + MS)
            .fin_close(e.server, e.client, java(), app());
    }
    let (analysis, rows) = s.run(with_rows(), 30 * S);
    let pair = only_pair(&analysis);
    let evidence = pair.reconnect_loop.expect("today's rule");
    assert_eq!((evidence.rejected, evidence.rejected_untold), (10, 10));
    assert!(rows.iter().all(|r| r.bytes == [None, None]));
}
