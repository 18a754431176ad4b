//! The live view's pair table: a row per pair with its recent rate, sorted as the
//! viewer chose.

use crate::{
    analysis::{ClosedFirst, PairReport, PairTrend, Side},
    render::{format::human_duration, sentences::pair_label},
};

/// The order of the pair table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Connects per second since the previous refresh.
    #[default]
    ConnectRate,
    Connections,
    /// TIME_WAIT held now, both sides.
    TimeWait,
    /// Connections with an RST, both sides.
    Resets,
    Refused,
}

impl SortKey {
    pub const ALL: [Self; 5] = [
        Self::ConnectRate,
        Self::Connections,
        Self::TimeWait,
        Self::Resets,
        Self::Refused,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::ConnectRate => "conn/s",
            Self::Connections => "connections",
            Self::TimeWait => "TIME_WAIT",
            Self::Resets => "resets",
            Self::Refused => "refused",
        }
    }

    /// The title of the column it sorts.
    pub const fn column(self) -> &'static str {
        match self {
            Self::ConnectRate => "CONN/S",
            Self::Connections => "CONNS",
            Self::TimeWait => "TW C/S",
            Self::Resets => "RST C/S",
            Self::Refused => "REFUSED",
        }
    }

    /// The key after this one (`s` cycles through them).
    pub fn next(self) -> Self {
        let at = Self::ALL.iter().position(|&k| k == self).unwrap_or(0);
        Self::ALL[(at + 1) % Self::ALL.len()]
    }

    /// The key a letter chooses: `c`onn/s, co`n`nections, `t`ime_wait, `r`esets,
    /// re`f`used.
    pub fn of_key(key: char) -> Option<Self> {
        match key {
            'c' => Some(Self::ConnectRate),
            'n' => Some(Self::Connections),
            't' => Some(Self::TimeWait),
            'r' => Some(Self::Resets),
            'f' => Some(Self::Refused),
            _ => None,
        }
    }
}

/// A pair as the table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct PairRow {
    pub label: String,
    pub connects_per_s: f64,
    pub connections: u64,
    /// Closed first by the client, the server, both.
    pub closed_first: [u64; 3],
    pub refused: u64,
    /// Connections with an RST from the client, the server.
    pub resets: [u64; 2],
    /// TIME_WAIT held now by the client, the server.
    pub time_wait: [u64; 2],
    /// How long it has been flagged as a reconnect loop.
    pub flagged_for_ns: Option<u64>,
}

impl PairRow {
    fn of(pair: &PairReport, trend: PairTrend) -> Self {
        let s = &pair.stats;
        let first = |f: ClosedFirst| s.closed_first[f.index()];
        Self {
            label: pair_label(pair),
            connects_per_s: trend.connects_per_s,
            connections: s.connections,
            closed_first: [
                first(ClosedFirst::Client),
                first(ClosedFirst::Server),
                first(ClosedFirst::Simultaneous),
            ],
            refused: s.refused,
            resets: s.resets,
            time_wait: s.time_wait_live,
            flagged_for_ns: pair.reconnect_loop.and(trend.flagged_for_ns.or(Some(0))),
        }
    }

    fn key(&self, sort: SortKey) -> f64 {
        match sort {
            SortKey::ConnectRate => self.connects_per_s,
            SortKey::Connections => self.connections as f64,
            SortKey::TimeWait => (self.time_wait[0] + self.time_wait[1]) as f64,
            SortKey::Resets => (self.resets[0] + self.resets[1]) as f64,
            SortKey::Refused => self.refused as f64,
        }
    }

    /// The cells after the label, in the order of [`COLUMNS`].
    pub fn cells(&self) -> [String; 7] {
        let [client, server, both] = self.closed_first;
        [
            format!("{:.1}", self.connects_per_s),
            self.connections.to_string(),
            format!("{client}/{server}/{both}"),
            self.refused.to_string(),
            format!(
                "{}/{}",
                self.resets[Side::Client.index()],
                self.resets[Side::Server.index()]
            ),
            format!(
                "{}/{}",
                self.time_wait[Side::Client.index()],
                self.time_wait[Side::Server.index()]
            ),
            self.flagged_for_ns
                .map_or_else(|| "-".to_owned(), flagged_for),
        ]
    }
}

/// How long a loop has been flagged: whole seconds, then minutes.
fn flagged_for(ns: u64) -> String {
    match ns / 1_000_000_000 {
        0 => "new".to_owned(),
        s if s < 120 => format!("{s} s"),
        _ => human_duration(ns),
    }
}

/// The table's columns after the label: (title, width).
pub const COLUMNS: [(&str, u16); 7] = [
    ("CONN/S", 8),
    ("CONNS", 8),
    ("CLOSED C/S/B", 13),
    ("REFUSED", 8),
    ("RST C/S", 10),
    ("TW C/S", 10),
    ("LOOP FOR", 9),
];

/// The pairs of the verdict, sorted by `sort` (largest first; then by connections,
/// then as the verdict orders them).
pub fn pair_rows(pairs: &[PairReport], trends: &[PairTrend], sort: SortKey) -> Vec<PairRow> {
    let mut rows: Vec<PairRow> = pairs
        .iter()
        .enumerate()
        .map(|(i, pair)| PairRow::of(pair, trends.get(i).copied().unwrap_or_default()))
        .collect();
    rows.sort_by(|a, b| {
        b.key(sort)
            .total_cmp(&a.key(sort))
            .then(b.connections.cmp(&a.connections))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{LoopEvidence, PairKey, PairStats, Run};

    fn pair(client: &str, connections: u64, looping: bool) -> PairReport {
        let mut stats = PairStats::new(PairKey::new(
            client.parse().unwrap(),
            "10.0.0.1:2181".parse().unwrap(),
        ));
        stats.connections = connections;
        stats.closed_first = [1, connections - 1, 0, 0, 0];
        stats.time_wait_live = [0, connections];
        PairReport {
            reconnect_loop: looping.then(|| LoopEvidence {
                rejected: 5,
                rejected_untold: 0,
                ended: 5,
                refused: 0,
                server_rst: 0,
                close_delay_p99_ms: None,
                run: Run::default(),
            }),
            stats,
        }
    }

    #[test]
    fn rows_sort_by_the_chosen_key_and_show_how_long_a_loop_runs() {
        let pairs = [pair("10.0.0.2", 10, true), pair("10.0.0.3", 30, false)];
        let trends = [
            PairTrend {
                connects_per_s: 4.0,
                flagged_for_ns: Some(12_000_000_000),
            },
            PairTrend {
                connects_per_s: 1.0,
                flagged_for_ns: None,
            },
        ];
        let rows = pair_rows(&pairs, &trends, SortKey::ConnectRate);
        assert_eq!(rows[0].label, "10.0.0.2 -> 10.0.0.1:2181");
        assert_eq!(
            rows[0].cells(),
            ["4.0", "10", "1/9/0", "0", "0/0", "0/10", "12 s"].map(String::from)
        );
        assert_eq!(rows[1].cells()[6], "-");
        let rows = pair_rows(&pairs, &trends, SortKey::TimeWait);
        assert_eq!(rows[0].label, "10.0.0.3 -> 10.0.0.1:2181");
        assert_eq!(SortKey::Refused.next(), SortKey::ConnectRate);
        assert_eq!(SortKey::of_key('t'), Some(SortKey::TimeWait));
        for key in SortKey::ALL {
            assert!(
                COLUMNS.iter().any(|(name, _)| *name == key.column()),
                "{key:?}"
            );
        }
    }
}
