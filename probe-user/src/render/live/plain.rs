//! The live view without a terminal: per refresh, a status line and the text verdict
//! exactly as `tcpchurn replay` prints it (the last one is the replay's verdict).

use std::io::{self, Write};

use crate::{
    analysis::LoopRule,
    render::{
        format::{human_bytes, plural, secs},
        live::Live,
        style::Style,
        verdict_text,
    },
};

/// What the recording has done so far, in one line.
pub fn status_line(live: &Live) -> String {
    let (analysis, status) = (&live.analysis, &live.status);
    let kept = if status.discarded {
        format!("{} produced, no file kept", human_bytes(status.bytes))
    } else {
        format!(
            "{} in {}",
            human_bytes(status.bytes),
            plural(u64::from(status.files), "file")
        )
    };
    let skipped = if status.skipped_records > 0 {
        format!(
            "; the live view fell behind and skipped {} (the file has them)",
            plural(status.skipped_records, "event")
        )
    } else {
        String::new()
    };
    if status.recording {
        format!(
            "recording for {:.1} s: {} events ({:.0}/s), {} lost, {kept}{skipped}",
            secs(analysis.end_ns),
            analysis.events,
            live.pulse.events_per_s,
            analysis.lost,
        )
    } else {
        let reason = live.trace.stop_reason.as_deref().unwrap_or("cut");
        format!(
            "recording stopped ({reason}) after {:.1} s: {} events, {} lost, {kept}{skipped}; \
             the verdict of the whole trace",
            secs(analysis.end_ns),
            analysis.events,
            analysis.lost,
        )
    }
}

/// One refresh: `--- status ---`, the verdict, a blank line.
pub fn write_plain(out: &mut impl Write, live: &Live, style: Style) -> io::Result<()> {
    writeln!(out, "--- {} ---", status_line(live))?;
    verdict_text::write_text(
        out,
        &live.trace,
        &live.analysis,
        &LoopRule::default(),
        style,
    )?;
    writeln!(out)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::{
            Analyzer, AnalyzerOptions, Pulse, TraceInfo,
            tests::{S, zookeeper_loop},
        },
        render::live::Status,
        synth::Script,
    };

    fn live(recording: bool) -> Live {
        let mut script = Script::default();
        zookeeper_loop(&mut script, 10);
        let mut analyzer = Analyzer::new(AnalyzerOptions::default());
        for event in &script.events {
            analyzer.on_event(event);
        }
        Live {
            trace: TraceInfo {
                file: "zk.trace".into(),
                stop_reason: (!recording).then(|| "interrupted".into()),
                close_wait_ns: 5 * S,
                ..TraceInfo::default()
            },
            analysis: analyzer.snapshot(10 * S),
            pulse: Pulse {
                events_per_s: 12.4,
                pairs: Vec::new(),
            },
            status: Status {
                recording,
                bytes: 70_000,
                files: 1,
                discarded: false,
                skipped_records: 0,
            },
        }
    }

    #[test]
    fn a_block_is_the_status_then_the_replays_verdict() {
        let live = live(true);
        let mut out = Vec::new();
        write_plain(&mut out, &live, Style::default()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (status, verdict) = text.split_once('\n').unwrap();
        assert_eq!(
            status,
            format!(
                "--- recording for 10.0 s: {} events (12/s), 0 lost, 68.4 KiB in 1 file ---",
                live.analysis.events
            )
        );
        let mut replay = Vec::new();
        verdict_text::write_text(
            &mut replay,
            &live.trace,
            &live.analysis,
            &LoopRule::default(),
            Style::default(),
        )
        .unwrap();
        assert_eq!(verdict, format!("{}\n", String::from_utf8(replay).unwrap()));
        assert!(verdict.contains("reconnect loop"), "{verdict}");
    }

    #[test]
    fn the_last_block_says_the_recording_stopped_and_what_was_skipped() {
        let mut live = live(false);
        live.status.discarded = true;
        live.status.skipped_records = 1;
        let line = status_line(&live);
        assert!(
            line.starts_with("recording stopped (interrupted) after 10.0 s"),
            "{line}"
        );
        assert!(line.contains("68.4 KiB produced, no file kept"), "{line}");
        assert!(
            line.contains("skipped 1 event (the file has them)"),
            "{line}"
        );
    }
}
