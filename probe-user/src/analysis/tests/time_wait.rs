//! TIME_WAIT: hand-overs, expiry and reuse, snapshots, the kernel's own count.

use super::*;

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
        scope: Scope::new(CLIENT_NS, 0),
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
        shared_with: Default::default(),
    }));
    let (analysis, _) = s.run(AnalyzerOptions::default(), 5 * S);
    assert_eq!(only_pair(&analysis).stats.time_wait_live, [0, 1]);
    let (analysis, _) = s.run(AnalyzerOptions::default(), 11 * S);
    assert_eq!(only_pair(&analysis).stats.time_wait_live, [0, 0]);
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
