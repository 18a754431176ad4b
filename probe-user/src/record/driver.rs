//! The recording loop: attach and start the file, then drain the ring buffer, account
//! losses, flush and rotate until a signal or the duration stops it; then detach,
//! drain what is left, take the end snapshot and close the file.

use std::{
    io::{self, Write as _},
    sync::Arc,
    time::Instant,
};

use anyhow::Context as _;
use log::warn;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{Notify, watch},
    time::{Interval, MissedTickBehavior},
};

use crate::{
    kernel::{
        capabilities, diag,
        host::{self, monotonic_now},
        offsets::KernelBtf,
        probe::{EventRing, KernelProbe},
        tracefs::Tracefs,
    },
    model::RecordSummary,
    record::{
        files::OutputDir,
        header::Header,
        names::Names,
        options::RecordOptions,
        privileges,
        recording::{ApartBlocks, Recording},
        selection::Selection,
        sink::Output,
        tee::Tee,
    },
    workload::resolver::Resolver,
};

/// What else a recording answers to: the live views' copy of what is written, and
/// their request to stop (the live screen's `q`).
pub(super) struct Watched {
    pub tee: Option<Tee>,
    pub stop_request: Arc<Notify>,
}

/// Records until stopped (see [`crate::record::record`]): `btf` and `dir` are the
/// inputs and the output, already checked.
pub(super) async fn run(
    options: &RecordOptions,
    tracefs: &Tracefs,
    btf: &KernelBtf,
    dir: OutputDir,
    watched: Watched,
) -> anyhow::Result<RecordSummary> {
    let mut stop_rx = stop_signals().context("installing signal handlers")?;
    let mut recorder = Recorder::start(options, tracefs, btf, dir, watched.tee)?;
    let stop = recorder
        .run_until_stopped(&mut stop_rx, &watched.stop_request)
        .await;
    recorder.finish(&stop)
}

/// Why the main loop stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stop {
    Interrupted,
    Terminated,
    Duration,
    Error(String),
}

impl Stop {
    fn reason(&self) -> String {
        match self {
            Self::Interrupted => "interrupted".into(),
            Self::Terminated => "terminated".into(),
            Self::Duration => "duration".into(),
            Self::Error(e) => format!("error: {e}"),
        }
    }

    fn writer_stopped() -> Self {
        Self::Error("the trace writer stopped".into())
    }
}

/// Watches SIGINT and SIGTERM: the first stops the recording cleanly; a second one
/// exits at once (everything up to the last written block still replays).
fn stop_signals() -> io::Result<watch::Receiver<Option<Stop>>> {
    let (tx, rx) = watch::channel(None);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let stop = tokio::select! {
                _ = interrupt.recv() => Stop::Interrupted,
                _ = terminate.recv() => Stop::Terminated,
            };
            seen += 1;
            if seen > 1 {
                let _written = writeln!(
                    io::stderr(),
                    "tcpchurn: second signal, exiting now; the trace is cut at its last block"
                );
                std::process::exit(130);
            }
            let _sent = tx.send(Some(stop));
        }
    });
    Ok(rx)
}

/// The recording with its names (from the node below `--host-root`) and, with
/// `--pod`/`--container`, its selection; warns when the selection matches nothing yet.
fn names_and_selection(options: &RecordOptions, recording: Recording) -> Recording {
    let mut names = Names::new(Resolver::new(&options.host_root));
    let selection = (!options.workloads.is_empty()).then(|| {
        let selection = Selection::new(options.workloads.clone());
        if !selection.matches_any_cgroup(names.resolver()) {
            warn!(
                "no running container matches --pod/--container yet; its sockets are \
                 recorded once one does"
            );
        }
        selection
    });
    recording.with_names(names, selection)
}

/// An interval whose missed ticks are delayed, not bunched up.
fn interval(period: std::time::Duration) -> Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// A recording in progress.
struct Recorder<'a> {
    options: &'a RecordOptions,
    probe: KernelProbe,
    ring: EventRing,
    recording: Recording,
    files: Files,
    started: Instant,
}

impl<'a> Recorder<'a> {
    /// Attaches, starts the first file, takes the start snapshot and gives up the
    /// privileges the rest does not need. Errors before attaching leave no kernel
    /// state and no file; the first file is created (or, with `--force`, replaced) only
    /// once attached.
    fn start(
        options: &'a RecordOptions,
        tracefs: &Tracefs,
        btf: &KernelBtf,
        dir: OutputDir,
        tee: Option<Tee>,
    ) -> anyhow::Result<Self> {
        let start = host::clock_pair();
        let started = Instant::now();
        let (probe, ring) = KernelProbe::load(tracefs, &options.probe_options(), btf)
            .context("attaching to the kernel")?;
        // On an error from here on, dropping the probe detaches it.
        let file = dir.create_first()?;
        let header = Header::new(options, &probe, btf, start);
        let output = Output::start(dir, file, options.rotate, &header.bytes(0, None), tee)
            .context("writing the trace header")?;
        let recording = Recording::new(probe.layouts, start.0, options.filters.clone());
        let mut recording = names_and_selection(options, recording);
        if options.snapshot {
            let snapshot = diag::snapshot(&options.filters.netns, true);
            for warning in &snapshot.warnings {
                warn!("snapshot: {warning}");
            }
            recording.start_snapshot(monotonic_now(), snapshot);
        }
        let keep = privileges::needed_after_start(
            options,
            output.dir().dir_path(),
            &host::uname().release,
        );
        if let Err(err) = capabilities::keep_only(keep) {
            warn!("giving up the capabilities no longer needed (all but {keep}): {err}");
        }
        // The line tests and scripts wait for: from here on, every transition is recorded.
        let _written = writeln!(
            io::stderr(),
            "tcpchurn: recording to {} (Ctrl-C to stop)",
            options.output.display()
        );
        Ok(Self {
            options,
            probe,
            ring,
            recording,
            files: Files {
                output,
                header,
                max_size: options.max_size,
                rotation_failed: false,
            },
            started,
        })
    }

    async fn run_until_stopped(
        &mut self,
        stop_rx: &mut watch::Receiver<Option<Stop>>,
        stop_request: &Notify,
    ) -> Stop {
        let mut poll = interval(self.options.poll_interval);
        let mut flush = interval(self.options.flush_interval);
        let deadline = self
            .options
            .duration
            .map(|d| tokio::time::Instant::now() + d);
        loop {
            let step = tokio::select! {
                changed = stop_rx.changed() => match changed {
                    Err(_) => Err(Stop::Error("signal handler stopped".into())),
                    Ok(()) => stop_rx.borrow().clone().map_or(Ok(()), Err),
                },
                () = stop_request.notified() => Err(Stop::Interrupted),
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => Err(Stop::Duration),
                woken = self.ring.drain_when_woken(|item| self.recording.ingest(item)) => {
                    woken.map_err(|err| Stop::Error(format!("polling the ring buffer: {err}")))
                }
                _ = poll.tick() => self.on_poll(),
                _ = flush.tick() => self.on_flush(),
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    /// Drains what the kernel did not wake the reader for. At full churn a flush
    /// interval holds hundreds of thousands of events: a full block is written now
    /// rather than let the encoder grow.
    fn on_poll(&mut self) -> Result<(), Stop> {
        self.ring.drain(|item| self.recording.ingest(item));
        if let Some(blocks) = self.recording.take_full_blocks() {
            if !self.files.output.send(blocks) {
                return Err(Stop::writer_stopped());
            }
            self.files.rotate_if_full(&mut self.recording)?;
        }
        Ok(())
    }

    /// Accounts the kernel's losses, writes everything pending, and rotates when the
    /// file is full.
    fn on_flush(&mut self) -> Result<(), Stop> {
        self.ring.drain(|item| self.recording.ingest(item));
        self.probe.flush_logs();
        match self.probe.counters() {
            Ok(counters) => self.recording.account(counters, monotonic_now()),
            Err(err) => warn!("{err}"),
        }
        if let Some(blocks) = self.recording.take_blocks()
            && !self.files.output.send(blocks)
        {
            return Err(Stop::writer_stopped());
        }
        if self.files.output.is_dead() {
            return Err(Stop::writer_stopped());
        }
        self.files.rotate_if_full(&mut self.recording)
    }

    /// Detaches, then records what the kernel had already submitted, the end snapshot
    /// and the end block.
    fn finish(self, stop: &Stop) -> anyhow::Result<RecordSummary> {
        let Self {
            options,
            probe,
            mut ring,
            mut recording,
            mut files,
            started,
        } = self;
        let counters = probe.detach().unwrap_or_default();
        ring.drain_all(|item| recording.ingest(item));
        let now = monotonic_now();
        recording.account(counters, now);
        if let Some(error) = recording.first_decode_error() {
            warn!(
                "some events could not be decoded (first error: {error}); they are marked as lost"
            );
        }
        let mut sent = recording
            .take_blocks()
            .is_none_or(|blocks| files.output.send(blocks));
        if sent && options.snapshot && !matches!(stop, Stop::Error(_)) {
            // Streamed: the end snapshot is the largest (TIME_WAIT of the last minute).
            let (apart, _unreadable) = diag::snapshot_streamed(&options.filters.netns, |sockets| {
                recording.end_snapshot(now, sockets)
            });
            sent = files.write_end_snapshot(&mut recording, apart, now)?;
        }
        let end = recording.end(now, &stop.reason(), files.output.sent());
        let (paths, bytes) = files.output.finish(sent.then_some(&end))?;
        if let Stop::Error(err) = stop {
            anyhow::bail!("{err}");
        }
        Ok(RecordSummary {
            stop_reason: end.stop_reason.clone(),
            files: paths,
            duration: started.elapsed(),
            records: recording.records(),
            transitions: recording.transitions(),
            connections: end.connections,
            lost: end.losses(),
            bytes,
        })
    }
}

/// The files of a recording in progress, and when to go on in the next one.
struct Files {
    output: Output,
    header: Header,
    max_size: Option<u64>,
    /// The next file could not be created: the recording goes on in the current one.
    rotation_failed: bool,
}

impl Files {
    fn rotate_if_full(&mut self, recording: &mut Recording) -> Result<(), Stop> {
        match self.max_size {
            Some(max) if self.output.sent() >= max && !self.rotation_failed => self
                .rotate(recording, monotonic_now())
                .map_err(|err| Stop::Error(crate::errors::one_line(&err))),
            _ => Ok(()),
        }
    }

    /// Finishes the current file and continues in the next one, which starts with the
    /// connections still open so that it replays on its own. A name someone else took
    /// is stepped over; if no file can be created, the recording goes on in the current
    /// one. Both are said on stderr.
    fn rotate(&mut self, recording: &mut Recording, now: u64) -> anyhow::Result<()> {
        let current = self.output.current_path().to_path_buf();
        let next = match self.output.create_next() {
            Ok(next) => next,
            Err(err) => {
                warn!(
                    "{err}: no further file is started; the recording goes on in {}",
                    current.display()
                );
                self.rotation_failed = true;
                return Ok(());
            }
        };
        for taken in &next.taken {
            warn!(
                "{} exists and was not created by this recording: it is left alone, the \
                 recording goes on in {}",
                taken.display(),
                next.path.display()
            );
        }
        let end = recording.end(now, "rotated", self.output.sent());
        let header = self.header.bytes(self.output.part() + 1, Some(&current));
        self.output.rotate(next, end, &header)?;
        recording.start_part(now);
        Ok(())
    }

    /// Writes the end snapshot. It is never split (a replay compares it whole with what
    /// the trace says): when it does not fit in the current file, a new file starts
    /// first; a snapshot larger than `--max-size` on its own is written whole, and said.
    /// False once the writer has stopped.
    fn write_end_snapshot(
        &mut self,
        recording: &mut Recording,
        apart: ApartBlocks,
        now: u64,
    ) -> anyhow::Result<bool> {
        if apart.is_empty() {
            return Ok(true);
        }
        if let Some(max) = self.max_size
            && self.output.sent() + apart.len() > max
            && !recording.part_is_fresh()
            && !self.rotation_failed
        {
            self.rotate(recording, now)?;
            if let Some(blocks) = recording.take_blocks()
                && !self.output.send(blocks)
            {
                return Ok(false);
            }
        }
        let size = apart.len();
        let sent = self.output.send(recording.commit_apart(apart));
        if let Some(max) = self.max_size
            && self.output.sent() > max
        {
            warn!(
                "the end snapshot ({size} bytes) does not fit in --max-size {max}: {} holds it \
                 whole",
                self.output.current_path().display()
            );
        }
        Ok(sent)
    }
}
