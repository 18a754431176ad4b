//! The edges of a trace: cut and pre-existing connections, lost events, CLOSE_WAIT
//! leaks, filters and windows.

use super::*;

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
    let leak = &analysis.close_wait[0];
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
    let row = &rows[0];
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
