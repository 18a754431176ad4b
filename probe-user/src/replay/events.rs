//! `tcpchurn replay --events`: every event of the trace, in file order, with its owner
//! and its socket's workload.

use std::{
    io::{self, Read, Write},
    sync::Arc,
};

use crate::{
    analysis::WorkloadBook,
    model::{TraceEvent, Workload, WorkloadTable},
    owner::{Owner, OwnerTracker},
    render::events::{self, Clock},
    replay::ReplayOptions,
    trace::{TraceMeta, TraceReader},
};

/// Streams the events that pass the filters to `out`, as text lines or JSON lines.
pub fn write_events<R: Read>(
    reader: &mut TraceReader<R>,
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut printer = EventPrinter::new(options, reader.meta());
    printer.header(out, reader.meta())?;
    while let Some(event) = reader.next_event()? {
        printer.learn(reader.take_workloads());
        if !printer.print(out, &event)? {
            break;
        }
    }
    Ok(())
}

/// Prints events as `--events` asks: filtered, attributed, named, as text or JSON lines.
pub struct EventPrinter<'a> {
    options: &'a ReplayOptions,
    owners: OwnerTracker,
    book: WorkloadBook,
    clock: Clock,
}

impl<'a> EventPrinter<'a> {
    pub fn new(options: &'a ReplayOptions, meta: &TraceMeta) -> Self {
        let clock = if options.relative_time {
            Clock::Relative
        } else {
            Clock::WallClock {
                start_unix_ns: meta.start_unix_ns,
            }
        };
        Self {
            options,
            owners: OwnerTracker::new(),
            book: WorkloadBook::default(),
            clock,
        }
    }

    /// The text header (nothing for JSON lines).
    pub fn header(&self, out: &mut impl Write, meta: &TraceMeta) -> io::Result<()> {
        if self.options.json {
            return Ok(());
        }
        events::write_text_header(out, meta, self.clock)
    }

    /// Names read from the trace, before the events they name.
    pub fn learn(&mut self, tables: Vec<WorkloadTable>) {
        for table in &tables {
            self.book.learn(table);
        }
    }

    /// Prints `event` if it passes the filters; false once past `--until`.
    pub fn print(&mut self, out: &mut impl Write, event: &TraceEvent) -> io::Result<bool> {
        let window = &self.options.window;
        if window.is_past_reading(event.ts_ns()) {
            return Ok(false);
        }
        // Attribution sees every event, filtered or not, so owners stay right.
        let owner = self.owners.attribute(event);
        if !window.contains(event.ts_ns()) || !self.options.filter.keeps(event) {
            return Ok(true);
        }
        let container = socket_workload(&self.book, event, owner.as_ref());
        let workloads = &self.options.workloads;
        if !workloads.is_empty()
            && !workloads.keeps([
                container.as_deref(),
                peer_workload(&self.book, event).as_deref(),
            ])
        {
            return Ok(true);
        }
        if self.options.json {
            events::write_json(out, event, owner.as_ref(), container.as_deref())?;
        } else {
            events::write_text(out, event, owner.as_ref(), container.as_deref(), self.clock)?;
        }
        Ok(true)
    }
}

/// The workload of the socket an event is about: by its scope and its owner (a
/// snapshot's owner is the one `/proc` named).
fn socket_workload(
    book: &WorkloadBook,
    event: &TraceEvent,
    owner: Option<&Owner>,
) -> Option<Arc<Workload>> {
    let scope = event.scope()?;
    let pid = match event {
        TraceEvent::Snapshot(s) => s.owner.map(|t| t.pid),
        _ => owner.and_then(Owner::task).map(|t| t.pid),
    };
    book.socket(scope, pid)
}

/// What holds the remote address of the event's socket on the recording node.
fn peer_workload(book: &WorkloadBook, event: &TraceEvent) -> Option<Arc<Workload>> {
    book.address(event.tuple()?.remote.ip())
}
