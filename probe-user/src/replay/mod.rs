//! `tcpchurn replay`: read traces, attribute owners, print the verdict or every event;
//! or follow a trace that is still being written ([`follow`]).

mod events;
mod file;
mod follow;
mod options;
mod rows;
mod verdict;

use std::io::{self, Write};

pub use self::{events::write_events, options::ReplayOptions, verdict::write_verdict};
pub use crate::trace::set::Traces;
use crate::{render::notes, trace::set::PartDamage};

/// Runs a replay; notes about skipped files and warnings about damage go to `err`.
pub fn replay(
    options: &ReplayOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    if let Some(interval) = options.follow {
        return match follow::follow(options, interval, out) {
            Err(e) if is_broken_pipe(&e) => Ok(()),
            other => other,
        };
    }
    let traces = Traces::open(&options.files)?;
    notes::write_skipped(err, traces.set.skipped())?;
    let table = options.connections && !options.json && !options.events;
    if let Some(once) = traces.set.read_once().filter(|_| table) {
        anyhow::bail!(
            "{once}: the --connections table reads the trace twice, and this is not a regular \
             file; use --json --connections, or copy the trace to a file"
        );
    }
    let result = if options.events {
        write_events(&traces, options, out)
    } else {
        write_verdict(&traces, options, out)
    };
    let replayed = match result {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        other => other?,
    };
    notes::write_damage(err, &replayed.damage)?;
    if let Some(since) = options.window.since_ns {
        notes::write_past_end(err, since, replayed.end_ns)?;
    }
    Ok(())
}

/// What a replay read, for its notes on stderr.
pub struct Replayed {
    /// Damage the readers worked around.
    pub damage: Vec<PartDamage>,
    /// Where the replay's timeline ended (as far as it was read).
    pub end_ns: u64,
}

/// A reader of our output went away (`tcpchurn replay ... | head`): not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
