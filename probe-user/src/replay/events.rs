//! `tcpchurn replay --events`: every event of the trace, in file order, with its owner.

use std::io::{Read, Write};

use crate::{
    owner::OwnerTracker,
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
        // Attribution sees every event, filtered or not, so owners stay right.
        let owner = owners.attribute(&event);
        if !options.window.contains(event.ts_ns()) || !options.filter.keeps(&event) {
            continue;
        }
        if options.json {
            events::write_json(out, &event, owner.as_ref())?;
        } else {
            events::write_text(out, &event, owner.as_ref(), clock)?;
        }
    }
    Ok(())
}
