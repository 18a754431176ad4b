//! Writing the files of a recording: a writer thread per file appends and syncs blocks;
//! rotation (`--max-size`, `--rotate`) ends one file and continues in the next. The
//! files themselves are created by [`crate::record::files`]. What is written is also
//! handed to the live views' [`Tee`], if any.

use std::{
    fs::File,
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, SyncSender},
    thread::JoinHandle,
};

use anyhow::Context as _;
use bytes::Bytes;
use log::warn;

use crate::{
    kernel::capabilities::{self, CapSet},
    record::{
        files::{NewPart, OutputDir, OutputError},
        tee::Tee,
    },
    trace::{TraceEncoder, TraceEnd},
};

/// The files of a recording, one or several with `--max-size` (like tcpdump's
/// `-C`/`-W`), and the writer of the current one.
#[derive(Debug)]
pub struct Output {
    dir: OutputDir,
    /// The files of this recording still on disk, oldest first (the current one last),
    /// with their index (`FILE.index`).
    files: Vec<(u32, PathBuf)>,
    /// Number of the current file in the recording (0 for the first).
    part: u32,
    /// With `--rotate`: how many files to keep.
    keep: Option<u32>,
    sink: Sink,
    /// Bytes in the files already finished.
    finished_bytes: u64,
    tee: Option<Tee>,
}

impl Output {
    /// Starts writing the first file, created by [`OutputDir::create_first`], with
    /// `header`; everything written is also handed to `tee`.
    pub fn start(
        dir: OutputDir,
        file: File,
        keep: Option<u32>,
        header: &[u8],
        tee: Option<Tee>,
    ) -> io::Result<Self> {
        let sink = Sink::start(file, header)?;
        if let Some(tee) = &tee {
            tee.send(Bytes::copy_from_slice(header));
        }
        Ok(Self {
            files: vec![(0, dir.path(0))],
            dir,
            part: 0,
            keep,
            sink,
            finished_bytes: 0,
            tee,
        })
    }

    /// Queues blocks for the current file; false once the writer has stopped (its error
    /// comes from [`Self::finish`]).
    pub fn send(&mut self, blocks: Bytes) -> bool {
        if let Some(tee) = &self.tee {
            tee.offer(&blocks);
        }
        self.sink.send(blocks)
    }

    /// Queues an end block, for the file and the tee.
    fn send_end(&mut self, end: &TraceEnd) {
        let block = Bytes::from(TraceEncoder::end_block(end));
        if let Some(tee) = &self.tee {
            tee.send(block.clone());
        }
        self.sink.send(block);
    }

    /// Bytes queued for the current file so far.
    pub fn sent(&self) -> u64 {
        self.sink.sent
    }

    /// The writer stopped (a write failed).
    pub fn is_dead(&self) -> bool {
        self.sink.is_dead()
    }

    /// Number of the current file in the recording (0 for the first).
    pub fn part(&self) -> u32 {
        self.part
    }

    pub fn dir(&self) -> &OutputDir {
        &self.dir
    }

    pub fn current_path(&self) -> &Path {
        self.files.last().map_or(Path::new(""), |(_, path)| path)
    }

    /// Creates the file to continue in, stepping over names someone else took; nothing
    /// changes if that fails.
    pub fn create_next(&self) -> Result<NewPart, OutputError> {
        let index = self.files.last().map_or(0, |(index, _)| *index);
        self.dir.create_part(index.saturating_add(1))
    }

    /// Ends the current file with `end`, naming `next` as the next part, and continues
    /// in `next`, which starts with `header`. Beyond `--rotate` files, the oldest is
    /// removed.
    pub fn rotate(&mut self, next: NewPart, end: TraceEnd, header: &[u8]) -> anyhow::Result<()> {
        let end = TraceEnd {
            next_part: Some(next.path.display().to_string()),
            ..end
        };
        self.send_end(&end);
        let finished = std::mem::replace(&mut self.sink, Sink::start(next.file, header)?);
        if let Some(tee) = &self.tee {
            tee.send(Bytes::copy_from_slice(header));
        }
        self.finished_bytes += finished
            .finish()
            .with_context(|| format!("writing {}", self.current_path().display()))?;
        self.files.push((next.index, next.path));
        self.part += 1;
        if let Some(keep) = self.keep
            && self.files.len() > keep as usize
        {
            let (index, oldest) = self.files.remove(0);
            if let Err(err) = self.dir.remove(index) {
                warn!("--rotate: removing {}: {err}", oldest.display());
            }
        }
        Ok(())
    }

    /// Ends the current file (with `end` when the recording stopped cleanly) and waits
    /// until everything is on disk. Returns the files and the bytes written to them.
    pub fn finish(mut self, end: Option<&TraceEnd>) -> anyhow::Result<(Vec<PathBuf>, u64)> {
        if let Some(end) = end {
            self.send_end(end);
        }
        // The live views have everything: they end when the tee goes.
        drop(self.tee.take());
        let current = self.current_path().to_path_buf();
        match self.sink.finish() {
            Ok(written) => Ok((
                self.files.into_iter().map(|(_, path)| path).collect(),
                self.finished_bytes + written,
            )),
            Err(err) => Err(anyhow::anyhow!(
                "writing {} failed: {err}; the file replays up to the last block written",
                current.display()
            )),
        }
    }
}

enum SinkMessage {
    Block(Bytes),
    Finish,
}

/// The writer thread: appends blocks and syncs them, so that after a crash or power
/// loss everything up to the last synced block replays.
#[derive(Debug)]
struct Sink {
    tx: SyncSender<SinkMessage>,
    handle: Option<JoinHandle<io::Result<u64>>>,
    /// Bytes queued so far, the header included.
    sent: u64,
}

impl Sink {
    fn start(mut file: File, header: &[u8]) -> io::Result<Self> {
        // `/dev/null` cannot be synced (EINVAL), nor does it need to be.
        let sync = file.metadata()?.is_file();
        file.write_all(header)?;
        if sync {
            file.sync_data()?;
        }
        let sent = header.len() as u64;
        let (tx, rx): (SyncSender<SinkMessage>, Receiver<SinkMessage>) = mpsc::sync_channel(8);
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("tcpchurn-writer".into())
            .spawn(move || -> io::Result<u64> {
                // It only writes to a file already open: it needs no capability at all.
                let _dropped = capabilities::keep_only(CapSet::EMPTY);
                let _ready = ready_tx.send(());
                let mut written = sent;
                while let Ok(message) = rx.recv() {
                    match message {
                        SinkMessage::Block(block) => {
                            file.write_all(&block)?;
                            if sync {
                                file.sync_data()?;
                            }
                            written += block.len() as u64;
                        }
                        SinkMessage::Finish => break,
                    }
                }
                if sync {
                    file.sync_all()?;
                }
                Ok(written)
            })?;
        // From here on the writer holds no capability, whatever this thread holds.
        let _ready = ready_rx.recv();
        Ok(Self {
            tx,
            handle: Some(handle),
            sent,
        })
    }

    /// Queues a block; fails if the writer thread has stopped (its error is returned
    /// by `finish`).
    fn send(&mut self, block: Bytes) -> bool {
        let len = block.len() as u64;
        if self.tx.send(SinkMessage::Block(block)).is_ok() {
            self.sent += len;
            true
        } else {
            false
        }
    }

    fn finish(mut self) -> io::Result<u64> {
        let _sent = self.tx.send(SinkMessage::Finish);
        match self.handle.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked"))),
            None => Ok(self.sent),
        }
    }

    fn is_dead(&self) -> bool {
        self.handle.as_ref().is_some_and(JoinHandle::is_finished)
    }
}
