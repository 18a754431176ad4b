//! `replay --events`: one line per event, as text (like tcpstates, plus owners and
//! connection ids) or as JSON lines.

use std::{
    io::{self, Write},
    net::SocketAddr,
};

use serde::Serialize;

use crate::{
    model::{Conn, Gap, SocketRef, SocketTuple, Task, TraceEvent},
    owner::Owner,
    trace::TraceMeta,
};

/// The Linux name of an errno that TCP reports.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        104 => "ECONNRESET",
        111 => "ECONNREFUSED",
        110 => "ETIMEDOUT",
        32 => "EPIPE",
        113 => "EHOSTUNREACH",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        71 => "EPROTO",
        _ => "E?",
    }
}

fn family(tuple: &SocketTuple) -> &'static str {
    if tuple.is_ipv6() { "ipv6" } else { "ipv4" }
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    kind: &'static str,
    ts_ns: u64,
    conn: Option<u64>,
    netns: u32,
    cgroup: u64,
    family: &'static str,
    laddr: String,
    lport: u16,
    raddr: String,
    rport: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    pid: Option<u32>,
    tid: Option<u32>,
    comm: Option<std::borrow::Cow<'a, str>>,
    owner_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timer_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_end: Option<bool>,
}

#[derive(Serialize)]
struct JsonGap {
    kind: &'static str,
    ts_ns: u64,
    from_ns: u64,
    to_ns: u64,
    lost: u64,
    cause: &'static str,
    cpu: Option<u32>,
}

fn socket_of(socket: &SocketRef) -> (Option<u64>, u32, u64, SocketTuple) {
    match socket {
        SocketRef::Conn(conn) => (
            Some(conn.id),
            conn.scope.netns,
            conn.scope.cgroup,
            conn.tuple,
        ),
        SocketRef::Unmatched { scope, tuple } => (None, scope.netns, scope.cgroup, *tuple),
    }
}

fn base<'a>(
    kind: &'static str,
    ts_ns: u64,
    socket: (Option<u64>, u32, u64, SocketTuple),
    owner: Option<&'a Owner>,
) -> JsonEvent<'a> {
    let (conn, netns, cgroup, tuple) = socket;
    JsonEvent {
        kind,
        ts_ns,
        conn,
        netns,
        cgroup,
        family: family(&tuple),
        laddr: tuple.local.ip().to_string(),
        lport: tuple.local.port(),
        raddr: tuple.remote.ip().to_string(),
        rport: tuple.remote.port(),
        old: None,
        new: None,
        state: None,
        pid: owner.map(|o| o.task.pid),
        tid: owner.map(|o| o.task.tid),
        comm: owner.map(|o| o.task.comm.as_str()),
        owner_source: owner.map(|o| o.source.name()),
        reason: None,
        errno: None,
        error: None,
        inode: None,
        timer_ms: None,
        at_end: None,
    }
}

fn conn_socket(conn: &Conn) -> (Option<u64>, u32, u64, SocketTuple) {
    (
        Some(conn.id),
        conn.scope.netns,
        conn.scope.cgroup,
        conn.tuple,
    )
}

/// Writes one event as a JSON object on its own line.
pub fn write_json(
    out: &mut impl Write,
    event: &TraceEvent,
    owner: Option<&Owner>,
) -> io::Result<()> {
    let snapshot_owner;
    let json = match event {
        TraceEvent::Transition(t) => JsonEvent {
            old: Some(t.old.name()),
            new: Some(t.new.name()),
            ..base("transition", t.ts_ns, conn_socket(&t.conn), owner)
        },
        TraceEvent::Snapshot(s) => {
            snapshot_owner = s.owner.map(|task| Owner {
                task,
                source: crate::owner::OwnerSource::Snapshot,
            });
            JsonEvent {
                state: Some(s.state.name()),
                inode: Some(s.inode),
                timer_ms: s.timer_ms,
                at_end: Some(s.at_end),
                ..base(
                    "snapshot",
                    s.ts_ns,
                    conn_socket(&s.conn),
                    snapshot_owner.as_ref(),
                )
            }
        }
        TraceEvent::ResetSent(r) => JsonEvent {
            state: r.state.map(|s| s.name()),
            reason: Some(r.reason.name()),
            ..base("reset_sent", r.ts_ns, socket_of(&r.socket), owner)
        },
        TraceEvent::ResetReceived(r) => {
            base("reset_received", r.ts_ns, conn_socket(&r.conn), owner)
        }
        TraceEvent::SocketError(e) => JsonEvent {
            errno: Some(e.errno),
            error: Some(errno_name(e.errno)),
            ..base("socket_error", e.ts_ns, socket_of(&e.socket), owner)
        },
        TraceEvent::Lost(gap) => {
            serde_json::to_writer(&mut *out, &gap_json(gap)).map_err(io::Error::other)?;
            return out.write_all(b"\n");
        }
    };
    serde_json::to_writer(&mut *out, &json).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

fn gap_json(gap: &Gap) -> JsonGap {
    JsonGap {
        kind: "lost",
        ts_ns: gap.to_ns,
        from_ns: gap.from_ns,
        to_ns: gap.to_ns,
        lost: gap.lost,
        cause: gap.cause.name(),
        cpu: gap.cpu,
    }
}

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

/// The two header lines of the text view: where and when the trace was recorded, and
/// the column names.
pub fn write_text_header(out: &mut impl Write, meta: &TraceMeta, clock: Clock) -> io::Result<()> {
    writeln!(
        out,
        "# {} ({}), recording started {}",
        meta.hostname,
        meta.kernel,
        utc_datetime(meta.start_unix_ns)
    )?;
    writeln!(out, "{}", text_header(clock))
}

/// Column header for [`write_text`].
pub fn text_header(clock: Clock) -> String {
    let time = match clock {
        Clock::WallClock { .. } => "TIME (UTC)",
        Clock::Relative => "TIME (s)",
    };
    format!(
        "{time:<15} {:>6}  {:<10}  {:<22} {:<22} {:<24} {:>7} COMM",
        "CONN", "NETNS", "LOCAL", "REMOTE", "EVENT", "PID"
    )
}
fn endpoint(addr: SocketAddr) -> String {
    addr.to_string()
}

fn who(owner: Option<&Owner>) -> String {
    match owner {
        Some(o) => format!("{:>7} {}", o.task.pid, o.task.comm),
        None => format!("{:>7} -", "-"),
    }
}

fn who_task(task: Option<&Task>) -> String {
    match task {
        Some(t) => format!("{:>7} {}", t.pid, t.comm),
        None => format!("{:>7} -", "-"),
    }
}

/// Writes one event as an aligned text line.
pub fn write_text(
    out: &mut impl Write,
    event: &TraceEvent,
    owner: Option<&Owner>,
    clock: Clock,
) -> io::Result<()> {
    let secs = |ns: u64| ns as f64 / 1e9;
    let line = |out: &mut dyn Write,
                ts: u64,
                socket: (Option<u64>, u32, u64, SocketTuple),
                what: &str,
                who: String| {
        let (conn, netns, _, tuple) = socket;
        let conn = conn.map_or_else(|| "-".to_owned(), |c| c.to_string());
        writeln!(
            out,
            "{:<15} {:>6}  {:<10}  {:<22} {:<22} {:<24} {}",
            clock.format(ts),
            conn,
            netns,
            endpoint(tuple.local),
            endpoint(tuple.remote),
            what,
            who
        )
    };
    match event {
        TraceEvent::Transition(t) => line(
            out,
            t.ts_ns,
            conn_socket(&t.conn),
            &format!("{} -> {}", t.old, t.new),
            who(owner),
        ),
        TraceEvent::Snapshot(s) => line(
            out,
            s.ts_ns,
            conn_socket(&s.conn),
            &format!(
                "{} {}",
                if s.at_end { "at end:" } else { "existing:" },
                s.state
            ),
            who_task(s.owner.as_ref()),
        ),
        TraceEvent::ResetSent(r) => line(
            out,
            r.ts_ns,
            socket_of(&r.socket),
            &format!("RST sent ({})", r.reason.name()),
            who(owner),
        ),
        TraceEvent::ResetReceived(r) => line(
            out,
            r.ts_ns,
            conn_socket(&r.conn),
            "RST received",
            who(owner),
        ),
        TraceEvent::SocketError(e) => line(
            out,
            e.ts_ns,
            socket_of(&e.socket),
            &format!("error {}", errno_name(e.errno)),
            who(owner),
        ),
        TraceEvent::Lost(gap) => writeln!(
            out,
            "{:<15} -- {} events lost between {:.6} and {:.6} s ({}) --",
            clock.format(gap.to_ns),
            gap.lost,
            secs(gap.from_ns),
            secs(gap.to_ns),
            gap.cause.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{Comm, ExecContext, GapCause, Scope, TcpState, Transition},
        owner::OwnerSource,
    };

    fn transition() -> TraceEvent {
        TraceEvent::Transition(Transition {
            ts_ns: 1_500_000,
            conn: Conn {
                id: 17,
                scope: Scope {
                    netns: 4_026_532_177,
                    cgroup: 3,
                },
                tuple: SocketTuple {
                    local: "10.0.0.2:40000".parse().unwrap(),
                    remote: "10.0.0.1:2181".parse().unwrap(),
                },
            },
            old: TcpState::Close,
            new: TcpState::SynSent,
            context: ExecContext::Task,
            task: None,
        })
    }

    fn owner() -> Owner {
        Owner {
            task: Task {
                pid: 1234,
                tid: 1235,
                comm: Comm::from_str_lossy("zk\"Cli"),
            },
            source: OwnerSource::Task,
        }
    }

    #[test]
    fn json_lines_have_the_documented_keys() {
        let mut out = Vec::new();
        write_json(&mut out, &transition(), Some(&owner())).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["kind"], "transition");
        assert_eq!(value["ts_ns"], 1_500_000);
        assert_eq!(value["conn"], 17);
        assert_eq!(value["netns"], 4_026_532_177u64);
        assert_eq!(value["family"], "ipv4");
        assert_eq!(value["laddr"], "10.0.0.2");
        assert_eq!(value["lport"], 40000);
        assert_eq!(value["raddr"], "10.0.0.1");
        assert_eq!(value["rport"], 2181);
        assert_eq!(value["old"], "CLOSE");
        assert_eq!(value["new"], "SYN_SENT");
        assert_eq!(value["pid"], 1234);
        assert_eq!(value["comm"], "zk\"Cli");
        assert_eq!(value["owner_source"], "task");
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn unknown_owners_are_null() {
        let mut out = Vec::new();
        write_json(&mut out, &transition(), None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(value["pid"].is_null());
        assert!(value["comm"].is_null());
    }

    #[test]
    fn gaps_are_lost_records() {
        let mut out = Vec::new();
        let gap = TraceEvent::Lost(Gap {
            from_ns: 1,
            to_ns: 2,
            lost: 99,
            cpu: None,
            cause: GapCause::RingFull,
        });
        write_json(&mut out, &gap, None).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["kind"], "lost");
        assert_eq!(value["lost"], 99);
        assert_eq!(value["cause"], "ring_full");
        let mut text = Vec::new();
        write_text(&mut text, &gap, None, Clock::Relative).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("99 events lost"));
    }

    #[test]
    fn text_lines_show_the_owner_or_a_dash() {
        let mut out = Vec::new();
        write_text(&mut out, &transition(), Some(&owner()), Clock::Relative).unwrap();
        write_text(
            &mut out,
            &transition(),
            None,
            Clock::WallClock { start_unix_ns: 0 },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("CLOSE -> SYN_SENT"), "{text}");
        assert!(lines[0].ends_with("1234 zk\"Cli"), "{text}");
        assert!(lines[1].ends_with("- -"), "{text}");
        assert!(lines[0].starts_with("0.001500 "), "{text}");
        assert!(lines[1].starts_with("00:00:00.001500 "), "{text}");
        // Columns line up with the header.
        let header = text_header(Clock::Relative);
        assert_eq!(
            header.find("PID").unwrap() + 3,
            lines[0].find(" zk").unwrap()
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc_datetime(1_795_600_563_000_000_000),
            "2026-11-25 09:56:03 UTC"
        );
        assert_eq!(
            utc_datetime(951_782_400_000_000_000),
            "2000-02-29 00:00:00 UTC"
        );
    }
}
