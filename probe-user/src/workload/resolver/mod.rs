//! Cgroup ids, processes, network namespaces and addresses to [`Identity`], from the
//! node's files below a host root (`/`, or where a container mounted the host's `/`,
//! as Inspektor Gadget's `HOST_ROOT` does).
//!
//! - cgroup id → path: the cgroup v2 id is the directory's inode in the v2 hierarchy;
//!   the hierarchy is found in the mount table (`/sys/fs/cgroup`, or
//!   `/sys/fs/cgroup/unified` on hybrid hosts) and walked into an inode → path index,
//!   rebuilt when an id is missing (at most every [`REWALK_INTERVAL`]). Where v1
//!   hierarchies are mounted too (hybrid hosts), the v2 root is unknown, not the host:
//!   a runtime may have placed a container in v1 hierarchies only.
//! - pid (with its start time: a reused pid is another process) → `/proc/PID/cgroup`,
//!   every hierarchy (v1 and v2 lines).
//! - netns inode → the processes in it (`/proc/*/ns/net`) → their pod; the host's own
//!   namespace (that of PID 1, or the recorder's own where PID 1's is hidden) is the
//!   host.
//! - address → the namespace holding it (`/proc/PID/net/fib_trie`, `if_inet6` of one
//!   process per namespace) → that namespace's pod. An address held by two
//!   namespaces names neither. Answers expire after [`ADDRESS_TTL`]: a pod's address
//!   is given to another pod once the first is gone.
//!
//! Every answer is cached (bounded; [`Resolver::forget`] drops one): the recorder asks
//! once per new key, never per event. [`scan`] holds the node-wide scans.

mod scan;

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub use self::scan::{cgroup2_mount, parse_start_time};
use super::{
    Identity, Workload,
    bounded::{self, Cache},
    catalog::Catalog,
    cgroup_path::{self, Placement, ProcCgroups},
};
use crate::model::WorkloadKey;

/// How often the cgroup tree, `/proc` and the address index may be rescanned for a
/// key they do not hold.
pub const REWALK_INTERVAL: Duration = Duration::from_secs(1);
/// How long an address's answer holds: a pod's address is given to another pod after
/// the first is gone.
pub const ADDRESS_TTL: Duration = Duration::from_secs(30);
/// Entries kept per cache.
pub const CACHE_CAPACITY: usize = 65_536;
const SMALL_FILE: u64 = 1 << 20;

/// An index rebuilt on demand, at most every [`REWALK_INTERVAL`].
#[derive(Debug)]
struct Index<K, V> {
    map: HashMap<K, V>,
    built_at: Option<Instant>,
}

impl<K, V> Default for Index<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            built_at: None,
        }
    }
}

impl<K, V> Index<K, V> {
    fn built(map: HashMap<K, V>) -> Self {
        Self {
            map,
            built_at: Some(Instant::now()),
        }
    }

    fn may_rebuild(&self) -> bool {
        self.built_at
            .is_none_or(|at| at.elapsed() >= REWALK_INTERVAL)
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Resolver {
    root: PathBuf,
    proc: PathBuf,
    cgroup2: Option<PathBuf>,
    /// v1 hierarchies are mounted too: the v2 root names nothing (a runtime may have
    /// placed a container in v1 hierarchies only).
    hybrid: bool,
    host_netns: Option<u32>,
    catalog: Catalog,
    cgroup_paths: Index<u64, String>,
    netns_pids: Index<u32, Vec<u32>>,
    /// `None`: held by several namespaces.
    addresses: Index<IpAddr, Option<u32>>,
    by_cgroup: Cache<u64, Identity>,
    /// By pid and start time: a reused pid is another process.
    by_process: Cache<(u32, u64), Identity>,
    by_netns: Cache<u32, Identity>,
    by_address: Cache<IpAddr, (Identity, Instant)>,
}

impl Resolver {
    /// A resolver reading the node below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let proc = root.join("proc");
        // Below the real root, this process's mount table is the node's; below another
        // root, PID 1's mount table (in the host's `/proc`) is.
        let mountinfo = if root == Path::new("/") {
            PathBuf::from("/proc/self/mountinfo")
        } else {
            proc.join("1/mountinfo")
        };
        let mountinfo = bounded::read_text(&mountinfo, SMALL_FILE).unwrap_or_default();
        let from_mountinfo =
            cgroup2_mount(&mountinfo).map(|mount| root.join(mount.trim_start_matches('/')));
        let cgroup2 = from_mountinfo
            .into_iter()
            .chain(
                ["sys/fs/cgroup", "sys/fs/cgroup/unified"]
                    .into_iter()
                    .map(|p| root.join(p)),
            )
            .find(|dir| dir.join("cgroup.controllers").exists());
        let hybrid = scan::has_cgroup1(&mountinfo)
            || cgroup2
                .as_deref()
                .is_some_and(|dir| dir.ends_with("unified"));
        // PID 1's namespace is the host's. Where its link cannot be read (a sandbox
        // that hides PID 1), this process's own namespace stands in below the real
        // root: the recorder runs in the host's namespace to see every socket.
        let host_netns = scan::netns_inode(&proc.join("1/ns/net")).or_else(|| {
            (root == Path::new("/"))
                .then(|| scan::netns_inode(Path::new("/proc/self/ns/net")))
                .flatten()
        });
        Self {
            catalog: Catalog::new(root.clone()),
            root,
            proc,
            cgroup2,
            hybrid,
            host_netns,
            cgroup_paths: Index::default(),
            netns_pids: Index::default(),
            addresses: Index::default(),
            by_cgroup: Cache::new(CACHE_CAPACITY),
            by_process: Cache::new(CACHE_CAPACITY),
            by_netns: Cache::new(CACHE_CAPACITY),
            by_address: Cache::new(CACHE_CAPACITY),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cgroup v2 hierarchy's directory, when one is mounted.
    pub fn cgroup2_dir(&self) -> Option<&Path> {
        self.cgroup2.as_deref()
    }

    /// Whether cgroup v1 hierarchies are mounted next to v2 (then the v2 root is
    /// unknown, not the host).
    pub const fn is_hybrid(&self) -> bool {
        self.hybrid
    }

    /// The host's network namespace (PID 1's).
    pub const fn host_netns(&self) -> Option<u32> {
        self.host_netns
    }

    /// When process `pid` started, while it runs.
    pub fn process_start(&self, pid: u32) -> Option<u64> {
        scan::process_start(&self.proc, pid)
    }

    /// Forgets the answer for `key`: the next question looks again (a container's
    /// names written after it was first seen, processes that joined a namespace).
    pub fn forget(&mut self, key: WorkloadKey) {
        match key {
            WorkloadKey::Cgroup(id) => drop(self.by_cgroup.remove(&id)),
            WorkloadKey::Netns(inode) => drop(self.by_netns.remove(&inode)),
            WorkloadKey::Address(ip) => drop(self.by_address.remove(&ip.to_canonical())),
            WorkloadKey::Process(pid) => {
                if let Some(start) = self.process_start(pid) {
                    drop(self.by_process.remove(&(pid, start)));
                }
            }
        }
    }

    /// The path of cgroup v2 id `id`, relative to the hierarchy (`/kubepods.slice/...`).
    pub fn cgroup_path(&mut self, id: u64) -> Option<String> {
        if !self.cgroup_paths.map.contains_key(&id) {
            self.rewalk_cgroups();
        }
        self.cgroup_paths.map.get(&id).cloned()
    }

    /// Every cgroup v2 id of the node, from a fresh walk when one is allowed.
    pub fn cgroup_ids(&mut self) -> Vec<u64> {
        self.rewalk_cgroups();
        self.cgroup_paths.map.keys().copied().collect()
    }

    /// Walks the cgroup tree again, unless it was walked within [`REWALK_INTERVAL`].
    fn rewalk_cgroups(&mut self) {
        if self.cgroup_paths.may_rebuild() {
            let map = self
                .cgroup2
                .as_deref()
                .map(scan::walk_cgroups)
                .unwrap_or_default();
            self.cgroup_paths = Index::built(map);
        }
    }

    /// What cgroup v2 id `id` is. On v1 and hybrid hosts a container's v2 cgroup may
    /// be the root, which then says nothing: ask [`Self::process`] or [`Self::netns`].
    pub fn cgroup(&mut self, id: u64) -> Identity {
        if let Some(known) = self.by_cgroup.get(&id) {
            return known.clone();
        }
        let walked = self.cgroup_paths.may_rebuild();
        let Some(path) = self.cgroup_path(id) else {
            // Missing from a fresh walk: gone (or never there), and remembered so.
            // Missing from an older index: asked again after the next walk.
            if walked {
                self.by_cgroup.insert(id, Identity::Unknown);
            }
            return Identity::Unknown;
        };
        let identity = if path == "/" && self.hybrid {
            Identity::Unknown
        } else {
            self.name(cgroup_path::parse(&path))
        };
        self.by_cgroup.insert(id, identity.clone());
        identity
    }

    /// What process `pid` is in, from every hierarchy of `/proc/PID/cgroup`; unknown
    /// once it has exited.
    pub fn process(&mut self, pid: u32) -> Identity {
        let Some(start) = self.process_start(pid) else {
            return Identity::Unknown;
        };
        if let Some(known) = self.by_process.get(&(pid, start)) {
            return known.clone();
        }
        let path = self.proc.join(pid.to_string()).join("cgroup");
        let Ok(text) = bounded::read_text(&path, SMALL_FILE) else {
            return Identity::Unknown;
        };
        let identity = self.name(ProcCgroups::parse(&text).placement());
        self.by_process.insert((pid, start), identity.clone());
        identity
    }

    fn scan_netns(&mut self) {
        self.netns_pids = Index::built(scan::netns_pids(&self.proc));
    }

    /// What network namespace `inode` belongs to: the host's, one pod's (all its
    /// containers share it), one container's, or unknown (empty, or shared by
    /// different workloads).
    pub fn netns(&mut self, inode: u32) -> Identity {
        if Some(inode) == self.host_netns {
            return Identity::Host;
        }
        if let Some(known) = self.by_netns.get(&inode) {
            return known.clone();
        }
        let walked = self.netns_pids.may_rebuild();
        if !self.netns_pids.map.contains_key(&inode) && walked {
            self.scan_netns();
        }
        let Some(pids) = self.netns_pids.map.get(&inode).cloned() else {
            if walked {
                self.by_netns.insert(inode, Identity::Unknown);
            }
            return Identity::Unknown;
        };
        let identities: Vec<Identity> = pids.iter().map(|&pid| self.process(pid)).collect();
        let identity = shared_identity(&identities);
        self.by_netns.insert(inode, identity.clone());
        identity
    }

    /// The network namespace holding local address `ip`, when exactly one does.
    pub fn address_netns(&mut self, ip: IpAddr) -> Option<u32> {
        let ip = ip.to_canonical();
        if !self.addresses.map.contains_key(&ip) && self.addresses.may_rebuild() {
            if self.netns_pids.may_rebuild() {
                self.scan_netns();
            }
            self.addresses = Index::built(scan::addresses(&self.proc, &self.netns_pids.map));
        }
        self.addresses.map.get(&ip).copied().flatten()
    }

    /// What holds address `ip` on this node (a pod's address names the pod; the
    /// host's, the host). Unknown for remote addresses and for addresses held by
    /// several namespaces. Answers hold for [`ADDRESS_TTL`].
    pub fn address(&mut self, ip: IpAddr) -> Identity {
        let ip = ip.to_canonical();
        if let Some((known, at)) = self.by_address.get(&ip)
            && at.elapsed() < ADDRESS_TTL
        {
            return known.clone();
        }
        let walked = self.addresses.may_rebuild();
        let identity = match self.address_netns(ip) {
            Some(inode) => self.netns(inode),
            None => Identity::Unknown,
        };
        // A remote address misses every time: remembered once a fresh index said so.
        if identity != Identity::Unknown || walked {
            self.by_address
                .insert(ip, (identity.clone(), Instant::now()));
        }
        identity
    }

    /// Names a placement from the catalog.
    fn name(&mut self, placement: Placement) -> Identity {
        let parsed = match placement {
            Placement::Host => return Identity::Host,
            Placement::Unknown => return Identity::Unknown,
            Placement::Workload(parsed) => parsed,
        };
        let names = match &parsed.id {
            Some(id) => self.catalog.container(id, parsed.runtime),
            None => match &parsed.pod_uid {
                Some(uid) => self.catalog.pod(uid),
                None => return Identity::Unknown,
            },
        };
        let mut workload = Workload {
            runtime: names.runtime.or(parsed.runtime),
            id: parsed.id,
            container: names.container,
            pod: names.pod,
            namespace: names.namespace,
            pod_uid: parsed.pod_uid.or(names.pod_uid),
            qos: parsed.qos,
        };
        if workload.pod.is_none()
            && let Some(uid) = workload.pod_uid.clone()
        {
            let pod = self.catalog.pod(&uid);
            workload.pod = pod.pod;
            workload.namespace = workload.namespace.or(pod.namespace);
        }
        if names.sandbox {
            workload = workload.pod_only();
        }
        Identity::Workload(workload)
    }
}

/// What the processes of one network namespace say together: one pod (or one
/// container outside pods) when every workload agrees, the host when only host
/// processes are there, unknown otherwise.
pub fn shared_identity(identities: &[Identity]) -> Identity {
    let workloads: Vec<&Workload> = identities.iter().filter_map(Identity::workload).collect();
    if workloads.is_empty() {
        return if !identities.is_empty() && identities.iter().all(|i| *i == Identity::Host) {
            Identity::Host
        } else {
            Identity::Unknown
        };
    }
    let pod_key = |w: &Workload| w.pod_uid.clone().or_else(|| w.pod_ref());
    let first = workloads[0];
    if let Some(key) = pod_key(first) {
        if workloads.iter().all(|w| pod_key(w).as_ref() == Some(&key)) {
            // The best-named member, as the pod.
            let best = workloads
                .iter()
                .max_by_key(|w| (w.pod.is_some(), w.namespace.is_some()))
                .copied()
                .unwrap_or(first);
            return Identity::Workload(best.pod_only());
        }
        return Identity::Unknown;
    }
    if workloads.iter().all(|w| w.id.is_some() && w.id == first.id) {
        return Identity::Workload(first.clone());
    }
    Identity::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Named, Runtime, Source};

    fn pod_member(uid: &str, id: Option<&str>) -> Identity {
        Identity::Workload(Workload {
            runtime: Some(Runtime::Containerd),
            id: id.map(str::to_owned),
            pod_uid: Some(uid.to_owned()),
            pod: Some(Named::new("zk-0", Source::OciConfig)),
            namespace: Some(Named::new("infra", Source::OciConfig)),
            container: id.map(|_| Named::new("zookeeper", Source::OciConfig)),
            qos: None,
        })
    }

    #[test]
    fn a_namespace_shared_by_one_pod_names_the_pod() {
        let ids = [
            pod_member("u1", Some("a")),
            pod_member("u1", None),
            Identity::Host,
        ];
        let Identity::Workload(w) = shared_identity(&ids) else {
            panic!()
        };
        assert_eq!(w.pod_ref().as_deref(), Some("infra/zk-0"));
        assert_eq!((w.id, w.container), (None, None));
    }

    #[test]
    fn a_namespace_shared_by_different_pods_is_unknown() {
        let ids = [pod_member("u1", Some("a")), pod_member("u2", Some("b"))];
        assert_eq!(shared_identity(&ids), Identity::Unknown);
        assert_eq!(shared_identity(&[]), Identity::Unknown);
        assert_eq!(
            shared_identity(&[Identity::Host, Identity::Unknown]),
            Identity::Unknown
        );
        assert_eq!(shared_identity(&[Identity::Host]), Identity::Host);
    }

    #[test]
    fn a_namespace_of_one_plain_container_names_it() {
        let c = Identity::Workload(Workload {
            runtime: Some(Runtime::Podman),
            id: Some("c".into()),
            container: Some(Named::new("web", Source::PodmanState)),
            ..Workload::default()
        });
        assert_eq!(shared_identity(&[c.clone(), c.clone()]), c);
        let other = Identity::Workload(Workload {
            id: Some("d".into()),
            ..Workload::default()
        });
        assert_eq!(shared_identity(&[c, other]), Identity::Unknown);
    }

    #[test]
    fn a_missing_root_resolves_nothing_and_does_not_panic() {
        let mut r = Resolver::new("/nonexistent-tcpchurn-root");
        assert_eq!(r.cgroup2_dir(), None);
        assert_eq!(r.cgroup(12345), Identity::Unknown);
        assert_eq!(r.process(1), Identity::Unknown);
        assert_eq!(r.netns(4_026_531_840), Identity::Unknown);
        assert_eq!(r.address("10.0.0.1".parse().unwrap()), Identity::Unknown);
    }
}
