//! Unknown stays unknown: a process in no container is the host, and a cgroup no known
//! layout explains names nothing, in the trace's names and in every replay output.
//! (Containers and pods: `containers.rs` with podman, `kubelet.rs` with the kubelet's
//! layouts.)
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::os::unix::fs::MetadataExt as _;

use serde_json::Value;
use tcpchurn::model::{Identity, WorkloadKey};
use tcpchurn_harness::cgroup::{self, Cgroups};
use tcpchurn_tests::{
    Peer, Scratch, netns, privileged_tests, record, replay_events, replay_verdict, tcpchurn,
    trace_names,
};

privileged_tests! {
    a_process_in_no_container_is_the_host_and_an_unexplained_cgroup_is_unknown:
        host_and_unknown();
}

/// Connections over loopback in two namespaces: one by host processes, one by
/// processes in a cgroup no layout explains.
fn host_and_unknown() {
    let v2 = cgroup::v2_root().unwrap();
    let mut cgroups = Cgroups::default();
    let odd = cgroups
        .make(&v2.join(format!("tcw-not-a-layout-{}", std::process::id())))
        .unwrap();
    let (host_ns, odd_ns) = (netns("wl-host"), netns("wl-odd"));
    let scratch = Scratch::new("workload");
    let trace = scratch.path("t.trace");
    let mut args = host_ns.netns_args();
    args.extend(odd_ns.netns_args());
    // Names are resolved when a block closes: blocks close often enough to find the
    // clients alive.
    args.extend(["--flush-interval".to_owned(), "100ms".to_owned()]);
    let recorder = record(&trace, &args);
    let listen = |port| ["--listen", port, "--count", "5", "--behaviour", "close"];
    let connect = |port| {
        [
            "client",
            "--connect",
            port,
            "--count",
            "5",
            "--interval-ms",
            "300",
        ]
    };
    let host_server = Peer::server(Some(&host_ns), &listen("127.0.0.1:7101"));
    let odd_server = Peer::server_in(Some(&odd_ns), Some(&odd), &listen("127.0.0.1:7102"));
    let host_client = Peer::spawn_in(Some(&host_ns), None, &connect("127.0.0.1:7101"));
    let odd_client = Peer::spawn_in(Some(&odd_ns), Some(&odd), &connect("127.0.0.1:7102"));
    let (host_pid, odd_pid) = (host_client.pid(), odd_client.pid());
    for peer in [host_client, odd_client, host_server, odd_server] {
        peer.wait();
    }
    recorder.stop().unwrap().ensure_success().unwrap();

    // The trace's names: the host's processes and namespace are the host's; the
    // unexplained cgroup, its processes and its namespace are named nothing.
    let names = trace_names(&trace);
    assert_eq!(
        names.get(&WorkloadKey::Process(host_pid)),
        Some(&Identity::Host),
        "{names:#?}"
    );
    assert_eq!(
        names.get(&WorkloadKey::Netns(u32::try_from(host_ns.inode).unwrap())),
        Some(&Identity::Host),
        "a namespace only the host's processes hold"
    );
    let odd_id = std::fs::metadata(&odd).unwrap().ino();
    for key in [
        WorkloadKey::Cgroup(odd_id),
        WorkloadKey::Process(odd_pid),
        WorkloadKey::Netns(u32::try_from(odd_ns.inode).unwrap()),
    ] {
        assert!(
            names.get(&key).is_none_or(|i| *i == Identity::Unknown),
            "{key:?} was named: {names:#?}"
        );
    }
    assert!(
        names.values().all(|i| i.workload().is_none()),
        "no workload at all: {names:#?}"
    );

    // Every output: no container, no pod.
    let verdict = replay_verdict(&trace, &["--connections"]);
    let rows = verdict["connections"].as_array().unwrap();
    assert!(rows.len() >= 10, "{verdict:#}");
    for row in rows {
        assert!(row["client_container"].is_null() && row["server_container"].is_null());
    }
    for pair in verdict["pairs"].as_array().unwrap() {
        assert!(pair["client_pod"].is_null() && pair["server_pod"].is_null());
    }
    let events = replay_events(&trace);
    assert!(
        events
            .iter()
            .filter(|e| e["kind"] != "lost")
            .all(|e| e.get("container") == Some(&Value::Null)),
        "an event named a container"
    );
    let text = tcpchurn(&["replay", trace.to_str().unwrap(), "--connections"]);
    let text = String::from_utf8(text.stdout).unwrap();
    // Pair lines name no workload next to the addresses, rows have no line of names.
    for port in [7101, 7102] {
        assert!(
            text.contains(&format!("  127.0.0.1 -> 127.0.0.1:{port}: ")),
            "{text}"
        );
    }
    assert!(!text.contains(" -> -") && !text.contains("- -> "), "{text}");
}
