//! The arithmetic every op is built from, following the golden model's
//! rules bit for bit: constant multiplications as canonical signed digits
//! (shift-and-add with shared pre-adders) or as DSP multipliers, balanced
//! adder trees, `round_to_lsb` and the overflow modes of
//! `FixedType::quantize_raw`, and the multiply-accumulate of Dense, Conv and
//! Scale with its bit positions from [`MacLayout`].

use std::collections::HashMap;

use quantize::accum::MacLayout;
use quantize::fixed::{FixedType, Overflow, Rounding};

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
}

/// Builds integer hardware into `net`; the layers' lowering
/// ([`super::lower`]) and the folded cores ([`super::fold`]) use it alike.
pub(super) struct Builder {
    pub net: Netlist,
    strategy: Strategy,
    /// Shared pre-adders `x + s * x * 2^j` (shift-add): `(x, j, s < 0)`.
    pairs: HashMap<(NodeId, u32, bool), NodeId>,
}

impl Builder {
    pub fn new(strategy: Strategy) -> Self {
        Builder {
            net: Netlist::new(),
            strategy,
            pairs: HashMap::new(),
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
            }
        } else {
            Term {
                node: self.round_lsb(p, pf, af, mac.rounding),
                shift: 0,
                neg: false,
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
        }
    }

    /// `bias + sum of terms` with a balanced adder tree.
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
            });
        }
        // Pair terms of similar weight so that the adders stay narrow.
        terms.sort_by_key(|t| t.shift);
        while terms.len() > 1 {
            let mut next = Vec::with_capacity(terms.len() / 2 + 1);
            let mut it = terms.chunks(2);
            for pair in &mut it {
                if pair.len() == 2 {
                    next.push(self.combine(pair[0], pair[1]));
                } else {
                    next.push(pair[0]);
                }
            }
            terms = next;
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

    /// `bias + sum of terms` (at the accumulator's LSB) through the
    /// accumulator's overflow and the requantization to `out`.
    pub fn finish(&mut self, terms: Vec<Term>, b: i128, acc: FixedType, out: FixedType) -> NodeId {
        let af = acc.frac_bits();
        // Rounding to nearest folded into the bias: when the accumulator
        // cannot overflow, RND(s) = floor((s + half) / 2^k) and RND_MIN_INF(s)
        // = floor((s + half - 1) / 2^k), so the requantizer is wiring plus
        // the saturation (no increment adder, no rounding logic).
        let of = out.frac_bits();
        let fold = match out.rounding {
            Rounding::Rnd if af > of => Some(1i128 << (af - of - 1)),
            Rounding::RndMinInf if af > of => Some((1i128 << (af - of - 1)) - 1),
            _ => None,
        };
        if let Some(half) = fold {
            let (lo, hi) = self.tree_range(&terms, b);
            let sym = acc.overflow == Overflow::SatSym && acc.signed && acc.width >= 2;
            let low = acc.min_raw() as i128 + sym as i128;
            if lo >= low && hi <= acc.max_raw() as i128 {
                let sum = self.sum_terms(terms, b + half);
                let r = self.round_lsb(sum, af, of, Rounding::Trn);
                return self.overflow(r, out);
            }
        }
        let sum = self.sum_terms(terms, b);
        let a = self.overflow(sum, acc);
        self.quantize(a, af, out)
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
