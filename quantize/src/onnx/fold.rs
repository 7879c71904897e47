//! Constant folding: a node whose inputs are all constants becomes a constant
//! itself (shape arithmetic, weight transposes, normalisation constants), so
//! that only what depends on the network input becomes a layer. Each function
//! folds one op or one family; the op table names them.

use super::decode::{tensor_from_proto, Node};
use super::shape::{broadcast_shape, broadcast_to, perm, reshape_const, transpose_map};
use super::value::{Const, Value};

/// An elementwise binary op with numpy broadcasting.
pub fn binary(n: &Node, f: fn(f64, f64) -> f64) -> Result<Const, String> {
    let (a, b) = (n.konst(0)?, n.konst(1)?);
    let err = || format!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape);
    let shape = broadcast_shape(&a.shape, &b.shape).ok_or_else(err)?;
    let x = broadcast_to(a, &shape).ok_or_else(err)?;
    let y = broadcast_to(b, &shape).ok_or_else(err)?;
    let data = x.iter().zip(&y).map(|(&u, &v)| f(u, v)).collect();
    Ok(Const::computed(shape, data))
}

/// An elementwise unary op.
pub fn unary(n: &Node, f: fn(f64) -> f64) -> Result<Const, String> {
    let a = n.konst(0)?;
    Ok(Const::computed(
        a.shape.clone(),
        a.data.iter().map(|&v| f(v)).collect(),
    ))
}

/// Identity, Dropout and Cast: the input as it is (a cast of exact constants
/// to another float type changes nothing bxflow keeps).
pub fn identity(n: &Node) -> Result<Const, String> {
    n.konst(0).cloned()
}

pub fn constant(n: &Node) -> Result<Const, String> {
    if let Some(t) = n.attr("value").and_then(|a| a.t.as_ref()) {
        return tensor_from_proto(t);
    }
    match (n.attr("value_float"), n.attr("value_int")) {
        (Some(f), _) => Ok(Const::scalar(f.f as f64)),
        (_, Some(i)) => Ok(Const::scalar(i.i as f64)),
        _ => Err("Constant without a supported value attribute".into()),
    }
}

/// Shape of an activation (with the batch dimension of 1) or of a constant:
/// a constant either way, which is why Shape folds on activations too.
pub fn shape(n: &Node) -> Result<Const, String> {
    let shape: Vec<usize> = match n.inputs.first() {
        Some(Some(Value::Act(a))) => std::iter::once(1).chain(a.shape.iter().copied()).collect(),
        Some(Some(Value::Const(c))) => c.shape.clone(),
        _ => return Err("missing input".into()),
    };
    Ok(Const::computed(
        vec![shape.len()],
        shape.iter().map(|&d| d as f64).collect(),
    ))
}

/// `a`'s values under a new shape of the same size; a quantizer's type stays.
fn reshaped(a: &Const, shape: Vec<usize>) -> Result<Const, String> {
    if shape.iter().product::<usize>() != a.data.len() {
        return Err(format!("cannot reshape {:?} to {shape:?}", a.shape));
    }
    Ok(Const {
        shape,
        data: a.data.clone(),
        quant: a.quant,
        dtype: 0,
    })
}

pub fn reshape(n: &Node) -> Result<Const, String> {
    let a = n.konst(0)?;
    reshaped(a, reshape_const(&a.shape, &n.konst(1)?.ints()))
}

pub fn flatten(n: &Node) -> Result<Const, String> {
    let a = n.konst(0)?;
    reshaped(a, vec![a.data.len()])
}

/// Drops every dimension of size 1 (constants are shape tensors and weights,
/// where that is what exporters mean).
pub fn squeeze(n: &Node) -> Result<Const, String> {
    let a = n.konst(0)?;
    reshaped(a, a.shape.iter().copied().filter(|&d| d != 1).collect())
}

pub fn unsqueeze(n: &Node) -> Result<Const, String> {
    let a = n.konst(0)?;
    let axes = n.axes();
    let mut s = a.shape.clone();
    let r = (s.len() + axes.len()) as i64;
    let mut ax: Vec<usize> = axes
        .iter()
        .map(|&x| if x < 0 { x + r } else { x } as usize)
        .collect();
    ax.sort_unstable();
    for x in ax {
        s.insert(x.min(s.len()), 1);
    }
    reshaped(a, s)
}

pub fn concat(n: &Node) -> Result<Const, String> {
    let parts: Vec<&Const> = (0..n.inputs.len())
        .map(|k| n.konst(k))
        .collect::<Result<_, _>>()?;
    if parts.iter().any(|p| p.shape.len() > 1) {
        return Err("constant Concat is supported on 1-D tensors".into());
    }
    let data: Vec<f64> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
    Ok(Const::computed(vec![data.len()], data))
}

pub fn transpose(n: &Node) -> Result<Const, String> {
    let a = n.konst(0)?;
    let perm = perm(n, a.shape.len())?;
    let map = transpose_map(&a.shape, &perm);
    Ok(Const {
        shape: perm.iter().map(|&p| a.shape[p]).collect(),
        data: map.iter().map(|&j| a.data[j]).collect(),
        quant: a.quant,
        dtype: 0,
    })
}
