//! The processes one socket may belong to, when the trace cannot say which.

use crate::model::Comm;

/// How many candidates are listed by pid; beyond them only their number is kept.
pub const LISTED_CANDIDATES: usize = 8;

/// Processes that may own a socket: those holding the listener an accepted socket came
/// from (shared by `fork()`, or `SO_REUSEPORT` listeners of several processes) before
/// the accepting one shows itself, or those holding a socket in the start snapshot.
/// Never one of them picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidates {
    /// In order of pid.
    pids: [u32; LISTED_CANDIDATES],
    len: u8,
    /// Candidates beyond those listed.
    more: u32,
    /// The name they all share, when known.
    comm: Option<Comm>,
}

impl Candidates {
    /// From distinct `pids` in increasing order (the first [`LISTED_CANDIDATES`] are
    /// listed), `more` unlisted ones, and the name they share.
    pub fn new(pids: &[u32], more: u32, comm: Option<Comm>) -> Self {
        let mut candidates = Self {
            pids: [0; LISTED_CANDIDATES],
            len: 0,
            more,
            comm,
        };
        let listed = pids.len().min(LISTED_CANDIDATES);
        candidates.pids[..listed].copy_from_slice(&pids[..listed]);
        candidates.len = listed as u8;
        let beyond = u32::try_from(pids.len() - listed).unwrap_or(u32::MAX);
        candidates.more = more.saturating_add(beyond);
        candidates
    }

    /// The listed pids, in increasing order.
    pub fn pids(&self) -> &[u32] {
        &self.pids[..usize::from(self.len)]
    }

    /// Candidates beyond [`Self::pids`].
    pub fn more(&self) -> u32 {
        self.more
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
        assert_eq!(c.more(), 4);
        assert_eq!(c.comm().map(Comm::as_str).as_deref(), Some("nginx"));
    }
}
