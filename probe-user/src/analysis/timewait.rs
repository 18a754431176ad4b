//! TIME_WAIT accounting. No tracepoint ever reports TIME_WAIT
//! (`docs/kernel-facts.md §1.3`): the kernel hands the connection to a separate
//! timewait socket and traces the full socket's FIN_WAIT2→CLOSE or CLOSING→CLOSE
//! instead. The timewait socket then holds the 4-tuple for `TCP_TIMEWAIT_LEN` (60 s,
//! hard-coded), unless a new connection on the same 4-tuple in the same namespace ends
//! it early. Its end is not traced, so it is inferred here.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

#[cfg(test)]
use crate::analysis::keys::AddrPairKey;
use crate::analysis::verdict::Side;

/// `TCP_TIMEWAIT_LEN` (`include/net/tcp.h`).
pub const TIME_WAIT_NS: u64 = 60_000_000_000;

/// A socket's identity in its namespace: the [`fingerprint`] of its
/// [`AddrPairKey::socket`].
///
/// [`fingerprint`]: crate::analysis::keys::AddrPairKey::fingerprint
/// [`AddrPairKey::socket`]: crate::analysis::keys::AddrPairKey::socket
pub type SocketKey = u64;

#[derive(Clone, Copy, Debug)]
struct Entry {
    pair: u32,
    side: Side,
    seq: u64,
}

/// A one-bit-per-slot summary of the live entries' keys. Every new socket is checked
/// for a TIME_WAIT on its 4-tuple and almost never has one: a clear bit answers that
/// from a small array (eight slots per entry: about 1 MiB per million entries, so it
/// stays in cache) instead of a probe into the large, cache-missing map. A bit cannot
/// be cleared when its entry leaves (others may share it), so the array is rebuilt
/// from the live keys once half of them have left since the last rebuild.
#[derive(Clone, Debug, Default)]
struct Presence {
    bits: Vec<u64>,
    /// Entries that left since the last rebuild.
    stale: usize,
}

impl Presence {
    fn slot(&self, key: SocketKey) -> usize {
        // The key is already a well-mixed digest; the map uses its low bits.
        (key >> 32) as usize & (self.bits.len() * 64 - 1)
    }

    fn maybe(&self, key: SocketKey) -> bool {
        if self.bits.is_empty() {
            return true;
        }
        let slot = self.slot(key);
        self.bits[slot / 64] & (1 << (slot % 64)) != 0
    }

    fn add(&mut self, key: SocketKey) {
        if !self.bits.is_empty() {
            let slot = self.slot(key);
            self.bits[slot / 64] |= 1 << (slot % 64);
        }
    }

    /// Rebuilds when the array is too small for `live` entries or too stale.
    fn fit<'a>(&mut self, live: usize, keys: impl Iterator<Item = &'a SocketKey>) {
        let wanted = (live * 8).next_power_of_two().max(1 << 16) / 64;
        if self.bits.len() >= wanted && self.stale <= live / 2 + 1024 {
            return;
        }
        self.bits = vec![0; wanted.max(self.bits.len())];
        self.stale = 0;
        for &key in keys {
            self.add(key);
        }
    }
}

/// Live TIME_WAIT entries, each attributed to a pair (an index chosen by the caller)
/// and a side. Memory is bounded by the entries alive within one 60 s window.
#[derive(Clone, Debug, Default)]
pub struct TimeWaitBook {
    live: FxHashMap<SocketKey, Entry>,
    presence: Presence,
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

    #[cfg(test)]
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
        let old = self.live.insert(key, Entry { pair, side, seq });
        if old.is_none() {
            self.presence.add(key);
            let live = self.live.len();
            self.presence.fit(live, self.live.keys());
        }
        old.map(|old| Left {
            pair: old.pair,
            side: old.side,
        })
    }

    /// Ends the entry for a 4-tuple that a new connection reuses.
    pub fn reuse(&mut self, key: &SocketKey) -> Option<Left> {
        if self.live.is_empty() || !self.presence.maybe(*key) {
            return None;
        }
        let entry = self.live.remove(key)?;
        self.presence.stale += 1;
        Some(Left {
            pair: entry.pair,
            side: entry.side,
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
                self.presence.stale += 1;
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
        AddrPairKey::new(
            7,
            format!("10.0.0.1:{port}").parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        )
        .fingerprint()
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

    #[test]
    fn many_entries_are_found_through_the_presence_counters() {
        let mut book = TimeWaitBook::default();
        let key = |i: u32| {
            AddrPairKey::new(
                i % 3,
                format!("10.0.{}.{}:{}", i % 7, i % 251, i % 60_000)
                    .parse()
                    .unwrap(),
                "10.0.0.2:80".parse().unwrap(),
            )
            .fingerprint()
        };
        for i in 0..20_000 {
            book.enter(key(i), 0, Side::Client, u64::from(i));
        }
        assert_eq!(book.len(), 20_000);
        for i in (0..20_000).step_by(2) {
            assert!(book.reuse(&key(i)).is_some(), "{i}");
        }
        assert!(book.reuse(&key(20_001)).is_none());
        let mut left = 0;
        book.expire(u64::MAX, |_| left += 1);
        assert_eq!(left, 10_000);
        assert!(book.is_empty());
        // Entries entered after many left are still found.
        for i in 0..5_000 {
            book.enter(key(i), 0, Side::Server, u64::MAX);
        }
        assert!((0..5_000).all(|i| book.reuse(&key(i)).is_some()));
    }
}
