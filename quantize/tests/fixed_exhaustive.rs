//! Exhaustive comparison of `FixedType` against an independent reference for
//! every small type (width 1..=8, int_bits -3..=width+3, signed and unsigned)
//! and every rounding x overflow mode.
//!
//! The reference works on exact rationals: the source value expressed in
//! target LSB units is `num / den` with `den` a power of two; it floors with
//! Euclidean division and compares the remainder against one half explicitly
//! (`2 * rem` vs `den`). Overflow is expressed as clamping / modular
//! reduction on plain integers. It shares no code with the implementation.

use quantize::fixed::{FixedType, Overflow, Rounding};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const ROUNDINGS: [Rounding; 7] = Rounding::ALL;
const OVERFLOWS: [Overflow; 4] = Overflow::ALL;

/// Picks between the floor `fl` and `fl + 1` of an exact value
/// `fl + rem/den` (`0 <= rem < den`), per the rounding mode's definition.
fn ref_pick(fl: i128, rem: i128, den: i128, negative: bool, r: Rounding) -> i128 {
    if rem == 0 {
        return fl; // exact: every mode leaves it alone
    }
    let ceil = fl + 1;
    let nearest = |at_tie: i128| match (2 * rem).cmp(&den) {
        std::cmp::Ordering::Less => fl,
        std::cmp::Ordering::Greater => ceil,
        std::cmp::Ordering::Equal => at_tie,
    };
    match r {
        Rounding::Trn => fl,
        Rounding::TrnZero => {
            if negative {
                ceil
            } else {
                fl
            }
        }
        Rounding::Rnd => nearest(ceil),
        Rounding::RndZero => nearest(if negative { ceil } else { fl }),
        Rounding::RndInf => nearest(if negative { fl } else { ceil }),
        Rounding::RndMinInf => nearest(fl),
        Rounding::RndConv => nearest(if fl.rem_euclid(2) == 0 { fl } else { ceil }),
    }
}

/// Rounds `raw * 2^-src_frac` to an integer number of `2^-dst_frac` units.
fn ref_round(raw: i128, src_frac: i32, dst_frac: i32, r: Rounding) -> i128 {
    let d = dst_frac - src_frac; // value in target units = raw * 2^d
    let (num, den) = if d >= 0 {
        (raw * 2i128.pow(d as u32), 1)
    } else {
        (raw, 2i128.pow((-d) as u32))
    };
    ref_pick(num.div_euclid(den), num.rem_euclid(den), den, num < 0, r)
}

/// Applies the overflow mode to the rounded integer `k` for a `w`-bit type.
fn ref_overflow(k: i128, w: u32, signed: bool, o: Overflow) -> i64 {
    let modulus = 2i128.pow(w);
    let (min, max) = if signed {
        (-modulus / 2, modulus / 2 - 1)
    } else {
        (0, modulus - 1)
    };
    let to_code = |v: i128| {
        let r = v.rem_euclid(modulus);
        if signed && r > max {
            r - modulus
        } else {
            r
        }
    };
    let result = match o {
        Overflow::Wrap => to_code(k),
        Overflow::Sat => k.clamp(min, max),
        Overflow::SatZero => {
            if (min..=max).contains(&k) {
                k
            } else {
                0
            }
        }
        Overflow::SatSym => {
            // ap_fixed_base.h overflow_adjust: signed underflow writes the
            // pattern with bit W-1 and bit 0 set, and a result equal to the
            // most negative code counts as underflow. Hence a clamp to
            // [that pattern, max]. Unsigned: like SAT.
            let low = if signed {
                to_code((modulus / 2) | 1)
            } else {
                0
            };
            k.clamp(low, max)
        }
    };
    result as i64
}

fn small_types() -> Vec<FixedType> {
    let mut v = Vec::new();
    for w in 1..=8u32 {
        for ib in -3..=(w as i32 + 3) {
            for signed in [false, true] {
                let base = FixedType::new(w, ib, signed).unwrap();
                for r in ROUNDINGS {
                    for o in OVERFLOWS {
                        v.push(base.with_rounding(r).with_overflow(o));
                    }
                }
            }
        }
    }
    v
}

#[test]
fn quantize_raw_matches_reference_exhaustively() {
    let mut checked = 0u64;
    for w in 1..=8u32 {
        for ib in -3..=(w as i32 + 3) {
            for signed in [false, true] {
                let base = FixedType::new(w, ib, signed).unwrap();
                let frac = base.frac_bits();
                assert_eq!(frac, w as i32 - ib);
                let types: Vec<Vec<FixedType>> = ROUNDINGS
                    .iter()
                    .map(|&r| {
                        OVERFLOWS
                            .iter()
                            .map(|&o| base.with_rounding(r).with_overflow(o))
                            .collect()
                    })
                    .collect();
                for src_frac in frac.min(0) - 4..=frac.max(0) + 6 {
                    for raw in -600i128..=600 {
                        for (ri, &r) in ROUNDINGS.iter().enumerate() {
                            let k = ref_round(raw, src_frac, frac, r);
                            for (oi, &o) in OVERFLOWS.iter().enumerate() {
                                let ty = types[ri][oi];
                                let got = ty.quantize_raw(raw, src_frac);
                                let want = ref_overflow(k, w, signed, o);
                                if got != want {
                                    panic!(
                                        "{} of raw {raw} at frac {src_frac}: got {got}, want {want} (rounded {k})",
                                        ty.ap_string()
                                    );
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    println!("checked {checked} conversions");
}

/// Reference for f64 inputs that never looks at the bit pattern. Scaling
/// by a power of two is exact for the magnitudes used here, and so is
/// `t - t.floor()` for `t >= 0` (Sterbenz for `t >= 1`, trivial below).
fn ref_f64(ty: &FixedType, x: f64) -> i64 {
    let y = x * 2f64.powi(ty.frac_bits());
    let t = y.abs();
    let int_mag = t.floor();
    let frac_mag = t - int_mag; // exact, in [0, 1)
                                // ref_pick takes the floor and the remainder above it (here over den 4:
                                // 1 = below one half, 2 = exactly one half, 3 = above).
    let class = if frac_mag < 0.5 {
        1
    } else if frac_mag == 0.5 {
        2
    } else {
        3
    };
    let (fl, rem4) = if frac_mag == 0.0 {
        ((int_mag as i128) * if y < 0.0 { -1 } else { 1 }, 0)
    } else if y > 0.0 {
        (int_mag as i128, class)
    } else {
        // -(i + f) = -(i + 1) + (1 - f): the remainder above the floor is 1 - f.
        (-(int_mag as i128) - 1, 4 - class)
    };
    let k = ref_pick(fl, rem4, 4, x < 0.0, ty.rounding);
    ref_overflow(k, ty.width, ty.signed, ty.overflow)
}

#[test]
fn quantize_f64_matches_reference() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_f1c5);
    let types = small_types();
    let mut checked = 0u64;
    for ty in &types {
        let frac = ty.frac_bits();
        let mut xs: Vec<f64> = Vec::new();
        // Every multiple of 2^-(frac+2) in a wide range: exact values, ties
        // (odd multiples of 2^-(frac+1)) and quarter points.
        for k in -1200i32..=1200 {
            xs.push(k as f64 * 2f64.powi(-(frac + 2)));
        }
        // Random doubles with full 53-bit mantissas over a range of exponents.
        for _ in 0..600 {
            let m: i64 = rng.gen_range(-(1i64 << 53)..(1i64 << 53));
            let e: i32 = rng.gen_range(-70..=-40);
            xs.push(m as f64 * 2f64.powi(e));
        }
        // Near-ties: one ULP either side of a tie.
        for k in -40i32..40 {
            let tie = (2 * k + 1) as f64 * 2f64.powi(-(frac + 1));
            xs.push(tie.next_up());
            xs.push(tie.next_down());
        }
        for &x in &xs {
            let got = ty.quantize_f64(x);
            let want = ref_f64(ty, x);
            assert_eq!(got, want, "{} of {x:e}", ty.ap_string());
            checked += 1;
        }
    }
    println!("checked {checked} f64 conversions");
}

#[test]
fn codes_ranges_and_to_f64_round_trip() {
    for ty in small_types() {
        let w = ty.width;
        let (min, max) = if ty.signed {
            (-(1i64 << (w - 1)), (1i64 << (w - 1)) - 1)
        } else {
            (0, (1i64 << w) - 1)
        };
        assert_eq!((ty.min_raw(), ty.max_raw()), (min, max), "{ty}");
        assert!(
            !ty.contains_raw(min - 1) && !ty.contains_raw(max + 1),
            "{ty}"
        );
        let lsb = 2f64.powi(-ty.frac_bits());
        for raw in min..=max {
            assert!(ty.contains_raw(raw));
            let x = ty.to_f64(raw);
            assert_eq!(x, raw as f64 * lsb, "{ty} raw {raw}");
            // Every code converts back to itself, whatever the modes; except
            // that SAT_SYM never yields the most negative signed code.
            let back = ty.quantize_f64(x);
            if ty.overflow == Overflow::SatSym && ty.signed && w >= 2 && raw == min {
                assert_eq!(back, min + 1, "{ty}");
            } else {
                assert_eq!(back, raw, "{ty} raw {raw}");
            }
        }
    }
}
