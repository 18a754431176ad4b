//! The live views' analysis (`--live`, `--metrics`), on its own thread: it follows the
//! recorder's [`Tee`](crate::record::tee::Tee) as `tcpchurn replay --follow` follows a
//! file (the same reader, the same analysis), and about once a second hands the
//! verdict as of now to the views. When the recording has ended, the last verdict is
//! the one a replay of the file gives.

use std::{
    io,
    sync::{Arc, mpsc::RecvTimeoutError},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use log::warn;

use crate::{
    analysis::{Analysis, AnalyzerOptions, LiveVerdict, TraceInfo, Trend},
    kernel::capabilities::{self, CapSet},
    record::tee::TeeReceiver,
    render::live::{Live, Status},
    trace::{
        TraceEnd, TraceError,
        follow::{Followed, Follower, Parts},
        queue::SharedQueue,
    },
};

/// At most one part in this many of the thread's time goes to snapshots.
const SNAPSHOT_SHARE: u32 = 5;

/// Where the verdicts go.
pub trait View: Send {
    /// A new verdict; the last one has `status.recording` false.
    fn show(&mut self, live: &Arc<Live>);
}

/// The copy of the recording goes on in the same queue after a rotation.
struct SameQueue(SharedQueue);

impl Parts for SameQueue {
    type Input = SharedQueue;

    fn next(&mut self, _: &TraceEnd) -> io::Result<Option<SharedQueue>> {
        Ok(Some(self.0.clone()))
    }
}

/// Starts the analysis thread: it ends once the recording has (the tee is gone).
/// `file` is the trace file as `record -o` named it; `discarded`: `-o /dev/null`.
pub fn spawn(
    tee: TeeReceiver,
    file: String,
    discarded: bool,
    refresh: Duration,
    views: Vec<Box<dyn View>>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tcpchurn-live".into())
        .spawn(move || {
            // It reads a channel and writes to stdout or memory: no capability at all.
            let _dropped = capabilities::keep_only(CapSet::EMPTY);
            let mut observer = Observer::new(tee, file, discarded, views);
            observer.run(refresh);
        })
}

struct Observer {
    tee: TeeReceiver,
    queue: SharedQueue,
    follower: Follower<SameQueue>,
    verdict: Option<LiveVerdict>,
    trend: Trend,
    views: Vec<Box<dyn View>>,
    bytes: u64,
    discarded: bool,
    /// The stream could not be read: nothing more is shown.
    broken: bool,
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Observer {
    fn new(tee: TeeReceiver, file: String, discarded: bool, views: Vec<Box<dyn View>>) -> Self {
        let queue = SharedQueue::default();
        Self {
            follower: Follower::new(queue.clone(), SameQueue(queue.clone())),
            queue,
            tee,
            verdict: Some(LiveVerdict::new(file, AnalyzerOptions::default())),
            trend: Trend::default(),
            views,
            bytes: 0,
            discarded,
            broken: false,
        }
    }

    fn run(&mut self, refresh: Duration) {
        let mut next = Instant::now() + refresh;
        loop {
            match self
                .tee
                .recv_timeout(next.saturating_duration_since(Instant::now()))
            {
                Ok(bytes) => {
                    self.bytes += bytes.len() as u64;
                    if !self.broken {
                        self.queue.push(&bytes);
                        self.take_in();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next {
                let started = Instant::now();
                self.show_now();
                // A snapshot copies the analysis' state: at a high connection rate that
                // takes a while, and then it is taken less often, so that taking in the
                // recording keeps most of this thread.
                next = Instant::now() + refresh.max(started.elapsed() * SNAPSHOT_SHARE);
            }
        }
        self.show_last();
    }

    /// Everything complete in the queue, into the analysis.
    fn take_in(&mut self) {
        loop {
            match self.follower.poll() {
                Ok(Followed::Event(event)) => {
                    if let Some(verdict) = &mut self.verdict {
                        verdict.learn(self.follower.take_workloads());
                        verdict.on_event(&event);
                    }
                }
                Ok(Followed::Opened) => {}
                Ok(Followed::Pending | Followed::Ended) => return,
                Err(err) => return self.break_off(&err),
            }
        }
    }

    fn break_off(&mut self, err: &TraceError) {
        warn!("the live view cannot read the recording ({err}); it stops here");
        self.broken = true;
    }

    fn status(&self, recording: bool) -> Status {
        let skipped = self.tee.skipped();
        Status {
            recording,
            bytes: self.bytes + skipped.bytes,
            files: self.follower.files(),
            discarded: self.discarded,
            skipped_records: skipped.records,
        }
    }

    fn show(&mut self, (trace, analysis): (TraceInfo, Analysis), recording: bool) {
        let live = Arc::new(Live {
            pulse: self.trend.update(&analysis),
            trace,
            analysis,
            status: self.status(recording),
        });
        for view in &mut self.views {
            view.show(&live);
        }
    }

    /// The verdict as of now, once the recording's meta block has arrived.
    fn show_now(&mut self) {
        let (Some(verdict), Some(meta)) = (&self.verdict, self.follower.meta()) else {
            return;
        };
        let now = verdict.now(meta, &self.follower.damage(), unix_now_ns());
        self.show(now, true);
    }

    /// The verdict of the whole recording, as a replay of its file gives it.
    fn show_last(&mut self) {
        let Some(meta) = self.follower.meta().cloned() else {
            return;
        };
        let Some(verdict) = self.verdict.take() else {
            return;
        };
        let damage = self.follower.damage();
        let last = verdict.finish(&meta, self.follower.end(), &damage);
        self.show(last, false);
    }
}
