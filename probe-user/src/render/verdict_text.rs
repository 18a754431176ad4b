//! The text verdict: a line about the trace, the verdict, then aligned tables that fit
//! an 80-column terminal.

use std::io::{self, Write};

use crate::{
    analysis::{
        Analysis, ClosedFirst, Finding, LoopRule, PairReport, Severity, TraceInfo, findings,
    },
    render::{
        address::EndpointText,
        format::{human_duration, human_ms, secs},
        hosts,
        sentences::{self, pair_label},
        style::Style,
        text::{LABEL, clean, table, wrap},
        workload::text_label,
    },
};

/// Writes the text verdict (the verdict, then the tables).
pub fn write_text(
    out: &mut impl Write,
    trace: &TraceInfo,
    analysis: &Analysis,
    rule: &LoopRule,
    style: Style,
) -> io::Result<()> {
    writeln!(
        out,
        "{}",
        wrap(&clean(&trace_line(trace, analysis)), "", "  ")
    )?;
    if trace.hosts.len() > 1 {
        for host in &trace.hosts {
            writeln!(
                out,
                "{}",
                wrap(&clean(&hosts::host_line(host)), "  ", "    ")
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", style.bold("VERDICT"))?;
    for line in verdict_lines(trace, analysis, rule) {
        let text = match line.kind {
            LineKind::Finding => wrap(&line.text, "  ", "    "),
            LineKind::Reason => wrap(&line.text, "    ", "    "),
        };
        let text = match (line.kind, line.severity) {
            (LineKind::Reason, _) | (_, Severity::Note) => text,
            (LineKind::Finding, Severity::Alarm) => style.alarm(&text),
            (LineKind::Finding, Severity::Warning) => style.warn(&text),
        };
        writeln!(out, "{text}")?;
    }
    if analysis.pairs.is_empty() && analysis.close_wait.is_empty() {
        return Ok(());
    }
    write_pairs(out, analysis, style)?;
    write_closers(out, analysis, style)?;
    write_time_wait(out, analysis, style)?;
    write_leaks(out, trace, analysis, style)?;
    write_gaps(out, analysis, style)
}

/// "FILE: host H, kernel K, 40.0 s, 394 events, 12 lost, window 1.0-3.0 s"
fn trace_line(trace: &TraceInfo, analysis: &Analysis) -> String {
    let known = |text: &str| if text.is_empty() { "?" } else { text }.to_owned();
    let window = &trace.window;
    let window = if window.is_whole() {
        String::new()
    } else {
        format!(
            ", window {:.1}-{} s",
            secs(window.since_ns.unwrap_or(0)),
            window
                .until_ns
                .map_or_else(|| "end".to_owned(), |u| format!("{:.1}", secs(u)))
        )
    };
    let hosts = if trace.hosts.len() > 1 {
        "hosts"
    } else {
        "host"
    };
    format!(
        "{}: {hosts} {}, kernel {}, {:.1} s, {} events, {} lost{window}",
        trace.file,
        known(&trace.host),
        known(&trace.kernel),
        secs(analysis.end_ns),
        analysis.events,
        analysis.lost,
    )
}

/// What a line of the verdict is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// The sentence of a finding.
    Finding,
    /// Why the pair of the finding before it was flagged as a reconnect loop.
    Reason,
}

/// A line of the verdict, before wrapping and colour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictLine {
    pub text: String,
    pub kind: LineKind,
    /// The severity of its finding.
    pub severity: Severity,
}

/// The verdict's lines, most important first: each finding's sentence, a reconnect
/// loop's followed by why it was flagged.
pub fn verdict_lines(trace: &TraceInfo, analysis: &Analysis, rule: &LoopRule) -> Vec<VerdictLine> {
    let mut lines = Vec::new();
    for finding in findings(trace, analysis) {
        let severity = finding.severity();
        lines.push(VerdictLine {
            // A sentence can quote the trace: a process name, a tracepoint's detail,
            // damage.
            text: clean(&sentences::finding(&finding)).into_owned(),
            kind: LineKind::Finding,
            severity,
        });
        if let Finding::Pair(pair) = &finding
            && let Some(evidence) = &pair.pair.reconnect_loop
        {
            lines.push(VerdictLine {
                text: sentences::loop_reason(evidence, rule),
                kind: LineKind::Reason,
                severity,
            });
        }
    }
    lines
}

fn n(value: u64) -> String {
    value.to_string()
}

/// A table with a row per pair, after a blank line.
fn pair_table(
    out: &mut impl Write,
    style: Style,
    title: &str,
    columns: &[(usize, &str)],
    analysis: &Analysis,
    cells: impl Fn(&PairReport) -> Vec<String>,
) -> io::Result<()> {
    writeln!(out)?;
    table(out, style, title, columns, &analysis.pairs, |pair| {
        (clean(&pair_label(pair)).into_owned(), cells(pair))
    })
}

/// Connections, their rate and lifetimes, per pair.
fn write_pairs(out: &mut impl Write, analysis: &Analysis, style: Style) -> io::Result<()> {
    let columns = [
        (7, "CONNS"),
        (9, "CONN/S"),
        (10, "LIFE P50"),
        (10, "LIFE P99"),
        (6, "LOOP"),
    ];
    pair_table(out, style, "CLIENT -> SERVER", &columns, analysis, |pair| {
        let s = &pair.stats;
        let looping = if pair.reconnect_loop.is_some() {
            "yes"
        } else {
            "-"
        };
        vec![
            n(s.connections),
            format!("{:.2}", s.connects_per_s()),
            human_ms(s.lifetime.quantile_ms(0.5)),
            human_ms(s.lifetime.quantile_ms(0.99)),
            looping.to_owned(),
        ]
    })
}

/// Who closed first, per pair.
fn write_closers(out: &mut impl Write, analysis: &Analysis, style: Style) -> io::Result<()> {
    let columns = [
        (7, "CLIENT"),
        (7, "SERVER"),
        (6, "BOTH"),
        (6, "UNKN"),
        (6, "OPEN"),
        (8, "REFUSED"),
        (8, "TIMEOUT"),
    ];
    pair_table(out, style, "CLOSED FIRST BY", &columns, analysis, |pair| {
        let s = &pair.stats;
        let first = |f: ClosedFirst| n(s.closed_first[f.index()]);
        vec![
            first(ClosedFirst::Client),
            first(ClosedFirst::Server),
            first(ClosedFirst::Simultaneous),
            first(ClosedFirst::Unknown),
            first(ClosedFirst::Open),
            n(s.refused),
            n(s.timed_out),
        ]
    })
}

/// Resets and TIME_WAIT by side, per pair; the kernel's count with an end snapshot.
fn write_time_wait(out: &mut impl Write, analysis: &Analysis, style: Style) -> io::Result<()> {
    let mut columns = vec![
        (6, "RST C"),
        (6, "RST S"),
        (6, "TW C"),
        (6, "TW S"),
        (7, "PEAK C"),
        (7, "PEAK S"),
    ];
    if analysis.end_snapshot {
        columns.extend([(6, "SS C"), (6, "SS S")]);
    }
    let title = "RESETS, TIME_WAIT AT END";
    pair_table(out, style, title, &columns, analysis, |pair| {
        let s = &pair.stats;
        let mut sides = vec![s.resets, s.time_wait_live, s.time_wait_peak];
        if analysis.end_snapshot {
            sides.push(s.time_wait_observed);
        }
        sides.iter().flatten().map(|&v| n(v)).collect()
    })?;
    let legend = format!(
        "TW = TIME_WAIT inferred from FIN_WAIT2/CLOSING->CLOSE (60 s){}",
        if analysis.end_snapshot {
            "; SS = TIME_WAIT in the kernel's end snapshot"
        } else {
            ""
        }
    );
    writeln!(out, "{}", wrap(&legend, "", "  "))
}

/// The leaking sockets, and those that sat in CLOSE_WAIT too long but were closed.
fn write_leaks(
    out: &mut impl Write,
    trace: &TraceInfo,
    analysis: &Analysis,
    style: Style,
) -> io::Result<()> {
    let threshold = human_duration(trace.close_wait_ns);
    if !analysis.close_wait.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "CLOSE_WAIT LEAKS: peer closed, no close() for longer than {threshold}"
        )?;
        let columns = format!(
            "{:<LABEL$}{:>10} {:<15} {:>6}",
            "LOCAL <- PEER", "PID", "COMM", "AGE"
        );
        writeln!(out, "{}", style.bold(&columns))?;
        for leak in &analysis.close_wait {
            let (pid, comm) = leak.owner.map_or(("-".to_owned(), "-".to_owned()), |t| {
                (t.pid.to_string(), clean(&t.comm.as_str()).into_owned())
            });
            writeln!(
                out,
                "{:<LABEL$}{pid:>10} {comm:<15} {:>6}{}",
                format!(
                    "{} <- {}",
                    EndpointText(leak.local),
                    EndpointText(leak.peer)
                ),
                human_duration(leak.age_ns),
                if leak.at_least { "+" } else { "" }
            )?;
            if let Some(w) = &leak.workload {
                writeln!(out, "  in {}", text_label(w))?;
            }
        }
    }
    if analysis.close_wait_closed_late > 0 {
        writeln!(
            out,
            "{} more sockets sat in CLOSE_WAIT longer than {threshold} but were closed before the end",
            analysis.close_wait_closed_late,
        )?;
    }
    Ok(())
}

/// Where events were lost, in trace time.
fn write_gaps(out: &mut impl Write, analysis: &Analysis, style: Style) -> io::Result<()> {
    if analysis.gaps.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "{}", style.bold("LOST EVENTS (trace time)"))?;
    for gap in &analysis.gaps {
        writeln!(
            out,
            "  {:.3} - {:.3} s  {:>10} lost  ({})",
            secs(gap.from_ns),
            secs(gap.to_ns),
            gap.lost,
            gap.cause.name()
        )?;
    }
    if analysis.more_gaps > 0 {
        writeln!(out, "  ... and {} more gaps", analysis.more_gaps)?;
    }
    Ok(())
}
