//! The summary: per workload and variant, the spread over rounds of the throughput,
//! its ratio to the neighbouring untraced runs, and what the tracer cost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    runs::RunRecord,
    stats::Spread,
    tracers::TracerOut,
    variants::{UNTRACED, Variant},
    workloads::Workload,
};

/// Per workload name, per variant name.
pub type Summary = BTreeMap<String, BTreeMap<String, VariantSummary>>;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariantSummary {
    pub command: String,
    pub conn_per_s: Option<Spread>,
    /// Traced runs: the rate over the mean of the untraced runs right before and after.
    pub ratio_to_untraced: Option<Spread>,
    /// The same, over the runs with no other tracing programs loaded.
    pub ratio_to_untraced_without_foreign_tracers: Option<Spread>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub tracer: Option<TracerSummary>,
}

/// What a traced variant's tracer cost and recorded, over its runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TracerSummary {
    pub recorded_over_expected: Option<Spread>,
    pub events_recorded: u64,
    pub events_expected: u64,
    pub events_lost: u64,
    pub cpu_pct_of_one_core: Option<Spread>,
    /// tcpchurn only: "N of M runs" where the kernel's count matched the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_submitted_matches_file: Option<String>,
    pub cpu_ns_per_event: Option<Spread>,
    pub cpu_total_s: Option<Spread>,
    pub maxrss_mib: Option<Spread>,
    pub bytes_per_event: Option<Spread>,
}

/// A traced run against the untraced runs right before and after it: its ratio, and
/// whether no other tracing program was loaded in any of the three.
fn neighbour_ratio(runs: &[RunRecord], run: &RunRecord) -> Option<(f64, bool)> {
    let untraced = |i: usize| {
        runs.get(i)
            .filter(|u| u.workload == run.workload && u.variant == UNTRACED)
    };
    let before = run.seq.checked_sub(1).and_then(untraced)?;
    let after = untraced(run.seq + 1)?;
    let clean = [before, run, after]
        .iter()
        .all(|x| x.churn.foreign_tracers == 0);
    Some((
        run.churn.conn_per_s / f64::midpoint(before.churn.conn_per_s, after.churn.conn_per_s),
        clean,
    ))
}

fn tracer_summary(mine: &[&RunRecord]) -> Option<TracerSummary> {
    let traced: Vec<(&RunRecord, &TracerOut)> = mine
        .iter()
        .filter_map(|r| r.tracer.as_ref().map(|t| (*r, t)))
        .collect();
    if traced.is_empty() {
        return None;
    }
    let tracers = || traced.iter().map(|(_, t)| *t);
    let cross_checked: Vec<bool> = tracers()
        .filter_map(|t| t.detail.as_ref())
        .map(|d| d.kernel_submitted_matches_file)
        .collect();
    Some(TracerSummary {
        recorded_over_expected: Spread::of(
            traced
                .iter()
                .map(|(r, t)| t.recorded as f64 / r.churn.expected.max(1) as f64),
        ),
        events_recorded: tracers().map(|t| t.recorded).sum(),
        events_expected: mine.iter().map(|r| r.churn.expected).sum(),
        events_lost: tracers().map(|t| t.lost).sum(),
        cpu_pct_of_one_core: Spread::of(
            traced
                .iter()
                .map(|(r, t)| 100.0 * t.cpu_churn_s / r.churn.elapsed_s.max(1e-9)),
        ),
        kernel_submitted_matches_file: (!cross_checked.is_empty()).then(|| {
            format!(
                "{} of {} runs",
                cross_checked.iter().filter(|ok| **ok).count(),
                cross_checked.len()
            )
        }),
        cpu_ns_per_event: Spread::of(
            tracers()
                .filter(|t| t.recorded > 0)
                .map(|t| t.cpu_churn_s * 1e9 / t.recorded as f64),
        ),
        cpu_total_s: Spread::of(tracers().map(|t| t.cpu_total_s)),
        maxrss_mib: Spread::of(tracers().map(|t| t.maxrss_kib as f64 / 1024.0)),
        bytes_per_event: Spread::of(tracers().filter_map(|t| t.bytes_per_event)),
    })
}

pub fn summarize(runs: &[RunRecord], variants: &[Variant], workloads: &[Workload]) -> Summary {
    let mut summary = Summary::new();
    for workload in workloads {
        let per_variant = summary.entry(workload.name.clone()).or_default();
        for variant in variants {
            let mine: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.workload == workload.name && r.variant == variant.name)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let ratios: Vec<(f64, bool)> = if variant.name == UNTRACED {
                Vec::new()
            } else {
                mine.iter()
                    .filter_map(|r| neighbour_ratio(runs, r))
                    .collect()
            };
            per_variant.insert(
                variant.name.clone(),
                VariantSummary {
                    command: variant.command.clone(),
                    conn_per_s: Spread::of(mine.iter().map(|r| r.churn.conn_per_s)),
                    ratio_to_untraced: Spread::of(ratios.iter().map(|(x, _)| *x)),
                    ratio_to_untraced_without_foreign_tracers: Spread::of(
                        ratios.iter().filter(|(_, clean)| *clean).map(|(x, _)| *x),
                    ),
                    tracer: tracer_summary(&mine),
                },
            );
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn a_summary_reads_back_what_it_wrote() {
        let text = r#"{"server":{"untraced":{"command":"tcpchurn-churn alone",
            "conn_per_s":{"median":2.0,"min":1.0,"max":3.0,"n":3},"ratio_to_untraced":null,
            "ratio_to_untraced_without_foreign_tracers":null}}}"#;
        let summary: Summary = serde_json::from_str(text).unwrap();
        let again: Summary =
            serde_json::from_str(&serde_json::to_string(&summary).unwrap()).unwrap();
        let untraced = &again["server"]["untraced"];
        assert!(untraced.tracer.is_none());
        assert_eq!(untraced.conn_per_s.map(|s| s.n), Some(3));
    }
}
