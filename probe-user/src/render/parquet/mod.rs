//! `tcpchurn export`'s Parquet files: one printer per table ([`events`],
//! [`connections`]), each a set of Arrow column builders filled row by row from the
//! same typed values the JSON printers use, written as zstd-compressed row groups.
//!
//! Memory is bounded: rows go to the Parquet writer every [`BATCH_ROWS`] rows, and it
//! writes a row group every [`ROW_GROUP_ROWS`] rows.

pub mod connections;
pub mod events;
mod workload;

use std::{io::Write, sync::Arc};

use arrow_array::{ArrayRef, RecordBatch, builder::StringDictionaryBuilder, types::Int32Type};
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

/// A column of names (dictionary strings).
pub type Names = StringDictionaryBuilder<Int32Type>;

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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::{connections::ConnectionColumns, events::EventColumns, *};
    use crate::{
        analysis::{Analyzer, AnalyzerOptions},
        model::{
            HostId, HostNames, Identity, Named, Source, TcpCounters, TcpState, Workload,
            WorkloadKey, WorkloadTable, WorkloadTableBuilder,
        },
        synth::{Script, task},
    };

    const START: u64 = 1_795_600_000_000_000_000;

    /// A script's events and connections written as the two tables, with `names`.
    fn tables(s: &Script, names: &WorkloadTable) -> (Vec<u8>, Vec<u8>) {
        let hosts = HostNames(vec!["node".into()]);
        let mut events = ParquetTable::new(Vec::new(), EventColumns::new(START)).unwrap();
        let mut connections = ParquetTable::new(Vec::new(), ConnectionColumns::new(START)).unwrap();
        let mut analyzer = Analyzer::new(AnalyzerOptions {
            connections: true,
            ..AnalyzerOptions::default()
        });
        analyzer.learn(HostId::FIRST, names);
        for event in &s.events {
            let owner = analyzer.on_event(event);
            let workload = analyzer.workload_of(event, owner.as_ref());
            events
                .columns()
                .push(event, owner.as_ref(), "node", workload.as_deref());
            events.row_added().unwrap();
        }
        for row in analyzer.finish(10_000_000_000).1 {
            connections.columns().push(&row, &hosts);
            connections.row_added().unwrap();
        }
        (events.finish().unwrap().1, connections.finish().unwrap().1)
    }

    fn read(bytes: Vec<u8>) -> (SchemaRef, Vec<RecordBatch>) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        let schema = Arc::clone(builder.schema());
        let batches = builder.build().unwrap().map(Result::unwrap).collect();
        (schema, batches)
    }

    #[test]
    fn the_tables_read_back_with_their_types() {
        let mut s = Script::default();
        let e = s.ends("10.0.0.2:40000", "10.0.0.1:2181");
        s.at(1_000).open(e, task(7, "app"));
        s.at(2_000_000)
            .reset_by_server(e, task(42, "java"))
            .lost(3_000_000, 4_000_000, 5);
        let (events, connections) = tables(&s, &WorkloadTable::default());
        let (schema, batches) = read(events);
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
        let field = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
        assert_eq!(field("time"), timestamp_type());
        assert_eq!(field("lport"), DataType::UInt16);
        assert_eq!(field("laddr"), DataType::Utf8);
        assert_eq!(
            field("new"),
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        );
        let (schema, batches) = read(connections);
        assert_eq!(batches[0].num_rows(), 1);
        let row = &batches[0];
        let column = |name: &str| {
            let i = schema.index_of(name).unwrap();
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::UInt32Type>(
                row.column(i).as_ref(),
            )
            .value(0)
        };
        assert_eq!((column("client_pid"), column("server_pid")), (7, 42));
        assert_eq!(
            schema.field_with_name("start_time").unwrap().data_type(),
            &timestamp_type()
        );
    }

    /// A connect that failed before its source port was picked (EADDRNOTAVAIL,
    /// docs/kernel-facts.md §1.1): the port is null in both tables, never 0.
    #[test]
    fn a_port_the_kernel_never_gave_is_null() {
        use arrow_array::{StringArray, cast::AsArray, types::UInt16Type};
        let mut s = Script::default();
        let c = s.socket(crate::synth::CLIENT_NS, "10.0.0.2:0", "10.0.0.1:2181");
        s.at(1_000)
            .tr(c, TcpState::Close, TcpState::SynSent, Some(task(7, "app")));
        s.tr(c, TcpState::SynSent, TcpState::Close, Some(task(7, "app")));
        let (events, connections) = tables(&s, &WorkloadTable::default());
        let (schema, batches) = read(events);
        let ports = |batch: &RecordBatch, name: &str| -> Vec<Option<u16>> {
            let column = batch.column(batch.schema().index_of(name).unwrap()).clone();
            column.as_primitive::<UInt16Type>().iter().collect()
        };
        assert!(schema.field_with_name("lport").unwrap().is_nullable());
        assert_eq!(ports(&batches[0], "lport"), [None, None]);
        assert_eq!(ports(&batches[0], "rport"), [Some(2181), Some(2181)]);
        let (schema, batches) = read(connections);
        let row = &batches[0];
        assert_eq!(ports(row, "client_port"), [None]);
        assert_eq!(ports(row, "server_port"), [Some(2181)]);
        let text = |name: &str| {
            let column = row.column(schema.index_of(name).unwrap());
            let text: &StringArray = column.as_string();
            text.value(0).to_owned()
        };
        assert_eq!(text("client"), "10.0.0.2:*");
        assert_eq!(text("client_addr"), "10.0.0.2");
    }

    /// The names in dictionary column `name` of `batch` (null as `None`).
    fn strings(schema: &SchemaRef, batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        use arrow_array::{StringArray, cast::AsArray, types::Int32Type};
        let column = batch.column(schema.index_of(name).unwrap());
        let names = column.as_dictionary::<Int32Type>();
        let names = names.downcast_dict::<StringArray>().unwrap();
        names.into_iter().map(|s| s.map(str::to_owned)).collect()
    }

    /// Column `name` of `batch`, as u64 (null as `None`).
    fn numbers(schema: &SchemaRef, batch: &RecordBatch, name: &str) -> Vec<Option<u64>> {
        use arrow_array::{
            cast::AsArray,
            types::{UInt32Type, UInt64Type},
        };
        let column = batch.column(schema.index_of(name).unwrap());
        match column.data_type() {
            DataType::UInt64 => column.as_primitive::<UInt64Type>().iter().collect(),
            _ => column
                .as_primitive::<UInt32Type>()
                .iter()
                .map(|v| v.map(u64::from))
                .collect(),
        }
    }

    #[test]
    fn the_counters_a_transition_carries_fill_their_columns() {
        let mut s = Script::default();
        let e = s.ends("10.0.0.2:40000", "10.0.0.1:80");
        s.at(1_000).open(e, task(7, "curl"));
        s.at(2_000_000)
            .answered_then_closed(e, (80, 1200), task(7, "curl"), task(42, "nginx"));
        // The kernel gave no byte counts here: unknown, not 0.
        s.counted(TcpCounters::builder().retransmits(2).build());
        let (events, _) = tables(&s, &WorkloadTable::default());
        let (schema, batches) = read(events);
        let column = |name| -> Vec<Option<u64>> {
            batches
                .iter()
                .flat_map(|b| numbers(&schema, b, name))
                .collect()
        };
        let (sent, received) = (column("bytes_sent"), column("bytes_received"));
        // The server starts closing with its answer sent and the request received.
        let closing = sent.iter().position(Option::is_some).unwrap();
        assert_eq!((sent[closing], received[closing]), (Some(1200), Some(80)));
        assert_eq!(column("srtt_us")[closing], Some(50));
        assert_eq!(sent.iter().filter(|v| v.is_some()).count(), 3);
        // The last transition: retransmits known, bytes not.
        assert_eq!(column("retransmits").last(), Some(&Some(2)));
        assert_eq!(sent.last(), Some(&None));
        // The handshake carries none.
        assert_eq!(sent[0], None);
        assert_eq!(column("segs_in")[closing], Some(4));
        assert_eq!(column("bytes_acked")[closing], Some(1200));
        assert_eq!(column("segs_out")[closing], Some(4));
    }

    #[test]
    fn workloads_the_trace_names_fill_their_columns() {
        let mut s = Script::default();
        let e = s.ends("10.0.0.2:40000", "10.0.0.1:2181");
        s.at(1_000).open(e, task(7, "app"));
        s.at(2_000_000).reset_by_server(e, task(42, "java"));
        let mut names = WorkloadTableBuilder::default();
        let zookeeper = Workload {
            container: Some(Named::new("zookeeper", Source::OciConfig)),
            pod: Some(Named::new("zk-0", Source::OciConfig)),
            namespace: Some(Named::new("infra", Source::OciConfig)),
            ..Workload::default()
        };
        names.add(WorkloadKey::Process(42), &Identity::Workload(zookeeper));
        let (events, connections) = tables(&s, &names.finish());
        let (schema, batches) = read(connections);
        let row = &batches[0];
        assert_eq!(
            strings(&schema, row, "server_container"),
            [Some("zookeeper".into())]
        );
        assert_eq!(strings(&schema, row, "server_pod"), [Some("zk-0".into())]);
        assert_eq!(
            strings(&schema, row, "server_pod_namespace"),
            [Some("infra".into())]
        );
        assert_eq!(strings(&schema, row, "client_container"), [None]);
        let (schema, batches) = read(events);
        let named: Vec<_> = batches
            .iter()
            .flat_map(|b| strings(&schema, b, "container"))
            .collect();
        assert!(named.contains(&Some("zookeeper".into())), "{named:?}");
        assert!(named.contains(&None), "{named:?}");
    }

    #[test]
    fn rows_go_out_in_batches_and_row_groups() {
        let mut table = ParquetTable::new(Vec::new(), EventColumns::new(START)).unwrap();
        let mut s = Script::default();
        let e = s.ends("10.0.0.2:40000", "10.0.0.1:2181");
        s.open(e, task(7, "app"));
        let event = s.events[0];
        for _ in 0..(ROW_GROUP_ROWS + BATCH_ROWS + 3) {
            table.columns().push(&event, None, "node", None);
            table.row_added().unwrap();
            assert!(table.columns().rows() < BATCH_ROWS);
        }
        let (rows, bytes) = table.finish().unwrap();
        assert_eq!(rows, (ROW_GROUP_ROWS + BATCH_ROWS + 3) as u64);
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        assert_eq!(builder.metadata().num_row_groups(), 2);
        for column in builder.metadata().row_group(0).columns() {
            assert!(
                matches!(column.compression(), Compression::ZSTD(_)),
                "{}: {:?}",
                column.column_path(),
                column.compression()
            );
        }
    }
}
