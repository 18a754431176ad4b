//! The names a recording writes: when a block of records closes, its new keys (cgroup
//! ids, socket owners' pids, network namespaces, remote addresses) are resolved from
//! the node's files, and those the trace has not named yet go into a `Workloads` block
//! written before the records. Resolution happens per block, never per event.

use std::{
    collections::HashSet,
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::{
    model::{Identity, WorkloadKey, WorkloadTable, WorkloadTableBuilder},
    trace::BlockKeys,
    workload::{
        bounded::Cache,
        resolver::{ADDRESS_TTL, Resolver},
    },
};

/// Keys remembered: what the trace said about them, and when they were looked up.
const CAPACITY: usize = 1 << 18;
/// Process ids looked up per block at most (each costs two small reads of `/proc`).
const MAX_PROCESSES_PER_BLOCK: usize = 4096;
/// An answer that names nothing yet (a container whose names are written after it
/// starts, a namespace no process has joined yet) is asked again after this long...
const RECHECK_AFTER: Duration = Duration::from_secs(1);
/// ...this many times.
const MAX_RECHECKS: u8 = 5;

/// What the trace says about one key.
#[derive(Clone, Debug)]
struct Said {
    /// The last identity written (`Unknown` when nothing was).
    identity: Identity,
    checked: Instant,
    rechecks: u8,
    /// For a process: its start time when looked up.
    start: Option<u64>,
}

/// An answer that can still improve: unknown, or a workload without a name.
fn unsettled(identity: &Identity) -> bool {
    match identity {
        Identity::Host => false,
        Identity::Unknown => true,
        Identity::Workload(w) => w.container.is_none() && w.pod.is_none(),
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Names {
    resolver: Resolver,
    said: Cache<WorkloadKey, Said>,
}

impl Names {
    pub fn new(resolver: Resolver) -> Self {
        Self {
            resolver,
            said: Cache::new(CAPACITY),
        }
    }

    /// The resolver, for the recording's `--pod`/`--container` decisions.
    pub fn resolver(&mut self) -> &mut Resolver {
        &mut self.resolver
    }

    /// The names of a block's keys the trace has not said yet, or that changed.
    pub fn for_block(&mut self, keys: &BlockKeys<'_>) -> WorkloadTable {
        let mut builder = WorkloadTableBuilder::default();
        for key in block_keys(keys) {
            if let Some(identity) = self.look_up(key) {
                builder.add(key, &identity);
            }
        }
        builder.finish()
    }

    /// Everything the trace has said and still holds: the start of a rotated file,
    /// which must replay on its own.
    pub fn full_table(&self) -> WorkloadTable {
        let mut entries: Vec<(&WorkloadKey, &Said)> = self
            .said
            .iter()
            .filter(|(_, said)| said.identity != Identity::Unknown)
            .collect();
        entries.sort_by_key(|(key, _)| **key);
        let mut builder = WorkloadTableBuilder::default();
        for (key, said) in entries {
            builder.add(*key, &said.identity);
        }
        builder.finish()
    }

    /// Whether process `pid` is to be looked up: new, or (at most once a second) its
    /// pid now names a process with another start time. `Some(start)` when it is;
    /// `None` when it is not, or has exited.
    fn process_due(&mut self, pid: u32) -> Option<Option<u64>> {
        let key = WorkloadKey::Process(pid);
        if let Some(said) = self.said.get(&key)
            && said.checked.elapsed() < RECHECK_AFTER
        {
            return None;
        }
        let start = self.resolver.process_start(pid)?;
        if let Some(said) = self.said.get_mut(&key)
            && said.start == Some(start)
        {
            said.checked = Instant::now();
            return None;
        }
        Some(Some(start))
    }

    /// Looks `key` up when it is new or due again; returns the identity to write when
    /// it differs from what the trace said.
    fn look_up(&mut self, key: WorkloadKey) -> Option<Identity> {
        let start = match key {
            WorkloadKey::Process(pid) => self.process_due(pid)?,
            _ => None,
        };
        let previous = match self.said.get(&key) {
            None => Identity::Unknown,
            Some(said) => {
                let due = match key {
                    // Decided by `process_due`.
                    WorkloadKey::Process(_) => true,
                    WorkloadKey::Address(_) => said.checked.elapsed() >= ADDRESS_TTL,
                    WorkloadKey::Cgroup(_) | WorkloadKey::Netns(_) => {
                        unsettled(&said.identity)
                            && said.rechecks < MAX_RECHECKS
                            && said.checked.elapsed() >= RECHECK_AFTER
                    }
                };
                if !due {
                    return None;
                }
                said.identity.clone()
            }
        };
        let rechecks = self
            .said
            .get(&key)
            .map_or(0, |s| s.rechecks.saturating_add(1));
        if rechecks > 0 {
            self.resolver.forget(key);
        }
        let identity = match key {
            WorkloadKey::Cgroup(id) => self.resolver.cgroup(id),
            WorkloadKey::Process(pid) => self.resolver.process(pid),
            WorkloadKey::Netns(inode) => self.resolver.netns(inode),
            WorkloadKey::Address(ip) => self.resolver.address(ip),
        };
        let changed = identity != previous;
        self.said.insert(
            key,
            Said {
                identity: identity.clone(),
                checked: Instant::now(),
                rechecks,
                start,
            },
        );
        changed.then_some(identity)
    }
}

/// The distinct keys of a block, in a stable order: scopes, owners, remote addresses.
fn block_keys(keys: &BlockKeys<'_>) -> Vec<WorkloadKey> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |key: WorkloadKey| {
        if seen.insert(key) {
            out.push(key);
        }
    };
    let scopes = keys
        .scopes
        .iter()
        .copied()
        .chain(keys.conns.iter().map(|c| c.scope));
    for scope in scopes {
        if scope.cgroup != 0 {
            add(WorkloadKey::Cgroup(scope.cgroup));
        }
        if scope.netns != 0 {
            add(WorkloadKey::Netns(scope.netns));
        }
    }
    let pids = keys.tasks.iter().map(|t| t.pid).filter(|&pid| pid != 0);
    for pid in pids
        .collect::<HashSet<u32>>()
        .into_iter()
        .take(MAX_PROCESSES_PER_BLOCK)
    {
        add(WorkloadKey::Process(pid));
    }
    let remotes = keys
        .conns
        .iter()
        .map(|c| c.tuple.remote.ip())
        .chain(keys.unmatched_remotes.iter().copied());
    for ip in remotes.map(|ip| ip.to_canonical()).filter(nameable) {
        add(WorkloadKey::Address(ip));
    }
    out
}

/// Addresses that can name a namespace: not unspecified, loopback or link-local.
fn nameable(ip: &IpAddr) -> bool {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    !ip.is_unspecified() && !ip.is_loopback() && !ip.is_multicast() && !link_local
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Comm, Conn, Scope, SocketTuple, Task};

    fn conn(scope: Scope, remote: &str) -> Conn {
        Conn {
            id: 1,
            scope,
            tuple: SocketTuple {
                local: "10.0.0.2:40000".parse().unwrap(),
                remote: remote.parse().unwrap(),
            },
        }
    }

    #[test]
    fn a_block_names_its_scopes_owners_and_remote_addresses_once() {
        let scope = Scope::new(5, 9);
        let conns = [
            conn(scope, "10.0.0.1:80"),
            conn(scope, "[::ffff:10.0.0.1]:81"),
            conn(Scope::default(), "127.0.0.1:80"),
            conn(Scope::default(), "[fe80::1]:80"),
        ];
        let task = Task {
            pid: 42,
            tid: 43,
            comm: Comm::from_str_lossy("x"),
        };
        let remotes = ["0.0.0.0".parse().unwrap(), "10.0.0.3".parse().unwrap()];
        let keys = BlockKeys {
            scopes: &[scope],
            tasks: &[task, task],
            conns: &conns,
            unmatched_remotes: &remotes,
        };
        assert_eq!(
            block_keys(&keys),
            [
                WorkloadKey::Cgroup(9),
                WorkloadKey::Netns(5),
                WorkloadKey::Process(42),
                WorkloadKey::Address("10.0.0.1".parse().unwrap()),
                WorkloadKey::Address("10.0.0.3".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn keys_are_written_once_and_again_only_when_they_change() {
        let mut names = Names::new(Resolver::new("/nonexistent-tcpchurn-root"));
        // Nothing below a missing root names anything: nothing is written.
        let scope = Scope::new(5, 9);
        let conns = [conn(scope, "10.0.0.1:80")];
        let keys = BlockKeys {
            scopes: &[],
            tasks: &[],
            conns: &conns,
            unmatched_remotes: &[],
        };
        assert!(names.for_block(&keys).is_empty());
        assert!(names.full_table().is_empty());
        // What was said is remembered: a host answer is settled and never asked again.
        names.said.insert(
            WorkloadKey::Netns(5),
            Said {
                identity: Identity::Host,
                checked: Instant::now(),
                rechecks: 0,
                start: None,
            },
        );
        assert!(names.for_block(&keys).is_empty());
        let full = names.full_table();
        assert_eq!(full.netns, [(5, 0)]);
        assert_eq!(full.identities, [Identity::Host]);
    }

    #[test]
    fn only_answers_that_name_nothing_are_unsettled() {
        use crate::model::{Named, Source, Workload};
        assert!(unsettled(&Identity::Unknown));
        assert!(!unsettled(&Identity::Host));
        let mut w = Workload {
            id: Some("ab".repeat(32)),
            ..Workload::default()
        };
        assert!(unsettled(&Identity::Workload(w.clone())));
        w.container = Some(Named::new("app", Source::OciConfig));
        assert!(!unsettled(&Identity::Workload(w)));
    }
}
