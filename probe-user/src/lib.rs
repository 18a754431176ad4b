//! tcpchurn: record every TCP state transition with eBPF, replay the trace into
//! verdicts: which side closes first, who is stuck in a reconnect loop, who holds
//! TIME_WAIT, which process forgot `close()`.
//!
//! Only [`kernel::probe`] touches aya. Decoding what the kernel says
//! ([`kernel::decode`], [`kernel::layouts`], [`kernel::btf`]), the recorder's socket
//! tracking ([`record::sockets`]), the trace format ([`trace`]), attribution
//! ([`owner`]), analysis and rendering are pure functions over plain data.

pub mod analysis;
pub mod cli;
pub mod idmap;
pub mod kernel;
pub mod model;
pub mod owner;
pub mod record;
pub mod render;
pub mod replay;
pub mod report;
pub mod trace;
pub mod workload;

use std::io::Write;

use crate::cli::{Cli, Command, ReplayArgs};

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
            let summary = record::record(args.options()?)?;
            render::summary::write_summary(err, &summary)?;
            Ok(())
        }
        Command::Replay(args) => replay::replay(&replay_options(args)?, out, err),
    }
}
