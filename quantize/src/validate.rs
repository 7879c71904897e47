//! Structural checks of a [`QModel`]: every backend indexes arrays by the
//! shapes recorded in the model, so a model from a file is checked once here
//! instead of each backend guarding every index.

use crate::qmodel::{QModel, QOp, Table};

/// Returns a message naming the first inconsistent layer.
pub fn validate(m: &QModel) -> Result<(), String> {
    if m.input_len() == 0 {
        return Err("the input shape is empty".into());
    }
    for (i, l) in m.layers.iter().enumerate() {
        let fail = |msg: String| Err(format!("layer {i} '{}' ({}): {msg}", l.name, l.op.kind()));
        if l.inputs.is_empty() || l.inputs.iter().any(|&t| t > i) {
            return fail(format!(
                "inputs {:?} must name earlier tensors (0..={i})",
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
            } => {
                let sp = window.in_spatial.len();
                window.kernel.len() == sp
                    && window.stride.len() == sp
                    && window.pad_begin.len() == sp
                    && window.pad_end.len() == sp
                    && window.stride.iter().all(|&s| s > 0)
                    && (0..sp).all(|d| {
                        window.in_spatial[d] + window.pad_begin[d] + window.pad_end[d]
                            >= window.kernel[d]
                    })
                    && window.in_channels * window.in_positions() == in_len
                    && out_channels * window.out_positions() == out_len
                    && weights.len() == out_channels * window.in_channels * window.kernel_size()
                    && bias.len() == *out_channels
            }
            QOp::Scale { scale, shift, .. } => {
                scale.len() == out_len && shift.len() == out_len && in_len == out_len
            }
            QOp::PRelu { alpha, .. } => alpha.len() == out_len && in_len == out_len,
            QOp::Table { table, .. } => table_ok(table) && in_len == out_len,
            QOp::Step { thresholds, values } => {
                values.len() == thresholds.len() + 1 && in_len == out_len
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
                let sp = window.in_spatial.len();
                window.kernel.len() == sp
                    && window.stride.iter().all(|&s| s > 0)
                    && window.stride.len() == sp
                    && window.pad_begin.len() == sp
                    && window.pad_end.len() == sp
                    && (0..sp).all(|d| {
                        window.in_spatial[d] + window.pad_begin[d] + window.pad_end[d]
                            >= window.kernel[d]
                    })
                    && window.in_channels * window.in_positions() == in_len
                    && window.in_channels * window.out_positions() == out_len
                    && recip.len() > window.kernel_size()
            }
            QOp::Add => {
                l.inputs.len() == 2 && m.tensor_len(l.inputs[1]) == in_len && out_len == in_len
            }
            QOp::Route { src } => {
                src.len() == out_len
                    && src.iter().all(|&(k, j)| {
                        (k as usize) < l.inputs.len()
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
