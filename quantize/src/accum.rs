//! The multiply-accumulate's bits, written once for every backend: where a
//! product, the bias and the accumulator sit ([`MacLayout`]), the rounding
//! step that aligns them ([`round_to_lsb`]), and exact accumulator types,
//! wide enough that a MAC never rounds or wraps. Those are derived from the
//! actual constant weights rather than from fan-in alone, so hardware adders
//! are no wider than the values need.

use crate::fixed::{FixedType, Rounding};

/// Rounds `raw * 2^-from` to the LSB `2^-to` with rounding mode `r`, without
/// any overflow handling: the step every multiply-accumulate applies to its
/// products and bias before summing.
pub fn round_to_lsb(raw: i128, from: i32, to: i32, r: Rounding) -> i128 {
    if to >= from {
        let sh = (to - from) as u32;
        return raw
            .checked_shl(sh)
            .filter(|v| v >> sh == raw)
            .unwrap_or(if raw < 0 {
                i128::MIN
            } else if raw > 0 {
                i128::MAX
            } else {
                0
            });
    }
    let sh = (from - to) as u32;
    if sh >= 127 {
        // |raw| < 2^127 <= half an LSB: only the sign and the rounding mode matter.
        return if raw < 0 && r == Rounding::Trn { -1 } else { 0 };
    }
    let floor = raw >> sh;
    let rem = raw - (floor << sh); // 0 <= rem < 2^sh
    if rem == 0 {
        return floor;
    }
    let half = 1i128 << (sh - 1);
    let up = match r {
        Rounding::Trn => false,
        Rounding::TrnZero => raw < 0,
        Rounding::Rnd => rem >= half,
        Rounding::RndZero => rem > half || (rem == half && raw < 0),
        Rounding::RndInf => rem > half || (rem == half && raw > 0),
        Rounding::RndMinInf => rem > half,
        Rounding::RndConv => rem > half || (rem == half && floor & 1 == 1),
    };
    floor + up as i128
}

/// Where the bits of a multiply-accumulate `bias + sum w * x` sit: the one
/// rule the golden model, the CPU engine and the FPGA builder all follow, so
/// they cannot disagree about an alignment.
///
/// A product `w * x` has the sum of its operands' fraction bits; the bias has
/// its own. Both are brought to the accumulator's LSB with the accumulator's
/// rounding mode (a left shift when the accumulator is finer, which is exact).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacLayout {
    /// Fraction bits of one product `w * x`.
    pub prod_frac: i32,
    /// Fraction bits of the bias as stored.
    pub bias_frac: i32,
    /// Fraction bits of the accumulator.
    pub acc_frac: i32,
    /// Rounding applied where a term has more fraction bits than the accumulator.
    pub rounding: Rounding,
}

impl MacLayout {
    /// The layout of inputs `x`, weights `w`, bias `b` summed into `acc`.
    pub fn new(x: FixedType, w: FixedType, b: FixedType, acc: FixedType) -> MacLayout {
        MacLayout {
            prod_frac: x.frac_bits() + w.frac_bits(),
            bias_frac: b.frac_bits(),
            acc_frac: acc.frac_bits(),
            rounding: acc.rounding,
        }
    }

    /// The fraction bits at which no term rounds: the finer of product and bias.
    pub fn exact_frac(x: FixedType, w: FixedType, b: FixedType) -> i32 {
        (x.frac_bits() + w.frac_bits()).max(b.frac_bits())
    }

    /// The bias (raw at `bias_frac`) at the accumulator's LSB.
    pub fn bias(&self, raw: i64) -> i128 {
        round_to_lsb(raw as i128, self.bias_frac, self.acc_frac, self.rounding)
    }

    /// A product `w * x` (raw at `prod_frac`) at the accumulator's LSB.
    pub fn product(&self, raw: i128) -> i128 {
        round_to_lsb(raw, self.prod_frac, self.acc_frac, self.rounding)
    }
}

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
    let af = MacLayout::exact_frac(x, w, b);
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
