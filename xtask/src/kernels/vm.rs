//! One guest: boot a kernel with virtme-ng, run the guest script, capture everything
//! it prints (the kernel console included), and tell a guest kernel crash or a hang
//! apart from failing tests.

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Read, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::install::Tools;

/// How the guest's CPU is provided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// QEMU's emulator: slow, but works where KVM does not (a nested guest whose
    /// hypervisor refuses what QEMU asks of it).
    Tcg,
}

impl Accel {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// What to boot and run.
#[derive(Clone, Debug)]
pub struct GuestSpec<'a> {
    pub tools: &'a Tools,
    pub vmlinuz: &'a Path,
    pub accel: Accel,
    pub cpus: u32,
    pub memory: &'a str,
    /// The command the guest runs (through `sh -c`).
    pub exec: String,
    /// The guest is killed after this long...
    pub timeout: Duration,
    /// ...or when it has printed nothing for this long (a hung guest).
    pub idle_timeout: Duration,
    /// Everything the guest prints goes here.
    pub log: &'a Path,
}

/// How a guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `vng` exited by itself with this status.
    Exited(Option<i32>),
    /// Killed at the timeout.
    TimedOut,
    /// Killed after printing nothing for the idle timeout.
    Silent,
}

/// Everything a guest printed, in order, and how it ended.
#[derive(Clone, Debug)]
pub struct GuestRun {
    pub lines: Vec<String>,
    pub ending: Ending,
    pub elapsed: Duration,
}

/// Kernel console lines that mean the guest kernel itself failed (as opposed to a test).
const CRASH_MARKERS: [&str; 7] = [
    "Kernel panic",
    "BUG: ",
    "Oops: ",
    "general protection fault",
    "watchdog: BUG: soft lockup",
    "rcu_preempt detected stalls",
    "INFO: task hung",
];

impl GuestRun {
    /// The first console line that shows the guest kernel crashed, with the lines
    /// after it (the oops), if any.
    pub fn crash(&self) -> Option<String> {
        let at = self
            .lines
            .iter()
            .position(|l| CRASH_MARKERS.iter().any(|m| l.contains(m)))?;
        Some(
            self.lines[at..self.lines.len().min(at + 12)]
                .iter()
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }

    /// The lines the guest script addressed to the host, without their prefix.
    pub fn reports(&self) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter_map(|l| l.split_once("@@kernels ").map(|(_, r)| r))
    }
}

fn vng_command(spec: &GuestSpec<'_>) -> Command {
    let mut cmd = Command::new(&spec.tools.vng);
    cmd.arg("--run")
        .arg(spec.vmlinuz)
        .args(["--cpus", &spec.cpus.to_string()])
        .args(["--memory", spec.memory])
        // The kernel console too: a guest crash must be visible.
        .arg("--verbose")
        .args(["--exec", &spec.exec]);
    if spec.accel == Accel::Tcg {
        cmd.arg("--disable-kvm");
    }
    let mut path = std::env::join_paths(&spec.tools.path).unwrap_or_default();
    if let Some(rest) = std::env::var_os("PATH") {
        path.push(":");
        path.push(rest);
    }
    cmd.env("PATH", path)
        .stdin(Stdio::null())
        // Pipes, not files: QEMU reopens its output through /proc/self/fd, which for a
        // regular file starts writing again at offset 0, over what vng wrote before.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: at the timeout, vng, QEMU and virtiofsd go together.
        .process_group(0);
    cmd
}

fn forward(stream: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            buf.clear();
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// Boots the guest and waits for it (at most the timeout). `progress` sees every line
/// as it arrives.
pub fn run_guest(spec: &GuestSpec<'_>, mut progress: impl FnMut(&str)) -> anyhow::Result<GuestRun> {
    let mut log =
        File::create(spec.log).with_context(|| format!("creating {}", spec.log.display()))?;
    let mut cmd = vng_command(spec);
    writeln!(log, "$ {cmd:?}")?;
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting vng")?;
    let pgid = i32::try_from(child.id()).context("pid")?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        forward(out, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward(err, tx);
    }
    let deadline = started + spec.timeout;
    let mut last_line = Instant::now();
    let mut lines = Vec::new();
    let ending = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                writeln!(log, "{line}")?;
                progress(&line);
                lines.push(line);
                last_line = Instant::now();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Ending::Exited(child.wait()?.code());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(status) = child.try_wait()? {
            // Drain what is still in the pipes.
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
                writeln!(log, "{line}")?;
                lines.push(line);
            }
            break Ending::Exited(status.code());
        }
        let ending = if Instant::now() >= deadline {
            Ending::TimedOut
        } else if last_line.elapsed() >= spec.idle_timeout {
            Ending::Silent
        } else {
            continue;
        };
        // SAFETY: signals the process group this function started.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _status = child.wait();
        writeln!(
            log,
            "xtask: killed ({ending:?}) after {:?}",
            started.elapsed()
        )?;
        break ending;
    };
    Ok(GuestRun {
        lines,
        ending,
        elapsed: started.elapsed(),
    })
}

/// Whether KVM works here: a guest that boots and prints within `timeout`. Where the
/// hypervisor refuses QEMU's requests the guest hangs before its first line.
pub fn kvm_works(tools: &Tools, vmlinuz: &Path, log: &Path, timeout: Duration) -> bool {
    if !Path::new("/dev/kvm").exists() {
        return false;
    }
    let spec = GuestSpec {
        tools,
        vmlinuz,
        accel: Accel::Kvm,
        cpus: 1,
        memory: "512M",
        exec: "echo @@kernels kvm-ok".into(),
        timeout,
        idle_timeout: timeout,
        log,
    };
    run_guest(&spec, |_| {}).is_ok_and(|run| run.reports().any(|r| r == "kvm-ok"))
}

/// The log file for one attempt of one kernel.
pub fn log_path(dir: &Path, name: &str, attempt: u32) -> PathBuf {
    dir.join(format!("{name}.{attempt}.log"))
}
