//! `cargo xtask soak`: record churn for a long time with rotation, then check that
//! nothing was lost silently and that the recorder's memory stayed flat.
//!
//! Events in: the churn client reports every attempt. A connection is 10 transitions
//! (both ends over veth); an attempt that found no free source port (`EADDRNOTAVAIL`:
//! the client holds TIME_WAIT for every connection it closed, and a minute of churn
//! from one address outlasts the ephemeral range) is CLOSE->SYN_SENT->CLOSE; the
//! listener adds CLOSE->LISTEN and LISTEN->CLOSE. Events out: the transitions in every
//! file of the rotated recording. Lost: the gap records in those files, whatever the
//! cause. Every missing event must be accounted for: out <= in <= out + lost. Lost can
//! exceed what went missing: the kernel counts skipped runs (`recursion_misses`) before
//! the program filters by namespace, so other users' sockets are in that count.

mod books;
mod churn;

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tcpchurn_harness::{
    Addresses, Recorder, Spawn, Topology,
    interrupt::{catch_interrupts, sleep},
    ready::wait_listening,
    runner::is_root,
    workspace,
};

use self::churn::PORT;
use crate::{
    binaries::Binaries,
    setup::{SetupArgs, setup},
};

/// The soak's addresses: 10.81.0.1 (server) and 10.81.0.2 (client).
const SUBNET: u8 = 81;

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long to record.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Rotate the trace at this size.
    #[arg(long, default_value = "8M")]
    pub max_size: String,
}

pub fn soak(args: &SoakArgs) -> anyhow::Result<()> {
    if !is_root() {
        bail!("the soak test needs root (eBPF, network namespaces)");
    }
    setup(&SetupArgs::default())?;
    let binaries = Binaries::build()?;
    catch_interrupts()?;
    let dir = workspace::root().join("target/soak");
    let _fresh = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let trace = dir.join("soak.trace");

    let topology = Topology::create("soak", Addresses::subnet(SUBNET))?;
    let mut record_args = topology.netns_args();
    // Keep every file: the check counts every event.
    record_args.extend(["--max-size".into(), args.max_size.clone()]);
    record_args.extend(["--rotate".into(), "100000".into()]);
    let mut recorder = Recorder::start(&binaries.tcpchurn, &trace, &record_args)?;
    let server_addr = format!("{}:{PORT}", topology.server_v4);
    let mut server_cmd = topology.server.command(&binaries.peer);
    server_cmd.args(["server", "--listen", &server_addr, "--count", "0"]);
    server_cmd.args(["--behaviour", "wait-peer"]);
    let mut server = Spawn::new("server", server_cmd)
        .log_to(&dir.join("server.log"))
        .start()?;
    wait_listening(&topology.server, PORT, &mut server, Duration::from_secs(10))?;

    eprintln!("xtask soak: churning for {:.1} minutes...", args.minutes);
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let churned = churn::churn(&binaries, &topology, &mut recorder, duration)?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    // The server's exit closes its listener (LISTEN->CLOSE).
    server.signal(libc::SIGTERM);
    sleep(Duration::from_millis(500))?;
    recorder
        .stop()?
        .ensure_success()
        .context("the recorder failed")?;
    let recorded = books::count_recorded(&binaries.tcpchurn, &trace)?;
    books::judge(&dir, minutes, &churned, &recorded)
}
