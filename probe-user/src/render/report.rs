//! The verdict of `tcpchurn replay`: a short verdict, then aligned tables that fit an
//! 80-column terminal; or one JSON document. Pure functions writing to `impl Write`.

use std::{
    fmt::Write as _,
    io::{self, Write},
    net::SocketAddr,
};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    analysis::{
        Analysis, CloseHow, CloseWaitLeak, ClosedFirst, ConnectionRow, LoopEvidence, LoopRule,
        PairReport, PairStats, Side, TIME_WAIT_NS,
    },
    model::{Task, TimeWindow},
    render::style::Style,
};

/// What the report says about the trace itself, beside the analysis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceInfo {
    pub file: String,
    pub host: String,
    pub kernel: String,
    pub start_unix_ns: u64,
    /// How the recording stopped; `None` when the file has no end block (cut).
    pub stop_reason: Option<String>,
    /// Tracepoints the recorder could not attach, with why.
    pub missing_tracepoints: Vec<String>,
    /// Damage the reader worked around.
    pub damage: Vec<String>,
    pub window: TimeWindow,
    pub close_wait_ns: u64,
}

const WIDTH: usize = 80;
const LABEL: usize = 28;

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A duration for people: `850 µs`, `3.2 ms`, `41 ms`, `1.5 s`, `12 min`.
pub fn human_duration(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{:.0} min", ms / 60_000.0)
    }
}

fn human_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| human_duration((ms * 1e6) as u64))
}

fn pair_label(pair: &PairReport) -> String {
    format!("{} -> {}", pair.stats.key.client, pair.stats.key.server)
}

/// Wraps `text` at word boundaries to the terminal width, indenting continuations.
fn wrap(text: &str, first_indent: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = first_indent.to_owned();
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_owned();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out
}

fn how_words(counts: &[u64; 5]) -> String {
    let named: Vec<String> = CloseHow::ALL
        .iter()
        .filter(|how| counts[how.index()] > 0)
        .map(|how| match how {
            CloseHow::Fin => "FIN".to_owned(),
            CloseHow::Rst => "RST".to_owned(),
            other => other.name().to_owned(),
        })
        .collect();
    match named.as_slice() {
        [] => "unknown means".to_owned(),
        [one] => one.clone(),
        _ => named.join(" or "),
    }
}

/// " (28 of the FINs followed by an RST)": a side that closed with a FIN and then reset
/// the connection anyway (ZooKeeper's `fastCloseSock`: linger 0, shutdown, close).
fn rst_after_fin_words(stats: &PairStats, side: Side, by: &[u64; 5]) -> String {
    let fin = by[CloseHow::Fin.index()];
    let after_fin = stats.fin_then_rst[side.index()].min(fin);
    if after_fin == 0 {
        return String::new();
    }
    if after_fin == fin {
        " (each then followed by an RST)".to_owned()
    } else {
        format!(" ({after_fin} of the FINs then followed by an RST)")
    }
}

fn time_wait_words(pair: &PairReport, end_snapshot: bool) -> String {
    let tw = pair.stats.time_wait_live;
    let (closer, other) = if tw[Side::Client.index()] > tw[Side::Server.index()] {
        (Side::Client, Side::Server)
    } else {
        (Side::Server, Side::Client)
    };
    let mut words = format!(
        "{} holds {} TIME_WAIT, {} {}",
        closer.name(),
        tw[closer.index()],
        other.name(),
        tw[other.index()]
    );
    let seen = pair.stats.time_wait_observed;
    if end_snapshot && seen != tw {
        write!(
            words,
            " (the kernel listed {} and {})",
            seen[closer.index()],
            seen[other.index()]
        )
        .unwrap_or_default();
    }
    words
}

/// Why a pair was flagged, in words.
pub fn loop_reason(evidence: &LoopEvidence, rule: &LoopRule) -> String {
    format!(
        "flagged because {} of {} ended connections were rejected (refused, or closed by \
         the server within {} of the handshake), {} of them in a row at most {} apart",
        evidence.rejected,
        evidence.ended,
        human_duration(u64::try_from(rule.short.as_nanos()).unwrap_or(u64::MAX)),
        evidence.run.len,
        human_duration(u64::try_from(rule.max_gap.as_nanos()).unwrap_or(u64::MAX)),
    )
}

/// The one-sentence verdict for a pair.
pub fn pair_verdict(pair: &PairReport, end_snapshot: bool) -> String {
    let stats = &pair.stats;
    let mut text = format!("{}: ", pair_label(pair));
    let span = match (stats.first_connect_ns, stats.last_connect_ns) {
        (Some(first), Some(last)) if last > first => {
            format!(" in {}", human_duration(last - first))
        }
        _ => String::new(),
    };
    if let Some(evidence) = &pair.reconnect_loop {
        write!(
            text,
            "reconnect loop, {}{span}",
            plural(stats.connections, "connection")
        )
        .unwrap_or_default();
        let server_first = stats.closed_first[ClosedFirst::Server.index()] - evidence.refused;
        if server_first > 0 {
            let mut by = stats.closed_by[ClosedFirst::Server.index()];
            by[CloseHow::Refused.index()] = 0;
            write!(
                text,
                ", server closed first {server_first}/{} by {}",
                evidence.ended,
                how_words(&by)
            )
            .unwrap_or_default();
            if let Some(p99) = evidence.close_delay_p99_ms {
                write!(text, " within {} of accept", human_ms(Some(p99))).unwrap_or_default();
            }
            text.push_str(&rst_after_fin_words(stats, Side::Server, &by));
        }
        if evidence.refused > 0 {
            write!(text, ", {}/{} refused", evidence.refused, evidence.ended).unwrap_or_default();
        }
    } else {
        write!(text, "{}{span}", plural(stats.connections, "connection")).unwrap_or_default();
        let ended = stats.ended();
        if ended == 0 {
            text.push_str(", all still open");
        } else {
            let first = [
                ClosedFirst::Client,
                ClosedFirst::Server,
                ClosedFirst::Simultaneous,
                ClosedFirst::Unknown,
            ]
            .into_iter()
            .max_by_key(|f| (stats.closed_first[f.index()], std::cmp::Reverse(f.index())))
            .unwrap_or(ClosedFirst::Unknown);
            let count = stats.closed_first[first.index()];
            match first {
                ClosedFirst::Unknown => {
                    write!(text, ", closer unknown for {count}/{ended}").unwrap_or_default();
                }
                ClosedFirst::Simultaneous => {
                    write!(text, ", both closed at once {count}/{ended}").unwrap_or_default();
                }
                side => {
                    let mut by = stats.closed_by[side.index()];
                    let refused = by[CloseHow::Refused.index()];
                    by[CloseHow::Refused.index()] = 0;
                    if count > refused {
                        write!(
                            text,
                            ", {} closed first {}/{ended} by {}",
                            side.name(),
                            count - refused,
                            how_words(&by)
                        )
                        .unwrap_or_default();
                        if let Some(closer) = side.side() {
                            text.push_str(&rst_after_fin_words(stats, closer, &by));
                        }
                    }
                    if refused > 0 {
                        write!(text, ", {refused}/{ended} refused").unwrap_or_default();
                    }
                }
            }
        }
    }
    write!(text, "; {}", time_wait_words(pair, end_snapshot)).unwrap_or_default();
    text
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn leak_owner(owner: Option<&Task>) -> String {
    owner.map_or_else(
        || "an unknown process".to_owned(),
        |t| format!("pid {} ({})", t.pid, t.comm),
    )
}

/// Leaks grouped by owner, largest first: "pid 42 (java) holds 3 sockets...".
fn leak_verdicts(leaks: &[CloseWaitLeak]) -> Vec<String> {
    let mut groups: Vec<(Option<u32>, Vec<&CloseWaitLeak>)> = Vec::new();
    for leak in leaks {
        let pid = leak.owner.map(|t| t.pid);
        match groups.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, list)) => list.push(leak),
            None => groups.push((pid, vec![leak])),
        }
    }
    groups.sort_by_key(|(_, list)| std::cmp::Reverse(list.len()));
    groups
        .iter()
        .map(|(_, list)| {
            let oldest = list.iter().map(|l| l.age_ns).max().unwrap_or(0);
            format!(
                "CLOSE_WAIT leak: {} holds {} socket{} in CLOSE_WAIT (peer closed, no close() \
                 since), oldest {}{}",
                leak_owner(list[0].owner.as_ref()),
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                human_duration(oldest),
                if list.iter().any(|l| l.at_least) {
                    " or more"
                } else {
                    ""
                }
            )
        })
        .collect()
}

fn gap_words(analysis: &Analysis) -> String {
    let windows: Vec<String> = analysis
        .gaps
        .iter()
        .take(4)
        .map(|g| {
            format!(
                "{} between {:.3} and {:.3} s",
                g.lost,
                secs(g.from_ns),
                secs(g.to_ns)
            )
        })
        .collect();
    let more = analysis.gaps.len().saturating_sub(4) as u64 + analysis.more_gaps;
    let mut text = format!(
        "{} events were lost, so these verdicts may be incomplete: {}",
        analysis.lost,
        windows.join(", ")
    );
    if more > 0 {
        write!(text, " and {more} more gaps").unwrap_or_default();
    }
    text
}

/// The verdict lines, most important first.
pub fn verdict_lines(trace: &TraceInfo, analysis: &Analysis) -> Vec<(String, bool)> {
    let mut lines = Vec::new();
    if analysis.incomplete() {
        lines.push((gap_words(analysis), true));
    }
    for missing in &trace.missing_tracepoints {
        lines.push((format!("not recorded: {missing}"), true));
    }
    for damage in &trace.damage {
        lines.push((format!("damaged trace: {damage}"), true));
    }
    const MAX_PAIRS: usize = 8;
    for pair in analysis.pairs.iter().take(MAX_PAIRS) {
        lines.push((
            pair_verdict(pair, analysis.end_snapshot),
            pair.reconnect_loop.is_some(),
        ));
    }
    if analysis.pairs.len() > MAX_PAIRS {
        lines.push((
            format!(
                "... and {} more pairs in the tables below",
                analysis.pairs.len() - MAX_PAIRS
            ),
            false,
        ));
    }
    if analysis.pairs.is_empty() {
        lines.push((
            "no connections in this trace (or none matched the filters)".to_owned(),
            false,
        ));
    }
    for leak in leak_verdicts(&analysis.close_wait) {
        lines.push((leak, true));
    }
    lines
}

/// A table row: the label column, then right-aligned cells. A label too long for its
/// column gets a line of its own.
fn row(out: &mut impl Write, label: &str, cells: &[(usize, String)]) -> io::Result<()> {
    let mut line = String::new();
    if label.chars().count() > LABEL {
        writeln!(out, "{label}")?;
        line.push_str(&" ".repeat(LABEL));
    } else {
        write!(line, "{label:<LABEL$}").unwrap_or_default();
    }
    for (width, cell) in cells {
        write!(line, "{cell:>width$}").unwrap_or_default();
    }
    writeln!(out, "{}", line.trim_end())
}

fn header(
    out: &mut impl Write,
    style: Style,
    title: &str,
    cells: &[(usize, &str)],
) -> io::Result<()> {
    let mut line = format!("{title:<LABEL$}");
    for (width, cell) in cells {
        write!(line, "{cell:>width$}").unwrap_or_default();
    }
    writeln!(out, "{}", style.bold(&line))
}

fn n(value: u64) -> String {
    value.to_string()
}

/// Writes the text report (the verdict, then the tables).
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
        wrap(
            &format!(
                "{}: host {}, kernel {}, {:.1} s, {} events, {} lost{}",
                trace.file,
                if trace.host.is_empty() {
                    "?"
                } else {
                    &trace.host
                },
                if trace.kernel.is_empty() {
                    "?"
                } else {
                    &trace.kernel
                },
                secs(analysis.end_ns),
                analysis.events,
                analysis.lost,
                match (trace.window.since_ns, trace.window.until_ns) {
                    (None, None) => String::new(),
                    (since, until) => format!(
                        ", window {:.1}-{} s",
                        secs(since.unwrap_or(0)),
                        until.map_or_else(|| "end".to_owned(), |u| format!("{:.1}", secs(u)))
                    ),
                }
            ),
            "",
            "  "
        )
    )?;
    writeln!(out)?;
    writeln!(out, "{}", style.bold("VERDICT"))?;
    for (line, alarm) in verdict_lines(trace, analysis) {
        let text = wrap(&line, "  ", "    ");
        let text = if !alarm {
            text
        } else if line.contains("reconnect loop") {
            style.alarm(&text)
        } else {
            style.warn(&text)
        };
        writeln!(out, "{text}")?;
        if let Some(pair) = analysis.pairs.iter().find(|p| {
            p.reconnect_loop.is_some() && line.starts_with(&format!("{}:", pair_label(p)))
        }) && let Some(evidence) = &pair.reconnect_loop
        {
            writeln!(
                out,
                "{}",
                wrap(&loop_reason(evidence, rule), "    ", "    ")
            )?;
        }
    }
    if analysis.pairs.is_empty() && analysis.close_wait.is_empty() {
        return Ok(());
    }

    writeln!(out)?;
    header(
        out,
        style,
        "CLIENT -> SERVER",
        &[
            (7, "CONNS"),
            (9, "CONN/S"),
            (10, "LIFE P50"),
            (10, "LIFE P99"),
            (6, "LOOP"),
        ],
    )?;
    for pair in &analysis.pairs {
        let s = &pair.stats;
        row(
            out,
            &pair_label(pair),
            &[
                (7, n(s.connections)),
                (9, format!("{:.2}", s.connects_per_s())),
                (10, human_ms(s.lifetime.quantile_ms(0.5))),
                (10, human_ms(s.lifetime.quantile_ms(0.99))),
                (
                    6,
                    if pair.reconnect_loop.is_some() {
                        "yes"
                    } else {
                        "-"
                    }
                    .to_owned(),
                ),
            ],
        )?;
    }

    writeln!(out)?;
    header(
        out,
        style,
        "CLOSED FIRST BY",
        &[
            (7, "CLIENT"),
            (7, "SERVER"),
            (6, "BOTH"),
            (6, "UNKN"),
            (6, "OPEN"),
            (8, "REFUSED"),
            (8, "TIMEOUT"),
        ],
    )?;
    for pair in &analysis.pairs {
        let s = &pair.stats;
        let c = |f: ClosedFirst| n(s.closed_first[f.index()]);
        row(
            out,
            &pair_label(pair),
            &[
                (7, c(ClosedFirst::Client)),
                (7, c(ClosedFirst::Server)),
                (6, c(ClosedFirst::Simultaneous)),
                (6, c(ClosedFirst::Unknown)),
                (6, c(ClosedFirst::Open)),
                (8, n(s.refused)),
                (8, n(s.timed_out)),
            ],
        )?;
    }

    writeln!(out)?;
    let mut cells = vec![
        (6, "RST C"),
        (6, "RST S"),
        (6, "TW C"),
        (6, "TW S"),
        (7, "PEAK C"),
        (7, "PEAK S"),
    ];
    if analysis.end_snapshot {
        cells.extend([(6, "SS C"), (6, "SS S")]);
    }
    header(out, style, "RESETS, TIME_WAIT AT END", &cells)?;
    for pair in &analysis.pairs {
        let s = &pair.stats;
        let mut cells = vec![
            (6, n(s.resets[0])),
            (6, n(s.resets[1])),
            (6, n(s.time_wait_live[0])),
            (6, n(s.time_wait_live[1])),
            (7, n(s.time_wait_peak[0])),
            (7, n(s.time_wait_peak[1])),
        ];
        if analysis.end_snapshot {
            cells.extend([
                (6, n(s.time_wait_observed[0])),
                (6, n(s.time_wait_observed[1])),
            ]);
        }
        row(out, &pair_label(pair), &cells)?;
    }
    let legend = format!(
        "TW = TIME_WAIT inferred from FIN_WAIT2/CLOSING->CLOSE (60 s){}",
        if analysis.end_snapshot {
            "; SS = TIME_WAIT in the kernel's end snapshot"
        } else {
            ""
        }
    );
    writeln!(out, "{}", wrap(&legend, "", "  "))?;

    if !analysis.close_wait.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "CLOSE_WAIT LEAKS: peer closed, no close() for longer than {}",
            human_duration(trace.close_wait_ns)
        )?;
        writeln!(
            out,
            "{}",
            style.bold(&format!(
                "{:<LABEL$}{:>10} {:<15} {:>6}",
                "LOCAL <- PEER", "PID", "COMM", "AGE"
            ))
        )?;
        for leak in &analysis.close_wait {
            let (pid, comm) = leak.owner.map_or(("-".to_owned(), "-".to_owned()), |t| {
                (t.pid.to_string(), t.comm.to_string())
            });
            writeln!(
                out,
                "{:<LABEL$}{pid:>10} {comm:<15} {:>6}{}",
                format!("{} <- {}", leak.local, leak.peer),
                human_duration(leak.age_ns),
                if leak.at_least { "+" } else { "" }
            )?;
        }
    }
    if analysis.close_wait_closed_late > 0 {
        writeln!(
            out,
            "{} more sockets sat in CLOSE_WAIT longer than {} but were closed before the end",
            analysis.close_wait_closed_late,
            human_duration(trace.close_wait_ns)
        )?;
    }

    if !analysis.gaps.is_empty() {
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
    }
    Ok(())
}

/// The header of the `--connections` text table.
pub const CONNECTIONS_HEADER: &str =
    "CONN   CLIENT                SERVER                FIRST  HOW        LIFE TW";

/// One `--connections` text row.
pub fn write_connection_text(out: &mut impl Write, row: &ConnectionRow) -> io::Result<()> {
    let addr = |a: SocketAddr| {
        let text = a.to_string();
        if text.len() > 21 {
            format!("{}…", &text[..20])
        } else {
            text
        }
    };
    writeln!(
        out,
        "{:<6} {:<21} {:<21} {:<6} {:<7} {:>7} {}",
        row.conn.map_or_else(|| "-".to_owned(), |c| c.to_string()),
        addr(row.client),
        addr(row.server),
        match row.verdict.closed_first {
            ClosedFirst::Simultaneous => "both",
            ClosedFirst::Unknown => "?",
            other => other.name(),
        },
        row.verdict.how.map_or("-", CloseHow::name),
        row.lifetime_ns()
            .map_or_else(|| "-".to_owned(), human_duration),
        time_wait_name(row.time_wait()).unwrap_or("-"),
    )
}

fn time_wait_name(time_wait: [bool; 2]) -> Option<&'static str> {
    match time_wait {
        [true, true] => Some("both"),
        [true, false] => Some("client"),
        [false, true] => Some("server"),
        [false, false] => None,
    }
}

#[derive(Serialize)]
struct JsonConnection<'a> {
    conn: Option<u64>,
    client: String,
    server: String,
    closed_first: &'static str,
    how: Option<&'static str>,
    lifetime_ms: Option<f64>,
    start_s: Option<f64>,
    end_s: Option<f64>,
    client_pid: Option<u32>,
    client_comm: Option<std::borrow::Cow<'a, str>>,
    server_pid: Option<u32>,
    server_comm: Option<std::borrow::Cow<'a, str>>,
    time_wait: Option<&'static str>,
    /// When the first side entered TIME_WAIT, and 60 s later.
    time_wait_from_s: Option<f64>,
    time_wait_until_s: Option<f64>,
    resets: SideCounts<bool>,
    client_conn: Option<u64>,
    server_conn: Option<u64>,
    client_netns: Option<u32>,
    server_netns: Option<u32>,
    preexisting: bool,
    incomplete: bool,
    role_guessed: bool,
}

#[derive(Serialize)]
struct SideCounts<T> {
    client: T,
    server: T,
}

impl<T: Copy> SideCounts<T> {
    fn of(values: [T; 2]) -> Self {
        Self {
            client: values[0],
            server: values[1],
        }
    }
}

/// One `--connections` row as a JSON object (no trailing newline).
pub fn write_connection_json(out: &mut impl Write, row: &ConnectionRow) -> io::Result<()> {
    let time_wait_from = row.time_wait_ns.iter().flatten().min().copied();
    let json = JsonConnection {
        conn: row.conn,
        client: row.client.to_string(),
        server: row.server.to_string(),
        closed_first: row.verdict.closed_first.name(),
        how: row.verdict.how.map(CloseHow::name),
        lifetime_ms: row.lifetime_ns().map(|ns| round3(ns as f64 / 1e6)),
        start_s: row.start_ns.map(|ns| round3(secs(ns) * 1000.0) / 1000.0),
        end_s: row.end_ns.map(|ns| round3(secs(ns) * 1000.0) / 1000.0),
        client_pid: row.client_owner.map(|t| t.pid),
        client_comm: row.client_owner.as_ref().map(|t| t.comm.as_str()),
        server_pid: row.server_owner.map(|t| t.pid),
        server_comm: row.server_owner.as_ref().map(|t| t.comm.as_str()),
        time_wait: time_wait_name(row.time_wait()),
        time_wait_from_s: time_wait_from.map(|ns| round3(secs(ns))),
        time_wait_until_s: time_wait_from.map(|ns| round3(secs(ns + TIME_WAIT_NS))),
        resets: SideCounts::of(row.resets),
        client_conn: row.client_conn,
        server_conn: row.server_conn,
        client_netns: row.client_netns,
        server_netns: row.server_netns,
        preexisting: row.preexisting,
        incomplete: row.incomplete,
        role_guessed: row.role_guessed,
    };
    serde_json::to_writer(out, &json).map_err(io::Error::other)
}

fn pair_json(pair: &PairReport, end_snapshot: bool, rule: &LoopRule) -> Value {
    let s = &pair.stats;
    let by = |first: ClosedFirst| {
        let counts = s.closed_by[first.index()];
        let mut map = serde_json::Map::new();
        for how in CloseHow::ALL {
            map.insert(how.name().to_owned(), json!(counts[how.index()]));
        }
        Value::Object(map)
    };
    let ms = |v: Option<f64>| v.map(round3);
    json!({
        "client": s.key.client.to_string(),
        "server": s.key.server.to_string(),
        "connections": s.connections,
        "preexisting": s.preexisting,
        "incomplete": s.incomplete,
        "closed_first": {
            "client": s.closed_first[ClosedFirst::Client.index()],
            "server": s.closed_first[ClosedFirst::Server.index()],
            "simultaneous": s.closed_first[ClosedFirst::Simultaneous.index()],
            "unknown": s.closed_first[ClosedFirst::Unknown.index()],
            "open": s.closed_first[ClosedFirst::Open.index()],
        },
        "closed_by": {
            "client": by(ClosedFirst::Client),
            "server": by(ClosedFirst::Server),
            "simultaneous": by(ClosedFirst::Simultaneous),
        },
        "resets": SideCounts::of(s.resets),
        "refused": s.refused,
        "timed_out": s.timed_out,
        "median_lifetime_ms": ms(s.lifetime.quantile_ms(0.5)),
        "p99_lifetime_ms": ms(s.lifetime.quantile_ms(0.99)),
        "server_close_p99_ms": ms(s.server_close_delay.quantile_ms(0.99)),
        "connects_per_s": round3(s.connects_per_s()),
        "first_connect_s": s.first_connect_ns.map(|ns| round3(secs(ns))),
        "last_connect_s": s.last_connect_ns.map(|ns| round3(secs(ns))),
        "rejected": s.rejected,
        "reconnect_loop": pair.reconnect_loop.is_some(),
        "reconnect_loop_reason": pair.reconnect_loop.as_ref().map(|e| loop_reason(e, rule)),
        "verdict": pair_verdict(pair, end_snapshot),
        "time_wait": SideCounts::of(s.time_wait_live),
        "time_wait_peak": SideCounts::of(s.time_wait_peak),
        "time_wait_kernel": end_snapshot.then(|| SideCounts::of(s.time_wait_observed)),
    })
}

/// The JSON document without `connections` and `pairs`, which are streamed (a trace
/// can hold hundreds of thousands of pairs).
pub fn json_document(trace: &TraceInfo, analysis: &Analysis, rule: &LoopRule) -> Value {
    let warnings: Vec<String> = verdict_lines(trace, analysis)
        .into_iter()
        .filter(|(line, alarm)| {
            *alarm && !line.contains("reconnect loop") && !line.starts_with("CLOSE_WAIT")
        })
        .map(|(line, _)| line)
        .collect();
    json!({
        "trace": {
            "file": trace.file,
            "events": analysis.events,
            "lost": analysis.lost,
            "duration_s": round3(secs(analysis.end_ns)),
            "host": trace.host,
            "kernel": trace.kernel,
            "start_unix_ns": trace.start_unix_ns,
            "stop_reason": trace.stop_reason,
            "gaps": analysis.gaps.iter().map(|g| json!({
                "from_s": round3(secs(g.from_ns)),
                "to_s": round3(secs(g.to_ns)),
                "lost": g.lost,
                "cause": g.cause.name(),
            })).collect::<Vec<_>>(),
            "more_gaps": analysis.more_gaps,
            "missing_tracepoints": trace.missing_tracepoints,
            "damage": trace.damage,
            "end_snapshot": analysis.end_snapshot,
            "since_s": trace.window.since_ns.map(|ns| round3(secs(ns))),
            "until_s": trace.window.until_ns.map(|ns| round3(secs(ns))),
        },
        "incomplete": analysis.incomplete() || !trace.damage.is_empty(),
        "warnings": warnings,
        "connections_counted": analysis.connections,
        "reconnect_loop_rule": {
            "short_ms": rule.short.as_millis() as u64,
            "min_run": rule.min_run,
            "max_gap_s": rule.max_gap.as_secs_f64(),
            "min_share": rule.min_share,
        },
        "close_wait": analysis.close_wait.iter().map(|l| json!({
            "pid": l.owner.map(|t| t.pid),
            "comm": l.owner.map(|t| t.comm.to_string()),
            "local": l.local.to_string(),
            "peer": l.peer.to_string(),
            "age_s": round3(secs(l.age_ns)),
            "age_at_least": l.at_least,
            "netns": l.netns,
            "conn": l.conn,
        })).collect::<Vec<_>>(),
        "close_wait_closed_late": analysis.close_wait_closed_late,
        "close_wait_threshold_s": secs(trace.close_wait_ns),
    })
}

/// Writes the JSON document: after an already written `{"connections":[...`
/// (`after_connections`), or whole.
pub fn write_json(
    out: &mut impl Write,
    trace: &TraceInfo,
    analysis: &Analysis,
    rule: &LoopRule,
    after_connections: bool,
) -> io::Result<()> {
    let document = json_document(trace, analysis, rule);
    let Value::Object(members) = document else {
        return Err(io::Error::other("the report is not a JSON object"));
    };
    out.write_all(if after_connections { b"]," } else { b"{" })?;
    for (key, value) in &members {
        serde_json::to_writer(&mut *out, key).map_err(io::Error::other)?;
        out.write_all(b":")?;
        serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
        out.write_all(b",")?;
    }
    out.write_all(b"\"pairs\":[")?;
    for (i, pair) in analysis.pairs.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &pair_json(pair, analysis.end_snapshot, rule))
            .map_err(io::Error::other)?;
    }
    out.write_all(b"]}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::PairKey;

    #[test]
    fn fins_followed_by_resets_are_named() {
        let mut stats = PairStats::new(PairKey::new(
            "10.0.0.2".parse().unwrap(),
            "10.0.0.1:2181".parse().unwrap(),
        ));
        let mut by = [0; 5];
        by[CloseHow::Fin.index()] = 34;
        stats.fin_then_rst = [0, 28];
        assert_eq!(
            rst_after_fin_words(&stats, Side::Server, &by),
            " (28 of the FINs then followed by an RST)"
        );
        stats.fin_then_rst = [0, 34];
        assert_eq!(
            rst_after_fin_words(&stats, Side::Server, &by),
            " (each then followed by an RST)"
        );
        // RSTs that were the close itself are not "after a FIN" (see
        // `PairStats::add`: only FIN closes that then reset are counted).
        by[CloseHow::Rst.index()] = 10;
        stats.fin_then_rst = [0, 0];
        stats.resets = [0, 10];
        assert_eq!(rst_after_fin_words(&stats, Side::Server, &by), "");
        assert_eq!(rst_after_fin_words(&stats, Side::Client, &by), "");
    }
}
