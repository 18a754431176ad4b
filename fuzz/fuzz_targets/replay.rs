//! Coverage-guided fuzzing of everything `tcpchurn replay` does with a file: any byte
//! sequence must give an error or a (partial) replay, never a panic or a hang.
//!
//! Run with `AYA_BUILD_SKIP=1 cargo +nightly fuzz run replay` from the workspace root.
//! Crashes found here go into `probe-user/tests/corpus/` as regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpchurn::{
    replay::{ReplayOptions, Traces, write_events, write_verdict},
    trace::set::Input,
};

fn options(events: bool, json: bool) -> ReplayOptions {
    ReplayOptions {
        events,
        json,
        connections: true,
        ..ReplayOptions::new("fuzz.trace")
    }
}

fuzz_target!(|data: &[u8]| {
    for (events, json) in [(true, true), (false, true), (false, false)] {
        let Ok(traces) = Traces::of(vec![Input::memory("fuzz.trace", data)]) else {
            return;
        };
        let mut out = Vec::new();
        let _result = if events {
            write_events(&traces, &options(events, json), &mut out)
        } else {
            write_verdict(&traces, &options(events, json), &mut out)
        };
    }
});
