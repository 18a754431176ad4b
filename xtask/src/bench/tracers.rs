//! The tracers of the traced variants: started in front of a run's churn, stopped
//! after it (SIGINT: the peer tools flush only then), and what each recorded.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tcpchurn_harness::{
    Netns, Process, Recorder, Spawn,
    interrupt::sleep,
    procfs,
    trace_stat::{self, TraceEndStat},
};

use super::{load::PORT_BASE, peak_rss::PeakRss, tools::Tools, variants::Kind};

/// CPU and run counts of one BPF program of a tracer (with `kernel.bpf_stats_enabled`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgStat {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// What a tracer produced in one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TracerOut {
    pub recorded: u64,
    pub lost: u64,
    /// CPU seconds of the tracer process while the churn ran.
    pub cpu_churn_s: f64,
    /// CPU seconds of the tracer process from start to exit.
    pub cpu_total_s: f64,
    pub maxrss_kib: u64,
    pub bytes: u64,
    /// Bytes on disk per recorded event (none when nothing was recorded).
    pub bytes_per_event: Option<f64>,
    /// tcpchurn only: the end block and the file's own accounting.
    pub detail: Option<RecordingDetail>,
    pub programs: Vec<ProgStat>,
}

/// What a tcpchurn trace holds, and whether the kernel's count agrees with the file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingDetail {
    pub records: u64,
    pub kinds: BTreeMap<String, u64>,
    pub patterns: BTreeMap<String, u64>,
    pub other_sequences: u64,
    pub end: Option<TraceEndStat>,
    /// Transitions, resets and socket errors in the file: what the kernel submitted.
    pub kernel_events_in_file: u64,
    /// The end block's `kernel_submitted` equals `kernel_events_in_file`.
    pub kernel_submitted_matches_file: bool,
    pub damage: Vec<String>,
}

/// What was measured while the churn ran.
pub struct During {
    pub cpu_s: f64,
    pub programs: Vec<ProgStat>,
}

/// Where a tracer writes.
enum Output {
    Trace(PathBuf),
    Tcpstates { out: PathBuf, err: PathBuf },
    Bpftrace(PathBuf),
}

enum Running {
    Recorder(Recorder),
    Tool(Process),
}

/// A tracer that is attached and running.
pub struct Tracer {
    running: Running,
    peak: PeakRss,
    output: Output,
}

/// A tracer that has exited.
pub struct Stopped {
    cpu_total_s: f64,
    maxrss_kib: u64,
    output: Output,
}

const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// A STOP of a peer tool: it may have several programs to detach and a file to flush.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until a peer tool holds a perf event or BPF link: its tracepoint is attached.
fn wait_attached(process: &mut Process) -> anyhow::Result<()> {
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    while !procfs::holds_attachment(process.pid()) {
        process.check_running()?;
        if Instant::now() > deadline {
            bail!("{} did not attach within 30 s", process.name());
        }
        sleep(Duration::from_millis(50))?;
    }
    // Attaching is not instantaneous for tools with several programs.
    sleep(Duration::from_millis(300))
}

impl Tracer {
    /// Starts the tracer of `kind` on the churn in `netns`, once attached; `None` for
    /// the untraced variant.
    pub fn start(
        kind: &Kind,
        tools: &Tools,
        netns: &Netns,
        pairs: u16,
    ) -> anyhow::Result<Option<Self>> {
        let (running, output) = match kind {
            Kind::Untraced => return Ok(None),
            Kind::Tcpchurn(extra) => {
                let trace = tools.out_dir.join("run.trace");
                let mut args = netns.netns_args();
                args.extend_from_slice(extra);
                let recorder = Recorder::start(&tools.tcpchurn, &trace, &args)?;
                (Running::Recorder(recorder), Output::Trace(trace))
            }
            Kind::Tcpstates => {
                let out = tools.out_dir.join("tcpstates.out");
                let err = tools.out_dir.join("tcpstates.err");
                let spawn = Spawn::new("tcpstates", Command::new(super::tools::TCPSTATES))
                    .stdout_to(&out)
                    .stderr_to(&err);
                (
                    Running::Tool(spawn.start()?),
                    Output::Tcpstates { out, err },
                )
            }
            Kind::Bpftrace(bpftrace) => {
                let out = tools.out_dir.join("bpftrace.out");
                let mut cmd = Command::new(bpftrace);
                cmd.arg("-o")
                    .arg(&out)
                    .args(["-e", &bpftrace_script(pairs)])
                    .env("BPFTRACE_NO_CPP_DEMANGLE", "1");
                let spawn = Spawn::new("bpftrace", cmd).quiet();
                (Running::Tool(spawn.start()?), Output::Bpftrace(out))
            }
        };
        let pid = match &running {
            Running::Recorder(recorder) => recorder.pid(),
            Running::Tool(process) => process.pid(),
        };
        let mut tracer = Self {
            running,
            peak: PeakRss::watch(pid),
            output,
        };
        if let Running::Tool(process) = &mut tracer.running {
            wait_attached(process)?;
        }
        Ok(Some(tracer))
    }

    pub fn pid(&self) -> u32 {
        match &self.running {
            Running::Recorder(recorder) => recorder.pid(),
            Running::Tool(process) => process.pid(),
        }
    }

    /// Stops the tracer with SIGINT and waits for it. The recorder must exit 0; the
    /// peer tools' exit status after SIGINT is their own convention, what they wrote
    /// is what counts.
    pub fn stop(self) -> anyhow::Result<Stopped> {
        let cpu_total_s = match self.running {
            Running::Recorder(recorder) => {
                let recording = recorder.stop_now()?;
                recording.ensure_success()?;
                recording.cpu_s
            }
            Running::Tool(mut process) => {
                process.signal(libc::SIGINT);
                process.wait_timeout(STOP_TIMEOUT)?.cpu_s
            }
        };
        Ok(Stopped {
            cpu_total_s,
            maxrss_kib: self.peak.kib(),
            output: self.output,
        })
    }
}

/// Counts our ports' TCP transitions in the kernel; nothing reaches userspace until
/// the end.
fn bpftrace_script(pairs: u16) -> String {
    let (lo, hi) = (PORT_BASE, PORT_BASE + pairs - 1);
    format!(
        "tracepoint:sock:inet_sock_set_state \
         /args->protocol == 6 && ((args->sport >= {lo} && args->sport <= {hi}) || \
         (args->dport >= {lo} && args->dport <= {hi}))/ {{ @transitions = count(); }}"
    )
}

impl Stopped {
    /// What the tracer recorded; its files are removed.
    pub fn read(self, tools: &Tools, ports: &[u16], during: During) -> anyhow::Result<TracerOut> {
        let (recorded, lost, bytes, detail) = match &self.output {
            Output::Trace(trace) => read_trace(tools, trace)?,
            Output::Tcpstates { out, err } => read_tcpstates(out, err, ports),
            Output::Bpftrace(out) => read_bpftrace(out),
        };
        Ok(TracerOut {
            recorded,
            lost,
            cpu_churn_s: during.cpu_s,
            cpu_total_s: self.cpu_total_s,
            maxrss_kib: self.maxrss_kib,
            bytes,
            bytes_per_event: (recorded > 0).then(|| bytes as f64 / recorded as f64),
            detail,
            programs: during.programs,
        })
    }
}

/// (recorded, lost, bytes, detail) of one run.
type Read = (u64, u64, u64, Option<RecordingDetail>);

fn read_trace(tools: &Tools, trace: &Path) -> anyhow::Result<Read> {
    let stat = trace_stat::stat(&tools.trace_tool, trace).context("tcpchurn-trace-tool stat")?;
    let _removed = std::fs::remove_file(trace);
    let lost = stat.lost_in_gaps + stat.end.as_ref().map_or(0, |e| e.lost_decode_failed);
    let kernel_events = stat.transitions
        + stat.kind("reset_sent")
        + stat.kind("reset_received")
        + stat.kind("socket_error");
    let detail = RecordingDetail {
        records: stat.records,
        kinds: stat.kinds,
        patterns: stat.patterns,
        other_sequences: stat.other_sequences,
        kernel_submitted_matches_file: stat
            .end
            .as_ref()
            .is_some_and(|e| e.kernel_submitted == kernel_events),
        end: stat.end,
        kernel_events_in_file: kernel_events,
        damage: stat.damage,
    };
    Ok((stat.transitions, lost, stat.bytes, Some(detail)))
}

fn read_tcpstates(out: &Path, err: &Path, ports: &[u16]) -> Read {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    // SKADDR C-PID C-COMM LADDR LPORT RADDR RPORT OLDSTATE -> NEWSTATE MS, counted from
    // the end (a comm may contain spaces).
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
    let errors = std::fs::read_to_string(err).unwrap_or_default();
    // libbpf-tools: "lost N events on CPU #C".
    let lost = errors
        .lines()
        .filter_map(|l| l.strip_prefix("lost "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let bytes = std::fs::metadata(out).map_or(0, |m| m.len());
    let _removed = std::fs::remove_file(out);
    (recorded, lost, bytes, None)
}

fn read_bpftrace(out: &Path) -> Read {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let recorded = text
        .lines()
        .filter_map(|l| l.strip_prefix("@transitions:"))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum();
    let bytes = std::fs::metadata(out).map_or(0, |m| m.len());
    let _removed = std::fs::remove_file(out);
    (recorded, 0, bytes, None)
}
