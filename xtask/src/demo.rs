//! `cargo xtask demo`: the README's first command. It stages a small incident in two
//! network namespaces (a server host and an application node), records it with
//! `tcpchurn record`, prints `tcpchurn replay`'s verdict, and leaves the trace under
//! `target/demo/` for the user to replay again.
//!
//! - Built in (default, no Java): a registry with a per-client connection limit that
//!   accepts and then closes the connections over it, clients that reconnect in a
//!   loop, and a service that leaks CLOSE_WAIT. Everything is `tcpchurn-peer`.
//! - `--zookeeper`: the real software: Debian's ZooKeeper with `maxClientCnxns=4` and
//!   Java ZooKeeper clients (see `zookeeper.rs`).
//!
//! Namespaces and processes are removed on success, on error and on Ctrl-C.

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    run::{is_root, output, workspace_root},
    scenario::{
        self, Process, Recorder, Recording, Topology, catch_interrupts, check_interrupted,
        remove_stale_namespaces, sleep,
    },
    setup::{SetupArgs, setup},
    test::{build_tcpchurn, build_test_binaries},
    zookeeper::{self, ZooKeeper},
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

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);

/// The built-in incident's shape.
const REGISTRY_PORT: u16 = 2181;
const REGISTRY_LIMIT: u32 = 4;
const REGISTRY_CLIENTS: u32 = 8;
const LEAKY_PORT: u16 = 8080;
const LEAKY_REQUESTS: u32 = 6;

/// The ZooKeeper scenario's shape: 2 applications with 3 sessions each, plus zkCli,
/// make 7 sessions from one node for 4 slots.
const ZK_MAX_CLIENT_CNXNS: u32 = 4;
const ZK_APPLICATIONS: u32 = 2;
const ZK_SESSIONS_PER_APPLICATION: u32 = 3;

/// The binaries the demo (and the soak) runs.
pub struct Binaries {
    pub tcpchurn: PathBuf,
    pub peer: PathBuf,
}

pub fn build() -> anyhow::Result<Binaries> {
    let tcpchurn = build_tcpchurn()?;
    build_test_binaries(&["tcpchurn-peer"])?;
    Ok(Binaries {
        tcpchurn,
        peer: workspace_root().join("target/release/tcpchurn-peer"),
    })
}

/// A path as the user can type it: relative to the current directory when inside it.
fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
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
        })?;
    }
    let binaries = build()?;
    check_interrupted()?;
    remove_stale_namespaces()?;

    let dir = workspace_root().join("target/demo");
    let trace = dir.join(if args.zookeeper {
        "zookeeper.trace"
    } else {
        "incident.trace"
    });
    let logs = dir.join(if args.zookeeper { "zookeeper" } else { "logs" });
    // Files of an earlier run would be confusing next to this run's.
    if logs.exists() {
        fs::remove_dir_all(&logs).with_context(|| format!("removing {}", logs.display()))?;
    }
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let duration = Duration::from_secs(args.seconds);
    let epilogue = if args.zookeeper {
        zookeeper_incident(&binaries, &trace, &logs, duration)?
    } else {
        builtin_incident(&binaries, &trace, &logs, duration, args.reset)?
    };

    println!();
    println!("$ tcpchurn replay {}", shown(&trace));
    let status = Command::new(&binaries.tcpchurn)
        .arg("replay")
        .arg(shown(&trace))
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
    let trace = shown(&trace);
    println!("Replay it again (no root needed):");
    println!("  {tcpchurn} replay {trace}");
    println!("  {tcpchurn} replay --connections {trace}     # every connection");
    println!("  {tcpchurn} replay --events {trace}          # every event, with owners");
    println!("  {tcpchurn} replay --json {trace}            # the verdict as JSON");
    println!("Logs of the processes: {}/", shown(&logs));
    Ok(())
}

/// Records while the incident runs, then stops the recorder. The clients are frozen
/// (SIGSTOP) first, so that no connection attempt is cut in half by the end of the
/// recording. Fails if a server or a looping client dies meanwhile.
fn record_until(
    recorder: Recorder,
    deadline: Instant,
    servers: &mut [Process],
    clients: &mut [Process],
) -> anyhow::Result<Recording> {
    let mut recorder = recorder;
    while Instant::now() < deadline {
        sleep(Duration::from_millis(250))?;
        recorder.check_running()?;
        for process in servers.iter_mut().chain(clients.iter_mut()) {
            process.check_running()?;
        }
    }
    for client in clients.iter() {
        client.signal(libc::SIGSTOP);
    }
    let recording = recorder.stop()?;
    if !recording.status.success() {
        bail!(
            "tcpchurn record failed ({}):\n{}",
            recording.status,
            recording.summary.join("\n")
        );
    }
    Ok(recording)
}

/// "events 1234 (800 transitions), lost 0" from the recorder's summary.
fn summary_line(recording: &Recording) -> String {
    let field = |name: &str| {
        recording
            .summary
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    format!(
        "events {}, lost {}",
        field("events").unwrap_or_else(|| "?".into()),
        field("lost events").unwrap_or_else(|| "?".into())
    )
}

fn peer(topology_ns: &str, binaries: &Binaries, args: &[&str]) -> Command {
    let mut cmd = Topology::command(topology_ns, &binaries.peer);
    cmd.args(args);
    cmd
}

/// The built-in incident: no Java, only `tcpchurn-peer`.
fn builtin_incident(
    binaries: &Binaries,
    trace: &Path,
    logs: &Path,
    duration: Duration,
    reset: bool,
) -> anyhow::Result<Vec<String>> {
    let topology = Topology::create(SERVER_IP, NODE_IP)?;
    let registry = format!("{SERVER_IP}:{REGISTRY_PORT}");
    let leaky = format!("{SERVER_IP}:{LEAKY_PORT}");
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

    println!(
        "tcpchurn demo: a reconnect loop and a CLOSE_WAIT leak, staged in two network namespaces"
    );
    println!("  server host {SERVER_IP} (netns {}):", topology.server);
    println!(
        "    registry :{REGISTRY_PORT}  keeps {REGISTRY_LIMIT} connections from the node (its maxClientCnxns) and {how}"
    );
    println!(
        "    reports  :{LEAKY_PORT}  never closes a connection its client has left (a CLOSE_WAIT leak)"
    );
    println!(
        "  app node    {} (netns {}):",
        topology.node_ip, topology.node
    );
    println!(
        "    {REGISTRY_CLIENTS} registry clients, each reconnecting 0-1 s after the server closes it (as ZooKeeper's client does)"
    );
    println!("    {LEAKY_REQUESTS} requests to reports, one every 0.5 s");

    let limit = REGISTRY_LIMIT.to_string();
    let mut servers = vec![
        Process::spawn(
            "registry",
            peer(
                &topology.server,
                binaries,
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
            ),
            &logs.join("registry.log"),
        )?,
        Process::spawn(
            "reports",
            peer(
                &topology.server,
                binaries,
                &[
                    "server",
                    "--listen",
                    &leaky,
                    "--count",
                    "0",
                    "--behaviour",
                    "hold",
                ],
            ),
            &logs.join("reports.log"),
        )?,
    ];
    for (server, port) in servers.iter_mut().zip([REGISTRY_PORT, LEAKY_PORT]) {
        scenario::wait_listening(&topology.server, port, server, Duration::from_secs(10))?;
    }

    println!(
        "Recording both namespaces for {} s into {} ...",
        duration.as_secs(),
        shown(trace)
    );
    let recorder = Recorder::start(&binaries.tcpchurn, trace, &topology.netns_args())?;
    // The clients start within the recording: it lasts `duration` from here.
    let deadline = Instant::now() + duration;
    let requests = LEAKY_REQUESTS.to_string();
    // It exits after its requests, so it is not among the clients that must keep running.
    let requests_client = Process::spawn(
        "report requests",
        peer(
            &topology.node,
            binaries,
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
        ),
        &logs.join("report-requests.log"),
    )?;
    let mut clients = Vec::new();
    for i in 0..REGISTRY_CLIENTS {
        clients.push(Process::spawn(
            &format!("registry client {i}"),
            peer(
                &topology.node,
                binaries,
                &["client", "--connect", &registry, "--reconnect"],
            ),
            &logs.join(format!("registry-client-{i}.log")),
        )?);
    }
    let recording = record_until(recorder, deadline, &mut servers, &mut clients)?;
    drop((clients, requests_client, servers, topology));
    println!("Recorded: {}", summary_line(&recording));
    Ok(Vec::new())
}

/// The real incident: ZooKeeper and Java clients.
fn zookeeper_incident(
    binaries: &Binaries,
    trace: &Path,
    logs: &Path,
    duration: Duration,
) -> anyhow::Result<Vec<String>> {
    let version =
        output("dpkg-query", &["-W", "-f=${Version}", "zookeeper"]).unwrap_or_else(|| "?".into());
    let topology = Topology::create(SERVER_IP, NODE_IP)?;
    let sessions = ZK_APPLICATIONS * ZK_SESSIONS_PER_APPLICATION + 1;
    println!("tcpchurn demo: the ZooKeeper incident, with the real software");
    println!(
        "  server host {SERVER_IP} (netns {}): ZooKeeper {version} (Debian), standalone, maxClientCnxns={ZK_MAX_CLIENT_CNXNS}",
        topology.server
    );
    println!(
        "  app node    {} (netns {}): {ZK_APPLICATIONS} Java applications with {ZK_SESSIONS_PER_APPLICATION} ZooKeeper sessions each, and zkCli: {sessions} sessions for {ZK_MAX_CLIENT_CNXNS} slots",
        topology.node_ip, topology.node
    );
    eprintln!("xtask: compiling the ZooKeeper client and starting ZooKeeper");
    let zookeeper = ZooKeeper::prepare(logs)?;
    let server = zookeeper.start_server(&topology, ZK_MAX_CLIENT_CNXNS)?;

    println!(
        "Recording both namespaces for {} s into {} ...",
        duration.as_secs(),
        shown(trace)
    );
    let recorder = Recorder::start(&binaries.tcpchurn, trace, &topology.netns_args())?;
    // The clients start within the recording: it lasts `duration` from here.
    let deadline = Instant::now() + duration;
    let mut clients = Vec::new();
    for i in 0..ZK_APPLICATIONS {
        clients.push(zookeeper.start_sessions(
            &topology,
            &format!("application-{i}"),
            ZK_SESSIONS_PER_APPLICATION,
        )?);
    }
    clients.push(zookeeper.start_cli(&topology, "zkcli")?);
    let mut servers = [server];
    let recording = record_until(recorder, deadline, &mut servers, &mut clients)?;
    drop((clients, servers, topology));
    println!("Recorded: {}", summary_line(&recording));

    let log_path = zookeeper.log("zookeeper");
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    Ok(vec![format!(
        "ZooKeeper's own log counts {} rejected connections (\"Too many connections from /{NODE_IP} - max is {ZK_MAX_CLIENT_CNXNS}\"): {}",
        zookeeper::logged_rejections(&log),
        shown(&log_path)
    )])
}
