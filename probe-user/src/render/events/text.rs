//! Events as aligned text lines, like tcpstates, with owners and connection ids.

use std::io::{self, Write};

use crate::{
    model::{Gap, GapCause, ResetReason, Task, TraceEvent, Workload},
    owner::{Candidates, Owner},
    render::{
        address::EndpointText,
        events::{EventSocket, errno_name},
        format::secs,
        text::clean,
        workload::text_label,
    },
};

/// How the text view shows time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Wall-clock time of day (UTC), like tcpdump: what application logs show.
    WallClock { start_unix_ns: u64 },
    /// Seconds since the trace started.
    Relative,
}

impl Clock {
    fn format(self, ts_ns: u64) -> String {
        match self {
            Self::WallClock { start_unix_ns } => {
                let ns = start_unix_ns.saturating_add(ts_ns);
                let day = ns % 86_400_000_000_000;
                format!(
                    "{:02}:{:02}:{:02}.{:06}",
                    day / 3_600_000_000_000,
                    day / 60_000_000_000 % 60,
                    day / 1_000_000_000 % 60,
                    day / 1_000 % 1_000_000
                )
            }
            Self::Relative => format!("{:.6}", ts_ns as f64 / 1e9),
        }
    }
}

/// `2026-11-25 10:16:03 UTC` from nanoseconds since the Unix epoch.
pub fn utc_datetime(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

/// What the first line of the text view says: where and when the traces were recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventsHeader {
    pub hosts: Vec<HeaderHost>,
    /// Wall-clock time of the replay's time 0.
    pub start_unix_ns: u64,
}

/// One host in [`EventsHeader`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderHost {
    pub name: String,
    pub kernel: String,
    /// How its clock was lined up with the others' (several hosts only).
    pub clock: Option<String>,
}

impl EventsHeader {
    fn several(&self) -> bool {
        self.hosts.len() > 1
    }
}

/// The two header lines of the text view: where and when the traces were recorded,
/// and the column names.
pub fn write_text_header(
    out: &mut impl Write,
    header: &EventsHeader,
    clock: Clock,
) -> io::Result<()> {
    let hosts: Vec<String> = header
        .hosts
        .iter()
        .map(|h| match &h.clock {
            Some(clock) => format!(
                "{} ({}, {})",
                clean(&h.name),
                clean(&h.kernel),
                clean(clock)
            ),
            None => format!("{} ({})", clean(&h.name), clean(&h.kernel)),
        })
        .collect();
    let when = if header.several() {
        "; replay starts"
    } else {
        ", recording started"
    };
    writeln!(
        out,
        "# {}{when} {}",
        hosts.join(", "),
        utc_datetime(header.start_unix_ns)
    )?;
    writeln!(out, "{}", text_header(clock, header.several()))
}

/// The width of the EVENT column: the longest event there is, `RST sent
/// (TCP_INVALID_ACK_SEQUENCE)` (a test checks every one fits).
const EVENT_WIDTH: usize = 35;

/// Column header for [`write_text`]; `hosts`: with a HOST column.
pub fn text_header(clock: Clock, hosts: bool) -> String {
    let time = match clock {
        Clock::WallClock { .. } => "TIME (UTC)",
        Clock::Relative => "TIME (s)",
    };
    let host = if hosts {
        format!(" {:<12}", "HOST")
    } else {
        String::new()
    };
    format!(
        "{time:<15}{host} {:>6}  {:<10}  {:<22} {:<22} {:<EVENT_WIDTH$} {:>7} COMM",
        "CONN", "NETNS", "LOCAL", "REMOTE", "EVENT", "PID"
    )
}

/// The HOST column, when there is one.
fn host_column(host: Option<&str>) -> String {
    host.map_or_else(String::new, |h| {
        let h: String = clean(h).chars().take(12).collect();
        format!(" {h:<12}")
    })
}

/// `    PID COMM`, or dashes when the owner is unknown.
fn who(task: Option<&Task>) -> String {
    match task {
        Some(t) => format!("{:>7} {}", t.pid, clean(&t.comm.as_str())),
        None => format!("{:>7} -", "-"),
    }
}

/// `      - nginx (one of 3)`: several processes may own the socket.
fn one_of(candidates: &Candidates) -> String {
    let (count, name) = count_and_name(candidates);
    format!("{:>7} {name} (one of {count})", "-")
}

/// `      - nginx (3 hold it)`: several processes hold a snapshot socket.
fn holders_of(holders: &Candidates) -> String {
    let (count, name) = count_and_name(holders);
    format!("{:>7} {name} ({count} hold it)", "-")
}

fn count_and_name(candidates: &Candidates) -> (u64, String) {
    let count = candidates.count();
    let name = candidates
        .comm()
        .map_or_else(|| "-".to_owned(), |comm| clean(&comm.as_str()).into_owned());
    (count, name)
}

/// Writes one event as an aligned text line, ending with its socket's workload when
/// known; a gap as a line of its own kind. `host`: the event's host, for the HOST
/// column of a replay of several hosts.
pub fn write_text(
    out: &mut impl Write,
    event: &TraceEvent,
    owner: Option<&Owner>,
    container: Option<&Workload>,
    clock: Clock,
    host: Option<&str>,
) -> io::Result<()> {
    let Some((socket, what, who)) = described(event, owner) else {
        if let TraceEvent::Lost(gap) = event {
            return write_gap(out, gap, clock, host);
        }
        return Ok(());
    };
    let workload = container.map_or_else(String::new, |w| format!("  [{}]", text_label(w)));
    writeln!(
        out,
        "{:<15}{} {:>6}  {:<10}  {:<22} {:<22} {:<EVENT_WIDTH$} {who}{workload}",
        clock.format(event.ts_ns()),
        host_column(host),
        socket
            .conn
            .map_or_else(|| "-".to_owned(), |c| c.to_string()),
        socket.netns,
        EndpointText(socket.tuple.local),
        EndpointText(socket.tuple.remote),
        what,
    )
}

/// An event's socket, what happened (the EVENT column) and who did it (the last
/// columns); `None` for a gap.
fn described(event: &TraceEvent, owner: Option<&Owner>) -> Option<(EventSocket, String, String)> {
    let attributed = owner.and_then(Owner::task);
    let (socket, what, task) = match event {
        TraceEvent::Transition(t) => (
            EventSocket::of_conn(&t.conn),
            format!("{} -> {}", t.old, t.new),
            attributed,
        ),
        // A snapshot names the owner `/proc` found (or how many hold the socket).
        TraceEvent::Snapshot(s) => {
            let when = if s.at_end { "at end:" } else { "existing:" };
            let what = format!("{when} {}", s.state);
            if let Some(first) = s.owner.filter(|_| !s.shared_with.is_empty()) {
                let holders = Candidates::holders_of(&first, &s.shared_with);
                return Some((EventSocket::of_conn(&s.conn), what, holders_of(&holders)));
            }
            (EventSocket::of_conn(&s.conn), what, s.owner.as_ref())
        }
        TraceEvent::ResetSent(r) => (
            EventSocket::of(&r.socket),
            format!("RST sent ({})", r.reason.map_or("-", ResetReason::name)),
            attributed,
        ),
        TraceEvent::ResetReceived(r) => (
            EventSocket::of_conn(&r.conn),
            "RST received".to_owned(),
            attributed,
        ),
        TraceEvent::SocketError(e) => (
            EventSocket::of(&e.socket),
            format!("error {}", errno_name(e.errno)),
            attributed,
        ),
        TraceEvent::Lost(_) => return None,
    };
    let who = match owner.and_then(Owner::candidates) {
        Some(candidates) if task.is_none() => one_of(candidates),
        _ => who(task),
    };
    Some((socket, what, who))
}

fn write_gap(out: &mut impl Write, gap: &Gap, clock: Clock, host: Option<&str>) -> io::Result<()> {
    let lost = if gap.cause == GapCause::MissingPart {
        "a part of the recording missing,".to_owned()
    } else {
        format!("{} events lost", gap.lost)
    };
    writeln!(
        out,
        "{:<15}{} -- {lost} between {:.6} and {:.6} s ({}) --",
        clock.format(gap.to_ns),
        host_column(host),
        secs(gap.from_ns),
        secs(gap.to_ns),
        gap.cause.name()
    )
}
