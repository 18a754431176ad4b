//! What changed between two verdicts of a trace that is still being written: each
//! pair's recent connect rate, how long each loop has been flagged, the event rate.

use rustc_hash::FxHashMap;

use crate::analysis::{Analysis, PairKey};

/// One pair's recent activity, beside its [`crate::analysis::PairReport`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairTrend {
    /// Connects per second since the previous verdict.
    pub connects_per_s: f64,
    /// How long the pair has been flagged as a reconnect loop (trace time).
    pub flagged_for_ns: Option<u64>,
}

/// The latest change, with a [`PairTrend`] per pair of the verdict, in its order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pulse {
    pub events_per_s: f64,
    pub pairs: Vec<PairTrend>,
}

/// Remembers the previous verdict's counts.
#[derive(Clone, Debug, Default)]
pub struct Trend {
    connects: FxHashMap<PairKey, u64>,
    flagged_since: FxHashMap<PairKey, u64>,
    events: u64,
    at_ns: Option<u64>,
}

impl Trend {
    /// The change from the previous verdict to `analysis`.
    pub fn update(&mut self, analysis: &Analysis) -> Pulse {
        let now = analysis.end_ns;
        let span_s = self
            .at_ns
            .filter(|&at| now > at)
            .map(|at| (now - at) as f64 / 1e9);
        let rate = |delta: u64| span_s.map_or(0.0, |s| delta as f64 / s);
        let mut connects = FxHashMap::default();
        let mut flagged_since = FxHashMap::default();
        let pairs = analysis
            .pairs
            .iter()
            .map(|pair| {
                let key = pair.stats.key;
                let before = self.connects.get(&key).copied().unwrap_or(0);
                connects.insert(key, pair.stats.connects);
                let flagged_for_ns = pair.reconnect_loop.map(|_| {
                    let since = self.flagged_since.get(&key).copied().unwrap_or(now);
                    flagged_since.insert(key, since);
                    now - since.min(now)
                });
                PairTrend {
                    connects_per_s: rate(pair.stats.connects.saturating_sub(before)),
                    flagged_for_ns,
                }
            })
            .collect();
        let pulse = Pulse {
            events_per_s: rate(analysis.events.saturating_sub(self.events)),
            pairs,
        };
        self.connects = connects;
        self.flagged_since = flagged_since;
        self.events = analysis.events;
        self.at_ns = Some(now);
        pulse
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::{
            Analyzer, AnalyzerOptions,
            tests::{S, zookeeper_loop},
        },
        synth::Script,
    };

    #[test]
    fn rates_are_since_the_previous_verdict_and_loops_age() {
        let mut script = Script::default();
        zookeeper_loop(&mut script, 20);
        let mut analyzer = Analyzer::new(AnalyzerOptions::default());
        let mut trend = Trend::default();
        let mut pulses = Vec::new();
        let mut next = S;
        for event in &script.events {
            while event.ts_ns() > next {
                pulses.push(trend.update(&analyzer.snapshot(next)));
                next += S;
            }
            analyzer.on_event(event);
        }
        // The first verdict has nothing to compare with.
        assert_eq!(pulses[0].events_per_s, 0.0);
        // Attempts every 700 ms: 1-2 a second.
        let rates: Vec<f64> = pulses[1..]
            .iter()
            .map(|p| p.pairs[0].connects_per_s)
            .collect();
        assert!(rates.iter().all(|&r| (1.0..=2.0).contains(&r)), "{rates:?}");
        let flagged: Vec<Option<u64>> = pulses
            .iter()
            .map(|p| p.pairs.first().and_then(|t| t.flagged_for_ns))
            .collect();
        let first = flagged.iter().position(Option::is_some).unwrap();
        assert_eq!(flagged[first], Some(0));
        assert_eq!(flagged[first + 2], Some(2 * S));
    }
}
