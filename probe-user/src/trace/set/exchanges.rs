//! Finding the messages that both hosts of a connection traced: the send on one host
//! and its receipt on the other, matched by the connection's 4-tuple (as the client
//! sees it). They become [`Exchange`]s for the clock ([`super::clock`]).
//!
//! Which transitions send and which receive (`docs/kernel-facts.md §1.2`), each traced
//! before the segment leaves or after it arrived:
//!
//! | message | sent (traced before it leaves) | received |
//! |---|---|---|
//! | handshake ACK | client SYN_SENT→ESTABLISHED | server LISTEN→SYN_RECV (the child is born from the ACK) |
//! | first FIN | ESTABLISHED/SYN_RECV→FIN_WAIT1 | peer ESTABLISHED→CLOSE_WAIT or FIN_WAIT1→CLOSING |
//! | ACK of that FIN | ESTABLISHED→CLOSE_WAIT | peer FIN_WAIT1→FIN_WAIT2 |
//! | RST | `tcp_send_reset` on the socket | peer `tcp_receive_reset` |
//!
//! Left out on purpose: transitions the kernel traces after the segment they answer
//! left (FIN_WAIT1→CLOSING sends its ACK first; FIN_WAIT2→CLOSE too), and FIN_WAIT2→CLOSE
//! itself, which an orphaned socket also makes without any segment.
//!
//! Memory is bounded: a half waits at most [`MATCH_WINDOW_NS`] for its other half, and
//! at most [`MAX_PENDING`] wait at once.

use std::{
    collections::{BTreeMap, VecDeque},
    hash::{Hash, Hasher},
    net::SocketAddr,
};

use rustc_hash::{FxHashMap, FxHasher};

use crate::{
    idmap::ConnIdMap,
    model::{ConnKey, HostId, SocketRef, SocketTuple, TcpState, TraceEvent, Transition},
    trace::set::clock::{Exchange, ExchangeLog},
};

/// How far apart (on the header clocks) the two halves of a message may be found.
pub const MATCH_WINDOW_NS: u64 = 10_000_000_000;
/// Halves waiting for their other half, at most; beyond, the oldest wait no longer.
pub const MAX_PENDING: usize = 1 << 18;
/// How long a closed socket's role is kept: its RST follows its →CLOSE.
const CLOSED_RETENTION_NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Message {
    HandshakeAck,
    Fin,
    FinAck,
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    Client,
    Server,
}

impl Role {
    fn other(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// What is known of a socket.
#[derive(Clone, Copy, Debug)]
struct Socket {
    role: Role,
    syn_sent_ns: Option<u64>,
    reset_sent: bool,
}

/// One end of a message.
#[derive(Clone, Copy, Debug)]
struct Half {
    host: HostId,
    ts_ns: u64,
    sending: bool,
    round_trip_ns: Option<u64>,
    /// The server's port, for the accounting of handshakes that found no other end.
    server_port: u16,
}

/// Handshakes on one host that found no other end on another host, by server port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unmatched {
    pub connects: u64,
    pub accepts: u64,
}

/// Collects exchanges from a stream of events of several hosts (see the module docs).
#[derive(Debug, Default)]
pub struct ExchangeFinder {
    sockets: ConnIdMap<Socket>,
    closed: VecDeque<(u64, ConnKey)>,
    pending: FxHashMap<u64, Half>,
    /// (when a half was put, its key, its message), oldest first.
    order: VecDeque<(u64, u64, Message)>,
    pub log: ExchangeLog,
    /// Handshakes matched between two hosts, per host pair (lower id first).
    pub matched: BTreeMap<(HostId, HostId), u64>,
    /// Handshakes that found no other end, per (host, server port).
    pub unmatched: BTreeMap<(HostId, u16), Unmatched>,
    now_ns: u64,
}

/// The connection's addresses as its client sees them, IPv4-mapped IPv6 as IPv4.
fn client_view(tuple: &SocketTuple, role: Role) -> (SocketAddr, SocketAddr) {
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    match role {
        Role::Client => (canonical(tuple.local), canonical(tuple.remote)),
        Role::Server => (canonical(tuple.remote), canonical(tuple.local)),
    }
}

fn message_key(tuple: &SocketTuple, role: Role, message: Message, sender: Role) -> u64 {
    let mut hasher = FxHasher::default();
    client_view(tuple, role).hash(&mut hasher);
    message.hash(&mut hasher);
    sender.hash(&mut hasher);
    hasher.finish()
}

impl ExchangeFinder {
    pub fn on_event(&mut self, event: &TraceEvent) {
        let ts = event.ts_ns();
        if ts > self.now_ns {
            self.now_ns = ts;
            self.expire(ts);
        }
        match event {
            TraceEvent::Transition(t) => self.on_transition(t),
            TraceEvent::ResetSent(r) => {
                if let SocketRef::Conn(conn) = &r.socket
                    && let Some(socket) = self.sockets.get_mut(&conn.key())
                    && !socket.reset_sent
                {
                    socket.reset_sent = true;
                    let role = socket.role;
                    let message = (Message::Reset, role);
                    self.half(conn.key(), &conn.tuple, role, message, ts, None);
                }
            }
            TraceEvent::ResetReceived(r) => {
                if let Some(socket) = self.sockets.get(&r.conn.key()) {
                    let role = socket.role;
                    let (key, tuple) = (r.conn.key(), r.conn.tuple);
                    self.half(key, &tuple, role, (Message::Reset, role.other()), ts, None);
                }
            }
            _ => {}
        }
    }

    fn on_transition(&mut self, t: &Transition) {
        use TcpState::*;
        let key = t.conn.key();
        let role = match (t.old, t.new) {
            (Close, SynSent) => {
                self.learn(key, Role::Client, Some(t.ts_ns));
                return;
            }
            (Listen, SynRecv) => {
                self.learn(key, Role::Server, None);
                Role::Server
            }
            (SynSent, _) => self.role_or(key, Role::Client),
            (SynRecv, _) => self.role_or(key, Role::Server),
            _ => match self.sockets.get(&key) {
                Some(socket) => socket.role,
                None => return,
            },
        };
        let (tuple, ts, peer) = (&t.conn.tuple, t.ts_ns, role.other());
        match (t.old, t.new) {
            (SynSent, Established) => {
                let round_trip = self
                    .sockets
                    .get(&key)
                    .and_then(|s| s.syn_sent_ns)
                    .map(|sent| ts.saturating_sub(sent));
                let message = (Message::HandshakeAck, Role::Client);
                self.half(key, tuple, role, message, ts, round_trip);
            }
            (Listen, SynRecv) => {
                let message = (Message::HandshakeAck, Role::Client);
                self.half(key, tuple, role, message, ts, None);
            }
            (Established | SynRecv, FinWait1) => {
                self.half(key, tuple, role, (Message::Fin, role), ts, None);
            }
            (Established, CloseWait) => {
                self.half(key, tuple, role, (Message::Fin, peer), ts, None);
                self.half(key, tuple, role, (Message::FinAck, role), ts, None);
            }
            (FinWait1, Closing) => self.half(key, tuple, role, (Message::Fin, peer), ts, None),
            (FinWait1, FinWait2) => {
                self.half(key, tuple, role, (Message::FinAck, peer), ts, None);
            }
            _ => {}
        }
        if t.new == Close {
            self.closed.push_back((ts, key));
        }
    }

    fn learn(&mut self, key: ConnKey, role: Role, syn_sent_ns: Option<u64>) {
        self.sockets.insert(
            key,
            Socket {
                role,
                syn_sent_ns,
                reset_sent: false,
            },
        );
    }

    fn role_or(&mut self, key: ConnKey, role: Role) -> Role {
        self.sockets
            .entry(key)
            .or_insert(Socket {
                role,
                syn_sent_ns: None,
                reset_sent: false,
            })
            .role
    }

    /// This socket's (in `role`) end of `message` (sent by the second member): matched
    /// with the other end when it is waiting, otherwise put to wait for it.
    fn half(
        &mut self,
        socket: ConnKey,
        tuple: &SocketTuple,
        role: Role,
        (message, sender): (Message, Role),
        ts_ns: u64,
        round_trip_ns: Option<u64>,
    ) {
        let sending = role == sender;
        let key = message_key(tuple, role, message, sender);
        let half = Half {
            host: socket.host,
            ts_ns,
            sending,
            round_trip_ns,
            server_port: client_view(tuple, role).1.port(),
        };
        if let Some(waiting) = self.pending.get(&key).copied()
            && waiting.sending != sending
        {
            self.pending.remove(&key);
            self.matched_halves(message, waiting, half);
            return;
        }
        while self.order.len() >= MAX_PENDING {
            self.expire_oldest();
        }
        // A newer incarnation of the 4-tuple replaces a half that was never matched.
        if let Some(old) = self.pending.insert(key, half) {
            self.unmatched_half(message, &old);
        }
        self.order.push_back((ts_ns, key, message));
    }

    fn matched_halves(&mut self, message: Message, a: Half, b: Half) {
        if a.host == b.host {
            return;
        }
        let (sent, received) = if a.sending { (a, b) } else { (b, a) };
        if message == Message::HandshakeAck {
            let pair = (sent.host.min(received.host), sent.host.max(received.host));
            *self.matched.entry(pair).or_default() += 1;
        }
        self.log.record(&Exchange {
            from: sent.host,
            to: received.host,
            sent_ns: sent.ts_ns,
            received_ns: received.ts_ns,
            round_trip_ns: sent.round_trip_ns,
        });
    }

    fn unmatched_half(&mut self, message: Message, half: &Half) {
        if message != Message::HandshakeAck {
            return;
        }
        let entry = self
            .unmatched
            .entry((half.host, half.server_port))
            .or_default();
        if half.sending {
            entry.connects += 1;
        } else {
            entry.accepts += 1;
        }
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some(&(closed_at, key)) = self.closed.front() {
            if now_ns.saturating_sub(closed_at) < CLOSED_RETENTION_NS {
                break;
            }
            self.closed.pop_front();
            self.sockets.remove(&key);
        }
        while let Some(&(put_at, _, _)) = self.order.front() {
            if now_ns.saturating_sub(put_at) < MATCH_WINDOW_NS {
                break;
            }
            self.expire_oldest();
        }
    }

    /// The oldest half put to wait waits no longer (unless it was matched or replaced
    /// since).
    fn expire_oldest(&mut self) {
        let Some((put_at, key, message)) = self.order.pop_front() else {
            return;
        };
        if let Some(half) = self.pending.get(&key).copied()
            && half.ts_ns == put_at
        {
            self.pending.remove(&key);
            self.unmatched_half(message, &half);
        }
    }

    /// The end of the stream: every half still waiting found no other end.
    pub fn finish(&mut self) {
        self.expire(u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Ends, Script, task};

    const US: u64 = 1_000;

    /// `events` as two hosts traced them: the client's socket on host 0, the server's on
    /// host 1, whose clock reads `skew` later.
    fn on_two_hosts(s: &Script, e: &Ends, skew: u64) -> Vec<TraceEvent> {
        let mut events: Vec<TraceEvent> = s
            .events
            .iter()
            .map(|&event| {
                let mut event = event;
                let on_server = match &event {
                    TraceEvent::Transition(t) => t.conn.id == e.server.id,
                    TraceEvent::ResetSent(_) => true,
                    _ => false,
                };
                if on_server {
                    event.set_host(HostId(1));
                    event.shift(skew);
                }
                event
            })
            .collect();
        events.sort_by_key(TraceEvent::ts_ns);
        events
    }

    #[test]
    fn each_message_seen_at_both_ends_is_an_exchange() {
        let mut s = Script::default();
        let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
        s.at(100 * US)
            .open(e, task(7, "app"))
            .at(200 * US)
            .fin_close(e.client, e.server, task(7, "app"), task(42, "java"));
        let mut finder = ExchangeFinder::default();
        for event in on_two_hosts(&s, &e, 5_000 * US) {
            finder.on_event(&event);
        }
        finder.finish();
        // The handshake's ACK, the client's FIN and the server's ACK of it.
        assert_eq!(finder.log.seen, 3);
        assert_eq!(finder.matched.get(&(HostId(0), HostId(1))), Some(&1));
        assert!(finder.unmatched.is_empty(), "{:?}", finder.unmatched);
        let [link] = finder.log.offsets().try_into().unwrap();
        assert_eq!(link.offset_ns, 5_000 * US as i64);
    }

    #[test]
    fn translated_addresses_leave_both_ends_unmatched() {
        let mut s = Script::default();
        let client = s.socket(1, "10.0.0.2:40000", "10.96.0.10:80");
        let server = s.socket(2, "10.0.0.1:80", "192.168.0.2:31000");
        let e = Ends { client, server };
        s.at(100 * US).open(e, task(7, "app"));
        let mut finder = ExchangeFinder::default();
        for event in on_two_hosts(&s, &e, 0) {
            finder.on_event(&event);
        }
        finder.finish();
        assert_eq!(finder.log.seen, 0);
        assert_eq!(
            finder.unmatched.get(&(HostId(0), 80)),
            Some(&Unmatched {
                connects: 1,
                accepts: 0
            })
        );
        assert_eq!(
            finder.unmatched.get(&(HostId(1), 80)),
            Some(&Unmatched {
                connects: 0,
                accepts: 1
            })
        );
    }
}
