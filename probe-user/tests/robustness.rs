//! Any byte sequence is a valid input to `replay`: mutated and random traces must give
//! an error or a partial replay, never a panic, a hang or an unbounded allocation.
//!
//! A deterministic property test (fixed seeds, so a failure reproduces), plus the
//! regression corpus in `tests/corpus/` (inputs that once broke something: each must
//! keep replaying without a panic).
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    path::Path,
    time::{Duration, Instant},
};

use tcpchurn::{
    model::{Scope, SocketRef, TcpState},
    replay::{ReplayOptions, Traces, write_events, write_verdict},
    synth::{SERVER_NS, Script, task},
    trace::{TraceEnd, TraceMeta, TraceReader, TraceWriter, set::Input},
};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap()
    }
}

/// A ZooKeeper-style reconnect loop with every record kind: a start snapshot, both
/// ends of each connection, resets both ways, socket errors (some for sockets the
/// recorder could not match) and gaps of lost events.
fn valid_script() -> Script {
    let (java, client) = (task(10, "java"), task(20, "client"));
    let mut s = Script::default();
    let listener = s.socket(SERVER_NS, "10.0.0.1:2181", "0.0.0.0:0");
    s.snapshot(listener, TcpState::Listen, Some(java), false);
    for i in 0..60u64 {
        let e = s.ends(&format!("10.0.0.2:{}", 40_000 + i), "10.0.0.1:2181");
        let start = 1_000 + i * 13_500;
        s.at(start)
            .open(e, client)
            .at(start + 6_000)
            .reset_by_server(e, java);
        if i % 2 == 1 {
            let unmatched = SocketRef::Unmatched {
                scope: Scope::default(),
                tuple: e.client.tuple,
            };
            s.socket_error(unmatched, 104);
        }
        if i % 20 == 7 {
            s.lost(start + 5_500, start + 6_000, 3);
        }
    }
    s
}

/// [`valid_script`] as a trace of several blocks.
fn valid_trace() -> Vec<u8> {
    let meta = TraceMeta {
        tool: "tcpchurn".into(),
        hostname: "fuzz".into(),
        kernel: "6.18.44".into(),
        ..TraceMeta::default()
    };
    let mut writer = TraceWriter::new(Vec::new(), &meta)
        .unwrap()
        .with_block_records(37);
    valid_script().write(&mut writer).unwrap();
    writer
        .finish(&TraceEnd {
            end_ns: 1_000_000,
            stop_reason: "interrupted".into(),
            ..TraceEnd::default()
        })
        .unwrap()
}

fn options(events: bool, json: bool) -> ReplayOptions {
    ReplayOptions {
        events,
        json,
        connections: true,
        ..ReplayOptions::new("fuzz.trace")
    }
}

/// Replays `bytes` every way `replay` can; errors are fine, panics and hangs are not.
fn replay_every_way(bytes: &[u8]) {
    let started = Instant::now();
    for (events, json) in [(true, true), (true, false), (false, true), (false, false)] {
        let Ok(traces) = Traces::of(vec![Input::memory("fuzz.trace", bytes)]) else {
            return;
        };
        let mut out = Vec::new();
        let _result = if events {
            write_events(&traces, &options(events, json), &mut out)
        } else {
            write_verdict(&traces, &options(events, json), &mut out)
        };
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "replay of {} bytes took {:?}",
        bytes.len(),
        started.elapsed()
    );
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        match rng.below(6) {
            0 => {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            1 => {
                let at = rng.below(bytes.len());
                bytes[at] = u8::try_from(rng.below(256)).unwrap();
            }
            2 => bytes.truncate(rng.below(bytes.len())),
            3 => {
                let from = rng.below(bytes.len());
                let len = rng.below(64).min(bytes.len() - from);
                let chunk = bytes[from..from + len].to_vec();
                let at = rng.below(bytes.len());
                bytes.splice(at..at, chunk);
            }
            4 => {
                let at = rng.below(bytes.len());
                let garbage: Vec<u8> = (0..rng.below(40))
                    .map(|_| u8::try_from(rng.below(256)).unwrap())
                    .collect();
                bytes.splice(at..at, garbage);
            }
            _ => {
                // Large varints and counts where small ones were.
                let at = rng.below(bytes.len());
                for byte in bytes.iter_mut().skip(at).take(rng.below(10)) {
                    *byte |= 0x80;
                }
            }
        }
    }
    bytes
}

#[test]
fn the_valid_trace_replays_completely() {
    let bytes = valid_trace();
    let mut reader = TraceReader::open(&bytes[..]).unwrap();
    let events = reader.collect_events().unwrap();
    assert_eq!(events, valid_script().events);
    assert_eq!(events.len(), 1 + 60 * 9 + 30 + 3);
    assert!(reader.damage().is_empty());
    assert!(reader.end().is_some());
}

#[test]
fn mutated_traces_never_panic() {
    let valid = valid_trace();
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..3_000 {
        replay_every_way(&mutate(&mut rng, &valid));
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5eed_0002);
    let header = &valid_trace()[..16];
    for round in 0..2_000 {
        let len = rng.below(4096);
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| u8::try_from(rng.below(256)).unwrap())
            .collect();
        if round % 2 == 0 {
            // Past the magic, so the block parser is exercised too.
            bytes.splice(0..0, header.iter().copied());
        }
        replay_every_way(&bytes);
    }
}

#[test]
fn the_regression_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        replay_every_way(&std::fs::read(&path).unwrap());
    }
}
