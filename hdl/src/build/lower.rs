//! Per-op lowering: each `QOp` family becomes hardware in its own function
//! here, following the golden model's rule for that op (see `QOp`), so that
//! adding an op means one match arm in [`layer`] and one function.

use quantize::accum::MacLayout;
use quantize::fixed::{FixedType, Rounding};
use quantize::qmodel::{step_sets, BinOp, PoolKind, QModel, QOp, Table, Window, ROUTE_ZERO};

use super::arith::{Builder, Term};
use crate::kernel::BuildError;
use crate::netlist::NodeId;

/// What every lowering needs to know about its layer.
struct Layer<'a> {
    /// Input tensors with their types, in the layer's input order.
    args: Vec<(&'a [NodeId], FixedType)>,
    /// Result type.
    ty: FixedType,
    /// Number of result values.
    out_len: usize,
    /// Layer name, for tags in the Verilog.
    name: &'a str,
}

impl<'a> Layer<'a> {
    fn arg(&self, k: usize) -> (&'a [NodeId], FixedType) {
        self.args[k]
    }
}

/// The hardware of layer `li` of `model`, reading the tensors `t` built
/// so far, every node of it stamped with `li` ([`crate::netlist::Node::layer`]).
pub(super) fn layer(
    b: &mut Builder,
    model: &QModel,
    li: usize,
    t: &[Vec<NodeId>],
) -> Result<Vec<NodeId>, BuildError> {
    let outer = b.net.current_layer.replace(li);
    let y = ops(b, model, li, t);
    b.net.current_layer = outer;
    y
}

/// The ops of layer `li` (see [`layer`]).
fn ops(
    b: &mut Builder,
    model: &QModel,
    li: usize,
    t: &[Vec<NodeId>],
) -> Result<Vec<NodeId>, BuildError> {
    let layer = &model.layers[li];
    let l = Layer {
        args: layer
            .inputs
            .iter()
            .map(|&k| (t[k].as_slice(), model.ty(k)))
            .collect(),
        ty: layer.ty,
        out_len: layer.shape.iter().product(),
        name: &layer.name,
    };
    Ok(match &layer.op {
        QOp::Dense {
            n_in,
            n_out,
            weights,
            w_ty,
            bias,
            b_ty,
            acc_ty,
        } => {
            let mac = MacLayout::new(l.arg(0).1, *w_ty, *b_ty, *acc_ty);
            dense(b, &l, *n_in, *n_out, weights, bias, &mac, *acc_ty)
        }
        QOp::Conv {
            window,
            out_channels,
            weights,
            w_ty,
            bias,
            b_ty,
            acc_ty,
        } => {
            let mac = MacLayout::new(l.arg(0).1, *w_ty, *b_ty, *acc_ty);
            conv(b, &l, window, *out_channels, weights, bias, &mac, *acc_ty)
        }
        QOp::Scale {
            scale,
            s_ty,
            shift,
            b_ty,
            acc_ty,
        } => {
            let mac = MacLayout::new(l.arg(0).1, *s_ty, *b_ty, *acc_ty);
            affine(b, &l, scale, shift, &mac, *acc_ty)
        }
        QOp::Relu => relu(b, &l),
        QOp::LeakyRelu { alpha, a_ty } => prelu(b, &l, &vec![*alpha; l.arg(0).0.len()], *a_ty),
        QOp::PRelu { alpha, a_ty } => prelu(b, &l, alpha, *a_ty),
        QOp::ThresholdedRelu { theta } => thresholded_relu(b, &l, *theta),
        QOp::Clip { lo, hi } => clip(b, &l, *lo, *hi),
        QOp::Table { table, .. } => l.arg(0).0.iter().map(|&v| b.table(v, table)).collect(),
        QOp::Step { thresholds, values } => step(b, &l, thresholds, values),
        QOp::Softmax {
            n,
            exp_ty,
            exp_table,
            inv_ty,
            inv_table,
        } => softmax(b, &l, *n, *exp_ty, exp_table, *inv_ty, inv_table),
        QOp::Argmax { n } => argmax(b, &l, *n),
        QOp::Pool {
            kind,
            window,
            recip,
            recip_ty,
        } => pool(b, &l, *kind, window, recip, *recip_ty),
        QOp::Add | QOp::Sub | QOp::Mul | QOp::Max | QOp::Min => {
            binary(b, &l, layer.op.binary().expect("a binary op"))
        }
        QOp::Route { src } => src
            .iter()
            .map(|&(k, j)| {
                if k == ROUTE_ZERO {
                    return b.net.konst(0);
                }
                let (x, xt) = l.arg(k as usize);
                b.quantize(x[j as usize], xt.frac_bits(), l.ty)
            })
            .collect(),
        QOp::Requant => {
            let (x, xt) = l.arg(0);
            x.iter()
                .map(|&v| b.quantize(v, xt.frac_bits(), l.ty))
                .collect()
        }
    })
}

/// Dense: one multiply-accumulate row per output, all rows one shift-add
/// network ([`Builder::mac_rows`]).
#[allow(clippy::too_many_arguments)]
fn dense(
    b: &mut Builder,
    l: &Layer,
    n_in: usize,
    n_out: usize,
    weights: &[i64],
    bias: &[i64],
    mac: &MacLayout,
    acc_ty: FixedType,
) -> Vec<NodeId> {
    let (x, _) = l.arg(0);
    let w: Vec<Vec<i64>> = weights[..n_in * n_out]
        .chunks(n_in)
        .map(|r| r.to_vec())
        .collect();
    b.mac_rows(&x[..n_in], &w, mac, &bias[..n_out], acc_ty, l.ty, |o| {
        format!("{}[{o}]", l.name)
    })
}

/// Conv: one multiply-accumulate row per output channel and position, over
/// the window's taps (padding taps are absent); the output channels of a
/// group at one position are one shift-add network ([`Builder::mac_rows`]).
#[allow(clippy::too_many_arguments)]
fn conv(
    b: &mut Builder,
    l: &Layer,
    window: &Window,
    out_channels: usize,
    weights: &[i64],
    bias: &[i64],
    mac: &MacLayout,
    acc_ty: FixedType,
) -> Vec<NodeId> {
    let (x, _) = l.arg(0);
    let per_oc = window.group_channels() * window.kernel_size();
    let per_group = out_channels / window.groups;
    let positions = window.out_positions();
    let mut y = vec![None; l.out_len];
    for g in 0..window.groups {
        let ocs = g * per_group..(g + 1) * per_group;
        for p in 0..positions {
            let taps: Vec<(usize, usize)> = window.conv_taps(g, p).collect();
            let xs: Vec<NodeId> = taps.iter().map(|&(_, i)| x[i]).collect();
            let w: Vec<Vec<i64>> = ocs
                .clone()
                .map(|oc| {
                    taps.iter()
                        .map(|&(j, _)| weights[oc * per_oc + j])
                        .collect()
                })
                .collect();
            let rows = b.mac_rows(&xs, &w, mac, &bias[ocs.clone()], acc_ty, l.ty, |r| {
                format!("{}[{},{p}]", l.name, ocs.start + r)
            });
            for (r, v) in rows.into_iter().enumerate() {
                y[(ocs.start + r) * positions + p] = Some(v);
            }
        }
    }
    y.into_iter()
        .map(|v| v.expect("every output built"))
        .collect()
}

/// Scale: an elementwise affine map, a one-term multiply-accumulate per value.
fn affine(
    b: &mut Builder,
    l: &Layer,
    scale: &[i64],
    shift: &[i64],
    mac: &MacLayout,
    acc_ty: FixedType,
) -> Vec<NodeId> {
    let (x, _) = l.arg(0);
    (0..l.out_len)
        .map(|i| {
            b.mac(
                &[(scale[i], x[i])],
                mac,
                shift[i],
                acc_ty,
                l.ty,
                &format!("{}[{i}]", l.name),
            )
        })
        .collect()
}

fn relu(b: &mut Builder, l: &Layer) -> Vec<NodeId> {
    let (x, xt) = l.arg(0);
    x.iter()
        .map(|&v| {
            let neg = b.net.bit(v, u32::MAX);
            let z = b.net.konst(0);
            let r = b.net.mux(neg, z, v);
            let (_, h) = b.net.range(r);
            let r = b.net.narrow(r, 0, h);
            b.quantize(r, xt.frac_bits(), l.ty)
        })
        .collect()
}

/// LeakyRelu and PRelu: `x >= 0 ? x : alpha[i] * x`, each side quantized.
fn prelu(b: &mut Builder, l: &Layer, alpha: &[i64], a_ty: FixedType) -> Vec<NodeId> {
    let (x, xt) = l.arg(0);
    let pf = xt.frac_bits() + a_ty.frac_bits();
    x.iter()
        .zip(alpha)
        .map(|(&v, &a)| {
            let neg = b.net.bit(v, u32::MAX);
            let pos = b.quantize(v, xt.frac_bits(), l.ty);
            let p = b.const_mult(v, a as i128, &format!("{} alpha={a}", l.name));
            let nq = b.quantize(p, pf, l.ty);
            b.net.mux(neg, nq, pos)
        })
        .collect()
}

fn thresholded_relu(b: &mut Builder, l: &Layer, theta: i64) -> Vec<NodeId> {
    let (x, xt) = l.arg(0);
    x.iter()
        .map(|&v| {
            let th = b.net.konst(theta as i128);
            let gt = b.net.lt(th, v);
            let z = b.net.konst(0);
            let r = b.net.mux(gt, v, z);
            b.quantize(r, xt.frac_bits(), l.ty)
        })
        .collect()
}

fn clip(b: &mut Builder, l: &Layer, lo: i64, hi: i64) -> Vec<NodeId> {
    let (x, xt) = l.arg(0);
    x.iter()
        .map(|&v| {
            let net = &mut b.net;
            let (lc, hc) = (net.konst(lo as i128), net.konst(hi as i128));
            let below = net.lt(v, lc);
            let above = net.lt(hc, v);
            let m = net.mux(above, hc, v);
            let r = net.mux(below, lc, m);
            let r = net.narrow(r, lo as i128, hi as i128);
            b.quantize(r, xt.frac_bits(), l.ty)
        })
        .collect()
}

/// Step: a chain of comparisons against the ascending thresholds of each
/// element's set (comparators on the accumulator, no requantizer).
fn step(b: &mut Builder, l: &Layer, thresholds: &[i64], values: &[i64]) -> Vec<NodeId> {
    let (x, _) = l.arg(0);
    let sets = step_sets(thresholds, values);
    let k = thresholds.len() / sets;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = i % sets;
            let (thresholds, values) = (
                &thresholds[s * k..(s + 1) * k],
                &values[s * (k + 1)..(s + 1) * (k + 1)],
            );
            let net = &mut b.net;
            let mut r = net.konst(values[0] as i128);
            for (k, &th) in thresholds.iter().enumerate() {
                let c = net.konst(th as i128);
                let below = net.lt(v, c);
                let val = net.konst(values[k + 1] as i128);
                r = net.mux(below, r, val);
            }
            r
        })
        .collect()
}

fn softmax(
    b: &mut Builder,
    l: &Layer,
    n: usize,
    exp_ty: FixedType,
    exp_table: &Table,
    inv_ty: FixedType,
    inv_table: &Table,
) -> Vec<NodeId> {
    let (x, _) = l.arg(0);
    let pf = exp_ty.frac_bits() + inv_ty.frac_bits();
    let mut y = Vec::with_capacity(l.out_len);
    for group in x.chunks(n) {
        let e = b.softmax_exp(group, exp_table);
        // The inverse table's offset is the sum's bias.
        let terms = e
            .iter()
            .map(|&node| Term {
                node,
                shift: 0,
                neg: false,
                depth: 0,
            })
            .collect();
        let s = b.sum_terms(terms, -(inv_table.offset as i128));
        let r = b.table_offset(s, inv_table);
        for &ev in &e {
            let p = b.net.mul(ev, r);
            y.push(b.quantize(p, pf, l.ty));
        }
    }
    y
}

fn argmax(b: &mut Builder, l: &Layer, n: usize) -> Vec<NodeId> {
    let (x, _) = l.arg(0);
    let one = l.ty.quantize_raw(1, 0) as i128;
    let mut y = Vec::with_capacity(l.out_len);
    for group in x.chunks(n) {
        // (value, index) pairs; the left operand always has the
        // lower indices, so ties keep the first maximum.
        let mut v: Vec<(NodeId, NodeId)> = group
            .iter()
            .enumerate()
            .map(|(i, &g)| (g, b.net.konst(i as i128)))
            .collect();
        while v.len() > 1 {
            let mut next = Vec::new();
            for p in v.chunks(2) {
                if p.len() == 1 {
                    next.push(p[0]);
                    continue;
                }
                let take_b = b.net.lt(p[0].0, p[1].0);
                let val = b.net.mux(take_b, p[1].0, p[0].0);
                let idx = b.net.mux(take_b, p[1].1, p[0].1);
                next.push((val, idx));
            }
            v = next;
        }
        let idx = v[0].1;
        for j in 0..group.len() {
            let c = b.net.konst(j as i128);
            let hit = b.net.eq(idx, c);
            let o = b.net.konst(one);
            let z = b.net.konst(0);
            y.push(b.net.mux(hit, o, z));
        }
    }
    y
}

fn pool(
    b: &mut Builder,
    l: &Layer,
    kind: PoolKind,
    window: &Window,
    recip: &[i64],
    recip_ty: FixedType,
) -> Vec<NodeId> {
    let (x, xt) = l.arg(0);
    let mut y = Vec::with_capacity(l.out_len);
    for w in window.pool_windows() {
        let vals: Vec<NodeId> = w.iter().map(|&i| x[i]).collect();
        let out = match kind {
            PoolKind::Max => {
                let m = if vals.is_empty() {
                    b.net.konst(0)
                } else {
                    b.max_tree(vals)
                };
                b.quantize(m, xt.frac_bits(), l.ty)
            }
            PoolKind::Average => {
                let s = b.sum_nodes(&vals);
                let prod = b.const_mult(s, recip[vals.len()] as i128, &format!("{} recip", l.name));
                b.quantize(prod, xt.frac_bits() + recip_ty.frac_bits(), l.ty)
            }
        };
        y.push(out);
    }
    y
}

/// An elementwise op on two tensors, as [`BinOp::exact`] defines it:
/// operands aligned to the finer LSB (Mul: the exact product), combined,
/// then quantized into the result type.
fn binary(b: &mut Builder, l: &Layer, op: BinOp) -> Vec<NodeId> {
    let ((x, tx), (y, ty)) = (l.arg(0), l.arg(1));
    let (fa, fb) = (tx.frac_bits(), ty.frac_bits());
    let f = op.frac(fa, fb);
    (0..l.out_len)
        .map(|i| {
            let r = if op == BinOp::Mul {
                b.net.mul(x[i], y[i])
            } else {
                let u = b.round_lsb(x[i], fa, f, Rounding::Trn);
                let v = b.round_lsb(y[i], fb, f, Rounding::Trn);
                match op {
                    BinOp::Add => b.net.add(u, v),
                    BinOp::Sub => b.net.sub(u, v),
                    BinOp::Max => {
                        let below = b.net.lt(u, v);
                        b.net.mux(below, v, u)
                    }
                    _ => {
                        let below = b.net.lt(u, v);
                        b.net.mux(below, u, v)
                    }
                }
            };
            b.quantize(r, f, l.ty)
        })
        .collect()
}
