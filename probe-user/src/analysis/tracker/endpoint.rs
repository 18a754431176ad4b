//! One socket of a connection: its state, and the first sign of the end it saw.

use crate::{
    analysis::verdict::CloseStart,
    model::{
        ConnId, ConnKey, HostId, ResetReason, Scope, SnapshotSocket, SocketTuple, Task,
        TcpCounters, TcpState, Transition, known_port,
    },
};

/// A close step whose meaning depends on events that follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pending {
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
    /// The host whose trace holds it (its `conn` and `netns` are that host's).
    pub host: HostId,
    pub netns: u32,
    /// Its cgroup v2 id (0: not recorded).
    pub cgroup: u64,
    /// As this socket sees it (local = this end).
    pub tuple: SocketTuple,
    pub state: TcpState,
    /// First event, when it was an opening one (connect, or a child socket born).
    pub opened_ns: Option<u64>,
    pub established_ns: Option<u64>,
    pub closed_ns: Option<u64>,
    /// The first sign of the end this socket saw, and when.
    pub start: Option<(CloseStart, u64)>,
    pub(super) pending: Pending,
    pub rst_received: bool,
    pub rst_sent: bool,
    /// The first non-zero errno reported to the application.
    pub errno: Option<i32>,
    /// When it handed over to a timewait socket (FIN_WAIT2/CLOSING→CLOSE), and from
    /// which state. Tentative for the tracker's grace period: a linger-0 `close()` from
    /// FIN_WAIT2 makes the same transition, and only the RST traced after it tells them
    /// apart.
    pub(super) handover: Option<(u64, TcpState)>,
    /// It handed over from FIN_WAIT2 while the traced peer had not sent its FIN: the
    /// timewait socket is in its FIN_WAIT2 substate (`ss` lists FIN-WAIT-2) until that
    /// FIN arrives, and dies after `tcp_fin_timeout` if it never does.
    pub(super) awaiting_peer_fin: bool,
    /// It sent its FIN (→FIN_WAIT1 or →LAST_ACK).
    pub fin_sent: bool,
    /// When it entered TIME_WAIT.
    pub time_wait_ns: Option<u64>,
    /// When it entered CLOSE_WAIT (for sockets from the start snapshot: the snapshot).
    pub close_wait_ns: Option<u64>,
    /// When it left CLOSE_WAIT (the application called `close()`).
    pub close_wait_left_ns: Option<u64>,
    pub owner: Option<Task>,
    /// The latest counters the socket's transitions carried (the final ones once it
    /// closed), and the transition that carried them.
    pub counters: Option<(TcpCounters, (TcpState, TcpState))>,
    /// Registered under its 4-tuple for merging with the other end.
    pub(super) indexed: bool,
}

impl Endpoint {
    pub fn new(conn: ConnId, netns: u32, tuple: SocketTuple, state: TcpState) -> Self {
        Self {
            conn,
            host: HostId::FIRST,
            netns,
            cgroup: 0,
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
            counters: None,
            indexed: false,
        }
    }

    /// A socket of the start snapshot, with a close already under way when the trace
    /// began.
    pub fn from_snapshot(s: &SnapshotSocket) -> Self {
        use TcpState::*;
        let mut endpoint = Self::new(s.conn.id, s.conn.scope.netns, s.conn.tuple, s.state);
        endpoint.host = s.conn.scope.host;
        endpoint.cgroup = s.conn.scope.cgroup;
        endpoint.owner = s.owner;
        endpoint.fin_sent = matches!(s.state, FinWait1 | FinWait2 | Closing | LastAck);
        match s.state {
            FinWait1 | FinWait2 => endpoint.begin(CloseStart::LocalFin, s.ts_ns),
            Closing => endpoint.begin(CloseStart::BothFin, s.ts_ns),
            CloseWait | LastAck => endpoint.begin(CloseStart::PeerFin, s.ts_ns),
            _ => {}
        }
        if s.state == CloseWait {
            endpoint.close_wait_ns = Some(s.ts_ns);
        }
        endpoint
    }

    /// The socket among those of every host.
    pub const fn key(&self) -> ConnKey {
        ConnKey {
            host: self.host,
            id: self.conn,
        }
    }

    fn begin(&mut self, start: CloseStart, ts_ns: u64) {
        if self.start.is_none() {
            self.start = Some((start, ts_ns));
        }
    }

    /// Where the socket lives.
    pub const fn scope(&self) -> Scope {
        Scope {
            netns: self.netns,
            cgroup: self.cgroup,
            host: self.host,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed_ns.is_some()
    }

    /// Both ports are known (the recorder completes a connecting socket's tuple).
    pub fn is_complete(&self) -> bool {
        self.tuple.local.port() != 0 && self.tuple.remote.port() != 0
    }

    /// Decides what an ambiguous close step meant, from what followed it
    /// (`refused_by_server`: the server's host answered the connect with an RST).
    pub fn resolve(&mut self, refused_by_server: bool) {
        let Some(closed) = self.closed_ns else { return };
        match self.pending {
            Pending::None => {}
            Pending::Connect => {
                let start = match self.errno {
                    Some(111) => CloseStart::Refused,
                    _ if self.rst_received || refused_by_server => CloseStart::Refused,
                    // `inet_hash_connect()` found no port: nothing was sent, and
                    // `connect()` returned the error without reporting it on the socket.
                    None if known_port(self.tuple.local.port()).is_none() => {
                        CloseStart::NoLocalPort
                    }
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
    pub fn apply(&mut self, t: &Transition) -> bool {
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
        if let Some(counters) = t.counters {
            self.counters = Some((counters, (t.old, t.new)));
        }
        time_wait
    }

    /// Payload bytes this socket sent that its peer acknowledged, from its own
    /// counters: `bytes_acked` less the sequence numbers of a connecting socket's SYN
    /// (`connected`: this is the end that connected) and of its FIN once acknowledged
    /// (`docs/kernel-facts.md §7`).
    pub fn acked_payload(&self, connected: bool) -> Option<u64> {
        use TcpState::*;
        let (counters, at) = self.counters?;
        let acked = counters.bytes_acked()?;
        let syn = u64::from(connected && acked > 0);
        let fin = match at {
            // FIN_WAIT2 is reached only once the FIN is acknowledged.
            (FinWait2, Close) => 1,
            // The FIN's ACK ends LAST_ACK and CLOSING, unless an RST did.
            (LastAck | Closing, Close) => u64::from(!self.rst_received),
            _ => 0,
        };
        Some(acked.saturating_sub(syn + fin))
    }

    /// Payload bytes this socket received, from its own counters: `bytes_received` less
    /// the peer's FIN once it arrived (`SOCK_DONE` says so; without it, the states do,
    /// but not for a FIN_WAIT2→CLOSE hand-over: then it is unknown).
    pub fn received_payload(&self) -> Option<u64> {
        use TcpState::*;
        let (counters, at) = self.counters?;
        let received = counters.bytes_received()?;
        let fin = match (counters.peer_fin(), at) {
            (Some(fin), _) => u64::from(fin),
            (None, (_, CloseWait) | (CloseWait | LastAck | Closing, _)) => 1,
            // A hand-over to TIME_WAIT follows the peer's FIN, but an orphaned socket's
            // comes first (docs/kernel-facts.md §1.2).
            (None, (FinWait2, Close)) if !self.rst_received => return None,
            (None, _) => 0,
        };
        Some(received.saturating_sub(fin))
    }

    /// This socket sent an RST.
    pub fn on_reset_sent(&mut self, reason: Option<ResetReason>) {
        self.rst_sent = true;
        // A kernel without reasons (before 6.10) shows the same: a socket never answers
        // an RST with one.
        let abort_on_data = matches!(reason, Some(ResetReason::TCP_ABORT_ON_DATA) | None);
        if abort_on_data && self.rst_received {
            // Data arrived after shutdown(SHUT_RD): the kernel resets the socket itself
            // (`tcp_reset()` fires tcp_receive_reset) and then sends this RST. The peer
            // sent none.
            self.rst_received = false;
            if let Some((CloseStart::PeerRst, ts)) = self.start {
                self.start = Some((CloseStart::LocalRst, ts));
            }
        }
        if self.pending == Pending::Abort {
            self.resolve(false);
        }
    }

    /// The application was told `errno` (non-zero).
    pub fn on_error(&mut self, errno: i32) {
        self.errno.get_or_insert(errno);
        if self.pending == Pending::Connect {
            self.resolve(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use TcpState::*;

    use super::*;
    use crate::{
        model::{Conn, ExecContext, Scope},
        synth::tuple,
    };

    fn socket() -> Conn {
        Conn {
            id: 1,
            scope: Scope::default(),
            tuple: tuple("10.0.0.2:40000", "10.0.0.1:80"),
        }
    }

    fn tr(ts_ns: u64, old: TcpState, new: TcpState) -> Transition {
        Transition {
            ts_ns,
            conn: socket(),
            old,
            new,
            context: ExecContext::Softirq,
            task: None,
            counters: None,
        }
    }

    /// Applies `steps` at 1, 2, 3... ns; returns the endpoint and the hand-over flags.
    fn after(start: TcpState, steps: &[(TcpState, TcpState)]) -> (Endpoint, Vec<bool>) {
        let mut e = Endpoint::new(1, 0, socket().tuple, start);
        let handovers = steps
            .iter()
            .zip(1..)
            .map(|(&(old, new), ts)| e.apply(&tr(ts, old, new)))
            .collect();
        (e, handovers)
    }

    #[test]
    fn an_active_close_starts_with_our_fin_and_hands_over_to_time_wait() {
        let (e, handovers) = after(
            SynSent,
            &[
                (SynSent, Established),
                (Established, FinWait1),
                (FinWait1, FinWait2),
                (FinWait2, Close),
            ],
        );
        assert_eq!(e.established_ns, Some(1));
        assert_eq!(e.start, Some((CloseStart::LocalFin, 2)));
        assert!(e.fin_sent && e.is_closed());
        assert_eq!(handovers, [false, false, false, true]);
        assert_eq!(e.handover, Some((4, FinWait2)));
    }

    #[test]
    fn a_passive_close_records_close_wait() {
        let (e, handovers) = after(
            Established,
            &[
                (Established, CloseWait),
                (CloseWait, LastAck),
                (LastAck, Close),
            ],
        );
        assert_eq!(e.start, Some((CloseStart::PeerFin, 1)));
        assert_eq!((e.close_wait_ns, e.close_wait_left_ns), (Some(1), Some(2)));
        assert!(handovers.iter().all(|h| !h));
    }

    #[test]
    fn crossed_fins_are_simultaneous() {
        let (e, _) = after(
            Established,
            &[
                (Established, FinWait1),
                (FinWait1, Closing),
                (Closing, Close),
            ],
        );
        assert_eq!(e.start, Some((CloseStart::BothFin, 2)));
        assert_eq!(e.handover, Some((3, Closing)));
    }

    #[test]
    fn a_failed_connect_is_told_by_the_errno_after_it() {
        for (errno, rst, expected) in [
            (Some(111), false, CloseStart::Refused),
            (None, true, CloseStart::Refused),
            (Some(110), false, CloseStart::TimedOut),
            (None, false, CloseStart::TimedOut),
            (Some(113), false, CloseStart::Unreachable),
        ] {
            let (mut e, _) = after(SynSent, &[(SynSent, Close)]);
            assert_eq!(e.pending, Pending::Connect);
            e.rst_received = rst;
            match errno {
                Some(errno) => e.on_error(errno),
                None => e.resolve(false),
            }
            assert_eq!(e.start, Some((expected, 1)), "errno {errno:?}, rst {rst}");
            assert_eq!(e.pending, Pending::None);
        }
    }

    #[test]
    fn a_connect_that_never_got_a_port_found_none_free() {
        let (mut e, _) = after(SynSent, &[(SynSent, Close)]);
        e.tuple.local.set_port(0);
        e.resolve(false);
        assert_eq!(e.start, Some((CloseStart::NoLocalPort, 1)));
        // A reported error still decides (the port may be missing from the trace).
        let (mut e, _) = after(SynSent, &[(SynSent, Close)]);
        e.tuple.local.set_port(0);
        e.on_error(111);
        assert_eq!(e.start, Some((CloseStart::Refused, 1)));
    }

    #[test]
    fn a_close_without_a_received_reset_is_an_abort_told_by_our_own_reset() {
        let (mut e, _) = after(Established, &[(Established, Close)]);
        assert_eq!(e.pending, Pending::Abort);
        e.on_reset_sent(Some(ResetReason::TCP_ABORT_ON_CLOSE));
        assert_eq!(e.start, Some((CloseStart::LocalRst, 1)));
        let (mut silent, _) = after(Established, &[(Established, Close)]);
        silent.resolve(false);
        assert_eq!(silent.start, Some((CloseStart::Abort, 1)));
    }

    #[test]
    fn a_reset_for_data_after_shutdown_is_ours_not_the_peers() {
        let mut e = Endpoint::new(1, 0, socket().tuple, FinWait2);
        e.rst_received = true;
        assert!(
            !e.apply(&tr(5, FinWait2, Close)),
            "a reset socket hands over to nothing"
        );
        assert_eq!(e.start, Some((CloseStart::PeerRst, 5)));
        e.on_reset_sent(Some(ResetReason::TCP_ABORT_ON_DATA));
        assert!(!e.rst_received && e.rst_sent);
        assert_eq!(e.start, Some((CloseStart::LocalRst, 5)));
    }

    #[test]
    fn snapshot_sockets_carry_the_close_under_way() {
        let snapshot = |state| SnapshotSocket {
            ts_ns: 9,
            conn: socket(),
            state,
            owner: None,
            inode: 1,
            uid: 0,
            timer_ms: None,
            at_end: false,
            shared_with: Default::default(),
        };
        let e = Endpoint::from_snapshot(&snapshot(CloseWait));
        assert_eq!(e.start, Some((CloseStart::PeerFin, 9)));
        assert_eq!(e.close_wait_ns, Some(9));
        assert!(!e.fin_sent);
        let e = Endpoint::from_snapshot(&snapshot(FinWait2));
        assert_eq!(e.start, Some((CloseStart::LocalFin, 9)));
        assert!(e.fin_sent);
        assert_eq!(Endpoint::from_snapshot(&snapshot(Established)).start, None);
        assert!(Endpoint::from_snapshot(&snapshot(Established)).is_complete());
    }
}
