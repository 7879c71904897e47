//! The machine's own multiply-accumulate peak for a kernel family and its
//! lanes (i16 or u8): a short loop of independent multiply-adds into i32 on
//! registers (no memory traffic), timed. `bxflow bench` reports the engine's speed as a
//! fraction of it, a figure that carries from one machine to another where
//! events per second do not.
//!
//! Each of 12 accumulators multiplies itself by a constant and adds the
//! products to itself, so that the compiler cannot hoist the multiply out of
//! the loop, and 12 chains in flight cover the instruction's latency at two
//! per cycle. The values wrap; only the time matters.

use crate::dense::Operand;
use crate::isa::Isa;
use std::hint::black_box;
use std::time::Instant;

/// Accumulator chains in flight.
const CHAINS: usize = 12;

/// One timed run of the loop of `isa`'s multiply-add for `operand` lanes,
/// lasting about `ms` milliseconds (at a 3 GHz clock): the MACs it did and
/// the seconds it took.
/// - i16 x i16: `vpmaddwd` + `vpaddd` (AVX2 on 256 bits, AVX-512 on 512),
///   `vpdpwssd` (AVX-512 VNNI), i32 multiply-adds (scalar, and `I32`);
/// - u8 x i8: `vpmaddubsw` + `vpmaddwd` + `vpaddd` (AVX2, AVX-512 BW),
///   `vpdpbusd` (AVX-512 VNNI); none on scalar.
///
/// `None` when the CPU lacks the family. Short slices interleaved with a measured workload see the same
/// clock and the same neighbours as the workload does, which a peak
/// measured before or after it on a shared machine does not.
pub fn slice(isa: Isa, operand: Operand, ms: f64) -> Option<(f64, f64)> {
    let u8s = operand == Operand::U8;
    if !isa.available() || (u8s && isa == Isa::Scalar) {
        return None;
    }
    // Iterations per 10 ms at 3 GHz, and the MACs one iteration does.
    let (per_10ms, per_iter) = match (isa, u8s) {
        (Isa::Scalar, _) => (2_000_000, CHAINS),
        (Isa::Avx2, false) => (1_000_000, CHAINS * 16),
        (Isa::Avx2, true) => (500_000, CHAINS * 32),
        (_, false) => (500_000, CHAINS * 32),
        (_, true) => (250_000, CHAINS * 64),
    };
    let iters = ((per_10ms as f64 * ms / 10.0) as usize).max(1);
    let t = Instant::now();
    black_box(run(isa, u8s, black_box(iters)));
    Some(((iters * per_iter) as f64, t.elapsed().as_secs_f64()))
}

/// `iters` iterations of the loop; returns a value of the accumulators.
fn run(isa: Isa, u8s: bool, iters: usize) -> i64 {
    match (isa, u8s) {
        (Isa::Scalar, _) => scalar(iters),
        // SAFETY: slice checked that the CPU has the family.
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, false) => unsafe { x86::avx2(iters) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, true) => unsafe { x86::avx2_u8(iters) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, false) => unsafe { x86::avx512(iters) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, true) => unsafe { x86::avx512_u8(iters) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512Vnni, false) => unsafe { x86::vnni(iters) },
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512Vnni, true) => unsafe { x86::vnni_u8(iters) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => scalar(iters),
    }
}

/// The core's clock while it runs this thread, in Hz: a timed chain of
/// dependent register-to-register additions, one cycle each on every
/// x86-64 core, in five slices of about `ms / 5` milliseconds at 3 GHz,
/// the fastest taken (a slice the scheduler interrupts reads slow, none reads fast).
/// Latency figures in cycles (a single event's p50 times this clock) carry
/// from a 3.7 GHz core to a 3 GHz one where nanoseconds do not. `None`
/// off x86-64, where the loop is not written in assembly (a compiler folds
/// a chain of Rust additions).
pub fn clock_hz(ms: f64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        // Eight additions per iteration: 8 cycles, against the loop
        // counter's own one-cycle chain, which runs beside them.
        // The addend is a register, not an immediate: Intel's Golden Cove
        // and later cores fold chains of `add reg, imm` in the renamer,
        // several a cycle (a Sapphire Rapids Xeon read 19 GHz that way).
        let iters = ((3e9 * ms / 5e3 / 8.0) as u64).max(1);
        let slice = || {
            let t = Instant::now();
            let (mut x, mut n, one) = (black_box(0u64), iters, black_box(1u64));
            // SAFETY: register-only arithmetic, no memory access.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                    "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                    "dec {n}",
                    "jnz 2b",
                    x = inout(reg) x,
                    n = inout(reg) n,
                    one = in(reg) one,
                    options(nomem, nostack),
                );
            }
            let dt = t.elapsed().as_secs_f64();
            black_box((x, n));
            iters as f64 * 8.0 / dt
        };
        Some((0..5).map(|_| slice()).fold(0.0, f64::max))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ms;
        None
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

    /// The u8 loops multiply the accumulator's bytes by constant bytes:
    /// `vpmaddubsw` (pairs into saturating i16), `vpmaddwd` by ones (into
    /// i32), `vpaddd`, as the engine's AVX2 8-bit path does.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2_u8(iters: usize) -> i64 {
        let k = _mm256_set1_epi8(black_box(3));
        let one = _mm256_set1_epi16(1);
        let mut acc = [_mm256_set1_epi32(1); CHAINS];
        for _ in 0..iters {
            for a in &mut acc {
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*a, k), one);
                *a = _mm256_add_epi32(*a, p);
            }
        }
        acc.iter()
            .map(|&a| _mm256_extract_epi32::<0>(a) as i64)
            .sum()
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn avx512_u8(iters: usize) -> i64 {
        let k = _mm512_set1_epi8(black_box(3));
        let one = _mm512_set1_epi16(1);
        let mut acc = [_mm512_set1_epi32(1); CHAINS];
        for _ in 0..iters {
            for a in &mut acc {
                let p = _mm512_madd_epi16(_mm512_maddubs_epi16(*a, k), one);
                *a = _mm512_add_epi32(*a, p);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_epi32(a) as i64).sum()
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn vnni_u8(iters: usize) -> i64 {
        let k = _mm512_set1_epi8(black_box(3));
        let mut acc = [_mm512_set1_epi32(1); CHAINS];
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_dpbusd_epi32(*a, *a, k);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_epi32(a) as i64).sum()
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

/// The fenced time-stamp counter: the call timed between two readings
/// neither starts before the first nor ends after the second. Its ticks
/// run at a constant rate (invariant on every x86-64 CPU the kernels
/// target), not the core's clock; off x86-64, nanoseconds.
#[inline(always)]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: lfence and rdtsc exist on every x86-64 CPU.
    unsafe {
        use std::arch::x86_64::{_mm_lfence, _rdtsc};
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static T0: OnceLock<Instant> = OnceLock::new();
        T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
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
            for op in [Operand::I16, Operand::U8] {
                let has = isa.available() && !(isa == Isa::Scalar && op == Operand::U8);
                match slice(isa, op, 10.0) {
                    Some((m, t)) => {
                        let r = m / t;
                        assert!(has && r.is_finite() && r > 0.0, "{isa} {op:?}: {r}")
                    }
                    None => assert!(!has, "{isa} {op:?}"),
                }
            }
        }
    }

    /// The clock lies between the slowest and the fastest x86-64 server
    /// clocks (0.8 to 6.5 GHz): a loop that ran more than one addition
    /// per cycle, or that the compiler shortened, would read above.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn clock_reads_a_plausible_frequency() {
        let hz = clock_hz(5.0).expect("x86-64 measures its clock");
        assert!((0.8e9..6.5e9).contains(&hz), "{hz} Hz");
    }
}
