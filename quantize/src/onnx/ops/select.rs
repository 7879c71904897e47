//! Ops that pick values by index: Slice, Gather, Split, Pad, Resize and
//! Upsample (nearest), DepthToSpace and SpaceToDepth. Each one is an index
//! map (which input value, or the fill value, lands at each output index),
//! computed once over the tensor's ONNX shape; on an activation it becomes a
//! Route layer (zeros as `ROUTE_ZERO` sources), on constants it folds.

use crate::ir::Op;
use crate::onnx::builder::Builder;
use crate::onnx::decode::Node;
use crate::onnx::shape::{onnx_axis, transpose_map};
use crate::onnx::value::{Act, Const, Value};
use crate::qmodel::ROUTE_ZERO;
use crate::validate::{tensor_len, MAX_TENSOR_LEN};

/// An index map over full ONNX shapes (an activation's view, its event
/// axis as 1): `src[i]` is the flat input index output `i` copies, `None`
/// for the fill value.
struct Pick {
    shape: Vec<usize>,
    src: Vec<Option<usize>>,
    fill: f64,
    /// The input axes the op selects along: on constants axes like any
    /// other; on an activation none may be the event axis, whose size the
    /// map was computed for (1) is not the real one.
    along: Vec<usize>,
    /// Gather's axis and the rank of its indices, which replace that axis.
    gathered: Option<(usize, usize)>,
}

impl Pick {
    /// Output `[i_0, i_1, ...]` copies input `[maps[0][i_0], maps[1][i_1], ...]`,
    /// or the fill value when any axis maps to `None`.
    /// The output's size is checked against the tensor limit before the map
    /// is built, so that a huge scale or pad is an error, not an allocation.
    fn per_axis(
        in_shape: &[usize],
        maps: &[Vec<Option<usize>>],
        fill: f64,
    ) -> Result<Pick, String> {
        let shape: Vec<usize> = maps.iter().map(Vec::len).collect();
        tensor_len(&shape)?;
        let along = (0..maps.len())
            .filter(|&d| {
                maps[d].len() != in_shape[d]
                    || maps[d].iter().enumerate().any(|(i, &j)| j != Some(i))
            })
            .collect();
        let mut src = vec![Some(0usize)];
        for (d, m) in maps.iter().enumerate() {
            let stride: usize = in_shape[d + 1..].iter().product();
            src = src
                .iter()
                .flat_map(|&s| {
                    m.iter()
                        .map(move |&i| s.zip(i).map(|(s, i)| s + i * stride))
                })
                .collect();
        }
        Ok(Pick {
            shape,
            src,
            fill,
            along,
            gathered: None,
        })
    }

    /// A permutation of a reshaped view: the input seen as `view`, its axes
    /// permuted by `perm`, then seen as `shape`, moving values along `along`.
    fn permuted(view: &[usize], perm: &[usize], shape: Vec<usize>, along: Vec<usize>) -> Pick {
        let src = transpose_map(view, perm).into_iter().map(Some).collect();
        Pick {
            shape,
            src,
            fill: 0.0,
            along,
            gathered: None,
        }
    }
}

/// The Route layer (or, for an identity map, the unchanged activation) that
/// applies `p` to `x`; the event axis must stay as it is.
fn on_act(b: &mut Builder, n: &Node, name: &str, x: &Act, p: Pick) -> Result<Value, String> {
    x.not_along(&p.along, n.op())?;
    let batch = x.batch.map(|e| match p.gathered {
        Some((axis, rank)) if e > axis => e + rank - 1,
        _ => e,
    });
    if p.fill != 0.0 && p.src.contains(&None) {
        return Err(format!(
            "padding activations with {} is not supported (only with 0)",
            p.fill
        ));
    }
    let shape = Act::from_view(x.id, p.shape, batch).shape;
    let in_len: usize = x.shape.iter().product();
    if p.src.len() == in_len && p.src.iter().enumerate().all(|(i, &s)| s == Some(i)) {
        return Ok(Value::Act(Act {
            id: x.id,
            shape,
            batch,
        }));
    }
    let src = p
        .src
        .iter()
        .map(|s| match s {
            Some(j) => (0, *j as u32),
            None => (ROUTE_ZERO, 0),
        })
        .collect();
    Ok(Value::Act(
        b.push(name.into(), Op::Route { src }, vec![x.id], shape)
            .with_batch(batch),
    ))
}

fn on_const(c: &Const, p: Pick) -> Const {
    let data = p
        .src
        .iter()
        .map(|s| s.map_or(p.fill, |j| c.data[j]))
        .collect();
    Const::computed(p.shape, data)
}

/// The ONNX shape of the node's first input.
fn full_shape(n: &Node) -> Result<Vec<usize>, String> {
    match n.inputs.first() {
        Some(Some(Value::Act(a))) => Ok(a.view()),
        Some(Some(Value::Const(c))) => Ok(c.shape.clone()),
        _ => Err("missing input".into()),
    }
}

/// An op table entry's two faces for an index-map op.
macro_rules! faces {
    ($map:ident, $fold:ident, $pick:ident) => {
        pub fn $map(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
            on_act(b, n, n.name, x, $pick(n)?)
        }
        pub fn $fold(n: &Node) -> Result<Const, String> {
            Ok(on_const(n.konst(0)?, $pick(n)?))
        }
    };
}

faces!(slice, fold_slice, slice_pick);
faces!(gather, fold_gather, gather_pick);
faces!(pad, fold_pad, pad_pick);
faces!(resize, fold_resize, resize_pick);
faces!(depth_to_space, fold_depth_to_space, depth_to_space_pick);
faces!(space_to_depth, fold_space_to_depth, space_to_depth_pick);

/// The indices `start, start + step, ...` before `end`, clamped as ONNX
/// Slice clamps them.
fn slice_axis(len: usize, start: i64, end: i64, step: i64) -> Vec<Option<usize>> {
    let n = len as i64;
    let norm = |v: i64| if v < 0 { v + n } else { v };
    let (s, e) = if step > 0 {
        (norm(start).clamp(0, n), norm(end).clamp(0, n))
    } else {
        (norm(start).clamp(-1, n - 1), norm(end).clamp(-1, n - 1))
    };
    let mut out = Vec::new();
    let mut i = s;
    while (step > 0 && i < e) || (step < 0 && i > e) {
        out.push(Some(i as usize));
        i += step;
    }
    out
}

fn identity_maps(shape: &[usize]) -> Vec<Vec<Option<usize>>> {
    shape.iter().map(|&d| (0..d).map(Some).collect()).collect()
}

fn slice_pick(n: &Node) -> Result<Pick, String> {
    let shape = full_shape(n)?;
    let rank = shape.len();
    let starts = n.ints(1, "starts").ok_or("missing starts")?;
    let ends = n.ints(2, "ends").ok_or("missing ends")?;
    let axes = n
        .ints(3, "axes")
        .unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = n
        .opt_const(4)
        .map(Const::ints)
        .unwrap_or_else(|| vec![1; starts.len()]);
    if [ends.len(), axes.len(), steps.len()]
        .iter()
        .any(|&l| l != starts.len())
        || steps.contains(&0)
    {
        return Err(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} do not describe a slice"
        ));
    }
    let mut maps = identity_maps(&shape);
    let mut along = Vec::new();
    for k in 0..starts.len() {
        let a = onnx_axis(axes[k], rank)?;
        maps[a] = slice_axis(shape[a], starts[k], ends[k], steps[k]);
        // All of an axis, whatever its size, is what exporters write for
        // "every event"; anything else selects, even on an axis of 1.
        if !(starts[k] == 0 && steps[k] == 1 && ends[k] >= i32::MAX as i64) {
            along.push(a);
        }
    }
    let mut p = Pick::per_axis(&shape, &maps, 0.0)?;
    p.along.extend(along);
    Ok(p)
}

fn gather_pick(n: &Node) -> Result<Pick, String> {
    let shape = full_shape(n)?;
    let axis = onnx_axis(n.attr_i("axis", 0), shape.len())?;
    let idx = n.konst(1)?;
    let len = shape[axis] as i64;
    let picks = idx
        .ints()
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + len } else { i };
            (0..len)
                .contains(&j)
                .then_some(Some(j as usize))
                .ok_or(format!("index {i} is out of range for an axis of {len}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut maps = identity_maps(&shape);
    maps[axis] = picks;
    let mut p = Pick::per_axis(&shape, &maps, 0.0)?;
    p.along.push(axis);
    p.gathered = Some((axis, idx.shape.len()));
    // The indices' own shape replaces the gathered axis.
    p.shape = shape[..axis]
        .iter()
        .chain(&idx.shape)
        .chain(&shape[axis + 1..])
        .copied()
        .collect();
    Ok(p)
}

/// Split's output sizes along `axis`: the `split` input (or attribute
/// before opset 13), else equal parts, one per output.
pub fn split(b: &mut Builder, n: &Node, x: &Act) -> Result<Vec<Value>, String> {
    let shape = full_shape(n)?;
    let axis = onnx_axis(n.attr_i("axis", 0), shape.len())?;
    let outputs = n.proto.output.len();
    let sizes: Vec<usize> = match n.ints(1, "split") {
        Some(s) => s.iter().map(|&v| v.max(0) as usize).collect(),
        None => {
            let parts = n.attr_i("num_outputs", outputs as i64).max(1) as usize;
            let each = shape[axis].div_ceil(parts);
            (0..parts)
                .map(|k| each.min(shape[axis].saturating_sub(k * each)))
                .collect()
        }
    };
    if sizes.len() != outputs || sizes.iter().sum::<usize>() != shape[axis] {
        return Err(format!(
            "split sizes {sizes:?} do not cut an axis of {} into {outputs} outputs",
            shape[axis]
        ));
    }
    let mut start = 0;
    let mut out = Vec::with_capacity(outputs);
    for size in sizes {
        let mut maps = identity_maps(&shape);
        maps[axis] = (start..start + size).map(Some).collect();
        start += size;
        let mut p = Pick::per_axis(&shape, &maps, 0.0)?;
        p.along.push(axis);
        out.push(on_act(b, n, &format!("{}:{}", n.name, out.len()), x, p)?);
    }
    Ok(out)
}

fn pad_pick(n: &Node) -> Result<Pick, String> {
    let shape = full_shape(n)?;
    let rank = shape.len();
    let pads = n.ints(1, "pads").ok_or("missing pads")?;
    let axes: Vec<usize> = match n.opt_const(3) {
        Some(a) => a
            .ints()
            .iter()
            .map(|&v| onnx_axis(v, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!(
            "pads {pads:?} should have {} values",
            2 * axes.len()
        ));
    }
    let fill = match (n.opt_const(2), n.attr("value")) {
        (Some(c), _) => c.data.first().copied().unwrap_or(0.0),
        (None, Some(a)) => a.f as f64,
        (None, None) => 0.0,
    };
    let mode = n.attr_s("mode").unwrap_or_else(|| "constant".into());
    let mut maps = identity_maps(&shape);
    for (k, &a) in axes.iter().enumerate() {
        let (lo, hi, len) = (pads[k], pads[k + axes.len()], shape[a] as i64);
        let out = len + lo + hi;
        if out < 0
            || out > MAX_TENSOR_LEN as i64
            || (mode == "reflect" && (lo > len - 1 || hi > len - 1))
        {
            return Err(format!(
                "pads {lo}, {hi} do not fit an axis of {len} in mode {mode}"
            ));
        }
        maps[a] = (0..out)
            .map(|o| {
                let i = o - lo;
                match mode.as_str() {
                    _ if (0..len).contains(&i) => Ok(Some(i as usize)),
                    "constant" => Ok(None),
                    "edge" => Ok(Some(i.clamp(0, len - 1) as usize)),
                    "reflect" => Ok(Some(if i < 0 { -i } else { 2 * (len - 1) - i } as usize)),
                    other => Err(format!("Pad mode '{other}' is not supported")),
                }
            })
            .collect::<Result<_, _>>()?;
    }
    Pick::per_axis(&shape, &maps, fill)
}

/// Resize (opset 10 on) and Upsample in `nearest` mode: per axis, the input
/// index nearest to where each output index maps back to, with every ONNX
/// coordinate transformation and rounding rule.
/// A Resize's (or Upsample's) geometry: the input's ONNX shape, the output's,
/// and each output coordinate's position on the input axis (before any
/// rounding or clamping), axis by axis.
struct Resized {
    shape: Vec<usize>,
    out: Vec<usize>,
    coords: Vec<Vec<f64>>,
}

fn resize_mode(n: &Node) -> String {
    n.attr_s("mode").unwrap_or_else(|| "nearest".into())
}

fn resize_geometry(n: &Node) -> Result<Resized, String> {
    let shape = full_shape(n)?;
    let rank = shape.len();
    let upsample = n.op() == "Upsample";
    // Upsample: scales as attribute (opset 7) or input 1; Resize: roi 1,
    // scales 2, sizes 3 (opset 11 on) or scales 1 (opset 10).
    let scales_at = if upsample || n.inputs.len() == 2 {
        1
    } else {
        2
    };
    let scales = n
        .opt_const(scales_at)
        .map(|c| c.data.clone())
        .or_else(|| {
            n.attr("scales")
                .map(|a| a.floats.iter().map(|&v| v as f64).collect())
        })
        .filter(|s| !s.is_empty());
    let sizes = n.opt_const(3).map(Const::ints).filter(|s| !s.is_empty());
    if n.attr_ints("axes").is_some() {
        return Err("Resize with 'axes' is not supported".into());
    }
    if let Some(p) = n
        .attr_s("keep_aspect_ratio_policy")
        .filter(|p| p != "stretch")
    {
        return Err(format!("keep_aspect_ratio_policy '{p}' is not supported"));
    }
    let (out, scale): (Vec<usize>, Vec<f64>) = match (sizes, scales) {
        (Some(s), _) if s.len() == rank => (
            s.iter().map(|&v| v.max(0) as usize).collect(),
            (0..rank).map(|d| s[d] as f64 / shape[d] as f64).collect(),
        ),
        (None, Some(s)) if s.len() == rank && s.iter().all(|&v| v > 0.0) => (
            (0..rank)
                .map(|d| (shape[d] as f64 * s[d]).floor() as usize)
                .collect(),
            s,
        ),
        _ => return Err("needs constant scales or sizes, one per axis".into()),
    };
    let coord = if upsample {
        "asymmetric".to_string()
    } else {
        n.attr_s("coordinate_transformation_mode")
            .unwrap_or_else(|| "half_pixel".into())
    };
    tensor_len(&out)?;
    let mut coords = Vec::with_capacity(rank);
    for d in 0..rank {
        let (len, s) = (shape[d], scale[d]);
        let axis = (0..out[d])
            .map(|o| {
                let o = o as f64;
                Ok(match coord.as_str() {
                    "half_pixel" => (o + 0.5) / s - 0.5,
                    "pytorch_half_pixel" if out[d] > 1 => (o + 0.5) / s - 0.5,
                    "pytorch_half_pixel" => 0.0,
                    "align_corners" if out[d] > 1 => o * (len as f64 - 1.0) / (out[d] as f64 - 1.0),
                    "align_corners" => 0.0,
                    "asymmetric" => o / s,
                    "tf_half_pixel_for_nn" if resize_mode(n) == "nearest" => (o + 0.5) / s,
                    other => {
                        return Err(format!(
                            "coordinate_transformation_mode '{other}' is not supported"
                        ))
                    }
                })
            })
            .collect::<Result<_, String>>()?;
        coords.push(axis);
    }
    Ok(Resized { shape, out, coords })
}

fn resize_pick(n: &Node) -> Result<Pick, String> {
    let mode = resize_mode(n);
    if mode != "nearest" {
        return Err(format!(
            "{} mode '{mode}' is not supported here (nearest is; linear on activations only)",
            n.op()
        ));
    }
    let r = resize_geometry(n)?;
    let round = if n.op() == "Upsample" {
        "floor".to_string()
    } else {
        n.attr_s("nearest_mode")
            .unwrap_or_else(|| "round_prefer_floor".into())
    };
    let mut maps = Vec::with_capacity(r.shape.len());
    for (d, xs) in r.coords.iter().enumerate() {
        let len = r.shape[d];
        let axis = xs
            .iter()
            .map(|&x| {
                let i = match round.as_str() {
                    "round_prefer_floor" if x.fract() == 0.5 => x.floor(),
                    "round_prefer_ceil" if x.fract() == 0.5 => x.ceil(),
                    "round_prefer_floor" | "round_prefer_ceil" => x.round(),
                    "floor" => x.floor(),
                    "ceil" => x.ceil(),
                    other => return Err(format!("nearest_mode '{other}' is not supported")),
                };
                Ok(Some((i.max(0.0) as usize).min(len - 1)))
            })
            .collect::<Result<_, String>>()?;
        maps.push(axis);
    }
    Pick::per_axis(&r.shape, &maps, 0.0)
}

/// Resize and Upsample of an activation: nearest is wiring ([`resize`]);
/// linear is, axis by axis, each output the weighted sum of its two
/// neighbours on the input axis (a wiring layer that pairs them, a Scale
/// by the weights, a sum of each pair), with ONNX's clamping at the edges.
/// Weights such as 1/4 and 3/4 (scale 2) are exact in fixed point.
pub fn resize_act(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    match resize_mode(n).as_str() {
        "nearest" => resize(b, n, x),
        "linear" => resize_linear(b, n, x),
        other => Err(format!("{} mode '{other}' is not supported", n.op())),
    }
}

fn resize_linear(b: &mut Builder, n: &Node, x: &Act) -> Result<Value, String> {
    if n.attr_i("antialias", 0) != 0 {
        return Err("antialias=1 is not supported".into());
    }
    let r = resize_geometry(n)?;
    let axes: Vec<usize> = (0..r.shape.len())
        .filter(|&d| {
            r.out[d] != r.shape[d] || r.coords[d].iter().enumerate().any(|(o, &c)| c != o as f64)
        })
        .collect();
    x.not_along(&axes, "resizing")?;
    let mut cur = x.clone();
    for (k, &d) in axes.iter().enumerate() {
        let a = x.event_axis(d);
        let len = cur.shape[a];
        let mut shape = cur.shape.clone();
        shape[a] = r.out[d];
        // The two neighbours and their weights for each output coordinate.
        let taps: Vec<[(usize, f64); 2]> = r.coords[d]
            .iter()
            .map(|&c| {
                let c = c.clamp(0.0, (len - 1) as f64);
                let i0 = c.floor() as usize;
                let w1 = c - i0 as f64;
                [(i0, 1.0 - w1), ((i0 + 1).min(len - 1), w1)]
            })
            .collect();
        let inner: usize = cur.shape[a + 1..].iter().product();
        let rows: usize = shape.iter().product();
        let (mut src, mut weights) = (Vec::with_capacity(2 * rows), Vec::with_capacity(2 * rows));
        for flat in 0..rows {
            let (outer, rest) = (flat / (r.out[d] * inner), flat % (r.out[d] * inner));
            let (o, i) = (rest / inner, rest % inner);
            for (j, w) in taps[o] {
                src.push((0u16, ((outer * len + j) * inner + i) as u32));
                weights.push(w);
            }
        }
        let name = |part: &str| format!("{}.{part}{d}", n.name);
        let pairs = b.push(
            name("pairs"),
            Op::Route { src },
            vec![cur.id],
            vec![rows, 2],
        );
        let scaled = b.push(
            name("weights"),
            Op::Scale {
                shift: vec![0.0; weights.len()],
                scale: weights,
            },
            vec![pairs.id],
            vec![rows, 2],
        );
        let last = k + 1 == axes.len();
        let sum_name = if last {
            n.name.to_string()
        } else {
            name("axis")
        };
        cur = b
            .push(
                sum_name,
                super::reduce::row_sums(rows, 2),
                vec![scaled.id],
                shape,
            )
            .with_batch(x.batch);
    }
    Ok(Value::Act(cur))
}

/// The block size and `[N, C, H, W]` of a DepthToSpace or SpaceToDepth.
fn blocks(n: &Node) -> Result<(usize, [usize; 4]), String> {
    let shape = full_shape(n)?;
    let b = n.attr_i("blocksize", 0);
    match shape[..] {
        [bn, c, h, w] if b > 0 => Ok((b as usize, [bn, c, h, w])),
        _ => Err(format!(
            "needs a [N, C, H, W] input and a blocksize, got {shape:?} and {b}"
        )),
    }
}

fn depth_to_space_pick(n: &Node) -> Result<Pick, String> {
    let (b, [bn, c, h, w]) = blocks(n)?;
    if !c.is_multiple_of(b * b) {
        return Err(format!("{c} channels do not split into blocks of {b}x{b}"));
    }
    let co = c / (b * b);
    let out = vec![bn, co, h * b, w * b];
    Ok(match n.attr_s("mode").as_deref().unwrap_or("DCR") {
        "DCR" => Pick::permuted(
            &[bn, b, b, co, h, w],
            &[0, 3, 4, 1, 5, 2],
            out,
            vec![1, 2, 3],
        ),
        "CRD" => Pick::permuted(
            &[bn, co, b, b, h, w],
            &[0, 1, 4, 2, 5, 3],
            out,
            vec![1, 2, 3],
        ),
        other => return Err(format!("mode '{other}' is not supported")),
    })
}

fn space_to_depth_pick(n: &Node) -> Result<Pick, String> {
    let (b, [bn, c, h, w]) = blocks(n)?;
    if !h.is_multiple_of(b) || !w.is_multiple_of(b) {
        return Err(format!("{h}x{w} does not split into blocks of {b}x{b}"));
    }
    let out = vec![bn, c * b * b, h / b, w / b];
    Ok(Pick::permuted(
        &[bn, c, h / b, b, w / b, b],
        &[0, 3, 5, 1, 2, 4],
        out,
        vec![1, 2, 3],
    ))
}
