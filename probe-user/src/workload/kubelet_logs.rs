//! The kubelet's log tree: it names every pod and container on the node, whatever the
//! runtime.
//!
//! - `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`: kubernetes
//!   `pkg/kubelet/kuberuntime/helpers.go` `BuildPodLogsDirectory` (joined with `_`)
//!   and `BuildContainerLogsDirectory`.
//! - `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`, a link to
//!   the file above: `pkg/kubelet/kuberuntime/legacy.go` `legacyLogSymlink` /
//!   `logSymlink` (`podFullName` is `<pod>_<namespace>`; a name past 251 bytes is cut,
//!   and then its id is not trusted).
//!
//! Pod names, namespaces and container names are DNS names: none holds a `_`, so the
//! split is unambiguous.

use std::{fs, path::Path};

use super::cgroup_path::is_container_id;

/// At most this many directory entries are read from one log directory.
const MAX_ENTRIES: usize = 100_000;

/// A `/var/log/pods` directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDir {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
}

/// A `/var/log/containers` link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLink {
    pub pod: String,
    pub namespace: String,
    pub container: String,
    pub id: String,
}

fn dns_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Parses `<namespace>_<pod>_<uid>`.
pub fn parse_pod_dir(name: &str) -> Option<PodDir> {
    let mut parts = name.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    let uid_ok = !uid.is_empty()
        && uid.len() <= 64
        && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (parts.next().is_none() && dns_like(namespace) && dns_like(pod) && uid_ok).then(|| PodDir {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        uid: uid.to_owned(),
    })
}

/// Parses `<pod>_<namespace>_<container>-<id>.log`.
pub fn parse_container_link(name: &str) -> Option<ContainerLink> {
    let stem = name.strip_suffix(".log")?;
    let mut parts = stem.split('_');
    let (pod, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (container, id) = rest.rsplit_once('-')?;
    (dns_like(pod) && dns_like(namespace) && dns_like(container) && is_container_id(id)).then(
        || ContainerLink {
            pod: pod.to_owned(),
            namespace: namespace.to_owned(),
            container: container.to_owned(),
            id: id.to_owned(),
        },
    )
}

fn names(dir: &Path) -> impl Iterator<Item = String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .take(MAX_ENTRIES)
        .filter_map(|entry| entry.file_name().into_string().ok())
}

/// Every pod directory under `<root>/var/log/pods`.
pub fn pod_dirs(root: &Path) -> Vec<PodDir> {
    names(&root.join("var/log/pods"))
        .filter_map(|n| parse_pod_dir(&n))
        .collect()
}

/// Every container link under `<root>/var/log/containers`.
pub fn container_links(root: &Path) -> Vec<ContainerLink> {
    names(&root.join("var/log/containers"))
        .filter_map(|n| parse_container_link(&n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_directories() {
        assert_eq!(
            parse_pod_dir(
                "kube-system_coredns-5d78c9869d-8xk2p_0d08203e-255a-11e9-8cd9-0007cb0b2cc8"
            ),
            Some(PodDir {
                namespace: "kube-system".into(),
                pod: "coredns-5d78c9869d-8xk2p".into(),
                uid: "0d08203e-255a-11e9-8cd9-0007cb0b2cc8".into(),
            })
        );
        // A static pod's UID is a hash.
        assert!(parse_pod_dir("kube-system_etcd-node1_3e61c214bc3ed9ff81e21474dd6cba17").is_some());
        for bad in [
            "",
            "a_b",
            "a_b_c_d",
            "_p_0d08",
            "ns_p_",
            "ns_p_xyz",
            "NS_p_00",
            "ns_p\u{1b}_00",
        ] {
            assert_eq!(parse_pod_dir(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn container_links() {
        let id = "c74b0f5062f0bc726cae1e9369ad4a95deed6b298d247f0407475adb23fa3190";
        assert_eq!(
            parse_container_link(&format!("zk-0_infra_zookeeper-{id}.log")),
            Some(ContainerLink {
                pod: "zk-0".into(),
                namespace: "infra".into(),
                container: "zookeeper".into(),
                id: id.into(),
            })
        );
        // Container names hold dashes; the id is after the last one.
        let link = parse_container_link(&format!("p_ns_kube-rbac-proxy-{id}.log")).unwrap();
        assert_eq!(link.container, "kube-rbac-proxy");
        // Cut at 255 bytes: the id is incomplete, so nothing is trusted.
        assert_eq!(
            parse_container_link(&format!("p_ns_c-{}.log", &id[..20])),
            None
        );
        for bad in [
            "",
            ".log",
            "a_b.log",
            "a_b_c.log",
            &format!("a_b_c_d-{id}.log"),
            &format!("a_b_-{id}.log"),
        ] {
            assert_eq!(parse_container_link(bad), None, "{bad:?}");
        }
    }
}
