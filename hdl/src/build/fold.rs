//! Reuse factor R > 1: Dense layers whose multipliers are shared R times,
//! so the kernel takes an event every II = max R cycles (hls4ml's
//! ReuseFactor, traded the same way: area for interval).
//!
//! A folded Dense layer of `n_in` inputs splits its inputs into R chunks of
//! `C = ceil(n_in / R)`. It holds its input vector, and in phase `p` (one per
//! cycle) slot `c` of every output multiplies input `p*C + c` by that
//! output's weight for it, read from a small ROM indexed by the phase. The
//! partial sums of the phase go into one accumulator per output, so the
//! layer has `n_out * C` multipliers instead of `n_in * n_out`. Because the
//! golden model's sum is exact (products rounded to the accumulator's LSB,
//! overflow once at the end), any order of additions gives the same bits.
//!
//! The kernel is a chain of segments: pipelined combinational segments
//! (built and pipelined exactly as for II = 1) between the folded cores, each
//! an instance in one netlist, handing on values and a valid pulse. Every
//! event follows a fixed schedule from the cycle it is accepted, and events
//! are accepted at least II cycles apart (`in_ready`), so no two events ever
//! meet in a folded core.

use quantize::accum::MacLayout;
use quantize::qmodel::{QModel, QOp};

use super::arith::{Builder, Term};
use super::bus::{input_bus, output_bus};
use super::lower;
use crate::kernel::{BuildError, Kernel, Options};
use crate::netlist::{Netlist, NodeId, OutField};
use crate::pipeline::pipeline;

/// The reuse factor of each layer: `--reuse` for every Dense layer when
/// given, else the model's own (from its configuration). Layers without
/// multipliers have nothing to share and keep 1.
pub fn layer_reuse(model: &QModel, reuse: Option<u32>) -> Result<Vec<u32>, BuildError> {
    model
        .layers
        .iter()
        .map(|l| {
            let dense = matches!(l.op, QOp::Dense { .. });
            let r = match reuse {
                Some(r) if dense => r.max(1),
                Some(_) => 1,
                None => l.reuse.max(1),
            };
            match &l.op {
                QOp::Dense { .. } => Ok(r),
                QOp::Conv { .. } if r > 1 => Err(BuildError::Unsupported {
                    layer: l.name.clone(),
                    kind: l.op.kind(),
                    why: format!(
                        "reuse factor {r} is built for Dense layers only; give this layer reuse_factor = 1"
                    ),
                }),
                _ => Ok(1),
            }
        })
        .collect()
}

/// Checks that every folded layer cuts the model in two: it reads only the
/// tensor before it, and no later layer reads a tensor before it (the
/// folded core holds one vector, not a skip connection), in a model of one
/// input and one output, the last layer's (so tensor `k` is layer `k`'s input).
fn check_cuts(model: &QModel, reuse: &[u32]) -> Result<(), BuildError> {
    for (k, l) in model.layers.iter().enumerate() {
        if reuse[k] <= 1 {
            continue;
        }
        let cut = |why: String| BuildError::Unsupported {
            layer: l.name.clone(),
            kind: l.op.kind(),
            why,
        };
        let last = model.layers.len();
        let io = match (model.inputs.len(), model.outputs.as_slice()) {
            (1, [o]) if o.tensor == last => None,
            (1, [o]) => Some(format!(
                "its output is tensor {}, not the last layer's",
                o.tensor
            )),
            (i, o) => Some(format!("it has {i} inputs and {} outputs", o.len())),
        };
        if let Some(why) = io {
            return Err(cut(format!(
                "reuse factor {} is built for models of one input and one output, the last layer's, but {why}: give its layers reuse_factor = 1",
                reuse[k]
            )));
        }
        if l.inputs != [k] {
            return Err(cut(format!(
                "reuse factor {} needs the layer to read the tensor just before it (it reads {:?})",
                reuse[k], l.inputs
            )));
        }
        for later in &model.layers[k + 1..] {
            if let Some(t) = later.inputs.iter().find(|&&t| t <= k) {
                return Err(cut(format!(
                    "reuse factor {} needs a chain of layers, but layer '{}' reads tensor {t} from before it",
                    reuse[k], later.name
                )));
            }
        }
    }
    Ok(())
}

/// Signed input fields of a segment netlist for the values `vals` of `top`,
/// each declared with the range its source guarantees.
pub(super) fn segment_inputs(
    seg: &mut Netlist,
    top: &Netlist,
    vals: &[NodeId],
    ranges: &[(i128, i128)],
) -> Vec<NodeId> {
    let mut lsb = 0;
    vals.iter()
        .zip(ranges)
        .map(|(&v, &(lo, hi))| {
            let w = top.width(v);
            let n = seg.input_in(lsb, w, lo, hi);
            lsb += w;
            n
        })
        .collect()
}

/// Builds the kernel of `model` with the per-layer reuse factors `reuse`
/// (some above 1).
pub(super) fn build_folded(
    model: &QModel,
    options: &Options,
    reuse: &[u32],
) -> Result<Kernel, BuildError> {
    check_cuts(model, reuse)?;
    let ii = reuse.iter().copied().max().unwrap_or(1);
    let budget = options.budget_ps();
    let delays = options.delays();
    let mut top = Netlist::new();
    let (inputs, x) = input_bus(&mut top, model);
    // check_cuts: one input.
    let mut vals = x.concat();
    let mut valid = handshake(&mut top, ii);
    let mut latency = 0;
    // The folded layer whose accumulators the next segment finishes.
    let mut pending: Option<usize> = None;
    let mut first = 0;
    let n = model.layers.len();
    loop {
        let k = (first..n).find(|&k| reuse[k] > 1).unwrap_or(n);
        if pending.is_some() || k > first {
            let seg = segment(model, options, &top, &vals, pending.take(), first, k)?;
            let (pseg, l) = pipeline(&seg, budget, &delays);
            (vals, valid) = top.embed(&pseg, &vals, valid, Some(latency));
            latency += l;
        }
        if k == n {
            break;
        }
        let core = fold_core(&mut top, model, k, reuse[k], &vals, valid, options)?;
        latency += core.latency;
        vals = core.accs;
        valid = core.done;
        pending = Some(k);
        first = k + 1;
    }
    if let Some(e) = top.error.take() {
        return Err(e.into());
    }
    let outputs = output_bus(&mut top, model, &vals);
    top.out_valid = Some(valid);
    Ok(Kernel {
        name: options.module_name(&model.name)?,
        net: top,
        latency,
        ii,
        inputs,
        outputs,
        options: options.clone(),
        cells: Vec::new(),
    })
}

/// `in_ready` and the accept pulse: after accepting an event the kernel
/// is busy for `ii - 1` cycles. `in_ready` depends on registers only (no
/// combinational path from `in_valid`).
fn handshake(top: &mut Netlist, ii: u32) -> NodeId {
    let iv = top.in_valid();
    let left = top.state(0, ii as i128 - 1, false, true);
    let zero = top.konst(0);
    let ready = top.eq(left, zero);
    let accept = top.and(iv, ready);
    let one = top.konst(1);
    let dec = top.sub(left, one);
    let idle = top.mux(ready, zero, dec);
    let full = top.konst(ii as i128 - 1);
    let next = top.mux(accept, full, idle);
    let next = top.narrow(next, 0, ii as i128 - 1);
    top.connect(left, next);
    top.in_ready = Some(ready);
    accept
}

/// The combinational segment from tensor `first` to tensor `k` (the
/// input of the next folded layer, or the model's output): the finishing
/// (bias, overflow, requantization) of a pending folded layer, then layers
/// `first..k` as for II = 1.
fn segment(
    model: &QModel,
    options: &Options,
    top: &Netlist,
    vals: &[NodeId],
    pending: Option<usize>,
    first: usize,
    k: usize,
) -> Result<Netlist, BuildError> {
    let mut b = Builder::new(options.strategy, options.ternary_adders());
    // Accumulators are read on every cycle, partial sums included, so the
    // inputs take the registers' ranges, not the complete sums'.
    let ranges: Vec<(i128, i128)> = vals.iter().map(|&v| top.range(v)).collect();
    let ins = segment_inputs(&mut b.net, top, vals, &ranges);
    let mut t: Vec<Vec<NodeId>> = vec![vec![]; model.layers.len() + 1];
    t[first] = match pending {
        None => ins,
        Some(p) => {
            let layer = &model.layers[p];
            let QOp::Dense {
                w_ty,
                bias,
                b_ty,
                acc_ty,
                ..
            } = &layer.op
            else {
                unreachable!("only Dense layers are folded")
            };
            let mac = MacLayout::new(model.ty(p), *w_ty, *b_ty, *acc_ty);
            // The folded layer's finishing is that layer's hardware.
            b.net.current_layer = Some(p);
            ins.iter()
                .zip(bias)
                .map(|(&a, &bv)| {
                    let bl = mac.bias(bv);
                    let leaf = Term {
                        node: a,
                        shift: 0,
                        neg: false,
                        depth: 0,
                    };
                    b.finish(vec![leaf], bl, *acc_ty, layer.ty)
                })
                .collect()
        }
    };
    b.net.current_layer = None;
    for li in first..k {
        let y = lower::layer(&mut b, model, li, &t)?;
        if let Some(e) = b.net.error.take() {
            return Err(e.into());
        }
        t[li + 1] = y;
    }
    for &v in &t[k] {
        let width = b.net.width(v);
        b.net.outputs.push(OutField { node: v, width });
    }
    Ok(b.net)
}

struct Core {
    accs: Vec<NodeId>,
    done: NodeId,
    latency: u32,
}

/// `v` at the leaves `cnt = 0, 1, ...` of a multiplexer tree on the bits
/// of `cnt` (missing leaves are 0).
pub(super) fn select(net: &mut Netlist, cnt: NodeId, leaves: &[Option<NodeId>]) -> Option<NodeId> {
    let mut level: Vec<Option<NodeId>> = leaves.to_vec();
    let mut bit = 0;
    while level.len() > 1 {
        let s = net.bit(cnt, bit);
        level = level
            .chunks(2)
            .map(|p| match (p[0], p.get(1).copied().flatten()) {
                (None, None) => None,
                (a, b) => {
                    let z = net.konst(0);
                    Some(net.mux(s, b.unwrap_or(z), a.unwrap_or(z)))
                }
            })
            .collect();
        bit += 1;
    }
    level[0]
}

/// The folded multiply-accumulate of Dense layer `k` with reuse `r`: input
/// hold registers, a phase counter, the shared multipliers (pipelined like
/// any segment), and the accumulators. Returns the accumulators, which
/// hold the complete sums on the cycle `done` is high.
#[allow(clippy::too_many_arguments)]
fn fold_core(
    top: &mut Netlist,
    model: &QModel,
    k: usize,
    r: u32,
    x: &[NodeId],
    valid: NodeId,
    options: &Options,
) -> Result<Core, BuildError> {
    let (strategy, budget) = (options.strategy, options.budget_ps());
    let layer = &model.layers[k];
    let QOp::Dense {
        n_in,
        n_out,
        weights,
        w_ty,
        b_ty,
        acc_ty,
        ..
    } = &layer.op
    else {
        unreachable!("only Dense layers are folded")
    };
    let (n_in, n_out, r) = (*n_in, *n_out, r as usize);
    let chunk = n_in.div_ceil(r);
    // The layer reads tensor k (checked by `check_cuts`).
    let mac = MacLayout::new(model.ty(k), *w_ty, *b_ty, *acc_ty);

    // All of the core, its counter and accumulators too, is layer k's.
    top.current_layer = Some(k);
    // Held operands and the phase: phase p runs on the (p+1)-th cycle after `valid`.
    let held: Vec<NodeId> = x
        .iter()
        .map(|&v| {
            let (lo, hi) = top.range(v);
            let h = top.state(lo, hi, false, false);
            let next = top.mux(valid, v, h);
            top.connect(h, next);
            h
        })
        .collect();
    let last_phase = r as i128 - 1;
    let cnt = top.state(0, last_phase, false, false);
    let lastc = top.konst(last_phase);
    let at_last = top.eq(cnt, lastc);
    let one = top.konst(1);
    let inc = top.add(cnt, one);
    let step = top.mux(at_last, cnt, inc);
    let step = top.narrow(step, 0, last_phase);
    let zero = top.konst(0);
    let cnext = top.mux(valid, zero, step);
    top.connect(cnt, cnext);
    let first = top.reg(valid, true);
    // `run`: a phase is in progress (the accumulators add only then).
    let run = top.state(0, 1, true, true);
    let more = top.not(at_last);
    let cont = top.and(run, more);
    let rnext = top.or(valid, cont);
    top.connect(run, rnext);

    // The phase datapath, as a segment of its own: held inputs and the phase in,
    // one partial sum per output out.
    let mut b = Builder::new(strategy, options.ternary_adders());
    b.net.current_layer = Some(k);
    let mut ranges: Vec<(i128, i128)> = held.iter().map(|&h| top.range(h)).collect();
    ranges.push((0, last_phase));
    let mut ports = held.clone();
    ports.push(cnt);
    let ins = segment_inputs(&mut b.net, top, &ports, &ranges);
    let (xs, pc) = (&ins[..n_in], ins[n_in]);
    let sel: Vec<Option<NodeId>> = (0..chunk)
        .map(|c| {
            let leaves: Vec<Option<NodeId>> =
                (0..r).map(|p| xs.get(p * chunk + c).copied()).collect();
            select(&mut b.net, pc, &leaves)
        })
        .collect();
    // Per output: the range of every prefix of its phases' partial sums,
    // which its accumulator holds one after the other.
    let mut acc_ranges = Vec::with_capacity(n_out);
    for o in 0..n_out {
        let w_at = |i: usize| {
            if i < n_in {
                weights[o * n_in + i] as i128
            } else {
                0
            }
        };
        let mut terms: Vec<Term> = Vec::new();
        for (c, xsel) in sel.iter().enumerate() {
            let Some(xsel) = *xsel else { continue };
            let ws: Vec<i128> = (0..r).map(|p| w_at(p * chunk + c)).collect();
            let tag = format!("{}[{o}] slot {c} weights {ws:?}", layer.name);
            if ws.iter().all(|&w| w == ws[0]) {
                // One weight in every phase: a constant multiplication.
                let ts = b.const_mult_terms(xsel, ws[0], 0, &tag);
                if ts.is_empty() {
                    continue;
                }
                let p = b.sum_terms(ts, 0);
                terms.push(b.at_acc_lsb(p, &mac));
            } else {
                let wn = b.net.rom(pc, ws);
                b.net.tag(wn, tag);
                let p = b.net.mul(xsel, wn);
                terms.push(b.at_acc_lsb(p, &mac));
            }
        }
        let (mut plo, mut phi) = (0i128, 0i128);
        for p in 0..r {
            let (mut lo, mut hi) = (0i128, 0i128);
            for c in 0..chunk {
                let i = p * chunk + c;
                let w = w_at(i);
                if i >= n_in || w == 0 {
                    continue;
                }
                let (xl, xh) = top.range(held[i]);
                let (a, bb) = (w * xl, w * xh);
                lo += mac.product(a.min(bb));
                hi += mac.product(a.max(bb));
            }
            plo += lo.min(0);
            phi += hi.max(0);
        }
        acc_ranges.push((plo, phi));
        let s = b.sum_terms(terms, 0);
        let width = b.net.width(s);
        b.net.outputs.push(OutField { node: s, width });
    }
    if let Some(e) = b.net.error.take() {
        return Err(e.into());
    }
    let (pseg, d) = pipeline(&b.net, budget, &options.delays());
    let (partial, first_d) = top.embed(&pseg, &ports, first, None);
    let mut run_d = run;
    for _ in 0..d {
        run_d = top.reg(run_d, true);
    }
    let accs = partial
        .iter()
        .zip(&acc_ranges)
        .map(|(&s, &(lo, hi))| {
            let acc = top.state(lo, hi, false, false);
            let sum = top.add(acc, s);
            let hold = top.mux(run_d, sum, acc);
            let next = top.mux(first_d, s, hold);
            let next = top.narrow(next, lo, hi);
            top.connect(acc, next);
            acc
        })
        .collect();
    let mut done = first_d;
    for _ in 0..r {
        done = top.reg(done, true);
    }
    top.current_layer = None;
    Ok(Core {
        accs,
        done,
        latency: 1 + d + r as u32,
    })
}
