//! The tracers of the traced variants: started in front of a run's churn, stopped
//! after it (SIGINT: the peer tools flush only then).

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::bail;
use tcpchurn_harness::{Netns, Process, Recorder, Spawn, interrupt::sleep, procfs};

pub use super::tracer_output::{During, ProgStat, TracerOut};
use super::{
    load::PORT_BASE,
    peak_rss::PeakRss,
    tools::{TCPSTATES, Tools},
    tracer_output::{read_bpftrace, read_tcpstates, read_trace},
    variants::Kind,
};

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
            Kind::Tcpchurn {
                binary,
                args: extra,
            } => {
                let trace = tools.out_dir.join("run.trace");
                let mut args = netns.netns_args();
                args.extend_from_slice(extra);
                let binary = binary.as_deref().unwrap_or(&tools.tcpchurn);
                let recorder = Recorder::start(binary, &trace, &args)?;
                (Running::Recorder(recorder), Output::Trace(trace))
            }
            Kind::Tcpstates => {
                let out = tools.out_dir.join("tcpstates.out");
                let err = tools.out_dir.join("tcpstates.err");
                let spawn = Spawn::new("tcpstates", Command::new(TCPSTATES))
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
        // Per kernel event: a reset workload's resets and socket errors are events too,
        // not only its transitions.
        let records = detail
            .as_ref()
            .map_or(recorded, |d| d.kernel_events_in_file);
        Ok(TracerOut {
            recorded,
            lost,
            cpu_churn_s: during.cpu_s,
            cpu_total_s: self.cpu_total_s,
            maxrss_kib: self.maxrss_kib,
            bytes,
            bytes_per_event: (records > 0).then(|| bytes as f64 / records as f64),
            detail,
            programs: during.programs,
        })
    }
}
