//! A fixed-size log-bucket histogram for durations (lifetimes, close delays) and byte
//! counts.
//!
//! Replay memory must not grow with the number of connections, so quantiles come from
//! buckets rather than from stored samples. Values are kept exactly up to 16 (durations
//! in microseconds: 0..16 µs; bytes: 0..16 bytes), then in 8 buckets per power of two.
//! Reporting a bucket's midpoint is off by at most half a bucket, i.e. **at most 6.25 %
//! relative error** (1/16), plus 0.5 µs (or byte); a quantile never leaves the range of
//! the values recorded, so when they are all equal it is exact.
//!
//! A trace can hold hundreds of thousands of client→server pairs, most with a handful
//! of connections whose lifetimes fall in a few buckets, so a histogram starts as a
//! short list of (bucket, count) and only becomes a full array past
//! [`SPARSE_LIMIT`] distinct buckets.

const EXACT: usize = 16;
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// 16 exact buckets, then 8 per exponent 4..=63.
const BUCKETS: usize = EXACT + (64 - 4) * SUB;

/// Distinct buckets kept as a list before switching to the dense array.
const SPARSE_LIMIT: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogHistogram {
    /// (bucket, count), sorted by bucket, while there are few buckets.
    sparse: Vec<(u16, u64)>,
    /// All buckets, once there are many (then `sparse` is empty).
    dense: Vec<u64>,
    total: u64,
    /// The smallest and largest value recorded.
    min: u64,
    max: u64,
}

fn bucket(us: u64) -> usize {
    if us < EXACT as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros();
    let sub = (us >> (exp - SUB_BITS)) as usize & (SUB - 1);
    EXACT + (exp as usize - 4) * SUB + sub
}

/// The midpoint of a bucket, in microseconds (as f64 to keep fractions of small values).
fn midpoint(index: usize) -> f64 {
    if index < EXACT {
        return index as f64;
    }
    let exp = (index - EXACT) / SUB + 4;
    let sub = ((index - EXACT) % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS as usize);
    let lower = (SUB as u64 + sub) * width;
    lower as f64 + width as f64 / 2.0
}

impl LogHistogram {
    /// Records a duration (kept in microseconds).
    pub fn record_ns(&mut self, ns: u64) {
        self.record(ns / 1_000);
    }

    /// Records a value in the histogram's own unit.
    pub fn record(&mut self, value: u64) {
        let index = bucket(value);
        if self.total == 0 {
            (self.min, self.max) = (value, value);
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.total += 1;
        if !self.dense.is_empty() {
            self.dense[index] += 1;
            return;
        }
        let key = index as u16;
        match self.sparse.binary_search_by_key(&key, |&(b, _)| b) {
            Ok(at) => self.sparse[at].1 += 1,
            Err(_) if self.sparse.len() >= SPARSE_LIMIT => {
                self.dense = vec![0; BUCKETS];
                for &(b, count) in &self.sparse {
                    self.dense[b as usize] = count;
                }
                self.sparse = Vec::new();
                self.dense[index] += 1;
            }
            Err(at) => self.sparse.insert(at, (key, 1)),
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 < q ≤ 1) of durations, in milliseconds; `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile(q).map(|us| us / 1_000.0)
    }

    /// The `q` quantile (0 < q ≤ 1) in the histogram's own unit, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        let mut buckets: Box<dyn Iterator<Item = (usize, u64)>> = if self.dense.is_empty() {
            Box::new(self.sparse.iter().map(|&(b, count)| (b as usize, count)))
        } else {
            Box::new(self.dense.iter().copied().enumerate())
        };
        buckets.find_map(|(index, count)| {
            seen += count;
            (seen >= rank).then(|| midpoint(index).clamp(self.min as f64, self.max as f64))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            1_000,
            1 << 40,
            u64::MAX / 1_000,
        ] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            assert!(b < BUCKETS);
            last = b;
        }
        assert_eq!(bucket(16), EXACT);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = LogHistogram::default();
        for us in [5u64, 5, 900, 40] {
            sparse.record_ns(us * 1_000);
        }
        assert!(sparse.dense.is_empty());
        assert_eq!(sparse.quantile_ms(0.5), Some(0.005));
        assert_eq!(sparse.quantile_ms(0.75), Some(0.042));
        let mut dense = sparse.clone();
        for us in 100..200u64 {
            dense.record_ns(us * us * 1_000);
        }
        assert!(dense.sparse.is_empty());
        assert_eq!(dense.count(), 104);
        assert_eq!(dense.quantile_ms(0.01), Some(0.005));
    }

    #[test]
    fn quantiles_are_within_the_documented_error() {
        let mut h = LogHistogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in 1..=1000u64 {
            h.record_ns(ms * 1_000_000);
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((p50 - 500.0).abs() / 500.0 <= 0.0625, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 <= 0.0625, "{p99}");
        assert_eq!(h.count(), 1000);
        let mut tiny = LogHistogram::default();
        tiny.record_ns(3_000);
        assert_eq!(tiny.quantile_ms(0.5), Some(0.003));
        let mut bytes = LogHistogram::default();
        for value in [0, 15, 15, 2_048, 1 << 20] {
            bytes.record(value);
        }
        assert_eq!(bytes.quantile(0.5), Some(15.0), "exact below 16");
        let mib = bytes.quantile(1.0).unwrap();
        assert!((mib - 1_048_576.0).abs() / 1_048_576.0 <= 0.0625, "{mib}");
    }
}
