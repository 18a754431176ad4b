//! Sections after a `Records` block's definitions (format 1.1): facts about some of the
//! block's records that older readers skip without noticing.
//!
//! ```text
//! defs     := n:var scope{n}  n:var task{n}  n:var conn{n}  section*
//! section  := kind:u8 len:var body[len]                  (unknown kinds are skipped)
//! body     := n:var entry{n}
//! entry    := gap:var ...                                 (gap: records skipped since
//!                                                          the previous entry's record)
//! counters := gap fields:u8 [bytes_sent:var] [bytes_acked:var] [bytes_received:var]
//!             [segs_in:var segs_out:var] [retransmits:var] [srtt_us:var]   (kind 1)
//! holders  := gap flags:u8 more:var n:var pid:var{n}     (kind 2)
//! ```
//!
//! A 1.0 reader stops reading the definitions after the connections, so the sections
//! are invisible to it. Each section names records by their position in the block:
//! counters of a transition (`fields` holds the [`probe_common::counter_field`] bits of
//! the values that follow, and bit 7 whether the peer's FIN had been processed), and the other
//! processes holding a snapshot socket (`flags` bit 0: they all share the first owner's
//! name).

use bytes::BufMut;
use probe_common::counter_field;

use crate::{
    model::{LISTED_PIDS, PidList, SharedWith, TcpCounters},
    trace::varint::{Cursor, put_u64},
};

const KIND_COUNTERS: u8 = 1;
const KIND_HOLDERS: u8 = 2;

/// Bit 7 of a counters entry's `fields`: the peer's FIN had been processed.
const PEER_FIN: u8 = 1 << 7;
/// Bit 0 of a holders entry's `flags`.
const SAME_COMM: u8 = 1;

/// One section being written: its entries, and the record of the last one.
#[derive(Debug, Default)]
struct SectionWriter {
    entries: u64,
    body: Vec<u8>,
    /// Records before the next entry's gap starts counting.
    next_record: u32,
}

impl SectionWriter {
    /// Starts an entry about record `record` (increasing from entry to entry).
    fn begin(&mut self, record: u32) -> &mut Vec<u8> {
        put_u64(&mut self.body, u64::from(record - self.next_record));
        self.next_record = record + 1;
        self.entries += 1;
        &mut self.body
    }

    fn finish_into(&self, kind: u8, out: &mut impl BufMut) {
        if self.entries == 0 {
            return;
        }
        let mut count = Vec::with_capacity(10);
        put_u64(&mut count, self.entries);
        out.put_u8(kind);
        put_u64(out, (count.len() + self.body.len()) as u64);
        out.put_slice(&count);
        out.put_slice(&self.body);
    }
}

/// The sections of the block being written.
#[derive(Debug, Default)]
pub struct SectionsEncoder {
    counters: SectionWriter,
    holders: SectionWriter,
}

impl SectionsEncoder {
    /// Counters of the transition that is record `record` of the block.
    pub fn counters(&mut self, record: u32, counters: &TcpCounters) {
        let out = self.counters.begin(record);
        let mut fields = counters.known() & counter_field::ALL;
        if counters.peer_fin() == Some(true) {
            fields |= PEER_FIN;
        }
        out.push(fields);
        let values = [
            counters.bytes_sent(),
            counters.bytes_acked(),
            counters.bytes_received(),
            counters.segs_in().map(u64::from),
            counters.segs_out().map(u64::from),
            counters.retransmits().map(u64::from),
            counters.srtt_us().map(u64::from),
        ];
        for value in values.into_iter().flatten() {
            put_u64(out, value);
        }
    }

    /// The other holders of the snapshot socket that is record `record`.
    pub fn holders(&mut self, record: u32, shared: &SharedWith) {
        if shared.is_empty() {
            return;
        }
        let out = self.holders.begin(record);
        out.push(if shared.same_comm() { SAME_COMM } else { 0 });
        put_u64(out, u64::from(shared.pids().more()));
        put_u64(out, shared.pids().pids().len() as u64);
        for &pid in shared.pids().pids() {
            put_u64(out, u64::from(pid));
        }
    }

    /// Approximate encoded size so far.
    pub fn encoded_len(&self) -> usize {
        self.counters.body.len() + self.holders.body.len()
    }

    /// Appends the sections (none when empty) to the definitions.
    pub fn finish_into(&self, out: &mut impl BufMut) {
        self.counters.finish_into(KIND_COUNTERS, out);
        self.holders.finish_into(KIND_HOLDERS, out);
    }
}

/// Facts about some records of one block, in record order.
#[derive(Debug, Default)]
pub struct Sections {
    counters: Vec<(u32, TcpCounters)>,
    holders: Vec<(u32, SharedWith)>,
    next_counters: usize,
    next_holders: usize,
}

/// Reads entries of one section: `read` decodes an entry's fields after its gap.
fn entries<T>(
    body: &[u8],
    min_entry: usize,
    mut read: impl FnMut(&mut Cursor<'_>) -> Option<T>,
) -> Option<Vec<(u32, T)>> {
    let mut cursor = Cursor::new(body);
    let n = usize::try_from(cursor.var_u64()?).ok()?;
    if n > body.len() / min_entry {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut next_record = 0u32;
    for _ in 0..n {
        let record = next_record.checked_add(cursor.var_u32()?)?;
        next_record = record.checked_add(1)?;
        out.push((record, read(&mut cursor)?));
    }
    Some(out)
}

fn read_counters(cursor: &mut Cursor<'_>) -> Option<TcpCounters> {
    let fields = cursor.u8()?;
    let mut c = TcpCounters::builder();
    let mut next = |bit: u8| -> Option<Option<u64>> {
        if fields & bit == 0 {
            return Some(None);
        }
        cursor.var_u64().map(Some)
    };
    let small = |value: u64| u32::try_from(value).ok();
    if let Some(v) = next(counter_field::BYTES_SENT)? {
        c = c.bytes_sent(v);
    }
    if let Some(v) = next(counter_field::BYTES_ACKED)? {
        c = c.bytes_acked(v);
    }
    if let Some(v) = next(counter_field::BYTES_RECEIVED)? {
        c = c.bytes_received(v);
    }
    if let Some(segs_in) = next(counter_field::SEGS)? {
        let segs_out = next(counter_field::SEGS)?.and_then(small)?;
        c = c.segs(small(segs_in)?, segs_out);
    }
    if let Some(v) = next(counter_field::RETRANS)? {
        c = c.retransmits(small(v)?);
    }
    if let Some(v) = next(counter_field::SRTT)? {
        c = c.srtt_us(small(v)?);
    }
    if fields & counter_field::PEER_FIN != 0 {
        c = c.peer_fin(fields & PEER_FIN != 0);
    }
    Some(c.build())
}

fn read_holders(cursor: &mut Cursor<'_>) -> Option<SharedWith> {
    let flags = cursor.u8()?;
    let more = cursor.var_u32()?;
    let n = usize::try_from(cursor.var_u64()?).ok()?;
    if n > LISTED_PIDS {
        return None;
    }
    let mut pids = [0u32; LISTED_PIDS];
    for pid in pids.iter_mut().take(n) {
        *pid = cursor.var_u32()?;
    }
    Some(SharedWith::new(
        PidList::new(&pids[..n], more),
        flags & SAME_COMM != 0,
    ))
}

impl Sections {
    /// Reads the sections at the end of a block's definitions; `None` when one of a
    /// known kind is malformed. Unknown kinds (later minor versions) are skipped.
    pub fn parse(cursor: &mut Cursor<'_>) -> Option<Self> {
        let mut sections = Self::default();
        while let Some(kind) = cursor.u8() {
            let len = usize::try_from(cursor.var_u64()?).ok()?;
            let body = cursor.bytes(len)?;
            match kind {
                KIND_COUNTERS => sections.counters = entries(body, 2, read_counters)?,
                KIND_HOLDERS => sections.holders = entries(body, 4, read_holders)?,
                _ => {}
            }
        }
        Some(sections)
    }

    /// The counters of record `record`; records are asked for in increasing order.
    pub fn counters_of(&mut self, record: u32) -> Option<TcpCounters> {
        take_at(&self.counters, &mut self.next_counters, record)
    }

    /// The other holders of snapshot record `record`; in increasing order.
    pub fn holders_of(&mut self, record: u32) -> SharedWith {
        take_at(&self.holders, &mut self.next_holders, record).unwrap_or_default()
    }
}

fn take_at<T: Copy>(entries: &[(u32, T)], next: &mut usize, record: u32) -> Option<T> {
    while let Some(&(at, value)) = entries.get(*next) {
        if at > record {
            return None;
        }
        *next += 1;
        if at == record {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(encoder: &SectionsEncoder) -> Sections {
        let mut out = Vec::new();
        encoder.finish_into(&mut out);
        // A section of a kind this reader does not know, between the two.
        out.extend([9, 2, 0xff, 0xff]);
        let mut cursor = Cursor::new(&out);
        Sections::parse(&mut cursor).expect("well formed")
    }

    #[test]
    fn counters_and_holders_round_trip_by_record() {
        let full = TcpCounters::builder()
            .bytes_sent(1 << 20)
            .bytes_acked((1 << 20) + 2)
            .bytes_received(10_241)
            .segs(40, 800)
            .retransmits(3)
            .srtt_us(95)
            .peer_fin(true)
            .build();
        let partial = TcpCounters::builder().bytes_received(17).build();
        let shared = SharedWith::new(PidList::new(&[12, 13], 4), true);
        let mut encoder = SectionsEncoder::default();
        encoder.counters(0, &full);
        encoder.counters(7, &partial);
        encoder.holders(3, &shared);
        encoder.holders(4, &SharedWith::default());
        let mut sections = round_trip(&encoder);
        assert_eq!(sections.counters_of(0), Some(full));
        assert_eq!(sections.holders_of(3), shared);
        assert_eq!(sections.holders_of(4), SharedWith::default());
        assert_eq!(sections.counters_of(5), None);
        assert_eq!(sections.counters_of(7), Some(partial));
        assert_eq!(sections.counters_of(8), None);
    }

    #[test]
    fn nothing_to_say_writes_nothing() {
        let mut out = Vec::new();
        SectionsEncoder::default().finish_into(&mut out);
        assert!(out.is_empty());
        let mut cursor = Cursor::new(&out);
        let mut sections = Sections::parse(&mut cursor).unwrap();
        assert_eq!(sections.counters_of(0), None);
    }

    #[test]
    fn malformed_sections_are_refused_without_panicking() {
        let mut encoder = SectionsEncoder::default();
        encoder.counters(2, &TcpCounters::builder().bytes_sent(5).build());
        encoder.holders(1, &SharedWith::new(PidList::new(&[1, 2, 3], 0), false));
        let mut out = Vec::new();
        encoder.finish_into(&mut out);
        for len in 0..out.len() {
            let mut cursor = Cursor::new(&out[..len]);
            let _parsed = Sections::parse(&mut cursor);
        }
        // A count larger than the section could hold.
        let mut cursor = Cursor::new(&[KIND_COUNTERS, 2, 0x7f, 0]);
        assert!(Sections::parse(&mut cursor).is_none());
    }
}
