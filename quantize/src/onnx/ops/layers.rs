//! Ops that become computing layers: Dense (MatMul, Gemm), Conv, pools,
//! Softmax, the activations with parameters (PRelu, Clip), and the
//! elementwise affines (BatchNormalization, Add/Sub/Mul/Div with a constant)
//! that fold into the layer before them.

use crate::fixed::FixedType;
use crate::ir::Op;
use crate::onnx::builder::Builder;
use crate::onnx::decode::Node;
use crate::onnx::qonnx::code_type;
use crate::onnx::shape::{
    broadcast_map, broadcast_shape, broadcast_to, explicit_pads, per_dim, split_pads,
    transpose_map, window,
};
use crate::onnx::value::{mixes_events, Act, Const, Value};
use crate::qmodel::{BinOp, PoolKind, Window};
use crate::thresholds::odd_dyadic;
use num_integer::Integer;

/// MatMul and Gemm: a Dense layer, weights stored `[n_out][n_in]`, Gemm's
/// `alpha`/`beta` multiplied in (which drops an exact quantizer type).
/// A MatMul of two activations is [`matmul_acts`]; an input of more than
/// one axis per event is [`rowwise`]: the same Dense on every row.
pub fn dense(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    if matches!(n.inputs[0], Some(Value::Const(_))) {
        return Err("constant x activation products are not supported; export weights as the second operand".into());
    }
    if let Some(Some(Value::Act(y))) = n.inputs.get(1) {
        if n.op() == "MatMul" {
            return matmul_acts(b, n, x, y);
        }
        return Err("Gemm of two activations is not supported; export a MatMul".into());
    }
    if x.batch == Some(x.rank() - 1) {
        return Err(mixes_events("a product over the last axis"));
    }
    if x.shape.is_empty() {
        return Err("input has no feature axis per event".into());
    }
    let xlen = *x.shape.last().expect("not empty");
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
    if let Op::Dense {
        n_in,
        n_out,
        weights,
        bias,
        ..
    } = &op
    {
        let (n_in, n_out) = (*n_in, *n_out);
        let taken = if x.shape.len() == 1 {
            take_scale(b, n, x, weights, n_in, true, |ints, ty| {
                let op = Op::Dense {
                    n_in,
                    n_out,
                    weights: ints,
                    bias: vec![0.0; n_out],
                    w_quant: Some(ty),
                    b_quant: None,
                };
                (op, vec![n_out])
            })?
        } else {
            None
        };
        if let Some(Taken { id, factors, s, t }) = taken {
            // bias + W (s c + t) = s (W c) + bias + t sum(row)
            let scale = factors.iter().map(|f| f * s).collect();
            let shift = (0..n_out)
                .map(|j| bias[j] + t * weights[j * n_in..(j + 1) * n_in].iter().sum::<f64>())
                .collect();
            let y = b.push(
                format!("{}.scale", n.name),
                Op::Scale { scale, shift },
                vec![id],
                vec![n_out],
            );
            return Ok(Value::Act(y.with_batch(x.batch)));
        }
    }
    Ok(Value::Act(dense_rows(b, n.name, x, op)))
}

/// Each row of `weights` (`n_in` per row) as a factor times integers of at
/// most 16 bits, exactly: quantized weights are, whatever their per-channel
/// float scale. `None` for weights that are not (float weights).
fn integer_rows(weights: &[f64], n_in: usize) -> Option<(Vec<f64>, Vec<f64>)> {
    let (mut factors, mut ints) = (Vec::new(), Vec::with_capacity(weights.len()));
    for row in weights.chunks(n_in.max(1)) {
        let parts: Vec<(u64, i32)> = row
            .iter()
            .filter(|v| **v != 0.0 && v.is_finite())
            .map(|&v| {
                let (m, e) = odd_dyadic(v);
                (m.unsigned_abs(), e)
            })
            .collect();
        if parts.len() != row.iter().filter(|v| **v != 0.0).count() {
            return None;
        }
        let g = parts.iter().fold(0u64, |g, p| g.gcd(&p.0)).max(1);
        let e = parts.iter().map(|p| p.1).min().unwrap_or(0);
        let factor = g as f64 * (e as f64).exp2();
        for &v in row {
            let q = v / factor;
            if q.fract() != 0.0 || q.abs() >= 32768.0 {
                return None;
            }
            ints.push(q);
        }
        factors.push(factor);
    }
    Some((factors, ints))
}

/// A layer of constant `weights` (rows of `per_row`, one per output
/// channel) on a per-tensor affine map of its input (the Scale layer that
/// dequantizes a float-scaled quantizer's codes, `x = s c + t`) takes the
/// map in: that Scale layer becomes `make(integer weights, their type)` on
/// `c`, and the caller puts a Scale after it with `s` times each row's
/// factor (returned, with `s` and `t`). The layer then adds integers
/// exactly and no float scale is rounded; a quantizer after the new Scale
/// makes it thresholds. `None` (nothing changed) when the input is no such
/// map, when `t` is not 0 and `offset` is false (padding would see a code
/// 0 where the model sees 0), or when the weights are not integers times a
/// factor per row.
fn take_scale(
    b: &mut Builder,
    n: &Node,
    x: &Act,
    weights: &[f64],
    per_row: usize,
    offset: bool,
    make: impl FnOnce(Vec<f64>, FixedType) -> (Op, Vec<usize>),
) -> Result<Option<Taken>, String> {
    let Some((factors, ints)) = integer_rows(weights, per_row) else {
        return Ok(None);
    };
    let Some(si) = b.scale_before(n, x) else {
        return Ok(None);
    };
    let (scale, shift) = b.scale_of(si);
    let (s, t) = (scale[0], shift[0]);
    if scale.iter().any(|&v| v != s) || shift.iter().any(|&v| v != t) || (t != 0.0 && !offset) {
        return Ok(None);
    }
    let lo = ints.iter().fold(0f64, |a, &v| a.min(v)) as i64;
    let hi = ints.iter().fold(0f64, |a, &v| a.max(v)) as i64;
    let (op, shape) = make(ints, code_type(lo, hi.max(1))?);
    b.replace_scale(si, n.name.into(), shape, |_, _| op);
    Ok(Some(Taken {
        id: x.id,
        factors,
        s,
        t,
    }))
}

/// What [`take_scale`] did: tensor `id` is now the integer layer; each
/// row's `factors` times `s` and the offset `t` remain to apply.
struct Taken {
    id: usize,
    factors: Vec<f64>,
    s: f64,
    t: f64,
}

/// The Dense `op` on each row (last axis) of `x`: one Dense layer for one
/// row, else [`rowwise`].
pub fn dense_rows(b: &mut Builder, name: &str, x: &Act, op: Op) -> Act {
    let Op::Dense { n_out, .. } = op else {
        unreachable!("dense_rows takes a Dense")
    };
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("a feature axis") = n_out;
    if shape.len() > 1 && shape.iter().product::<usize>() > n_out {
        return rowwise(b, name, x, op).with_batch(x.batch);
    }
    b.push(name.into(), op, vec![x.id], shape)
        .with_batch(x.batch)
}

/// The Dense `op` on every row (last axis) of `x` (rank 2 or more per
/// event, as a MatMul of `[N, P, K]` by `[K, M]` is): a convolution of
/// kernel 1 over the rows, channels first, between two wiring layers that
/// move the feature axis first and back.
fn rowwise(b: &mut Builder, name: &str, x: &Act, op: Op) -> Act {
    let Op::Dense {
        n_in,
        n_out,
        weights,
        bias,
        w_quant,
        b_quant,
    } = op
    else {
        unreachable!("rowwise takes a Dense")
    };
    let rows: usize = x.shape[..x.shape.len() - 1].iter().product();
    let route = |map: Vec<usize>| Op::Route {
        src: map.into_iter().map(|j| (0u16, j as u32)).collect(),
    };
    let cf = b.push(
        format!("{name}.channels_first"),
        route(transpose_map(&[rows, n_in], &[1, 0])),
        vec![x.id],
        vec![n_in, rows],
    );
    let conv = Op::Conv {
        window: Window::plain(n_in, vec![rows], vec![1], vec![1], vec![0], vec![0]),
        out_channels: n_out,
        weights,
        bias,
        w_quant,
        b_quant,
    };
    let y = b.push(name.into(), conv, vec![cf.id], vec![n_out, rows]);
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("rank 2 or more") = n_out;
    b.push(
        format!("{name}.rows"),
        route(transpose_map(&[n_out, rows], &[1, 0])),
        vec![y.id],
        shape,
    )
}

/// MatMul of two activations `a` `[..., M, K]` and `c` `[..., K, P]` (per
/// event, the same leading axes): every product `a[.., i, k] * c[.., k, j]`
/// exactly (two wiring layers lay the operands side by side, an exact Mul
/// multiplies them), then each `(i, j)`'s `K` products summed exactly (a
/// depthwise convolution of ones) into the result type.
fn matmul_acts(b: &mut Builder, n: &Node, a: &Act, c: &Act) -> Result<Value, String> {
    let (ra, rc) = (a.shape.len(), c.shape.len());
    if a.batch.is_some_and(|p| p + 2 >= a.rank()) || c.batch.is_some_and(|p| p + 2 >= c.rank()) {
        return Err(mixes_events("a MatMul over the last two axes"));
    }
    if a.batch != c.batch {
        return Err(format!(
            "MatMul of activations of shapes {:?} and {:?} with their events on different axes",
            a.view(),
            c.view()
        ));
    }
    if ra < 2 || rc < 2 || a.shape[..ra - 2] != c.shape[..rc - 2] {
        return Err(format!(
            "MatMul of activations of shapes {:?} and {:?} per event: both need a matrix per event ([..., M, K] by [..., K, P]) with the same leading axes",
            a.shape, c.shape
        ));
    }
    let (m, k, k2, p) = (
        a.shape[ra - 2],
        a.shape[ra - 1],
        c.shape[rc - 2],
        c.shape[rc - 1],
    );
    if k != k2 {
        return Err(format!(
            "inner dimensions differ: {:?} by {:?}",
            a.shape, c.shape
        ));
    }
    let batch: usize = a.shape[..ra - 2].iter().product();
    let len = batch * m * p * k;
    crate::validate::tensor_len(&[len]).map_err(|e| format!("its {len} products: {e}"))?;
    // Product (t, i, j, kk) at flat ((t * m + i) * p + j) * k + kk.
    let side = |f: &dyn Fn(usize, usize, usize, usize) -> usize| -> Op {
        let mut src = Vec::with_capacity(len);
        for t in 0..batch {
            for i in 0..m {
                for j in 0..p {
                    src.extend((0..k).map(|kk| (0u16, f(t, i, j, kk) as u32)));
                }
            }
        }
        Op::Route { src }
    };
    let shape = vec![batch * m * p, k];
    let left = b.push(
        format!("{}.left", n.name),
        side(&|t, i, _, kk| (t * m + i) * k + kk),
        vec![a.id],
        shape.clone(),
    );
    let right = b.push(
        format!("{}.right", n.name),
        side(&|t, _, j, kk| (t * k + kk) * p + j),
        vec![c.id],
        shape.clone(),
    );
    let prod = b.push(
        format!("{}.products", n.name),
        Op::Binary(BinOp::Mul),
        vec![left.id, right.id],
        shape,
    );
    b.layers.last_mut().expect("just pushed").exact = true;
    let sum = super::reduce::row_sums(batch * m * p, k);
    let mut out = a.shape[..ra - 2].to_vec();
    out.extend([m, p]);
    Ok(Value::Act(
        b.push(n.name.into(), sum, vec![prod.id], out)
            .with_batch(a.batch),
    ))
}

/// `x` seen as the broadcast view `out` (events at `batch`): itself when
/// it has that view, else a Route that repeats its values.
fn broadcast_act(
    b: &mut Builder,
    name: &str,
    x: &Act,
    out: &[usize],
    batch: Option<usize>,
) -> Result<Act, String> {
    let y = Act::from_view(x.id, out.to_vec(), batch);
    if x.view() == out {
        return Ok(y);
    }
    let map = broadcast_map(&x.view(), out)
        .ok_or_else(|| format!("shape {:?} does not broadcast to {out:?}", x.view()))?;
    let src = map.into_iter().map(|j| (0u16, j as u32)).collect();
    Ok(b.push(
        format!("{name}.broadcast"),
        Op::Route { src },
        vec![x.id],
        y.shape,
    )
    .with_batch(batch))
}

/// The numpy broadcast of the views of `acts` and where its event axis is:
/// every operand that has one must have it at the same (right-aligned)
/// place, and broadcasting must not stretch it.
fn broadcast_views(op: &str, acts: &[&Act]) -> Result<(Vec<usize>, Option<usize>), String> {
    let mut out = acts[0].view();
    for a in &acts[1..] {
        out = broadcast_shape(&out, &a.view()).ok_or_else(|| {
            format!(
                "{op} of shapes {:?} and {:?}: they do not broadcast",
                acts[0].view(),
                a.view()
            )
        })?;
    }
    let mut batch = None;
    for a in acts {
        if let Some(p) = a.batch {
            let q = p + out.len() - a.rank();
            if batch.is_some_and(|b| b != q) {
                return Err(mixes_events(format!(
                    "{op} of shapes {:?} and {:?}, their events on different axes,",
                    acts[0].view(),
                    a.view()
                )));
            }
            batch = Some(q);
        }
    }
    if let Some(q) = batch.filter(|&q| out[q] != 1) {
        return Err(mixes_events(format!(
            "{op} broadcasting to {out:?} along axis {q}"
        )));
    }
    Ok((out, batch))
}

/// An elementwise op on activations, numpy-broadcast (each operand whose
/// shape differs from the result's is repeated by a Route first): a chain
/// of [`Op::Binary`] layers for the variadic forms.
fn binary_acts(b: &mut Builder, n: &Node, op: BinOp, acts: &[&Act]) -> Result<Value, String> {
    let (out, batch) = broadcast_views(op.name(), acts)?;
    let shape = Act::from_view(0, out.clone(), batch).shape;
    let mut acc = broadcast_act(b, n.name, acts[0], &out, batch)?;
    for (k, a) in acts[1..].iter().enumerate() {
        let a = broadcast_act(b, n.name, a, &out, batch)?;
        let name = if k + 2 == acts.len() {
            n.name.to_string()
        } else {
            format!("{}.{k}", n.name)
        };
        acc = b
            .push(name, Op::Binary(op), vec![acc.id, a.id], shape.clone())
            .with_batch(batch);
    }
    Ok(Value::Act(acc))
}

/// The values of constant `c` broadcast to each value of one event of `x`
/// (numpy broadcasting against the ONNX view); a constant that would
/// stretch the event axis or add axes before it mixes events.
fn broadcast_const(c: &Const, x: &Act) -> Result<Vec<f64>, String> {
    let view = x.view();
    if let Some(v) = broadcast_to(c, &view) {
        return Ok(v);
    }
    match broadcast_shape(&view, &c.shape) {
        Some(out) if x.batch.is_some() && out.len() >= view.len() => Err(mixes_events(format!(
            "a constant of shape {:?} broadcast with an input of shape {view:?}",
            c.shape
        ))),
        _ => Err(format!(
            "constant of shape {:?} does not broadcast to the input {view:?}",
            c.shape
        )),
    }
}

/// Max, Min, Sum and Mean over any number of activations (elementwise,
/// broadcast): a chain of binary layers; Mean scales the sum. Max or Min of
/// an activation and one constant number is a Clip.
pub fn variadic(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    if let [Some(Value::Act(_)), Some(Value::Const(c))]
    | [Some(Value::Const(c)), Some(Value::Act(_))] = n.inputs
    {
        let v = c.data.first().copied().unwrap_or(f64::NAN);
        if c.data.iter().any(|&u| u != v) || v.is_nan() || !matches!(n.op(), "Max" | "Min") {
            return Err(format!(
                "{} of an activation and a constant of shape {:?} is not supported (only one number, in Max or Min)",
                n.op(),
                c.shape
            ));
        }
        let (lo, hi) = if n.op() == "Max" {
            (v, f64::MAX)
        } else {
            (f64::MIN, v)
        };
        return Ok(b.unary(n.name, x, Op::Clip(lo, hi)));
    }
    let acts: Vec<&Act> = n
        .inputs
        .iter()
        .map(|v| match v {
            Some(Value::Act(a)) => Ok(a),
            _ => Err(format!(
                "{} of constants and activations is not supported",
                n.op()
            )),
        })
        .collect::<Result<_, _>>()?;
    let op = match n.op() {
        "Max" => BinOp::Max,
        "Min" => BinOp::Min,
        _ => BinOp::Add,
    };
    let v = if acts.len() == 1 {
        Value::Act(acts[0].clone())
    } else {
        binary_acts(b, n, op, &acts)?
    };
    match (n.op(), v) {
        ("Mean", Value::Act(s)) if acts.len() > 1 => {
            let len: usize = s.shape.iter().product();
            let k = 1.0 / acts.len() as f64;
            Ok(Value::Act(b.affine(n, &s, vec![k; len], vec![0.0; len])))
        }
        (_, v) => Ok(v),
    }
}

/// Neg: an elementwise affine with scale -1 (folded into the layer before
/// when it can be).
pub fn neg(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let len: usize = x.shape.iter().product();
    Ok(Value::Act(b.affine(n, x, vec![-1.0; len], vec![0.0; len])))
}

/// Add, Sub, Mul, Div: of two activations an elementwise layer (Div
/// refused); with a constant an elementwise affine.
pub fn arith(b: &mut Builder, n: &Node, _x: &Act) -> Result<Value, String> {
    let op = n.op();
    match (&n.inputs[0], n.inputs.get(1).and_then(|v| v.as_ref())) {
        (Some(Value::Act(a)), Some(Value::Act(c))) => {
            let bop = match op {
                "Add" => BinOp::Add,
                "Sub" => BinOp::Sub,
                "Mul" => BinOp::Mul,
                _ => return Err(format!("{op} of two activations is not supported")),
            };
            binary_acts(b, n, bop, &[a, c])
        }
        (Some(Value::Act(a)), Some(Value::Const(c)))
        | (Some(Value::Const(c)), Some(Value::Act(a))) => {
            let act_first = matches!(n.inputs[0], Some(Value::Act(_)));
            let v = broadcast_const(c, a)?;
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

/// BatchNormalization in inference form: a per-channel affine, channels on
/// the second ONNX axis.
pub fn batch_norm(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let (s, bias, mean, var) = (n.konst(1)?, n.konst(2)?, n.konst(3)?, n.konst(4)?);
    let eps = n.attr_f("epsilon", 1e-5);
    let view = x.view();
    let c = view.get(1).copied().unwrap_or(1);
    if x.batch == Some(1) && c == 1 && s.data.len() > 1 {
        return Err(mixes_events("normalising per channel"));
    }
    if [s, bias, mean, var].iter().any(|p| p.data.len() != c) {
        return Err(format!("parameters must have one value per channel ({c})"));
    }
    let a: Vec<f64> = (0..c)
        .map(|i| s.data[i] / (var.data[i] + eps).sqrt())
        .collect();
    let sh: Vec<f64> = (0..c).map(|i| bias.data[i] - mean.data[i] * a[i]).collect();
    let xlen: usize = x.shape.iter().product();
    let per: usize = view.iter().skip(2).product();
    let scale: Vec<f64> = (0..xlen).map(|j| a[j / per % c]).collect();
    let shift: Vec<f64> = (0..xlen).map(|j| sh[j / per % c]).collect();
    Ok(Value::Act(b.affine(n, x, scale, shift)))
}

/// The `group` attribute, checked against the input channels (and, for a
/// Conv, whose weights name them, the output channels).
fn groups(n: &Node, in_channels: usize, out_channels: Option<usize>) -> Result<usize, String> {
    let g = n.attr_i("group", 1);
    let divides = |c: usize| g >= 1 && c.is_multiple_of(g as usize);
    if !divides(in_channels) || !out_channels.is_none_or(divides) {
        return Err(format!(
            "group {g} does not divide the {in_channels} input channels{}",
            out_channels.map_or(String::new(), |o| format!(" and {o} output channels"))
        ));
    }
    Ok(g as usize)
}

/// The bias of a Conv or ConvTranspose (input 2), zeros when absent.
fn conv_bias(n: &Node, out_channels: usize) -> Result<Vec<f64>, String> {
    match n.opt_const(2) {
        Some(c) if c.data.len() != out_channels => Err(format!(
            "bias has {} values for {out_channels} output channels",
            c.data.len()
        )),
        Some(c) => Ok(c.data.clone()),
        None => Ok(vec![0.0; out_channels]),
    }
}

/// Pushes a Conv layer over `window`.
fn push_conv(
    b: &mut Builder,
    n: &Node,
    x: &Act,
    window: Window,
    weights: Vec<f64>,
    w_quant: Option<crate::fixed::FixedType>,
) -> Result<Act, String> {
    let per_oc = (window.group_channels() * window.kernel_size()).max(1);
    let oc = weights.len() / per_oc;
    let bias = conv_bias(n, oc)?;
    let mut shape = vec![oc];
    shape.extend(window.out_spatial());
    let positions = window.out_positions();
    let (w, sh) = (window.clone(), shape.clone());
    let taken = take_scale(b, n, x, &weights, per_oc, false, |ints, ty| {
        let op = Op::Conv {
            window: w,
            out_channels: oc,
            weights: ints,
            bias: vec![0.0; oc],
            w_quant: Some(ty),
            b_quant: None,
        };
        (op, sh)
    })?;
    if let Some(Taken { id, factors, s, .. }) = taken {
        // bias + W (s c) = s (W c) + bias, per output channel.
        let len = oc * positions;
        let scale = (0..len).map(|j| factors[j / positions] * s).collect();
        let shift = (0..len).map(|j| bias[j / positions]).collect();
        return Ok(b.push(
            format!("{}.scale", n.name),
            Op::Scale { scale, shift },
            vec![id],
            shape,
        ));
    }
    let op = Op::Conv {
        window,
        out_channels: oc,
        weights,
        bias,
        w_quant,
        b_quant: n.opt_const(2).and_then(|c| c.quant),
    };
    Ok(b.push(n.name.into(), op, vec![x.id], shape))
}

/// Convolutions of any number of spatial dimensions, with strides,
/// dilations, padding and groups (depthwise when `group` is the number of
/// channels).
pub fn conv(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let (outer, x) = (x, &x.leading("Conv")?);
    let w = n.konst(1)?;
    let spatial = x.shape.len().saturating_sub(1);
    if spatial == 0 || w.shape.len() != spatial + 2 {
        return Err(format!(
            "input shape {:?} with weights {:?}: a convolution needs [C, spatial...] and [C_out, C_in/group, kernel...]",
            x.shape, w.shape
        ));
    }
    let mut window = window(n, x, w.shape[2..].to_vec())?;
    window.groups = groups(n, window.in_channels, Some(w.shape[0]))?;
    if w.shape[1] != window.group_channels() {
        return Err(format!(
            "weights have {} input channels per group, the input has {} channels in {} groups",
            w.shape[1], window.in_channels, window.groups
        ));
    }
    Ok(Value::Act(outer.relead(push_conv(
        b,
        n,
        x,
        window,
        w.data.clone(),
        w.quant,
    )?)))
}

/// ConvTranspose as the convolution it equals: stride 1 over the input
/// dilated by the transposed convolution's strides, the kernel flipped in
/// every spatial dimension and its channel axes swapped, and pads
/// `dilation * (kernel - 1) - pad` (plus `output_padding` at the end). Every
/// backend then runs it with the Conv it already has, and the taps that fall
/// on inserted zeros are left out like padding.
pub fn conv_transpose(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let (outer, x) = (x, &x.leading("ConvTranspose")?);
    let w = n.konst(1)?;
    let sp = x.shape.len().saturating_sub(1);
    if sp == 0 || w.shape.len() != sp + 2 {
        return Err(format!(
            "input shape {:?} with weights {:?}: a transposed convolution needs [C, spatial...] and [C_in, C_out/group, kernel...]",
            x.shape, w.shape
        ));
    }
    let (cin, kernel) = (x.shape[0], w.shape[2..].to_vec());
    if w.shape[0] != cin || kernel.contains(&0) {
        return Err(format!(
            "weights {:?} do not fit an input of {cin} channels",
            w.shape
        ));
    }
    if let Some(k) = n.attr_ints("kernel_shape") {
        if k.iter().map(|&v| v as usize).ne(kernel.iter().copied()) {
            return Err(format!(
                "kernel_shape {k:?} differs from the weights {:?}",
                w.shape
            ));
        }
    }
    let groups = groups(n, cin, None)?;
    let (icg, ocg) = (cin / groups, w.shape[1]);
    let stride = per_dim(n, "strides", sp)?;
    let dilation = per_dim(n, "dilations", sp)?;
    let out_pad: Vec<usize> = match n.attr_ints("output_padding") {
        None => vec![0; sp],
        Some(v) if v.len() == sp && v.iter().all(|&p| p >= 0) => {
            v.iter().map(|&p| p as usize).collect()
        }
        Some(v) => {
            return Err(format!(
                "output_padding {v:?} is invalid for a {sp}-D window"
            ))
        }
    };
    let span: Vec<usize> = (0..sp).map(|d| (kernel[d] - 1) * dilation[d] + 1).collect();
    // The full output before pads: `stride * (in - 1) + output_padding + span`.
    let full: Vec<usize> = (0..sp)
        .map(|d| stride[d] * (x.shape[d + 1] - 1) + out_pad[d] + span[d])
        .collect();
    let auto = n.attr_s("auto_pad").unwrap_or_default();
    let (pad_b, pad_e) = if let Some(out) = n.attr_ints("output_shape") {
        let out: Vec<usize> = out.iter().map(|&v| v.max(0) as usize).collect();
        let out = &out[out.len().saturating_sub(sp)..];
        if out.len() != sp || (0..sp).any(|d| out[d] > full[d]) {
            return Err(format!(
                "output_shape {out:?} is larger than the full output {full:?}"
            ));
        }
        (0..sp)
            .map(|d| split_pads(full[d] - out[d], auto == "SAME_UPPER"))
            .unzip()
    } else {
        match auto.as_str() {
            "" | "NOTSET" => explicit_pads(n, sp)?,
            "VALID" => (vec![0; sp], vec![0; sp]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let total = |d: usize| full[d] - (stride[d] * x.shape[d + 1]).min(full[d]);
                (0..sp)
                    .map(|d| split_pads(total(d), auto == "SAME_UPPER"))
                    .unzip()
            }
            other => return Err(format!("auto_pad '{other}' is not supported")),
        }
    };
    let mut pad_begin = Vec::with_capacity(sp);
    let mut pad_end = Vec::with_capacity(sp);
    for d in 0..sp {
        let edge = span[d] - 1;
        if pad_b[d] > edge || pad_e[d] > edge + out_pad[d] || pad_b[d] + pad_e[d] >= full[d] {
            return Err(format!(
                "pads {pad_b:?}/{pad_e:?} crop more than the kernel's span {span:?} adds: not supported"
            ));
        }
        pad_begin.push(edge - pad_b[d]);
        pad_end.push(edge + out_pad[d] - pad_e[d]);
    }
    let mut window = Window::plain(
        cin,
        x.shape[1..].to_vec(),
        kernel,
        vec![1; sp],
        pad_begin,
        pad_end,
    );
    window.in_dilation = stride;
    window.dilation = dilation;
    window.groups = groups;
    // Conv weights [C_out][C_in / group][kernel...], flipped, from
    // ConvTranspose weights [C_in][C_out / group][kernel...].
    let ksz = window.kernel_size();
    let mut weights = Vec::with_capacity(ocg * groups * icg * ksz);
    for oc in 0..ocg * groups {
        let (grp, j) = (oc / ocg, oc % ocg);
        for i in 0..icg {
            let base = ((grp * icg + i) * ocg + j) * ksz;
            weights.extend((0..ksz).map(|k| w.data[base + ksz - 1 - k]));
        }
    }
    Ok(Value::Act(
        outer.relead(push_conv(b, n, x, window, weights, w.quant)?),
    ))
}

/// MaxPool, AveragePool and their Global forms (one window over all of each channel).
pub fn pool(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let op = n.op();
    let (outer, x) = (x, &x.leading(op)?);
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
    let include_pad = op == "AveragePool" && n.attr_i("count_include_pad", 0) != 0;
    if include_pad && n.attr_i("ceil_mode", 0) != 0 {
        return Err("count_include_pad=1 with ceil_mode=1 is not supported".into());
    }
    let window = if global {
        let sp = kernel.len();
        Window::plain(
            x.shape[0],
            x.shape[1..].to_vec(),
            kernel,
            vec![1; sp],
            vec![0; sp],
            vec![0; sp],
        )
    } else {
        let mut w = window(n, x, kernel)?;
        if n.attr_i("ceil_mode", 0) != 0 {
            ceil_mode(&mut w);
        }
        w
    };
    let mut shape = vec![window.in_channels];
    shape.extend(window.out_spatial());
    if include_pad {
        // Padding counted as zeros: every window divides by the kernel's
        // size, a depthwise convolution of weights 1 / size.
        let (c, k) = (window.in_channels, window.kernel_size());
        let op = Op::Conv {
            window: Window {
                groups: c,
                ..window
            },
            out_channels: c,
            weights: vec![1.0 / k as f64; c * k],
            bias: vec![0.0; c],
            w_quant: None,
            b_quant: None,
        };
        return Ok(Value::Act(outer.relead(b.push(
            n.name.into(),
            op,
            vec![x.id],
            shape,
        ))));
    }
    let kind = if op.contains("Max") {
        PoolKind::Max
    } else {
        PoolKind::Average
    };
    Ok(Value::Act(outer.relead(b.push(
        n.name.into(),
        Op::Pool { kind, window },
        vec![x.id],
        shape,
    ))))
}

/// `ceil_mode = 1`: the output size rounds up, so a last window may hang
/// over the end; it is kept only when it starts inside the input or its
/// begin padding (ONNX's and PyTorch's rule). The overhang is end padding,
/// which a pool skips (max) or leaves out of the count (average).
fn ceil_mode(w: &mut Window) {
    for d in 0..w.in_spatial.len() {
        let total = w.in_spatial[d] + w.pad_begin[d] + w.pad_end[d];
        let (span, s) = (w.span(d), w.stride[d]);
        let mut out = (total - span).div_ceil(s) + 1;
        if (out - 1) * s >= w.in_spatial[d] + w.pad_begin[d] {
            out -= 1;
        }
        w.pad_end[d] += ((out - 1) * s + span).saturating_sub(total);
    }
}

pub fn prelu(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let slope = broadcast_const(n.konst(1)?, x)?;
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
    let (view, rank) = (x.view(), x.rank());
    let default = if b.opset < 13 { 1 } else { -1 };
    let axis = x.axis(n.attr_i("axis", default))?;
    let group: usize = if b.opset < 13 {
        // Over everything from `axis` on, flattened.
        x.not_along(&(axis..rank).collect::<Vec<_>>(), "softmax")?;
        view[axis..].iter().product()
    } else if axis == rank - 1 {
        x.not_along(&[axis], "softmax")?;
        view[axis]
    } else {
        return Err(format!(
            "softmax over axis {axis} of a rank-{rank} tensor: only the last axis is supported"
        ));
    };
    Ok(b.unary(n.name, x, Op::Softmax { n: group }))
}
