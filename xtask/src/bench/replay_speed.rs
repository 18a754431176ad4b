//! Replay speed: a synthetic trace written through the real trace writer, replayed as
//! the verdict, as `--events --json`, by the bare reader, and exported to Parquet
//! (`tcpchurn export`: event rows per second); events per CPU second and per wall
//! second, and peak RSS. A trace twice as long at the same rate shows
//! whether memory grows with the trace.

use std::{path::Path, process::Command, time::Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tcpchurn_harness::{
    Spawn,
    synth::{self, Synthesized},
};

use super::{peak_rss::PeakRss, stats::Spread, tools::Tools};

/// Events per second of trace time in the synthetic replay traces: 10,000 loopback
/// connections per second, so a 10-million-event trace spans 100 s, longer than the
/// 60 s a TIME_WAIT lasts.
const SYNTH_RATE: u64 = 100_000;

/// The two traces: the large one, and one twice as long (verdict only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplaySpeed {
    pub large: TraceSpeed,
    pub double: TraceSpeed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TraceSpeed {
    /// What the trace tool wrote.
    pub trace: Synthesized,
    pub events: u64,
    pub trace_seconds: f64,
    pub modes: ModeSpeeds,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModeSpeeds {
    /// `tcpchurn replay`.
    pub verdict: ModeSpeed,
    /// `tcpchurn replay --events --json > /dev/null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_json: Option<ModeSpeed>,
    /// The reader alone (`tcpchurn-trace-tool read`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader: Option<ModeSpeed>,
    /// `tcpchurn export -o DIR` (Parquet): an event row per event, plus a connection
    /// row per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ModeSpeed>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModeSpeed {
    pub events_per_cpu_s: Option<Spread>,
    pub events_per_wall_s: Option<Spread>,
    pub maxrss_mib: Option<Spread>,
}

/// One replay's wall time, CPU time and peak RSS.
struct Measured {
    wall_s: f64,
    cpu_s: f64,
    maxrss_kib: u64,
}

/// Runs a replay to its end, output to /dev/null.
fn measure(cmd: Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut process = Spawn::new("a replay", cmd).quiet().start()?;
    let peak = PeakRss::watch(process.pid());
    let exit = process.wait()?;
    let wall_s = started.elapsed().as_secs_f64();
    let maxrss_kib = peak.kib();
    if !exit.status.success() {
        bail!("{} exited with {}", process.name(), exit.status);
    }
    Ok(Measured {
        wall_s,
        cpu_s: exit.cpu_s,
        maxrss_kib,
    })
}

/// Which program a mode runs.
#[derive(Clone, Copy)]
enum Mode {
    Verdict,
    EventsJson,
    Reader,
    Export,
}

impl Mode {
    fn command(self, tools: &Tools, trace: &Path) -> Command {
        let mut cmd = match self {
            Self::Verdict => {
                let mut c = Command::new(&tools.tcpchurn);
                c.arg("replay");
                c
            }
            Self::EventsJson => {
                let mut c = Command::new(&tools.tcpchurn);
                c.args(["replay", "--events", "--json"]);
                c
            }
            Self::Reader => {
                let mut c = Command::new(&tools.trace_tool);
                c.arg("read");
                c
            }
            Self::Export => {
                let mut c = Command::new(&tools.tcpchurn);
                c.args(["export", "--force", "-o"])
                    .arg(tools.out_dir.join("export"));
                c
            }
        };
        cmd.arg(trace);
        cmd
    }
}

/// `reps` replays of `trace` in one mode.
fn mode_speed(
    tools: &Tools,
    trace: &Path,
    records: u64,
    mode: Mode,
    reps: u32,
) -> anyhow::Result<ModeSpeed> {
    let mut runs = Vec::new();
    for _ in 0..reps {
        runs.push(measure(mode.command(tools, trace))?);
    }
    let records = records as f64;
    Ok(ModeSpeed {
        events_per_cpu_s: Spread::of(runs.iter().map(|m| records / m.cpu_s)),
        events_per_wall_s: Spread::of(runs.iter().map(|m| records / m.wall_s)),
        maxrss_mib: Spread::of(runs.iter().map(|m| m.maxrss_kib as f64 / 1024.0)),
    })
}

/// Writes a synthetic trace of `events` events and replays it in the verdict mode,
/// and in every mode if `all_modes`.
fn trace_speed(
    tools: &Tools,
    events: u64,
    reps: u32,
    all_modes: bool,
) -> anyhow::Result<TraceSpeed> {
    eprintln!("bench: replay: writing a synthetic trace of {events} events");
    let file = tools.out_dir.join(format!("synthetic-{events}.trace"));
    let written = synth::write(&tools.trace_tool, &file, events, SYNTH_RATE)?;
    let records = written.records;
    let speed = |mode| mode_speed(tools, &file, records, mode, reps);
    let modes = ModeSpeeds {
        verdict: speed(Mode::Verdict)?,
        events_json: all_modes.then(|| speed(Mode::EventsJson)).transpose()?,
        reader: all_modes.then(|| speed(Mode::Reader)).transpose()?,
        export: all_modes.then(|| speed(Mode::Export)).transpose()?,
    };
    let _removed = std::fs::remove_file(&file);
    let _removed = std::fs::remove_dir_all(tools.out_dir.join("export"));
    Ok(TraceSpeed {
        trace: written,
        events: records,
        trace_seconds: records as f64 / SYNTH_RATE as f64,
        modes,
    })
}

/// Replay speed on a large synthetic trace, and peak RSS on it and on a trace twice as
/// long at the same rate: once the trace is longer than the TIME_WAIT window, what a
/// replay holds (open connections, TIME_WAIT of the last 60 s, per-pair aggregates)
/// no longer depends on its length.
pub fn replay_speed(tools: &Tools, events: u64, reps: u32) -> anyhow::Result<ReplaySpeed> {
    Ok(ReplaySpeed {
        large: trace_speed(tools, events, reps, true)?,
        double: trace_speed(tools, 2 * events, 1, false)?,
    })
}
