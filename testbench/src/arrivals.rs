//! Event arrival processes: fixed spacing, Poisson, or bursts, all with the
//! same mean rate. Times are in units of a "tick" chosen by the caller (clock
//! cycles for the FPGA target, nanoseconds for the CPU target).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::Exp1;
use serde::{Deserialize, Serialize};

/// The arrival process; its JSON and display name is the lowercase variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Arrivals {
    /// One event every `period` ticks (the LHC bunch-crossing clock).
    #[cfg_attr(feature = "clap", value(alias = "periodic"))]
    Fixed,
    /// Exponential gaps with mean `period`.
    Poisson,
    /// Trains of `burst_len` back-to-back events (one tick apart), trains
    /// spaced so that the mean rate is one event per `period`.
    #[cfg_attr(feature = "clap", value(alias = "bursty"))]
    Burst,
}

impl std::fmt::Display for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arrivals::Fixed => "fixed",
            Arrivals::Poisson => "poisson",
            Arrivals::Burst => "burst",
        })
    }
}

/// Events per burst train for [`Arrivals::Burst`].
pub const BURST_LEN: u64 = 8;

/// Generator of integer arrival times (non-decreasing), mean spacing `period` ticks.
pub struct ArrivalGen {
    kind: Arrivals,
    period: f64,
    t: f64,
    k: u64,
    rng: SmallRng,
}

impl ArrivalGen {
    pub fn new(kind: Arrivals, period: f64, seed: u64) -> Self {
        ArrivalGen {
            kind,
            period: period.max(0.0),
            t: 0.0,
            k: 0,
            rng: SmallRng::seed_from_u64(seed),
        }
    }
}

impl Iterator for ArrivalGen {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let now = self.t;
        match self.kind {
            Arrivals::Fixed => self.t += self.period,
            Arrivals::Poisson => {
                let gap: f64 = self.rng.sample(Exp1);
                self.t += gap * self.period;
            }
            Arrivals::Burst => {
                // Start of train j is at j * BURST_LEN * period; events of a
                // train are one tick apart (or `period` apart if that is shorter).
                let j = self.k / BURST_LEN;
                let i = self.k % BURST_LEN;
                let step = self.period.min(1.0);
                let start = j as f64 * BURST_LEN as f64 * self.period;
                self.k += 1;
                return Some((start + i as f64 * step).floor() as u64);
            }
        }
        self.k += 1;
        Some(now.floor() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_rate_is_kept() {
        for kind in [Arrivals::Fixed, Arrivals::Poisson, Arrivals::Burst] {
            let v: Vec<u64> = ArrivalGen::new(kind, 5.0, 1).take(100_000).collect();
            assert!(v.windows(2).all(|w| w[0] <= w[1]), "{kind:?}");
            let mean = *v.last().unwrap() as f64 / (v.len() - 1) as f64;
            assert!((mean - 5.0).abs() < 0.1, "{kind:?} mean {mean}");
        }
        let v: Vec<u64> = ArrivalGen::new(Arrivals::Fixed, 5.0, 0).take(4).collect();
        assert_eq!(v, [0, 5, 10, 15]);
    }
}
