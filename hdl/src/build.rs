//! From a [`QModel`] to a netlist: every op of the model becomes integer
//! hardware that follows the golden model's rules literally (see `QOp`):
//! constant multiplications as canonical-signed-digit shift-and-add or as
//! multipliers, balanced adder trees, rounding and overflow per
//! `FixedType::quantize_raw`, comparators, multiplexers and ROMs.

use quantize::fixed::{FixedType, Overflow, Rounding};
use quantize::golden::round_to_lsb;
use quantize::qmodel::{PoolKind, QModel, QOp, Table};
use serde::Serialize;

use crate::netlist::{Netlist, NetlistError, NodeId, OutField, Sim};
use crate::pipeline::{pipeline, Delays};

/// How multiplications by constant weights are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Strategy {
    /// One multiplier (`*`, DSP) per weight with two or more signed digits.
    Dsp,
    /// Multiplier-free: canonical signed digits, shifts and adders (no DSP).
    ShiftAdd,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "dsp" => Ok(Strategy::Dsp),
            "shift-add" | "shiftadd" | "csd" => Ok(Strategy::ShiftAdd),
            other => Err(format!(
                "unknown strategy '{other}': expected dsp or shift-add"
            )),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Options {
    pub strategy: Strategy,
    /// Target clock in MHz.
    pub clock_mhz: f64,
    /// Pipeline stages hold this many 16-bit adder levels (0.5 ns each, see
    /// [`crate::pipeline::budget_for_levels`]); when `None` the stage budget
    /// comes from the clock ([`crate::pipeline::budget_for_clock`]).
    pub levels: Option<u32>,
    /// Reuse factor of every Dense layer (II = R); `None`: each layer's own
    /// from the model's configuration.
    pub reuse: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strategy: Strategy::ShiftAdd,
            clock_mhz: 200.0,
            levels: None,
            reuse: None,
        }
    }
}

impl Options {
    /// Estimated logic delay allowed between pipeline registers, in ps:
    /// `levels` 16-bit adders when given, else what the clock leaves after
    /// the clock uncertainty and the register overhead (4175 ps at 200 MHz).
    pub fn budget_ps(&self) -> u32 {
        match self.levels {
            Some(l) => crate::pipeline::budget_for_levels(l),
            None => crate::pipeline::budget_for_clock(self.clock_mhz),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BuildError {
    #[error("layer {layer} ({kind}) is not supported by the HDL backend: {why}")]
    Unsupported {
        layer: String,
        kind: &'static str,
        why: String,
    },
    #[error(transparent)]
    Netlist(#[from] NetlistError),
}

/// A field of a bus: one value of a fixed-point type, two's complement raw bits.
#[derive(Clone, Debug, Serialize)]
pub struct Field {
    pub lsb: u32,
    pub width: u32,
    pub signed: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub adders: usize,
    pub adder_bits: u64,
    pub comparators: usize,
    pub multipliers: usize,
    pub muxes: usize,
    pub registers: usize,
    pub register_bits: u64,
    pub rom_bits: u64,
    /// Rough LUT estimate: one LUT per adder/comparator/mux bit.
    pub lut_estimate: u64,
    pub dsp_estimate: u64,
}

/// A built kernel: the pipelined netlist and its interface.
pub struct Kernel {
    pub name: String,
    pub net: Netlist,
    pub latency: u32,
    pub ii: u32,
    pub inputs: Vec<Field>,
    pub outputs: Vec<Field>,
    pub options: Options,
}

impl Kernel {
    pub fn in_width(&self) -> u32 {
        self.inputs.iter().map(|f| f.width).sum()
    }
    pub fn out_width(&self) -> u32 {
        self.outputs.iter().map(|f| f.width).sum()
    }

    pub fn verilog(&self) -> String {
        self.net.verilog(&self.name)
    }

    pub fn stats(&self) -> Stats {
        use crate::netlist::Op;
        let mut s = Stats::default();
        for n in &self.net.nodes {
            let w = n.width as u64;
            match &n.op {
                Op::Add(..) | Op::Sub(..) => {
                    s.adders += 1;
                    s.adder_bits += w;
                    s.lut_estimate += w;
                }
                Op::Lt(a, b) | Op::Eq(a, b) => {
                    s.comparators += 1;
                    s.lut_estimate += self.net.width(*a).max(self.net.width(*b)) as u64;
                }
                Op::Mux(..) => {
                    s.muxes += 1;
                    s.lut_estimate += w;
                }
                Op::MulConst(..) | Op::Mul(..) => {
                    s.multipliers += 1;
                    // A DSP48E2 multiplies 27 x 18.
                    s.dsp_estimate += w.div_ceil(27).max(1);
                }
                Op::Rom { values, .. } => {
                    s.rom_bits += values.len() as u64 * w;
                    s.lut_estimate += (values.len() as u64 / 64).max(1) * w;
                }
                Op::Reg { .. } => {
                    s.registers += 1;
                    s.register_bits += w;
                }
                _ => {}
            }
        }
        s
    }

    /// Runs the cycle simulator on `events` (one every II cycles, the
    /// fastest the kernel takes them) and returns the raw outputs of each
    /// event, checking that the kernel is ready for every event and that
    /// every output appears exactly `latency` cycles after its input.
    pub fn simulate(&self, events: &[Vec<i64>]) -> Vec<Vec<i64>> {
        let mut sim = Sim::new(&self.net);
        sim.step(true, false, &vec![0; self.inputs.len()]);
        let zero = vec![0; self.inputs.len()];
        let mut out = Vec::with_capacity(events.len());
        let (ii, lat) = (self.ii.max(1) as usize, self.latency as usize);
        let total = events.len() * ii + lat;
        for t in 0..total {
            let k = (t % ii == 0)
                .then_some(t / ii)
                .filter(|&k| k < events.len());
            let ev = k.map_or(&zero, |k| &events[k]);
            let (ov, o) = sim.step_checked(false, k.is_some(), ev, t >= lat);
            assert!(
                k.is_none() || sim.was_ready(),
                "in_ready low at cycle {t} (II {ii})"
            );
            let expect_valid = t >= lat && (t - lat) % ii == 0;
            assert_eq!(
                ov, expect_valid,
                "out_valid at cycle {t} (latency {lat}, II {ii})"
            );
            if ov {
                out.push(self.decode(&o));
            }
        }
        out
    }

    /// Output node values as raw values of the output type (the low bits, read back).
    fn decode(&self, o: &[i128]) -> Vec<i64> {
        o.iter()
            .zip(&self.outputs)
            .map(|(&v, f)| {
                let sh = 128 - f.width;
                if f.signed {
                    ((v << sh) >> sh) as i64
                } else {
                    (((v as u128) << sh) >> sh) as i64
                }
            })
            .collect()
    }
}

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
pub(crate) struct Term {
    pub node: NodeId,
    pub shift: u32,
    pub neg: bool,
}

/// Builds the hardware of a model's layers into `net`.
pub(crate) struct Builder<'a> {
    pub net: Netlist,
    strategy: Strategy,
    model: &'a QModel,
    /// Shared pre-adders `x + s * x * 2^j` (shift-add): `(x, j, s < 0)`.
    pairs: std::collections::HashMap<(NodeId, u32, bool), NodeId>,
}

impl<'a> Builder<'a> {
    pub fn new(model: &'a QModel, strategy: Strategy) -> Self {
        Builder {
            net: Netlist::new(),
            strategy,
            model,
            pairs: Default::default(),
        }
    }

    /// A product with `pf` fractional bits as a tree leaf at the
    /// accumulator's LSB `af`, rounded there when it is finer (the `QOp` rule).
    pub fn at_acc_lsb(&mut self, p: NodeId, pf: i32, af: i32, r: Rounding) -> Term {
        if af >= pf {
            Term {
                node: p,
                shift: (af - pf) as u32,
                neg: false,
            }
        } else {
            Term {
                node: self.round_lsb(p, pf, af, r),
                shift: 0,
                neg: false,
            }
        }
    }

    /// `x * w * 2^extra` as terms to be summed.
    pub(crate) fn const_mult_terms(
        &mut self,
        x: NodeId,
        w: i128,
        extra: u32,
        tag: &str,
    ) -> Vec<Term> {
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
    pub(crate) fn sum_terms(&mut self, mut terms: Vec<Term>, bias: i128) -> NodeId {
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

    fn sum_nodes(&mut self, nodes: &[NodeId]) -> NodeId {
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

    /// `round_to_lsb` of the golden model, in hardware: floor by wiring, then
    /// an increment decided from the dropped bits.
    pub(crate) fn round_lsb(&mut self, n: NodeId, from: i32, to: i32, r: Rounding) -> NodeId {
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
    fn overflow(&mut self, n: NodeId, ty: FixedType) -> NodeId {
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
    fn quantize(&mut self, n: NodeId, from: i32, ty: FixedType) -> NodeId {
        let r = self.round_lsb(n, from, ty.frac_bits(), ty.rounding);
        self.overflow(r, ty)
    }

    /// One multiply-accumulate row: the operands and the QOp's four types
    /// travel together, as the golden rule does.
    #[allow(clippy::too_many_arguments)]
    fn mac(
        &mut self,
        pairs: &[(i64, NodeId)],
        x_ty: FixedType,
        w_ty: FixedType,
        bias: i64,
        b_ty: FixedType,
        acc: FixedType,
        out: FixedType,
        tag: &str,
    ) -> NodeId {
        let pf = x_ty.frac_bits() + w_ty.frac_bits();
        let af = acc.frac_bits();
        let r = acc.rounding;
        let b = round_to_lsb(bias as i128, b_ty.frac_bits(), af, r);
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
                terms.push(self.at_acc_lsb(p, pf, af, r));
            }
        }
        self.finish(terms, b, acc, out)
    }

    /// `bias + sum of terms` (at the accumulator's LSB) through the
    /// accumulator's overflow and the requantization to `out`.
    pub(crate) fn finish(
        &mut self,
        terms: Vec<Term>,
        b: i128,
        acc: FixedType,
        out: FixedType,
    ) -> NodeId {
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

    fn const_mult(&mut self, x: NodeId, c: i128, tag: &str) -> NodeId {
        let ts = self.const_mult_terms(x, c, 0, tag);
        self.sum_terms(ts, 0)
    }

    fn table(&mut self, x: NodeId, t: &Table) -> NodeId {
        let off = self.net.konst(t.offset as i128);
        let d = self.net.sub(x, off);
        self.table_offset(d, t)
    }

    /// The table lookup of `x` given `d = x - t.offset`.
    fn table_offset(&mut self, d: NodeId, t: &Table) -> NodeId {
        let net = &mut self.net;
        let s = net.shr(d, t.shift);
        let last = t.values.len() as i128 - 1;
        let zero = net.konst(0);
        let lastc = net.konst(last);
        let below = net.lt(s, zero);
        let above = net.lt(lastc, s);
        let hi = net.mux(above, lastc, s);
        let idx = net.mux(below, zero, hi);
        let idx = net.narrow(idx, 0, last);
        net.rom(idx, t.values.iter().map(|&v| v as i128).collect())
    }

    /// `exp_table[v - max(group)]` for each `v` of a softmax group.
    ///
    /// Small groups avoid the serial max tree (compare, select, compare, ...)
    /// followed by two subtractions: all pairwise comparisons at once give a
    /// one-hot select of the first maximum, and the differences
    /// `v_i - (v_j + offset)` computed meanwhile are selected by it, so the
    /// table index is ready after one comparator, a few LUT levels and two
    /// adders side by side. Exactly one select is set, and every selected
    /// difference equals `v_i - max - offset`.
    #[allow(clippy::needless_range_loop)] // pairwise indices read best as such
    fn softmax_exp(&mut self, group: &[NodeId], t: &Table) -> Vec<NodeId> {
        let n = group.len();
        if !(2..=8).contains(&n) {
            let m = self.max_tree(group.to_vec());
            return group
                .iter()
                .map(|&v| {
                    let d = self.net.sub(v, m);
                    let (l, _) = self.net.range(d);
                    let d = self.net.narrow(d, l, 0);
                    self.table(d, t)
                })
                .collect();
        }
        let off = t.offset as i128;
        // c[a][b] = v_a < v_b for a < b.
        let mut c = vec![vec![usize::MAX; n]; n];
        for a in 0..n {
            for b in a + 1..n {
                c[a][b] = self.net.lt(group[a], group[b]);
            }
        }
        // sel[j]: v_j is the first maximum (above all before it, not below any after it).
        let mut sel = Vec::with_capacity(n);
        for j in 0..n {
            let mut s = self.net.bool_const(true);
            for k in 0..n {
                let term = if k < j {
                    c[k][j]
                } else if k > j {
                    self.net.not(c[j][k])
                } else {
                    continue;
                };
                s = self.net.and(s, term);
            }
            sel.push(s);
        }
        let offc = self.net.konst(off);
        let shifted: Vec<NodeId> = group.iter().map(|&v| self.net.add(v, offc)).collect();
        let max_hi = group
            .iter()
            .map(|&v| self.net.range(v).1)
            .max()
            .unwrap_or(0);
        let mut e = Vec::with_capacity(n);
        for i in 0..n {
            // (select, v_i - v_j - offset) for every j, reduced pairwise.
            let mut cand: Vec<(NodeId, NodeId)> = (0..n)
                .map(|j| {
                    let d = if i == j {
                        self.net.konst(-off)
                    } else {
                        self.net.sub(group[i], shifted[j])
                    };
                    (sel[j], d)
                })
                .collect();
            while cand.len() > 1 {
                let mut next = Vec::with_capacity(cand.len() / 2 + 1);
                for p in cand.chunks(2) {
                    if p.len() == 1 {
                        next.push(p[0]);
                        continue;
                    }
                    let s = self.net.or(p[0].0, p[1].0);
                    let v = self.net.mux(p[0].0, p[0].1, p[1].1);
                    next.push((s, v));
                }
                cand = next;
            }
            let lo = self.net.range(group[i]).0 - max_hi - off;
            let d = self.net.narrow(cand[0].1, lo, -off);
            e.push(self.table_offset(d, t));
        }
        e
    }

    fn max2(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let lt = self.net.lt(a, b);
        self.net.mux(lt, b, a)
    }

    fn max_tree(&mut self, mut v: Vec<NodeId>) -> NodeId {
        while v.len() > 1 {
            v = v
                .chunks(2)
                .map(|p| {
                    if p.len() == 2 {
                        self.max2(p[0], p[1])
                    } else {
                        p[0]
                    }
                })
                .collect();
        }
        v[0]
    }

    pub(crate) fn layer(
        &mut self,
        li: usize,
        t: &[Vec<NodeId>],
    ) -> Result<Vec<NodeId>, BuildError> {
        let model = self.model;
        let layer = &model.layers[li];
        let arg = |k: usize| (&t[layer.inputs[k]], model.ty(layer.inputs[k]));
        let ty = layer.ty;
        let out_len: usize = layer.shape.iter().product();
        let name = &layer.name;
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
                let (x, xt) = arg(0);
                (0..*n_out)
                    .map(|o| {
                        let pairs: Vec<(i64, NodeId)> =
                            (0..*n_in).map(|i| (weights[o * n_in + i], x[i])).collect();
                        self.mac(
                            &pairs,
                            xt,
                            *w_ty,
                            bias[o],
                            *b_ty,
                            *acc_ty,
                            ty,
                            &format!("{name}[{o}]"),
                        )
                    })
                    .collect()
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
                let (x, xt) = arg(0);
                let per_oc = window.in_channels * window.kernel_size();
                let mut y = Vec::with_capacity(out_len);
                for oc in 0..*out_channels {
                    for p in 0..window.out_positions() {
                        let pairs: Vec<(i64, NodeId)> = window
                            .conv_taps(p)
                            .map(|(j, i)| (weights[oc * per_oc + j], x[i]))
                            .collect();
                        y.push(self.mac(
                            &pairs,
                            xt,
                            *w_ty,
                            bias[oc],
                            *b_ty,
                            *acc_ty,
                            ty,
                            &format!("{name}[{oc},{p}]"),
                        ));
                    }
                }
                y
            }
            QOp::Scale {
                scale,
                s_ty,
                shift,
                b_ty,
                acc_ty,
            } => {
                let (x, xt) = arg(0);
                (0..out_len)
                    .map(|i| {
                        self.mac(
                            &[(scale[i], x[i])],
                            xt,
                            *s_ty,
                            shift[i],
                            *b_ty,
                            *acc_ty,
                            ty,
                            &format!("{name}[{i}]"),
                        )
                    })
                    .collect()
            }
            QOp::Relu => {
                let (x, xt) = arg(0);
                x.iter()
                    .map(|&v| {
                        let neg = self.net.bit(v, u32::MAX);
                        let z = self.net.konst(0);
                        let r = self.net.mux(neg, z, v);
                        let (_, h) = self.net.range(r);
                        let r = self.net.narrow(r, 0, h);
                        self.quantize(r, xt.frac_bits(), ty)
                    })
                    .collect()
            }
            QOp::LeakyRelu { alpha, a_ty } => {
                let (x, xt) = arg(0);
                let alphas = vec![*alpha; x.len()];
                self.prelu(x, xt, &alphas, *a_ty, ty, name)
            }
            QOp::PRelu { alpha, a_ty } => {
                let (x, xt) = arg(0);
                self.prelu(x, xt, alpha, *a_ty, ty, name)
            }
            QOp::ThresholdedRelu { theta } => {
                let (x, xt) = arg(0);
                x.iter()
                    .map(|&v| {
                        let th = self.net.konst(*theta as i128);
                        let gt = self.net.lt(th, v);
                        let z = self.net.konst(0);
                        let r = self.net.mux(gt, v, z);
                        self.quantize(r, xt.frac_bits(), ty)
                    })
                    .collect()
            }
            QOp::Clip { lo, hi } => {
                let (x, xt) = arg(0);
                x.iter()
                    .map(|&v| {
                        let net = &mut self.net;
                        let (l, h) = (net.konst(*lo as i128), net.konst(*hi as i128));
                        let below = net.lt(v, l);
                        let above = net.lt(h, v);
                        let m = net.mux(above, h, v);
                        let r = net.mux(below, l, m);
                        let r = net.narrow(r, *lo as i128, *hi as i128);
                        self.quantize(r, xt.frac_bits(), ty)
                    })
                    .collect()
            }
            QOp::Table { table, .. } => {
                let (x, _) = arg(0);
                x.iter().map(|&v| self.table(v, table)).collect()
            }
            QOp::Step { thresholds, values } => {
                let (x, _) = arg(0);
                x.iter()
                    .map(|&v| {
                        let net = &mut self.net;
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
            QOp::Softmax {
                n,
                exp_ty,
                exp_table,
                inv_ty,
                inv_table,
            } => {
                let (x, _) = arg(0);
                let pf = exp_ty.frac_bits() + inv_ty.frac_bits();
                let mut y = Vec::with_capacity(out_len);
                for group in x.chunks(*n) {
                    let e = self.softmax_exp(group, exp_table);
                    // The inverse table's offset is the sum's bias.
                    let terms = e
                        .iter()
                        .map(|&node| Term {
                            node,
                            shift: 0,
                            neg: false,
                        })
                        .collect();
                    let s = self.sum_terms(terms, -(inv_table.offset as i128));
                    let r = self.table_offset(s, inv_table);
                    for &ev in &e {
                        let p = self.net.mul(ev, r);
                        y.push(self.quantize(p, pf, ty));
                    }
                }
                y
            }
            QOp::Argmax { n } => {
                let (x, _) = arg(0);
                let one = ty.quantize_raw(1, 0) as i128;
                let mut y = Vec::with_capacity(out_len);
                for group in x.chunks(*n) {
                    // (value, index) pairs; the left operand always has the
                    // lower indices, so ties keep the first maximum.
                    let mut v: Vec<(NodeId, NodeId)> = group
                        .iter()
                        .enumerate()
                        .map(|(i, &g)| (g, self.net.konst(i as i128)))
                        .collect();
                    while v.len() > 1 {
                        let mut next = Vec::new();
                        for p in v.chunks(2) {
                            if p.len() == 1 {
                                next.push(p[0]);
                                continue;
                            }
                            let take_b = self.net.lt(p[0].0, p[1].0);
                            let val = self.net.mux(take_b, p[1].0, p[0].0);
                            let idx = self.net.mux(take_b, p[1].1, p[0].1);
                            next.push((val, idx));
                        }
                        v = next;
                    }
                    let idx = v[0].1;
                    for j in 0..group.len() {
                        let c = self.net.konst(j as i128);
                        let hit = self.net.eq(idx, c);
                        let o = self.net.konst(one);
                        let z = self.net.konst(0);
                        y.push(self.net.mux(hit, o, z));
                    }
                }
                y
            }
            QOp::Pool {
                kind,
                window,
                recip,
                recip_ty,
            } => {
                let (x, xt) = arg(0);
                let mut y = Vec::with_capacity(out_len);
                for w in window.pool_windows() {
                    let vals: Vec<NodeId> = w.iter().map(|&i| x[i]).collect();
                    let out = match kind {
                        PoolKind::Max => {
                            let m = if vals.is_empty() {
                                self.net.konst(0)
                            } else {
                                self.max_tree(vals)
                            };
                            self.quantize(m, xt.frac_bits(), ty)
                        }
                        PoolKind::Average => {
                            let s = self.sum_nodes(&vals);
                            let prod = self.const_mult(
                                s,
                                recip[vals.len()] as i128,
                                &format!("{name} recip"),
                            );
                            self.quantize(prod, xt.frac_bits() + recip_ty.frac_bits(), ty)
                        }
                    };
                    y.push(out);
                }
                y
            }
            QOp::Add => {
                let ((a, ta), (b, tb)) = (arg(0), arg(1));
                let f = ta.frac_bits().max(tb.frac_bits());
                (0..out_len)
                    .map(|i| {
                        let u = self.round_lsb(a[i], ta.frac_bits(), f, Rounding::Trn);
                        let v = self.round_lsb(b[i], tb.frac_bits(), f, Rounding::Trn);
                        let s = self.net.add(u, v);
                        self.quantize(s, f, ty)
                    })
                    .collect()
            }
            QOp::Route { src } => src
                .iter()
                .map(|&(k, j)| {
                    let (x, xt) = arg(k as usize);
                    self.quantize(x[j as usize], xt.frac_bits(), ty)
                })
                .collect(),
            QOp::Requant => {
                let (x, xt) = arg(0);
                x.iter()
                    .map(|&v| self.quantize(v, xt.frac_bits(), ty))
                    .collect()
            }
        })
    }

    fn prelu(
        &mut self,
        x: &[NodeId],
        xt: FixedType,
        alpha: &[i64],
        a_ty: FixedType,
        ty: FixedType,
        name: &str,
    ) -> Vec<NodeId> {
        let pf = xt.frac_bits() + a_ty.frac_bits();
        x.iter()
            .zip(alpha)
            .map(|(&v, &a)| {
                let neg = self.net.bit(v, u32::MAX);
                let pos = self.quantize(v, xt.frac_bits(), ty);
                let p = self.const_mult(v, a as i128, &format!("{name} alpha={a}"));
                let nq = self.quantize(p, pf, ty);
                self.net.mux(neg, nq, pos)
            })
            .collect()
    }
}

/// Sanitized Verilog module name from the model name.
pub fn module_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || !s.chars().next().unwrap().is_ascii_alphabetic() {
        s = format!("bx_{s}");
    }
    s
}

/// One field per value of `ty`, packed from bit 0 (the bus packing of the
/// export: value i at `data[i*W +: W]`).
fn bus(ty: FixedType, n: usize) -> Vec<Field> {
    (0..n)
        .map(|i| Field {
            lsb: i as u32 * ty.width,
            width: ty.width,
            signed: ty.signed,
        })
        .collect()
}

/// The input bus of `model`: its fields and their input nodes in `net`.
pub(crate) fn input_bus(net: &mut Netlist, model: &QModel) -> (Vec<Field>, Vec<NodeId>) {
    let fields = bus(model.input_ty, model.input_len());
    let nodes = fields
        .iter()
        .map(|f| net.input(f.lsb, f.width, f.signed))
        .collect();
    (fields, nodes)
}

/// Makes `vals` the outputs of `net`, one field of the model's output type each.
pub(crate) fn output_bus(net: &mut Netlist, model: &QModel, vals: &[NodeId]) -> Vec<Field> {
    let fields = bus(model.output_ty(), vals.len());
    for (f, &node) in fields.iter().zip(vals) {
        net.outputs.push(OutField {
            node,
            width: f.width,
        });
    }
    fields
}

/// The combinational netlist of `model` (no registers), with its bus fields.
pub fn build_comb(
    model: &QModel,
    strategy: Strategy,
) -> Result<(Netlist, Vec<Field>, Vec<Field>), BuildError> {
    let mut b = Builder::new(model, strategy);
    let (inputs, x) = input_bus(&mut b.net, model);
    let mut tensors = vec![x];
    for li in 0..model.layers.len() {
        let y = b.layer(li, &tensors)?;
        if let Some(e) = b.net.error.take() {
            return Err(e.into());
        }
        tensors.push(y);
    }
    let outputs = output_bus(&mut b.net, model, &tensors.pop().unwrap_or_default());
    Ok((b.net, inputs, outputs))
}

/// Builds the pipelined kernel of `model`.
pub fn build_kernel(model: &QModel, options: &Options) -> Result<Kernel, BuildError> {
    let reuse = crate::fold::layer_reuse(model, options.reuse)?;
    if reuse.iter().any(|&r| r > 1) {
        return crate::fold::build_folded(model, options, &reuse);
    }
    let (comb, inputs, outputs) = build_comb(model, options.strategy)?;
    let (net, latency) = pipeline(&comb, options.budget_ps(), &Delays::default());
    Ok(Kernel {
        name: module_name(&model.name),
        net,
        latency,
        ii: 1,
        inputs,
        outputs,
        options: options.clone(),
    })
}

/// Layers `first..=last` of `model` (0-based) as a model of their own, whose
/// input is the input tensor of layer `first`: for per-layer export and
/// synthesis of designs too large to synthesize whole. Every layer of the
/// range may only read tensors from inside it (or its input).
pub fn slice_layers(model: &QModel, first: usize, last: usize) -> Result<QModel, String> {
    if first > last || last >= model.layers.len() {
        return Err(format!(
            "layers {first}..={last}: the model has layers 0..={}",
            model.layers.len().saturating_sub(1)
        ));
    }
    let input_shape = if first == 0 {
        model.input_shape.clone()
    } else {
        model.layers[first - 1].shape.clone()
    };
    let mut layers = Vec::new();
    for l in &model.layers[first..=last] {
        let mut l = l.clone();
        for t in &mut l.inputs {
            if *t < first {
                return Err(format!(
                    "layer '{}' reads tensor {t}, before layer {first}'s input",
                    l.name
                ));
            }
            *t -= first;
        }
        layers.push(l);
    }
    Ok(QModel {
        name: format!("{}_l{first}_{last}", model.name),
        input_shape,
        input_ty: model.ty(first),
        layers,
        output_names: if last + 1 == model.layers.len() {
            model.output_names.clone()
        } else {
            vec![]
        },
    })
}
