//! `tcpchurn replay`: read a trace, attribute owners, print the verdict or every event.

mod events;
mod file;
mod options;
mod rows;
mod verdict;

use std::io::{self, Write};

pub use self::{events::write_events, file::open, options::ReplayOptions, verdict::write_verdict};

/// Runs a replay; warnings about damage go to `err`.
pub fn replay(
    options: &ReplayOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let mut reader = open(&options.file)?;
    let result = if options.events {
        write_events(&mut reader, options, out)
    } else {
        write_verdict(&mut reader, options, out)
    };
    match result {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        other => other?,
    }
    for damage in reader.damage() {
        writeln!(
            err,
            "tcpchurn: warning: {}: {damage}",
            options.file.display()
        )?;
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
