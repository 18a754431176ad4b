//! Names for container ids and pod UIDs, looked up in the node's files below a host
//! root: OCI bundles, the kubelet's log tree, podman's and docker's state.
//!
//! Bundles are read per container id (one small file); directory indexes (kubelet
//! logs, podman state) are loaded on first use and reloaded when an id is missing
//! from them, at most once per [`RELOAD_INTERVAL`], so new containers are found
//! during a recording without rereading the node for every lookup.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::Deserialize;

use super::{
    Named, Runtime, Source, bounded,
    kubelet_logs::{self, ContainerLink, PodDir},
    oci::{self, Annotated},
    podman::{self, LibpodState},
};

/// How often the indexes may be reloaded for an id they do not know.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

const CONTAINERD_TASKS: &str = "run/containerd/io.containerd.runtime.v2.task";
const STORAGE_BUNDLES: [&str; 2] = [
    "run/containers/storage/overlay-containers",
    "var/lib/containers/storage/overlay-containers",
];
const DOCKER_CONTAINERS: &str = "var/lib/docker/containers";
const DOCKER_CONFIG_LIMIT: u64 = 4 << 20;

/// What the node's files say about one container id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerNames {
    pub runtime: Option<Runtime>,
    /// The pod's sandbox (pause, infra) container: it names the pod, not a container.
    pub sandbox: bool,
    pub container: Option<Named>,
    pub pod: Option<Named>,
    pub namespace: Option<Named>,
    pub pod_uid: Option<String>,
}

impl ContainerNames {
    fn fill_pod(&mut self, namespace: &str, pod: &str, source: Source) {
        if self.pod.is_none() {
            self.pod = Some(Named::new(pod, source));
        }
        if self.namespace.is_none() {
            self.namespace = Some(Named::new(namespace, source));
        }
    }

    fn from_annotations(a: Annotated) -> Self {
        let named = |v: Option<String>| v.map(|v| Named::new(v, Source::OciConfig));
        Self {
            runtime: a.runtime,
            sandbox: a.sandbox,
            container: named(a.container),
            pod: named(a.pod),
            namespace: named(a.namespace),
            pod_uid: a.pod_uid,
        }
    }
}

#[derive(Debug, Default)]
struct Indexes {
    pods: HashMap<String, PodDir>,
    links: HashMap<String, ContainerLink>,
    storage: HashMap<String, String>,
    libpod: LibpodState,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Catalog {
    root: PathBuf,
    indexes: Indexes,
    loaded_at: Option<Instant>,
}

impl Catalog {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            indexes: Indexes::default(),
            loaded_at: None,
        }
    }

    fn load(&mut self) {
        let root = &self.root;
        self.indexes = Indexes {
            pods: kubelet_logs::pod_dirs(root)
                .into_iter()
                .map(|p| (p.uid.clone(), p))
                .collect(),
            links: kubelet_logs::container_links(root)
                .into_iter()
                .map(|l| (l.id.clone(), l))
                .collect(),
            storage: podman::storage_names(root),
            libpod: podman::libpod_state(root),
        };
        self.loaded_at = Some(Instant::now());
    }

    /// Loads the indexes the first time, and again when `known` says the key is
    /// missing and the last load is old enough.
    fn refresh(&mut self, known: impl Fn(&Indexes) -> bool) {
        let stale = self
            .loaded_at
            .is_none_or(|at| at.elapsed() >= RELOAD_INTERVAL);
        if self.loaded_at.is_none() || (stale && !known(&self.indexes)) {
            self.load();
        }
    }

    /// The OCI bundle of `id`: containerd's task directory (any containerd namespace,
    /// `k8s.io` for the kubelet), else containers/storage's (CRI-O, podman).
    fn bundle(&self, id: &str) -> Option<Annotated> {
        let tasks = self.root.join(CONTAINERD_TASKS);
        let containerd = fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .take(64)
            .map(|ns| ns.path().join(id).join("config.json"));
        let storage = STORAGE_BUNDLES
            .iter()
            .map(|dir| self.root.join(dir).join(id).join("userdata/config.json"));
        containerd
            .chain(storage)
            .find_map(|path| oci::read(&path).ok().flatten())
    }

    /// Everything the node's files say about container `id`.
    pub fn container(&mut self, id: &str, runtime: Option<Runtime>) -> ContainerNames {
        let mut names = self
            .bundle(id)
            .map(ContainerNames::from_annotations)
            .unwrap_or_default();
        names.runtime = names.runtime.or(runtime);
        self.refresh(|ix| {
            ix.links.contains_key(id)
                || ix.libpod.containers.contains_key(id)
                || ix.storage.contains_key(id)
        });
        if let Some(link) = self.indexes.links.get(id) {
            let source = Source::KubeletContainerLogs;
            names.fill_pod(&link.namespace, &link.pod, source);
            if names.container.is_none() && !names.sandbox {
                names.container = Some(Named::new(&link.container, source));
            }
        }
        if let Some(c) = self.indexes.libpod.containers.get(id) {
            names.runtime = Some(Runtime::Podman);
            names.sandbox |= c.infra;
            if names.container.is_none() && !names.sandbox {
                names.container = Some(Named::new(&c.name, Source::PodmanState));
            }
            if let Some(pod) = &c.pod {
                names.pod_uid.get_or_insert_with(|| pod.clone());
                if let Some(name) = self.indexes.libpod.pods.get(pod) {
                    names
                        .pod
                        .get_or_insert_with(|| Named::new(name, Source::PodmanState));
                }
            }
        }
        if names.container.is_none()
            && !names.sandbox
            && names.runtime.is_none_or(|r| r == Runtime::Podman)
            && let Some(name) = self.indexes.storage.get(id)
        {
            names.runtime = Some(Runtime::Podman);
            names.container = Some(Named::new(name, Source::ContainerStorage));
        }
        if names.container.is_none() && names.runtime.is_none_or(|r| r == Runtime::Docker) {
            self.docker(id, &mut names);
        }
        if let Some(uid) = names.pod_uid.clone() {
            self.fill_pod_by_uid(&uid, &mut names);
        }
        names
    }

    /// Names of the pod with this UID (a kubelet UID, or a podman pod id).
    pub fn pod(&mut self, uid: &str) -> ContainerNames {
        let mut names = ContainerNames {
            pod_uid: Some(uid.to_owned()),
            ..ContainerNames::default()
        };
        self.refresh(|ix| ix.pods.contains_key(uid) || ix.libpod.pods.contains_key(uid));
        self.fill_pod_by_uid(uid, &mut names);
        names
    }

    fn fill_pod_by_uid(&self, uid: &str, names: &mut ContainerNames) {
        if let Some(dir) = self.indexes.pods.get(uid) {
            names.fill_pod(&dir.namespace, &dir.pod, Source::KubeletPodLogs);
        } else if let Some(name) = self.indexes.libpod.pods.get(uid) {
            names.runtime.get_or_insert(Runtime::Podman);
            names
                .pod
                .get_or_insert_with(|| Named::new(name, Source::PodmanState));
        }
    }

    /// Docker's `config.v2.json`: the container name, and the kubelet's labels when
    /// cri-dockerd made it (`io.kubernetes.*`, as CRI-O copies them).
    fn docker(&self, id: &str, names: &mut ContainerNames) {
        #[derive(Deserialize)]
        struct Config {
            #[serde(rename = "Name", default)]
            name: String,
            #[serde(rename = "Config", default)]
            config: Option<Labels>,
        }
        #[derive(Deserialize)]
        struct Labels {
            #[serde(rename = "Labels", default)]
            labels: Option<HashMap<String, String>>,
        }
        let path = self
            .root
            .join(DOCKER_CONTAINERS)
            .join(id)
            .join("config.v2.json");
        let Some(config) = bounded::read_file(&path, DOCKER_CONFIG_LIMIT)
            .ok()
            .and_then(|b| serde_json::from_slice::<Config>(&b).ok())
        else {
            return;
        };
        names.runtime = Some(Runtime::Docker);
        let labels = config.config.and_then(|c| c.labels).unwrap_or_default();
        let label = |k: &str| labels.get(k).filter(|v| !v.is_empty());
        if let (Some(ns), Some(pod)) = (
            label("io.kubernetes.pod.namespace"),
            label("io.kubernetes.pod.name"),
        ) {
            names.fill_pod(ns, pod, Source::DockerConfig);
            if let Some(uid) = label("io.kubernetes.pod.uid") {
                names.pod_uid.get_or_insert_with(|| uid.clone());
            }
            match label("io.kubernetes.container.name").map(String::as_str) {
                Some("POD") => names.sandbox = true,
                Some(c) => names.container = Some(Named::new(c, Source::DockerConfig)),
                None => {}
            }
            return;
        }
        let name = config.name.trim_start_matches('/');
        if !name.is_empty() {
            names.container = Some(Named::new(name, Source::DockerConfig));
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "c74b0f5062f0bc726cae1e9369ad4a95deed6b298d247f0407475adb23fa3190";
    const UID: &str = "2942c55e-c9cb-428a-93f4-eaf89c1f3ce0";

    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("tcw-catalog-{name}-{}", std::process::id()));
            let _removed = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, rel: &str, text: &str) {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _removed = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_containerd_bundle_names_everything() {
        let root = Root::new("containerd");
        root.write(
            &format!("{CONTAINERD_TASKS}/k8s.io/{ID}/config.json"),
            &format!(
                r#"{{"annotations":{{"io.kubernetes.cri.container-type":"container",
                "io.kubernetes.cri.container-name":"zookeeper","io.kubernetes.cri.sandbox-name":"zk-0",
                "io.kubernetes.cri.sandbox-namespace":"infra","io.kubernetes.cri.sandbox-uid":"{UID}"}}}}"#
            ),
        );
        let names = Catalog::new(&root.0).container(ID, None);
        assert_eq!(names.runtime, Some(Runtime::Containerd));
        assert_eq!(
            names.container,
            Some(Named::new("zookeeper", Source::OciConfig))
        );
        assert_eq!(names.pod, Some(Named::new("zk-0", Source::OciConfig)));
        assert_eq!(
            names.namespace,
            Some(Named::new("infra", Source::OciConfig))
        );
        assert_eq!(names.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn the_kubelet_log_tree_alone_names_container_and_pod() {
        let root = Root::new("logs");
        root.write(
            &format!("var/log/pods/infra_zk-0_{UID}/zookeeper/0.log"),
            "",
        );
        fs::create_dir_all(root.0.join("var/log/containers")).unwrap();
        std::os::unix::fs::symlink(
            "/nonexistent",
            root.0
                .join(format!("var/log/containers/zk-0_infra_zookeeper-{ID}.log")),
        )
        .unwrap();
        let mut catalog = Catalog::new(&root.0);
        let names = catalog.container(ID, None);
        assert_eq!(names.runtime, None, "the logs do not say which runtime");
        assert_eq!(
            names.container,
            Some(Named::new("zookeeper", Source::KubeletContainerLogs))
        );
        assert_eq!(
            names.pod,
            Some(Named::new("zk-0", Source::KubeletContainerLogs))
        );
        let pod = catalog.pod(UID);
        assert_eq!(pod.pod, Some(Named::new("zk-0", Source::KubeletPodLogs)));
        assert_eq!(
            pod.namespace,
            Some(Named::new("infra", Source::KubeletPodLogs))
        );
        assert_eq!(
            catalog.pod("00000000-0000-0000-0000-000000000000").pod,
            None
        );
    }

    #[test]
    fn docker_config_names_plain_and_cri_dockerd_containers() {
        let root = Root::new("docker");
        root.write(
            &format!("{DOCKER_CONTAINERS}/{ID}/config.v2.json"),
            r#"{"Name":"/web","Config":{"Labels":{}}}"#,
        );
        let names = Catalog::new(&root.0).container(ID, Some(Runtime::Docker));
        assert_eq!(
            names.container,
            Some(Named::new("web", Source::DockerConfig))
        );
        root.write(
            &format!("{DOCKER_CONTAINERS}/{ID}/config.v2.json"),
            r#"{"Name":"/k8s_POD_zk-0_infra_x_0","Config":{"Labels":{
                "io.kubernetes.pod.name":"zk-0","io.kubernetes.pod.namespace":"infra",
                "io.kubernetes.container.name":"POD"}}}"#,
        );
        let names = Catalog::new(&root.0).container(ID, Some(Runtime::Docker));
        assert!(names.sandbox);
        assert_eq!(names.container, None);
        assert_eq!(names.pod, Some(Named::new("zk-0", Source::DockerConfig)));
    }

    #[test]
    fn nothing_on_disk_names_nothing() {
        let root = Root::new("empty");
        root.write(
            &format!("{CONTAINERD_TASKS}/k8s.io/{ID}/config.json"),
            "not json",
        );
        let names = Catalog::new(&root.0).container(ID, Some(Runtime::Containerd));
        assert_eq!(
            names,
            ContainerNames {
                runtime: Some(Runtime::Containerd),
                ..ContainerNames::default()
            }
        );
    }
}
