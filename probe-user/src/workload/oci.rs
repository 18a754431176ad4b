//! The annotations of a container's OCI bundle `config.json`, where CRI runtimes
//! write the pod and container names the kubelet gave them.
//!
//! Keys (with the code that writes them):
//! - containerd v2.2.0 `internal/cri/annotations/annotations.go`:
//!   `io.kubernetes.cri.container-type` (`sandbox` | `container`),
//!   `io.kubernetes.cri.sandbox-name`, `-namespace`, `-uid`, `-id`,
//!   `io.kubernetes.cri.container-name`. Bundles live in
//!   `/run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`
//!   (`core/runtime/v2/bundle.go`, `defaults/defaults_linux.go`).
//! - CRI-O v1.34.0 `internal/factory/container/container.go` copies the kubelet's
//!   labels into the annotations (`io.kubernetes.pod.name`, `io.kubernetes.pod.namespace`,
//!   `io.kubernetes.pod.uid`, `io.kubernetes.container.name`; k8s.io/kubelet
//!   `pkg/types/labels.go`) and adds `io.kubernetes.cri-o.ContainerType`,
//!   `io.kubernetes.cri-o.SandboxID` (`pkg/annotations/internal.go`). Bundles live in
//!   containers/storage: `/run/containers/storage/overlay-containers/<id>/userdata/`.
//! - podman v4.3.1 writes `io.container.manager = libpod` and reuses the CRI-O
//!   `ContainerType`/`SandboxID` keys for containers in a pod; its bundles live in
//!   `/var/lib/containers/storage/overlay-containers/<id>/userdata/`.
//!
//! Inspektor Gadget v0.55.1 `pkg/container-utils/oci-annotations/` reads the same keys.

use std::{collections::HashMap, io, path::Path};

use serde::Deserialize;

use super::{Runtime, bounded};

/// Real bundles are tens of kilobytes; anything past this is not a bundle.
const CONFIG_LIMIT: u64 = 4 << 20;

/// What the annotations say. Empty strings are dropped: an empty name is no name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotated {
    pub runtime: Option<Runtime>,
    /// The pod's sandbox (pause / infra) container rather than a workload container.
    pub sandbox: bool,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub pod_uid: Option<String>,
    pub container: Option<String>,
    pub sandbox_id: Option<String>,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// Parses a `config.json` document.
pub fn parse(json: &[u8]) -> Result<Annotated, serde_json::Error> {
    let spec: Spec = serde_json::from_slice(json)?;
    Ok(from_annotations(&spec.annotations))
}

/// Reads a bundle's `config.json`; `Ok(None)` when there is none.
pub fn read(path: &Path) -> io::Result<Option<Annotated>> {
    match bounded::read_file(path, CONFIG_LIMIT) {
        Ok(bytes) => parse(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn from_annotations(a: &HashMap<String, String>) -> Annotated {
    let get = |key: &str| a.get(key).filter(|v| !v.is_empty()).cloned();
    let manager = a.get("io.container.manager").map(String::as_str);
    if let Some(kind) = get("io.kubernetes.cri.container-type") {
        return Annotated {
            runtime: Some(Runtime::Containerd),
            sandbox: kind == "sandbox",
            pod: get("io.kubernetes.cri.sandbox-name"),
            namespace: get("io.kubernetes.cri.sandbox-namespace"),
            pod_uid: get("io.kubernetes.cri.sandbox-uid"),
            container: get("io.kubernetes.cri.container-name"),
            sandbox_id: get("io.kubernetes.cri.sandbox-id"),
        };
    }
    let kind = get("io.kubernetes.cri-o.ContainerType");
    let runtime = match manager {
        Some("libpod") => Some(Runtime::Podman),
        Some("cri-o") => Some(Runtime::CriO),
        _ if kind.is_some() => Some(Runtime::CriO),
        _ => None,
    };
    // CRI-O names the sandbox's "container" `POD` (kubelet's PodInfraContainerName).
    let container = get("io.kubernetes.container.name").filter(|c| c != "POD");
    Annotated {
        runtime,
        sandbox: kind.as_deref() == Some("sandbox"),
        pod: get("io.kubernetes.pod.name"),
        namespace: get("io.kubernetes.pod.namespace"),
        pod_uid: get("io.kubernetes.pod.uid"),
        container,
        sandbox_id: get("io.kubernetes.cri-o.SandboxID"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_container_and_sandbox() {
        let json = br#"{"ociVersion":"1.2.0","process":{"args":["zkServer.sh"]},"annotations":{
            "io.kubernetes.cri.container-type":"container",
            "io.kubernetes.cri.container-name":"zookeeper",
            "io.kubernetes.cri.sandbox-id":"aaaa",
            "io.kubernetes.cri.sandbox-name":"zk-0",
            "io.kubernetes.cri.sandbox-namespace":"infra",
            "io.kubernetes.cri.sandbox-uid":"2942c55e-c9cb-428a-93f4-eaf89c1f3ce0",
            "io.kubernetes.cri.image-name":"zookeeper:3.8"}}"#;
        let a = parse(json).unwrap();
        assert_eq!(a.runtime, Some(Runtime::Containerd));
        assert!(!a.sandbox);
        assert_eq!(a.pod.as_deref(), Some("zk-0"));
        assert_eq!(a.namespace.as_deref(), Some("infra"));
        assert_eq!(a.container.as_deref(), Some("zookeeper"));
        assert_eq!(
            a.pod_uid.as_deref(),
            Some("2942c55e-c9cb-428a-93f4-eaf89c1f3ce0")
        );
        let sandbox = br#"{"annotations":{"io.kubernetes.cri.container-type":"sandbox",
            "io.kubernetes.cri.sandbox-name":"zk-0","io.kubernetes.cri.sandbox-namespace":"infra"}}"#;
        let a = parse(sandbox).unwrap();
        assert!(a.sandbox);
        assert_eq!(a.container, None);
    }

    #[test]
    fn crio_container_and_sandbox() {
        let json = br#"{"annotations":{"io.container.manager":"cri-o",
            "io.kubernetes.cri-o.ContainerType":"container",
            "io.kubernetes.cri-o.SandboxID":"bbbb",
            "io.kubernetes.pod.name":"dubbo-client-7d9f","io.kubernetes.pod.namespace":"shop",
            "io.kubernetes.pod.uid":"ea19ff5d-943a-4466-a07e-a71e9e50cc62",
            "io.kubernetes.container.name":"app"}}"#;
        let a = parse(json).unwrap();
        assert_eq!(a.runtime, Some(Runtime::CriO));
        assert_eq!(
            (
                a.pod.as_deref(),
                a.namespace.as_deref(),
                a.container.as_deref()
            ),
            (Some("dubbo-client-7d9f"), Some("shop"), Some("app"))
        );
        let sandbox = br#"{"annotations":{"io.kubernetes.cri-o.ContainerType":"sandbox",
            "io.kubernetes.container.name":"POD","io.kubernetes.pod.name":"p"}}"#;
        let a = parse(sandbox).unwrap();
        assert!(a.sandbox);
        assert_eq!(a.container, None);
        assert_eq!(a.runtime, Some(Runtime::CriO));
    }

    #[test]
    fn podman_annotations_name_no_pod() {
        // What podman 4.3.1 wrote on this machine for a container in a pod.
        let json = br#"{"annotations":{"io.container.manager":"libpod",
            "io.kubernetes.cri-o.ContainerType":"container",
            "io.kubernetes.cri-o.SandboxID":"969d877f1a206cbdcc3d6ee7615d924c2e5dc3f8dc3ad32d0dd52be1244b2384",
            "io.kubernetes.cri-o.TTY":"false"}}"#;
        let a = parse(json).unwrap();
        assert_eq!(a.runtime, Some(Runtime::Podman));
        assert!(!a.sandbox);
        assert_eq!((a.pod, a.namespace, a.container), (None, None, None));
    }

    #[test]
    fn no_annotations_and_bad_documents() {
        assert_eq!(parse(b"{}").unwrap(), Annotated::default());
        assert_eq!(
            parse(br#"{"annotations":{"io.kubernetes.pod.name":""}}"#)
                .unwrap()
                .pod,
            None
        );
        assert!(parse(b"[").is_err());
        assert!(parse(br#"{"annotations":[1]}"#).is_err());
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
