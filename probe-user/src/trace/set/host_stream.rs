//! One host's events: the parts of its recording read one after the other (one file
//! open at a time), each event marked with the host and moved onto the replay's
//! timeline. A hole between two given parts becomes a gap and damage; the snapshot of
//! open connections that starts every rotated part repeats what the part before said,
//! and is left out when that part was read.

use std::{
    collections::VecDeque,
    fmt,
    fs::File,
    io::{BufReader, Read},
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use crate::{
    model::{Gap, GapCause, HostId, TraceEvent, WorkloadTable},
    trace::{
        Damage, TraceEnd, TraceMeta, TraceReader,
        set::{SetError, parts::MissingParts},
    },
};

/// Where a part's bytes are.
#[derive(Clone, Debug)]
pub enum PartSource {
    File(PathBuf),
    /// Bytes already in memory (tests and tools).
    Memory(Arc<[u8]>),
    /// A pipe (`cat x.trace | tcpchurn replay /dev/stdin`), its header already read:
    /// it can be read once.
    Stream(OnceReader),
}

pub type PartReader = TraceReader<Box<dyn Read + Send>>;

/// The reader of a file that cannot be opened again, until a pass takes it.
#[derive(Clone)]
pub struct OnceReader(Arc<Mutex<Option<PartReader>>>);

impl OnceReader {
    pub fn new(reader: PartReader) -> Self {
        Self(Arc::new(Mutex::new(Some(reader))))
    }

    fn take(&self) -> Option<PartReader> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl fmt::Debug for OnceReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnceReader")
    }
}

impl PartSource {
    /// Opens the part and reads its header; `buffer` bytes of read-ahead for a file. A
    /// file that is not a regular file (a pipe) comes back as a [`Self::Stream`] too.
    pub fn open(&self, name: &str, buffer: usize) -> Result<PartReader, SetError> {
        self.open_file(name, buffer).map(|(reader, _)| reader)
    }

    /// [`Self::open`], and whether the file can be opened again (a regular file, or
    /// bytes in memory).
    pub fn open_file(&self, name: &str, buffer: usize) -> Result<(PartReader, bool), SetError> {
        let mut again = true;
        let input: Box<dyn Read + Send> = match self {
            Self::File(path) => {
                let file = File::open(path).map_err(|error| SetError::Io {
                    file: name.to_owned(),
                    error,
                })?;
                let meta = file.metadata().map_err(|error| SetError::Io {
                    file: name.to_owned(),
                    error,
                })?;
                if meta.is_dir() {
                    return Err(SetError::Directory(name.to_owned()));
                }
                again = meta.is_file();
                Box::new(BufReader::with_capacity(buffer, file))
            }
            Self::Stream(once) => {
                return once
                    .take()
                    .map(|reader| (reader, false))
                    .ok_or_else(|| SetError::ReadTwice(name.to_owned()));
            }
            Self::Memory(bytes) => Box::new(std::io::Cursor::new(Arc::clone(bytes))),
        };
        let reader = TraceReader::open(input).map_err(|error| SetError::Trace {
            file: name.to_owned(),
            error,
        })?;
        Ok((reader, again))
    }

    /// Whether this part can be read only once.
    pub fn is_stream(&self) -> bool {
        matches!(self, Self::Stream(_))
    }
}

/// One file of a recording.
#[derive(Clone, Debug)]
pub struct Part {
    /// The file as given, for messages.
    pub name: String,
    pub source: PartSource,
    pub meta: TraceMeta,
    /// Parts of the recording missing between this one and the one before.
    pub missing_before: Option<MissingParts>,
}

/// Damage the reader worked around, and in which file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartDamage {
    pub file: String,
    pub damage: Damage,
}

/// See the module documentation.
pub struct HostStream<'a> {
    host: HostId,
    parts: &'a [Part],
    /// Added to every time: where this host's trace time 0 is on the replay's timeline.
    shift_ns: u64,
    buffer: usize,
    next_part: usize,
    reader: Option<PartReader>,
    /// The part being read repeats the open connections of the part before it.
    skip_start_snapshot: bool,
    queued: VecDeque<TraceEvent>,
    /// Latest trace time seen (the host's own, unshifted).
    last_ts: u64,
    end: Option<TraceEnd>,
    damage: Vec<PartDamage>,
    /// Names read before the event returned last.
    names: Vec<WorkloadTable>,
    /// The current event when it came from `queued` rather than from the reader.
    popped: Option<TraceEvent>,
}

impl<'a> HostStream<'a> {
    pub fn new(host: HostId, parts: &'a [Part], shift_ns: u64, buffer: usize) -> Self {
        Self {
            host,
            parts,
            shift_ns,
            buffer,
            next_part: 0,
            reader: None,
            skip_start_snapshot: false,
            queued: VecDeque::new(),
            last_ts: 0,
            end: None,
            damage: Vec::new(),
            names: Vec::new(),
            popped: None,
        }
    }

    /// The end block of the last part read (`None` if it was cut).
    pub fn end(&self) -> Option<&TraceEnd> {
        self.end.as_ref()
    }

    /// Where this host's recording ended on the replay's timeline: its end block, or
    /// its last event.
    pub fn end_ns(&self) -> u64 {
        self.end
            .as_ref()
            .map_or(self.last_ts, |e| e.end_ns.max(self.last_ts))
            .saturating_add(self.shift_ns)
    }

    pub fn damage(&self) -> &[PartDamage] {
        &self.damage
    }

    pub const fn host(&self) -> HostId {
        self.host
    }

    /// The names (`Workloads` blocks) read before the event returned last.
    pub fn take_workloads(&mut self) -> Vec<WorkloadTable> {
        std::mem::take(&mut self.names)
    }

    /// The next event of this host, in file order.
    pub fn next_event(&mut self) -> Result<Option<TraceEvent>, SetError> {
        if !self.advance()? {
            return Ok(None);
        }
        Ok(self
            .popped
            .take()
            .or_else(|| self.reader.as_mut().and_then(PartReader::take_current)))
    }

    /// Moves to the next event of this host, in file order, read in place: `true` when
    /// there is one, then [`HostStream::current`] holds it until the next call.
    pub fn advance(&mut self) -> Result<bool, SetError> {
        self.popped = None;
        loop {
            if let Some(mut event) = self.queued.pop_front() {
                place(&mut event, self.host, self.shift_ns);
                self.popped = Some(event);
                return Ok(true);
            }
            if let Some(reader) = &mut self.reader {
                let name = &self.parts[self.next_part - 1].name;
                reader.advance().map_err(|error| SetError::Trace {
                    file: name.clone(),
                    error,
                })?;
                let names = reader.take_workloads();
                // Names are rare (one table per flush at most): skip the extend per event.
                if !names.is_empty() {
                    self.names.extend(names);
                }
                match reader.current_mut() {
                    Some(TraceEvent::Snapshot(s)) if self.skip_start_snapshot && !s.at_end => {}
                    Some(event) => {
                        self.last_ts = self.last_ts.max(event.ts_ns());
                        place(event, self.host, self.shift_ns);
                        return Ok(true);
                    }
                    None => self.close_part(),
                }
                continue;
            }
            if self.next_part == self.parts.len() {
                return Ok(false);
            }
            self.open_next()?;
        }
    }

    /// The event the last [`HostStream::advance`] found.
    pub fn current(&self) -> Option<&TraceEvent> {
        self.popped
            .as_ref()
            .or_else(|| self.reader.as_ref().and_then(PartReader::current))
    }

    fn close_part(&mut self) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        let file = &self.parts[self.next_part - 1].name;
        self.damage
            .extend(reader.damage().iter().map(|damage| PartDamage {
                file: file.clone(),
                damage: damage.clone(),
            }));
        self.end = reader.end().cloned();
    }

    fn open_next(&mut self) -> Result<(), SetError> {
        let part = &self.parts[self.next_part];
        let mut reader = part.source.open(&part.name, self.buffer)?;
        self.skip_start_snapshot = self.next_part > 0 && part.missing_before.is_none();
        self.next_part += 1;
        if let Some(missing) = part.missing_before {
            // Nothing is known from where the part before ended to this part's first
            // event.
            let from_ns = self
                .end
                .as_ref()
                .map_or(self.last_ts, |e| e.end_ns.max(self.last_ts));
            let first = reader.next_event().map_err(|error| SetError::Trace {
                file: part.name.clone(),
                error,
            })?;
            // They name the first event; the gap before it comes out first.
            self.names.extend(reader.take_workloads());
            let to_ns = first.as_ref().map_or(from_ns, |e| e.ts_ns().max(from_ns));
            self.damage.push(PartDamage {
                file: part.name.clone(),
                damage: Damage::MissingParts {
                    first: missing.first,
                    last: missing.last,
                    from_ns: from_ns.saturating_add(self.shift_ns),
                    to_ns: to_ns.saturating_add(self.shift_ns),
                },
            });
            self.queued.push_back(TraceEvent::Lost(Gap {
                from_ns,
                to_ns,
                lost: 0,
                cpu: None,
                cause: GapCause::MissingPart,
                host: self.host,
            }));
            if let Some(first) = first {
                self.last_ts = self.last_ts.max(first.ts_ns());
                self.queued.push_back(first);
            }
        }
        self.end = None;
        self.reader = Some(reader);
        Ok(())
    }
}

/// Puts an event on the replay's timeline, in place.
fn place(event: &mut TraceEvent, host: HostId, shift_ns: u64) {
    event.set_host(host);
    event.shift(shift_ns);
}
