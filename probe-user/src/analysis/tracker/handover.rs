//! When a socket's hand-over to a timewait socket (FIN_WAIT2/CLOSING→CLOSE) starts
//! TIME_WAIT. No tracepoint reports TIME_WAIT (`docs/kernel-facts.md §1.3`), so it is
//! decided from what the connection's two sockets did around the hand-over.

use crate::{
    analysis::{tracker::Connection, verdict::Side},
    model::TcpState,
};

impl Connection {
    /// Decides what the hand-over of the socket on `side` was, once nothing can
    /// contradict it any more; returns when TIME_WAIT started, if it did now:
    /// - its own RST followed (a linger-0 `close()` from FIN_WAIT2): an abort, no
    ///   timewait socket at all;
    /// - from FIN_WAIT2 while the traced other end has not sent its FIN (an orphaned
    ///   close, `docs/kernel-facts.md §1.2`): the timewait socket waits in FIN_WAIT2,
    ///   and enters TIME_WAIT only when that FIN arrives (see [`Self::peer_sent_fin`]);
    /// - otherwise TIME_WAIT, from the hand-over (CLOSING, or the peer's FIN already
    ///   sent, or the other end not traced: then an orphaned FIN_WAIT2 cannot be told
    ///   apart and counts as TIME_WAIT; the end snapshot shows the kernel's view).
    pub fn decide_handover(&mut self, side: Side) -> Option<u64> {
        let peer_fin_pending = self
            .endpoint(side.other())
            .is_some_and(|other| !other.fin_sent);
        let endpoint = self.endpoint_mut(side)?;
        let (ts_ns, from) = endpoint.handover.take()?;
        if endpoint.rst_sent {
            return None;
        }
        if from == TcpState::FinWait2 && peer_fin_pending {
            endpoint.awaiting_peer_fin = true;
            return None;
        }
        endpoint.time_wait_ns = Some(ts_ns);
        Some(ts_ns)
    }

    /// Whether a hand-over of the socket on `side` waits for a decision.
    pub fn handover_pending(&self, side: Side) -> bool {
        self.endpoint(side).is_some_and(|e| e.handover.is_some())
    }

    /// The socket on `side` sent its FIN at `ts_ns`: a timewait socket of the other end
    /// waiting in its FIN_WAIT2 substate enters TIME_WAIT now (the FIN restarts its
    /// timer at 60 s). Returns whether it did.
    pub fn peer_sent_fin(&mut self, side: Side, ts_ns: u64) -> bool {
        let Some(other) = self.endpoint_mut(side.other()) else {
            return false;
        };
        if !std::mem::take(&mut other.awaiting_peer_fin) {
            return false;
        }
        other.time_wait_ns = Some(ts_ns);
        true
    }
}

#[cfg(test)]
mod tests {
    use TcpState::*;

    use super::*;
    use crate::{analysis::tracker::Endpoint, synth::tuple};

    /// The client handed over from `from` at 5 ns; the server sent its FIN or not.
    fn handed_over(from: TcpState, server_fin_sent: bool) -> Connection {
        let mut client = Endpoint::new(1, 0, tuple("10.0.0.2:40000", "10.0.0.1:80"), Close);
        client.handover = Some((5, from));
        let mut server = Endpoint::new(2, 0, tuple("10.0.0.1:80", "10.0.0.2:40000"), CloseWait);
        server.fin_sent = server_fin_sent;
        let mut c = Connection::new(0, 0);
        c.client = Some(client);
        c.server = Some(server);
        c
    }

    #[test]
    fn time_wait_starts_at_the_hand_over_when_the_peer_has_closed() {
        let mut c = handed_over(FinWait2, true);
        assert!(c.handover_pending(Side::Client));
        assert_eq!(c.decide_handover(Side::Client), Some(5));
        assert_eq!(c.client.unwrap().time_wait_ns, Some(5));
        assert!(!c.handover_pending(Side::Client));
        assert_eq!(c.decide_handover(Side::Client), None, "decided once");
        let mut closing = handed_over(Closing, false);
        assert_eq!(closing.decide_handover(Side::Client), Some(5));
    }

    #[test]
    fn a_reset_after_the_hand_over_was_an_abort() {
        let mut c = handed_over(FinWait2, true);
        c.client.as_mut().unwrap().rst_sent = true;
        assert_eq!(c.decide_handover(Side::Client), None);
        assert_eq!(c.client.unwrap().time_wait_ns, None);
    }

    #[test]
    fn an_orphaned_fin_wait2_waits_for_the_peers_fin() {
        let mut c = handed_over(FinWait2, false);
        assert_eq!(c.decide_handover(Side::Client), None);
        assert!(
            !c.peer_sent_fin(Side::Client, 7),
            "only the peer's FIN counts"
        );
        assert!(c.peer_sent_fin(Side::Server, 9));
        assert_eq!(c.client.unwrap().time_wait_ns, Some(9));
        assert!(!c.peer_sent_fin(Side::Server, 10), "once");
    }

    #[test]
    fn without_the_other_end_the_hand_over_counts_as_time_wait() {
        let mut c = handed_over(FinWait2, false);
        c.server = None;
        assert_eq!(c.decide_handover(Side::Client), Some(5));
    }
}
