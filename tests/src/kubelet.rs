//! A Kubernetes-shaped node without Kubernetes: pod and container cgroups with the
//! exact paths the kubelet and the CRI runtimes make, the runtimes' OCI `config.json`
//! files and the kubelet's log tree, under a host root that shows the real `/proc` and
//! cgroup hierarchies. Every shape cites the code that writes it.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use tcpchurn::model::{Qos, Runtime};
use tcpchurn_harness::cgroup::Cgroups;

/// The kubelet's cgroup driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Systemd,
    Cgroupfs,
}

/// Where a pod's names are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// The runtime's OCI bundle and the kubelet's log tree.
    BundleAndLogs,
    /// Only the kubelet's log tree (`/var/log/pods`, `/var/log/containers`).
    LogsOnly,
}

#[derive(Debug)]
pub struct PodSpec {
    pub driver: Driver,
    pub qos: Qos,
    pub runtime: Runtime,
    pub namespace: &'static str,
    pub pod: &'static str,
    pub container: &'static str,
    pub address: &'static str,
    pub names: Names,
    /// Only in the v1 hierarchies (`name=systemd`, `memory`), as on a hybrid host whose
    /// runtime does not use the v2 hierarchy: the v2 cgroup says nothing.
    pub v1_only: bool,
}

impl PodSpec {
    /// `namespace/pod`.
    pub fn pod_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }
}

/// The Dubbo client's pod (containerd, systemd driver, burstable).
pub const CLIENT_POD: PodSpec = PodSpec {
    driver: Driver::Systemd,
    qos: Qos::Burstable,
    runtime: Runtime::Containerd,
    namespace: "shop",
    pod: "dubbo-client-7d9f8c6b5-x2x4q",
    container: "app",
    address: "10.82.0.11",
    names: Names::BundleAndLogs,
    v1_only: false,
};

/// ZooKeeper's pod (CRI-O, systemd driver, best effort).
pub const ZOOKEEPER_POD: PodSpec = PodSpec {
    driver: Driver::Systemd,
    qos: Qos::BestEffort,
    runtime: Runtime::CriO,
    namespace: "infra",
    pod: "zookeeper-0",
    container: "zookeeper",
    address: "10.82.0.12",
    names: Names::BundleAndLogs,
    v1_only: false,
};

/// Deterministic 64-hex-digit ids, distinct per seed and per test process.
pub fn hex_id(seed: u64) -> String {
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

/// The ids of one pod: its UID (UUID-shaped), its container's and its sandbox's.
#[derive(Clone, Debug)]
pub struct PodIds {
    pub uid: String,
    pub id: String,
    pub sandbox_id: String,
}

impl PodIds {
    pub fn new(seed: u64) -> Self {
        let h = hex_id(seed * 3);
        Self {
            uid: format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            ),
            id: hex_id(seed * 3 + 1),
            sandbox_id: hex_id(seed * 3 + 2),
        }
    }
}

/// The pod's cgroup, relative to a hierarchy, as the kubelet names it:
/// kubernetes `pkg/kubelet/cm/cgroup_manager_linux.go` (`CgroupName.ToSystemd`:
/// `-` in a component becomes `_`, each level a `-`-joined `.slice`; `ToCgroupfs`),
/// `pod_container_manager_linux.go` (`"pod" + uid`) and
/// `qos_container_manager_linux.go` (guaranteed pods directly under `kubepods`).
pub fn pod_cgroup(spec: &PodSpec, uid: &str) -> String {
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
pub fn container_cgroup(spec: &PodSpec, id: &str) -> String {
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
pub fn write_bundle(root: &Path, spec: &PodSpec, ids: &PodIds, sandbox: bool) {
    let (uid, sandbox_id) = (&ids.uid, &ids.sandbox_id);
    let id = if sandbox { sandbox_id } else { &ids.id };
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
pub fn write_kubelet_logs(root: &Path, spec: &PodSpec, ids: &PodIds) {
    let container_dir = root
        .join("var/log/pods")
        .join(format!("{}_{}_{}", spec.namespace, spec.pod, ids.uid))
        .join(spec.container);
    fs::create_dir_all(&container_dir).unwrap();
    fs::write(container_dir.join("0.log"), "").unwrap();
    let links = root.join("var/log/containers");
    fs::create_dir_all(&links).unwrap();
    symlink(
        container_dir.join("0.log"),
        links.join(format!(
            "{}_{}_{}-{}.log",
            spec.pod, spec.namespace, spec.container, ids.id
        )),
    )
    .unwrap();
}

/// A host root in `dir`: the node's `/proc` and cgroup hierarchies through symbolic
/// links, and the runtimes' and the kubelet's files written by the test.
pub fn host_root(dir: &Path) -> PathBuf {
    let root = dir.join("host");
    fs::create_dir_all(root.join("sys/fs")).unwrap();
    symlink("/proc", root.join("proc")).unwrap();
    symlink("/sys/fs/cgroup", root.join("sys/fs/cgroup")).unwrap();
    root
}

/// The cgroup directories of one pod in one hierarchy.
#[derive(Clone, Debug)]
pub struct PodCgroups {
    pub app: PathBuf,
    pub sandbox: PathBuf,
}

/// Makes a pod's container and sandbox cgroups in `hierarchy`.
pub fn pod_cgroups(
    cgroups: &mut Cgroups,
    hierarchy: &Path,
    spec: &PodSpec,
    ids: &PodIds,
) -> PodCgroups {
    let pod_dir = hierarchy.join(pod_cgroup(spec, &ids.uid));
    PodCgroups {
        app: cgroups
            .make(&pod_dir.join(container_cgroup(spec, &ids.id)))
            .unwrap(),
        sandbox: cgroups
            .make(&pod_dir.join(container_cgroup(spec, &ids.sandbox_id)))
            .unwrap(),
    }
}

/// Writes a pod's names below `root`: its bundles as the spec says, and the kubelet's
/// logs.
pub fn write_pod_names(root: &Path, spec: &PodSpec, ids: &PodIds) {
    if spec.names == Names::BundleAndLogs {
        write_bundle(root, spec, ids, false);
        write_bundle(root, spec, ids, true);
    }
    write_kubelet_logs(root, spec, ids);
}

/// A pod in `hierarchy` with its names below `root`.
pub fn place_pod(
    cgroups: &mut Cgroups,
    hierarchy: &Path,
    root: &Path,
    spec: &PodSpec,
    ids: &PodIds,
) -> PodCgroups {
    write_pod_names(root, spec, ids);
    pod_cgroups(cgroups, hierarchy, spec, ids)
}
