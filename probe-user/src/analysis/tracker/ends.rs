//! Finding the two ends of a connection: a client socket and a server socket are one
//! connection when they have the same client-view 4-tuple, and exactly one socket of
//! each side has it (otherwise which goes with which is ambiguous: no merge).

use rustc_hash::FxHashMap;

use crate::{
    analysis::{keys::AddrPairKey, tracker::roles::client_view, verdict::Side},
    model::{Scope, SocketTuple},
};

/// The sockets of one client-view 4-tuple.
#[derive(Clone, Copy, Debug, Default)]
struct Ends {
    client: Option<u32>,
    server: Option<u32>,
    clients: u16,
    servers: u16,
}

/// Connection slots by the client-view 4-tuple of their sockets.
#[derive(Clone, Debug, Default)]
pub struct EndsIndex {
    /// Keyed by the fingerprint of (client address, server address): a small key keeps
    /// this table, touched twice per socket, in cache.
    ends: FxHashMap<u64, Ends>,
}

/// The namespace and the host are left out: the two ends of a connection may live in
/// two namespaces, on two hosts. Except the host over loopback, which never leaves it.
/// (The namespace stays out even there: an RST sent without a socket may not know it.)
fn key(scope: &Scope, tuple: &SocketTuple, side: Side) -> u64 {
    let (client, server) = client_view(tuple, side);
    if client.ip().is_loopback() {
        AddrPairKey::new(0, client, server)
            .on_host(scope.host)
            .fingerprint()
    } else {
        AddrPairKey::new(0, client, server).fingerprint()
    }
}

impl EndsIndex {
    /// Registers the socket on `side` of the connection in `slot`. Returns the client's
    /// and the server's slots when this makes a pair to merge (into the client's).
    pub fn register(
        &mut self,
        scope: &Scope,
        tuple: &SocketTuple,
        side: Side,
        slot: u32,
    ) -> Option<(u32, u32)> {
        let ends = self.ends.entry(key(scope, tuple, side)).or_default();
        match side {
            Side::Client => {
                ends.clients += 1;
                ends.client.get_or_insert(slot);
            }
            Side::Server => {
                ends.servers += 1;
                ends.server.get_or_insert(slot);
            }
        }
        match (ends.clients, ends.servers, ends.client, ends.server) {
            (1, 1, Some(client), Some(server)) if client != server => {
                ends.server = Some(client);
                Some((client, server))
            }
            _ => None,
        }
    }

    /// Forgets a registered socket of the connection in `slot`.
    pub fn unregister(&mut self, scope: &Scope, tuple: &SocketTuple, side: Side, slot: u32) {
        let key = key(scope, tuple, side);
        let Some(ends) = self.ends.get_mut(&key) else {
            return;
        };
        let (count, held) = match side {
            Side::Client => (&mut ends.clients, &mut ends.client),
            Side::Server => (&mut ends.servers, &mut ends.server),
        };
        *count = count.saturating_sub(1);
        // The slot will be reused: never leave a reference to it behind.
        if *held == Some(slot) || *count == 0 {
            *held = None;
        }
        if ends.clients == 0 && ends.servers == 0 {
            self.ends.remove(&key);
        }
    }

    /// The connection a socket on `side` with this tuple would belong to.
    pub fn find(&self, scope: &Scope, tuple: &SocketTuple, side: Side) -> Option<u32> {
        let ends = self.ends.get(&key(scope, tuple, side))?;
        ends.client.or(ends.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::HostId, synth::tuple};

    #[test]
    fn one_client_and_one_server_merge() {
        let mut index = EndsIndex::default();
        let client = tuple("10.0.0.2:40000", "10.0.0.1:80");
        assert_eq!(
            index.register(&Scope::default(), &client, Side::Client, 3),
            None
        );
        assert_eq!(
            index.register(&Scope::default(), &client.reversed(), Side::Server, 5),
            Some((3, 5))
        );
        assert_eq!(
            index.find(&Scope::default(), &client, Side::Client),
            Some(3)
        );
        assert_eq!(
            index.find(&Scope::default(), &client.reversed(), Side::Server),
            Some(3)
        );
        index.unregister(&Scope::default(), &client, Side::Client, 3);
        index.unregister(&Scope::default(), &client.reversed(), Side::Server, 3);
        assert_eq!(index.find(&Scope::default(), &client, Side::Client), None);
        assert!(index.ends.is_empty());
    }

    #[test]
    fn two_clients_on_one_tuple_are_ambiguous() {
        let mut index = EndsIndex::default();
        let client = tuple("10.0.0.2:40000", "10.0.0.1:80");
        index.register(&Scope::default(), &client, Side::Client, 1);
        index.register(&Scope::default(), &client, Side::Client, 2);
        assert_eq!(
            index.register(&Scope::default(), &client.reversed(), Side::Server, 3),
            None
        );
        index.unregister(&Scope::default(), &client, Side::Client, 1);
        assert_eq!(
            index.find(&Scope::default(), &client, Side::Client),
            Some(3),
            "the server's slot"
        );
    }

    #[test]
    fn ends_on_two_hosts_merge_except_over_loopback() {
        let on = |host| Scope {
            host: HostId(host),
            ..Scope::default()
        };
        let mut index = EndsIndex::default();
        let client = tuple("10.0.0.2:40000", "10.0.0.1:80");
        index.register(&on(0), &client, Side::Client, 1);
        assert_eq!(
            index.register(&on(1), &client.reversed(), Side::Server, 2),
            Some((1, 2))
        );
        let local = tuple("127.0.0.1:40000", "127.0.0.1:80");
        index.register(&on(0), &local, Side::Client, 3);
        assert_eq!(
            index.register(&on(1), &local.reversed(), Side::Server, 4),
            None
        );
        assert_eq!(
            index.register(&on(1), &local, Side::Client, 5),
            Some((5, 4))
        );
    }
}
