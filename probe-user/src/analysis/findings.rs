//! The verdict as typed lines, most important first, each with the data it shows. The
//! words, colours and JSON are the renderers'; nothing downstream reads a line's text.

use crate::{
    analysis::{
        close_wait::CloseWaitLeak,
        gaps::GapWindow,
        pair_table::PairReport,
        result::Analysis,
        trace_info::{KernelLimit, TraceInfo, UnmergedEnds},
        verdict::{CloseHow, ClosedFirst, Side},
    },
    model::Task,
};

/// Pairs named in the verdict; the tables list them all.
pub const MAX_PAIRS: usize = 8;
/// Gap windows named in the lost-events line.
const MAX_GAP_WORDS: usize = 4;

/// How much a finding asks for attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Note,
    /// The trace is incomplete or damaged, or a process leaks sockets.
    Warning,
    /// A reconnect loop.
    Alarm,
}

/// One line of the verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding<'a> {
    /// Events were lost: the verdicts may be incomplete.
    LostEvents {
        lost: u64,
        /// The first gap windows.
        windows: &'a [GapWindow],
        /// Gap windows not in `windows`.
        more: u64,
    },
    /// A tracepoint the recorder could not attach (with why).
    NotRecorded(&'a str),
    /// Something the recording's kernel does not give.
    NotKnown(KernelLimit),
    /// Damage the reader worked around.
    Damaged(&'a str),
    /// The two ends of some connections between two hosts could not be matched.
    Unmerged(&'a UnmergedEnds),
    /// A client→server pair: a reconnect loop, or what its connections did.
    Pair(PairVerdict<'a>),
    /// Pairs beyond [`MAX_PAIRS`].
    MorePairs(usize),
    /// Nothing counted.
    NoConnections,
    /// One process's sockets left in CLOSE_WAIT.
    CloseWaitLeak(LeakGroup),
}

impl Finding<'_> {
    pub fn severity(&self) -> Severity {
        match self {
            Self::Pair(pair) if pair.pair.reconnect_loop.is_some() => Severity::Alarm,
            Self::LostEvents { .. }
            | Self::NotRecorded(_)
            | Self::NotKnown(_)
            | Self::Damaged(_)
            | Self::Unmerged(_)
            | Self::CloseWaitLeak(_) => Severity::Warning,
            Self::Pair(_) | Self::MorePairs(_) | Self::NoConnections => Severity::Note,
        }
    }

    /// A warning about the trace rather than about its connections.
    pub fn is_about_the_trace(&self) -> bool {
        matches!(
            self,
            Self::LostEvents { .. }
                | Self::NotRecorded(_)
                | Self::NotKnown(_)
                | Self::Damaged(_)
                | Self::Unmerged(_)
        )
    }
}

/// What a pair's connections did.
#[derive(Clone, Debug, PartialEq)]
pub struct PairVerdict<'a> {
    pub pair: &'a PairReport,
    /// From the first connect to the last, when they differ.
    pub span_ns: Option<u64>,
    pub closes: Closes,
    pub time_wait: TimeWaitHolders,
    /// When most of the connections the server closed first were answered before it
    /// closed them: short connections the server ends after answering.
    pub served: Option<Served>,
}

/// Connections the server closed first after answering, and what they carried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Served {
    pub count: u64,
    /// Connections the server closed first (refusals not counted).
    pub server_closed: u64,
    /// Median payload bytes each side sent in them, by [`Side::index`].
    pub median_bytes: [Option<f64>; 2],
}

/// Who closed the pair's ended connections first, by the most frequent answer (for a
/// reconnect loop: the server, and the refusals).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Closes {
    /// None ended.
    AllOpen,
    Unknown {
        count: u64,
        ended: u64,
    },
    Simultaneous {
        count: u64,
        ended: u64,
    },
    BySide(SideCloses),
}

/// The connections one side closed first, and the refused connects.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SideCloses {
    pub side: Side,
    /// Closed first by `side`, refusals not counted.
    pub closed: u64,
    pub ended: u64,
    /// How, by [`CloseHow::index`], refusals and connects without a port not counted.
    pub how: [u64; CloseHow::COUNT],
    /// Of the FIN closes, those then followed by the closer's RST.
    pub fin_then_rst: u64,
    /// For a reconnect loop: the 99th percentile of handshake → close, in ms.
    pub within_ms: Option<f64>,
    pub refused: u64,
    /// Connects that found no free local port (the client's side only).
    pub no_port: u64,
}

/// Which side holds more TIME_WAIT at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWaitHolders {
    pub holder: Side,
    /// Live entries by [`Side::index`].
    pub live: [u64; 2],
    /// The kernel's count in the end snapshot, when it differs.
    pub kernel: Option<[u64; 2]>,
}

/// Sockets one process (or unknown processes) left in CLOSE_WAIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeakGroup {
    pub owner: Option<Task>,
    pub sockets: usize,
    pub oldest_ns: u64,
    /// Some were in CLOSE_WAIT before the trace: the age is a lower bound.
    pub at_least: bool,
}

/// The findings, most important first.
pub fn findings<'a>(trace: &'a TraceInfo, analysis: &'a Analysis) -> Vec<Finding<'a>> {
    let mut found = Vec::new();
    if analysis.incomplete() {
        let windows = &analysis.gaps[..analysis.gaps.len().min(MAX_GAP_WORDS)];
        found.push(Finding::LostEvents {
            lost: analysis.lost,
            windows,
            more: (analysis.gaps.len() - windows.len()) as u64 + analysis.more_gaps,
        });
    }
    found.extend(
        trace
            .missing_tracepoints
            .iter()
            .map(|m| Finding::NotRecorded(m)),
    );
    found.extend(trace.kernel_limits.iter().copied().map(Finding::NotKnown));
    found.extend(trace.damage.iter().map(|d| Finding::Damaged(d)));
    found.extend(trace.unmerged.iter().map(Finding::Unmerged));
    found.extend(
        analysis
            .pairs
            .iter()
            .take(MAX_PAIRS)
            .map(|pair| Finding::Pair(PairVerdict::of(pair, analysis.end_snapshot))),
    );
    if analysis.pairs.len() > MAX_PAIRS {
        found.push(Finding::MorePairs(analysis.pairs.len() - MAX_PAIRS));
    }
    if analysis.pairs.is_empty() {
        found.push(Finding::NoConnections);
    }
    found.extend(
        leak_groups(&analysis.close_wait)
            .into_iter()
            .map(Finding::CloseWaitLeak),
    );
    found
}

impl<'a> PairVerdict<'a> {
    /// `end_snapshot`: the trace has the kernel's TIME_WAIT count.
    pub fn of(pair: &'a PairReport, end_snapshot: bool) -> Self {
        let stats = &pair.stats;
        let span_ns = match (stats.first_connect_ns, stats.last_connect_ns) {
            (Some(first), Some(last)) if last > first => Some(last - first),
            _ => None,
        };
        let closes = match &pair.reconnect_loop {
            Some(evidence) => {
                let mut closes = side_closes(pair, Side::Server, evidence.ended);
                closes.closed = stats.closed_first[ClosedFirst::Server.index()] - evidence.refused;
                closes.refused = evidence.refused;
                closes.within_ms = evidence.close_delay_p99_ms;
                Closes::BySide(closes)
            }
            None => most_frequent_closes(pair),
        };
        let live = stats.time_wait_live;
        let holder = if live[Side::Client.index()] > live[Side::Server.index()] {
            Side::Client
        } else {
            Side::Server
        };
        let observed = stats.time_wait_observed;
        Self {
            pair,
            span_ns,
            closes,
            time_wait: TimeWaitHolders {
                holder,
                live,
                kernel: (end_snapshot && observed != live).then_some(observed),
            },
            served: served(pair, &closes),
        }
    }
}

/// The served connections, when the verdict names the server as the usual first closer
/// (and not as a loop's) and most of its closes came after an answer.
fn served(pair: &PairReport, closes: &Closes) -> Option<Served> {
    let stats = &pair.stats;
    let Closes::BySide(SideCloses {
        side: Side::Server,
        closed,
        ..
    }) = *closes
    else {
        return None;
    };
    (pair.reconnect_loop.is_none() && stats.served > 0 && 2 * stats.served >= closed).then(|| {
        Served {
            count: stats.served,
            server_closed: closed,
            median_bytes: stats.served_bytes.each_ref().map(|h| h.quantile(0.5)),
        }
    })
}

/// What `side` closed first, refusals and connects without a port apart: neither
/// reached a connection.
fn side_closes(pair: &PairReport, side: Side, ended: u64) -> SideCloses {
    let stats = &pair.stats;
    let first = ClosedFirst::from_side(side);
    let mut how = stats.closed_by[first.index()];
    let refused = std::mem::take(&mut how[CloseHow::Refused.index()]);
    let no_port = std::mem::take(&mut how[CloseHow::NoPort.index()]);
    SideCloses {
        side,
        closed: stats.closed_first[first.index()] - refused - no_port,
        ended,
        how,
        fin_then_rst: stats.fin_then_rst[side.index()].min(how[CloseHow::Fin.index()]),
        within_ms: None,
        refused,
        no_port,
    }
}

/// The most frequent answer to "who closed first" among a pair's ended connections.
fn most_frequent_closes(pair: &PairReport) -> Closes {
    let stats = &pair.stats;
    let ended = stats.ended();
    if ended == 0 {
        return Closes::AllOpen;
    }
    let first = [
        ClosedFirst::Client,
        ClosedFirst::Server,
        ClosedFirst::Simultaneous,
        ClosedFirst::Unknown,
    ]
    .into_iter()
    .max_by_key(|f| (stats.closed_first[f.index()], std::cmp::Reverse(f.index())))
    .unwrap_or(ClosedFirst::Unknown);
    let count = stats.closed_first[first.index()];
    match first.side() {
        Some(side) => Closes::BySide(side_closes(pair, side, ended)),
        None if first == ClosedFirst::Simultaneous => Closes::Simultaneous { count, ended },
        None => Closes::Unknown { count, ended },
    }
}

/// Leaks grouped by owner, largest group first.
pub fn leak_groups(leaks: &[CloseWaitLeak]) -> Vec<LeakGroup> {
    let mut groups: Vec<(Option<u32>, LeakGroup)> = Vec::new();
    for leak in leaks {
        let pid = leak.owner.map(|t| t.pid);
        match groups.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, group)) => {
                group.sockets += 1;
                group.oldest_ns = group.oldest_ns.max(leak.age_ns);
                group.at_least |= leak.at_least;
            }
            None => groups.push((
                pid,
                LeakGroup {
                    owner: leak.owner,
                    sockets: 1,
                    oldest_ns: leak.age_ns,
                    at_least: leak.at_least,
                },
            )),
        }
    }
    groups.sort_by_key(|(_, group)| std::cmp::Reverse(group.sockets));
    groups.into_iter().map(|(_, group)| group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::{
            gaps::GapWindow,
            pairs::{LoopEvidence, PairKey, PairStats, Run},
        },
        model::GapCause,
        synth::task,
    };

    fn pair(server: &str) -> PairStats {
        PairStats::new(PairKey::new(
            "10.0.0.2".parse().unwrap(),
            server.parse().unwrap(),
        ))
    }

    fn report(stats: PairStats, looping: bool) -> PairReport {
        let reconnect_loop = looping.then(|| LoopEvidence {
            rejected: stats.rejected,
            rejected_untold: stats.rejected_untold,
            ended: stats.ended(),
            refused: stats.refused,
            server_rst: 0,
            close_delay_p99_ms: Some(1.5),
            run: Run::default(),
        });
        PairReport {
            stats,
            reconnect_loop,
        }
    }

    fn analysis(pairs: Vec<PairReport>) -> Analysis {
        Analysis {
            events: 10,
            lost: 0,
            lost_by_cause: [0; GapCause::ALL.len()],
            gaps: Vec::new(),
            more_gaps: 0,
            end_ns: 1,
            connections: 0,
            pairs,
            close_wait: Vec::new(),
            close_wait_closed_late: 0,
            end_snapshot: false,
        }
    }

    #[test]
    fn the_trace_comes_first_then_pairs_then_leaks() {
        let mut analysis = analysis(vec![report(pair("10.0.0.1:80"), false)]);
        analysis.lost = 7;
        analysis.gaps = (0..6)
            .map(|i| GapWindow {
                from_ns: i,
                to_ns: i,
                lost: 1,
                cause: GapCause::RingFull,
            })
            .collect();
        analysis.more_gaps = 3;
        let leak = |pid, age_ns| CloseWaitLeak {
            conn: 1,
            host: crate::model::HostId::FIRST,
            netns: 0,
            cgroup: 0,
            workload: None,
            owner: Some(task(pid, "java")),
            local: "10.0.0.1:80".parse().unwrap(),
            peer: "10.0.0.2:1".parse().unwrap(),
            since_ns: 0,
            age_ns,
            at_least: pid == 9,
        };
        analysis.close_wait = vec![leak(8, 5), leak(9, 7), leak(9, 6)];
        let trace = TraceInfo {
            missing_tracepoints: vec!["tcp:tcp_send_reset".into()],
            damage: vec!["cut".into()],
            ..TraceInfo::default()
        };
        let found = findings(&trace, &analysis);
        let Finding::LostEvents {
            lost,
            windows,
            more,
        } = &found[0]
        else {
            panic!("{found:?}")
        };
        assert_eq!((*lost, windows.len(), *more), (7, 4, 5));
        assert_eq!(found[1], Finding::NotRecorded("tcp:tcp_send_reset"));
        assert_eq!(found[2], Finding::Damaged("cut"));
        assert!(found[..3].iter().all(Finding::is_about_the_trace));
        assert!(matches!(found[3], Finding::Pair(_)));
        let Finding::CloseWaitLeak(biggest) = found[4] else {
            panic!("{found:?}")
        };
        assert_eq!(
            (biggest.sockets, biggest.oldest_ns, biggest.at_least),
            (2, 7, true)
        );
        assert_eq!(found.len(), 6);
        assert!(found[3..].iter().all(|f| !f.is_about_the_trace()));
        assert_eq!(found[5].severity(), Severity::Warning);
    }

    #[test]
    fn many_pairs_or_none_are_said() {
        let pairs = (0..MAX_PAIRS + 2)
            .map(|i| report(pair(&format!("10.0.0.1:{}", 80 + i)), false))
            .collect();
        let trace = TraceInfo::default();
        let many = analysis(pairs);
        let found = findings(&trace, &many);
        assert_eq!(found.last(), Some(&Finding::MorePairs(2)));
        let none = analysis(Vec::new());
        assert_eq!(findings(&trace, &none), [Finding::NoConnections]);
        assert_eq!(Finding::NoConnections.severity(), Severity::Note);
    }

    #[test]
    fn a_loop_is_an_alarm_about_the_server_and_the_refusals() {
        let mut stats = pair("10.0.0.1:2181");
        stats.connections = 12;
        stats.closed_first = [0, 12, 0, 0, 0];
        stats.closed_by[ClosedFirst::Server.index()][CloseHow::Fin.index()] = 8;
        stats.closed_by[ClosedFirst::Server.index()][CloseHow::Refused.index()] = 4;
        stats.refused = 4;
        stats.fin_then_rst = [0, 9];
        stats.time_wait_live = [0, 3];
        stats.first_connect_ns = Some(5);
        stats.last_connect_ns = Some(9);
        let looping = report(stats, true);
        let verdict = PairVerdict::of(&looping, true);
        assert_eq!(Finding::Pair(verdict.clone()).severity(), Severity::Alarm);
        assert_eq!(verdict.span_ns, Some(4));
        let Closes::BySide(closes) = verdict.closes else {
            panic!("{:?}", verdict.closes)
        };
        assert_eq!(
            (closes.side, closes.closed, closes.ended),
            (Side::Server, 8, 12)
        );
        assert_eq!((closes.refused, closes.fin_then_rst), (4, 8));
        assert_eq!(closes.how[CloseHow::Refused.index()], 0);
        assert_eq!(closes.within_ms, Some(1.5));
        assert_eq!(verdict.time_wait.holder, Side::Server);
        assert_eq!(
            verdict.time_wait.kernel,
            Some([0, 0]),
            "the kernel saw none"
        );
    }

    #[test]
    fn otherwise_the_most_frequent_closer_is_named() {
        let mut stats = pair("10.0.0.1:80");
        stats.connections = 5;
        stats.closed_first = [1, 1, 2, 0, 1];
        let closes = PairVerdict::of(&report(stats.clone(), false), false).closes;
        assert_eq!(closes, Closes::Simultaneous { count: 2, ended: 4 });
        stats.closed_first = [2, 2, 0, 0, 0];
        let closes = PairVerdict::of(&report(stats.clone(), false), false).closes;
        assert!(
            matches!(
                closes,
                Closes::BySide(SideCloses {
                    side: Side::Client,
                    ..
                })
            ),
            "ties go to the client"
        );
        stats.closed_first = [0, 0, 0, 1, 4];
        let closes = PairVerdict::of(&report(stats.clone(), false), false).closes;
        assert_eq!(closes, Closes::Unknown { count: 1, ended: 1 });
        stats.closed_first = [0, 0, 0, 0, 5];
        let open = report(stats, false);
        let verdict = PairVerdict::of(&open, true);
        assert_eq!(verdict.closes, Closes::AllOpen);
        assert_eq!(verdict.time_wait.kernel, None, "same as inferred");
    }
}
