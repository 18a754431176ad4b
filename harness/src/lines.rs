//! A child's output, line by line, read on a thread so that the caller can wait for a
//! line with a timeout.

use std::{
    io::{BufRead as _, BufReader, Read},
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use anyhow::bail;

use crate::interrupt::check_interrupted;

/// How long [`LineReader::rest`] waits for one more line before giving up on a stream
/// that does not close.
const REST_IDLE: Duration = Duration::from_secs(30);

/// Lines of a stream (a child's stdout or stderr) and every line seen so far.
#[derive(Debug)]
pub struct LineReader {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LineReader {
    pub fn spawn(stream: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix` and returns it. Fails when the stream
    /// closes first, after `timeout`, or on an interruption.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            check_interrupted()?;
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(RecvTimeoutError::Timeout) => bail!(
                    "no line starting with {prefix:?} within {timeout:?}; saw {:?}",
                    self.seen
                ),
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "the output ended without a line starting with {prefix:?}; saw {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Every line, until the stream closes (the child exited).
    pub fn rest(&mut self) -> Vec<String> {
        while let Ok(line) = self.rx.recv_timeout(REST_IDLE) {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}
