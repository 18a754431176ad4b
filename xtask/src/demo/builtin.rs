//! The built-in incident: no Java, only `tcpchurn-peer`. A registry that keeps a few
//! connections per client and closes the others at once, clients that reconnect in a
//! loop, and a reports service that leaks CLOSE_WAIT.

use std::time::Duration;

use tcpchurn_harness::{Process, Spawn, Topology, ready::wait_listening};

use super::{
    recording,
    setting::{Output, addresses},
};
use crate::binaries::Binaries;

const REGISTRY_PORT: u16 = 2181;
const REGISTRY_LIMIT: u32 = 4;
const REGISTRY_CLIENTS: u32 = 8;
const LEAKY_PORT: u16 = 8080;
const LEAKY_REQUESTS: u32 = 6;

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

/// Where the incident's processes run and log.
struct Stage<'a> {
    binaries: &'a Binaries,
    topology: Topology,
    output: &'a Output,
    registry: String,
    leaky: String,
}

impl Stage<'_> {
    /// `tcpchurn-peer ARGS...` in the server or the node namespace, logging into
    /// `LOG.log`.
    fn peer(
        &self,
        server_side: bool,
        name: &str,
        log: &str,
        args: &[&str],
    ) -> anyhow::Result<Process> {
        let netns = if server_side {
            &self.topology.server
        } else {
            &self.topology.client
        };
        let mut cmd = netns.command(&self.binaries.peer);
        cmd.args(args);
        let log = self.output.logs.join(format!("{log}.log"));
        Spawn::new(name, cmd).log_to(&log).start()
    }

    /// The registry (`over_limit`: reset or close) and the leaky reports service,
    /// listening.
    fn start_servers(&self, over_limit: &str) -> anyhow::Result<Vec<Process>> {
        let limit = REGISTRY_LIMIT.to_string();
        let mut servers = vec![
            self.peer(
                true,
                "registry",
                "registry",
                &[
                    "server",
                    "--listen",
                    &self.registry,
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
            self.peer(
                true,
                "reports",
                "reports",
                &[
                    "server",
                    "--listen",
                    &self.leaky,
                    "--count",
                    "0",
                    "--behaviour",
                    "hold",
                ],
            )?,
        ];
        for (server, port) in servers.iter_mut().zip([REGISTRY_PORT, LEAKY_PORT]) {
            wait_listening(&self.topology.server, port, server, Duration::from_secs(10))?;
        }
        Ok(servers)
    }

    /// The reports requests (they end by themselves), and the registry clients that
    /// loop.
    fn start_clients(&self) -> anyhow::Result<(Process, Vec<Process>)> {
        let requests = LEAKY_REQUESTS.to_string();
        let requests_client = self.peer(
            false,
            "report requests",
            "report-requests",
            &[
                "client",
                "--connect",
                &self.leaky,
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
            clients.push(self.peer(
                false,
                &format!("registry client {i}"),
                &format!("registry-client-{i}"),
                &["client", "--connect", &self.registry, "--reconnect"],
            )?);
        }
        Ok((requests_client, clients))
    }
}

pub fn incident(
    binaries: &Binaries,
    output: &Output,
    duration: Duration,
    reset: bool,
) -> anyhow::Result<Vec<String>> {
    let topology = Topology::create("demo", addresses())?;
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
    let stage = Stage {
        binaries,
        output,
        registry: format!("{}:{REGISTRY_PORT}", topology.server_v4),
        leaky: format!("{}:{LEAKY_PORT}", topology.server_v4),
        topology,
    };
    let mut servers = stage.start_servers(over_limit)?;
    let (recorder, deadline) =
        recording::start(&binaries.tcpchurn, &output.trace, &stage.topology, duration)?;
    // The requests client exits after its requests, so it is not among the clients
    // that must keep running.
    let (requests_client, mut clients) = stage.start_clients()?;
    let recorded = recording::record_until(recorder, deadline, &mut servers, &mut clients)?;
    drop((clients, requests_client, servers, stage));
    println!("Recorded: {}", recording::summary_line(&recorded));
    Ok(Vec::new())
}
