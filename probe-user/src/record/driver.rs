//! The recording loop: attach and start the file, then drain the ring buffer, account
//! losses, flush and rotate until a signal or the duration stops it; then detach,
//! drain what is left, take the end snapshot and close the file.

use std::{
    io::{self, Write as _},
    time::Instant,
};

use anyhow::Context as _;
use log::warn;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
    time::{Interval, MissedTickBehavior},
};

use crate::{
    kernel::{
        diag,
        host::{self, monotonic_now},
        offsets::KernelBtf,
        probe::{EventRing, KernelProbe},
        tracefs::Tracefs,
    },
    model::RecordSummary,
    record::{
        header::Header,
        options::RecordOptions,
        recording::Recording,
        sink::{self, Output},
    },
};

/// Records until stopped (see [`crate::record::record`]).
pub(super) async fn run(
    options: &RecordOptions,
    tracefs: &Tracefs,
) -> anyhow::Result<RecordSummary> {
    let mut stop_rx = stop_signals().context("installing signal handlers")?;
    let mut recorder = Recorder::start(options, tracefs)?;
    let stop = recorder.run_until_stopped(&mut stop_rx).await;
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
    header: Header,
    output: Output,
    started: Instant,
}

impl<'a> Recorder<'a> {
    /// Attaches, starts the first file and takes the start snapshot. Errors before
    /// attaching leave no kernel state and no file.
    fn start(options: &'a RecordOptions, tracefs: &Tracefs) -> anyhow::Result<Self> {
        let btf = KernelBtf::read(&options.btf);
        for missing in &btf.info.missing {
            warn!("{missing}");
        }
        if !options.filters.netns.is_empty() && !btf.info.netns {
            anyhow::bail!(
                "--netns needs each socket's network namespace, which needs kernel BTF ({} could \
                 not be used); record without --netns, or pass --btf FILE",
                options.btf.display()
            );
        }
        let file = sink::create_output(&options.output, options.force)?;
        let start = host::clock_pair();
        let started = Instant::now();
        let (probe, ring) = match KernelProbe::load(tracefs, &options.probe_options(), &btf) {
            Ok(loaded) => loaded,
            Err(err) => {
                drop(file);
                let _removed = std::fs::remove_file(&options.output);
                return Err(err).context("attaching to the kernel");
            }
        };
        let header = Header::new(options, &probe, &btf, start);
        let output = Output::start(file, &options.output, options.rotate, &header.bytes(0))
            .context("writing the trace header")?;
        let mut recording = Recording::new(probe.layouts, start.0, options.filters.clone());
        if options.snapshot {
            let snapshot = diag::snapshot(&options.filters.netns, true);
            for warning in &snapshot.warnings {
                warn!("snapshot: {warning}");
            }
            recording.snapshot(monotonic_now(), snapshot.sockets, false);
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
            header,
            output,
            started,
        })
    }

    async fn run_until_stopped(&mut self, stop_rx: &mut watch::Receiver<Option<Stop>>) -> Stop {
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
        if let Some(blocks) = self.recording.take_full_blocks()
            && !self.output.send(blocks)
        {
            return Err(Stop::writer_stopped());
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
            && !self.output.send(blocks)
        {
            return Err(Stop::writer_stopped());
        }
        if self.output.is_dead() {
            return Err(Stop::writer_stopped());
        }
        if let Some(max) = self.options.max_size
            && self.output.sent() >= max
        {
            self.rotate()
                .map_err(|err| Stop::Error(format!("{err:#}")))?;
        }
        Ok(())
    }

    /// Finishes the current file and continues in the next one, which starts with the
    /// connections still open so that it replays on its own.
    fn rotate(&mut self) -> anyhow::Result<()> {
        let next = self.output.next_path();
        let file = sink::create_output(&next, true)?;
        let mut end = self
            .recording
            .end(monotonic_now(), "rotated", self.output.sent());
        end.next_part = Some(next.display().to_string());
        let header = self.header.bytes(self.output.index() + 1);
        self.output.rotate(file, &end, &header)?;
        self.recording.start_part(monotonic_now());
        Ok(())
    }

    /// Detaches, then records what the kernel had already submitted, the end snapshot
    /// and the end block.
    fn finish(self, stop: &Stop) -> anyhow::Result<RecordSummary> {
        let Self {
            options,
            probe,
            mut ring,
            mut recording,
            mut output,
            started,
            ..
        } = self;
        let counters = probe.detach().unwrap_or_default();
        ring.drain(|item| recording.ingest(item));
        let now = monotonic_now();
        recording.account(counters, now);
        if options.snapshot && !matches!(stop, Stop::Error(_)) {
            // Streamed: the end snapshot is the largest (TIME_WAIT of the last minute).
            let ((), _unreadable) = diag::snapshot_streamed(&options.filters.netns, |sockets| {
                recording.snapshot(now, sockets, true);
            });
        }
        if let Some(error) = recording.first_decode_error() {
            warn!(
                "some events could not be decoded (first error: {error}); they are marked as lost"
            );
        }
        let sent = recording
            .take_blocks()
            .is_none_or(|blocks| output.send(blocks));
        let end = recording.end(now, &stop.reason(), output.sent());
        let (files, bytes) = output.finish(sent.then_some(&end))?;
        if let Stop::Error(err) = stop {
            anyhow::bail!("{err}");
        }
        Ok(RecordSummary {
            stop_reason: end.stop_reason.clone(),
            files,
            duration: started.elapsed(),
            records: recording.records(),
            transitions: recording.transitions(),
            connections: end.connections,
            lost: end.losses(),
            bytes,
        })
    }
}
