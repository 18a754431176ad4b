//! Everything that outlives a connection: per-pair statistics, live TIME_WAIT entries,
//! CLOSE_WAIT leaks and the rows of `--connections`. Fed by the connection tracker.

use crate::{
    analysis::{
        close_wait::CloseWaitBook,
        keys::AddrPairKey,
        options::AnalyzerOptions,
        pair_table::PairTable,
        pairs::{ConnectionOutcome, LoopRule, PairKey},
        rows::ConnectionRow,
        timewait::{SocketKey, TIME_WAIT_NS, TimeWaitBook},
        tracker::{Connection, TrackerSink},
        verdict::Side,
        workloads::{Ends, WorkloadBook},
    },
    model::{HostId, SocketTuple, TimeWindow, WorkloadFilter},
};

#[derive(Clone, Debug)]
pub struct Aggregates {
    window: TimeWindow,
    rule: LoopRule,
    keep_rows: bool,
    workloads: WorkloadFilter,
    /// The names the trace has given so far.
    pub book: WorkloadBook,
    pub pairs: PairTable,
    pub time_wait: TimeWaitBook,
    pub close_wait: CloseWaitBook,
    /// Connections counted (after filters).
    pub connections: u64,
    /// Rows not yet drained (with `keep_rows`).
    pub rows: Vec<ConnectionRow>,
}

impl Aggregates {
    pub fn new(options: &AnalyzerOptions) -> Self {
        Self {
            window: options.window,
            rule: options.rule,
            keep_rows: options.connections,
            workloads: options.workloads.clone(),
            book: WorkloadBook::default(),
            pairs: PairTable::default(),
            time_wait: TimeWaitBook::default(),
            close_wait: CloseWaitBook::new(options.close_wait_ns),
            connections: 0,
            rows: Vec::new(),
        }
    }

    /// The workloads of both ends, when `--pod`/`--container` keep the connection.
    pub fn selected(&self, ends: Ends) -> Option<Ends> {
        self.workloads
            .keeps([ends[0].as_deref(), ends[1].as_deref()])
            .then_some(ends)
    }

    /// Counts a connection for its pair.
    fn count(
        &mut self,
        pair: u32,
        outcome: &ConnectionOutcome,
        ends: &Ends,
        row: impl FnOnce() -> ConnectionRow,
    ) {
        let rule = self.rule;
        let stats = self.pairs.get_mut(pair);
        stats.add(outcome, &rule);
        stats.add_workloads(ends);
        self.connections += 1;
        if self.keep_rows {
            self.rows.push(row());
        }
    }

    /// Ends the TIME_WAIT entries that expired by `now_ns`.
    pub fn expire_time_wait(&mut self, now_ns: u64) {
        let pairs = &mut self.pairs;
        self.time_wait
            .expire(now_ns, |left| pairs.time_wait_left(left));
    }

    /// A socket of `pair` on `side` entered TIME_WAIT at `ts_ns`.
    pub fn enter_time_wait(
        &mut self,
        key: SocketKey,
        pair: u32,
        side: Side,
        ts_ns: u64,
        expires_ns: u64,
    ) {
        if let Some(left) = self.time_wait.enter(key, pair, side, expires_ns) {
            self.pairs.time_wait_left(left);
        }
        let in_window = self.window.contains(ts_ns);
        self.pairs.get_mut(pair).time_wait_enter(side, in_window);
    }
}

impl TrackerSink for Aggregates {
    fn finished(&mut self, c: &Connection) {
        let Some(ends) = self.selected(self.book.ends(c)) else {
            return;
        };
        for endpoint in c.client.iter().chain(c.server.iter()) {
            self.close_wait.record(endpoint, c.preexisting);
        }
        if !self
            .window
            .contains(c.start_ns().unwrap_or(c.first_seen_ns))
        {
            return;
        }
        let outcome = c.outcome();
        let pair = self.pairs.index_of(c);
        self.count(pair, &outcome, &ends.clone(), || {
            ConnectionRow::of(c, &outcome, ends)
        });
    }

    fn time_wait(&mut self, c: &Connection, side: Side, ts_ns: u64) {
        let Some(endpoint) = c.endpoint(side) else {
            return;
        };
        if self.selected(self.book.ends(c)).is_none() {
            return;
        }
        let pair = self.pairs.index_of(c);
        self.enter_time_wait(
            AddrPairKey::socket(endpoint.host, endpoint.netns, &endpoint.tuple).fingerprint(),
            pair,
            side,
            ts_ns,
            ts_ns.saturating_add(TIME_WAIT_NS),
        );
    }

    fn tuple_in_use(&mut self, host: HostId, netns: u32, tuple: &SocketTuple) {
        if self.time_wait.is_empty() {
            return;
        }
        if let Some(left) = self
            .time_wait
            .reuse(&AddrPairKey::socket(host, netns, tuple).fingerprint())
        {
            self.pairs.time_wait_left(left);
        }
    }

    fn refused_unseen(&mut self, key: PairKey, host: HostId, ts_ns: u64) {
        if !self.window.contains(ts_ns) {
            return;
        }
        let ends = [
            self.book.address(host, key.client),
            self.book.address(host, key.server.ip()),
        ];
        let Some(ends) = self.selected(ends) else {
            return;
        };
        let outcome = ConnectionOutcome::refused_unseen(ts_ns);
        let pair = self.pairs.index(key);
        self.count(pair, &outcome, &ends.clone(), || {
            ConnectionRow::unseen_client(key, host, &outcome, ends)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::verdict::ClosedFirst;

    const S: u64 = 1_000_000_000;

    fn key() -> PairKey {
        PairKey::new("10.0.0.2".parse().unwrap(), "10.0.0.1:81".parse().unwrap())
    }

    #[test]
    fn refusals_count_inside_the_window_with_a_row_when_asked() {
        let options = AnalyzerOptions {
            window: TimeWindow {
                since_ns: Some(S),
                until_ns: None,
            },
            connections: true,
            ..AnalyzerOptions::default()
        };
        let mut agg = Aggregates::new(&options);
        agg.refused_unseen(key(), HostId::FIRST, S / 2);
        agg.refused_unseen(key(), HostId::FIRST, 2 * S);
        assert_eq!(agg.connections, 1);
        let [row] = agg.rows.as_slice() else {
            panic!("{} rows", agg.rows.len())
        };
        assert_eq!(row.verdict.closed_first, ClosedFirst::Server);
        assert_eq!((row.conn, row.client.port()), (None, 0));
        let reports = agg.pairs.into_reports(&LoopRule::default());
        assert_eq!(reports[0].stats.refused, 1);
    }

    #[test]
    fn time_wait_ends_after_60_s_or_when_its_tuple_is_used_again() {
        let mut agg = Aggregates::new(&AnalyzerOptions::default());
        let pair = agg.pairs.index(key());
        let tuple = crate::synth::tuple("10.0.0.2:40000", "10.0.0.1:81");
        let socket = AddrPairKey::socket(HostId::FIRST, 7, &tuple).fingerprint();
        agg.enter_time_wait(socket, pair, Side::Client, S, S + TIME_WAIT_NS);
        agg.enter_time_wait(socket + 1, pair, Side::Client, S, S + TIME_WAIT_NS);
        assert_eq!(agg.pairs.get_mut(pair).time_wait_live, [2, 0]);
        agg.tuple_in_use(HostId::FIRST, 7, &tuple);
        assert_eq!(agg.pairs.get_mut(pair).time_wait_live, [1, 0]);
        agg.expire_time_wait(S + TIME_WAIT_NS);
        assert_eq!(agg.pairs.get_mut(pair).time_wait_live, [0, 0]);
        assert_eq!(agg.pairs.get_mut(pair).time_wait_peak, [2, 0]);
    }
}
