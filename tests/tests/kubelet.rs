//! Kubelet layouts on real cgroups, processes and network namespaces, with the
//! kubelet's and the runtimes' files under a temporary host root (`tests/src/kubelet.rs`
//! cites the code that writes each):
//!
//! - every layout (both cgroup drivers, every QoS class, containerd and CRI-O ids, a
//!   v1-only pod as on hybrid hosts) is named by the resolver, by process, cgroup id,
//!   namespace and address; what no layout explains stays unknown;
//! - the ZooKeeper loop on such a node: ZooKeeper in `infra/zookeeper-0`, the Dubbo
//!   client in `shop/dubbo-client-...`, recorded with `--host-root` (and once more with
//!   `--pod infra/zookeeper-0`), replayed naming the client pod and the ZooKeeper pod.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    fs,
    net::IpAddr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tcpchurn::{
    model::{Identity, Named, Qos, Runtime, Source, Workload},
    workload::resolver::Resolver,
};
use tcpchurn_harness::{
    Addresses, Process, Spawn, Topology,
    cgroup::{self, Cgroups},
    exec,
    runner::in_ci,
    zookeeper::{self, Placement, ZooKeeper},
};
use tcpchurn_tests::{
    Netns, Scratch,
    kubelet::{
        CLIENT_POD, Driver, Names, PodCgroups, PodIds, PodSpec, ZOOKEEPER_POD, host_root,
        place_pod, pod_cgroup, pod_cgroups, write_pod_names,
    },
    netns, privileged_tests, record, replay_events, replay_verdict, tcpchurn, verdict_pair,
};

privileged_tests! {
    kubelet_layouts_name_pods_and_containers_from_the_nodes_files: layouts();
    zookeeper_loop_on_a_kubelet_node_names_the_client_pod_and_the_zookeeper_pod:
        zookeeper_on_a_node();
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

fn netns_inode(ns: &Netns) -> u32 {
    u32::try_from(ns.inode).unwrap()
}

/// `addr/32` on a veth pair inside the namespace (this kernel has no dummy
/// interfaces): the pod's address.
fn add_pod_address(ns: &Netns, addr: &str) {
    let cidr = format!("{addr}/32");
    for args in [
        &[
            "link", "add", "pod0", "type", "veth", "peer", "name", "pod1",
        ][..],
        &["addr", "add", &cidr, "dev", "pod0"],
        &["link", "set", "pod0", "up"],
        &["link", "set", "pod1", "up"],
    ] {
        let mut full = vec!["-n", ns.name.as_str()];
        full.extend_from_slice(args);
        exec::ip(&full).unwrap();
    }
}

/// `sleep` in `netns`, after joining every cgroup in `dirs` (several for a v1-only
/// pod, one per hierarchy): cgroups first, because `ip netns exec` remounts `/sys`.
fn sleeper(dirs: &[PathBuf], ns: &Netns) -> Process {
    let mut script = String::new();
    for dir in dirs {
        script.push_str(&format!(
            "echo $$ > '{}' && ",
            dir.join("cgroup.procs").display()
        ));
    }
    script.push_str(&format!("exec ip netns exec {} sleep 600", ns.name));
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).stdin(Stdio::null());
    let process = Spawn::new("sleeper", cmd).start().unwrap();
    // Wait until it runs `sleep` in its namespace, with its cgroups.
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = format!("net:[{}]", ns.inode);
    while fs::read_link(format!("/proc/{}/ns/net", process.pid()))
        .map(|l| l.to_string_lossy() != want)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "never entered {}", ns.name);
        thread::sleep(Duration::from_millis(20));
    }
    process
}

// ---------------------------------------------------------------------------------
// Every layout, named by the resolver
// ---------------------------------------------------------------------------------

const fn spec(
    driver: Driver,
    qos: Qos,
    runtime: Runtime,
    (namespace, pod, container): (&'static str, &'static str, &'static str),
    address: &'static str,
    names: Names,
    v1_only: bool,
) -> PodSpec {
    PodSpec {
        driver,
        qos,
        runtime,
        namespace,
        pod,
        container,
        address,
        names,
        v1_only,
    }
}

const PODS: &[PodSpec] = &[
    CLIENT_POD,
    ZOOKEEPER_POD,
    spec(
        Driver::Systemd,
        Qos::Guaranteed,
        Runtime::Containerd,
        ("kube-system", "coredns-5d78c9869d-8xk2p", "coredns"),
        "10.82.0.13",
        Names::BundleAndLogs,
        false,
    ),
    spec(
        Driver::Cgroupfs,
        Qos::Burstable,
        Runtime::CriO,
        ("monitoring", "node-exporter-abcde", "node-exporter"),
        "10.82.0.14",
        Names::BundleAndLogs,
        false,
    ),
    spec(
        Driver::Cgroupfs,
        Qos::BestEffort,
        Runtime::Containerd,
        ("shop", "dubbo-provider-5c8d7-k9r2m", "provider"),
        "10.82.0.15",
        Names::LogsOnly,
        false,
    ),
    spec(
        Driver::Cgroupfs,
        Qos::Guaranteed,
        Runtime::Containerd,
        ("infra", "zookeeper-1", "zookeeper"),
        "10.82.0.16",
        Names::BundleAndLogs,
        false,
    ),
    spec(
        Driver::Cgroupfs,
        Qos::Burstable,
        Runtime::Containerd,
        ("legacy", "v1-app-0", "app"),
        "10.82.0.17",
        Names::BundleAndLogs,
        true,
    ),
];

/// One pod of the layouts test, running.
struct Pod {
    ids: PodIds,
    cgroups: PodCgroups,
    app: Process,
    _pause: Process,
    netns: Netns,
}

fn layouts() {
    let v2 = cgroup::v2_root().unwrap();
    let v1 = [
        PathBuf::from("/sys/fs/cgroup/systemd"),
        PathBuf::from("/sys/fs/cgroup/memory"),
    ];
    let v1_mounted = v1.iter().all(|d| d.join("cgroup.procs").exists());
    let scratch = Scratch::new("kubelet");
    let root = host_root(&scratch.0);
    let mut cgroups = Cgroups::default();
    let mut pods = Vec::new();
    for (n, spec) in PODS.iter().enumerate() {
        if spec.v1_only && !v1_mounted {
            assert!(!in_ci(), "CI: the v1 hierarchies must be mounted");
            eprintln!("no cgroup v1 hierarchies: the v1-only pod is not checked");
            continue;
        }
        let ids = PodIds::new(n as u64);
        let hierarchies: Vec<&PathBuf> = if spec.v1_only {
            v1.iter().collect()
        } else {
            vec![&v2]
        };
        write_pod_names(&root, spec, &ids);
        let placed: Vec<PodCgroups> = hierarchies
            .iter()
            .map(|h| pod_cgroups(&mut cgroups, h, spec, &ids))
            .collect();
        let netns = netns(&format!("k{n}"));
        add_pod_address(&netns, spec.address);
        let dirs = |pick: fn(&PodCgroups) -> &PathBuf| -> Vec<PathBuf> {
            placed.iter().map(|p| pick(p).clone()).collect()
        };
        let pause = sleeper(&dirs(|p| &p.sandbox), &netns);
        let app = sleeper(&dirs(|p| &p.app), &netns);
        pods.push((
            spec,
            Pod {
                ids,
                cgroups: placed[0].clone(),
                app,
                _pause: pause,
                netns,
            },
        ));
    }
    // A CRI-O conmon next to a container: a runtime helper, not a container
    // (Tetragon v1.7.0 fsscan.go skips it); a cgroup no layout explains; both with a
    // process in them.
    let zk = &pods[1].1;
    let conmon_dir = v2
        .join(pod_cgroup(&ZOOKEEPER_POD, &zk.ids.uid))
        .join(format!("crio-conmon-{}.scope", zk.ids.id));
    let odd_dir = v2.join(format!("tcw-not-a-layout-{}", std::process::id()));
    let helper_ns = netns("kh");
    let conmon = sleeper(&[cgroups.make(&conmon_dir).unwrap()], &helper_ns);
    let odd = sleeper(&[cgroups.make(&odd_dir).unwrap()], &helper_ns);

    let mut resolver = Resolver::new(&root);
    for (spec, pod) in &pods {
        check_pod(&mut resolver, spec, pod);
    }
    for (dir, proc) in [(&conmon_dir, &conmon), (&odd_dir, &odd)] {
        assert_eq!(
            resolver.cgroup(inode(dir)),
            Identity::Unknown,
            "{}",
            dir.display()
        );
        assert_eq!(resolver.process(proc.pid()), Identity::Unknown);
    }
    assert_eq!(
        resolver.netns(netns_inode(&helper_ns)),
        Identity::Unknown,
        "unknown processes only"
    );
    assert_eq!(
        resolver.address("10.82.9.9".parse().unwrap()),
        Identity::Unknown,
        "no such address"
    );
    // The host is the host.
    assert_eq!(resolver.process(std::process::id()), Identity::Host);
    drop((conmon, odd, pods));
}

fn workload(identity: &Identity) -> &Workload {
    identity
        .workload()
        .unwrap_or_else(|| panic!("not a workload: {identity:?}"))
}

fn named(n: Option<&Named>) -> Option<(&str, Source)> {
    n.map(|n| (n.value.as_str(), n.source))
}

fn check_pod(resolver: &mut Resolver, spec: &PodSpec, pod: &Pod) {
    let ctx = format!("{spec:?}");
    // Names of the pod and the container, and where they were read.
    let (pod_source, container_source) = match spec.names {
        Names::BundleAndLogs => (Source::OciConfig, Source::OciConfig),
        Names::LogsOnly => (Source::KubeletContainerLogs, Source::KubeletContainerLogs),
    };
    let by_pid = resolver.process(pod.app.pid());
    let w = workload(&by_pid);
    assert_eq!(w.id.as_deref(), Some(pod.ids.id.as_str()), "{ctx}");
    assert_eq!(
        named(w.container.as_ref()),
        Some((spec.container, container_source)),
        "{ctx}"
    );
    assert_eq!(named(w.pod.as_ref()), Some((spec.pod, pod_source)), "{ctx}");
    assert_eq!(
        named(w.namespace.as_ref()),
        Some((spec.namespace, pod_source)),
        "{ctx}"
    );
    assert_eq!(w.pod_uid.as_deref(), Some(pod.ids.uid.as_str()), "{ctx}");
    assert_eq!(w.qos, Some(spec.qos), "{ctx}");
    // The runtime: from the bundle, or from the cgroup name where it says (a bare
    // cgroupfs id names no runtime, and none is guessed).
    let runtime = match (spec.names, spec.driver, spec.runtime) {
        (Names::LogsOnly, Driver::Cgroupfs, Runtime::Containerd) => None,
        _ => Some(spec.runtime),
    };
    assert_eq!(w.runtime, runtime, "{ctx}");
    let pod_only = Identity::Workload(w.pod_only());
    if spec.v1_only {
        // The v2 cgroup of these processes is the root, which on a hybrid host names
        // nothing: only /proc/PID/cgroup's v1 lines and the namespace name them.
        let v2_id = resolver.cgroup2_dir().map(inode).unwrap();
        assert!(resolver.is_hybrid(), "{ctx}");
        assert_eq!(resolver.cgroup(v2_id), Identity::Unknown, "{ctx}");
    } else {
        assert_eq!(resolver.cgroup(inode(&pod.cgroups.app)), by_pid, "{ctx}");
        // The sandbox (pause) container names the pod, never a container.
        let sandbox = resolver.cgroup(inode(&pod.cgroups.sandbox));
        if spec.names == Names::BundleAndLogs {
            assert_eq!(sandbox, pod_only, "{ctx}");
        } else {
            // Without its bundle nothing says the sandbox is one: the id is known, the
            // container name is not, and the pod is named from its UID.
            let s = workload(&sandbox);
            assert_eq!(
                (s.container.as_ref(), named(s.pod.as_ref())),
                (None, Some((spec.pod, Source::KubeletPodLogs))),
                "{ctx}"
            );
        }
    }
    // The pod's namespace and address name the pod.
    let by_netns = resolver.netns(netns_inode(&pod.netns));
    let p = workload(&by_netns);
    assert_eq!(p.pod_ref(), Some(spec.pod_ref()), "{ctx}");
    assert_eq!((&p.id, &p.container), (&None, &None), "{ctx}");
    let addr: IpAddr = spec.address.parse().unwrap();
    assert_eq!(resolver.address(addr), by_netns, "{ctx}");
}

// ---------------------------------------------------------------------------------
// The ZooKeeper loop on a Kubernetes-shaped node
// ---------------------------------------------------------------------------------

/// `10.59.0.1` is ZooKeeper's pod, `10.59.0.2` the client's.
const SUBNET: u8 = 59;
const MAX_CLIENT_CNXNS: usize = 2;
/// Two more sessions than ZooKeeper takes: they loop.
const SESSIONS: usize = 4;
const RECORD_FOR: Duration = Duration::from_secs(12);

/// What the container object of a pod's container says.
fn cri_container(spec: &PodSpec, ids: &PodIds) -> Value {
    json!({
        "namespace": spec.namespace,
        "pod": spec.pod,
        "container": spec.container,
        "id": ids.id,
        "runtime": spec.runtime.name(),
    })
}

fn zookeeper_on_a_node() {
    zookeeper::install().unwrap();
    let scratch = Scratch::new("kubelet-zk");
    let root = host_root(&scratch.0);
    let v2 = cgroup::v2_root().unwrap();
    let mut cgroups = Cgroups::default();
    // The two pods' namespaces, joined by veth as the node's pod network would.
    let topology = Topology::create("kz", Addresses::subnet(SUBNET)).unwrap();
    let (client_ids, zk_ids) = (PodIds::new(100), PodIds::new(101));
    let client = place_pod(&mut cgroups, &v2, &root, &CLIENT_POD, &client_ids);
    let zk = place_pod(&mut cgroups, &v2, &root, &ZOOKEEPER_POD, &zk_ids);
    // Each pod's sandbox holds its namespace, as the pause container does.
    let pause = |dir: &PathBuf, ns: &Netns| {
        let mut cmd = ns.command("sleep");
        cmd.arg("600");
        Spawn::new("pause", cmd).in_cgroup(dir).start().unwrap()
    };
    let _pauses = [
        pause(&zk.sandbox, &topology.server),
        pause(&client.sandbox, &topology.client),
    ];
    let zookeeper = ZooKeeper::prepare(&scratch.path("zk"))
        .unwrap()
        .placed(Placement {
            server: Some(zk.app.clone()),
            clients: Some(client.app.clone()),
        });
    let server = zookeeper.start_server(&topology, MAX_CLIENT_CNXNS).unwrap();

    let mut args = topology.netns_args();
    args.extend(["--host-root".to_owned(), root.display().to_string()]);
    let mut zk_only = args.clone();
    zk_only.extend(["--pod".to_owned(), ZOOKEEPER_POD.pod_ref()]);
    let (node_trace, zk_trace) = (scratch.path("node.trace"), scratch.path("zk.trace"));
    let recorders = [record(&node_trace, &args), record(&zk_trace, &zk_only)];
    let started = Instant::now();
    let application = zookeeper
        .start_sessions(&topology, "dubbo-client", SESSIONS)
        .unwrap();
    thread::sleep(RECORD_FOR.saturating_sub(started.elapsed()));
    for recorder in recorders {
        recorder.stop().unwrap().ensure_success().unwrap();
    }
    drop((application, server));

    let (client_pod, zk_pod) = (CLIENT_POD.pod_ref(), ZOOKEEPER_POD.pod_ref());
    let zk_addr = format!("{}:{}", topology.server_v4, zookeeper::PORT);
    let client_ip = topology.client_v4.to_string();

    // The whole node: the loop, between the two pods, each end its container.
    let verdict = replay_verdict(&node_trace, &["--connections"]);
    let pair = verdict_pair(&verdict, &client_ip, &zk_addr);
    assert_eq!(pair["reconnect_loop"], true, "{pair:#}");
    assert_eq!(pair["client_pod"], client_pod.as_str());
    assert_eq!(pair["server_pod"], zk_pod.as_str());
    let rows: Vec<&Value> = verdict["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["server"] == zk_addr.as_str())
        .collect();
    assert!(rows.len() > SESSIONS, "{} connections", rows.len());
    for row in rows {
        assert_eq!(
            row["client_container"],
            cri_container(&CLIENT_POD, &client_ids)
        );
        assert_eq!(
            row["server_container"],
            cri_container(&ZOOKEEPER_POD, &zk_ids)
        );
    }
    let text = tcpchurn(&["replay", node_trace.to_str().unwrap()]);
    let text = String::from_utf8(text.stdout).unwrap();
    for label in [
        format!("{client_ip} ({client_pod}/app) -> {zk_addr}"),
        format!("({zk_pod}/zookeeper): reconnect loop"),
    ] {
        assert!(text.contains(&label), "{label} missing:\n{text}");
    }
    let only = |flag: &str, value: &str| replay_verdict(&node_trace, &[flag, value]);
    assert_eq!(
        verdict_pair(&only("--pod", &zk_pod), &client_ip, &zk_addr)["reconnect_loop"],
        true
    );
    assert_eq!(only("--pod", "shop/no-such-pod")["connections_counted"], 0);
    assert_eq!(
        only("--container", "zookeeper")["pairs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Recorded with --pod infra/zookeeper-0: only ZooKeeper's sockets, and the client
    // pod named by its address.
    let events = replay_events(&zk_trace);
    let sockets: Vec<&Value> = events.iter().filter(|e| e["kind"] != "lost").collect();
    assert!(!sockets.is_empty());
    for e in sockets {
        assert_eq!(e["netns"], topology.server.inode, "{e}");
        // A socket with no cgroup (a TIME_WAIT socket of the end snapshot) is named by
        // its namespace: the pod, not the container.
        if e["cgroup"] == 0 {
            assert_eq!(e["container"]["pod"], ZOOKEEPER_POD.pod, "{e}");
        } else {
            assert_eq!(
                e["container"],
                cri_container(&ZOOKEEPER_POD, &zk_ids),
                "{e}"
            );
        }
    }
    let verdict = replay_verdict(&zk_trace, &["--connections"]);
    let pair = verdict_pair(&verdict, &client_ip, &zk_addr);
    assert_eq!(
        pair["client_pod"],
        client_pod.as_str(),
        "by its address: {pair:#}"
    );
    assert_eq!(pair["server_pod"], zk_pod.as_str());
    let row = &verdict["connections"][0];
    assert_eq!(
        row["client_container"],
        json!({"namespace": "shop", "pod": CLIENT_POD.pod, "container": null, "id": null,
               "runtime": "containerd"}),
        "a pod's address names the pod, not a container"
    );
    drop(cgroups);
}
