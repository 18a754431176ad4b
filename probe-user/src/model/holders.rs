//! The other processes that hold a socket: a listener shared by `fork()` (a pre-forking
//! server, nginx's master and workers), found through `/proc/*/fd`.

use super::Task;

/// How many other holders are listed by pid; beyond them only their number is kept.
pub const LISTED_HOLDERS: usize = 7;

/// Processes that hold a socket besides its first owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SharedWith {
    pids: [u32; LISTED_HOLDERS],
    len: u8,
    /// Holders beyond those listed.
    more: u32,
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
        Self::from_pids(&pids, 0, same_comm)
    }

    /// `pids` (the first [`LISTED_HOLDERS`] of them are kept) and `more` beyond them.
    pub fn from_pids(pids: &[u32], more: u32, same_comm: bool) -> Self {
        let mut shared = Self {
            same_comm,
            ..Self::default()
        };
        let listed = pids.len().min(LISTED_HOLDERS);
        shared.pids[..listed].copy_from_slice(&pids[..listed]);
        shared.len = listed as u8;
        let beyond = u32::try_from(pids.len() - listed).unwrap_or(u32::MAX);
        shared.more = more.saturating_add(beyond);
        shared
    }

    /// No other holder.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.more == 0
    }

    /// The listed pids.
    pub fn pids(&self) -> &[u32] {
        &self.pids[..usize::from(self.len)]
    }

    /// Holders beyond [`Self::pids`].
    pub fn more(&self) -> u32 {
        self.more
    }

    pub fn same_comm(&self) -> bool {
        self.same_comm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Comm;

    fn task(pid: u32, comm: &str) -> Task {
        Task {
            pid,
            tid: pid,
            comm: Comm::from_str_lossy(comm),
        }
    }

    #[test]
    fn holders_are_listed_by_pid_and_counted_beyond() {
        let master = task(10, "nginx");
        let workers: Vec<Task> = (11..21).rev().map(|p| task(p, "nginx")).collect();
        let shared = SharedWith::of(&master, &workers);
        assert_eq!(shared.pids(), [11, 12, 13, 14, 15, 16, 17]);
        assert_eq!(shared.more(), 3);
        assert!(shared.same_comm() && !shared.is_empty());
        let mixed = SharedWith::of(&master, &[task(11, "nginx"), task(12, "sh"), master]);
        assert_eq!(mixed.pids(), [11, 12]);
        assert!(!mixed.same_comm());
        assert!(SharedWith::of(&master, &[]).is_empty());
    }
}
