//! What a socket belongs to: the host, a container or a pod, with every name and the
//! file it was read from. The resolver (`crate::workload`) finds these on the node;
//! the trace carries them (`crate::trace`, the `Workloads` block); the analysis
//! attaches them to connections. A name the node's files do not give stays `None`.

use serde::{Deserialize, Serialize};

/// The runtime that created a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Workload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
    /// The container id (64 hex digits for every runtime here). `None` for a pod as a
    /// whole (a network namespace shared by its containers, a pod-level cgroup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Named>,
    /// The Kubernetes pod UID (with dashes), or podman's pod id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
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

    /// The pod as people name it: `namespace/pod`, or the pod's name alone where pods
    /// have no namespace (podman); `None` when its name is unknown.
    pub fn pod_label(&self) -> Option<String> {
        let pod = &self.pod.as_ref()?.value;
        Some(match &self.namespace {
            Some(ns) => format!("{}/{pod}", ns.value),
            None => pod.clone(),
        })
    }

    /// A short human label: `namespace/pod/container`, `namespace/pod`, the container
    /// name, or the first 12 digits of the id.
    pub fn label(&self) -> String {
        let short_id = self
            .id
            .as_deref()
            .map(|id| id.chars().take(12).collect::<String>());
        match (self.pod_label(), &self.container, short_id) {
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn named(value: &str) -> Option<Named> {
        Some(Named::new(value, Source::OciConfig))
    }

    #[test]
    fn labels_name_what_is_known() {
        let mut w = Workload {
            id: Some("0123456789abcdef".repeat(4)),
            ..Workload::default()
        };
        assert_eq!(w.label(), "0123456789ab");
        w.container = named("app");
        assert_eq!(w.label(), "app");
        w.pod = named("web-0");
        assert_eq!(
            (w.label(), w.pod_label()),
            ("web-0/app".into(), Some("web-0".into()))
        );
        w.namespace = named("shop");
        assert_eq!(w.label(), "shop/web-0/app");
        assert_eq!(w.pod_only().label(), "shop/web-0");
        assert_eq!(Workload::default().label(), "-");
    }

    #[test]
    fn identities_read_back_what_they_wrote_and_skip_unknown_names() {
        let w = Identity::Workload(Workload {
            runtime: Some(Runtime::CriO),
            pod: named("zk-0"),
            ..Workload::default()
        });
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"workload","runtime":"cri-o","pod":{"value":"zk-0","source":"oci-config"}}"#
        );
        assert_eq!(serde_json::from_str::<Identity>(&json).unwrap(), w);
        assert_eq!(
            serde_json::from_str::<Identity>(r#"{"kind":"host","future":1}"#).unwrap(),
            Identity::Host
        );
    }
}
