//! Containers and pods named from the node's own files, on real cgroups, real
//! processes and real network namespaces:
//!
//! - podman (Debian's, `--runtime runc --cgroup-manager cgroupfs`, explicit ulimits:
//!   this hybrid host's hard `RLIMIT_NOFILE` is below podman's default) runs a server
//!   and a client container, each in its own network namespace joined by a veth pair,
//!   and a `podman pod`; the resolver names each container and the pod from podman's
//!   state, by process, by cgroup id, by network namespace and by address.
//! - kubelet layouts: cgroups created with the exact paths the kubelet and the CRI
//!   runtimes make (both cgroup drivers, every QoS class, containerd and CRI-O ids,
//!   and a v1-only pod as on hybrid hosts), processes moved into them, each pod in its
//!   own network namespace with an address, and the kubelet's `/var/log/pods` tree and
//!   the runtimes' OCI `config.json` files under a temporary host root.
//! - the host stays the host, and what no layout explains stays unknown.
//!
//! Self-contained on purpose: only `require_root` comes from the harness.
#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test loudly"
)]

use std::{
    fs,
    net::IpAddr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tcpchurn::workload::{Identity, Qos, Runtime, Source, Workload, resolver::Resolver};
use tcpchurn_tests::require_root;

/// Runs a command that must succeed; returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

fn tag(name: &str) -> String {
    format!("tcw{name}{}", std::process::id())
}

/// A network namespace made with `ip netns`, deleted on drop.
struct Netns {
    name: String,
    inode: u32,
}

impl Netns {
    fn new(name: &str) -> Self {
        let name = tag(name);
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        let inode = u32::try_from(inode(&Path::new("/run/netns").join(&name))).unwrap();
        Self { name, inode }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `addr/32` on a veth pair inside the namespace (this kernel has no dummy
    /// interfaces): the pod's address.
    fn add_address(&self, addr: &str) {
        for args in pod_address_commands(addr) {
            run(Command::new("ip").args(["-n", &self.name]).args(args));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _status = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `ip` arguments giving a namespace `addr/32` on a veth pair of its own.
fn pod_address_commands(addr: &str) -> Vec<Vec<String>> {
    let cidr = format!("{addr}/32");
    [
        &[
            "link", "add", "pod0", "type", "veth", "peer", "name", "pod1",
        ][..],
        &["addr", "add", &cidr, "dev", "pod0"],
        &["link", "set", "pod0", "up"],
        &["link", "set", "pod1", "up"],
    ]
    .iter()
    .map(|args| args.iter().map(|a| (*a).to_owned()).collect())
    .collect()
}

/// A process killed on drop.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _killed = self.0.kill();
        let _waited = self.0.wait();
    }
}

/// `sleep` in `netns`, after joining every cgroup of `procs` (`cgroup.procs` files):
/// cgroups first, because `ip netns exec` remounts `/sys`.
fn sleeper(procs: &[PathBuf], netns: &Netns) -> Proc {
    let mut script = String::new();
    for p in procs {
        script.push_str(&format!("echo $$ > '{}' && ", p.display()));
    }
    script.push_str(&format!("exec ip netns exec {} sleep 600", netns.name));
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the process runs `sleep` in its namespace, with its cgroups.
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = format!("net:[{}]", netns.inode);
    while fs::read_link(format!("/proc/{pid}/ns/net"))
        .map(|l| l.to_string_lossy() != want)
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never entered {}",
            netns.name
        );
        thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

/// Cgroup directories made by a test, removed (deepest first) on drop.
#[derive(Default)]
struct Cgroups(Vec<PathBuf>);

impl Cgroups {
    fn make(&mut self, dir: &Path) -> PathBuf {
        let mut missing = Vec::new();
        let mut at = dir.to_path_buf();
        while !at.exists() {
            missing.push(at.clone());
            at = at.parent().unwrap().to_path_buf();
        }
        for d in missing.into_iter().rev() {
            fs::create_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            self.0.push(d);
        }
        dir.join("cgroup.procs")
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            // Killed processes leave their cgroup asynchronously.
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(tag(name));
        let _removed = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _removed = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic 64-hex-digit ids, distinct per seed and per test process.
fn hex_id(seed: u64) -> String {
    let mut x = seed ^ u64::from(std::process::id()).rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    (0..4)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect()
}

/// A UUID-shaped pod UID from a seed.
fn pod_uid(seed: u64) -> String {
    let h = hex_id(seed);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The cgroup v2 hierarchy of this host.
fn cgroup2() -> PathBuf {
    Resolver::new("/")
        .cgroup2_dir()
        .expect("no cgroup v2 hierarchy is mounted")
        .to_path_buf()
}

fn workload(identity: &Identity) -> &Workload {
    identity
        .workload()
        .unwrap_or_else(|| panic!("not a workload: {identity:?}"))
}

fn named(n: Option<&tcpchurn::workload::Named>) -> Option<(&str, Source)> {
    n.map(|n| (n.value.as_str(), n.source))
}

// ---------------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------------

const IMAGE: &str = "localhost/tcpchurn-busybox:test";

/// podman with this test's configuration: runc and the cgroupfs manager (no systemd
/// here), and explicit ulimits for every container including a pod's infra container
/// (podman's default `nofile` is above this host's hard limit).
fn podman(conf: &Path) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", conf)
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    cmd
}

fn podman_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("containers.conf");
    fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n",
    )
    .unwrap();
    conf
}

/// The test image: a rootfs of Debian's static busybox, imported (nothing pulled).
fn ensure_image(conf: &Path, dir: &Path) {
    if podman(conf)
        .args(["image", "exists", IMAGE])
        .status()
        .unwrap()
        .success()
    {
        return;
    }
    let rootfs = dir.join("rootfs");
    for sub in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
        fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "nc", "sleep", "true", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    run(podman(conf).arg("import").arg(&tar).arg(IMAGE));
}

/// Containers and pods removed on drop.
struct PodmanObjects<'a> {
    conf: &'a Path,
    containers: Vec<String>,
    pods: Vec<String>,
}

impl Drop for PodmanObjects<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let _status = podman(self.conf)
                .args(["rm", "-f", "-t", "0", c])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for p in &self.pods {
            let _status = podman(self.conf)
                .args(["pod", "rm", "-f", "-t", "0", p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn inspect(conf: &Path, what: &str, format: &str) -> String {
    run(podman(conf).args(["inspect", "-f", format, what]))
}

fn podman_available() -> bool {
    let found = Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && Path::new("/bin/busybox").exists();
    if !found {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "podman or busybox-static missing in CI: `cargo xtask setup` installs them"
        );
        eprintln!("SKIPPED: podman or busybox-static missing; run `cargo xtask setup`");
    }
    found
}

#[test]
fn podman_containers_and_pods_are_named_by_process_cgroup_netns_and_address() {
    if !require_root("podman_containers_and_pods_are_named") || !podman_available() {
        return;
    }
    let scratch = Scratch::new("podman");
    let conf = podman_conf(&scratch.0);
    ensure_image(&conf, &scratch.0);
    let (server_ns, client_ns) = (Netns::new("ps"), Netns::new("pc"));
    ip(&[
        "-n",
        &server_ns.name,
        "link",
        "add",
        "veth-s",
        "type",
        "veth",
        "peer",
        "name",
        "veth-c",
        "netns",
        &client_ns.name,
    ]);
    for (ns, dev, addr) in [
        (&server_ns, "veth-s", "10.81.0.1/24"),
        (&client_ns, "veth-c", "10.81.0.2/24"),
    ] {
        ip(&["-n", &ns.name, "addr", "add", addr, "dev", dev]);
        ip(&["-n", &ns.name, "link", "set", dev, "up"]);
    }
    let mut objects = PodmanObjects {
        conf: &conf,
        containers: Vec::new(),
        pods: Vec::new(),
    };
    let (server, client, pod, in_pod) = (tag("-srv"), tag("-cli"), tag("-pod"), tag("-inpod"));
    objects
        .containers
        .extend([server.clone(), client.clone(), in_pod.clone()]);
    objects.pods.push(pod.clone());
    // A server that accepts and closes at once, and a client reconnecting in a loop:
    // the ZooKeeper rejection loop in miniature, over TCP between the namespaces.
    run(podman(&conf).args([
        "run",
        "-d",
        "--name",
        &server,
        "--network",
        &format!("ns:{}", server_ns.path()),
        IMAGE,
        "nc",
        "-ll",
        "-p",
        "2181",
        "-e",
        "/bin/true",
    ]));
    run(podman(&conf).args([
        "run",
        "-d",
        "--name",
        &client,
        "--network",
        &format!("ns:{}", client_ns.path()),
        IMAGE,
        "sh",
        "-c",
        "while true; do nc 10.81.0.1 2181 </dev/null; sleep 0.2; done",
    ]));
    // A pod (its infra container runs catatonit, from the pause image podman builds
    // locally) with one container; its namespace gets an address from the test.
    run(podman(&conf).args(["pod", "create", "--name", &pod, "--network", "none"]));
    run(podman(&conf).args([
        "run", "-d", "--pod", &pod, "--name", &in_pod, IMAGE, "sleep", "600",
    ]));
    let infra_pid = inspect(&conf, &inspect_pod_infra(&conf, &pod), "{{.State.Pid}}");
    let pod_netns = u32::try_from(inode(Path::new(&format!("/proc/{infra_pid}/ns/net")))).unwrap();
    for args in pod_address_commands("10.81.1.1") {
        run(Command::new("nsenter")
            .args(["-t", &infra_pid, "-n", "ip"])
            .args(args));
    }

    let mut resolver = Resolver::new("/");
    let v2 = cgroup2();

    // Each plain container, by process, cgroup id, namespace and address.
    for (name, ns, addr) in [
        (&server, &server_ns, "10.81.0.1"),
        (&client, &client_ns, "10.81.0.2"),
    ] {
        let id = inspect(&conf, name, "{{.Id}}");
        let pid: u32 = inspect(&conf, name, "{{.State.Pid}}").parse().unwrap();
        let by_pid = resolver.process(pid);
        let w = workload(&by_pid);
        assert_eq!(w.runtime, Some(Runtime::Podman), "{w:?}");
        assert_eq!(w.id.as_deref(), Some(id.as_str()));
        assert_eq!(
            named(w.container.as_ref()),
            Some((name.as_str(), Source::PodmanState))
        );
        assert_eq!((&w.pod, &w.pod_uid), (&None, &None), "{w:?}");
        let cgroup_dir = v2.join(format!("libpod_parent/libpod-{id}"));
        assert_eq!(
            resolver.cgroup(inode(&cgroup_dir)),
            by_pid,
            "runc joins the v2 hierarchy too"
        );
        assert_eq!(
            resolver.netns(ns.inode),
            by_pid,
            "one container in its namespace"
        );
        assert_eq!(resolver.address(addr.parse().unwrap()), by_pid);
    }
    // The client talks to the server: the connection really crosses the namespaces.
    wait_for_connections(&server_ns, 2181);

    // The pod's container, and the pod by namespace and address.
    let pod_id = inspect_pod(&conf, &pod, "{{.Id}}");
    let pid: u32 = inspect(&conf, &in_pod, "{{.State.Pid}}").parse().unwrap();
    let by_pid = resolver.process(pid);
    let w = workload(&by_pid);
    assert_eq!(
        named(w.container.as_ref()),
        Some((in_pod.as_str(), Source::PodmanState))
    );
    assert_eq!(
        named(w.pod.as_ref()),
        Some((pod.as_str(), Source::PodmanState))
    );
    assert_eq!(
        w.pod_uid.as_deref(),
        Some(pod_id.as_str()),
        "the pod id, from the cgroup path"
    );
    for identity in [
        resolver.netns(pod_netns),
        resolver.address("10.81.1.1".parse().unwrap()),
    ] {
        let p = workload(&identity);
        assert_eq!(
            named(p.pod.as_ref()),
            Some((pod.as_str(), Source::PodmanState))
        );
        assert_eq!(
            (&p.container, &p.id),
            (&None, &None),
            "a pod's namespace names the pod"
        );
    }
    // The infra (pause) process names the pod, never a container.
    let infra = resolver.process(infra_pid.parse().unwrap());
    assert_eq!(workload(&infra).container, None);
    assert_eq!(
        named(workload(&infra).pod.as_ref()),
        Some((pod.as_str(), Source::PodmanState))
    );

    // The host is the host.
    assert_eq!(resolver.process(std::process::id()), Identity::Host);
    let own_netns = u32::try_from(inode(Path::new("/proc/self/ns/net"))).unwrap();
    assert_eq!(resolver.netns(own_netns), Identity::Host);
    assert_eq!(resolver.cgroup(inode(&v2)), Identity::Host, "the v2 root");
    drop(objects);
}

fn inspect_pod(conf: &Path, pod: &str, format: &str) -> String {
    run(podman(conf).args(["pod", "inspect", "-f", format, pod]))
}

fn inspect_pod_infra(conf: &Path, pod: &str) -> String {
    inspect_pod(conf, pod, "{{.InfraContainerID}}")
}

/// Waits until the server's namespace has seen connections to `port` (`ss` counts
/// sockets in TIME_WAIT and closing states too).
fn wait_for_connections(ns: &Netns, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sport = format!(":{port}");
        let out = ip(&[
            "netns", "exec", &ns.name, "ss", "-Htan", "sport", "=", &sport,
        ]);
        if out.lines().any(|l| !l.starts_with("LISTEN")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no connection to port {port} in {}",
            ns.name
        );
        thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------
// kubelet layouts
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Driver {
    Systemd,
    Cgroupfs,
}

/// Where a pod's names are written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Names {
    /// The runtime's OCI bundle and the kubelet's log tree.
    BundleAndLogs,
    /// Only the kubelet's log tree (`/var/log/pods`, `/var/log/containers`).
    LogsOnly,
}

#[derive(Debug)]
struct PodSpec {
    driver: Driver,
    qos: Qos,
    runtime: Runtime,
    namespace: &'static str,
    pod: &'static str,
    container: &'static str,
    address: &'static str,
    names: Names,
    /// Only in the v1 hierarchies (`name=systemd`, `memory`), as on a hybrid host whose
    /// runtime does not use the v2 hierarchy: the v2 cgroup says nothing.
    v1_only: bool,
}

const PODS: &[PodSpec] = &[
    PodSpec {
        driver: Driver::Systemd,
        qos: Qos::Burstable,
        runtime: Runtime::Containerd,
        namespace: "shop",
        pod: "dubbo-client-7d9f8c6b5-x2x4q",
        container: "app",
        address: "10.82.0.11",
        names: Names::BundleAndLogs,
        v1_only: false,
    },
    PodSpec {
        driver: Driver::Systemd,
        qos: Qos::BestEffort,
        runtime: Runtime::CriO,
        namespace: "infra",
        pod: "zookeeper-0",
        container: "zookeeper",
        address: "10.82.0.12",
        names: Names::BundleAndLogs,
        v1_only: false,
    },
    PodSpec {
        driver: Driver::Systemd,
        qos: Qos::Guaranteed,
        runtime: Runtime::Containerd,
        namespace: "kube-system",
        pod: "coredns-5d78c9869d-8xk2p",
        container: "coredns",
        address: "10.82.0.13",
        names: Names::BundleAndLogs,
        v1_only: false,
    },
    PodSpec {
        driver: Driver::Cgroupfs,
        qos: Qos::Burstable,
        runtime: Runtime::CriO,
        namespace: "monitoring",
        pod: "node-exporter-abcde",
        container: "node-exporter",
        address: "10.82.0.14",
        names: Names::BundleAndLogs,
        v1_only: false,
    },
    PodSpec {
        driver: Driver::Cgroupfs,
        qos: Qos::BestEffort,
        runtime: Runtime::Containerd,
        namespace: "shop",
        pod: "dubbo-provider-5c8d7-k9r2m",
        container: "provider",
        address: "10.82.0.15",
        names: Names::LogsOnly,
        v1_only: false,
    },
    PodSpec {
        driver: Driver::Cgroupfs,
        qos: Qos::Guaranteed,
        runtime: Runtime::Containerd,
        namespace: "infra",
        pod: "zookeeper-1",
        container: "zookeeper",
        address: "10.82.0.16",
        names: Names::BundleAndLogs,
        v1_only: false,
    },
    PodSpec {
        driver: Driver::Cgroupfs,
        qos: Qos::Burstable,
        runtime: Runtime::Containerd,
        namespace: "legacy",
        pod: "v1-app-0",
        container: "app",
        address: "10.82.0.17",
        names: Names::BundleAndLogs,
        v1_only: true,
    },
];

/// The pod's cgroup, relative to a hierarchy, as the kubelet names it:
/// kubernetes `pkg/kubelet/cm/cgroup_manager_linux.go` (`CgroupName.ToSystemd`:
/// `-` in a component becomes `_`, each level a `-`-joined `.slice`; `ToCgroupfs`),
/// `pod_container_manager_linux.go` (`"pod" + uid`) and
/// `qos_container_manager_linux.go` (guaranteed pods directly under `kubepods`).
fn pod_cgroup(spec: &PodSpec, uid: &str) -> String {
    let qos = match spec.qos {
        Qos::Guaranteed => None,
        Qos::Burstable => Some("burstable"),
        Qos::BestEffort => Some("besteffort"),
    };
    match (spec.driver, qos) {
        (Driver::Systemd, Some(q)) => format!(
            "kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{}.slice",
            uid.replace('-', "_")
        ),
        (Driver::Systemd, None) => {
            format!("kubepods.slice/kubepods-pod{}.slice", uid.replace('-', "_"))
        }
        (Driver::Cgroupfs, Some(q)) => format!("kubepods/{q}/pod{uid}"),
        (Driver::Cgroupfs, None) => format!("kubepods/pod{uid}"),
    }
}

/// A container's cgroup below its pod's: containerd v2.2.0
/// `internal/cri/server/helpers.go` `getCgroupsPath` (`<slice>:cri-containerd:<id>`,
/// which runc's systemd driver makes `cri-containerd-<id>.scope`; `<parent>/<id>`
/// with cgroupfs), CRI-O v1.34.0 `internal/config/cgmgr` (`crio-<id>.scope`,
/// `<parent>/crio-<id>`).
fn container_cgroup(spec: &PodSpec, id: &str) -> String {
    match (spec.driver, spec.runtime) {
        (Driver::Systemd, Runtime::Containerd) => format!("cri-containerd-{id}.scope"),
        (Driver::Systemd, Runtime::CriO) => format!("crio-{id}.scope"),
        (Driver::Cgroupfs, Runtime::CriO) => format!("crio-{id}"),
        (Driver::Cgroupfs, _) => id.to_owned(),
        (Driver::Systemd, r) => panic!("no kubelet layout for {r:?}"),
    }
}

/// The OCI bundle's `config.json`, where the runtime writes it, with the annotations
/// it writes: containerd v2.2.0 `internal/cri/annotations/annotations.go` in
/// `/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/`
/// (`core/runtime/v2/bundle.go`); CRI-O v1.34.0
/// `internal/factory/container/container.go` (the kubelet's labels, plus
/// `pkg/annotations/internal.go`) in containers/storage's
/// `/run/containers/storage/overlay-containers/<id>/userdata/`.
fn write_bundle(root: &Path, spec: &PodSpec, uid: &str, id: &str, sandbox_id: &str, sandbox: bool) {
    let (dir, annotations) = match spec.runtime {
        Runtime::Containerd => (
            root.join("run/containerd/io.containerd.runtime.v2.task/k8s.io")
                .join(id),
            serde_json::json!({
                "io.kubernetes.cri.container-type": if sandbox { "sandbox" } else { "container" },
                "io.kubernetes.cri.sandbox-id": sandbox_id,
                "io.kubernetes.cri.sandbox-name": spec.pod,
                "io.kubernetes.cri.sandbox-namespace": spec.namespace,
                "io.kubernetes.cri.sandbox-uid": uid,
                "io.kubernetes.cri.sandbox-log-directory":
                    format!("/var/log/pods/{}_{}_{uid}", spec.namespace, spec.pod),
                "io.kubernetes.cri.container-name": if sandbox { serde_json::Value::Null } else { spec.container.into() },
                "io.kubernetes.cri.image-name": "registry.example/app:1",
            }),
        ),
        Runtime::CriO => (
            root.join("run/containers/storage/overlay-containers")
                .join(id)
                .join("userdata"),
            serde_json::json!({
                "io.container.manager": "cri-o",
                "io.kubernetes.cri-o.ContainerType": if sandbox { "sandbox" } else { "container" },
                "io.kubernetes.cri-o.ContainerID": id,
                "io.kubernetes.cri-o.SandboxID": sandbox_id,
                "io.kubernetes.cri-o.IP.0": spec.address,
                "io.kubernetes.pod.name": spec.pod,
                "io.kubernetes.pod.namespace": spec.namespace,
                "io.kubernetes.pod.uid": uid,
                "io.kubernetes.container.name": if sandbox { "POD" } else { spec.container },
            }),
        ),
        r => panic!("no CRI bundle for {r:?}"),
    };
    // A `null` container name is no key at all, as containerd writes a sandbox's.
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.2.0",
        "process": { "args": [if sandbox { "/pause" } else { "/app" }] },
        "annotations": annotations,
    });
    fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// The kubelet's log tree: kubernetes `pkg/kubelet/kuberuntime/helpers.go`
/// (`BuildPodLogsDirectory`: `<namespace>_<pod>_<uid>`, `BuildContainerLogsDirectory`,
/// `<restart count>.log`) and `legacy.go` (`logSymlink`:
/// `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`).
fn write_kubelet_logs(root: &Path, spec: &PodSpec, uid: &str, id: &str) {
    let container_dir = root
        .join("var/log/pods")
        .join(format!("{}_{}_{uid}", spec.namespace, spec.pod))
        .join(spec.container);
    fs::create_dir_all(&container_dir).unwrap();
    fs::write(container_dir.join("0.log"), "").unwrap();
    let links = root.join("var/log/containers");
    fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink(
        container_dir.join("0.log"),
        links.join(format!(
            "{}_{}_{}-{id}.log",
            spec.pod, spec.namespace, spec.container
        )),
    )
    .unwrap();
}

struct Pod {
    uid: String,
    id: String,
    app_cgroup: PathBuf,
    sandbox_cgroup: PathBuf,
    app: Proc,
    _pause: Proc,
    netns: Netns,
}

#[test]
fn kubelet_layouts_name_pods_and_containers_from_the_nodes_files() {
    if !require_root("kubelet_layouts_name_pods_and_containers") {
        return;
    }
    let v2 = cgroup2();
    let v1 = [
        PathBuf::from("/sys/fs/cgroup/systemd"),
        PathBuf::from("/sys/fs/cgroup/memory"),
    ];
    let v1_mounted = v1.iter().all(|d| d.join("cgroup.procs").exists());
    let scratch = Scratch::new("kubelet");
    // The host root: the node's /proc and /sys, and the kubelet's and runtimes' files
    // written by this test.
    let root = scratch.0.join("host");
    fs::create_dir_all(root.join("sys/fs")).unwrap();
    std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
    std::os::unix::fs::symlink("/sys/fs/cgroup", root.join("sys/fs/cgroup")).unwrap();
    let mut cgroups = Cgroups::default();
    let mut pods = Vec::new();
    for (n, spec) in PODS.iter().enumerate() {
        if spec.v1_only && !v1_mounted {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI: the v1 hierarchies must be mounted"
            );
            eprintln!("no cgroup v1 hierarchies: the v1-only pod is not checked");
            continue;
        }
        let seed = n as u64 * 3;
        let (uid, id, sandbox_id) = (pod_uid(seed), hex_id(seed + 1), hex_id(seed + 2));
        let pod_dir = pod_cgroup(spec, &uid);
        let hierarchies: Vec<&PathBuf> = if spec.v1_only {
            v1.iter().collect()
        } else {
            vec![&v2]
        };
        let procs = |cgroups: &mut Cgroups, leaf: &str| -> Vec<PathBuf> {
            hierarchies
                .iter()
                .map(|h| cgroups.make(&h.join(&pod_dir).join(leaf)))
                .collect()
        };
        let app_procs = procs(&mut cgroups, &container_cgroup(spec, &id));
        let pause_procs = procs(&mut cgroups, &container_cgroup(spec, &sandbox_id));
        let netns = Netns::new(&format!("k{n}"));
        netns.add_address(spec.address);
        let pause = sleeper(&pause_procs, &netns);
        let app = sleeper(&app_procs, &netns);
        if spec.names == Names::BundleAndLogs {
            write_bundle(&root, spec, &uid, &id, &sandbox_id, false);
            write_bundle(&root, spec, &uid, &sandbox_id, &sandbox_id, true);
        }
        write_kubelet_logs(&root, spec, &uid, &id);
        let dir = |leaf: &str| hierarchies[0].join(&pod_dir).join(leaf);
        pods.push((
            spec,
            Pod {
                app_cgroup: dir(&container_cgroup(spec, &id)),
                sandbox_cgroup: dir(&container_cgroup(spec, &sandbox_id)),
                uid,
                id,
                app,
                _pause: pause,
                netns,
            },
        ));
    }
    // A CRI-O conmon next to a container: a runtime helper, not a container
    // (Tetragon v1.7.0 fsscan.go skips it); a cgroup no layout explains; both with a
    // process in them.
    let conmon_dir = v2
        .join(pod_cgroup(&PODS[1], &pods[1].1.uid))
        .join(format!("crio-conmon-{}.scope", pods[1].1.id));
    let odd_dir = v2.join(tag("-not-a-layout"));
    let helper_ns = Netns::new("kh");
    let conmon = sleeper(&[cgroups.make(&conmon_dir)], &helper_ns);
    let odd = sleeper(&[cgroups.make(&odd_dir)], &helper_ns);

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
        resolver.netns(helper_ns.inode),
        Identity::Unknown,
        "unknown processes only"
    );
    assert_eq!(
        resolver.address("10.82.9.9".parse().unwrap()),
        Identity::Unknown,
        "no such address"
    );
    drop((conmon, odd, pods));
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
    assert_eq!(w.id.as_deref(), Some(pod.id.as_str()), "{ctx}");
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
    assert_eq!(w.pod_uid.as_deref(), Some(pod.uid.as_str()), "{ctx}");
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
        // The v2 cgroup of these processes is the root: only /proc/PID/cgroup's v1
        // lines and the namespace name them.
        let v2_id = resolver.cgroup2_dir().map(inode).unwrap();
        assert_eq!(resolver.cgroup(v2_id), Identity::Host, "{ctx}");
    } else {
        assert_eq!(resolver.cgroup(inode(&pod.app_cgroup)), by_pid, "{ctx}");
        // The sandbox (pause) container names the pod, never a container.
        let sandbox = resolver.cgroup(inode(&pod.sandbox_cgroup));
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
    let by_netns = resolver.netns(pod.netns.inode);
    let p = workload(&by_netns);
    assert_eq!(
        p.pod_ref(),
        Some(format!("{}/{}", spec.namespace, spec.pod)),
        "{ctx}"
    );
    assert_eq!((&p.id, &p.container), (&None, &None), "{ctx}");
    let addr: IpAddr = spec.address.parse().unwrap();
    assert_eq!(resolver.address(addr), by_netns, "{ctx}");
}
