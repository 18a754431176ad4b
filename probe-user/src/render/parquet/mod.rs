//! `tcpchurn export`'s Parquet files: one printer per table ([`events`],
//! [`connections`]), each a set of Arrow column builders filled row by row from the
//! same typed values the JSON printers use, written as zstd-compressed row groups.
//!
//! Memory is bounded: rows go to the Parquet writer every [`BATCH_ROWS`] rows, and it
//! writes a row group every [`ROW_GROUP_ROWS`] rows.

pub mod connections;
pub mod events;

use std::{io::Write, sync::Arc};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    errors::ParquetError,
    file::properties::WriterProperties,
};

/// Rows handed to the writer at once.
pub const BATCH_ROWS: usize = 1 << 16;
/// Rows per row group: large enough for engines to skip and scan well, small enough to
/// keep the writer's memory (an encoded row group) at tens of MB.
pub const ROW_GROUP_ROWS: usize = 1 << 18;

/// The columns of one table: builders that take rows and give Arrow arrays.
pub trait Columns {
    /// Column names and whether each may be null, in order.
    const COLUMNS: &'static [(&'static str, bool)];
    /// Rows held.
    fn rows(&self) -> usize;
    /// The rows held as arrays, one per column in [`Self::COLUMNS`] order; the builders
    /// start over empty.
    fn take(&mut self) -> Vec<ArrayRef>;
}

/// The schema of a table: its names, and the types its (empty) builders produce.
pub fn schema_of(columns: &mut impl Columns, names: &[(&str, bool)]) -> SchemaRef {
    let empty = columns.take();
    Arc::new(Schema::new(
        names
            .iter()
            .zip(&empty)
            .map(|(&(name, nullable), array)| Field::new(name, array.data_type().clone(), nullable))
            .collect::<Vec<_>>(),
    ))
}

/// A timestamp column's type: nanoseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Writes one table to a Parquet file.
pub struct ParquetTable<C: Columns, W: Write + Send> {
    columns: C,
    schema: SchemaRef,
    writer: ArrowWriter<W>,
    rows: u64,
}

impl<C: Columns, W: Write + Send> ParquetTable<C, W> {
    pub fn new(out: W, mut columns: C) -> Result<Self, ParquetError> {
        let schema = schema_of(&mut columns, C::COLUMNS);
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("tcpchurn {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties))?;
        Ok(Self {
            columns,
            schema,
            writer,
            rows: 0,
        })
    }

    /// The builders, to add a row to; then [`Self::row_added`].
    pub fn columns(&mut self) -> &mut C {
        &mut self.columns
    }

    /// Hands the rows to the writer once a batch is full.
    pub fn row_added(&mut self) -> Result<(), ParquetError> {
        self.rows += 1;
        if self.columns.rows() >= BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), ParquetError> {
        if self.columns.rows() == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), self.columns.take())?;
        self.writer.write(&batch)
    }

    /// Writes the last rows and the file's footer; returns the rows written and the
    /// output (to flush and sync).
    pub fn finish(mut self) -> Result<(u64, W), ParquetError> {
        self.write_batch()?;
        // Writes the footer too.
        Ok((self.rows, self.writer.into_inner()?))
    }
}

/// Wall-clock nanoseconds (as a timestamp column holds them) of trace time `ts_ns` on
/// a timeline that starts at `start_unix_ns`.
pub fn wall_clock(start_unix_ns: u64, ts_ns: u64) -> i64 {
    i64::try_from(start_unix_ns.saturating_add(ts_ns)).unwrap_or(i64::MAX)
}
