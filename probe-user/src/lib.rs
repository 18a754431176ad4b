//! tcpchurn: record every TCP state transition with eBPF, replay the trace into
//! verdicts: which side closes first, who is stuck in a reconnect loop, who holds
//! TIME_WAIT, which process forgot `close()`.
//!
//! Only [`kernel`] touches aya. Decoding ([`decode`], [`tracefs`], [`btf`]), the trace
//! format ([`trace`]), attribution ([`owner`]), analysis and rendering are pure
//! functions over plain data.

pub mod analysis;
pub mod btf;
pub mod cli;
pub mod decode;
pub mod diag;
pub mod idmap;
pub mod kernel;
pub mod model;
pub mod owner;
pub mod preflight;
pub mod record;
pub mod render;
pub mod replay;
pub mod report;
pub mod sockets;
pub mod trace;
pub mod tracefs;
pub mod workload;

use std::io::Write;

use anyhow::Context as _;

use crate::cli::{Cli, Command, RecordArgs, ReplayArgs};

fn record_options(args: &RecordArgs) -> anyhow::Result<record::RecordOptions> {
    if args.ports.len() > probe_common::MAX_FILTER_PORTS {
        anyhow::bail!("at most {} --port filters", probe_common::MAX_FILTER_PORTS);
    }
    if args.netns.len() > probe_common::MAX_FILTER_NETNS {
        anyhow::bail!("at most {} --netns filters", probe_common::MAX_FILTER_NETNS);
    }
    let netns = args
        .netns
        .iter()
        .map(|spec| diag::resolve_namespace(spec).with_context(|| format!("--netns {spec}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ring_bytes = u32::try_from(args.ring_size).context("--ring-size must be below 4 GiB")?;
    Ok(record::RecordOptions {
        output: args.output.clone(),
        force: args.force,
        duration: args.duration,
        ports: args.ports.clone(),
        netns,
        ring_bytes,
        flush_interval: args
            .flush_interval
            .max(std::time::Duration::from_millis(10)),
        snapshot: !args.no_snapshot,
        max_size: args.max_size,
        rotate: args.rotate,
        btf: args.btf.clone(),
        poll_interval: args.poll_interval.max(std::time::Duration::from_millis(1)),
        wakeup_bytes: args.wakeup_bytes,
        tp_btf: !args.no_tp_btf,
    })
}

fn replay_options(args: &ReplayArgs) -> anyhow::Result<replay::ReplayOptions> {
    let filter = replay::EndpointFilter {
        server: args
            .server
            .as_deref()
            .map(replay::EndpointFilter::parse_server)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--server: {e}"))?,
        client: args
            .client
            .as_deref()
            .map(replay::EndpointFilter::parse_client)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--client: {e}"))?,
    };
    Ok(replay::ReplayOptions {
        file: args.file.clone(),
        events: args.events,
        json: args.json,
        connections: args.connections,
        filter,
        since: args.since,
        until: args.until,
        close_wait: args.close_wait,
        color: args.color,
        relative_time: args.relative,
    })
}

/// Runs a parsed command line. Output goes to `out`, diagnostics to `err`.
pub fn run(cli: &Cli, out: &mut impl Write, err: &mut impl Write) -> anyhow::Result<()> {
    match &cli.command {
        Command::Record(args) => {
            let options = record_options(args)?;
            let summary = record::record(&options)?;
            summary.render(err)?;
            Ok(())
        }
        Command::Replay(args) => replay::replay(&replay_options(args)?, out, err),
    }
}
