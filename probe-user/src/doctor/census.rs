//! Sockets per state and per namespace, and the largest groups of TIME_WAIT and
//! CLOSE_WAIT sockets with their owners, from a `sock_diag` snapshot.
//!
//! A CLOSE_WAIT socket is open in a process (its owner comes from `/proc/PID/fd`). A
//! TIME_WAIT socket is held by the kernel alone: no process has it open
//! (docs/kernel-facts.md §1.3). On the server side its local port is a listener's, and
//! the listener's owner is the process whose connections they were; on the client side
//! the owner stays unknown (a recording says who closed).

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, SocketAddr},
};

use crate::{
    kernel::diag::DiagSocket,
    model::{
        TcpState,
        doctor::{Holder, HolderOwner, HolderSource},
    },
    render::address::{EndpointText, IpText},
};

/// The states whose holders the doctor lists.
pub const HELD_STATES: [TcpState; 2] = [TcpState::TimeWait, TcpState::CloseWait];

/// Sockets per state name.
pub fn counts<'a>(
    sockets: impl IntoIterator<Item = &'a DiagSocket>,
) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for socket in sockets {
        *counts.entry(socket.state.name()).or_insert(0) += 1;
    }
    counts
}

/// A listening address and its owner.
type Listener = (IpAddr, Option<HolderOwner>);

/// Listening sockets by namespace and port.
struct Listeners(HashMap<(u32, u16), Vec<Listener>>);

impl Listeners {
    fn new(sockets: &[DiagSocket]) -> Self {
        let mut map: HashMap<_, Vec<_>> = HashMap::new();
        for s in sockets.iter().filter(|s| s.state == TcpState::Listen) {
            map.entry((s.scope.netns, s.tuple.local.port()))
                .or_default()
                .push((s.tuple.local.ip(), fd_owner(s)));
        }
        Self(map)
    }

    /// The listener `local` was accepted on, if any: same namespace and port, and the
    /// same address or a wildcard one. `Some(None)` is a listener of unknown owner.
    fn accepted_on(&self, netns: u32, local: SocketAddr) -> Option<Option<HolderOwner>> {
        let candidates = self.0.get(&(netns, local.port()))?;
        let exact = candidates.iter().find(|(ip, _)| *ip == local.ip());
        let wildcard = || candidates.iter().find(|(ip, _)| ip.is_unspecified());
        exact.or_else(wildcard).map(|(_, owner)| {
            owner.clone().map(|o| HolderOwner {
                source: HolderSource::Listener,
                ..o
            })
        })
    }
}

fn fd_owner(socket: &DiagSocket) -> Option<HolderOwner> {
    socket.owner.map(|task| HolderOwner {
        pid: task.pid,
        comm: task.comm.as_str().into_owned(),
        source: HolderSource::Fd,
    })
}

type GroupKey = (TcpState, u32, Option<HolderOwner>, Option<String>, String);

/// The `top` largest groups of each of [`HELD_STATES`], largest first: sockets of one
/// state, namespace and owner, to one peer (server side: a client address, grouped per
/// listening address; client side: a server address and port).
pub fn holders(sockets: &[DiagSocket], top: usize) -> Vec<Holder> {
    let listeners = Listeners::new(sockets);
    let mut groups: HashMap<GroupKey, u64> = HashMap::new();
    for s in sockets.iter().filter(|s| HELD_STATES.contains(&s.state)) {
        let netns = s.scope.netns;
        let key = match listeners.accepted_on(netns, s.tuple.local) {
            // Server side: the socket's own fd owner (CLOSE_WAIT), else the listener's.
            Some(listener_owner) => (
                s.state,
                netns,
                fd_owner(s).or(listener_owner),
                Some(EndpointText(s.tuple.local).to_string()),
                IpText(s.tuple.remote.ip()).to_string(),
            ),
            None => (
                s.state,
                netns,
                fd_owner(s),
                None,
                EndpointText(s.tuple.remote).to_string(),
            ),
        };
        *groups.entry(key).or_insert(0) += 1;
    }
    let mut sorted: Vec<(GroupKey, u64)> = groups.into_iter().collect();
    sorted.sort_by(|(a, ca), (b, cb)| (a.0, cb, a).cmp(&(b.0, ca, b)));
    let mut out = Vec::new();
    for state in HELD_STATES {
        out.extend(
            sorted
                .iter()
                .filter(|((s, ..), _)| *s == state)
                .take(top)
                .map(|((state, netns, owner, local, peer), count)| Holder {
                    state: state.name(),
                    netns: *netns,
                    count: *count,
                    owner: owner.clone(),
                    local: local.clone(),
                    peer: peer.clone(),
                }),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Comm, Scope, SocketTuple, Task};

    fn socket(
        netns: u32,
        local: &str,
        remote: &str,
        state: TcpState,
        pid: Option<u32>,
    ) -> DiagSocket {
        DiagSocket {
            scope: Scope::new(netns, 0),
            tuple: SocketTuple {
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
            },
            state,
            inode: pid.map_or(0, |p| p + 1000),
            uid: 0,
            timer_ms: None,
            owner: pid.map(|pid| Task {
                pid,
                tid: pid,
                comm: Comm::from_str_lossy(if pid == 7 { "java" } else { "client" }),
            }),
        }
    }

    #[test]
    fn server_time_wait_is_the_listeners_and_client_time_wait_has_no_owner() {
        use TcpState::*;
        let mut sockets = vec![
            socket(1, "0.0.0.0:2181", "0.0.0.0:0", Listen, Some(7)),
            // Another namespace's listener on the same port must not be used.
            socket(2, "0.0.0.0:9999", "0.0.0.0:0", Listen, Some(8)),
        ];
        for port in 0..5 {
            sockets.push(socket(
                1,
                "10.0.0.1:2181",
                &format!("10.0.0.2:{}", 40000 + port),
                TimeWait,
                None,
            ));
        }
        sockets.push(socket(1, "10.0.0.1:2181", "10.0.0.3:40000", TimeWait, None));
        for port in 0..3 {
            sockets.push(socket(
                2,
                &format!("10.0.0.2:{}", 50000 + port),
                "10.0.0.1:2181",
                TimeWait,
                None,
            ));
        }
        sockets.push(socket(
            2,
            "10.0.0.2:51000",
            "10.0.0.1:2181",
            CloseWait,
            Some(9),
        ));
        sockets.push(socket(
            2,
            "10.0.0.2:51001",
            "10.0.0.1:2181",
            CloseWait,
            Some(9),
        ));

        let all = holders(&sockets, 10);
        let tw: Vec<_> = all.iter().filter(|h| h.state == "TIME_WAIT").collect();
        assert_eq!(tw.len(), 3);
        assert_eq!((tw[0].count, tw[0].netns), (5, 1));
        let owner = tw[0].owner.as_ref().unwrap();
        assert_eq!(
            (owner.pid, owner.comm.as_str(), owner.source),
            (7, "java", HolderSource::Listener)
        );
        assert_eq!(tw[0].local.as_deref(), Some("10.0.0.1:2181"));
        assert_eq!(tw[0].peer, "10.0.0.2");
        assert_eq!(
            (tw[1].count, tw[1].netns, tw[1].owner.as_ref()),
            (3, 2, None)
        );
        assert_eq!(
            (tw[1].local.as_deref(), tw[1].peer.as_str()),
            (None, "10.0.0.1:2181")
        );
        assert_eq!(tw[2].count, 1);

        let cw: Vec<_> = all.iter().filter(|h| h.state == "CLOSE_WAIT").collect();
        assert_eq!(cw.len(), 1);
        assert_eq!(cw[0].count, 2);
        let owner = cw[0].owner.as_ref().unwrap();
        assert_eq!((owner.pid, owner.source), (9, HolderSource::Fd));

        assert_eq!(holders(&sockets, 1).len(), 2, "top applies per state");
        let c = counts(&sockets);
        assert_eq!((c["TIME_WAIT"], c["CLOSE_WAIT"], c["LISTEN"]), (9, 2, 2));
    }
}
