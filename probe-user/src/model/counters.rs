//! A socket's `struct tcp_sock` counters at one state change.

use probe_common::counter_field as field;

/// What the kernel counted for a socket, as read at one state change. Each field is
/// `None` when the kernel program could not read it (a kernel whose `tcp_sock` lacks
/// the member, no BTF, a failed read): unknown, never 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// [`probe_common::counter_field`] bits of the fields that are known.
    known: u8,
    /// `SOCK_DONE`: the peer's FIN was processed.
    peer_fin: bool,
    bytes_sent: u64,
    bytes_acked: u64,
    bytes_received: u64,
    segs_in: u32,
    segs_out: u32,
    retransmits: u32,
    srtt_us: u32,
}

/// Builds [`TcpCounters`] field by field; fields left unset are unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersBuilder(TcpCounters);

impl CountersBuilder {
    pub fn bytes_sent(mut self, value: u64) -> Self {
        self.0.known |= field::BYTES_SENT;
        self.0.bytes_sent = value;
        self
    }

    pub fn bytes_acked(mut self, value: u64) -> Self {
        self.0.known |= field::BYTES_ACKED;
        self.0.bytes_acked = value;
        self
    }

    pub fn bytes_received(mut self, value: u64) -> Self {
        self.0.known |= field::BYTES_RECEIVED;
        self.0.bytes_received = value;
        self
    }

    pub fn segs(mut self, segs_in: u32, segs_out: u32) -> Self {
        self.0.known |= field::SEGS;
        self.0.segs_in = segs_in;
        self.0.segs_out = segs_out;
        self
    }

    pub fn retransmits(mut self, value: u32) -> Self {
        self.0.known |= field::RETRANS;
        self.0.retransmits = value;
        self
    }

    pub fn srtt_us(mut self, value: u32) -> Self {
        self.0.known |= field::SRTT;
        self.0.srtt_us = value;
        self
    }

    /// Whether the peer's FIN had been processed (`SOCK_DONE`).
    pub fn peer_fin(mut self, value: bool) -> Self {
        self.0.known |= field::PEER_FIN;
        self.0.peer_fin = value;
        self
    }

    pub fn build(self) -> TcpCounters {
        self.0
    }
}

impl TcpCounters {
    pub fn builder() -> CountersBuilder {
        CountersBuilder::default()
    }

    /// The counters a kernel event carried.
    pub fn from_kernel(raw: &probe_common::TcpCounters) -> Self {
        // `srtt_us` stays 0 until the first RTT sample; after one it is at least 1
        // (`tcp_rtt_estimator()`): 0 is no RTT yet, not an RTT of 0.
        let no_rtt = if raw.srtt_us8 == 0 { field::SRTT } else { 0 };
        Self {
            known: raw.known & field::ALL & !no_rtt,
            peer_fin: raw.peer_fin != 0,
            bytes_sent: raw.bytes_sent,
            bytes_acked: raw.bytes_acked,
            bytes_received: raw.bytes_received,
            segs_in: raw.segs_in,
            segs_out: raw.segs_out,
            retransmits: raw.total_retrans,
            // The kernel keeps the smoothed RTT shifted left by 3.
            srtt_us: raw.srtt_us8 >> 3,
        }
    }

    /// The [`probe_common::counter_field`] bits of the known fields.
    pub fn known(&self) -> u8 {
        self.known
    }

    fn get<T>(&self, bit: u8, value: T) -> Option<T> {
        (self.known & bit != 0).then_some(value)
    }

    /// `bytes_sent`: payload bytes sent, retransmissions included.
    pub fn bytes_sent(&self) -> Option<u64> {
        self.get(field::BYTES_SENT, self.bytes_sent)
    }

    /// `bytes_acked`: sequence space the peer acknowledged; a connecting socket's SYN and
    /// an acknowledged FIN count one each.
    pub fn bytes_acked(&self) -> Option<u64> {
        self.get(field::BYTES_ACKED, self.bytes_acked)
    }

    /// `bytes_received`: sequence space received in order; the peer's FIN counts one.
    pub fn bytes_received(&self) -> Option<u64> {
        self.get(field::BYTES_RECEIVED, self.bytes_received)
    }

    pub fn segs_in(&self) -> Option<u32> {
        self.get(field::SEGS, self.segs_in)
    }

    pub fn segs_out(&self) -> Option<u32> {
        self.get(field::SEGS, self.segs_out)
    }

    /// `total_retrans`: segments retransmitted (SYNs included).
    pub fn retransmits(&self) -> Option<u32> {
        self.get(field::RETRANS, self.retransmits)
    }

    /// The smoothed round-trip time in microseconds; 0 means no RTT sample yet.
    pub fn srtt_us(&self) -> Option<u32> {
        self.get(field::SRTT, self.srtt_us)
    }

    /// Whether the peer's FIN had been processed (`sk_flags` has `SOCK_DONE`, set by
    /// `tcp_fin()`): then `bytes_received` counts it.
    pub fn peer_fin(&self) -> Option<bool> {
        self.get(field::PEER_FIN, self.peer_fin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_none_not_zero() {
        let raw = probe_common::TcpCounters {
            bytes_sent: 10,
            bytes_acked: 12,
            srtt_us8: 8 * 40 + 7,
            peer_fin: 1,
            known: field::BYTES_SENT | field::BYTES_ACKED | field::SRTT | field::PEER_FIN,
            ..probe_common::TcpCounters::UNKNOWN
        };
        let c = TcpCounters::from_kernel(&raw);
        assert_eq!((c.bytes_sent(), c.bytes_acked()), (Some(10), Some(12)));
        assert_eq!(c.srtt_us(), Some(40));
        assert_eq!(c.peer_fin(), Some(true));
        assert_eq!(c.bytes_received(), None);
        assert_eq!(
            (c.segs_in(), c.segs_out(), c.retransmits()),
            (None, None, None)
        );
        let built = TcpCounters::builder()
            .bytes_sent(10)
            .bytes_acked(12)
            .srtt_us(40)
            .peer_fin(true)
            .build();
        assert_eq!(built, c);
    }

    /// A socket closed before its first RTT sample (a refused or failed connect) has
    /// `srtt_us` 0 with the read succeeding: no RTT, not an RTT of 0.
    #[test]
    fn no_rtt_sample_is_an_unknown_rtt() {
        let raw = probe_common::TcpCounters {
            known: field::ALL,
            ..probe_common::TcpCounters::UNKNOWN
        };
        let c = TcpCounters::from_kernel(&raw);
        assert_eq!(c.srtt_us(), None);
        assert_eq!(c.bytes_sent(), Some(0));
        let one = probe_common::TcpCounters { srtt_us8: 1, ..raw };
        assert_eq!(TcpCounters::from_kernel(&one).srtt_us(), Some(0));
    }
}
