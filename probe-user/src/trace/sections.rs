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
//! open     := gap                                         (kind 3; gap: connections
//!                                                          skipped, not records)
//! ```
//!
//! A 1.0 reader stops reading the definitions after the connections, so the sections
//! are invisible to it. Each section names records by their position in the block:
//! counters of a transition (`fields` holds the [`probe_common::counter_field`] bits of
//! the values that follow, and bit 7 whether the peer's FIN had been processed), and the other
//! processes holding a snapshot socket (`flags` bit 0: they all share the first owner's
//! name). Kind 3 is about connections, not records: those of the block's definitions
//! whose tuple was not complete when the block was written (a connect before its source
//! port was picked, a child socket before its peer was known), so a reader looks for
//! the rest of the tuple in the next blocks' definitions of the same ids.

use bytes::BufMut;
use probe_common::counter_field;

use crate::{
    model::{LISTED_PIDS, PidList, SharedWith, TcpCounters},
    trace::varint::{Cursor, put_u64},
};

const KIND_COUNTERS: u8 = 1;
const KIND_HOLDERS: u8 = 2;
const KIND_OPEN_CONNECTIONS: u8 = 3;

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
    open_connections: SectionWriter,
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

    /// The block's connection `index` (increasing from call to call) has a tuple that
    /// is not complete yet.
    pub fn open_connection(&mut self, index: u32) {
        self.open_connections.begin(index);
    }

    /// Approximate encoded size so far.
    pub fn encoded_len(&self) -> usize {
        self.counters.body.len() + self.holders.body.len() + self.open_connections.body.len()
    }

    /// Appends the sections (none when empty) to the definitions.
    pub fn finish_into(&self, out: &mut impl BufMut) {
        self.counters.finish_into(KIND_COUNTERS, out);
        self.holders.finish_into(KIND_HOLDERS, out);
        self.open_connections
            .finish_into(KIND_OPEN_CONNECTIONS, out);
    }
}

/// One section of a block being read: its entries are decoded as their records come,
/// from the block's payload, so a block's sections cost no memory of their own.
#[derive(Debug)]
struct SectionReader<T> {
    /// Where the next entry starts and where the section ends, in the payload.
    pos: usize,
    end: usize,
    /// Entries not yet decoded.
    left: u64,
    /// The record the next entry's gap counts from.
    next_record: u32,
    /// An entry decoded ahead, for a record still to come.
    ahead: Option<(u32, T)>,
    read: fn(&mut Cursor<'_>) -> Option<T>,
}

impl<T: Copy> SectionReader<T> {
    /// A section whose body is `payload[start..end]`; `None` when its entry count
    /// cannot fit (`min_entry` bytes each at least).
    fn new(
        payload: &[u8],
        (start, end): (usize, usize),
        min_entry: usize,
        read: fn(&mut Cursor<'_>) -> Option<T>,
    ) -> Option<Self> {
        let mut cursor = Cursor::new(payload.get(start..end)?);
        let left = cursor.var_u64()?;
        let fits = (end - start) / min_entry.max(1);
        (usize::try_from(left).ok()? <= fits).then_some(Self {
            pos: start + cursor.position(),
            end,
            left,
            next_record: 0,
            ahead: None,
            read,
        })
    }

    /// No entry left to read.
    fn is_done(&self) -> bool {
        self.left == 0 && self.ahead.is_none()
    }

    fn empty(read: fn(&mut Cursor<'_>) -> Option<T>) -> Self {
        Self {
            pos: 0,
            end: 0,
            left: 0,
            next_record: 0,
            ahead: None,
            read,
        }
    }

    /// The entry of record `record` (asked for in increasing order); `Err` when the
    /// section is malformed.
    fn take(&mut self, payload: &[u8], record: u32) -> Result<Option<T>, ()> {
        loop {
            let (at, value) = match self.ahead.take() {
                Some(entry) => entry,
                None if self.left == 0 => return Ok(None),
                None => self.decode(payload).ok_or(())?,
            };
            if at > record {
                self.ahead = Some((at, value));
                return Ok(None);
            }
            if at == record {
                return Ok(Some(value));
            }
        }
    }

    fn decode(&mut self, payload: &[u8]) -> Option<(u32, T)> {
        let mut cursor = Cursor::new(payload.get(self.pos..self.end)?);
        let at = self.next_record.checked_add(cursor.var_u32()?)?;
        let value = (self.read)(&mut cursor)?;
        self.pos += cursor.position();
        self.left -= 1;
        self.next_record = at.checked_add(1)?;
        Some((at, value))
    }
}

/// Facts about some records of one block, in record order.
#[derive(Debug)]
pub struct Sections {
    counters: SectionReader<TcpCounters>,
    holders: SectionReader<SharedWith>,
    /// Indices of the block's connections whose tuple was not complete (kind 3).
    open_connections: Vec<u32>,
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

/// A kind 3 body: `n:var gap:var{n}`, each gap the connections skipped since the
/// previous index.
fn read_open_connections(payload: &[u8], body: (usize, usize)) -> Option<Vec<u32>> {
    let mut reader = SectionReader::new(payload, body, 1, |_| Some(()))?;
    let mut indices = Vec::new();
    while reader.left > 0 {
        indices.push(reader.decode(payload)?.0);
    }
    Some(indices)
}

impl Sections {
    /// Finds the sections in `payload[start..end]` (the end of a block's definitions);
    /// `None` when one of a known kind cannot be what it says. Unknown kinds (later
    /// minor versions) are skipped.
    pub fn parse(payload: &[u8], (start, end): (usize, usize)) -> Option<Self> {
        let mut sections = Self {
            counters: SectionReader::empty(read_counters),
            holders: SectionReader::empty(read_holders),
            open_connections: Vec::new(),
        };
        let mut cursor = Cursor::new(payload.get(start..end)?);
        while let Some(kind) = cursor.u8() {
            let len = usize::try_from(cursor.var_u64()?).ok()?;
            let body_start = start + cursor.position();
            cursor.bytes(len)?;
            let body = (body_start, body_start + len);
            match kind {
                KIND_COUNTERS => {
                    sections.counters = SectionReader::new(payload, body, 2, read_counters)?;
                }
                KIND_HOLDERS => {
                    sections.holders = SectionReader::new(payload, body, 4, read_holders)?;
                }
                KIND_OPEN_CONNECTIONS => {
                    sections.open_connections = read_open_connections(payload, body)?;
                }
                _ => {}
            }
        }
        Some(sections)
    }

    /// Indices of the block's connections whose tuple was not complete when it was
    /// written, increasing (none in files from before kind 3).
    pub fn open_connections(&self) -> &[u32] {
        &self.open_connections
    }

    /// Every entry has been read (or there were none): records have nothing to add.
    pub fn is_done(&self) -> bool {
        self.counters.is_done() && self.holders.is_done()
    }

    /// The counters of record `record` of the block whose payload is `payload`;
    /// records are asked for in increasing order. `Err`: the section is malformed.
    pub fn counters_of(&mut self, payload: &[u8], record: u32) -> Result<Option<TcpCounters>, ()> {
        self.counters.take(payload, record)
    }

    /// The other holders of snapshot record `record`; in increasing order.
    pub fn holders_of(&mut self, payload: &[u8], record: u32) -> Result<SharedWith, ()> {
        Ok(self.holders.take(payload, record)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(encoder: &SectionsEncoder) -> Vec<u8> {
        let mut out = vec![0xaa; 3];
        encoder.finish_into(&mut out);
        // A section of a kind this reader does not know, after the two.
        out.extend([9, 2, 0xff, 0xff]);
        out
    }

    fn parse(payload: &[u8]) -> Option<Sections> {
        Sections::parse(payload, (3, payload.len()))
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
        let payload = encode(&encoder);
        let mut sections = parse(&payload).expect("well formed");
        assert_eq!(sections.counters_of(&payload, 0), Ok(Some(full)));
        assert_eq!(sections.holders_of(&payload, 3), Ok(shared));
        assert_eq!(sections.holders_of(&payload, 4), Ok(SharedWith::default()));
        assert_eq!(sections.counters_of(&payload, 5), Ok(None));
        assert_eq!(sections.counters_of(&payload, 7), Ok(Some(partial)));
        assert_eq!(sections.counters_of(&payload, 8), Ok(None));
    }

    #[test]
    fn nothing_to_say_writes_nothing() {
        let mut out = Vec::new();
        SectionsEncoder::default().finish_into(&mut out);
        assert!(out.is_empty());
        let mut sections = Sections::parse(&out, (0, 0)).unwrap();
        assert_eq!(sections.counters_of(&out, 0), Ok(None));
    }

    #[test]
    fn malformed_sections_are_refused_without_panicking() {
        let mut encoder = SectionsEncoder::default();
        encoder.counters(2, &TcpCounters::builder().bytes_sent(5).build());
        encoder.holders(1, &SharedWith::new(PidList::new(&[1, 2, 3], 0), false));
        let mut out = Vec::new();
        encoder.finish_into(&mut out);
        for len in 0..out.len() {
            let payload = &out[..len];
            if let Some(mut sections) = Sections::parse(payload, (0, len)) {
                for record in 0..4 {
                    let _counters = sections.counters_of(payload, record);
                    let _holders = sections.holders_of(payload, record);
                }
            }
        }
        // A count larger than the section could hold.
        let tiny = [KIND_COUNTERS, 2, 0x7f, 0];
        assert!(Sections::parse(&tiny, (0, tiny.len())).is_none());
        // An entry cut short is an error when its record comes.
        let cut = [KIND_COUNTERS, 2, 1, 0];
        let mut sections = Sections::parse(&cut, (0, cut.len())).unwrap();
        assert_eq!(sections.counters_of(&cut, 0), Err(()));
    }
}
