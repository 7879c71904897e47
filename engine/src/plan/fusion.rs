//! Fusion: runs of SIMD Dense and Conv layers and the elementwise ops
//! between them become one [`Kernel::Chain`] step ([`crate::chain`]), with
//! a final Softmax (when exact on i64) or Argmax as the chain's tail.
//! Convolutions run on grids of channels in lanes ([`ConvShape`]): a chain
//! may start with convolutions, and must then go on to a Dense (which reads
//! the last grid flat) and end with Dense layers.

use super::types::{Kernel, Mac, MacPath, Sizes, Step, PAD};
use crate::chain::{Chain, ChainLayer, ConvShape, Tail};
use crate::dense::{Operand, PackedDense};
use crate::epi::Epi;
use crate::rq::Rq;
use quantize::qmodel::{QModel, QOp, ROUTE_ZERO};

/// A Dense step as the head of a fused chain layer, if it qualifies.
fn chain_dense(st: &Step) -> Option<ChainLayer> {
    let Kernel::Mac(m) = &st.kernel else {
        return None;
    };
    if m.positions != 1 || !m.gather.is_empty() {
        return None;
    }
    chain_mac(m)
}

/// Layer `li`'s kernel packed anew: `n_in` columns, column `j` the
/// layer's weight column `cols(j)` (`None`: a weight 0).
fn repack(
    model: &QModel,
    li: usize,
    k: &PackedDense,
    n_in: usize,
    cols: impl Fn(usize) -> Option<usize>,
) -> Option<PackedDense> {
    let l = &model.layers[li];
    let weights = match &l.op {
        QOp::Dense { weights, .. } | QOp::Conv { weights, .. } => weights,
        _ => return None,
    };
    let old_in = weights.len() / k.n_out.max(1);
    let w: Vec<i64> = (0..k.n_out)
        .flat_map(|o| (0..n_in).map(move |j| (o, j)))
        .map(|(o, j)| cols(j).map_or(0, |i| weights[o * old_in + i]))
        .collect();
    let xt = model.ty(l.inputs[0]);
    let (xlo, xhi) = (xt.min_raw().min(0), xt.max_raw().max(0));
    PackedDense::new(&w, n_in, k.n_out, k.isa, xlo, xhi)
}

/// A Conv step (one channel group) as a chain layer reading a grid of
/// `cpad_in` lanes per position (`None`: the chain's head, which packs the
/// model's tensor into channels rounded up to 4).
fn chain_conv(model: &QModel, li: usize, st: &Step, cpad_in: Option<usize>) -> Option<ChainLayer> {
    let Kernel::Conv(groups) = &st.kernel else {
        return None;
    };
    let ([m], QOp::Conv { window, .. }) = (groups.as_slice(), &model.layers[li].op) else {
        return None;
    };
    let (c, ksz, rows) = (
        window.in_channels,
        window.kernel_size(),
        window.in_positions(),
    );
    let cpad = cpad_in.unwrap_or(c.div_ceil(4) * 4);
    if cpad < c || !cpad.is_multiple_of(4) || m.n_in != c * ksz || m.positions == 0 {
        return None;
    }
    let mut l = chain_mac(m)?;
    // Weights in [tap][channel] order, channels padded with zeros.
    l.k = repack(model, li, &l.k, ksz * cpad, |j| {
        let (t, ch) = (j / cpad, j % cpad);
        (ch < c).then_some(ch * ksz + t)
    })?;
    // Input channel 0's gather index of each tap is its input position.
    let taps: Vec<Vec<Option<usize>>> = (0..m.positions)
        .map(|p| {
            m.gather[p * m.n_in..p * m.n_in + ksz]
                .iter()
                .map(|&q| (q != PAD).then_some(q as usize))
                .collect()
        })
        .collect();
    let mut shape = ConvShape::new(&l.k, c, rows, cpad, &taps);
    if cpad_in.is_none() {
        // The head packs the model's tensor itself.
        shape.gather(|i| Some(i as u32));
    }
    l.conv = Some(shape);
    Some(l)
}

/// The Dense layer `li` after a convolution whose grid it reads flat: its
/// weight columns (the model's `[channel][position]` order) permuted to the
/// grid's `[position][lane]` order.
fn after_grid(
    model: &QModel,
    li: usize,
    mut l: ChainLayer,
    prev: &ChainLayer,
) -> Option<ChainLayer> {
    let g = prev.conv.as_ref()?;
    let (rows, lanes, oc) = (g.out_rows, g.cpad_out, prev.k.n_out);
    if oc * rows != l.k.n_in {
        return None;
    }
    l.k = repack(model, li, &l.k, rows * lanes, |j| {
        let (q, ch) = (j / lanes, j % lanes);
        (ch < oc).then_some(ch * rows + q)
    })?;
    Some(l)
}

/// A MAC layer on the exact i32 path as a chain layer.
fn chain_mac(m: &Mac) -> Option<ChainLayer> {
    let MacPath::Fast {
        k,
        bias_al,
        sl,
        acc,
        rq,
        drange,
        arange,
    } = &m.path
    else {
        return None;
    };
    if k.operand == Operand::I32 || *sl > 30 {
        return None;
    }
    let l32 = |v: i128| v >= i32::MIN as i128 && v <= i32::MAX as i128;
    if !l32(drange.0 << sl) || !l32(drange.1 << sl) {
        return None;
    }
    // Padded to whole 16-lane blocks for the vector epilogue.
    let mut bias = vec![0i32; k.dot_len()];
    for (d, &b) in bias.iter_mut().zip(bias_al) {
        *d = i32::try_from(b).ok()?;
    }
    // An accumulator that can overflow: its wrap or saturation (a
    // requantizer to its own type at its own LSB) before the output's,
    // which then reads the accumulator type's range.
    let (acc, rq) = match acc {
        None => (None, rq.to_i32(arange.0, arange.1)?),
        Some((ty, af)) => {
            let a = Rq::new(*af, *ty, arange.0, arange.1).to_i32(arange.0, arange.1)?;
            let r = rq.to_i32(ty.min_raw() as i128, ty.max_raw() as i128)?;
            (Some(a), r)
        }
    };
    Some(ChainLayer {
        k: k.clone(),
        bias,
        sl: *sl,
        arange: (i64::try_from(arange.0).ok()?, i64::try_from(arange.1).ok()?),
        acc,
        rq,
        epi: Vec::new(),
        conv: None,
    })
}

/// An elementwise step folded into an epilogue: its i32 steps, given the
/// input type's range. Returns the ops and the output range.
fn chain_elementwise(st: &Step, lo: i64, hi: i64) -> Option<(Vec<Epi>, i64, i64)> {
    let c32 = |v: i64| i32::try_from(v).ok();
    let (pre, plo, phi, rq) = match &st.kernel {
        Kernel::Relu(rq) => (Some(Epi::Max0), lo.max(0), hi.max(0), rq),
        Kernel::Clip(a, b, rq) => {
            if a > b {
                return None;
            }
            let (a, b) = ((*a).max(lo), (*b).min(hi));
            if a > b {
                return None;
            }
            (Some(Epi::Clamp(c32(a)?, c32(b)?)), a, b, rq)
        }
        Kernel::Thresh(th, rq) => {
            let th = (*th).clamp(lo - 1, hi);
            (Some(Epi::Thresh(c32(th)?)), lo.min(0), hi.max(0), rq)
        }
        Kernel::Requant(rq) => (None, lo, hi, rq),
        _ => return None,
    };
    let r = rq.to_i32(lo as i128, hi as i128)?;
    let mut ops: Vec<Epi> = pre.into_iter().collect();
    let (olo, ohi) = if r.is_identity(plo, phi) {
        (plo, phi)
    } else {
        ops.push(Epi::Rq(r));
        r.out_range()
    };
    Some((ops, olo, ohi))
}

/// Replaces runs of fusable steps by [`Kernel::Chain`] steps. Steps are one
/// per layer on entry (step `i` computes layer `i`'s tensor). A tensor read
/// by more than the next layer, or a graph output, ends a chain: it must be
/// in the arena.
pub(super) fn fuse(
    model: &QModel,
    steps: Vec<Step>,
    sizes: &mut Sizes,
    descs: &mut [String],
) -> Vec<Step> {
    let mut readers = vec![0usize; model.tensors()];
    for l in &model.layers {
        for &t in &l.inputs {
            readers[t] += 1;
        }
    }
    for o in &model.outputs {
        readers[o.tensor] += 1;
    }
    let mut out = Vec::with_capacity(steps.len());
    let mut it = steps.into_iter().enumerate().peekable();
    while let Some((li, st)) = it.next() {
        let Some(head) = chain_dense(&st).or_else(|| chain_conv(model, li, &st, None)) else {
            out.push(st);
            continue;
        };
        let mut layers = vec![head];
        let mut first_in = st.inputs[0];
        let mut first = li; // first layer covered
                            // The steps the chain replaces, put back if it cannot be made.
        let mut taken = vec![st];
        // A plain gather of one tensor read only by a head convolution:
        // the convolution's packing does it.
        if let (Some(cv), Some(prev)) = (&mut layers[0].conv, out.last()) {
            if let Kernel::Route { src, rq: None } = &prev.kernel {
                let one =
                    prev.inputs.len() == 1 && src.iter().all(|s| s.0 == 0 || s.0 == ROUTE_ZERO);
                let before = li > 0 && model.layer_tensor(li - 1) == first_in;
                if one && before && prev.out == first_in && readers[first_in] == 1 {
                    cv.gather(|i| (src[i].0 != ROUTE_ZERO).then_some(src[i].1));
                    first_in = prev.inputs[0];
                    first = li - 1;
                    taken.insert(0, out.pop().expect("the Route step"));
                }
            }
        }
        // A head whose input lies position-major reads it flat.
        if let Some(cv) = &layers[0].conv {
            let ch = cv.channels_in;
            let taps = layers[0].k.n_in / cv.cpad_in.max(1);
            let flat = repack(model, li, &layers[0].k, taps * ch, |j| {
                Some((j % ch) * taps + j / ch)
            })
            .and_then(|k| cv.flat(&layers[0].k, k));
            if let Some((shape, k)) = flat {
                layers[0].conv = Some(shape);
                layers[0].k = k;
            }
        }
        let mut last = li; // last layer covered
        let ty = model.layers[li].ty;
        let (mut lo, mut hi) = (ty.min_raw(), ty.max_raw());
        // Extend while the current tensor (last layer's) has one reader, the next layer.
        while let Some((nli, nst)) = it.peek() {
            let t = model.layer_tensor(last);
            if *nli != last + 1 || readers[t] != 1 || nst.inputs.as_slice() != [t] {
                break;
            }
            // The next Dense or Conv reads values of its input type's range;
            // after a convolution, a Dense reads its grid flat and a Conv
            // reads it as its input grid.
            let next = || {
                let xt = model.ty(t);
                if lo < xt.min_raw() || hi > xt.max_raw() {
                    return None;
                }
                let prev = layers.last().unwrap();
                match &prev.conv {
                    None => chain_dense(nst),
                    Some(g) => chain_dense(nst)
                        .and_then(|l| after_grid(model, *nli, l, prev))
                        .or_else(|| chain_conv(model, *nli, nst, Some(g.cpad_out))),
                }
            };
            if let Some((ops, olo, ohi)) = chain_elementwise(nst, lo, hi) {
                layers.last_mut().unwrap().epi.extend(ops);
                (lo, hi) = (olo, ohi);
            } else if let Some(next) = next() {
                layers.push(next);
                let ty = model.layers[*nli].ty;
                (lo, hi) = (ty.min_raw(), ty.max_raw());
            } else {
                break;
            }
            last = *nli;
            taken.push(it.next().unwrap().1);
        }
        // A chain's outputs are a Dense's: one ending in a convolution
        // (whose output grid is not the model's layout) is not made.
        if layers.last().unwrap().conv.is_some() {
            out.extend(taken);
            continue;
        }
        let mut chain = Chain::new(layers);
        // A Softmax (exact on i64) or Argmax reading only the chain's output.
        if let Some((nli, nst)) = it.peek() {
            let t = model.layer_tensor(last);
            if *nli == last + 1 && readers[t] == 1 && nst.inputs.as_slice() == [t] {
                chain.tail = match &nst.kernel {
                    Kernel::Softmax {
                        n,
                        exp_table,
                        inv_table,
                        fast: Some(rq),
                        ..
                    } => Some(Tail::softmax(
                        *n,
                        exp_table,
                        inv_table,
                        *rq,
                        model.tensor_len(t),
                    )),
                    Kernel::Argmax { n, one } => Some(Tail::Argmax { n: *n, one: *one }),
                    _ => None,
                };
                if chain.tail.is_some() {
                    last = *nli;
                    it.next();
                }
            }
        }
        let (cx, cd) = chain.scratch();
        sizes.cx = sizes.cx.max(cx);
        sizes.cdot = sizes.cdot.max(cd);
        for d in &mut descs[first..=last] {
            *d = if d == "scalar" {
                "fused".into()
            } else {
                format!("{d} + fused")
            };
        }
        out.push(Step {
            inputs: vec![first_in],
            out: model.layer_tensor(last),
            kernel: Kernel::Chain(Box::new(chain)),
        });
    }
    out
}
