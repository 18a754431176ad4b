//! Opening a trace file for replay.

use std::{fs::File, io::BufReader, path::Path};

use anyhow::Context as _;

use crate::trace::{TraceError, TraceReader};

/// Opens a trace, with the path in every error.
pub fn open(path: &Path) -> anyhow::Result<TraceReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| path.display().to_string())?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        anyhow::bail!("{}: is a directory", path.display());
    }
    TraceReader::open(BufReader::with_capacity(1 << 20, file)).map_err(|err| match err {
        TraceError::Io(e) => anyhow::anyhow!("{}: {e}", path.display()),
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}
