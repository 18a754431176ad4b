//! Bounded label cardinality: which pairs (and CLOSE_WAIT owners) get labels of their
//! own, and the `other` series that sums the rest.
//!
//! The pairs with labels are the first N of the verdict's order (reconnect loops, then
//! by connections), chosen anew at every refresh. A counter of a pair with a label is
//! its own total; `other` adds up what the pairs without a label counted *while* they
//! had none. So every series only grows: a pair that gains a label starts its own
//! series (its earlier counts stay in `other`), a pair that loses it stops its series
//! and its later counts go to `other`.

use rustc_hash::FxHashMap;

use crate::analysis::{CloseHow, ClosedFirst, PairKey, PairReport};

/// A pair's counters, as the metrics show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairCounts {
    pub connections: u64,
    /// `[client, server, simultaneous][how]`, by [`CloseHow::index`].
    pub closed_by: [[u64; CloseHow::COUNT]; 3],
    /// Connections with an RST from the client, the server.
    pub resets: [u64; 2],
}

impl PairCounts {
    pub fn of(pair: &PairReport) -> Self {
        let s = &pair.stats;
        Self {
            connections: s.connections,
            closed_by: s.closed_by,
            resets: s.resets,
        }
    }

    fn add_growth(&mut self, now: &Self, before: &Self) {
        self.connections += now.connections.saturating_sub(before.connections);
        for first in 0..3 {
            for how in 0..5 {
                self.closed_by[first][how] +=
                    now.closed_by[first][how].saturating_sub(before.closed_by[first][how]);
            }
        }
        for side in 0..2 {
            self.resets[side] += now.resets[side].saturating_sub(before.resets[side]);
        }
    }
}

/// The pairs' counters at the previous refresh, and `other`'s totals.
#[derive(Clone, Debug)]
pub struct PairBook {
    max_labeled: usize,
    previous: FxHashMap<PairKey, PairCounts>,
    other: PairCounts,
    /// Some pair has gone without a label: the `other` series exist.
    other_used: bool,
}

/// A refresh's pairs, split as the metrics show them.
#[derive(Clone, Debug, PartialEq)]
pub struct Split<'a> {
    /// The pairs with labels of their own, and their counters.
    pub labeled: Vec<(&'a PairReport, PairCounts)>,
    /// `None` while no pair has gone without a label.
    pub other: Option<Other>,
}

/// The pairs without labels: counters summed as explained above, gauges summed now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Other {
    pub counts: PairCounts,
    /// TIME_WAIT held now by the client, the server.
    pub time_wait: [u64; 2],
    /// Some pair without a label is a reconnect loop.
    pub reconnect_loop: bool,
    /// Pairs without a label now.
    pub pairs: u64,
}

impl PairBook {
    pub fn new(max_labeled: usize) -> Self {
        Self {
            max_labeled,
            previous: FxHashMap::default(),
            other: PairCounts::default(),
            other_used: false,
        }
    }

    /// Splits `pairs` (in the verdict's order) into labeled pairs and `other`.
    pub fn split<'a>(&mut self, pairs: &'a [PairReport]) -> Split<'a> {
        let mut labeled = Vec::new();
        let mut other = Other::default();
        let mut previous = FxHashMap::default();
        for (rank, pair) in pairs.iter().enumerate() {
            let counts = PairCounts::of(pair);
            let key = pair.stats.key;
            if rank < self.max_labeled {
                labeled.push((pair, counts));
            } else {
                let before = self.previous.get(&key).copied().unwrap_or_default();
                self.other.add_growth(&counts, &before);
                self.other_used = true;
                for side in 0..2 {
                    other.time_wait[side] += pair.stats.time_wait_live[side];
                }
                other.reconnect_loop |= pair.reconnect_loop.is_some();
                other.pairs += 1;
            }
            previous.insert(key, counts);
        }
        self.previous = previous;
        other.counts = self.other;
        Split {
            labeled,
            other: self.other_used.then_some(other),
        }
    }
}

/// The first closer a metric's `side` label names.
pub const SIDES: [ClosedFirst; 3] = [
    ClosedFirst::Client,
    ClosedFirst::Server,
    ClosedFirst::Simultaneous,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::PairStats;

    fn pair(client: &str, connections: u64) -> PairReport {
        let mut stats = PairStats::new(PairKey::new(
            client.parse().unwrap(),
            "10.0.0.1:80".parse().unwrap(),
        ));
        stats.connections = connections;
        stats.time_wait_live = [connections, 0];
        PairReport {
            stats,
            reconnect_loop: None,
        }
    }

    #[test]
    fn every_series_only_grows_as_pairs_gain_and_lose_labels() {
        let mut book = PairBook::new(1);
        // a leads: b is other.
        let first = [pair("10.0.0.2", 10), pair("10.0.0.3", 4)];
        let split = book.split(&first);
        assert_eq!(split.labeled.len(), 1);
        assert_eq!(split.labeled[0].1.connections, 10);
        let other = split.other.unwrap();
        assert_eq!((other.counts.connections, other.pairs), (4, 1));
        assert_eq!(other.time_wait, [4, 0]);
        // b overtakes a: b gets its own series (all of its 20), a's growth goes to other.
        let second = [pair("10.0.0.3", 20), pair("10.0.0.2", 13)];
        let split = book.split(&second);
        assert_eq!(split.labeled[0].1.connections, 20);
        assert_eq!(split.other.unwrap().counts.connections, 4 + 3);
        // A new pair without a label brings all of its count.
        let third = [
            pair("10.0.0.3", 21),
            pair("10.0.0.2", 13),
            pair("10.0.0.4", 2),
        ];
        let split = book.split(&third);
        let other = split.other.unwrap();
        assert_eq!(other.counts.connections, 7 + 2);
        assert_eq!(other.pairs, 2);
        assert_eq!(other.time_wait, [15, 0]);
    }

    #[test]
    fn no_other_series_while_every_pair_has_its_labels() {
        let mut book = PairBook::new(5);
        let pairs = [pair("10.0.0.2", 1)];
        assert_eq!(book.split(&pairs).other, None);
    }
}
