//! The built-in incident: no Java, only `tcpchurn-peer`. A registry that keeps a few
//! connections per client and closes the others at once, clients that reconnect in a
//! loop, and a reports service that leaks CLOSE_WAIT.

use std::{path::Path, time::Duration};

use tcpchurn_harness::{Netns, Process, Spawn, Topology, ready::wait_listening};

use super::{Output, addresses, recording};
use crate::binaries::Binaries;

const REGISTRY_PORT: u16 = 2181;
const REGISTRY_LIMIT: u32 = 4;
const REGISTRY_CLIENTS: u32 = 8;
const LEAKY_PORT: u16 = 8080;
const LEAKY_REQUESTS: u32 = 6;

/// `tcpchurn-peer ARGS...` in a namespace, its output in the file `log`.
fn peer(
    binaries: &Binaries,
    netns: &Netns,
    name: &str,
    log: &Path,
    args: &[&str],
) -> anyhow::Result<Process> {
    let mut cmd = netns.command(&binaries.peer);
    cmd.args(args);
    Spawn::new(name, cmd).log_to(log).start()
}

fn print_plan(topology: &Topology, how: &str) {
    let (server_ip, node_ip) = (topology.server_v4, topology.client_v4);
    println!(
        "tcpchurn demo: a reconnect loop and a CLOSE_WAIT leak, staged in two network namespaces"
    );
    println!(
        "  server host {server_ip} (netns {}):",
        topology.server.name
    );
    println!(
        "    registry :{REGISTRY_PORT}  keeps {REGISTRY_LIMIT} connections from the node (its maxClientCnxns) and {how}"
    );
    println!(
        "    reports  :{LEAKY_PORT}  never closes a connection its client has left (a CLOSE_WAIT leak)"
    );
    println!("  app node    {node_ip} (netns {}):", topology.client.name);
    println!(
        "    {REGISTRY_CLIENTS} registry clients, each reconnecting 0-1 s after the server closes it (as ZooKeeper's client does)"
    );
    println!("    {LEAKY_REQUESTS} requests to reports, one every 0.5 s");
}

pub fn incident(
    binaries: &Binaries,
    output: &Output,
    duration: Duration,
    reset: bool,
) -> anyhow::Result<Vec<String>> {
    let topology = Topology::create("demo", addresses())?;
    let registry = format!("{}:{REGISTRY_PORT}", topology.server_v4);
    let leaky = format!("{}:{LEAKY_PORT}", topology.server_v4);
    let (over_limit, how) = if reset {
        (
            "reset",
            "resets the others at once (RST, as ZooKeeper 3.5+ mostly does)",
        )
    } else {
        (
            "close",
            "closes the others at once (FIN, as ZooKeeper 3.4 did)",
        )
    };
    print_plan(&topology, how);
    let log = |name: &str| output.logs.join(format!("{name}.log"));

    let limit = REGISTRY_LIMIT.to_string();
    let mut servers = vec![
        peer(
            binaries,
            &topology.server,
            "registry",
            &log("registry"),
            &[
                "server",
                "--listen",
                &registry,
                "--count",
                "0",
                "--behaviour",
                "hold",
                "--limit",
                &limit,
                "--over-limit",
                over_limit,
            ],
        )?,
        peer(
            binaries,
            &topology.server,
            "reports",
            &log("reports"),
            &[
                "server",
                "--listen",
                &leaky,
                "--count",
                "0",
                "--behaviour",
                "hold",
            ],
        )?,
    ];
    for (server, port) in servers.iter_mut().zip([REGISTRY_PORT, LEAKY_PORT]) {
        wait_listening(&topology.server, port, server, Duration::from_secs(10))?;
    }

    let (recorder, deadline) =
        recording::start(&binaries.tcpchurn, &output.trace, &topology, duration)?;
    let requests = LEAKY_REQUESTS.to_string();
    // It exits after its requests, so it is not among the clients that must keep running.
    let requests_client = peer(
        binaries,
        &topology.client,
        "report requests",
        &log("report-requests"),
        &[
            "client",
            "--connect",
            &leaky,
            "--count",
            &requests,
            "--interval-ms",
            "500",
            "--behaviour",
            "close",
        ],
    )?;
    let mut clients = Vec::new();
    for i in 0..REGISTRY_CLIENTS {
        clients.push(peer(
            binaries,
            &topology.client,
            &format!("registry client {i}"),
            &log(&format!("registry-client-{i}")),
            &["client", "--connect", &registry, "--reconnect"],
        )?);
    }
    let recorded = recording::record_until(recorder, deadline, &mut servers, &mut clients)?;
    drop((clients, requests_client, servers, topology));
    println!("Recorded: {}", recording::summary_line(&recorded));
    Ok(Vec::new())
}
