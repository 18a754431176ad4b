//! Harness for the privileged integration tests: network namespaces joined by veth
//! pairs, peer processes with known pids, and the real `tcpchurn` recorder.
//!
//! Tests call [`require_root`] first. Without root they skip with a printed reason;
//! under `CI=true` a skip is a failure.
#![allow(
    clippy::unwrap_used,
    reason = "test harness: a failed step must fail the test loudly"
)]

use std::{
    io::BufReader,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// True when the test can run. Without root it prints why it skips; under `CI=true`
/// it panics instead, because a privileged test that does not run proves nothing.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "{test}: needs root, and CI=true: a skipped privileged test is a failure"
    );
    eprintln!(
        "SKIPPED {test}: needs root (eBPF and network namespaces); run `cargo xtask test` as root"
    );
    false
}

/// The `tcpchurn` binary under test (`TCPCHURN_BIN`, set by `cargo xtask test`).
pub fn tcpchurn_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TCPCHURN_BIN") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    ["target/release/tcpchurn", "target/debug/tcpchurn"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.exists())
        .expect("tcpchurn is not built: run the tests with `cargo xtask test`")
}

/// The peer program, built by cargo next to the test executables
/// (`target/<profile>/tcpchurn-peer`, tests in `target/<profile>/deps/`).
pub fn peer_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("locating the test executable");
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("tcpchurn-peer"))
        .filter(|p| p.exists())
        .expect("tcpchurn-peer is not built next to the tests; run them with `cargo xtask test`")
}

fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "tct-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command that must succeed.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with everything in it) when dropped.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    pub inode: u32,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = unique(tag);
        sh("ip", &["netns", "add", &name]);
        sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
        let inode = std::fs::metadata(format!("/run/netns/{name}"))
            .map(|m| u32::try_from(std::os::unix::fs::MetadataExt::ino(&m)).unwrap())
            .unwrap();
        Self { name, inode }
    }

    /// A command that runs `program` inside this namespace. `ip netns exec` execs the
    /// program, so the child's pid is the program's pid.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs a command inside the namespace and returns its stdout.
    pub fn sh(&self, program: &str, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        sh("ip", &full)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _status = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces, a server side and a client side, joined by a veth pair with IPv4
/// and IPv6 addresses.
#[derive(Debug)]
pub struct Topology {
    pub server: Netns,
    pub client: Netns,
    pub server_v4: Ipv4Addr,
    pub client_v4: Ipv4Addr,
    pub server_v6: Ipv6Addr,
    pub client_v6: Ipv6Addr,
}

impl Topology {
    pub fn new(tag: &str) -> Self {
        let server = Netns::new(&format!("{tag}s"));
        let client = Netns::new(&format!("{tag}c"));
        let (sv, cv) = ("veth-srv", "veth-cli");
        sh(
            "ip",
            &[
                "-n",
                &server.name,
                "link",
                "add",
                sv,
                "type",
                "veth",
                "peer",
                "name",
                cv,
                "netns",
                &client.name,
            ],
        );
        let topology = Self {
            server,
            client,
            server_v4: Ipv4Addr::new(10, 77, 0, 1),
            client_v4: Ipv4Addr::new(10, 77, 0, 2),
            server_v6: "fd77::1".parse().unwrap(),
            client_v6: "fd77::2".parse().unwrap(),
        };
        for (ns, dev, v4, v6) in [
            (&topology.server, sv, topology.server_v4, topology.server_v6),
            (&topology.client, cv, topology.client_v4, topology.client_v6),
        ] {
            sh(
                "ip",
                &[
                    "-n",
                    &ns.name,
                    "addr",
                    "add",
                    &format!("{v4}/24"),
                    "dev",
                    dev,
                ],
            );
            sh(
                "ip",
                &[
                    "-n",
                    &ns.name,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    dev,
                    "nodad",
                ],
            );
            sh("ip", &["-n", &ns.name, "link", "set", dev, "up"]);
        }
        topology
    }

    /// `--netns` arguments selecting both namespaces.
    pub fn netns_args(&self) -> Vec<String> {
        vec![
            "--netns".into(),
            self.server.name.clone(),
            "--netns".into(),
            self.client.name.clone(),
        ]
    }
}

/// Reads a child's output lines on a thread, so tests can wait for a line.
#[derive(Debug)]
pub struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn from_stdout(out: ChildStdout) -> Self {
        Self::spawn(BufReader::new(out))
    }

    fn from_stderr(err: ChildStderr) -> Self {
        Self::spawn(BufReader::new(err))
    }

    fn spawn(reader: impl std::io::BufRead + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
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

    /// Waits for a line starting with `prefix` and returns it.
    pub fn wait_for(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {timeout:?}; saw {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Every line until the stream closes.
    pub fn rest(&mut self) -> Vec<String> {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

/// A peer process (`tcpchurn-peer`) with a known pid.
#[derive(Debug)]
pub struct Peer {
    pub child: Child,
    pub out: Lines,
}

impl Peer {
    pub fn spawn(netns: Option<&Netns>, args: &[&str]) -> Self {
        let mut cmd = match netns {
            Some(ns) => ns.command(peer_bin()),
            None => Command::new(peer_bin()),
        };
        let mut child = cmd
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning tcpchurn-peer");
        let out = Lines::from_stdout(child.stdout.take().unwrap());
        Self { child, out }
    }

    /// A server that has printed `listening`.
    pub fn server(netns: Option<&Netns>, args: &[&str]) -> Self {
        let mut full = vec!["server"];
        full.extend_from_slice(args);
        let mut peer = Self::spawn(netns, &full);
        peer.out.wait_for("listening", Duration::from_secs(10));
        peer
    }

    pub fn client(netns: Option<&Netns>, args: &[&str]) -> Self {
        let mut full = vec!["client"];
        full.extend_from_slice(args);
        Self::spawn(netns, &full)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, with a timeout.
    pub fn wait(mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "peer {} did not exit",
                self.pid()
            );
            thread::sleep(Duration::from_millis(10));
        }
        self.out.rest()
    }

    pub fn kill(mut self) {
        let _killed = self.child.kill();
        let _waited = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _killed = self.child.kill();
            let _waited = self.child.wait();
        }
    }
}

/// A running `tcpchurn record`.
#[derive(Debug)]
pub struct Recorder {
    pub child: Child,
    pub path: PathBuf,
    pub err: Lines,
}

/// How a recording ended.
#[derive(Debug)]
pub struct Recorded {
    pub status: ExitStatus,
    pub stderr: Vec<String>,
    pub path: PathBuf,
}

impl Recorder {
    /// Starts recording into `path` and waits until the probe is attached.
    pub fn start(path: &Path, args: &[String]) -> Self {
        let _removed = std::fs::remove_file(path);
        let mut child = Command::new(tcpchurn_bin())
            .arg("record")
            .arg("-o")
            .arg(path)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning tcpchurn record");
        let mut err = Lines::from_stderr(child.stderr.take().unwrap());
        err.wait_for("tcpchurn: recording to", Duration::from_secs(60));
        Self {
            child,
            path: path.to_path_buf(),
            err,
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap(), signal) };
    }

    /// Stops with SIGINT, like Ctrl-C, and waits for the summary.
    pub fn stop(mut self) -> Recorded {
        // Let the last transitions (timers, softirq) land before stopping.
        thread::sleep(Duration::from_millis(300));
        self.signal(libc::SIGINT);
        let status = self.child.wait().unwrap();
        let stderr = self.err.rest();
        Recorded {
            status,
            stderr,
            path: self.path.clone(),
        }
    }

    /// Kills the recorder with SIGKILL, as the OOM killer would.
    pub fn kill(mut self) -> Recorded {
        self.signal(libc::SIGKILL);
        let status = self.child.wait().unwrap();
        let stderr = self.err.rest();
        Recorded {
            status,
            stderr,
            path: self.path.clone(),
        }
    }
}

/// A scratch directory for trace files, removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _removed = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `tcpchurn` with arguments and returns its output.
pub fn tcpchurn(args: &[&str]) -> Output {
    Command::new(tcpchurn_bin())
        .args(args)
        .output()
        .expect("running tcpchurn")
}

/// How a trace's header says `sock:inet_sock_set_state` was attached (`tp_btf`, or
/// `classic tracepoint (tp_btf: why not)`).
pub fn state_change_attachment(path: &Path) -> String {
    let file = std::fs::File::open(path).unwrap();
    let reader = tcpchurn::trace::TraceReader::open(BufReader::new(file)).unwrap();
    let status = reader
        .meta()
        .tracepoints
        .iter()
        .find(|t| t.name == "sock:inet_sock_set_state")
        .cloned()
        .unwrap();
    assert!(status.attached);
    status.detail.unwrap_or_default()
}

/// `tcpchurn replay --events --json`, parsed.
pub fn replay_events(path: &Path) -> Vec<Value> {
    let out = tcpchurn(&["replay", "--events", "--json", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
        })
        .collect()
}

/// `tcpchurn replay --json` (the verdict document), parsed.
pub fn replay_verdict(path: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["replay", "--json", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = tcpchurn(&args);
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Transitions of one connection, as `OLD->NEW` strings.
pub fn transitions_of(events: &[Value], conn: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "transition" && e["conn"] == conn)
        .map(|e| {
            format!(
                "{}->{}",
                e["old"].as_str().unwrap(),
                e["new"].as_str().unwrap()
            )
        })
        .collect()
}

/// The connection ids of transitions matching a predicate, in order of appearance.
pub fn conns_where(events: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<u64> {
    let mut ids = Vec::new();
    for event in events
        .iter()
        .filter(|e| e["kind"] == "transition" && pred(e))
    {
        let id = event["conn"].as_u64().unwrap();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

impl Peer {
    /// Any program as a peer (a Java process in a namespace, ...): its stdout is
    /// followed line by line; stdin and stderr are as `cmd` sets them.
    pub fn spawn_command(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let out = Lines::from_stdout(child.stdout.take().unwrap());
        Self { child, out }
    }
}

impl Drop for Recorder {
    /// A test that fails before `stop()` must not leave the recorder running (it would
    /// record every later test's traffic until the machine reboots).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _killed = self.child.kill();
            let _waited = self.child.wait();
        }
    }
}
