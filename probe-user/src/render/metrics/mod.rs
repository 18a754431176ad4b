//! `tcpchurn record --metrics`: the live verdict in the Prometheus text exposition
//! format (0.0.4, what `promtool check metrics` and every Prometheus read), written by
//! the `prometheus` crate's encoder. Labels come from the values the JSON verdict
//! shows: a pair's `client`, `server`, `client_pod` and `server_pod` strings (a pod the
//! trace does not name is the empty value, which Prometheus reads as no label), a first
//! closer's `side`, a close's `how`, a gap's `cause`. At most `--metrics-pairs` pairs
//! get their own labels ([`books`]); the rest are summed under `client="other",
//! server="other"` with empty pods.

mod books;

use prometheus::{Encoder as _, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub use self::books::PairBook;
use self::books::{PairCounts, SIDES};
use crate::{
    analysis::{CloseHow, Side, leak_groups},
    model::GapCause,
    render::{
        address::{endpoint_label, ip_label},
        live::Live,
        text::clean,
    },
};

/// The content type of [`exposition`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label value of the pairs (and CLOSE_WAIT owners) without labels of their own.
const OTHER: &str = "other";

/// The labels that name a pair in every family about pairs.
const PAIR: [&str; 4] = ["client", "server", "client_pod", "server_pod"];

/// A pair's values of [`PAIR`].
struct PairLabels<'a> {
    values: [&'a str; 4],
}

impl<'a> PairLabels<'a> {
    fn new(client: &'a str, server: &'a str, pods: [Option<&'a str>; 2]) -> Self {
        let [client_pod, server_pod] = pods.map(|p| p.unwrap_or(""));
        Self {
            values: [client, server, client_pod, server_pod],
        }
    }

    /// The pair's values followed by `more`, in the order of `PAIR` then `more`'s names.
    fn with(&self, more: &[&'a str]) -> Vec<&'a str> {
        self.values.iter().chain(more).copied().collect()
    }
}

/// `PAIR` followed by `more`.
fn pair_and(more: &[&'static str]) -> Vec<&'static str> {
    PAIR.iter().chain(more).copied().collect()
}

/// The metric families, registered in a registry of their own for one exposition.
struct Families {
    registry: Registry,
    connections: IntCounterVec,
    closed_first: IntCounterVec,
    resets: IntCounterVec,
    time_wait: IntGaugeVec,
    reconnect_loop: IntGaugeVec,
    close_wait: IntGaugeVec,
    events: IntCounterVec,
    lost: IntCounterVec,
    skipped: IntCounterVec,
    written: IntCounterVec,
    pairs: IntGaugeVec,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let family = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(family.clone()))?;
    Ok(family)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let family = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(family.clone()))?;
    Ok(family)
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Families {
    fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let pair = &PAIR;
        let side = &pair_and(&["side"]);
        Ok(Self {
            connections: counter(
                &registry,
                "tcpchurn_connections_total",
                "Connections from client to server (address:port), opened or seen during the recording",
                pair,
            )?,
            closed_first: counter(
                &registry,
                "tcpchurn_closed_first_total",
                "Connections by who closed first (side: client, server, simultaneous) and how (fin, rst, refused, timeout, unreachable, no_port)",
                &pair_and(&["side", "how"]),
            )?,
            resets: counter(
                &registry,
                "tcpchurn_resets_total",
                "Connections in which this side sent an RST",
                side,
            )?,
            time_wait: gauge(
                &registry,
                "tcpchurn_time_wait",
                "Sockets in TIME_WAIT now, by the side that holds them (inferred from the trace)",
                side,
            )?,
            reconnect_loop: gauge(
                &registry,
                "tcpchurn_reconnect_loop",
                "1 while the client is flagged as stuck in a reconnect loop against the server",
                pair,
            )?,
            close_wait: gauge(
                &registry,
                "tcpchurn_close_wait",
                "Sockets left in CLOSE_WAIT (peer closed, no close()) longer than the threshold, by owning process",
                &["pid", "comm"],
            )?,
            events: counter(
                &registry,
                "tcpchurn_events_total",
                "Events recorded (transitions, resets, errors, snapshot sockets, gaps)",
                &[],
            )?,
            lost: counter(
                &registry,
                "tcpchurn_lost_events_total",
                "Events lost, by cause (ring_full, recursion, unreported, decode_failed, read_failed, corrupt_block)",
                &["cause"],
            )?,
            skipped: counter(
                &registry,
                "tcpchurn_live_skipped_events_total",
                "Events the live analysis fell too far behind to take in (the trace file has them)",
                &[],
            )?,
            written: counter(
                &registry,
                "tcpchurn_trace_written_bytes_total",
                "Bytes of trace written (or produced, with -o /dev/null)",
                &[],
            )?,
            pairs: gauge(
                &registry,
                "tcpchurn_pairs",
                "Client/server pairs in the verdict, with their own labels (labeled) or summed under other",
                &["labels"],
            )?,
            registry,
        })
    }

    fn pair(
        &self,
        labels: &PairLabels<'_>,
        counts: &PairCounts,
        time_wait: [u64; 2],
        looping: bool,
    ) -> prometheus::Result<()> {
        self.connections
            .get_metric_with_label_values(&labels.values)?
            .inc_by(counts.connections);
        for first in SIDES {
            for how in CloseHow::ALL {
                let count = counts.closed_by[first.index()][how.index()];
                if count > 0 {
                    self.closed_first
                        .get_metric_with_label_values(&labels.with(&[first.name(), how.name()]))?
                        .inc_by(count);
                }
            }
        }
        for side in [Side::Client, Side::Server] {
            let labels = labels.with(&[side.name()]);
            self.resets
                .get_metric_with_label_values(&labels)?
                .inc_by(counts.resets[side.index()]);
            self.time_wait
                .get_metric_with_label_values(&labels)?
                .set(gauge_value(time_wait[side.index()]));
        }
        self.reconnect_loop
            .get_metric_with_label_values(&labels.values)?
            .set(i64::from(looping));
        Ok(())
    }
}

/// The exposition of a live verdict. `book` carries the pairs' counters from one
/// refresh to the next.
pub fn exposition(
    live: &Live,
    book: &mut PairBook,
    max_owners: usize,
) -> prometheus::Result<String> {
    let families = Families::new()?;
    let analysis = &live.analysis;
    let split = book.split(&analysis.pairs);
    for (pair, counts) in &split.labeled {
        let (stats, key) = (&pair.stats, pair.stats.key);
        let (client, server) = (ip_label(key.client), endpoint_label(key.server));
        let pods = [stats.pod(Side::Client), stats.pod(Side::Server)];
        families.pair(
            &PairLabels::new(&client, &server, pods),
            counts,
            pair.stats.time_wait_live,
            pair.reconnect_loop.is_some(),
        )?;
    }
    if let Some(other) = &split.other {
        families.pair(
            &PairLabels::new(OTHER, OTHER, [None, None]),
            &other.counts,
            other.time_wait,
            other.reconnect_loop,
        )?;
    }
    families
        .pairs
        .get_metric_with_label_values(&["labeled"])?
        .set(gauge_value(split.labeled.len() as u64));
    families
        .pairs
        .get_metric_with_label_values(&[OTHER])?
        .set(gauge_value(split.other.map_or(0, |o| o.pairs)));
    for (rank, group) in leak_groups(&analysis.close_wait).into_iter().enumerate() {
        let (pid, comm) = match (rank < max_owners, group.owner) {
            (false, _) => (OTHER.to_owned(), OTHER.to_owned()),
            (true, Some(task)) => (
                task.pid.to_string(),
                clean(&task.comm.as_str()).into_owned(),
            ),
            (true, None) => ("-".to_owned(), "-".to_owned()),
        };
        families
            .close_wait
            .get_metric_with_label_values(&[&pid, &comm])?
            .add(gauge_value(group.sockets as u64));
    }
    families
        .events
        .get_metric_with_label_values(&[] as &[&str])?
        .inc_by(analysis.events);
    for cause in GapCause::ALL {
        families
            .lost
            .get_metric_with_label_values(&[cause.name()])?
            .inc_by(analysis.lost_by_cause[cause.index()]);
    }
    families
        .skipped
        .get_metric_with_label_values(&[] as &[&str])?
        .inc_by(live.status.skipped_records);
    families
        .written
        .get_metric_with_label_values(&[] as &[&str])?
        .inc_by(live.status.bytes);
    let mut text = Vec::new();
    TextEncoder::new().encode(&families.registry.gather(), &mut text)?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::{
            Analyzer, AnalyzerOptions, Pulse, TraceInfo,
            tests::{S, app, java, workloads::node, zookeeper_loop},
        },
        model::WorkloadTable,
        render::live::Status,
        synth::{SERVER_NS, Script},
    };

    fn live(pairs: u64) -> Live {
        live_named(pairs, None)
    }

    /// The ZooKeeper loop and `pairs` other pairs, with the trace's names if `names`.
    fn live_named(pairs: u64, names: Option<&WorkloadTable>) -> Live {
        let mut s = Script::default();
        zookeeper_loop(&mut s, 10);
        s.listener(SERVER_NS, "10.0.0.1:80", java());
        for i in 0..pairs {
            let e = s.ends(&format!("10.0.1.{}:50000", i + 1), "10.0.0.1:80");
            s.at(2 * S).open(e, app());
            s.fin_close(e.client, e.server, app(), java());
        }
        s.at(3 * S).lost(3 * S, 3 * S, 2);
        let mut analyzer = Analyzer::new(AnalyzerOptions::default());
        if let Some(names) = names {
            analyzer.learn(crate::model::HostId::FIRST, names);
        }
        for event in &s.events {
            analyzer.on_event(event);
        }
        Live {
            trace: TraceInfo::default(),
            analysis: analyzer.snapshot(20 * S),
            pulse: Pulse::default(),
            status: Status {
                recording: true,
                bytes: 1234,
                ..Status::default()
            },
        }
    }

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
    }

    #[test]
    fn the_exposition_names_pairs_closes_and_losses() {
        let text = exposition(&live(1), &mut PairBook::new(200), 10).unwrap();
        let zk = r#"client="10.0.0.2",client_pod="",server="10.0.0.1:2181",server_pod="""#;
        assert_eq!(
            sample(&text, &format!("tcpchurn_connections_total{{{zk}}}")),
            Some("10"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"tcpchurn_closed_first_total{client="10.0.0.2",client_pod="",how="rst",server="10.0.0.1:2181",server_pod="",side="server"}"#
            ),
            Some("10"),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("tcpchurn_reconnect_loop{{{zk}}}")),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"tcpchurn_time_wait{client="10.0.1.1",client_pod="",server="10.0.0.1:80",server_pod="",side="client"}"#
            ),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"tcpchurn_lost_events_total{cause="ring_full"}"#),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"tcpchurn_lost_events_total{cause="unreported"}"#),
            Some("0"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "tcpchurn_trace_written_bytes_total"),
            Some("1234"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tcpchurn_connections_total counter"),
            "{text}"
        );
        assert!(text.contains("# HELP tcpchurn_time_wait "), "{text}");
        assert!(!text.contains(r#"client="other""#), "{text}");
    }

    #[test]
    fn pairs_beyond_the_limit_are_other() {
        let text = exposition(&live(5), &mut PairBook::new(2), 10).unwrap();
        assert_eq!(
            sample(
                &text,
                r#"tcpchurn_connections_total{client="other",client_pod="",server="other",server_pod=""}"#
            ),
            Some("4"),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"tcpchurn_pairs{labels="other"}"#),
            Some("4"),
            "{text}"
        );
        let series = text
            .lines()
            .filter(|l| l.starts_with("tcpchurn_connections_total{"))
            .count();
        assert_eq!(series, 3, "{text}");
    }

    #[test]
    fn pairs_carry_the_pods_the_trace_names() {
        let text = exposition(&live_named(1, Some(&node())), &mut PairBook::new(200), 10).unwrap();
        let zk = r#"client="10.0.0.2",client_pod="shop/app-0",server="10.0.0.1:2181",server_pod="infra/zk-0""#;
        for family in ["tcpchurn_connections_total", "tcpchurn_reconnect_loop"] {
            assert!(
                sample(&text, &format!("{family}{{{zk}}}")).is_some(),
                "{family}: {text}"
            );
        }
        assert_eq!(
            sample(
                &text,
                r#"tcpchurn_closed_first_total{client="10.0.0.2",client_pod="shop/app-0",how="rst",server="10.0.0.1:2181",server_pod="infra/zk-0",side="server"}"#
            ),
            Some("10"),
            "{text}"
        );
    }
}
