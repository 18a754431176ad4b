//! `cargo xtask bench`: how much a recording costs the churn it records, whether it
//! loses anything, how big its files are, and how fast they replay (docs/bench.md
//! describes the design and the last results).
//!
//! The sections, in the order they run:
//! - validation (`validation.rs`): a small run of every TCP workload under the
//!   recorder, replayed, must show exactly the transitions the generator says it made;
//! - rounds (`runs.rs`): every workload (`workloads.rs`: the TCP churn of
//!   `tcpchurn-churn` in several shapes, the UDP flood of `tcpchurn-udp-flood`;
//!   `load.rs`), untraced and traced by each variant (`variants.rs`, `tracers.rs`) in
//!   alternation, every run in a fresh network namespace;
//! - kernel cost (`kernel_cost.rs`): the tracers' BPF run time per event;
//! - replay speed (`replay_speed.rs`): a synthetic trace replayed three ways;
//! - the summary, the targets and the report (`summary.rs`, `targets.rs`, `report.rs`,
//!   with a before/after table of the two tcpchurn variants in `comparison.rs`),
//!   written as `target/bench/bench-<unix time>.json` (`document.rs`).
//!
//! `--alt-binary PATH` or `--alt-rev REV` (`alt_build.rs`) makes the second tcpchurn
//! variant another build: one command compares two builds on every workload.

mod alt_build;
mod args;
mod comparison;
mod document;
mod host;
mod kernel_cost;
mod load;
mod peak_rss;
mod replay_speed;
mod report;
mod runs;
mod stats;
mod summary;
mod targets;
mod tools;
mod tracer_output;
mod tracers;
mod validation;
mod variants;
mod workloads;

use std::{
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::bail;
use tcpchurn_harness::{interrupt::catch_interrupts, runner::is_root};

pub use self::args::BenchArgs;
use self::{
    document::{Config, Document},
    host::Host,
    kernel_cost::{KernelCosts, kernel_cost},
    replay_speed::replay_speed,
    runs::Bench,
    summary::summarize,
    targets::targets,
    tools::Tools,
    validation::validate,
    variants::variants,
};
use crate::{
    binaries::{build_tcpchurn, build_test_binaries},
    setup::{SetupArgs, setup},
};

fn build(args: &BenchArgs) -> anyhow::Result<()> {
    if args.no_build {
        return Ok(());
    }
    // The same tools as the tests (bpf-linker, bpftool for the kernel-cost pass).
    setup(&SetupArgs::default())?;
    build_tcpchurn()?;
    build_test_binaries(&[
        "tcpchurn-churn",
        "tcpchurn-udp-flood",
        "tcpchurn-trace-tool",
    ])
}

/// The second tcpchurn variant's binary, when it is another build.
fn alt_binary(args: &BenchArgs) -> anyhow::Result<Option<PathBuf>> {
    if let Some(rev) = &args.alt_rev {
        return alt_build::build_rev(rev).map(Some);
    }
    if let Some(binary) = &args.alt_binary {
        if !binary.is_file() {
            bail!("--alt-binary {}: no such file", binary.display());
        }
        return Ok(Some(std::fs::canonicalize(binary)?));
    }
    Ok(None)
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the benchmark needs root: it loads eBPF programs, creates network namespaces \
             and reads other processes' CPU time; run `cargo xtask bench` as root"
        );
    }
    let args = &args.resolved();
    let workloads = args.workloads()?;
    build(args)?;
    let alt = alt_binary(args)?;
    catch_interrupts()?;
    let tools = Tools::release()?;
    let mut host = Host::at_start();
    let (variants, skipped) = variants(args, alt.as_deref());
    let bench = Bench {
        args,
        tools: &tools,
    };
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    let mut validation = Vec::new();
    for workload in &workloads {
        let Some(v) = validate(&bench, workload)? else {
            continue;
        };
        eprintln!(
            "bench: validation ({}): {} connections, {} expected transitions, {} replayed, sequences {} -> {}",
            v.workload,
            v.connections,
            v.expected_transitions,
            v.replayed_transitions,
            serde_json::to_string(&v.sequences)?,
            if v.ok { "ok" } else { "MISMATCH" }
        );
        validation.push(v);
    }
    let runs = bench.rounds(&variants, &workloads)?;
    let kernel_cost = if args.no_kernel_cost {
        KernelCosts::new()
    } else {
        kernel_cost(&bench, &variants, &workloads)?
    };
    let replay = (args.replay_events > 0)
        .then(|| replay_speed(&tools, args.replay_events, args.replay_reps.max(1)))
        .transpose()?;
    host.finish();

    let summary = summarize(&runs, &variants, &workloads);
    let alt_build = match (&args.alt_rev, &alt) {
        (Some(rev), Some(binary)) => Some(format!("{rev} ({})", binary.display())),
        (None, Some(binary)) => Some(binary.display().to_string()),
        _ => None,
    };
    let document = Document {
        tool: "cargo xtask bench".into(),
        started_unix,
        host,
        config: Config {
            duration_s: args.duration,
            reps: args.reps,
            alt_args: args.alt_args(),
            alt_build,
            variants,
            skipped,
            workloads: workloads.clone(),
        },
        validation,
        runs_with_foreign_tracers: runs.iter().filter(|r| r.churn.foreign_tracers > 0).count(),
        targets: targets(&summary, &workloads, replay.as_ref()),
        summary,
        kernel_cost,
        replay,
        runs,
    };
    report::print(&document);
    let path = document.write(&tools.out_dir)?;
    #[expect(
        clippy::print_stdout,
        reason = "where the results are is part of the report"
    )]
    {
        println!();
        println!("results: {}", path.display());
    }
    Ok(())
}
