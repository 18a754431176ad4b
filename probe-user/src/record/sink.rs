//! The files a recording writes: created private, written and synced by a writer
//! thread, and rotated (`--max-size`, `--rotate`).

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, SyncSender},
    thread::JoinHandle,
};

use anyhow::Context as _;
use bytes::Bytes;

use crate::trace::{TraceEncoder, TraceEnd};

/// Why a trace file cannot be created; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: the directory {dir} does not exist")]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("{0}: already exists; pass --force to overwrite it")]
    Exists(PathBuf),
    #[error("{0}: is a symbolic link; refusing to write a trace through it")]
    Symlink(PathBuf),
    #[error("{0}: is not a regular file")]
    NotAFile(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Checks that a trace can be created at `path`, without creating it.
pub fn check_output(path: &Path, force: bool) -> Result<(), OutputError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(OutputError::NoDirectory {
            path: path.to_path_buf(),
            dir,
        });
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(OutputError::Symlink(path.to_path_buf())),
        Ok(meta) if !meta.is_file() => Err(OutputError::NotAFile(path.to_path_buf())),
        Ok(_) if !force => Err(OutputError::Exists(path.to_path_buf())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Probe writability now rather than after attaching.
            let probe = dir.join(format!(".tcpchurn-probe-{}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&probe)
            {
                Ok(_) => {
                    let _removed = fs::remove_file(&probe);
                    Ok(())
                }
                Err(source) => Err(OutputError::Io {
                    path: path.to_path_buf(),
                    source,
                }),
            }
        }
        Err(source) => Err(OutputError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates a trace file: mode 0600 (traces hold addresses and process names), never
/// through a symlink, and never over an existing file unless `force`.
pub fn create_output(path: &Path, force: bool) -> Result<File, OutputError> {
    check_output(path, force)?;
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => OutputError::Symlink(path.to_path_buf()),
            Some(libc::EEXIST) => OutputError::Exists(path.to_path_buf()),
            _ => OutputError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
    // An existing file overwritten with --force keeps its old mode otherwise.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|source| OutputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(file)
}

/// The files of a recording, one or several with `--max-size` (like tcpdump's
/// `-C`/`-W`), and the writer of the current one.
#[derive(Debug)]
pub struct Output {
    base: PathBuf,
    /// Index of the current file: `base`, `base.1`, `base.2`...
    index: u32,
    /// The files kept, oldest first (the current one last).
    files: Vec<PathBuf>,
    /// With `--rotate`: how many files to keep.
    keep: Option<u32>,
    sink: Sink,
    /// Bytes in the files already finished.
    finished_bytes: u64,
}

impl Output {
    /// Starts writing the first file, created at `base` by [`create_output`], with
    /// `header`.
    pub fn start(file: File, base: &Path, keep: Option<u32>, header: &[u8]) -> io::Result<Self> {
        Ok(Self {
            base: base.to_path_buf(),
            index: 0,
            files: vec![base.to_path_buf()],
            keep,
            sink: Sink::start(file, header)?,
            finished_bytes: 0,
        })
    }

    /// Queues blocks for the current file; false once the writer has stopped (its error
    /// comes from [`Self::finish`]).
    pub fn send(&mut self, blocks: Bytes) -> bool {
        self.sink.send(blocks)
    }

    /// Bytes queued for the current file so far.
    pub fn sent(&self) -> u64 {
        self.sink.sent
    }

    /// The writer stopped (a write failed).
    pub fn is_dead(&self) -> bool {
        self.sink.is_dead()
    }

    /// Index of the current file (0 for the first).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Where the next file goes.
    pub fn next_path(&self) -> PathBuf {
        part_path(&self.base, self.index + 1)
    }

    fn current(&self) -> &Path {
        self.files.last().map_or(&self.base, PathBuf::as_path)
    }

    /// Ends the current file with `end` and continues in `file`, created at
    /// [`Self::next_path`], which starts with `header`. Beyond `--rotate` files, the
    /// oldest is removed.
    pub fn rotate(&mut self, file: File, end: &TraceEnd, header: &[u8]) -> anyhow::Result<()> {
        let next = self.next_path();
        self.sink.send(Bytes::from(TraceEncoder::end_block(end)));
        let finished = std::mem::replace(&mut self.sink, Sink::start(file, header)?);
        self.finished_bytes += finished
            .finish()
            .with_context(|| format!("writing {}", self.current().display()))?;
        self.index += 1;
        self.files.push(next);
        if let Some(keep) = self.keep
            && self.files.len() > keep as usize
        {
            let oldest = self.files.remove(0);
            let _removed = fs::remove_file(&oldest);
        }
        Ok(())
    }

    /// Ends the current file (with `end` when the recording stopped cleanly) and waits
    /// until everything is on disk. Returns the files and the bytes written to them.
    pub fn finish(mut self, end: Option<&TraceEnd>) -> anyhow::Result<(Vec<PathBuf>, u64)> {
        if let Some(end) = end {
            self.sink.send(Bytes::from(TraceEncoder::end_block(end)));
        }
        let current = self.current().to_path_buf();
        match self.sink.finish() {
            Ok(written) => Ok((self.files, self.finished_bytes + written)),
            Err(err) => Err(anyhow::anyhow!(
                "writing {} failed: {err}; the file replays up to the last block written",
                current.display()
            )),
        }
    }
}

/// `name`, `name.1`, `name.2`... like tcpdump's `-C`.
fn part_path(base: &Path, index: u32) -> PathBuf {
    if index == 0 {
        return base.to_path_buf();
    }
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// The file name of part `index` of a recording at `base`, as the trace header names
/// the previous part.
pub fn part_name(base: &Path, index: u32) -> String {
    part_path(base, index).display().to_string()
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
        file.write_all(header)?;
        file.sync_data()?;
        let sent = header.len() as u64;
        let (tx, rx): (SyncSender<SinkMessage>, Receiver<SinkMessage>) = mpsc::sync_channel(8);
        let handle = std::thread::Builder::new()
            .name("tcpchurn-writer".into())
            .spawn(move || -> io::Result<u64> {
                let mut written = sent;
                while let Ok(message) = rx.recv() {
                    match message {
                        SinkMessage::Block(block) => {
                            file.write_all(&block)?;
                            file.sync_data()?;
                            written += block.len() as u64;
                        }
                        SinkMessage::Finish => break,
                    }
                }
                file.sync_all()?;
                Ok(written)
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tcpchurn-output-{name}-{}", std::process::id()));
        let _fresh = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn output_files_are_private_and_not_clobbered() {
        let dir = temp_dir("create");
        let path = dir.join("a.trace");
        drop(create_output(&path, false).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            create_output(&path, false),
            Err(OutputError::Exists(_))
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        drop(create_output(&path, true).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_symlinks_and_missing_directories() {
        let dir = temp_dir("symlink");
        let target = dir.join("elsewhere");
        let link = dir.join("planted.trace");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            create_output(&link, false),
            Err(OutputError::Symlink(_))
        ));
        assert!(matches!(
            create_output(&link, true),
            Err(OutputError::Symlink(_))
        ));
        assert!(!target.exists());
        let err = check_output(&dir.join("nope/x.trace"), false).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(matches!(
            check_output(&dir, true),
            Err(OutputError::NotAFile(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
