//! Building the lookup tables that stand for non-linear functions.
//!
//! A table is computed once, in float, at quantization time, and from then on
//! it *is* the function: the golden model, the engine and the hardware ROMs
//! read the same integers.

use crate::fixed::FixedType;
use crate::qmodel::Table;
use serde::{Deserialize, Serialize};

/// Default number of address bits of an activation table (1,024 entries, as hls4ml).
pub const DEFAULT_TABLE_BITS: u32 = 10;

/// Elementwise functions realised as tables.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TableFn {
    Sigmoid,
    Tanh,
    Softplus,
    Softsign,
    Elu(f64),
    Selu(f64, f64),
    HardSigmoid(f64, f64),
    Exp,
    /// `sqrt(max(x, 0))`: a negative input (rounding below an exact zero)
    /// gives 0 instead of NaN.
    Sqrt,
}

impl TableFn {
    pub fn eval(&self, x: f64) -> f64 {
        match *self {
            TableFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            TableFn::Tanh => x.tanh(),
            TableFn::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            TableFn::Softsign => x / (1.0 + x.abs()),
            TableFn::Elu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            TableFn::Selu(a, g) => g * if x >= 0.0 { x } else { a * x.exp_m1() },
            TableFn::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            TableFn::Exp => x.exp(),
            TableFn::Sqrt => x.max(0.0).sqrt(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            TableFn::Sigmoid => "sigmoid",
            TableFn::Tanh => "tanh",
            TableFn::Softplus => "softplus",
            TableFn::Softsign => "softsign",
            TableFn::Elu(_) => "elu",
            TableFn::Selu(..) => "selu",
            TableFn::HardSigmoid(..) => "hard_sigmoid",
            TableFn::Exp => "exp",
            TableFn::Sqrt => "sqrt",
        }
    }

    /// Input interval outside which the function is flat to within half
    /// the output's LSB (and at least the interval a 10-bit output needs);
    /// the table spends its entries inside it.
    fn busy_range(&self, out_ty: FixedType) -> Option<(f64, f64)> {
        let half_lsb = (-(out_ty.frac_bits() as f64) - 1.0).exp2().min(0.5);
        match *self {
            TableFn::Sigmoid => {
                let x = (1.0 / half_lsb - 1.0).ln().max(8.0);
                Some((-x, x))
            }
            TableFn::Tanh => {
                let x = (1.0 - half_lsb).atanh().max(4.0);
                Some((-x, x))
            }
            TableFn::HardSigmoid(a, b) if a != 0.0 => {
                let (p, q) = ((-b) / a, (1.0 - b) / a);
                Some((p.min(q), p.max(q)))
            }
            _ => None,
        }
    }
}

/// A table of `2^bits` entries at most over the input type's codes: every code
/// has its own entry when the input is narrow enough, otherwise each entry
/// covers `2^shift` neighbouring codes and holds the function at their centre.
pub fn table_over(
    in_ty: FixedType,
    lo_raw: i64,
    hi_raw: i64,
    bits: u32,
    out_ty: FixedType,
    f: impl Fn(f64) -> f64,
) -> Table {
    let span = (hi_raw as i128 - lo_raw as i128 + 1).max(1);
    let mut shift = 0u32;
    while (span + (1i128 << shift) - 1) >> shift > (1i128 << bits) {
        shift += 1;
    }
    let len = ((span + (1i128 << shift) - 1) >> shift) as usize;
    let values = (0..len)
        .map(|i| {
            let first = lo_raw as i128 + ((i as i128) << shift);
            let last = (first + (1i128 << shift) - 1).min(hi_raw as i128);
            let centre = (first + last) as f64 / 2.0;
            out_ty.quantize_f64(f(centre * (-in_ty.frac_bits() as f64).exp2()))
        })
        .collect();
    Table {
        offset: lo_raw,
        shift,
        values,
    }
}

/// Table for an elementwise activation on inputs of type `in_ty`.
pub fn function_table(func: TableFn, in_ty: FixedType, bits: u32, out_ty: FixedType) -> Table {
    let (mut lo, mut hi) = (in_ty.min_raw(), in_ty.max_raw());
    if let Some((a, b)) = func.busy_range(out_ty) {
        lo = lo.max(in_ty.quantize_f64(a));
        hi = hi.min(in_ty.quantize_f64(b)).max(lo);
    }
    table_over(in_ty, lo, hi, bits, out_ty, |x| func.eval(x))
}

/// The two tables of the stable softmax (see `QOp::Softmax`): `exp(d)` for
/// `d = x - max <= 0` at the input's LSB, and `1/s` for sums `s` in `[1, n]`
/// at `exp_ty`'s LSB.
pub fn softmax_tables(
    in_ty: FixedType,
    n: usize,
    bits: u32,
    exp_ty: FixedType,
    inv_ty: FixedType,
) -> (Table, Table) {
    // Differences below -16 give exp < 1.2e-7: below any useful output LSB.
    let d_lo = in_ty
        .quantize_f64(-16.0)
        .max(-(in_ty.max_raw() - in_ty.min_raw()));
    let exp_table = table_over(in_ty, d_lo.min(0), 0, bits, exp_ty, f64::exp);
    let one = exp_ty.quantize_f64(1.0);
    let s_hi = (one as i128 * n as i128).min(i64::MAX as i128) as i64;
    let inv_table = table_over(exp_ty, one.min(s_hi), s_hi, bits, inv_ty, |s| {
        1.0 / s.max(f64::MIN_POSITIVE)
    });
    (exp_table, inv_table)
}
