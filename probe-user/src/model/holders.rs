//! The processes that hold a socket: a listener shared by `fork()` (a pre-forking
//! server, nginx's master and workers), found through `/proc/*/fd`.

use super::Task;

/// How many pids a [`PidList`] lists; beyond them only their number is kept.
pub const LISTED_PIDS: usize = 8;

/// Distinct pids in increasing order, the first [`LISTED_PIDS`] of them listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PidList {
    pids: [u32; LISTED_PIDS],
    len: u8,
    /// Pids beyond those listed.
    more: u32,
}

impl PidList {
    /// `pids` (distinct, in increasing order) and `more` unlisted ones.
    pub fn new(pids: &[u32], more: u32) -> Self {
        let mut list = Self::default();
        let listed = pids.len().min(LISTED_PIDS);
        list.pids[..listed].copy_from_slice(&pids[..listed]);
        list.len = listed as u8;
        let beyond = u32::try_from(pids.len() - listed).unwrap_or(u32::MAX);
        list.more = more.saturating_add(beyond);
        list
    }

    /// The listed pids.
    pub fn pids(&self) -> &[u32] {
        &self.pids[..usize::from(self.len)]
    }

    /// Pids beyond [`Self::pids`].
    pub fn more(&self) -> u32 {
        self.more
    }

    /// All of them: listed and not.
    pub fn count(&self) -> u64 {
        self.pids().len() as u64 + u64::from(self.more)
    }
}

/// Processes that hold a socket besides its first owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SharedWith {
    pids: PidList,
    /// Every holder has the first owner's name.
    same_comm: bool,
}

impl SharedWith {
    /// The holders after `first` (which is not among them), in order of pid.
    pub fn of(first: &Task, others: &[Task]) -> Self {
        let mut pids: Vec<u32> = others
            .iter()
            .map(|t| t.pid)
            .filter(|&p| p != first.pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        let same_comm = others.iter().all(|t| t.comm == first.comm);
        Self::new(PidList::new(&pids, 0), same_comm)
    }

    pub fn new(pids: PidList, same_comm: bool) -> Self {
        Self { pids, same_comm }
    }

    /// No other holder.
    pub fn is_empty(&self) -> bool {
        self.pids.count() == 0
    }

    /// The other holders.
    pub fn pids(&self) -> &PidList {
        &self.pids
    }

    pub fn same_comm(&self) -> bool {
        self.same_comm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::task;

    #[test]
    fn holders_are_listed_by_pid_and_counted_beyond() {
        let master = task(10, "nginx");
        let workers: Vec<Task> = (11..21).rev().map(|p| task(p, "nginx")).collect();
        let shared = SharedWith::of(&master, &workers);
        assert_eq!(shared.pids().pids(), [11, 12, 13, 14, 15, 16, 17, 18]);
        assert_eq!(shared.pids().more(), 2);
        assert_eq!(shared.pids().count(), 10);
        assert!(shared.same_comm() && !shared.is_empty());
        let mixed = SharedWith::of(&master, &[task(11, "nginx"), task(12, "sh"), master]);
        assert_eq!(mixed.pids().pids(), [11, 12]);
        assert!(!mixed.same_comm());
        assert!(SharedWith::of(&master, &[]).is_empty());
    }
}
