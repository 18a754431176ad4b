//! `cargo xtask bench`: how much a recording costs the churn it records, whether it
//! loses anything, how big its files are, and how fast they replay.
//!
//! Design (issue 5):
//! - Load: `tcpchurn-churn` (tests crate), N loopback client/server pairs, each
//!   connection opened, one small exchange, closed, as fast as possible for a fixed
//!   time; "client closes" and "server closes" runs. Every run gets a fresh network
//!   namespace, so other traffic on the machine (and TIME_WAIT left by earlier runs)
//!   never reaches it.
//! - Variants, alternated in rounds (the order rotates every round) and repeated:
//!   untraced, `tcpchurn record` at default settings, `tcpchurn record` with another
//!   setting, libbpf-tools `tcpstates` writing to a file and a bpftrace tracepoint
//!   script counting in the kernel (both when installed; stopped with SIGINT so they
//!   flush). Every ratio is a traced run divided by the untraced run of the same round,
//!   so a machine that is busy for a while slows both sides alike.
//! - Per traced run: events recorded vs what the generator knows it did (ten
//!   transitions per loopback connection, two per listener), events lost, recorder CPU
//!   and peak RSS (`wait4`), bytes per event on disk. For tcpchurn, the end block of the
//!   trace (`kernel_submitted`, `lost_*`) cross-checks the kernel's own counters.
//! - Kernel cost: one more run per tracer with `kernel.bpf_stats_enabled=1`, reading
//!   `run_time_ns`/`run_cnt` of the tracer's own programs (found through its fds).
//! - Replay: a synthetic trace of 10 million events written through the real
//!   `TraceWriter`; `replay` (the verdict), `replay --events --json` and the bare reader,
//!   events/s per CPU second and peak RSS; a 10x smaller trace shows whether memory
//!   grows with the trace.
//! - Output: a table on stdout and `target/bench/bench-<unix time>.json` (also copied to
//!   `target/bench/latest.json`).
#![expect(clippy::print_stdout, reason = "the benchmark's table is its output")]

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::File,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::{
    run::{is_root, output, workspace_root},
    scenario::{catch_interrupts, check_interrupted},
    setup::{SetupArgs, setup},
    test::{build_tcpchurn, build_test_binaries},
};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Seconds of churn per run.
    #[arg(long, default_value_t = 4.0)]
    pub duration: f64,
    /// Repetitions of every variant (rounds), per close mode.
    #[arg(long, default_value_t = 5)]
    pub reps: u32,
    /// Client/server pairs of the load generator.
    #[arg(long, default_value_t = 2)]
    pub pairs: u16,
    /// Close modes to run: client, server.
    #[arg(long, value_delimiter = ',', default_value = "client,server")]
    pub close: Vec<String>,
    /// `tcpchurn record` arguments of the second tcpchurn variant.
    #[arg(long, default_value = "--ring-size 4M")]
    pub alt_args: String,
    /// Leave out tcpstates and bpftrace even when installed.
    #[arg(long)]
    pub no_peers: bool,
    /// Events in the synthetic replay trace (0: no replay measurements).
    #[arg(long, default_value_t = 10_000_000)]
    pub replay_events: u64,
    /// Repetitions of each replay measurement.
    #[arg(long, default_value_t = 3)]
    pub replay_reps: u32,
    /// Skip the kernel-cost pass (kernel.bpf_stats_enabled).
    #[arg(long)]
    pub no_kernel_cost: bool,
    /// A quick smoke run: 2 s runs, 2 rounds, a 7-million-event replay trace (70 s
    /// of trace time, longer than the TIME_WAIT window).
    #[arg(long)]
    pub quick: bool,
    /// Use the binaries in target/release as they are.
    #[arg(long)]
    pub no_build: bool,
}

const PORT_BASE: u16 = 23_100;
/// Runs per tracer with `kernel.bpf_stats_enabled=1`.
const KERNEL_COST_RUNS: usize = 3;
const TCPSTATES: &str = "/usr/sbin/tcpstates";

// ---------------------------------------------------------------------------------
// Small statistics.

#[derive(Clone, Copy, Debug, Default)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
    n: usize,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            f64::midpoint(v[n / 2 - 1], v[n / 2])
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    fn json(self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max, "n": self.n})
    }

    fn show(self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}-{:.d$}]",
            self.median,
            self.min,
            self.max,
            d = digits
        )
    }
}

fn spread_json(values: &[f64]) -> Value {
    Spread::of(values).map_or(Value::Null, Spread::json)
}

// ---------------------------------------------------------------------------------
// Processes.

/// `wait4` on a child: exit status, CPU seconds (user + system), `ru_maxrss` in KiB
/// (see [`PeakRss`] for why that is not the peak RSS of the program).
fn wait4(pid: u32) -> anyhow::Result<(i32, f64, u64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = i32::try_from(pid)?;
    // SAFETY: waiting for our own child with valid out-pointers.
    let rc = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    if rc != pid {
        bail!("wait4({pid}): {}", std::io::Error::last_os_error());
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
    Ok((status, cpu, u64::try_from(usage.ru_maxrss).unwrap_or(0)))
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Watches a child's `VmHWM` (peak RSS of the program it runs) until it exits.
///
/// `ru_maxrss` from `wait4` cannot be used: the kernel carries the high-water mark of
/// the pre-exec address space over `exec`, so every child would report at least this
/// benchmark's own RSS.
struct PeakRss(thread::JoinHandle<u64>);

impl PeakRss {
    fn watch(pid: u32) -> Self {
        Self(thread::spawn(move || {
            let mut peak = 0u64;
            loop {
                let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|text| {
                        text.lines()
                            .find_map(|l| l.strip_prefix("VmHWM:"))
                            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    });
                match hwm {
                    Some(kib) => peak = peak.max(kib),
                    None => return peak,
                }
                thread::sleep(Duration::from_millis(10));
            }
        }))
    }

    /// The peak in KiB; call after the child was reaped.
    fn kib(self) -> u64 {
        self.0.join().unwrap_or(0)
    }
}

/// CPU seconds (user + system) a live process has used, from /proc.
fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// True once the process holds a perf event or BPF link fd: its tracepoint is attached.
fn has_attached(pid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.filter_map(Result::ok).any(|entry| {
        std::fs::read_link(entry.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target.contains("perf_event") || target.contains("bpf_link")
        })
    })
}

fn wait_attached(pid: u32, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_attached(pid) {
        if Instant::now() > deadline {
            bail!("{what} did not attach within 30 s");
        }
        thread::sleep(Duration::from_millis(50));
    }
    // Attaching is not instantaneous for tools with several programs.
    thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// Tracing BPF programs loaded on the machine (other users' recorders, tests, demos).
/// Called between runs, when no tracer of ours is running: every one of them runs on
/// the churn's events too, in every variant alike.
fn foreign_tracing_programs() -> usize {
    let Some(text) = output("bpftool", &["prog", "show", "--json"]) else {
        return 0;
    };
    let Ok(Value::Array(progs)) = serde_json::from_str::<Value>(&text) else {
        return 0;
    };
    progs
        .iter()
        .filter(|p| {
            matches!(
                p["type"].as_str(),
                Some("tracepoint" | "raw_tracepoint" | "kprobe" | "tracing" | "perf_event")
            )
        })
        .count()
}

/// The ids of the BPF programs a process holds (from its fdinfo).
fn bpf_prog_ids(pid: u32) -> Vec<u32> {
    let mut ids = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for entry in dir.filter_map(Result::ok) {
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            for line in text.lines() {
                if let Some(id) = line.strip_prefix("prog_id:")
                    && let Ok(id) = id.trim().parse::<u32>()
                    && !ids.contains(&id)
                {
                    ids.push(id);
                }
            }
        }
    }
    ids.sort_unstable();
    ids
}

#[derive(Clone, Debug)]
struct ProgStat {
    name: String,
    run_cnt: u64,
    run_time_ns: u64,
}

fn prog_stats(ids: &[u32]) -> Vec<ProgStat> {
    ids.iter()
        .filter_map(|id| {
            let text = output(
                "bpftool",
                &["prog", "show", "id", &id.to_string(), "--json"],
            )?;
            let v: Value = serde_json::from_str(&text).ok()?;
            Some(ProgStat {
                name: v["name"].as_str().unwrap_or("?").to_owned(),
                run_cnt: v["run_cnt"].as_u64().unwrap_or(0),
                run_time_ns: v["run_time_ns"].as_u64().unwrap_or(0),
            })
        })
        .collect()
}

/// Lines of a child's stderr, read on a thread.
struct LineReader {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LineReader {
    fn new(stream: impl std::io::Read + Send + 'static) -> Self {
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

    fn wait_for(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let found = line.starts_with(prefix);
                    self.seen.push(line);
                    if found {
                        return Ok(());
                    }
                }
                Err(_) => bail!("no {prefix:?} line; saw {:?}", self.seen),
            }
        }
    }

    fn rest(&mut self) -> Vec<String> {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

// ---------------------------------------------------------------------------------
// The environment of one run.

/// A fresh network namespace with loopback up, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> anyhow::Result<Self> {
        run_quiet("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        run_quiet("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        // Room for the churn's ephemeral ports (TIME_WAIT holds each for 60 s; loopback
        // reuses them after 1 s with the default tcp_tw_reuse=2).
        run_quiet(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                "net.ipv4.ip_local_port_range=10000 65000",
            ],
        )?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _status = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

fn run_quiet(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Restores `kernel.bpf_stats_enabled` when dropped.
struct BpfStats {
    previous: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        let previous = std::fs::read_to_string(BPF_STATS)
            .context("reading kernel.bpf_stats_enabled")?
            .trim()
            .to_owned();
        std::fs::write(BPF_STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(Self { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _restored = std::fs::write(BPF_STATS, &self.previous);
    }
}

fn loadavg() -> (f64, String) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let first = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let three: Vec<&str> = text.split_whitespace().take(3).collect();
    (first, three.join(" "))
}

fn cpus() -> usize {
    thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

// ---------------------------------------------------------------------------------
// Variants.

#[derive(Clone, Debug)]
enum Kind {
    Untraced,
    Tcpchurn(Vec<String>),
    Tcpstates,
    Bpftrace,
}

#[derive(Clone, Debug)]
struct Variant {
    name: String,
    kind: Kind,
    /// How the variant is run, for the report.
    command: String,
}

struct Paths {
    tcpchurn: PathBuf,
    churn: PathBuf,
    trace_tool: PathBuf,
    out_dir: PathBuf,
    bpftrace: Option<PathBuf>,
}

/// What the load generator says it did.
#[derive(Clone, Debug, Default)]
struct ChurnOut {
    completed: u64,
    elapsed_s: f64,
    conn_per_s: f64,
    expected: u64,
    failed: u64,
    /// Tracing programs of others loaded at the start or end of the run.
    foreign_tracers: usize,
}

impl ChurnOut {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let v: Value =
            serde_json::from_str(text.trim()).with_context(|| format!("churn output {text:?}"))?;
        Ok(Self {
            completed: v["completed"].as_u64().unwrap_or(0),
            elapsed_s: v["elapsed_s"].as_f64().unwrap_or(0.0),
            conn_per_s: v["conn_per_s"].as_f64().unwrap_or(0.0),
            expected: v["expected_transitions"].as_u64().unwrap_or(0),
            failed: v["connect_failed"].as_u64().unwrap_or(0)
                + v["exchange_failed"].as_u64().unwrap_or(0)
                + v["server_failed"].as_u64().unwrap_or(0),
            foreign_tracers: 0,
        })
    }
}

/// What a tracer produced in one run.
#[derive(Clone, Debug, Default)]
struct TracerOut {
    recorded: u64,
    lost: u64,
    /// CPU seconds of the tracer process while the churn ran.
    cpu_churn_s: f64,
    /// CPU seconds of the tracer process from start to exit.
    cpu_total_s: f64,
    maxrss_kib: u64,
    bytes: u64,
    /// tcpchurn only: the end block and the file's own accounting.
    detail: Value,
    programs: Vec<ProgStat>,
}

#[derive(Clone, Debug)]
struct RunOut {
    variant: String,
    mode: String,
    round: u32,
    /// Position in the whole sequence of runs.
    seq: usize,
    churn: ChurnOut,
    tracer: Option<TracerOut>,
}

impl RunOut {
    fn json(&self) -> Value {
        let tracer = self.tracer.as_ref().map(|t| {
            json!({
                "recorded": t.recorded,
                "lost": t.lost,
                "cpu_churn_s": t.cpu_churn_s,
                "cpu_total_s": t.cpu_total_s,
                "maxrss_kib": t.maxrss_kib,
                "bytes": t.bytes,
                "bytes_per_event": bytes_per_event(t),
                "detail": t.detail,
                "programs": t.programs.iter().map(|p| json!({
                    "name": p.name, "run_cnt": p.run_cnt, "run_time_ns": p.run_time_ns,
                })).collect::<Vec<_>>(),
            })
        });
        json!({
            "variant": self.variant,
            "mode": self.mode,
            "round": self.round,
            "seq": self.seq,
            "completed": self.churn.completed,
            "elapsed_s": self.churn.elapsed_s,
            "conn_per_s": self.churn.conn_per_s,
            "expected_events": self.churn.expected,
            "churn_failures": self.churn.failed,
            "foreign_tracing_programs": self.churn.foreign_tracers,
            "tracer": tracer,
        })
    }
}

fn bytes_per_event(t: &TracerOut) -> f64 {
    if t.recorded == 0 {
        f64::NAN
    } else {
        t.bytes as f64 / t.recorded as f64
    }
}

struct Bench<'a> {
    args: &'a BenchArgs,
    paths: Paths,
    netns_counter: u32,
}

impl Bench<'_> {
    fn netns(&mut self) -> anyhow::Result<Netns> {
        self.netns_counter += 1;
        Netns::create(format!(
            "tcpchurn-bench-{}-{}",
            std::process::id(),
            self.netns_counter
        ))
    }

    fn churn(&self, ns: &Netns, mode: &str, duration: f64, count: Option<u64>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name])
            .arg(&self.paths.churn)
            .args(["--pairs", &self.args.pairs.to_string()])
            .args(["--duration", &format!("{duration}")])
            .args(["--close", mode])
            .args(["--port", &PORT_BASE.to_string()]);
        if let Some(count) = count {
            cmd.args(["--count", &count.to_string()]);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        cmd
    }

    fn run_churn(
        &self,
        ns: &Netns,
        mode: &str,
        duration: f64,
        count: Option<u64>,
    ) -> anyhow::Result<ChurnOut> {
        let out = self
            .churn(ns, mode, duration, count)
            .output()
            .context("running tcpchurn-churn")?;
        if !out.status.success() {
            bail!("tcpchurn-churn failed ({})", out.status);
        }
        ChurnOut::parse(&String::from_utf8_lossy(&out.stdout))
    }

    fn ports(&self) -> Vec<u16> {
        (0..self.args.pairs).map(|i| PORT_BASE + i).collect()
    }

    /// One run of one variant in a fresh namespace.
    fn run(
        &mut self,
        variant: &Variant,
        mode: &str,
        duration: f64,
        with_programs: bool,
    ) -> anyhow::Result<(ChurnOut, Option<TracerOut>)> {
        // Between runs, Ctrl-C stops the benchmark through the normal error path, so
        // that namespaces are deleted and `kernel.bpf_stats_enabled` is restored.
        check_interrupted()?;
        let foreign_before = foreign_tracing_programs();
        let ns = self.netns()?;
        let result = match &variant.kind {
            Kind::Untraced => self.run_churn(&ns, mode, duration, None).map(|c| (c, None)),
            Kind::Tcpchurn(extra) => self.run_tcpchurn(&ns, extra, mode, duration, with_programs),
            Kind::Tcpstates => self.run_tcpstates(&ns, mode, duration, with_programs),
            Kind::Bpftrace => self.run_bpftrace(&ns, mode, duration, with_programs),
        };
        drop(ns);
        // Namespace teardown (TIME_WAIT purge) runs in a kernel worker: let it finish
        // before the next run starts.
        thread::sleep(Duration::from_millis(700));
        let foreign = foreign_before.max(foreign_tracing_programs());
        result.map(|(mut churn, tracer)| {
            churn.foreign_tracers = foreign;
            (churn, tracer)
        })
    }

    fn run_tcpchurn(
        &self,
        ns: &Netns,
        extra: &[String],
        mode: &str,
        duration: f64,
        with_programs: bool,
    ) -> anyhow::Result<(ChurnOut, Option<TracerOut>)> {
        let trace = self.paths.out_dir.join("run.trace");
        let mut child = Command::new(&self.paths.tcpchurn)
            .arg("record")
            .arg("-o")
            .arg(&trace)
            .args(["-f", "--netns", &ns.name])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpchurn record")?;
        let pid = child.id();
        let peak = PeakRss::watch(pid);
        let mut err = LineReader::new(child.stderr.take().context("recorder stderr")?);
        if let Err(e) = err.wait_for("tcpchurn: recording to", Duration::from_secs(60)) {
            signal(pid, libc::SIGKILL);
            let _reaped = wait4(pid);
            return Err(e);
        }
        let (churn, cpu_before, cpu_after, programs) =
            self.traced_churn(ns, mode, duration, pid, with_programs);
        signal(pid, libc::SIGINT);
        let (status, cpu_total, _) = wait4(pid)?;
        let maxrss = peak.kib();
        let stderr = err.rest();
        let churn = churn?;
        if status != 0 {
            bail!("tcpchurn record exited with status {status}: {stderr:?}");
        }
        let stat = self.trace_stat(&trace)?;
        let _removed = std::fs::remove_file(&trace);
        let transitions = stat["transitions"].as_u64().unwrap_or(0);
        let end = &stat["end"];
        let lost = stat["lost_in_gaps"].as_u64().unwrap_or(0)
            + end["lost_decode_failed"].as_u64().unwrap_or(0);
        let kinds = &stat["kinds"];
        let kernel_events = transitions
            + kinds["reset_sent"].as_u64().unwrap_or(0)
            + kinds["reset_received"].as_u64().unwrap_or(0)
            + kinds["socket_error"].as_u64().unwrap_or(0);
        let detail = json!({
            "records": stat["records"],
            "kinds": stat["kinds"],
            "patterns": stat["patterns"],
            "other_sequences": stat["other_sequences"],
            "end": stat["end"],
            "kernel_events_in_file": kernel_events,
            "kernel_submitted_matches_file": end["kernel_submitted"].as_u64() == Some(kernel_events),
            "damage": stat["damage"],
        });
        Ok((
            churn,
            Some(TracerOut {
                recorded: transitions,
                lost,
                cpu_churn_s: cpu_after - cpu_before,
                cpu_total_s: cpu_total,
                maxrss_kib: maxrss,
                bytes: stat["bytes"].as_u64().unwrap_or(0),
                detail,
                programs,
            }),
        ))
    }

    /// Runs the churn while a tracer (pid) runs; returns the churn result, the
    /// tracer's CPU time before and after, and its programs' stats.
    fn traced_churn(
        &self,
        ns: &Netns,
        mode: &str,
        duration: f64,
        pid: u32,
        with_programs: bool,
    ) -> (anyhow::Result<ChurnOut>, f64, f64, Vec<ProgStat>) {
        let cpu_before = proc_cpu(pid).unwrap_or(0.0);
        let churn = self.run_churn(ns, mode, duration, None);
        // Transitions driven by timers and the last ACKs land just after the
        // generator exits.
        thread::sleep(Duration::from_millis(300));
        let cpu_after = proc_cpu(pid).unwrap_or(cpu_before);
        let programs = if with_programs {
            prog_stats(&bpf_prog_ids(pid))
        } else {
            Vec::new()
        };
        (churn, cpu_before, cpu_after, programs)
    }

    fn trace_stat(&self, trace: &Path) -> anyhow::Result<Value> {
        let out = Command::new(&self.paths.trace_tool)
            .arg("stat")
            .arg(trace)
            .output()
            .context("running tcpchurn-trace-tool stat")?;
        if !out.status.success() {
            bail!(
                "trace-tool stat failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn run_tcpstates(
        &self,
        ns: &Netns,
        mode: &str,
        duration: f64,
        with_programs: bool,
    ) -> anyhow::Result<(ChurnOut, Option<TracerOut>)> {
        let out_path = self.paths.out_dir.join("tcpstates.out");
        let err_path = self.paths.out_dir.join("tcpstates.err");
        let child = Command::new(TCPSTATES)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path)?)
            .stderr(File::create(&err_path)?)
            .spawn()
            .context("starting tcpstates")?;
        self.peer_run(
            child,
            "tcpstates",
            ns,
            mode,
            duration,
            with_programs,
            |_| {
                let text = std::fs::read_to_string(&out_path).unwrap_or_default();
                let ports = self.ports();
                // SKADDR C-PID C-COMM LADDR LPORT RADDR RPORT OLDSTATE -> NEWSTATE MS,
                // counted from the end (a comm may contain spaces).
                let recorded = text
                    .lines()
                    .filter(|line| {
                        let f: Vec<&str> = line.split_whitespace().collect();
                        let n = f.len();
                        n >= 11
                            && [f[n - 7], f[n - 5]]
                                .iter()
                                .any(|p| p.parse::<u16>().is_ok_and(|p| ports.contains(&p)))
                    })
                    .count() as u64;
                let errors = std::fs::read_to_string(&err_path).unwrap_or_default();
                // libbpf-tools: "lost N events on CPU #C".
                let lost = errors
                    .lines()
                    .filter_map(|l| l.strip_prefix("lost "))
                    .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                    .sum();
                let bytes = std::fs::metadata(&out_path).map_or(0, |m| m.len());
                let _removed = std::fs::remove_file(&out_path);
                (recorded, lost, bytes)
            },
        )
    }

    fn run_bpftrace(
        &self,
        ns: &Netns,
        mode: &str,
        duration: f64,
        with_programs: bool,
    ) -> anyhow::Result<(ChurnOut, Option<TracerOut>)> {
        let bpftrace = self.paths.bpftrace.clone().context("bpftrace")?;
        let (lo, hi) = (PORT_BASE, PORT_BASE + self.args.pairs - 1);
        let script = format!(
            "tracepoint:sock:inet_sock_set_state \
             /args->protocol == 6 && ((args->sport >= {lo} && args->sport <= {hi}) || \
             (args->dport >= {lo} && args->dport <= {hi}))/ {{ @transitions = count(); }}"
        );
        let out_path = self.paths.out_dir.join("bpftrace.out");
        let child = Command::new(bpftrace)
            .args(["-o"])
            .arg(&out_path)
            .args(["-e", &script])
            .env("BPFTRACE_NO_CPP_DEMANGLE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting bpftrace")?;
        self.peer_run(child, "bpftrace", ns, mode, duration, with_programs, |_| {
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            let recorded = text
                .lines()
                .filter_map(|l| l.strip_prefix("@transitions:"))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .sum();
            let bytes = std::fs::metadata(&out_path).map_or(0, |m| m.len());
            let _removed = std::fs::remove_file(&out_path);
            (recorded, 0, bytes)
        })
    }

    /// A peer tool: wait until attached, churn, SIGINT (they flush only on SIGINT),
    /// then read what it wrote.
    #[expect(clippy::too_many_arguments, reason = "one private helper")]
    fn peer_run(
        &self,
        child: Child,
        what: &str,
        ns: &Netns,
        mode: &str,
        duration: f64,
        with_programs: bool,
        collect: impl FnOnce(&str) -> (u64, u64, u64),
    ) -> anyhow::Result<(ChurnOut, Option<TracerOut>)> {
        let pid = child.id();
        let peak = PeakRss::watch(pid);
        if let Err(e) = wait_attached(pid, what) {
            signal(pid, libc::SIGKILL);
            let _reaped = wait4(pid);
            return Err(e);
        }
        let (churn, cpu_before, cpu_after, programs) =
            self.traced_churn(ns, mode, duration, pid, with_programs);
        signal(pid, libc::SIGINT);
        let (_status, cpu_total, _) = wait4(pid)?;
        let maxrss = peak.kib();
        let churn = churn?;
        let (recorded, lost, bytes) = collect(what);
        Ok((
            churn,
            Some(TracerOut {
                recorded,
                lost,
                cpu_churn_s: cpu_after - cpu_before,
                cpu_total_s: cpu_total,
                maxrss_kib: maxrss,
                bytes,
                detail: Value::Null,
                programs,
            }),
        ))
    }
}

// ---------------------------------------------------------------------------------
// Validation: the generator's "ten transitions per connection" against the real
// recorder and `replay --events --json`.

fn validate(bench: &mut Bench<'_>, mode: &str) -> anyhow::Result<Value> {
    let ns = bench.netns()?;
    let trace = bench.paths.out_dir.join("validate.trace");
    let mut child = Command::new(&bench.paths.tcpchurn)
        .arg("record")
        .arg("-o")
        .arg(&trace)
        .args(["-f", "--no-snapshot", "--netns", &ns.name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting tcpchurn record")?;
    let pid = child.id();
    let mut err = LineReader::new(child.stderr.take().context("recorder stderr")?);
    err.wait_for("tcpchurn: recording to", Duration::from_secs(60))?;
    let churn = bench.run_churn(&ns, mode, 30.0, Some(50));
    thread::sleep(Duration::from_millis(300));
    signal(pid, libc::SIGINT);
    wait4(pid)?;
    let churn = churn?;
    let out = Command::new(&bench.paths.tcpchurn)
        .args(["replay", "--events", "--json"])
        .arg(&trace)
        .output()?;
    let _removed = std::fs::remove_file(&trace);
    drop(ns);
    let mut sequences: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut transitions = 0u64;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line)?;
        if v["kind"] == "transition" {
            transitions += 1;
            if let Some(conn) = v["conn"].as_u64() {
                sequences.entry(conn).or_default().push(format!(
                    "{}->{}",
                    v["old"].as_str().unwrap_or("?"),
                    v["new"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    let (active, passive) = (
        "ESTABLISHED->FIN_WAIT1 FIN_WAIT1->FIN_WAIT2 FIN_WAIT2->CLOSE",
        "ESTABLISHED->CLOSE_WAIT CLOSE_WAIT->LAST_ACK LAST_ACK->CLOSE",
    );
    let (client_close, server_close) = if mode == "client" {
        (active, passive)
    } else {
        (passive, active)
    };
    let client = format!("CLOSE->SYN_SENT SYN_SENT->ESTABLISHED {client_close}");
    let server = format!("LISTEN->SYN_RECV SYN_RECV->ESTABLISHED {server_close}");
    let listener = "CLOSE->LISTEN LISTEN->CLOSE".to_owned();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for seq in sequences.values() {
        let joined = seq.join(" ");
        let key = if joined == client {
            "client"
        } else if joined == server {
            "server"
        } else if joined == listener {
            "listener"
        } else {
            "unexpected"
        };
        *counts.entry(key).or_default() += 1;
    }
    let ok = transitions == churn.expected
        && counts.get("client") == Some(&churn.completed)
        && counts.get("server") == Some(&churn.completed)
        && !counts.contains_key("unexpected");
    Ok(json!({
        "mode": mode,
        "connections": churn.completed,
        "expected_transitions": churn.expected,
        "replayed_transitions": transitions,
        "sequences": counts,
        "ok": ok,
    }))
}

// ---------------------------------------------------------------------------------
// Replay.

struct Measured {
    wall_s: f64,
    cpu_s: f64,
    maxrss_kib: u64,
}

fn measure(cmd: &mut Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(File::create("/dev/null")?)
        .stderr(Stdio::null())
        .spawn()
        .context("starting a replay")?;
    let peak = PeakRss::watch(child.id());
    let (status, cpu_s, _) = wait4(child.id())?;
    let maxrss_kib = peak.kib();
    let wall_s = started.elapsed().as_secs_f64();
    if status != 0 {
        bail!("{cmd:?} exited with status {status}");
    }
    Ok(Measured {
        wall_s,
        cpu_s,
        maxrss_kib,
    })
}

/// Events per second of trace time in the synthetic replay traces: 10,000 loopback
/// connections per second, so a 10-million-event trace spans 100 s, longer than the
/// 60 s a TIME_WAIT lasts.
const SYNTH_RATE: u64 = 100_000;

fn synth(paths: &Paths, events: u64) -> anyhow::Result<(PathBuf, Value)> {
    let file = paths.out_dir.join(format!("synthetic-{events}.trace"));
    let out = Command::new(&paths.trace_tool)
        .args(["synth", "--events", &events.to_string()])
        .args(["--rate", &SYNTH_RATE.to_string(), "--out"])
        .arg(&file)
        .output()
        .context("writing the synthetic trace")?;
    if !out.status.success() {
        bail!(
            "synthetic trace: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((file, serde_json::from_slice(&out.stdout)?))
}

/// Replay speed on a large synthetic trace, and peak RSS on it and on a trace twice as
/// long at the same rate: once the trace is longer than the TIME_WAIT window, what a
/// replay holds (open connections, TIME_WAIT of the last 60 s, per-pair aggregates)
/// no longer depends on its length.
fn replay_bench(paths: &Paths, events: u64, reps: u32) -> anyhow::Result<Value> {
    let mut result = serde_json::Map::new();
    let all: [(&str, Vec<&str>); 3] = [
        ("verdict", vec!["replay"]),
        ("events_json", vec!["replay", "--events", "--json"]),
        ("reader", vec![]),
    ];
    for (key, size, reps, modes) in [
        ("large", events, reps, &all[..]),
        ("double", 2 * events, 1, &all[..1]),
    ] {
        eprintln!("bench: replay: writing a synthetic trace of {size} events");
        let (file, written) = synth(paths, size)?;
        let records = written["records"].as_u64().unwrap_or(size);
        let mut per_mode = serde_json::Map::new();
        for (name, args) in modes {
            let mut runs = Vec::new();
            for _ in 0..reps {
                let mut cmd = if args.is_empty() {
                    let mut c = Command::new(&paths.trace_tool);
                    c.arg("read");
                    c
                } else {
                    let mut c = Command::new(&paths.tcpchurn);
                    c.args(args);
                    c
                };
                cmd.arg(&file);
                runs.push(measure(&mut cmd)?);
            }
            let per_cpu: Vec<f64> = runs.iter().map(|m| records as f64 / m.cpu_s).collect();
            let per_wall: Vec<f64> = runs.iter().map(|m| records as f64 / m.wall_s).collect();
            let rss: Vec<f64> = runs.iter().map(|m| m.maxrss_kib as f64 / 1024.0).collect();
            per_mode.insert(
                (*name).to_owned(),
                json!({
                    "events_per_cpu_s": spread_json(&per_cpu),
                    "events_per_wall_s": spread_json(&per_wall),
                    "maxrss_mib": spread_json(&rss),
                }),
            );
        }
        let _removed = std::fs::remove_file(&file);
        result.insert(
            key.to_owned(),
            json!({
                "trace": written,
                "events": records,
                "trace_seconds": records as f64 / SYNTH_RATE as f64,
                "modes": per_mode,
            }),
        );
    }
    Ok(Value::Object(result))
}

// ---------------------------------------------------------------------------------
// The report.

fn summarize(runs: &[RunOut], variants: &[Variant], modes: &[String]) -> Value {
    let mut out = serde_json::Map::new();
    for mode in modes {
        let mut per_variant = serde_json::Map::new();
        // A traced run against the untraced runs right before and after it.
        let neighbours = |r: &RunOut| -> Option<(f64, bool)> {
            let untraced = |i: usize| {
                runs.get(i)
                    .filter(|u| u.mode == r.mode && u.variant == "untraced")
            };
            let before = r.seq.checked_sub(1).and_then(untraced)?;
            let after = untraced(r.seq + 1)?;
            let clean = [before, r, after]
                .iter()
                .all(|x| x.churn.foreign_tracers == 0);
            Some((
                r.churn.conn_per_s / f64::midpoint(before.churn.conn_per_s, after.churn.conn_per_s),
                clean,
            ))
        };
        for variant in variants {
            let mine: Vec<&RunOut> = runs
                .iter()
                .filter(|r| &r.mode == mode && r.variant == variant.name)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let rate: Vec<f64> = mine.iter().map(|r| r.churn.conn_per_s).collect();
            let ratios: Vec<(f64, bool)> = if variant.name == "untraced" {
                Vec::new()
            } else {
                mine.iter().filter_map(|r| neighbours(r)).collect()
            };
            let ratio: Vec<f64> = ratios.iter().map(|(x, _)| *x).collect();
            let ratio_clean: Vec<f64> = ratios
                .iter()
                .filter(|(_, clean)| *clean)
                .map(|(x, _)| *x)
                .collect();
            let tracers: Vec<&TracerOut> = mine.iter().filter_map(|r| r.tracer.as_ref()).collect();
            let mut entry = json!({
                "command": variant.command,
                "conn_per_s": spread_json(&rate),
                "ratio_to_untraced": spread_json(&ratio),
                "ratio_to_untraced_without_foreign_tracers": spread_json(&ratio_clean),
            });
            if !tracers.is_empty() {
                let recorded: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| {
                        r.tracer
                            .as_ref()
                            .map(|t| t.recorded as f64 / r.churn.expected.max(1) as f64)
                    })
                    .collect();
                let cpu_pct: Vec<f64> = mine
                    .iter()
                    .filter_map(|r| {
                        r.tracer
                            .as_ref()
                            .map(|t| 100.0 * t.cpu_churn_s / r.churn.elapsed_s.max(1e-9))
                    })
                    .collect();
                let cpu_ns: Vec<f64> = tracers
                    .iter()
                    .map(|t| t.cpu_churn_s * 1e9 / t.recorded.max(1) as f64)
                    .collect();
                let entry = entry.as_object_mut().expect("an object");
                entry.insert("recorded_over_expected".into(), spread_json(&recorded));
                entry.insert(
                    "events_recorded".into(),
                    json!(tracers.iter().map(|t| t.recorded).sum::<u64>()),
                );
                entry.insert(
                    "events_expected".into(),
                    json!(mine.iter().map(|r| r.churn.expected).sum::<u64>()),
                );
                entry.insert(
                    "events_lost".into(),
                    json!(tracers.iter().map(|t| t.lost).sum::<u64>()),
                );
                entry.insert("cpu_pct_of_one_core".into(), spread_json(&cpu_pct));
                let cross_checked: Vec<bool> = tracers
                    .iter()
                    .filter_map(|t| t.detail["kernel_submitted_matches_file"].as_bool())
                    .collect();
                if !cross_checked.is_empty() {
                    entry.insert(
                        "kernel_submitted_matches_file".into(),
                        json!(format!(
                            "{} of {} runs",
                            cross_checked.iter().filter(|ok| **ok).count(),
                            cross_checked.len()
                        )),
                    );
                }
                entry.insert("cpu_ns_per_event".into(), spread_json(&cpu_ns));
                entry.insert(
                    "cpu_total_s".into(),
                    spread_json(&tracers.iter().map(|t| t.cpu_total_s).collect::<Vec<_>>()),
                );
                entry.insert(
                    "maxrss_mib".into(),
                    spread_json(
                        &tracers
                            .iter()
                            .map(|t| t.maxrss_kib as f64 / 1024.0)
                            .collect::<Vec<_>>(),
                    ),
                );
                entry.insert(
                    "bytes_per_event".into(),
                    spread_json(
                        &tracers
                            .iter()
                            .map(|t| bytes_per_event(t))
                            .collect::<Vec<_>>(),
                    ),
                );
            }
            per_variant.insert(variant.name.clone(), entry);
        }
        out.insert(mode.clone(), Value::Object(per_variant));
    }
    Value::Object(out)
}

fn fmt_spread(v: &Value, digits: usize, scale: f64) -> String {
    match (v["median"].as_f64(), v["min"].as_f64(), v["max"].as_f64()) {
        (Some(m), Some(lo), Some(hi)) => Spread {
            median: m * scale,
            min: lo * scale,
            max: hi * scale,
            n: 0,
        }
        .show(digits),
        _ => "-".into(),
    }
}

fn print_table(summary: &Value, variants: &[Variant]) {
    for (mode, per_variant) in summary.as_object().into_iter().flatten() {
        println!();
        println!(
            "churn, {mode} closes first: median [min-max] over rounds; ratio = traced / mean of the \
             untraced runs just before and after; clean = only those with no other tracing programs loaded"
        );
        println!(
            "{:<18} {:>24} {:>20} {:>22} {:>16} {:>8} {:>20} {:>16} {:>12} {:>18}",
            "variant",
            "conn/s",
            "ratio",
            "ratio (clean, n)",
            "recorded/expect",
            "lost",
            "tracer CPU % core",
            "CPU ns/event",
            "RSS MiB max",
            "bytes/event"
        );
        for variant in variants {
            let Some(v) = per_variant.get(&variant.name) else {
                continue;
            };
            let has = v.get("events_recorded").is_some();
            let recorded = if has {
                format!(
                    "{}/{}",
                    v["events_recorded"].as_u64().unwrap_or(0),
                    v["events_expected"].as_u64().unwrap_or(0)
                )
            } else {
                "-".into()
            };
            let clean = &v["ratio_to_untraced_without_foreign_tracers"];
            println!(
                "{:<18} {:>24} {:>20} {:>22} {:>16} {:>8} {:>20} {:>16} {:>12} {:>18}",
                variant.name,
                fmt_spread(&v["conn_per_s"], 0, 1.0),
                fmt_spread(&v["ratio_to_untraced"], 3, 1.0),
                if clean.is_null() {
                    "-".into()
                } else {
                    format!("{} {}", fmt_spread(clean, 3, 1.0), clean["n"])
                },
                recorded,
                v.get("events_lost").map_or("-".into(), ToString::to_string),
                fmt_spread(&v["cpu_pct_of_one_core"], 1, 1.0),
                fmt_spread(&v["cpu_ns_per_event"], 0, 1.0),
                v["maxrss_mib"]["max"]
                    .as_f64()
                    .map_or("-".into(), |m| format!("{m:.1}")),
                fmt_spread(&v["bytes_per_event"], 1, 1.0),
            );
        }
    }
}

fn print_cross_checks(summary: &Value, variants: &[Variant]) {
    for (mode, per_variant) in summary.as_object().into_iter().flatten() {
        for variant in variants {
            if let Some(check) =
                per_variant[&variant.name]["kernel_submitted_matches_file"].as_str()
            {
                println!(
                    "{mode} closes, {}: kernel SUBMITTED counter == kernel events in the file in {check}",
                    variant.name
                );
            }
        }
    }
}

fn print_kernel_cost(cost: &Value) {
    println!();
    println!(
        "kernel cost (kernel.bpf_stats_enabled=1, {KERNEL_COST_RUNS} extra runs each, the median run; \
         run_time_ns includes the clock reads of the statistics themselves):"
    );
    for (tracer, v) in cost.as_object().into_iter().flatten() {
        println!(
            "  {tracer}: {:.0} ns of BPF programs per recorded event ({} events; runs: {})",
            v["ns_per_event"].as_f64().unwrap_or(f64::NAN),
            v["events"].as_u64().unwrap_or(0),
            fmt_spread(&v["ns_per_event_runs"], 0, 1.0)
        );
        for p in v["programs"].as_array().into_iter().flatten() {
            println!(
                "    {:<24} {:>10} runs {:>8.0} ns/run {:>8.0} ns/event",
                p["name"].as_str().unwrap_or("?"),
                p["run_cnt"].as_u64().unwrap_or(0),
                p["ns_per_run"].as_f64().unwrap_or(f64::NAN),
                p["ns_per_event"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
}

fn print_replay(replay: &Value) {
    for (size, v) in replay.as_object().into_iter().flatten() {
        println!();
        println!(
            "replay, {size} synthetic trace: {} events over {:.0} s of trace time, {:.1} bytes/event, median [min-max]",
            v["events"].as_u64().unwrap_or(0),
            v["trace_seconds"].as_f64().unwrap_or(0.0),
            v["trace"]["bytes_per_event"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "  {:<14} {:>30} {:>30} {:>22}",
            "mode", "Mevents/s per CPU second", "Mevents/s wall", "peak RSS MiB"
        );
        for (mode, m) in v["modes"].as_object().into_iter().flatten() {
            println!(
                "  {:<14} {:>30} {:>30} {:>22}",
                mode,
                fmt_spread(&m["events_per_cpu_s"], 2, 1e-6),
                fmt_spread(&m["events_per_wall_s"], 2, 1e-6),
                fmt_spread(&m["maxrss_mib"], 1, 1.0),
            );
        }
    }
}

/// The issue's targets, checked against the defaults variant.
fn targets(summary: &Value, replay: &Value) -> Value {
    let mut checks = Vec::new();
    for (mode, per_variant) in summary.as_object().into_iter().flatten() {
        let d = &per_variant["tcpchurn-defaults"];
        if d.is_null() {
            continue;
        }
        // Other users' tracers tax untraced and traced runs alike, which pushes the
        // ratio towards 1: judge on the runs without them when there are enough.
        let clean = &d["ratio_to_untraced_without_foreign_tracers"];
        let (ratio, which) = if clean["n"].as_u64().unwrap_or(0) >= 3 {
            (
                clean["median"].as_f64().unwrap_or(0.0),
                "runs without other tracers",
            )
        } else {
            (
                d["ratio_to_untraced"]["median"].as_f64().unwrap_or(0.0),
                "all runs",
            )
        };
        checks.push(
            json!({"target": format!("{mode} closes: throughput ratio >= 0.90 (median, {which})"),
            "value": ratio, "met": ratio >= 0.90}),
        );
        let lost = d["events_lost"].as_u64().unwrap_or(u64::MAX);
        let recorded = d["events_recorded"].as_u64().unwrap_or(0);
        let expected = d["events_expected"].as_u64().unwrap_or(1);
        checks.push(
            json!({"target": format!("{mode} closes: zero events lost at defaults"),
            "value": lost, "met": lost == 0 && recorded == expected}),
        );
        let bpe = d["bytes_per_event"]["median"].as_f64().unwrap_or(f64::MAX);
        checks.push(
            json!({"target": format!("{mode} closes: <= 16 bytes/event on disk"),
            "value": bpe, "met": bpe <= 16.0}),
        );
        let rss = d["maxrss_mib"]["max"].as_f64().unwrap_or(f64::MAX);
        checks.push(
            json!({"target": format!("{mode} closes: recorder RSS < 64 MiB"),
            "value": rss, "met": rss < 64.0}),
        );
    }
    if let Some(large) = replay.get("large") {
        let rate = large["modes"]["verdict"]["events_per_cpu_s"]["median"]
            .as_f64()
            .unwrap_or(0.0);
        checks.push(
            json!({"target": "replay (verdict) >= 5 M events/s on one core",
            "value": rate, "met": rate >= 5e6}),
        );
        if let (Some(one), Some(two)) = (
            large["modes"]["verdict"]["maxrss_mib"]["median"].as_f64(),
            replay["double"]["modes"]["verdict"]["maxrss_mib"]["median"].as_f64(),
        ) {
            checks.push(json!({"target": "replay memory bounded by open connections: a trace twice as long at the same rate needs < 1.2x the RSS",
                "value": format!("{one:.1} MiB -> {two:.1} MiB"), "met": two < 1.2 * one}));
        }
    }
    Value::Array(checks)
}

// ---------------------------------------------------------------------------------

fn build(args: &BenchArgs) -> anyhow::Result<()> {
    if args.no_build {
        return Ok(());
    }
    // The same tools as the tests (bpf-linker, bpftool for the kernel-cost pass).
    setup(&SetupArgs { zookeeper: false })?;
    build_tcpchurn()?;
    build_test_binaries(&["tcpchurn-churn", "tcpchurn-trace-tool"])
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[expect(
    clippy::too_many_lines,
    reason = "the benchmark's script, top to bottom"
)]
pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    if !is_root() {
        bail!(
            "the benchmark needs root: it loads eBPF programs, creates network namespaces \
             and reads other processes' CPU time; run `cargo xtask bench` as root"
        );
    }
    let quick;
    let args = if args.quick {
        quick = BenchArgs {
            duration: 2.0,
            reps: 2,
            pairs: args.pairs,
            close: args.close.clone(),
            alt_args: args.alt_args.clone(),
            no_peers: args.no_peers,
            replay_events: 7_000_000,
            replay_reps: 1,
            no_kernel_cost: args.no_kernel_cost,
            quick: true,
            no_build: args.no_build,
        };
        &quick
    } else {
        args
    };
    for mode in &args.close {
        if mode != "client" && mode != "server" {
            bail!("--close takes client and/or server, not {mode:?}");
        }
    }
    build(args)?;
    catch_interrupts()?;
    let root = workspace_root();
    let release = root.join("target/release");
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let bpftrace = which("bpftrace");
    let paths = Paths {
        tcpchurn: release.join("tcpchurn"),
        churn: release.join("tcpchurn-churn"),
        trace_tool: release.join("tcpchurn-trace-tool"),
        out_dir: out_dir.clone(),
        bpftrace: bpftrace.clone(),
    };

    let ncpu = cpus();
    let (load_start, load_text) = loadavg();
    let kernel = output("uname", &["-r"])
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!("bench: kernel {kernel}, {ncpu} CPUs, load average {load_text}");
    let busy = load_start > 0.5 * ncpu as f64;
    if busy {
        eprintln!(
            "bench: WARNING: the machine is busy (load {load_start:.2} on {ncpu} CPUs): \
             absolute conn/s will be low and noisy; ratios stay meaningful because every \
             round runs all variants back to back"
        );
    }

    let mut variants = vec![
        Variant {
            name: "untraced".into(),
            kind: Kind::Untraced,
            command: "tcpchurn-churn alone".into(),
        },
        Variant {
            name: "tcpchurn-defaults".into(),
            kind: Kind::Tcpchurn(Vec::new()),
            command: "tcpchurn record -o FILE --netns NS".into(),
        },
    ];
    if !args.alt_args.trim().is_empty() {
        variants.push(Variant {
            name: "tcpchurn-alt".into(),
            kind: Kind::Tcpchurn(
                args.alt_args
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            ),
            command: format!("tcpchurn record -o FILE --netns NS {}", args.alt_args),
        });
    }
    let mut skipped = Vec::new();
    if args.no_peers {
        skipped.push("tcpstates and bpftrace (--no-peers)".to_owned());
    } else {
        if Path::new(TCPSTATES).is_file() {
            variants.push(Variant {
                name: "tcpstates".into(),
                kind: Kind::Tcpstates,
                command: format!("{TCPSTATES} > FILE (all namespaces; stopped with SIGINT)"),
            });
        } else {
            skipped.push(format!(
                "tcpstates: {TCPSTATES} is not installed (libbpf-tools)"
            ));
        }
        if bpftrace.is_some() {
            variants.push(Variant {
                name: "bpftrace-count".into(),
                kind: Kind::Bpftrace,
                command:
                    "bpftrace -o FILE: inet_sock_set_state, TCP, our ports, count() in the kernel"
                        .into(),
            });
        } else {
            skipped.push("bpftrace: not installed".to_owned());
        }
    }
    for s in &skipped {
        eprintln!("bench: skipping {s}");
    }

    let mut bench = Bench {
        args,
        paths,
        netns_counter: 0,
    };
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    // 1. Validation on a small run.
    let mut validation = Vec::new();
    for mode in &args.close {
        let v = validate(&mut bench, mode)?;
        eprintln!(
            "bench: validation ({mode} closes): {} connections, {} expected transitions, {} replayed, sequences {} -> {}",
            v["connections"],
            v["expected_transitions"],
            v["replayed_transitions"],
            v["sequences"],
            if v["ok"] == true { "ok" } else { "MISMATCH" }
        );
        validation.push(v);
    }

    // 2. Rounds: untraced, then each traced variant followed by an untraced run, so
    // that every traced run is compared with the untraced runs right before and after
    // it; the order of the traced variants rotates every round.
    let mut runs: Vec<RunOut> = Vec::new();
    let untraced = &variants[0];
    let traced: Vec<&Variant> = variants[1..].iter().collect();
    let per_round = 2 * traced.len() + 1;
    let total = args.close.len() * args.reps as usize * per_round;
    let mut done = 0;
    let warmup = Variant {
        name: "warmup".into(),
        kind: Kind::Untraced,
        command: String::new(),
    };
    for mode in &args.close {
        let _warm = bench.run(&warmup, mode, 1.0, false)?;
        for round in 0..args.reps {
            let n = traced.len();
            let mut order = vec![untraced];
            for k in 0..n {
                order.push(traced[(k + round as usize) % n]);
                order.push(untraced);
            }
            for variant in order {
                done += 1;
                let (churn, tracer) = bench
                    .run(variant, mode, args.duration, false)
                    .with_context(|| format!("{} ({mode} closes, round {round})", variant.name))?;
                eprintln!(
                    "bench: [{done}/{total}] {mode} closes, round {round}, {:<18} {:>8.0} conn/s{}{}",
                    variant.name,
                    churn.conn_per_s,
                    if churn.foreign_tracers > 0 {
                        format!(" (+{} foreign tracing programs)", churn.foreign_tracers)
                    } else {
                        String::new()
                    },
                    tracer.as_ref().map_or(String::new(), |t| format!(
                        ", {} of {} events, {} lost, CPU {:.2} s, RSS {:.1} MiB, {:.2} B/event",
                        t.recorded,
                        churn.expected,
                        t.lost,
                        t.cpu_churn_s,
                        t.maxrss_kib as f64 / 1024.0,
                        bytes_per_event(t)
                    ))
                );
                runs.push(RunOut {
                    variant: variant.name.clone(),
                    mode: mode.clone(),
                    round,
                    seq: runs.len(),
                    churn,
                    tracer,
                });
            }
        }
    }

    // 3. Kernel cost per program: three runs per tracer, the run with the median
    // total cost per event is reported (other users' load makes single runs jumpy).
    let mut kernel_cost = serde_json::Map::new();
    if !args.no_kernel_cost {
        let _stats = BpfStats::enable()?;
        for variant in variants
            .iter()
            .filter(|v| !matches!(v.kind, Kind::Untraced))
        {
            let mode = args.close.first().map_or("client", String::as_str);
            let mut samples = Vec::new();
            for _ in 0..KERNEL_COST_RUNS {
                let (_churn, tracer) = bench.run(variant, mode, args.duration, true)?;
                let Some(tracer) = tracer else { continue };
                let events = tracer.recorded.max(1);
                let total_ns: u64 = tracer.programs.iter().map(|p| p.run_time_ns).sum();
                samples.push((total_ns as f64 / events as f64, tracer));
            }
            samples.sort_by(|a, b| a.0.total_cmp(&b.0));
            let all: Vec<f64> = samples.iter().map(|(ns, _)| *ns).collect();
            let Some((ns_per_event, tracer)) = samples.get(samples.len() / 2) else {
                continue;
            };
            let events = tracer.recorded.max(1);
            let programs: Vec<Value> = tracer
                .programs
                .iter()
                .filter(|p| p.run_cnt > 0)
                .map(|p| {
                    json!({
                        "name": p.name,
                        "run_cnt": p.run_cnt,
                        "run_time_ns": p.run_time_ns,
                        "ns_per_run": p.run_time_ns as f64 / p.run_cnt as f64,
                        "ns_per_event": p.run_time_ns as f64 / events as f64,
                    })
                })
                .collect();
            kernel_cost.insert(
                variant.name.clone(),
                json!({
                    "events": tracer.recorded,
                    "ns_per_event": ns_per_event,
                    "ns_per_event_runs": spread_json(&all),
                    "programs": programs,
                }),
            );
        }
    }
    let kernel_cost = Value::Object(kernel_cost);

    // 4. Replay.
    let replay = if args.replay_events > 0 {
        replay_bench(&bench.paths, args.replay_events, args.replay_reps.max(1))?
    } else {
        Value::Null
    };

    let (load_end, load_end_text) = loadavg();
    let summary = summarize(&runs, &variants, &args.close);
    let checks = targets(&summary, &replay);

    println!();
    println!(
        "tcpchurn bench: kernel {kernel}, {ncpu} CPUs, {} pairs, {} s per run, {} rounds; load average {load_text} at start, {load_end_text} at end{}",
        args.pairs,
        args.duration,
        args.reps,
        if busy || load_end > 0.5 * ncpu as f64 {
            " (machine busy: compare ratios, not absolute rates)"
        } else {
            ""
        }
    );
    let polluted = runs.iter().filter(|r| r.churn.foreign_tracers > 0).count();
    if polluted > 0 {
        println!(
            "note: {polluted} of {} runs had other users' tracing BPF programs loaded (recorders, tests): \
             they tax the churn in every variant of those rounds, which compresses the ratios",
            runs.len()
        );
    }
    for v in &validation {
        println!(
            "validation ({} closes): {} connections -> {} transitions expected, {} replayed; per-connection sequences {}: {}",
            v["mode"].as_str().unwrap_or("?"),
            v["connections"],
            v["expected_transitions"],
            v["replayed_transitions"],
            v["sequences"],
            if v["ok"] == true { "ok" } else { "MISMATCH" }
        );
    }
    for s in &skipped {
        println!("skipped: {s}");
    }
    print_table(&summary, &variants);
    println!();
    print_cross_checks(&summary, &variants);
    if !kernel_cost
        .as_object()
        .is_none_or(serde_json::Map::is_empty)
    {
        print_kernel_cost(&kernel_cost);
    }
    if !replay.is_null() {
        print_replay(&replay);
    }
    println!();
    println!("targets:");
    let mut text = String::new();
    for c in checks.as_array().into_iter().flatten() {
        let _ok = writeln!(
            text,
            "  [{}] {} ({})",
            if c["met"] == true { "met" } else { "NOT MET" },
            c["target"].as_str().unwrap_or("?"),
            c["value"]
        );
    }
    print!("{text}");

    let document = json!({
        "tool": "cargo xtask bench",
        "started_unix": started_unix,
        "host": {
            "kernel": kernel,
            "cpus": ncpu,
            "loadavg_start": load_text,
            "loadavg_end": load_end_text,
            "busy": busy || load_end > 0.5 * ncpu as f64,
        },
        "config": {
            "duration_s": args.duration,
            "reps": args.reps,
            "pairs": args.pairs,
            "close": args.close,
            "alt_args": args.alt_args,
            "variants": variants.iter().map(|v| json!({"name": v.name, "command": v.command})).collect::<Vec<_>>(),
            "skipped": skipped,
        },
        "validation": validation,
        "runs_with_foreign_tracers": runs.iter().filter(|r| r.churn.foreign_tracers > 0).count(),
        "summary": summary,
        "kernel_cost": kernel_cost,
        "replay": replay,
        "targets": checks,
        "runs": runs.iter().map(RunOut::json).collect::<Vec<_>>(),
    });
    let path = out_dir.join(format!("bench-{started_unix}.json"));
    let text = serde_json::to_string_pretty(&document)?;
    std::fs::write(&path, &text)?;
    std::fs::write(out_dir.join("latest.json"), &text)?;
    println!();
    println!("results: {}", path.display());
    Ok(())
}
