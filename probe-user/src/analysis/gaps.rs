//! Lost events: where the trace has holes, so verdicts may be incomplete.

use crate::model::{Gap, GapCause};

/// Gaps closer than this are reported as one window.
const GAP_MERGE_NS: u64 = 1_000_000_000;
/// Gap windows listed; the rest are only counted.
pub const MAX_GAP_WINDOWS: usize = 32;

/// A window of lost events (nearby gaps of one cause merged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GapWindow {
    pub from_ns: u64,
    pub to_ns: u64,
    pub lost: u64,
    pub cause: GapCause,
}

/// The gaps of a trace, merged into windows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GapLog {
    /// Events lost in all gaps.
    pub lost: u64,
    /// Events lost, by [`GapCause::index`].
    pub lost_by_cause: [u64; GapCause::ALL.len()],
    pub windows: Vec<GapWindow>,
    /// Windows beyond [`MAX_GAP_WINDOWS`].
    pub more: u64,
}

impl GapLog {
    pub fn record(&mut self, gap: &Gap) {
        self.lost += gap.lost;
        self.lost_by_cause[gap.cause.index()] += gap.lost;
        if let Some(last) = self.windows.last_mut()
            && gap.from_ns <= last.to_ns.saturating_add(GAP_MERGE_NS)
            && gap.cause == last.cause
        {
            last.from_ns = last.from_ns.min(gap.from_ns);
            last.to_ns = last.to_ns.max(gap.to_ns);
            last.lost += gap.lost;
        } else if self.windows.len() < MAX_GAP_WINDOWS {
            self.windows.push(GapWindow {
                from_ns: gap.from_ns,
                to_ns: gap.to_ns,
                lost: gap.lost,
                cause: gap.cause,
            });
        } else {
            self.more += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn gap(from_ns: u64, to_ns: u64, cause: GapCause) -> Gap {
        Gap {
            from_ns,
            to_ns,
            lost: 2,
            cpu: None,
            cause,
            host: crate::model::HostId::FIRST,
        }
    }

    #[test]
    fn nearby_gaps_of_one_cause_merge() {
        let mut log = GapLog::default();
        log.record(&gap(S, S + 10, GapCause::RingFull));
        log.record(&gap(2 * S, 2 * S + 10, GapCause::RingFull));
        log.record(&gap(2 * S + 20, 2 * S + 30, GapCause::Recursion));
        log.record(&gap(10 * S, 10 * S, GapCause::Recursion));
        assert_eq!(log.lost, 8);
        assert_eq!(log.lost_by_cause[GapCause::RingFull.index()], 4);
        assert_eq!(log.lost_by_cause[GapCause::Recursion.index()], 4);
        assert_eq!(log.windows.len(), 3);
        assert_eq!(
            (log.windows[0].from_ns, log.windows[0].to_ns),
            (S, 2 * S + 10)
        );
        assert_eq!(log.windows[0].lost, 4);
        assert_eq!(log.more, 0);
    }

    #[test]
    fn windows_past_the_limit_are_only_counted() {
        let mut log = GapLog::default();
        for i in 0..MAX_GAP_WINDOWS as u64 + 3 {
            log.record(&gap(i * 10 * S, i * 10 * S, GapCause::RingFull));
        }
        assert_eq!(log.windows.len(), MAX_GAP_WINDOWS);
        assert_eq!(log.more, 3);
        assert_eq!(log.lost, 2 * (MAX_GAP_WINDOWS as u64 + 3));
    }
}
