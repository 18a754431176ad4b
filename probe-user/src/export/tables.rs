//! The two tables of an export, in the chosen format: rows go in as the replay
//! produces them.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use crate::{
    analysis::ConnectionRow,
    export::{ExportFormat, output},
    model::{HostNames, TraceEvent, Workload},
    owner::Owner,
    render::{
        connections::write_connection_json,
        events::write_json,
        parquet::{ParquetTable, connections::ConnectionColumns, events::EventColumns},
    },
};

type Out = BufWriter<File>;

/// The two Parquet tables (boxed: their column builders are large).
struct ParquetTables {
    events: ParquetTable<EventColumns, Out>,
    connections: ParquetTable<ConnectionColumns, Out>,
}

enum Writers {
    Parquet(Box<ParquetTables>),
    Ndjson { events: Out, connections: Out },
}

/// See the module documentation.
pub struct Tables {
    writers: Writers,
    pub paths: [PathBuf; 2],
    events: u64,
    connections: u64,
}

impl Tables {
    /// Creates `events` and `connections` files in `dir`; times are written relative
    /// to `start_unix_ns` (the replay's time 0) where the format has timestamps.
    pub fn create(
        dir: &Path,
        format: ExportFormat,
        force: bool,
        start_unix_ns: u64,
    ) -> anyhow::Result<Self> {
        let paths =
            ["events", "connections"].map(|t| output::table_path(dir, t, format.extension()));
        let open = |path: &Path| -> anyhow::Result<Out> {
            Ok(BufWriter::with_capacity(
                1 << 20,
                output::create(path, force)?,
            ))
        };
        let writers = match format {
            ExportFormat::Parquet => Writers::Parquet(Box::new(ParquetTables {
                events: ParquetTable::new(open(&paths[0])?, EventColumns::new(start_unix_ns))?,
                connections: ParquetTable::new(
                    open(&paths[1])?,
                    ConnectionColumns::new(start_unix_ns),
                )?,
            })),
            ExportFormat::Ndjson => Writers::Ndjson {
                events: open(&paths[0])?,
                connections: open(&paths[1])?,
            },
        };
        Ok(Self {
            writers,
            paths,
            events: 0,
            connections: 0,
        })
    }

    /// One event of `host`, with its owner and its socket's workload.
    pub fn event(
        &mut self,
        event: &TraceEvent,
        owner: Option<&Owner>,
        host: &str,
        workload: Option<&Workload>,
    ) -> anyhow::Result<()> {
        self.events += 1;
        match &mut self.writers {
            Writers::Parquet(tables) => {
                tables.events.columns().push(event, owner, host, workload);
                tables.events.row_added()?;
            }
            Writers::Ndjson { events, .. } => write_json(events, event, owner, host, workload)?,
        }
        Ok(())
    }

    /// One connection.
    pub fn connection(&mut self, row: &ConnectionRow, hosts: &HostNames) -> anyhow::Result<()> {
        self.connections += 1;
        match &mut self.writers {
            Writers::Parquet(tables) => {
                tables.connections.columns().push(row, hosts);
                tables.connections.row_added()?;
            }
            Writers::Ndjson { connections, .. } => {
                write_connection_json(connections, row, hosts)?;
                connections.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    /// Finishes both files (and syncs them); returns the events and connections
    /// written.
    pub fn finish(self) -> anyhow::Result<(u64, u64)> {
        let outs = match self.writers {
            Writers::Parquet(tables) => {
                let ParquetTables {
                    events,
                    connections,
                } = *tables;
                vec![events.finish()?.1, connections.finish()?.1]
            }
            Writers::Ndjson {
                events,
                connections,
            } => vec![events, connections],
        };
        for out in outs {
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        Ok((self.events, self.connections))
    }
}
