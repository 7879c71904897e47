//! Ops that move data without computing: Identity-likes, Flatten, Reshape,
//! Squeeze and Unsqueeze change only the shape an activation is seen with (no
//! layer); Transpose and Concat become Route layers, which copy values.
//! Each works on the activation's ONNX view ([`Act::view`]) and says where
//! the event axis goes.

use crate::ir::Op;
use crate::onnx::builder::Builder;
use crate::onnx::decode::Node;
use crate::onnx::shape::{onnx_axis, perm, reshape_const, reshape_target, transpose_map};
use crate::onnx::value::{mixes_events, Act, Value};

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

/// Flatten to `[everything before axis, everything from it]`: the event
/// axis, where there is one, must stay alone in its part (its part's other
/// axes all 1), else the flattened rows would hold several events.
/// Axis 0 with the events first is read as axis 1, as exporters mean it for
/// a batch of 1 (Keras through keras2onnx).
pub fn flatten(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let view = x.view();
    let (r, axis) = (view.len() as i64, n.attr_i("axis", 1));
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&a) {
        return Err(format!("axis {axis} is out of range for rank {r}"));
    }
    let a = if a == 0 && x.batch == Some(0) {
        1
    } else {
        a as usize
    };
    let out = vec![view[..a].iter().product(), view[a..].iter().product()];
    let batch = match x.batch {
        None => None,
        Some(p) => {
            let part = if p < a { 0..a } else { a..view.len() };
            if part.clone().any(|d| d != p && view[d] != 1) {
                return Err(mixes_events(format!(
                    "Flatten at axis {axis} of a tensor of shape {view:?} (events on axis {p})"
                )));
            }
            Some(usize::from(p >= a))
        }
    };
    Ok(Value::Act(Act::from_view(x.id, out, batch)))
}

/// Reshape, with events on the first axis (`target[0]` is the batch: 0, 1,
/// -1 or a size baked into the export) or of a whole-tensor event (every
/// axis of `target` is the event's).
pub fn reshape(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let target = n.konst(1)?.ints();
    match x.batch {
        Some(0) => {
            let shape = reshape_target(&x.shape, &target)?;
            Ok(Value::Act(Act::new(x.id, shape)))
        }
        None => {
            let shape = reshape_const(&x.shape, &target);
            if shape.iter().product::<usize>() != x.shape.iter().product::<usize>()
                || target.iter().filter(|&&d| d == -1).count() > 1
                || target.iter().any(|&d| d < -1)
            {
                return Err(format!(
                    "cannot reshape an event of shape {:?} to {target:?}",
                    x.shape
                ));
            }
            Ok(Value::Act(Act {
                id: x.id,
                shape,
                batch: None,
            }))
        }
        Some(p) => Err(mixes_events(format!(
            "a Reshape to {target:?} of a tensor of shape {:?} with its events on axis {p}",
            x.view()
        ))),
    }
}

pub fn squeeze(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let mut view = x.view();
    let mut ax: Vec<usize> = n
        .axes()
        .iter()
        .map(|&a| x.axis(a))
        .collect::<Result<_, _>>()?;
    if ax.is_empty() {
        ax = (0..view.len())
            .filter(|&d| view[d] == 1 && Some(d) != x.batch)
            .collect();
    }
    x.not_along(&ax, "squeezing")?;
    ax.sort_unstable();
    ax.dedup();
    for &a in ax.iter().rev() {
        if view[a] != 1 {
            return Err(format!(
                "axis {a} has size {} and cannot be squeezed",
                view[a]
            ));
        }
        view.remove(a);
    }
    let batch = x.batch.map(|p| p - ax.iter().filter(|&&a| a < p).count());
    Ok(Value::Act(Act::from_view(x.id, view, batch)))
}

pub fn unsqueeze(_: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let mut view = x.view();
    // Which axis is the event axis, carried along as axes are inserted.
    let mut events: Vec<bool> = (0..view.len()).map(|d| Some(d) == x.batch).collect();
    let axes = n.axes();
    let out_rank = view.len() + axes.len();
    let mut ax: Vec<usize> = axes
        .iter()
        .map(|&a| onnx_axis(a, out_rank))
        .collect::<Result<_, _>>()?;
    ax.sort_unstable();
    if ax.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("axes {axes:?} name an axis twice"));
    }
    for &a in &ax {
        view.insert(a, 1);
        events.insert(a, false);
    }
    let batch = events.iter().position(|&e| e);
    Ok(Value::Act(Act::from_view(x.id, view, batch)))
}

/// A permutation of the axes (the event axis moves with them): a Route
/// layer, or just a new shape when the values keep their order.
pub fn transpose(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let view = x.view();
    let perm = perm(n, view.len())?;
    let out: Vec<usize> = perm.iter().map(|&d| view[d]).collect();
    let batch = x
        .batch
        .map(|p| perm.iter().position(|&d| d == p).expect("a permutation"));
    let map = transpose_map(&view, &perm);
    if map.iter().enumerate().all(|(i, &j)| i == j) {
        return Ok(Value::Act(Act::from_view(x.id, out, batch)));
    }
    let src = map.into_iter().map(|j| (0u16, j as u32)).collect();
    let y = Act::from_view(x.id, out, batch);
    Ok(Value::Act(
        b.push(n.name.into(), Op::Route { src }, vec![x.id], y.shape)
            .with_batch(batch),
    ))
}

/// Concatenation of activations along an axis other than the event axis: a Route layer.
pub fn concat(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    let acts: Vec<&Act> = n
        .inputs
        .iter()
        .map(|v| match v {
            Some(Value::Act(a)) => Ok(a),
            _ => Err("concatenating constants with activations is not supported".to_string()),
        })
        .collect::<Result<_, _>>()?;
    let axis = n.attr_i("axis", 1);
    let d = x.axis(axis)?;
    x.not_along(&[d], "concatenation")?;
    let view = x.view();
    let views: Vec<Vec<usize>> = acts.iter().map(|a| a.view()).collect();
    for (a, v) in acts.iter().zip(&views) {
        if a.batch != x.batch
            || v.len() != view.len()
            || v.iter().enumerate().any(|(i, &s)| i != d && s != view[i])
        {
            return Err(format!(
                "shapes {:?} and {:?} do not concatenate on axis {axis}",
                view, v
            ));
        }
    }
    // Each input's block from the concatenated axis on.
    let inner: Vec<usize> = views.iter().map(|v| v[d..].iter().product()).collect();
    let outer: usize = view[..d].iter().product();
    let mut src = Vec::new();
    for o in 0..outer {
        for (k, &inner) in inner.iter().enumerate() {
            src.extend((0..inner).map(|j| (k as u16, (o * inner + j) as u32)));
        }
    }
    let mut out = view;
    out[d] = views.iter().map(|v| v[d]).sum();
    let y = Act::from_view(x.id, out, x.batch);
    let ids = acts.iter().map(|a| a.id).collect();
    Ok(Value::Act(
        b.push(n.name.into(), Op::Route { src }, ids, y.shape)
            .with_batch(x.batch),
    ))
}
