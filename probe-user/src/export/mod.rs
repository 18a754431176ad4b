//! `tcpchurn export FILE... -o DIR`: the events and connections of traces as tables
//! that query engines read (DuckDB, Spark, Trino, ClickHouse): `DIR/events.parquet` and
//! `DIR/connections.parquet`, or NDJSON with `--format ndjson`. One pass, streaming:
//! memory is the replay's plus one row group per table.

mod driver;
mod options;
mod output;
mod tables;

pub use self::{
    driver::export,
    options::{ExportFormat, ExportOptions},
};
