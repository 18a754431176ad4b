//! The processes one socket may belong to, when the trace cannot say which.

use crate::model::{Comm, PidList, SharedWith, Task};

/// Processes that may own a socket: those holding the listener an accepted socket came
/// from (shared by `fork()`, or `SO_REUSEPORT` listeners of several processes) before
/// the accepting one shows itself, or those holding a socket in the start snapshot.
/// Never one of them picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidates {
    pids: PidList,
    /// The name they all share, when known.
    comm: Option<Comm>,
}

impl Candidates {
    /// From distinct `pids` in increasing order, `more` unlisted ones, and the name
    /// they share.
    pub fn new(pids: &[u32], more: u32, comm: Option<Comm>) -> Self {
        Self {
            pids: PidList::new(pids, more),
            comm,
        }
    }

    /// Every process holding a snapshot socket: its first owner and the others.
    pub fn holders_of(owner: &Task, shared: &SharedWith) -> Self {
        let mut pids = vec![owner.pid];
        pids.extend_from_slice(shared.pids().pids());
        let comm = shared.same_comm().then_some(owner.comm);
        Self::new(&pids, shared.pids().more(), comm)
    }

    /// The listed pids, in increasing order.
    pub fn pids(&self) -> &[u32] {
        self.pids.pids()
    }

    /// How many they are, listed or not.
    pub fn count(&self) -> u64 {
        self.pids.count()
    }

    /// The program's name, when every candidate has the same.
    pub fn comm(&self) -> Option<&Comm> {
        self.comm.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_beyond_the_list_are_counted() {
        let pids: Vec<u32> = (100..110).collect();
        let c = Candidates::new(&pids, 2, Some(Comm::from_str_lossy("nginx")));
        assert_eq!(c.pids(), &pids[..8]);
        assert_eq!(c.count(), 12);
        assert_eq!(c.comm().map(Comm::as_str).as_deref(), Some("nginx"));
    }
}
