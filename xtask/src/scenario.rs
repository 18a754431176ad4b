//! Plumbing for the demo scenarios: two network namespaces joined by a veth pair, child
//! processes inside them, the recorder, and cleanup that also runs on Ctrl-C.
//!
//! Cleanup is done by guards (`Drop`): every function that waits polls
//! [`check_interrupted`], so a SIGINT/SIGTERM/SIGHUP turns into an error that unwinds
//! through the guards. Children get `PR_SET_PDEATHSIG` so that even a SIGKILLed xtask
//! does not leave them running, and namespaces left by such a run (their names carry
//! the pid of the xtask that made them) are removed by the next run.

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    net::Ipv4Addr,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Every namespace the demo creates starts with this, followed by the xtask's pid.
pub const NETNS_PREFIX: &str = "tcpchurn-demo-";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Only an atomic store: nothing else is async-signal-safe here.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT, SIGTERM and SIGHUP into a flag that [`check_interrupted`] reports.
pub fn catch_interrupts() -> anyhow::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores an atomic.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(signal, &raw const action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("installing a signal handler");
        }
    }
    Ok(())
}

/// Fails once the user has interrupted the demo.
pub fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps, but wakes up for an interruption.
pub fn sleep(duration: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        check_interrupted()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Runs a short command that must succeed; returns its stdout.
pub fn command_output(cmd: &mut Command) -> anyhow::Result<String> {
    let line = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    command_output(Command::new("ip").args(args))
}

/// Whether `pid` is a running xtask: not gone, not a zombie (a killed xtask may stay
/// unreaped for a while), and not a reused pid.
fn xtask_running(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(str::trim))
            .unwrap_or_default()
            .to_owned()
    };
    field("Name:") == "xtask" && !field("State:").starts_with('Z')
}

/// Kills every process inside a namespace, then deletes it. `ip netns del` alone kills
/// nothing: the namespace would live on as long as a process is inside.
fn destroy_netns(name: &str) {
    for _round in 0..50 {
        let pids: Vec<i32> = ip(&["netns", "pids", name])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = ip(&["netns", "del", name]) {
        eprintln!("xtask: warning: {e:#}");
    }
}

/// Deletes the namespaces (and kills the processes in them) that an earlier demo left
/// behind when it was killed outright. Namespaces of a demo still running are kept.
pub fn remove_stale_namespaces() -> anyhow::Result<()> {
    let list = ip(&["netns", "list"])?;
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let owner = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(|pid| pid != std::process::id() && xtask_running(pid)) {
            continue;
        }
        eprintln!("xtask: removing namespace {name} left by an interrupted demo");
        destroy_netns(name);
    }
    Ok(())
}

/// Two network namespaces, a server host and an application node, joined by a veth
/// pair. Dropping it kills everything inside and deletes both.
#[derive(Debug)]
pub struct Topology {
    pub server: String,
    pub node: String,
    pub server_ip: Ipv4Addr,
    pub node_ip: Ipv4Addr,
    created: Vec<String>,
}

impl Topology {
    pub fn create(server_ip: Ipv4Addr, node_ip: Ipv4Addr) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let mut topology = Self {
            server: format!("{NETNS_PREFIX}{pid}-server"),
            node: format!("{NETNS_PREFIX}{pid}-node"),
            server_ip,
            node_ip,
            created: Vec::new(),
        };
        for name in [topology.server.clone(), topology.node.clone()] {
            ip(&["netns", "add", &name])?;
            topology.created.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n",
            &topology.server,
            "link",
            "add",
            "veth-server",
            "type",
            "veth",
            "peer",
            "name",
            "veth-node",
            "netns",
            &topology.node,
        ])?;
        for (ns, dev, addr) in [
            (&topology.server, "veth-server", server_ip),
            (&topology.node, "veth-node", node_ip),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(topology)
    }

    /// A command that runs `program` inside a namespace (`ip netns exec` execs it, so
    /// the child's pid is the program's).
    pub fn command(namespace: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", namespace]).arg(program);
        cmd
    }

    /// `--netns` arguments for `tcpchurn record`.
    pub fn netns_args(&self) -> [&str; 4] {
        ["--netns", &self.server, "--netns", &self.node]
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for name in self.created.drain(..).rev() {
            destroy_netns(&name);
        }
    }
}

/// Makes a child die with xtask and keeps it out of the terminal's process group, so
/// that Ctrl-C reaches only xtask, which then stops everything in order.
fn detach_from_terminal_signals(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, setpgid, getppid).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() == 1 {
                return Err(std::io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
}

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    pub child: Child,
}

impl Process {
    /// Starts `cmd` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(name, cmd, log, Stdio::null())
    }

    /// Starts `cmd` with a stdin pipe that stays open (an interactive client that must
    /// not see end-of-file), output to `log`.
    pub fn spawn_with_stdin(name: &str, cmd: Command, log: &Path) -> anyhow::Result<Self> {
        Self::spawn_with(name, cmd, log, Stdio::piped())
    }

    fn spawn_with(name: &str, mut cmd: Command, log: &Path, stdin: Stdio) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        detach_from_terminal_signals(&mut cmd);
        let child = cmd
            .stdin(stdin)
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} (pid {}) exited: {status}", self.name, self.pid());
        }
        Ok(())
    }

    pub fn signal(&self, signal: libc::c_int) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, signal) };
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _killed = self.child.kill();
        }
        let _status = self.child.wait();
    }
}

/// Waits until something listens on `port` in `namespace`, while `process` runs.
pub fn wait_listening(
    namespace: &str,
    port: u16,
    process: &mut Process,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let filter = format!("sport = :{port}");
    loop {
        check_interrupted()?;
        process.check_running()?;
        let listening =
            command_output(Topology::command(namespace, "ss").args(["-Htln", &filter]))?;
        if !listening.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on port {port} within {} s",
                process.name,
                timeout.as_secs()
            );
        }
        sleep(Duration::from_millis(100))?;
    }
}

/// Waits until a line of the file `path` (a process's output) starts with `prefix`.
pub fn wait_for_line(
    path: &Path,
    prefix: &str,
    process: &mut Process,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        check_interrupted()?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|line| line.starts_with(prefix)) {
            return Ok(());
        }
        process.check_running()?;
        if Instant::now() > deadline {
            bail!(
                "{} did not print `{prefix}` within {} s (see {})",
                process.name,
                timeout.as_secs(),
                path.display()
            );
        }
        sleep(Duration::from_millis(100))?;
    }
}

/// A running `tcpchurn record`.
#[derive(Debug)]
pub struct Recorder {
    process: Process,
    lines: mpsc::Receiver<String>,
}

/// What the recorder said when it stopped.
#[derive(Debug)]
pub struct Recording {
    pub status: ExitStatus,
    pub summary: Vec<String>,
}

impl Recorder {
    /// Starts recording the given namespaces into `trace` and waits until the kernel
    /// program is attached.
    pub fn start(tcpchurn: &Path, trace: &Path, netns_args: &[&str]) -> anyhow::Result<Self> {
        let mut cmd = Command::new(tcpchurn);
        cmd.args(["record", "--force", "-o"])
            .arg(trace)
            .args(netns_args);
        detach_from_terminal_signals(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", tcpchurn.display()))?;
        let stderr = child.stderr.take().context("recorder stderr")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut recorder = Self {
            process: Process {
                name: "tcpchurn record".into(),
                child,
            },
            lines,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut said = Vec::new();
        loop {
            check_interrupted()?;
            match recorder.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line.starts_with("tcpchurn: recording to") => return Ok(recorder),
                Ok(line) => said.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    let _status = recorder.process.check_running();
                    bail!("tcpchurn record did not start:\n{}", said.join("\n"));
                }
            }
        }
    }

    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.process.check_running()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops the recording as Ctrl-C would, and returns its summary.
    pub fn stop(mut self) -> anyhow::Result<Recording> {
        // Let the last transitions (timers, softirq) land before stopping.
        thread::sleep(Duration::from_millis(300));
        self.process.signal(libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.process.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("tcpchurn record did not stop within 30 s of SIGINT");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let summary = self.lines.try_iter().collect();
        Ok(Recording { status, summary })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // On an error path: stop cleanly so that the trace so far stays readable.
        if matches!(self.process.child.try_wait(), Ok(None)) {
            self.process.signal(libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.process.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
