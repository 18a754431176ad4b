//! `tcpchurn replay --follow FILE`: follows a trace that is still being written, like
//! `tail -f`, and into the next file when the recorder rotates (the end block names
//! it; it is looked for beside FILE). Prints the verdict every `--interval` (the text
//! blocks of `record --live`, or a JSON document per line), or with `--events` each
//! event as it lands. Ends with the recording (the last verdict is a replay's) or with
//! Ctrl-C (the verdict as of then). Needs only read access to the files.

use std::{
    fs::File,
    io::{self, BufReader, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    analysis::{Analysis, AnalyzerOptions, LiveVerdict, LoopRule, TraceInfo, Trend},
    model::{HostId, duration_ns},
    render::{
        live::{Live, Status, plain::write_plain},
        style::Style,
        verdict_json,
    },
    replay::{ReplayOptions, events::EventPrinter, file},
    trace::{
        TraceEnd,
        follow::{Followed, Follower, Parts},
    },
};

/// How often the files are looked at when nothing new was there.
const POLL: Duration = Duration::from_millis(100);

/// The files of a rotated recording, beside the first.
struct Beside {
    dir: PathBuf,
}

impl Parts for Beside {
    type Input = BufReader<File>;

    fn next(&mut self, end: &TraceEnd) -> io::Result<Option<Self::Input>> {
        // Only a name: the recorder's directory may be another, and a file must not
        // send the reader elsewhere.
        let Some(name) = end
            .next_part
            .as_deref()
            .and_then(|p| Path::new(p).file_name())
        else {
            return Ok(None);
        };
        match File::open(self.dir.join(name)) {
            Ok(file) => Ok(Some(BufReader::with_capacity(1 << 20, file))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// Set by the first Ctrl-C (or SIGTERM); a second one exits at once.
fn interrupted() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered now, before any output: a Ctrl-C from here on is caught.
    let (mut interrupt, mut terminate) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let set = Arc::clone(&flag);
    std::thread::Builder::new()
        .name("tcpchurn-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                    if set.swap(true, Ordering::SeqCst) {
                        std::process::exit(130);
                    }
                }
            });
        })?;
    Ok(flag)
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Follows `options.file` until the recording ends or Ctrl-C.
pub fn follow(
    options: &ReplayOptions,
    interval: Duration,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let [path] = options.files.as_slice() else {
        anyhow::bail!("--follow follows one trace file (its rotated parts are followed too)");
    };
    let file = File::open(path).with_context(|| path.display().to_string())?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        anyhow::bail!("{}: is a directory", path.display());
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut follower = Follower::new(BufReader::with_capacity(1 << 20, file), Beside { dir });
    let stop = interrupted().context("installing the Ctrl-C handler")?;
    let result = if options.events {
        follow_events(&mut follower, options, &stop, out)
    } else {
        follow_verdict(&mut follower, options, interval, &stop, out)
    };
    result.with_context(|| path.display().to_string())
}

/// Waits a little before looking again; false once interrupted.
fn wait(stop: &AtomicBool, out: &mut impl Write) -> io::Result<bool> {
    out.flush()?;
    if stop.load(Ordering::SeqCst) {
        return Ok(false);
    }
    std::thread::sleep(POLL);
    Ok(!stop.load(Ordering::SeqCst))
}

fn follow_events(
    follower: &mut Follower<Beside>,
    options: &ReplayOptions,
    stop: &AtomicBool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut printer: Option<(EventPrinter<'_>, String)> = None;
    loop {
        match follower.poll()? {
            Followed::Event(event) => {
                if let Some((printer, host)) = &mut printer {
                    let names = follower.take_workloads();
                    printer.learn(names.into_iter().map(|table| (HostId::FIRST, table)));
                    if !printer.print(out, &event, host)? {
                        break;
                    }
                }
            }
            // The header once, from the first file's meta.
            Followed::Opened => {
                if printer.is_none()
                    && let Some(meta) = follower.meta()
                {
                    let first = EventPrinter::new(options, meta.start_unix_ns, false);
                    first.header(out, &file::meta_header(meta))?;
                    printer = Some((first, meta.hostname.clone()));
                }
            }
            Followed::Pending => {
                if !wait(stop, out)? {
                    break;
                }
            }
            Followed::Ended => break,
        }
    }
    Ok(out.flush()?)
}

/// The analysis of the files followed, and how to print it.
struct Verdicts<'a> {
    options: &'a ReplayOptions,
    verdict: Option<LiveVerdict>,
    trend: Trend,
}

impl Verdicts<'_> {
    fn print(
        &mut self,
        out: &mut impl Write,
        follower: &Follower<Beside>,
        (trace, analysis): (TraceInfo, Analysis),
        recording: bool,
    ) -> io::Result<()> {
        if self.options.json {
            verdict_json::write_json(out, &trace, &analysis, &LoopRule::default(), false)?;
            return out.flush();
        }
        let live = Live {
            pulse: self.trend.update(&analysis),
            trace,
            analysis,
            status: Status {
                recording,
                bytes: follower.bytes_read(),
                files: follower.files(),
                discarded: false,
                skipped_records: 0,
            },
        };
        write_plain(out, &live, Style::default())
    }

    /// As of now (`None` before the first file's meta block).
    fn now(&self, follower: &Follower<Beside>) -> Option<(TraceInfo, Analysis)> {
        let meta = follower.meta()?;
        let verdict = self.verdict.as_ref()?;
        Some(verdict.now(meta, &follower.damage(), unix_now_ns()))
    }
}

fn follow_verdict(
    follower: &mut Follower<Beside>,
    options: &ReplayOptions,
    interval: Duration,
    stop: &AtomicBool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut verdicts = Verdicts {
        options,
        verdict: Some(LiveVerdict::new(
            options
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            AnalyzerOptions {
                filter: options.filter,
                window: options.window,
                close_wait_ns: duration_ns(options.close_wait),
                ..AnalyzerOptions::default()
            },
        )),
        trend: Trend::default(),
    };
    let mut next = Instant::now() + interval;
    loop {
        match follower.poll()? {
            Followed::Event(event) => {
                if options.window.is_past_reading(event.ts_ns()) {
                    continue;
                }
                if let Some(verdict) = &mut verdicts.verdict {
                    verdict.learn(follower.take_workloads());
                    verdict.on_event(&event);
                }
            }
            Followed::Opened => {}
            Followed::Pending => {
                if Instant::now() >= next {
                    if let Some(now) = verdicts.now(follower) {
                        verdicts.print(out, follower, now, true)?;
                    }
                    next = Instant::now() + interval;
                }
                if !wait(stop, out)? {
                    // Interrupted: the verdict as of now, once more.
                    if let Some(now) = verdicts.now(follower) {
                        verdicts.print(out, follower, now, true)?;
                    }
                    return Ok(());
                }
            }
            Followed::Ended => break,
        }
    }
    let (Some(meta), Some(verdict)) = (follower.meta().cloned(), verdicts.verdict.take()) else {
        return Ok(());
    };
    let last = verdict.finish(&meta, follower.end(), &follower.damage());
    verdicts.print(out, follower, last, false)?;
    Ok(())
}
