//! Replays of several traces (hosts): which host an event came from, connection ids
//! made unique across hosts, and moving an event onto the merged timeline.

use std::hash::{Hash, Hasher};

use super::{ConnId, SocketRef, TraceEvent};

/// Which trace of a replay an event came from: the index of its host in the replay's
/// host list (the traces of one recording, rotated into parts, are one host). Always
/// [`HostId::FIRST`] in a replay of one recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub u16);

impl HostId {
    pub const FIRST: Self = Self(0);

    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// The names of a replay's hosts, by [`HostId`]: the host name of each recording
/// (`node#2` for a second recording of one host).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostNames(pub Vec<String>);

impl HostNames {
    pub fn name(&self, host: HostId) -> &str {
        self.0.get(host.index()).map_or("?", String::as_str)
    }

    /// More than one host: outputs say which host each line is about.
    pub fn several(&self) -> bool {
        self.0.len() > 1
    }
}

/// A connection among those of every host: ids are unique only within the recording
/// that handed them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnKey {
    pub host: HostId,
    pub id: ConnId,
}

impl ConnKey {
    /// A connection of the first (or only) host.
    pub const fn first_host(id: ConnId) -> Self {
        Self {
            host: HostId::FIRST,
            id,
        }
    }
}

impl Hash for ConnKey {
    /// One word, so that [`crate::idmap::ConnIdHasher`] keeps neighbouring ids of a host
    /// in neighbouring buckets; equality still compares both fields.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.id ^ (u64::from(self.host.0) << 48));
    }
}

impl SocketRef {
    fn set_host(&mut self, host: HostId) {
        match self {
            Self::Conn(conn) => conn.scope.host = host,
            Self::Unmatched { scope, .. } => scope.host = host,
        }
    }
}

impl TraceEvent {
    /// The host the event's socket (or gap) is on.
    pub const fn host(&self) -> HostId {
        match self {
            Self::Snapshot(s) => s.conn.scope.host,
            Self::Transition(t) => t.conn.scope.host,
            Self::ResetSent(r) => match &r.socket {
                SocketRef::Conn(conn) => conn.scope.host,
                SocketRef::Unmatched { scope, .. } => scope.host,
            },
            Self::ResetReceived(r) => r.conn.scope.host,
            Self::SocketError(e) => match &e.socket {
                SocketRef::Conn(conn) => conn.scope.host,
                SocketRef::Unmatched { scope, .. } => scope.host,
            },
            Self::Lost(g) => g.host,
        }
    }

    /// Marks the event's socket as one of `host`'s.
    pub fn set_host(&mut self, host: HostId) {
        match self {
            Self::Snapshot(s) => s.conn.scope.host = host,
            Self::Transition(t) => t.conn.scope.host = host,
            Self::ResetSent(r) => r.socket.set_host(host),
            Self::ResetReceived(r) => r.conn.scope.host = host,
            Self::SocketError(e) => e.socket.set_host(host),
            Self::Lost(g) => g.host = host,
        }
    }

    /// Moves the event `shift_ns` later (onto a timeline that starts earlier than its
    /// trace did); saturates rather than wraps.
    pub fn shift(&mut self, shift_ns: u64) {
        let later = |ts: &mut u64| *ts = ts.saturating_add(shift_ns);
        match self {
            Self::Snapshot(s) => later(&mut s.ts_ns),
            Self::Transition(t) => later(&mut t.ts_ns),
            Self::ResetSent(r) => later(&mut r.ts_ns),
            Self::ResetReceived(r) => later(&mut r.ts_ns),
            Self::SocketError(e) => later(&mut e.ts_ns),
            Self::Lost(g) => {
                later(&mut g.from_ns);
                later(&mut g.to_ns);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, hash::BuildHasher as _};

    use super::*;
    use crate::{
        idmap::ConnIdHasher,
        model::{Conn, Gap, GapCause, Scope},
        synth::{transition, tuple},
    };

    #[test]
    fn keys_of_two_hosts_differ_even_with_equal_hashes() {
        let a = ConnKey {
            host: HostId(0),
            id: 1 << 48,
        };
        let b = ConnKey {
            host: HostId(1),
            id: 0,
        };
        let build = std::hash::BuildHasherDefault::<ConnIdHasher>::default();
        assert_eq!(build.hash_one(a), build.hash_one(b));
        assert_ne!(a, b);
        let set: HashSet<ConnKey> = [a, b].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn events_move_to_their_host_and_timeline() {
        let conn = Conn {
            id: 7,
            scope: Scope::new(4, 0),
            tuple: tuple("10.0.0.2:40000", "10.0.0.1:80"),
        };
        let mut event = transition(
            5,
            conn,
            crate::model::TcpState::Close,
            crate::model::TcpState::SynSent,
            None,
        );
        event.set_host(HostId(3));
        event.shift(10);
        assert_eq!((event.host(), event.ts_ns()), (HostId(3), 15));
        let TraceEvent::Transition(t) = event else {
            panic!()
        };
        assert_eq!(
            t.conn.key(),
            ConnKey {
                host: HostId(3),
                id: 7
            }
        );
        let mut gap = TraceEvent::Lost(Gap {
            from_ns: 1,
            to_ns: u64::MAX - 1,
            lost: 1,
            cpu: None,
            cause: GapCause::RingFull,
            host: HostId::FIRST,
        });
        gap.shift(5);
        assert_eq!(gap.ts_ns(), u64::MAX);
    }
}
