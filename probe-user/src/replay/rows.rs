//! Where `--connections` rows go while the trace is read: a trace can hold millions of
//! connections, so they are written as connections end, never all held in memory.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, BufWriter, Seek, Write},
    os::unix::fs::OpenOptionsExt as _,
};

use crate::{
    analysis::ConnectionRow,
    render::connections::{CONNECTIONS_HEADER, write_connection_json, write_connection_text},
};

pub enum RowSink {
    /// No `--connections`.
    None,
    /// JSON: straight into the document, which starts with them.
    Json { written: u64 },
    /// Text: the table comes after the verdict, so rows wait in an unlinked temporary
    /// file.
    Spool(BufWriter<File>),
}

impl RowSink {
    /// The sink for `--connections` (`rows`) in JSON or text; JSON opens the document.
    pub fn start(rows: bool, json: bool, out: &mut impl Write) -> io::Result<Self> {
        Ok(match (rows, json) {
            (false, _) => Self::None,
            (true, true) => {
                out.write_all(b"{\"connections\":[")?;
                Self::Json { written: 0 }
            }
            (true, false) => Self::Spool(BufWriter::new(spool()?)),
        })
    }

    pub fn push(&mut self, out: &mut impl Write, row: &ConnectionRow) -> io::Result<()> {
        match self {
            Self::None => Ok(()),
            Self::Json { written } => {
                if *written > 0 {
                    out.write_all(b",")?;
                }
                *written += 1;
                write_connection_json(out, row)
            }
            Self::Spool(file) => write_connection_text(file, row),
        }
    }

    /// After the verdict: the text table of the spooled rows.
    pub fn finish(self, out: &mut impl Write) -> io::Result<()> {
        let Self::Spool(file) = self else {
            return Ok(());
        };
        let mut file = file.into_inner().map_err(io::Error::from)?;
        file.rewind()?;
        writeln!(out)?;
        writeln!(out, "{CONNECTIONS_HEADER}")?;
        for line in BufReader::new(file).lines() {
            writeln!(out, "{}", line?)?;
        }
        Ok(())
    }
}

/// A temporary file only this process can reach: created exclusively with mode 0600
/// (the rows name processes and addresses) and unlinked at once.
fn spool() -> io::Result<File> {
    let path = std::env::temp_dir().join(format!(
        "tcpchurn-connections-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
