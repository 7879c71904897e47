//! Exact accumulator types: wide enough that a multiply-accumulate never
//! rounds or wraps. Derived from the actual constant weights rather than from
//! fan-in alone, so hardware adders are no wider than the values need.

use crate::fixed::FixedType;

/// Widest accumulator any backend handles (raw values are `i64`).
pub const MAX_ACC_WIDTH: u32 = 64;

/// The smallest signed type with LSB `2^-frac` holding every integer in `[lo, hi]`.
pub fn covering_type(lo: i128, hi: i128, frac: i32) -> Result<FixedType, String> {
    let mut width = 1u32;
    while width <= 127 {
        let half = 1i128 << (width - 1);
        if lo >= -half && hi < half {
            break;
        }
        width += 1;
    }
    if width > MAX_ACC_WIDTH {
        return Err(format!(
            "an exact accumulator needs {width} bits (range {lo}..={hi} at 2^-{frac}), more than the {MAX_ACC_WIDTH} supported: narrow the input or weight types, or set an accumulator type"
        ));
    }
    FixedType::signed(width, width as i32 - frac).map_err(|e| e.to_string())
}

/// Exact accumulator for `bias + sum w * x` over rows of constant weights with
/// inputs anywhere in `x`'s range.
pub fn exact_accumulator<'a>(
    x: FixedType,
    w: FixedType,
    b: FixedType,
    rows: impl Iterator<Item = (i64, &'a [i64])>,
) -> Result<FixedType, String> {
    let pf = x.frac_bits() + w.frac_bits();
    let af = pf.max(b.frac_bits());
    let (xlo, xhi) = (x.min_raw() as i128, x.max_raw() as i128);
    let (mut lo, mut hi) = (0i128, 0i128);
    for (bias, ws) in rows {
        let b_al = (bias as i128) << (af - b.frac_bits()) as u32;
        let (mut rlo, mut rhi) = (b_al, b_al);
        for &wv in ws {
            let (p1, p2) = (wv as i128 * xlo, wv as i128 * xhi);
            let sh = (af - pf) as u32;
            rlo += p1.min(p2) << sh;
            rhi += p1.max(p2) << sh;
        }
        lo = lo.min(rlo);
        hi = hi.max(rhi);
    }
    covering_type(lo, hi, af)
}
