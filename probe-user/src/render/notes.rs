//! What `replay` and `export` say on stderr about their inputs: files skipped, damage
//! worked around.

use std::io::{self, Write};

use crate::{
    render::{format::secs, text::clean},
    trace::set::PartDamage,
};

/// `tcpchurn: note: FILE: not a tcpchurn trace, skipped` per file of a directory that
/// was not a trace.
pub fn write_skipped(err: &mut impl Write, skipped: &[String]) -> io::Result<()> {
    for file in skipped {
        writeln!(
            err,
            "tcpchurn: note: {}: not a tcpchurn trace, skipped",
            clean(file)
        )?;
    }
    Ok(())
}

/// `tcpchurn: warning: FILE: what was wrong`, one line each.
pub fn write_damage(err: &mut impl Write, damage: &[PartDamage]) -> io::Result<()> {
    for d in damage {
        let line = format!("{}: {}", d.file, d.damage);
        writeln!(err, "tcpchurn: warning: {}", clean(&line))?;
    }
    Ok(())
}

/// A `--since` past where the traces end: nothing was replayed.
pub fn write_past_end(err: &mut impl Write, since_ns: u64, end_ns: u64) -> io::Result<()> {
    if since_ns <= end_ns {
        return Ok(());
    }
    writeln!(
        err,
        "tcpchurn: warning: --since {:.1} s is past the end of the trace ({:.1} s): nothing \
         was replayed",
        secs(since_ns),
        secs(end_ns)
    )
}
