//! `tcpchurn replay FILE`: the verdict. (Placeholder until the analysis lands.)

use std::io::{Read, Write};

use crate::{model::TraceEvent, replay::ReplayOptions, trace::TraceReader};

pub fn write_report<R: Read>(
    reader: &mut TraceReader<R>,
    _options: &ReplayOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut transitions = 0u64;
    let mut lost = 0u64;
    while let Some(event) = reader.next_event()? {
        match event {
            TraceEvent::Transition(_) => transitions += 1,
            TraceEvent::Lost(gap) => lost += gap.lost,
            _ => {}
        }
    }
    writeln!(out, "{transitions} transitions, {lost} events lost")?;
    Ok(())
}
