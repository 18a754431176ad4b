//! Which end of a connection a socket is, when its first event does not say: listening
//! sockets tell servers from clients.

use std::{hash::Hash, net::SocketAddr};

use rustc_hash::FxHashMap;

use crate::{
    analysis::{pairs::PairKey, verdict::Side},
    model::SocketTuple,
};

/// The listening sockets of the trace.
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    /// Per (netns, port).
    by_netns: FxHashMap<(u32, u16), u32>,
    /// Per port, in any namespace.
    by_port: FxHashMap<u16, u32>,
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
    /// A socket started (`open`) or stopped listening on `port`.
    pub fn update(&mut self, netns: u32, port: u16, open: bool) {
        bump(&mut self.by_netns, (netns, port), open);
        bump(&mut self.by_port, port, open);
    }

    /// Something listens on `port`: in `netns`, or in any namespace when `netns` is
    /// unknown (0).
    pub fn is_listening(&self, netns: u32, port: u16) -> bool {
        if netns == 0 {
            self.by_port.contains_key(&port)
        } else {
            self.by_netns.contains_key(&(netns, port))
        }
    }

    /// The role of a socket first seen without an opening transition: the server end
    /// if something listens on its local port, the client end if something listens on
    /// its peer's port, otherwise the end with the lower port is the server's
    /// (ephemeral ports are high).
    pub fn guess_side(&self, netns: u32, tuple: &SocketTuple) -> Side {
        if self.by_netns.contains_key(&(netns, tuple.local.port())) {
            Side::Server
        } else if self.by_port.contains_key(&tuple.remote.port()) {
            Side::Client
        } else if tuple.local.port() < tuple.remote.port() {
            Side::Server
        } else {
            Side::Client
        }
    }

    /// The pair and side of a socket that the tracker may not know (TIME_WAIT and end
    /// snapshot sockets).
    pub fn classify(&self, netns: u32, tuple: &SocketTuple) -> (PairKey, Side) {
        let side = self.guess_side(netns, tuple);
        let (client, server) = client_view(tuple, side);
        (PairKey::new(client.ip(), server), side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::tuple;

    #[test]
    fn listeners_make_servers_and_low_ports_guess_the_rest() {
        let mut listeners = Listeners::default();
        let accepted = tuple("10.0.0.1:50000", "10.0.0.2:40000");
        assert_eq!(
            listeners.guess_side(1, &accepted),
            Side::Client,
            "the higher port"
        );
        listeners.update(1, 50000, true);
        assert_eq!(listeners.guess_side(1, &accepted), Side::Server);
        assert_eq!(listeners.guess_side(2, &accepted.reversed()), Side::Client);
        let (key, side) = listeners.classify(2, &accepted.reversed());
        assert_eq!(side, Side::Client);
        assert_eq!(
            (key.client.to_string(), key.server.to_string()),
            ("10.0.0.2".into(), "10.0.0.1:50000".into())
        );
        listeners.update(1, 50000, false);
        assert!(!listeners.is_listening(1, 50000) && !listeners.is_listening(0, 50000));
    }

    #[test]
    fn an_unknown_namespace_asks_every_namespace() {
        let mut listeners = Listeners::default();
        listeners.update(7, 80, true);
        listeners.update(8, 80, true);
        listeners.update(7, 80, false);
        assert!(listeners.is_listening(0, 80));
        assert!(!listeners.is_listening(7, 80));
        assert!(listeners.is_listening(8, 80));
    }
}
