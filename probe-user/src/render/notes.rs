//! What `replay` and `export` say on stderr about their inputs: files skipped, damage
//! worked around.

use std::io::{self, Write};

use crate::trace::set::PartDamage;

/// `tcpchurn: note: FILE: not a tcpchurn trace, skipped` per file of a directory that
/// was not a trace.
pub fn write_skipped(err: &mut impl Write, skipped: &[String]) -> io::Result<()> {
    for file in skipped {
        writeln!(err, "tcpchurn: note: {file}: not a tcpchurn trace, skipped")?;
    }
    Ok(())
}

/// `tcpchurn: warning: FILE: what was wrong`, one line each.
pub fn write_damage(err: &mut impl Write, damage: &[PartDamage]) -> io::Result<()> {
    for d in damage {
        writeln!(err, "tcpchurn: warning: {}: {}", d.file, d.damage)?;
    }
    Ok(())
}
