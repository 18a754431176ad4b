//! `tcpchurn replay`: read a trace, attribute owners, print the verdict or every event;
//! or follow a trace that is still being written ([`follow`]).

mod events;
mod file;
mod follow;
mod options;
mod rows;
mod verdict;

use std::io::{self, Write};

pub use self::{
    events::write_events,
    file::open,
    options::ReplayOptions,
    verdict::{write_connection_table, write_verdict},
};
use crate::render::{format::secs, text::clean};

/// Runs a replay; warnings about damage go to `err`.
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
    let mut reader = open(&options.file)?;
    let table = options.connections && !options.json;
    if table && !file::can_read_again(&reader) {
        anyhow::bail!(
            "{}: the --connections table reads the trace twice, and this is not a regular \
             file; use --json --connections, or copy the trace to a file",
            options.file.display()
        );
    }
    let result = if options.events {
        write_events(&mut reader, options, out)
    } else {
        write_verdict(&mut reader, options, out).and_then(|()| {
            if table {
                let mut again = file::read_again(&reader, &options.file)?;
                write_connection_table(&mut again, options, out)?;
            }
            Ok(())
        })
    };
    match result {
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        other => other?,
    }
    for damage in reader.damage() {
        let line = format!("{}: {damage}", options.file.display());
        writeln!(err, "tcpchurn: warning: {}", clean(&line))?;
    }
    if let Some(since) = options.window.since_ns {
        let end = reader.end().map_or(reader.last_ts(), |end| end.end_ns);
        if since > end {
            writeln!(
                err,
                "tcpchurn: warning: --since {:.1} s is past the end of the trace ({:.1} s): \
                 nothing was replayed",
                secs(since),
                secs(end)
            )?;
        }
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
