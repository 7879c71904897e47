//! The golden model: exact integer evaluation of a [`QModel`].
//!
//! This is the numerical contract. It is written to be obviously right, not
//! fast: one loop per op, i128 for every sum, each rule exactly as documented
//! on [`QOp`]. The CPU engine and the HDL kernels are tested bit for bit
//! against it.
//!
//! One shortcut is taken where it is proven to change nothing (see
//! [`Arithmetic`]): a multiply-accumulate whose products' sum provably fits
//! in an i64 sums them in i64, weight by weight over whole rows of a
//! convolution, instead of one i128 rounding step per product: calibration
//! and `eval` of image models spend their time in that loop.
//! [`Arithmetic::Exact`] turns it off; a property test checks that both give
//! the same bits.

use crate::accum::MacLayout;
use crate::fixed::FixedType;
use crate::qmodel::{step_apply, PoolKind, QLayer, QModel, QOp, TensorId, ROUTE_ZERO};
use crate::taps::Taps;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GoldenError {
    #[error("input has {got} values but model '{model}' expects {expected} ({shapes})")]
    InputLength {
        model: String,
        got: usize,
        expected: usize,
        /// The inputs' names and shapes, as a person reads them.
        shapes: String,
    },
    #[error("input value {raw} at index {index} of input '{input}' is outside its type {ty}")]
    InputRange {
        input: String,
        index: usize,
        raw: i64,
        ty: FixedType,
    },
}

/// How a multiply-accumulate sums its products. Both give identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// Every sum in i128: the definition, kept to check the other against.
    Exact,
    /// Products summed in i64 where a bound proves the sum cannot overflow
    /// (see `Mac::fast_shift`), in i128 elsewhere.
    Fast,
}

/// A model made ready to evaluate many events: the per-layer facts that do
/// not depend on the event (convolution taps, weight magnitudes) computed
/// once. Shared by reference between threads.
pub struct Golden<'m> {
    model: &'m QModel,
    macs: Vec<Option<Mac>>,
    taps: Vec<Option<Taps>>,
}

impl<'m> Golden<'m> {
    pub fn new(model: &'m QModel, arithmetic: Arithmetic) -> Self {
        let ty = |l: &QLayer| model.ty(l.inputs[0]);
        let macs = model
            .layers
            .iter()
            .map(|l| match &l.op {
                QOp::Dense {
                    n_in,
                    weights,
                    w_ty,
                    b_ty,
                    acc_ty,
                    ..
                } => Some(Mac::new(
                    (ty(l), *w_ty, *b_ty, *acc_ty),
                    weights.chunks((*n_in).max(1)),
                    arithmetic,
                )),
                QOp::Conv {
                    window,
                    weights,
                    w_ty,
                    b_ty,
                    acc_ty,
                    ..
                } => Some(Mac::new(
                    (ty(l), *w_ty, *b_ty, *acc_ty),
                    weights.chunks((window.group_channels() * window.kernel_size()).max(1)),
                    arithmetic,
                )),
                QOp::Scale {
                    scale,
                    s_ty,
                    b_ty,
                    acc_ty,
                    ..
                } => Some(Mac::new(
                    (ty(l), *s_ty, *b_ty, *acc_ty),
                    scale.chunks(1),
                    arithmetic,
                )),
                _ => None,
            })
            .collect();
        let taps = model
            .layers
            .iter()
            .map(|l| match &l.op {
                QOp::Conv { window, .. } => Some(Taps::new(window)),
                _ => None,
            })
            .collect();
        Golden { model, macs, taps }
    }

    /// Evaluates the model on one event of raw input values (the flat input)
    /// and returns every tensor (index = [`TensorId`]): the inputs first,
    /// then each layer's output.
    pub fn evaluate_all(&self, input: &[i64]) -> Result<Vec<Vec<i64>>, GoldenError> {
        let model = self.model;
        check_input(model, input)?;
        let mut tensors: Vec<Vec<i64>> = Vec::with_capacity(model.tensors());
        tensors.extend((0..model.inputs.len()).map(|k| input[model.input_range(k)].to_vec()));
        for (i, layer) in model.layers.iter().enumerate() {
            let prep = Prepared {
                mac: self.macs[i].as_ref(),
                taps: self.taps[i].as_ref(),
            };
            let out = eval_layer(model, layer, prep, &tensors);
            tensors.push(out);
        }
        Ok(tensors)
    }

    /// Evaluates the model on one event and returns the flat output's raw values.
    pub fn evaluate(&self, input: &[i64]) -> Result<Vec<i64>, GoldenError> {
        Ok(self.model.gather_outputs(&self.evaluate_all(input)?))
    }
}

/// Evaluates the model on one event of raw input values and returns every
/// tensor (index = [`TensorId`]): the inputs first, then each layer's output.
/// For many events, make one [`Golden`] and use it for all.
pub fn evaluate_all(model: &QModel, input: &[i64]) -> Result<Vec<Vec<i64>>, GoldenError> {
    Golden::new(model, Arithmetic::Fast).evaluate_all(input)
}

/// Evaluates the model on one event and returns the flat output's raw values.
pub fn evaluate(model: &QModel, input: &[i64]) -> Result<Vec<i64>, GoldenError> {
    Golden::new(model, Arithmetic::Fast).evaluate(input)
}

/// Quantizes one event's float features (the flat input) with each input's
/// type, as every backend does on the way in.
pub fn quantize_input(model: &QModel, features: &[f32]) -> Vec<i64> {
    features
        .iter()
        .zip(model.input_types())
        .map(|(&x, ty)| ty.quantize_f64(x as f64))
        .collect()
}

/// One event's flat input raw values as the real numbers they stand for.
pub fn dequantize_input(model: &QModel, raw: &[i64]) -> Vec<f64> {
    raw.iter()
        .zip(model.input_types())
        .map(|(&r, ty)| ty.to_f64(r))
        .collect()
}

/// One event's flat output raw values as the real numbers they stand for.
pub fn dequantize_output(model: &QModel, raw: &[i64]) -> Vec<f64> {
    raw.iter()
        .zip(model.output_types())
        .map(|(&r, ty)| ty.to_f64(r))
        .collect()
}

fn check_input(model: &QModel, input: &[i64]) -> Result<(), GoldenError> {
    if input.len() != model.input_len() {
        return Err(GoldenError::InputLength {
            model: model.name.clone(),
            got: input.len(),
            expected: model.input_len(),
            shapes: model
                .inputs
                .iter()
                .map(|p| format!("'{}' {:?}", p.name, p.shape))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    for (k, p) in model.inputs.iter().enumerate() {
        let r = model.input_range(k);
        if let Some((index, &raw)) = input[r.clone()]
            .iter()
            .enumerate()
            .find(|(_, &v)| !p.ty.contains_raw(v))
        {
            return Err(GoldenError::InputRange {
                input: p.name.clone(),
                index,
                raw,
                ty: p.ty,
            });
        }
    }
    Ok(())
}

/// The multiply-accumulate shared by Dense, Conv and Scale (see [`QOp`]):
/// terms aligned by [`MacLayout`], summed exactly, then the accumulator's and
/// the output's quantization.
struct Mac {
    layout: MacLayout,
    acc: FixedType,
    /// The largest `sum |w|` over the layer's rows of weights (one row per
    /// output neuron or channel), saturated at `i128::MAX`.
    w_abs_sum: i128,
    arithmetic: Arithmetic,
}

/// What [`eval_layer`] gets from [`Golden`] for one layer.
#[derive(Clone, Copy)]
struct Prepared<'a> {
    mac: Option<&'a Mac>,
    taps: Option<&'a Taps>,
}

impl Mac {
    /// The MAC of inputs, weights, bias and accumulator types `(x, w, b,
    /// acc)` over the layer's `rows` of weights.
    fn new<'w>(
        (x, w, b, acc): (FixedType, FixedType, FixedType, FixedType),
        rows: impl Iterator<Item = &'w [i64]>,
        arithmetic: Arithmetic,
    ) -> Self {
        let w_abs_sum = rows
            .map(|r| {
                r.iter()
                    .fold(0i128, |s, &v| s.saturating_add(v.unsigned_abs() as i128))
            })
            .max()
            .unwrap_or(0);
        Mac {
            layout: MacLayout::new(x, w, b, acc),
            acc,
            w_abs_sum,
            arithmetic,
        }
    }

    /// `Some(shift)` when the i64 sum is proven to give the exact result on
    /// the layer input `x`, with `shift` the left shift that brings a product
    /// to the accumulator's LSB.
    ///
    /// Proof. Let `X = max |x|` over this event's inputs and `W` the largest
    /// `sum |w|` of a row. Every partial sum of products `sum w_j * x_j` (in
    /// any order, over any subset of a row, as padding leaves out) is at most
    /// `W * X` in magnitude, and so is each product. If `W * X * 2^shift <=
    /// i64::MAX`, no product nor partial sum overflows an i64. The exact path
    /// adds `round_to_lsb(w_j * x_j)` to the aligned bias; when the
    /// accumulator is at least as fine as a product (`shift >= 0`) that
    /// rounding is the left shift `w_j * x_j * 2^shift`, exact and without
    /// saturation under the same bound, and a shift distributes over the sum.
    /// So `bias + (sum w_j * x_j) * 2^shift`, computed in i128 from the i64
    /// sum, is the exact path's sum. A coarser accumulator rounds every
    /// product by itself, which does not distribute: that takes the exact
    /// path.
    fn fast_shift(&self, x: &[i64]) -> Option<u32> {
        if self.arithmetic == Arithmetic::Exact {
            return None;
        }
        let shift = u32::try_from(self.layout.acc_frac - self.layout.prod_frac).ok()?;
        let x_abs = x.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as i128;
        let bound = self.w_abs_sum.checked_mul(x_abs)?;
        (bound.checked_shl(shift).filter(|b| b >> shift == bound)? <= i64::MAX as i128)
            .then_some(shift)
    }

    /// `bias + sum w * x` at the accumulator's LSB, every product rounded
    /// to it by itself and summed in i128: the definition.
    fn exact_sum(&self, bias: i64, terms: impl Iterator<Item = (i64, i64)>) -> i128 {
        let mut sum = self.layout.bias(bias);
        for (w, x) in terms {
            sum += self.layout.product(w as i128 * x as i128);
        }
        sum
    }

    /// The same sum from `products = sum w * x`, computed in i64 where
    /// [`Mac::fast_shift`] gave `shift`.
    fn fast_sum(&self, bias: i64, shift: u32, products: i64) -> i128 {
        self.layout.bias(bias) + ((products as i128) << shift)
    }

    /// A sum at the accumulator's LSB quantized to the accumulator, then to `out`.
    fn finish(&self, sum: i128, out: FixedType) -> i64 {
        let af = self.layout.acc_frac;
        let acc = self.acc.quantize_raw(sum, af);
        out.quantize_raw(acc as i128, af)
    }
}

fn eval_layer(model: &QModel, layer: &QLayer, prep: Prepared, tensors: &[Vec<i64>]) -> Vec<i64> {
    let arg = |k: usize| -> (&[i64], FixedType) {
        let t: TensorId = layer.inputs[k];
        (&tensors[t], model.ty(t))
    };
    let out_ty = layer.ty;
    let out_len: usize = layer.shape.iter().product();
    let requant = |raw: i128, frac: i32| out_ty.quantize_raw(raw, frac);
    let mac = || prep.mac.expect("Golden prepares every MAC layer");
    match &layer.op {
        QOp::Dense {
            n_in,
            n_out,
            weights,
            bias,
            ..
        } => {
            let (x, mac) = (arg(0).0, mac());
            let fast = mac.fast_shift(x);
            (0..*n_out)
                .map(|o| {
                    let row = &weights[o * n_in..(o + 1) * n_in];
                    let terms = row.iter().copied().zip(x.iter().copied());
                    let sum = match fast {
                        None => mac.exact_sum(bias[o], terms),
                        Some(shift) => {
                            mac.fast_sum(bias[o], shift, terms.map(|(w, v)| w * v).sum())
                        }
                    };
                    mac.finish(sum, out_ty)
                })
                .collect()
        }
        QOp::Conv {
            window,
            out_channels,
            weights,
            bias,
            ..
        } => {
            let (x, mac) = (arg(0).0, mac());
            let taps = prep.taps.expect("Golden prepares every Conv's taps");
            let fast = mac.fast_shift(x);
            let (ksz, inp, gc) = (
                window.kernel_size(),
                window.in_positions(),
                window.group_channels(),
            );
            let per_oc = gc * ksz;
            let mut y = Vec::with_capacity(out_len);
            let mut products = vec![0i64; taps.positions()];
            for oc in 0..*out_channels {
                let g = window.group_of(oc, *out_channels);
                let w = &weights[oc * per_oc..(oc + 1) * per_oc];
                match fast {
                    None => y.extend((0..taps.positions()).map(|p| {
                        // The taps of Window::conv_taps(g, p), input channel by
                        // input channel of the group.
                        let terms = (0..gc).flat_map(|ic| {
                            taps.at(p)
                                .map(move |(k, q)| (w[ic * ksz + k], x[(g * gc + ic) * inp + q]))
                        });
                        mac.finish(mac.exact_sum(bias[oc], terms), out_ty)
                    })),
                    // The same products, summed weight by weight over all positions.
                    Some(shift) => {
                        products.fill(0);
                        let group = x.chunks(inp).skip(g * gc).take(gc);
                        for (ic, xc) in group.enumerate() {
                            for k in 0..ksz {
                                let wk = w[ic * ksz + k];
                                for r in taps.runs(k) {
                                    r.accumulate(&mut products, xc, wk);
                                }
                            }
                        }
                        y.extend(
                            products
                                .iter()
                                .map(|&s| mac.finish(mac.fast_sum(bias[oc], shift, s), out_ty)),
                        );
                    }
                }
            }
            y
        }
        QOp::Scale { scale, shift, .. } => {
            let (x, mac) = (arg(0).0, mac());
            let fast = mac.fast_shift(x);
            (0..out_len)
                .map(|i| {
                    let sum = match fast {
                        None => mac.exact_sum(shift[i], std::iter::once((scale[i], x[i]))),
                        Some(sh) => mac.fast_sum(shift[i], sh, scale[i] * x[i]),
                    };
                    mac.finish(sum, out_ty)
                })
                .collect()
        }
        QOp::Relu => {
            let (x, t) = arg(0);
            x.iter()
                .map(|&v| requant(v.max(0) as i128, t.frac_bits()))
                .collect()
        }
        QOp::LeakyRelu { alpha, a_ty } => {
            let (x, t) = arg(0);
            let pf = t.frac_bits() + a_ty.frac_bits();
            x.iter()
                .map(|&v| {
                    if v >= 0 {
                        requant(v as i128, t.frac_bits())
                    } else {
                        requant(v as i128 * *alpha as i128, pf)
                    }
                })
                .collect()
        }
        QOp::PRelu { alpha, a_ty } => {
            let (x, t) = arg(0);
            let pf = t.frac_bits() + a_ty.frac_bits();
            x.iter()
                .zip(alpha)
                .map(|(&v, &a)| {
                    if v >= 0 {
                        requant(v as i128, t.frac_bits())
                    } else {
                        requant(v as i128 * a as i128, pf)
                    }
                })
                .collect()
        }
        QOp::ThresholdedRelu { theta } => {
            let (x, t) = arg(0);
            x.iter()
                .map(|&v| requant(if v > *theta { v as i128 } else { 0 }, t.frac_bits()))
                .collect()
        }
        QOp::Clip { lo, hi } => {
            let (x, t) = arg(0);
            x.iter()
                .map(|&v| requant(v.clamp(*lo, *hi) as i128, t.frac_bits()))
                .collect()
        }
        QOp::Table { table, .. } => arg(0).0.iter().map(|&v| table.lookup(v)).collect(),
        QOp::Step { thresholds, values } => arg(0)
            .0
            .iter()
            .enumerate()
            .map(|(i, &v)| step_apply(thresholds, values, i, v))
            .collect(),
        QOp::Softmax {
            n,
            exp_ty,
            exp_table,
            inv_ty,
            inv_table,
        } => {
            let (x, _) = arg(0);
            let pf = exp_ty.frac_bits() + inv_ty.frac_bits();
            let mut y = Vec::with_capacity(out_len);
            for group in x.chunks(*n) {
                let m = *group.iter().max().expect("softmax group is never empty");
                let e: Vec<i64> = group.iter().map(|&v| exp_table.lookup(v - m)).collect();
                let s: i128 = e.iter().map(|&v| v as i128).sum();
                let r = inv_table.lookup(s.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
                y.extend(e.iter().map(|&v| requant(v as i128 * r as i128, pf)));
            }
            y
        }
        QOp::Argmax { n } => {
            let (x, _) = arg(0);
            let one = out_ty.quantize_raw(1, 0);
            let mut y = vec![0; out_len];
            for (g, group) in x.chunks(*n).enumerate() {
                let best = (0..group.len()).fold(0, |b, i| if group[i] > group[b] { i } else { b });
                y[g * n + best] = one;
            }
            y
        }
        QOp::Pool {
            kind,
            window,
            recip,
            recip_ty,
        } => {
            let (x, t) = arg(0);
            let mut y = Vec::with_capacity(out_len);
            for w in window.pool_windows() {
                let vals = w.iter().map(|&i| x[i]);
                y.push(match kind {
                    PoolKind::Max => requant(vals.max().unwrap_or(0) as i128, t.frac_bits()),
                    PoolKind::Average => {
                        let sum: i128 = vals.map(|v| v as i128).sum();
                        requant(
                            sum * recip[w.len()] as i128,
                            t.frac_bits() + recip_ty.frac_bits(),
                        )
                    }
                });
            }
            y
        }
        QOp::Add | QOp::Sub | QOp::Mul | QOp::Max | QOp::Min => {
            let op = layer.op.binary().expect("a binary op");
            let ((a, ta), (b, tb)) = (arg(0), arg(1));
            let (fa, fb) = (ta.frac_bits(), tb.frac_bits());
            a.iter()
                .zip(b)
                .map(|(&u, &v)| requant(op.exact(u, fa, v, fb), op.frac(fa, fb)))
                .collect()
        }
        QOp::Route { src } => src
            .iter()
            .map(|&(k, j)| {
                if k == ROUTE_ZERO {
                    return 0;
                }
                let (x, t) = arg(k as usize);
                requant(x[j as usize] as i128, t.frac_bits())
            })
            .collect(),
        QOp::Requant => {
            let (x, t) = arg(0);
            x.iter()
                .map(|&v| requant(v as i128, t.frac_bits()))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(rows: &[&[i64]], extra_acc_frac: i32) -> Mac {
        let x = FixedType::signed(64, 64).unwrap();
        let w = FixedType::signed(64, 64).unwrap();
        let acc = FixedType::signed(64, 64 - extra_acc_frac).unwrap();
        Mac::new((x, w, x, acc), rows.iter().copied(), Arithmetic::Fast)
    }

    #[test]
    fn the_fast_path_is_taken_exactly_up_to_the_i64_bound() {
        // W * X * 2^shift <= i64::MAX is the condition; W is the worst row.
        let m = mac(&[&[3, -4], &[i64::MAX / 8]], 0);
        assert_eq!(m.fast_shift(&[8, -1]), Some(0), "W * 8 = MAX - 7");
        assert_eq!(m.fast_shift(&[9, 0]), None, "W * 9 > MAX");
        assert_eq!(m.fast_shift(&[-9]), None, "|x| counts");
        let m = mac(&[&[i64::MAX]], 0);
        assert_eq!(m.fast_shift(&[1, -1, 0]), Some(0));
        assert_eq!(m.fast_shift(&[2]), None);
        assert_eq!(mac(&[&[i64::MIN]], 0).fast_shift(&[1]), None, "|MIN| > MAX");
        // A finer accumulator shifts every product left.
        let m = mac(&[&[1 << 30]], 2);
        assert_eq!(m.fast_shift(&[(1 << 31) - 1]), Some(2));
        assert_eq!(m.fast_shift(&[1 << 31]), None);
        // A coarser one rounds every product: never the fast path.
        assert_eq!(mac(&[&[1]], -1).fast_shift(&[1]), None);
        let exact = Mac {
            arithmetic: Arithmetic::Exact,
            ..mac(&[&[1]], 0)
        };
        assert_eq!(exact.fast_shift(&[1]), None);
    }

    #[test]
    fn at_the_bound_the_fast_sum_is_the_exact_sum() {
        for (w, x, extra) in [
            (i64::MAX, 1, 0),
            (-i64::MAX, 1, 0),
            (1 << 30, -((1i64 << 31) - 1), 2),
        ] {
            let m = mac(&[&[w]], extra);
            let shift = m.fast_shift(&[x]).expect("within the bound");
            assert_eq!(
                m.fast_sum(-5, shift, w * x),
                m.exact_sum(-5, std::iter::once((w, x)))
            );
        }
    }
}
