//! `tcpchurn replay --events`: every event of the trace, in file order, with its owner.

use std::io::{self, Read, Write};

use crate::{
    model::TraceEvent,
    owner::OwnerTracker,
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
        if !printer.print(out, &event)? {
            break;
        }
    }
    Ok(())
}

/// Prints events as `--events` asks: filtered, attributed, as text or JSON lines.
pub struct EventPrinter<'a> {
    options: &'a ReplayOptions,
    owners: OwnerTracker,
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
        if self.options.json {
            events::write_json(out, event, owner.as_ref())?;
        } else {
            events::write_text(out, event, owner.as_ref(), self.clock)?;
        }
        Ok(true)
    }
}
