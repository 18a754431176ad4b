//! Opening a trace file for replay.

use std::{
    fs::File,
    io::{BufReader, Read as _, Seek as _, Take},
    path::Path,
};

use anyhow::Context as _;

use crate::trace::{TraceError, TraceReader};

/// Opens a trace, with the path in every error.
pub fn open(path: &Path) -> anyhow::Result<TraceReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| path.display().to_string())?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        anyhow::bail!("{}: is a directory", path.display());
    }
    reader(BufReader::with_capacity(1 << 20, file), path)
}

fn reader<R: std::io::Read>(input: R, path: &Path) -> anyhow::Result<TraceReader<R>> {
    TraceReader::open(input).map_err(|err| match err {
        TraceError::Io(e) => anyhow::anyhow!("{}: {e}", path.display()),
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

/// Whether the trace can be read a second time: a regular file, not a pipe.
pub fn can_read_again(first: &TraceReader<BufReader<File>>) -> bool {
    first
        .get_ref()
        .get_ref()
        .metadata()
        .is_ok_and(|m| m.is_file())
}

/// The file `first` reads, read again from its start up to where `first` stopped (a
/// trace still being written grows meanwhile): a second pass over the same trace.
pub fn read_again(
    first: &TraceReader<BufReader<File>>,
    path: &Path,
) -> anyhow::Result<TraceReader<Take<BufReader<File>>>> {
    let mut file = first
        .get_ref()
        .get_ref()
        .try_clone()
        .with_context(|| path.display().to_string())?;
    file.rewind().with_context(|| path.display().to_string())?;
    reader(
        BufReader::with_capacity(1 << 20, file).take(first.offset()),
        path,
    )
}
