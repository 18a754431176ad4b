//! `tcpchurn replay --events`: every event of the trace, in file order, with its owner
//! and its socket's workload.

use std::{
    io::{Read, Write},
    sync::Arc,
};

use crate::{
    analysis::WorkloadBook,
    model::{TraceEvent, Workload},
    owner::{Owner, OwnerTracker},
    render::events::{self, Clock},
    replay::ReplayOptions,
    trace::TraceReader,
};

/// Streams the events that pass the filters to `out`, as text lines or JSON lines.
pub fn write_events<R: Read>(
    reader: &mut TraceReader<R>,
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut owners = OwnerTracker::new();
    let mut book = WorkloadBook::default();
    let meta = reader.meta();
    let clock = if options.relative_time {
        Clock::Relative
    } else {
        Clock::WallClock {
            start_unix_ns: meta.start_unix_ns,
        }
    };
    if !options.json {
        events::write_text_header(out, meta, clock)?;
    }
    while let Some(event) = reader.next_event()? {
        if options.window.is_past_reading(event.ts_ns()) {
            break;
        }
        for table in reader.take_workloads() {
            book.learn(&table);
        }
        // Attribution sees every event, filtered or not, so owners stay right.
        let owner = owners.attribute(&event);
        if !options.window.contains(event.ts_ns()) || !options.filter.keeps(&event) {
            continue;
        }
        let container = socket_workload(&book, &event, owner.as_ref());
        if !options.workloads.is_empty()
            && !options.workloads.keeps([
                container.as_deref(),
                peer_workload(&book, &event).as_deref(),
            ])
        {
            continue;
        }
        if options.json {
            events::write_json(out, &event, owner.as_ref(), container.as_deref())?;
        } else {
            events::write_text(out, &event, owner.as_ref(), container.as_deref(), clock)?;
        }
    }
    Ok(())
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
        _ => owner.map(|o| o.task.pid),
    };
    book.socket(scope, pid)
}

/// What holds the remote address of the event's socket on the recording node.
fn peer_workload(book: &WorkloadBook, event: &TraceEvent) -> Option<Arc<Workload>> {
    book.address(event.tuple()?.remote.ip())
}
