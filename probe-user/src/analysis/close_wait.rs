//! CLOSE_WAIT leaks: the peer closed, the local application never called `close()`.

use std::{net::SocketAddr, sync::Arc};

use rustc_hash::FxHashMap;

use crate::{
    analysis::tracker::Endpoint,
    model::{ConnId, ConnKey, HostId, Scope, Task, TcpState, Workload},
};

/// A socket that sat in CLOSE_WAIT past the threshold and was still there at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseWaitLeak {
    pub conn: ConnId,
    pub host: HostId,
    pub netns: u32,
    pub cgroup: u64,
    /// The leaking socket's workload, when the trace names it.
    pub workload: Option<Arc<Workload>>,
    pub owner: Option<Task>,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub since_ns: u64,
    /// Age at the end of the trace (or of `--until`).
    pub age_ns: u64,
    /// It was already in CLOSE_WAIT when the trace started: the age is a lower bound.
    pub at_least: bool,
}

impl CloseWaitLeak {
    pub const fn scope(&self) -> Scope {
        Scope {
            netns: self.netns,
            cgroup: self.cgroup,
            host: self.host,
        }
    }
}

/// The sockets that sat in CLOSE_WAIT past the threshold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloseWaitBook {
    threshold_ns: u64,
    /// When the analysis ends; a socket still in CLOSE_WAIT is aged up to here.
    pub end_ns: u64,
    leaks: Vec<CloseWaitLeak>,
    /// Sockets past the threshold that were closed before the end.
    closed_late: u64,
    /// Owners of CLOSE_WAIT sockets from the end snapshot (`/proc/*/fd`).
    end_owners: FxHashMap<ConnKey, Task>,
}

impl CloseWaitBook {
    pub fn new(threshold_ns: u64) -> Self {
        Self {
            threshold_ns,
            ..Self::default()
        }
    }

    /// The owner the end snapshot found for a socket in CLOSE_WAIT.
    pub fn end_owner(&mut self, conn: ConnKey, owner: Task) {
        self.end_owners.insert(conn, owner);
    }

    /// Looks at a socket of a connection that has been handed over (`preexisting`:
    /// the connection was in the start snapshot).
    pub fn record(&mut self, endpoint: &Endpoint, preexisting: bool) {
        let Some(since) = endpoint.close_wait_ns else {
            return;
        };
        if endpoint.state == TcpState::CloseWait {
            let age = self.end_ns.saturating_sub(since);
            if age >= self.threshold_ns {
                self.leaks.push(CloseWaitLeak {
                    conn: endpoint.conn,
                    host: endpoint.host,
                    netns: endpoint.netns,
                    cgroup: endpoint.cgroup,
                    workload: None,
                    owner: endpoint
                        .owner
                        .or_else(|| self.end_owners.get(&endpoint.key()).copied()),
                    local: endpoint.tuple.local,
                    peer: endpoint.tuple.remote,
                    since_ns: since,
                    age_ns: age,
                    at_least: preexisting,
                });
            }
        } else if endpoint
            .close_wait_left_ns
            .is_some_and(|left| left.saturating_sub(since) >= self.threshold_ns)
        {
            self.closed_late += 1;
        }
    }

    /// The leaks, oldest first, and how many sockets were closed late.
    pub fn finish(self) -> (Vec<CloseWaitLeak>, u64) {
        let mut leaks = self.leaks;
        leaks.sort_by(|a, b| b.age_ns.cmp(&a.age_ns).then(a.conn.cmp(&b.conn)));
        (leaks, self.closed_late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{task, tuple};

    const S: u64 = 1_000_000_000;

    fn socket(id: ConnId, state: TcpState, since: u64, left: Option<u64>) -> Endpoint {
        let mut e = Endpoint::new(id, 7, tuple("10.0.0.1:80", "10.0.0.2:40000"), state);
        e.close_wait_ns = Some(since);
        e.close_wait_left_ns = left;
        e
    }

    #[test]
    fn sockets_still_in_close_wait_past_the_threshold_are_leaks_oldest_first() {
        let mut book = CloseWaitBook::new(5 * S);
        book.end_ns = 20 * S;
        book.end_owner(ConnKey::first_host(2), task(42, "java"));
        book.record(&socket(1, TcpState::CloseWait, 12 * S, None), false);
        book.record(&socket(2, TcpState::CloseWait, 10 * S, None), true);
        book.record(&socket(3, TcpState::CloseWait, 18 * S, None), false);
        book.record(&socket(4, TcpState::Close, S, Some(7 * S)), false);
        book.record(&socket(5, TcpState::Close, S, Some(2 * S)), false);
        book.record(
            &Endpoint::new(6, 7, tuple("10.0.0.1:80", "10.0.0.2:1"), TcpState::Close),
            false,
        );
        let (leaks, closed_late) = book.finish();
        let found: Vec<(ConnId, u64, bool)> = leaks
            .iter()
            .map(|l| (l.conn, l.age_ns, l.at_least))
            .collect();
        assert_eq!(found, [(2, 10 * S, true), (1, 8 * S, false)]);
        assert_eq!(
            leaks[0].owner.map(|t| t.pid),
            Some(42),
            "from the end snapshot"
        );
        assert_eq!(leaks[1].owner, None);
        assert_eq!(leaks[0].peer.to_string(), "10.0.0.2:40000");
        assert_eq!(closed_late, 1);
    }
}
