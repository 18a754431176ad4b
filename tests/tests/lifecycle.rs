//! Exact transition sequences and owners on both ends of real connections, recorded
//! by the real kernel program: between two namespaces over veth, and over loopback
//! inside one namespace, where the kernel runs the receiving side's softirq in the
//! *sender's* context (docs/kernel-facts.md §2.1).
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{net::SocketAddr, time::Duration};

use serde_json::Value;
use tcpchurn::trace::KernelFeatures;
use tcpchurn_tests::{
    Layout, Peer, Scratch, attachment, connections_of, conns_where, event_ip, expected_reason,
    kernel_features, privileged_tests, record, replay_events, state_change_attachment, tcpchurn,
    time_scale, transitions_of,
};

const PORT: u16 = 4181;

/// What one recorded connection looked like.
struct Run {
    events: Vec<Value>,
    server_pid: u32,
    client_pid: u32,
    client_conn: Option<u64>,
    server_conn: Option<u64>,
    client_port: Option<u16>,
    server_netns: u64,
    client_netns: u64,
    /// How the trace header says error reports were recorded.
    error_reports: String,
    features: KernelFeatures,
}

/// Where the two peers run, and how state changes are recorded.
#[derive(Clone, Copy)]
struct Setup {
    veth: bool,
    v6: bool,
    /// `--no-tp-btf`: the classic tracepoint program (which reads the socket lock with
    /// `bpf_probe_read_kernel`).
    classic: bool,
}

const fn setup(veth: bool, v6: bool) -> Setup {
    Setup {
        veth,
        v6,
        classic: false,
    }
}

const fn classic(veth: bool, v6: bool) -> Setup {
    Setup {
        veth,
        v6,
        classic: true,
    }
}

fn run(setup: Setup, server_behaviour: &str, client_behaviour: &str, listen: bool) -> Run {
    let Setup { veth, v6, classic } = setup;
    let layout = Layout::new(veth, "lc");
    let scratch = Scratch::new("lifecycle");
    let (server_ip, client_ip) = layout.addrs(v6);
    let server_addr = SocketAddr::new(server_ip, PORT).to_string();
    let trace = scratch.path("t.trace");
    let mut args = layout.netns_args();
    if classic {
        args.push("--no-tp-btf".into());
    }
    let recorder = record(&trace, args);

    // A server that resets waits until the client has returned from connect(): on one
    // slow CPU an RST right after accept() can come first, and connect() then fails
    // with ECONNRESET instead of connecting.
    let delay_ms = if server_behaviour == "reset" {
        200 * time_scale()
    } else {
        0
    };
    let server = listen.then(|| {
        Peer::server(
            Some(layout.server_ns()),
            &[
                "--listen",
                &server_addr,
                "--count",
                "1",
                "--behaviour",
                server_behaviour,
                "--delay-ms",
                &delay_ms.to_string(),
            ],
        )
    });
    let mut client = Peer::client(
        Some(layout.client_ns()),
        &["--connect", &server_addr, "--behaviour", client_behaviour],
    );
    let client_pid = client.pid();
    let first = client.wait_for("", Duration::from_secs(10));
    let client_port = first
        .strip_prefix("connected ")
        .map(|a| a.parse::<SocketAddr>().unwrap().port());
    client.wait();
    let server_pid = server.map_or(0, |s| {
        let pid = s.pid();
        s.wait();
        pid
    });
    recorder.stop().unwrap().ensure_success().unwrap();
    if classic {
        let how = state_change_attachment(&trace);
        assert!(how.starts_with("classic tracepoint"), "{how}");
    }

    let events = replay_events(&trace);
    let error_reports = attachment(&trace, "sock:inet_sk_error_report");
    let features = kernel_features(&trace);
    let client_conns = conns_where(&events, |e| {
        event_ip(e, "laddr") == Some(client_ip)
            && event_ip(e, "raddr") == Some(server_ip)
            && e["rport"] == PORT
    });
    let server_conns = conns_where(&events, |e| {
        event_ip(e, "laddr") == Some(server_ip)
            && e["lport"] == PORT
            && event_ip(e, "raddr") == Some(client_ip)
    });
    assert!(
        client_conns.len() <= 1,
        "several client connections: {client_conns:?}"
    );
    assert!(
        server_conns.len() <= 1,
        "several server connections: {server_conns:?}"
    );
    Run {
        events,
        server_pid,
        client_pid,
        client_conn: client_conns.first().copied(),
        server_conn: server_conns.first().copied(),
        client_port,
        server_netns: layout.server_ns().inode,
        client_netns: layout.client_ns().inode,
        error_reports,
        features,
    }
}

fn assert_owner(run: &Run, conn: u64, pid: u32, side: &str) {
    for event in run
        .events
        .iter()
        .filter(|e| e["conn"] == conn && e["kind"] != "snapshot")
    {
        assert_eq!(
            event["pid"], pid,
            "{side} event with the wrong owner: {event}"
        );
        assert_eq!(
            event["comm"], "tcpchurn-peer",
            "{side} event with the wrong comm: {event}"
        );
    }
}

fn assert_pair(run: &Run, client: &[&str], server: &[&str]) {
    let client_conn = run.client_conn.expect("no client connection recorded");
    let server_conn = run.server_conn.expect("no server connection recorded");
    assert_eq!(
        transitions_of(&run.events, client_conn),
        client,
        "client transitions"
    );
    assert_eq!(
        transitions_of(&run.events, server_conn),
        server,
        "server transitions"
    );
    assert_owner(run, client_conn, run.client_pid, "client");
    assert_owner(run, server_conn, run.server_pid, "server");
    // The connect's SYN_SENT fired with source port 0; the trace shows the real one.
    let syn_sent = run
        .events
        .iter()
        .find(|e| e["conn"] == client_conn && e["new"] == "SYN_SENT")
        .unwrap();
    assert_eq!(
        syn_sent["lport"].as_u64(),
        run.client_port.map(u64::from),
        "{syn_sent}"
    );
    for event in run.events.iter().filter(|e| e["conn"] == client_conn) {
        assert_eq!(event["netns"], run.client_netns, "{event}");
    }
    for event in run.events.iter().filter(|e| e["conn"] == server_conn) {
        assert_eq!(event["netns"], run.server_netns, "{event}");
    }
}

const ACTIVE_CLOSE: [&str; 5] = [
    "CLOSE->SYN_SENT",
    "SYN_SENT->ESTABLISHED",
    "ESTABLISHED->FIN_WAIT1",
    "FIN_WAIT1->FIN_WAIT2",
    "FIN_WAIT2->CLOSE",
];
const PASSIVE_CLOSE_SERVER: [&str; 5] = [
    "LISTEN->SYN_RECV",
    "SYN_RECV->ESTABLISHED",
    "ESTABLISHED->CLOSE_WAIT",
    "CLOSE_WAIT->LAST_ACK",
    "LAST_ACK->CLOSE",
];
const PASSIVE_CLOSE_CLIENT: [&str; 5] = [
    "CLOSE->SYN_SENT",
    "SYN_SENT->ESTABLISHED",
    "ESTABLISHED->CLOSE_WAIT",
    "CLOSE_WAIT->LAST_ACK",
    "LAST_ACK->CLOSE",
];
const ACTIVE_CLOSE_SERVER: [&str; 5] = [
    "LISTEN->SYN_RECV",
    "SYN_RECV->ESTABLISHED",
    "ESTABLISHED->FIN_WAIT1",
    "FIN_WAIT1->FIN_WAIT2",
    "FIN_WAIT2->CLOSE",
];

fn client_closes_first(setup: Setup) {
    let run = run(setup, "wait-peer", "close", true);
    assert_pair(&run, &ACTIVE_CLOSE, &PASSIVE_CLOSE_SERVER);
}

fn server_closes_first(setup: Setup) {
    let run = run(setup, "close", "wait-peer", true);
    assert_pair(&run, &PASSIVE_CLOSE_CLIENT, &ACTIVE_CLOSE_SERVER);
}

fn server_resets(setup: Setup) {
    let run = run(setup, "reset", "wait-peer", true);
    assert_pair(
        &run,
        &[
            "CLOSE->SYN_SENT",
            "SYN_SENT->ESTABLISHED",
            "ESTABLISHED->CLOSE",
        ],
        &[
            "LISTEN->SYN_RECV",
            "SYN_RECV->ESTABLISHED",
            "ESTABLISHED->CLOSE",
        ],
    );
    let (client, server) = (run.client_conn.unwrap(), run.server_conn.unwrap());
    let find = |kind: &str, conn: u64| {
        run.events
            .iter()
            .find(|e| e["kind"] == kind && e["conn"] == conn)
    };
    let sent = find("reset_sent", server).expect("no RST sent by the server");
    // Before 6.10 the kernel gives no reason: unknown (null), never a made-up one.
    assert_eq!(
        sent["reason"],
        expected_reason(&run.features, "TCP_STATE"),
        "{sent}"
    );
    assert_eq!(sent["pid"], run.server_pid, "{sent}");
    let received = find("reset_received", client).expect("no RST received by the client");
    assert_eq!(received["pid"], run.client_pid, "{received}");
    let error = find("socket_error", client).expect("no error reported to the client");
    assert_eq!(error["error"], "ECONNRESET", "{error}");
    // Where the socket's offsets are known (kernel BTF, or the BTF file given where the
    // kernel's own is hidden), error reports come from the raw tracepoint and name their
    // socket: the report is the client's, whatever else ran on its CPU, however late.
    assert_eq!(run.error_reports, "raw tracepoint");
}

fn connect_refused(setup: Setup) {
    let run = run(setup, "", "close", false);
    let client = run.client_conn.expect("no client connection");
    assert_eq!(
        transitions_of(&run.events, client),
        ["CLOSE->SYN_SENT", "SYN_SENT->CLOSE"]
    );
    assert_owner(&run, client, run.client_pid, "client");
    let error = run
        .events
        .iter()
        .find(|e| e["kind"] == "socket_error" && e["conn"] == client)
        .expect("no error report");
    assert_eq!(error["error"], "ECONNREFUSED");
    // The client's side shows the refusal on every kernel: the RST it received.
    let received = run
        .events
        .iter()
        .find(|e| e["kind"] == "reset_received" && e["conn"] == client)
        .expect("no RST received by the client");
    assert_eq!(received["pid"], run.client_pid, "{received}");
    let resets_sent: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["kind"] == "reset_sent")
        .collect();
    if run.features.reset_without_socket {
        // 6.10+: the refusing host's RST without a socket, in the server's namespace.
        let reset = resets_sent
            .iter()
            .find(|e| e["reason"] == "NO_SOCKET")
            .expect("no RST from the refusing host");
        assert!(reset["conn"].is_null());
        assert_eq!(reset["netns"], run.server_netns, "{reset}");
        assert_eq!(reset["lport"], PORT, "{reset}");
    } else {
        // Before 6.10 an RST sent without a socket is not traced at all.
        assert!(resets_sent.is_empty(), "{resets_sent:?}");
    }
}

/// A connect whose SYN is dropped (the server's accept queue is full) stays in
/// SYN_SENT until the retransmitted SYN is answered, a second or more; blocks closed
/// every 10 ms put its SYN_SENT event, which the kernel gave without a source port, and
/// the events that name the port in different blocks: the replay still shows the port
/// the kernel picked, on every event of the connection.
fn connect_port_across_blocks(v6: bool) {
    let layout = Layout::new(false, "lb");
    let scratch = Scratch::new("lifecycle");
    let (server_ip, client_ip) = layout.addrs(v6);
    let server_addr = SocketAddr::new(server_ip, PORT).to_string();
    let trace = scratch.path("t.trace");
    let mut args = layout.netns_args();
    args.extend(["--flush-interval".to_owned(), "10ms".to_owned()]);
    let recorder = record(&trace, args);
    // Backlog 0: the first connection fills the accept queue, whose owner waits before
    // accepting it, and the second client's SYN is dropped meanwhile.
    let wait_ms = 300 * time_scale();
    let server = Peer::server(
        Some(layout.server_ns()),
        &[
            "--listen",
            &server_addr,
            "--count",
            "2",
            "--behaviour",
            "close",
            "--backlog",
            "0",
            "--first-accept-after-ms",
            &wait_ms.to_string(),
        ],
    );
    let connect = |behaviour| {
        Peer::client(
            Some(layout.client_ns()),
            &["--connect", &server_addr, "--behaviour", behaviour],
        )
    };
    let mut queued = connect("wait-peer");
    queued.wait_for("connected", Duration::from_secs(10));
    let mut late = connect("wait-peer");
    let line = late.wait_for("connected", Duration::from_secs(30));
    let late_port = line
        .strip_prefix("connected ")
        .map(|a| a.parse::<SocketAddr>().unwrap().port())
        .unwrap();
    queued.wait();
    late.wait();
    server.wait();
    recorder.stop().unwrap().ensure_success().unwrap();

    let events = replay_events(&trace);
    let late_conns = conns_where(&events, |e| {
        event_ip(e, "laddr") == Some(client_ip) && e["lport"] == late_port && e["rport"] == PORT
    });
    let [conn] = late_conns[..] else {
        panic!("the late client's connections: {late_conns:?}");
    };
    let of_conn: Vec<&Value> = events.iter().filter(|e| e["conn"] == conn).collect();
    let at = |new: &str| {
        of_conn
            .iter()
            .find(|e| e["new"] == new)
            .unwrap_or_else(|| panic!("no {new} in {of_conn:?}"))["ts_ns"]
            .as_u64()
            .unwrap()
    };
    // The SYN was dropped at least once: a retransmission is a second later, a hundred
    // times the flush interval, so the two events are in different blocks.
    let waited_ms = (at("ESTABLISHED") - at("SYN_SENT")) / 1_000_000;
    assert!(
        waited_ms >= 500,
        "connected after {waited_ms} ms: no SYN was dropped"
    );
    for event in &of_conn {
        assert_eq!(event["lport"], late_port, "{event}");
        assert_eq!(event_ip(event, "raddr"), Some(server_ip), "{event}");
    }
    eprintln!("lifecycle: the late connect waited {waited_ms} ms in SYN_SENT");
}

/// A connect that fails before a source port is picked never gets one. With a one-port
/// `ip_local_port_range`, a held connection takes the port, and a second connect to the
/// same server fails with EADDRNOTAVAIL: CLOSE->SYN_SENT then SYN_SENT->CLOSE, both with
/// source port 0 from the kernel (docs/kernel-facts.md §1.1), as in a TIME_WAIT
/// incident that exhausts the local ports. The replay shows the port as unknown: null
/// in JSON, `*` in text, never 0.
fn connect_without_a_port(v6: bool) {
    const ONLY_PORT: u16 = 40_000;
    let layout = Layout::new(false, "lp");
    let range = format!("net.ipv4.ip_local_port_range={ONLY_PORT} {ONLY_PORT}");
    layout
        .client_ns()
        .run("sysctl", &["-q", "-w", &range])
        .unwrap();
    let scratch = Scratch::new("lifecycle");
    let (server_ip, client_ip) = layout.addrs(v6);
    let server_addr = SocketAddr::new(server_ip, PORT).to_string();
    let trace = scratch.path("t.trace");
    let recorder = record(&trace, layout.netns_args());
    let server = Peer::server(
        Some(layout.server_ns()),
        &[
            "--listen",
            &server_addr,
            "--count",
            "1",
            "--behaviour",
            "hold",
        ],
    );
    let mut client = Peer::client(
        Some(layout.client_ns()),
        &[
            "--connect",
            &server_addr,
            "--count",
            "2",
            "--behaviour",
            "hold",
        ],
    );
    let held = client.wait_for("connected", Duration::from_secs(10));
    assert_eq!(
        held,
        format!("connected {}", SocketAddr::new(client_ip, ONLY_PORT))
    );
    let failed = client.wait_for("error", Duration::from_secs(10));
    assert_eq!(failed, format!("error {}", libc::EADDRNOTAVAIL));
    client.wait_for("done", Duration::from_secs(10));
    recorder.stop().unwrap().ensure_success().unwrap();
    client.kill();
    server.kill();

    let events = replay_events(&trace);
    let portless = conns_where(&events, |e| {
        e["kind"] == "transition" && e["rport"] == PORT && e["lport"].is_null()
    });
    let [conn] = portless[..] else {
        panic!("connections to {server_addr} without a source port: {portless:?}");
    };
    assert_eq!(
        transitions_of(&events, conn),
        ["CLOSE->SYN_SENT", "SYN_SENT->CLOSE"]
    );
    for event in events.iter().filter(|e| e["conn"] == conn) {
        assert!(event["lport"].is_null(), "{event}");
        assert_eq!(event_ip(event, "laddr"), Some(client_ip), "{event}");
        assert_eq!(event_ip(event, "raddr"), Some(server_ip), "{event}");
        assert_eq!(event["rport"], PORT, "{event}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["lport"] == ONLY_PORT && e["rport"] == PORT),
        "the held connection has the one port"
    );

    let replayed = tcpchurn(&["replay", "--events", trace.to_str().unwrap()]);
    assert!(replayed.status.success(), "{replayed:?}");
    let text = String::from_utf8(replayed.stdout).unwrap();
    let local = if v6 {
        format!("[{client_ip}]:*")
    } else {
        format!("{client_ip}:*")
    };
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(&local)).collect();
    let [syn_sent, closed] = lines[..] else {
        panic!("lines with {local}:\n{text}");
    };
    assert!(syn_sent.contains("CLOSE -> SYN_SENT"), "{syn_sent}");
    assert!(closed.contains("SYN_SENT -> CLOSE"), "{closed}");

    // The verdict says why: no free local port, not a timeout.
    let path = trace.to_str().unwrap();
    let replayed = tcpchurn(&["replay", "--json", "--connections", path]);
    let verdict: Value = serde_json::from_slice(&replayed.stdout).unwrap();
    let failed = connections_of(&verdict, PORT)
        .into_iter()
        .find(|c| c["conn"] == conn)
        .unwrap_or_else(|| panic!("no connection {conn}: {verdict:#}"));
    assert_eq!(failed["how"], "no_port", "{failed}");
    assert_eq!(failed["closed_first"], "client", "{failed}");
    let pairs = verdict["pairs"].as_array().unwrap();
    let pair = pairs
        .iter()
        .find(|p| p["server"] == server_addr)
        .unwrap_or_else(|| panic!("no pair toward {server_addr}: {verdict:#}"));
    assert_eq!(pair["no_port"], 1, "{pair:#}");
    assert_eq!(pair["timed_out"], 0, "{pair:#}");
    assert_eq!(pair["closed_by"]["client"]["no_port"], 1, "{pair:#}");
    let replayed = tcpchurn(&["replay", "--color", "never", path]);
    let text = String::from_utf8(replayed.stdout).unwrap();
    // The verdict wraps at 80 columns.
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("1/1 found no free local port (EADDRNOTAVAIL"),
        "{text}"
    );
    eprintln!("lifecycle: a connect without a port shows as {local}, and its verdict says why");
}

privileged_tests! {
    veth_client_closes_first: client_closes_first(setup(true, false));
    veth_server_closes_first: server_closes_first(setup(true, false));
    veth_server_resets: server_resets(setup(true, false));
    veth_connect_refused: connect_refused(setup(true, false));
    veth_ipv6_client_closes_first: client_closes_first(setup(true, true));
    veth_ipv6_server_closes_first: server_closes_first(setup(true, true));
    veth_ipv6_server_resets: server_resets(setup(true, true));
    veth_ipv6_connect_refused: connect_refused(setup(true, true));
    loopback_client_closes_first: client_closes_first(setup(false, false));
    loopback_server_closes_first: server_closes_first(setup(false, false));
    loopback_server_resets: server_resets(setup(false, false));
    loopback_connect_refused: connect_refused(setup(false, false));
    loopback_ipv6_client_closes_first: client_closes_first(setup(false, true));
    loopback_ipv6_server_resets: server_resets(setup(false, true));
    classic_loopback_client_closes_first: client_closes_first(classic(false, false));
    classic_loopback_server_closes_first: server_closes_first(classic(false, false));
    classic_loopback_server_resets: server_resets(classic(false, false));
    classic_veth_server_closes_first: server_closes_first(classic(true, false));
    loopback_connect_port_across_blocks: connect_port_across_blocks(false);
    loopback_ipv6_connect_port_across_blocks: connect_port_across_blocks(true);
    loopback_connect_without_a_port: connect_without_a_port(false);
    loopback_ipv6_connect_without_a_port: connect_without_a_port(true);
}
