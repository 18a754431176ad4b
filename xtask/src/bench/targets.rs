//! The targets the benchmark checks, against the defaults variant: throughput, losses,
//! file size, recorder memory, the cost on a load without TCP, replay speed and memory
//! (docs/bench.md).

use serde::{Deserialize, Serialize};

use super::{
    replay_speed::ReplaySpeed,
    summary::{Summary, VariantSummary},
    variants::TCPCHURN_DEFAULTS,
    workloads::Workload,
};

/// The throughput a TCP workload must keep under the recorder: what a tracer that only
/// counts in the kernel keeps (bpftrace).
const MIN_RATIO: f64 = 0.93;
/// A load without TCP must not notice the recorder: within the benchmark's noise.
const MIN_RATIO_WITHOUT_TCP: f64 = 0.97;
const MAX_RSS_MIB: f64 = 40.0;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    pub target: String,
    pub value: TargetValue,
    pub met: bool,
}

/// The measured value a target is judged on.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetValue {
    Count(u64),
    Number(f64),
    Text(String),
}

impl std::fmt::Display for TargetValue {
    /// As JSON, the way the results file shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

fn target(target: String, value: TargetValue, met: bool) -> Target {
    Target { target, value, met }
}

/// Other users' tracers tax untraced and traced runs alike, which pushes the ratio
/// towards 1: judge on the runs without them when there are enough.
fn judged_ratio(d: &VariantSummary) -> (f64, &'static str) {
    match d.ratio_to_untraced_without_foreign_tracers {
        Some(clean) if clean.n >= 3 => (clean.median, "runs without other tracers"),
        _ => (d.ratio_to_untraced.map_or(0.0, |r| r.median), "all runs"),
    }
}

fn recording_targets(workload: &str, d: &VariantSummary) -> Vec<Target> {
    let (ratio, which) = judged_ratio(d);
    let tracer = d.tracer.as_ref();
    let lost = tracer.map_or(u64::MAX, |t| t.events_lost);
    let recorded = tracer.map_or(0, |t| t.events_recorded);
    let expected = tracer.map_or(1, |t| t.events_expected);
    let bpe = tracer
        .and_then(|t| t.bytes_per_event.map(|s| s.median))
        .unwrap_or(f64::MAX);
    let rss = tracer
        .and_then(|t| t.maxrss_mib.map(|s| s.max))
        .unwrap_or(f64::MAX);
    vec![
        target(
            format!("{workload}: throughput ratio >= {MIN_RATIO} (median, {which})"),
            TargetValue::Number(ratio),
            ratio >= MIN_RATIO,
        ),
        target(
            format!("{workload}: zero events lost at defaults"),
            TargetValue::Count(lost),
            lost == 0 && recorded == expected,
        ),
        target(
            format!("{workload}: <= 16 bytes/event on disk"),
            TargetValue::Number(bpe),
            bpe <= 16.0,
        ),
        target(
            format!("{workload}: recorder RSS < {MAX_RSS_MIB} MiB"),
            TargetValue::Number(rss),
            rss < MAX_RSS_MIB,
        ),
    ]
}

/// A load without TCP: the recorder must neither tax it nor record anything.
fn bystander_targets(workload: &str, d: &VariantSummary) -> Vec<Target> {
    let (ratio, which) = judged_ratio(d);
    let recorded = d.tracer.as_ref().map_or(u64::MAX, |t| t.events_recorded);
    vec![
        target(
            format!(
                "{workload}: a load without TCP keeps >= {MIN_RATIO_WITHOUT_TCP} under the recorder (median, {which})"
            ),
            TargetValue::Number(ratio),
            ratio >= MIN_RATIO_WITHOUT_TCP,
        ),
        target(
            format!("{workload}: no TCP transitions recorded"),
            TargetValue::Count(recorded),
            recorded == 0,
        ),
    ]
}

fn replay_targets(replay: &ReplaySpeed) -> Vec<Target> {
    let (large, double) = (&replay.large.modes.verdict, &replay.double.modes.verdict);
    let rate = large.events_per_cpu_s.map_or(0.0, |s| s.median);
    let mut targets = vec![target(
        "replay (verdict) >= 5 M events/s on one core".into(),
        TargetValue::Number(rate),
        rate >= 5e6,
    )];
    if let (Some(one), Some(two)) = (large.maxrss_mib, double.maxrss_mib) {
        let (one, two) = (one.median, two.median);
        targets.push(target(
            "replay memory bounded by open connections: a trace twice as long at the same \
             rate needs < 1.2x the RSS"
                .into(),
            TargetValue::Text(format!("{one:.1} MiB -> {two:.1} MiB")),
            two < 1.2 * one,
        ));
    }
    targets
}

pub fn targets(
    summary: &Summary,
    workloads: &[Workload],
    replay: Option<&ReplaySpeed>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for workload in workloads {
        let Some(defaults) = summary
            .get(&workload.name)
            .and_then(|per_variant| per_variant.get(TCPCHURN_DEFAULTS))
        else {
            continue;
        };
        targets.extend(if workload.is_tcp() {
            recording_targets(&workload.name, defaults)
        } else {
            bystander_targets(&workload.name, defaults)
        });
    }
    if let Some(replay) = replay {
        targets.extend(replay_targets(replay));
    }
    targets
}
