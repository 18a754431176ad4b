//! The connection tracker: turns the event stream into connections, each one 4-tuple
//! lifecycle with up to two sockets (the client's and the server's), and hands every
//! connection to a [`TrackerSink`] once it has ended.
//!
//! Memory is bounded by the connections that are open (plus those closed within the
//! last [`GRACE_NS`]): a connection is forgotten as soon as it has been handed over.

use std::{cell::Cell, collections::VecDeque, net::SocketAddr};

use rustc_hash::FxHashMap;

use crate::{
    analysis::{
        keys::AddrPairKey,
        pairs::PairKey,
        verdict::{CloseStart, CloseVerdict, Side, combine},
    },
    idmap::ConnIdMap,
    model::{
        ConnId, EndpointFilter, ResetReason, SnapshotSocket, SocketRef, SocketTuple, Task,
        TcpState, TraceEvent, Transition,
    },
    owner::Owner,
};

/// How long a closed connection waits before it is handed over: the kernel reports
/// the RST of a local abort and the errno of a failed connect right *after* the
/// socket's →CLOSE (kernel-facts §1.2), and the other end of the connection may still
/// be closing. Both follow within microseconds; the margin covers events that
/// different CPUs delivered slightly out of order.
pub const GRACE_NS: u64 = 50_000_000;

/// A close step whose meaning depends on events that follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    /// SYN_SENT→CLOSE: refused, timed out or unreachable, told by the errno after it.
    Connect,
    /// →CLOSE from an open state with no RST received: a local abort if our own RST
    /// follows.
    Abort,
}

/// One socket of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub conn: ConnId,
    pub netns: u32,
    /// As this socket sees it (local = this end).
    pub tuple: SocketTuple,
    pub state: TcpState,
    /// First event, when it was an opening one (connect, or a child socket born).
    pub opened_ns: Option<u64>,
    pub established_ns: Option<u64>,
    pub closed_ns: Option<u64>,
    /// The first sign of the end this socket saw, and when.
    pub start: Option<(CloseStart, u64)>,
    pending: Pending,
    pub rst_received: bool,
    pub rst_sent: bool,
    /// The first non-zero errno reported to the application.
    pub errno: Option<i32>,
    /// When it handed over to a timewait socket (FIN_WAIT2/CLOSING→CLOSE), and from
    /// which state. Tentative for [`GRACE_NS`]: a linger-0 `close()` from FIN_WAIT2 makes
    /// the same transition, and only the RST traced after it tells them apart.
    handover: Option<(u64, TcpState)>,
    /// It handed over from FIN_WAIT2 while the traced peer had not sent its FIN: the
    /// timewait socket is in its FIN_WAIT2 substate (`ss` lists FIN-WAIT-2) until that
    /// FIN arrives, and dies after `tcp_fin_timeout` if it never does.
    awaiting_peer_fin: bool,
    /// It sent its FIN (→FIN_WAIT1 or →LAST_ACK).
    pub fin_sent: bool,
    /// When it entered TIME_WAIT.
    pub time_wait_ns: Option<u64>,
    /// When it entered CLOSE_WAIT (for sockets from the start snapshot: the snapshot).
    pub close_wait_ns: Option<u64>,
    /// When it left CLOSE_WAIT (the application called `close()`).
    pub close_wait_left_ns: Option<u64>,
    pub owner: Option<Task>,
    indexed: bool,
}

impl Endpoint {
    fn new(conn: ConnId, netns: u32, tuple: SocketTuple, state: TcpState) -> Self {
        Self {
            conn,
            netns,
            tuple,
            state,
            opened_ns: None,
            established_ns: None,
            closed_ns: None,
            start: None,
            pending: Pending::None,
            rst_received: false,
            rst_sent: false,
            errno: None,
            handover: None,
            awaiting_peer_fin: false,
            fin_sent: false,
            time_wait_ns: None,
            close_wait_ns: None,
            close_wait_left_ns: None,
            owner: None,
            indexed: false,
        }
    }

    fn begin(&mut self, start: CloseStart, ts_ns: u64) {
        if self.start.is_none() {
            self.start = Some((start, ts_ns));
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed_ns.is_some()
    }

    /// Decides what an ambiguous close step meant, from what followed it.
    fn resolve(&mut self, refused_by_server: bool) {
        let Some(closed) = self.closed_ns else { return };
        match self.pending {
            Pending::None => {}
            Pending::Connect => {
                let start = match self.errno {
                    Some(111) => CloseStart::Refused,
                    _ if self.rst_received || refused_by_server => CloseStart::Refused,
                    Some(110) | None => CloseStart::TimedOut,
                    Some(_) => CloseStart::Unreachable,
                };
                self.begin(start, closed);
            }
            Pending::Abort => self.begin(
                if self.rst_sent {
                    CloseStart::LocalRst
                } else {
                    CloseStart::Abort
                },
                closed,
            ),
        }
        self.pending = Pending::None;
    }

    /// Applies one transition; returns true when the socket handed over to a timewait
    /// socket (tentatively: see [`Endpoint::handover`]).
    fn apply(&mut self, t: &Transition) -> bool {
        use TcpState::*;
        let ts = t.ts_ns;
        self.state = t.new;
        if matches!(t.new, FinWait1 | LastAck) {
            self.fin_sent = true;
        }
        let mut time_wait = false;
        match (t.old, t.new) {
            (SynSent | SynRecv, Established) => {
                self.established_ns.get_or_insert(ts);
            }
            (Established | SynRecv, FinWait1) => self.begin(CloseStart::LocalFin, ts),
            (FinWait1, Closing) => {
                // Our FIN crossed theirs.
                if matches!(self.start, None | Some((CloseStart::LocalFin, _))) {
                    self.start = Some((CloseStart::BothFin, ts));
                }
            }
            (_, CloseWait) => {
                self.begin(CloseStart::PeerFin, ts);
                self.close_wait_ns = Some(ts);
            }
            (FinWait2 | Closing, Close) if !self.rst_received => {
                time_wait = true;
                self.handover = Some((ts, t.old));
            }
            (SynSent, Close) => {
                if self.rst_received {
                    self.begin(CloseStart::Refused, ts);
                } else {
                    self.pending = Pending::Connect;
                }
            }
            (LastAck, Close) => {}
            (_, Close) => {
                if self.rst_received {
                    self.begin(CloseStart::PeerRst, ts);
                } else if self.start.is_none() {
                    self.pending = Pending::Abort;
                }
            }
            _ => {}
        }
        if t.old == CloseWait && t.new != CloseWait {
            self.close_wait_left_ns = Some(ts);
        }
        if t.new == Close {
            self.closed_ns = Some(ts);
        }
        time_wait
    }

    fn complete(&self) -> bool {
        self.tuple.local.port() != 0 && self.tuple.remote.port() != 0
    }
}

/// One 4-tuple lifecycle: the client's socket, the server's, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub client: Option<Endpoint>,
    pub server: Option<Endpoint>,
    /// The role was guessed (a socket first seen in mid-life: ports and listeners).
    pub role_guessed: bool,
    /// It existed before the recording started (start snapshot).
    pub preexisting: bool,
    /// Events may be missing: lost events while it lived, or first seen in mid-life.
    pub incomplete: bool,
    /// When the tracker first saw it.
    pub first_seen_ns: u64,
    /// An RST without a socket from the server's host answered this connect.
    pub refused_by_server: bool,
    /// RSTs attributed to a side without a socket event (no-socket replies).
    extra_resets: [bool; 2],
    gap_epoch: u32,
    /// The owner's index for this connection's pair, once looked up.
    pair_index: Cell<u32>,
}

impl Connection {
    pub fn pair_index(&self) -> Option<u32> {
        Some(self.pair_index.get()).filter(|&i| i != u32::MAX)
    }

    pub fn set_pair_index(&self, index: u32) {
        self.pair_index.set(index);
    }

    pub fn endpoint(&self, side: Side) -> Option<&Endpoint> {
        match side {
            Side::Client => self.client.as_ref(),
            Side::Server => self.server.as_ref(),
        }
    }

    fn endpoint_mut(&mut self, side: Side) -> Option<&mut Endpoint> {
        match side {
            Side::Client => self.client.as_mut(),
            Side::Server => self.server.as_mut(),
        }
    }

    fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.client.iter().chain(self.server.iter())
    }

    pub fn all_closed(&self) -> bool {
        self.endpoints().all(Endpoint::is_closed)
    }

    pub fn verdict(&self) -> CloseVerdict {
        combine(
            self.client.and_then(|e| e.start.map(|s| s.0)),
            self.server.and_then(|e| e.start.map(|s| s.0)),
        )
    }

    /// When it was opened (the earliest opening event of its sockets).
    pub fn start_ns(&self) -> Option<u64> {
        self.endpoints().filter_map(|e| e.opened_ns).min()
    }

    /// When its last socket closed; `None` while any is open.
    pub fn end_ns(&self) -> Option<u64> {
        self.endpoints()
            .map(|e| e.closed_ns)
            .try_fold(0u64, |acc, c| c.map(|c| acc.max(c)))
    }

    /// The client's address:port and the server's address:port.
    pub fn addresses(&self) -> (SocketAddr, SocketAddr) {
        match (&self.client, &self.server) {
            (Some(c), _) => (c.tuple.local, c.tuple.remote),
            (None, Some(s)) => (s.tuple.remote, s.tuple.local),
            (None, None) => (
                SocketTuple::UNSPECIFIED.local,
                SocketTuple::UNSPECIFIED.remote,
            ),
        }
    }

    pub fn pair_key(&self) -> PairKey {
        let (client, server) = self.addresses();
        PairKey::new(client.ip(), server)
    }

    /// Whether `side` sent an RST: seen on its socket, or seen arriving at the other.
    pub fn sent_reset(&self, side: Side) -> bool {
        self.extra_resets[side.index()]
            || self.endpoint(side).is_some_and(|e| e.rst_sent)
            || self.endpoint(side.other()).is_some_and(|e| e.rst_received)
    }

    /// From the completed handshake to the first closer's first close step, as seen by
    /// the first closer when it was traced (else by the other end).
    pub fn close_delay_ns(&self, verdict: CloseVerdict) -> Option<u64> {
        let first = verdict.closed_first.side()?;
        let delay = |e: &Endpoint| Some(e.start?.1.saturating_sub(e.established_ns?));
        self.endpoint(first)
            .and_then(delay)
            .or_else(|| self.endpoint(first.other()).and_then(delay))
    }
}

/// What the tracker tells its owner.
pub trait TrackerSink {
    /// A connection ended (or the trace did); it is forgotten after this call.
    fn finished(&mut self, connection: &Connection);
    /// A socket of `connection` handed over to a timewait socket at `ts_ns`.
    fn time_wait(&mut self, connection: &Connection, side: Side, ts_ns: u64);
    /// A new connection uses this 4-tuple in this namespace (which ends a TIME_WAIT).
    fn tuple_in_use(&mut self, netns: u32, tuple: &SocketTuple);
    /// A connect refused by a traced host whose client was not traced.
    fn refused_unseen(&mut self, key: PairKey, ts_ns: u64);
}

/// The sockets of one client-view 4-tuple, to merge both ends of a connection.
#[derive(Clone, Copy, Debug, Default)]
struct Ends {
    client: Option<u32>,
    server: Option<u32>,
    clients: u16,
    servers: u16,
}

#[derive(Debug)]
struct Slot {
    connection: Option<Connection>,
    generation: u32,
}

#[derive(Debug, Default)]
pub struct ConnectionTracker {
    slots: Vec<Slot>,
    free: Vec<u32>,
    sockets: ConnIdMap<(u32, Side)>,
    /// Keyed by the fingerprint of (client address, server address): a small key keeps
    /// this table, touched twice per socket, in cache.
    ends: FxHashMap<u64, Ends>,
    /// Listening sockets per (netns, port), and per port in any namespace.
    listeners: FxHashMap<(u32, u16), u32>,
    listen_ports: FxHashMap<u16, u32>,
    /// Connections waiting for [`GRACE_NS`] after their last socket closed.
    closing: VecDeque<(u64, u32, u32)>,
    /// Hand-overs to timewait sockets waiting for [`GRACE_NS`]: (ready at, socket).
    handovers: VecDeque<(u64, ConnId)>,
    gap_epoch: u32,
    now_ns: u64,
    filter: EndpointFilter,
}

/// The (client, server) addresses of a socket on `side`.
fn client_view(tuple: &SocketTuple, side: Side) -> (SocketAddr, SocketAddr) {
    match side {
        Side::Client => (tuple.local, tuple.remote),
        Side::Server => (tuple.remote, tuple.local),
    }
}

fn ends_key(tuple: &SocketTuple, side: Side) -> u64 {
    let (client, server) = client_view(tuple, side);
    AddrPairKey::new(0, client, server).fingerprint()
}

impl ConnectionTracker {
    pub fn new(filter: EndpointFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Connections currently held (open, or closed within the grace period).
    pub fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn connection_mut(&mut self, slot: u32) -> Option<&mut Connection> {
        self.slots
            .get_mut(slot as usize)
            .and_then(|s| s.connection.as_mut())
    }

    fn connection(&self, slot: u32) -> Option<&Connection> {
        self.slots
            .get(slot as usize)
            .and_then(|s| s.connection.as_ref())
    }

    fn allocate(&mut self, connection: Connection) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.slots[slot as usize].connection = Some(connection);
            slot
        } else {
            self.slots.push(Slot {
                connection: Some(connection),
                generation: 0,
            });
            u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
        }
    }

    fn release(&mut self, slot: u32) -> Option<Connection> {
        let entry = self.slots.get_mut(slot as usize)?;
        let connection = entry.connection.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        Some(connection)
    }

    /// Marks that events were lost: connections alive now may be incomplete.
    pub fn on_gap(&mut self) {
        self.gap_epoch = self.gap_epoch.wrapping_add(1);
    }

    fn is_listening(&self, netns: u32, port: u16) -> bool {
        self.listeners.contains_key(&(netns, port))
    }

    fn listen(&mut self, netns: u32, port: u16, open: bool) {
        fn bump<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, u32>, key: K, open: bool) {
            if open {
                *map.entry(key).or_default() += 1;
            } else if let Some(count) = map.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&key);
                }
            }
        }
        bump(&mut self.listeners, (netns, port), open);
        bump(&mut self.listen_ports, port, open);
    }

    /// The role of a socket first seen without an opening transition: the server end
    /// if something listens on its local port, the client end if something listens on
    /// its peer's port, otherwise the end with the lower port is the server's
    /// (ephemeral ports are high).
    pub fn guess_side(&self, netns: u32, tuple: &SocketTuple) -> Side {
        if self.is_listening(netns, tuple.local.port()) {
            Side::Server
        } else if self.listen_ports.contains_key(&tuple.remote.port()) {
            Side::Client
        } else if tuple.local.port() < tuple.remote.port() {
            Side::Server
        } else {
            Side::Client
        }
    }

    /// The pair and side of a socket that the tracker may not know (TIME_WAIT and end
    /// snapshot sockets).
    pub fn classify(&self, netns: u32, tuple: &SocketTuple) -> (PairKey, Side) {
        let side = self.guess_side(netns, tuple);
        let (client, server) = client_view(tuple, side);
        (PairKey::new(client.ip(), server), side)
    }

    fn track(&mut self, endpoint: Endpoint, side: Side, connection: Connection) -> u32 {
        let id = endpoint.conn;
        let mut connection = connection;
        match side {
            Side::Client => connection.client = Some(endpoint),
            Side::Server => connection.server = Some(endpoint),
        }
        let slot = self.allocate(connection);
        self.sockets.insert(id, (slot, side));
        slot
    }

    fn new_connection(&self, first_seen_ns: u64) -> Connection {
        Connection {
            client: None,
            server: None,
            role_guessed: false,
            preexisting: false,
            incomplete: false,
            first_seen_ns,
            refused_by_server: false,
            extra_resets: [false; 2],
            gap_epoch: self.gap_epoch,
            pair_index: Cell::new(u32::MAX),
        }
    }

    /// Registers a socket under its client-view 4-tuple once the tuple is complete,
    /// and merges it with the other end when exactly one candidate exists.
    fn index(&mut self, slot: u32, side: Side, sink: &mut impl TrackerSink) {
        let Some(endpoint) = self.connection(slot).and_then(|c| c.endpoint(side)) else {
            return;
        };
        if endpoint.indexed || !endpoint.complete() {
            return;
        }
        let (netns, tuple) = (endpoint.netns, endpoint.tuple);
        if let Some(e) = self.connection_mut(slot).and_then(|c| c.endpoint_mut(side)) {
            e.indexed = true;
        }
        sink.tuple_in_use(netns, &tuple);
        let ends = self.ends.entry(ends_key(&tuple, side)).or_default();
        match side {
            Side::Client => {
                ends.clients += 1;
                ends.client.get_or_insert(slot);
            }
            Side::Server => {
                ends.servers += 1;
                ends.server.get_or_insert(slot);
            }
        }
        if let (1, 1, Some(client), Some(server)) =
            (ends.clients, ends.servers, ends.client, ends.server)
            && client != server
        {
            ends.server = Some(client);
            self.merge(client, server);
        }
    }

    /// Moves the server end from `server_slot` into the client's connection.
    fn merge(&mut self, client_slot: u32, server_slot: u32) {
        let mergeable = self
            .connection(client_slot)
            .is_some_and(|c| c.server.is_none())
            && self
                .connection(server_slot)
                .is_some_and(|c| c.client.is_none() && c.server.is_some());
        if !mergeable {
            return;
        }
        let Some(other) = self.release(server_slot) else {
            return;
        };
        let Some(server) = other.server else { return };
        self.sockets
            .insert(server.conn, (client_slot, Side::Server));
        let Some(connection) = self.connection_mut(client_slot) else {
            return;
        };
        connection.server = Some(server);
        connection.role_guessed |= other.role_guessed;
        connection.preexisting |= other.preexisting;
        connection.incomplete |= other.incomplete || other.gap_epoch != connection.gap_epoch;
        connection.refused_by_server |= other.refused_by_server;
        connection.first_seen_ns = connection.first_seen_ns.min(other.first_seen_ns);
        for i in 0..2 {
            connection.extra_resets[i] |= other.extra_resets[i];
        }
        if connection.all_closed() {
            let ready = connection.end_ns().unwrap_or(0).saturating_add(GRACE_NS);
            let generation = self.slots[client_slot as usize].generation;
            self.closing.push_back((ready, client_slot, generation));
        }
    }

    fn unindex(&mut self, endpoint: &Endpoint, side: Side, slot: u32) {
        if !endpoint.indexed {
            return;
        }
        let key = ends_key(&endpoint.tuple, side);
        if let Some(ends) = self.ends.get_mut(&key) {
            let (count, held) = match side {
                Side::Client => (&mut ends.clients, &mut ends.client),
                Side::Server => (&mut ends.servers, &mut ends.server),
            };
            *count = count.saturating_sub(1);
            // The slot will be reused: never leave a reference to it behind.
            if *held == Some(slot) || *count == 0 {
                *held = None;
            }
            if ends.clients == 0 && ends.servers == 0 {
                self.ends.remove(&key);
            }
        }
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
            self.decide_handover(conn, sink);
        }
        while let Some(&(ready, slot, generation)) = self.closing.front() {
            if ready > now_ns {
                break;
            }
            self.closing.pop_front();
            // A connection whose other end was merged in after this was queued
            // waits for that end's own close.
            let closed = self.connection(slot).is_some_and(Connection::all_closed);
            if self.slots[slot as usize].generation == generation && closed {
                self.finish_slot(slot, sink);
            }
        }
    }

    /// Decides what a socket's hand-over to a timewait socket was, once nothing can
    /// contradict it any more:
    /// - its own RST followed (a linger-0 `close()` from FIN_WAIT2): an abort, no
    ///   timewait socket at all;
    /// - from FIN_WAIT2 while the traced other end has not sent its FIN (an orphaned
    ///   close, kernel-facts §1.2): the timewait socket waits in FIN_WAIT2, and enters
    ///   TIME_WAIT only when that FIN arrives (see [`Self::peer_fin`]);
    /// - otherwise TIME_WAIT, from the hand-over (CLOSING, or the peer's FIN already
    ///   sent, or the other end not traced: then an orphaned FIN_WAIT2 cannot be told
    ///   apart and counts as TIME_WAIT; the end snapshot shows the kernel's view).
    fn decide_handover(&mut self, conn: ConnId, sink: &mut impl TrackerSink) {
        let Some(&(slot, side)) = self.sockets.get(&conn) else {
            return;
        };
        let Some(connection) = self.connection_mut(slot) else {
            return;
        };
        let peer_fin_pending = connection
            .endpoint(side.other())
            .is_some_and(|other| !other.fin_sent);
        let Some(endpoint) = connection.endpoint_mut(side) else {
            return;
        };
        let Some((ts_ns, from)) = endpoint.handover.take() else {
            return;
        };
        if endpoint.rst_sent {
            return;
        }
        if from == TcpState::FinWait2 && peer_fin_pending {
            endpoint.awaiting_peer_fin = true;
            return;
        }
        endpoint.time_wait_ns = Some(ts_ns);
        sink.time_wait(connection, side, ts_ns);
    }

    /// The socket on `side` sent its FIN: a timewait socket of the other end waiting in
    /// its FIN_WAIT2 substate enters TIME_WAIT now (the FIN restarts its timer at 60 s).
    fn peer_fin(&mut self, slot: u32, side: Side, ts_ns: u64, sink: &mut impl TrackerSink) {
        let Some(connection) = self.connection_mut(slot) else {
            return;
        };
        let Some(other) = connection.endpoint_mut(side.other()) else {
            return;
        };
        if !std::mem::take(&mut other.awaiting_peer_fin) {
            return;
        }
        other.time_wait_ns = Some(ts_ns);
        sink.time_wait(connection, side.other(), ts_ns);
    }

    fn finish_slot(&mut self, slot: u32, sink: &mut impl TrackerSink) {
        for side in [Side::Client, Side::Server] {
            let pending = self
                .connection(slot)
                .and_then(|c| c.endpoint(side))
                .filter(|e| e.handover.is_some())
                .map(|e| e.conn);
            if let Some(conn) = pending {
                self.decide_handover(conn, sink);
            }
        }
        let Some(mut connection) = self.release(slot) else {
            return;
        };
        let refused = connection.refused_by_server;
        for side in [Side::Client, Side::Server] {
            if let Some(endpoint) = connection.endpoint_mut(side) {
                endpoint.resolve(refused);
                let endpoint = *endpoint;
                self.sockets.remove(&endpoint.conn);
                self.unindex(&endpoint, side, slot);
            }
        }
        connection.incomplete |= connection.gap_epoch != self.gap_epoch;
        sink.finished(&connection);
    }

    /// Hands over every connection still held, as the trace ends.
    pub fn finish(&mut self, sink: &mut impl TrackerSink) {
        for slot in 0..self.slots.len() {
            self.finish_slot(u32::try_from(slot).unwrap_or(u32::MAX), sink);
        }
        self.closing.clear();
        self.handovers.clear();
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
                if let Some(e) = self.endpoint_mut(r.conn.id) {
                    e.rst_received = true;
                }
            }
            TraceEvent::ResetSent(r) => match r.socket {
                SocketRef::Conn(conn) => {
                    if let Some(e) = self.endpoint_mut(conn.id) {
                        e.rst_sent = true;
                        if r.reason == ResetReason::TCP_ABORT_ON_DATA && e.rst_received {
                            // Data arrived after shutdown(SHUT_RD): the kernel resets the
                            // socket itself (`tcp_reset()` fires tcp_receive_reset) and then
                            // sends this RST. The peer sent none.
                            e.rst_received = false;
                            if let Some((CloseStart::PeerRst, ts)) = e.start {
                                e.start = Some((CloseStart::LocalRst, ts));
                            }
                        }
                        if e.pending == Pending::Abort {
                            e.resolve(false);
                        }
                    }
                }
                SocketRef::Unmatched { scope, tuple } => {
                    self.on_unmatched_reset(scope.netns, &tuple, r.reason, ts, sink);
                }
            },
            TraceEvent::SocketError(e) => {
                if let SocketRef::Conn(conn) = e.socket
                    && e.errno != 0
                    && let Some(endpoint) = self.endpoint_mut(conn.id)
                {
                    endpoint.errno.get_or_insert(e.errno);
                    if endpoint.pending == Pending::Connect {
                        endpoint.resolve(false);
                    }
                }
            }
            TraceEvent::Lost(_) => self.on_gap(),
        }
    }

    fn endpoint_mut(&mut self, id: ConnId) -> Option<&mut Endpoint> {
        let &(slot, side) = self.sockets.get(&id)?;
        self.connection_mut(slot)?.endpoint_mut(side)
    }

    fn on_transition(
        &mut self,
        t: &Transition,
        owner: Option<&Owner>,
        sink: &mut impl TrackerSink,
    ) {
        use TcpState::*;
        let (slot, side) = match self.sockets.get(&t.conn.id) {
            Some(&found) => found,
            None => {
                // Listening sockets are not connections; they only tell roles apart.
                match (t.old, t.new) {
                    (_, Listen) => {
                        return self.listen(t.conn.scope.netns, t.conn.tuple.local.port(), true);
                    }
                    (Listen, Close) => {
                        return self.listen(t.conn.scope.netns, t.conn.tuple.local.port(), false);
                    }
                    _ => {}
                }
                if t.new == Close && t.old == Close {
                    return;
                }
                if self.filter.excludes(&t.conn.tuple) {
                    return;
                }
                let (side, opening) = match (t.old, t.new) {
                    (Close, SynSent) => (Side::Client, true),
                    (Listen, SynRecv) => (Side::Server, true),
                    (SynSent, _) => (Side::Client, false),
                    (SynRecv, _) => (Side::Server, false),
                    _ => (self.guess_side(t.conn.scope.netns, &t.conn.tuple), false),
                };
                let mut endpoint =
                    Endpoint::new(t.conn.id, t.conn.scope.netns, t.conn.tuple, t.old);
                let mut connection = self.new_connection(t.ts_ns);
                if opening {
                    endpoint.opened_ns = Some(t.ts_ns);
                } else {
                    // First seen in mid-life: opened before the trace without being in
                    // its start snapshot, or its first events were lost.
                    connection.incomplete = true;
                    connection.role_guessed = !matches!(t.old, SynSent | SynRecv);
                }
                (self.track(endpoint, side, connection), side)
            }
        };
        let Some(connection) = self.connection_mut(slot) else {
            return;
        };
        let Some(endpoint) = connection.endpoint_mut(side) else {
            return;
        };
        // The recorder completes a tuple as it learns it; once registered for merging
        // it stays as registered, so that it can be found again to unregister.
        if !endpoint.indexed && endpoint.tuple != t.conn.tuple && t.conn.tuple.local.port() != 0 {
            endpoint.tuple = t.conn.tuple;
        }
        if let Some(owner) = owner {
            endpoint.owner = Some(owner.task);
        }
        let fin_sent_before = endpoint.fin_sent;
        let handover = endpoint.apply(t);
        let fin_sent_now = !fin_sent_before && endpoint.fin_sent;
        let indexed = endpoint.indexed;
        if handover {
            self.handovers
                .push_back((t.ts_ns.saturating_add(GRACE_NS), t.conn.id));
        }
        if fin_sent_now {
            self.peer_fin(slot, side, t.ts_ns, sink);
        }
        if t.new == Close && self.connection(slot).is_some_and(Connection::all_closed) {
            let generation = self.slots[slot as usize].generation;
            self.closing
                .push_back((t.ts_ns.saturating_add(GRACE_NS), slot, generation));
        }
        if !indexed {
            self.index(slot, side, sink);
        }
    }

    fn on_snapshot(&mut self, s: &SnapshotSocket, sink: &mut impl TrackerSink) {
        use TcpState::*;
        if self.sockets.contains_key(&s.conn.id) {
            return;
        }
        match s.state {
            Listen => return self.listen(s.conn.scope.netns, s.conn.tuple.local.port(), true),
            // TIME_WAIT sockets are the caller's (see `classify`); nothing else to know.
            TimeWait | Close | NewSynRecv => return,
            _ => {}
        }
        if self.filter.excludes(&s.conn.tuple) {
            return;
        }
        let side = match s.state {
            SynSent => Side::Client,
            SynRecv => Side::Server,
            _ => self.guess_side(s.conn.scope.netns, &s.conn.tuple),
        };
        let mut endpoint = Endpoint::new(s.conn.id, s.conn.scope.netns, s.conn.tuple, s.state);
        endpoint.owner = s.owner;
        endpoint.fin_sent = matches!(s.state, FinWait1 | FinWait2 | Closing | LastAck);
        // A close already under way when the trace began.
        match s.state {
            FinWait1 | FinWait2 => endpoint.begin(CloseStart::LocalFin, s.ts_ns),
            Closing => endpoint.begin(CloseStart::BothFin, s.ts_ns),
            CloseWait | LastAck => endpoint.begin(CloseStart::PeerFin, s.ts_ns),
            _ => {}
        }
        if s.state == CloseWait {
            endpoint.close_wait_ns = Some(s.ts_ns);
        }
        let mut connection = self.new_connection(s.ts_ns);
        connection.preexisting = true;
        connection.role_guessed = !matches!(s.state, SynSent | SynRecv);
        let slot = self.track(endpoint, side, connection);
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
        netns: u32,
        tuple: &SocketTuple,
        reason: ResetReason,
        ts_ns: u64,
        sink: &mut impl TrackerSink,
    ) {
        // `tuple.local` is the host that sent the RST.
        for side in [Side::Server, Side::Client] {
            let key = ends_key(tuple, side);
            let Some(ends) = self.ends.get(&key).copied() else {
                continue;
            };
            let Some(slot) = ends.client.or(ends.server) else {
                continue;
            };
            let Some(connection) = self.connection_mut(slot) else {
                continue;
            };
            connection.extra_resets[side.index()] = true;
            let connecting = connection
                .client
                .is_some_and(|c| c.established_ns.is_none() && c.start.is_none());
            if side == Side::Server && reason == ResetReason::NO_SOCKET && connecting {
                connection.refused_by_server = true;
            }
            return;
        }
        let port = tuple.local.port();
        let listening = if netns == 0 {
            self.listen_ports.contains_key(&port)
        } else {
            self.is_listening(netns, port)
        };
        if reason == ResetReason::NO_SOCKET && !listening && !self.filter.excludes(tuple) {
            sink.refused_unseen(PairKey::new(tuple.remote.ip(), tuple.local), ts_ns);
        }
    }
}
