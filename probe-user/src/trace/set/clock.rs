//! The clock offset between hosts, from messages whose sending and receipt were both
//! traced. Pure: [`Exchange`]s in, offsets out.
//!
//! A segment is received after it is sent. When host A's trace says a socket sent at
//! `s` (A's clock) and host B's trace says the peer received it at `r` (B's clock), then
//! `clock_B - clock_A <= r - s`; a message the other way bounds it from below. Each
//! exchange is an interval for the offset; the offset is where most intervals agree
//! (Marzullo's algorithm, as NTP selects its sources), and the uncertainty is half the
//! width of that agreement. A handshake also gives a softer lower bound: the final ACK
//! takes no longer to arrive than the client's SYN took to be answered.

use std::collections::BTreeMap;

use crate::model::HostId;

/// One message between sockets on two hosts, each time on its own host's clock (its
/// trace's monotonic clock mapped to wall-clock time by the trace header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub from: HostId,
    pub to: HostId,
    pub sent_ns: u64,
    pub received_ns: u64,
    /// For a handshake's final ACK: the client's SYN to SYN-ACK round trip. The ACK's
    /// one-way trip is assumed to be no longer.
    pub round_trip_ns: Option<u64>,
}

/// An interval of `clock_b - clock_a` for a host pair `a < b`; open ends are
/// `i64::MIN`/`i64::MAX`.
type Interval = (i64, i64);

/// At most this many exchanges are kept per host pair: the first ones already pin the
/// offset to the network's latency, and memory stays bounded.
pub const MAX_EXCHANGES_PER_PAIR: usize = 1 << 14;

/// Where the exchanges of one host pair agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreement {
    pub low_ns: i64,
    pub high_ns: i64,
    /// Exchanges whose interval holds the agreement.
    pub agreeing: usize,
    pub total: usize,
}

impl Agreement {
    /// `clock_b - clock_a` and its uncertainty, when bounded on both sides.
    pub fn offset(&self) -> Option<(i64, u64)> {
        if self.low_ns == i64::MIN || self.high_ns == i64::MAX {
            return None;
        }
        let width = i128::from(self.high_ns) - i128::from(self.low_ns);
        let half = u64::try_from(width / 2).ok()?;
        let middle = i128::from(self.low_ns) + width / 2;
        Some((i64::try_from(middle).ok()?, half))
    }
}

fn difference(later: u64, earlier: u64) -> i64 {
    let d = i128::from(later) - i128::from(earlier);
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN + 1 } else { i64::MAX - 1 })
}

impl Exchange {
    /// The host pair (lower id first) and the interval this exchange allows for
    /// `clock_b - clock_a`; `None` between sockets of one host.
    pub fn interval(&self) -> Option<((HostId, HostId), Interval)> {
        if self.from == self.to {
            return None;
        }
        // clock_to - clock_from <= received - sent.
        let upper = difference(self.received_ns, self.sent_ns);
        let lower = self
            .round_trip_ns
            .map_or(i64::MIN, |rtt| upper.saturating_sub_unsigned(rtt));
        Some(if self.from < self.to {
            ((self.from, self.to), (lower, upper))
        } else {
            let negate = |v: i64| match v {
                i64::MIN => i64::MAX,
                v => -v,
            };
            ((self.to, self.from), (negate(upper), negate(lower)))
        })
    }
}

/// Marzullo's algorithm: the smallest interval that the most intervals contain.
pub fn agreement(intervals: &[Interval]) -> Option<Agreement> {
    // Starts sort before ends at one value: touching intervals overlap.
    let mut edges: Vec<(i64, i8)> = intervals
        .iter()
        .flat_map(|&(low, high)| [(low, -1), (high, 1)])
        .collect();
    edges.sort_unstable();
    let (mut count, mut best) = (0i64, None::<Agreement>);
    for (i, &(value, kind)) in edges.iter().enumerate() {
        count -= i64::from(kind);
        let agreeing = usize::try_from(count).unwrap_or(0);
        if kind < 0 && best.is_none_or(|b| agreeing > b.agreeing) {
            best = Some(Agreement {
                low_ns: value,
                high_ns: edges.get(i + 1).map_or(value, |e| e.0),
                agreeing,
                total: intervals.len(),
            });
        }
    }
    best
}

/// What is known of one host's clock, relative to the reference host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostClock {
    /// This host's clock minus the reference host's.
    pub offset_ns: i64,
    pub uncertainty_ns: u64,
    pub basis: ClockBasis,
}

/// How a host's offset was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockBasis {
    /// The host the others are measured against.
    Reference,
    /// Recorded in the same boot as `via`: one monotonic clock, the offset is what the
    /// two headers' wall-clock mappings differ by.
    SameBoot { via: HostId },
    /// From connections seen on both this host and `via`.
    Exchanges {
        via: HostId,
        agreeing: usize,
        total: usize,
    },
    /// No connection links this host to the reference: its own header's clock is used.
    Unknown,
}

/// A measured offset between two hosts: `clock_b - clock_a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairOffset {
    pub a: HostId,
    pub b: HostId,
    pub offset_ns: i64,
    pub uncertainty_ns: u64,
    /// `None` when both hosts share a boot (and so a monotonic clock).
    pub agreement: Option<Agreement>,
}

/// Collects the exchanges of every host pair.
#[derive(Clone, Debug, Default)]
pub struct ExchangeLog {
    pairs: BTreeMap<(HostId, HostId), Vec<Interval>>,
    /// Exchanges between hosts, kept or not.
    pub seen: u64,
}

impl ExchangeLog {
    pub fn record(&mut self, exchange: &Exchange) {
        let Some((pair, interval)) = exchange.interval() else {
            return;
        };
        self.seen += 1;
        let intervals = self.pairs.entry(pair).or_default();
        if intervals.len() < MAX_EXCHANGES_PER_PAIR {
            intervals.push(interval);
        }
    }

    /// The offset of every host pair whose exchanges bound it on both sides.
    pub fn offsets(&self) -> Vec<PairOffset> {
        self.pairs
            .iter()
            .filter_map(|(&(a, b), intervals)| {
                let agreement = agreement(intervals)?;
                let (offset_ns, uncertainty_ns) = agreement.offset()?;
                Some(PairOffset {
                    a,
                    b,
                    offset_ns,
                    uncertainty_ns,
                    agreement: Some(agreement),
                })
            })
            .collect()
    }
}

/// Every host's offset from the reference: the host linked to the most others (the
/// first such), through the links of least total uncertainty.
pub fn host_clocks(hosts: usize, links: &[PairOffset]) -> Vec<HostClock> {
    let unknown = HostClock {
        offset_ns: 0,
        uncertainty_ns: 0,
        basis: ClockBasis::Unknown,
    };
    let mut clocks = vec![unknown; hosts];
    let degree = |h: usize| {
        links
            .iter()
            .filter(|l| l.a.index() == h || l.b.index() == h)
            .count()
    };
    let Some(reference) = (0..hosts).max_by_key(|&h| (degree(h), std::cmp::Reverse(h))) else {
        return clocks;
    };
    clocks[reference] = HostClock {
        basis: ClockBasis::Reference,
        ..unknown
    };
    // Dijkstra on a few hosts: settle the unsettled host of least uncertainty.
    let mut settled = vec![false; hosts];
    let mut best: Vec<Option<HostClock>> = vec![None; hosts];
    best[reference] = Some(clocks[reference]);
    while let Some(h) = (0..hosts)
        .filter(|&h| !settled[h] && best[h].is_some())
        .min_by_key(|&h| best[h].map(|c| c.uncertainty_ns))
    {
        settled[h] = true;
        let Some(here) = best[h] else { break };
        clocks[h] = here;
        for link in links {
            let (other, offset) = if link.a.index() == h {
                (link.b, link.offset_ns)
            } else if link.b.index() == h {
                (link.a, link.offset_ns.saturating_neg())
            } else {
                continue;
            };
            let uncertainty_ns = here.uncertainty_ns.saturating_add(link.uncertainty_ns);
            if settled[other.index()]
                || best[other.index()].is_some_and(|c| c.uncertainty_ns <= uncertainty_ns)
            {
                continue;
            }
            let via = HostId(u16::try_from(h).unwrap_or(u16::MAX));
            best[other.index()] = Some(HostClock {
                offset_ns: here.offset_ns.saturating_add(offset),
                uncertainty_ns,
                basis: match link.agreement {
                    None => ClockBasis::SameBoot { via },
                    Some(a) => ClockBasis::Exchanges {
                        via,
                        agreeing: a.agreeing,
                        total: a.total,
                    },
                },
            });
        }
    }
    clocks
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    fn exchange(from: u16, to: u16, sent: u64, received: u64) -> Exchange {
        Exchange {
            from: HostId(from),
            to: HostId(to),
            sent_ns: sent,
            received_ns: received,
            round_trip_ns: None,
        }
    }

    /// Host 1's clock is 250 ms ahead of host 0's; one-way delays are 40-90 µs.
    fn traffic() -> Vec<Exchange> {
        let offset = 250 * MS;
        let mut exchanges = Vec::new();
        for i in 0..100u64 {
            let t = 1_000 * MS + i * 10 * MS;
            let delay = 40 * US + (i * 7919 % 50) * US;
            // 0 -> 1: received on 1's clock.
            exchanges.push(exchange(0, 1, t, t + delay + offset));
            // 1 -> 0: sent on 1's clock.
            exchanges.push(exchange(1, 0, t + offset, t + delay));
        }
        exchanges
    }

    #[test]
    fn both_directions_pin_the_offset_within_the_smallest_delays() {
        let mut log = ExchangeLog::default();
        for e in traffic() {
            log.record(&e);
        }
        let [link] = log.offsets().try_into().unwrap();
        assert_eq!((link.a, link.b), (HostId(0), HostId(1)));
        let error = link.offset_ns - (250 * MS) as i64;
        assert!(error.unsigned_abs() <= 40 * US, "{link:?}");
        assert!(link.uncertainty_ns <= 40 * US, "{link:?}");
        let a = link.agreement.unwrap();
        assert_eq!((a.agreeing, a.total), (200, 200));
    }

    #[test]
    fn one_direction_alone_is_not_an_estimate_but_a_handshake_is() {
        let mut log = ExchangeLog::default();
        log.record(&exchange(0, 1, 1_000, 1_000 + 250 * MS + 50 * US));
        assert!(log.offsets().is_empty());
        // The ACK of a handshake whose SYN was answered in 100 µs.
        log.record(&Exchange {
            round_trip_ns: Some(100 * US),
            ..exchange(0, 1, 5_000, 5_000 + 250 * MS + 50 * US)
        });
        let [link] = log.offsets().try_into().unwrap();
        assert_eq!(link.offset_ns, (250 * MS) as i64);
        assert_eq!(link.uncertainty_ns, 50 * US);
    }

    #[test]
    fn a_few_wrong_matches_are_outvoted() {
        let mut log = ExchangeLog::default();
        for e in traffic() {
            log.record(&e);
        }
        // Port reuse matched the wrong incarnations: far off, both ways.
        log.record(&exchange(0, 1, 10 * MS, 10 * MS + 100 * MS));
        log.record(&exchange(1, 0, 900 * MS, 10 * MS));
        let [link] = log.offsets().try_into().unwrap();
        let error = link.offset_ns - (250 * MS) as i64;
        assert!(error.unsigned_abs() <= 40 * US, "{link:?}");
        let a = link.agreement.unwrap();
        assert_eq!((a.agreeing, a.total), (200, 202));
    }

    #[test]
    fn exchanges_within_one_host_say_nothing() {
        assert_eq!(exchange(2, 2, 1, 5).interval(), None);
        assert_eq!(
            exchange(3, 1, 100, 40).interval(),
            Some(((HostId(1), HostId(3)), (60, i64::MAX)))
        );
    }

    #[test]
    fn offsets_chain_from_the_best_linked_host() {
        let link = |a: u16, b: u16, offset_ns: i64, uncertainty_ns: u64| PairOffset {
            a: HostId(a),
            b: HostId(b),
            offset_ns,
            uncertainty_ns,
            agreement: Some(Agreement {
                low_ns: 0,
                high_ns: 0,
                agreeing: 3,
                total: 4,
            }),
        };
        // Host 2 (a server) talks to 0, 1 and 4; 3 shares a boot with 1; 5 talks to no
        // one.
        let links = [
            link(0, 2, -5 * MS as i64, 20 * US),
            link(1, 2, 7 * MS as i64, 30 * US),
            PairOffset {
                agreement: None,
                ..link(1, 3, 2 * MS as i64, 0)
            },
            link(2, 4, 0, 10 * US),
        ];
        let clocks = host_clocks(6, &links);
        assert_eq!(clocks[2].basis, ClockBasis::Reference);
        assert_eq!(clocks[0].offset_ns, 5 * MS as i64);
        assert_eq!(clocks[1].offset_ns, -7 * MS as i64);
        assert_eq!(clocks[3].offset_ns, -5 * MS as i64);
        assert_eq!(clocks[3].uncertainty_ns, 30 * US);
        assert_eq!(clocks[3].basis, ClockBasis::SameBoot { via: HostId(1) });
        assert_eq!(
            clocks[1].basis,
            ClockBasis::Exchanges {
                via: HostId(2),
                agreeing: 3,
                total: 4
            }
        );
        assert_eq!(clocks[5].basis, ClockBasis::Unknown);
    }
}
