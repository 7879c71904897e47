//! The golden model: exact integer evaluation of a [`QModel`].
//!
//! This is the numerical contract. It is written to be obviously right, not
//! fast: one loop per op, i128 for every sum, each rule exactly as documented
//! on [`QOp`]. The CPU engine and the HDL kernels are tested bit for bit
//! against it.

use crate::accum::MacLayout;
use crate::fixed::FixedType;
use crate::qmodel::{PoolKind, QLayer, QModel, QOp, TensorId, ROUTE_ZERO};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GoldenError {
    #[error("input has {got} values but model '{model}' expects {expected} (shape {shape:?})")]
    InputLength {
        model: String,
        got: usize,
        expected: usize,
        shape: Vec<usize>,
    },
    #[error("input value {raw} at index {index} is outside the input type {ty}")]
    InputRange {
        index: usize,
        raw: i64,
        ty: FixedType,
    },
}

/// Evaluates the model on one event of raw input values and returns every
/// tensor (index = [`TensorId`]): the input first, then each layer's output.
pub fn evaluate_all(model: &QModel, input: &[i64]) -> Result<Vec<Vec<i64>>, GoldenError> {
    check_input(model, input)?;
    let mut tensors: Vec<Vec<i64>> = Vec::with_capacity(model.layers.len() + 1);
    tensors.push(input.to_vec());
    for layer in &model.layers {
        let out = eval_layer(model, layer, &tensors);
        tensors.push(out);
    }
    Ok(tensors)
}

/// Evaluates the model on one event and returns the output tensor's raw values.
pub fn evaluate(model: &QModel, input: &[i64]) -> Result<Vec<i64>, GoldenError> {
    Ok(evaluate_all(model, input)?.pop().unwrap_or_default())
}

/// Quantizes float features with the model's input type, as every backend does on the way in.
pub fn quantize_input(model: &QModel, features: &[f32]) -> Vec<i64> {
    features
        .iter()
        .map(|&x| model.input_ty.quantize_f64(x as f64))
        .collect()
}

/// Output raw values as the real numbers they stand for.
pub fn dequantize_output(model: &QModel, raw: &[i64]) -> Vec<f64> {
    let ty = model.output_ty();
    raw.iter().map(|&r| ty.to_f64(r)).collect()
}

fn check_input(model: &QModel, input: &[i64]) -> Result<(), GoldenError> {
    if input.len() != model.input_len() {
        return Err(GoldenError::InputLength {
            model: model.name.clone(),
            got: input.len(),
            expected: model.input_len(),
            shape: model.input_shape.clone(),
        });
    }
    if let Some((index, &raw)) = input
        .iter()
        .enumerate()
        .find(|(_, &r)| !model.input_ty.contains_raw(r))
    {
        return Err(GoldenError::InputRange {
            index,
            raw,
            ty: model.input_ty,
        });
    }
    Ok(())
}

/// The multiply-accumulate shared by Dense, Conv and Scale (see [`QOp`]):
/// terms aligned by [`MacLayout`], summed exactly, then the accumulator's and
/// the output's quantization.
struct Mac {
    layout: MacLayout,
    acc: FixedType,
}

impl Mac {
    fn new(x: FixedType, w: FixedType, b: FixedType, acc: FixedType) -> Self {
        Mac {
            layout: MacLayout::new(x, w, b, acc),
            acc,
        }
    }

    fn run(&self, bias: i64, terms: impl Iterator<Item = (i64, i64)>, out: FixedType) -> i64 {
        let af = self.layout.acc_frac;
        let mut sum = self.layout.bias(bias);
        for (w, x) in terms {
            sum += self.layout.product(w as i128 * x as i128);
        }
        let acc = self.acc.quantize_raw(sum, af);
        out.quantize_raw(acc as i128, af)
    }
}

fn eval_layer(model: &QModel, layer: &QLayer, tensors: &[Vec<i64>]) -> Vec<i64> {
    let arg = |k: usize| -> (&[i64], FixedType) {
        let t: TensorId = layer.inputs[k];
        (&tensors[t], model.ty(t))
    };
    let out_ty = layer.ty;
    let out_len: usize = layer.shape.iter().product();
    let requant = |raw: i128, frac: i32| out_ty.quantize_raw(raw, frac);
    match &layer.op {
        QOp::Dense {
            n_in,
            n_out,
            weights,
            w_ty,
            bias,
            b_ty,
            acc_ty,
        } => {
            let (x, x_ty) = arg(0);
            let mac = Mac::new(x_ty, *w_ty, *b_ty, *acc_ty);
            (0..*n_out)
                .map(|o| {
                    let row = &weights[o * n_in..(o + 1) * n_in];
                    mac.run(bias[o], row.iter().copied().zip(x.iter().copied()), out_ty)
                })
                .collect()
        }
        QOp::Conv {
            window,
            out_channels,
            weights,
            w_ty,
            bias,
            b_ty,
            acc_ty,
        } => {
            let (x, x_ty) = arg(0);
            let mac = Mac::new(x_ty, *w_ty, *b_ty, *acc_ty);
            let per_oc = window.group_channels() * window.kernel_size();
            let mut y = Vec::with_capacity(out_len);
            for oc in 0..*out_channels {
                let g = window.group_of(oc, *out_channels);
                for p in 0..window.out_positions() {
                    let terms = window
                        .conv_taps(g, p)
                        .map(|(j, i)| (weights[oc * per_oc + j], x[i]));
                    y.push(mac.run(bias[oc], terms, out_ty));
                }
            }
            y
        }
        QOp::Scale {
            scale,
            s_ty,
            shift,
            b_ty,
            acc_ty,
        } => {
            let (x, x_ty) = arg(0);
            let mac = Mac::new(x_ty, *s_ty, *b_ty, *acc_ty);
            (0..out_len)
                .map(|i| mac.run(shift[i], std::iter::once((scale[i], x[i])), out_ty))
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
            .map(|&v| values[thresholds.iter().filter(|&&t| v >= t).count()])
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
