//! The netlist's constructors: one method per op that computes the result's
//! range by interval arithmetic and simplifies on the spot (constants,
//! identities, comparisons decided by the ranges), plus loop registers and
//! the instancing of one netlist into another.

use super::ir::{
    input_order, map_inputs, signed_width, Netlist, NetlistError, NodeId, Op, MAX_WIDTH,
};

impl Netlist {
    pub fn tag(&mut self, n: NodeId, tag: String) {
        self.nodes[n].tag = Some(tag);
    }

    pub fn konst(&mut self, v: i128) -> NodeId {
        self.konst_b(v, false)
    }

    pub fn bool_const(&mut self, b: bool) -> NodeId {
        self.konst_b(b as i128, true)
    }

    pub fn input(&mut self, lsb: u32, width: u32, signed: bool) -> NodeId {
        let (lo, hi) = if signed {
            (-(1i128 << (width - 1)), (1i128 << (width - 1)) - 1)
        } else {
            (0, (1i128 << width) - 1)
        };
        self.in_width = self.in_width.max(lsb + width);
        self.push_raw(Op::Input { lsb, width, signed }, lo, hi, false)
    }

    /// A signed input field whose values the producer keeps within `[lo, hi]`
    /// (an instance's input fed from a node of known range, see [`Netlist::embed`]).
    pub fn input_in(&mut self, lsb: u32, width: u32, lo: i128, hi: i128) -> NodeId {
        let n = self.input(lsb, width, true);
        let (l, h) = self.range(n);
        self.nodes[n].lo = lo.max(l);
        self.nodes[n].hi = hi.min(h);
        n
    }

    pub fn in_valid(&mut self) -> NodeId {
        self.push_raw(Op::InValid, 0, 1, true)
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> NodeId {
        if self.const_value(b) == Some(0) {
            return a;
        }
        if self.const_value(a) == Some(0) {
            return b;
        }
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        self.push(Op::Add(a, b), al + bl, ah + bh, false)
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        if self.const_value(b) == Some(0) {
            return a;
        }
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        self.push(Op::Sub(a, b), al - bh, ah - bl, false)
    }

    /// `t[0] +- t[1] +- t[2]` as one [`Op::Sum3`] (`neg[k]`: `t[k]`
    /// subtracted; `t[0]` added, and at most one of the others subtracted,
    /// which the ternary adder's two carry inputs allow).
    pub fn sum3(&mut self, t: [NodeId; 3], neg: [bool; 3]) -> NodeId {
        assert!(
            neg.iter().filter(|&&n| n).count() <= 1 && !neg[0],
            "a ternary sum adds its first term and subtracts at most one"
        );
        let (mut lo, mut hi) = (0, 0);
        for (&x, &n) in t.iter().zip(&neg) {
            let (l, h) = self.range(x);
            if n {
                lo -= h;
                hi -= l;
            } else {
                lo += l;
                hi += h;
            }
        }
        self.push(Op::Sum3 { t, neg }, lo, hi, false)
    }

    pub fn shl(&mut self, a: NodeId, k: u32) -> NodeId {
        if k == 0 {
            return a;
        }
        let (l, h) = self.range(a);
        if self.width(a) + k > MAX_WIDTH {
            if self.error.is_none() {
                self.error = Some(NetlistError::TooWide(
                    self.width(a) + k,
                    "shift left".into(),
                ));
            }
            return self.konst(0);
        }
        self.push(Op::Shl(a, k), l << k, h << k, false)
    }

    /// `floor(a / 2^k)` for any `k`.
    pub fn shr(&mut self, a: NodeId, k: u32) -> NodeId {
        if k == 0 {
            return a;
        }
        let (l, h) = self.range(a);
        let (lo, hi) = (l >> k.min(127), h >> k.min(127));
        if lo == hi {
            return self.konst(lo);
        }
        if k >= self.width(a) {
            // Only the sign is left: 0 or -1.
            let s = self.bit(a, self.width(a) - 1);
            let one = self.bool_to_int(s);
            let z = self.konst(0);
            return self.sub(z, one);
        }
        self.push(Op::Shr(a, k), lo, hi, false)
    }

    pub fn mul_const(&mut self, a: NodeId, c: i128) -> NodeId {
        let (l, h) = self.range(a);
        let (p, q) = (l * c, h * c);
        self.push(Op::MulConst(a, c), p.min(q), p.max(q), false)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        let c = [al * bl, al * bh, ah * bl, ah * bh];
        let (lo, hi) = (*c.iter().min().unwrap(), *c.iter().max().unwrap());
        self.push(Op::Mul(a, b), lo, hi, false)
    }

    /// Low `width` bits of `a`, signed or unsigned: the WRAP overflow mode.
    pub fn wrap(&mut self, a: NodeId, width: u32, signed: bool) -> NodeId {
        let (lo, hi) = if signed {
            (-(1i128 << (width - 1)), (1i128 << (width - 1)) - 1)
        } else {
            (0, (1i128 << width) - 1)
        };
        let (l, h) = self.range(a);
        if l >= lo && h <= hi {
            return a;
        }
        self.push(Op::Wrap { a, width, signed }, lo, hi, false)
    }

    /// Declares that `a`'s value lies in `[lo, hi]` (the caller guarantees it,
    /// the simulator checks it) and narrows the wire accordingly.
    pub fn narrow(&mut self, a: NodeId, lo: i128, hi: i128) -> NodeId {
        let (l, h) = self.range(a);
        let (lo, hi) = (lo.max(l), hi.min(h));
        let w = signed_width(lo, hi);
        if w >= self.width(a) {
            return a;
        }
        self.push(
            Op::Wrap {
                a,
                width: w,
                signed: true,
            },
            lo,
            hi,
            false,
        )
    }

    /// Boolean `a < b`: a constant where the ranges decide, bit tests
    /// against a power of two, else the sign of `a - b`.
    pub fn lt(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        if ah < bl {
            return self.bool_const(true);
        }
        if al >= bh {
            return self.bool_const(false);
        }
        // `a < 0` is the sign bit (wiring, no comparator).
        if self.const_value(b) == Some(0) {
            return self.bit(a, u32::MAX);
        }
        // Against a power of two, or one less (a saturating type's
        // bounds), the bits above it decide: LUT logic instead of a carry
        // chain. Yosys 0.23 had merged a comparator's carry-out logic into
        // the LUTs of every bit that the saturation selects: on ECP5 four
        // LUT4 and three wide multiplexers a bit, 77 % of a 16-bit Dense
        // layer's LUTs.
        if let Some(c) = self.const_value(b) {
            if let Some(k) = pow2(-c) {
                return self.below_neg_pow2(a, k);
            }
            if let Some(k) = pow2(c) {
                let t = self.at_least_pow2(a, k);
                return self.not(t);
            }
        }
        if let Some(c) = self.const_value(a) {
            if c == -1 {
                let s = self.bit(b, u32::MAX);
                return self.not(s);
            }
            if let Some(k) = pow2(c + 1) {
                return self.at_least_pow2(b, k);
            }
            if let Some(k) = pow2(-(c + 1)) {
                let t = self.below_neg_pow2(b, k);
                return self.not(t);
            }
        }
        // The sign of the difference, one bit wider than either operand:
        // the top sum bit of a carry chain, which leaves the chain directly.
        // A `<` in the Verilog made Yosys build the signed comparison from
        // the chain's internal carries (the overflow) and LUTs after it: on
        // ECP5 nextpnr then has to bring those carries out through one more
        // cell, and the softmax maximum's comparators routed 1.1 to 1.9 ns
        // over the delay model (README, issue 17).
        let d = self.sub(a, b);
        self.bit(d, u32::MAX)
    }

    /// `a >= 2^k`: not negative, and a bit from `k` up (below the sign) set.
    fn at_least_pow2(&mut self, a: NodeId, k: u32) -> NodeId {
        let w = self.width(a);
        let s = self.bit(a, u32::MAX);
        let pos = self.not(s);
        let t = self.any(a, k, w - 1);
        self.and(pos, t)
    }

    /// `a < -2^k`: negative, and not every bit from `k` up (below the
    /// sign) set.
    fn below_neg_pow2(&mut self, a: NodeId, k: u32) -> NodeId {
        let w = self.width(a);
        let s = self.bit(a, u32::MAX);
        let t = self.all(a, k, w - 1);
        let nt = self.not(t);
        self.and(s, nt)
    }

    pub fn eq(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        if ah < bl || bh < al {
            return self.bool_const(false);
        }
        self.push(Op::Eq(a, b), 0, 1, true)
    }

    /// Bit `i` of `a`'s infinite two's complement expansion.
    pub fn bit(&mut self, a: NodeId, i: u32) -> NodeId {
        let w = self.width(a);
        let (l, h) = self.range(a);
        if i >= w - 1 {
            // The sign.
            if l >= 0 {
                return self.bool_const(false);
            }
            if h < 0 {
                return self.bool_const(true);
            }
            return self.push(Op::Bit(a, w - 1), 0, 1, true);
        }
        self.push(Op::Bit(a, i), 0, 1, true)
    }

    /// OR of bits `lo..hi` of `a`'s infinite two's complement expansion.
    pub fn any(&mut self, a: NodeId, lo: u32, hi: u32) -> NodeId {
        self.reduce(a, lo, hi, false)
    }

    /// AND of bits `lo..hi` of `a`'s infinite two's complement expansion.
    pub fn all(&mut self, a: NodeId, lo: u32, hi: u32) -> NodeId {
        self.reduce(a, lo, hi, true)
    }

    /// OR (AND when `all`) of bits `lo..hi`: the bits above the width are
    /// copies of the sign.
    fn reduce(&mut self, a: NodeId, lo: u32, hi: u32, all: bool) -> NodeId {
        if hi <= lo {
            return self.bool_const(all);
        }
        let w = self.width(a);
        let inner = if lo < w {
            let top = hi.min(w);
            let op = if all {
                Op::All(a, lo, top)
            } else {
                Op::Any(a, lo, top)
            };
            self.push(op, 0, 1, true)
        } else {
            self.bool_const(all)
        };
        if hi > w {
            let s = self.bit(a, w - 1);
            if all {
                self.and(inner, s)
            } else {
                self.or(inner, s)
            }
        } else {
            inner
        }
    }

    pub fn not(&mut self, a: NodeId) -> NodeId {
        if let Some(v) = self.const_value(a) {
            return self.bool_const(v == 0);
        }
        self.push(Op::Not(a), 0, 1, true)
    }

    pub fn and(&mut self, a: NodeId, b: NodeId) -> NodeId {
        match (self.const_value(a), self.const_value(b)) {
            (Some(0), _) | (_, Some(0)) => self.bool_const(false),
            (Some(_), _) => b,
            (_, Some(_)) => a,
            _ => self.push(Op::And(a, b), 0, 1, true),
        }
    }

    pub fn or(&mut self, a: NodeId, b: NodeId) -> NodeId {
        match (self.const_value(a), self.const_value(b)) {
            (Some(0), _) => b,
            (_, Some(0)) => a,
            (Some(_), _) | (_, Some(_)) => self.bool_const(true),
            _ => self.push(Op::Or(a, b), 0, 1, true),
        }
    }

    pub fn bool_to_int(&mut self, a: NodeId) -> NodeId {
        self.push(Op::BoolToInt(a), 0, 1, false)
    }

    pub fn mux(&mut self, sel: NodeId, a: NodeId, b: NodeId) -> NodeId {
        if let Some(v) = self.const_value(sel) {
            return if v != 0 { a } else { b };
        }
        if a == b {
            return a;
        }
        let (al, ah) = self.range(a);
        let (bl, bh) = self.range(b);
        self.push(Op::Mux(sel, a, b), al.min(bl), ah.max(bh), false)
    }

    pub fn rom(&mut self, idx: NodeId, values: Vec<i128>) -> NodeId {
        let lo = *values.iter().min().expect("non-empty ROM");
        let hi = *values.iter().max().expect("non-empty ROM");
        if lo == hi {
            return self.konst(lo);
        }
        self.push(Op::Rom { idx, values }, lo, hi, false)
    }

    pub fn reg(&mut self, a: NodeId, reset: bool) -> NodeId {
        let n = &self.nodes[a];
        let (lo, hi, b) = (n.lo, n.hi, n.boolean);
        self.push_raw(Op::Reg { a, reset }, lo, hi, b)
    }

    /// A register whose input is built later ([`Netlist::connect`]): the
    /// state of a loop (accumulator, counter, held operand). It is declared
    /// before its readers, so the simulator's in-order evaluation and the
    /// Verilog's declaration order both hold; the range is the caller's
    /// promise, checked by the simulator like any other.
    pub fn state(&mut self, lo: i128, hi: i128, boolean: bool, reset: bool) -> NodeId {
        let id = self.nodes.len();
        self.push_raw(Op::Reg { a: id, reset }, lo, hi, boolean)
    }

    /// Closes the loop of a [`Netlist::state`] register: its next value is `a`.
    pub fn connect(&mut self, reg: NodeId, a: NodeId) {
        match &mut self.nodes[reg].op {
            Op::Reg { a: input, .. } => *input = a,
            op => panic!("connect: node {reg} is {op:?}, not a register"),
        }
    }

    /// Copies `sub` into this netlist as an instance: its input fields (in
    /// bus order) read `inputs`, its `in_valid` reads `valid`. Returns the
    /// nodes of its outputs and of its `out_valid` (or `valid` when it has none).
    /// Each node keeps its layer; its stage is counted from `stage0`, the
    /// stage in which `sub`'s stage 0 runs, or is unknown (`None`: `sub`
    /// runs in a loop, on several cycles of one event).
    pub fn embed(
        &mut self,
        sub: &Netlist,
        inputs: &[NodeId],
        valid: NodeId,
        stage0: Option<u32>,
    ) -> (Vec<NodeId>, NodeId) {
        let order = input_order(sub);
        for (i, n) in sub.nodes.iter().enumerate() {
            if let Op::Input { width, .. } = n.op {
                assert!(
                    self.width(inputs[order[i]]) <= width,
                    "embed: input field {} is narrower than its source",
                    order[i]
                );
            }
        }
        // Ids are assigned up front so that registers' forward references
        // (loops built with `state`) can be renamed before their inputs exist;
        // inputs and `in_valid` become wiring to the given nodes.
        let mut next = self.nodes.len();
        let map: Vec<NodeId> = sub
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n.op {
                Op::Input { .. } => inputs[order[i]],
                Op::InValid => valid,
                _ => {
                    next += 1;
                    next - 1
                }
            })
            .collect();
        for n in &sub.nodes {
            if matches!(n.op, Op::Input { .. } | Op::InValid) {
                continue;
            }
            let op = map_inputs(&n.op, |a| map[a]);
            let id = self.push_raw(op, n.lo, n.hi, n.boolean);
            self.nodes[id].tag = n.tag.clone();
            self.nodes[id].layer = n.layer;
            self.nodes[id].stage = stage0.zip(n.stage).map(|(a, b)| a + b);
            self.nodes[id].predicted_ps = n.predicted_ps;
        }
        let outs = sub.outputs.iter().map(|f| map[f.node]).collect();
        (outs, sub.out_valid.map(|v| map[v]).unwrap_or(valid))
    }
}

/// `k` when `x` is `2^k`.
fn pow2(x: i128) -> Option<u32> {
    (x > 0 && x & (x - 1) == 0).then(|| x.trailing_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlist::SimState;

    /// `x < c` and `c < x` for every value of a signed or non-negative
    /// input of 2 to 6 bits and every constant around its range, against
    /// the integers; at a power of two or one less no carry chain is built.
    #[test]
    fn comparisons_with_constants_are_exact_and_bit_tests_at_powers_of_two() {
        for w in 2..=6u32 {
            for (lo, hi) in [
                (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1),
                (0, (1 << (w - 1)) - 1),
            ] {
                for c in -(1i128 << w)..=(1 << w) {
                    let mut net = Netlist::new();
                    let x = net.input_in(0, w, lo, hi);
                    let k = net.konst(c);
                    let chains = |n: &Netlist| {
                        n.nodes
                            .iter()
                            .filter(|n| matches!(n.op, Op::Sub(..)))
                            .count()
                    };
                    let pow2 = |v: i128| pow2(v).is_some();
                    let below = net.lt(x, k);
                    if pow2(c) || pow2(-c) {
                        assert_eq!(chains(&net), 0, "x < {c}, w {w}");
                    }
                    let before = chains(&net);
                    let above = net.lt(k, x);
                    if pow2(c + 1) || pow2(-(c + 1)) || c == -1 {
                        assert_eq!(chains(&net), before, "{c} < x, w {w}");
                    }
                    for v in lo..=hi {
                        let mut s = SimState::new(&net);
                        s.eval(&net, true, |_, _| v, true);
                        assert_eq!(s.vals[below], i128::from(v < c), "{v} < {c}, w {w}");
                        assert_eq!(s.vals[above], i128::from(c < v), "{c} < {v}, w {w}");
                    }
                }
            }
        }
    }

    /// `x < y` of two values is the sign bit of `x - y`, one bit wider than
    /// the operands, and exact for every pair of signed and non-negative
    /// values of 1 to 4 bits.
    #[test]
    fn a_comparison_of_two_values_is_the_sign_of_their_difference() {
        let ranges = |w: u32| {
            [
                (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1),
                (0, (1i128 << w) - 1),
            ]
        };
        for (wx, wy) in [(1, 1), (3, 3), (2, 4), (4, 3)] {
            for (xl, xh) in ranges(wx) {
                for (yl, yh) in ranges(wy) {
                    let mut net = Netlist::new();
                    let x = net.input_in(0, wx + 1, xl, xh);
                    let y = net.input_in(wx + 1, wy + 1, yl, yh);
                    let lt = net.lt(x, y);
                    if xh >= yl && xl < yh {
                        let Op::Bit(d, k) = net.nodes[lt].op else {
                            panic!("{:?}", net.nodes[lt].op)
                        };
                        assert_eq!(net.nodes[d].op, Op::Sub(x, y));
                        assert_eq!(k + 1, net.width(d));
                        assert!(net.width(d) <= net.width(x).max(net.width(y)) + 1);
                    }
                    for v in xl..=xh {
                        for u in yl..=yh {
                            let mut s = SimState::new(&net);
                            s.eval(&net, true, |i, _| if i == x { v } else { u }, true);
                            assert_eq!(s.vals[lt], i128::from(v < u), "{v} < {u}");
                        }
                    }
                }
            }
        }
    }
}
