//! The trace set on in-memory traces: parts joined, holes reported, hosts merged with
//! their clock offset measured back.

use std::sync::Arc;

use super::*;
use crate::{
    analysis::{Analysis, Analyzer, AnalyzerOptions, ConnectionRow},
    model::{Conn, GapCause, SnapshotSocket, TcpState},
    synth::{CLIENT_NS, SERVER_NS, Script, task},
    trace::{Damage, PartInfo, TraceEnd, TraceWriter},
};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const START_UNIX: u64 = 1_795_600_000 * S;

fn meta(host: &str, boot: &str, part: u32, start_unix_ns: u64) -> TraceMeta {
    TraceMeta {
        tool: "tcpchurn".into(),
        hostname: host.into(),
        boot_id: boot.into(),
        start_monotonic_ns: 5 * S,
        start_unix_ns,
        part: PartInfo {
            index: part,
            previous: None,
        },
        ..TraceMeta::default()
    }
}

fn trace(meta: &TraceMeta, events: &[TraceEvent], end_ns: u64, rotated: bool) -> Vec<u8> {
    let mut writer = TraceWriter::new(Vec::new(), meta).unwrap();
    for event in events {
        writer.push(event).unwrap();
    }
    writer
        .finish(&TraceEnd {
            end_ns,
            stop_reason: if rotated { "rotated" } else { "interrupted" }.into(),
            next_part: rotated.then(|| "next".into()),
            ..TraceEnd::default()
        })
        .unwrap()
}

fn input(name: &str, bytes: Vec<u8>) -> Input {
    Input {
        name: name.into(),
        source: PartSource::Memory(Arc::from(bytes)),
        from_directory: false,
    }
}

/// A reconnect loop, a normal client-closes-first exchange and a connection open
/// across the whole trace.
fn incident() -> Script {
    let (app, java) = (task(7, "app"), task(42, "java"));
    let mut s = Script::default();
    s.listener(SERVER_NS, "10.0.0.1:80", java);
    let long = s.ends("10.0.0.3:50000", "10.0.0.1:80");
    s.at(MS).open(long, app);
    for i in 0..30u64 {
        let e = s.ends(&format!("10.0.0.2:{}", 40000 + i), "10.0.0.1:80");
        s.at(S + i * 300 * MS).open(e, app);
        if i % 2 == 0 {
            s.at(S + i * 300 * MS + 2 * MS).reset_by_server(e, java);
        } else {
            s.at(S + i * 300 * MS + 2 * MS)
                .fin_close(e.client, e.server, app, java);
        }
    }
    s
}

fn analyse(
    events: impl IntoIterator<Item = TraceEvent>,
    end_ns: u64,
) -> (Analysis, Vec<ConnectionRow>) {
    let mut analyzer = Analyzer::new(AnalyzerOptions {
        connections: true,
        ..AnalyzerOptions::default()
    });
    for event in events {
        analyzer.on_event(&event);
    }
    analyzer.finish(end_ns)
}

fn read_all(set: &TraceSet) -> (Vec<TraceEvent>, u64, Vec<PartDamage>) {
    let timeline = set.timeline().unwrap();
    let mut reader = set.events(&timeline);
    let mut events = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        events.push(event);
    }
    let damage = reader.damage().into_iter().cloned().collect();
    (events, reader.end_ns(), damage)
}

/// The connections open at `ts`, as the recorder lists them at the start of a part.
fn open_connections(events: &[TraceEvent], ts: u64) -> Vec<TraceEvent> {
    let mut open: Vec<(Conn, TcpState)> = Vec::new();
    for event in events.iter().filter(|e| e.ts_ns() < ts) {
        if let TraceEvent::Transition(t) = event {
            open.retain(|(c, _)| c.id != t.conn.id);
            if t.new != TcpState::Close && t.new != TcpState::Listen {
                open.push((t.conn, t.new));
            }
        }
    }
    open.into_iter()
        .map(|(conn, state)| {
            TraceEvent::Snapshot(SnapshotSocket {
                ts_ns: ts,
                conn,
                state,
                owner: None,
                inode: 0,
                uid: 0,
                timer_ms: None,
                at_end: false,
                shared_with: Default::default(),
            })
        })
        .collect()
}

/// The incident as one file, and as three parts cut at 3 s and 6 s.
fn rotated() -> (Vec<u8>, Vec<Vec<u8>>) {
    let events = incident().events;
    let end = 12 * S;
    let whole = trace(&meta("node", "b1", 0, START_UNIX), &events, end, false);
    let cuts = [0, 3 * S, 6 * S, u64::MAX];
    let parts = (0..3)
        .map(|i| {
            let mut part = if i == 0 {
                Vec::new()
            } else {
                open_connections(&events, cuts[i])
            };
            part.extend(
                events
                    .iter()
                    .filter(|e| (cuts[i]..cuts[i + 1]).contains(&e.ts_ns()))
                    .copied(),
            );
            let last = i == 2;
            let part_end = if last { end } else { cuts[i + 1] };
            let meta = meta("node", "b1", u32::try_from(i).unwrap(), START_UNIX);
            trace(&meta, &part, part_end, !last)
        })
        .collect();
    (whole, parts)
}

#[test]
fn parts_given_in_any_order_replay_as_the_whole_recording() {
    let (whole, parts) = rotated();
    let one = TraceSet::open(vec![input("t.trace", whole)]).unwrap();
    let (expected, expected_end, _) = read_all(&one);
    let inputs = vec![
        input("t.trace.2", parts[2].clone()),
        input("t.trace", parts[0].clone()),
        input("t.trace.1", parts[1].clone()),
    ];
    let set = TraceSet::open(inputs).unwrap();
    assert_eq!(set.hosts().len(), 1);
    let names: Vec<&str> = set.hosts()[0]
        .parts
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["t.trace", "t.trace.1", "t.trace.2"]);
    let (events, end, damage) = read_all(&set);
    assert!(damage.is_empty(), "{damage:?}");
    assert_eq!(end, expected_end);
    assert_eq!(
        events, expected,
        "the parts' opening snapshots are left out"
    );
    assert_eq!(analyse(events, end), analyse(expected, expected_end));
}

#[test]
fn a_part_missing_between_two_is_a_gap_and_damage() {
    let (_, parts) = rotated();
    let set = TraceSet::open(vec![
        input("t.trace", parts[0].clone()),
        input("t.trace.2", parts[2].clone()),
    ])
    .unwrap();
    let (events, end, damage) = read_all(&set);
    let gaps: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Lost(g) => Some(*g),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].cause, GapCause::MissingPart);
    assert_eq!(
        (gaps[0].from_ns, gaps[0].to_ns, gaps[0].lost),
        (3 * S, 6 * S, 0)
    );
    assert_eq!(
        damage,
        [PartDamage {
            file: "t.trace.2".into(),
            damage: Damage::MissingParts {
                first: 1,
                last: 1,
                from_ns: 3 * S,
                to_ns: 6 * S
            }
        }]
    );
    // The part after the hole keeps its snapshot of open connections.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TraceEvent::Snapshot(s) if s.ts_ns == 6 * S))
    );
    let (analysis, _) = analyse(events, end);
    assert!(analysis.incomplete());
    assert_eq!(analysis.gaps[0].cause, GapCause::MissingPart);
}

/// The incident recorded on two hosts: the clients' namespace on `node`, the servers'
/// on `zk`, whose wall clock is `skew_ns` ahead (its header maps the same instant to a
/// later wall-clock time).
fn two_hosts(skew_ns: u64, same_boot: bool) -> Vec<Input> {
    let events = incident().events;
    let side = |netns: u32| -> Vec<TraceEvent> {
        events
            .iter()
            .filter(|e| match e {
                TraceEvent::Transition(t) => t.conn.scope.netns == netns,
                TraceEvent::ResetSent(r) => match r.socket {
                    crate::model::SocketRef::Conn(c) => c.scope.netns == netns,
                    crate::model::SocketRef::Unmatched { scope, .. } => scope.netns == netns,
                },
                TraceEvent::ResetReceived(r) => r.conn.scope.netns == netns,
                TraceEvent::SocketError(e) => match e.socket {
                    crate::model::SocketRef::Conn(c) => c.scope.netns == netns,
                    crate::model::SocketRef::Unmatched { scope, .. } => scope.netns == netns,
                },
                _ => false,
            })
            .copied()
            .collect()
    };
    let zk_boot = if same_boot { "b1" } else { "b2" };
    vec![
        input(
            "node.trace",
            trace(
                &meta("node", "b1", 0, START_UNIX),
                &side(CLIENT_NS),
                12 * S,
                false,
            ),
        ),
        input(
            "zk.trace",
            trace(
                &meta("zk", zk_boot, 0, START_UNIX + skew_ns),
                &side(SERVER_NS),
                12 * S,
                false,
            ),
        ),
    ]
}

#[test]
fn two_hosts_merge_as_one_recording_of_both_with_the_offset_measured() {
    let whole = trace(
        &meta("node", "b1", 0, START_UNIX),
        &incident().events,
        12 * S,
        false,
    );
    let one = TraceSet::open(vec![input("both.trace", whole)]).unwrap();
    let (expected, expected_end, _) = read_all(&one);
    let (expected, _) = analyse(expected, expected_end);

    let set = TraceSet::open(two_hosts(250 * MS, false)).unwrap();
    let names: Vec<&str> = set.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["node", "zk"]);
    let timeline = set.timeline().unwrap();
    assert_eq!(timeline.start_unix_ns, START_UNIX);
    let zk = timeline.hosts[1];
    assert_eq!(zk.clock.offset_ns, (250 * MS) as i64, "{zk:?}");
    assert!(matches!(
        zk.clock.basis,
        ClockBasis::Exchanges { via: HostId(0), .. }
    ));
    assert_eq!(zk.shift_ns, 0);
    assert!(timeline.unmatched.is_empty(), "{:?}", timeline.unmatched);
    let (events, end, _) = read_all(&set);
    let (merged, rows) = analyse(events, end);
    assert_eq!(merged, expected);
    let reset = rows.iter().find(|r| r.resets[1]).unwrap();
    assert_eq!(reset.client_owner.unwrap().pid, 7);
    assert_eq!(reset.server_owner.unwrap().pid, 42);
    assert_eq!(
        (reset.client_host, reset.server_host),
        (Some(HostId(0)), Some(HostId(1)))
    );
}

#[test]
fn one_boot_gives_the_offset_from_the_headers() {
    let set = TraceSet::open(two_hosts(3 * MS, true)).unwrap();
    assert_eq!(set.hosts()[1].name, "zk");
    let timeline = set.timeline().unwrap();
    let zk = timeline.hosts[1].clock;
    assert_eq!(zk.offset_ns, (3 * MS) as i64);
    assert_eq!(zk.basis, ClockBasis::SameBoot { via: HostId(0) });
}

#[test]
fn a_second_recording_of_a_host_is_another_host() {
    let a = trace(&meta("node", "b1", 0, START_UNIX), &[], S, false);
    let mut later = meta("node", "b1", 0, START_UNIX + 10 * S);
    later.start_monotonic_ns += 10 * S;
    let b = trace(&later, &[], S, false);
    let set = TraceSet::open(vec![input("a", a.clone()), input("b", b)]).unwrap();
    let names: Vec<&str> = set.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["node", "node#2"]);
    let err = TraceSet::open(vec![input("a", a.clone()), input("copy", a)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a and copy are the same part (0) of one recording"
    );
}

/// A pipe is read once: alone it replays, with another host it is refused before the
/// clock pass reads anything; a second pass over it is an error, not an empty host.
#[test]
fn a_pipe_is_read_once() {
    let as_pipe = |input: Input| Input {
        source: PartSource::Stream(OnceReader::new(
            input.source.open(&input.name, 1 << 16).unwrap(),
        )),
        ..input
    };
    let mut inputs = two_hosts(250 * MS, false);
    let zk = inputs.pop().unwrap();
    let alone = TraceSet::open(vec![as_pipe(zk.clone())]).unwrap();
    assert_eq!(alone.read_once(), Some("zk.trace"));
    let (events, _, damage) = read_all(&alone);
    assert!(!events.is_empty() && damage.is_empty());
    let again = alone.events(&alone.timeline().unwrap()).next_event();
    assert!(
        matches!(again, Err(SetError::ReadTwice(ref name)) if name == "zk.trace"),
        "{again:?}"
    );

    inputs.push(as_pipe(zk));
    let both = TraceSet::open(inputs).unwrap();
    let refused = both.timeline();
    assert!(
        matches!(refused, Err(SetError::ReadTwice(ref name)) if name == "zk.trace"),
        "{refused:?}"
    );
}

/// Every event as [`SetReader::for_each_event`] shows it, in place.
fn visit_all(set: &TraceSet) -> Vec<TraceEvent> {
    let timeline = set.timeline().unwrap();
    let mut reader = set.events(&timeline);
    let mut events = Vec::new();
    reader
        .for_each_event(|_, event| -> Result<_, SetError> {
            events.push(*event);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
    events
}

#[test]
fn visiting_in_place_sees_what_reading_moves() {
    // One host in parts (the openings left out), one with a part missing (a gap
    // queued before the part's first event), and two hosts (the merge).
    let sets = || {
        let (_, parts) = rotated();
        let part = |i: usize| input(&format!("t.trace.{i}"), parts[i].clone());
        [
            vec![input("t.trace", parts[0].clone()), part(1), part(2)],
            vec![input("t.trace", parts[0].clone()), part(2)],
            two_hosts(7 * S, false),
        ]
    };
    for (moved, visited) in sets().into_iter().zip(sets()) {
        let (expected, _, _) = read_all(&TraceSet::open(moved).unwrap());
        assert!(!expected.is_empty());
        assert_eq!(visit_all(&TraceSet::open(visited).unwrap()), expected);
    }
}
