//! One 4-tuple lifecycle: the client's socket, the server's, or both; and what the two
//! views say about its end.

use std::{cell::Cell, net::SocketAddr};

use crate::{
    analysis::{
        pairs::{ConnectionOutcome, PairKey},
        tracker::Endpoint,
        verdict::{CloseVerdict, Side, combine},
    },
    model::SocketTuple,
    owner::{Candidates, Owner},
};

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
    pub(super) extra_resets: [bool; 2],
    /// The tracker's count of gaps when it was first seen.
    pub(super) gap_epoch: u32,
    /// The aggregates' index for this connection's pair, once looked up.
    pair_index: Cell<u32>,
    /// By [`Side::index`]: while an end's owner is not known, the processes it may be
    /// (those holding the listener an accepted socket came from). Rare, so boxed:
    /// connections are moved as they are tracked.
    candidates: Option<Box<[Option<Candidates>; 2]>>,
}

impl Connection {
    pub fn new(first_seen_ns: u64, gap_epoch: u32) -> Self {
        Self {
            client: None,
            server: None,
            role_guessed: false,
            preexisting: false,
            incomplete: false,
            first_seen_ns,
            refused_by_server: false,
            extra_resets: [false; 2],
            gap_epoch,
            pair_index: Cell::new(u32::MAX),
            candidates: None,
        }
    }

    /// Takes the owner an event of `side` was attributed to: a known one replaces the
    /// candidates.
    pub fn set_owner(&mut self, side: Side, owner: &Owner) {
        let Some(endpoint) = self.endpoint_mut(side) else {
            return;
        };
        match (owner.task(), owner.candidates()) {
            (Some(task), _) => {
                endpoint.owner = Some(*task);
                if let Some(candidates) = &mut self.candidates {
                    candidates[side.index()] = None;
                }
            }
            (None, Some(candidates)) if endpoint.owner.is_none() => {
                self.candidates.get_or_insert_default()[side.index()] = Some(*candidates);
            }
            _ => {}
        }
    }

    /// The processes `side` may belong to, while its owner is not known.
    pub fn candidates(&self, side: Side) -> Option<Candidates> {
        self.candidates.as_ref()?[side.index()]
    }

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

    pub fn endpoint_mut(&mut self, side: Side) -> Option<&mut Endpoint> {
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

    /// Takes in what a connection holding the other end knew, when it turns out to be
    /// this one (its socket has moved here already).
    pub fn absorb(&mut self, other: &Self) {
        self.role_guessed |= other.role_guessed;
        self.preexisting |= other.preexisting;
        self.incomplete |= other.incomplete || other.gap_epoch != self.gap_epoch;
        self.refused_by_server |= other.refused_by_server;
        self.first_seen_ns = self.first_seen_ns.min(other.first_seen_ns);
        for (mine, theirs) in self.extra_resets.iter_mut().zip(other.extra_resets) {
            *mine |= theirs;
        }
        for side in [Side::Client, Side::Server] {
            if let Some(candidates) = other.candidates(side)
                && self.candidates(side).is_none()
            {
                self.candidates.get_or_insert_default()[side.index()] = Some(candidates);
            }
        }
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

    /// What the pair statistics need of it.
    pub fn outcome(&self) -> ConnectionOutcome {
        let verdict = self.verdict();
        ConnectionOutcome {
            verdict,
            start_ns: self.start_ns(),
            end_ns: self.end_ns(),
            close_delay_ns: self.close_delay_ns(verdict),
            resets: [self.sent_reset(Side::Client), self.sent_reset(Side::Server)],
            bytes: [self.bytes_sent(Side::Client), self.bytes_sent(Side::Server)],
            preexisting: self.preexisting,
            incomplete: self.incomplete,
        }
    }

    /// Payload bytes `side` sent: acknowledged, by its own counters when it was traced,
    /// else received, by the other end's. `None` when neither end's counters tell (a
    /// trace without counters, a kernel that lacks them).
    pub fn bytes_sent(&self, side: Side) -> Option<u64> {
        self.endpoint(side)
            .and_then(|e| e.acked_payload(side == Side::Client))
            .or_else(|| {
                self.endpoint(side.other())
                    .and_then(Endpoint::received_payload)
            })
    }

    /// Segments `side` retransmitted (only its own socket counts them).
    pub fn retransmits(&self, side: Side) -> Option<u32> {
        self.endpoint(side)?.counters?.0.retransmits()
    }

    /// The smoothed round-trip time, in microseconds: the client's estimate, else the
    /// server's (0, no sample yet, is none).
    pub fn rtt_us(&self) -> Option<u32> {
        let rtt = |side| {
            self.endpoint(side)
                .and_then(|e| e.counters?.0.srtt_us())
                .filter(|&us| us > 0)
        };
        rtt(Side::Client).or_else(|| rtt(Side::Server))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::verdict::{CloseHow, CloseStart, ClosedFirst},
        model::TcpState,
        synth::tuple,
    };

    fn endpoint(id: u64, local: &str, remote: &str) -> Endpoint {
        Endpoint::new(id, 0, tuple(local, remote), TcpState::Established)
    }

    /// A connection whose server closed first with a FIN 3 ms after the handshake,
    /// seen from both ends; the client then reset it.
    fn server_closed() -> Connection {
        let mut client = endpoint(1, "10.0.0.2:40000", "10.0.0.1:80");
        let mut server = endpoint(2, "10.0.0.1:80", "10.0.0.2:40000");
        client.opened_ns = Some(10);
        client.established_ns = Some(20);
        client.start = Some((CloseStart::PeerFin, 23));
        client.closed_ns = Some(40);
        client.rst_sent = true;
        server.established_ns = Some(20);
        server.start = Some((CloseStart::LocalFin, 23));
        server.closed_ns = Some(30);
        let mut c = Connection::new(10, 0);
        c.client = Some(client);
        c.server = Some(server);
        c
    }

    #[test]
    fn both_views_give_the_outcome() {
        let c = server_closed();
        let outcome = c.outcome();
        assert_eq!(outcome.verdict.closed_first, ClosedFirst::Server);
        assert_eq!(outcome.verdict.how, Some(CloseHow::Fin));
        assert_eq!((outcome.start_ns, outcome.end_ns), (Some(10), Some(40)));
        assert_eq!(outcome.close_delay_ns, Some(3));
        assert_eq!(outcome.resets, [true, false]);
        assert!(c.all_closed());
        assert_eq!(c.pair_key().server.to_string(), "10.0.0.1:80");
    }

    #[test]
    fn an_open_socket_has_no_end_and_one_end_gives_the_addresses() {
        let mut c = Connection::new(0, 0);
        assert_eq!(c.addresses().1.port(), 0);
        c.server = Some(endpoint(2, "10.0.0.1:80", "10.0.0.2:40000"));
        assert_eq!(c.addresses().0.to_string(), "10.0.0.2:40000");
        assert_eq!(c.end_ns(), None);
        assert!(!c.all_closed());
        assert_eq!(c.outcome().verdict, CloseVerdict::OPEN);
        // The server's RST, seen arriving at the client.
        c.client = Some(endpoint(1, "10.0.0.2:40000", "10.0.0.1:80"));
        c.client.as_mut().unwrap().rst_received = true;
        assert!(c.sent_reset(Side::Server) && !c.sent_reset(Side::Client));
    }

    #[test]
    fn absorbing_the_other_end_keeps_every_flag() {
        let mut c = Connection::new(50, 1);
        let mut other = Connection::new(20, 0);
        other.preexisting = true;
        other.extra_resets = [false, true];
        c.absorb(&other);
        assert!(
            c.preexisting && c.incomplete,
            "a gap between their first sights"
        );
        assert_eq!(c.first_seen_ns, 20);
        assert!(c.sent_reset(Side::Server));
        assert_eq!(c.pair_index(), None);
        c.set_pair_index(3);
        assert_eq!(c.pair_index(), Some(3));
    }
}
