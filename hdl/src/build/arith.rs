//! The arithmetic every op is built from, following the golden model's
//! rules bit for bit: constant multiplications as canonical signed digits
//! (shift-and-add with shared pre-adders) or as DSP multipliers, adder
//! trees of the least depth, `round_to_lsb` and the overflow modes of
//! `FixedType::quantize_raw`, and the multiply-accumulate of Dense, Conv and
//! Scale with its bit positions from [`MacLayout`]; a whole layer's
//! shift-add products as one network with shared subexpressions
//! ([`super::cse`]).

use std::collections::HashMap;
use std::rc::Rc;

use quantize::accum::MacLayout;
use quantize::fixed::{FixedType, Overflow, Rounding};

use super::cse::{self, Plan};
use crate::kernel::Strategy;
use crate::netlist::{Netlist, NodeId};

/// Canonical signed digits of `w`: `(k, d)` with `w = sum d * 2^k`, `d = +-1`.
pub fn csd(w: i128) -> Vec<(u32, i8)> {
    let mut v = w;
    let mut k = 0u32;
    let mut out = Vec::new();
    while v != 0 {
        if v & 1 == 1 {
            let d: i128 = if v & 3 == 3 { -1 } else { 1 };
            out.push((k, d as i8));
            v -= d;
        }
        v >>= 1;
        k += 1;
    }
    out
}

/// `node * 2^shift`, negated when `neg`: a leaf of an adder tree.
#[derive(Clone, Copy, Debug)]
pub(super) struct Term {
    pub node: NodeId,
    pub shift: u32,
    pub neg: bool,
    /// Adders in front of `node` within its layer's shift-add network, so
    /// that [`Builder::sum_terms`] adds the deep leaves last (0 where not
    /// known: the tree is then the plain balanced one).
    pub depth: u32,
}

/// The most digit pairs (`sum over rows of digits^2`) [`Builder::mac_rows`]
/// plans a network for: the planner counts every pair of a row's digits,
/// which is about a second at this size; larger layers (784 binary inputs
/// of the TFC models: 16 M) are built row by row.
const CSE_PAIRS: usize = 1 << 22;

/// A layer's weight matrix and which of its rows have a bias leaf.
type PlanKey = (Vec<Vec<i128>>, Vec<bool>);

/// Builds integer hardware into `net`; the layers' lowering
/// ([`super::lower`]) and the folded cores ([`super::fold`]) use it alike.
pub(super) struct Builder {
    pub net: Netlist,
    strategy: Strategy,
    /// Shared pre-adders `x + s * x * 2^j` (shift-add): `(x, j, s < 0)`.
    pairs: HashMap<(NodeId, u32, bool), NodeId>,
    /// Shift-add networks planned by [`Builder::mac_rows`], by weight matrix
    /// and bias leaves: a convolution's positions share one plan.
    plans: HashMap<PlanKey, Rc<Plan>>,
    /// Adder trees sum three terms at a time ([`crate::netlist::Op::Sum3`]):
    /// the family has ternary adders
    /// ([`crate::pipeline::Delays::ternary_adders`]).
    ternary: bool,
}

impl Builder {
    pub fn new(strategy: Strategy, ternary: bool) -> Self {
        Builder {
            net: Netlist::new(),
            strategy,
            pairs: HashMap::new(),
            plans: HashMap::new(),
            ternary,
        }
    }

    /// A product `p` (at the layout's product LSB) as a tree leaf at the
    /// accumulator's LSB, rounded there when it is finer (the `QOp` rule).
    pub fn at_acc_lsb(&mut self, p: NodeId, mac: &MacLayout) -> Term {
        let (pf, af) = (mac.prod_frac, mac.acc_frac);
        if af >= pf {
            Term {
                node: p,
                shift: (af - pf) as u32,
                neg: false,
                depth: 0,
            }
        } else {
            Term {
                node: self.round_lsb(p, pf, af, mac.rounding),
                shift: 0,
                neg: false,
                depth: 0,
            }
        }
    }

    /// `x * w * 2^extra` as terms to be summed.
    pub fn const_mult_terms(&mut self, x: NodeId, w: i128, extra: u32, tag: &str) -> Vec<Term> {
        if w == 0 {
            return vec![];
        }
        let digits = csd(w);
        if self.strategy == Strategy::Dsp && digits.len() > 1 {
            let p = self.net.mul_const(x, w);
            self.net.tag(p, tag.to_string());
            return vec![Term {
                node: p,
                shift: extra,
                neg: false,
                depth: 0,
            }];
        }
        // Digits in pairs: d1 2^k1 x + d2 2^k2 x = d1 2^k1 (x + d1 d2 2^(k2-k1) x),
        // where the pre-adder `x +- 2^j x` depends on the input only and is
        // shared by every weight (of every output) that reads `x`: about
        // half the terms in the adder trees, for a few adders per input.
        let mut out = Vec::with_capacity(digits.len().div_ceil(2));
        for p in digits.chunks(2) {
            let (k1, d1) = p[0];
            if p.len() == 1 {
                out.push(Term {
                    node: x,
                    shift: k1 + extra,
                    neg: d1 < 0,
                    depth: 0,
                });
                continue;
            }
            let (k2, d2) = p[1];
            let (j, minus) = (k2 - k1, d1 != d2);
            let node = match self.pairs.get(&(x, j, minus)) {
                Some(&n) => n,
                None => {
                    let xs = self.net.shl(x, j);
                    let n = if minus {
                        self.net.sub(x, xs)
                    } else {
                        self.net.add(x, xs)
                    };
                    self.pairs.insert((x, j, minus), n);
                    n
                }
            };
            out.push(Term {
                node,
                shift: k1 + extra,
                neg: d1 < 0,
                depth: 1,
            });
        }
        out
    }

    fn combine(&mut self, a: Term, b: Term) -> Term {
        let m = a.shift.min(b.shift);
        let an = self.net.shl(a.node, a.shift - m);
        let bn = self.net.shl(b.node, b.shift - m);
        let (node, neg) = match (a.neg, b.neg) {
            (false, false) => (self.net.add(an, bn), false),
            (true, true) => (self.net.add(an, bn), true),
            (false, true) => (self.net.sub(an, bn), false),
            (true, false) => (self.net.sub(bn, an), false),
        };
        Term {
            node,
            shift: m,
            neg,
            depth: a.depth.max(b.depth) + 1,
        }
    }

    /// Three terms as one ternary adder: `a + b + c` with the signs moved
    /// so that at most one term is subtracted (the result negated when two
    /// or three were), each shifted relative to the lightest.
    fn combine3(&mut self, t: [Term; 3]) -> Term {
        let m = t.iter().map(|x| x.shift).min().unwrap_or(0);
        let flip = t.iter().filter(|x| x.neg).count() >= 2;
        let mut parts: Vec<(NodeId, bool)> = t
            .iter()
            .map(|x| (self.net.shl(x.node, x.shift - m), x.neg != flip))
            .collect();
        // The added terms first.
        parts.sort_by_key(|&(_, n)| n);
        Term {
            node: self.net.sum3(
                [parts[0].0, parts[1].0, parts[2].0],
                [parts[0].1, parts[1].1, parts[2].1],
            ),
            shift: m,
            neg: flip,
            depth: t.iter().map(|x| x.depth).max().unwrap_or(0) + 1,
        }
    }

    /// `bias + sum of terms` with an adder tree of the least depth: level
    /// by level, the terms ready at a level are grouped (in order of
    /// weight, so that the adders stay narrow) by two, or by three with
    /// [`Self::ternary`], and a term left over waits for the next level,
    /// which combines the shallowest first. With binary adders the tree
    /// ends at `ceil(log2(sum 2^depth))` levels, and with all depths 0 it
    /// is the balanced tree.
    pub fn sum_terms(&mut self, mut terms: Vec<Term>, bias: i128) -> NodeId {
        if terms.is_empty() {
            return self.net.konst(bias);
        }
        // The bias is one more leaf of the tree (not an adder after it).
        if bias != 0 {
            let tz = bias.trailing_zeros().min(64);
            let node = self.net.konst(bias >> tz);
            terms.push(Term {
                node,
                shift: tz,
                neg: false,
                depth: 0,
            });
        }
        let mut level = terms.iter().map(|t| t.depth).min().unwrap_or(0);
        while terms.len() > 1 {
            let (mut now, mut next): (Vec<Term>, Vec<Term>) =
                terms.into_iter().partition(|t| t.depth <= level);
            // Group terms of similar weight so that the adders stay narrow.
            now.sort_by_key(|t| t.shift);
            for group in now.chunks(if self.ternary { 3 } else { 2 }) {
                match *group {
                    [a, b, c] => next.push(self.combine3([a, b, c])),
                    [a, b] => next.push(self.combine(a, b)),
                    [a] => next.push(Term {
                        depth: level + 1,
                        ..a
                    }),
                    _ => unreachable!("chunks of one to three"),
                }
            }
            terms = next;
            level += 1;
        }
        let t = terms[0];
        let v = self.net.shl(t.node, t.shift);
        if t.neg {
            let z = self.net.konst(0);
            self.net.sub(z, v)
        } else {
            v
        }
    }

    pub fn sum_nodes(&mut self, nodes: &[NodeId]) -> NodeId {
        let terms = nodes
            .iter()
            .map(|&n| Term {
                node: n,
                shift: 0,
                neg: false,
                depth: 0,
            })
            .collect();
        self.sum_terms(terms, 0)
    }

    /// `quantize::accum::round_to_lsb`, in hardware: floor by wiring, then
    /// an increment decided from the dropped bits.
    pub fn round_lsb(&mut self, n: NodeId, from: i32, to: i32, r: Rounding) -> NodeId {
        if to >= from {
            return self.net.shl(n, (to - from) as u32);
        }
        let sh = (from - to) as u32;
        let floor = self.net.shr(n, sh);
        if r == Rounding::Trn {
            return floor;
        }
        let net = &mut self.net;
        let neg = net.bit(n, u32::MAX);
        let top = net.bit(n, sh - 1);
        let rest = net.any(n, 0, sh - 1);
        let inc = match r {
            Rounding::Trn => unreachable!(),
            Rounding::TrnZero => {
                let any = net.or(top, rest);
                net.and(neg, any)
            }
            Rounding::Rnd => top,
            Rounding::RndZero => {
                let c = net.or(rest, neg);
                net.and(top, c)
            }
            Rounding::RndInf => {
                let pos = net.not(neg);
                let c = net.or(rest, pos);
                net.and(top, c)
            }
            Rounding::RndMinInf => net.and(top, rest),
            Rounding::RndConv => {
                let odd = net.bit(n, sh);
                let c = net.or(rest, odd);
                net.and(top, c)
            }
        };
        let one = net.bool_to_int(inc);
        net.add(floor, one)
    }

    /// The overflow stage of `FixedType::quantize_raw` for a value already at `ty`'s LSB.
    pub fn overflow(&mut self, n: NodeId, ty: FixedType) -> NodeId {
        let (min, max) = (ty.min_raw() as i128, ty.max_raw() as i128);
        let sym = ty.overflow == Overflow::SatSym && ty.signed && ty.width >= 2;
        let net = &mut self.net;
        let (lo, hi) = net.range(n);
        match ty.overflow {
            Overflow::Wrap => net.wrap(n, ty.width, ty.signed),
            o => {
                let low = if sym { min + 1 } else { min };
                if lo >= low && hi <= max {
                    return n;
                }
                let (over_v, under_v) = match o {
                    Overflow::Sat => (max, min),
                    Overflow::SatSym => (max, low),
                    _ => (0, 0),
                };
                let maxc = net.konst(max);
                let over = net.lt(maxc, n);
                let lowc = net.konst(low);
                let under = net.lt(n, lowc);
                let uv = net.konst(under_v);
                let ov = net.konst(over_v);
                let inner = net.mux(under, uv, n);
                let r = net.mux(over, ov, inner);
                net.narrow(r, min, max)
            }
        }
    }

    /// `ty.quantize_raw(n, from)`.
    pub fn quantize(&mut self, n: NodeId, from: i32, ty: FixedType) -> NodeId {
        let r = self.round_lsb(n, from, ty.frac_bits(), ty.rounding);
        self.overflow(r, ty)
    }

    /// One multiply-accumulate row `bias + sum w * x` into `acc`, then
    /// requantized to `out`: the bit positions are the golden rule's
    /// [`MacLayout`] (of the QOp's input, weight, bias and accumulator types).
    pub fn mac(
        &mut self,
        pairs: &[(i64, NodeId)],
        layout: &MacLayout,
        bias: i64,
        acc: FixedType,
        out: FixedType,
        tag: &str,
    ) -> NodeId {
        let (pf, af) = (layout.prod_frac, layout.acc_frac);
        let b = layout.bias(bias);
        let mut terms = Vec::new();
        for (i, &(w, x)) in pairs.iter().enumerate() {
            let t = format!("{tag} w[{i}]={w}");
            if af >= pf {
                terms.extend(self.const_mult_terms(x, w as i128, (af - pf) as u32, &t));
            } else {
                let ts = self.const_mult_terms(x, w as i128, 0, &t);
                if ts.is_empty() {
                    continue;
                }
                let p = self.sum_terms(ts, 0);
                terms.push(self.at_acc_lsb(p, layout));
            }
        }
        self.finish(terms, b, acc, out)
    }

    /// The multiply-accumulate rows `bias[r] + sum_i w[r][i] * x[i]` of
    /// one layer (of a convolution: one position), each requantized as
    /// [`Self::mac`] does. Shift-add products at or above the accumulator's
    /// LSB are summed exactly, so the whole matrix is one shift-add network
    /// with its common subexpressions shared across inputs and rows
    /// ([`cse`]), no row deeper than [`Self::mac`] builds it; otherwise (DSP
    /// products, products rounded to the accumulator, layers over
    /// [`CSE_PAIRS`]) row by row.
    #[allow(clippy::too_many_arguments)]
    pub fn mac_rows(
        &mut self,
        x: &[NodeId],
        w: &[Vec<i64>],
        layout: &MacLayout,
        bias: &[i64],
        acc: FixedType,
        out: FixedType,
        tag: impl Fn(usize) -> String,
    ) -> Vec<NodeId> {
        let (pf, af) = (layout.prod_frac, layout.acc_frac);
        let digits = |r: &Vec<i64>| -> usize { r.iter().map(|&v| csd(v as i128).len()).sum() };
        let pairs: usize = w.iter().map(|r| digits(r).pow(2)).sum();
        if self.strategy == Strategy::Dsp || af < pf || pairs > CSE_PAIRS {
            return (0..w.len())
                .map(|r| {
                    let pairs: Vec<(i64, NodeId)> =
                        w[r].iter().copied().zip(x.iter().copied()).collect();
                    self.mac(&pairs, layout, bias[r], acc, out, &tag(r))
                })
                .collect();
        }
        let extra = (af - pf) as u32;
        // One column per distinct input node (an input read twice is one
        // input with the weights summed), so that a row's digits are distinct.
        let mut cols: Vec<NodeId> = Vec::new();
        let mut col_of = HashMap::new();
        let idx: Vec<usize> = x
            .iter()
            .map(|&n| {
                *col_of.entry(n).or_insert_with(|| {
                    cols.push(n);
                    cols.len() - 1
                })
            })
            .collect();
        let mut m = vec![vec![0i128; cols.len()]; w.len()];
        for (r, row) in w.iter().enumerate() {
            for (i, &wi) in row.iter().enumerate() {
                m[r][idx[i]] += wi as i128;
            }
        }
        // The bias each row's tree gets ([`Self::finish`]), from the range
        // of its digits, which the shared network keeps.
        let b: Vec<i128> = bias.iter().map(|&v| layout.bias(v)).collect();
        let leaf: Vec<bool> = m
            .iter()
            .zip(&b)
            .map(|(row, &br)| {
                let digits: Vec<Term> = row
                    .iter()
                    .zip(&cols)
                    .flat_map(|(&wi, &node)| {
                        csd(wi).into_iter().map(move |(k, d)| Term {
                            node,
                            shift: k + extra,
                            neg: d < 0,
                            depth: 0,
                        })
                    })
                    .collect();
                let range = self.tree_range(&digits, br);
                self.folded_bias(range, br, acc, out).unwrap_or(br) != 0
            })
            .collect();
        let plan = self
            .plans
            .entry((m, leaf))
            .or_insert_with_key(|(m, leaf)| Rc::new(cse::plan(m, leaf)))
            .clone();
        let mut sig = cols;
        for a in &plan.adders {
            let an = self.net.shl(sig[a.a], a.sa);
            let bn = self.net.shl(sig[a.b], a.sb);
            sig.push(if a.minus {
                self.net.sub(an, bn)
            } else {
                self.net.add(an, bn)
            });
        }
        plan.rows
            .iter()
            .zip(b)
            .map(|(row, br)| {
                let terms = row
                    .iter()
                    .map(|d| Term {
                        node: sig[d.sig],
                        shift: d.shift + extra,
                        neg: d.neg,
                        depth: plan.depth[d.sig],
                    })
                    .collect();
                self.finish(terms, br, acc, out)
            })
            .collect()
    }

    /// `bias + sum of terms` (at the accumulator's LSB) through the
    /// accumulator's overflow and the requantization to `out`.
    pub fn finish(&mut self, terms: Vec<Term>, b: i128, acc: FixedType, out: FixedType) -> NodeId {
        let af = acc.frac_bits();
        let of = out.frac_bits();
        match self.folded_bias(self.tree_range(&terms, b), b, acc, out) {
            Some(bias) => {
                let sum = self.sum_terms(terms, bias);
                let r = self.round_lsb(sum, af, of, Rounding::Trn);
                self.overflow(r, out)
            }
            None => {
                let sum = self.sum_terms(terms, b);
                let a = self.overflow(sum, acc);
                self.quantize(a, af, out)
            }
        }
    }

    /// The bias with the rounding to nearest folded in, when [`Self::finish`]
    /// folds it for a sum in `range`: when the accumulator cannot overflow,
    /// RND(s) = floor((s + half) / 2^k) and RND_MIN_INF(s) =
    /// floor((s + half - 1) / 2^k), so the requantizer is wiring plus the
    /// saturation (no increment adder, no rounding logic).
    fn folded_bias(
        &self,
        (lo, hi): (i128, i128),
        b: i128,
        acc: FixedType,
        out: FixedType,
    ) -> Option<i128> {
        let (af, of) = (acc.frac_bits(), out.frac_bits());
        let half = match out.rounding {
            Rounding::Rnd if af > of => 1i128 << (af - of - 1),
            Rounding::RndMinInf if af > of => (1i128 << (af - of - 1)) - 1,
            _ => return None,
        };
        let sym = acc.overflow == Overflow::SatSym && acc.signed && acc.width >= 2;
        let low = acc.min_raw() as i128 + sym as i128;
        (lo >= low && hi <= acc.max_raw() as i128).then_some(b + half)
    }

    /// Value range of `bias + sum of terms`.
    fn tree_range(&self, terms: &[Term], bias: i128) -> (i128, i128) {
        let (mut lo, mut hi) = (bias, bias);
        for t in terms {
            let (l, h) = self.net.range(t.node);
            let (l, h) = (l << t.shift, h << t.shift);
            let (l, h) = if t.neg { (-h, -l) } else { (l, h) };
            lo += l;
            hi += h;
        }
        (lo, hi)
    }

    pub fn const_mult(&mut self, x: NodeId, c: i128, tag: &str) -> NodeId {
        let ts = self.const_mult_terms(x, c, 0, tag);
        self.sum_terms(ts, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlist::{Op, SimState};

    fn adders(net: &Netlist) -> usize {
        net.nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Add(..) | Op::Sub(..) | Op::Sum3 { .. }))
            .count()
    }

    /// Longest chain of adders into each node.
    fn adder_depth(net: &Netlist) -> Vec<u32> {
        let mut d = vec![0u32; net.nodes.len()];
        for (i, n) in net.nodes.iter().enumerate() {
            let inner = crate::netlist::op_inputs(&n.op)
                .iter()
                .map(|&a| d[a])
                .max()
                .unwrap_or(0);
            d[i] = inner + matches!(n.op, Op::Add(..) | Op::Sub(..) | Op::Sum3 { .. }) as u32;
        }
        d
    }

    /// `rows` rows over 12 signed 8-bit inputs (one read twice), built row
    /// by row and as one network, simulated on the same inputs.
    #[test]
    fn mac_rows_is_bit_exact_with_fewer_adders_and_no_deeper() {
        let ty = |w, i| FixedType::signed(w, i).unwrap();
        let (x_ty, w_ty, acc) = (ty(8, 2), ty(12, 2), ty(32, 12));
        let out = ty(10, 6)
            .with_rounding(Rounding::Rnd)
            .with_overflow(Overflow::Sat);
        let layout = MacLayout::new(x_ty, w_ty, ty(12, 4), acc);
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: i64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % (2 * m as u64 + 1)) as i64 - m
        };
        let rows = 24;
        let w: Vec<Vec<i64>> = (0..rows)
            .map(|_| (0..13).map(|_| next(2047)).collect())
            .collect();
        let bias: Vec<i64> = (0..rows)
            .map(|r| if r % 4 == 0 { 0 } else { next(2047) })
            .collect();
        let build = |shared: bool| {
            let mut b = Builder::new(Strategy::ShiftAdd, false);
            let mut x: Vec<NodeId> = (0..12).map(|i| b.net.input(8 * i, 8, true)).collect();
            x.push(x[3]);
            let y = if shared {
                b.mac_rows(&x, &w, &layout, &bias, acc, out, |r| format!("r{r}"))
            } else {
                (0..rows)
                    .map(|r| {
                        let pairs: Vec<(i64, NodeId)> =
                            w[r].iter().copied().zip(x.iter().copied()).collect();
                        b.mac(&pairs, &layout, bias[r], acc, out, "r")
                    })
                    .collect()
            };
            (b.net, y)
        };
        let (per_row, y0) = build(false);
        let (shared, y1) = build(true);
        let (a0, a1) = (adders(&per_row), adders(&shared));
        assert!(a1 * 10 < a0 * 8, "{a1} adders shared, {a0} row by row");
        // No row deeper than the row-by-row builder's bound (the requantizer
        // adds no adder here: the rounding is folded into the bias, a leaf).
        let depth = adder_depth(&shared);
        for r in 0..rows {
            let mut wr: Vec<i128> = w[r][..12].iter().map(|&v| v as i128).collect();
            wr[3] += w[r][12] as i128;
            let limit = cse::depth_limit(&wr, true);
            assert!(depth[y1[r]] <= limit, "row {r}: {} > {limit}", depth[y1[r]]);
        }
        let mut sims = (SimState::new(&per_row), SimState::new(&shared));
        for _ in 0..2000 {
            let v: Vec<i128> = (0..12)
                .map(|_| next(128).clamp(-128, 127) as i128)
                .collect();
            sims.0.eval(&per_row, true, |k, _| v[k], true);
            sims.1.eval(&shared, true, |k, _| v[k], true);
            for r in 0..rows {
                assert_eq!(sims.0.vals[y0[r]], sims.1.vals[y1[r]], "row {r} on {v:?}");
            }
        }
    }
}
