//! The listening sockets of a trace, by where they listen, and the processes that hold
//! them: what an accepted socket inherits before its own first syscall.
//!
//! A child socket is born in softirq (LISTEN→SYN_RECV), before `accept()`; it belongs
//! to whoever holds the listener it came from. The kernel finds that listener by the
//! packet's address (`__inet_lookup_listener()`: the exact local address first, then
//! the wildcard; an IPv6 `[::]` socket that is not `IPV6_V6ONLY` takes IPv4 too), so
//! the same lookup here names the listener: an IPv4 and an IPv6 server on one port, or
//! servers bound to different addresses, each keep their own children.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rustc_hash::FxHashMap;

use crate::{
    idmap::ConnIdMap,
    model::{Comm, Conn, ConnKey, HostId, SharedWith, Task},
    owner::{Who, candidates::Candidates},
};

/// A network namespace among those of every host: namespace ids are unique only on
/// their own host.
pub type Netns = (HostId, u32);

/// The [`Netns`] a socket lives in.
pub fn netns_of(conn: &Conn) -> Netns {
    (conn.scope.host, conn.scope.netns)
}

/// Where a listening socket listens: its namespace, its local address (canonical: an
/// IPv4-mapped address is IPv4; the wildcard of its family when bound to any) and
/// port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerKey {
    netns: Netns,
    addr: IpAddr,
    port: u16,
}

impl ListenerKey {
    fn new(netns: Netns, addr: SocketAddr) -> Self {
        Self {
            netns,
            addr: addr.ip().to_canonical(),
            port: addr.port(),
        }
    }

    /// The listeners a child whose local end is `local` may come from, most specific
    /// first: the exact address, the wildcard of its family, and for IPv4 the IPv6
    /// wildcard (a dual-stack listener).
    fn lookups(netns: Netns, local: SocketAddr) -> [Option<Self>; 3] {
        let at = |addr: IpAddr| Some(Self::new(netns, SocketAddr::new(addr, local.port())));
        match local.ip().to_canonical() {
            IpAddr::V4(_) => [
                at(local.ip()),
                at(Ipv4Addr::UNSPECIFIED.into()),
                at(Ipv6Addr::UNSPECIFIED.into()),
            ],
            IpAddr::V6(_) => [at(local.ip()), at(Ipv6Addr::UNSPECIFIED.into()), None],
        }
    }
}

/// A process holding a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Holder {
    pid: u32,
    /// The task as seen in an event or the snapshot; `None` for the other holders the
    /// snapshot listed by pid (their name then comes with `comm`).
    task: Option<Task>,
    comm: Option<Comm>,
}

impl Holder {
    fn of(task: Task) -> Self {
        Self {
            pid: task.pid,
            task: Some(task),
            comm: Some(task.comm),
        }
    }
}

/// One listening socket and the processes that hold it; none known when its owner is
/// not (a socket of the start snapshot that no process holds in `/proc`).
#[derive(Clone, Debug)]
struct ListenerSocket {
    conn: ConnKey,
    holders: Vec<Holder>,
    /// Holders the snapshot counted but did not list.
    more: u32,
}

/// The listeners on one [`ListenerKey`]: several with `SO_REUSEPORT`.
#[derive(Clone, Debug, Default)]
struct Listening {
    sockets: Vec<ListenerSocket>,
    /// Processes seen acting on children of these listeners that no socket names: they
    /// hold one of them (inherited by `fork()` after `listen()`).
    learned: Vec<Holder>,
    /// Who owns their children, worked out again whenever the above change (asked for
    /// by every accepted socket's events until its first syscall).
    children_owner: Option<Who>,
}

impl Listening {
    /// Their one process, or all of them when several hold them; `None` when one
    /// listener's owner is unknown.
    fn children_owner(&self) -> Option<Who> {
        if self.sockets.iter().any(|s| s.holders.is_empty()) {
            return None;
        }
        let mut holders: Vec<Holder> = self
            .sockets
            .iter()
            .flat_map(|s| s.holders.iter().copied())
            .chain(self.learned.iter().copied())
            .collect();
        holders.sort_by_key(|h| (h.pid, h.task.is_none()));
        holders.dedup_by_key(|h| h.pid);
        let more = self.sockets.iter().map(|s| s.more).sum::<u32>();
        match holders.as_slice() {
            [only] if more == 0 => only.task.map(Who::Task),
            _ => {
                let first = holders.first()?.comm;
                let shared = holders.iter().all(|h| h.comm.is_some() && h.comm == first);
                let pids: Vec<u32> = holders.iter().map(|h| h.pid).collect();
                Some(Who::Candidates(Candidates::new(
                    &pids,
                    more,
                    first.filter(|_| shared),
                )))
            }
        }
    }

    fn refresh(&mut self) {
        self.children_owner = self.children_owner();
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Listeners {
    /// By namespace and port (one lookup for every accepted socket): the addresses
    /// listened on, each with its listeners. Nearly always one address.
    by_port: FxHashMap<(Netns, u16), Vec<(IpAddr, Listening)>>,
    /// Where each listening socket listens, to find it again when it closes.
    keys: ConnIdMap<ListenerKey>,
}

impl Listeners {
    /// A socket listens: opened by `owner` (`listen()`), or found in the start snapshot
    /// held by `owner` and `shared_with`.
    pub fn open(&mut self, conn: &Conn, owner: Option<Task>, shared_with: &SharedWith) {
        self.close(conn);
        let key = ListenerKey::new(netns_of(conn), conn.tuple.local);
        let mut holders: Vec<Holder> = owner.into_iter().map(Holder::of).collect();
        let comm = owner.map(|t| t.comm).filter(|_| shared_with.same_comm());
        holders.extend(shared_with.pids().pids().iter().map(|&pid| Holder {
            pid,
            task: None,
            comm,
        }));
        let addresses = self.by_port.entry((key.netns, key.port)).or_default();
        let at = match addresses.iter().position(|(addr, _)| *addr == key.addr) {
            Some(at) => at,
            None => {
                addresses.push((key.addr, Listening::default()));
                addresses.len() - 1
            }
        };
        let listening = &mut addresses[at].1;
        listening.sockets.push(ListenerSocket {
            conn: conn.key(),
            holders,
            more: shared_with.pids().more(),
        });
        listening.refresh();
        self.keys.insert(conn.key(), key);
    }

    /// A listening socket closed.
    pub fn close(&mut self, conn: &Conn) {
        let Some(key) = self.keys.remove(&conn.key()) else {
            return;
        };
        let port = (key.netns, key.port);
        let Some(addresses) = self.by_port.get_mut(&port) else {
            return;
        };
        if let Some(at) = addresses.iter().position(|(addr, _)| *addr == key.addr) {
            let listening = &mut addresses[at].1;
            listening.sockets.retain(|s| s.conn != conn.key());
            if listening.sockets.is_empty() {
                addresses.swap_remove(at);
            } else {
                listening.refresh();
            }
        }
        if addresses.is_empty() {
            self.by_port.remove(&port);
        }
    }

    fn get(&self, key: ListenerKey) -> Option<&Listening> {
        let addresses = self.by_port.get(&(key.netns, key.port))?;
        addresses
            .iter()
            .find(|(addr, _)| *addr == key.addr)
            .map(|(_, listening)| listening)
    }

    /// The listeners a child born in `netns` with local end `local` came from.
    pub fn find(&self, netns: Netns, local: SocketAddr) -> Option<ListenerKey> {
        let addresses = self.by_port.get(&(netns, local.port()))?;
        ListenerKey::lookups(netns, local)
            .into_iter()
            .flatten()
            .find(|key| addresses.iter().any(|(addr, _)| *addr == key.addr))
    }

    /// Who owns a child of the listeners on `key` before its own first syscall: their
    /// one process, or all of them when several hold them; `None` when one listener's
    /// owner is unknown.
    pub fn owner_of_children(&self, key: ListenerKey) -> Option<Who> {
        self.get(key)?.children_owner
    }

    /// `task` acted in a syscall on a child of the listeners on `key`: it holds one of
    /// them, whether or not a listener names it.
    pub fn learn(&mut self, key: ListenerKey, task: Task) {
        let Some(listening) = self
            .by_port
            .get_mut(&(key.netns, key.port))
            .and_then(|addresses| addresses.iter_mut().find(|(addr, _)| *addr == key.addr))
            .map(|(_, listening)| listening)
        else {
            return;
        };
        let known = listening
            .sockets
            .iter()
            .flat_map(|s| s.holders.iter())
            .chain(listening.learned.iter())
            .any(|h| h.pid == task.pid);
        if !known {
            listening.learned.push(Holder::of(task));
            listening.refresh();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{ConnId, PidList, Scope, SocketTuple},
        synth::task,
    };

    fn listener(id: ConnId, addr: &str) -> Conn {
        Conn {
            id,
            scope: Scope {
                host: HostId::FIRST,
                netns: 1,
                cgroup: 0,
            },
            tuple: SocketTuple {
                local: addr.parse().unwrap(),
                remote: "0.0.0.0:0".parse().unwrap(),
            },
        }
    }

    fn owner_at(listeners: &Listeners, local: &str) -> Option<Who> {
        listeners
            .find((HostId::FIRST, 1), local.parse().unwrap())
            .and_then(|key| listeners.owner_of_children(key))
    }

    fn pid(who: Option<Who>) -> Option<u32> {
        match who {
            Some(Who::Task(t)) => Some(t.pid),
            _ => None,
        }
    }

    #[test]
    fn the_exact_address_wins_then_the_wildcard_then_dual_stack() {
        let none = SharedWith::default();
        let mut listeners = Listeners::default();
        listeners.open(&listener(1, "0.0.0.0:80"), Some(task(4, "v4")), &none);
        listeners.open(&listener(2, "[::]:80"), Some(task(6, "v6")), &none);
        listeners.open(&listener(3, "10.0.0.9:80"), Some(task(9, "nine")), &none);
        assert_eq!(pid(owner_at(&listeners, "10.0.0.1:80")), Some(4));
        assert_eq!(pid(owner_at(&listeners, "10.0.0.9:80")), Some(9));
        assert_eq!(pid(owner_at(&listeners, "[fd00::1]:80")), Some(6));
        assert_eq!(owner_at(&listeners, "10.0.0.1:81"), None);
        // Without the IPv4 wildcard, the dual-stack [::] listener takes IPv4.
        listeners.close(&listener(1, "0.0.0.0:80"));
        assert_eq!(pid(owner_at(&listeners, "10.0.0.1:80")), Some(6));
    }

    #[test]
    fn listeners_of_several_processes_give_candidates_never_one_of_them() {
        let none = SharedWith::default();
        let mut listeners = Listeners::default();
        // SO_REUSEPORT: two sockets on one address, one per process.
        listeners.open(&listener(1, "0.0.0.0:80"), Some(task(20, "web")), &none);
        listeners.open(&listener(2, "0.0.0.0:80"), Some(task(10, "web")), &none);
        let Some(Who::Candidates(c)) = owner_at(&listeners, "10.0.0.1:80") else {
            panic!("candidates expected");
        };
        assert_eq!(c.pids(), [10, 20]);
        assert_eq!(c.comm(), Some(&Comm::from_str_lossy("web")));
        // Different names: no name.
        listeners.open(&listener(3, "0.0.0.0:80"), Some(task(30, "other")), &none);
        let Some(Who::Candidates(c)) = owner_at(&listeners, "10.0.0.1:80") else {
            panic!("candidates expected");
        };
        assert_eq!((c.pids(), c.comm()), (&[10, 20, 30][..], None));
        // One listener without a known owner: unknown, not the others.
        listeners.open(&listener(4, "0.0.0.0:80"), None, &none);
        assert_eq!(owner_at(&listeners, "10.0.0.1:80"), None);
    }

    #[test]
    fn a_listener_shared_by_fork_gives_every_holder() {
        let mut listeners = Listeners::default();
        let master = task(100, "nginx");
        let shared = SharedWith::new(PidList::new(&[101, 102], 0), true);
        listeners.open(&listener(1, "0.0.0.0:80"), Some(master), &shared);
        let Some(Who::Candidates(c)) = owner_at(&listeners, "10.0.0.1:80") else {
            panic!("candidates expected");
        };
        assert_eq!(c.pids(), [100, 101, 102]);
        assert_eq!(c.comm(), Some(&master.comm));
    }

    #[test]
    fn a_process_seen_on_a_child_is_learned_as_a_holder() {
        let mut listeners = Listeners::default();
        listeners.open(
            &listener(1, "0.0.0.0:80"),
            Some(task(100, "server")),
            &SharedWith::default(),
        );
        let key = listeners
            .find((HostId::FIRST, 1), "10.0.0.1:80".parse().unwrap())
            .unwrap();
        listeners.learn(key, task(100, "server"));
        assert_eq!(pid(listeners.owner_of_children(key)), Some(100));
        // A forked worker accepted one: from now on, either may.
        listeners.learn(key, task(101, "server"));
        let Some(Who::Candidates(c)) = listeners.owner_of_children(key) else {
            panic!("candidates expected");
        };
        assert_eq!(c.pids(), [100, 101]);
        listeners.close(&listener(1, "0.0.0.0:80"));
        assert_eq!(
            listeners.find((HostId::FIRST, 1), "10.0.0.1:80".parse().unwrap()),
            None
        );
    }
}
