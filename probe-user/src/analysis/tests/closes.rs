//! Who closed first, and how: FINs, resets, aborts, crossed closes, failed connects.

use super::*;

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
    let row = &rows[0];
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

/// Data arriving after `shutdown(SHUT_RD)`: the kernel resets the socket itself
/// (`tcp_reset()` fires tcp_receive_reset on the *server* socket) and sends an RST
/// with reason TCP_ABORT_ON_DATA. The client sent no RST. A kernel without reasons
/// (before 6.10) shows the same sequence: a socket never answers an RST with one, so
/// its own RST after it "received" one says the kernel reset it itself.
#[test]
fn an_abort_on_data_is_the_servers_reset_not_the_clients() {
    use TcpState::*;
    for reason in [Some(ResetReason::TCP_ABORT_ON_DATA), None] {
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
            .rst_sent(SocketRef::Conn(e.server), reason, None)
            .rst_received(e.client)
            .tr(e.client, CloseWait, Close, None);
        let (analysis, _) = s.run(AnalyzerOptions::default(), 3 * S);
        let pair = only_pair(&analysis);
        assert_eq!(pair.stats.resets, [0, 1], "{reason:?}");
        assert_eq!(pair.stats.closed_first, [0, 1, 0, 0, 0], "{reason:?}");
        assert_eq!(pair.stats.time_wait_peak, [0, 0], "{reason:?}");
    }
}
