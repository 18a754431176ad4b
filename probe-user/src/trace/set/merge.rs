//! A k-way merge of event streams by time: each stream keeps its own order (a trace's
//! file order, which two CPUs may have put a few microseconds out of time order), and
//! the streams interleave by the time of their next event. Memory: one event per
//! stream. The names a stream read before an event (its `Workloads` blocks) come out
//! with that event, not with the one read ahead.

use std::{cmp::Reverse, collections::BinaryHeap};

use crate::{
    model::{TraceEvent, WorkloadTable},
    trace::set::SetError,
};

/// A stream of events in its own order.
pub trait EventSource {
    fn next_event(&mut self) -> Result<Option<TraceEvent>, SetError>;

    /// The names read before the event `next_event` returned last.
    fn take_workloads(&mut self) -> Vec<WorkloadTable> {
        Vec::new()
    }
}

/// A source's next event, with the names read before it.
type Head = (TraceEvent, Vec<WorkloadTable>);

/// See the module documentation.
pub struct Merge<S> {
    sources: Vec<S>,
    /// The next event of each source.
    heads: Vec<Option<Head>>,
    /// (time of the head, source), earliest first; ties go to the first source.
    order: BinaryHeap<Reverse<(u64, usize)>>,
    started: bool,
    /// Names to take before the event returned last: (source, table).
    names: Vec<(usize, WorkloadTable)>,
}

impl<S: EventSource> Merge<S> {
    pub fn new(sources: Vec<S>) -> Self {
        Self {
            heads: vec![None; sources.len()],
            sources,
            order: BinaryHeap::new(),
            started: false,
            names: Vec::new(),
        }
    }

    pub fn sources(&self) -> &[S] {
        &self.sources
    }

    pub fn sources_mut(&mut self) -> &mut [S] {
        &mut self.sources
    }

    fn refill(&mut self, source: usize) -> Result<(), SetError> {
        if let Some(event) = self.sources[source].next_event()? {
            self.order.push(Reverse((event.ts_ns(), source)));
            let names = self.sources[source].take_workloads();
            self.heads[source] = Some((event, names));
        }
        Ok(())
    }

    pub fn next_event(&mut self) -> Result<Option<TraceEvent>, SetError> {
        // One source needs no ordering: pass its events through.
        if let [only] = self.sources.as_mut_slice() {
            let event = only.next_event()?;
            let names = only.take_workloads();
            // Names are rare (one table per flush at most): skip the extend per event.
            if !names.is_empty() {
                self.names.extend(names.into_iter().map(|table| (0, table)));
            }
            return Ok(event);
        }
        if !self.started {
            self.started = true;
            for source in 0..self.sources.len() {
                self.refill(source)?;
            }
        }
        let Some(Reverse((_, source))) = self.order.pop() else {
            return Ok(None);
        };
        let head = self.heads[source].take();
        self.refill(source)?;
        Ok(head.map(|(event, names)| {
            self.names
                .extend(names.into_iter().map(|table| (source, table)));
            event
        }))
    }

    /// The names read before the event returned last, by source.
    pub fn take_workloads(&mut self) -> Vec<(usize, WorkloadTable)> {
        std::mem::take(&mut self.names)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::model::{Gap, GapCause, HostId};

    struct Listed(VecDeque<TraceEvent>);

    impl EventSource for Listed {
        fn next_event(&mut self) -> Result<Option<TraceEvent>, SetError> {
            Ok(self.0.pop_front())
        }
    }

    fn at(ts: u64, host: u16) -> TraceEvent {
        TraceEvent::Lost(Gap {
            from_ns: ts,
            to_ns: ts,
            lost: 1,
            cpu: None,
            cause: GapCause::RingFull,
            host: HostId(host),
        })
    }

    fn merged(streams: Vec<Vec<TraceEvent>>) -> Vec<(u64, u16)> {
        let mut merge = Merge::new(
            streams
                .into_iter()
                .map(|s| Listed(s.into()))
                .collect::<Vec<_>>(),
        );
        let mut out = Vec::new();
        while let Some(e) = merge.next_event().unwrap() {
            out.push((e.ts_ns(), e.host().0));
        }
        out
    }

    #[test]
    fn streams_interleave_by_time_and_keep_their_own_order() {
        let a = vec![at(1, 0), at(5, 0), at(4, 0), at(9, 0)];
        let b = vec![at(2, 1), at(5, 1), at(6, 1)];
        assert_eq!(
            merged(vec![a, b]),
            [(1, 0), (2, 1), (5, 0), (4, 0), (5, 1), (6, 1), (9, 0)]
        );
    }

    #[test]
    fn one_stream_passes_through_and_empty_streams_end() {
        assert_eq!(merged(vec![vec![at(3, 0), at(1, 0)]]), [(3, 0), (1, 0)]);
        assert_eq!(merged(vec![vec![], vec![at(2, 1)], vec![]]), [(2, 1)]);
        assert!(merged(vec![]).is_empty());
    }
}
