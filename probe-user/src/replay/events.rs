//! `tcpchurn replay --events`: every event of the traces, in time order, with its owner,
//! its socket's workload (and, with several hosts, its host).

use std::io::{self, Write};

use crate::{
    analysis::WorkloadBook,
    model::{HostId, TraceEvent, WorkloadTable},
    owner::OwnerTracker,
    render::events::{self, Clock, EventsHeader},
    replay::{ReplayOptions, Replayed, file},
    trace::set::Traces,
};

/// Streams the events that pass the filters to `out`, as text lines or JSON lines;
/// returns the damage the readers worked around.
pub fn write_events(
    traces: &Traces,
    options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<Replayed> {
    let mut reader = traces.events();
    let several = traces.names.several();
    let mut printer = EventPrinter::new(options, traces.timeline.start_unix_ns, several);
    printer.header(out, &file::events_header(traces))?;
    while let Some(event) = reader.next_event()? {
        printer.learn(reader.take_workloads());
        if !printer.print(out, &event, traces.names.name(event.host()))? {
            break;
        }
    }
    Ok(Replayed {
        damage: reader.damage().into_iter().cloned().collect(),
        end_ns: reader.end_ns(),
    })
}

/// Prints events as `--events` asks: filtered, attributed, named, as text or JSON lines.
pub struct EventPrinter<'a> {
    options: &'a ReplayOptions,
    owners: OwnerTracker,
    book: WorkloadBook,
    clock: Clock,
    /// Several hosts: the text lines get a HOST column.
    several: bool,
}

impl<'a> EventPrinter<'a> {
    /// `start_unix_ns`: wall-clock time of the replay's time 0.
    pub fn new(options: &'a ReplayOptions, start_unix_ns: u64, several: bool) -> Self {
        let clock = if options.relative_time {
            Clock::Relative
        } else {
            Clock::WallClock { start_unix_ns }
        };
        Self {
            options,
            owners: OwnerTracker::new(),
            book: WorkloadBook::default(),
            clock,
            several,
        }
    }

    /// The text header (nothing for JSON lines).
    pub fn header(&self, out: &mut impl Write, header: &EventsHeader) -> io::Result<()> {
        if self.options.json {
            return Ok(());
        }
        events::write_text_header(out, header, self.clock)
    }

    /// Names read from the traces (with the host whose trace holds them), before the
    /// events they name.
    pub fn learn(&mut self, tables: impl IntoIterator<Item = (HostId, WorkloadTable)>) {
        for (host, table) in tables {
            self.book.learn(host, &table);
        }
    }

    /// Prints `event` (of `host`) if it passes the filters; false once past `--until`.
    pub fn print(
        &mut self,
        out: &mut impl Write,
        event: &TraceEvent,
        host: &str,
    ) -> io::Result<bool> {
        let window = &self.options.window;
        if window.is_past_reading(event.ts_ns()) {
            return Ok(false);
        }
        // Attribution sees every event, filtered or not, so owners stay right.
        let owner = self.owners.attribute(event);
        if !window.contains(event.ts_ns()) || !self.options.filter.keeps(event) {
            return Ok(true);
        }
        let container = self.book.event(event, owner.as_ref());
        let workloads = &self.options.workloads;
        if !workloads.is_empty()
            && !workloads.keeps([container.as_deref(), self.book.event_peer(event).as_deref()])
        {
            return Ok(true);
        }
        if self.options.json {
            events::write_json(out, event, owner.as_ref(), host, container.as_deref())?;
        } else {
            let host = self.several.then_some(host);
            let container = container.as_deref();
            events::write_text(out, event, owner.as_ref(), container, self.clock, host)?;
        }
        Ok(true)
    }
}
