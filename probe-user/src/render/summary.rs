//! The summary `tcpchurn record` prints when it stops.

use std::io::{self, Write};

use crate::{
    model::{ExportSummary, RecordSummary},
    render::format::plural,
};

/// Writes the summary as the lines `tcpchurn record` prints on stderr.
pub fn write_summary(out: &mut impl Write, summary: &RecordSummary) -> io::Result<()> {
    let files: Vec<String> = summary
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    writeln!(out, "tcpchurn: recording stopped ({})", summary.stop_reason)?;
    writeln!(out, "  file         {}", files.join(", "))?;
    writeln!(
        out,
        "  duration     {:.1} s",
        summary.duration.as_secs_f64()
    )?;
    writeln!(
        out,
        "  events       {} ({} transitions)",
        summary.records, summary.transitions
    )?;
    writeln!(out, "  connections  {}", summary.connections)?;
    let lost = summary.lost;
    if lost.total() == 0 {
        writeln!(out, "  lost events  0")?;
    } else {
        let causes = [
            (
                lost.ring_full,
                "",
                " with the ring buffer full (try --ring-size)",
            ),
            (
                lost.recursion,
                "",
                " skipped by the kernel while another BPF program ran on the CPU",
            ),
            (
                lost.unreported,
                "at least ",
                " never reported by the kernel, inferred from broken state sequences",
            ),
            (lost.unreadable, "", " unreadable"),
        ];
        let causes: Vec<String> = causes
            .iter()
            .filter(|(count, _, _)| *count > 0)
            .map(|(count, before, after)| format!("{before}{count}{after}"))
            .collect();
        writeln!(
            out,
            "  lost events  {} ({}); replay marks the gaps",
            lost.total(),
            causes.join(", ")
        )?;
    }
    let per_event = if summary.records > 0 {
        summary.bytes as f64 / summary.records as f64
    } else {
        0.0
    };
    writeln!(
        out,
        "  written      {} bytes ({per_event:.1} bytes/event)",
        summary.bytes
    )
}

/// `tcpchurn export`'s closing lines.
pub fn write_export_summary(out: &mut impl Write, summary: &ExportSummary) -> io::Result<()> {
    let [events, connections] = &summary.tables;
    writeln!(
        out,
        "tcpchurn: exported {} from {} ({})",
        plural(summary.events, "event"),
        plural(summary.files as u64, "file"),
        plural(summary.hosts as u64, "host"),
    )?;
    writeln!(out, "  {:<12} {}", "events", events.display())?;
    writeln!(
        out,
        "  {:<12} {} ({})",
        "connections",
        connections.display(),
        plural(summary.connections, "connection")
    )
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, time::Duration};

    use super::*;
    use crate::model::Losses;

    fn rendered(summary: &RecordSummary) -> String {
        let mut out = Vec::new();
        write_summary(&mut out, summary).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_clean_recording() {
        let summary = RecordSummary {
            stop_reason: "duration".into(),
            files: vec![PathBuf::from("incident.trace")],
            duration: Duration::from_millis(5_500),
            records: 5502,
            transitions: 5001,
            connections: 1499,
            lost: Losses::default(),
            bytes: 63677,
        };
        assert_eq!(
            rendered(&summary),
            "tcpchurn: recording stopped (duration)\n  file         incident.trace\n  \
             duration     5.5 s\n  events       5502 (5001 transitions)\n  connections  \
             1499\n  lost events  0\n  written      63677 bytes (11.6 bytes/event)\n"
        );
    }

    #[test]
    fn losses_are_given_by_cause() {
        let summary = RecordSummary {
            stop_reason: "interrupted".into(),
            files: vec![PathBuf::from("a.trace"), PathBuf::from("a.trace.1")],
            lost: Losses {
                ring_full: 3,
                recursion: 0,
                unreported: 2,
                unreadable: 1,
            },
            ..RecordSummary::default()
        };
        let text = rendered(&summary);
        assert!(
            text.contains("  file         a.trace, a.trace.1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  lost events  6 (3 with the ring buffer full (try --ring-size), at least 2 never \
                 reported by the kernel, inferred from broken state sequences, 1 unreadable); \
                 replay marks the gaps\n"
            ),
            "{text}"
        );
        assert!(text.contains("(0.0 bytes/event)"), "{text}");
    }
}
