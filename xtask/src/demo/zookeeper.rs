//! The real incident: Debian's ZooKeeper with a small `maxClientCnxns` and Java
//! ZooKeeper clients (the harness's ZooKeeper set-up, shared with the tests).

use std::{fs, time::Duration};

use tcpchurn_harness::{
    Topology, exec,
    zookeeper::{ZooKeeper, logged_rejections},
};

use super::{
    recording,
    setting::{Output, addresses, shown},
};
use crate::binaries::Binaries;

/// 2 applications with 3 sessions each, plus zkCli, make 7 sessions from one node for
/// 4 slots.
const MAX_CLIENT_CNXNS: usize = 4;
const APPLICATIONS: usize = 2;
const SESSIONS_PER_APPLICATION: usize = 3;

pub fn incident(
    binaries: &Binaries,
    output: &Output,
    duration: Duration,
) -> anyhow::Result<Vec<String>> {
    let version = exec::try_stdout("dpkg-query", &["-W", "-f=${Version}", "zookeeper"])
        .unwrap_or_else(|| "?".into());
    let topology = Topology::create("demo", addresses())?;
    let sessions = APPLICATIONS * SESSIONS_PER_APPLICATION + 1;
    println!("tcpchurn demo: the ZooKeeper incident, with the real software");
    println!(
        "  server host {} (netns {}): ZooKeeper {version} (Debian), standalone, maxClientCnxns={MAX_CLIENT_CNXNS}",
        topology.server_v4, topology.server.name
    );
    println!(
        "  app node    {} (netns {}): {APPLICATIONS} Java applications with {SESSIONS_PER_APPLICATION} ZooKeeper sessions each, and zkCli: {sessions} sessions for {MAX_CLIENT_CNXNS} slots",
        topology.client_v4, topology.client.name
    );
    eprintln!("xtask: compiling the ZooKeeper client and starting ZooKeeper");
    let zookeeper = ZooKeeper::prepare(&output.logs)?;
    let server = zookeeper.start_server(&topology, MAX_CLIENT_CNXNS)?;

    let (recorder, deadline) =
        recording::start(&binaries.tcpchurn, &output.trace, &topology, duration)?;
    let mut clients = Vec::new();
    for i in 0..APPLICATIONS {
        clients.push(zookeeper.start_sessions(
            &topology,
            &format!("application-{i}"),
            SESSIONS_PER_APPLICATION,
        )?);
    }
    clients.push(zookeeper.start_cli(&topology, "zkcli")?);
    let mut servers = [server];
    let recorded = recording::record_until(recorder, deadline, &mut servers, &mut clients)?;
    drop((clients, servers));
    println!("Recorded: {}", recording::summary_line(&recorded));

    let log_path = zookeeper.log("zookeeper");
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    Ok(vec![format!(
        "ZooKeeper's own log counts {} rejected connections (\"Too many connections from /{} - max is {MAX_CLIENT_CNXNS}\"): {}",
        logged_rejections(&log),
        topology.client_v4,
        shown(&log_path)
    )])
}
