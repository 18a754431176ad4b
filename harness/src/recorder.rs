//! The real recorder: `tcpchurn record` started, ready once it says it records, and
//! stopped as Ctrl-C would stop it. The one place that knows its ready line.

use std::{
    ffi::OsStr,
    path::Path,
    process::{Command, ExitStatus},
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{lines::LineReader, process::Process, spawn::Spawn};

/// What `tcpchurn record` prints on stderr once its programs are attached.
const READY_LINE: &str = "tcpchurn: recording to";
/// How long loading and attaching may take on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping recorder may take to drain its ring and write the end block.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Transitions driven by timers and softirqs land a little after the traffic that
/// caused them: [`Recorder::stop`] waits this long before stopping.
const SETTLE: Duration = Duration::from_millis(300);

/// A running `tcpchurn record`. Dropped while running (a failed test or task), it is
/// stopped with SIGINT so that the trace so far stays readable, and killed if that
/// does not stop it.
#[derive(Debug)]
pub struct Recorder {
    process: Process,
    stderr: LineReader,
}

/// How a recording ended.
#[derive(Debug)]
pub struct Recording {
    pub status: ExitStatus,
    /// Everything the recorder wrote on stderr (its summary at the end).
    pub stderr: Vec<String>,
    /// CPU seconds the recorder used from start to exit.
    pub cpu_s: f64,
}

impl Recording {
    /// Fails, with the recorder's stderr, unless it exited 0.
    pub fn ensure_success(&self) -> anyhow::Result<()> {
        if !self.status.success() {
            bail!(
                "tcpchurn record failed ({}):\n{}",
                self.status,
                self.stderr.join("\n")
            );
        }
        Ok(())
    }

    /// The value of a line of the summary (`lost events      0` -> `0`).
    pub fn summary(&self, field: &str) -> Option<&str> {
        self.stderr
            .iter()
            .find_map(|l| l.trim().strip_prefix(field))
            .map(str::trim)
    }
}

/// Whether the recorder's stderr says it attached and records (a recorder that refused
/// its arguments must not have).
pub fn says_ready(stderr: &str) -> bool {
    stderr.lines().any(|line| line.starts_with(READY_LINE))
}

impl Recorder {
    /// Starts `tcpchurn record --force -o TRACE ARGS...` and waits until its programs
    /// are attached.
    pub fn start<I, S>(tcpchurn: &Path, trace: &Path, args: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(tcpchurn);
        cmd.args(["record", "--force", "-o"]).arg(trace).args(args);
        let mut process = Spawn::new("tcpchurn record", cmd).stderr_piped().start()?;
        let stderr = LineReader::spawn(process.take_stderr().context("the recorder's stderr")?);
        let mut recorder = Self { process, stderr };
        recorder
            .stderr
            .wait_for(READY_LINE, START_TIMEOUT)
            .context("tcpchurn record did not start")?;
        Ok(recorder)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails if the recorder has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.process.check_running()
    }

    pub fn signal(&self, signal: libc::c_int) {
        self.process.signal(signal);
    }

    /// Waits for the recorder to exit (after a signal, or on its own) and returns how
    /// it ended.
    pub fn wait(mut self, timeout: Duration) -> anyhow::Result<Recording> {
        let exit = self.process.wait_timeout(timeout)?;
        Ok(Recording {
            status: exit.status,
            stderr: self.stderr.rest(),
            cpu_s: exit.cpu_s,
        })
    }

    /// Lets the last transitions land, then stops the recorder as Ctrl-C would.
    pub fn stop(self) -> anyhow::Result<Recording> {
        thread::sleep(SETTLE);
        self.stop_now()
    }

    /// Stops the recorder as Ctrl-C would, at once.
    pub fn stop_now(self) -> anyhow::Result<Recording> {
        self.signal(libc::SIGINT);
        self.wait(STOP_TIMEOUT)
    }

    /// Kills the recorder with SIGKILL, as the OOM killer would.
    pub fn kill(self) -> anyhow::Result<Recording> {
        self.signal(libc::SIGKILL);
        self.wait(STOP_TIMEOUT)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if matches!(self.process.try_exit(), Ok(None)) {
            self.process.signal(libc::SIGINT);
            // Not interruptible: a second Ctrl-C must not leave it running.
            for _ in 0..500 {
                if !matches!(self.process.try_exit(), Ok(None)) {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Still running: Process's own drop kills it.
    }
}
