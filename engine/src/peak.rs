//! The machine's own multiply-accumulate peak for a kernel family: a short
//! loop of independent i16 x i16 -> i32 multiply-adds on registers (no
//! memory traffic), timed. `bxflow bench` reports the engine's speed as a
//! fraction of it, a figure that carries from one machine to another where
//! events per second do not.
//!
//! Each of 12 accumulators multiplies itself by a constant and adds the
//! products to itself, so that the compiler cannot hoist the multiply out of
//! the loop, and 12 chains in flight cover the instruction's latency at two
//! per cycle. The values wrap; only the time matters.

use crate::isa::Isa;
use std::hint::black_box;
use std::time::Instant;

/// Accumulator chains in flight.
const CHAINS: usize = 12;

/// i16 multiply-accumulates per second that `isa`'s widest multiply-add
/// reaches on one core: `vpmaddwd` + `vpaddd` (AVX2 on 256 bits, AVX-512 on
/// 512), `vpdpwssd` (AVX-512 VNNI), or i32 multiply-adds (scalar). The
/// median of 5 runs of about 10 ms. `None` when the CPU lacks the family.
pub fn i16_macs_per_second(isa: Isa) -> Option<f64> {
    if !isa.available() {
        return None;
    }
    // Iterations of the loop and the MACs one iteration does.
    let (iters, per_iter) = match isa {
        Isa::Scalar => (2_000_000, CHAINS),
        Isa::Avx2 => (1_000_000, CHAINS * 16),
        Isa::Avx512 | Isa::Avx512Vnni => (500_000, CHAINS * 32),
    };
    let mut rates: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            black_box(run(isa, black_box(iters)));
            (iters * per_iter) as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    Some(rates[2])
}

/// `iters` iterations of `isa`'s loop; returns a value of the accumulators.
fn run(isa: Isa, iters: usize) -> i64 {
    match isa {
        Isa::Scalar => scalar(iters),
        // SAFETY: i16_macs_per_second checked that the CPU has the family.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::avx2(iters) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::avx512(iters) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { x86::vnni(iters) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar(iters),
    }
}

fn scalar(iters: usize) -> i64 {
    let mut acc = [1i32; CHAINS];
    let k = black_box(3i32);
    for _ in 0..iters {
        for a in &mut acc {
            *a = a.wrapping_add((*a as i16 as i32).wrapping_mul(k));
        }
    }
    acc.iter().map(|&a| a as i64).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;
    use std::hint::black_box;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(iters: usize) -> i64 {
        let k = _mm256_set1_epi16(black_box(3));
        let mut acc = [_mm256_set1_epi32(1); CHAINS];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(*a, k));
            }
        }
        acc.iter()
            .map(|&a| _mm256_extract_epi32::<0>(a) as i64)
            .sum()
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn avx512(iters: usize) -> i64 {
        let k = _mm512_set1_epi16(black_box(3));
        let mut acc = [_mm512_set1_epi32(1); CHAINS];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_add_epi32(*a, _mm512_madd_epi16(*a, k));
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_epi32(a) as i64).sum()
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn vnni(iters: usize) -> i64 {
        let k = _mm512_set1_epi16(black_box(3));
        let mut acc = [_mm512_set1_epi32(1); CHAINS];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_dpwssd_epi32(*a, *a, k);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_epi32(a) as i64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family the CPU has gives a finite, positive rate, and the
    /// families it lacks give none (a rate is not checked against a bound:
    /// machines differ).
    #[test]
    fn each_available_family_measures_a_rate() {
        for isa in Isa::ALL {
            match i16_macs_per_second(isa) {
                Some(r) => assert!(isa.available() && r.is_finite() && r > 0.0, "{isa}: {r}"),
                None => assert!(!isa.available(), "{isa}"),
            }
        }
    }
}
