//! Float IR + precision configuration -> [`QModel`]: the one place where real
//! numbers become integers. Every conversion states its rounding; comparisons
//! against constants (Clip bounds, thresholds) are converted so the integer
//! comparison gives exactly the float comparison's answer.

use crate::accum::exact_accumulator;
use crate::config::{Config, ResolvedLayer, SoftmaxMode};
use crate::fixed::{FixedType, Overflow, Rounding};
use crate::ir::{step_of, Affine, Graph, Op};
use crate::qmodel::{Port, QLayer, QModel, QOp, TensorId};
use crate::tables::{function_table, softmax_tables};
use crate::thresholds::{stairs, Stairs};

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("layer '{layer}' ({kind}): {msg}")]
    Layer {
        layer: String,
        kind: &'static str,
        msg: String,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Raw value `r` with `r * 2^-f >= v` smallest (ceil), saturated to `ty`'s range.
fn ceil_raw(ty: FixedType, v: f64) -> i64 {
    let floor = ty.with_rounding(Rounding::Trn).with_overflow(Overflow::Sat);
    let r = floor.quantize_f64(v);
    if ty.to_f64(r) < v && r < ty.max_raw() {
        r + 1
    } else {
        r
    }
}

/// The integer thresholds and values of a Step on `len` inputs of type
/// `ty` ([`QOp::Step`]): one set, or with an affine map folded in, one set
/// per element (one in all when every element's set is the same). A
/// threshold above every code is one past the largest (never reached).
fn step_sets(
    ty: FixedType,
    len: usize,
    thresholds: &[f64],
    strict: &[bool],
    affine: &Option<Affine>,
    values: &[i64],
) -> Result<(Vec<i64>, Vec<i64>), String> {
    let k = values.len() - 1;
    let per_element = thresholds.len() != k;
    if per_element && thresholds.len() != k * len {
        return Err(format!(
            "{} thresholds for {len} elements of {k} each",
            thresholds.len()
        ));
    }
    if let Some(f) = affine {
        if f.a.len() != len || f.b.len() != len {
            return Err(format!(
                "the affine map has {} and {} coefficients for {len} elements",
                f.a.len(),
                f.b.len()
            ));
        }
    }
    // One set for all, unless the thresholds or the map differ by element.
    let count = if affine.is_none() && !per_element {
        1
    } else {
        len
    };
    let mut sets = (0..count)
        .map(|i| {
            let (a, b) = affine.as_ref().map_or((1.0, 0.0), |f| (f.a[i], f.b[i]));
            let (t, st) = step_of(thresholds, strict, k, i);
            stairs(ty, a, b, t, st)
        })
        .collect::<Result<Vec<Stairs>, _>>()?;
    if sets.iter().all(|s| *s == sets[0]) {
        sets.truncate(1);
    }
    Ok((
        sets.iter()
            .flat_map(|s| s.thresholds.iter().copied())
            .collect(),
        sets.iter()
            .flat_map(|s| s.pick.iter().map(|&k| values[k]))
            .collect(),
    ))
}

/// Raw value `r` with `r * 2^-f <= v` largest (floor), saturated to `ty`'s range.
fn floor_raw(ty: FixedType, v: f64) -> i64 {
    ty.with_rounding(Rounding::Trn)
        .with_overflow(Overflow::Sat)
        .quantize_f64(v)
}

/// Weights, weight type, bias, bias type, accumulator type.
type MacOperands = (Vec<i64>, FixedType, Vec<i64>, FixedType, FixedType);

/// Integer weights and bias of a Dense or Conv layer (one row of weights per
/// bias value), their types (exact QONNX types win over the configuration),
/// and the accumulator: configured, or exact for these very weights.
fn mac_operands(
    x_ty: FixedType,
    s: &ResolvedLayer,
    weights: &[f64],
    bias: &[f64],
    w_quant: Option<FixedType>,
    b_quant: Option<FixedType>,
) -> Result<MacOperands, String> {
    let w_ty = w_quant.unwrap_or(s.weight);
    let b_ty = b_quant.unwrap_or(s.bias);
    let w: Vec<i64> = weights.iter().map(|&v| w_ty.quantize_f64(v)).collect();
    let b: Vec<i64> = bias.iter().map(|&v| b_ty.quantize_f64(v)).collect();
    let k = w.len() / b.len().max(1);
    let acc_ty = match s.accum {
        Some(a) => a,
        None => exact_accumulator(
            x_ty,
            w_ty,
            b_ty,
            b.iter().zip(w.chunks(k.max(1))).map(|(&bo, row)| (bo, row)),
        )?,
    };
    Ok((w, w_ty, b, b_ty, acc_ty))
}

/// `ty` with its integer bits set to just hold every value of `v`.
fn fit_int_bits(ty: FixedType, v: &[f64]) -> FixedType {
    let m = v.iter().fold(0f64, |a, x| a.max(x.abs()));
    if m == 0.0 {
        return ty;
    }
    let int_bits = m.log2().floor() as i32 + 1 + ty.signed as i32;
    FixedType { int_bits, ..ty }
}

/// Is tensor `t` read only by QONNX quantizers (a Quant, or a staircase
/// with the affine map before a quantizer folded in), possibly through one Relu?
/// Then the layer that makes it keeps its exact value, so the quantizer
/// rounds once, as the QONNX float semantics do. A graph output is never
/// such a tensor: it has a type of its own.
pub(crate) fn feeds_quant_only(g: &Graph, t: TensorId) -> bool {
    if g.outputs.iter().any(|o| o.tensor == t) {
        return false;
    }
    let readers: Vec<(usize, &Op)> = g
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.inputs.contains(&t))
        .map(|(i, l)| (i, &l.op))
        .collect();
    !readers.is_empty()
        && readers.iter().all(|(i, op)| match op {
            Op::Quant(_)
            | Op::Step {
                affine: Some(_), ..
            } => true,
            Op::Relu => feeds_quant_only(g, g.layer_tensor(*i)),
            _ => false,
        })
}

/// Quantizes the float graph with the given configuration.
pub fn quantize_graph(g: &Graph, cfg: &Config) -> Result<QModel, QuantizeError> {
    cfg.check_names(
        &g.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        &g.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        &g.outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
    )?;
    let inputs: Vec<Port> = g
        .inputs
        .iter()
        .map(|i| Port {
            name: i.name.clone(),
            shape: i.shape.clone(),
            ty: cfg.input_type(&i.name),
        })
        .collect();
    // The result type a graph output sets for the layer that computes it.
    let output_ty = |li: usize| {
        g.outputs
            .iter()
            .filter(|o| g.layer_of(o.tensor) == Some(li))
            .find_map(|o| cfg.output.get(&o.name).copied())
    };
    let mut layers: Vec<QLayer> = Vec::with_capacity(g.layers.len());
    let ty_of = |layers: &[QLayer], t: TensorId| match g.layer_of(t) {
        None => inputs[t].ty,
        Some(li) => layers[li].ty,
    };
    for (i, l) in g.layers.iter().enumerate() {
        let kind = l.op.kind();
        let err = |msg: String| QuantizeError::Layer {
            layer: l.name.clone(),
            kind,
            msg,
        };
        let mut s = cfg.resolve(&l.name, kind);
        let out_set = output_ty(i);
        if let Some(t) = out_set {
            s.result = t;
        }
        let x_ty = ty_of(&layers, l.inputs[0]);
        let explicit_result =
            out_set.is_some() || cfg.layer.get(&l.name).and_then(|ls| ls.result).is_some();
        // A layer feeding quantizers keeps every bit, so that they round
        // once, as the model does; so does a Dense or Conv with QONNX-typed
        // weights (a quantization-aware model's integer accumulator is its
        // result, code for code: the logits of a QAT classifier, say).
        let exact_out = !explicit_result && feeds_quant_only(g, g.layer_tensor(i));
        let mut ty = s.result;
        let q =
            |t: FixedType, v: &[f64]| v.iter().map(|&x| t.quantize_f64(x)).collect::<Vec<i64>>();
        let op = match &l.op {
            Op::Dense {
                n_in,
                n_out,
                weights,
                bias,
                w_quant,
                b_quant,
            } => {
                let (w, w_ty, b, b_ty, acc_ty) =
                    mac_operands(x_ty, &s, weights, bias, *w_quant, *b_quant).map_err(err)?;
                if exact_out || (w_quant.is_some() && !explicit_result) {
                    ty = acc_ty;
                }
                QOp::Dense {
                    n_in: *n_in,
                    n_out: *n_out,
                    weights: w,
                    w_ty,
                    bias: b,
                    b_ty,
                    acc_ty,
                }
            }
            Op::Conv {
                window,
                out_channels,
                weights,
                bias,
                w_quant,
                b_quant,
            } => {
                let (w, w_ty, b, b_ty, acc_ty) =
                    mac_operands(x_ty, &s, weights, bias, *w_quant, *b_quant).map_err(err)?;
                if exact_out || (w_quant.is_some() && !explicit_result) {
                    ty = acc_ty;
                }
                QOp::Conv {
                    window: window.clone(),
                    out_channels: *out_channels,
                    weights: w,
                    w_ty,
                    bias: b,
                    b_ty,
                    acc_ty,
                }
            }
            Op::Scale { scale, shift } => {
                // Folded normalisations have coefficients far from 1: unless the
                // layer's weight type is set by name, keep its width but fit its
                // integer bits to the largest coefficient, so small scales keep
                // their precision.
                let named = cfg.layer.get(&l.name);
                let s_ty = match named.and_then(|ls| ls.weight) {
                    Some(t) => t,
                    None => fit_int_bits(s.weight, scale),
                };
                let b_ty = match named.and_then(|ls| ls.bias) {
                    Some(t) => t,
                    None => fit_int_bits(s.bias, shift),
                };
                let (sc, sh) = (q(s_ty, scale), q(b_ty, shift));
                let acc_ty = match s.accum {
                    Some(a) => a,
                    None => exact_accumulator(
                        x_ty,
                        s_ty,
                        b_ty,
                        (0..sc.len()).map(|j| (sh[j], &sc[j..j + 1])),
                    )
                    .map_err(err)?,
                };
                if exact_out {
                    ty = acc_ty;
                }
                QOp::Scale {
                    scale: sc,
                    s_ty,
                    shift: sh,
                    b_ty,
                    acc_ty,
                }
            }
            Op::Relu => {
                if exact_out {
                    ty = x_ty;
                }
                QOp::Relu
            }
            Op::LeakyRelu(a) => QOp::LeakyRelu {
                alpha: s.weight.quantize_f64(*a),
                a_ty: s.weight,
            },
            Op::PRelu(a) => QOp::PRelu {
                alpha: q(s.weight, a),
                a_ty: s.weight,
            },
            // x > theta  <=>  x_raw > floor(theta * 2^f)
            Op::ThresholdedRelu(t) => QOp::ThresholdedRelu {
                theta: floor_raw(x_ty, *t),
            },
            // Bounds with no input value between them (min > max, which
            // ONNX defines as "everything becomes max", or both between two
            // adjacent values) clip everything to `hi`.
            Op::Clip(lo, hi) => {
                let hi = floor_raw(x_ty, *hi);
                QOp::Clip {
                    lo: ceil_raw(x_ty, *lo).min(hi),
                    hi,
                }
            }
            Op::Func(f) => QOp::Table {
                func: f.name().into(),
                table: function_table(*f, x_ty, s.table_bits, ty),
            },
            Op::Step {
                thresholds,
                values,
                strict,
                affine,
                out,
            } => {
                if let Some(t) = out {
                    // A QONNX quantizer's own type: its values exactly.
                    ty = *t;
                } else if !explicit_result && values.iter().all(|&v| v == 0.0 || v == 1.0) {
                    // A decision (a comparison's 0 or 1) is one unsigned bit.
                    ty = FixedType::unsigned(1, 1).expect("valid type");
                }
                let (thresholds, values) = step_sets(
                    x_ty,
                    l.shape.iter().product(),
                    thresholds,
                    strict,
                    affine,
                    &q(ty, values),
                )
                .map_err(err)?;
                QOp::Step { thresholds, values }
            }
            Op::Softmax { n } => match cfg.model.softmax {
                SoftmaxMode::Stable => {
                    let (exp_ty, inv_ty) = (cfg.model.softmax_exp, cfg.model.softmax_inv);
                    let (exp_table, inv_table) =
                        softmax_tables(x_ty, *n, s.table_bits, exp_ty, inv_ty);
                    QOp::Softmax {
                        n: *n,
                        exp_ty,
                        exp_table,
                        inv_ty,
                        inv_table,
                    }
                }
                SoftmaxMode::Argmax => {
                    ty = FixedType::unsigned(1, 1).expect("valid type");
                    QOp::Argmax { n: *n }
                }
            },
            Op::Pool { kind, window } => {
                let recip_ty = FixedType::unsigned(18, 1).expect("valid type");
                let recip = (0..=window.kernel_size())
                    .map(|c| {
                        if c == 0 {
                            0
                        } else {
                            recip_ty
                                .with_rounding(Rounding::Rnd)
                                .quantize_f64(1.0 / c as f64)
                        }
                    })
                    .collect();
                QOp::Pool {
                    kind: *kind,
                    window: window.clone(),
                    recip,
                    recip_ty,
                }
            }
            Op::Binary(b) => {
                if l.exact {
                    let (ta, tb) = (ty_of(&layers, l.inputs[0]), ty_of(&layers, l.inputs[1]));
                    ty = b.exact_type(ta, tb).map_err(err)?;
                }
                b.qop()
            }
            Op::Route { src } => {
                // Wiring keeps its input's type when all inputs agree: no rounding at all.
                let tys: Vec<FixedType> = l.inputs.iter().map(|&t| ty_of(&layers, t)).collect();
                if tys.iter().all(|t| *t == tys[0]) && !explicit_result {
                    ty = tys[0];
                }
                QOp::Route { src: src.clone() }
            }
            Op::Quant(t) => {
                ty = *t;
                QOp::Requant
            }
        };
        layers.push(QLayer {
            name: l.name.clone(),
            inputs: l.inputs.clone(),
            shape: l.shape.clone(),
            ty,
            reuse: s.reuse,
            op,
        });
    }
    let model = QModel {
        name: g.name.clone(),
        inputs,
        layers,
        outputs: g.outputs.clone(),
    };
    crate::validate::validate(&model).map_err(|msg| QuantizeError::Layer {
        layer: model.name.clone(),
        kind: "model",
        msg,
    })?;
    Ok(model)
}
