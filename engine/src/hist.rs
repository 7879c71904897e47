//! A small HDR-style latency histogram: log2 buckets split into 16 linear
//! sub-buckets (relative error <= 1/16), fixed memory, no allocation to record.

const SUB: u32 = 4; // 16 sub-buckets
const BUCKETS: usize = (64 - SUB as usize + 1) << SUB;

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    max: u64,
    min: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn index(v: u64) -> usize {
    if v < (1 << SUB) {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB
    let shift = msb - SUB;
    let sub = (v >> shift) as usize & ((1 << SUB) - 1);
    (((shift + 1) as usize) << SUB) + sub
}

/// Largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < (1 << SUB) {
        return i as u64;
    }
    let shift = (i >> SUB) as u32 - 1;
    let sub = (i & ((1 << SUB) - 1)) as u64;
    let lo = ((1u64 << SUB) | sub) << shift;
    lo + ((1u64 << shift) - 1)
}

/// Percentiles of a histogram, in the unit recorded (nanoseconds in the pipeline).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0,
            min: u64::MAX,
            sum: 0,
        }
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        self.record_n(v, 1);
    }

    #[inline]
    pub fn record_n(&mut self, v: u64, k: u64) {
        if k == 0 {
            return;
        }
        self.counts[index(v)] += k;
        self.n += k;
        self.max = self.max.max(v);
        self.min = self.min.min(v);
        self.sum += v as u128 * k as u128;
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
        self.min = self.min.min(o.min);
        self.sum += o.sum;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// The value at quantile `q` (0..=1), as the upper edge of its bucket
    /// (never below the true quantile, at most 1/16 above), capped at the max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.n,
            min: if self.n == 0 { 0 } else { self.min },
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            mean: if self.n == 0 {
                0.0
            } else {
                self.sum as f64 / self.n as f64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values() {
        for v in (0..100_000u64).chain([u64::MAX, 1 << 40, (1 << 40) + 12345]) {
            let i = index(v);
            assert!(upper(i) >= v, "{v}");
            assert!(i == 0 || upper(i - 1) < v, "{v}");
            assert!(upper(i) - v <= v / 16, "{v}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((500..=532).contains(&s.p50), "{s:?}");
        assert!((990..=1000).contains(&s.p99), "{s:?}");
        assert_eq!(s.max, 1000);
    }
}
