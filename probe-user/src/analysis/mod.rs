//! The verdict: from a stream of trace events to connections, per-pair statistics,
//! reconnect loops, TIME_WAIT by side and CLOSE_WAIT leaks. Pure: no files, no
//! formatting. The rules are documented in `docs/verdicts.md`.
//!
//! Replay streams: [`Analyzer::on_event`] takes one event at a time, and memory grows
//! with the connections open at once (plus the TIME_WAIT entries of the last 60 s and
//! one aggregate per client→server pair), never with the length of the trace.

pub mod histogram;
pub mod keys;
pub mod pairs;
pub mod timewait;
pub mod tracker;
pub mod verdict;

use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use self::{
    keys::AddrPairKey,
    timewait::{TIME_WAIT_NS, TimeWaitBook},
};
pub use self::{
    pairs::{ConnectionOutcome, LoopEvidence, LoopRule, PairKey, PairStats},
    tracker::{Connection, ConnectionTracker, Endpoint, TrackerSink},
    verdict::{CloseHow, CloseVerdict, ClosedFirst, Side},
};
use crate::{
    model::{
        ConnId, EndpointFilter, Gap, GapCause, SnapshotSocket, SocketTuple, Task, TcpState,
        TimeWindow, TraceEvent,
    },
    owner::OwnerTracker,
};

/// What to analyse, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyzerOptions {
    pub filter: EndpointFilter,
    /// Only connections opened inside count, and the analysis ends at its end, as if
    /// the trace ended there.
    pub window: TimeWindow,
    /// CLOSE_WAIT for longer than this is a leak.
    pub close_wait_ns: u64,
    pub rule: LoopRule,
    /// Keep a row for every connection ([`Analyzer::drain_rows`]).
    pub connections: bool,
}

impl Default for AnalyzerOptions {
    fn default() -> Self {
        Self {
            filter: EndpointFilter::default(),
            window: TimeWindow::default(),
            close_wait_ns: 5_000_000_000,
            rule: LoopRule::default(),
            connections: false,
        }
    }
}

/// One connection of `--connections`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionRow {
    /// The client socket's id when it was traced, otherwise the server socket's;
    /// `None` for a connect that only the refusing host saw.
    pub conn: Option<ConnId>,
    pub client_conn: Option<ConnId>,
    pub server_conn: Option<ConnId>,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_netns: Option<u32>,
    pub server_netns: Option<u32>,
    pub verdict: CloseVerdict,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub client_owner: Option<Task>,
    pub server_owner: Option<Task>,
    /// When each side entered TIME_WAIT (it holds the 4-tuple for 60 s from then,
    /// unless a new connection reuses it).
    pub time_wait_ns: [Option<u64>; 2],
    pub resets: [bool; 2],
    pub preexisting: bool,
    pub incomplete: bool,
    pub role_guessed: bool,
}

impl ConnectionRow {
    pub fn lifetime_ns(&self) -> Option<u64> {
        Some(self.end_ns?.saturating_sub(self.start_ns?))
    }

    /// Which sides entered TIME_WAIT.
    pub fn time_wait(&self) -> [bool; 2] {
        self.time_wait_ns.map(|t| t.is_some())
    }
}

/// A socket that sat in CLOSE_WAIT past the threshold and was still there at the end:
/// the peer closed, the local application never called `close()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseWaitLeak {
    pub conn: ConnId,
    pub netns: u32,
    pub owner: Option<Task>,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub since_ns: u64,
    /// Age at the end of the trace (or of `--until`).
    pub age_ns: u64,
    /// It was already in CLOSE_WAIT when the trace started: the age is a lower bound.
    pub at_least: bool,
}

/// A window of lost events (nearby gaps merged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapWindow {
    pub from_ns: u64,
    pub to_ns: u64,
    pub lost: u64,
    pub cause: GapCause,
}

/// Gaps closer than this are reported as one window.
const GAP_MERGE_NS: u64 = 1_000_000_000;
/// Gap windows listed; the rest are only counted.
const MAX_GAP_WINDOWS: usize = 32;

#[derive(Clone, Debug, PartialEq)]
pub struct PairReport {
    pub stats: PairStats,
    pub reconnect_loop: Option<LoopEvidence>,
}

/// The result of a replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    pub events: u64,
    pub lost: u64,
    pub gaps: Vec<GapWindow>,
    /// Gap windows beyond [`MAX_GAP_WINDOWS`].
    pub more_gaps: u64,
    /// Trace time the analysis ends at.
    pub end_ns: u64,
    /// Connections counted (after filters).
    pub connections: u64,
    /// Pairs, reconnect loops first, then by connections.
    pub pairs: Vec<PairReport>,
    pub close_wait: Vec<CloseWaitLeak>,
    /// Sockets that sat in CLOSE_WAIT past the threshold but were closed before the end.
    pub close_wait_closed_late: u64,
    /// The trace has an end snapshot: `time_wait_observed` is the kernel's count.
    pub end_snapshot: bool,
}

impl Analysis {
    pub fn incomplete(&self) -> bool {
        self.lost > 0 || !self.gaps.is_empty()
    }
}

/// Everything that outlives a connection.
#[derive(Debug)]
struct Aggregates {
    options: AnalyzerOptions,
    pair_index: FxHashMap<PairKey, u32>,
    pairs: Vec<PairStats>,
    time_wait: TimeWaitBook,
    leaks: Vec<CloseWaitLeak>,
    closed_late: u64,
    connections: u64,
    rows: Vec<ConnectionRow>,
    end_ns: u64,
    /// Owners of CLOSE_WAIT sockets from the end snapshot (`/proc/*/fd`).
    end_owners: FxHashMap<ConnId, Task>,
}

impl Aggregates {
    fn in_window(&self, ts_ns: u64) -> bool {
        self.options.window.contains(ts_ns)
    }

    fn pair(&mut self, key: PairKey) -> u32 {
        let next = u32::try_from(self.pairs.len()).unwrap_or(u32::MAX);
        let index = *self.pair_index.entry(key).or_insert(next);
        if index == next {
            self.pairs.push(PairStats::new(key));
        }
        index
    }

    /// The pair of a connection, looked up once per connection.
    fn pair_of(&mut self, c: &Connection) -> u32 {
        if let Some(index) = c.pair_index() {
            return index;
        }
        let index = self.pair(c.pair_key());
        c.set_pair_index(index);
        index
    }

    fn expire_time_wait(&mut self, now_ns: u64) {
        let pairs = &mut self.pairs;
        self.time_wait.expire(now_ns, |left| {
            pairs[left.pair as usize].time_wait_leave(left.side)
        });
    }

    fn close_wait(&mut self, connection: &Connection, endpoint: &Endpoint) {
        let Some(since) = endpoint.close_wait_ns else {
            return;
        };
        let threshold = self.options.close_wait_ns;
        if endpoint.state == TcpState::CloseWait {
            let age = self.end_ns.saturating_sub(since);
            if age >= threshold {
                self.leaks.push(CloseWaitLeak {
                    conn: endpoint.conn,
                    netns: endpoint.netns,
                    owner: endpoint
                        .owner
                        .or_else(|| self.end_owners.get(&endpoint.conn).copied()),
                    local: endpoint.tuple.local,
                    peer: endpoint.tuple.remote,
                    since_ns: since,
                    age_ns: age,
                    at_least: connection.preexisting,
                });
            }
        } else if endpoint
            .close_wait_left_ns
            .is_some_and(|left| left.saturating_sub(since) >= threshold)
        {
            self.closed_late += 1;
        }
    }
}

impl TrackerSink for Aggregates {
    fn finished(&mut self, c: &Connection) {
        for endpoint in c.client.iter().chain(c.server.iter()) {
            self.close_wait(c, endpoint);
        }
        let counted_at = c.start_ns().unwrap_or(c.first_seen_ns);
        if !self.in_window(counted_at) {
            return;
        }
        let verdict = c.verdict();
        let outcome = ConnectionOutcome {
            verdict,
            start_ns: c.start_ns(),
            end_ns: c.end_ns(),
            close_delay_ns: c.close_delay_ns(verdict),
            resets: [c.sent_reset(Side::Client), c.sent_reset(Side::Server)],
            preexisting: c.preexisting,
            incomplete: c.incomplete,
        };
        let index = self.pair_of(c);
        let rule = self.options.rule;
        self.pairs[index as usize].add(&outcome, &rule);
        self.connections += 1;
        if self.options.connections {
            let (client, server) = c.addresses();
            let time_wait = |side| c.endpoint(side).and_then(|e| e.time_wait_ns);
            self.rows.push(ConnectionRow {
                conn: c.client.or(c.server).map(|e| e.conn),
                client_conn: c.client.map(|e| e.conn),
                server_conn: c.server.map(|e| e.conn),
                client,
                server,
                client_netns: c.client.map(|e| e.netns),
                server_netns: c.server.map(|e| e.netns),
                verdict,
                start_ns: outcome.start_ns,
                end_ns: outcome.end_ns,
                client_owner: c.client.and_then(|e| e.owner),
                server_owner: c.server.and_then(|e| e.owner),
                time_wait_ns: [time_wait(Side::Client), time_wait(Side::Server)],
                resets: outcome.resets,
                preexisting: c.preexisting,
                incomplete: c.incomplete,
                role_guessed: c.role_guessed,
            });
        }
    }

    fn time_wait(&mut self, c: &Connection, side: Side, ts_ns: u64) {
        let Some(endpoint) = c.endpoint(side) else {
            return;
        };
        let index = self.pair_of(c);
        self.enter_time_wait(
            AddrPairKey::socket(endpoint.netns, &endpoint.tuple).fingerprint(),
            index,
            side,
            ts_ns,
            ts_ns.saturating_add(TIME_WAIT_NS),
        );
    }

    fn tuple_in_use(&mut self, netns: u32, tuple: &SocketTuple) {
        if self.time_wait.is_empty() {
            return;
        }
        if let Some(left) = self
            .time_wait
            .reuse(&AddrPairKey::socket(netns, tuple).fingerprint())
        {
            self.pairs[left.pair as usize].time_wait_leave(left.side);
        }
    }

    fn refused_unseen(&mut self, key: PairKey, ts_ns: u64) {
        if !self.in_window(ts_ns) {
            return;
        }
        let outcome = ConnectionOutcome {
            verdict: CloseVerdict {
                closed_first: ClosedFirst::Server,
                how: Some(CloseHow::Refused),
            },
            start_ns: Some(ts_ns),
            end_ns: Some(ts_ns),
            close_delay_ns: None,
            resets: [false, true],
            preexisting: false,
            incomplete: false,
        };
        let index = self.pair(key);
        let rule = self.options.rule;
        self.pairs[index as usize].add(&outcome, &rule);
        self.connections += 1;
        if self.options.connections {
            self.rows.push(ConnectionRow {
                conn: None,
                client_conn: None,
                server_conn: None,
                client: SocketAddr::new(key.client, 0),
                server: key.server,
                client_netns: None,
                server_netns: None,
                verdict: outcome.verdict,
                start_ns: outcome.start_ns,
                end_ns: outcome.end_ns,
                client_owner: None,
                server_owner: None,
                time_wait_ns: [None; 2],
                resets: outcome.resets,
                preexisting: false,
                incomplete: false,
                role_guessed: false,
            });
        }
    }
}

impl Aggregates {
    fn enter_time_wait(
        &mut self,
        key: timewait::SocketKey,
        pair: u32,
        side: Side,
        ts_ns: u64,
        expires_ns: u64,
    ) {
        if let Some(left) = self.time_wait.enter(key, pair, side, expires_ns) {
            self.pairs[left.pair as usize].time_wait_leave(left.side);
        }
        let in_window = self.in_window(ts_ns);
        self.pairs[pair as usize].time_wait_enter(side, in_window);
    }
}

/// The streaming analysis: feed it every event of a trace in file order, then call
/// [`Analyzer::finish`].
#[derive(Debug)]
pub struct Analyzer {
    owners: OwnerTracker,
    tracker: ConnectionTracker,
    agg: Aggregates,
    events: u64,
    lost: u64,
    gaps: Vec<GapWindow>,
    more_gaps: u64,
    last_ts: u64,
    end_snapshot: bool,
    window_started: bool,
}

impl Analyzer {
    pub fn new(options: AnalyzerOptions) -> Self {
        Self {
            owners: OwnerTracker::new(),
            tracker: ConnectionTracker::new(options.filter),
            agg: Aggregates {
                options,
                pair_index: FxHashMap::default(),
                pairs: Vec::new(),
                time_wait: TimeWaitBook::default(),
                leaks: Vec::new(),
                closed_late: 0,
                connections: 0,
                rows: Vec::new(),
                end_ns: 0,
                end_owners: FxHashMap::default(),
            },
            events: 0,
            lost: 0,
            gaps: Vec::new(),
            more_gaps: 0,
            last_ts: 0,
            end_snapshot: false,
            window_started: false,
        }
    }

    /// Rows of connections that ended since the last call (with `connections`).
    pub fn drain_rows(&mut self) -> std::vec::Drain<'_, ConnectionRow> {
        self.agg.rows.drain(..)
    }

    pub fn on_event(&mut self, event: &TraceEvent) {
        self.events += 1;
        // Attribution sees every event, filtered or not, so owners stay right.
        let owner = self.owners.attribute(event);
        let ts = event.ts_ns();
        if self.agg.options.window.has_ended(ts) {
            self.last_ts = self.last_ts.max(ts);
            return;
        }
        if ts > self.last_ts {
            self.last_ts = ts;
            self.agg.expire_time_wait(ts);
        }
        if !self.window_started && self.agg.options.window.has_started(ts) {
            // TIME_WAIT entries from before the window are part of its first peak.
            self.window_started = true;
            for pair in &mut self.agg.pairs {
                for side in 0..2 {
                    pair.time_wait_peak[side] =
                        pair.time_wait_peak[side].max(pair.time_wait_live[side]);
                }
            }
        }
        match event {
            TraceEvent::Lost(gap) => self.on_gap(gap),
            TraceEvent::Snapshot(s) if s.at_end => self.on_end_snapshot(s),
            TraceEvent::Snapshot(s) if s.state == TcpState::TimeWait => self.on_time_wait_socket(s),
            _ => {}
        }
        self.tracker.on_event(event, owner.as_ref(), &mut self.agg);
    }

    fn on_gap(&mut self, gap: &Gap) {
        if !self.agg.in_window(gap.to_ns) && !self.agg.in_window(gap.from_ns) {
            return;
        }
        self.lost += gap.lost;
        if let Some(last) = self.gaps.last_mut()
            && gap.from_ns <= last.to_ns.saturating_add(GAP_MERGE_NS)
            && gap.cause == last.cause
        {
            last.from_ns = last.from_ns.min(gap.from_ns);
            last.to_ns = last.to_ns.max(gap.to_ns);
            last.lost += gap.lost;
        } else if self.gaps.len() < MAX_GAP_WINDOWS {
            self.gaps.push(GapWindow {
                from_ns: gap.from_ns,
                to_ns: gap.to_ns,
                lost: gap.lost,
                cause: gap.cause,
            });
        } else {
            self.more_gaps += 1;
        }
    }

    fn filtered_out(&self, tuple: &SocketTuple) -> bool {
        self.agg.options.filter.excludes(tuple)
    }

    /// A TIME_WAIT socket from the start snapshot: it expires when its timer says.
    fn on_time_wait_socket(&mut self, s: &SnapshotSocket) {
        if self.filtered_out(&s.conn.tuple) {
            return;
        }
        let (key, side) = self.tracker.classify(s.conn.scope.netns, &s.conn.tuple);
        let pair = self.agg.pair(key);
        let left_ns = s
            .timer_ms
            .map_or(TIME_WAIT_NS, |ms| u64::from(ms) * 1_000_000);
        self.agg.enter_time_wait(
            AddrPairKey::socket(s.conn.scope.netns, &s.conn.tuple).fingerprint(),
            pair,
            side,
            s.ts_ns,
            s.ts_ns.saturating_add(left_ns),
        );
    }

    /// The end snapshot: the kernel's own list of sockets when recording stopped.
    fn on_end_snapshot(&mut self, s: &SnapshotSocket) {
        self.end_snapshot = true;
        if self.filtered_out(&s.conn.tuple) {
            return;
        }
        match s.state {
            TcpState::TimeWait => {
                let key = AddrPairKey::socket(s.conn.scope.netns, &s.conn.tuple).fingerprint();
                let (pair, side) = match self.agg.time_wait.get(&key) {
                    Some(found) => found,
                    None => {
                        let (key, side) = self.tracker.classify(s.conn.scope.netns, &s.conn.tuple);
                        (self.agg.pair(key), side)
                    }
                };
                self.agg.pairs[pair as usize].time_wait_observed[side.index()] += 1;
            }
            TcpState::CloseWait => {
                if let Some(owner) = s.owner {
                    self.agg.end_owners.insert(s.conn.id, owner);
                }
            }
            _ => {}
        }
    }

    /// Ends the analysis at `end_ns` (the trace's end, or `--until`).
    pub fn finish(mut self, end_ns: u64) -> (Analysis, Vec<ConnectionRow>) {
        let end_ns = self.agg.options.window.end_of(end_ns.max(self.last_ts));
        self.agg.end_ns = end_ns;
        // The tracker may still hold hand-overs to TIME_WAIT inside their grace period:
        // decide them before expiring what the end of the trace outlived.
        self.tracker.finish(&mut self.agg);
        self.agg.expire_time_wait(end_ns);
        let rule = self.agg.options.rule;
        let mut pairs: Vec<PairReport> = self
            .agg
            .pairs
            .into_iter()
            .filter(|p| {
                p.connections > 0
                    || p.time_wait_live != [0, 0]
                    || p.time_wait_peak != [0, 0]
                    || p.time_wait_observed != [0, 0]
            })
            .map(|stats| PairReport {
                reconnect_loop: stats.reconnect_loop(&rule),
                stats,
            })
            .collect();
        pairs.sort_by(|a, b| {
            b.reconnect_loop
                .is_some()
                .cmp(&a.reconnect_loop.is_some())
                .then(b.stats.connections.cmp(&a.stats.connections))
                .then(a.stats.key.cmp(&b.stats.key))
        });
        let mut close_wait = self.agg.leaks;
        close_wait.sort_by(|a, b| b.age_ns.cmp(&a.age_ns).then(a.conn.cmp(&b.conn)));
        let analysis = Analysis {
            events: self.events,
            lost: self.lost,
            gaps: self.gaps,
            more_gaps: self.more_gaps,
            end_ns,
            connections: self.agg.connections,
            pairs,
            close_wait,
            close_wait_closed_late: self.agg.closed_late,
            end_snapshot: self.end_snapshot,
        };
        (analysis, self.agg.rows)
    }
}

#[cfg(test)]
pub(crate) mod tests;
