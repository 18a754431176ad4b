//! The verdict's sentences, shared by the text and the JSON printers.

use std::fmt::Write as _;

use crate::{
    analysis::{
        CloseHow, Closes, Finding, GapWindow, KernelLimit, LeakGroup, LoopEvidence, LoopRule,
        PairReport, PairVerdict, Served, Side, SideCloses, TimeWaitHolders,
    },
    model::{GapCause, duration_ns},
    render::{
        address::{EndpointText, IpText},
        format::{human_bytes, human_duration, human_ms, plural, secs},
        hosts,
    },
};

/// The sentence of a finding.
pub fn finding(finding: &Finding<'_>) -> String {
    match finding {
        Finding::LostEvents {
            lost,
            windows,
            more,
        } => {
            let missing_part = |g: &GapWindow| g.cause == GapCause::MissingPart;
            let parts_missing = windows.iter().any(missing_part);
            let windows: Vec<String> = windows
                .iter()
                .map(|g| {
                    let what = if missing_part(g) {
                        "a missing part".to_owned()
                    } else {
                        g.lost.to_string()
                    };
                    format!(
                        "{what} between {:.3} and {:.3} s",
                        secs(g.from_ns),
                        secs(g.to_ns)
                    )
                })
                .collect();
            let what = match (*lost, parts_missing) {
                (0, true) => "parts of the recording are missing".to_owned(),
                (lost, true) => {
                    format!("{lost} events were lost and parts of the recording are missing")
                }
                (lost, false) => format!("{lost} events were lost"),
            };
            let mut text = format!(
                "{what}, so these verdicts may be incomplete: {}",
                windows.join(", ")
            );
            if *more > 0 {
                write!(text, " and {more} more gaps").unwrap_or_default();
            }
            text
        }
        Finding::NotRecorded(what) => format!("not recorded: {what}"),
        Finding::NotKnown(limit) => format!("not known on this kernel: {}", kernel_limit(*limit)),
        Finding::Damaged(what) => format!("damaged trace: {what}"),
        Finding::Unmerged(ends) => hosts::unmerged(ends),
        Finding::Pair(pair) => pair_verdict(pair),
        Finding::MorePairs(more) => format!("... and {more} more pairs in the tables below"),
        Finding::NoConnections => {
            "no connections in this trace (or none matched the filters)".to_owned()
        }
        Finding::CloseWaitLeak(group) => leak(group),
    }
}

/// What a verdict cannot know on the recording's kernel, and what that means.
pub fn kernel_limit(limit: KernelLimit) -> &'static str {
    match limit {
        KernelLimit::ResetReason => {
            "why each RST was sent: this kernel's tcp_send_reset gives no reason (before 6.10)"
        }
        KernelLimit::ResetWithoutSocket => {
            "RSTs sent without a socket (before 6.10): a connect refused here is seen only \
             from its client's side, so refusals of clients not traced here are not counted"
        }
        KernelLimit::ErrorReportSocket => {
            "which socket each error report is for (no BTF, so no socket offsets): reports \
             are paired with the last socket event on their CPU, and one that cannot be \
             paired has no connection"
        }
    }
}

/// `10.0.0.2 -> 10.0.0.1:2181`, with each side's workload when every connection of
/// the pair agrees on it: `10.0.0.2 (shop/app-0/app) -> 10.0.0.1:2181 (infra/zk-0)`.
pub fn pair_label(pair: &PairReport) -> String {
    let named = |side: Side| {
        pair.stats.names[side.index()]
            .label()
            .map_or_else(String::new, |label| format!(" ({label})"))
    };
    format!(
        "{}{} -> {}{}",
        IpText(pair.stats.key.client),
        named(Side::Client),
        EndpointText(pair.stats.key.server),
        named(Side::Server)
    )
}

/// The one-sentence verdict for a pair.
pub fn pair_verdict(verdict: &PairVerdict<'_>) -> String {
    let stats = &verdict.pair.stats;
    let mut text = format!("{}: ", pair_label(verdict.pair));
    if verdict.pair.reconnect_loop.is_some() {
        text.push_str("reconnect loop, ");
    }
    text.push_str(&plural(stats.connections, "connection"));
    if let Some(span) = verdict.span_ns {
        write!(text, " in {}", human_duration(span)).unwrap_or_default();
    }
    match verdict.closes {
        Closes::AllOpen => text.push_str(", all still open"),
        Closes::Unknown { count, ended } => {
            write!(text, ", closer unknown for {count}/{ended}").unwrap_or_default();
        }
        Closes::Simultaneous { count, ended } => {
            write!(text, ", both closed at once {count}/{ended}").unwrap_or_default();
        }
        Closes::BySide(side) => text.push_str(&side_closes(&side)),
    }
    if let Some(served) = &verdict.served {
        text.push_str(&served_words(served));
    }
    write!(text, "; {}", time_wait(&verdict.time_wait)).unwrap_or_default();
    text
}

/// ", 30 of them after answering (median request 18 B, answer 2.0 KiB): short
/// connections the server ends after each answer, so the TIME_WAIT is the server's;
/// keep-alive would avoid it"
fn served_words(served: &Served) -> String {
    // A median of an even count may fall between two whole bytes.
    let bytes =
        |side: Side| served.median_bytes[side.index()].map(|b| human_bytes(b.round() as u64));
    let medians = match (bytes(Side::Client), bytes(Side::Server)) {
        (Some(request), Some(answer)) => format!(" (median request {request}, answer {answer})"),
        (None, Some(answer)) => format!(" (median answer {answer})"),
        _ => String::new(),
    };
    let them = if served.count == served.server_closed {
        "all".to_owned()
    } else {
        served.count.to_string()
    };
    format!(
        ", {them} after answering{medians}: short connections the server ends after each \
         answer, so the TIME_WAIT is the server's; keep-alive would avoid it"
    )
}

/// ", server closed first 34/34 by FIN within 1.7 ms of accept (28 of the FINs then
/// followed by an RST), 2/34 refused"
fn side_closes(closes: &SideCloses) -> String {
    let mut text = String::new();
    let ended = closes.ended;
    if closes.closed > 0 {
        write!(
            text,
            ", {} closed first {}/{ended} by {}",
            closes.side.name(),
            closes.closed,
            how_words(&closes.how)
        )
        .unwrap_or_default();
        if let Some(p99) = closes.within_ms {
            write!(text, " within {} of accept", human_ms(Some(p99))).unwrap_or_default();
        }
        text.push_str(&rst_after_fin_words(closes));
    }
    if closes.refused > 0 {
        write!(text, ", {}/{ended} refused", closes.refused).unwrap_or_default();
    }
    if closes.no_port > 0 {
        write!(
            text,
            ", {}/{ended} found no free local port (EADDRNOTAVAIL: the client's port range \
             toward this server is used up, by open or TIME_WAIT sockets)",
            closes.no_port
        )
        .unwrap_or_default();
    }
    text
}

/// "FIN", "RST", "FIN or RST", "timeout"...
fn how_words(counts: &[u64; CloseHow::COUNT]) -> String {
    let named: Vec<&str> = CloseHow::ALL
        .iter()
        .filter(|how| counts[how.index()] > 0)
        .map(|how| match how {
            CloseHow::Fin => "FIN",
            CloseHow::Rst => "RST",
            other => other.name(),
        })
        .collect();
    if named.is_empty() {
        "unknown means".to_owned()
    } else {
        named.join(" or ")
    }
}

/// " (28 of the FINs then followed by an RST)": a side that closed with a FIN and then
/// reset the connection anyway (ZooKeeper's `fastCloseSock`: linger 0, shutdown, close).
fn rst_after_fin_words(closes: &SideCloses) -> String {
    let fin = closes.how[CloseHow::Fin.index()];
    match closes.fin_then_rst {
        0 => String::new(),
        all if all == fin => " (each then followed by an RST)".to_owned(),
        some => format!(" ({some} of the FINs then followed by an RST)"),
    }
}

/// "server holds 6 TIME_WAIT, client 0 (the kernel listed 5 and 0)"
fn time_wait(holders: &TimeWaitHolders) -> String {
    let (holder, other) = (holders.holder, holders.holder.other());
    let live = holders.live;
    let mut words = format!(
        "{} holds {} TIME_WAIT, {} {}",
        holder.name(),
        live[holder.index()],
        other.name(),
        live[other.index()]
    );
    if let Some(kernel) = holders.kernel {
        write!(
            words,
            " (the kernel listed {} and {})",
            kernel[holder.index()],
            kernel[other.index()]
        )
        .unwrap_or_default();
    }
    words
}

/// "CLOSE_WAIT leak: pid 42 (java) holds 3 sockets in CLOSE_WAIT ..."
fn leak(group: &LeakGroup) -> String {
    format!(
        "CLOSE_WAIT leak: {} holds {} socket{} in CLOSE_WAIT (peer closed, no close() since), \
         oldest {}{}",
        group.owner.map_or_else(
            || "an unknown process".to_owned(),
            |t| format!("pid {} ({})", t.pid, t.comm)
        ),
        group.sockets,
        if group.sockets == 1 { "" } else { "s" },
        human_duration(group.oldest_ns),
        if group.at_least { " or more" } else { "" }
    )
}

/// Why a pair was flagged, in words.
pub fn loop_reason(evidence: &LoopEvidence, rule: &LoopRule) -> String {
    let mut text = format!(
        "flagged because {} of {} ended connections were rejected (refused, or closed by \
         the server within {} of the handshake without a byte from it), {} of them in a \
         row at most {} apart",
        evidence.rejected,
        evidence.ended,
        human_duration(duration_ns(rule.short)),
        evidence.run.len,
        human_duration(duration_ns(rule.max_gap)),
    );
    if evidence.rejected_untold > 0 {
        write!(
            text,
            "; for {} of them the trace has no byte counters, so whether the server had \
             answered before closing could not be told",
            evidence.rejected_untold
        )
        .unwrap_or_default();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_fins(fin_then_rst: u64) -> SideCloses {
        let mut how = [0; CloseHow::COUNT];
        how[CloseHow::Fin.index()] = 34;
        SideCloses {
            side: Side::Server,
            closed: 34,
            ended: 34,
            how,
            fin_then_rst,
            within_ms: Some(1.7),
            refused: 0,
            no_port: 0,
        }
    }

    #[test]
    fn fins_followed_by_resets_are_named() {
        assert_eq!(
            side_closes(&server_fins(28)),
            ", server closed first 34/34 by FIN within 1.7 ms of accept (28 of the FINs then \
             followed by an RST)"
        );
        assert_eq!(
            rst_after_fin_words(&server_fins(34)),
            " (each then followed by an RST)"
        );
        assert_eq!(rst_after_fin_words(&server_fins(0)), "");
    }

    #[test]
    fn refusals_and_unknown_means_are_said() {
        let mut closes = server_fins(0);
        closes.how = [0; CloseHow::COUNT];
        closes.closed = 0;
        closes.refused = 3;
        closes.ended = 3;
        assert_eq!(side_closes(&closes), ", 3/3 refused");
        closes.refused = 0;
        closes.no_port = 3;
        assert_eq!(
            side_closes(&closes),
            ", 3/3 found no free local port (EADDRNOTAVAIL: the client's port range toward \
             this server is used up, by open or TIME_WAIT sockets)"
        );
        assert_eq!(how_words(&[0; CloseHow::COUNT]), "unknown means");
        assert_eq!(how_words(&[1, 1, 0, 1, 0, 0]), "FIN or RST or timeout");
    }

    #[test]
    fn the_time_wait_holder_comes_first() {
        let holders = TimeWaitHolders {
            holder: Side::Server,
            live: [0, 6],
            kernel: Some([1, 5]),
        };
        assert_eq!(
            time_wait(&holders),
            "server holds 6 TIME_WAIT, client 0 (the kernel listed 5 and 1)"
        );
    }
}
