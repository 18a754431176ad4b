//! Encoding events into framed blocks, with or without doing the I/O.

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};

use crate::{
    model::{TraceEvent, WorkloadTable},
    trace::{
        block::{BlockKind, file_header, frame},
        meta::{TraceEnd, TraceMeta},
        records::{BlockKeys, RecordsEncoder},
        workloads,
    },
};

/// Turns events into complete, framed blocks. It does no I/O, so the recorder can
/// hand finished blocks to a writer thread and never block its ring-buffer reader on
/// the disk. Blocks are framed in place in one reusable buffer and handed over as
/// `Bytes`, without copies.
#[derive(Debug, Default)]
pub struct TraceEncoder {
    records: RecordsEncoder,
    total_records: u64,
    /// Framed blocks not yet taken.
    closed: BytesMut,
}

impl TraceEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The file header and the meta block: the first bytes of every trace file.
    pub fn start(meta: &TraceMeta) -> Vec<u8> {
        let json = serde_json::to_vec(meta).unwrap_or_default();
        let mut out = file_header().to_vec();
        out.extend_from_slice(&frame(BlockKind::Meta, 0, 0, &json));
        out
    }

    pub fn push(&mut self, event: &TraceEvent) {
        self.records.push(event);
        self.total_records += 1;
    }

    pub fn pending_records(&self) -> u32 {
        self.records.records()
    }

    pub fn pending_bytes(&self) -> usize {
        self.records.encoded_len()
    }

    pub fn total_records(&self) -> u64 {
        self.total_records
    }

    /// What the pending records refer to.
    pub fn pending_keys(&self) -> BlockKeys<'_> {
        self.records.keys()
    }

    /// Frames `table` as `Workloads` blocks after the blocks already closed, so before
    /// the pending records: a reader learns the names before the events that use them.
    pub fn add_workloads(&mut self, table: &WorkloadTable) {
        if table.is_empty() {
            return;
        }
        let first_ts = self.records.first_ts().unwrap_or(0);
        for payload in workloads::encode(table) {
            self.closed
                .extend_from_slice(&frame(BlockKind::Workloads, 0, first_ts, &payload));
        }
    }

    /// Closes the current block (if records are pending) after those already closed.
    pub fn close_block(&mut self) {
        self.records.finish_into(&mut self.closed);
    }

    /// Closes the current block and hands over every closed block, framed and ready to
    /// write, without copying; `None` when there is nothing.
    pub fn take_block(&mut self) -> Option<Bytes> {
        self.close_block();
        (!self.closed.is_empty()).then(|| self.closed.split().freeze())
    }

    /// The end block of a cleanly stopped trace.
    pub fn end_block(end: &TraceEnd) -> Vec<u8> {
        let json = serde_json::to_vec(end).unwrap_or_default();
        frame(BlockKind::End, 0, end.end_ns, &json)
    }
}

/// A [`TraceEncoder`] writing straight into a `Write` (tests, synthetic traces).
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: W,
    encoder: TraceEncoder,
    bytes: u64,
    /// Close a block after this many records.
    block_records: u32,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(mut out: W, meta: &TraceMeta) -> io::Result<Self> {
        let start = TraceEncoder::start(meta);
        out.write_all(&start)?;
        Ok(Self {
            out,
            encoder: TraceEncoder::new(),
            bytes: start.len() as u64,
            block_records: 65_536,
        })
    }

    pub fn with_block_records(mut self, records: u32) -> Self {
        self.block_records = records.max(1);
        self
    }

    /// Names for the events pushed next (and those pending in the current block).
    pub fn push_workloads(&mut self, table: &WorkloadTable) {
        self.encoder.add_workloads(table);
    }

    pub fn push(&mut self, event: &TraceEvent) -> io::Result<()> {
        self.encoder.push(event);
        if self.encoder.pending_records() >= self.block_records {
            self.flush_block()?;
        }
        Ok(())
    }

    pub fn flush_block(&mut self) -> io::Result<()> {
        if let Some(block) = self.encoder.take_block() {
            self.out.write_all(&block)?;
            self.bytes += block.len() as u64;
        }
        Ok(())
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn records(&self) -> u64 {
        self.encoder.total_records()
    }

    /// Flushes pending events and writes the end block.
    pub fn finish(mut self, end: &TraceEnd) -> io::Result<W> {
        self.flush_block()?;
        let end = TraceEnd {
            bytes: self.bytes,
            records: if end.records == 0 {
                self.encoder.total_records()
            } else {
                end.records
            },
            ..end.clone()
        };
        self.out.write_all(&TraceEncoder::end_block(&end))?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Writes pending events without an end block, as a killed recorder would leave it.
    pub fn abandon(mut self) -> io::Result<W> {
        self.flush_block()?;
        self.out.flush()?;
        Ok(self.out)
    }
}
