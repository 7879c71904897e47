//! Shape arithmetic of the import: numpy broadcasting, transpose index maps,
//! Reshape targets, ONNX axis numbers, and convolution / pooling windows from
//! their attributes. Shapes of activations here carry no batch dimension; the
//! ONNX ones they are read against do.

use super::decode::Node;
use super::value::{mixes_events, Act, Const};
use crate::qmodel::Window;

/// Numpy broadcasting of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Values of `c` broadcast to `shape` (row-major), or `None` if incompatible.
pub fn broadcast_to(c: &Const, shape: &[usize]) -> Option<Vec<f64>> {
    Some(
        broadcast_map(&c.shape, shape)?
            .into_iter()
            .map(|i| c.data[i])
            .collect(),
    )
}

/// For each flat index of `shape`, the flat index of the value of a tensor
/// of shape `from` that numpy broadcasting puts there; `None` unless `from`
/// broadcasts to exactly `shape`.
pub fn broadcast_map(from: &[usize], shape: &[usize]) -> Option<Vec<usize>> {
    if broadcast_shape(shape, from)? != shape {
        return None;
    }
    let r = shape.len();
    let n: usize = shape.iter().product();
    let cs: Vec<usize> = (0..r)
        .map(|i| {
            if i + from.len() >= r {
                from[i + from.len() - r]
            } else {
                1
            }
        })
        .collect();
    let mut parts = vec![0usize; r];
    let mut out = Vec::with_capacity(n);
    for flat in 0..n {
        let (mut rem, mut idx, mut stride) = (flat, 0usize, 1usize);
        for d in (0..r).rev() {
            parts[d] = rem % shape[d];
            rem /= shape[d];
        }
        for d in (0..r).rev() {
            let coord = if cs[d] == 1 { 0 } else { parts[d] };
            idx += coord * stride;
            stride *= cs[d];
        }
        out.push(idx);
    }
    Some(out)
}

/// A Transpose's permutation: the `perm` attribute, or reversed axes of
/// `rank`; an error unless it orders each of the `rank` axes exactly once.
pub fn perm(n: &Node, rank: usize) -> Result<Vec<usize>, String> {
    let Some(p) = n.attr_ints("perm") else {
        return Ok((0..rank).rev().collect());
    };
    let mut seen = vec![false; rank];
    let ok = p.len() == rank
        && p.iter().all(|&v| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v < rank)
                .is_some_and(|v| !std::mem::replace(&mut seen[v], true))
        });
    if !ok {
        return Err(format!(
            "perm {p:?} is not a permutation of the {rank} axes of its input"
        ));
    }
    Ok(p.iter().map(|&v| v as usize).collect())
}

/// Row-major permutation: source flat index of each output element.
pub fn transpose_map(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let n: usize = shape.iter().product();
    let mut in_strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * shape[d + 1];
    }
    (0..n)
        .map(|flat| {
            let mut rem = flat;
            let mut src = 0;
            for d in (0..out_shape.len()).rev() {
                let c = rem % out_shape[d];
                rem /= out_shape[d];
                src += c * in_strides[perm[d]];
            }
            src
        })
        .collect()
}

/// The ONNX axis `axis` (negative counts from the end) of a tensor of rank
/// `rank_with_batch`, checked.
pub fn onnx_axis(axis: i64, rank_with_batch: usize) -> Result<usize, String> {
    let a = if axis < 0 {
        axis + rank_with_batch as i64
    } else {
        axis
    };
    if a < 0 || a as usize >= rank_with_batch {
        return Err(format!(
            "axis {axis} is out of range for rank {rank_with_batch}"
        ));
    }
    Ok(a as usize)
}

/// Target shape of a Reshape of a constant of `shape` (`0` keeps a
/// dimension, `-1` takes the rest).
pub fn reshape_const(shape: &[usize], target: &[i64]) -> Vec<usize> {
    let n0: usize = shape.iter().product();
    let known: i64 = target
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if d == 0 {
                shape.get(i).copied().unwrap_or(1) as i64
            } else if d < 0 {
                1
            } else {
                d
            }
        })
        .product();
    target
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 => shape.get(i).copied().unwrap_or(1),
            -1 => n0 / known.max(1) as usize,
            d => d as usize,
        })
        .collect()
}

/// Target shape of a Reshape of an activation, batch dimension first in `target`.
pub fn reshape_target(shape: &[usize], target: &[i64]) -> Result<Vec<usize>, String> {
    let n: usize = shape.iter().product();
    if target.is_empty() {
        return Err("empty target shape".into());
    }
    if !(target[0] == 1 || target[0] == -1 || target[0] == 0) {
        // A fixed batch size (e.g. 789444) baked into the export: one event keeps its own shape.
        if target.len() == 1 {
            return Err(mixes_events(format!(
                "a Reshape to {target:?}, folding the batch into the features,"
            )));
        }
    }
    let full: Vec<usize> = std::iter::once(1).chain(shape.iter().copied()).collect();
    let rest = &target[1..];
    let known: usize = rest
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 => full.get(i + 1).copied().unwrap_or(1),
            d if d < 0 => 1,
            d => d as usize,
        })
        .product();
    let out: Vec<usize> = rest
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 => full.get(i + 1).copied().unwrap_or(1),
            -1 => n / known.max(1),
            d => d as usize,
        })
        .collect();
    if out.iter().product::<usize>() != n || rest.iter().filter(|&&d| d == -1).count() > 1 {
        if target[0] == -1 {
            // The -1 takes the batch together with some of the event's values.
            return Err(mixes_events(format!(
                "a Reshape of an event of shape {shape:?} to {target:?}"
            )));
        }
        return Err(format!(
            "cannot reshape an event of shape {shape:?} to {target:?}"
        ));
    }
    Ok(out)
}

/// An integer-list attribute with one value per spatial dimension, each at
/// least 1 (`strides`, `dilations`); `vec![1; sp]` when absent.
pub fn per_dim(n: &Node, name: &str, sp: usize) -> Result<Vec<usize>, String> {
    let Some(v) = n.attr_ints(name) else {
        return Ok(vec![1; sp]);
    };
    if v.len() != sp || v.iter().any(|&x| x < 1) {
        return Err(format!("{name} {v:?} are invalid for a {sp}-D window"));
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

/// The sliding window of a Conv or pool node over `x`: strides, dilations,
/// explicit pads or `auto_pad`, checked against the kernel.
pub fn window(n: &Node, x: &Act, kernel: Vec<usize>) -> Result<Window, String> {
    let sp = kernel.len();
    if x.shape.len() != sp + 1 || sp == 0 {
        return Err(format!(
            "input shape {:?} does not fit a {sp}-D window",
            x.shape
        ));
    }
    if kernel.contains(&0) {
        return Err(format!("kernel {kernel:?} has an empty dimension"));
    }
    let in_spatial = x.shape[1..].to_vec();
    let stride = per_dim(n, "strides", sp)?;
    let dilation = per_dim(n, "dilations", sp)?;
    let span: Vec<usize> = (0..sp).map(|d| (kernel[d] - 1) * dilation[d] + 1).collect();
    let auto = n.attr_s("auto_pad").unwrap_or_default();
    let (pad_begin, pad_end) = match auto.as_str() {
        "" | "NOTSET" => explicit_pads(n, sp)?,
        "VALID" => (vec![0; sp], vec![0; sp]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut b = vec![0; sp];
            let mut e = vec![0; sp];
            for d in 0..sp {
                let out = in_spatial[d].div_ceil(stride[d]);
                let total = ((out - 1) * stride[d] + span[d]).saturating_sub(in_spatial[d]);
                (b[d], e[d]) = split_pads(total, auto == "SAME_UPPER");
            }
            (b, e)
        }
        other => return Err(format!("auto_pad '{other}' is not supported")),
    };
    for d in 0..sp {
        if in_spatial[d] == 0 || in_spatial[d] + pad_begin[d] + pad_end[d] < span[d] {
            return Err(format!(
                "kernel {kernel:?} (dilations {dilation:?}) is larger than the padded input {in_spatial:?}"
            ));
        }
    }
    let mut w = Window::plain(x.shape[0], in_spatial, kernel, stride, pad_begin, pad_end);
    if dilation.iter().any(|&v| v != 1) {
        w.dilation = dilation;
    }
    Ok(w)
}

/// The `pads` attribute as begin and end pads, zero when absent.
pub fn explicit_pads(n: &Node, sp: usize) -> Result<(Vec<usize>, Vec<usize>), String> {
    let p = n.attr_ints("pads").unwrap_or(vec![0; 2 * sp]);
    if p.len() != 2 * sp || p.iter().any(|&v| v < 0) {
        return Err(format!(
            "pads {p:?} should be {} values of at least 0",
            2 * sp
        ));
    }
    let p: Vec<usize> = p.iter().map(|&v| v as usize).collect();
    Ok((p[..sp].to_vec(), p[sp..].to_vec()))
}

/// Splits `total` padding between begin and end as ONNX's `SAME_UPPER`
/// (the extra one at the end) or `SAME_LOWER` (at the beginning) does.
pub fn split_pads(total: usize, upper: bool) -> (usize, usize) {
    let small = total / 2;
    if upper {
        (small, total - small)
    } else {
        (total - small, small)
    }
}
