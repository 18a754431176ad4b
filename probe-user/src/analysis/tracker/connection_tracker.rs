//! The tracker itself: routes each event to the socket it is about, creates and merges
//! connections, and hands each one to a [`TrackerSink`] once it has ended.

use std::collections::VecDeque;

use crate::{
    analysis::{
        pairs::PairKey,
        tracker::{Connection, Endpoint, ends::EndsIndex, roles::Listeners, slots::Slots},
        verdict::Side,
    },
    idmap::ConnIdMap,
    model::{
        ConnKey, EndpointFilter, HostId, ResetReason, Scope, SnapshotSocket, SocketRef,
        SocketTuple, TcpState, TraceEvent, Transition,
    },
    owner::Owner,
};

/// How long a closed connection waits before it is handed over: the kernel reports
/// the RST of a local abort and the errno of a failed connect right *after* the
/// socket's →CLOSE (`docs/kernel-facts.md §1.2`), and the other end of the connection
/// may still be closing. Both follow within microseconds; the margin covers events that
/// different CPUs delivered slightly out of order.
pub const GRACE_NS: u64 = 50_000_000;

/// What the tracker tells its owner.
pub trait TrackerSink {
    /// A connection ended (or the trace did); it is forgotten after this call.
    fn finished(&mut self, connection: &Connection);
    /// A socket of `connection` handed over to a timewait socket at `ts_ns`.
    fn time_wait(&mut self, connection: &Connection, side: Side, ts_ns: u64);
    /// A new connection uses this 4-tuple in this namespace of this host (which ends a
    /// TIME_WAIT).
    fn tuple_in_use(&mut self, host: HostId, netns: u32, tuple: &SocketTuple);
    /// A connect refused by a traced host (`host`) whose client was not traced.
    fn refused_unseen(&mut self, key: PairKey, host: HostId, ts_ns: u64);
}

/// Turns the event stream into connections, each one 4-tuple lifecycle with up to two
/// sockets. Memory is bounded by the connections that are open (plus those closed
/// within the last [`GRACE_NS`]): a connection is forgotten once it is handed over.
#[derive(Clone, Debug, Default)]
pub struct ConnectionTracker {
    slots: Slots,
    /// Where each socket is: its connection's slot and its side.
    sockets: ConnIdMap<(u32, Side)>,
    ends: EndsIndex,
    listeners: Listeners,
    /// Connections waiting for [`GRACE_NS`] after their last socket closed: (ready at,
    /// slot, the slot's generation when queued).
    closing: VecDeque<(u64, u32, u32)>,
    /// Hand-overs to timewait sockets waiting for [`GRACE_NS`]: (ready at, socket).
    handovers: VecDeque<(u64, ConnKey)>,
    /// Gaps seen so far: a connection alive across a gap may be incomplete.
    gap_epoch: u32,
    now_ns: u64,
    filter: EndpointFilter,
}

impl ConnectionTracker {
    pub fn new(filter: EndpointFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Connections currently held (open, or closed within the grace period).
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.slots.live()
    }

    /// The pair and side of a socket that the tracker may not know (TIME_WAIT and end
    /// snapshot sockets).
    pub fn classify(&self, scope: &Scope, tuple: &SocketTuple) -> (PairKey, Side) {
        self.listeners.classify(scope, tuple)
    }

    /// Processes one event, with the owner the owner tracker attributed to it.
    pub fn on_event(
        &mut self,
        event: &TraceEvent,
        owner: Option<&Owner>,
        sink: &mut impl TrackerSink,
    ) {
        let ts = event.ts_ns();
        if ts > self.now_ns {
            self.now_ns = ts;
            self.flush(ts, sink);
        }
        match event {
            TraceEvent::Transition(t) => self.on_transition(t, owner, sink),
            TraceEvent::Snapshot(s) if !s.at_end => self.on_snapshot(s, sink),
            TraceEvent::Snapshot(_) => {}
            TraceEvent::ResetReceived(r) => {
                if let Some(e) = self.endpoint_mut(r.conn.key()) {
                    e.rst_received = true;
                }
            }
            TraceEvent::ResetSent(r) => match r.socket {
                SocketRef::Conn(conn) => {
                    if let Some(e) = self.endpoint_mut(conn.key()) {
                        e.on_reset_sent(r.reason);
                    }
                }
                SocketRef::Unmatched { scope, tuple } => {
                    self.on_unmatched_reset(&scope, &tuple, r.reason, ts, sink);
                }
            },
            TraceEvent::SocketError(e) => {
                if let SocketRef::Conn(conn) = e.socket
                    && e.errno != 0
                    && let Some(endpoint) = self.endpoint_mut(conn.key())
                {
                    endpoint.on_error(e.errno);
                }
            }
            TraceEvent::Lost(_) => self.gap_epoch = self.gap_epoch.wrapping_add(1),
        }
    }

    /// Hands over every connection still held, as the trace ends.
    pub fn finish(&mut self, sink: &mut impl TrackerSink) {
        for slot in 0..self.slots.ever_used() {
            self.finish_slot(slot, sink);
        }
        self.closing.clear();
        self.handovers.clear();
    }

    fn endpoint_mut(&mut self, key: ConnKey) -> Option<&mut Endpoint> {
        let &(slot, side) = self.sockets.get(&key)?;
        self.slots.get_mut(slot)?.endpoint_mut(side)
    }

    fn on_transition(
        &mut self,
        t: &Transition,
        owner: Option<&Owner>,
        sink: &mut impl TrackerSink,
    ) {
        let (slot, side) = match self.sockets.get(&t.conn.key()) {
            Some(&found) => found,
            None => match self.first_seen(t) {
                Some(found) => found,
                None => return,
            },
        };
        let Some(connection) = self.slots.get_mut(slot) else {
            return;
        };
        if let Some(owner) = owner {
            connection.set_owner(side, owner);
        }
        let Some(endpoint) = connection.endpoint_mut(side) else {
            return;
        };
        // The recorder completes a tuple as it learns it; once registered for merging
        // it stays as registered, so that it can be found again to unregister.
        if !endpoint.indexed && endpoint.tuple != t.conn.tuple && t.conn.tuple.local.port() != 0 {
            endpoint.tuple = t.conn.tuple;
        }
        let fin_sent_before = endpoint.fin_sent;
        let handover = endpoint.apply(t);
        let fin_sent_now = !fin_sent_before && endpoint.fin_sent;
        let indexed = endpoint.indexed;
        if handover {
            self.handovers
                .push_back((t.ts_ns.saturating_add(GRACE_NS), t.conn.key()));
        }
        if fin_sent_now {
            self.peer_fin(slot, side, t.ts_ns, sink);
        }
        if t.new == TcpState::Close && self.slots.get(slot).is_some_and(Connection::all_closed) {
            self.queue_closing(slot, t.ts_ns);
        }
        if !indexed {
            self.index(slot, side, sink);
        }
    }

    /// A socket's first transition: a new connection, unless it is a listener (they
    /// only tell roles apart) or filtered out.
    fn first_seen(&mut self, t: &Transition) -> Option<(u32, Side)> {
        use TcpState::*;
        let (scope, port) = (&t.conn.scope, t.conn.tuple.local.port());
        match (t.old, t.new) {
            (_, Listen) => self.listeners.update(scope, port, true),
            (Listen, Close) => self.listeners.update(scope, port, false),
            (Close, Close) => {}
            _ if self.filter.excludes(&t.conn.tuple) => {}
            _ => {
                let (side, opening) = match (t.old, t.new) {
                    (Close, SynSent) => (Side::Client, true),
                    (Listen, SynRecv) => (Side::Server, true),
                    (SynSent, _) => (Side::Client, false),
                    (SynRecv, _) => (Side::Server, false),
                    _ => (self.listeners.guess_side(scope, &t.conn.tuple), false),
                };
                let mut endpoint = Endpoint::new(t.conn.id, scope.netns, t.conn.tuple, t.old);
                endpoint.host = scope.host;
                endpoint.cgroup = scope.cgroup;
                let mut connection = Connection::new(t.ts_ns, self.gap_epoch);
                if opening {
                    endpoint.opened_ns = Some(t.ts_ns);
                } else {
                    // First seen in mid-life: opened before the trace without being in
                    // its start snapshot, or its first events were lost.
                    connection.incomplete = true;
                    connection.role_guessed = !matches!(t.old, SynSent | SynRecv);
                }
                return Some((self.track(endpoint, side, connection), side));
            }
        }
        None
    }

    fn on_snapshot(&mut self, s: &SnapshotSocket, sink: &mut impl TrackerSink) {
        use TcpState::*;
        if self.sockets.contains_key(&s.conn.key()) {
            return;
        }
        let (scope, port) = (&s.conn.scope, s.conn.tuple.local.port());
        match s.state {
            Listen => return self.listeners.update(scope, port, true),
            // TIME_WAIT sockets are the caller's (see `classify`); nothing else to know.
            TimeWait | Close | NewSynRecv => return,
            _ if self.filter.excludes(&s.conn.tuple) => return,
            _ => {}
        }
        let side = match s.state {
            SynSent => Side::Client,
            SynRecv => Side::Server,
            _ => self.listeners.guess_side(scope, &s.conn.tuple),
        };
        let mut connection = Connection::new(s.ts_ns, self.gap_epoch);
        connection.preexisting = true;
        connection.role_guessed = !matches!(s.state, SynSent | SynRecv);
        let slot = self.track(Endpoint::from_snapshot(s), side, connection);
        self.index(slot, side, sink);
    }

    /// An RST that the recorder could not match to a socket: a reply to a segment for
    /// which the sending host had no socket. It belongs to a traced connection when one
    /// has the same 4-tuple (the server's host refusing a traced connect, or either host
    /// answering a segment that arrived after its socket was gone); otherwise, when it
    /// says NO_SOCKET and nothing listens on its port, it is a connect refused by a
    /// traced host whose client is not traced. (A SYN to a listening port never gets a
    /// no-socket RST, so one from a listening port answers a stray segment: data still
    /// in flight to a connection the server aborted.)
    fn on_unmatched_reset(
        &mut self,
        scope: &Scope,
        tuple: &SocketTuple,
        reason: Option<ResetReason>,
        ts_ns: u64,
        sink: &mut impl TrackerSink,
    ) {
        // `tuple.local` is the host that sent the RST.
        for side in [Side::Server, Side::Client] {
            let Some(connection) = self
                .ends
                .find(scope, tuple, side)
                .and_then(|slot| self.slots.get_mut(slot))
            else {
                continue;
            };
            connection.extra_resets[side.index()] = true;
            let connecting = connection
                .client
                .is_some_and(|c| c.established_ns.is_none() && c.start.is_none());
            if side == Side::Server && reason == Some(ResetReason::NO_SOCKET) && connecting {
                connection.refused_by_server = true;
            }
            return;
        }
        if reason == Some(ResetReason::NO_SOCKET)
            && !self.listeners.is_listening(scope, tuple.local.port())
            && !self.filter.excludes(tuple)
        {
            let key = PairKey::new(tuple.remote.ip(), tuple.local);
            sink.refused_unseen(key, scope.host, ts_ns);
        }
    }

    fn track(&mut self, endpoint: Endpoint, side: Side, mut connection: Connection) -> u32 {
        let key = endpoint.key();
        match side {
            Side::Client => connection.client = Some(endpoint),
            Side::Server => connection.server = Some(endpoint),
        }
        let slot = self.slots.allocate(connection);
        self.sockets.insert(key, (slot, side));
        slot
    }

    /// Registers a socket under its client-view 4-tuple once the tuple is complete,
    /// and merges it with the other end when exactly one candidate exists.
    fn index(&mut self, slot: u32, side: Side, sink: &mut impl TrackerSink) {
        let Some(endpoint) = self.slots.get_mut(slot).and_then(|c| c.endpoint_mut(side)) else {
            return;
        };
        if endpoint.indexed || !endpoint.is_complete() {
            return;
        }
        endpoint.indexed = true;
        let (scope, tuple) = (endpoint.scope(), endpoint.tuple);
        sink.tuple_in_use(scope.host, scope.netns, &tuple);
        if let Some((client, server)) = self.ends.register(&scope, &tuple, side, slot) {
            self.merge(client, server);
        }
    }

    /// Moves the server end from `server_slot` into the client's connection.
    fn merge(&mut self, client_slot: u32, server_slot: u32) {
        let mergeable = self
            .slots
            .get(client_slot)
            .is_some_and(|c| c.server.is_none())
            && self
                .slots
                .get(server_slot)
                .is_some_and(|c| c.client.is_none() && c.server.is_some());
        if !mergeable {
            return;
        }
        let Some(other) = self.slots.release(server_slot) else {
            return;
        };
        let Some(server) = other.server else { return };
        self.sockets
            .insert(server.key(), (client_slot, Side::Server));
        let Some(connection) = self.slots.get_mut(client_slot) else {
            return;
        };
        connection.server = Some(server);
        connection.absorb(&other);
        if connection.all_closed() {
            let end_ns = connection.end_ns().unwrap_or(0);
            self.queue_closing(client_slot, end_ns);
        }
    }

    /// The connection in `slot` closed at `closed_ns`: hand it over after the grace
    /// period.
    fn queue_closing(&mut self, slot: u32, closed_ns: u64) {
        let generation = self.slots.generation(slot);
        self.closing
            .push_back((closed_ns.saturating_add(GRACE_NS), slot, generation));
    }

    /// Hands over every connection whose grace period ended by `now_ns`.
    fn flush(&mut self, now_ns: u64, sink: &mut impl TrackerSink) {
        // Hand-overs first: a connection is finished only after its sockets' TIME_WAIT
        // is decided.
        while let Some(&(ready, conn)) = self.handovers.front() {
            if ready > now_ns {
                break;
            }
            self.handovers.pop_front();
            if let Some(&(slot, side)) = self.sockets.get(&conn) {
                self.decide_handover(slot, side, sink);
            }
        }
        while let Some(&(ready, slot, generation)) = self.closing.front() {
            if ready > now_ns {
                break;
            }
            self.closing.pop_front();
            // A connection whose other end was merged in after this was queued
            // waits for that end's own close.
            let closed = self.slots.get(slot).is_some_and(Connection::all_closed);
            if self.slots.generation(slot) == generation && closed {
                self.finish_slot(slot, sink);
            }
        }
    }

    fn decide_handover(&mut self, slot: u32, side: Side, sink: &mut impl TrackerSink) {
        let Some(connection) = self.slots.get_mut(slot) else {
            return;
        };
        if let Some(ts_ns) = connection.decide_handover(side) {
            sink.time_wait(connection, side, ts_ns);
        }
    }

    /// The socket on `side` sent its FIN: the other end may enter TIME_WAIT now.
    fn peer_fin(&mut self, slot: u32, side: Side, ts_ns: u64, sink: &mut impl TrackerSink) {
        let Some(connection) = self.slots.get_mut(slot) else {
            return;
        };
        if connection.peer_sent_fin(side, ts_ns) {
            sink.time_wait(connection, side.other(), ts_ns);
        }
    }

    fn finish_slot(&mut self, slot: u32, sink: &mut impl TrackerSink) {
        for side in [Side::Client, Side::Server] {
            if self
                .slots
                .get(slot)
                .is_some_and(|c| c.handover_pending(side))
            {
                self.decide_handover(slot, side, sink);
            }
        }
        // Handed over where it lies, then dropped with its slot: a connection is a few
        // hundred bytes, and this runs for every one.
        let Some(connection) = self.slots.get_mut(slot) else {
            return;
        };
        let refused = connection.refused_by_server;
        for side in [Side::Client, Side::Server] {
            if let Some(endpoint) = connection.endpoint_mut(side) {
                endpoint.resolve(refused);
                self.sockets.remove(&endpoint.key());
                if endpoint.indexed {
                    self.ends
                        .unregister(&endpoint.scope(), &endpoint.tuple, side, slot);
                }
            }
        }
        connection.incomplete |= connection.gap_epoch != self.gap_epoch;
        sink.finished(connection);
        self.slots.free(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::verdict::{CloseHow, CloseVerdict, ClosedFirst},
        synth::{SERVER_NS, Script, task},
    };

    const MS: u64 = 1_000_000;

    /// What the tracker told its sink.
    #[derive(Default)]
    struct Told {
        finished: Vec<Connection>,
        time_wait: Vec<(Side, u64)>,
        tuples_in_use: usize,
        refused: Vec<(String, u64)>,
    }

    impl TrackerSink for Told {
        fn finished(&mut self, connection: &Connection) {
            self.finished.push(connection.clone());
        }

        fn time_wait(&mut self, _: &Connection, side: Side, ts_ns: u64) {
            self.time_wait.push((side, ts_ns));
        }

        fn tuple_in_use(&mut self, _: HostId, _: u32, _: &SocketTuple) {
            self.tuples_in_use += 1;
        }

        fn refused_unseen(&mut self, key: PairKey, _: HostId, ts_ns: u64) {
            self.refused
                .push((format!("{} -> {}", key.client, key.server), ts_ns));
        }
    }

    fn feed(tracker: &mut ConnectionTracker, script: &Script, told: &mut Told) {
        for event in &script.events {
            tracker.on_event(event, None, told);
        }
    }

    #[test]
    fn both_ends_are_one_connection_handed_over_after_the_grace_period() {
        let (app, java) = (task(7, "app"), task(42, "java"));
        let mut s = Script::default();
        let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
        s.at(MS)
            .open(e, app)
            .fin_close(e.client, e.server, app, java);
        let (mut tracker, mut told) = (ConnectionTracker::default(), Told::default());
        feed(&mut tracker, &s, &mut told);
        assert_eq!(tracker.live(), 1);
        assert_eq!(told.tuples_in_use, 2);
        assert!(told.finished.is_empty(), "within the grace period");
        let mut later = Script::default();
        later
            .at(2 * MS + GRACE_NS)
            .listener(SERVER_NS, "10.0.0.1:81", java);
        feed(&mut tracker, &later, &mut told);
        assert_eq!(tracker.live(), 0);
        assert_eq!(told.time_wait, [(Side::Client, 2 * MS)]);
        let [connection] = told.finished.as_slice() else {
            panic!("{} connections", told.finished.len())
        };
        assert!(connection.client.is_some() && connection.server.is_some());
        assert_eq!(connection.verdict().closed_first, ClosedFirst::Client);
        assert!(!connection.incomplete && !connection.role_guessed);
    }

    #[test]
    fn listeners_are_not_connections_but_tell_roles_apart() {
        use TcpState::*;
        let mut s = Script::default();
        s.listener(SERVER_NS, "10.0.0.1:8080", task(42, "java"));
        // A socket first seen in mid-life, on the listening port.
        let accepted = s.socket(SERVER_NS, "10.0.0.1:8080", "10.0.0.2:80");
        s.at(MS).tr(accepted, Established, FinWait1, None);
        let (mut tracker, mut told) = (ConnectionTracker::default(), Told::default());
        feed(&mut tracker, &s, &mut told);
        tracker.finish(&mut told);
        let [connection] = told.finished.as_slice() else {
            panic!("{} connections", told.finished.len())
        };
        assert!(connection.server.is_some(), "the listener's side");
        assert!(connection.incomplete && connection.role_guessed);
        assert_eq!(
            connection.verdict(),
            CloseVerdict {
                closed_first: ClosedFirst::Server,
                how: Some(CloseHow::Fin)
            }
        );
    }

    #[test]
    fn a_no_socket_reset_from_a_closed_port_is_a_refused_connect() {
        let mut s = Script::default();
        s.at(MS).rst_sent(
            SocketRef::Unmatched {
                scope: Default::default(),
                tuple: crate::synth::tuple("10.0.0.1:81", "10.0.0.2:40000"),
            },
            ResetReason::NO_SOCKET,
            None,
        );
        let (mut tracker, mut told) = (ConnectionTracker::default(), Told::default());
        feed(&mut tracker, &s, &mut told);
        assert_eq!(told.refused, [("10.0.0.2 -> 10.0.0.1:81".to_owned(), MS)]);
        // From a listening port it answers a stray segment instead.
        let mut listening = Script::default();
        listening.listener(0, "10.0.0.1:81", task(42, "java"));
        listening.events.extend(s.events);
        let (mut tracker, mut told) = (ConnectionTracker::default(), Told::default());
        feed(&mut tracker, &listening, &mut told);
        assert!(told.refused.is_empty());
    }

    #[test]
    fn filtered_sockets_are_not_tracked_and_gaps_mark_what_lived_across_them() {
        let app = task(7, "app");
        let mut s = Script::default();
        let kept = s.ends("10.0.0.2:40000", "10.0.0.1:80");
        let dropped = s.ends("10.0.0.2:40001", "10.0.0.9:80");
        s.at(MS)
            .open(kept, app)
            .open(dropped, app)
            .lost(MS, 2 * MS, 1);
        let filter = EndpointFilter {
            server: Some(EndpointFilter::parse_server("10.0.0.1").unwrap()),
            client: None,
        };
        let (mut tracker, mut told) = (ConnectionTracker::new(filter), Told::default());
        feed(&mut tracker, &s, &mut told);
        assert_eq!(tracker.live(), 1);
        tracker.finish(&mut told);
        assert_eq!(told.finished.len(), 1);
        assert_eq!(told.finished[0].verdict(), CloseVerdict::OPEN);
        assert!(told.finished[0].incomplete);
    }
}
