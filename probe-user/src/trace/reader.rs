//! Streaming trace reader. Memory is bounded by a few blocks, whatever the file size;
//! damage (a cut tail, a corrupt block, undecodable records) is reported and turned
//! into gaps in the event stream rather than ending the replay.
//!
//! A block whose connections were not all complete when it was written (a connect
//! before its source port was picked) is completed from the definitions of the next
//! blocks before its events are handed out: those blocks are read ahead and kept.

use std::{
    collections::VecDeque,
    io::{self, ErrorKind, Read},
};

use crate::{
    model::{Gap, GapCause, TraceEvent, WorkloadTable},
    trace::{
        block::{
            BLOCK_HEADER_LEN, BlockHeader, BlockKind, FILE_HEADER_LEN, FILE_MAGIC, FORMAT_MAJOR,
            FORMAT_MINOR,
        },
        meta::{TraceEnd, TraceMeta},
        records::{Definitions, RecordsDecoder},
        workloads,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the file is empty")]
    Empty,
    #[error("not a tcpchurn trace (it starts with {0:?})")]
    NotATrace(String),
    #[error(
        "trace format {found_major}.{found_minor} is newer than this tcpchurn reads \
         ({FORMAT_MAJOR}.{FORMAT_MINOR}); replay it with a newer tcpchurn"
    )]
    NewerVersion { found_major: u16, found_minor: u16 },
    #[error("the trace header is damaged: {0}")]
    BadMeta(String),
}

/// Something wrong with the file that the replay worked around.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The file ends inside a block, or without an end block: the recording did not
    /// finish (killed recorder, full disk, power loss). Everything before replays.
    Cut { offset: u64, last_ts_ns: u64 },
    /// A block failed its checksum or could not be decoded; its events are lost.
    CorruptBlock {
        offset: u64,
        records: u32,
        reason: String,
    },
    /// Bytes that were skipped while looking for the next intact block.
    Skipped { offset: u64, len: u64 },
    /// Parts `first..=last` of a rotated recording were not given to the replay,
    /// although parts before and after them were: nothing is known of their events.
    MissingParts {
        first: u32,
        last: u32,
        from_ns: u64,
        to_ns: u64,
    },
    /// A `Workloads` block was unreadable: the pods and containers it named are
    /// unknown; every event still replays.
    NamesLost { offset: u64, reason: String },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cut { offset, last_ts_ns } => write!(
                f,
                "the trace is cut at byte {offset} (the recording did not stop cleanly); \
                 replayed up to {:.3} s",
                *last_ts_ns as f64 / 1e9
            ),
            Self::CorruptBlock {
                offset,
                records,
                reason,
            } => write!(
                f,
                "block at byte {offset} is damaged ({reason}); {records} records lost"
            ),
            Self::Skipped { offset, len } => {
                write!(f, "skipped {len} unreadable bytes at byte {offset}")
            }
            Self::MissingParts {
                first,
                last,
                from_ns,
                to_ns,
            } => {
                let parts = if first == last {
                    format!("part {first}")
                } else {
                    format!("parts {first}-{last}")
                };
                write!(
                    f,
                    "{parts} of the recording not given: nothing is known between {:.3} and \
                     {:.3} s",
                    *from_ns as f64 / 1e9,
                    *to_ns as f64 / 1e9
                )
            }
            Self::NamesLost { offset, reason } => write!(
                f,
                "the names block at byte {offset} is damaged ({reason}); the pods and \
                 containers it named are unknown"
            ),
        }
    }
}

/// Reads a trace one event at a time.
#[derive(Debug)]
pub struct TraceReader<R: Read> {
    input: R,
    meta: TraceMeta,
    version: (u16, u16),
    end: Option<TraceEnd>,
    decoder: Option<(RecordsDecoder, u64, u32, u32)>,
    /// Bytes consumed since the start of the file (`base` in the input).
    offset: u64,
    damage: Vec<Damage>,
    /// Names read and not yet taken.
    workloads: Vec<WorkloadTable>,
    finished: bool,
    last_ts: u64,
    /// Following a trace that is still written: how to go back to the start of a block
    /// that is not complete yet (see [`crate::trace::follow`]).
    rewind: Option<Rewind<R>>,
    /// Where the file starts in the input.
    base: u64,
    /// Blocks read ahead of the one being decoded, in file order.
    ahead: VecDeque<Ahead>,
    /// The event [`TraceReader::advance`] found, read in place (events are large).
    current: Option<TraceEvent>,
}

/// How far to read ahead to complete a block's open connections, in trace time from
/// the block's start: the kernel gives a connect's source port with its next event, the
/// SYN-ACK, which comes after a round trip, or after SYN retransmissions (1, 3, 7 s
/// after the connect) when SYNs were dropped. Later than that, the port stays what the
/// block wrote (0, unknown).
const LOOKAHEAD_NS: u64 = 10_000_000_000;
/// And at most this many bytes of blocks read ahead (a recorder's blocks hold about 1 MiB).
const LOOKAHEAD_BYTES: usize = 16 << 20;

/// Moves an input back to an absolute position.
pub(super) type Rewind<R> = fn(&mut R, u64) -> io::Result<()>;

/// What comes next in a trace that may still be written.
#[derive(Clone, Debug, PartialEq)]
pub enum Polled {
    Event(TraceEvent),
    /// The next block is not complete yet: poll again once more bytes may be there.
    Pending,
    /// The file is over: its end block was read, or (not following) its input ended.
    Ended,
}

/// What [`TraceReader::poll`] found; an event is left in `current`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Event,
    Pending,
    Ended,
}

/// What reading the next block found.
#[derive(Debug)]
enum BlockRead {
    Block(BlockHeader, Vec<u8>),
    /// The input ended (cut damage is recorded when it ended inside a block).
    Eof,
    /// Following: the block is not complete yet; the input is back at its start.
    Pending,
}

/// A block read ahead: where it starts, what was read, and the definitions of an
/// intact records block (parsed once, however many blocks before it look at them).
#[derive(Debug)]
struct Ahead {
    offset: u64,
    read: BlockRead,
    definitions: Option<Definitions>,
}

impl Ahead {
    fn new(offset: u64, read: BlockRead) -> Self {
        let definitions = match &read {
            BlockRead::Block(header, payload)
                if header.kind == BlockKind::Records as u8
                    && crc32fast::hash(payload) == header.payload_crc =>
            {
                Definitions::parse(payload).ok()
            }
            _ => None,
        };
        Self {
            offset,
            read,
            definitions,
        }
    }
}

/// How far reading ahead has gone.
#[derive(Default)]
struct Reach {
    /// Start of the last records block read ahead.
    last_start_ns: u64,
    /// Payload bytes read ahead.
    bytes: usize,
}

impl Reach {
    /// Completes `decoder`'s open connections from the block read ahead, and counts it.
    fn complete(&mut self, decoder: &mut RecordsDecoder, ahead: &Ahead) {
        let BlockRead::Block(header, _) = &ahead.read else {
            return;
        };
        self.bytes += header.payload_len as usize;
        if let Some(later) = &ahead.definitions {
            self.last_start_ns = self.last_start_ns.max(header.first_ts_ns);
            decoder.complete_from(later);
        }
    }
}

/// Nothing is read ahead past the end of the input or an end block.
fn ends_reading(read: &BlockRead) -> bool {
    match read {
        BlockRead::Block(header, _) => header.kind == BlockKind::End as u8,
        BlockRead::Eof | BlockRead::Pending => true,
    }
}

/// What opening a trace that may still be written found.
#[derive(Debug)]
pub enum Opening<R: Read> {
    Ready(Box<TraceReader<R>>),
    /// The file header or the meta block is not complete yet: the input is back where
    /// it was.
    NotYet(R),
}

/// Fills `buf` as far as the input allows; returns how many bytes were read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl<R: Read> TraceReader<R> {
    /// Reads the file header and the meta block.
    pub fn open(input: R) -> Result<Self, TraceError> {
        match Self::open_at(input, None, 0)? {
            Opening::Ready(reader) => Ok(*reader),
            Opening::NotYet(_) => Err(TraceError::Empty),
        }
    }

    /// Reads the file header and the meta block at `base` in `input`; when following
    /// (`rewind`), an incomplete start is [`Opening::NotYet`] instead of an error.
    pub(super) fn open_at(
        mut input: R,
        rewind: Option<Rewind<R>>,
        base: u64,
    ) -> Result<Opening<R>, TraceError> {
        let mut header = [0u8; FILE_HEADER_LEN];
        let n = read_up_to(&mut input, &mut header)?;
        let magic = n.min(FILE_MAGIC.len());
        let incomplete = n < FILE_HEADER_LEN && header[..magic] == FILE_MAGIC[..magic];
        if let Some(rewind) = rewind
            && incomplete
        {
            rewind(&mut input, base)?;
            return Ok(Opening::NotYet(input));
        }
        if n == 0 {
            return Err(TraceError::Empty);
        }
        if n < FILE_MAGIC.len() || &header[..8] != FILE_MAGIC {
            let shown: String = header[..n.min(8)]
                .iter()
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
                .collect();
            return Err(TraceError::NotATrace(shown));
        }
        if n < FILE_HEADER_LEN {
            return Err(TraceError::BadMeta(
                "the file ends inside its header".into(),
            ));
        }
        let major = u16::from_le_bytes([header[8], header[9]]);
        let minor = u16::from_le_bytes([header[10], header[11]]);
        if major > FORMAT_MAJOR {
            return Err(TraceError::NewerVersion {
                found_major: major,
                found_minor: minor,
            });
        }
        let mut reader = Self {
            input,
            meta: TraceMeta::default(),
            version: (major, minor),
            end: None,
            decoder: None,
            offset: FILE_HEADER_LEN as u64,
            damage: Vec::new(),
            workloads: Vec::new(),
            finished: false,
            last_ts: 0,
            rewind,
            base,
            ahead: VecDeque::new(),
            current: None,
        };
        let (header, payload) = match reader.read_block()? {
            BlockRead::Block(header, payload) => (header, payload),
            BlockRead::Pending => {
                let mut input = reader.input;
                if let Some(rewind) = rewind {
                    rewind(&mut input, base)?;
                }
                return Ok(Opening::NotYet(input));
            }
            BlockRead::Eof => {
                return Err(TraceError::BadMeta(
                    "the file ends before its meta block".into(),
                ));
            }
        };
        if header.kind != BlockKind::Meta as u8 {
            return Err(TraceError::BadMeta(
                "the first block is not the meta block".into(),
            ));
        }
        if crc32fast::hash(&payload) != header.payload_crc {
            return Err(TraceError::BadMeta(
                "the meta block fails its checksum".into(),
            ));
        }
        reader.meta =
            serde_json::from_slice(&payload).map_err(|e| TraceError::BadMeta(e.to_string()))?;
        Ok(Opening::Ready(Box::new(reader)))
    }

    /// The input, positioned after what was read (after the end block, once
    /// [`Polled::Ended`]).
    pub fn into_inner(self) -> R {
        self.input
    }

    pub fn meta(&self) -> &TraceMeta {
        &self.meta
    }

    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// The end block, once read; `None` for a cut trace.
    pub fn end(&self) -> Option<&TraceEnd> {
        self.end.as_ref()
    }

    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The names read since the last call, in file order: each table names the keys of
    /// the events that follow it (format 1.1; older traces have none).
    pub fn take_workloads(&mut self) -> Vec<WorkloadTable> {
        std::mem::take(&mut self.workloads)
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The time of the last event read.
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }

    /// The input the trace is read from.
    pub fn get_ref(&self) -> &R {
        &self.input
    }

    fn read_exact_or_cut(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        Ok(read_up_to(&mut self.input, buf)? == buf.len())
    }

    fn cut(&mut self, offset: u64) {
        self.finished = true;
        self.damage.push(Damage::Cut {
            offset,
            last_ts_ns: self.last_ts,
        });
    }

    /// Following: goes back to `offset` to read the block there again later.
    fn pending_at(&mut self, offset: u64) -> io::Result<BlockRead> {
        if let Some(rewind) = self.rewind {
            rewind(&mut self.input, self.base + offset)?;
        }
        self.offset = offset;
        Ok(BlockRead::Pending)
    }

    /// Reads the next intact block header and its payload. Damaged headers are
    /// skipped by scanning for the next valid one. When following, a block that is
    /// not all there yet is [`BlockRead::Pending`], never a cut.
    fn read_block(&mut self) -> io::Result<BlockRead> {
        let following = self.rewind.is_some();
        let mut raw = [0u8; BLOCK_HEADER_LEN];
        let start = self.offset;
        let got = read_up_to(&mut self.input, &mut raw)?;
        if following && got < BLOCK_HEADER_LEN {
            return self.pending_at(start);
        }
        if got == 0 {
            return Ok(BlockRead::Eof);
        }
        if got < BLOCK_HEADER_LEN {
            self.cut(start);
            return Ok(BlockRead::Eof);
        }
        let mut skipped = 0u64;
        let header = loop {
            match BlockHeader::decode(&raw) {
                Ok(header) => break header,
                Err(_) => {
                    // Slide the window by one byte and look again.
                    raw.copy_within(1.., 0);
                    let mut next = [0u8; 1];
                    if read_up_to(&mut self.input, &mut next)? == 0 {
                        if following {
                            return self.pending_at(start);
                        }
                        self.damage.push(Damage::Skipped {
                            offset: start,
                            len: skipped + BLOCK_HEADER_LEN as u64,
                        });
                        self.offset = start + skipped + BLOCK_HEADER_LEN as u64;
                        self.cut(self.offset);
                        return Ok(BlockRead::Eof);
                    }
                    raw[BLOCK_HEADER_LEN - 1] = next[0];
                    skipped += 1;
                }
            }
        };
        if skipped > 0 {
            self.damage.push(Damage::Skipped {
                offset: start,
                len: skipped,
            });
        }
        let block_start = start + skipped;
        let mut payload = vec![0u8; header.payload_len as usize];
        if !self.read_exact_or_cut(&mut payload)? {
            if following {
                return self.pending_at(block_start);
            }
            self.offset = block_start;
            self.cut(block_start);
            return Ok(BlockRead::Eof);
        }
        self.offset = block_start + BLOCK_HEADER_LEN as u64 + u64::from(header.payload_len);
        Ok(BlockRead::Block(header, payload))
    }

    fn corrupt(&mut self, offset: u64, records: u32, first_ts: u64, reason: String) -> TraceEvent {
        self.damage.push(Damage::CorruptBlock {
            offset,
            records,
            reason,
        });
        TraceEvent::Lost(Gap {
            from_ns: first_ts,
            to_ns: first_ts.max(self.last_ts),
            lost: u64::from(records),
            cpu: None,
            cause: GapCause::CorruptBlock,
            host: crate::model::HostId::FIRST,
        })
    }

    /// The next event in file order, or `None` at the end of the file. Damage never
    /// ends the stream early except where the file itself ends.
    pub fn next_event(&mut self) -> Result<Option<TraceEvent>, TraceError> {
        match self.poll_event()? {
            Polled::Event(event) => Ok(Some(event)),
            Polled::Pending | Polled::Ended => Ok(None),
        }
    }

    /// The next event, or whether more may come ([`Polled::Pending`] only when
    /// following a trace that is still written).
    pub fn poll_event(&mut self) -> Result<Polled, TraceError> {
        Ok(match self.poll()? {
            Step::Event => self.current.take().map_or(Polled::Ended, Polled::Event),
            Step::Pending => Polled::Pending,
            Step::Ended => Polled::Ended,
        })
    }

    /// Moves to the next event, read in place: `true` when there is one, then
    /// [`TraceReader::current`] holds it until the next call. For a loop that looks at
    /// every event of a large trace without moving each one (a pending block of a
    /// followed trace ends it, as in [`TraceReader::next_event`]).
    pub fn advance(&mut self) -> Result<bool, TraceError> {
        Ok(matches!(self.poll()?, Step::Event))
    }

    /// The event the last [`TraceReader::advance`] found.
    pub fn current(&self) -> Option<&TraceEvent> {
        self.current.as_ref()
    }

    pub fn current_mut(&mut self) -> Option<&mut TraceEvent> {
        self.current.as_mut()
    }

    /// Takes the event the last [`TraceReader::advance`] found.
    pub fn take_current(&mut self) -> Option<TraceEvent> {
        self.current.take()
    }

    /// Reads up to the next event and leaves it in `current` (`None` otherwise).
    fn poll(&mut self) -> Result<Step, TraceError> {
        self.current = None;
        loop {
            if let Some((decoder, block_offset, records, decoded)) = &mut self.decoder {
                match decoder.next_into(&mut self.current) {
                    Some(Ok(())) => {
                        *decoded += 1;
                        let ts_ns = self.current.as_ref().map_or(0, TraceEvent::ts_ns);
                        self.last_ts = self.last_ts.max(ts_ns);
                        return Ok(Step::Event);
                    }
                    Some(Err(err)) => {
                        let (offset, remaining) = (*block_offset, records.saturating_sub(*decoded));
                        self.decoder = None;
                        let last = self.last_ts;
                        self.current = Some(self.corrupt(offset, remaining, last, err.to_string()));
                        return Ok(Step::Event);
                    }
                    None => self.decoder = None,
                }
            }
            let (block_offset, read) = match self.ahead.pop_front() {
                Some(ahead) => (ahead.offset, ahead.read),
                None if self.finished => return Ok(Step::Ended),
                None => (self.offset, self.read_block()?),
            };
            let (header, payload) = match read {
                BlockRead::Block(header, payload) => (header, payload),
                BlockRead::Pending => return Ok(Step::Pending),
                BlockRead::Eof => {
                    self.date_cut();
                    if !self.finished && self.end.is_none() {
                        // A clean end of file, but no end block: the recorder was
                        // stopped between two blocks.
                        self.cut(self.offset);
                    }
                    self.finished = true;
                    return Ok(Step::Ended);
                }
            };
            if header.kind == BlockKind::Workloads as u8 {
                self.read_workloads(block_offset, &header, &payload);
                continue;
            }
            if let Some(event) = self.on_block(block_offset, &header, payload) {
                self.current = Some(event);
                return Ok(Step::Event);
            }
            self.complete_open_connections(header.first_ts_ns)?;
        }
    }

    /// A cut found while reading ahead is dated by the last event before it.
    fn date_cut(&mut self) {
        let last_ts = self.last_ts;
        if let Some(Damage::Cut { last_ts_ns, .. }) = self.damage.last_mut() {
            *last_ts_ns = (*last_ts_ns).max(last_ts);
        }
    }

    /// Completes the new block's open connections from the blocks after it, read ahead
    /// (those that start within [`LOOKAHEAD_NS`] of `block_start_ns`, up to
    /// [`LOOKAHEAD_BYTES`]) and kept for later. A trace followed as it is written is
    /// completed only from what is already written: the events are not held back
    /// waiting for the recorder.
    fn complete_open_connections(&mut self, block_start_ns: u64) -> io::Result<()> {
        let Some((mut decoder, offset, records, decoded)) = self.decoder.take() else {
            return Ok(());
        };
        let horizon = block_start_ns.saturating_add(LOOKAHEAD_NS);
        let mut reach = Reach::default();
        for ahead in &self.ahead {
            if !decoder.has_open() {
                break;
            }
            reach.complete(&mut decoder, ahead);
        }
        // What is read ahead stops at an ending block, so that one is the last.
        while decoder.has_open()
            && reach.last_start_ns <= horizon
            && reach.bytes < LOOKAHEAD_BYTES
            && !self.finished
            && !self.ahead.back().is_some_and(|a| ends_reading(&a.read))
        {
            let offset = self.offset;
            let read = self.read_block()?;
            if let BlockRead::Pending = read {
                break;
            }
            let ahead = Ahead::new(offset, read);
            reach.complete(&mut decoder, &ahead);
            self.ahead.push_back(ahead);
        }
        decoder.stop_completing();
        self.decoder = Some((decoder, offset, records, decoded));
        Ok(())
    }

    /// A `Workloads` block: its names, or the damage that lost them (no events are lost
    /// with it).
    fn read_workloads(&mut self, offset: u64, header: &BlockHeader, payload: &[u8]) {
        let read = if crc32fast::hash(payload) == header.payload_crc {
            workloads::decode(payload)
        } else {
            Err("checksum mismatch".to_owned())
        };
        match read {
            Ok(table) => self.workloads.push(table),
            Err(reason) => self.damage.push(Damage::NamesLost { offset, reason }),
        }
    }

    /// Takes in a block: records start decoding, the end block is kept. A damaged
    /// block is the gap it returns.
    fn on_block(
        &mut self,
        block_offset: u64,
        header: &BlockHeader,
        payload: Vec<u8>,
    ) -> Option<TraceEvent> {
        if crc32fast::hash(&payload) != header.payload_crc {
            return Some(self.corrupt(
                block_offset,
                header.records,
                header.first_ts_ns,
                "checksum mismatch".into(),
            ));
        }
        match BlockKind::from_u8(header.kind) {
            Some(BlockKind::Records) => match RecordsDecoder::new(payload, header.first_ts_ns) {
                Ok(decoder) => self.decoder = Some((decoder, block_offset, header.records, 0)),
                Err(err) => {
                    return Some(self.corrupt(
                        block_offset,
                        header.records,
                        header.first_ts_ns,
                        err.to_string(),
                    ));
                }
            },
            Some(BlockKind::End) => match serde_json::from_slice::<TraceEnd>(&payload) {
                Ok(end) => {
                    self.last_ts = self.last_ts.max(end.end_ns);
                    self.end = Some(end);
                    // A file being followed is over at its end block: nothing is
                    // written after it (a rotated recording goes on in the next file).
                    self.finished |= self.rewind.is_some();
                }
                Err(err) => self.damage.push(Damage::CorruptBlock {
                    offset: block_offset,
                    records: 0,
                    reason: format!("unreadable end block: {err}"),
                }),
            },
            // A second meta block (a concatenated file) or a block kind from a
            // newer minor version: skip it. (Workloads blocks are read before.)
            Some(BlockKind::Meta | BlockKind::Workloads) | None => {}
        }
        None
    }

    /// Reads the whole trace into memory (tests and small tools).
    pub fn collect_events(&mut self) -> Result<Vec<TraceEvent>, TraceError> {
        let mut events = Vec::new();
        while let Some(event) = self.next_event()? {
            events.push(event);
        }
        Ok(events)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::{
        model::{Conn, ExecContext, Scope, SocketTuple, TcpState, Transition},
        trace::{TraceWriter, block::frame},
    };

    /// Connection `i` connecting at `i` µs.
    pub fn transition(i: u64) -> TraceEvent {
        TraceEvent::Transition(Transition {
            ts_ns: i * 1000,
            conn: Conn {
                id: i,
                scope: Scope::default(),
                tuple: SocketTuple {
                    local: "10.0.0.2:40000".parse().unwrap(),
                    remote: "10.0.0.1:80".parse().unwrap(),
                },
            },
            old: TcpState::Close,
            new: TcpState::SynSent,
            context: ExecContext::Task,
            task: None,
            counters: None,
        })
    }

    fn meta() -> TraceMeta {
        TraceMeta {
            tool: "tcpchurn".into(),
            hostname: "test".into(),
            ..TraceMeta::default()
        }
    }

    /// 30 events in blocks of 10, cleanly finished.
    fn trace_bytes(finish: bool) -> Vec<u8> {
        let mut writer = TraceWriter::new(Vec::new(), &meta())
            .unwrap()
            .with_block_records(10);
        for i in 0..30 {
            writer.push(&transition(i)).unwrap();
        }
        if finish {
            writer
                .finish(&TraceEnd {
                    end_ns: 40_000,
                    stop_reason: "interrupted".into(),
                    ..TraceEnd::default()
                })
                .unwrap()
        } else {
            writer.abandon().unwrap()
        }
    }

    fn read_all(bytes: &[u8]) -> (Vec<TraceEvent>, Vec<Damage>, Option<TraceEnd>) {
        let mut reader = TraceReader::open(bytes).unwrap();
        let events = reader.collect_events().unwrap();
        (events, reader.damage().to_vec(), reader.end().cloned())
    }

    #[test]
    fn a_finished_trace_reads_back_whole() {
        let (events, damage, end) = read_all(&trace_bytes(true));
        assert_eq!(events.len(), 30);
        assert_eq!(events[29], transition(29));
        assert!(damage.is_empty(), "{damage:?}");
        let end = end.unwrap();
        assert_eq!(end.stop_reason, "interrupted");
        assert_eq!(end.records, 30);
    }

    #[test]
    fn a_trace_without_end_block_is_reported_cut_but_replays() {
        let (events, damage, end) = read_all(&trace_bytes(false));
        assert_eq!(events.len(), 30);
        assert!(end.is_none());
        assert!(
            matches!(damage.as_slice(), [Damage::Cut { .. }]),
            "{damage:?}"
        );
    }

    #[test]
    fn every_cut_point_replays_the_complete_blocks_before_it() {
        let bytes = trace_bytes(true);
        let meta_end = TraceEncoderStartLen::get();
        for len in meta_end..bytes.len() {
            let (events, damage, _) = read_all(&bytes[..len]);
            assert_eq!(events.len() % 10, 0, "cut at {len}: partial block leaked");
            assert!(
                damage.iter().any(|d| matches!(d, Damage::Cut { .. })),
                "cut at {len} went unreported"
            );
        }
    }

    struct TraceEncoderStartLen;
    impl TraceEncoderStartLen {
        fn get() -> usize {
            crate::trace::TraceEncoder::start(&meta()).len()
        }
    }

    #[test]
    fn a_corrupt_block_becomes_a_gap_and_later_blocks_still_replay() {
        let mut bytes = trace_bytes(true);
        let start = TraceEncoderStartLen::get();
        // Flip a byte inside the first records block's payload.
        bytes[start + BLOCK_HEADER_LEN + 5] ^= 0xff;
        let (events, damage, end) = read_all(&bytes);
        assert!(end.is_some());
        let gaps: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Lost(g) => Some(*g),
                _ => None,
            })
            .collect();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].lost, 10);
        assert_eq!(gaps[0].cause, GapCause::CorruptBlock);
        assert_eq!(events.len(), 21);
        assert!(matches!(
            damage.as_slice(),
            [Damage::CorruptBlock { records: 10, .. }]
        ));
    }

    #[test]
    fn garbage_between_blocks_is_skipped() {
        let bytes = trace_bytes(true);
        let start = TraceEncoderStartLen::get();
        let mut damaged = bytes[..start].to_vec();
        let garbage = b"garbage that is not a block header at all";
        damaged.extend_from_slice(garbage);
        damaged.extend_from_slice(&bytes[start..]);
        let (events, damage, _) = read_all(&damaged);
        assert_eq!(events.len(), 30);
        assert_eq!(
            damage,
            [Damage::Skipped {
                offset: start as u64,
                len: garbage.len() as u64
            }]
        );
    }

    /// A recording made by tcpchurn before format 1.1 (six HTTP/1.0-style connections
    /// on loopback, the server answering 2 KB and closing first): it replays, its
    /// transitions simply have no counters.
    #[test]
    fn a_format_1_0_recording_replays_without_counters() {
        let file = include_bytes!("testdata/served-format-1.0.trace");
        let mut reader = TraceReader::open(&file[..]).unwrap();
        assert_eq!(reader.version(), (1, 0));
        let mut transitions = 0;
        while let Some(event) = reader.next_event().unwrap() {
            if let TraceEvent::Transition(t) = event {
                transitions += 1;
                assert_eq!(t.counters, None, "{t:?}");
            }
        }
        assert_eq!(transitions, 62);
        assert!(reader.damage().is_empty(), "{:?}", reader.damage());
    }

    #[test]
    fn headers_are_checked() {
        assert!(matches!(
            TraceReader::open(&b""[..]),
            Err(TraceError::Empty)
        ));
        let err = TraceReader::open(&b"GIF89a......"[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a tcpchurn trace (it starts with \"GIF89a..\")"
        );
        let mut newer = trace_bytes(true);
        newer[8] = 9;
        newer[10] = 0;
        let err = TraceReader::open(&newer[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "trace format 9.0 is newer than this tcpchurn reads (1.1); replay it with a newer tcpchurn"
        );
        let bytes = trace_bytes(true);
        assert!(matches!(
            TraceReader::open(&bytes[..20]),
            Err(TraceError::BadMeta(_))
        ));
    }

    #[test]
    fn unknown_block_kinds_are_skipped() {
        let bytes = trace_bytes(true);
        let start = TraceEncoderStartLen::get();
        let mut extended = bytes[..start].to_vec();
        let mut unknown = frame(BlockKind::Records, 0, 0, b"future");
        unknown[4] = 200;
        // Re-frame with a valid header checksum for the new kind.
        let header = BlockHeader {
            kind: 200,
            flags: 0,
            payload_len: 6,
            records: 0,
            first_ts_ns: 0,
            payload_crc: crc32fast::hash(b"future"),
        };
        unknown[..BLOCK_HEADER_LEN].copy_from_slice(&header.encode());
        extended.extend_from_slice(&unknown);
        extended.extend_from_slice(&bytes[start..]);
        let (events, damage, _) = read_all(&extended);
        assert_eq!(events.len(), 30);
        assert!(damage.is_empty());
    }

    fn names() -> WorkloadTable {
        use crate::model::{Identity, Named, Source, Workload, WorkloadKey, WorkloadTableBuilder};
        let mut builder = WorkloadTableBuilder::default();
        let zk = Identity::Workload(Workload {
            pod: Some(Named::new("zk-0", Source::OciConfig)),
            ..Workload::default()
        });
        builder.add(WorkloadKey::Cgroup(77), &zk);
        builder.add(WorkloadKey::Netns(1), &Identity::Host);
        builder.finish()
    }

    /// 20 events in two blocks, names before each.
    fn named_trace() -> Vec<u8> {
        let mut writer = TraceWriter::new(Vec::new(), &meta())
            .unwrap()
            .with_block_records(10);
        for i in 0..20 {
            if i % 10 == 0 {
                writer.push_workloads(&names());
            }
            writer.push(&transition(i)).unwrap();
        }
        writer.finish(&TraceEnd::default()).unwrap()
    }

    #[test]
    fn names_come_before_the_events_they_name() {
        let bytes = named_trace();
        let mut reader = TraceReader::open(&bytes[..]).unwrap();
        assert_eq!(reader.version(), (1, 1));
        assert!(
            reader.take_workloads().is_empty(),
            "none before the first block"
        );
        let first = reader.next_event().unwrap().unwrap();
        assert_eq!(first, transition(0));
        assert_eq!(reader.take_workloads(), [names()]);
        let rest = reader.collect_events().unwrap();
        assert_eq!(rest.len(), 19);
        assert_eq!(reader.take_workloads(), [names()]);
        assert!(reader.damage().is_empty());
    }

    #[test]
    fn a_damaged_names_block_loses_only_its_names() {
        let mut bytes = named_trace();
        let start = TraceEncoderStartLen::get();
        // Inside the first names block's payload.
        bytes[start + BLOCK_HEADER_LEN + 3] ^= 0x55;
        let mut reader = TraceReader::open(&bytes[..]).unwrap();
        let events = reader.collect_events().unwrap();
        assert_eq!(events.len(), 20, "no event lost");
        assert_eq!(
            reader.take_workloads(),
            [names()],
            "the second block's names"
        );
        let damage = reader.damage();
        assert!(
            matches!(&damage, [Damage::NamesLost { offset, .. }] if *offset == start as u64),
            "{damage:?}"
        );
        assert!(
            damage[0]
                .to_string()
                .contains("pods and containers it named are unknown")
        );
    }

    #[test]
    fn a_1_0_trace_replays_with_no_names() {
        let mut old = trace_bytes(true);
        old[10] = 0;
        let mut reader = TraceReader::open(&old[..]).unwrap();
        assert_eq!(reader.version(), (1, 0));
        assert_eq!(reader.collect_events().unwrap().len(), 30);
        assert!(reader.take_workloads().is_empty());
        assert!(reader.damage().is_empty());
    }

    /// One transition of connection 1 at `ts_ns` µs, with `tuple`.
    pub fn step(ts_us: u64, tuple: (&str, &str), old: TcpState, new: TcpState) -> TraceEvent {
        TraceEvent::Transition(Transition {
            ts_ns: ts_us * 1000,
            conn: Conn {
                id: 1,
                scope: Scope::default(),
                tuple: SocketTuple {
                    local: tuple.0.parse().unwrap(),
                    remote: tuple.1.parse().unwrap(),
                },
            },
            old,
            new,
            context: ExecContext::Task,
            task: None,
            counters: None,
        })
    }

    pub const CONNECTING: (&str, &str) = ("10.0.0.2:0", "10.0.0.1:80");
    pub const CONNECTED: (&str, &str) = ("10.0.0.2:53970", "10.0.0.1:80");

    fn local_ports(events: &[TraceEvent]) -> Vec<u16> {
        events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Transition(t) => Some(t.conn.tuple.local.port()),
                _ => None,
            })
            .collect()
    }

    /// The connects of connection 1 and 2 in blocks closed after every event, with
    /// `between` blocks of another connection between the SYN_SENT and the rest.
    fn connect_across_blocks(between: u64, finish: bool) -> Vec<u8> {
        use TcpState::*;
        let mut writer = TraceWriter::new(Vec::new(), &meta())
            .unwrap()
            .with_block_records(1);
        writer.push(&step(1, CONNECTING, Close, SynSent)).unwrap();
        for i in 0..between {
            writer.push(&transition(100 + i)).unwrap();
        }
        writer
            .push(&step(500, CONNECTED, SynSent, Established))
            .unwrap();
        writer
            .push(&step(600, CONNECTED, Established, FinWait1))
            .unwrap();
        if finish {
            writer.finish(&TraceEnd::default()).unwrap()
        } else {
            writer.abandon().unwrap()
        }
    }

    /// The kernel gives a connect's source port after its SYN_SENT event; when the
    /// block closes in between, the next block's definition completes it.
    #[test]
    fn a_source_port_given_in_the_next_block_completes_the_connect() {
        let (events, damage, _) = read_all(&connect_across_blocks(0, true));
        assert_eq!(local_ports(&events), [53970, 53970, 53970]);
        assert!(damage.is_empty(), "{damage:?}");
        // Read one event at a time, the blocks read ahead are not read twice.
        let (events, _, _) = read_all(&connect_across_blocks(1, true));
        assert_eq!(local_ports(&events), [53970, 40000, 53970, 53970]);
    }

    /// Blocks of other connections in between do not stop the reader; a port given
    /// later than the reader looks ahead stays what the block wrote: 0.
    #[test]
    fn a_port_is_looked_for_as_far_as_the_lookahead_goes() {
        let (events, _, _) = read_all(&connect_across_blocks(50, true));
        assert_eq!(local_ports(&events).first(), Some(&53970));

        use TcpState::*;
        let mut writer = TraceWriter::new(Vec::new(), &meta())
            .unwrap()
            .with_block_records(1);
        writer.push(&step(1, CONNECTING, Close, SynSent)).unwrap();
        let later_us = LOOKAHEAD_NS / 1000 + 2;
        writer.push(&transition(later_us)).unwrap();
        writer
            .push(&step(later_us + 1, CONNECTED, SynSent, Established))
            .unwrap();
        let (events, _, _) = read_all(&writer.finish(&TraceEnd::default()).unwrap());
        assert_eq!(local_ports(&events), [0, 40000, 53970]);
    }

    /// Many connects interleaved over small blocks: every event comes back once, in
    /// order, each with its connection's port, the blocks read ahead included.
    #[test]
    fn interleaved_connects_over_small_blocks_read_back_whole_and_complete() {
        use TcpState::*;
        let connect = |id: u64, ts: u64, port: u16, new| {
            TraceEvent::Transition(Transition {
                ts_ns: ts,
                conn: Conn {
                    id,
                    scope: Scope::default(),
                    tuple: SocketTuple {
                        local: SocketAddr::new([10, 0, 0, 2].into(), port),
                        remote: "10.0.0.1:80".parse().unwrap(),
                    },
                },
                old: if new == SynSent { Close } else { SynSent },
                new,
                context: ExecContext::Task,
                task: None,
                counters: None,
            })
        };
        let mut written = Vec::new();
        // Connection i connects at step i and is answered 1 + i % 13 steps later.
        let mut answers: Vec<(u64, u64)> = Vec::new();
        for step in 0..1000u64 {
            written.push(connect(step, step * 1000, 0, SynSent));
            answers.push((step + 1 + step % 13, step));
            answers.sort_unstable();
            while answers.first().is_some_and(|&(at, _)| at <= step) {
                let (_, id) = answers.remove(0);
                written.push(connect(
                    id,
                    step * 1000 + 1,
                    30_000 + id as u16,
                    Established,
                ));
            }
        }
        for block_records in [1, 2, 7, 64] {
            let mut writer = TraceWriter::new(Vec::new(), &meta())
                .unwrap()
                .with_block_records(block_records);
            for event in &written {
                writer.push(event).unwrap();
            }
            let bytes = writer.finish(&TraceEnd::default()).unwrap();
            let (events, damage, end) = read_all(&bytes);
            assert!(damage.is_empty() && end.is_some(), "{damage:?}");
            assert_eq!(events.len(), written.len(), "blocks of {block_records}");
            for (read, wrote) in events.iter().zip(&written) {
                let (TraceEvent::Transition(read), TraceEvent::Transition(wrote)) = (read, wrote)
                else {
                    unreachable!()
                };
                assert_eq!((read.ts_ns, read.conn.id), (wrote.ts_ns, wrote.conn.id));
                let answered = answers.iter().all(|&(_, id)| id != read.conn.id);
                let port = if answered {
                    30_000 + read.conn.id as u16
                } else {
                    0
                };
                assert_eq!(
                    read.conn.tuple.local.port(),
                    port,
                    "blocks of {block_records}"
                );
            }
        }
    }

    /// A child socket before 6.15: LISTEN->SYN_RECV names no peer.
    #[test]
    fn a_childs_peer_given_in_the_next_block_completes_it() {
        use TcpState::*;
        let mut writer = TraceWriter::new(Vec::new(), &meta())
            .unwrap()
            .with_block_records(1);
        let child = ("10.0.0.1:80", "0.0.0.0:0");
        let full = ("10.0.0.1:80", "10.0.0.2:53970");
        writer.push(&step(1, child, Listen, SynRecv)).unwrap();
        writer.push(&step(2, full, SynRecv, Established)).unwrap();
        let (events, _, _) = read_all(&writer.finish(&TraceEnd::default()).unwrap());
        for event in &events {
            let TraceEvent::Transition(t) = event else {
                unreachable!()
            };
            assert_eq!(t.conn.tuple.remote, full.1.parse().unwrap());
        }
    }

    /// A trace cut while the reader looks ahead: the port is unknown, the cut is dated
    /// by the last event before it, and every event before the cut replays.
    #[test]
    fn a_cut_found_while_looking_ahead_is_dated_by_the_last_event() {
        use TcpState::*;
        let mut writer = TraceWriter::new(Vec::new(), &meta())
            .unwrap()
            .with_block_records(1);
        writer.push(&step(1, CONNECTING, Close, SynSent)).unwrap();
        writer.push(&transition(100)).unwrap();
        let cut = writer.bytes_written() + 10;
        writer
            .push(&step(500, CONNECTED, SynSent, Established))
            .unwrap();
        let bytes = writer.abandon().unwrap();
        let (events, damage, _) = read_all(&bytes[..cut as usize]);
        assert_eq!(local_ports(&events), [0, 40000]);
        assert_eq!(
            damage.as_slice(),
            [Damage::Cut {
                offset: damage_offset(&damage),
                last_ts_ns: 100_000
            }]
        );
    }

    fn damage_offset(damage: &[Damage]) -> u64 {
        match damage {
            [Damage::Cut { offset, .. }] => *offset,
            _ => panic!("{damage:?}"),
        }
    }
}
