//! One row per connection, for `--connections`.

use std::{net::SocketAddr, sync::Arc};

use crate::{
    analysis::{
        pairs::{ConnectionOutcome, PairKey},
        tracker::Connection,
        verdict::{CloseVerdict, Side},
        workloads::Ends,
    },
    model::{ConnId, HostId, Task, Workload},
    owner::Candidates,
};

/// One connection of `--connections`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRow {
    /// The client socket's id when it was traced, otherwise the server socket's;
    /// `None` for a connect that only the refusing host saw.
    pub conn: Option<ConnId>,
    pub client_conn: Option<ConnId>,
    pub server_conn: Option<ConnId>,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_netns: Option<u32>,
    pub server_netns: Option<u32>,
    /// Whose trace holds each end (in a replay of several hosts).
    pub client_host: Option<HostId>,
    pub server_host: Option<HostId>,
    pub verdict: CloseVerdict,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub client_owner: Option<Task>,
    pub server_owner: Option<Task>,
    /// When an end's owner is not known but several processes may be it (a listener
    /// shared by several processes): their pids.
    pub client_candidates: Option<Candidates>,
    pub server_candidates: Option<Candidates>,
    /// The workload of each end, when the trace names it.
    pub client_workload: Option<Arc<Workload>>,
    pub server_workload: Option<Arc<Workload>>,
    /// When each side entered TIME_WAIT (it holds the 4-tuple for 60 s from then,
    /// unless a new connection reuses it).
    pub time_wait_ns: [Option<u64>; 2],
    pub resets: [bool; 2],
    /// Payload bytes each side sent, when the counters tell.
    pub bytes: [Option<u64>; 2],
    /// Segments each side retransmitted, when its own socket was traced with counters.
    pub retransmits: [Option<u32>; 2],
    /// The smoothed round-trip time (the client's estimate, else the server's).
    pub rtt_us: Option<u32>,
    pub preexisting: bool,
    pub incomplete: bool,
    pub role_guessed: bool,
}

impl ConnectionRow {
    /// The row of a connection the tracker handed over.
    pub fn of(c: &Connection, outcome: &ConnectionOutcome, ends: Ends) -> Self {
        let [client_workload, server_workload] = ends;
        let (client, server) = c.addresses();
        let time_wait = |side| c.endpoint(side).and_then(|e| e.time_wait_ns);
        Self {
            conn: c.client.or(c.server).map(|e| e.conn),
            client_conn: c.client.map(|e| e.conn),
            server_conn: c.server.map(|e| e.conn),
            client,
            server,
            client_netns: c.client.map(|e| e.netns),
            server_netns: c.server.map(|e| e.netns),
            client_host: c.client.map(|e| e.host),
            server_host: c.server.map(|e| e.host),
            verdict: outcome.verdict,
            start_ns: outcome.start_ns,
            end_ns: outcome.end_ns,
            client_owner: c.client.and_then(|e| e.owner),
            server_owner: c.server.and_then(|e| e.owner),
            client_candidates: c.candidates(Side::Client),
            server_candidates: c.candidates(Side::Server),
            client_workload,
            server_workload,
            time_wait_ns: [time_wait(Side::Client), time_wait(Side::Server)],
            resets: outcome.resets,
            bytes: outcome.bytes,
            retransmits: [c.retransmits(Side::Client), c.retransmits(Side::Server)],
            rtt_us: c.rtt_us(),
            preexisting: c.preexisting,
            incomplete: c.incomplete,
            role_guessed: c.role_guessed,
        }
    }

    /// The row of a connect that only the refusing host saw: its client port and
    /// socket are unknown.
    pub fn unseen_client(
        key: PairKey,
        host: HostId,
        outcome: &ConnectionOutcome,
        ends: Ends,
    ) -> Self {
        let [client_workload, server_workload] = ends;
        Self {
            conn: None,
            client_conn: None,
            server_conn: None,
            client: SocketAddr::new(key.client, 0),
            server: key.server,
            client_netns: None,
            server_netns: None,
            client_host: None,
            server_host: Some(host),
            verdict: outcome.verdict,
            start_ns: outcome.start_ns,
            end_ns: outcome.end_ns,
            client_owner: None,
            server_owner: None,
            client_candidates: None,
            server_candidates: None,
            client_workload,
            server_workload,
            time_wait_ns: [None; 2],
            resets: outcome.resets,
            bytes: outcome.bytes,
            retransmits: [None; 2],
            rtt_us: None,
            preexisting: outcome.preexisting,
            incomplete: outcome.incomplete,
            role_guessed: false,
        }
    }

    pub fn lifetime_ns(&self) -> Option<u64> {
        Some(self.end_ns?.saturating_sub(self.start_ns?))
    }

    /// Which sides entered TIME_WAIT.
    pub fn time_wait(&self) -> [bool; 2] {
        self.time_wait_ns.map(|t| t.is_some())
    }
}
