//! Events as JSON lines: one object per event.

use std::{
    borrow::Cow,
    io::{self, Write},
};

use serde::Serialize;

use crate::{
    model::{Gap, ResetReason, Task, TraceEvent},
    owner::{Owner, OwnerSource},
    render::events::{EventSocket, errno_name},
};

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
    comm: Option<Cow<'a, str>>,
    owner_source: Option<&'static str>,
    /// Resets only: `null` when the kernel gives no reason (before 6.10).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Option<&'static str>>,
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

impl<'a> JsonEvent<'a> {
    /// The members every socket event has.
    fn base(
        kind: &'static str,
        ts_ns: u64,
        socket: EventSocket,
        owner: Option<(&'a Task, OwnerSource)>,
    ) -> Self {
        let tuple = socket.tuple;
        Self {
            kind,
            ts_ns,
            conn: socket.conn,
            netns: socket.netns,
            cgroup: socket.cgroup,
            family: if tuple.is_ipv6() { "ipv6" } else { "ipv4" },
            laddr: tuple.local.ip().to_string(),
            lport: tuple.local.port(),
            raddr: tuple.remote.ip().to_string(),
            rport: tuple.remote.port(),
            old: None,
            new: None,
            state: None,
            pid: owner.map(|(task, _)| task.pid),
            tid: owner.map(|(task, _)| task.tid),
            comm: owner.map(|(task, _)| task.comm.as_str()),
            owner_source: owner.map(|(_, source)| source.name()),
            reason: None,
            errno: None,
            error: None,
            inode: None,
            timer_ms: None,
            at_end: None,
        }
    }
}

/// One line: an event about a socket, or a gap.
#[derive(Serialize)]
#[serde(untagged)]
#[expect(
    clippy::large_enum_variant,
    reason = "made for one line and written at once, never stored"
)]
enum JsonLine<'a> {
    Event(JsonEvent<'a>),
    Gap(JsonGap),
}

impl<'a> JsonLine<'a> {
    /// `event` with its owner: the attributed one, or for a snapshot the one `/proc`
    /// named.
    fn of(event: &'a TraceEvent, owner: Option<&'a Owner>) -> Self {
        let owner = owner.map(|o| (&o.task, o.source));
        let base = JsonEvent::base;
        Self::Event(match event {
            TraceEvent::Transition(t) => JsonEvent {
                old: Some(t.old.name()),
                new: Some(t.new.name()),
                ..base("transition", t.ts_ns, EventSocket::of_conn(&t.conn), owner)
            },
            TraceEvent::Snapshot(s) => {
                let found = s.owner.as_ref().map(|t| (t, OwnerSource::Snapshot));
                JsonEvent {
                    state: Some(s.state.name()),
                    inode: Some(s.inode),
                    timer_ms: s.timer_ms,
                    at_end: Some(s.at_end),
                    ..base("snapshot", s.ts_ns, EventSocket::of_conn(&s.conn), found)
                }
            }
            TraceEvent::ResetSent(r) => JsonEvent {
                state: r.state.map(|s| s.name()),
                reason: Some(r.reason.map(ResetReason::name)),
                ..base("reset_sent", r.ts_ns, EventSocket::of(&r.socket), owner)
            },
            TraceEvent::ResetReceived(r) => base(
                "reset_received",
                r.ts_ns,
                EventSocket::of_conn(&r.conn),
                owner,
            ),
            TraceEvent::SocketError(e) => JsonEvent {
                errno: Some(e.errno),
                error: Some(errno_name(e.errno)),
                ..base("socket_error", e.ts_ns, EventSocket::of(&e.socket), owner)
            },
            TraceEvent::Lost(gap) => return Self::Gap(JsonGap::of(gap)),
        })
    }
}

impl JsonGap {
    fn of(gap: &Gap) -> Self {
        Self {
            kind: "lost",
            ts_ns: gap.to_ns,
            from_ns: gap.from_ns,
            to_ns: gap.to_ns,
            lost: gap.lost,
            cause: gap.cause.name(),
            cpu: gap.cpu,
        }
    }
}

/// Writes one event as a JSON object on its own line.
pub fn write_json(
    out: &mut impl Write,
    event: &TraceEvent,
    owner: Option<&Owner>,
) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &JsonLine::of(event, owner))?;
    out.write_all(b"\n")
}
