//! `events.parquet`: one row per event, the columns of `replay --events --json` with
//! their proper types (times as UTC timestamps, ports as u16, states and other names as
//! dictionary strings), plus the host. Gaps fill the gap columns and leave the socket's
//! null. The socket's workload (`container` in JSON) is flattened into `pod_namespace`,
//! `pod`, `container`, `container_id` and `container_runtime`. The counters a
//! transition carries (`bytes_sent` ... `srtt_us`) come last.

use std::sync::Arc;

use arrow_array::{
    ArrayRef,
    builder::{
        BooleanBuilder, Int32Builder, StringBuilder, TimestampNanosecondBuilder, UInt16Builder,
        UInt32Builder, UInt64Builder,
    },
};

use crate::{
    model::{Comm, Gap, SnapshotSocket, Task, TcpCounters, TraceEvent, Workload},
    owner::{Candidates, Owner, OwnerSource},
    render::{
        address::{ip_value, port_value},
        events::{EventSocket, errno_name},
        parquet::{Columns, Names, wall_clock, workload::WorkloadColumns},
    },
};

fn names() -> Names {
    Names::new()
}

fn timestamps() -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::new().with_timezone("UTC")
}

/// Who an event's socket belongs to, as the columns say it: one task, or several
/// processes (then no pid, and their name only when they share one).
#[derive(Clone, Copy)]
struct EventOwner<'a> {
    task: Option<&'a Task>,
    comm: Option<&'a Comm>,
    source: OwnerSource,
}

impl<'a> EventOwner<'a> {
    fn of(owner: &'a Owner) -> Self {
        let task = owner.task();
        Self {
            task,
            comm: task
                .map(|t| &t.comm)
                .or_else(|| owner.candidates().and_then(Candidates::comm)),
            source: owner.source,
        }
    }

    /// The holders `/proc` named for a snapshot socket.
    fn of_snapshot(s: &'a SnapshotSocket) -> Option<Self> {
        let task = s.owner.as_ref()?;
        let alone = s.shared_with.is_empty();
        Some(Self {
            task: alone.then_some(task),
            comm: (alone || s.shared_with.same_comm()).then_some(&task.comm),
            source: OwnerSource::Snapshot,
        })
    }
}

/// The builders of `events.parquet`, in [`EventColumns::COLUMNS`] order.
pub struct EventColumns {
    start_unix_ns: u64,
    rows: usize,
    host: Names,
    kind: Names,
    time: TimestampNanosecondBuilder,
    ts_ns: UInt64Builder,
    conn: UInt64Builder,
    netns: UInt32Builder,
    cgroup: UInt64Builder,
    family: Names,
    laddr: StringBuilder,
    lport: UInt16Builder,
    raddr: StringBuilder,
    rport: UInt16Builder,
    old: Names,
    new: Names,
    state: Names,
    pid: UInt32Builder,
    tid: UInt32Builder,
    comm: StringBuilder,
    owner_source: Names,
    reason: Names,
    errno: Int32Builder,
    error: Names,
    inode: UInt32Builder,
    timer_ms: UInt32Builder,
    at_end: BooleanBuilder,
    gap_from: TimestampNanosecondBuilder,
    gap_to: TimestampNanosecondBuilder,
    lost: UInt64Builder,
    cause: Names,
    cpu: UInt32Builder,
    workload: WorkloadColumns,
    counters: CounterColumns,
}

/// A transition's `tcp_sock` counters: null on the other rows, and where the kernel
/// gave no value.
#[derive(Default)]
struct CounterColumns {
    bytes_sent: UInt64Builder,
    bytes_acked: UInt64Builder,
    bytes_received: UInt64Builder,
    segs_in: UInt32Builder,
    segs_out: UInt32Builder,
    retransmits: UInt32Builder,
    srtt_us: UInt32Builder,
}

impl CounterColumns {
    fn push(&mut self, counters: Option<&TcpCounters>) {
        self.bytes_sent
            .append_option(counters.and_then(TcpCounters::bytes_sent));
        self.bytes_acked
            .append_option(counters.and_then(TcpCounters::bytes_acked));
        self.bytes_received
            .append_option(counters.and_then(TcpCounters::bytes_received));
        self.segs_in
            .append_option(counters.and_then(TcpCounters::segs_in));
        self.segs_out
            .append_option(counters.and_then(TcpCounters::segs_out));
        self.retransmits
            .append_option(counters.and_then(TcpCounters::retransmits));
        self.srtt_us
            .append_option(counters.and_then(TcpCounters::srtt_us));
    }

    fn take(&mut self) -> [ArrayRef; 7] {
        [
            Arc::new(self.bytes_sent.finish()),
            Arc::new(self.bytes_acked.finish()),
            Arc::new(self.bytes_received.finish()),
            Arc::new(self.segs_in.finish()),
            Arc::new(self.segs_out.finish()),
            Arc::new(self.retransmits.finish()),
            Arc::new(self.srtt_us.finish()),
        ]
    }
}

/// What one row holds beyond the socket.
#[derive(Default)]
struct Extra<'a> {
    old: Option<&'static str>,
    new: Option<&'static str>,
    state: Option<&'static str>,
    owner: Option<EventOwner<'a>>,
    reason: Option<&'static str>,
    errno: Option<i32>,
    inode: Option<u32>,
    timer_ms: Option<u32>,
    at_end: Option<bool>,
}

impl EventColumns {
    /// Rows of a replay whose time 0 is `start_unix_ns`.
    pub fn new(start_unix_ns: u64) -> Self {
        Self {
            start_unix_ns,
            rows: 0,
            host: names(),
            kind: names(),
            time: timestamps(),
            ts_ns: UInt64Builder::new(),
            conn: UInt64Builder::new(),
            netns: UInt32Builder::new(),
            cgroup: UInt64Builder::new(),
            family: names(),
            laddr: StringBuilder::new(),
            lport: UInt16Builder::new(),
            raddr: StringBuilder::new(),
            rport: UInt16Builder::new(),
            old: names(),
            new: names(),
            state: names(),
            pid: UInt32Builder::new(),
            tid: UInt32Builder::new(),
            comm: StringBuilder::new(),
            owner_source: names(),
            reason: names(),
            errno: Int32Builder::new(),
            error: names(),
            inode: UInt32Builder::new(),
            timer_ms: UInt32Builder::new(),
            at_end: BooleanBuilder::new(),
            gap_from: timestamps(),
            gap_to: timestamps(),
            lost: UInt64Builder::new(),
            cause: names(),
            cpu: UInt32Builder::new(),
            workload: WorkloadColumns::default(),
            counters: CounterColumns::default(),
        }
    }

    /// One event of `host`, with the owner attribution gave it and its socket's
    /// workload.
    pub fn push(
        &mut self,
        event: &TraceEvent,
        owner: Option<&Owner>,
        host: &str,
        workload: Option<&Workload>,
    ) {
        let owner = owner.map(EventOwner::of);
        let (kind, socket, extra) = match event {
            TraceEvent::Transition(t) => (
                "transition",
                EventSocket::of_conn(&t.conn),
                Extra {
                    old: Some(t.old.name()),
                    new: Some(t.new.name()),
                    owner,
                    ..Extra::default()
                },
            ),
            TraceEvent::Snapshot(s) => (
                "snapshot",
                EventSocket::of_conn(&s.conn),
                Extra {
                    state: Some(s.state.name()),
                    owner: EventOwner::of_snapshot(s),
                    inode: Some(s.inode),
                    timer_ms: s.timer_ms,
                    at_end: Some(s.at_end),
                    ..Extra::default()
                },
            ),
            TraceEvent::ResetSent(r) => (
                "reset_sent",
                EventSocket::of(&r.socket),
                Extra {
                    state: r.state.map(|s| s.name()),
                    reason: r.reason.map(|reason| reason.name()),
                    owner,
                    ..Extra::default()
                },
            ),
            TraceEvent::ResetReceived(r) => (
                "reset_received",
                EventSocket::of_conn(&r.conn),
                Extra {
                    owner,
                    ..Extra::default()
                },
            ),
            TraceEvent::SocketError(e) => (
                "socket_error",
                EventSocket::of(&e.socket),
                Extra {
                    errno: Some(e.errno),
                    owner,
                    ..Extra::default()
                },
            ),
            TraceEvent::Lost(gap) => return self.push_gap(gap, host),
        };
        self.common(kind, event.ts_ns(), host);
        self.socket(Some(&socket));
        self.extra(&extra);
        self.gap(None);
        self.workload.push(workload);
        self.counters.push(match event {
            TraceEvent::Transition(t) => t.counters.as_ref(),
            _ => None,
        });
    }

    fn push_gap(&mut self, gap: &Gap, host: &str) {
        self.common("lost", gap.to_ns, host);
        self.socket(None);
        self.extra(&Extra::default());
        self.gap(Some(gap));
        self.workload.push(None);
        self.counters.push(None);
    }

    fn common(&mut self, kind: &str, ts_ns: u64, host: &str) {
        self.rows += 1;
        self.host.append_value(host);
        self.kind.append_value(kind);
        self.time
            .append_value(wall_clock(self.start_unix_ns, ts_ns));
        self.ts_ns.append_value(ts_ns);
    }

    fn socket(&mut self, socket: Option<&EventSocket>) {
        let tuple = socket.map(|s| s.tuple);
        self.conn.append_option(socket.and_then(|s| s.conn));
        self.netns.append_option(socket.map(|s| s.netns));
        self.cgroup.append_option(socket.map(|s| s.cgroup));
        self.family
            .append_option(tuple.map(|t| if t.is_ipv6() { "ipv6" } else { "ipv4" }));
        self.laddr
            .append_option(tuple.and_then(|t| ip_value(t.local.ip())));
        self.lport
            .append_option(tuple.and_then(|t| port_value(t.local.port())));
        self.raddr
            .append_option(tuple.and_then(|t| ip_value(t.remote.ip())));
        self.rport
            .append_option(tuple.and_then(|t| port_value(t.remote.port())));
    }

    fn extra(&mut self, e: &Extra<'_>) {
        self.old.append_option(e.old);
        self.new.append_option(e.new);
        self.state.append_option(e.state);
        self.pid
            .append_option(e.owner.and_then(|o| o.task).map(|t| t.pid));
        self.tid
            .append_option(e.owner.and_then(|o| o.task).map(|t| t.tid));
        self.comm
            .append_option(e.owner.and_then(|o| o.comm).map(Comm::as_str));
        self.owner_source
            .append_option(e.owner.map(|o| o.source.name()));
        self.reason.append_option(e.reason);
        self.errno.append_option(e.errno);
        self.error.append_option(e.errno.map(errno_name));
        self.inode.append_option(e.inode);
        self.timer_ms.append_option(e.timer_ms);
        self.at_end.append_option(e.at_end);
    }

    fn gap(&mut self, gap: Option<&Gap>) {
        let start = self.start_unix_ns;
        self.gap_from
            .append_option(gap.map(|g| wall_clock(start, g.from_ns)));
        self.gap_to
            .append_option(gap.map(|g| wall_clock(start, g.to_ns)));
        self.lost.append_option(gap.map(|g| g.lost));
        self.cause.append_option(gap.map(|g| g.cause.name()));
        self.cpu.append_option(gap.and_then(|g| g.cpu));
    }
}

impl Columns for EventColumns {
    const COLUMNS: &'static [(&'static str, bool)] = &[
        ("host", false),
        ("kind", false),
        ("time", false),
        ("ts_ns", false),
        ("conn", true),
        ("netns", true),
        ("cgroup", true),
        ("family", true),
        ("laddr", true),
        ("lport", true),
        ("raddr", true),
        ("rport", true),
        ("old", true),
        ("new", true),
        ("state", true),
        ("pid", true),
        ("tid", true),
        ("comm", true),
        ("owner_source", true),
        ("reason", true),
        ("errno", true),
        ("error", true),
        ("inode", true),
        ("timer_ms", true),
        ("at_end", true),
        ("gap_from", true),
        ("gap_to", true),
        ("lost", true),
        ("cause", true),
        ("cpu", true),
        ("pod_namespace", true),
        ("pod", true),
        ("container", true),
        ("container_id", true),
        ("container_runtime", true),
        ("bytes_sent", true),
        ("bytes_acked", true),
        ("bytes_received", true),
        ("segs_in", true),
        ("segs_out", true),
        ("retransmits", true),
        ("srtt_us", true),
    ];

    fn rows(&self) -> usize {
        self.rows
    }

    fn take(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.host.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.ts_ns.finish()),
            Arc::new(self.conn.finish()),
            Arc::new(self.netns.finish()),
            Arc::new(self.cgroup.finish()),
            Arc::new(self.family.finish()),
            Arc::new(self.laddr.finish()),
            Arc::new(self.lport.finish()),
            Arc::new(self.raddr.finish()),
            Arc::new(self.rport.finish()),
            Arc::new(self.old.finish()),
            Arc::new(self.new.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.tid.finish()),
            Arc::new(self.comm.finish()),
            Arc::new(self.owner_source.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.errno.finish()),
            Arc::new(self.error.finish()),
            Arc::new(self.inode.finish()),
            Arc::new(self.timer_ms.finish()),
            Arc::new(self.at_end.finish()),
            Arc::new(self.gap_from.finish()),
            Arc::new(self.gap_to.finish()),
            Arc::new(self.lost.finish()),
            Arc::new(self.cause.finish()),
            Arc::new(self.cpu.finish()),
        ];
        arrays.extend(self.workload.take());
        arrays.extend(self.counters.take());
        arrays
    }
}
