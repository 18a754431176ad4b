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
pub mod doctor;
pub mod errors;
pub mod export;
pub mod generate;
pub mod idmap;
pub mod kernel;
pub mod model;
pub mod owner;
pub mod private_file;
pub mod record;
pub mod render;
pub mod replay;
pub mod synth;
pub mod trace;
pub mod workload;

use std::io::Write;

use crate::cli::{Cli, Command, DoctorArgs, ExportArgs, ReplayArgs};

fn replay_options(args: &ReplayArgs) -> anyhow::Result<replay::ReplayOptions> {
    fn parse<T>(
        flag: &str,
        text: Option<&str>,
        parse: fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Option<T>> {
        text.map(parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
    }
    let filter = model::EndpointFilter {
        server: parse(
            "--server",
            args.server.as_deref(),
            model::EndpointFilter::parse_server,
        )?,
        client: parse(
            "--client",
            args.client.as_deref(),
            model::EndpointFilter::parse_client,
        )?,
    };
    let workloads =
        model::WorkloadFilter::parse(&args.pods, &args.containers).map_err(anyhow::Error::msg)?;
    Ok(replay::ReplayOptions {
        files: args.files.clone(),
        workloads,
        events: args.events,
        json: args.json,
        connections: args.connections,
        filter,
        window: model::TimeWindow::checked(args.since, args.until).map_err(anyhow::Error::msg)?,
        close_wait: args.close_wait,
        color: args.color.into(),
        relative_time: args.relative,
        follow: args.follow.then_some(args.interval),
    })
}

fn export_options(args: &ExportArgs) -> export::ExportOptions {
    export::ExportOptions {
        files: args.files.clone(),
        dir: args.output.clone(),
        format: args.format.into(),
        force: args.force,
        close_wait: args.close_wait,
    }
}

fn run_doctor(args: &DoctorArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let report = doctor::doctor(&doctor::DoctorOptions {
        btf: args.btf.clone(),
        top: args.top,
    });
    if args.json {
        render::doctor::write_json(out, &report)?;
    } else {
        render::doctor::write_text(out, &report)?;
    }
    Ok(())
}

/// Runs a parsed command line. Output goes to `out`, diagnostics to `err`.
pub fn run(cli: &Cli, out: &mut impl Write, err: &mut impl Write) -> anyhow::Result<()> {
    match &cli.command {
        Command::Record(args) => {
            let summary = record::record(args.options()?)?;
            // The recording succeeded and its files are closed: a summary that cannot be
            // shown (stderr closed or full) does not make it fail.
            let _shown = render::summary::write_summary(err, &summary);
            Ok(())
        }
        Command::Replay(args) => replay::replay(&replay_options(args)?, out, err),
        Command::Export(args) => {
            let summary = export::export(&export_options(args), err)?;
            render::summary::write_export_summary(err, &summary)?;
            Ok(())
        }
        Command::Doctor(args) => run_doctor(args, out),
        Command::Generate(args) => {
            let written = generate::generate(args.what, &args.dir)?;
            for path in written {
                writeln!(err, "tcpchurn: wrote {}", path.display())?;
            }
            Ok(())
        }
    }
}
