//! `--since`/`--until`: the part of a trace a replay looks at.

use std::time::Duration;

/// Nanoseconds in `d`, saturating.
pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A window of trace time (nanoseconds since the trace started); unbounded ends are
/// `None`. Both ends are inclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
}

impl TimeWindow {
    /// How far past `until` a replay still reads: the ring buffer delivers events from
    /// different CPUs slightly out of order, so a late event may still belong inside.
    pub const UNTIL_SLACK_NS: u64 = 5_000_000_000;

    pub fn new(since: Option<Duration>, until: Option<Duration>) -> Self {
        Self {
            since_ns: since.map(duration_ns),
            until_ns: until.map(duration_ns),
        }
    }

    /// `--since` and `--until` as given: refused when the window ends before it starts.
    pub fn checked(since: Option<Duration>, until: Option<Duration>) -> Result<Self, String> {
        match (since, until) {
            (Some(since), Some(until)) if since > until => Err(format!(
                "--since {since:?} is after --until {until:?}: the window would be empty"
            )),
            _ => Ok(Self::new(since, until)),
        }
    }

    /// The whole trace.
    pub fn is_whole(&self) -> bool {
        self.since_ns.is_none() && self.until_ns.is_none()
    }

    pub fn contains(&self, ts_ns: u64) -> bool {
        self.has_started(ts_ns) && !self.has_ended(ts_ns)
    }

    /// `ts_ns` is at or after the start.
    pub fn has_started(&self, ts_ns: u64) -> bool {
        self.since_ns.is_none_or(|since| ts_ns >= since)
    }

    /// `ts_ns` is after the end.
    pub fn has_ended(&self, ts_ns: u64) -> bool {
        self.until_ns.is_some_and(|until| ts_ns > until)
    }

    /// An event this late ends the reading: nothing after it can still fall inside.
    pub fn is_past_reading(&self, ts_ns: u64) -> bool {
        self.until_ns
            .is_some_and(|until| ts_ns > until.saturating_add(Self::UNTIL_SLACK_NS))
    }

    /// The time a replay ends at, when the trace ends at `end_ns`.
    pub fn end_of(&self, end_ns: u64) -> u64 {
        self.until_ns.map_or(end_ns, |until| until.min(end_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn both_ends_are_inclusive() {
        let window = TimeWindow::new(Some(Duration::from_secs(1)), Some(Duration::from_secs(3)));
        assert!(!window.contains(S - 1));
        assert!(window.contains(S));
        assert!(window.contains(3 * S));
        assert!(!window.contains(3 * S + 1));
        assert!(window.has_ended(3 * S + 1));
        assert!(!window.is_past_reading(8 * S));
        assert!(window.is_past_reading(8 * S + 1));
        assert_eq!(window.end_of(10 * S), 3 * S);
        assert_eq!(window.end_of(2 * S), 2 * S);
    }

    #[test]
    fn a_window_that_ends_before_it_starts_is_refused() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            TimeWindow::checked(secs(5), secs(2)),
            Err("--since 5s is after --until 2s: the window would be empty".to_owned())
        );
        assert!(TimeWindow::checked(secs(2), secs(2)).is_ok());
        assert!(TimeWindow::checked(secs(5), None).is_ok());
    }

    #[test]
    fn the_whole_trace_holds_everything() {
        let whole = TimeWindow::default();
        assert!(whole.is_whole());
        assert!(whole.contains(0) && whole.contains(u64::MAX));
        assert!(!whole.is_past_reading(u64::MAX));
        assert_eq!(whole.end_of(7), 7);
        let late = TimeWindow::new(None, Some(Duration::MAX));
        assert_eq!(late.until_ns, Some(u64::MAX));
        assert!(!late.is_past_reading(u64::MAX));
    }
}
