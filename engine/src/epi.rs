//! A fused layer's epilogue (bias, requantization, the elementwise layers
//! after it) compiled into a short program of i32 lane operations.
//!
//! Why a program: the straightforward epilogue runs every requantizer in
//! full (sign mask, convergent term, shift pair, clamp) for every 16-output
//! block of every event, about 30 vector operations; on the jet tagger that
//! cost as much as the multiply-accumulates. Most of those steps do nothing
//! for the values that can actually arrive: a round-to-nearest addend is a
//! constant that belongs in the bias, a shift by 0 is nothing, and a clamp
//! that the value range already satisfies (or that the Relu after it
//! tightens) can be dropped or merged. [`compile`] tracks the exact range of
//! values through the steps and emits only what can change a value.
//!
//! Exactness: every op is the corresponding step of [`FastRq::apply`] and
//! the elementwise kernels, on values of the tracked range; adds wrap, which
//! is harmless because each value they produce fits i32 (the plan proved it
//! when it chose i32 lanes), and two's complement addition is associative
//! modulo 2^32, so constants may be moved into the bias.

use crate::rq::FastRq32;

/// One step on i32 lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `v << k` (exact: the plan checked the range).
    Shl(u32),
    /// `v + bias[lane]`.
    AddBias,
    /// `v + c`.
    Add(i32),
    /// The value-dependent part of a rounding addend:
    /// `v + ((v >> 31) & neg) + ((v >> kr) & conv)`.
    RoundTerms {
        neg: i32,
        conv: i32,
        kr: u32,
    },
    /// Arithmetic `v >> k`.
    Sra(u32),
    Max(i32),
    Min(i32),
    /// Two's complement wrap into `32 - shift` bits.
    Wrap {
        shift: u32,
        signed: bool,
    },
    /// 0 outside `[lo, hi]`.
    SatZero {
        lo: i32,
        hi: i32,
    },
    /// `v` if `v > th`, else 0.
    Thresh(i32),
}

/// One elementwise step before compilation (what the plan fuses).
#[derive(Clone, Debug)]
pub(crate) enum Epi {
    Rq(FastRq32),
    Max0,
    Clamp(i32, i32),
    Thresh(i32),
}

/// A compiled epilogue: its ops and its bias (with constant addends folded in).
#[derive(Clone, Debug)]
pub(crate) struct Program {
    pub ops: Vec<Op>,
    pub bias: Vec<i32>,
    /// The branch-free form of the ops, when they have one (see [`Shape`]):
    /// the lane path then runs them without dispatching on each op, which
    /// costs a mispredicted indirect jump per op and block otherwise.
    pub shape: Option<Shape>,
    /// The range of the values after the bias (the accumulator's, once
    /// [`Program::fold`] moved the bias into it).
    input: Range,
    /// What the store adds to each result (the next layer's lane offset),
    /// unless [`Program::fold`] moved it into the accumulator.
    pub off: i32,
}

/// `min(max(wrap(v >> k), lo), hi)` on an accumulator `v` that holds the
/// bias ([`Program::fold`]), where `wrap` is a two's complement wrap into
/// `32 - s` bits (`(v << s) >> s`, arithmetic when signed) or nothing: the
/// shape of a round-to-nearest or truncating requantization with
/// saturation or wrap-around (hls4ml's default `ap_fixed` is `AP_TRN,
/// AP_WRAP`), Relu merged. Missing steps are no-ops (`k` 0, `lo`
/// `i32::MIN`, `hi` `i32::MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub k: u32,
    /// `(s, signed)` of the wrap, if any.
    pub wrap: Option<(u32, bool)>,
    pub lo: i32,
    pub hi: i32,
}

impl Shape {
    /// The shape on one value (the reference of the lane code's order:
    /// max then min, as `lo > hi` may happen).
    #[cfg(test)]
    fn apply(&self, v: i32) -> i32 {
        let x = v >> self.k;
        let x = match self.wrap {
            None => x,
            Some((s, true)) => (x << s) >> s,
            Some((s, false)) => ((x << s) as u32 >> s) as i32,
        };
        x.max(self.lo).min(self.hi)
    }
}

/// [`Program::shape`] of `ops` (the bias already in the accumulator).
fn shape(rest: &[Op]) -> Option<Shape> {
    let mut sh = Shape {
        k: 0,
        wrap: None,
        lo: i32::MIN,
        hi: i32::MAX,
    };
    let mut stage = 0; // ops must come in the order Sra, Wrap, Max, Min
    for op in rest {
        let at = match *op {
            Op::Sra(s) => {
                sh.k = s;
                1
            }
            Op::Wrap { shift, signed } => {
                sh.wrap = Some((shift, signed));
                2
            }
            Op::Max(c) => {
                sh.lo = c;
                3
            }
            Op::Min(c) => {
                sh.hi = c;
                4
            }
            _ => return None,
        };
        if at <= stage {
            return None;
        }
        stage = at;
    }
    Some(sh)
}

/// The range of values (inclusive) at a point of the program.
type Range = (i64, i64);

/// Builder: appends ops while tracking the value range, dropping the ones
/// that cannot change a value of that range.
struct Builder {
    /// Each op with the range of the values it receives.
    ops: Vec<(Op, Range)>,
    r: Range,
    /// The constant added since the bias, folded into it (only adds came
    /// after the bias so far).
    pending: i64,
}

impl Builder {
    /// Appends `op`, after which values lie in `r`.
    fn emit(&mut self, op: Op, r: Range) {
        self.ops.push((op, self.r));
        self.r = r;
    }

    /// Removes the last op, restoring the range before it.
    fn pop(&mut self) -> Option<Op> {
        let (op, r) = self.ops.pop()?;
        self.r = r;
        Some(op)
    }

    fn last(&self) -> Option<Op> {
        self.ops.last().map(|&(op, _)| op)
    }

    /// `v + c`: folded into the bias while nothing else followed it, merged
    /// with an add just before it, dropped when 0.
    fn add(&mut self, c: i64) {
        if c == 0 {
            return;
        }
        let r = (self.r.0 + c, self.r.1 + c);
        if self.ops.is_empty() {
            self.pending += c;
            self.r = r;
            return;
        }
        if let Some(Op::Add(d)) = self.last() {
            self.pop();
            let s = (d as i64 + c) as i32; // wraps; see the module note
            if s != 0 {
                self.emit(Op::Add(s), r);
            } else {
                self.r = r;
            }
            return;
        }
        self.emit(Op::Add(c as i32), r);
    }

    fn shl(&mut self, k: u32) {
        if k > 0 {
            self.emit(Op::Shl(k), (self.r.0 << k, self.r.1 << k));
        }
    }

    /// `clamp(v, lo, hi)` as the Max and Min that can change a value.
    fn clamp(&mut self, lo: i64, hi: i64) {
        debug_assert!(lo <= hi);
        let (rlo, rhi) = self.r;
        if rlo < lo {
            // A Max just before is another clamp's lower side (lower than
            // `lo`, since values below `lo` still arrive): replace it.
            if let Some(Op::Max(_)) = self.last() {
                self.pop();
            }
            self.emit(Op::Max(lo as i32), (lo, rhi.max(lo)));
        }
        if self.r.1 > hi {
            let rlo = self.r.0;
            self.emit(Op::Min(hi as i32), (rlo.min(hi), hi));
        }
    }

    fn rq(&mut self, f: &FastRq32) {
        if f.kr > 0 {
            if f.neg != 0 || f.conv != 0 {
                let (lo, hi) = self.r;
                let r = (
                    lo + (f.neg as i64).min(0),
                    hi + (f.neg as i64).max(0) + f.conv as i64,
                );
                self.emit(
                    Op::RoundTerms {
                        neg: f.neg,
                        conv: f.conv,
                        kr: f.kr,
                    },
                    r,
                );
            }
            self.add(f.base as i64);
            let k = f.kr;
            self.emit(Op::Sra(k), (self.r.0 >> k, self.r.1 >> k));
        }
        self.shl(f.kl);
        let (lo, hi) = (f.lo as i64, f.hi as i64);
        let inside = self.r.0 >= lo && self.r.1 <= hi;
        match f.mode {
            0 if !inside => self.emit(
                Op::Wrap {
                    shift: f.wrap_shift,
                    signed: f.signed,
                },
                (lo, hi),
            ),
            1 => self.clamp(f.clo as i64, hi),
            2 if !inside => {
                let r = (self.r.0.max(lo).min(0), self.r.1.min(hi).max(0));
                self.emit(Op::SatZero { lo: f.lo, hi: f.hi }, r);
            }
            _ => {}
        }
    }

    fn epi(&mut self, e: &Epi) {
        match *e {
            Epi::Rq(ref f) => self.rq(f),
            Epi::Max0 => {
                // Relu after a clamp's upper side h >= 0:
                // max(min(u, h), 0) = min(max(u, 0), h).
                match self.last() {
                    Some(Op::Min(h)) if h >= 0 && self.r.0 < 0 => {
                        self.pop();
                        self.clamp(0, h as i64);
                    }
                    _ => self.clamp(0, i64::MAX),
                }
            }
            Epi::Clamp(lo, hi) => self.clamp(lo as i64, hi as i64),
            Epi::Thresh(th) => {
                if self.r.0 <= th as i64 {
                    let r = (self.r.0.min(0), self.r.1.max(0));
                    self.emit(Op::Thresh(th), r);
                }
            }
        }
    }
}

/// Compiles `bias + (dot << sl)`, the accumulator's overflow `acc` (if it
/// can overflow), the layer's requantizer `rq` and the fused elementwise
/// steps `epi`. `arange` is the exact range of
/// `bias + (dot << sl)`, from which the plan proved every step fits i32.
pub(crate) fn compile(
    bias: &[i32],
    sl: u32,
    arange: (i64, i64),
    acc: Option<&FastRq32>,
    rq: &FastRq32,
    epi: &[Epi],
) -> Program {
    let mut b = Builder {
        ops: Vec::new(),
        r: arange,
        pending: 0,
    };
    if let Some(a) = acc {
        b.rq(a);
    }
    b.rq(rq);
    for e in epi {
        b.epi(e);
    }
    let input = b.ops.first().map_or(b.r, |&(_, r)| r);
    let mut ops = Vec::with_capacity(b.ops.len() + 2);
    if sl > 0 {
        ops.push(Op::Shl(sl));
    }
    ops.push(Op::AddBias);
    ops.extend(b.ops.iter().map(|&(op, _)| op));
    let bias = bias
        .iter()
        .map(|&v| (v as i64 + b.pending) as i32) // wraps; see the module note
        .collect();
    Program {
        shape: None,
        ops,
        bias,
        input,
        off: 0,
    }
}

impl Program {
    /// Moves what can be moved into `init`, the kernel's initial
    /// accumulators (every kernel starts from them): the bias, when it is
    /// the first step (no shift before it), and then, for a [`Shape`]
    /// without wrap-around, the offset `off` the store adds, as
    /// `off << k` (exact: `(v + (off << k)) >> k = (v >> k) + off`, the
    /// clamps moved by `off`), when no accumulator value leaves i32 by it.
    /// Adds to `init` wrap, as everywhere here (see the module note). What
    /// is not moved stays a step: the bias an op, the offset [`Program::off`].
    ///
    /// Per 16-output block of an AVX2 event that is two loads and adds of
    /// the bias and two adds of the offset fewer, and two cycles less
    /// between one layer's last multiply and the next layer's first.
    pub(crate) fn fold(&mut self, init: &mut [i32], off: i32) {
        self.off = off;
        if self.ops.first() != Some(&Op::AddBias) {
            return;
        }
        for (a, &b) in init.iter_mut().zip(&self.bias) {
            *a = a.wrapping_add(b);
        }
        self.ops.remove(0);
        self.bias.clear();
        self.shape = shape(&self.ops);
        let Some(sh) = &mut self.shape else {
            return;
        };
        let d = (off as i64) << sh.k;
        let (lo, hi) = self.input;
        let fits = lo + d >= i32::MIN as i64 && hi + d <= i32::MAX as i64;
        if off == 0 || sh.wrap.is_some() || !fits {
            return;
        }
        for a in init.iter_mut() {
            *a = a.wrapping_add(d as i32);
        }
        // A clamp that is a no-op stays one: values cannot pass
        // `i32::MIN + off` (or `i32::MAX + off`) once shifted by `off`.
        sh.lo = sh.lo.saturating_add(off);
        sh.hi = sh.hi.saturating_add(off);
        for op in &mut self.ops {
            match op {
                Op::Max(c) => *c = c.saturating_add(off),
                Op::Min(c) => *c = c.saturating_add(off),
                _ => {}
            }
        }
        self.off = 0;
    }

    /// Runs the program on `a` (the dot products of one event, `a.len()`
    /// at most the bias length): the portable reference the tests hold the
    /// compiled program to (the engine runs it in vector registers).
    #[cfg(test)]
    pub fn apply(&self, a: &mut [i32]) {
        for op in &self.ops {
            match *op {
                Op::Shl(k) => a.iter_mut().for_each(|v| *v <<= k),
                Op::AddBias => {
                    for (v, &b) in a.iter_mut().zip(&self.bias) {
                        *v = v.wrapping_add(b);
                    }
                }
                Op::Add(c) => a.iter_mut().for_each(|v| *v = v.wrapping_add(c)),
                Op::RoundTerms { neg, conv, kr } => a
                    .iter_mut()
                    .for_each(|v| *v = v.wrapping_add(((*v >> 31) & neg) + ((*v >> kr) & conv))),
                Op::Sra(k) => a.iter_mut().for_each(|v| *v >>= k),
                Op::Max(c) => a.iter_mut().for_each(|v| *v = (*v).max(c)),
                Op::Min(c) => a.iter_mut().for_each(|v| *v = (*v).min(c)),
                Op::Wrap { shift, signed } => a.iter_mut().for_each(|v| {
                    *v = if signed {
                        (*v << shift) >> shift
                    } else {
                        ((*v << shift) as u32 >> shift) as i32
                    }
                }),
                Op::SatZero { lo, hi } => a
                    .iter_mut()
                    .for_each(|v| *v = if *v < lo || *v > hi { 0 } else { *v }),
                Op::Thresh(th) => a.iter_mut().for_each(|v| *v = if *v > th { *v } else { 0 }),
            }
        }
        a.iter_mut().for_each(|v| *v = v.wrapping_add(self.off));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rq::Rq;
    use quantize::fixed::{FixedType, Overflow, Rounding};
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// The steps one by one, as the plan ran them before compilation.
    fn reference(b: i32, sl: u32, dot: i32, rq: &FastRq32, epi: &[Epi]) -> i32 {
        let mut v = b.wrapping_add(dot << sl);
        v = rq.apply(v);
        for e in epi {
            v = match *e {
                Epi::Rq(ref r) => r.apply(v),
                Epi::Max0 => v.max(0),
                Epi::Clamp(lo, hi) => v.clamp(lo, hi),
                Epi::Thresh(th) => {
                    if v > th {
                        v
                    } else {
                        0
                    }
                }
            };
        }
        v
    }

    fn ty(rng: &mut SmallRng) -> FixedType {
        let (rs, os) = (Rounding::ALL, Overflow::ALL);
        let signed = rng.gen_bool(0.7);
        let w = rng.gen_range(2..=16);
        FixedType::new(w, rng.gen_range(-2..=w as i32 + 2), signed)
            .unwrap()
            .with_rounding(rs[rng.gen_range(0..rs.len())])
            .with_overflow(os[rng.gen_range(0..os.len())])
    }

    /// Random layers (accumulator LSB, output type, Relu/Clip/Thresh/Requant
    /// after it): the compiled program equals the step-by-step
    /// epilogue on every value of the accumulator range's edges and inside.
    #[test]
    fn program_equals_the_steps() {
        let mut rng = SmallRng::seed_from_u64(11);
        let (mut tried, mut shaped, mut wrapped, mut folded) = (0, 0, 0, 0);
        for _ in 0..20_000 {
            let t = ty(&mut rng);
            let from = t.frac_bits() + rng.gen_range(-3..=12);
            let bits = rng.gen_range(2..=22);
            let (alo, ahi) = (-(1i64 << bits) + rng.gen_range(0..4), (1i64 << bits) - 1);
            let Some(rq) =
                Rq::new(from, t, alo as i128, ahi as i128).to_i32(alo as i128, ahi as i128)
            else {
                continue;
            };
            let mut epi = Vec::new();
            let (mut lo, mut hi) = rq.out_range();
            let mut cur = t;
            for _ in 0..rng.gen_range(0..3) {
                match rng.gen_range(0..4) {
                    0 => {
                        epi.push(Epi::Max0);
                        (lo, hi) = (lo.max(0), hi.max(0));
                    }
                    1 => {
                        let a = rng.gen_range(lo..=hi);
                        let b = rng.gen_range(a..=hi);
                        epi.push(Epi::Clamp(a as i32, b as i32));
                        (lo, hi) = (a, b);
                    }
                    2 => {
                        epi.push(Epi::Thresh(rng.gen_range(lo - 1..=hi) as i32));
                        (lo, hi) = (lo.min(0), hi.max(0));
                    }
                    _ => {
                        let nt = ty(&mut rng);
                        let Some(r) = Rq::new(cur.frac_bits(), nt, lo as i128, hi as i128)
                            .to_i32(lo as i128, hi as i128)
                        else {
                            continue;
                        };
                        epi.push(Epi::Rq(r));
                        (lo, hi) = r.out_range();
                        cur = nt;
                    }
                }
            }
            // The accumulator is bias + (dot << sl): one bias lane here.
            let sl = rng.gen_range(0..3u32);
            let bias = (alo + rng.gen_range(0..=((ahi - alo) >> sl).min(1 << 20))) as i32;
            let (dlo, dhi) = (
                (alo - bias as i64 + (1 << sl) - 1) >> sl,
                (ahi - bias as i64) >> sl,
            );
            if dlo > dhi {
                continue;
            }
            let arange = (bias as i64 + (dlo << sl), bias as i64 + (dhi << sl));
            let p = compile(&[bias], sl, arange, None, &rq, &epi);
            // The same program with its bias and a store offset (a u8 or
            // i16 lane offset, or none) moved into the initial accumulator
            // where they can be.
            let off = [0, 128, 32768, -32768, rng.gen_range(-300..300)][rng.gen_range(0..5)];
            let init0 = rng.gen_range(-9..9);
            let (mut f, mut init) = (p.clone(), [init0]);
            f.fold(&mut init, off);
            tried += 1;
            let mut dots: Vec<i64> = (0..16).map(|_| rng.gen_range(dlo..=dhi)).collect();
            dots.extend([dlo, dhi, dlo + 1, dhi - 1, 0]);
            for d in dots.into_iter().filter(|d| (dlo..=dhi).contains(d)) {
                let want = reference(bias, sl, d as i32, &rq, &epi);
                let mut a = [d as i32];
                p.apply(&mut a);
                assert_eq!(
                    a[0], want,
                    "dot {d}, bias {bias}, sl {sl}, rq {rq:?}, epi {epi:?}: {:?}",
                    p.ops
                );
                // The kernel adds the initial accumulator before the dot
                // product (and before a shift); here it started at `init0`.
                let acc = init[0].wrapping_sub(init0).wrapping_add(d as i32);
                let mut a = [acc];
                f.apply(&mut a);
                let want = want.wrapping_add(off);
                assert_eq!(a[0], want, "folded off {off}, dot {d}: {:?}", f.ops);
                if let Some(sh) = f.shape {
                    let v = sh.apply(acc).wrapping_add(f.off);
                    assert_eq!(v, want, "shape {sh:?} of {:?}", f.ops);
                    shaped += 1;
                    wrapped += usize::from(sh.wrap.is_some());
                    folded += usize::from(f.off == 0 && off != 0);
                }
            }
        }
        assert!(tried > 5_000, "{tried}");
        assert!(shaped > 1_000, "{shaped}");
        assert!(wrapped > 100, "{wrapped}");
        assert!(folded > 1_000, "{folded}");
    }

    /// The jet tagger's first layer: round to nearest with saturation, then
    /// Relu and a saturating requantization to the same LSB, become one
    /// bias add, one shift and one clamp.
    #[test]
    fn relu_layer_compiles_to_shift_and_clamp() {
        let out = FixedType::new(10, 7, true)
            .unwrap()
            .with_rounding(Rounding::Rnd)
            .with_overflow(Overflow::Sat);
        let relu = FixedType::new(9, 6, false)
            .unwrap()
            .with_rounding(Rounding::Rnd)
            .with_overflow(Overflow::Sat);
        let (alo, ahi) = (-(1i64 << 20), 1i64 << 20);
        let rq = Rq::new(10, out, alo as i128, ahi as i128)
            .to_i32(alo as i128, ahi as i128)
            .unwrap();
        let r2 = Rq::from_type(out.with_overflow(Overflow::Sat), relu)
            .to_i32(0, out.max_raw() as i128)
            .unwrap();
        let p = compile(
            &[5, -3],
            0,
            (alo, ahi),
            None,
            &rq,
            &[Epi::Max0, Epi::Rq(r2)],
        );
        assert_eq!(
            p.ops,
            vec![Op::AddBias, Op::Sra(7), Op::Max(0), Op::Min(511)]
        );
        assert_eq!(p.bias, vec![5 + 64, -3 + 64]);
        // Into the kernel's accumulators (starting at 1 and 2), with a u8
        // lane offset of 128 for the next layer.
        let (mut f, mut init) = (p.clone(), [1, 2]);
        f.fold(&mut init, 128);
        assert_eq!(f.ops, vec![Op::Sra(7), Op::Max(128), Op::Min(639)]);
        assert_eq!(init, [1 + 69 + (128 << 7), 2 + 61 + (128 << 7)]);
        assert_eq!(
            (f.off, f.shape.map(|s| (s.k, s.lo, s.hi))),
            (0, Some((7, 128, 639)))
        );
    }
}
