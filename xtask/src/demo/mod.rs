//! `cargo xtask demo`: the README's first command. It stages a small incident in two
//! network namespaces (a server host and an application node), records it with
//! `tcpchurn record`, prints `tcpchurn replay`'s verdict, and leaves the trace under
//! `target/demo/` for the user to replay again.
//!
//! - Built in (default, no Java, `builtin.rs`): a registry with a per-client
//!   connection limit that accepts and then closes the connections over it, clients
//!   that reconnect in a loop, and a service that leaks CLOSE_WAIT. Everything is
//!   `tcpchurn-peer`.
//! - `--zookeeper` (`zookeeper.rs`): the real software: Debian's ZooKeeper with
//!   `maxClientCnxns=4` and Java ZooKeeper clients.
//!
//! Namespaces and processes are removed on success, on error and on Ctrl-C.

mod builtin;
mod recording;
mod setting;
mod zookeeper;

use std::{fs, process::Command, time::Duration};

use anyhow::{Context as _, bail};
use tcpchurn_harness::{
    interrupt::{catch_interrupts, check_interrupted},
    runner::is_root,
    workspace,
};

use self::setting::{Output, shown};
use crate::{
    binaries::Binaries,
    setup::{SetupArgs, setup},
};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Stage the real incident: Debian's ZooKeeper with maxClientCnxns=4 and Java
    /// ZooKeeper clients (setup installs ZooKeeper and a JRE).
    #[arg(long)]
    pub zookeeper: bool,
    /// How long to record.
    #[arg(long, value_name = "SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(5..=600))]
    pub seconds: u64,
    /// Built-in incident: reject connections over the limit with an RST (as ZooKeeper
    /// 3.5+ mostly does) instead of a FIN (as ZooKeeper 3.4 did).
    #[arg(long, conflicts_with = "zookeeper")]
    pub reset: bool,
    /// Skip `xtask setup` (the tools are known to be installed).
    #[arg(long)]
    pub no_setup: bool,
}

pub fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the demo needs root: it loads an eBPF program and creates network namespaces \
             (run `sudo -E cargo xtask demo`)"
        );
    }
    catch_interrupts()?;
    let result = run_demo(args);
    if result.is_err() && check_interrupted().is_err() {
        // The guards have already run: nothing is left to clean. Exit as a shell does
        // after SIGINT, without an error report.
        eprintln!("xtask: demo interrupted; its namespaces and processes are removed");
        std::process::exit(130);
    }
    result
}

fn run_demo(args: &DemoArgs) -> anyhow::Result<()> {
    if !args.no_setup {
        setup(&SetupArgs {
            zookeeper: args.zookeeper,
            ..SetupArgs::default()
        })?;
    }
    let binaries = Binaries::build()?;
    check_interrupted()?;

    let dir = workspace::root().join("target/demo");
    let output = Output {
        trace: dir.join(if args.zookeeper {
            "zookeeper.trace"
        } else {
            "incident.trace"
        }),
        logs: dir.join(if args.zookeeper { "zookeeper" } else { "logs" }),
    };
    // Files of an earlier run would be confusing next to this run's.
    if output.logs.exists() {
        fs::remove_dir_all(&output.logs)
            .with_context(|| format!("removing {}", output.logs.display()))?;
    }
    fs::create_dir_all(&output.logs)
        .with_context(|| format!("creating {}", output.logs.display()))?;

    let duration = Duration::from_secs(args.seconds);
    let epilogue = if args.zookeeper {
        zookeeper::incident(&binaries, &output, duration)?
    } else {
        builtin::incident(&binaries, &output, duration, args.reset)?
    };
    print_replay(&binaries, &output, &epilogue)
}

/// The verdict, and how to see it again.
fn print_replay(binaries: &Binaries, output: &Output, epilogue: &[String]) -> anyhow::Result<()> {
    println!();
    println!("$ tcpchurn replay {}", shown(&output.trace));
    let status = Command::new(&binaries.tcpchurn)
        .arg("replay")
        .arg(shown(&output.trace))
        .status()
        .context("running tcpchurn replay")?;
    if !status.success() {
        bail!("tcpchurn replay failed ({status})");
    }
    println!();
    for line in epilogue {
        println!("{line}");
    }
    let tcpchurn = shown(&binaries.tcpchurn);
    let trace = shown(&output.trace);
    println!("Replay it again (no root needed):");
    println!("  {tcpchurn} replay {trace}");
    println!("  {tcpchurn} replay --connections {trace}     # every connection");
    println!("  {tcpchurn} replay --events {trace}          # every event, with owners");
    println!("  {tcpchurn} replay --json {trace}            # the verdict as JSON");
    println!("Logs of the processes: {}/", shown(&output.logs));
    Ok(())
}
