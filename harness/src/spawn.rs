//! How a child process starts: where its output goes, whether its stdin stays open,
//! which cgroup it joins. Every child dies with the process that started it and has
//! its own process group, so that Ctrl-C reaches only the harness, which then stops
//! everything in order.

use std::{
    ffi::CString,
    fs::File,
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::Context as _;

use crate::process::Process;

/// Where one output stream of a child goes.
#[derive(Debug)]
enum Output {
    Null,
    Inherit,
    Piped,
    File(PathBuf),
    /// The same file as stdout.
    LikeStdout,
}

/// A child process to start: `Spawn::new(name, cmd)`, then options, then
/// [`Spawn::start`]. By default stdin and stdout are /dev/null and stderr is this
/// process's.
#[derive(Debug)]
pub struct Spawn {
    name: String,
    cmd: Command,
    stdin_open: bool,
    stdout: Output,
    stderr: Output,
    cgroup: Option<PathBuf>,
}

impl Spawn {
    pub fn new(name: impl Into<String>, cmd: Command) -> Self {
        Self {
            name: name.into(),
            cmd,
            stdin_open: false,
            stdout: Output::Null,
            stderr: Output::Inherit,
            cgroup: None,
        }
    }

    /// Stdout and stderr into one file (created, or truncated).
    pub fn log_to(mut self, path: &Path) -> Self {
        self.stdout = Output::File(path.to_path_buf());
        self.stderr = Output::LikeStdout;
        self
    }

    pub fn stdout_to(mut self, path: &Path) -> Self {
        self.stdout = Output::File(path.to_path_buf());
        self
    }

    pub fn stderr_to(mut self, path: &Path) -> Self {
        self.stderr = Output::File(path.to_path_buf());
        self
    }

    /// Stdout through a pipe: take it with [`Process::take_stdout`].
    pub fn stdout_piped(mut self) -> Self {
        self.stdout = Output::Piped;
        self
    }

    /// Stderr through a pipe: take it with [`Process::take_stderr`].
    pub fn stderr_piped(mut self) -> Self {
        self.stderr = Output::Piped;
        self
    }

    /// Stderr to /dev/null.
    pub fn quiet(mut self) -> Self {
        self.stderr = Output::Null;
        self
    }

    /// A stdin pipe that stays open while the process is kept (an interactive client
    /// that must not see end-of-file).
    pub fn keep_stdin_open(mut self) -> Self {
        self.stdin_open = true;
        self
    }

    /// Joins the cgroup v2 directory `dir` before running the command, so before
    /// `ip netns exec` enters a namespace (it remounts /sys there).
    pub fn in_cgroup(mut self, dir: &Path) -> Self {
        self.cgroup = Some(dir.to_path_buf());
        self
    }

    pub fn start(mut self) -> anyhow::Result<Process> {
        let (stdout, stdout_file) = match &self.stdout {
            Output::File(path) => {
                let file = create(path)?;
                (Stdio::from(file.try_clone()?), Some(file))
            }
            other => (stdio(other), None),
        };
        let stderr = match &self.stderr {
            Output::File(path) => create(path)?.into(),
            Output::LikeStdout => stdout_file.map_or_else(Stdio::inherit, Stdio::from),
            other => stdio(other),
        };
        let procs = self
            .cgroup
            .as_ref()
            .map(|dir| CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()))
            .transpose()
            .context("a cgroup path with a NUL byte")?;
        prepare_child(&mut self.cmd, procs);
        let stdin = if self.stdin_open {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let child = self
            .cmd
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}: {:?}", self.name, self.cmd))?;
        Ok(Process::new(self.name, child))
    }
}

fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// The streams that are not files (`start` opens those).
fn stdio(output: &Output) -> Stdio {
    match output {
        Output::Null => Stdio::null(),
        Output::Piped => Stdio::piped(),
        Output::Inherit | Output::File(_) | Output::LikeStdout => Stdio::inherit(),
    }
}

/// Between fork and exec: join the cgroup (writing 0 to `cgroup.procs` moves the
/// writer), die with the parent, leave the terminal's process group.
fn prepare_child(cmd: &mut Command, cgroup_procs: Option<CString>) {
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (open, write, close, prctl, setpgid, getppid); the path was allocated
    // before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(procs) = &cgroup_procs {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() == 1 {
                // (No allocation between fork and exec: an errno, not a message.)
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}
