//! Running a compiled [`Plan`]: one event in the arena, or [`MULTI`] events
//! per pass (fused chains read each weight once per pass), each dispatched
//! once per ISA so that the compiler vectorises the scalar loops for it.

use super::mac::run_mac;
use super::types::{Bufs, Kernel, LayerKernel, Plan, Scratch, Step, PAD};
use crate::chain::Chain;
use crate::dense::MULTI;
use crate::isa::Isa;
use crate::rq::Rq;
use crate::scalar::{argmax, softmax64};
use crate::RawCodes;
use quantize::qmodel::{QModel, ROUTE_ZERO};

impl Plan {
    /// Whether some layers run as a fused chain (and batches go [`MULTI`] events at a time).
    pub fn has_chain(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.kernel, Kernel::Chain(_)))
    }

    /// What each MAC layer runs on (e.g. `avx512vnni u8xi8`, `general i128`;
    /// `+ fused` for layers in a fused chain, `fused` for elementwise layers
    /// folded into a Dense epilogue).
    pub fn describe(&self, model: &QModel) -> Vec<LayerKernel> {
        self.descs
            .iter()
            .zip(&self.operands)
            .zip(&model.layers)
            .map(|((d, &operand), l)| LayerKernel {
                layer: l.name.clone(),
                op: l.op.kind(),
                kernel: d.clone(),
                operand,
            })
            .collect()
    }

    /// Arena range of each graph input, in order.
    #[inline]
    pub fn input_ranges(&self) -> &[std::ops::Range<usize>] {
        &self.inputs
    }

    /// Arena range of each graph output, in order.
    #[inline]
    pub fn output_ranges(&self) -> &[std::ops::Range<usize>] {
        &self.outputs
    }

    /// Runs every layer; the input must already be in the arena.
    #[inline]
    pub fn run(&self, s: &mut Scratch) {
        if let Some(c) = self.direct_chain() {
            // The chain runs its own ISA-specific code: no dispatch needed.
            // Tensors are laid out in order: the input before the output.
            let t = self.offs.len() - 1;
            let (x, y) = s.arena.split_at_mut(self.offs[t]);
            let x = &x[self.offs[0]..self.offs[0] + self.lens[0]];
            c.run(x, &mut y[..self.lens[t]], &mut s.b.cx, &mut s.b.cdot);
            return;
        }
        self.dispatch::<false>(s, None)
    }

    /// [`Plan::run`] for a [`Plan::direct_chain`], reading one event's raw
    /// codes straight from `raw` into the chain's lanes, without the i64
    /// staging; the output lands in `out` (the model's output, raw) or else
    /// in the arena. False, with nothing run,
    /// when a code lies outside `lo..=hi` (the staged path names it).
    #[inline]
    pub(crate) fn run_raw(
        &self,
        s: &mut Scratch,
        raw: RawCodes,
        lo: i64,
        hi: i64,
        out: Option<&mut [i64]>,
    ) -> bool {
        let c = self.direct_chain().expect("a plan that is one chain");
        let t = self.offs.len() - 1;
        let y = match out {
            Some(y) => {
                assert_eq!(y.len(), self.lens[t], "the plan's output length");
                y
            }
            None => &mut s.arena[self.offs[t]..self.offs[t] + self.lens[t]],
        };
        let (cx, dot) = (&mut s.b.cx, &mut s.b.cdot);
        match raw {
            RawCodes::I16(x) => c.run_checked(x, (lo, hi), y, cx, dot),
            RawCodes::I32(x) => c.run_checked(x, (lo, hi), y, cx, dot),
            RawCodes::I64(x) => c.run_checked(x, (lo, hi), y, cx, dot),
        }
    }

    /// Runs every layer for [`MULTI`] events whose inputs are already in
    /// their arenas (`Scratch::barena`, one `sizes.arena` stride each).
    #[inline]
    pub(crate) fn run_multi(&self, s: &mut Scratch) {
        self.dispatch::<true>(s, None)
    }

    /// [`Plan::run_multi`] for a [`Plan::direct_chain`], reading the
    /// [`MULTI`] events' raw codes straight from `raw` (already range
    /// checked), without the i64 staging.
    #[inline]
    pub(crate) fn run_multi_raw(&self, s: &mut Scratch, raw: RawCodes) {
        assert!(self.direct_chain().is_some() && raw.len() == MULTI * self.lens[0]);
        self.dispatch::<true>(s, Some(raw))
    }

    /// [`Plan::run_impl`] (`M` false) or [`Plan::run_multi_impl`] (`M`
    /// true), compiled once per ISA so that the compiler vectorises the
    /// requantization and elementwise loops with that ISA's instructions.
    #[inline(always)]
    fn dispatch<const M: bool>(&self, s: &mut Scratch, raw: Option<RawCodes>) {
        // SAFETY: the plan's ISA was checked available when it was compiled.
        unsafe {
            match self.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 | Isa::Avx512Vnni => self.run_avx512::<M>(s, raw),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => self.run_avx2::<M>(s, raw),
                _ => self.run_any::<M>(s, raw),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,bmi2")]
    unsafe fn run_avx512<const M: bool>(&self, s: &mut Scratch, raw: Option<RawCodes>) {
        self.run_any::<M>(s, raw)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi2")]
    unsafe fn run_avx2<const M: bool>(&self, s: &mut Scratch, raw: Option<RawCodes>) {
        self.run_any::<M>(s, raw)
    }

    #[inline(always)]
    fn run_any<const M: bool>(&self, s: &mut Scratch, raw: Option<RawCodes>) {
        if M {
            self.run_multi_impl(s, raw)
        } else {
            self.run_impl(s)
        }
    }

    #[inline(always)]
    fn run_impl(&self, s: &mut Scratch) {
        for st in &self.steps {
            self.exec_step(st, &mut s.arena, &mut s.b);
        }
    }

    /// The chain that is the whole plan (model input to model output), if
    /// it is: batches then skip the arena, inputs at `barena[..MULTI * in]`
    /// and outputs right after (see [`crate::Engine::infer_batch_with`]).
    #[inline]
    pub(crate) fn direct_chain(&self) -> Option<&Chain> {
        match self.steps.first() {
            Some(Step {
                kernel: Kernel::Chain(c),
                ..
            }) if self.direct => Some(c),
            _ => None,
        }
    }

    /// [`Plan::direct_chain`]'s test, on the plan as built.
    pub(super) fn whole_chain(&self) -> bool {
        let [st] = self.steps.as_slice() else {
            return false;
        };
        let last = self.offs.len() - 1;
        self.inputs.len() == 1
            && st.inputs == [0]
            && st.out == last
            && matches!(self.outputs.as_slice(), [o] if o.start == self.offs[last] && o.len() == self.lens[last])
            && matches!(st.kernel, Kernel::Chain(_))
    }

    #[inline(always)]
    fn run_multi_impl(&self, s: &mut Scratch, raw: Option<RawCodes>) {
        if let Some(c) = self.direct_chain() {
            let (il, ol) = (self.lens[0], self.lens[self.offs.len() - 1]);
            let (x, y) = s.barena.split_at_mut(MULTI * il);
            match raw {
                None => c.pack_multi(x, il, &mut s.b.cx),
                Some(RawCodes::I16(r)) => c.pack_multi(r, il, &mut s.b.cx),
                Some(RawCodes::I32(r)) => c.pack_multi(r, il, &mut s.b.cx),
                Some(RawCodes::I64(r)) => c.pack_multi(r, il, &mut s.b.cx),
            }
            c.run_packed_multi(y, ol, ol, &mut s.b.cx, &mut s.b.cdot);
            return;
        }
        let a = self.sizes.arena;
        for st in &self.steps {
            match &st.kernel {
                Kernel::Chain(c) => {
                    let (xo, yo) = (self.offs[st.inputs[0]], self.offs[st.out]);
                    c.pack_multi(&s.barena[xo..], a, &mut s.b.cx);
                    let y = &mut s.barena[yo..];
                    c.run_packed_multi(y, a, self.lens[st.out], &mut s.b.cx, &mut s.b.cdot);
                }
                _ => {
                    for e in 0..MULTI {
                        self.exec_step(st, &mut s.barena[e * a..(e + 1) * a], &mut s.b);
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn exec_step(&self, st: &Step, arena: &mut [i64], s: &mut Bufs) {
        {
            let out_off = self.offs[st.out];
            let out_len = self.lens[st.out];
            let in_off = self.offs[st.inputs[0]];
            let in_len = self.lens[st.inputs[0]];
            // Inputs precede the output in the arena (topological order).
            let (lo, hi) = arena.split_at_mut(out_off);
            let y = &mut hi[..out_len];
            let x = &lo[in_off..in_off + in_len];
            match &st.kernel {
                Kernel::Chain(c) => c.run(x, y, &mut s.cx, &mut s.cdot),
                Kernel::Mac(m) => {
                    run_mac(m, x, y, &mut s.dot, &mut s.xpack, &mut s.col, &mut s.acc)
                }
                Kernel::Conv(groups) => {
                    let per = out_len / groups.len().max(1);
                    for (g, m) in groups.iter().enumerate() {
                        let y = &mut y[g * per..(g + 1) * per];
                        run_mac(m, x, y, &mut s.dot, &mut s.xpack, &mut s.col, &mut s.acc)
                    }
                }
                Kernel::Scale {
                    scale,
                    shift_al,
                    layout,
                    acc_ty,
                    out_ty,
                } => {
                    let af = layout.acc_frac;
                    for i in 0..out_len {
                        let sum = shift_al[i] + layout.product(scale[i] as i128 * x[i] as i128);
                        let a = acc_ty.quantize_raw(sum, af);
                        y[i] = out_ty.quantize_raw(a as i128, af);
                    }
                }
                Kernel::Relu(rq) => {
                    for (d, &v) in y.iter_mut().zip(x) {
                        *d = v.max(0);
                    }
                    rq.apply_inplace(y);
                }
                Kernel::Clip(a, b, rq) => {
                    for (d, &v) in y.iter_mut().zip(x) {
                        *d = v.clamp(*a, *b);
                    }
                    rq.apply_inplace(y);
                }
                Kernel::Thresh(th, rq) => {
                    for (d, &v) in y.iter_mut().zip(x) {
                        *d = if v > *th { v } else { 0 };
                    }
                    rq.apply_inplace(y);
                }
                Kernel::Requant(rq) => rq.apply_slice(x, y),
                Kernel::Leaky {
                    alpha,
                    pos,
                    neg,
                    neg_wide,
                } => {
                    for i in 0..out_len {
                        let v = x[i];
                        y[i] = if v >= 0 {
                            pos.apply(v)
                        } else if *neg_wide {
                            match neg {
                                Rq::Slow { ty, from } => {
                                    ty.quantize_raw(v as i128 * alpha[i] as i128, *from)
                                }
                                Rq::Fast(_) => unreachable!(),
                            }
                        } else {
                            neg.apply(v * alpha[i])
                        };
                    }
                }
                Kernel::Table(t) => {
                    for (d, &v) in y.iter_mut().zip(x) {
                        *d = t.lookup(v);
                    }
                }
                // A compare-and-count per element, the sets walked in step
                // with the elements (no division per element).
                Kernel::Step { th, vals, k } => {
                    let (k, sets) = (*k, vals.len() - th.len());
                    let count =
                        |t: &[i64], v: i64| t.iter().map(|&t| (v >= t) as usize).sum::<usize>();
                    if k == 0 {
                        for (i, d) in y.iter_mut().enumerate() {
                            *d = vals[i % sets];
                        }
                    } else if sets == 1 {
                        for (d, &v) in y.iter_mut().zip(x) {
                            *d = vals[count(th, v)];
                        }
                    } else {
                        for (run, xr) in y.chunks_mut(sets).zip(x.chunks(sets)) {
                            let sets = th.chunks(k).zip(vals.chunks(k + 1));
                            for ((d, &v), (t, vs)) in run.iter_mut().zip(xr).zip(sets) {
                                *d = vs[count(t, v)];
                            }
                        }
                    }
                }
                Kernel::Softmax {
                    n,
                    exp_table,
                    inv_table,
                    pf,
                    out_ty,
                    fast,
                } => {
                    if let Some(rq) = fast {
                        return softmax64(x, y, *n, exp_table, inv_table, rq, false);
                    }
                    for (g, yg) in x.chunks(*n).zip(y.chunks_mut(*n)) {
                        let m = *g.iter().max().expect("non-empty group");
                        let mut sum = 0i128;
                        for (e, &v) in yg.iter_mut().zip(g) {
                            *e = exp_table.lookup(v - m);
                            sum += *e as i128;
                        }
                        let r =
                            inv_table.lookup(sum.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
                        for e in yg.iter_mut() {
                            *e = out_ty.quantize_raw(*e as i128 * r as i128, *pf);
                        }
                    }
                }
                Kernel::Argmax { n, one } => argmax(x, y, *n, *one),
                Kernel::Pool {
                    max,
                    channels,
                    in_pos,
                    ksz,
                    taps,
                    recip,
                    frac,
                    out_ty,
                } => {
                    let outp = taps.len() / ksz.max(&1);
                    for c in 0..*channels {
                        let xc = &x[c * in_pos..(c + 1) * in_pos];
                        for p in 0..outp {
                            let t = &taps[p * ksz..(p + 1) * ksz];
                            let v = if *max {
                                let m = t
                                    .iter()
                                    .filter(|&&q| q != PAD)
                                    .map(|&q| xc[q as usize])
                                    .max()
                                    .unwrap_or(0);
                                m as i128
                            } else {
                                let (mut sum, mut cnt) = (0i128, 0usize);
                                for &q in t.iter().filter(|&&q| q != PAD) {
                                    sum += xc[q as usize] as i128;
                                    cnt += 1;
                                }
                                sum * recip[cnt] as i128
                            };
                            y[c * outp + p] = out_ty.quantize_raw(v, *frac);
                        }
                    }
                }
                Kernel::Binary { op, fa, fb, rq } => {
                    let b_off = self.offs[st.inputs[1]];
                    let b = &lo[b_off..b_off + out_len];
                    match rq {
                        // The range proof behind `Fast` keeps results in i64.
                        Rq::Fast(f) => {
                            for i in 0..out_len {
                                y[i] = f.apply(op.exact(x[i], *fa, b[i], *fb) as i64);
                            }
                        }
                        Rq::Slow { ty, from } => {
                            for i in 0..out_len {
                                y[i] = ty.quantize_raw(op.exact(x[i], *fa, b[i], *fb), *from);
                            }
                        }
                    }
                }
                Kernel::Route { src, rq } => {
                    for (d, &(k, j)) in y.iter_mut().zip(src) {
                        *d = if k == ROUTE_ZERO {
                            0
                        } else {
                            let v = lo[self.offs[st.inputs[k as usize]] + j as usize];
                            match rq {
                                Some(rq) => rq[k as usize].apply(v),
                                None => v,
                            }
                        };
                    }
                }
            }
        }
    }
}
