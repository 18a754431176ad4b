//! The streaming analysis: attribution, then the connection tracker, then the
//! aggregates; gaps and snapshots on the side.

use std::sync::Arc;

use crate::{
    analysis::{
        aggregates::Aggregates, gaps::GapLog, keys::AddrPairKey, options::AnalyzerOptions,
        result::Analysis, rows::ConnectionRow, timewait::TIME_WAIT_NS, tracker::ConnectionTracker,
    },
    model::{Gap, HostId, SnapshotSocket, TcpState, TraceEvent, Workload, WorkloadTable},
    owner::{Owner, OwnerTracker},
};

/// The TIME_WAIT key of a snapshot's socket.
fn socket_key(s: &SnapshotSocket) -> AddrPairKey {
    AddrPairKey::socket(s.conn.scope.host, s.conn.scope.netns, &s.conn.tuple)
}

/// Feed it every event of a trace in file order, then call [`Analyzer::finish`].
#[derive(Debug)]
pub struct Analyzer {
    options: AnalyzerOptions,
    owners: OwnerTracker,
    tracker: ConnectionTracker,
    agg: Aggregates,
    events: u64,
    gaps: GapLog,
    last_ts: u64,
    end_snapshot: bool,
    window_started: bool,
}

impl Analyzer {
    pub fn new(options: AnalyzerOptions) -> Self {
        Self {
            owners: OwnerTracker::new(),
            tracker: ConnectionTracker::new(options.filter),
            agg: Aggregates::new(&options),
            options,
            events: 0,
            gaps: GapLog::default(),
            last_ts: 0,
            end_snapshot: false,
            window_started: false,
        }
    }

    /// Rows of connections that ended since the last call (with `connections`).
    pub fn drain_rows(&mut self) -> std::vec::Drain<'_, ConnectionRow> {
        self.agg.rows.drain(..)
    }

    /// Names from `host`'s trace (its `Workloads` blocks), for the events that follow.
    pub fn learn(&mut self, host: HostId, table: &WorkloadTable) {
        self.agg.book.learn(host, table);
    }

    /// The workload of the socket `event` is about, by the names learnt so far (`owner`:
    /// what [`Analyzer::on_event`] returned for it).
    pub fn workload_of(&self, event: &TraceEvent, owner: Option<&Owner>) -> Option<Arc<Workload>> {
        self.agg.book.event(event, owner)
    }

    /// Whether `--pod`/`--container` keep a snapshot socket (by its own workload or
    /// its peer address's).
    fn snapshot_selected(&self, s: &SnapshotSocket) -> bool {
        if self.options.workloads.is_empty() {
            return true;
        }
        let book = &self.agg.book;
        let ends = [
            book.socket(s.conn.scope, s.owner.map(|t| t.pid)),
            book.address(s.conn.scope.host, s.conn.tuple.remote.ip()),
        ];
        self.agg.selected(ends).is_some()
    }

    /// Takes the next event; returns the owner attribution gave it.
    pub fn on_event(&mut self, event: &TraceEvent) -> Option<Owner> {
        self.events += 1;
        // Attribution sees every event, filtered or not, so owners stay right.
        let owner = self.owners.attribute(event);
        let ts = event.ts_ns();
        if self.options.window.has_ended(ts) {
            self.last_ts = self.last_ts.max(ts);
            return owner;
        }
        if ts > self.last_ts {
            self.last_ts = ts;
            self.agg.expire_time_wait(ts);
        }
        if !self.window_started && self.options.window.has_started(ts) {
            self.window_started = true;
            self.agg.pairs.open_window();
        }
        match event {
            TraceEvent::Lost(gap) => self.on_gap(gap),
            TraceEvent::Snapshot(s) if s.at_end => self.on_end_snapshot(s),
            TraceEvent::Snapshot(s) if s.state == TcpState::TimeWait => self.on_time_wait_socket(s),
            _ => {}
        }
        self.tracker.on_event(event, owner.as_ref(), &mut self.agg);
        owner
    }

    fn on_gap(&mut self, gap: &Gap) {
        let window = self.options.window;
        if window.contains(gap.to_ns) || window.contains(gap.from_ns) {
            self.gaps.record(gap);
        }
    }

    /// A TIME_WAIT socket from the start snapshot: it expires when its timer says.
    fn on_time_wait_socket(&mut self, s: &SnapshotSocket) {
        if self.options.filter.excludes(&s.conn.tuple) || !self.snapshot_selected(s) {
            return;
        }
        let (key, side) = self.tracker.classify(&s.conn.scope, &s.conn.tuple);
        let pair = self.agg.pairs.index(key);
        let left_ns = s
            .timer_ms
            .map_or(TIME_WAIT_NS, |ms| u64::from(ms) * 1_000_000);
        self.agg.enter_time_wait(
            socket_key(s).fingerprint(),
            pair,
            side,
            s.ts_ns,
            s.ts_ns.saturating_add(left_ns),
        );
    }

    /// The end snapshot: the kernel's own list of sockets when recording stopped.
    fn on_end_snapshot(&mut self, s: &SnapshotSocket) {
        self.end_snapshot = true;
        if self.options.filter.excludes(&s.conn.tuple) || !self.snapshot_selected(s) {
            return;
        }
        match s.state {
            TcpState::TimeWait => {
                let key = socket_key(s).fingerprint();
                let (pair, side) = self.agg.time_wait.get(&key).unwrap_or_else(|| {
                    let (key, side) = self.tracker.classify(&s.conn.scope, &s.conn.tuple);
                    (self.agg.pairs.index(key), side)
                });
                self.agg.pairs.get_mut(pair).time_wait_observed[side.index()] += 1;
            }
            TcpState::CloseWait => {
                if let Some(owner) = s.owner {
                    self.agg.close_wait.end_owner(s.conn.key(), owner);
                }
            }
            _ => {}
        }
    }

    /// Trace time of the latest event seen.
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }

    /// Ends the analysis at `end_ns` (the trace's end, or `--until`).
    pub fn finish(mut self, end_ns: u64) -> (Analysis, Vec<ConnectionRow>) {
        let mut tracker = std::mem::take(&mut self.tracker);
        let mut agg = std::mem::replace(&mut self.agg, Aggregates::new(&self.options));
        let analysis = self.conclude(&mut tracker, &mut agg, end_ns);
        (analysis, agg.rows)
    }

    /// What [`Self::finish`] would say if the trace ended at `end_ns`, without ending
    /// the analysis: the same conclusion, drawn on copies of the state it changes (the
    /// connections still held and the aggregates they are handed to), so that more
    /// events can follow. A live view calls it about once a second; it costs a copy of
    /// the open connections and of the TIME_WAIT entries of the last 60 s.
    pub fn snapshot(&self, end_ns: u64) -> Analysis {
        let mut tracker = self.tracker.clone();
        let mut agg = self.agg.clone();
        self.conclude(&mut tracker, &mut agg, end_ns)
    }

    /// Hands over what `tracker` still holds to `agg` and ranks the result, as if the
    /// trace ended at `end_ns`.
    fn conclude(
        &self,
        tracker: &mut ConnectionTracker,
        agg: &mut Aggregates,
        end_ns: u64,
    ) -> Analysis {
        let end_ns = self.options.window.end_of(end_ns.max(self.last_ts));
        agg.close_wait.end_ns = end_ns;
        // The tracker may still hold hand-overs to TIME_WAIT inside their grace period:
        // decide them before expiring what the end of the trace outlived.
        tracker.finish(agg);
        agg.expire_time_wait(end_ns);
        let (mut close_wait, close_wait_closed_late) = std::mem::take(&mut agg.close_wait).finish();
        for leak in &mut close_wait {
            leak.workload = agg.book.socket(leak.scope(), leak.owner.map(|t| t.pid));
        }
        Analysis {
            events: self.events,
            lost: self.gaps.lost,
            lost_by_cause: self.gaps.lost_by_cause,
            gaps: self.gaps.windows.clone(),
            more_gaps: self.gaps.more,
            end_ns,
            connections: agg.connections,
            pairs: std::mem::take(&mut agg.pairs).into_reports(&self.options.rule),
            close_wait,
            close_wait_closed_late,
            end_snapshot: self.end_snapshot,
        }
    }
}
