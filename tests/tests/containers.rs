//! A real container runtime: podman (Debian's, runc, cgroupfs) runs a server container
//! and a client container, each in its own network namespace joined by a veth pair,
//! and a pod whose container talks to the same server over a veth of its own. The
//! client reconnects in a loop (nc), the server closes each connection at once.
//! Four recordings at once: everything, `--container SERVER`, `--pod POD`, and
//! everything in files of 4 KiB. The replays name the container at each end, the pod
//! of the pod's connections, keep what `--pod`/`--container` select, recording and
//! replaying, and each rotated file names both ends on its own.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tcpchurn_harness::{Addresses, exec, prometheus::scrape};
use tcpchurn_tests::{
    Netns, Scratch, Topology,
    podman::{Podman, podman_available},
    privileged_tests, record, replay_events, replay_verdict, ss, tcpchurn, verdict_pair,
};

privileged_tests! {
    podman_containers_and_a_pod_are_named_at_both_ends: if podman_available() {
        podman_scenario();
    };
}

/// The subnet of this test: 10.58.0.0/24 between the containers, 10.58.1.0/24 between
/// the pod and the server.
const SUBNET: u8 = 58;
const SERVER: &str = "10.58.0.1";
const CLIENT: &str = "10.58.0.2";
const POD_SERVER: &str = "10.58.1.1";
const POD_CLIENT: &str = "10.58.1.2";

/// A shell loop connecting to `addr` port 2181 again and again. Standard input stays
/// open for 0.5 s, so that the server (whose `/bin/true` exits at once) closes first, as
/// ZooKeeper does: at end of input busybox's `nc` shuts its side down. Its `-w` bounds
/// only the connect, and the `-ll` server listens with a backlog of 2: a connection the
/// server's full accept queue never took would wait for data for ever, so each attempt
/// is given up after 3 s.
fn reconnect_loop(addr: &str) -> String {
    format!("while true; do sleep 0.5 | timeout 3 nc -w 2 {addr} 2181; done")
}

/// A veth from the pod's namespace (through its infra process) to the server's, with
/// the pod's address on its side.
fn link_pod(infra_pid: u32, server: &Netns) {
    let pid = infra_pid.to_string();
    exec::ip(&[
        "-n",
        &server.name,
        "link",
        "add",
        "pod-s",
        "type",
        "veth",
        "peer",
        "name",
        "pod-c",
        "netns",
        &pid,
    ])
    .unwrap();
    exec::ip(&[
        "-n",
        &server.name,
        "addr",
        "add",
        &format!("{POD_SERVER}/24"),
        "dev",
        "pod-s",
    ])
    .unwrap();
    exec::ip(&["-n", &server.name, "link", "set", "pod-s", "up"]).unwrap();
    for args in [
        vec!["addr", "add", &format!("{POD_CLIENT}/24"), "dev", "pod-c"],
        vec!["link", "set", "pod-c", "up"],
    ] {
        exec::stdout(
            std::process::Command::new("nsenter")
                .args(["-t", &pid, "-n", "ip"])
                .args(&args),
        )
        .unwrap();
    }
}

/// Waits until the server's namespace has seen connections from both clients; fails
/// with what each client and namespace looked like if not.
fn wait_for_both_clients(podman: &Podman, topology: &Topology, ids: &Ids, infra_pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    // Whichever side closed first holds the TIME_WAIT: count the sockets of both ends.
    let seen = |addr: &str| {
        let ip: std::net::IpAddr = addr.parse().unwrap();
        let server_side = ss(&topology.server)
            .iter()
            .filter(|s| s.peer.0 == ip)
            .count();
        let client_side = if addr == CLIENT {
            ss(&topology.client)
                .iter()
                .filter(|s| s.peer.1 == 2181)
                .count()
        } else {
            exec::stdout(std::process::Command::new("nsenter").args([
                "-t",
                &infra_pid.to_string(),
                "-n",
                "ss",
                "-Htan",
                "dport",
                "2181",
            ]))
            .map_or(0, |out| out.lines().count())
        };
        server_side + client_side
    };
    while seen(CLIENT) < 3 || seen(POD_CLIENT) < 3 {
        if Instant::now() > deadline {
            panic!(
                "the clients did not connect within 60 s (sockets seen: {} from {CLIENT}, {} \
                 from {POD_CLIENT}); {}",
                seen(CLIENT),
                seen(POD_CLIENT),
                what_the_clients_did(podman, topology, ids, infra_pid)
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The sockets, containers, logs and addresses of the scenario, for a failure message.
fn what_the_clients_did(podman: &Podman, topology: &Topology, ids: &Ids, infra_pid: u32) -> String {
    let run = |cmd: &mut std::process::Command| format!("{:?}", exec::stdout(cmd));
    let logs = |name: &str| run(podman.command().args(["logs", "--tail", "5", name]));
    let pid = infra_pid.to_string();
    let in_pod = |args: &[&str]| {
        run(std::process::Command::new("nsenter")
            .args(["-t", &pid, "-n"])
            .args(args))
    };
    format!(
        "server {:?}; client {:?}; pod {}; containers {}; logs: server {}, client {}, in pod \
         {}; pod addresses {}; server addresses {}",
        ss(&topology.server),
        ss(&topology.client),
        in_pod(&["ss", "-Htan"]),
        run(podman.command().args(["ps", "-a"])),
        logs(&ids.server.0),
        logs(&ids.client.0),
        logs(&ids.in_pod.0),
        in_pod(&["ip", "-br", "addr"]),
        run(std::process::Command::new("ip").args(["-n", &topology.server.name, "-br", "addr"])),
    )
}

/// What the container object of a podman container says.
fn container(name: &str, id: &str, pod: Option<&str>) -> Value {
    json!({"namespace": null, "pod": pod, "container": name, "id": id, "runtime": "podman"})
}

fn pairs(verdict: &Value) -> Vec<(String, String)> {
    verdict["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["client"].as_str().unwrap().to_owned(),
                p["server"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair_of(client: &str) -> (String, String) {
    let server = if client == CLIENT { SERVER } else { POD_SERVER };
    (client.to_owned(), format!("{server}:2181"))
}

fn podman_scenario() {
    let scratch = Scratch::new("podman");
    let mut podman = Podman::new(&scratch.0);
    let topology = Topology::create("pm", Addresses::subnet(SUBNET)).unwrap();
    let tag = std::process::id();
    let (server, client, pod, in_pod) = (
        format!("tcw-srv-{tag}"),
        format!("tcw-cli-{tag}"),
        format!("tcw-pod-{tag}"),
        format!("tcw-inpod-{tag}"),
    );
    let ns = |n: &Netns| format!("ns:/run/netns/{}", n.name);
    let server_id = podman.start(
        &server,
        &["--network", &ns(&topology.server)],
        &["nc", "-ll", "-p", "2181", "-e", "/bin/true"],
    );
    let client_id = podman.start(
        &client,
        &["--network", &ns(&topology.client)],
        &["sh", "-c", &reconnect_loop(SERVER)],
    );
    // The pod's network is linked before its client starts: a client looping before
    // its route exists could stall in a half-set-up namespace.
    podman.create_pod(&pod);
    podman.start_pod(&pod);
    let infra_pid = podman.pid(&podman.inspect_pod(&pod, "{{.InfraContainerID}}"));
    link_pod(infra_pid, &topology.server);
    let in_pod_id = podman.start(
        &in_pod,
        &["--pod", &pod],
        &["sh", "-c", &reconnect_loop(POD_SERVER)],
    );

    // Three recorders at once, over the three namespaces.
    let mut args = topology.netns_args();
    args.extend(["--netns".into(), format!("/proc/{infra_pid}/ns/net")]);
    args.extend(["--flush-interval".into(), "200ms".into()]);
    let with = |extra: &[&str]| {
        let mut all = args.clone();
        all.extend(extra.iter().map(|s| (*s).to_owned()));
        all
    };
    let traces = [
        scratch.path("all.trace"),
        scratch.path("server.trace"),
        scratch.path("pod.trace"),
        scratch.path("rotated.trace"),
    ];
    let metrics = free_port();
    let recorders = [
        record(&traces[0], &args),
        record(&traces[1], with(&["--container", &server])),
        record(
            &traces[2],
            with(&["--pod", &pod, "--metrics", &metrics.to_string()]),
        ),
        record(&traces[3], with(&["--max-size", "4K"])),
    ];
    let ids = Ids {
        server: (server, server_id),
        client: (client, client_id),
        pod,
        in_pod: (in_pod, in_pod_id),
    };
    wait_for_both_clients(&podman, &topology, &ids, infra_pid);
    thread::sleep(Duration::from_secs(2));
    let exposition = scrape(metrics).unwrap();
    for recorder in recorders {
        recorder.stop().unwrap().ensure_success().unwrap();
    }
    drop(podman);

    check_metrics(&exposition, &ids);
    check_everything(&traces[0], &ids, &topology);
    check_selected(&traces[1], &ids, &topology, Selected::Server);
    check_selected(&traces[2], &ids, &topology, Selected::Pod);
    check_rotated(&traces[3], &ids);
}

/// A free port on 127.0.0.1 (taken back at once: the recorder binds it next).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The `--pod` recorder's metrics label the pod's pair with its pod: the client's pod
/// by name (a podman pod has no namespace), the server's (a bare container) empty.
fn check_metrics(exposition: &str, ids: &Ids) {
    let series = format!(
        "tcpchurn_connections_total{{client=\"{POD_CLIENT}\",client_pod=\"{}\",server=\"{POD_SERVER}:2181\",server_pod=\"\"}} ",
        ids.pod
    );
    assert!(
        exposition.lines().any(|l| l.starts_with(&series)),
        "{series} missing:\n{exposition}"
    );
}

/// A recording rotated every 4 KiB: a later file names the containers it holds,
/// although they were first named in an earlier one (each file starts with every name
/// still held).
fn check_rotated(trace: &Path, ids: &Ids) {
    let part = |n: u32| PathBuf::from(format!("{}.{n}", trace.display()));
    assert!(part(2).exists(), "fewer than three files");
    let verdict = replay_verdict(&part(1), &["--connections"]);
    let rows: Vec<&Value> = verdict["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["client"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{CLIENT}:"))
        })
        .collect();
    assert!(!rows.is_empty(), "{verdict:#}");
    for row in rows {
        assert_eq!(
            row["client_container"]["container"],
            ids.client.0.as_str(),
            "{row:#}"
        );
        assert_eq!(
            row["server_container"]["container"],
            ids.server.0.as_str(),
            "{row:#}"
        );
    }
}

/// Names and ids of the scenario's containers.
struct Ids {
    server: (String, String),
    client: (String, String),
    pod: String,
    in_pod: (String, String),
}

/// The unfiltered trace: both ends named, the pod's pair names its pod; replay filters.
fn check_everything(trace: &Path, ids: &Ids, topology: &Topology) {
    let verdict = replay_verdict(trace, &["--connections"]);
    let plain = verdict_pair(&verdict, CLIENT, &format!("{SERVER}:2181"));
    assert!(
        plain["client_pod"].is_null() && plain["server_pod"].is_null(),
        "{plain:#}"
    );
    let in_pod = verdict_pair(&verdict, POD_CLIENT, &format!("{POD_SERVER}:2181"));
    assert_eq!(
        in_pod["client_pod"],
        ids.pod.as_str(),
        "podman pods have no namespace"
    );
    assert!(in_pod["server_pod"].is_null());
    let server = container(&ids.server.0, &ids.server.1, None);
    let mut rows = 0;
    for row in verdict["connections"].as_array().unwrap() {
        let from = row["client"].as_str().unwrap();
        // A client socket the trace did not record (at the very start) is named by
        // its address: the pod's namespace names the pod, not its container.
        let recorded = !row["client_conn"].is_null();
        let client = if from.starts_with(&format!("{CLIENT}:")) {
            container(&ids.client.0, &ids.client.1, None)
        } else if from.starts_with(&format!("{POD_CLIENT}:")) && recorded {
            container(&ids.in_pod.0, &ids.in_pod.1, Some(&ids.pod))
        } else if from.starts_with(&format!("{POD_CLIENT}:")) {
            json!({"namespace": null, "pod": ids.pod, "container": null, "id": null,
                   "runtime": "podman"})
        } else {
            continue;
        };
        rows += 1;
        assert_eq!(row["client_container"], client, "{row:#}");
        assert_eq!(row["server_container"], server, "{row:#}");
    }
    assert!(rows >= 6, "{verdict:#}");

    // Text: next to the addresses.
    let text = tcpchurn(&["replay", trace.to_str().unwrap(), "--connections"]);
    let text = String::from_utf8(text.stdout).unwrap();
    for label in [
        format!("({})", ids.client.0),
        format!("({})", ids.server.0),
        format!("({}/{})", ids.pod, ids.in_pod.0),
        format!("{} -> {}", ids.client.0, ids.server.0),
    ] {
        assert!(text.contains(&label), "{label} missing:\n{text}");
    }

    // Events: each namespace's sockets are its container's.
    let events = replay_events(trace);
    for (ns, name) in [
        (&topology.server, &ids.server.0),
        (&topology.client, &ids.client.0),
    ] {
        let theirs: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "transition" && e["netns"] == ns.inode)
            .collect();
        assert!(!theirs.is_empty());
        for e in theirs {
            assert_eq!(e["container"]["container"], name.as_str(), "{e}");
        }
    }

    // Replay filters, by name, by id prefix, by pod.
    let only = |flag: &str, value: &str| pairs(&replay_verdict(trace, &[flag, value]));
    assert_eq!(only("--container", &ids.client.0), [pair_of(CLIENT)]);
    assert_eq!(only("--pod", &ids.pod), [pair_of(POD_CLIENT)]);
    let mut both = only("--container", &ids.server.1[..12]);
    both.sort();
    assert_eq!(both, [pair_of(CLIENT), pair_of(POD_CLIENT)]);
    assert!(only("--container", "no-such-container").is_empty());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Selected {
    Server,
    Pod,
}

/// A trace recorded with `--container SERVER` or `--pod POD`: only their sockets.
fn check_selected(trace: &Path, ids: &Ids, topology: &Topology, selected: Selected) {
    let events = replay_events(trace);
    let sockets: Vec<&Value> = events.iter().filter(|e| e["kind"] != "lost").collect();
    assert!(sockets.len() > 10, "{selected:?}: {} events", sockets.len());
    for e in &sockets {
        match selected {
            Selected::Server => {
                assert_eq!(e["netns"], topology.server.inode, "{e}");
                assert_eq!(e["container"]["container"], ids.server.0.as_str(), "{e}");
            }
            Selected::Pod => assert_eq!(e["container"]["pod"], ids.pod.as_str(), "{e}"),
        }
    }
    let mut found = pairs(&replay_verdict(trace, &[]));
    found.sort();
    let expected = match selected {
        Selected::Server => vec![pair_of(CLIENT), pair_of(POD_CLIENT)],
        Selected::Pod => vec![pair_of(POD_CLIENT)],
    };
    assert_eq!(found, expected, "{selected:?}");
}
