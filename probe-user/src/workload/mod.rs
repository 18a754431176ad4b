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

pub use crate::model::workload::{Identity, Named, Qos, Runtime, Source, Workload};
