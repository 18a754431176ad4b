//! Which container and pod a socket belongs to, named from the node's own files.
//!
//! Kubernetes nodes name nothing in the kernel: a socket carries a cgroup id and a
//! network namespace inode. The kubelet and the container runtimes leave enough on
//! disk to turn those into `namespace/pod` and a container name without asking any
//! API server:
//!
//! - the cgroup path ([`cgroup_path`]) says which runtime made the container, its id,
//!   and for kubelet-managed pods the pod UID and QoS class;
//! - the runtime's OCI bundle ([`oci`]) carries the CRI annotations (pod name,
//!   namespace, container name, sandbox or not);
//! - the kubelet's log tree ([`kubelet_logs`]) names pods by UID and containers by id;
//! - podman's own state ([`podman`], [`bolt`]) names containers and pods.
//!
//! [`catalog`] looks names up in those files; [`resolver`] maps cgroup ids, processes,
//! network namespaces and pod addresses to an [`Identity`], once per new key, with
//! bounded caches. Everything is read below a configurable host root.
//!
//! A name is only ever reported with the file it came from ([`Source`]); a path no
//! known layout explains is [`Identity::Unknown`], never a guess.

pub mod bolt;
pub mod bounded;
pub mod catalog;
pub mod cgroup_path;
pub mod kubelet_logs;
pub mod netns_addrs;
pub mod oci;
pub mod podman;
pub mod resolver;

use serde::Serialize;

/// The runtime that created a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
}

impl Runtime {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }
}

/// A pod's Kubernetes QoS class, as its cgroup placement says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Guaranteed => "guaranteed",
            Self::Burstable => "burstable",
            Self::BestEffort => "besteffort",
        }
    }
}

/// Where a name was read. Stored next to every name so a reader of the trace knows
/// how far to trust it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The cgroup path itself (runtime, container id, pod UID, QoS).
    CgroupPath,
    /// Annotations of the container's OCI bundle `config.json`.
    OciConfig,
    /// The kubelet's `/var/log/pods/<namespace>_<pod>_<uid>` directory.
    KubeletPodLogs,
    /// The kubelet's `/var/log/containers/<pod>_<namespace>_<container>-<id>.log` link.
    KubeletContainerLogs,
    /// containers/storage's `containers.json` (podman, CRI-O).
    ContainerStorage,
    /// podman's libpod state database.
    PodmanState,
    /// Docker's `config.v2.json`.
    DockerConfig,
}

impl Source {
    pub const fn name(self) -> &'static str {
        match self {
            Self::CgroupPath => "cgroup-path",
            Self::OciConfig => "oci-config",
            Self::KubeletPodLogs => "kubelet-pod-logs",
            Self::KubeletContainerLogs => "kubelet-container-logs",
            Self::ContainerStorage => "container-storage",
            Self::PodmanState => "podman-state",
            Self::DockerConfig => "docker-config",
        }
    }
}

/// A name and the file it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Named {
    pub value: String,
    pub source: Source,
}

impl Named {
    pub fn new(value: impl Into<String>, source: Source) -> Self {
        Self {
            value: value.into(),
            source,
        }
    }
}

/// A container or a pod, with whatever could be named. Every field is optional: what
/// the node's files do not say stays `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Workload {
    pub runtime: Option<Runtime>,
    /// The container id (64 hex digits for every runtime here). `None` for a pod as a
    /// whole (a network namespace shared by its containers, a pod-level cgroup).
    pub id: Option<String>,
    pub container: Option<Named>,
    pub pod: Option<Named>,
    pub namespace: Option<Named>,
    /// The Kubernetes pod UID (with dashes), or podman's pod id.
    pub pod_uid: Option<String>,
    pub qos: Option<Qos>,
}

impl Workload {
    /// `namespace/pod` when both are known.
    pub fn pod_ref(&self) -> Option<String> {
        match (&self.namespace, &self.pod) {
            (Some(ns), Some(pod)) => Some(format!("{}/{}", ns.value, pod.value)),
            _ => None,
        }
    }

    /// The same pod, without the container: what a network namespace shared by all of
    /// a pod's containers can say.
    pub fn pod_only(&self) -> Self {
        Self {
            runtime: self.runtime,
            id: None,
            container: None,
            pod: self.pod.clone(),
            namespace: self.namespace.clone(),
            pod_uid: self.pod_uid.clone(),
            qos: self.qos,
        }
    }

    /// True when this names a pod (by name or UID).
    pub fn has_pod(&self) -> bool {
        self.pod.is_some() || self.pod_uid.is_some()
    }

    /// A short human label: `namespace/pod/container`, `namespace/pod`, the container
    /// name, or the first 12 digits of the id.
    pub fn label(&self) -> String {
        let short_id = self
            .id
            .as_deref()
            .map(|id| id.chars().take(12).collect::<String>());
        match (self.pod_ref(), &self.container, short_id) {
            (Some(pod), Some(c), _) => format!("{pod}/{}", c.value),
            (Some(pod), None, _) => pod,
            (None, Some(c), _) => c.value.clone(),
            (None, None, Some(id)) => id,
            (None, None, None) => self
                .pod_uid
                .as_deref()
                .map_or_else(|| "-".to_owned(), |uid| format!("pod {uid}")),
        }
    }
}

/// What a cgroup, a process, a network namespace or an address belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Identity {
    /// In no container: the host's own processes and services (the root cgroup,
    /// `init.scope`, `system.slice/*.service`, user sessions, the host's network
    /// namespace).
    Host,
    /// A container or a pod.
    Workload(Workload),
    /// Nothing known explains it. Never replaced by a guess.
    Unknown,
}

impl Identity {
    pub const fn workload(&self) -> Option<&Workload> {
        match self {
            Self::Workload(w) => Some(w),
            Self::Host | Self::Unknown => None,
        }
    }
}
