//! `tcpchurn replay`: read traces, attribute owners, print the verdict or every event.

mod events;
mod file;
mod options;
mod rows;
mod verdict;

use std::io::{self, Write};

pub use self::{events::write_events, options::ReplayOptions, verdict::write_verdict};
use crate::trace::set::PartDamage;
pub use crate::trace::set::Traces;

/// Runs a replay; notes about skipped files and warnings about damage go to `err`.
pub fn replay(
    options: &ReplayOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let traces = Traces::open(&options.files)?;
    for skipped in traces.set.skipped() {
        writeln!(
            err,
            "tcpchurn: note: {skipped}: not a tcpchurn trace, skipped"
        )?;
    }
    let result = if options.events {
        write_events(&traces, options, out)
    } else {
        write_verdict(&traces, options, out)
    };
    let damage = match result {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        other => other?,
    };
    write_damage(err, &damage)
}

/// `tcpchurn: warning: FILE: what was wrong`, one line each.
pub fn write_damage(err: &mut impl Write, damage: &[PartDamage]) -> anyhow::Result<()> {
    for d in damage {
        writeln!(err, "tcpchurn: warning: {}: {}", d.file, d.damage)?;
    }
    Ok(())
}

/// A reader of our output went away (`tcpchurn replay ... | head`): not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
