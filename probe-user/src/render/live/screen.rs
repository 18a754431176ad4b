//! The live view on a terminal: a full screen drawn with ratatui. From the top: the
//! trace and the recording's status, the verdict as a replay would print it now, the
//! pairs (sorted as chosen, loops in red), the CLOSE_WAIT leaks, and the keys.

use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    style::{Color, Modifier, Style as Paint},
    text::{Line, Span, Text},
    widgets::{Cell, Paragraph, Row, Table},
};

use crate::{
    analysis::{Analysis, LoopRule, Severity},
    render::{
        address::EndpointText,
        format::human_duration,
        live::{
            Live, ViewState,
            pairs::{COLUMNS, pair_rows},
            plain::status_line,
        },
        text::{clean, wrap_to},
        verdict_text::{LineKind, verdict_lines},
    },
};

/// Rows of the leak table at most.
const MAX_LEAK_ROWS: usize = 5;

fn bold() -> Paint {
    Paint::new().add_modifier(Modifier::BOLD)
}

fn severity_paint(severity: Severity) -> Paint {
    match severity {
        Severity::Alarm => Paint::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Severity::Warning => Paint::new().fg(Color::Yellow),
        Severity::Note => Paint::new(),
    }
}

/// Draws one refresh of the live view.
pub fn draw(frame: &mut Frame<'_>, live: &Live, view: ViewState) {
    let area = frame.area();
    let verdict = verdict_text(live, area.width);
    let leaks = live.analysis.close_wait.len().min(MAX_LEAK_ROWS);
    let leak_height = if leaks == 0 { 0 } else { leaks as u16 + 2 };
    let verdict_height = (verdict.lines.len() as u16).min(area.height / 3).max(2);
    let [head, verdict_area, pairs, leak_area, keys] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(verdict_height),
        Constraint::Min(3),
        Constraint::Length(leak_height),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(head_text(live, view)), head);
    frame.render_widget(Paragraph::new(verdict), verdict_area);
    frame.render_widget(pair_table(live, view), pairs);
    if leaks > 0 {
        frame.render_widget(leak_table(&live.analysis), leak_area);
    }
    frame.render_widget(Paragraph::new(key_line(view)), keys);
}

/// The trace, the status, and what the viewer did.
fn head_text(live: &Live, view: ViewState) -> Text<'static> {
    let trace = &live.trace;
    let known = |text: &str| {
        if text.is_empty() {
            "?".to_owned()
        } else {
            clean(text).into_owned()
        }
    };
    let title = format!(
        "tcpchurn record --live  {}  host {}, kernel {}",
        clean(&trace.file),
        known(&trace.host),
        known(&trace.kernel)
    );
    let mut status = Vec::new();
    if view.paused {
        status.push(Span::styled(
            "PAUSED (the recording goes on)",
            Paint::new().add_modifier(Modifier::REVERSED),
        ));
        status.push(Span::raw("  "));
    }
    if view.stopping && live.status.recording {
        status.push(Span::styled("stopping...", bold()));
        status.push(Span::raw("  "));
    }
    status.push(Span::raw(status_line(live)));
    Text::from(vec![
        Line::styled(title, bold()),
        Line::from(status),
        Line::styled("VERDICT", bold()),
    ])
}

/// The verdict's lines, wrapped to the screen, coloured by severity.
fn verdict_text(live: &Live, width: u16) -> Text<'static> {
    let width = usize::from(width).max(40);
    let mut lines = Vec::new();
    for line in verdict_lines(&live.trace, &live.analysis, &LoopRule::default()) {
        let (first, rest) = match line.kind {
            LineKind::Finding => ("  ", "    "),
            LineKind::Reason => ("    ", "    "),
        };
        let paint = match line.kind {
            LineKind::Finding => severity_paint(line.severity),
            LineKind::Reason => Paint::new(),
        };
        for wrapped in wrap_to(&line.text, first, rest, width).lines() {
            lines.push(Line::styled(wrapped.to_owned(), paint));
        }
    }
    Text::from(lines)
}

fn pair_table(live: &Live, view: ViewState) -> Table<'static> {
    let rows = pair_rows(&live.analysis.pairs, &live.pulse.pairs, view.sort);
    let sorted = COLUMNS
        .iter()
        .position(|(name, _)| *name == view.sort.column());
    let header = Row::new(std::iter::once(Cell::from("CLIENT -> SERVER")).chain(
        COLUMNS.iter().enumerate().map(|(i, (name, _))| {
            let title = Line::from(*name).right_aligned();
            if Some(i) == sorted {
                Cell::from(title.style(Paint::new().add_modifier(Modifier::UNDERLINED)))
            } else {
                Cell::from(title)
            }
        }),
    ))
    .style(bold());
    let body = rows.into_iter().map(|row| {
        let paint = if row.flagged_for_ns.is_some() {
            Paint::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Paint::new()
        };
        Row::new(
            std::iter::once(Cell::from(clean(&row.label).into_owned())).chain(
                row.cells()
                    .into_iter()
                    .map(|cell| Cell::from(Line::from(cell).right_aligned())),
            ),
        )
        .style(paint)
    });
    let widths = std::iter::once(Constraint::Min(24))
        .chain(COLUMNS.iter().map(|(_, width)| Constraint::Length(*width)));
    Table::new(body, widths).header(header).column_spacing(1)
}

fn leak_table(analysis: &Analysis) -> Table<'static> {
    let title = format!(
        "CLOSE_WAIT LEAKS ({}): LOCAL <- PEER",
        analysis.close_wait.len()
    );
    let header =
        Row::new(std::iter::once(Cell::from(title)).chain(["PID", "COMM", "AGE"].map(Cell::from)))
            .style(bold());
    let body = analysis.close_wait.iter().take(MAX_LEAK_ROWS).map(|leak| {
        let (pid, comm) = leak.owner.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |t| (t.pid.to_string(), clean(&t.comm.as_str()).into_owned()),
        );
        let age = format!(
            "{}{}",
            human_duration(leak.age_ns),
            if leak.at_least { "+" } else { "" }
        );
        Row::new([
            Cell::from(format!(
                "{} <- {}",
                EndpointText(leak.local),
                EndpointText(leak.peer)
            )),
            Cell::from(pid),
            Cell::from(comm),
            Cell::from(age),
        ])
        .style(severity_paint(Severity::Warning))
    });
    let widths = [
        Constraint::Min(24),
        Constraint::Length(8),
        Constraint::Length(16),
        Constraint::Length(9),
    ];
    Table::new(body, widths).header(header).column_spacing(1)
}

fn key_line(view: ViewState) -> Line<'static> {
    let key = |k: &'static str| Span::styled(k, Paint::new().add_modifier(Modifier::REVERSED));
    Line::from(vec![
        key("q"),
        Span::raw(" stop recording  "),
        key("s"),
        Span::raw(format!(" sort ({})  ", view.sort.name())),
        key("c n t r f"),
        Span::raw(" conn/s, conns, TIME_WAIT, resets, refused  "),
        key("p"),
        Span::raw(if view.paused {
            " resume"
        } else {
            " pause screen"
        }),
    ])
}

/// The screen as a terminal would hold it, for tests.
#[cfg(test)]
fn render_to_buffer(
    live: &Live,
    view: ViewState,
    width: u16,
    height: u16,
) -> ratatui::buffer::Buffer {
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height))
        .expect("a test terminal");
    terminal
        .draw(|frame| draw(frame, live, view))
        .expect("drawing");
    terminal.backend().buffer().clone()
}

/// The screen as text, for tests.
#[cfg(test)]
pub fn render_to_text(live: &Live, view: ViewState, width: u16, height: u16) -> String {
    let buffer = render_to_buffer(live, view, width, height);
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol().to_owned())
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::{
            Analyzer, AnalyzerOptions, TraceInfo, Trend,
            tests::{MS, S, app, java, zookeeper_loop},
        },
        model::TcpState,
        render::live::{SortKey, Status},
        synth::{SERVER_NS, Script},
    };

    /// The ZooKeeper loop, refreshed every second, a CLOSE_WAIT leak from a process
    /// whose name holds an escape sequence.
    fn live() -> Live {
        let mut s = Script::default();
        zookeeper_loop(&mut s, 20);
        s.listener(SERVER_NS, "10.0.0.1:80", java());
        let leak = s.ends("10.0.0.4:41000", "10.0.0.1:80");
        let sneaky = crate::synth::task(66, "evil\u{1b}[2J");
        s.at(2 * S).open(leak, app()).tr(
            leak.server,
            TcpState::SynRecv,
            TcpState::Established,
            Some(sneaky),
        );
        s.tr(
            leak.server,
            TcpState::Established,
            TcpState::CloseWait,
            None,
        );
        let mut analyzer = Analyzer::new(AnalyzerOptions::default());
        let mut trend = Trend::default();
        let mut next = 0;
        for event in &s.events {
            while event.ts_ns() > next {
                trend.update(&analyzer.snapshot(next));
                next += S;
            }
            analyzer.on_event(event);
        }
        let analysis = analyzer.snapshot(next + 500 * MS);
        let pulse = trend.update(&analysis);
        Live {
            trace: TraceInfo {
                file: "zk.trace".into(),
                host: "zk-1".into(),
                kernel: "6.18".into(),
                close_wait_ns: 5 * S,
                ..TraceInfo::default()
            },
            analysis,
            pulse,
            status: Status {
                recording: true,
                bytes: 4096,
                files: 1,
                ..Status::default()
            },
        }
    }

    #[test]
    fn the_screen_shows_the_loop_its_verdict_and_the_leak() {
        let live = live();
        let text = render_to_text(&live, ViewState::default(), 110, 30);
        assert!(
            text.contains("tcpchurn record --live  zk.trace  host zk-1, kernel 6.18"),
            "{text}"
        );
        assert!(text.contains("recording for 15."), "{text}");
        assert!(
            text.contains("  10.0.0.2 -> 10.0.0.1:2181: reconnect loop, 20 connections in"),
            "{text}"
        );
        assert!(text.contains("flagged because 20 of 20"), "{text}");
        assert!(text.contains("CLIENT -> SERVER"), "{text}");
        assert!(text.contains("s sort (conn/s)"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("10.0.0.2 -> 10.0.0.1:2181"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(row.contains("0/20/0"), "{row}");
        assert!(row.ends_with(" s") || row.ends_with("new"), "{row}");
        assert!(text.contains("CLOSE_WAIT LEAKS (1)"), "{text}");
        assert!(
            !text.contains('\u{1b}'),
            "no escape reaches the terminal: {text}"
        );
        assert!(text.contains("evil\\x1b[2J"), "{text}");
        assert!(
            text.lines()
                .last()
                .is_some_and(|l| l.contains("q stop recording")),
            "{text}"
        );
        for line in text.lines() {
            assert!(line.chars().count() <= 110);
        }
    }

    /// A pair flagged as a reconnect loop stands out in bold red, the whole row; a pair
    /// that is not flagged does not.
    #[test]
    fn a_flagged_pair_is_highlighted() {
        let live = live();
        let buffer = render_to_buffer(&live, ViewState::default(), 110, 30);
        let row_of = |label: &str| {
            (0..buffer.area.height)
                .find(|&y| {
                    let line: String = (0..buffer.area.width)
                        .map(|x| buffer[(x, y)].symbol().to_owned())
                        .collect();
                    line.starts_with(label)
                })
                .unwrap_or_else(|| panic!("no row {label}"))
        };
        let flagged = row_of("10.0.0.2 -> 10.0.0.1:2181");
        for x in [0, buffer.area.width / 2, buffer.area.width - 1] {
            let cell = &buffer[(x, flagged)];
            assert_eq!(cell.fg, Color::Red, "column {x}");
            assert!(cell.modifier.contains(Modifier::BOLD), "column {x}");
        }
        let calm = row_of("10.0.0.4 -> 10.0.0.1:80");
        assert_ne!(buffer[(0, calm)].fg, Color::Red);
    }

    #[test]
    fn paused_and_sorted_say_so() {
        let live = live();
        let view = ViewState {
            sort: SortKey::Connections,
            paused: true,
            stopping: true,
        };
        let text = render_to_text(&live, view, 100, 24);
        assert!(text.contains("PAUSED (the recording goes on)"), "{text}");
        assert!(text.contains("stopping..."), "{text}");
        assert!(text.contains("s sort (connections)"), "{text}");
        // A small terminal still gets the verdict's first line.
        let small = render_to_text(&live, ViewState::default(), 60, 12);
        assert!(small.contains("reconnect loop"), "{small}");
    }
}
