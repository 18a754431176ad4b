//! Following a trace that is still being written, like `tail -f`: the reader waits at
//! a block boundary for more bytes instead of taking the end of its input for the end
//! of the trace, and a rotated recording goes on in its next file (the end block names
//! it, `docs/trace-format.md`).

use std::io::{self, Read, Seek, SeekFrom};

use crate::{
    model::{TraceEvent, WorkloadTable},
    trace::{
        meta::{TraceEnd, TraceMeta},
        reader::{Damage, Opening, Polled, TraceError, TraceReader},
    },
};

impl<R: Read + Seek> TraceReader<R> {
    /// Opens a trace that may still be written, at the input's current position:
    /// [`Opening::NotYet`] while its file header and meta block are not all there.
    /// The reader then answers [`Polled::Pending`] where the written part ends, and
    /// [`Polled::Ended`] once it has read the end block.
    pub fn open_following(mut input: R) -> Result<Opening<R>, TraceError> {
        let base = input.stream_position()?;
        Self::open_at(
            input,
            Some(|input: &mut R, at| input.seek(SeekFrom::Start(at)).map(drop)),
            base,
        )
    }
}

/// Where the files of a recording come from.
pub trait Parts {
    type Input: Read + Seek;

    /// The next file of a rotated recording, at its start, after the file that ended
    /// with `end` (whose `next_part` names it); `None` while it is not there yet.
    fn next(&mut self, end: &TraceEnd) -> io::Result<Option<Self::Input>>;
}

/// What following found.
#[derive(Clone, Debug, PartialEq)]
pub enum Followed {
    Event(TraceEvent),
    /// A file of the recording was opened (its meta is [`Follower::meta`]).
    Opened,
    /// Nothing more yet.
    Pending,
    /// The recording is over: its last file ended ([`Follower::end`]).
    Ended,
}

enum State<I: Read> {
    Opening(I),
    Reading(Box<TraceReader<I>>),
    /// Waiting for the file after the one that ended so.
    Next(TraceEnd),
    Ended,
}

/// Follows the files of a recording, from the first one given.
pub struct Follower<P: Parts> {
    parts: P,
    state: State<P::Input>,
    meta: Option<TraceMeta>,
    end: Option<TraceEnd>,
    /// Damage in the files already finished.
    earlier_damage: Vec<Damage>,
    /// Bytes in the files already finished.
    earlier_bytes: u64,
    files: u32,
}

impl<P: Parts> Follower<P> {
    pub fn new(first: P::Input, parts: P) -> Self {
        Self {
            parts,
            state: State::Opening(first),
            meta: None,
            end: None,
            earlier_damage: Vec::new(),
            earlier_bytes: 0,
            files: 0,
        }
    }

    /// The meta block of the latest file opened.
    pub fn meta(&self) -> Option<&TraceMeta> {
        self.meta.as_ref()
    }

    /// The end block of the last file, once [`Followed::Ended`].
    pub fn end(&self) -> Option<&TraceEnd> {
        self.end.as_ref()
    }

    /// Bytes read so far, over every file.
    pub fn bytes_read(&self) -> u64 {
        match &self.state {
            State::Reading(reader) => self.earlier_bytes + reader.offset(),
            _ => self.earlier_bytes,
        }
    }

    /// The names read since the last call, before the events they name.
    pub fn take_workloads(&mut self) -> Vec<WorkloadTable> {
        match &mut self.state {
            State::Reading(reader) => reader.take_workloads(),
            _ => Vec::new(),
        }
    }

    /// Files opened so far.
    pub fn files(&self) -> u32 {
        self.files
    }

    /// What the reader worked around, in every file so far.
    pub fn damage(&self) -> Vec<Damage> {
        let mut damage = self.earlier_damage.clone();
        if let State::Reading(reader) = &self.state {
            damage.extend_from_slice(reader.damage());
        }
        damage
    }

    /// The next thing that happened; [`Followed::Pending`] when the files hold nothing
    /// more yet (poll again later).
    pub fn poll(&mut self) -> Result<Followed, TraceError> {
        loop {
            match std::mem::replace(&mut self.state, State::Ended) {
                State::Opening(input) => match TraceReader::open_following(input)? {
                    Opening::Ready(reader) => {
                        self.meta = Some(reader.meta().clone());
                        self.files += 1;
                        self.state = State::Reading(reader);
                        return Ok(Followed::Opened);
                    }
                    Opening::NotYet(input) => {
                        self.state = State::Opening(input);
                        return Ok(Followed::Pending);
                    }
                },
                State::Reading(mut reader) => match reader.poll_event()? {
                    Polled::Event(event) => {
                        self.state = State::Reading(reader);
                        return Ok(Followed::Event(event));
                    }
                    Polled::Pending => {
                        self.state = State::Reading(reader);
                        return Ok(Followed::Pending);
                    }
                    Polled::Ended => {
                        self.earlier_damage.extend_from_slice(reader.damage());
                        self.earlier_bytes += reader.offset();
                        match reader.end() {
                            Some(end) if end.next_part.is_some() => {
                                self.state = State::Next(end.clone());
                            }
                            end => {
                                self.end = end.cloned();
                                return Ok(Followed::Ended);
                            }
                        }
                    }
                },
                State::Next(end) => match self.parts.next(&end)? {
                    Some(input) => self.state = State::Opening(input),
                    None => {
                        self.state = State::Next(end);
                        return Ok(Followed::Pending);
                    }
                },
                State::Ended => return Ok(Followed::Ended),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::TcpState,
        trace::{
            TraceEncoder,
            queue::SharedQueue,
            reader::tests::{CONNECTED, CONNECTING, step, transition},
        },
    };

    /// The same queue goes on with the next file.
    struct SameQueue(SharedQueue);

    impl Parts for SameQueue {
        type Input = SharedQueue;

        fn next(&mut self, _: &TraceEnd) -> io::Result<Option<SharedQueue>> {
            Ok(Some(self.0.clone()))
        }
    }

    /// Two files of a recording, as the recorder writes them: the header, blocks of
    /// records, the end block.
    fn parts() -> Vec<Vec<u8>> {
        let mut parts = Vec::new();
        for part in 0..2u64 {
            let mut bytes = TraceEncoder::start(&TraceMeta {
                hostname: format!("part{part}"),
                ..TraceMeta::default()
            });
            let mut encoder = TraceEncoder::new();
            for i in 0..5 {
                encoder.push(&transition(part * 10 + i));
                encoder.close_block();
            }
            bytes.extend_from_slice(&encoder.take_block().unwrap());
            bytes.extend_from_slice(&TraceEncoder::end_block(&TraceEnd {
                end_ns: 100_000,
                stop_reason: if part == 0 { "rotated" } else { "interrupted" }.into(),
                next_part: (part == 0).then(|| "x.trace.1".into()),
                ..TraceEnd::default()
            }));
            parts.push(bytes);
        }
        parts
    }

    fn drain(follower: &mut Follower<SameQueue>, seen: &mut Vec<Followed>) -> Followed {
        loop {
            match follower.poll().unwrap() {
                Followed::Pending => return Followed::Pending,
                Followed::Ended => return Followed::Ended,
                other => seen.push(other),
            }
        }
    }

    #[test]
    fn bytes_that_arrive_in_any_pieces_are_read_whole_across_files() {
        let bytes = parts().concat();
        for piece in [1, 7, 31, 32, 33, 100, bytes.len()] {
            let queue = SharedQueue::default();
            let mut follower = Follower::new(queue.clone(), SameQueue(queue.clone()));
            let mut seen = Vec::new();
            for chunk in bytes.chunks(piece) {
                assert_eq!(drain(&mut follower, &mut seen), Followed::Pending);
                queue.push(chunk);
            }
            assert_eq!(drain(&mut follower, &mut seen), Followed::Ended);
            let events: Vec<u64> = seen
                .iter()
                .filter_map(|f| match f {
                    Followed::Event(TraceEvent::Transition(t)) => Some(t.conn.id),
                    _ => None,
                })
                .collect();
            assert_eq!(
                events,
                [0, 1, 2, 3, 4, 10, 11, 12, 13, 14],
                "pieces of {piece}"
            );
            assert_eq!(
                seen.iter().filter(|f| **f == Followed::Opened).count(),
                2,
                "pieces of {piece}"
            );
            assert_eq!(follower.files(), 2);
            assert_eq!(follower.meta().unwrap().hostname, "part1");
            assert_eq!(follower.end().unwrap().stop_reason, "interrupted");
            assert!(follower.damage().is_empty(), "{:?}", follower.damage());
            // Nothing more comes after the end.
            assert_eq!(follower.poll().unwrap(), Followed::Ended);
        }
    }

    #[test]
    fn what_is_not_a_trace_is_refused_at_once() {
        let queue = SharedQueue::default();
        let mut follower = Follower::new(queue.clone(), SameQueue(queue.clone()));
        assert_eq!(follower.poll().unwrap(), Followed::Pending, "nothing yet");
        queue.push(b"TCPCH");
        assert_eq!(
            follower.poll().unwrap(),
            Followed::Pending,
            "a trace so far"
        );
        queue.push(b"x");
        assert!(matches!(follower.poll(), Err(TraceError::NotATrace(_))));
    }

    /// Following, a connect's block is completed only from what is written: its
    /// events are not held back for the recorder's next block.
    #[test]
    fn a_followed_connect_is_not_held_back_for_its_port() {
        use TcpState::*;
        let mut bytes = TraceEncoder::start(&TraceMeta::default());
        let mut encoder = TraceEncoder::new();
        encoder.push(&step(1, CONNECTING, Close, SynSent));
        bytes.extend_from_slice(&encoder.take_block().unwrap());
        let queue = SharedQueue::default();
        queue.push(&bytes);
        let mut follower = Follower::new(queue.clone(), SameQueue(queue.clone()));
        let mut seen = Vec::new();
        assert_eq!(drain(&mut follower, &mut seen), Followed::Pending);
        let port = |f: &Followed| match f {
            Followed::Event(TraceEvent::Transition(t)) => Some(t.conn.tuple.local.port()),
            _ => None,
        };
        let ports: Vec<u16> = seen.iter().filter_map(port).collect();
        assert_eq!(ports, [0], "shown at once, its port unknown");
        encoder.push(&step(2, CONNECTED, SynSent, Established));
        queue.push(&encoder.take_block().unwrap());
        seen.clear();
        assert_eq!(drain(&mut follower, &mut seen), Followed::Pending);
        let ports: Vec<u16> = seen.iter().filter_map(port).collect();
        assert_eq!(ports, [53970]);
    }
}
