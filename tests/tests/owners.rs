//! Owners of accepted sockets when listeners are not one process per port: an IPv4 and
//! an IPv6 server on the same port, a dual-stack `[::]` listener taking IPv4, a
//! listener a server shares with a forked worker,
//! and an `SO_REUSEPORT` pair of processes. An accepted socket's events before its own
//! first syscall carry the owner of the listener it came from, or, when several
//! processes hold that listener, no pid but their list; never a wrong one.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{collections::BTreeMap, net::SocketAddr, thread, time::Duration};

use serde_json::Value;
use tcpchurn_tests::{Peer, Program, Scenario, assert_program, event_ip, privileged_tests};

const CONNECTIONS: usize = 8;
const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// `count` requests from the client namespace to `server` (answered, then closed by
/// the server), one after the other.
fn requests(s: &Scenario, server: SocketAddr, count: usize) {
    let count = count.to_string();
    let server = server.to_string();
    let client = Peer::client(
        Some(s.layout.client_ns()),
        &[
            "--connect",
            &server,
            "--count",
            &count,
            "--behaviour",
            "request",
            "--interval-ms",
            "50",
        ],
    );
    client.wait();
}

/// The pid of each accepted connection, by client port, from a server's `accepted
/// PEER pid PID` lines.
fn accepted_by(server: &mut Peer, count: usize) -> BTreeMap<u16, u32> {
    (0..count)
        .map(|_| {
            let line = server.wait_for("accepted", LINE_TIMEOUT);
            let mut words = line.split_whitespace().skip(1);
            let peer: SocketAddr = words.next().unwrap().parse().unwrap();
            let pid = words.nth(1).unwrap().parse().unwrap();
            (peer.port(), pid)
        })
        .collect()
}

/// The server-side transitions of connections to `server` (not its listener), with
/// the client port each belongs to.
fn server_side(events: &[Value], server: SocketAddr) -> Vec<(u16, &Value)> {
    events
        .iter()
        .filter(|e| e["kind"] == "transition")
        .filter(|e| e["lport"] == server.port() && !e["rport"].is_null())
        .filter(|e| event_ip(e, "laddr") == Some(server.ip().to_canonical()))
        .map(|e| (u16::try_from(e["rport"].as_u64().unwrap()).unwrap(), e))
        .collect()
}

/// Every server-side event of a connection names the process that accepted it, or
/// (before its first syscall, when several hold the listener) no pid and exactly
/// `candidates`. Returns how many events gave candidates.
fn owners_are_right_or_candidates(
    events: &[Value],
    server: SocketAddr,
    accepted: &BTreeMap<u16, u32>,
    candidates: &[u32],
) -> usize {
    let side = server_side(events, server);
    assert!(
        side.len() >= 4 * accepted.len(),
        "{} server-side events for {} connections",
        side.len(),
        accepted.len()
    );
    let mut unknown = 0;
    for (port, event) in side {
        let accepter = accepted
            .get(&port)
            .unwrap_or_else(|| panic!("no accept line for client port {port}: {event}"));
        if event["pid"].is_null() {
            let pids: Vec<u32> = event["pids"]
                .as_array()
                .unwrap_or_else(|| panic!("no owner and no candidates: {event}"))
                .iter()
                .map(|p| u32::try_from(p.as_u64().unwrap()).unwrap())
                .collect();
            assert_eq!(pids, candidates, "{event}");
            assert_eq!(event["comm"], "tcpchurn-peer", "{event}");
            unknown += 1;
        } else {
            assert_eq!(event["pid"], *accepter, "wrong owner: {event}");
        }
    }
    unknown
}

/// An IPv4 server and an IPv6 server (`IPV6_V6ONLY`) on one port, in two processes,
/// started before the recording (`snapshot`) or during it: each child gets its own
/// listener's process, from its first event.
fn v4_and_v6_servers_on_one_port(snapshot: bool, program: Program) {
    let port = 5301;
    let mut s = Scenario::prepare(true, &tag("ov", snapshot, program), port).with(program);
    if !snapshot {
        s.record();
    }
    let v4_listen = format!("0.0.0.0:{port}");
    let v6_listen = format!("[::]:{port}");
    let args = ["--count", "0", "--behaviour", "answer"];
    let ns = Some(s.layout.server_ns());
    let v4 = Peer::server(ns, &[&["--listen", v4_listen.as_str()], &args[..]].concat());
    let v6 = Peer::server(
        ns,
        &[&["--listen", v6_listen.as_str(), "--v6only"], &args[..]].concat(),
    );
    if snapshot {
        s.record();
    }
    let (server_v4, server_v6) = (
        SocketAddr::new(s.layout.addrs(false).0, port),
        SocketAddr::new(s.layout.addrs(true).0, port),
    );
    requests(&s, server_v4, CONNECTIONS / 2);
    requests(&s, server_v6, CONNECTIONS / 2);
    thread::sleep(Duration::from_millis(200));
    let events = s.events();
    assert_program(&s.verdict(&[]), program);
    for (family, server, pid) in [("IPv4", server_v4, v4.pid()), ("IPv6", server_v6, v6.pid())] {
        let side = server_side(&events, server);
        assert!(side.len() >= 2 * CONNECTIONS, "{family}: {side:?}");
        for (_, event) in side {
            assert_eq!(event["pid"], pid, "{family}: {event}");
        }
    }
    v4.kill();
    v6.kill();
}

/// One IPv6 server on `[::]` without `IPV6_V6ONLY` (the kernel's default), taking IPv4
/// connections: their children are IPv4-mapped sockets of that listener, and carry its
/// process from their first event (the lookup falls back to the IPv6 wildcard).
fn dual_stack_listener_takes_ipv4(snapshot: bool, program: Program) {
    let port = 5304;
    let mut s = Scenario::prepare(true, &tag("od", snapshot, program), port).with(program);
    if !snapshot {
        s.record();
    }
    let listen = format!("[::]:{port}");
    let server = Peer::server(
        Some(s.layout.server_ns()),
        &["--listen", &listen, "--count", "0", "--behaviour", "answer"],
    );
    if snapshot {
        s.record();
    }
    let server_v4 = SocketAddr::new(s.layout.addrs(false).0, port);
    requests(&s, server_v4, CONNECTIONS);
    thread::sleep(Duration::from_millis(200));
    let events = s.events();
    assert_program(&s.verdict(&[]), program);
    let side = server_side(&events, server_v4);
    assert!(side.len() >= 4 * CONNECTIONS, "{side:?}");
    for (_, event) in side {
        assert_eq!(event["pid"], server.pid(), "{event}");
    }
    server.kill();
}

/// A server that forked a worker after `listen()`, both accepting, running before the
/// recording: the start snapshot finds both holding the listener.
fn shared_with_a_forked_worker(program: Program) {
    let port = 5302;
    let mut s = Scenario::prepare(true, &tag("of", false, program), port).with(program);
    let mut server = s.server(&["--count", "0", "--behaviour", "answer", "--workers", "1"]);
    let worker: u32 = server
        .wait_for("worker", LINE_TIMEOUT)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    s.record();
    let addr: SocketAddr = s.server_addr().parse().unwrap();
    requests(&s, addr, CONNECTIONS);
    let accepted = accepted_by(&mut server, CONNECTIONS);
    thread::sleep(Duration::from_millis(200));
    let verdict_events = s.events();
    assert_program(&s.verdict(&[]), program);
    let mut holders = vec![server.pid(), worker];
    holders.sort_unstable();
    let unknown = owners_are_right_or_candidates(&verdict_events, addr, &accepted, &holders);
    assert!(
        unknown >= CONNECTIONS,
        "the handshake runs before accept(): {unknown} events gave candidates"
    );
    server.kill();
}

/// Two processes listening with `SO_REUSEPORT` on one address, started during the
/// recording: the kernel picks a socket per connection, and nothing in the trace says
/// which until the accepting process acts.
fn so_reuseport_pair(program: Program) {
    let port = 5303;
    let mut s = Scenario::start_with(true, &tag("or", false, program), port, program);
    let args = ["--count", "0", "--behaviour", "answer", "--reuseport"];
    let mut first = s.server(&args);
    let mut second = s.server(&args);
    let addr: SocketAddr = s.server_addr().parse().unwrap();
    requests(&s, addr, CONNECTIONS);
    thread::sleep(Duration::from_millis(200));
    let events = s.events();
    assert_program(&s.verdict(&[]), program);
    let mut accepted = BTreeMap::new();
    for server in [&mut first, &mut second] {
        // Each process says what it accepted; the two account for every connection.
        while accepted.len() < CONNECTIONS {
            match server_line(server) {
                Some((port, pid)) => accepted.insert(port, pid),
                None => break,
            };
        }
    }
    assert_eq!(accepted.len(), CONNECTIONS, "{accepted:?}");
    let mut holders = vec![first.pid(), second.pid()];
    holders.sort_unstable();
    let unknown = owners_are_right_or_candidates(&events, addr, &accepted, &holders);
    assert!(unknown >= CONNECTIONS, "{unknown} events gave candidates");
    first.kill();
    second.kill();
}

/// A test's namespace names: apart for each variant, as tests run in parallel.
fn tag(base: &str, snapshot: bool, program: Program) -> String {
    let mut tag = base.to_owned();
    if snapshot {
        tag.push('s');
    }
    if program == Program::Classic {
        tag.push('c');
    }
    tag
}

/// The next `accepted` line of a server, if it prints one within a second.
fn server_line(server: &mut Peer) -> Option<(u16, u32)> {
    let line = server.try_wait_for("accepted", Duration::from_secs(1))?;
    let mut words = line.split_whitespace().skip(1);
    let peer: SocketAddr = words.next()?.parse().ok()?;
    Some((peer.port(), words.nth(1)?.parse().ok()?))
}

privileged_tests! {
    v4_and_v6_servers_on_one_port_started_during_the_recording:
        v4_and_v6_servers_on_one_port(false, Program::TpBtf);
    v4_and_v6_servers_on_one_port_started_before_the_recording:
        v4_and_v6_servers_on_one_port(true, Program::TpBtf);
    a_dual_stack_listener_started_during_the_recording_owns_its_ipv4_children:
        dual_stack_listener_takes_ipv4(false, Program::TpBtf);
    a_dual_stack_listener_started_before_the_recording_owns_its_ipv4_children:
        dual_stack_listener_takes_ipv4(true, Program::TpBtf);
    a_listener_shared_with_a_forked_worker: shared_with_a_forked_worker(Program::TpBtf);
    an_so_reuseport_pair_of_processes: so_reuseport_pair(Program::TpBtf);
}

/// The same with the classic tracepoint program: its events name the process from
/// `bpf_get_current_comm`, not the task's BTF.
mod classic {
    use tcpchurn_tests::Program::Classic;

    tcpchurn_tests::privileged_tests! {
        v4_and_v6_servers_on_one_port_started_during_the_recording:
            super::v4_and_v6_servers_on_one_port(false, Classic);
        v4_and_v6_servers_on_one_port_started_before_the_recording:
            super::v4_and_v6_servers_on_one_port(true, Classic);
        a_dual_stack_listener_started_during_the_recording_owns_its_ipv4_children:
            super::dual_stack_listener_takes_ipv4(false, Classic);
        a_listener_shared_with_a_forked_worker: super::shared_with_a_forked_worker(Classic);
        an_so_reuseport_pair_of_processes: super::so_reuseport_pair(Classic);
    }
}
