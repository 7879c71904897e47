//! Ops that move data without computing: Identity-likes, Flatten, Reshape,
//! Squeeze and Unsqueeze change only the shape an activation is seen with (no
//! layer); Transpose and Concat become Route layers, which copy values.

use crate::ir::Op;
use crate::onnx::builder::Builder;
use crate::onnx::decode::Node;
use crate::onnx::shape::{onnx_axis, perm, reshape_target, transpose_map};
use crate::onnx::value::{Act, Value};

/// Identity, Dropout (inference) and the `DequantizeLinear` of a QDQ pair:
/// the input as it is.
pub fn identity(_: &mut Builder, _: &Node, x: &Act) -> Result<Value, String> {
    Ok(Value::Act(x.clone()))
}

/// Cast of an activation to a float type: the values as they are (a
/// comparison's 0/1 decision cast to float, for one). To an integer or bool
/// type it would round or test, which no layer here does.
pub fn cast(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    // ONNX element types: FLOAT, FLOAT16, DOUBLE, BFLOAT16.
    match n.attr_i("to", 0) {
        1 | 10 | 11 | 16 => Ok(Value::Act(x.clone())),
        to => Err(format!(
            "Cast of an activation to element type {to} is not supported (only to float types)"
        )),
    }
}

/// One flat vector per event: with a batch of 1, axis 0 and axis 1 agree.
pub fn flatten(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    onnx_axis(n.attr_i("axis", 1), x.shape.len() + 1)?;
    Ok(Value::Act(Act {
        id: x.id,
        shape: vec![x.shape.iter().product()],
    }))
}

pub fn reshape(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let shape = reshape_target(&x.shape, &n.konst(1)?.ints())?;
    Ok(Value::Act(Act { id: x.id, shape }))
}

/// `x` with the batch dimension of 1 in front.
fn with_batch(x: &Act) -> Vec<usize> {
    std::iter::once(1).chain(x.shape.iter().copied()).collect()
}

pub fn squeeze(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let mut full = with_batch(x);
    let rank = full.len();
    let mut ax: Vec<usize> = n
        .axes()
        .iter()
        .map(|&a| onnx_axis(a, rank))
        .collect::<Result<_, _>>()?;
    if ax.is_empty() {
        ax = (1..rank).filter(|&d| full[d] == 1).collect();
    }
    if ax.contains(&0) {
        return Err("squeezing the batch axis is not supported".into());
    }
    ax.sort_unstable();
    for &a in ax.iter().rev() {
        if full[a] != 1 {
            return Err(format!(
                "axis {a} has size {} and cannot be squeezed",
                full[a]
            ));
        }
        full.remove(a);
    }
    Ok(Value::Act(Act {
        id: x.id,
        shape: full[1..].to_vec(),
    }))
}

pub fn unsqueeze(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let mut full = with_batch(x);
    let axes = n.axes();
    let out_rank = full.len() + axes.len();
    let mut ax: Vec<usize> = axes
        .iter()
        .map(|&a| onnx_axis(a, out_rank))
        .collect::<Result<_, _>>()?;
    ax.sort_unstable();
    if ax.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("axes {axes:?} name an axis twice"));
    }
    if ax.contains(&0) {
        return Err("unsqueezing before the batch axis is not supported".into());
    }
    for &a in &ax {
        full.insert(a, 1);
    }
    Ok(Value::Act(Act {
        id: x.id,
        shape: full[1..].to_vec(),
    }))
}

/// A permutation that keeps the batch axis first: a Route layer, or just a
/// new shape when it keeps the order.
pub fn transpose(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let rank = x.shape.len() + 1;
    let perm = perm(n, rank)?;
    if perm[0] != 0 {
        return Err(format!("permutation {perm:?} moves the batch axis"));
    }
    let p: Vec<usize> = perm[1..].iter().map(|&v| v - 1).collect();
    let shape: Vec<usize> = p.iter().map(|&d| x.shape[d]).collect();
    if p.iter().enumerate().all(|(i, &v)| i == v) {
        return Ok(Value::Act(Act { id: x.id, shape }));
    }
    let src = transpose_map(&x.shape, &p)
        .into_iter()
        .map(|j| (0u16, j as u32))
        .collect();
    Ok(Value::Act(b.push(
        n.name.into(),
        Op::Route { src },
        vec![x.id],
        shape,
    )))
}

/// Concatenation of activations along a non-batch axis: a Route layer.
pub fn concat(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let acts: Vec<&Act> = n
        .inputs
        .iter()
        .map(|v| match v {
            Some(Value::Act(a)) => Ok(a),
            _ => Err("concatenating constants with activations is not supported".to_string()),
        })
        .collect::<Result<_, _>>()?;
    let rank = x.shape.len() + 1;
    let axis = onnx_axis(n.attr_i("axis", 1), rank)?;
    if axis == 0 {
        return Err("concatenation along the batch axis is not supported".into());
    }
    let d = axis - 1;
    for a in &acts {
        if a.shape.len() != x.shape.len()
            || a.shape
                .iter()
                .enumerate()
                .any(|(i, &s)| i != d && s != x.shape[i])
        {
            return Err(format!(
                "shapes {:?} and {:?} do not concatenate on axis {axis}",
                x.shape, a.shape
            ));
        }
    }
    let outer: usize = x.shape[..d].iter().product();
    let mut src = Vec::new();
    for o in 0..outer {
        for (k, a) in acts.iter().enumerate() {
            let inner: usize = a.shape[d..].iter().product();
            src.extend((0..inner).map(|j| (k as u16, (o * inner + j) as u32)));
        }
    }
    let mut shape = x.shape.clone();
    shape[d] = acts.iter().map(|a| a.shape[d]).sum();
    let ids = acts.iter().map(|a| a.id).collect();
    Ok(Value::Act(b.push(
        n.name.into(),
        Op::Route { src },
        ids,
        shape,
    )))
}
