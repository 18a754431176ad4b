//! A copy of every byte the recorder writes, for the live views (`--live`,
//! `--metrics`), which follow it as a replay follows a file. The recorder never waits
//! for them: when they fall more than [`BEHIND_BYTES`] behind, blocks of records are
//! left out of the copy (never the file headers and end blocks they need to read it)
//! and counted, so the views can say what they missed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    time::Duration,
};

use bytes::Bytes;

use crate::trace;

/// How far the live views may fall behind before blocks are left out of their copy:
/// a few seconds of the busiest recording (blocks are at most about 1 MiB).
pub const BEHIND_BYTES: u64 = 64 << 20;

/// What the copy left out.
#[derive(Debug, Default)]
struct Counts {
    queued: AtomicU64,
    skipped_blocks: AtomicU64,
    skipped_records: AtomicU64,
    skipped_bytes: AtomicU64,
}

/// Records left out of the copy so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub blocks: u64,
    pub records: u64,
    pub bytes: u64,
}

/// The recorder's end: hands bytes over, never waits.
#[derive(Debug)]
pub struct Tee {
    tx: Sender<Bytes>,
    counts: Arc<Counts>,
    limit: u64,
}

/// The live views' end.
#[derive(Debug)]
pub struct TeeReceiver {
    rx: Receiver<Bytes>,
    counts: Arc<Counts>,
}

/// A connected pair.
pub fn tee() -> (Tee, TeeReceiver) {
    with_limit(BEHIND_BYTES)
}

fn with_limit(limit: u64) -> (Tee, TeeReceiver) {
    let (tx, rx) = mpsc::channel();
    let counts = Arc::new(Counts::default());
    (
        Tee {
            tx,
            counts: Arc::clone(&counts),
            limit,
        },
        TeeReceiver { rx, counts },
    )
}

impl Tee {
    /// Bytes the views cannot do without: a file's header and meta block, its end
    /// block. They are few and small.
    pub fn send(&self, bytes: Bytes) {
        self.counts
            .queued
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        // A view that has gone away needs nothing more.
        let _gone = self.tx.send(bytes);
    }

    /// Blocks of records: left out, and counted, when the views are too far behind.
    pub fn offer(&self, blocks: &Bytes) {
        let len = blocks.len() as u64;
        if self.counts.queued.load(Ordering::Relaxed) + len > self.limit {
            self.counts.skipped_blocks.fetch_add(1, Ordering::Relaxed);
            self.counts
                .skipped_records
                .fetch_add(trace::records_in(blocks), Ordering::Relaxed);
            self.counts.skipped_bytes.fetch_add(len, Ordering::Relaxed);
            return;
        }
        self.send(blocks.clone());
    }
}

impl TeeReceiver {
    /// The next bytes, waiting at most `timeout`; `Disconnected` once the recording
    /// has ended and everything was received.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Bytes, RecvTimeoutError> {
        let bytes = self.rx.recv_timeout(timeout)?;
        self.counts
            .queued
            .fetch_sub(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    pub fn skipped(&self) -> Skipped {
        Skipped {
            blocks: self.counts.skipped_blocks.load(Ordering::Relaxed),
            records: self.counts.skipped_records.load(Ordering::Relaxed),
            bytes: self.counts.skipped_bytes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{TraceEncoder, TraceMeta};

    fn block(records: u64) -> Bytes {
        let mut encoder = TraceEncoder::new();
        for i in 0..records {
            encoder.push(&crate::model::TraceEvent::Lost(crate::model::Gap {
                from_ns: i,
                to_ns: i,
                lost: 1,
                cpu: None,
                cause: crate::model::GapCause::RingFull,
                host: crate::model::HostId::FIRST,
            }));
        }
        encoder.take_block().unwrap()
    }

    #[test]
    fn blocks_are_left_out_when_the_views_fall_behind_but_headers_never() {
        let header = Bytes::from(TraceEncoder::start(&TraceMeta::default()));
        let (tee, rx) = with_limit(header.len() as u64 + 2 * block(3).len() as u64);
        tee.send(header.clone());
        tee.offer(&block(3));
        tee.offer(&block(3));
        tee.offer(&block(5));
        tee.send(header.clone());
        assert_eq!(
            rx.skipped(),
            Skipped {
                blocks: 1,
                records: 5,
                bytes: block(5).len() as u64
            }
        );
        let mut received = Vec::new();
        while let Ok(bytes) = rx.recv_timeout(Duration::ZERO) {
            received.push(bytes.len());
        }
        assert_eq!(received.len(), 4);
        // Caught up: blocks go through again.
        tee.offer(&block(5));
        assert_eq!(
            rx.recv_timeout(Duration::ZERO).map(|b| b.len()),
            Ok(block(5).len())
        );
        drop(tee);
        assert_eq!(
            rx.recv_timeout(Duration::ZERO),
            Err(RecvTimeoutError::Disconnected)
        );
    }
}
