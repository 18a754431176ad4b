//! The recorder's view of live kernel sockets: turns decoded kernel events (keyed by a
//! reusable socket address) into trace events (keyed by connection ids that are
//! unique for the whole trace).
//!
//! Kernel facts this rests on:
//! - `skaddr` is reused within milliseconds, and a socket can `connect()` again after
//!   CLOSE, so a new connection starts at every transition out of CLOSE and at every
//!   child socket's LISTEN→SYN_RECV, whatever the address was used for before.
//! - CLOSE→SYN_SENT carries source port 0 (the port is picked after the tracepoint);
//!   before 6.15 a child's LISTEN→SYN_RECV carries no peer. The most complete tuple
//!   seen for a socket is kept.
//! - RSTs sent on a local abort are traced after the socket is already CLOSE, and
//!   `inet_sk_error_report` has no socket pointer: a closed socket stays matchable for a
//!   short grace period, and error reports are paired with the last socket event on
//!   the same CPU.
//! - The kernel can skip a classic tracepoint without counting it (its per-context perf
//!   buffer is in use). Every transition names the state it leaves, so a socket whose
//!   next event does not start where its last one ended has lost transitions: those
//!   are counted as [`ChainBreaks`].

use std::{
    collections::{HashMap, VecDeque, hash_map::Entry},
    net::SocketAddr,
};

use probe_common::ERROR_PAIRING_NS;
use rustc_hash::FxHashMap;

use crate::{
    kernel::{
        decode::{Decoded, Observation},
        diag::DiagSocket,
    },
    model::{
        Conn, ConnId, ExecContext, Filters, ResetReceived, ResetSent, Scope, SharedWith,
        SnapshotSocket, SocketError, SocketRef, SocketTuple, Task, TcpCounters, TcpState,
        TraceEvent, Transition,
    },
};

/// How long a closed socket stays matchable for the resets and error reports that the
/// kernel emits right after the state change. They come from the same kernel call as
/// the close, microseconds later; a full churn closes tens of thousands of sockets per
/// second, which a long grace would keep in memory. Measured in event time as events
/// arrive, and on the monotonic clock when they stop.
const CLOSED_GRACE_NS: u64 = 250_000_000;

#[derive(Clone, Copy, Debug)]
struct LiveSocket {
    conn: Conn,
    state: Option<TcpState>,
    /// The last task seen acting on the socket in task context: carried into the
    /// snapshot that starts a rotated file, so owners survive rotation.
    owner: Option<Task>,
    /// Monotonic time it went to CLOSE.
    closed_at: Option<u64>,
    /// Monotonic time of its last event.
    last_ns: u64,
}

/// Transitions that must have happened but never arrived, inferred from sockets whose
/// events stopped chaining (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainBreaks {
    /// The fewest transitions that fit the breaks.
    pub missing: u64,
    /// Monotonic time of the earliest last-good event before a break.
    pub since_ns: Option<u64>,
}

/// The fewest kernel transitions that lead from `from` to `to` (at least 1): how many
/// transitions a socket last seen in `from` lost if its next event leaves `to`.
fn fewest_transitions(from: TcpState, to: TcpState) -> u64 {
    use TcpState::*;
    // The transitions `inet_sock_set_state` reports (TIME_WAIT and NEW_SYN_RECV are
    // separate mini-sockets and never appear).
    fn next(state: TcpState) -> &'static [TcpState] {
        match state {
            Close => &[SynSent, Listen],
            Listen => &[Close],
            SynSent => &[Established, SynRecv, Close],
            SynRecv => &[Established, FinWait1, Close],
            Established => &[FinWait1, CloseWait, Close],
            FinWait1 => &[FinWait2, Closing, Close],
            FinWait2 | Closing | LastAck => &[Close],
            CloseWait => &[LastAck, Close],
            TimeWait | NewSynRecv => &[],
        }
    }
    let mut frontier = vec![from];
    for steps in 1..=6 {
        let mut reached = Vec::new();
        for &state in &frontier {
            for &n in next(state) {
                if n == to {
                    return steps;
                }
                if !reached.contains(&n) {
                    reached.push(n);
                }
            }
        }
        frontier = reached;
    }
    1
}

/// Hands out connection ids: 1, 2, 3..., one per socket lifetime.
#[derive(Debug)]
struct ConnIds {
    next: ConnId,
}

impl ConnIds {
    fn new_conn(&mut self, scope: Scope, tuple: SocketTuple) -> Conn {
        let id = self.next;
        self.next += 1;
        Conn { id, scope, tuple }
    }

    fn handed_out(&self) -> u64 {
        self.next - 1
    }
}

impl ChainBreaks {
    /// A live socket last seen in `state` whose next event leaves `expected`: counts the
    /// transitions missing in between, and says whether the event comes from another
    /// socket on the address, whose start was missed (another 4-tuple or namespace):
    /// it must not inherit this connection (or its owners).
    fn add(
        &mut self,
        last: &LiveSocket,
        state: TcpState,
        expected: TcpState,
        scope: Scope,
        tuple: &SocketTuple,
    ) -> bool {
        self.missing += fewest_transitions(state, expected);
        self.since_ns = Some(self.since_ns.map_or(last.last_ns, |s| s.min(last.last_ns)));
        let known = last.conn;
        (completeness(tuple) == 4 && completeness(&known.tuple) == 4 && *tuple != known.tuple)
            || (scope.netns != 0 && known.scope.netns != 0 && scope.netns != known.scope.netns)
    }
}

#[derive(Debug)]
pub struct SocketTable {
    start_monotonic_ns: u64,
    ids: ConnIds,
    live: FxHashMap<u64, LiveSocket>,
    /// Sockets from the start snapshot not yet seen in an event, by (netns, tuple).
    preexisting: FxHashMap<(u32, SocketTuple), ConnId>,
    /// Per CPU: the socket of the last event that had one, and its monotonic time.
    last_on_cpu: Vec<(u64, u64)>,
    filters: Filters,
    /// Closed sockets in order of closing: `(closed_at, skaddr)`.
    closed: VecDeque<(u64, u64)>,
    breaks: ChainBreaks,
    /// The trace event of the latest state change, filled in field by field: a
    /// `Transition` built and then moved into a `TraceEvent` cost a 136-byte copy per
    /// event, one of the recorder's largest (docs/bench.md, "Recorder: the work per
    /// event").
    transition: TraceEvent,
}

fn completeness(tuple: &SocketTuple) -> u8 {
    tuple.known_parts()
}

/// A `sock_diag` snapshot as [`SocketTable::snapshot`] takes it: the sockets one at a
/// time, and by socket inode the other processes holding one that several hold.
pub struct SnapshotSockets<'a, I> {
    pub sockets: I,
    pub shared_with: &'a HashMap<u32, SharedWith>,
}

impl SocketTable {
    pub fn new(start_monotonic_ns: u64, filters: Filters) -> Self {
        Self {
            start_monotonic_ns,
            ids: ConnIds { next: 1 },
            live: FxHashMap::default(),
            preexisting: FxHashMap::default(),
            last_on_cpu: Vec::new(),
            filters,
            closed: VecDeque::new(),
            breaks: ChainBreaks::default(),
            transition: TraceEvent::Transition(Transition {
                ts_ns: 0,
                conn: Conn {
                    id: 0,
                    scope: Scope::new(0, 0),
                    tuple: SocketTuple::UNSPECIFIED,
                },
                old: TcpState::Close,
                new: TcpState::Close,
                context: ExecContext::Unknown,
                task: None,
                counters: None,
            }),
        }
    }

    /// The chain breaks found since the last call.
    pub fn take_chain_breaks(&mut self) -> ChainBreaks {
        std::mem::take(&mut self.breaks)
    }

    /// Connections (socket lifetimes) handed an id so far.
    pub fn connections(&self) -> u64 {
        self.ids.handed_out()
    }

    /// Sockets currently tracked (live, or closed within the grace period).
    pub fn tracked(&self) -> usize {
        self.live.len()
    }

    fn rel(&self, monotonic_ns: u64) -> u64 {
        monotonic_ns.saturating_sub(self.start_monotonic_ns)
    }

    fn keep(&self, conn: &Conn) -> bool {
        self.filters.keeps(&conn.scope, &conn.tuple)
    }

    fn keep_socket(&self, socket: &SocketRef) -> bool {
        match socket {
            SocketRef::Conn(conn) => self.keep(conn),
            SocketRef::Unmatched { scope, tuple } => self.filters.keeps(scope, tuple),
        }
    }

    /// Gives the sockets of a `sock_diag` snapshot their connection ids and hands them
    /// to `emit` as trace events (one at a time: the end snapshot of a busy host holds
    /// a TIME_WAIT socket per connection of the last minute). Start-of-trace sockets are
    /// remembered so that their later events continue the same connection.
    pub fn snapshot(
        &mut self,
        ts_monotonic_ns: u64,
        snapshot: SnapshotSockets<'_, impl IntoIterator<Item = DiagSocket>>,
        at_end: bool,
        mut emit: impl FnMut(TraceEvent),
    ) {
        let SnapshotSockets {
            sockets,
            shared_with,
        } = snapshot;
        let ts_ns = self.rel(ts_monotonic_ns);
        // At the end, a socket continues the connection the trace knows, when one matches.
        let known: HashMap<(u32, SocketTuple), Conn> = if at_end {
            self.live
                .values()
                .filter(|l| l.closed_at.is_none())
                .map(|l| ((l.conn.scope.netns, l.conn.tuple), l.conn))
                .collect()
        } else {
            HashMap::new()
        };
        for socket in sockets {
            // A socket the filters drop gets no connection id: ids count what is recorded.
            if !self.filters.keeps(&socket.scope, &socket.tuple) {
                continue;
            }
            let conn = if at_end {
                match known.get(&(socket.scope.netns, socket.tuple)) {
                    Some(conn) => *conn,
                    None => self.ids.new_conn(socket.scope, socket.tuple),
                }
            } else {
                let conn = self.ids.new_conn(socket.scope, socket.tuple);
                if socket.state != TcpState::TimeWait {
                    self.preexisting
                        .insert((socket.scope.netns, socket.tuple), conn.id);
                }
                conn
            };
            emit(TraceEvent::Snapshot(SnapshotSocket {
                ts_ns,
                conn,
                state: socket.state,
                owner: socket.owner,
                inode: socket.inode,
                uid: socket.uid,
                timer_ms: socket.timer_ms,
                at_end,
                shared_with: shared_with.get(&socket.inode).copied().unwrap_or_default(),
            }));
        }
    }

    /// The socket (and connection) an event on `skaddr` belongs to; `starts_new`
    /// forces a new connection. One hash lookup on the common path.
    ///
    /// `leaves` is the state a transition leaves: a live socket last seen in another
    /// state (or, for a new lifetime on the address, not yet closed) lost transitions
    /// in between, which are added to the chain breaks.
    fn conn_for(
        &mut self,
        skaddr: u64,
        scope: Scope,
        tuple: SocketTuple,
        starts_new: bool,
        leaves: Option<TcpState>,
    ) -> &mut LiveSocket {
        let Self {
            live,
            preexisting,
            ids,
            breaks,
            ..
        } = self;
        let entry = live.entry(skaddr);
        let mut other_socket = false;
        if let (Entry::Occupied(last), Some(leaves)) = (&entry, leaves)
            && let Some(state) = last.get().state.filter(|_| last.get().closed_at.is_none())
        {
            let expected = if starts_new { TcpState::Close } else { leaves };
            if state != expected {
                other_socket = breaks.add(last.get(), state, expected, scope, &tuple);
            }
        }
        let entry = match entry {
            Entry::Occupied(entry)
                if !starts_new && !other_socket && entry.get().closed_at.is_none() =>
            {
                let socket = entry.into_mut();
                if completeness(&tuple) > completeness(&socket.conn.tuple) {
                    socket.conn.tuple = tuple;
                }
                if socket.conn.scope.netns == 0 {
                    socket.conn.scope = scope;
                }
                return socket;
            }
            entry => entry,
        };
        // A socket seen for the first time may be one of the start snapshot.
        let preexisting = if preexisting.is_empty() {
            None
        } else {
            preexisting.remove(&(scope.netns, tuple))
        };
        let conn = match preexisting {
            Some(id) if !starts_new => Conn { id, scope, tuple },
            _ => ids.new_conn(scope, tuple),
        };
        let socket = LiveSocket {
            conn,
            state: None,
            owner: None,
            closed_at: None,
            last_ns: 0,
        };
        match entry {
            Entry::Occupied(entry) => {
                let slot = entry.into_mut();
                *slot = socket;
                slot
            }
            Entry::Vacant(entry) => entry.insert(socket),
        }
    }

    /// A socket event that follows a state change (reset, error): the live or
    /// just-closed connection on `skaddr`, if any.
    fn known(&self, skaddr: u64) -> Option<Conn> {
        self.live.get(&skaddr).map(|s| s.conn)
    }

    fn note_cpu(&mut self, cpu: u32, skaddr: u64, ts_ns: u64) {
        let cpu = cpu as usize;
        if cpu >= self.last_on_cpu.len() {
            self.last_on_cpu.resize(cpu + 1, (0, 0));
        }
        self.last_on_cpu[cpu] = (skaddr, ts_ns);
    }

    /// Turns one decoded kernel event into a trace event; `None` when filtered out.
    #[cfg(test)]
    pub fn observe(&mut self, event: &Decoded) -> Option<TraceEvent> {
        let mut made = None;
        self.observe_with(event, |trace_event| made = Some(*trace_event));
        made
    }

    /// Turns one decoded kernel event into a trace event and hands it to `sink`,
    /// unless filtered out. A sink, not a return value: a 140-byte value returned
    /// through an `Option` is copied once more per transition.
    pub fn observe_with(&mut self, event: &Decoded, sink: impl FnOnce(&TraceEvent)) {
        let made = match event.observation {
            Observation::StateChange {
                skaddr,
                old,
                new,
                tuple,
                counters,
            } => {
                return self.on_state_change(event, skaddr, (old, new), tuple, counters, sink);
            }
            Observation::SendReset {
                skaddr,
                state,
                reason,
                tuple,
            } => {
                let socket = match (skaddr != 0).then(|| self.known(skaddr)).flatten() {
                    Some(conn) => {
                        self.note_cpu(event.cpu, skaddr, event.ts_ns);
                        SocketRef::Conn(conn)
                    }
                    None => SocketRef::Unmatched {
                        scope: event.scope,
                        tuple,
                    },
                };
                self.keep_socket(&socket)
                    .then_some(TraceEvent::ResetSent(ResetSent {
                        ts_ns: self.rel(event.ts_ns),
                        socket,
                        state,
                        reason,
                        context: event.context,
                        task: event.task,
                    }))
            }
            Observation::ReceiveReset { skaddr, tuple } => {
                let conn = self.conn_for(skaddr, event.scope, tuple, false, None).conn;
                self.note_cpu(event.cpu, skaddr, event.ts_ns);
                self.keep(&conn)
                    .then_some(TraceEvent::ResetReceived(ResetReceived {
                        ts_ns: self.rel(event.ts_ns),
                        conn,
                        context: event.context,
                        task: event.task,
                    }))
            }
            Observation::ErrorReport {
                skaddr,
                errno,
                tuple,
            } => {
                let matched = if skaddr == 0 {
                    self.match_error(event.cpu, event.ts_ns, &tuple)
                } else {
                    self.error_socket(skaddr, &tuple)
                };
                let socket = matched.map_or(
                    SocketRef::Unmatched {
                        scope: event.scope,
                        tuple,
                    },
                    SocketRef::Conn,
                );
                self.keep_socket(&socket)
                    .then_some(TraceEvent::SocketError(SocketError {
                        ts_ns: self.rel(event.ts_ns),
                        socket,
                        errno,
                        context: event.context,
                        task: event.task,
                    }))
            }
        };
        if let Some(made) = &made {
            sink(made);
        }
    }

    /// The recorder's hot path: one state change.
    #[inline]
    fn on_state_change(
        &mut self,
        event: &Decoded,
        skaddr: u64,
        (old, new): (TcpState, TcpState),
        tuple: SocketTuple,
        counters: Option<TcpCounters>,
        sink: impl FnOnce(&TraceEvent),
    ) {
        let starts_new =
            old == TcpState::Close || (old == TcpState::Listen && new == TcpState::SynRecv);
        let socket = self.conn_for(skaddr, event.scope, tuple, starts_new, Some(old));
        socket.state = Some(new);
        socket.last_ns = event.ts_ns;
        if event.context == ExecContext::Task && event.task.is_some() {
            socket.owner = event.task;
        }
        let closed = new == TcpState::Close;
        if closed {
            socket.closed_at = Some(event.ts_ns);
        }
        let conn = socket.conn;
        if closed {
            self.closed.push_back((event.ts_ns, skaddr));
            self.sweep(event.ts_ns);
        }
        self.note_cpu(event.cpu, skaddr, event.ts_ns);
        if !self.keep(&conn) {
            return;
        }
        let ts_ns = self.rel(event.ts_ns);
        // Always a transition: made one in `new`, and only written here.
        if let TraceEvent::Transition(slot) = &mut self.transition {
            slot.ts_ns = ts_ns;
            slot.conn = conn;
            slot.old = old;
            slot.new = new;
            slot.context = event.context;
            slot.task = event.task;
            slot.counters = counters;
            sink(&self.transition);
        }
    }

    /// An error report that names its socket (the raw-tracepoint program): the live or
    /// just-closed connection on that address, unless the address already belongs to
    /// a socket with another local port (one the recorder has not seen yet).
    fn error_socket(&self, skaddr: u64, tuple: &SocketTuple) -> Option<Conn> {
        let conn = self.known(skaddr)?;
        let (known, reported) = (conn.tuple.local.port(), tuple.local.port());
        (known == reported || known == 0 || reported == 0).then_some(conn)
    }

    /// An error report from the classic tracepoint names no socket: it belongs to the
    /// socket whose state just changed on the same CPU, if it came within
    /// [`ERROR_PAIRING_NS`] and the ports agree (the peer port may already be 0 after
    /// `tcp_disconnect`, docs/kernel-facts.md §3). Another socket's event can come in
    /// between (a softirq nested in backlog processing, a preempted softirq thread on
    /// PREEMPT_RT), and an emulated or overcommitted CPU can stall past the window.
    fn match_error(&self, cpu: u32, ts_ns: u64, tuple: &SocketTuple) -> Option<Conn> {
        let (skaddr, at) = *self.last_on_cpu.get(cpu as usize)?;
        if ts_ns.saturating_sub(at) > ERROR_PAIRING_NS {
            return None;
        }
        let conn = self.known(skaddr)?;
        let same_port = |a: SocketAddr, b: SocketAddr| a.port() == b.port() || b.port() == 0;
        (conn.tuple.local.port() == tuple.local.port()
            && same_port(conn.tuple.remote, tuple.remote))
        .then_some(conn)
    }

    /// Forgets sockets that closed at least `CLOSED_GRACE_NS` before `now_ns` (an
    /// event's time, or the monotonic clock when no event comes: the same clock),
    /// unless their address has been reused since.
    pub fn sweep(&mut self, now_ns: u64) {
        while let Some(&(closed_at, skaddr)) = self.closed.front() {
            if now_ns.saturating_sub(closed_at) < CLOSED_GRACE_NS {
                break;
            }
            self.closed.pop_front();
            if let Entry::Occupied(entry) = self.live.entry(skaddr)
                && entry.get().closed_at == Some(closed_at)
            {
                entry.remove();
            }
        }
    }

    /// Live (not closed) connections with their last known state and owner, for the
    /// carry-over snapshot at the start of a rotated file.
    pub fn live_connections(
        &self,
    ) -> impl Iterator<Item = (Conn, Option<TcpState>, Option<Task>)> + '_ {
        self.live
            .values()
            .filter(|s| s.closed_at.is_none())
            .map(|s| (s.conn, s.state, s.owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PidList, ResetReason};

    const START: u64 = 1_000_000;

    fn tuple(local: &str, remote: &str) -> SocketTuple {
        SocketTuple {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    fn scope() -> Scope {
        Scope::new(4_026_531_840, 1)
    }

    fn state(
        ts: u64,
        cpu: u32,
        skaddr: u64,
        old: TcpState,
        new: TcpState,
        t: SocketTuple,
    ) -> Decoded {
        Decoded {
            ts_ns: START + ts,
            cpu,
            context: ExecContext::Softirq,
            task: None,
            scope: scope(),
            observation: Observation::StateChange {
                skaddr,
                old,
                new,
                tuple: t,
                counters: None,
            },
        }
    }

    fn transition(event: Option<TraceEvent>) -> Transition {
        match event {
            Some(TraceEvent::Transition(t)) => t,
            other => panic!("expected a transition, got {other:?}"),
        }
    }

    /// The socket a `tcp_send_reset` on `skaddr` (as after `close()` with SO_LINGER 0)
    /// is matched to.
    fn abort_reset(table: &mut SocketTable, ts_ns: u64, skaddr: u64, t: SocketTuple) -> SocketRef {
        let reset = table.observe(&Decoded {
            observation: Observation::SendReset {
                skaddr,
                state: Some(TcpState::Close),
                reason: Some(ResetReason::TCP_ABORT_ON_CLOSE),
                tuple: t,
            },
            ..state(ts_ns, 1, 0, TcpState::Close, TcpState::Close, t)
        });
        match reset {
            Some(TraceEvent::ResetSent(reset)) => reset.socket,
            other => panic!("expected a reset, got {other:?}"),
        }
    }

    #[test]
    fn a_reused_socket_address_gets_a_new_connection_id() {
        use TcpState::*;
        let mut table = SocketTable::new(START, Filters::default());
        let t = tuple("10.0.0.2:40000", "10.0.0.1:80");
        let a = transition(table.observe(&state(1, 0, 0xa, Close, SynSent, t)));
        let b = transition(table.observe(&state(2, 0, 0xa, SynSent, Close, t)));
        let c = transition(table.observe(&state(3, 0, 0xa, Close, SynSent, t)));
        assert_eq!(a.conn.id, b.conn.id);
        assert_ne!(b.conn.id, c.conn.id);
        assert_eq!(a.ts_ns, 1);
        // A child socket on an address another socket just used is new too.
        let child = transition(table.observe(&state(4, 0, 0xa, Listen, SynRecv, t.reversed())));
        assert_ne!(child.conn.id, c.conn.id);
        assert_eq!(table.connections(), 3);
    }

    #[test]
    fn closed_sockets_are_forgotten_as_trace_time_passes() {
        use TcpState::*;
        let mut table = SocketTable::new(START, Filters::default());
        // 10,000 short connections, one every 100 us: 1 s of trace time.
        for i in 0..10_000u64 {
            let t = tuple(&format!("10.0.0.2:{}", 20_000 + i), "10.0.0.1:80");
            let sk = 0x1000 + i * 64;
            table.observe(&state(i * 100_000, 0, sk, Close, SynSent, t));
            table.observe(&state(i * 100_000 + 50_000, 0, sk, SynSent, Close, t));
        }
        // Only the sockets closed within the last 250 ms of trace time remain.
        assert!(table.tracked() <= 2_501, "{} tracked", table.tracked());
        // A socket that just closed is still there for the reset that follows it.
        let t = tuple("10.0.0.2:19999", "10.0.0.1:80");
        let closed =
            transition(table.observe(&state(2_000_000_000, 1, 0xdead_0000, Established, Close, t)));
        assert_eq!(
            abort_reset(&mut table, 2_000_000_010, 0xdead_0000, t),
            SocketRef::Conn(closed.conn)
        );
    }

    #[test]
    fn the_source_port_is_completed_after_syn_sent() {
        use TcpState::*;
        let mut table = SocketTable::new(START, Filters::default());
        let syn = transition(table.observe(&state(
            1,
            0,
            0xb,
            Close,
            SynSent,
            tuple("10.0.0.2:0", "10.0.0.1:80"),
        )));
        let est = transition(table.observe(&state(
            2,
            0,
            0xb,
            SynSent,
            Established,
            tuple("10.0.0.2:53970", "10.0.0.1:80"),
        )));
        assert_eq!(syn.conn.id, est.conn.id);
        assert_eq!(syn.conn.tuple.local.port(), 0);
        assert_eq!(est.conn.tuple.local.port(), 53970);
        // A later event with a zeroed port does not undo it.
        let close = transition(table.observe(&state(
            3,
            0,
            0xb,
            Established,
            Close,
            tuple("10.0.0.2:0", "10.0.0.1:80"),
        )));
        assert_eq!(close.conn.tuple.local.port(), 53970);
    }

    #[test]
    fn resets_after_close_and_error_reports_find_their_connection() {
        use TcpState::*;
        let mut table = SocketTable::new(START, Filters::default());
        let t = tuple("10.0.0.1:2181", "10.0.0.2:40000");
        let closed = transition(table.observe(&state(1, 1, 0xc, Established, Close, t)));
        assert_eq!(
            abort_reset(&mut table, 2, 0xc, t),
            SocketRef::Conn(closed.conn)
        );
        let error = table
            .observe(&Decoded {
                observation: Observation::ErrorReport {
                    skaddr: 0,
                    errno: 104,
                    tuple: tuple("10.0.0.1:2181", "10.0.0.2:0"),
                },
                ..state(3, 1, 0, Close, Close, t)
            })
            .unwrap();
        let TraceEvent::SocketError(error) = error else {
            panic!()
        };
        assert_eq!(error.socket, SocketRef::Conn(closed.conn));
        // On another CPU the report cannot be paired.
        let error = table
            .observe(&Decoded {
                observation: Observation::ErrorReport {
                    skaddr: 0,
                    errno: 104,
                    tuple: t,
                },
                ..state(4, 0, 0, Close, Close, t)
            })
            .unwrap();
        let TraceEvent::SocketError(error) = error else {
            panic!()
        };
        assert!(matches!(error.socket, SocketRef::Unmatched { .. }));
        // Nor long after the socket's last event on that CPU: another namespace's copy
        // of the same service reports errors with the same ports.
        let error = table
            .observe(&Decoded {
                observation: Observation::ErrorReport {
                    skaddr: 0,
                    errno: 104,
                    tuple: tuple("10.0.0.1:2181", "10.0.0.2:0"),
                },
                ..state(2 + ERROR_PAIRING_NS + 1, 1, 0, Close, Close, t)
            })
            .unwrap();
        let TraceEvent::SocketError(error) = error else {
            panic!()
        };
        assert!(matches!(error.socket, SocketRef::Unmatched { .. }));
        // After the grace period the closed socket is forgotten.
        table.sweep(START + 10_000_000_000);
        assert_eq!(table.tracked(), 0);
    }

    /// A report from the raw-tracepoint program names its socket: it finds its connection
    /// whatever came in between on the CPU, and however late (a preempted softirq
    /// thread, an emulated CPU), which pairing by CPU and time cannot.
    #[test]
    fn error_reports_that_name_their_socket_find_it() {
        use TcpState::*;
        let mut table = SocketTable::new(START, Filters::default());
        let t = tuple("10.0.0.2:40000", "10.0.0.1:4181");
        let closed = transition(table.observe(&state(1, 1, 0xc, Established, Close, t)));
        // Another socket's event on the same CPU, then the report 5 ms later.
        let other = tuple("10.0.0.2:40001", "10.0.0.1:4181");
        table.observe(&state(2, 1, 0xd, SynSent, Established, other));
        let report = |skaddr, ts| Decoded {
            observation: Observation::ErrorReport {
                skaddr,
                errno: 104,
                tuple: t,
            },
            ..state(ts, 1, 0, Close, Close, t)
        };
        let Some(TraceEvent::SocketError(error)) = table.observe(&report(0xc, 5_000_002)) else {
            panic!("no error event")
        };
        assert_eq!(error.socket, SocketRef::Conn(closed.conn));
        // The same report from the classic tracepoint cannot be paired.
        let Some(TraceEvent::SocketError(error)) = table.observe(&report(0, 5_000_002)) else {
            panic!("no error event")
        };
        assert!(matches!(error.socket, SocketRef::Unmatched { .. }));
        // An address now used by a socket with another local port is not it.
        let Some(TraceEvent::SocketError(error)) = table.observe(&report(0xd, 5_000_003)) else {
            panic!("no error event")
        };
        assert!(matches!(error.socket, SocketRef::Unmatched { .. }));
    }

    #[test]
    fn snapshot_sockets_the_filters_drop_are_not_counted() {
        let filters = Filters {
            ports: vec![2181],
            ..Filters::default()
        };
        let mut table = SocketTable::new(START, filters);
        let socket = |local, remote| DiagSocket {
            scope: scope(),
            tuple: tuple(local, remote),
            state: TcpState::Established,
            inode: 1,
            uid: 0,
            timer_ms: None,
            owner: None,
        };
        let sockets = [
            socket("10.0.0.1:22", "10.0.0.2:40000"),
            socket("10.0.0.1:2181", "10.0.0.2:40001"),
            socket("10.0.0.1:80", "10.0.0.2:40002"),
        ];
        let unshared = HashMap::new();
        let snapshot = |sockets: &[DiagSocket]| SnapshotSockets {
            sockets: sockets.to_vec(),
            shared_with: &unshared,
        };
        let mut kept = Vec::new();
        table.snapshot(START, snapshot(&sockets), false, |event| kept.push(event));
        assert_eq!((kept.len(), table.connections()), (1, 1));
        table.snapshot(START + 1, snapshot(&sockets[..1]), true, |event| {
            kept.push(event);
        });
        assert_eq!((kept.len(), table.connections()), (1, 1));
    }

    #[test]
    fn snapshot_connections_continue_in_later_events() {
        use TcpState::*;
        let mut table = SocketTable::new(START, Filters::default());
        let t = tuple("10.0.0.1:2181", "10.0.0.2:40000");
        let owner = Task {
            pid: 9,
            tid: 9,
            comm: crate::model::Comm::from_str_lossy("java"),
        };
        let mut snap = Vec::new();
        // A forked worker holds it too.
        let shared_with = HashMap::from([(77, SharedWith::new(PidList::new(&[10], 0), true))]);
        let snapshot = SnapshotSockets {
            sockets: [DiagSocket {
                scope: scope(),
                tuple: t,
                state: Established,
                inode: 77,
                uid: 0,
                timer_ms: None,
                owner: Some(owner),
            }],
            shared_with: &shared_with,
        };
        table.snapshot(START, snapshot, false, |event| snap.push(event));
        let TraceEvent::Snapshot(s) = snap[0] else {
            panic!()
        };
        assert_eq!(s.shared_with.pids().pids(), [10]);
        let later = transition(table.observe(&state(5, 0, 0xd, Established, CloseWait, t)));
        assert_eq!(later.conn.id, s.conn.id);
    }

    #[test]
    fn transitions_that_never_arrived_are_counted_as_chain_breaks() {
        use TcpState::*;
        let mut table = SocketTable::new(START, Filters::default());
        let t = tuple("10.0.0.2:40000", "10.0.0.1:80");
        // A complete lifetime, then a reconnect on the closed socket: no break.
        for (ts, old, new) in [
            (1, Close, SynSent),
            (2, SynSent, Established),
            (3, Established, FinWait1),
            (4, FinWait1, FinWait2),
            (5, FinWait2, Close),
            (6, Close, SynSent),
            (7, SynSent, Close),
        ] {
            table.observe(&state(ts, 0, 0xa, old, new, t));
        }
        assert_eq!(table.take_chain_breaks(), ChainBreaks::default());
        // FIN_WAIT1, then the address starts a new lifetime: FIN_WAIT1->...->CLOSE never
        // arrived (at least one transition).
        table.observe(&state(10, 0, 0xb, Close, SynSent, t));
        table.observe(&state(11, 0, 0xb, SynSent, Established, t));
        table.observe(&state(12, 0, 0xb, Established, FinWait1, t));
        table.observe(&state(20, 0, 0xb, Close, SynSent, t));
        // Within a lifetime: ESTABLISHED, then LAST_ACK->CLOSE (CLOSE_WAIT and its
        // LAST_ACK are missing: two transitions).
        table.observe(&state(21, 0, 0xc, Close, SynSent, t));
        table.observe(&state(22, 0, 0xc, SynSent, Established, t));
        table.observe(&state(30, 0, 0xc, LastAck, Close, t));
        assert_eq!(
            table.take_chain_breaks(),
            ChainBreaks {
                missing: 3,
                since_ns: Some(START + 12),
            }
        );
        assert_eq!(table.take_chain_breaks(), ChainBreaks::default());
        // A break with another 4-tuple is another socket whose start was missed: a new
        // connection, not a continuation.
        let other = tuple("10.0.0.2:40001", "10.0.0.1:80");
        table.observe(&state(31, 0, 0xe, Close, SynSent, t));
        let before = transition(table.observe(&state(32, 0, 0xe, SynSent, Established, t)));
        let after = transition(table.observe(&state(33, 0, 0xe, FinWait1, FinWait2, other)));
        let again = transition(table.observe(&state(34, 0, 0xe, FinWait2, Close, other)));
        assert_ne!(before.conn.id, after.conn.id);
        assert_eq!(after.conn.id, again.conn.id);
        // The same 4-tuple is the same socket with transitions missing in between.
        table.observe(&state(35, 0, 0xf, Close, SynSent, other));
        let first = transition(table.observe(&state(36, 0, 0xf, SynSent, Established, other)));
        let last = transition(table.observe(&state(37, 0, 0xf, Closing, Close, other)));
        assert_eq!(first.conn.id, last.conn.id);
        assert_eq!(table.take_chain_breaks().missing, 1 + 2);
        // A socket first seen mid-lifetime (its start was before the recording) is no
        // break.
        table.observe(&state(40, 0, 0xd, CloseWait, LastAck, t));
        assert_eq!(table.take_chain_breaks(), ChainBreaks::default());
    }

    #[test]
    fn the_fewest_transitions_follow_the_kernel_state_machine() {
        use TcpState::*;
        assert_eq!(fewest_transitions(FinWait1, Close), 1);
        assert_eq!(fewest_transitions(Established, LastAck), 2);
        assert_eq!(fewest_transitions(SynSent, FinWait2), 3);
        assert_eq!(fewest_transitions(Close, Close), 2);
        // TIME_WAIT is never a state a socket is seen in: the fallback is 1.
        assert_eq!(fewest_transitions(TimeWait, Close), 1);
    }

    #[test]
    fn userspace_filters_apply_to_the_completed_tuple() {
        use TcpState::*;
        let filters = Filters {
            ports: vec![80],
            netns: vec![],
            ..Filters::default()
        };
        let mut table = SocketTable::new(START, filters);
        assert!(
            table
                .observe(&state(
                    1,
                    0,
                    0xe,
                    Close,
                    SynSent,
                    tuple("10.0.0.2:0", "10.0.0.1:80")
                ))
                .is_some()
        );
        assert!(
            table
                .observe(&state(
                    2,
                    0,
                    0xf,
                    Close,
                    SynSent,
                    tuple("10.0.0.2:0", "10.0.0.1:443")
                ))
                .is_none()
        );
        let filters = Filters {
            ports: vec![],
            netns: vec![1],
            ..Filters::default()
        };
        let mut table = SocketTable::new(START, filters);
        assert!(
            table
                .observe(&state(
                    1,
                    0,
                    0xe,
                    Close,
                    SynSent,
                    tuple("10.0.0.2:0", "10.0.0.1:80")
                ))
                .is_none()
        );
    }
}
