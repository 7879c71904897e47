//! Structural checks of a [`QModel`]: every backend indexes arrays by the
//! shapes recorded in the model, so a model from a file is checked once here
//! instead of each backend guarding every index.

use crate::qmodel::{QModel, QOp, Table, Window, ROUTE_ZERO};

/// The most values one tensor of an event may hold (2^24): far above any
/// trigger network, and low enough that every buffer a backend sizes by a
/// tensor stays small. Shapes read from files are checked against it before
/// anything is allocated for them.
pub const MAX_TENSOR_LEN: usize = 1 << 24;

/// The number of values in `shape`; a message when it is above
/// [`MAX_TENSOR_LEN`] (or overflows).
pub fn tensor_len(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_LEN)
        .ok_or_else(|| {
            format!("shape {shape:?} holds more than {MAX_TENSOR_LEN} values, the limit per tensor")
        })
}

/// A window's input positions, output positions and kernel size; `None`
/// unless it has one kernel size, stride and pair of pads (and, when given,
/// one dilation of each kind) per spatial dimension, every one of them at
/// most [`MAX_TENSOR_LEN`] (so that no sum or product of them wraps), inputs,
/// kernels, strides and dilations of at least 1, a dilated kernel no larger
/// than the padded dilated input, and groups that divide the channels.
fn window_sizes(w: &Window) -> Option<(usize, usize, usize)> {
    let sp = w.in_spatial.len();
    let dims = [
        &w.in_spatial,
        &w.kernel,
        &w.stride,
        &w.pad_begin,
        &w.pad_end,
    ];
    let dilations = [&w.dilation, &w.in_dilation];
    if dims
        .iter()
        .chain(dilations.iter().filter(|v| !v.is_empty()))
        .any(|v| v.len() != sp || v.iter().any(|&x| x > MAX_TENSOR_LEN))
        || w.groups == 0
        || !w.in_channels.is_multiple_of(w.groups)
    {
        return None;
    }
    let (mut inp, mut outp, mut ksz) = (1usize, 1usize, 1usize);
    for d in 0..sp {
        let (n, k, s) = (w.in_spatial[d], w.kernel[d], w.stride[d]);
        if n == 0 || k == 0 || s == 0 || w.dil(d) == 0 || w.in_dil(d) == 0 {
            return None;
        }
        let extent = (n - 1).checked_mul(w.in_dil(d))? + 1;
        let span = (k - 1).checked_mul(w.dil(d))? + 1;
        let padded = extent + w.pad_begin[d] + w.pad_end[d];
        if padded < span {
            return None;
        }
        inp = inp.checked_mul(n)?;
        outp = outp.checked_mul((padded - span) / s + 1)?;
        ksz = ksz.checked_mul(k)?;
    }
    Some((inp, outp, ksz))
}

/// The model's inputs and outputs: at least one of each, inputs of valid
/// non-empty shapes, outputs naming layer tensors. Every backend checks
/// this before it lays out an event.
pub fn ports(m: &QModel) -> Result<(), String> {
    if m.inputs.is_empty() {
        return Err("the model has no input".into());
    }
    for p in &m.inputs {
        tensor_len(&p.shape).map_err(|e| format!("input '{}': {e}", p.name))?;
        if p.is_empty() {
            return Err(format!("input '{}' has an empty shape", p.name));
        }
    }
    if m.outputs.is_empty() {
        return Err("the model has no output".into());
    }
    if let Some(o) = m
        .outputs
        .iter()
        .find(|o| o.tensor >= m.tensors() || m.layer_of(o.tensor).is_none())
    {
        return Err(format!(
            "output '{}' names tensor {}; outputs are layer tensors ({}..{})",
            o.name,
            o.tensor,
            m.inputs.len(),
            m.tensors()
        ));
    }
    Ok(())
}

/// Returns a message naming the first inconsistent layer.
pub fn validate(m: &QModel) -> Result<(), String> {
    ports(m)?;
    for (i, l) in m.layers.iter().enumerate() {
        let fail = |msg: String| Err(format!("layer {i} '{}' ({}): {msg}", l.name, l.op.kind()));
        if let Err(e) = tensor_len(&l.shape) {
            return fail(e);
        }
        if let QOp::Clip { lo, hi } = l.op {
            if lo > hi {
                return fail(format!("lower bound {lo} is above the upper bound {hi}"));
            }
        }
        let own = m.layer_tensor(i);
        if l.inputs.is_empty() || l.inputs.iter().any(|&t| t >= own) {
            return fail(format!(
                "inputs {:?} must name earlier tensors (0..{own})",
                l.inputs
            ));
        }
        let out_len: usize = l.shape.iter().product();
        let in_len = m.tensor_len(l.inputs[0]);
        let table_ok = |t: &Table| !t.values.is_empty() && t.shift < 64;
        let ok = match &l.op {
            QOp::Dense {
                n_in,
                n_out,
                weights,
                bias,
                ..
            } => {
                *n_in == in_len
                    && *n_out == out_len
                    && weights.len() == n_in * n_out
                    && bias.len() == *n_out
            }
            QOp::Conv {
                window,
                out_channels,
                weights,
                bias,
                ..
            } => window_sizes(window).is_some_and(|(inp, outp, ksz)| {
                window.in_channels.checked_mul(inp) == Some(in_len)
                    && out_channels.is_multiple_of(window.groups)
                    && out_channels.checked_mul(outp) == Some(out_len)
                    && out_channels
                        .checked_mul(window.group_channels())
                        .and_then(|n| n.checked_mul(ksz))
                        == Some(weights.len())
                    && bias.len() == *out_channels
            }),
            QOp::Scale { scale, shift, .. } => {
                scale.len() == out_len && shift.len() == out_len && in_len == out_len
            }
            QOp::PRelu { alpha, .. } => alpha.len() == out_len && in_len == out_len,
            QOp::Table { table, .. } => table_ok(table) && in_len == out_len,
            QOp::Step { thresholds, values } => {
                let sets = crate::qmodel::step_sets(thresholds, values);
                let k = thresholds.len() / sets.max(1);
                sets >= 1
                    && thresholds.len() == sets * k
                    && out_len.is_multiple_of(sets)
                    && thresholds.chunks(k.max(1)).all(|t| t.is_sorted())
                    && in_len == out_len
            }
            QOp::Softmax {
                n,
                exp_table,
                inv_table,
                ..
            } => {
                *n > 0
                    && out_len.is_multiple_of(*n)
                    && table_ok(exp_table)
                    && table_ok(inv_table)
                    && in_len == out_len
            }
            QOp::Argmax { n } => *n > 0 && out_len.is_multiple_of(*n) && in_len == out_len,
            QOp::Pool { window, recip, .. } => {
                window_sizes(window).is_some_and(|(inp, outp, ksz)| {
                    window.groups == 1
                        && window.in_channels.checked_mul(inp) == Some(in_len)
                        && window.in_channels.checked_mul(outp) == Some(out_len)
                        && recip.len() > ksz
                })
            }
            QOp::Add | QOp::Sub | QOp::Mul | QOp::Max | QOp::Min => {
                l.inputs.len() == 2 && m.tensor_len(l.inputs[1]) == in_len && out_len == in_len
            }
            QOp::Route { src } => {
                src.len() == out_len
                    && src.iter().all(|&(k, j)| {
                        k == ROUTE_ZERO
                            || (k as usize) < l.inputs.len()
                                && (j as usize) < m.tensor_len(l.inputs[k as usize])
                    })
            }
            QOp::Relu
            | QOp::LeakyRelu { .. }
            | QOp::ThresholdedRelu { .. }
            | QOp::Clip { .. }
            | QOp::Requant => in_len == out_len,
        };
        if !ok {
            return fail(format!(
                "sizes do not match its input of {in_len} values and output shape {:?}",
                l.shape
            ));
        }
    }
    Ok(())
}
