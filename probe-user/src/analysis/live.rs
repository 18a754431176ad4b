//! The verdict of a trace that is still being written: the analysis a replay runs,
//! fed as events land, with the verdict "as of now" on request and the replay's
//! verdict once the trace ends.

use crate::{
    analysis::{Analysis, Analyzer, AnalyzerOptions, TraceInfo},
    model::{HostId, TraceEvent, WorkloadTable},
    trace::{Damage, TraceEnd, TraceMeta},
};

/// See the module documentation.
#[derive(Debug)]
pub struct LiveVerdict {
    analyzer: Analyzer,
    file: String,
    options: AnalyzerOptions,
}

impl LiveVerdict {
    /// `file` as the verdict names it (a replay names the file as it was given).
    pub fn new(file: String, options: AnalyzerOptions) -> Self {
        Self {
            analyzer: Analyzer::new(options.clone()),
            file,
            options,
        }
    }

    pub fn on_event(&mut self, event: &TraceEvent) {
        self.analyzer.on_event(event);
    }

    /// Names read from the trace (one host's: a live view follows one recording),
    /// before the events they name.
    pub fn learn(&mut self, tables: Vec<WorkloadTable>) {
        for table in &tables {
            self.analyzer.learn(HostId::FIRST, table);
        }
    }

    /// Events taken in so far.
    pub fn last_ts(&self) -> u64 {
        self.analyzer.last_ts()
    }

    fn info(&self, meta: &TraceMeta, end: Option<&TraceEnd>, damage: &[Damage]) -> TraceInfo {
        TraceInfo {
            window: self.options.window,
            close_wait_ns: self.options.close_wait_ns,
            ..TraceInfo::of_trace(self.file.clone(), meta, end, damage)
        }
    }

    /// The verdict if the trace ended now, at wall-clock `unix_now_ns` (never before
    /// its latest event): TIME_WAIT that expired by now has left, CLOSE_WAIT sockets
    /// have aged, and connections still open count as open.
    pub fn now(
        &self,
        meta: &TraceMeta,
        damage: &[Damage],
        unix_now_ns: u64,
    ) -> (TraceInfo, Analysis) {
        let now_ns = unix_now_ns
            .saturating_sub(meta.start_unix_ns)
            .max(self.analyzer.last_ts());
        (
            self.info(meta, None, damage),
            self.analyzer.snapshot(now_ns),
        )
    }

    /// The verdict of the whole trace, ended by `end` (`None`: cut), as a replay of it
    /// says it.
    pub fn finish(
        self,
        meta: &TraceMeta,
        end: Option<&TraceEnd>,
        damage: &[Damage],
    ) -> (TraceInfo, Analysis) {
        let info = self.info(meta, end, damage);
        let (analysis, _) = self.analyzer.finish(end.map_or(0, |e| e.end_ns));
        (info, analysis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::tests::{S, zookeeper_loop},
        synth::Script,
    };

    #[test]
    fn now_is_never_before_the_latest_event_and_the_end_is_the_replays() {
        let mut script = Script::default();
        zookeeper_loop(&mut script, 10);
        let meta = TraceMeta {
            start_unix_ns: 1_000 * S,
            hostname: "zk-1".into(),
            ..TraceMeta::default()
        };
        let mut live = LiveVerdict::new("zk.trace".into(), AnalyzerOptions::default());
        let mut replay = Analyzer::new(AnalyzerOptions::default());
        for event in &script.events {
            live.on_event(event);
            replay.on_event(event);
        }
        let (info, early) = live.now(&meta, &[], 1_001 * S);
        assert_eq!(
            early.end_ns,
            live.last_ts(),
            "the clock is behind the events"
        );
        assert_eq!(
            (info.file.as_str(), info.host.as_str()),
            ("zk.trace", "zk-1")
        );
        assert_eq!(info.stop_reason, None);
        let (_, later) = live.now(&meta, &[], 1_100 * S);
        assert_eq!(later.end_ns, 100 * S);
        let end = TraceEnd {
            end_ns: 30 * S,
            stop_reason: "interrupted".into(),
            ..TraceEnd::default()
        };
        let (info, last) = live.finish(&meta, Some(&end), &[]);
        assert_eq!(info.stop_reason.as_deref(), Some("interrupted"));
        assert_eq!(last, replay.finish(30 * S).0);
    }
}
