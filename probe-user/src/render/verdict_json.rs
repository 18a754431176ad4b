//! The JSON verdict: one document. Its members are in alphabetical order (the order
//! the document has always had), `pairs` last; with `--connections` the document
//! starts with the rows, streamed before the rest is known.

use std::io::{self, Write};

use serde::{Serialize, Serializer};
use serde_json::ser::{CompactFormatter, Formatter};

use crate::{
    analysis::{
        Analysis, CloseHow, CloseWaitLeak, ClosedFirst, GapWindow, LoopRule, PairReport,
        PairVerdict, Side, TraceInfo, findings,
    },
    model::TracepointStatus,
    render::{
        address::{EndpointText, IpText},
        connections::SideCounts,
        format::{round3, secs},
        hosts::JsonHost,
        sentences,
        workload::JsonContainer,
    },
};

#[derive(Serialize)]
struct JsonVerdict<'a> {
    close_wait: Vec<JsonLeak<'a>>,
    close_wait_closed_late: u64,
    close_wait_threshold_s: f64,
    connections_counted: u64,
    incomplete: bool,
    reconnect_loop_rule: JsonRule,
    trace: JsonTrace<'a>,
    /// The verdict's lines about the trace itself (lost events, damage, tracepoints
    /// not recorded).
    warnings: Vec<String>,
    /// Streamed: a trace can hold hundreds of thousands of pairs.
    pairs: JsonPairs<'a>,
}

#[derive(Serialize)]
struct JsonTrace<'a> {
    damage: &'a [String],
    duration_s: f64,
    end_snapshot: bool,
    events: u64,
    file: &'a str,
    gaps: Vec<JsonGap>,
    host: &'a str,
    hosts: Vec<JsonHost<'a>>,
    kernel: &'a str,
    lost: u64,
    /// What a verdict cannot know on the recording's kernel (sentences).
    kernel_limits: Vec<&'static str>,
    missing_tracepoints: &'a [String],
    more_gaps: u64,
    since_s: Option<f64>,
    start_unix_ns: u64,
    stop_reason: Option<&'a str>,
    /// Every tracepoint, attached or not, and how.
    tracepoints: &'a [TracepointStatus],
    until_s: Option<f64>,
}

#[derive(Serialize)]
struct JsonGap {
    cause: &'static str,
    from_s: f64,
    lost: u64,
    to_s: f64,
}

#[derive(Serialize)]
struct JsonRule {
    max_gap_s: f64,
    min_run: u64,
    min_share: f64,
    short_ms: u64,
}

#[derive(Serialize)]
struct JsonLeak<'a> {
    age_at_least: bool,
    age_s: f64,
    comm: Option<String>,
    conn: u64,
    host: Option<String>,
    container: Option<JsonContainer<'a>>,
    local: String,
    netns: u32,
    peer: String,
    pid: Option<u32>,
}

#[derive(Serialize)]
struct JsonPair {
    /// Payload bytes each side sent, summed over the connections whose counters tell
    /// (null when none does).
    bytes: SideCounts<Option<u64>>,
    /// Connections whose counters tell each side's bytes.
    bytes_counted: SideCounts<u64>,
    client: String,
    /// `namespace/pod` of every connection's client, when they agree.
    client_pod: Option<String>,
    closed_by: JsonClosedBy,
    closed_first: JsonClosedFirst,
    connections: u64,
    connects_per_s: f64,
    first_connect_s: Option<f64>,
    incomplete: u64,
    last_connect_s: Option<f64>,
    median_lifetime_ms: Option<f64>,
    /// Connects that found no free local port (EADDRNOTAVAIL).
    no_port: u64,
    p99_lifetime_ms: Option<f64>,
    preexisting: u64,
    reconnect_loop: bool,
    reconnect_loop_reason: Option<String>,
    refused: u64,
    rejected: u64,
    /// Of `rejected`, those whose bytes the trace cannot tell (no counters).
    rejected_untold: u64,
    /// Rejected connects per second, from the first to the last (null with fewer
    /// than two).
    rejects_per_s: Option<f64>,
    resets: SideCounts<u64>,
    /// Connections the server closed first after answering.
    served: u64,
    /// Median payload bytes each side sent in the served connections.
    served_median_bytes: SideCounts<Option<f64>>,
    server: String,
    server_close_p99_ms: Option<f64>,
    server_pod: Option<String>,
    time_wait: SideCounts<u64>,
    time_wait_kernel: Option<SideCounts<u64>>,
    time_wait_peak: SideCounts<u64>,
    timed_out: u64,
    verdict: String,
}

#[derive(Serialize)]
struct JsonClosedFirst {
    client: u64,
    open: u64,
    server: u64,
    simultaneous: u64,
    unknown: u64,
}

#[derive(Serialize)]
struct JsonClosedBy {
    client: JsonHow,
    server: JsonHow,
    simultaneous: JsonHow,
}

/// Connections by how the first closer closed them.
#[derive(Serialize)]
struct JsonHow {
    fin: u64,
    no_port: u64,
    refused: u64,
    rst: u64,
    timeout: u64,
    unreachable: u64,
}

/// The pairs, turned into [`JsonPair`]s one at a time as they are written.
struct JsonPairs<'a> {
    pairs: &'a [PairReport],
    end_snapshot: bool,
    rule: &'a LoopRule,
}

impl Serialize for JsonPairs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.pairs
                .iter()
                .map(|pair| JsonPair::of(pair, self.end_snapshot, self.rule)),
        )
    }
}

impl JsonHow {
    fn of(counts: [u64; CloseHow::COUNT]) -> Self {
        let count = |how: CloseHow| counts[how.index()];
        Self {
            fin: count(CloseHow::Fin),
            refused: count(CloseHow::Refused),
            rst: count(CloseHow::Rst),
            timeout: count(CloseHow::Timeout),
            unreachable: count(CloseHow::Unreachable),
            no_port: count(CloseHow::NoPort),
        }
    }
}

impl JsonPair {
    fn of(pair: &PairReport, end_snapshot: bool, rule: &LoopRule) -> Self {
        let s = &pair.stats;
        let first = |f: ClosedFirst| s.closed_first[f.index()];
        let by = |f: ClosedFirst| JsonHow::of(s.closed_by[f.index()]);
        let ms = |v: Option<f64>| v.map(round3);
        let at = |ns: Option<u64>| ns.map(|ns| round3(secs(ns)));
        let total = |side: usize| (s.bytes_known[side] > 0).then_some(s.bytes[side]);
        Self {
            bytes: SideCounts::of([total(0), total(1)]),
            bytes_counted: SideCounts::of(s.bytes_known),
            client: IpText(s.key.client).to_string(),
            client_pod: s.pod(Side::Client).map(str::to_owned),
            closed_by: JsonClosedBy {
                client: by(ClosedFirst::Client),
                server: by(ClosedFirst::Server),
                simultaneous: by(ClosedFirst::Simultaneous),
            },
            closed_first: JsonClosedFirst {
                client: first(ClosedFirst::Client),
                open: first(ClosedFirst::Open),
                server: first(ClosedFirst::Server),
                simultaneous: first(ClosedFirst::Simultaneous),
                unknown: first(ClosedFirst::Unknown),
            },
            connections: s.connections,
            connects_per_s: round3(s.connects_per_s()),
            first_connect_s: at(s.first_connect_ns),
            incomplete: s.incomplete,
            last_connect_s: at(s.last_connect_ns),
            median_lifetime_ms: ms(s.lifetime.quantile_ms(0.5)),
            p99_lifetime_ms: ms(s.lifetime.quantile_ms(0.99)),
            preexisting: s.preexisting,
            reconnect_loop: pair.reconnect_loop.is_some(),
            reconnect_loop_reason: pair
                .reconnect_loop
                .as_ref()
                .map(|e| sentences::loop_reason(e, rule)),
            refused: s.refused,
            rejected: s.rejected,
            rejected_untold: s.rejected_untold,
            rejects_per_s: s.rejects_per_s().map(round3),
            resets: SideCounts::of(s.resets),
            served: s.served,
            served_median_bytes: SideCounts::of(
                s.served_bytes
                    .each_ref()
                    .map(|h| h.quantile(0.5).map(f64::round)),
            ),
            server: EndpointText(s.key.server).to_string(),
            server_close_p99_ms: ms(s.server_close_delay.quantile_ms(0.99)),
            server_pod: s.pod(Side::Server).map(str::to_owned),
            time_wait: SideCounts::of(s.time_wait_live),
            time_wait_kernel: end_snapshot.then(|| SideCounts::of(s.time_wait_observed)),
            time_wait_peak: SideCounts::of(s.time_wait_peak),
            timed_out: s.timed_out,
            no_port: s.no_port,
            verdict: sentences::pair_verdict(&PairVerdict::of(pair, end_snapshot)),
        }
    }
}

impl JsonGap {
    fn of(gap: &GapWindow) -> Self {
        Self {
            cause: gap.cause.name(),
            from_s: round3(secs(gap.from_ns)),
            lost: gap.lost,
            to_s: round3(secs(gap.to_ns)),
        }
    }
}

impl<'a> JsonLeak<'a> {
    fn of(leak: &'a CloseWaitLeak, trace: &TraceInfo) -> Self {
        Self {
            age_at_least: leak.at_least,
            age_s: round3(secs(leak.age_ns)),
            comm: leak.owner.map(|t| t.comm.to_string()),
            conn: leak.conn,
            host: trace.hosts.get(leak.host.index()).map(|h| h.name.clone()),
            container: JsonContainer::of_option(leak.workload.as_deref()),
            local: EndpointText(leak.local).to_string(),
            netns: leak.netns,
            peer: EndpointText(leak.peer).to_string(),
            pid: leak.owner.map(|t| t.pid),
        }
    }
}

impl<'a> JsonVerdict<'a> {
    fn of(trace: &'a TraceInfo, analysis: &'a Analysis, rule: &'a LoopRule) -> Self {
        let at = |ns: Option<u64>| ns.map(|ns| round3(secs(ns)));
        Self {
            close_wait: analysis
                .close_wait
                .iter()
                .map(|leak| JsonLeak::of(leak, trace))
                .collect(),
            close_wait_closed_late: analysis.close_wait_closed_late,
            close_wait_threshold_s: secs(trace.close_wait_ns),
            connections_counted: analysis.connections,
            incomplete: analysis.incomplete() || !trace.damage.is_empty(),
            reconnect_loop_rule: JsonRule {
                max_gap_s: rule.max_gap.as_secs_f64(),
                min_run: rule.min_run,
                min_share: rule.min_share,
                short_ms: u64::try_from(rule.short.as_millis()).unwrap_or(u64::MAX),
            },
            trace: JsonTrace {
                damage: &trace.damage,
                duration_s: round3(secs(analysis.end_ns)),
                end_snapshot: analysis.end_snapshot,
                events: analysis.events,
                file: &trace.file,
                gaps: analysis.gaps.iter().map(JsonGap::of).collect(),
                host: &trace.host,
                hosts: trace.hosts.iter().map(JsonHost::of).collect(),
                kernel: &trace.kernel,
                lost: analysis.lost,
                kernel_limits: trace
                    .kernel_limits
                    .iter()
                    .map(|l| sentences::kernel_limit(*l))
                    .collect(),
                missing_tracepoints: &trace.missing_tracepoints,
                more_gaps: analysis.more_gaps,
                since_s: at(trace.window.since_ns),
                start_unix_ns: trace.start_unix_ns,
                stop_reason: trace.stop_reason.as_deref(),
                tracepoints: &trace.tracepoints,
                until_s: at(trace.window.until_ns),
            },
            warnings: findings(trace, analysis)
                .iter()
                .filter(|f| f.is_about_the_trace())
                .map(sentences::finding)
                .collect(),
            pairs: JsonPairs {
                pairs: &analysis.pairs,
                end_snapshot: analysis.end_snapshot,
                rule,
            },
        }
    }
}

/// Writes the document and a newline: whole, or (`after_connections`) as the rest of
/// an object already opened with `{"connections":[...]` (without the closing `]`).
pub fn write_json(
    out: &mut impl Write,
    trace: &TraceInfo,
    analysis: &Analysis,
    rule: &LoopRule,
    after_connections: bool,
) -> io::Result<()> {
    let document = JsonVerdict::of(trace, analysis, rule);
    if after_connections {
        out.write_all(b"]")?;
        let mut serializer =
            serde_json::Serializer::with_formatter(&mut *out, Continuation::default());
        document.serialize(&mut serializer)?;
    } else {
        serde_json::to_writer(&mut *out, &document)?;
    }
    out.write_all(b"\n")
}

/// Compact JSON whose outermost object continues one already open in the output, with
/// members: no opening brace, a comma before the first member.
#[derive(Default)]
struct Continuation {
    depth: usize,
}

impl Formatter for Continuation {
    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        if self.depth == 1 {
            Ok(())
        } else {
            CompactFormatter.begin_object(writer)
        }
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        CompactFormatter.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        CompactFormatter.begin_object_key(writer, first && self.depth > 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Outer {
        a: u32,
        inner: Inner,
    }

    #[derive(Serialize)]
    struct Inner {
        b: u32,
    }

    #[test]
    fn a_continuation_joins_the_object_already_open() {
        let mut out = b"{\"first\":[1".to_vec();
        out.push(b']');
        let mut serializer =
            serde_json::Serializer::with_formatter(&mut out, Continuation::default());
        Outer {
            a: 2,
            inner: Inner { b: 3 },
        }
        .serialize(&mut serializer)
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"first":[1],"a":2,"inner":{"b":3}}"#
        );
    }
}
