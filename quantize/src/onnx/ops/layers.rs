//! Ops that become computing layers: Dense (MatMul, Gemm), Conv, pools,
//! Softmax, the activations with parameters (PRelu, Clip), and the
//! elementwise affines (BatchNormalization, Add/Sub/Mul/Div with a constant)
//! that fold into the layer before them.

use crate::ir::Op;
use crate::onnx::builder::Builder;
use crate::onnx::decode::Node;
use crate::onnx::shape::{broadcast_to, onnx_axis, window};
use crate::onnx::value::{Act, Value};
use crate::qmodel::{PoolKind, Window};

/// MatMul and Gemm: a Dense layer, weights stored `[n_out][n_in]`, Gemm's
/// `alpha`/`beta` multiplied in (which drops an exact quantizer type).
pub fn dense(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    if matches!(n.inputs[0], Some(Value::Const(_))) {
        return Err("constant x activation products are not supported; export weights as the second operand".into());
    }
    if x.shape.len() != 1 {
        return Err(format!(
            "input has shape {:?} per event; Dense layers need a flat vector (add a Flatten)",
            x.shape
        ));
    }
    let xlen = x.shape[0];
    let w = n.konst(1)?;
    if w.shape.len() != 2 {
        return Err(format!(
            "weight '{}' has shape {:?}; expected 2-D",
            n.proto.input[1], w.shape
        ));
    }
    let gemm = n.op() == "Gemm";
    let (alpha, beta) = if gemm {
        (n.attr_f("alpha", 1.0), n.attr_f("beta", 1.0))
    } else {
        (1.0, 1.0)
    };
    if gemm && n.attr_i("transA", 0) != 0 {
        return Err("transA=1 would transpose the batch: not supported".into());
    }
    let trans_b = gemm && n.attr_i("transB", 0) != 0;
    let (k, m) = if trans_b {
        (w.shape[1], w.shape[0])
    } else {
        (w.shape[0], w.shape[1])
    };
    if k != xlen {
        return Err(format!(
            "weight '{}' of shape {:?} does not match an input of {xlen} features",
            n.proto.input[1], w.shape
        ));
    }
    let weights: Vec<f64> = (0..m)
        .flat_map(|o| {
            (0..k).map(move |i| {
                if trans_b {
                    w.data[o * k + i]
                } else {
                    w.data[i * m + o]
                }
            })
        })
        .map(|v| v * alpha)
        .collect();
    let (bias, b_quant) = match n.opt_const(2) {
        Some(c) => (
            broadcast_to(c, &[m])
                .ok_or_else(|| format!("bias of shape {:?} does not broadcast to [{m}]", c.shape))?
                .iter()
                .map(|v| v * beta)
                .collect(),
            c.quant.filter(|_| beta == 1.0),
        ),
        None => (vec![0.0; m], None),
    };
    let op = Op::Dense {
        n_in: k,
        n_out: m,
        weights,
        bias,
        w_quant: w.quant.filter(|_| alpha == 1.0),
        b_quant,
    };
    Ok(Value::Act(b.push(n.name.into(), op, vec![x.id], vec![m])))
}

/// Add, Sub, Mul, Div: two activations add into an Add layer; with a
/// constant they are an elementwise affine.
pub fn arith(b: &mut Builder, n: &Node, _x: &Act) -> Result<Value, String> {
    let op = n.op();
    match (&n.inputs[0], n.inputs.get(1).and_then(|v| v.as_ref())) {
        (Some(Value::Act(a)), Some(Value::Act(c))) => {
            if op != "Add" {
                return Err(format!(
                    "{op} of two activations is not supported (only Add is)"
                ));
            }
            if a.shape != c.shape {
                return Err(format!("Add of shapes {:?} and {:?}: broadcasting between activations is not supported", a.shape, c.shape));
            }
            Ok(Value::Act(b.push(
                n.name.into(),
                Op::Add,
                vec![a.id, c.id],
                a.shape.clone(),
            )))
        }
        (Some(Value::Act(a)), Some(Value::Const(c)))
        | (Some(Value::Const(c)), Some(Value::Act(a))) => {
            let act_first = matches!(n.inputs[0], Some(Value::Act(_)));
            let bshape: Vec<usize> = std::iter::once(1).chain(a.shape.iter().copied()).collect();
            let v = broadcast_to(c, &bshape).ok_or_else(|| {
                format!(
                    "constant of shape {:?} does not broadcast to the input [1, {:?}]",
                    c.shape, a.shape
                )
            })?;
            let len = v.len();
            let (scale, shift): (Vec<f64>, Vec<f64>) = match (op, act_first) {
                ("Add", _) => (vec![1.0; len], v),
                ("Sub", true) => (vec![1.0; len], v.iter().map(|x| -x).collect()),
                ("Sub", false) => (vec![-1.0; len], v),
                ("Mul", _) => (v, vec![0.0; len]),
                ("Div", true) => {
                    if v.contains(&0.0) {
                        return Err("division by a constant zero".into());
                    }
                    (v.iter().map(|x| 1.0 / x).collect(), vec![0.0; len])
                }
                _ => return Err("dividing a constant by an activation is not supported".into()),
            };
            Ok(Value::Act(b.affine(n, a, scale, shift)))
        }
        _ => Err("missing input".into()),
    }
}

/// BatchNormalization in inference form: a per-channel affine.
pub fn batch_norm(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let (s, bias, mean, var) = (n.konst(1)?, n.konst(2)?, n.konst(3)?, n.konst(4)?);
    let eps = n.attr_f("epsilon", 1e-5);
    let c = x.shape.first().copied().unwrap_or(1);
    if [s, bias, mean, var].iter().any(|p| p.data.len() != c) {
        return Err(format!("parameters must have one value per channel ({c})"));
    }
    let a: Vec<f64> = (0..c)
        .map(|i| s.data[i] / (var.data[i] + eps).sqrt())
        .collect();
    let sh: Vec<f64> = (0..c).map(|i| bias.data[i] - mean.data[i] * a[i]).collect();
    let xlen: usize = x.shape.iter().product();
    let per = xlen / c.max(1);
    let scale: Vec<f64> = (0..xlen).map(|j| a[j / per]).collect();
    let shift: Vec<f64> = (0..xlen).map(|j| sh[j / per]).collect();
    Ok(Value::Act(b.affine(n, x, scale, shift)))
}

/// 1-D and 2-D convolutions without groups or dilation.
pub fn conv(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let w = n.konst(1)?;
    if n.attr_i("group", 1) != 1 {
        return Err("grouped or depthwise convolution (group != 1) is not supported".into());
    }
    let spatial = x.shape.len().saturating_sub(1);
    if !(1..=2).contains(&spatial) || w.shape.len() != spatial + 2 {
        return Err(format!(
            "input shape {:?} with weights {:?}: only 1-D and 2-D convolutions are supported",
            x.shape, w.shape
        ));
    }
    if n.attr_ints("dilations")
        .is_some_and(|d| d.iter().any(|&v| v != 1))
    {
        return Err("dilations other than 1 are not supported".into());
    }
    let window = window(n, x, w.shape[2..].to_vec())?;
    if w.shape[1] != window.in_channels {
        return Err(format!(
            "weights have {} input channels, the input has {}",
            w.shape[1], window.in_channels
        ));
    }
    let oc = w.shape[0];
    let bias = match n.opt_const(2) {
        Some(c) => c.data.clone(),
        None => vec![0.0; oc],
    };
    let mut shape = vec![oc];
    shape.extend(window.out_spatial());
    let op = Op::Conv {
        window,
        out_channels: oc,
        weights: w.data.clone(),
        bias,
        w_quant: w.quant,
        b_quant: n.opt_const(2).and_then(|c| c.quant),
    };
    Ok(Value::Act(b.push(n.name.into(), op, vec![x.id], shape)))
}

/// MaxPool, AveragePool and their Global forms (one window over all of each channel).
pub fn pool(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let op = n.op();
    let global = op.starts_with("Global");
    let kernel: Vec<usize> = if global {
        x.shape[1..].to_vec()
    } else {
        n.attr_ints("kernel_shape")
            .ok_or("missing kernel_shape")?
            .iter()
            .map(|&v| v as usize)
            .collect()
    };
    if n.attr_i("ceil_mode", 0) != 0 {
        return Err("ceil_mode=1 is not supported".into());
    }
    if op == "AveragePool" && n.attr_i("count_include_pad", 0) != 0 {
        return Err("count_include_pad=1 is not supported".into());
    }
    let window = if global {
        Window {
            in_channels: x.shape[0],
            in_spatial: x.shape[1..].to_vec(),
            stride: vec![1; kernel.len()],
            pad_begin: vec![0; kernel.len()],
            pad_end: vec![0; kernel.len()],
            kernel,
        }
    } else {
        window(n, x, kernel)?
    };
    let mut shape = vec![window.in_channels];
    shape.extend(window.out_spatial());
    let kind = if op.contains("Max") {
        PoolKind::Max
    } else {
        PoolKind::Average
    };
    Ok(Value::Act(b.push(
        n.name.into(),
        Op::Pool { kind, window },
        vec![x.id],
        shape,
    )))
}

pub fn prelu(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let slope =
        broadcast_to(n.konst(1)?, &x.shape).ok_or("slope does not broadcast to the input shape")?;
    Ok(b.unary(n.name, x, Op::PRelu(slope)))
}

/// Clip: bounds are attributes before opset 11, optional constant inputs since.
pub fn clip(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let (lo, hi) = if b.opset < 11 {
        (n.attr_f("min", f64::MIN), n.attr_f("max", f64::MAX))
    } else {
        (
            n.opt_const(1).map(|c| c.data[0]).unwrap_or(f64::MIN),
            n.opt_const(2).map(|c| c.data[0]).unwrap_or(f64::MAX),
        )
    };
    Ok(b.unary(n.name, x, Op::Clip(lo, hi)))
}

/// Softmax over groups of `n` consecutive values: before opset 13 over
/// everything from `axis` on, since over the last axis only.
pub fn softmax(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let rank = x.shape.len() + 1;
    let default = if b.opset < 13 { 1 } else { -1 };
    let axis = onnx_axis(n.attr_i("axis", default), rank)?;
    if axis == 0 {
        return Err("softmax over the batch axis is not supported".into());
    }
    let group: usize = if b.opset < 13 {
        x.shape[axis - 1..].iter().product()
    } else if axis == rank - 1 {
        x.shape[axis - 1]
    } else {
        return Err(format!(
            "softmax over axis {axis} of a rank-{rank} tensor: only the last axis is supported"
        ));
    };
    Ok(b.unary(n.name, x, Op::Softmax { n: group }))
}
