//! Which workload each end of a connection belongs to, from the names the trace
//! carries (its `Workloads` blocks, learnt as the replay reads them).
//!
//! A socket the trace recorded is named by, in order:
//!
//! 1. its cgroup, when that names a workload;
//! 2. its owner's process, when that names a workload (on cgroup v1 and hybrid hosts a
//!    container's v2 cgroup may be the root, which names nothing);
//! 3. the host, when its cgroup or its owner is the host's;
//! 4. its network namespace, when that names a pod or a container.
//!
//! Otherwise it is unknown: a namespace the host's processes hold does not make an
//! unexplained cgroup the host's (host-network pods share it). The other end of a
//! connection is its own socket when the trace has it, else what holds its address on
//! the recording node (a pod's address names the pod); a remote address is unknown.
//!
//! In a replay of several hosts' traces every key is the host's own: cgroup ids, pids,
//! namespaces and node-local addresses of one host say nothing about another's.

use std::{net::IpAddr, sync::Arc};

use rustc_hash::FxHashMap;

use crate::{
    analysis::{tracker::Connection, verdict::Side},
    model::{HostId, Identity, Scope, TraceEvent, Workload, WorkloadKey, WorkloadTable},
    owner::Owner,
};

/// Keys remembered per kind at most; a trace holding more names loses the rest.
const MAX_KEYS: usize = 1 << 20;

/// One key's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Known {
    Host,
    Workload(Arc<Workload>),
}

impl Known {
    fn workload(&self) -> Option<Arc<Workload>> {
        match self {
            Self::Workload(w) => Some(Arc::clone(w)),
            Self::Host => None,
        }
    }
}

/// The workloads of both ends of a connection, by [`Side::index`].
pub type Ends = [Option<Arc<Workload>>; 2];

/// The names learnt so far, and the rules above. (A live view's snapshot copies it
/// with the aggregates; its entries are shared.)
#[derive(Clone, Debug, Default)]
pub struct WorkloadBook {
    cgroups: FxHashMap<(HostId, u64), Known>,
    processes: FxHashMap<(HostId, u32), Known>,
    netns: FxHashMap<(HostId, u32), Known>,
    addresses: FxHashMap<(HostId, IpAddr), Known>,
    /// Entries left out because a map was full.
    pub dropped: u64,
}

impl WorkloadBook {
    /// Takes in a table of `host`'s trace: each entry replaces what an earlier one said
    /// about its key; an unknown entry withdraws it.
    pub fn learn(&mut self, host: HostId, table: &WorkloadTable) {
        let shared: Vec<Option<Known>> = table
            .identities
            .iter()
            .map(|identity| match identity {
                Identity::Host => Some(Known::Host),
                Identity::Workload(w) => Some(Known::Workload(Arc::new(w.clone()))),
                Identity::Unknown => None,
            })
            .collect();
        // An index that points nowhere (a damaged or hostile table) names nothing.
        for (key, index) in table.indexed() {
            if let Some(known) = shared.get(index as usize) {
                self.set(host, key, known.clone());
            }
        }
    }

    fn set(&mut self, host: HostId, key: WorkloadKey, known: Option<Known>) {
        fn put<K: std::hash::Hash + Eq>(
            map: &mut FxHashMap<K, Known>,
            key: K,
            known: Option<Known>,
            dropped: &mut u64,
        ) {
            match known {
                None => drop(map.remove(&key)),
                Some(known) if map.len() < MAX_KEYS || map.contains_key(&key) => {
                    map.insert(key, known);
                }
                Some(_) => *dropped += 1,
            }
        }
        let dropped = &mut self.dropped;
        match key {
            WorkloadKey::Cgroup(id) => put(&mut self.cgroups, (host, id), known, dropped),
            WorkloadKey::Process(pid) => put(&mut self.processes, (host, pid), known, dropped),
            WorkloadKey::Netns(inode) => put(&mut self.netns, (host, inode), known, dropped),
            WorkloadKey::Address(ip) => {
                let key = (host, ip.to_canonical());
                put(&mut self.addresses, key, known, dropped);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty()
            && self.processes.is_empty()
            && self.netns.is_empty()
            && self.addresses.is_empty()
    }

    /// The workload of a recorded socket in `scope`, owned by `owner_pid`.
    pub fn socket(&self, scope: Scope, owner_pid: Option<u32>) -> Option<Arc<Workload>> {
        let cgroup = (scope.cgroup != 0)
            .then(|| self.cgroups.get(&(scope.host, scope.cgroup)))
            .flatten();
        let owner = owner_pid.and_then(|pid| self.processes.get(&(scope.host, pid)));
        if let Some(w) = cgroup.and_then(Known::workload) {
            return Some(w);
        }
        if let Some(w) = owner.and_then(Known::workload) {
            return Some(w);
        }
        if cgroup == Some(&Known::Host) || owner == Some(&Known::Host) {
            return None;
        }
        (scope.netns != 0)
            .then(|| self.netns.get(&(scope.host, scope.netns)))
            .flatten()
            .and_then(Known::workload)
    }

    /// What holds `ip` on the recording node `host`: a pod's address names the pod.
    pub fn address(&self, host: HostId, ip: IpAddr) -> Option<Arc<Workload>> {
        self.addresses
            .get(&(host, ip.to_canonical()))
            .and_then(Known::workload)
    }

    /// The workload of the socket an event is about: by its scope and its owner (a
    /// snapshot's owner is the one `/proc` named).
    pub fn event(&self, event: &TraceEvent, owner: Option<&Owner>) -> Option<Arc<Workload>> {
        let scope = event.scope()?;
        let pid = match event {
            TraceEvent::Snapshot(s) => s.owner.map(|t| t.pid),
            _ => owner.and_then(Owner::task).map(|t| t.pid),
        };
        self.socket(scope, pid)
    }

    /// What holds the remote address of the event's socket on its host.
    pub fn event_peer(&self, event: &TraceEvent) -> Option<Arc<Workload>> {
        self.address(event.host(), event.tuple()?.remote.ip())
    }

    /// Both ends of a connection: each end's own socket when a trace has it, else
    /// what holds its address on the host that recorded the other end.
    pub fn ends(&self, c: &Connection) -> Ends {
        let (client, server) = c.addresses();
        let recorded_on = |side: Side| c.endpoint(side.other()).map(|e| e.host);
        let end = |side: Side, ip: IpAddr| match c.endpoint(side) {
            Some(e) => self.socket(e.scope(), e.owner.map(|t| t.pid)),
            None => recorded_on(side).and_then(|host| self.address(host, ip)),
        };
        [
            end(Side::Client, client.ip()),
            end(Side::Server, server.ip()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Named, Source, WorkloadTableBuilder};

    fn workload(container: &str) -> Identity {
        Identity::Workload(Workload {
            container: Some(Named::new(container, Source::OciConfig)),
            pod: Some(Named::new("zk-0", Source::OciConfig)),
            ..Workload::default()
        })
    }

    fn book(entries: &[(WorkloadKey, Identity)]) -> WorkloadBook {
        let mut builder = WorkloadTableBuilder::default();
        for (key, identity) in entries {
            builder.add(*key, identity);
        }
        let mut book = WorkloadBook::default();
        book.learn(HostId::FIRST, &builder.finish());
        book
    }

    fn name(w: Option<Arc<Workload>>) -> Option<String> {
        w.map(|w| w.label())
    }

    const SCOPE: Scope = Scope::new(10, 20);

    #[test]
    fn the_cgroup_names_first_then_the_owner_then_the_namespace() {
        use WorkloadKey::*;
        let all = book(&[
            (Cgroup(20), workload("by-cgroup")),
            (Process(30), workload("by-owner")),
            (Netns(10), workload("by-netns")),
        ]);
        assert_eq!(
            name(all.socket(SCOPE, Some(30))),
            Some("zk-0/by-cgroup".into())
        );
        // A hybrid host's v2 root names nothing: the owner's own cgroups do.
        let v1 = book(&[
            (Process(30), workload("by-owner")),
            (Netns(10), workload("ns")),
        ]);
        assert_eq!(
            name(v1.socket(SCOPE, Some(30))),
            Some("zk-0/by-owner".into())
        );
        // In softirq nobody owns the event: the pod's namespace names it.
        assert_eq!(name(v1.socket(SCOPE, None)), Some("zk-0/ns".into()));
    }

    #[test]
    fn the_host_stays_the_host_and_unknown_stays_unknown() {
        use WorkloadKey::*;
        // A host process that entered a pod's namespace is not the pod.
        let host = book(&[(Process(30), Identity::Host), (Netns(10), workload("ns"))]);
        assert_eq!(host.socket(SCOPE, Some(30)), None);
        let host_cgroup = book(&[(Cgroup(20), Identity::Host), (Netns(10), workload("ns"))]);
        assert_eq!(host_cgroup.socket(SCOPE, None), None);
        // A cgroup nothing explains, in the host's namespace: not guessed to be the host
        // (host-network pods share it), and not named.
        let unexplained = book(&[(Netns(10), Identity::Host)]);
        assert_eq!(unexplained.socket(SCOPE, None), None);
        assert!(WorkloadBook::default().is_empty());
    }

    #[test]
    fn later_entries_replace_earlier_ones_and_unknown_withdraws() {
        use WorkloadKey::*;
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut b = book(&[(Address(ip), workload("old"))]);
        assert_eq!(
            name(b.address(HostId::FIRST, "::ffff:10.0.0.1".parse().unwrap())),
            Some("zk-0/old".into())
        );
        let mut builder = WorkloadTableBuilder::default();
        builder.add(Address(ip), &workload("new"));
        b.learn(HostId::FIRST, &builder.finish());
        assert_eq!(name(b.address(HostId::FIRST, ip)), Some("zk-0/new".into()));
        let mut builder = WorkloadTableBuilder::default();
        builder.add(Address(ip), &Identity::Unknown);
        b.learn(HostId::FIRST, &builder.finish());
        assert_eq!(b.address(HostId::FIRST, ip), None);
        assert!(b.is_empty());
    }

    #[test]
    fn one_hosts_names_say_nothing_about_another_hosts_keys() {
        use WorkloadKey::*;
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let b = book(&[
            (Cgroup(20), workload("by-cgroup")),
            (Address(ip), workload("by-address")),
        ]);
        let other = HostId(1);
        let elsewhere = Scope {
            host: other,
            ..SCOPE
        };
        assert_eq!(name(b.socket(elsewhere, None)), None);
        assert_eq!(name(b.address(other, ip)), None);
        assert_eq!(name(b.socket(SCOPE, None)), Some("zk-0/by-cgroup".into()));
    }
}
