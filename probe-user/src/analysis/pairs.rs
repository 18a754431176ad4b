//! Per client→server pair aggregates, and the reconnect-loop rule.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use crate::{
    analysis::{
        histogram::LogHistogram,
        keys::ip_bits,
        pair_names::SideNames,
        verdict::{CloseHow, CloseVerdict, ClosedFirst, Side},
        workloads::Ends,
    },
    model::duration_ns,
};

/// A client address and the server address:port it connects to. Addresses are
/// canonical (an IPv4-mapped IPv6 address is the IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PairKey {
    pub client: IpAddr,
    pub server: SocketAddr,
}

impl std::hash::Hash for PairKey {
    // Integers hash much faster than `IpAddr`/`SocketAddr` enums; keys are canonical,
    // so equal keys still hash equally.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(ip_bits(self.client));
        state.write_u128(ip_bits(self.server.ip()));
        state.write_u16(self.server.port());
    }
}

impl PairKey {
    pub fn new(client: IpAddr, server: SocketAddr) -> Self {
        Self {
            client: client.to_canonical(),
            server: SocketAddr::new(server.ip().to_canonical(), server.port()),
        }
    }
}

/// When a pair is a reconnect loop: the client keeps opening short-lived connections
/// that the server ends or refuses.
///
/// A connection is **rejected** when its connect was refused (RST in answer to the SYN),
/// or when the server closed it first (FIN or RST) within [`LoopRule::short`] of the
/// handshake completing **without having sent a byte**. A connection the server closed
/// first after sending data is **served** (an HTTP/1.0-style server that answers one
/// request per connection): never a rejection, however often it repeats. In a trace
/// without counters (format 1.0, or a kernel whose counters could not be read) the
/// bytes are unknown, and such a close counts as rejected, as before counters existed
/// ([`LoopClass::RejectedUntold`]; the verdict says so). A pair is a **reconnect
/// loop** when both hold:
///
/// 1. **a run**: at least [`LoopRule::min_run`] rejected connections in a row, each
///    starting at most [`LoopRule::max_gap`] after the previous rejected one ended
///    (connections that end otherwise do not break the run, so a client with healthy
///    connections open next to its rejected ones still counts);
/// 2. **a majority**: rejected connections are at least [`LoopRule::min_share`] of the
///    pair's connections that ended (still-open connections are left out: ZooKeeper's
///    first `maxClientCnxns` connections stay open while the rest are rejected).
///
/// A client that closes its own short connections (HTTP/1.0 style) is never flagged:
/// none of its connections is rejected. Connect timeouts are not rejections: nothing
/// answered, so nothing is looping against a server that ends connections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoopRule {
    pub short: Duration,
    pub min_run: u64,
    pub max_gap: Duration,
    pub min_share: f64,
}

impl Default for LoopRule {
    fn default() -> Self {
        Self {
            short: Duration::from_secs(2),
            min_run: 5,
            max_gap: Duration::from_secs(30),
            min_share: 0.5,
        }
    }
}

/// A run of rejected connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Run {
    pub len: u64,
    pub last_end_ns: u64,
}

/// One ended (or cut) connection, as the pair statistics need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionOutcome {
    pub verdict: CloseVerdict,
    /// When it was opened; `None` when it existed before the trace (or was first seen
    /// in mid-life).
    pub start_ns: Option<u64>,
    /// When its last socket closed; `None` when still open at the end.
    pub end_ns: Option<u64>,
    /// From the completed handshake to the first closer's first close step.
    pub close_delay_ns: Option<u64>,
    /// Which sides sent an RST (seen, or inferred from the other end receiving one).
    pub resets: [bool; 2],
    /// Payload bytes each side sent, when the counters tell.
    pub bytes: [Option<u64>; 2],
    pub preexisting: bool,
    pub incomplete: bool,
}

impl ConnectionOutcome {
    /// A connect refused at `ts_ns` by a traced server host whose client was not
    /// traced: the server's RST is all there is.
    pub fn refused_unseen(ts_ns: u64) -> Self {
        Self {
            verdict: CloseVerdict {
                closed_first: ClosedFirst::Server,
                how: Some(CloseHow::Refused),
            },
            start_ns: Some(ts_ns),
            end_ns: Some(ts_ns),
            close_delay_ns: None,
            resets: [false, true],
            bytes: [None, Some(0)],
            preexisting: false,
            incomplete: false,
        }
    }

    pub fn lifetime_ns(&self) -> Option<u64> {
        Some(self.end_ns?.saturating_sub(self.start_ns?))
    }

    /// What it counts as for the reconnect-loop rule ([`LoopRule`]).
    pub fn loop_class(&self, rule: &LoopRule) -> LoopClass {
        match (self.verdict.closed_first, self.verdict.how) {
            (_, Some(CloseHow::Refused)) => LoopClass::Rejected,
            (ClosedFirst::Server, Some(CloseHow::Fin | CloseHow::Rst)) => {
                let soon = self
                    .close_delay_ns
                    .is_some_and(|delay| delay <= duration_ns(rule.short));
                match self.bytes[Side::Server.index()] {
                    Some(sent) if sent > 0 => LoopClass::Served,
                    Some(_) if soon => LoopClass::Rejected,
                    None if soon => LoopClass::RejectedUntold,
                    _ => LoopClass::Other,
                }
            }
            _ => LoopClass::Other,
        }
    }

    /// Rejected, in the sense of [`LoopRule`].
    pub fn rejected(&self, rule: &LoopRule) -> bool {
        matches!(
            self.loop_class(rule),
            LoopClass::Rejected | LoopClass::RejectedUntold
        )
    }
}

/// What a connection counts as for the reconnect-loop rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopClass {
    /// Refused, or closed first by the server soon after the handshake without a byte
    /// from it.
    Rejected,
    /// Closed first by the server soon after the handshake, in a trace whose counters
    /// do not say whether the server had answered: counted as rejected.
    RejectedUntold,
    /// Closed first by the server after it had sent data: it answered.
    Served,
    /// Anything else (the client closed, a late close, a timeout, still open).
    Other,
}

/// Why a pair was flagged as a reconnect loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoopEvidence {
    pub rejected: u64,
    /// Of `rejected`, those whose bytes the trace could not tell (no counters).
    pub rejected_untold: u64,
    pub ended: u64,
    pub refused: u64,
    pub server_rst: u64,
    /// 99th percentile of the delay from handshake to the server's close, in ms.
    pub close_delay_p99_ms: Option<f64>,
    pub run: Run,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PairStats {
    pub key: PairKey,
    /// Every connection counted for the pair, including those from before the trace.
    pub connections: u64,
    pub preexisting: u64,
    /// Connections opened during the trace (these have a start time).
    pub connects: u64,
    pub first_connect_ns: Option<u64>,
    pub last_connect_ns: Option<u64>,
    /// Rejected connections opened during the trace, and the first and last of their
    /// connects: the pace of a loop once it runs, whatever came before it.
    pub rejected_connects: u64,
    pub first_rejected_ns: Option<u64>,
    pub last_rejected_ns: Option<u64>,
    /// Indexed by [`ClosedFirst::index`].
    pub closed_first: [u64; 5],
    /// `[client, server, simultaneous][how]`: how each first closer closed.
    pub closed_by: [[u64; CloseHow::COUNT]; 3],
    /// Connections in which each side sent at least one RST.
    pub resets: [u64; 2],
    /// Connections each side closed first with a FIN and then reset anyway.
    pub fin_then_rst: [u64; 2],
    pub refused: u64,
    pub timed_out: u64,
    /// Connects that found no free local port ([`CloseHow::NoPort`]).
    pub no_port: u64,
    /// Connections whose events may be incomplete (lost events while they lived).
    pub incomplete: u64,
    pub lifetime: LogHistogram,
    /// Handshake → server's close, for connections the server closed first.
    pub server_close_delay: LogHistogram,
    pub rejected: u64,
    /// Of `rejected`, those whose bytes the trace could not tell (no counters).
    pub rejected_untold: u64,
    /// Connections the server closed first after answering (it sent data).
    pub served: u64,
    /// Payload bytes each side sent, summed over the connections whose counters tell,
    /// and how many those are, by [`Side::index`].
    pub bytes: [u64; 2],
    pub bytes_known: [u64; 2],
    /// Bytes each side sent in the served connections, for their medians.
    pub served_bytes: [LogHistogram; 2],
    run: Run,
    pub best_run: Run,
    /// Live TIME_WAIT entries inferred from FIN_WAIT2/CLOSING→CLOSE, per side.
    pub time_wait_live: [u64; 2],
    pub time_wait_peak: [u64; 2],
    /// TIME_WAIT sockets in the end snapshot (sock_diag), per side.
    pub time_wait_observed: [u64; 2],
    /// Each side's pod and workload, when all the pair's connections agree.
    pub names: [SideNames; 2],
}

impl PairStats {
    pub fn new(key: PairKey) -> Self {
        Self {
            key,
            connections: 0,
            preexisting: 0,
            connects: 0,
            first_connect_ns: None,
            last_connect_ns: None,
            rejected_connects: 0,
            first_rejected_ns: None,
            last_rejected_ns: None,
            closed_first: [0; 5],
            closed_by: [[0; CloseHow::COUNT]; 3],
            resets: [0; 2],
            fin_then_rst: [0; 2],
            refused: 0,
            timed_out: 0,
            no_port: 0,
            incomplete: 0,
            lifetime: LogHistogram::default(),
            server_close_delay: LogHistogram::default(),
            rejected: 0,
            rejected_untold: 0,
            served: 0,
            bytes: [0; 2],
            bytes_known: [0; 2],
            served_bytes: Default::default(),
            run: Run::default(),
            best_run: Run::default(),
            time_wait_live: [0; 2],
            time_wait_peak: [0; 2],
            time_wait_observed: [0; 2],
            names: [SideNames::default(), SideNames::default()],
        }
    }

    /// One connection's workloads, by [`Side::index`].
    pub fn add_workloads(&mut self, ends: &Ends) {
        for (names, end) in self.names.iter_mut().zip(ends) {
            names.add(end.as_deref());
        }
    }

    /// `namespace/pod` of `side`, when every connection of the pair agrees on it.
    pub fn pod(&self, side: Side) -> Option<&str> {
        self.names[side.index()].pod()
    }

    pub fn add(&mut self, c: &ConnectionOutcome, rule: &LoopRule) {
        self.connections += 1;
        self.preexisting += u64::from(c.preexisting);
        self.incomplete += u64::from(c.incomplete);
        if let Some(start) = c.start_ns {
            self.connects += 1;
            self.first_connect_ns = Some(self.first_connect_ns.map_or(start, |f| f.min(start)));
            self.last_connect_ns = Some(self.last_connect_ns.map_or(start, |l| l.max(start)));
        }
        let first = c.verdict.closed_first;
        self.closed_first[first.index()] += 1;
        if let Some(how) = c.verdict.how {
            if first.index() < 3 {
                self.closed_by[first.index()][how.index()] += 1;
            }
            match how {
                CloseHow::Refused => self.refused += 1,
                CloseHow::Timeout => self.timed_out += 1,
                CloseHow::NoPort => self.no_port += 1,
                _ => {}
            }
        }
        for side in [Side::Client, Side::Server] {
            self.resets[side.index()] += u64::from(c.resets[side.index()]);
        }
        if c.verdict.how == Some(CloseHow::Fin)
            && let Some(closer) = first.side()
        {
            self.fin_then_rst[closer.index()] += u64::from(c.resets[closer.index()]);
        }
        if let Some(lifetime) = c.lifetime_ns() {
            self.lifetime.record_ns(lifetime);
        }
        if first == ClosedFirst::Server
            && let Some(delay) = c.close_delay_ns
        {
            self.server_close_delay.record_ns(delay);
        }
        for (side, sent) in c.bytes.iter().enumerate() {
            if let Some(sent) = sent {
                self.bytes[side] = self.bytes[side].saturating_add(*sent);
                self.bytes_known[side] += 1;
            }
        }
        let class = c.loop_class(rule);
        if class == LoopClass::Served {
            self.served += 1;
            for (histogram, sent) in self.served_bytes.iter_mut().zip(c.bytes) {
                if let Some(sent) = sent {
                    histogram.record(sent);
                }
            }
        }
        if matches!(class, LoopClass::Rejected | LoopClass::RejectedUntold) {
            self.rejected += 1;
            self.rejected_untold += u64::from(class == LoopClass::RejectedUntold);
            if let Some(start) = c.start_ns {
                self.rejected_connects += 1;
                self.first_rejected_ns =
                    Some(self.first_rejected_ns.map_or(start, |f| f.min(start)));
                self.last_rejected_ns = Some(self.last_rejected_ns.map_or(start, |l| l.max(start)));
            }
            let start = c.start_ns.unwrap_or(0);
            let end = c.end_ns.unwrap_or(start);
            if self.run.len > 0
                && start
                    <= self
                        .run
                        .last_end_ns
                        .saturating_add(duration_ns(rule.max_gap))
            {
                self.run.len += 1;
                self.run.last_end_ns = self.run.last_end_ns.max(end);
            } else {
                self.run = Run {
                    len: 1,
                    last_end_ns: end,
                };
            }
            if self.run.len > self.best_run.len {
                self.best_run = self.run;
            }
        }
    }

    /// Connections that ended (closed, refused, timed out) rather than still open.
    pub fn ended(&self) -> u64 {
        self.connections - self.closed_first[ClosedFirst::Open.index()]
    }

    /// Connects per second over the span from the first to the last connect.
    pub fn connects_per_s(&self) -> f64 {
        match (self.first_connect_ns, self.last_connect_ns) {
            (Some(first), Some(last)) if last > first && self.connects > 1 => {
                (self.connects - 1) as f64 / ((last - first) as f64 / 1e9)
            }
            _ => 0.0,
        }
    }

    /// Rejected connects per second from the first to the last of them: how fast a
    /// loop goes once the server rejects, not counting the time before (a slow start,
    /// the connections that took the slots); `None` with fewer than two.
    pub fn rejects_per_s(&self) -> Option<f64> {
        match (self.first_rejected_ns, self.last_rejected_ns) {
            (Some(first), Some(last)) if last > first && self.rejected_connects > 1 => {
                Some((self.rejected_connects - 1) as f64 / ((last - first) as f64 / 1e9))
            }
            _ => None,
        }
    }

    pub fn reconnect_loop(&self, rule: &LoopRule) -> Option<LoopEvidence> {
        let ended = self.ended();
        let majority = ended > 0 && self.rejected as f64 >= rule.min_share * ended as f64;
        (self.best_run.len >= rule.min_run && majority).then(|| LoopEvidence {
            rejected: self.rejected,
            rejected_untold: self.rejected_untold,
            ended,
            refused: self.refused,
            server_rst: self.closed_by[ClosedFirst::Server.index()][CloseHow::Rst.index()],
            close_delay_p99_ms: self.server_close_delay.quantile_ms(0.99),
            run: self.best_run,
        })
    }

    pub fn time_wait_enter(&mut self, side: Side, counts_for_peak: bool) {
        let live = &mut self.time_wait_live[side.index()];
        *live += 1;
        if counts_for_peak {
            let peak = &mut self.time_wait_peak[side.index()];
            *peak = (*peak).max(*live);
        }
    }

    pub fn time_wait_leave(&mut self, side: Side) {
        let live = &mut self.time_wait_live[side.index()];
        *live = live.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn key() -> PairKey {
        PairKey::new(
            "::ffff:10.0.0.2".parse().unwrap(),
            "10.0.0.1:2181".parse().unwrap(),
        )
    }

    fn outcome(
        closed_first: ClosedFirst,
        how: Option<CloseHow>,
        start_ms: u64,
        life_ms: u64,
        delay_ms: Option<u64>,
    ) -> ConnectionOutcome {
        ConnectionOutcome {
            verdict: CloseVerdict { closed_first, how },
            start_ns: Some(start_ms * MS),
            end_ns: Some((start_ms + life_ms) * MS),
            close_delay_ns: delay_ms.map(|d| d * MS),
            resets: [false, how == Some(CloseHow::Rst)],
            bytes: [None, None],
            preexisting: false,
            incomplete: false,
        }
    }

    #[test]
    fn a_reset_after_the_other_sides_fin_is_not_a_fin_then_rst() {
        let rule = LoopRule::default();
        let mut pair = PairStats::new(key());
        // The server closed with a FIN and then reset.
        let mut server_fin = outcome(ClosedFirst::Server, Some(CloseHow::Fin), 0, 1, Some(1));
        server_fin.resets = [false, true];
        pair.add(&server_fin, &rule);
        // The client closed first; the server reset because of unread data.
        let mut client_fin = outcome(ClosedFirst::Client, Some(CloseHow::Fin), 2, 1, None);
        client_fin.resets = [false, true];
        pair.add(&client_fin, &rule);
        assert_eq!(pair.resets, [0, 2]);
        assert_eq!(pair.fin_then_rst, [0, 1]);
    }

    #[test]
    fn keys_are_canonical() {
        assert_eq!(key().client, "10.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn server_resets_in_a_loop_are_flagged() {
        let rule = LoopRule::default();
        let mut pair = PairStats::new(key());
        // 60 healthy connections stay open, then every reconnect is reset at once.
        for i in 0..60 {
            let mut open = outcome(ClosedFirst::Open, None, i, 0, None);
            open.end_ns = None;
            pair.add(&open, &rule);
        }
        for i in 0..20 {
            pair.add(
                &outcome(
                    ClosedFirst::Server,
                    Some(CloseHow::Rst),
                    1_000 + i * 700,
                    3,
                    Some(2),
                ),
                &rule,
            );
        }
        let evidence = pair.reconnect_loop(&rule).expect("a loop");
        assert_eq!((evidence.rejected, evidence.ended), (20, 20));
        assert_eq!(evidence.server_rst, 20);
        assert_eq!(evidence.run.len, 20);
        assert!(evidence.close_delay_p99_ms.unwrap() < 2.2);
        assert_eq!(pair.closed_first, [0, 20, 0, 0, 60]);
        assert_eq!(pair.resets, [0, 20]);
        assert!((pair.connects_per_s() - 79.0 / 14.3).abs() < 0.01);
        // The loop's own pace, without the healthy connections before it.
        assert!((pair.rejects_per_s().unwrap() - 19.0 / 13.3).abs() < 0.01);
    }

    #[test]
    fn a_client_closing_its_own_short_connections_is_not_a_loop() {
        let rule = LoopRule::default();
        let mut pair = PairStats::new(key());
        for i in 0..500 {
            pair.add(
                &outcome(ClosedFirst::Client, Some(CloseHow::Fin), i * 10, 2, Some(1)),
                &rule,
            );
        }
        assert_eq!(pair.reconnect_loop(&rule), None);
        assert_eq!(pair.rejected, 0);
        assert!(pair.lifetime.quantile_ms(0.5).unwrap() > 1.8);
    }

    #[test]
    fn refusals_form_a_loop_but_sparse_or_slow_closes_do_not() {
        let rule = LoopRule::default();
        let mut refused = PairStats::new(key());
        for i in 0..5 {
            refused.add(
                &outcome(
                    ClosedFirst::Server,
                    Some(CloseHow::Refused),
                    i * 1000,
                    0,
                    None,
                ),
                &rule,
            );
        }
        assert_eq!(refused.reconnect_loop(&rule).unwrap().refused, 5);

        // Four rejections are not a run.
        let mut few = PairStats::new(key());
        for i in 0..4 {
            few.add(
                &outcome(
                    ClosedFirst::Server,
                    Some(CloseHow::Rst),
                    i * 1000,
                    1,
                    Some(1),
                ),
                &rule,
            );
        }
        assert_eq!(few.reconnect_loop(&rule), None);

        // Rejections a minute apart are not a run either.
        let mut sparse = PairStats::new(key());
        for i in 0..10 {
            sparse.add(
                &outcome(
                    ClosedFirst::Server,
                    Some(CloseHow::Rst),
                    i * 60_000,
                    1,
                    Some(1),
                ),
                &rule,
            );
        }
        assert_eq!(sparse.best_run.len, 1);
        assert_eq!(sparse.reconnect_loop(&rule), None);

        // A server closing idle connections after 5 s does not reject them.
        let mut idle = PairStats::new(key());
        for i in 0..10 {
            idle.add(
                &outcome(
                    ClosedFirst::Server,
                    Some(CloseHow::Fin),
                    i * 6000,
                    5000,
                    Some(5000),
                ),
                &rule,
            );
        }
        assert_eq!(idle.reconnect_loop(&rule), None);

        // A run that is a minority of the pair's ended connections is not a loop.
        let mut minority = PairStats::new(key());
        for i in 0..6 {
            minority.add(
                &outcome(
                    ClosedFirst::Server,
                    Some(CloseHow::Rst),
                    i * 100,
                    1,
                    Some(1),
                ),
                &rule,
            );
        }
        for i in 0..10 {
            minority.add(
                &outcome(
                    ClosedFirst::Client,
                    Some(CloseHow::Fin),
                    i * 100,
                    1,
                    Some(1),
                ),
                &rule,
            );
        }
        assert_eq!(minority.reconnect_loop(&rule), None);
    }

    /// The server closes each connection first, 1 ms after the handshake, having sent
    /// `answer` bytes (`None`: a trace without counters) to a client that sent 15.
    fn server_closes(rule: &LoopRule, answer: Option<u64>) -> PairStats {
        let mut pair = PairStats::new(key());
        for i in 0..50 {
            let mut c = outcome(
                ClosedFirst::Server,
                Some(CloseHow::Fin),
                i * 200,
                2,
                Some(1),
            );
            c.bytes = [answer.map(|_| 15), answer];
            pair.add(&c, rule);
        }
        pair
    }

    #[test]
    fn a_server_that_answers_before_closing_serves_and_does_not_loop() {
        let rule = LoopRule::default();
        let served = server_closes(&rule, Some(2_048));
        assert_eq!(served.reconnect_loop(&rule), None);
        assert_eq!((served.served, served.rejected), (50, 0));
        assert_eq!(served.bytes, [50 * 15, 50 * 2_048]);
        assert_eq!(served.bytes_known, [50, 50]);
        let median = served.served_bytes[1].quantile(0.5).unwrap();
        assert!((median - 2_048.0).abs() / 2_048.0 <= 0.0625, "{median}");
        assert_eq!(served.served_bytes[0].quantile(0.5), Some(15.0));
        // A short error line is an answer too: served, its bytes tell it from a page.
        let error_line = server_closes(&rule, Some(25));
        assert_eq!(error_line.reconnect_loop(&rule), None);
        let error = error_line.served_bytes[1].quantile(0.5).unwrap();
        assert!((24.0..=26.0).contains(&error), "{error}");
        // A late close after answering is served; one without a byte is not rejected.
        let mut late = PairStats::new(key());
        let mut c = outcome(
            ClosedFirst::Server,
            Some(CloseHow::Fin),
            0,
            9000,
            Some(9000),
        );
        c.bytes = [Some(0), Some(0)];
        late.add(&c, &rule);
        c.bytes = [Some(10), Some(10)];
        late.add(&c, &rule);
        assert_eq!((late.rejected, late.served), (0, 1));
    }

    #[test]
    fn a_server_that_closes_without_a_byte_rejects_and_loops() {
        let rule = LoopRule::default();
        let rejected = server_closes(&rule, Some(0));
        let evidence = rejected.reconnect_loop(&rule).expect("a loop");
        assert_eq!((evidence.rejected, evidence.rejected_untold), (50, 0));
        assert_eq!(rejected.served, 0);
        // Without counters the rule cannot tell: rejected as before, and said so.
        let untold = server_closes(&rule, None);
        let evidence = untold.reconnect_loop(&rule).expect("a loop");
        assert_eq!((evidence.rejected, evidence.rejected_untold), (50, 50));
        assert_eq!(untold.bytes_known, [0, 0]);
    }

    #[test]
    fn time_wait_peaks_follow_live_counts() {
        let mut pair = PairStats::new(key());
        pair.time_wait_enter(Side::Server, true);
        pair.time_wait_enter(Side::Server, true);
        pair.time_wait_leave(Side::Server);
        pair.time_wait_enter(Side::Server, false);
        pair.time_wait_enter(Side::Server, false);
        assert_eq!(pair.time_wait_live, [0, 3]);
        assert_eq!(pair.time_wait_peak, [0, 2]);
    }
}
