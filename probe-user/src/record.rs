//! `tcpchurn record`: attach, stream the ring buffer into a trace file, stop cleanly.
//!
//! Threads: the tokio current-thread runtime drains the ring buffer and encodes
//! blocks; a writer thread does the file I/O (write + fdatasync per block), so a slow
//! disk never stalls the reader. If the disk falls behind, the channel fills, the
//! reader waits, the ring fills and the kernel counts the loss: nothing is dropped
//! silently and memory stays bounded.

use std::{
    fs::File,
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, SyncSender},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use log::warn;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};

use crate::{
    btf, decode, diag,
    kernel::{KernelCounters, KernelProbe, ProbeOptions},
    model::{Gap, GapCause, TraceEvent},
    preflight,
    sockets::{DiagSocket, SocketTable},
    trace::{Attribution, Filters, PartInfo, RecorderInfo, TraceEncoder, TraceEnd, TraceMeta},
    tracefs::{Layouts, Tracefs},
};

/// A block is written early, before the flush interval is up, once this many bytes of
/// records are pending: it bounds the recorder's memory at any event rate (a block is
/// held a few times over while it is encoded, framed, queued and written).
const BLOCK_TARGET_BYTES: usize = 1 << 20;

/// Everything `tcpchurn record` can be told.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub output: PathBuf,
    pub force: bool,
    pub duration: Option<Duration>,
    pub ports: Vec<u16>,
    /// Namespace inodes (already resolved).
    pub netns: Vec<u32>,
    pub ring_bytes: u32,
    pub flush_interval: Duration,
    pub poll_interval: Duration,
    /// Take `sock_diag` snapshots at start and end.
    pub snapshot: bool,
    /// Start a new file when this one reaches this size (bytes).
    pub max_size: Option<u64>,
    /// Keep at most this many files when rotating (oldest are removed).
    pub rotate: Option<u32>,
    /// Kernel BTF file for struct offsets.
    pub btf: PathBuf,
    /// Ring fill level that wakes the reader early (0: a quarter of the ring).
    pub wakeup_bytes: u64,
    /// Use the BTF-enabled raw tracepoint for state changes when kernel BTF allows it.
    pub tp_btf: bool,
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self {
            output: PathBuf::from("tcpchurn.trace"),
            force: false,
            duration: None,
            ports: Vec::new(),
            netns: Vec::new(),
            ring_bytes: 16 << 20,
            flush_interval: Duration::from_secs(1),
            poll_interval: Duration::from_millis(20),
            snapshot: true,
            max_size: None,
            rotate: None,
            btf: PathBuf::from(btf::VMLINUX),
            wakeup_bytes: 0,
            tp_btf: true,
        }
    }
}

/// What a recording produced; printed when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordSummary {
    pub files: Vec<PathBuf>,
    pub records: u64,
    pub transitions: u64,
    pub connections: u64,
    pub lost: u64,
    /// Of `lost`: the ring buffer was full.
    pub lost_ring_full: u64,
    /// Of `lost`: runs the kernel skipped while another BPF program was running.
    pub lost_recursion: u64,
    /// Of `lost`: transitions the kernel neither delivered nor counted (a lower bound).
    pub lost_unreported: u64,
    pub bytes: u64,
    pub duration: Duration,
    pub stop_reason: String,
    pub kernel_submitted: u64,
}

impl RecordSummary {
    pub fn render(&self, out: &mut impl io::Write) -> io::Result<()> {
        let secs = self.duration.as_secs_f64();
        let files: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        writeln!(out, "tcpchurn: recording stopped ({})", self.stop_reason)?;
        writeln!(out, "  file         {}", files.join(", "))?;
        writeln!(out, "  duration     {secs:.1} s")?;
        writeln!(
            out,
            "  events       {} ({} transitions)",
            self.records, self.transitions
        )?;
        writeln!(out, "  connections  {}", self.connections)?;
        if self.lost == 0 {
            writeln!(out, "  lost events  0")?;
        } else {
            let mut causes = Vec::new();
            if self.lost_ring_full > 0 {
                causes.push(format!(
                    "{} with the ring buffer full (try --ring-size)",
                    self.lost_ring_full
                ));
            }
            if self.lost_recursion > 0 {
                causes.push(format!(
                    "{} skipped by the kernel while another BPF program ran on the CPU",
                    self.lost_recursion
                ));
            }
            if self.lost_unreported > 0 {
                causes.push(format!(
                    "at least {} never reported by the kernel, inferred from broken state sequences",
                    self.lost_unreported
                ));
            }
            let other =
                self.lost - self.lost_ring_full - self.lost_recursion - self.lost_unreported;
            if other > 0 {
                causes.push(format!("{other} unreadable"));
            }
            writeln!(
                out,
                "  lost events  {} ({}); replay marks the gaps",
                self.lost,
                causes.join(", ")
            )?;
        }
        let per_event = if self.records > 0 {
            self.bytes as f64 / self.records as f64
        } else {
            0.0
        };
        writeln!(
            out,
            "  written      {} bytes ({per_event:.1} bytes/event)",
            self.bytes
        )
    }
}

/// Kernel CLOCK_MONOTONIC and the wall clock, read as close together as possible.
pub fn clock_pair() -> (u64, u64) {
    fn read(clock: libc::clockid_t) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the valid timespec.
        unsafe { libc::clock_gettime(clock, &raw mut ts) };
        u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(ts.tv_nsec).unwrap_or(0)
    }
    (0..3)
        .map(|_| {
            let before = read(libc::CLOCK_MONOTONIC);
            let wall = read(libc::CLOCK_REALTIME);
            let after = read(libc::CLOCK_MONOTONIC);
            (after - before, before + (after - before) / 2, wall)
        })
        .min_by_key(|(gap, _, _)| *gap)
        .map_or((0, 0), |(_, mono, wall)| (mono, wall))
}

pub fn monotonic_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

fn uname() -> (String, String, String) {
    // SAFETY: utsname is plain data and uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a utsname.
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return Default::default();
    }
    let field = |raw: &[libc::c_char]| {
        let bytes: Vec<u8> = raw
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (
        field(&uts.nodename),
        field(&uts.release),
        field(&uts.machine),
    )
}

/// The pure core of a recording: decodes ring-buffer entries, tracks sockets, turns
/// the kernel's loss counters into gaps, and encodes blocks.
#[derive(Debug)]
pub struct Recording {
    layouts: Layouts,
    table: SocketTable,
    encoder: TraceEncoder,
    start_monotonic_ns: u64,
    counters: KernelCounters,
    counters_at_ns: u64,
    decode_failed: u64,
    decode_failed_reported: u64,
    first_decode_error: Option<String>,
    transitions: u64,
    /// Records written before the current file (part) started.
    part_records_start: u64,
    /// Counted losses not yet matched to a chain break: a break they explain is not
    /// counted twice.
    counted_not_matched: u64,
    /// Transitions lost without a kernel count, inferred from chain breaks.
    unreported: u64,
}

/// A snapshot closes a block every this many sockets: encoded, a socket takes ~20
/// bytes; pending in the encoder, several times more.
const SNAPSHOT_BLOCK_RECORDS: usize = 16_384;

impl Recording {
    pub fn new(layouts: Layouts, start_monotonic_ns: u64, filters: Filters) -> Self {
        Self {
            layouts,
            table: SocketTable::new(start_monotonic_ns, filters),
            encoder: TraceEncoder::new(),
            start_monotonic_ns,
            counters: KernelCounters::default(),
            counters_at_ns: 0,
            decode_failed: 0,
            decode_failed_reported: 0,
            first_decode_error: None,
            transitions: 0,
            part_records_start: 0,
            counted_not_matched: 0,
            unreported: 0,
        }
    }

    fn push(&mut self, event: &TraceEvent) {
        if matches!(event, TraceEvent::Transition(_)) {
            self.transitions += 1;
        }
        self.encoder.push(event);
    }

    /// One ring-buffer entry.
    pub fn ingest(&mut self, bytes: &[u8]) {
        // Borrowed, not moved: a decoded event and a trace event are 144 bytes each,
        // and moving them costs a memcpy call per event.
        match &decode::decode(bytes, &self.layouts) {
            Ok(decoded) => {
                if let Some(event) = &self.table.observe(decoded) {
                    self.push(event);
                }
            }
            Err(err) => {
                self.decode_failed += 1;
                self.first_decode_error
                    .get_or_insert_with(|| err.to_string());
            }
        }
    }

    pub fn snapshot(&mut self, monotonic_ns: u64, sockets: &[DiagSocket], at_end: bool) {
        // Straight into the encoder, a block at a time: the end snapshot can hold a
        // TIME_WAIT socket for every connection of the last minute (131,072 per
        // namespace by default).
        let Self { table, encoder, .. } = self;
        let mut pending = 0;
        table.snapshot_each(monotonic_ns, sockets, at_end, |event| {
            encoder.push(&event);
            pending += 1;
            if pending == SNAPSHOT_BLOCK_RECORDS {
                pending = 0;
                encoder.close_block();
            }
        });
    }

    /// Records gaps for everything the kernel (or the decoder) lost since the last call,
    /// one per CPU and cause, so a replay can say where its verdicts may be incomplete.
    pub fn account(&mut self, counters: KernelCounters, monotonic_ns: u64) {
        let now = monotonic_ns.saturating_sub(self.start_monotonic_ns);
        let from = self.counters_at_ns;
        let mut gaps = Vec::new();
        for (cpu, &count) in counters.ring_full.iter().enumerate() {
            let old = self.counters.ring_full.get(cpu).copied().unwrap_or(0);
            let lost = count.saturating_sub(old);
            if lost > 0 {
                gaps.push((lost, u32::try_from(cpu).ok(), GapCause::RingFull));
            }
        }
        let skipped = counters
            .recursion_missed
            .saturating_sub(self.counters.recursion_missed);
        if skipped > 0 {
            gaps.push((skipped, None, GapCause::Recursion));
        }
        let undecodable = self.decode_failed - self.decode_failed_reported;
        if undecodable > 0 {
            gaps.push((undecodable, None, GapCause::DecodeFailed));
        }
        // A counted loss usually shows up as a chain break too, often later (when the
        // socket's address is reused): only breaks beyond every loss counted so far are
        // unreported.
        self.counted_not_matched += gaps.iter().map(|(lost, _, _)| lost).sum::<u64>();
        let breaks = self.table.take_chain_breaks();
        let matched = breaks.missing.min(self.counted_not_matched);
        self.counted_not_matched -= matched;
        let unreported = breaks.missing - matched;
        self.unreported += unreported;
        for (lost, cpu, cause) in gaps {
            self.encoder.push(&TraceEvent::Lost(Gap {
                from_ns: from,
                to_ns: now,
                lost,
                cpu,
                cause,
            }));
        }
        if unreported > 0 {
            let since = breaks.since_ns.map_or(from, |ns| {
                ns.saturating_sub(self.start_monotonic_ns).min(from)
            });
            self.encoder.push(&TraceEvent::Lost(Gap {
                from_ns: since,
                to_ns: now,
                lost: unreported,
                cpu: None,
                cause: GapCause::Unreported,
            }));
        }
        self.decode_failed_reported = self.decode_failed;
        self.counters = counters;
        self.counters_at_ns = now;
        self.table.sweep(monotonic_ns);
    }

    /// The pending records as a closed block (after any blocks a big snapshot already
    /// closed: framed blocks simply follow each other).
    pub fn take_block(&mut self) -> Option<Bytes> {
        self.encoder.take_block()
    }

    pub fn pending_bytes(&self) -> usize {
        self.encoder.pending_bytes()
    }

    pub fn end(&self, monotonic_ns: u64, stop_reason: &str, bytes: u64) -> TraceEnd {
        TraceEnd {
            end_ns: monotonic_ns.saturating_sub(self.start_monotonic_ns),
            stop_reason: stop_reason.to_owned(),
            records: self.encoder.total_records() - self.part_records_start,
            connections: self.table.connections(),
            lost_ring_full: self.counters.ring_full.iter().sum(),
            // Written by older recorders; the kernel program no longer reads in a
            // way that can fail.
            lost_read_failed: 0,
            lost_recursion: self.counters.recursion_missed,
            lost_decode_failed: self.decode_failed,
            lost_unreported: self.unreported,
            kernel_submitted: self.counters.submitted_total(),
            bytes,
            next_part: None,
        }
    }

    pub fn records(&self) -> u64 {
        self.encoder.total_records()
    }

    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    pub fn connections(&self) -> u64 {
        self.table.connections()
    }

    pub fn first_decode_error(&self) -> Option<&str> {
        self.first_decode_error.as_deref()
    }
}

enum SinkMessage {
    Block(Bytes),
    Finish,
}

/// The writer thread: appends blocks and syncs them, so that after a crash or power
/// loss everything up to the last synced block replays.
struct Sink {
    tx: SyncSender<SinkMessage>,
    handle: Option<JoinHandle<io::Result<u64>>>,
    sent: u64,
}

impl Sink {
    fn start(mut file: File, header: Vec<u8>) -> io::Result<Self> {
        file.write_all(&header)?;
        file.sync_data()?;
        let sent = header.len() as u64;
        let (tx, rx): (SyncSender<SinkMessage>, Receiver<SinkMessage>) = mpsc::sync_channel(8);
        let handle = std::thread::Builder::new()
            .name("tcpchurn-writer".into())
            .spawn(move || -> io::Result<u64> {
                let mut written = sent;
                while let Ok(message) = rx.recv() {
                    match message {
                        SinkMessage::Block(block) => {
                            file.write_all(&block)?;
                            file.sync_data()?;
                            written += block.len() as u64;
                        }
                        SinkMessage::Finish => break,
                    }
                }
                file.sync_all()?;
                Ok(written)
            })?;
        Ok(Self {
            tx,
            handle: Some(handle),
            sent,
        })
    }

    /// Queues a block; fails if the writer thread has stopped (its error is returned
    /// by `finish`).
    fn send(&mut self, block: Bytes) -> bool {
        let len = block.len() as u64;
        if self.tx.send(SinkMessage::Block(block)).is_ok() {
            self.sent += len;
            true
        } else {
            false
        }
    }

    fn finish(mut self) -> io::Result<u64> {
        let _sent = self.tx.send(SinkMessage::Finish);
        match self.handle.take() {
            Some(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the writer thread panicked"))),
            None => Ok(self.sent),
        }
    }

    fn is_dead(&self) -> bool {
        self.handle.as_ref().is_some_and(JoinHandle::is_finished)
    }
}

/// `name`, `name.1`, `name.2`... like tcpdump's `-C`.
fn part_path(base: &Path, index: u32) -> PathBuf {
    if index == 0 {
        return base.to_path_buf();
    }
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// The files of a recording: one, or several with `--max-size` (tcpdump's `-C`/`-W`).
struct Parts {
    base: PathBuf,
    index: u32,
    files: Vec<PathBuf>,
    keep: Option<u32>,
    /// Bytes in the files already finished.
    bytes_done: u64,
}

impl Parts {
    fn current(&self) -> &Path {
        self.files.last().map_or(&self.base, PathBuf::as_path)
    }

    /// Finishes the current file and continues in the next one, which starts with the
    /// connections still open so that it replays on its own.
    fn rotate(
        &mut self,
        sink: &mut Sink,
        recording: &mut Recording,
        start: impl Fn(u32) -> Vec<u8>,
    ) -> anyhow::Result<()> {
        let next = part_path(&self.base, self.index + 1);
        let file = preflight::create_output(&next, true)?;
        let mut end = recording.end(monotonic_now(), "rotated", sink.sent);
        end.next_part = Some(next.display().to_string());
        sink.send(Bytes::from(TraceEncoder::end_block(&end)));
        let finished = std::mem::replace(sink, Sink::start(file, start(self.index + 1))?);
        self.bytes_done += finished
            .finish()
            .with_context(|| format!("writing {}", self.current().display()))?;
        self.index += 1;
        self.files.push(next);
        if let Some(keep) = self.keep
            && self.files.len() > keep as usize
        {
            let oldest = self.files.remove(0);
            let _removed = std::fs::remove_file(&oldest);
        }
        recording.start_part(monotonic_now());
        Ok(())
    }
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

/// Records until stopped. Errors before attaching leave no kernel state and no file.
pub fn record(options: &RecordOptions) -> anyhow::Result<RecordSummary> {
    preflight::check_privileges()?;
    preflight::check_kernel(&uname().1)?;
    preflight::check_output(&options.output, options.force)?;
    if !options.ring_bytes.is_power_of_two() || options.ring_bytes < 4096 {
        anyhow::bail!(
            "--ring-size must be a power of two of at least 4 KiB (got {})",
            options.ring_bytes
        );
    }
    let tracefs = Tracefs::locate_or_mount()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(record_async(options, &tracefs))
}

async fn record_async(options: &RecordOptions, tracefs: &Tracefs) -> anyhow::Result<RecordSummary> {
    let mut stop_rx = stop_signals().context("installing signal handlers")?;
    let file = preflight::create_output(&options.output, options.force)?;

    let probe_options = ProbeOptions {
        ring_bytes: options.ring_bytes,
        wakeup_threshold: if options.wakeup_bytes == 0 {
            u64::from(options.ring_bytes / 4)
        } else {
            options.wakeup_bytes
        },
        ports: options.ports.clone(),
        netns: options.netns.clone(),
        tp_btf: options.tp_btf,
    };
    let (start_mono, start_wall) = clock_pair();
    let started = Instant::now();
    let (mut probe, mut ring) = match KernelProbe::load(tracefs, &probe_options, &options.btf) {
        Ok(loaded) => loaded,
        Err(err) => {
            drop(file);
            let _removed = std::fs::remove_file(&options.output);
            return Err(err).context("attaching to the kernel");
        }
    };
    for missing in &probe.offsets.missing {
        warn!("{missing}");
    }
    if !options.netns.is_empty() && !probe.offsets.netns {
        drop(probe);
        drop(file);
        let _removed = std::fs::remove_file(&options.output);
        anyhow::bail!(
            "--netns needs each socket's network namespace, which needs kernel BTF ({} could not be used); \
             record without --netns, or pass --btf FILE",
            options.btf.display()
        );
    }
    let (hostname, kernel, machine) = uname();
    let filters = Filters {
        ports: options.ports.clone(),
        netns: options.netns.clone(),
    };
    let (tracepoints, softirq_tracking, socket_offsets) = (
        probe.tracepoints.clone(),
        probe.softirq_tracking,
        probe.offsets.clone(),
    );
    let meta = |part: u32| TraceMeta {
        tool: "tcpchurn".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        hostname: hostname.clone(),
        kernel: kernel.clone(),
        machine: machine.clone(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        start_monotonic_ns: start_mono,
        start_unix_ns: start_wall,
        filters: filters.clone(),
        tracepoints: tracepoints.clone(),
        attribution: Attribution { softirq_tracking },
        socket_offsets: socket_offsets.clone(),
        recorder: RecorderInfo {
            pid: std::process::id(),
            ring_bytes: u64::from(options.ring_bytes),
            flush_interval_ms: u64::try_from(options.flush_interval.as_millis())
                .unwrap_or(u64::MAX),
            cpus: crate::kernel::possible_cpus(),
        },
        part: PartInfo {
            index: part,
            previous: (part > 0)
                .then(|| part_path(&options.output, part - 1).display().to_string()),
        },
    };

    let mut sink =
        Sink::start(file, TraceEncoder::start(&meta(0))).context("writing the trace header")?;
    let mut recording = Recording::new(probe.layouts, start_mono, filters.clone());
    if options.snapshot {
        let snapshot = diag::snapshot(&options.netns, true);
        for warning in &snapshot.warnings {
            warn!("snapshot: {warning}");
        }
        recording.snapshot(monotonic_now(), &snapshot.sockets, false);
    }
    // The line tests and scripts wait for: from here on, every transition is recorded.
    let _written = writeln!(
        io::stderr(),
        "tcpchurn: recording to {} (Ctrl-C to stop)",
        options.output.display()
    );

    let mut poll = tokio::time::interval(options.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(options.flush_interval);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = options.duration.map(|d| tokio::time::Instant::now() + d);
    let mut parts = Parts {
        base: options.output.clone(),
        index: 0,
        files: vec![options.output.clone()],
        keep: options.rotate,
        bytes_done: 0,
    };

    let stop = loop {
        tokio::select! {
            changed = stop_rx.changed() => {
                if changed.is_err() {
                    break Stop::Error("signal handler stopped".into());
                }
                if let Some(stop) = stop_rx.borrow().clone() {
                    break stop;
                }
            }
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => break Stop::Duration,
            woken = ring.drain_when_woken(|item| recording.ingest(item)) => {
                if let Err(err) = woken {
                    break Stop::Error(format!("polling the ring buffer: {err}"));
                }
            }
            _ = poll.tick() => {
                ring.drain(|item| recording.ingest(item));
                // At full churn a flush interval holds hundreds of thousands of events:
                // close the block early rather than let the encoder grow.
                if recording.pending_bytes() >= BLOCK_TARGET_BYTES
                    && let Some(block) = recording.take_block()
                    && !sink.send(block)
                {
                    break Stop::Error("the trace writer stopped".into());
                }
            }
            _ = flush.tick() => {
                ring.drain(|item| recording.ingest(item));
                probe.flush_logs();
                match probe.counters() {
                    Ok(counters) => recording.account(counters, monotonic_now()),
                    Err(err) => warn!("{err}"),
                }
                if let Some(block) = recording.take_block()
                    && !sink.send(block)
                {
                    break Stop::Error("the trace writer stopped".into());
                }
                if sink.is_dead() {
                    break Stop::Error("the trace writer stopped".into());
                }
                if let Some(max) = options.max_size
                    && sink.sent >= max
                    && let Err(err) = parts.rotate(&mut sink, &mut recording, |index| TraceEncoder::start(&meta(index)))
                {
                    break Stop::Error(format!("{err:#}"));
                }
            }
        }
    };

    // Detach first, then read what the kernel had already submitted.
    let final_counters = probe.detach().unwrap_or_default();
    ring.drain(|item| recording.ingest(item));
    let now = monotonic_now();
    recording.account(final_counters.clone(), now);
    if options.snapshot && matches!(stop, Stop::Interrupted | Stop::Terminated | Stop::Duration) {
        let snapshot = diag::snapshot(&options.netns, false);
        recording.snapshot(now, &snapshot.sockets, true);
    }
    if let Some(error) = recording.first_decode_error() {
        warn!("some events could not be decoded (first error: {error}); they are marked as lost");
    }
    let mut sink_ok = true;
    if let Some(block) = recording.take_block() {
        sink_ok = sink.send(block);
    }
    if sink_ok {
        let end = recording.end(now, &stop.reason(), sink.sent);
        sink.send(Bytes::from(TraceEncoder::end_block(&end)));
    }
    let written = sink.finish();
    let summary = RecordSummary {
        files: parts.files.clone(),
        records: recording.records(),
        transitions: recording.transitions(),
        connections: recording.connections(),
        lost: final_counters.lost_total() + recording.decode_failed + recording.unreported,
        lost_ring_full: final_counters.ring_full.iter().sum(),
        lost_recursion: final_counters.recursion_missed,
        lost_unreported: recording.unreported,
        bytes: parts.bytes_done + written.as_ref().copied().unwrap_or(0),
        duration: started.elapsed(),
        stop_reason: stop.reason(),
        kernel_submitted: final_counters.submitted_total(),
    };
    match (written, &stop) {
        (Err(err), _) => Err(anyhow::anyhow!(
            "writing {} failed: {err}; the file replays up to the last block written",
            parts.current().display()
        )),
        (Ok(_), Stop::Error(err)) => Err(anyhow::anyhow!("{err}")),
        (Ok(_), _) => Ok(summary),
    }
}

impl Recording {
    /// At the start of a rotated file: the connections still open (with their owners),
    /// so that the new file replays on its own.
    pub fn start_part(&mut self, monotonic_ns: u64) {
        let ts_ns = monotonic_ns.saturating_sub(self.start_monotonic_ns);
        self.part_records_start = self.encoder.total_records();
        let live: Vec<_> = self.table.live_connections().collect();
        for (conn, state, owner) in live {
            self.encoder
                .push(&TraceEvent::Snapshot(crate::model::SnapshotSocket {
                    ts_ns,
                    conn,
                    state: state.unwrap_or(crate::model::TcpState::Established),
                    owner,
                    inode: 0,
                    uid: 0,
                    timer_ms: None,
                    at_end: false,
                }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::{layouts_6_18, state_change_v4};

    fn transition(recording: &mut Recording, old: u32, new: u32) {
        let event = state_change_v4(old, new, 40_000, 80, [10, 0, 0, 2], [10, 0, 0, 1]);
        recording.ingest(&event.bytes());
    }

    /// ESTABLISHED -> FIN_WAIT1, and then the address starts a new lifetime: the rest of
    /// the close never arrived.
    fn lose_a_close(recording: &mut Recording) {
        const ESTABLISHED: u32 = 1;
        const SYN_SENT: u32 = 2;
        const FIN_WAIT1: u32 = 4;
        const CLOSE: u32 = 7;
        transition(recording, CLOSE, SYN_SENT);
        transition(recording, SYN_SENT, ESTABLISHED);
        transition(recording, ESTABLISHED, FIN_WAIT1);
        transition(recording, CLOSE, SYN_SENT);
        transition(recording, SYN_SENT, CLOSE);
    }

    #[test]
    fn breaks_beyond_the_counted_losses_are_unreported_losses() {
        let mut recording = Recording::new(layouts_6_18(), 0, Filters::default());
        lose_a_close(&mut recording);
        recording.account(KernelCounters::default(), 2_000);
        assert_eq!(recording.end(2_000, "test", 0).lost_unreported, 1);

        // The kernel counted a skipped run: the next break is that loss, not a new one.
        lose_a_close(&mut recording);
        let counted = KernelCounters {
            recursion_missed: 1,
            ..KernelCounters::default()
        };
        recording.account(counted.clone(), 3_000);
        let end = recording.end(3_000, "test", 0);
        assert_eq!((end.lost_unreported, end.lost_recursion), (1, 1));
        assert_eq!(end.lost(), 2);

        // A counted loss whose break shows up later is matched then.
        let counted = KernelCounters {
            recursion_missed: 2,
            ..KernelCounters::default()
        };
        recording.account(counted.clone(), 4_000);
        lose_a_close(&mut recording);
        recording.account(counted, 5_000);
        let end = recording.end(5_000, "test", 0);
        assert_eq!((end.lost_unreported, end.lost_recursion), (1, 2));
    }
}
