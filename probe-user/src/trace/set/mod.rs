//! Several trace files replayed as one: the parts of a rotated recording joined in
//! order, and the recordings of several hosts merged on wall-clock time, each host's
//! clock corrected by the offset measured from connections both hosts traced.
//!
//! - [`inputs`]: command-line arguments (files, directories, globs) to files;
//! - [`parts`]: which files are parts of one recording, and the holes between them;
//! - [`host_stream`]: one host's events, part after part;
//! - [`merge`]: the hosts' events interleaved by time;
//! - [`exchanges`] and [`clock`]: the clock offset between hosts.
//!
//! Memory is bounded: one open file and one block per host while reading; the clock
//! pass keeps a bounded number of unmatched messages and exchanges.

pub mod clock;
pub mod exchanges;
pub mod host_stream;
pub mod inputs;
pub mod merge;
pub mod parts;

use std::{collections::BTreeMap, io, ops::ControlFlow};

use self::{
    clock::{Agreement, PairOffset, host_clocks},
    exchanges::ExchangeFinder,
    host_stream::HostStream,
    merge::{EventSource, Merge},
    parts::PartsError,
};
pub use self::{
    clock::{ClockBasis, HostClock},
    host_stream::{OnceReader, Part, PartDamage, PartSource},
    inputs::Input,
};
use crate::{
    model::{HostId, HostNames, TraceEvent, WorkloadTable},
    trace::{TraceEnd, TraceError, TraceMeta},
};

/// Recordings one replay reads at most: each holds a file and a block while read.
pub const MAX_HOSTS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    // `error`, not `source`: the file and the error make one message, not a chain
    // that repeats the error.
    #[error("{file}: {error}")]
    Trace { file: String, error: TraceError },
    #[error("{file}: {error}")]
    Io { file: String, error: io::Error },
    #[error("{0}: is a directory")]
    Directory(String),
    #[error(
        "{0}: is not a regular file (a pipe?) and this needs to read it twice; copy the trace to a file"
    )]
    ReadTwice(String),
    #[error("{0}")]
    Input(String),
    #[error(
        "{0} recordings are more than one replay reads ({MAX_HOSTS}); replay or export them in groups"
    )]
    TooMany(usize),
}

/// One host's recording (one recording per host; a second recording on the same host
/// counts as another host).
#[derive(Clone, Debug)]
pub struct SetHost {
    pub id: HostId,
    /// Unique in the set: the host name, with `#2`, `#3`... for further recordings of a
    /// host.
    pub name: String,
    /// The files of the recording, in part order.
    pub parts: Vec<Part>,
}

impl SetHost {
    /// The meta block of the first part given.
    pub fn meta(&self) -> &TraceMeta {
        &self.parts[0].meta
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct TraceSet {
    hosts: Vec<SetHost>,
    /// Files in a directory argument that are not traces.
    skipped: Vec<String>,
}

/// Where each host's events go on the replay's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// Wall-clock time (on the reference host's clock) of the replay's time 0.
    pub start_unix_ns: u64,
    pub hosts: Vec<HostTimeline>,
    /// Host pairs whose connections did not meet: maybe translated addresses.
    pub unmatched: Vec<UnmatchedEnds>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTimeline {
    pub clock: HostClock,
    /// Added to the host's trace times.
    pub shift_ns: u64,
}

/// Connects on `client` to `port` and accepts on `server`'s `port` that found no other
/// end on the other host, while more of them did not than did: addresses may be
/// translated between the hosts (NAT), so their ends cannot be matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnmatchedEnds {
    pub client: HostId,
    pub server: HostId,
    pub port: u16,
    pub connects: u64,
    pub accepts: u64,
    /// Handshakes the two hosts did match (on any port).
    pub matched: u64,
}

impl TraceSet {
    /// Reads the header of every input and groups them into recordings. A file from a
    /// directory argument that is not a trace is skipped (and listed); any other
    /// unreadable input is an error.
    pub fn open(inputs: Vec<Input>) -> Result<Self, SetError> {
        let mut parts = Vec::new();
        let mut skipped = Vec::new();
        for input in inputs {
            match input.source.open_file(&input.name, 1 << 16) {
                Ok((reader, again)) => parts.push(Part {
                    name: input.name,
                    meta: reader.meta().clone(),
                    // A pipe's reader is kept for the pass that reads it.
                    source: if again {
                        input.source
                    } else {
                        PartSource::Stream(OnceReader::new(reader))
                    },
                    missing_before: None,
                }),
                Err(SetError::Trace {
                    error: TraceError::NotATrace(_) | TraceError::Empty,
                    ..
                }) if input.from_directory => skipped.push(input.name),
                Err(err) => return Err(err),
            }
        }
        if parts.is_empty() {
            return Err(SetError::Input(match skipped.first() {
                Some(first) => format!("no trace files ({first} is not a tcpchurn trace)"),
                None => "no trace files".to_owned(),
            }));
        }
        let metas: Vec<&TraceMeta> = parts.iter().map(|p| &p.meta).collect();
        let recordings = parts::group(&metas).map_err(|e| match e {
            PartsError::Duplicate(a, b, part) => SetError::Input(format!(
                "{} and {} are the same part ({part}) of one recording",
                parts[a].name, parts[b].name
            )),
        })?;
        if recordings.len() > MAX_HOSTS {
            return Err(SetError::TooMany(recordings.len()));
        }
        let mut hosts: Vec<SetHost> = Vec::with_capacity(recordings.len());
        for (i, recording) in recordings.into_iter().enumerate() {
            let parts: Vec<Part> = recording
                .parts
                .iter()
                .zip(recording.missing_before)
                .map(|(&input, missing_before)| Part {
                    missing_before,
                    ..parts[input].clone()
                })
                .collect();
            let hostname = match parts[0].meta.hostname.as_str() {
                "" => "?",
                name => name,
            };
            let same = hosts
                .iter()
                .filter(|h| h.meta().hostname == parts[0].meta.hostname)
                .count();
            let name = match same {
                0 => hostname.to_owned(),
                n => format!("{hostname}#{}", n + 1),
            };
            hosts.push(SetHost {
                id: HostId(u16::try_from(i).unwrap_or(u16::MAX)),
                name,
                parts,
            });
        }
        Ok(Self { hosts, skipped })
    }

    pub fn hosts(&self) -> &[SetHost] {
        &self.hosts
    }

    /// The first file that can be read only once (a pipe), if any.
    pub fn read_once(&self) -> Option<&str> {
        self.hosts
            .iter()
            .flat_map(|h| &h.parts)
            .find(|p| p.source.is_stream())
            .map(|p| p.name.as_str())
    }

    /// Files of a directory argument that were not traces.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Read-ahead per open file: less when many hosts are open at once.
    fn buffer(&self) -> usize {
        if self.hosts.len() <= 8 {
            1 << 20
        } else {
            1 << 17
        }
    }

    fn reader(&self, shifts: &[u64]) -> SetReader<'_> {
        let buffer = self.buffer();
        SetReader {
            merge: Merge::new(
                self.hosts
                    .iter()
                    .zip(shifts)
                    .map(|(host, &shift)| HostStream::new(host.id, &host.parts, shift, buffer))
                    .collect(),
            ),
        }
    }

    /// Where each host's events go: with one host, where they are; with several, each
    /// host's clock corrected by its offset from the reference host's, measured in a
    /// first pass over every file.
    pub fn timeline(&self) -> Result<Timeline, SetError> {
        let starts: Vec<i128> = self
            .hosts
            .iter()
            .map(|h| i128::from(h.meta().start_unix_ns))
            .collect();
        if self.hosts.len() == 1 {
            return Ok(Timeline {
                start_unix_ns: self.hosts[0].meta().start_unix_ns,
                hosts: vec![HostTimeline {
                    clock: HostClock {
                        offset_ns: 0,
                        uncertainty_ns: 0,
                        basis: ClockBasis::Reference,
                    },
                    shift_ns: 0,
                }],
                unmatched: Vec::new(),
            });
        }
        // The clock pass would use up a pipe: refused before anything is read.
        if let Some(once) = self.read_once() {
            return Err(SetError::ReadTwice(once.to_owned()));
        }
        // First pass: on the headers' clocks.
        let earliest = starts.iter().copied().min().unwrap_or(0);
        let shifts: Vec<u64> = starts.iter().map(|&s| clamp(s - earliest)).collect();
        let mut finder = ExchangeFinder::default();
        let mut reader = self.reader(&shifts);
        while let Some(event) = reader.next_event()? {
            finder.on_event(&event);
        }
        finder.finish();
        // A shared monotonic clock is exact: its links come first, and win ties.
        let mut links = self.same_boot_links();
        links.extend(finder.log.offsets());
        let clocks = host_clocks(self.hosts.len(), &links);
        // Each host's start on the reference clock; the earliest is time 0.
        let corrected: Vec<i128> = starts
            .iter()
            .zip(&clocks)
            .map(|(&start, clock)| start - i128::from(clock.offset_ns))
            .collect();
        let base = corrected.iter().copied().min().unwrap_or(0);
        Ok(Timeline {
            start_unix_ns: clamp(base),
            hosts: corrected
                .iter()
                .zip(clocks)
                .map(|(&start, clock)| HostTimeline {
                    clock,
                    shift_ns: clamp(start - base),
                })
                .collect(),
            unmatched: unmatched_ends(&finder),
        })
    }

    /// Recordings made in one boot of one machine share its monotonic clock: their
    /// offset is what their headers' wall-clock mappings differ by, exactly.
    fn same_boot_links(&self) -> Vec<PairOffset> {
        let mut links = Vec::new();
        for (i, a) in self.hosts.iter().enumerate() {
            for b in &self.hosts[i + 1..] {
                let (ma, mb) = (a.meta(), b.meta());
                if ma.boot_id.is_empty() || ma.boot_id != mb.boot_id {
                    continue;
                }
                let mapping =
                    |m: &TraceMeta| i128::from(m.start_unix_ns) - i128::from(m.start_monotonic_ns);
                let offset = mapping(mb) - mapping(ma);
                links.push(PairOffset {
                    a: a.id,
                    b: b.id,
                    offset_ns: i64::try_from(offset).unwrap_or(0),
                    uncertainty_ns: 0,
                    agreement: None::<Agreement>,
                });
            }
        }
        links
    }

    /// Every host's events, merged on the timeline.
    pub fn events(&self, timeline: &Timeline) -> SetReader<'_> {
        let shifts: Vec<u64> = timeline.hosts.iter().map(|h| h.shift_ns).collect();
        self.reader(&shifts)
    }
}

fn clamp(ns: i128) -> u64 {
    u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
}

/// Host pairs where connects on one and accepts on the other, to one port, mostly
/// found no other end.
fn unmatched_ends(finder: &ExchangeFinder) -> Vec<UnmatchedEnds> {
    let mut found = Vec::new();
    let by_port: BTreeMap<u16, Vec<(HostId, u64, u64)>> =
        finder
            .unmatched
            .iter()
            .fold(BTreeMap::new(), |mut map, (&(host, port), u)| {
                map.entry(port)
                    .or_insert_with(Vec::new)
                    .push((host, u.connects, u.accepts));
                map
            });
    for (port, hosts) in by_port {
        for &(client, connects, _) in hosts.iter().filter(|h| h.1 > 0) {
            for &(server, _, accepts) in hosts.iter().filter(|h| h.2 > 0 && h.0 != client) {
                let pair = (client.min(server), client.max(server));
                let matched = finder.matched.get(&pair).copied().unwrap_or(0);
                if connects.min(accepts) > matched {
                    found.push(UnmatchedEnds {
                        client,
                        server,
                        port,
                        connects,
                        accepts,
                        matched,
                    });
                }
            }
        }
    }
    found
}

/// A trace set ready to be read (as many times as a command needs): its timeline, and
/// its hosts' names.
#[derive(Clone, Debug)]
pub struct Traces {
    pub set: TraceSet,
    pub timeline: Timeline,
    pub names: HostNames,
}

impl Traces {
    /// The set of these inputs, with the hosts' clocks measured.
    pub fn of(inputs: Vec<Input>) -> Result<Self, SetError> {
        let set = TraceSet::open(inputs)?;
        let timeline = set.timeline()?;
        let names = HostNames(set.hosts().iter().map(|h| h.name.clone()).collect());
        Ok(Self {
            set,
            timeline,
            names,
        })
    }

    /// The files, directories and patterns given on a command line.
    pub fn open(args: &[std::path::PathBuf]) -> Result<Self, SetError> {
        Self::of(inputs::expand(args)?)
    }

    /// Every host's events, merged on the timeline.
    pub fn events(&self) -> SetReader<'_> {
        self.set.events(&self.timeline)
    }
}

/// Every host's events on one timeline.
pub struct SetReader<'a> {
    merge: Merge<HostStream<'a>>,
}

impl EventSource for HostStream<'_> {
    fn next_event(&mut self) -> Result<Option<TraceEvent>, SetError> {
        HostStream::next_event(self)
    }

    fn take_workloads(&mut self) -> Vec<WorkloadTable> {
        HostStream::take_workloads(self)
    }
}

impl SetReader<'_> {
    pub fn next_event(&mut self) -> Result<Option<TraceEvent>, SetError> {
        self.merge.next_event()
    }

    /// Shows `visit` every event from here on, with the names read before it, until it
    /// breaks. One host's events are read in place rather than moved through the merge:
    /// events are large, and a replay of one recording moves millions of them.
    pub fn for_each_event<E: From<SetError>>(
        &mut self,
        mut visit: impl FnMut(Vec<(HostId, WorkloadTable)>, &TraceEvent) -> Result<ControlFlow<()>, E>,
    ) -> Result<(), E> {
        if let [only] = self.merge.sources_mut() {
            let host = only.host();
            while only.advance()? {
                let names = only.take_workloads();
                let names = if names.is_empty() {
                    Vec::new()
                } else {
                    names.into_iter().map(|table| (host, table)).collect()
                };
                let Some(event) = only.current() else {
                    break;
                };
                if visit(names, event)?.is_break() {
                    break;
                }
            }
            return Ok(());
        }
        while let Some(event) = self.next_event()? {
            if visit(self.take_workloads(), &event)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The names (`Workloads` blocks) read before the event returned last, with the
    /// host whose trace holds them: learn them before that event.
    pub fn take_workloads(&mut self) -> Vec<(HostId, WorkloadTable)> {
        let names = self.merge.take_workloads();
        // Called after every event; names are rare.
        if names.is_empty() {
            return Vec::new();
        }
        let sources = self.merge.sources();
        names
            .into_iter()
            .map(|(source, table)| (sources[source].host(), table))
            .collect()
    }

    /// Where the replay's timeline ends: the latest host's end.
    pub fn end_ns(&self) -> u64 {
        self.merge
            .sources()
            .iter()
            .map(HostStream::end_ns)
            .max()
            .unwrap_or(0)
    }

    /// Each host's end block (of its last part read), in host order.
    pub fn ends(&self) -> Vec<Option<&TraceEnd>> {
        self.merge.sources().iter().map(HostStream::end).collect()
    }

    /// Damage the readers worked around, host after host.
    pub fn damage(&self) -> Vec<&PartDamage> {
        self.merge
            .sources()
            .iter()
            .flat_map(HostStream::damage)
            .collect()
    }
}

#[cfg(test)]
mod tests;
