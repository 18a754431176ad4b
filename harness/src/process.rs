//! A running child process: signalled, checked, waited for with a timeout, reaped with
//! its CPU time, and killed when dropped.

use std::{
    os::unix::process::ExitStatusExt as _,
    process::{Child, ChildStderr, ChildStdout, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use anyhow::bail;

use crate::interrupt::check_interrupted;

/// How a child ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub status: ExitStatus,
    /// CPU seconds it used (user + system, its own children included), from `wait4`.
    pub cpu_s: f64,
}

/// A child process (started by [`crate::Spawn`]), killed and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    /// Set once reaped: the pid is then no longer ours to signal.
    exit: Option<Exit>,
}

/// `wait4` on a child; `Ok(None)` if `block` is false and it still runs.
fn reap(pid: libc::pid_t, block: bool) -> std::io::Result<Option<Exit>> {
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let options = if block { 0 } else { libc::WNOHANG };
        // SAFETY: waiting for our own child with valid out-pointers.
        let rc = unsafe { libc::wait4(pid, &raw mut status, options, &raw mut usage) };
        if rc == 0 {
            return Ok(None);
        }
        if rc == pid {
            let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
            return Ok(Some(Exit {
                status: ExitStatus::from_raw(status),
                cpu_s: secs(usage.ru_utime) + secs(usage.ru_stime),
            }));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

impl Process {
    pub(crate) fn new(name: String, child: Child) -> Self {
        Self {
            name,
            child,
            exit: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn raw_pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id()).unwrap_or(libc::pid_t::MAX)
    }

    /// The stdout pipe ([`crate::Spawn::stdout_piped`]), once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The stderr pipe ([`crate::Spawn::stderr_piped`]), once.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Sends a signal, unless the process has been reaped.
    pub fn signal(&self, signal: libc::c_int) {
        if self.exit.is_none() {
            // SAFETY: signalling our own, unreaped child.
            unsafe { libc::kill(self.raw_pid(), signal) };
        }
    }

    /// How it ended, if it has.
    pub fn try_exit(&mut self) -> anyhow::Result<Option<Exit>> {
        if self.exit.is_none() {
            self.exit = reap(self.raw_pid(), false)?;
        }
        Ok(self.exit)
    }

    /// Fails if the process has already exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(exit) = self.try_exit()? {
            bail!("{} (pid {}) exited: {}", self.name, self.pid(), exit.status);
        }
        Ok(())
    }

    /// Waits for the process to exit, however long that takes.
    pub fn wait(&mut self) -> anyhow::Result<Exit> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        let exit = reap(self.raw_pid(), true)?;
        self.exit = exit;
        exit.ok_or_else(|| anyhow::anyhow!("{} did not exit", self.name))
    }

    /// Waits for the process to exit; fails after `timeout` or on an interruption
    /// (the process then still runs, until dropped).
    pub fn wait_timeout(&mut self, timeout: Duration) -> anyhow::Result<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.try_exit()? {
                return Ok(exit);
            }
            check_interrupted()?;
            if Instant::now() > deadline {
                bail!(
                    "{} (pid {}) did not exit within {timeout:?}",
                    self.name,
                    self.pid()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<Exit> {
        self.signal(libc::SIGKILL);
        self.wait()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.signal(libc::SIGKILL);
            let _reaped = reap(self.raw_pid(), true);
        }
    }
}
