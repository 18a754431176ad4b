//! `tcpchurn replay`: read traces, attribute owners, print the verdict or every event.

mod events;
mod file;
mod options;
mod rows;
mod verdict;

use std::io::{self, Write};

pub use self::{events::write_events, options::ReplayOptions, verdict::write_verdict};
use crate::render::notes;
pub use crate::trace::set::Traces;

/// Runs a replay; notes about skipped files and warnings about damage go to `err`.
pub fn replay(
    options: &ReplayOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let traces = Traces::open(&options.files)?;
    notes::write_skipped(err, traces.set.skipped())?;
    let result = if options.events {
        write_events(&traces, options, out)
    } else {
        write_verdict(&traces, options, out)
    };
    let damage = match result {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        other => other?,
    };
    Ok(notes::write_damage(err, &damage)?)
}

/// A reader of our output went away (`tcpchurn replay ... | head`): not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
