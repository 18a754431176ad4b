//! Events as JSON lines: one object per event.

use std::{
    borrow::Cow,
    io::{self, Write},
};

use serde::Serialize;

use crate::{
    model::{Gap, ResetReason, SnapshotSocket, TcpCounters, TraceEvent, Workload},
    owner::{Candidates, Owner, OwnerSource},
    render::{
        address::{ip_value, port_value},
        events::{EventSocket, errno_name},
        workload::JsonContainer,
    },
};

#[derive(Serialize)]
struct JsonEvent<'a> {
    kind: &'static str,
    ts_ns: u64,
    host: &'a str,
    conn: Option<u64>,
    netns: u32,
    cgroup: u64,
    family: &'static str,
    /// The tuple: null where the kernel gave no address or port (render::address).
    laddr: Option<String>,
    lport: Option<u16>,
    raddr: Option<String>,
    rport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    pid: Option<u32>,
    tid: Option<u32>,
    comm: Option<Cow<'a, str>>,
    /// When the owner is one of several processes (a shared listener's child before
    /// its own syscall): their pids; `pid` is then null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pids: Option<Vec<u32>>,
    owner_source: Option<&'static str>,
    /// The socket's counters, on the transitions that carry them (null: not known).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_sent: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_acked: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_received: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segs_in: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segs_out: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retransmits: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    srtt_us: Option<Option<u32>>,
    /// The socket's container or pod, when the trace names it.
    container: Option<JsonContainer<'a>>,
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
struct JsonGap<'a> {
    kind: &'static str,
    ts_ns: u64,
    host: &'a str,
    from_ns: u64,
    to_ns: u64,
    lost: u64,
    cause: &'static str,
    cpu: Option<u32>,
}

/// Who an event's socket belongs to, as the JSON says it.
struct JsonOwner<'a> {
    pid: Option<u32>,
    tid: Option<u32>,
    comm: Option<Cow<'a, str>>,
    /// Every process it may be (or, for a snapshot socket, that holds it).
    pids: Option<Vec<u32>>,
    source: OwnerSource,
}

impl<'a> JsonOwner<'a> {
    fn of(owner: &'a Owner) -> Self {
        let task = owner.task();
        let candidates = owner.candidates();
        Self {
            pid: task.map(|t| t.pid),
            tid: task.map(|t| t.tid),
            comm: task
                .map(|t| &t.comm)
                .or_else(|| candidates.and_then(Candidates::comm))
                .map(|c| c.as_str()),
            pids: candidates.map(|c| c.pids().to_vec()),
            source: owner.source,
        }
    }

    /// The holders `/proc` named for a snapshot socket: one process, or several (then
    /// no single pid).
    fn of_snapshot(s: &'a SnapshotSocket) -> Option<Self> {
        let task = s.owner.as_ref()?;
        if s.shared_with.is_empty() {
            return Some(Self {
                pid: Some(task.pid),
                tid: Some(task.tid),
                comm: Some(task.comm.as_str()),
                pids: None,
                source: OwnerSource::Snapshot,
            });
        }
        let holders = Candidates::holders_of(task, &s.shared_with);
        Some(Self {
            pid: None,
            tid: None,
            comm: s.shared_with.same_comm().then(|| task.comm.as_str()),
            pids: Some(holders.pids().to_vec()),
            source: OwnerSource::Snapshot,
        })
    }
}

impl<'a> JsonEvent<'a> {
    /// The counters of a transition that carries them.
    fn with_counters(mut self, counters: Option<&TcpCounters>) -> Self {
        if let Some(c) = counters {
            self.bytes_sent = Some(c.bytes_sent());
            self.bytes_acked = Some(c.bytes_acked());
            self.bytes_received = Some(c.bytes_received());
            self.segs_in = Some(c.segs_in());
            self.segs_out = Some(c.segs_out());
            self.retransmits = Some(c.retransmits());
            self.srtt_us = Some(c.srtt_us());
        }
        self
    }

    /// The members every socket event has.
    fn base(
        (kind, ts_ns, host): (&'static str, u64, &'a str),
        socket: EventSocket,
        owner: Option<JsonOwner<'a>>,
        container: Option<&'a Workload>,
    ) -> Self {
        let tuple = socket.tuple;
        Self {
            kind,
            ts_ns,
            host,
            conn: socket.conn,
            netns: socket.netns,
            cgroup: socket.cgroup,
            family: if tuple.is_ipv6() { "ipv6" } else { "ipv4" },
            laddr: ip_value(tuple.local.ip()),
            lport: port_value(tuple.local.port()),
            raddr: ip_value(tuple.remote.ip()),
            rport: port_value(tuple.remote.port()),
            old: None,
            new: None,
            state: None,
            pid: owner.as_ref().and_then(|o| o.pid),
            tid: owner.as_ref().and_then(|o| o.tid),
            owner_source: owner.as_ref().map(|o| o.source.name()),
            pids: owner.as_ref().and_then(|o| o.pids.clone()),
            comm: owner.and_then(|o| o.comm),
            bytes_sent: None,
            bytes_acked: None,
            bytes_received: None,
            segs_in: None,
            segs_out: None,
            retransmits: None,
            srtt_us: None,
            container: JsonContainer::of_option(container),
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
    Gap(JsonGap<'a>),
}

impl<'a> JsonLine<'a> {
    /// `event` (of `host`) with its owner (the attributed one, or for a snapshot the one
    /// `/proc` named) and its socket's workload.
    fn of(
        event: &'a TraceEvent,
        owner: Option<&'a Owner>,
        host: &'a str,
        container: Option<&'a Workload>,
    ) -> Self {
        let owner = owner.map(JsonOwner::of);
        let base = |what, socket, owner| JsonEvent::base(what, socket, owner, container);
        Self::Event(match event {
            TraceEvent::Transition(t) => JsonEvent {
                old: Some(t.old.name()),
                new: Some(t.new.name()),
                ..base(
                    ("transition", t.ts_ns, host),
                    EventSocket::of_conn(&t.conn),
                    owner,
                )
            }
            .with_counters(t.counters.as_ref()),
            TraceEvent::Snapshot(s) => {
                let found = JsonOwner::of_snapshot(s);
                JsonEvent {
                    state: Some(s.state.name()),
                    inode: Some(s.inode),
                    timer_ms: s.timer_ms,
                    at_end: Some(s.at_end),
                    ..base(
                        ("snapshot", s.ts_ns, host),
                        EventSocket::of_conn(&s.conn),
                        found,
                    )
                }
            }
            TraceEvent::ResetSent(r) => JsonEvent {
                state: r.state.map(|s| s.name()),
                reason: Some(r.reason.map(ResetReason::name)),
                ..base(
                    ("reset_sent", r.ts_ns, host),
                    EventSocket::of(&r.socket),
                    owner,
                )
            },
            TraceEvent::ResetReceived(r) => base(
                ("reset_received", r.ts_ns, host),
                EventSocket::of_conn(&r.conn),
                owner,
            ),
            TraceEvent::SocketError(e) => JsonEvent {
                errno: Some(e.errno),
                error: Some(errno_name(e.errno)),
                ..base(
                    ("socket_error", e.ts_ns, host),
                    EventSocket::of(&e.socket),
                    owner,
                )
            },
            TraceEvent::Lost(gap) => return Self::Gap(JsonGap::of(gap, host)),
        })
    }
}

impl<'a> JsonGap<'a> {
    fn of(gap: &Gap, host: &'a str) -> Self {
        Self {
            kind: "lost",
            ts_ns: gap.to_ns,
            host,
            from_ns: gap.from_ns,
            to_ns: gap.to_ns,
            lost: gap.lost,
            cause: gap.cause.name(),
            cpu: gap.cpu,
        }
    }
}

/// Writes one event (of `host`) as a JSON object on its own line, with its socket's
/// workload.
pub fn write_json(
    out: &mut impl Write,
    event: &TraceEvent,
    owner: Option<&Owner>,
    host: &str,
    container: Option<&Workload>,
) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &JsonLine::of(event, owner, host, container))?;
    out.write_all(b"\n")
}
