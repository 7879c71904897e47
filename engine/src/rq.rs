//! Requantization in plain integer arithmetic: `FixedType::quantize_raw`
//! specialised at load time for one source LSB, one target type and a known
//! range of source values, so that the per-element work is a few branchless
//! i64 operations that compilers vectorise.
//!
//! Rounding `v * 2^-from` to `2^-to` with `k = from - to > 0` is
//! `(v + add) >> k` where `add` depends on the mode (see [`Rq::new`]); overflow
//! is then a wrap (shift pair), a clamp, or a select. When the source range
//! could overflow i64 in these steps the plan keeps the exact i128 path
//! ([`Rq::Slow`]), so the result always equals `quantize_raw`.

use quantize::fixed::{FixedType, Overflow, Rounding};
use std::ops::{Add, BitAnd, Shl, Shr};

#[derive(Clone, Debug)]
pub enum Rq {
    Fast(FastRq),
    Slow { ty: FixedType, from: i32 },
}

/// The integer lanes a [`FastRq`] runs on: i64 in the plan, i32 in the
/// fused dense epilogue.
pub trait Lane:
    Copy
    + Ord
    + Default
    + Add<Output = Self>
    + BitAnd<Output = Self>
    + Shl<u32, Output = Self>
    + Shr<u32, Output = Self>
{
    const BITS: u32;
    /// Logical (unsigned) right shift.
    fn lshr(self, s: u32) -> Self;
}

impl Lane for i64 {
    const BITS: u32 = 64;
    #[inline(always)]
    fn lshr(self, s: u32) -> i64 {
        ((self as u64) >> s) as i64
    }
}

impl Lane for i32 {
    const BITS: u32 = 32;
    #[inline(always)]
    fn lshr(self, s: u32) -> i32 {
        ((self as u32) >> s) as i32
    }
}

/// Requantization in `T` lanes, exact for the source range it was built
/// for: [`Rq::new`] (i64) and [`Rq::to_i32`] (i32) prove that no step overflows.
#[derive(Clone, Copy, Debug)]
pub struct FastRq<T = i64> {
    /// Right shift (rounding) and left shift (exact); at most one is non-zero.
    pub(crate) kr: u32,
    pub(crate) kl: u32,
    pub(crate) base: T,
    pub(crate) neg: T,
    pub(crate) conv: T,
    /// Overflow: 0 wrap, 1 clamp (SAT and SAT_SYM), 2 SAT_ZERO.
    pub(crate) mode: u8,
    pub(crate) lo: T,
    pub(crate) hi: T,
    /// Clamp bounds (SAT_SYM raises the lower one).
    pub(crate) clo: T,
    pub(crate) wrap_shift: u32,
    pub(crate) signed: bool,
}

/// [`FastRq`] on i32 lanes, for the fused dense epilogue: valid only for the
/// source range it was built for (see [`Rq::to_i32`]).
pub type FastRq32 = FastRq<i32>;

impl Rq {
    /// Requantizer from raw values at LSB `2^-from` lying in `[vlo, vhi]` into `ty`.
    pub fn new(from: i32, ty: FixedType, vlo: i128, vhi: i128) -> Rq {
        let slow = Rq::Slow { ty, from };
        let k = from as i64 - ty.frac_bits() as i64;
        let (kr, kl) = if k >= 0 { (k, 0) } else { (0, -k) };
        if kr > 62 || kl > 62 {
            return slow;
        }
        let lim = 1i128 << 62;
        // Left shift must stay in i64, right shift's addend too.
        let (slo, shi) = (vlo << kl, vhi << kl);
        if slo < -lim || shi > lim || vlo - 2 < -lim || vhi + (1i128 << kr) > lim {
            return slow;
        }
        let half = if kr > 0 { 1i64 << (kr - 1) } else { 0 };
        let full = (1i64 << kr) - 1;
        let (base, neg, conv) = if kr == 0 {
            (0, 0, 0)
        } else {
            match ty.rounding {
                Rounding::Trn => (0, 0, 0),
                Rounding::TrnZero => (0, full, 0),
                Rounding::Rnd => (half, 0, 0),
                Rounding::RndZero => (half - 1, 1, 0),
                Rounding::RndInf => (half, -1, 0),
                Rounding::RndMinInf => (half - 1, 0, 0),
                Rounding::RndConv => (half - 1, 0, 1),
            }
        };
        let (lo, hi) = (ty.min_raw(), ty.max_raw());
        let sym_lo = if ty.signed && ty.width >= 2 {
            lo + 1
        } else {
            lo
        };
        let (mode, clo) = match ty.overflow {
            Overflow::Wrap => (0, lo),
            Overflow::Sat => (1, lo),
            Overflow::SatSym => (1, sym_lo),
            Overflow::SatZero => (2, lo),
        };
        let width = ty.width.clamp(1, 64);
        Rq::Fast(FastRq {
            kr: kr as u32,
            kl: kl as u32,
            base,
            neg,
            conv,
            mode,
            lo,
            hi,
            clo,
            wrap_shift: 64 - width,
            signed: ty.signed,
        })
    }

    /// Requantizer for every value of type `src` into `ty`.
    pub fn from_type(src: FixedType, ty: FixedType) -> Rq {
        Rq::new(
            src.frac_bits(),
            ty,
            src.min_raw() as i128,
            src.max_raw() as i128,
        )
    }

    #[inline(always)]
    pub fn apply(&self, v: i64) -> i64 {
        match self {
            Rq::Fast(f) => f.apply(v),
            Rq::Slow { ty, from } => ty.quantize_raw(v as i128, *from),
        }
    }

    /// Requantizes `v` in place.
    #[inline(always)]
    pub fn apply_inplace(&self, v: &mut [i64]) {
        match self {
            Rq::Fast(f) => f.apply_inplace(v),
            Rq::Slow { ty, from } => {
                for d in v.iter_mut() {
                    *d = ty.quantize_raw(*d as i128, *from);
                }
            }
        }
    }

    /// Requantizes `src` into `dst` (same length).
    #[inline(always)]
    pub fn apply_slice(&self, src: &[i64], dst: &mut [i64]) {
        match self {
            Rq::Fast(f) => f.apply_slice(src, dst),
            Rq::Slow { ty, from } => {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = ty.quantize_raw(s as i128, *from);
                }
            }
        }
    }
}

impl<T: Lane> FastRq<T> {
    #[inline(always)]
    fn round(&self, v: T) -> T {
        let add = self.base + ((v >> (T::BITS - 1)) & self.neg) + ((v >> self.kr) & self.conv);
        ((v + add) >> self.kr) << self.kl
    }

    #[inline(always)]
    fn overflow<const MODE: u8>(&self, r: T) -> T {
        match MODE {
            0 => {
                let s = self.wrap_shift;
                if self.signed {
                    (r << s) >> s
                } else {
                    (r << s).lshr(s)
                }
            }
            // Not `clamp`, whose `clo <= hi` assertion costs a compare
            // and branch per value (the constructor guarantees it).
            1 => r.max(self.clo).min(self.hi),
            _ => {
                if r < self.lo || r > self.hi {
                    T::default()
                } else {
                    r
                }
            }
        }
    }

    #[inline(always)]
    pub fn apply(&self, v: T) -> T {
        match self.mode {
            0 => self.apply_mode::<0>(v),
            1 => self.apply_mode::<1>(v),
            _ => self.apply_mode::<2>(v),
        }
    }

    /// [`FastRq::apply`] for a requantizer whose `mode` is `MODE`, for
    /// loops that pick the mode once.
    #[inline(always)]
    pub(crate) fn apply_mode<const MODE: u8>(&self, v: T) -> T {
        debug_assert_eq!(self.mode, MODE);
        self.overflow::<MODE>(self.round(v))
    }

    #[inline(always)]
    fn run<const MODE: u8>(&self, src: &[T], dst: &mut [T]) {
        let f = *self;
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f.overflow::<MODE>(f.round(s));
        }
    }

    #[inline(always)]
    fn run_inplace<const MODE: u8>(&self, v: &mut [T]) {
        let f = *self;
        for d in v.iter_mut() {
            *d = f.overflow::<MODE>(f.round(*d));
        }
    }

    /// Requantizes `src` into `dst` (same length; vectorises).
    #[inline(always)]
    pub fn apply_slice(&self, src: &[T], dst: &mut [T]) {
        match self.mode {
            0 => self.run::<0>(src, dst),
            1 => self.run::<1>(src, dst),
            _ => self.run::<2>(src, dst),
        }
    }

    /// Requantizes `v` in place (vectorises).
    #[inline(always)]
    pub fn apply_inplace(&self, v: &mut [T]) {
        match self.mode {
            0 => self.run_inplace::<0>(v),
            1 => self.run_inplace::<1>(v),
            _ => self.run_inplace::<2>(v),
        }
    }
}

impl Rq {
    /// The same requantization on i32 lanes for sources in `[vlo, vhi]`, if
    /// every step (shifts, rounding addend, result type) stays inside i32.
    pub fn to_i32(&self, vlo: i128, vhi: i128) -> Option<FastRq32> {
        let Rq::Fast(f) = self else { return None };
        let width = 64 - f.wrap_shift;
        if width > 32 || f.kr > 30 || f.kl > 30 {
            return None;
        }
        // Every partial sum of `v` and the rounding terms (each added or
        // not), then the shifts, stays inside i32; 2 below its minimum is
        // kept free for the epilogue's threshold compares (`lo - 1`).
        let terms = [f.base, f.neg, f.conv].map(|t| t as i128);
        let up: i128 = terms.iter().map(|&t| t.max(0)).sum();
        let down: i128 = terms.iter().map(|&t| t.min(0)).sum();
        let (lo32, hi32) = (i32::MIN as i128 + 2, i32::MAX as i128);
        let (slo, shi) = (vlo + down, vhi + up);
        if slo < lo32 || shi > hi32 || (slo >> f.kr) << f.kl < lo32 || (shi >> f.kr) << f.kl > hi32
        {
            return None;
        }
        let c = |v: i64| -> Option<i32> { i32::try_from(v).ok() };
        // Unsigned 32-bit types do not fit i32 lanes.
        if !f.signed && width == 32 {
            return None;
        }
        Some(FastRq32 {
            kr: f.kr,
            kl: f.kl,
            base: c(f.base)?,
            neg: c(f.neg)?,
            conv: c(f.conv)?,
            mode: f.mode,
            lo: c(f.lo)?,
            hi: c(f.hi)?,
            clo: c(f.clo)?,
            wrap_shift: 32 - width,
            signed: f.signed,
        })
    }
}

impl FastRq32 {
    /// Whether this maps every value of `[vlo, vhi]` to itself.
    pub fn is_identity(&self, vlo: i64, vhi: i64) -> bool {
        let (lo, hi) = match self.mode {
            1 => (self.clo, self.hi),
            _ => (self.lo, self.hi),
        };
        self.kr == 0 && self.kl == 0 && vlo >= lo as i64 && vhi <= hi as i64
    }

    /// Output range for inputs in `[vlo, vhi]` (a superset).
    pub fn out_range(&self) -> (i64, i64) {
        (self.lo as i64, self.hi as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// A random type of at most `max_w` bits (any modes), a source LSB near
    /// its own, and a source range of up to `max_bits` bits.
    fn case(rng: &mut SmallRng, max_w: u32, max_bits: u32) -> (FixedType, i32, i128, i128) {
        let (rs, os) = (Rounding::ALL, Overflow::ALL);
        let signed = rng.gen_bool(0.7);
        let w = rng.gen_range(1..=if signed { max_w } else { max_w - 1 });
        let ty = FixedType::new(w, rng.gen_range(-4..=w as i32 + 4), signed)
            .unwrap()
            .with_rounding(rs[rng.gen_range(0..rs.len())])
            .with_overflow(os[rng.gen_range(0..os.len())]);
        let from = ty.frac_bits() + rng.gen_range(-8..=20);
        let bits = rng.gen_range(1..=max_bits);
        (ty, from, -(1i128 << bits), (1i128 << bits) - 1)
    }

    #[test]
    fn fast_requant_matches_quantize_raw() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut fast = 0;
        for _ in 0..20_000 {
            let (ty, from, lo, hi) = case(&mut rng, 64, 40);
            let rq = Rq::new(from, ty, lo, hi);
            if matches!(rq, Rq::Fast(_)) {
                fast += 1;
            }
            for _ in 0..20 {
                let v = rng.gen_range(lo..=hi) as i64;
                let want = ty.quantize_raw(v as i128, from);
                assert_eq!(rq.apply(v), want, "{ty:?} from {from} v {v}");
                let mut d = [0i64];
                rq.apply_slice(&[v], &mut d);
                assert_eq!(d[0], want);
            }
        }
        assert!(fast > 10_000);
    }

    #[test]
    fn fast_requant_i32_matches_quantize_raw() {
        let mut rng = SmallRng::seed_from_u64(8);
        let mut fast = 0;
        for _ in 0..20_000 {
            let (ty, from, lo, hi) = case(&mut rng, 32, 31);
            let Some(rq) = Rq::new(from, ty, lo, hi).to_i32(lo, hi) else {
                continue;
            };
            fast += 1;
            for _ in 0..20 {
                let v = rng.gen_range(lo..=hi) as i64;
                let want = ty.quantize_raw(v as i128, from);
                assert_eq!(rq.apply(v as i32) as i64, want, "{ty:?} from {from} v {v}");
                let mut d = [v as i32];
                rq.apply_inplace(&mut d);
                assert_eq!(d[0] as i64, want);
            }
        }
        assert!(fast > 5_000, "{fast}");
    }
}
