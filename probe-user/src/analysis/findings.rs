//! The verdict as typed lines, most important first, each with the data it shows. The
//! words, colours and JSON are the renderers'; nothing downstream reads a line's text.

use crate::{
    analysis::{
        close_wait::CloseWaitLeak,
        gaps::GapWindow,
        pair_table::PairReport,
        result::Analysis,
        trace_info::TraceInfo,
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
    /// Damage the reader worked around.
    Damaged(&'a str),
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
            | Self::Damaged(_)
            | Self::CloseWaitLeak(_) => Severity::Warning,
            Self::Pair(_) | Self::MorePairs(_) | Self::NoConnections => Severity::Note,
        }
    }

    /// A warning about the trace rather than about its connections.
    pub fn is_about_the_trace(&self) -> bool {
        matches!(
            self,
            Self::LostEvents { .. } | Self::NotRecorded(_) | Self::Damaged(_)
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
    /// How, by [`CloseHow::index`], refusals not counted.
    pub how: [u64; 5],
    /// Of the FIN closes, those then followed by the closer's RST.
    pub fin_then_rst: u64,
    /// For a reconnect loop: the 99th percentile of handshake → close, in ms.
    pub within_ms: Option<f64>,
    pub refused: u64,
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
    found.extend(trace.damage.iter().map(|d| Finding::Damaged(d)));
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
        }
    }
}

/// What `side` closed first, refusals apart.
fn side_closes(pair: &PairReport, side: Side, ended: u64) -> SideCloses {
    let stats = &pair.stats;
    let first = ClosedFirst::from_side(side);
    let mut how = stats.closed_by[first.index()];
    let refused = std::mem::take(&mut how[CloseHow::Refused.index()]);
    SideCloses {
        side,
        closed: stats.closed_first[first.index()] - refused,
        ended,
        how,
        fin_then_rst: stats.fin_then_rst[side.index()].min(how[CloseHow::Fin.index()]),
        within_ms: None,
        refused,
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
fn leak_groups(leaks: &[CloseWaitLeak]) -> Vec<LeakGroup> {
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
