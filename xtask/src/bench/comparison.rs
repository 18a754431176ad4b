//! The two tcpchurn variants side by side, as a Markdown table for docs/bench.md: with
//! `--alt-binary`/`--alt-rev` the alternative is the build before a change ("before")
//! and the defaults variant the build under test ("after").

use std::fmt::Write as _;

use super::{
    document::Document,
    stats::show,
    summary::VariantSummary,
    variants::{TCPCHURN_ALT, TCPCHURN_DEFAULTS},
};

/// One row: a measure of both variants.
fn row(out: &mut String, workload: &str, measure: &str, alt: &str, defaults: &str) {
    let _ok = writeln!(out, "| {workload} | {measure} | {alt} | {defaults} |");
}

fn ratio(v: Option<&VariantSummary>) -> String {
    show(v.and_then(|v| v.ratio_to_untraced), 3, 1.0)
}

fn lost(v: Option<&VariantSummary>) -> String {
    v.and_then(|v| v.tracer.as_ref()).map_or_else(
        || "-".into(),
        |t| {
            format!(
                "{} ({}/{} recorded)",
                t.events_lost, t.events_recorded, t.events_expected
            )
        },
    )
}

fn rss(v: Option<&VariantSummary>) -> String {
    v.and_then(|v| v.tracer.as_ref())
        .and_then(|t| t.maxrss_mib)
        .map_or_else(|| "-".into(), |m| format!("{:.1}", m.max))
}

fn cpu(v: Option<&VariantSummary>) -> String {
    show(
        v.and_then(|v| v.tracer.as_ref())
            .and_then(|t| t.cpu_ns_per_event),
        0,
        1.0,
    )
}

/// The table, or `None` when only one tcpchurn variant ran.
pub fn markdown(doc: &Document) -> Option<String> {
    let variant = |name: &str| doc.config.variants.iter().find(|v| v.name == name);
    let (alt, defaults) = (variant(TCPCHURN_ALT)?, variant(TCPCHURN_DEFAULTS)?);
    let (alt_head, defaults_head) = if doc.config.alt_build.is_some() {
        ("before (`tcpchurn-alt`)", "after (`tcpchurn-defaults`)")
    } else {
        ("`tcpchurn-alt`", "`tcpchurn-defaults`")
    };
    let mut out = String::new();
    let _ok = writeln!(
        out,
        "| workload | measure (median [min-max] over rounds) | {alt_head} | {defaults_head} |"
    );
    let _ok = writeln!(out, "|---|---|---|---|");
    for workload in &doc.config.workloads {
        let Some(per_variant) = doc.summary.get(&workload.name) else {
            continue;
        };
        let (a, d) = (per_variant.get(&alt.name), per_variant.get(&defaults.name));
        let name = workload.name.as_str();
        row(&mut out, name, "throughput ratio", &ratio(a), &ratio(d));
        if workload.is_tcp() {
            row(&mut out, name, "events lost", &lost(a), &lost(d));
            row(&mut out, name, "recorder CPU ns/event", &cpu(a), &cpu(d));
        }
        row(&mut out, name, "recorder RSS MiB (max)", &rss(a), &rss(d));
    }
    for (workload, per_variant) in &doc.kernel_cost {
        let cost = |name: &str| {
            per_variant.get(name).map_or_else(
                || "-".into(),
                |c| {
                    format!(
                        "{:.0} ({})",
                        c.ns_per_event,
                        show(c.ns_per_event_runs, 0, 1.0)
                    )
                },
            )
        };
        let per = per_variant
            .values()
            .next()
            .map_or("event", |c| c.per.as_str());
        row(
            &mut out,
            workload,
            &format!("BPF ns per {per} (bpf_stats)"),
            &cost(&alt.name),
            &cost(&defaults.name),
        );
    }
    let _ok = writeln!(
        out,
        "\n`tcpchurn-alt`: {}; `tcpchurn-defaults`: {}.",
        alt.command, defaults.command
    );
    Some(out)
}
