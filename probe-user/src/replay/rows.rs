//! Where `--connections` rows go while the trace is read: a trace can hold millions of
//! connections, so they are written as connections end, never all held in memory, and
//! never written anywhere but the output (a replay writes no file).

use std::io::{self, Write};

use crate::{
    analysis::ConnectionRow,
    model::HostNames,
    render::connections::{write_connection_json, write_connection_text},
};

pub enum RowSink {
    /// Rows are not wanted (no `--connections`, or the text verdict's first pass).
    None,
    /// JSON: straight into the document, which starts with them.
    Json { written: u64 },
    /// Text: the table after the verdict, written by a second pass over the trace.
    Text,
}

impl RowSink {
    /// The sink for the JSON document's rows; it opens the document.
    pub fn json(out: &mut impl Write) -> io::Result<Self> {
        out.write_all(b"{\"connections\":[")?;
        Ok(Self::Json { written: 0 })
    }

    pub fn push(
        &mut self,
        out: &mut impl Write,
        row: &ConnectionRow,
        hosts: &HostNames,
    ) -> io::Result<()> {
        match self {
            Self::None => Ok(()),
            Self::Json { written } => {
                if *written > 0 {
                    out.write_all(b",")?;
                }
                *written += 1;
                write_connection_json(out, row, hosts)
            }
            Self::Text => write_connection_text(out, row),
        }
    }

    pub fn wants_rows(&self) -> bool {
        !matches!(self, Self::None)
    }
}
