//! The names a trace carries: which identity each cgroup id, process, network
//! namespace and address had when the recorder looked (`docs/trace-format.md`,
//! "Workloads block"). A table holds the keys of one block; a replay collects them.

use std::{collections::HashMap, net::IpAddr};

use serde::{Deserialize, Serialize};

use super::workload::Identity;

/// What a name is for: the keys a trace's events carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKey {
    /// A socket's cgroup v2 id.
    Cgroup(u64),
    /// A process id, as the owner of a socket (names a container on cgroup v1 and
    /// hybrid hosts, where the socket's v2 cgroup may say nothing).
    Process(u32),
    /// A network namespace inode.
    Netns(u32),
    /// An address of this node (canonical: an IPv4-mapped IPv6 address is IPv4).
    Address(IpAddr),
}

/// Identities by key, each identity written once and referred to by its index.
///
/// An entry replaces what an earlier table said about the same key (a process id
/// reused by another process, a pod address given to a new pod); an
/// [`Identity::Unknown`] entry withdraws an earlier answer. A key no table names is
/// unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkloadTable {
    pub identities: Vec<Identity>,
    pub cgroups: Vec<(u64, u32)>,
    pub processes: Vec<(u32, u32)>,
    pub netns: Vec<(u32, u32)>,
    pub addresses: Vec<(IpAddr, u32)>,
}

impl WorkloadTable {
    /// Entries (not identities).
    pub fn len(&self) -> usize {
        self.cgroups.len() + self.processes.len() + self.netns.len() + self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry as its key and its identity's index, in the order of the table.
    pub fn indexed(&self) -> impl Iterator<Item = (WorkloadKey, u32)> + '_ {
        let cgroups = self
            .cgroups
            .iter()
            .map(|&(k, i)| (WorkloadKey::Cgroup(k), i));
        let processes = self
            .processes
            .iter()
            .map(|&(k, i)| (WorkloadKey::Process(k), i));
        let netns = self.netns.iter().map(|&(k, i)| (WorkloadKey::Netns(k), i));
        let addresses = self
            .addresses
            .iter()
            .map(|&(k, i)| (WorkloadKey::Address(k), i));
        cgroups.chain(processes).chain(netns).chain(addresses)
    }

    /// Every entry with its identity; entries whose index points nowhere (a damaged
    /// or hostile table) are left out.
    pub fn entries(&self) -> impl Iterator<Item = (WorkloadKey, &Identity)> + '_ {
        self.indexed()
            .filter_map(|(key, i)| Some((key, self.identities.get(i as usize)?)))
    }
}

/// Builds a [`WorkloadTable`], writing each distinct identity once.
#[derive(Debug, Default)]
pub struct WorkloadTableBuilder {
    table: WorkloadTable,
    index: HashMap<Identity, u32>,
}

impl WorkloadTableBuilder {
    pub fn add(&mut self, key: WorkloadKey, identity: &Identity) {
        let next = u32::try_from(self.table.identities.len()).unwrap_or(u32::MAX);
        let index = *self.index.entry(identity.clone()).or_insert_with(|| {
            self.table.identities.push(identity.clone());
            next
        });
        match key {
            WorkloadKey::Cgroup(id) => self.table.cgroups.push((id, index)),
            WorkloadKey::Process(pid) => self.table.processes.push((pid, index)),
            WorkloadKey::Netns(inode) => self.table.netns.push((inode, index)),
            WorkloadKey::Address(ip) => self.table.addresses.push((ip.to_canonical(), index)),
        }
    }

    /// Entries so far.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn finish(self) -> WorkloadTable {
        self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::workload::{Named, Source, Workload};

    fn pod(name: &str) -> Identity {
        Identity::Workload(Workload {
            pod: Some(Named::new(name, Source::OciConfig)),
            ..Workload::default()
        })
    }

    #[test]
    fn identities_are_written_once_and_entries_read_back() {
        let mut builder = WorkloadTableBuilder::default();
        builder.add(WorkloadKey::Cgroup(7), &pod("zk-0"));
        builder.add(WorkloadKey::Netns(9), &pod("zk-0"));
        builder.add(WorkloadKey::Process(42), &Identity::Host);
        builder.add(
            WorkloadKey::Address("::ffff:10.0.0.1".parse().unwrap()),
            &pod("zk-0"),
        );
        let table = builder.finish();
        assert_eq!(table.identities.len(), 2);
        assert_eq!(table.len(), 4);
        let entries: Vec<(WorkloadKey, &Identity)> = table.entries().collect();
        assert_eq!(entries[0], (WorkloadKey::Cgroup(7), &pod("zk-0")));
        assert_eq!(entries[1], (WorkloadKey::Process(42), &Identity::Host));
        assert_eq!(
            entries[3].0,
            WorkloadKey::Address("10.0.0.1".parse().unwrap()),
            "canonical"
        );
    }

    #[test]
    fn entries_pointing_nowhere_are_left_out() {
        let table = WorkloadTable {
            identities: vec![Identity::Host],
            cgroups: vec![(1, 0), (2, 5)],
            ..WorkloadTable::default()
        };
        assert_eq!(table.entries().count(), 1);
    }
}
