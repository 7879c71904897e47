//! Integer thresholds for a staircase after an affine map: which codes `r`
//! of an input type reach `a * r * 2^-f + b >= t`. The comparison is done
//! in exact dyadic arithmetic on the `f64` constants as stored (every
//! finite `f64` is `m * 2^e`), so a code on the boundary is decided as the
//! real numbers decide it, ties included, never by a rounded product.

use crate::fixed::FixedType;
use num_bigint::BigInt;
use std::cmp::Ordering;

/// `v` (finite, not 0) as `m * 2^e` exactly, `m` odd and signed.
pub fn odd_dyadic(v: f64) -> (i64, i32) {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    // Subnormals have no implicit leading one and the exponent of the smallest normal.
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let z = m.trailing_zeros();
    let m = (m >> z) as i64;
    (if v < 0.0 { -m } else { m }, e + z as i32)
}

/// `v` as `m * 2^e` exactly (`v` finite).
fn dyadic(v: f64) -> (BigInt, i32) {
    if v == 0.0 {
        return (BigInt::from(0), 0);
    }
    let (m, e) = odd_dyadic(v);
    (BigInt::from(m), e)
}

/// The sign of `a * r * 2^-f + b - t`, exactly.
fn sign(a: f64, r: i64, f: i32, b: f64, t: f64) -> Ordering {
    let (am, ae) = dyadic(a);
    let (bm, be) = dyadic(b);
    let (tm, te) = dyadic(t);
    let terms = [(am * BigInt::from(r), ae - f), (bm, be), (-tm, te)];
    let low = terms.iter().map(|(_, e)| *e).min().expect("three terms");
    let sum: BigInt = terms
        .into_iter()
        .map(|(m, e)| m << (e - low) as usize)
        .sum();
    sum.cmp(&BigInt::from(0))
}

/// One element's staircase on codes of `ty`: ascending raw thresholds (one
/// past the largest code: never reached) and, for each count of thresholds
/// reached, the index of the value it selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stairs {
    pub thresholds: Vec<i64>,
    pub pick: Vec<usize>,
}

/// The staircase `values[count of k with y >= t[k]]` (`y > t[k]` where
/// `strict[k]`) on `y = a * x + b`, for `x` the codes of `ty`. `t`
/// ascending. A negative `a` reverses the order (the count of thresholds
/// below the code); `a == 0` is a constant.
pub fn stairs(ty: FixedType, a: f64, b: f64, t: &[f64], strict: &[bool]) -> Result<Stairs, String> {
    if let Some(v) = [a, b].iter().chain(t).find(|v| !v.is_finite()) {
        return Err(format!("a threshold or affine coefficient is {v}"));
    }
    let f = ty.frac_bits();
    let (lo, hi) = (ty.min_raw(), ty.max_raw());
    let never = hi.saturating_add(1);
    let reached = |r: i64, k: usize| {
        let s = sign(a, r, f, b, t[k]);
        s == Ordering::Greater || (s == Ordering::Equal && !strict.get(k).copied().unwrap_or(false))
    };
    let n = t.len();
    if a == 0.0 {
        let count = (0..n).filter(|&k| reached(0, k)).count();
        return Ok(Stairs {
            thresholds: vec![never; n],
            pick: vec![count; n + 1],
        });
    }
    // The first code in [lo, hi] where `p` holds, p monotone false -> true.
    let first = |p: &dyn Fn(i64) -> bool| -> i64 {
        if !p(hi) {
            return never;
        }
        let (mut l, mut h) = (lo, hi);
        while l < h {
            let m = (l as i128 + (h as i128 - l as i128) / 2) as i64;
            if p(m) {
                h = m;
            } else {
                l = m + 1;
            }
        }
        l
    };
    let mut thresholds: Vec<i64> = if a > 0.0 {
        (0..n).map(|k| first(&|r| reached(r, k))).collect()
    } else {
        // Reached below some code: the count reached is n minus the count
        // of "not reached" thresholds at or below the code.
        (0..n).map(|k| first(&|r| !reached(r, k))).collect()
    };
    // The count reached does not depend on the order: ascending, as every
    // backend's comparator chain wants it.
    thresholds.sort_unstable();
    let pick = if a > 0.0 {
        (0..=n).collect()
    } else {
        (0..=n).map(|j| n - j).collect()
    };
    Ok(Stairs { thresholds, pick })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_are_decided_exactly() {
        let ty = FixedType::signed(8, 8).unwrap(); // integers -128..127
                                                   // y = x / 3 + 1/6 reaches 0.5 at x = 1 exactly: >= counts it, > does not.
        let (a, b) = (1.0 / 3.0, 1.0 / 6.0);
        // 1/3 and 1/6 are rounded f64s: their sum at x = 1 is just below or
        // above 0.5; the exact decision follows the stored constants.
        let exact = sign(a, 1, 0, b, 0.5);
        let s = stairs(ty, a, b, &[0.5], &[false]).unwrap();
        assert_eq!(
            s.thresholds,
            vec![if exact == Ordering::Less { 2 } else { 1 }]
        );
        // Dyadic constants tie exactly.
        let s = stairs(ty, 0.25, 0.25, &[0.5], &[false]).unwrap();
        assert_eq!(s.thresholds, vec![1]);
        let s = stairs(ty, 0.25, 0.25, &[0.5], &[true]).unwrap();
        assert_eq!(s.thresholds, vec![2]);
    }

    #[test]
    fn negative_slopes_reverse_and_zero_slopes_are_constant() {
        let ty = FixedType::signed(8, 8).unwrap();
        // y = -x: y >= -1 for x <= 1, y >= 2 for x <= -2.
        let s = stairs(ty, -1.0, 0.0, &[-1.0, 2.0], &[false, false]).unwrap();
        assert_eq!(s.thresholds, vec![-1, 2]);
        assert_eq!(s.pick, vec![2, 1, 0]);
        let s = stairs(ty, 0.0, 3.0, &[-1.0, 2.0, 5.0], &[false; 3]).unwrap();
        assert_eq!(s.thresholds, vec![128; 3]);
        assert_eq!(s.pick, vec![2; 4]);
        assert!(stairs(ty, f64::NAN, 0.0, &[0.0], &[false])
            .unwrap_err()
            .contains("NaN"));
    }

    #[test]
    fn thresholds_outside_the_codes_saturate() {
        let ty = FixedType::unsigned(4, 4).unwrap(); // 0..15
        let s = stairs(ty, 1.0, 0.0, &[-3.0, 20.0], &[false, false]).unwrap();
        assert_eq!(s.thresholds, vec![0, 16]);
    }
}
