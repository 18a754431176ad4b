//! `tcpchurn replay --events`: every event of the traces, in time order, with its owner
//! (and, with several hosts, its host).

use std::io::Write;

use crate::{
    owner::OwnerTracker,
    render::events::{self, Clock},
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
    let mut owners = OwnerTracker::new();
    let clock = if options.relative_time {
        Clock::Relative
    } else {
        Clock::WallClock {
            start_unix_ns: traces.timeline.start_unix_ns,
        }
    };
    let several = traces.names.several();
    if !options.json {
        events::write_text_header(out, &file::events_header(traces), clock)?;
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
        let host = traces.names.name(event.host());
        if options.json {
            events::write_json(out, &event, owner.as_ref(), host)?;
        } else {
            let host = several.then_some(host);
            events::write_text(out, &event, owner.as_ref(), clock, host)?;
        }
    }
    Ok(Replayed {
        damage: reader.damage().into_iter().cloned().collect(),
        end_ns: reader.end_ns(),
    })
}
