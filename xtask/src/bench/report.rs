//! The benchmark's table on stdout.
#![expect(clippy::print_stdout, reason = "the benchmark's table is its output")]

use super::{
    comparison,
    document::Document,
    kernel_cost::KERNEL_COST_RUNS,
    replay_speed::{ModeSpeed, ReplaySpeed},
    stats::show,
    variants::Variant,
};

pub fn print(doc: &Document) {
    print_header(doc);
    for s in &doc.config.skipped {
        println!("skipped: {s}");
    }
    print_table(doc);
    println!();
    print_cross_checks(doc);
    if !doc.kernel_cost.is_empty() {
        print_kernel_cost(doc);
    }
    if let Some(replay) = &doc.replay {
        print_replay(replay);
    }
    if let Some(table) = comparison::markdown(doc) {
        println!();
        println!("the two tcpchurn variants side by side (Markdown, for docs/bench.md):");
        println!();
        print!("{table}");
    }
    println!();
    println!("targets:");
    for t in &doc.targets {
        println!(
            "  [{}] {} ({})",
            if t.met { "met" } else { "NOT MET" },
            t.target,
            t.value
        );
    }
}

fn print_header(doc: &Document) {
    let (host, config) = (&doc.host, &doc.config);
    println!();
    println!(
        "tcpchurn bench: kernel {}, {} CPUs, {} s per run, {} rounds; load average {} at start, {} at end{}",
        host.kernel,
        host.cpus,
        config.duration_s,
        config.reps,
        host.loadavg_start,
        host.loadavg_end,
        if host.busy {
            " (machine busy: compare ratios, not absolute rates; noisy)"
        } else {
            ""
        }
    );
    if doc.runs_with_foreign_tracers > 0 {
        println!(
            "note: {} of {} runs had other users' tracing BPF programs loaded (recorders, tests): \
             they tax the churn in every variant of those rounds, which compresses the ratios",
            doc.runs_with_foreign_tracers,
            doc.runs.len()
        );
    }
    if let Some(alt) = &config.alt_build {
        println!("tcpchurn-alt is another build: {alt}");
    }
    for v in &doc.validation {
        println!(
            "validation ({}): {} connections -> {} transitions expected, {} replayed; per-connection sequences {}: {}",
            v.workload,
            v.connections,
            v.expected_transitions,
            v.replayed_transitions,
            serde_json::to_string(&v.sequences).unwrap_or_default(),
            if v.ok { "ok" } else { "MISMATCH" }
        );
    }
}

fn print_table(doc: &Document) {
    let variants: &[Variant] = &doc.config.variants;
    for workload in &doc.config.workloads {
        let Some(per_variant) = doc.summary.get(&workload.name) else {
            continue;
        };
        println!();
        println!(
            "{workload}: median [min-max] over rounds; ratio = traced / mean of the \
             untraced runs just before and after; clean = only those with no other tracing programs loaded"
        );
        println!(
            "{:<18} {:>24} {:>20} {:>22} {:>16} {:>8} {:>20} {:>16} {:>12} {:>18}",
            "variant",
            workload.unit(),
            "ratio",
            "ratio (clean, n)",
            "recorded/expect",
            "lost",
            "tracer CPU % core",
            "CPU ns/event",
            "RSS MiB max",
            "bytes/event"
        );
        for variant in variants {
            let Some(v) = per_variant.get(&variant.name) else {
                continue;
            };
            let t = v.tracer.as_ref();
            let clean = v.ratio_to_untraced_without_foreign_tracers;
            println!(
                "{:<18} {:>24} {:>20} {:>22} {:>16} {:>8} {:>20} {:>16} {:>12} {:>18}",
                variant.name,
                show(v.conn_per_s, 0, 1.0),
                show(v.ratio_to_untraced, 3, 1.0),
                clean.map_or_else(|| "-".into(), |c| format!("{} {}", c.show(3, 1.0), c.n)),
                t.map_or_else(
                    || "-".into(),
                    |t| format!("{}/{}", t.events_recorded, t.events_expected)
                ),
                t.map_or_else(|| "-".into(), |t| t.events_lost.to_string()),
                show(t.and_then(|t| t.cpu_pct_of_one_core), 1, 1.0),
                show(t.and_then(|t| t.cpu_ns_per_event), 0, 1.0),
                t.and_then(|t| t.maxrss_mib)
                    .map_or_else(|| "-".into(), |m| format!("{:.1}", m.max)),
                show(t.and_then(|t| t.bytes_per_event), 1, 1.0),
            );
        }
    }
}

fn print_cross_checks(doc: &Document) {
    for (workload, per_variant) in &doc.summary {
        for variant in &doc.config.variants {
            let check = per_variant
                .get(&variant.name)
                .and_then(|v| v.tracer.as_ref())
                .and_then(|t| t.kernel_submitted_matches_file.as_ref());
            if let Some(check) = check {
                println!(
                    "{workload}, {}: kernel SUBMITTED counter == kernel events in the file in {check}",
                    variant.name
                );
            }
        }
    }
}

fn print_kernel_cost(doc: &Document) {
    println!();
    println!(
        "kernel cost (kernel.bpf_stats_enabled=1, {KERNEL_COST_RUNS} extra runs each, the median run; \
         run_time_ns includes the clock reads of the statistics themselves):"
    );
    for (workload, per_variant) in &doc.kernel_cost {
        for (tracer, v) in per_variant {
            println!(
                "  {workload}, {tracer}: {:.0} ns of BPF programs per {} ({} {}s; runs: {})",
                v.ns_per_event,
                v.per,
                v.events,
                v.per,
                show(v.ns_per_event_runs, 0, 1.0)
            );
            for p in &v.programs {
                println!(
                    "    {:<28} {:>10} runs {:>8.0} ns/run {:>8.0} ns/{}",
                    p.name, p.run_cnt, p.ns_per_run, p.ns_per_event, v.per,
                );
            }
        }
    }
}

fn print_replay(replay: &ReplaySpeed) {
    for (size, v) in [("large", &replay.large), ("double", &replay.double)] {
        println!();
        println!(
            "replay, {size} synthetic trace: {} events over {:.0} s of trace time, {:.1} bytes/event, median [min-max]",
            v.events, v.trace_seconds, v.trace.bytes_per_event
        );
        println!(
            "  {:<14} {:>30} {:>30} {:>22}",
            "mode", "Mevents/s per CPU second", "Mevents/s wall", "peak RSS MiB"
        );
        let modes: [(&str, Option<&ModeSpeed>); 4] = [
            ("verdict", Some(&v.modes.verdict)),
            ("events_json", v.modes.events_json.as_ref()),
            ("reader", v.modes.reader.as_ref()),
            ("export", v.modes.export.as_ref()),
        ];
        for (mode, m) in modes {
            let Some(m) = m else { continue };
            println!(
                "  {:<14} {:>30} {:>30} {:>22}",
                mode,
                show(m.events_per_cpu_s, 2, 1e-6),
                show(m.events_per_wall_s, 2, 1e-6),
                show(m.maxrss_mib, 1, 1.0),
            );
        }
    }
}
