//! Fusion: runs of SIMD Dense layers and the elementwise ops between them
//! become one [`Kernel::Chain`] step ([`crate::chain`]), with a final
//! Softmax (when exact on i64) or Argmax as the chain's tail.

use super::types::{Kernel, MacPath, Sizes, Step};
use crate::chain::{Chain, ChainLayer, Tail};
use crate::dense::Operand;
use crate::epi::Epi;
use quantize::qmodel::QModel;

/// A Dense step as the head of a fused chain layer, if it qualifies.
fn chain_dense(st: &Step) -> Option<ChainLayer> {
    let Kernel::Mac(m) = &st.kernel else {
        return None;
    };
    if m.positions != 1 || !m.gather.is_empty() {
        return None;
    }
    let MacPath::Fast {
        k,
        bias_al,
        sl,
        acc: None,
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
    let rq = rq.to_i32(arange.0, arange.1)?;
    Some(ChainLayer {
        k: k.clone(),
        bias,
        sl: *sl,
        arange: (i64::try_from(arange.0).ok()?, i64::try_from(arange.1).ok()?),
        rq,
        epi: Vec::new(),
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
        let Some(head) = chain_dense(&st) else {
            out.push(st);
            continue;
        };
        let mut layers = vec![head];
        let first_in = st.inputs[0];
        let mut last = li; // last layer covered
        let ty = model.layers[li].ty;
        let (mut lo, mut hi) = (ty.min_raw(), ty.max_raw());
        // Extend while the current tensor (last layer's) has one reader, the next layer.
        while let Some((nli, nst)) = it.peek() {
            let t = model.layer_tensor(last);
            if *nli != last + 1 || readers[t] != 1 || nst.inputs.as_slice() != [t] {
                break;
            }
            if let Some((ops, olo, ohi)) = chain_elementwise(nst, lo, hi) {
                layers.last_mut().unwrap().epi.extend(ops);
                (lo, hi) = (olo, ohi);
            } else if let Some(next) = chain_dense(nst) {
                // The next Dense reads values of its input type's range.
                let xt = model.ty(t);
                if lo < xt.min_raw() || hi > xt.max_raw() {
                    break;
                }
                layers.push(next);
                let ty = model.layers[*nli].ty;
                (lo, hi) = (ty.min_raw(), ty.max_raw());
            } else {
                break;
            }
            last = *nli;
            it.next();
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
        for d in &mut descs[li..=last] {
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
