//! A snapshot says what the end of the trace would say, and changes nothing.

use super::*;

/// The ZooKeeper loop, HTTP-style clients that leave TIME_WAIT, a CLOSE_WAIT leak and
/// a gap: every aggregate a snapshot has to copy.
fn incident() -> Script {
    let mut s = Script::default();
    super::incident(&mut s, 12, 6, 300, 3);
    s
}

fn analyzer() -> Analyzer {
    Analyzer::new(AnalyzerOptions {
        close_wait_ns: S,
        ..AnalyzerOptions::default()
    })
}

#[test]
fn a_snapshot_at_the_end_is_the_verdict() {
    let script = incident();
    let mut analyzer = analyzer();
    for event in &script.events {
        analyzer.on_event(event);
    }
    let snapshot = analyzer.snapshot(20 * S);
    let (finished, _) = analyzer.finish(20 * S);
    assert_eq!(snapshot, finished);
    assert_eq!(finished.close_wait.len(), 1);
    assert_eq!(finished.lost, 3);
}

#[test]
fn snapshots_on_the_way_change_nothing() {
    let script = incident();
    let mut plain = analyzer();
    let mut watched = analyzer();
    let mut snapshots = Vec::new();
    for (i, event) in script.events.iter().enumerate() {
        plain.on_event(event);
        watched.on_event(event);
        if i % 7 == 0 {
            snapshots.push(watched.snapshot(event.ts_ns()));
        }
    }
    assert!(snapshots.len() > 10);
    assert_eq!(watched.finish(20 * S), plain.finish(20 * S));
}

#[test]
fn a_snapshot_counts_what_is_still_open_and_flags_a_loop_as_it_runs() {
    let script = incident();
    let mut analyzer = analyzer();
    let mut flagged_at = None;
    for event in &script.events {
        analyzer.on_event(event);
        let now = analyzer.snapshot(analyzer.last_ts());
        let zk = now.pairs.iter().find(|p| p.stats.key.server.port() == 2181);
        if flagged_at.is_none() && zk.is_some_and(|p| p.reconnect_loop.is_some()) {
            flagged_at = Some(analyzer.last_ts());
        }
    }
    // The fifth rejected connection makes the run (attempts every 700 ms from 1 s).
    assert_eq!(flagged_at.map(|ns| ns / MS), Some(S / MS + 4 * 700 + 2));
    // Mid-way, the client has closed the leaking connection, which is not yet a leak.
    let analyzer = analyzer_upto(&script, 3 * S + 100 * MS);
    let now = analyzer.snapshot(3 * S + 100 * MS);
    let http = now
        .pairs
        .iter()
        .find(|p| p.stats.key.client.to_string() == "10.0.0.4")
        .unwrap();
    assert_eq!(http.stats.closed_first[ClosedFirst::Client.index()], 1);
    assert!(now.close_wait.is_empty());
    // Later it is: the same connection, aged past the threshold.
    let later = analyzer.snapshot(5 * S);
    assert_eq!(later.close_wait.len(), 1, "{:#?}", later.close_wait);
    assert_eq!(later.close_wait[0].age_ns, 2 * S);
}

fn analyzer_upto(script: &Script, until_ns: u64) -> Analyzer {
    let mut analyzer = analyzer();
    for event in script.events.iter().filter(|e| e.ts_ns() <= until_ns) {
        analyzer.on_event(event);
    }
    analyzer
}
