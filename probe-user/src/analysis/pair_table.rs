//! The statistics of every client→server pair, found by key or through the index a
//! connection caches.

use rustc_hash::FxHashMap;

use crate::analysis::{
    pairs::{LoopEvidence, LoopRule, PairKey, PairStats},
    timewait::Left,
    tracker::Connection,
};

/// A pair's statistics and, when it is one, why it is a reconnect loop.
#[derive(Clone, Debug, PartialEq)]
pub struct PairReport {
    pub stats: PairStats,
    pub reconnect_loop: Option<LoopEvidence>,
}

/// Every pair seen, in order of first sight.
#[derive(Clone, Debug, Default)]
pub struct PairTable {
    index: FxHashMap<PairKey, u32>,
    pairs: Vec<PairStats>,
}

impl PairTable {
    /// The index of a pair, added when new.
    pub fn index(&mut self, key: PairKey) -> u32 {
        let next = u32::try_from(self.pairs.len()).unwrap_or(u32::MAX);
        let index = *self.index.entry(key).or_insert(next);
        if index == next {
            self.pairs.push(PairStats::new(key));
        }
        index
    }

    /// The index of a connection's pair, looked up once per connection.
    pub fn index_of(&mut self, c: &Connection) -> u32 {
        if let Some(index) = c.pair_index() {
            return index;
        }
        let index = self.index(c.pair_key());
        c.set_pair_index(index);
        index
    }

    pub fn get_mut(&mut self, index: u32) -> &mut PairStats {
        &mut self.pairs[index as usize]
    }

    /// A TIME_WAIT entry ended.
    pub fn time_wait_left(&mut self, left: Left) {
        self.get_mut(left.pair).time_wait_leave(left.side);
    }

    /// The window opens: TIME_WAIT entries from before it are part of its first peak.
    pub fn open_window(&mut self) {
        for pair in &mut self.pairs {
            for side in 0..2 {
                pair.time_wait_peak[side] =
                    pair.time_wait_peak[side].max(pair.time_wait_live[side]);
            }
        }
    }

    /// The pairs with anything to report: reconnect loops first, then by connections.
    pub fn into_reports(self, rule: &LoopRule) -> Vec<PairReport> {
        let mut reports: Vec<PairReport> = self
            .pairs
            .into_iter()
            .filter(|p| {
                p.connections > 0
                    || p.time_wait_live != [0, 0]
                    || p.time_wait_peak != [0, 0]
                    || p.time_wait_observed != [0, 0]
            })
            .map(|stats| PairReport {
                reconnect_loop: stats.reconnect_loop(rule),
                stats,
            })
            .collect();
        reports.sort_by(|a, b| {
            b.reconnect_loop
                .is_some()
                .cmp(&a.reconnect_loop.is_some())
                .then(b.stats.connections.cmp(&a.stats.connections))
                .then(a.stats.key.cmp(&b.stats.key))
        });
        reports
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::verdict::Side;

    fn key(client: &str, server: &str) -> PairKey {
        PairKey::new(client.parse().unwrap(), server.parse().unwrap())
    }

    #[test]
    fn pairs_are_found_again_and_reported_by_connections() {
        let mut table = PairTable::default();
        let a = table.index(key("10.0.0.2", "10.0.0.1:80"));
        let b = table.index(key("10.0.0.3", "10.0.0.1:80"));
        let idle = table.index(key("10.0.0.4", "10.0.0.1:80"));
        assert_eq!(table.index(key("::ffff:10.0.0.2", "10.0.0.1:80")), a);
        assert_ne!(a, b);
        table.get_mut(a).connections = 1;
        table.get_mut(b).connections = 3;
        table.get_mut(idle).time_wait_enter(Side::Server, false);
        table.time_wait_left(Left {
            pair: idle,
            side: Side::Server,
        });
        let reports = table.into_reports(&LoopRule::default());
        let clients: Vec<String> = reports
            .iter()
            .map(|r| r.stats.key.client.to_string())
            .collect();
        assert_eq!(
            clients,
            ["10.0.0.3", "10.0.0.2"],
            "a pair with nothing is left out"
        );
    }

    #[test]
    fn opening_the_window_counts_live_time_wait_in_the_peak() {
        let mut table = PairTable::default();
        let a = table.index(key("10.0.0.2", "10.0.0.1:80"));
        table.get_mut(a).time_wait_enter(Side::Client, false);
        assert_eq!(table.get_mut(a).time_wait_peak, [0, 0]);
        table.open_window();
        assert_eq!(table.get_mut(a).time_wait_peak, [1, 0]);
    }
}
