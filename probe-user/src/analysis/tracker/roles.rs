//! Which end of a connection a socket is, when its first event does not say: listening
//! sockets tell servers from clients.

use std::{hash::Hash, net::SocketAddr};

use rustc_hash::FxHashMap;

use crate::{
    analysis::{pairs::PairKey, verdict::Side},
    model::{HostId, Scope, SocketTuple},
};

/// The listening sockets of the trace (of every host).
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    /// Per (host, netns, port).
    by_netns: FxHashMap<(HostId, u32, u16), u32>,
    /// Per port, in any namespace of the host.
    by_port: FxHashMap<(HostId, u16), u32>,
}

/// The (client, server) addresses of a socket on `side`.
pub fn client_view(tuple: &SocketTuple, side: Side) -> (SocketAddr, SocketAddr) {
    match side {
        Side::Client => (tuple.local, tuple.remote),
        Side::Server => (tuple.remote, tuple.local),
    }
}

fn bump<K: Hash + Eq>(map: &mut FxHashMap<K, u32>, key: K, open: bool) {
    if open {
        *map.entry(key).or_default() += 1;
    } else if let Some(count) = map.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            map.remove(&key);
        }
    }
}

impl Listeners {
    /// A socket started (`open`) or stopped listening on `port` in `scope`.
    pub fn update(&mut self, scope: &Scope, port: u16, open: bool) {
        bump(&mut self.by_netns, (scope.host, scope.netns, port), open);
        bump(&mut self.by_port, (scope.host, port), open);
    }

    /// Something listens on `port`: in the namespace of `scope`, or in any namespace of
    /// its host when the namespace is unknown (0).
    pub fn is_listening(&self, scope: &Scope, port: u16) -> bool {
        if scope.netns == 0 {
            self.by_port.contains_key(&(scope.host, port))
        } else {
            self.by_netns.contains_key(&(scope.host, scope.netns, port))
        }
    }

    /// The role of a socket first seen without an opening transition: the server end
    /// if something listens on its local port, the client end if something listens on
    /// its peer's port, otherwise the end with the lower port is the server's
    /// (ephemeral ports are high).
    pub fn guess_side(&self, scope: &Scope, tuple: &SocketTuple) -> Side {
        if self
            .by_netns
            .contains_key(&(scope.host, scope.netns, tuple.local.port()))
        {
            Side::Server
        } else if self
            .by_port
            .contains_key(&(scope.host, tuple.remote.port()))
        {
            Side::Client
        } else if tuple.local.port() < tuple.remote.port() {
            Side::Server
        } else {
            Side::Client
        }
    }

    /// The pair and side of a socket that the tracker may not know (TIME_WAIT and end
    /// snapshot sockets).
    pub fn classify(&self, scope: &Scope, tuple: &SocketTuple) -> (PairKey, Side) {
        let side = self.guess_side(scope, tuple);
        let (client, server) = client_view(tuple, side);
        (PairKey::new(client.ip(), server), side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::HostId, synth::tuple};

    fn ns(netns: u32) -> Scope {
        Scope::new(netns, 0)
    }

    #[test]
    fn listeners_make_servers_and_low_ports_guess_the_rest() {
        let mut listeners = Listeners::default();
        let accepted = tuple("10.0.0.1:50000", "10.0.0.2:40000");
        assert_eq!(
            listeners.guess_side(&ns(1), &accepted),
            Side::Client,
            "the higher port"
        );
        listeners.update(&ns(1), 50000, true);
        assert_eq!(listeners.guess_side(&ns(1), &accepted), Side::Server);
        assert_eq!(
            listeners.guess_side(&ns(2), &accepted.reversed()),
            Side::Client
        );
        let (key, side) = listeners.classify(&ns(2), &accepted.reversed());
        assert_eq!(side, Side::Client);
        assert_eq!(
            (key.client.to_string(), key.server.to_string()),
            ("10.0.0.2".into(), "10.0.0.1:50000".into())
        );
        listeners.update(&ns(1), 50000, false);
        assert!(!listeners.is_listening(&ns(1), 50000) && !listeners.is_listening(&ns(0), 50000));
    }

    #[test]
    fn an_unknown_namespace_asks_every_namespace() {
        let mut listeners = Listeners::default();
        listeners.update(&ns(7), 80, true);
        listeners.update(&ns(8), 80, true);
        listeners.update(&ns(7), 80, false);
        assert!(listeners.is_listening(&ns(0), 80));
        assert!(!listeners.is_listening(&ns(7), 80));
        assert!(listeners.is_listening(&ns(8), 80));
    }

    #[test]
    fn hosts_do_not_share_listeners() {
        let mut listeners = Listeners::default();
        listeners.update(&ns(7), 80, true);
        let other_host = Scope {
            host: HostId(1),
            ..ns(7)
        };
        assert!(!listeners.is_listening(&other_host, 80));
        assert!(!listeners.is_listening(
            &Scope {
                netns: 0,
                ..other_host
            },
            80
        ));
        let accepted = tuple("10.0.0.1:80", "10.0.0.2:40000");
        assert_eq!(listeners.guess_side(&ns(7), &accepted), Side::Server);
        assert_eq!(
            listeners.guess_side(&other_host, &accepted),
            Side::Server,
            "the lower port"
        );
        let high = tuple("10.0.0.1:80", "10.0.0.2:40");
        assert_eq!(listeners.guess_side(&ns(7), &high), Side::Server);
        assert_eq!(listeners.guess_side(&other_host, &high), Side::Client);
    }
}
