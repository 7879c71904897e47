//! Reductions over axes (ReduceSum, ReduceMean, ReduceMax, ReduceSumSquare,
//! ReduceL2: the last two on exact squares) and comparisons
//! against a constant (Greater, Less and their OrEqual forms): both become
//! layers every backend already runs. A reduction moves its axes last (a
//! Route, when they are not already), then reduces each row with a pool
//! (mean, max) or a depthwise convolution of ones (sum, exact); a
//! comparison is a one-threshold Step to 0 or 1.

use crate::fixed::FixedType;
use crate::ir::Op;
use crate::onnx::builder::Builder;
use crate::onnx::decode::Node;
use crate::onnx::shape::transpose_map;
use crate::onnx::value::{Act, Value};
use crate::qmodel::{BinOp, PoolKind, Window};
use crate::tables::TableFn;

/// The reduced axes (of the view), from the `axes` input (ReduceSum since
/// opset 13, every Reduce since 18) or attribute; none of them the event axis.
fn reduced_axes(n: &Node, x: &Act) -> Result<Vec<usize>, String> {
    let axes = n.axes();
    let mut ax = if axes.is_empty() {
        if n.attr_i("noop_with_empty_axes", 0) != 0 {
            return Ok(Vec::new());
        }
        (0..x.rank()).collect()
    } else {
        axes.iter()
            .map(|&a| x.axis(a))
            .collect::<Result<Vec<_>, _>>()?
    };
    ax.sort_unstable();
    ax.dedup();
    x.not_along(&ax, "reducing")?;
    Ok(ax)
}

pub fn reduce(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let view_axes = reduced_axes(n, x)?;
    let keepdims = n.attr_i("keepdims", 1) != 0;
    // Where the event axis is after the reduction.
    let batch = x.batch.map(|p| {
        p - if keepdims {
            0
        } else {
            view_axes.iter().filter(|&&a| a < p).count()
        }
    });
    let axes: Vec<usize> = view_axes.iter().map(|&d| x.event_axis(d)).collect();
    let squares = matches!(n.op(), "ReduceSumSquare" | "ReduceL2");
    if axes.is_empty() && !squares {
        return Ok(Value::Act(x.clone()));
    }
    // ReduceSumSquare and ReduceL2 sum exact squares.
    let squared;
    let x = if squares {
        squared = b
            .push(
                format!("{}.squares", n.name),
                Op::Binary(BinOp::Mul),
                vec![x.id, x.id],
                x.shape.clone(),
            )
            .with_batch(x.batch);
        b.layers.last_mut().expect("just pushed").exact = true;
        &squared
    } else {
        x
    };
    let l2 = n.op() == "ReduceL2";
    if axes.is_empty() {
        // Nothing to reduce (noop_with_empty_axes): the squares, or |x|.
        return Ok(match l2 {
            true => b.unary(n.name, x, Op::Func(TableFn::Sqrt)),
            false => Value::Act(x.clone()),
        });
    }
    let kept: Vec<usize> = (0..x.shape.len()).filter(|d| !axes.contains(d)).collect();
    let rows: usize = kept.iter().map(|&d| x.shape[d]).product();
    let len: usize = axes.iter().map(|&d| x.shape[d]).product();
    let shape: Vec<usize> = if keepdims {
        (0..x.shape.len())
            .map(|d| if axes.contains(&d) { 1 } else { x.shape[d] })
            .collect()
    } else {
        kept.iter().map(|&d| x.shape[d]).collect()
    };
    // The reduced axes last: each row of `len` values is one reduction.
    let perm: Vec<usize> = kept.iter().chain(&axes).copied().collect();
    let src = if perm.iter().enumerate().all(|(i, &p)| i == p) {
        x.id
    } else {
        let src = transpose_map(&x.shape, &perm)
            .into_iter()
            .map(|j| (0u16, j as u32))
            .collect();
        b.push(
            format!("{}.moved", n.name),
            Op::Route { src },
            vec![x.id],
            vec![rows, len],
        )
        .id
    };
    let window = Window::plain(rows, vec![len], vec![len], vec![1], vec![0], vec![0]);
    let op = match n.op() {
        "ReduceMean" => Op::Pool {
            kind: PoolKind::Average,
            window,
        },
        "ReduceMax" => Op::Pool {
            kind: PoolKind::Max,
            window,
        },
        _ => row_sums(rows, len),
    };
    if l2 {
        // The sum takes its configured type (`[layer."NAME.sum"]`), the
        // square root's table reads it.
        let sum = b
            .push(format!("{}.sum", n.name), op, vec![src], shape.clone())
            .with_batch(batch);
        return Ok(b.unary(n.name, &sum, Op::Func(TableFn::Sqrt)));
    }
    Ok(Value::Act(
        b.push(n.name.into(), op, vec![src], shape)
            .with_batch(batch),
    ))
}

/// The exact sum of each of `rows` rows of `len` values: a depthwise
/// convolution of ones (a 2-bit weight type holds 1 exactly).
pub fn row_sums(rows: usize, len: usize) -> Op {
    let one = FixedType::signed(2, 2).expect("valid type");
    Op::Conv {
        window: Window {
            groups: rows,
            ..Window::plain(rows, vec![len], vec![len], vec![1], vec![0], vec![0])
        },
        out_channels: rows,
        weights: vec![1.0; rows * len],
        bias: vec![0.0; rows],
        w_quant: Some(one),
        b_quant: Some(one),
    }
}

/// Greater, Less, GreaterOrEqual, LessOrEqual of an activation and a scalar
/// constant (either order): a Step to 0 or 1. A strict `x > c` is
/// `x >= next_up(c)`, which is exact for every fixed-point `x`.
pub fn compare(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let (c, act_first) = match (n.opt_const(0), n.opt_const(1)) {
        (None, Some(c)) => (c, true),
        (Some(c), None) => (c, false),
        _ => return Err("comparing two activations is not supported".into()),
    };
    let v = c.data.first().copied().unwrap_or(f64::NAN);
    if c.data.iter().any(|&u| u != v) || v.is_nan() {
        return Err(format!(
            "comparison with a constant of shape {:?} that is not one number",
            c.shape
        ));
    }
    // As `x OP c` with the activation on the left.
    let op = match (n.op(), act_first) {
        (op, true) => op,
        ("Greater", false) => "Less",
        ("Less", false) => "Greater",
        ("GreaterOrEqual", false) => "LessOrEqual",
        (_, false) => "GreaterOrEqual",
    };
    let (threshold, values) = match op {
        "Greater" => (v.next_up(), vec![0.0, 1.0]),
        "GreaterOrEqual" => (v, vec![0.0, 1.0]),
        "Less" => (v, vec![1.0, 0.0]),
        _ => (v.next_up(), vec![1.0, 0.0]),
    };
    Ok(b.unary(n.name, x, Op::step(vec![threshold], values)))
}
