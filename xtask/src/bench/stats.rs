//! Small statistics: median and range of repeated measurements.

use serde::{Deserialize, Serialize};

/// Median, min and max of `n` finite values.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// The spread of the finite values; `None` if there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            f64::midpoint(v[n / 2 - 1], v[n / 2])
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// `median [min-max]`, each scaled by `scale`, with `digits` decimals.
    pub fn show(self, digits: usize, scale: f64) -> String {
        format!(
            "{:.d$} [{:.d$}-{:.d$}]",
            self.median * scale,
            self.min * scale,
            self.max * scale,
            d = digits
        )
    }
}

/// A spread for the table: `-` when there is none.
pub fn show(spread: Option<Spread>, digits: usize, scale: f64) -> String {
    spread.map_or_else(|| "-".into(), |s| s.show(digits, scale))
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn the_median_of_an_even_count_is_the_midpoint_and_nan_is_left_out() {
        let s = Spread::of([4.0, 1.0, f64::NAN, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 4));
        assert!(Spread::of([f64::INFINITY]).is_none());
    }
}
