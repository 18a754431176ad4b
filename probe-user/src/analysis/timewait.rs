//! TIME_WAIT accounting. No tracepoint ever reports TIME_WAIT (kernel-facts §1.3): the
//! kernel hands the connection to a separate timewait socket and traces the full
//! socket's FIN_WAIT2→CLOSE or CLOSING→CLOSE instead. The timewait socket then holds
//! the 4-tuple for `TCP_TIMEWAIT_LEN` (60 s, hard-coded), unless a new connection on
//! the same 4-tuple in the same namespace ends it early. Its end is not traced, so it
//! is inferred here.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::{analysis::verdict::Side, model::SocketTuple};

/// `TCP_TIMEWAIT_LEN` (`include/net/tcp.h`).
pub const TIME_WAIT_NS: u64 = 60_000_000_000;

/// A socket's identity in its namespace.
pub type SocketKey = (u32, SocketTuple);

#[derive(Clone, Copy, Debug)]
struct Entry {
    pair: u32,
    side: Side,
    seq: u64,
}

/// Live TIME_WAIT entries, each attributed to a pair (an index chosen by the caller)
/// and a side. Memory is bounded by the entries alive within one 60 s window.
#[derive(Debug, Default)]
pub struct TimeWaitBook {
    live: FxHashMap<SocketKey, Entry>,
    /// Expiry order; an entry whose `seq` no longer matches was ended early.
    expiries: VecDeque<(u64, u64, SocketKey)>,
    next_seq: u64,
}

/// A TIME_WAIT entry that ended; the caller decrements its live count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Left {
    pub pair: u32,
    pub side: Side,
}

impl TimeWaitBook {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Records an entry that expires at `expires_ns`. A previous entry for the same
    /// socket is replaced and returned.
    pub fn enter(
        &mut self,
        key: SocketKey,
        pair: u32,
        side: Side,
        expires_ns: u64,
    ) -> Option<Left> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.expiries.push_back((expires_ns, seq, key));
        self.live
            .insert(key, Entry { pair, side, seq })
            .map(|old| Left {
                pair: old.pair,
                side: old.side,
            })
    }

    /// Ends the entry for a 4-tuple that a new connection reuses.
    pub fn reuse(&mut self, key: &SocketKey) -> Option<Left> {
        if self.live.is_empty() {
            return None;
        }
        self.live.remove(key).map(|e| Left {
            pair: e.pair,
            side: e.side,
        })
    }

    /// The pair and side an entry is attributed to.
    pub fn get(&self, key: &SocketKey) -> Option<(u32, Side)> {
        self.live.get(key).map(|e| (e.pair, e.side))
    }

    /// Ends every entry that expired at or before `now_ns`.
    pub fn expire(&mut self, now_ns: u64, mut left: impl FnMut(Left)) {
        while let Some(&(expires, seq, key)) = self.expiries.front() {
            if expires > now_ns {
                break;
            }
            self.expiries.pop_front();
            if self.live.get(&key).is_some_and(|e| e.seq == seq)
                && let Some(e) = self.live.remove(&key)
            {
                left(Left {
                    pair: e.pair,
                    side: e.side,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> SocketKey {
        (
            7,
            SocketTuple {
                local: format!("10.0.0.1:{port}").parse().unwrap(),
                remote: "10.0.0.2:80".parse().unwrap(),
            },
        )
    }

    #[test]
    fn entries_expire_after_their_span_or_on_reuse() {
        let mut book = TimeWaitBook::default();
        assert_eq!(book.enter(key(1), 0, Side::Client, TIME_WAIT_NS), None);
        book.enter(key(2), 0, Side::Client, TIME_WAIT_NS + 5);
        book.enter(key(3), 1, Side::Server, TIME_WAIT_NS + 9);
        assert_eq!(
            book.reuse(&key(2)),
            Some(Left {
                pair: 0,
                side: Side::Client
            })
        );
        let mut left = Vec::new();
        book.expire(TIME_WAIT_NS + 5, |l| left.push(l));
        assert_eq!(left.len(), 1, "key 2 was reused and must not expire twice");
        assert_eq!(book.len(), 1);
        assert_eq!(book.get(&key(3)), Some((1, Side::Server)));
        // Re-entering replaces the old entry; only the new expiry counts.
        assert!(
            book.enter(key(3), 1, Side::Server, TIME_WAIT_NS * 2)
                .is_some()
        );
        left.clear();
        book.expire(TIME_WAIT_NS + 10, |l| left.push(l));
        assert!(left.is_empty());
        book.expire(TIME_WAIT_NS * 2, |l| left.push(l));
        assert_eq!(left.len(), 1);
        assert!(book.is_empty());
    }
}
