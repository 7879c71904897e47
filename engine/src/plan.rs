//! The execution plan: one kernel per layer, chosen and packed at load time.
//!
//! Every tensor lives in one i64 arena of a per-thread [`Scratch`]. Dense and
//! Conv layers run an i32 dot-product kernel ([`crate::dense`]) when the plan
//! proves the exact dot product fits in i32, followed by an exact integer
//! requantization ([`crate::rq`]); otherwise (wide types, or an accumulator
//! coarser than the product LSB, where each product is rounded on its own)
//! the general path evaluates the golden rules in i128. All other ops are
//! small scalar loops that follow `quantize::golden` rule for rule.
//!
//! After compiling one kernel per layer, runs of SIMD Dense layers and the
//! elementwise ops between them are fused ([`crate::chain`]): activations
//! stay in i16/u8 lanes, bias + requant + Relu/Clip run on i32 lanes in the
//! dot kernel's epilogue, a final Softmax (when its i64 path is exact) or
//! Argmax runs on the last layer's i32 outputs, and only the run's last
//! tensor reaches the i64 arena. Batches go [`MULTI`] events per pass over
//! the weights (`Plan::run_multi`). `BXFLOW_FUSE=0` disables fusion (for
//! comparisons).

use crate::chain::{Chain, ChainLayer, Tail};
use crate::dense::{xpack_len, Operand, PackedDense, MULTI};
use crate::epi::Epi;
use crate::isa::Isa;
use crate::rq::{FastRq, Rq};
use quantize::fixed::{FixedType, Rounding};
use quantize::golden::round_to_lsb;
use quantize::qmodel::{PoolKind, QModel, QOp, Table, Window};

const PAD: u32 = u32::MAX;

/// Per-thread working memory for [`crate::Engine::infer_with`]: allocated
/// once, reused for every event.
#[derive(Default, Debug)]
pub struct Scratch {
    pub(crate) arena: Vec<i64>,
    /// [`MULTI`] arenas back to back (multi-event batches).
    pub(crate) barena: Vec<i64>,
    b: Bufs,
}

#[derive(Default, Debug)]
struct Bufs {
    dot: Vec<i32>,
    xpack: Vec<u16>,
    col: Vec<i64>,
    acc: Vec<i64>,
    /// Packed lane buffers of fused chains (ping-pong, MULTI events).
    cx: Vec<u16>,
    /// Dot buffers of fused chains (MULTI events).
    cdot: Vec<i32>,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sizes {
    pub(crate) arena: usize,
    dot: usize,
    xpack: usize,
    col: usize,
    acc: usize,
    cx: usize,
    cdot: usize,
}

impl Scratch {
    #[inline]
    pub(crate) fn ensure(&mut self, s: &Sizes) {
        fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) {
            if v.len() < n {
                v.resize(n, T::default());
            }
        }
        grow(&mut self.arena, s.arena);
        grow(&mut self.b.dot, s.dot);
        grow(&mut self.b.xpack, s.xpack);
        grow(&mut self.b.col, s.col);
        grow(&mut self.b.acc, s.acc);
        grow(&mut self.b.cx, s.cx);
        grow(&mut self.b.cdot, s.cdot);
    }

    /// Also sizes the multi-event arenas.
    pub(crate) fn ensure_multi(&mut self, s: &Sizes) {
        self.ensure(s);
        if self.barena.len() < MULTI * s.arena {
            self.barena.resize(MULTI * s.arena, 0);
        }
    }
}

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per layer, built once
enum MacPath {
    Fast {
        k: PackedDense,
        bias_al: Vec<i64>,
        sl: u32,
        /// Accumulator overflow, when not proven a no-op: (type, its frac).
        acc: Option<(FixedType, i32)>,
        rq: Rq,
        /// Range of the exact dot product and of the accumulator (bias included).
        drange: (i128, i128),
        arange: (i128, i128),
    },
    General {
        weights: Vec<i64>,
        bias: Vec<i64>,
        pf: i32,
        bf: i32,
        acc_ty: FixedType,
        out_ty: FixedType,
    },
}

#[derive(Clone, Debug)]
struct Mac {
    n_in: usize,
    n_out: usize,
    positions: usize,
    /// Conv: input index for `[position][n_in]`, `PAD` for zero padding.
    gather: Vec<u32>,
    path: MacPath,
}

#[derive(Clone, Debug)]
enum Kernel {
    Mac(Box<Mac>),
    Scale {
        scale: Vec<i64>,
        shift_al: Vec<i128>,
        pf: i32,
        acc_ty: FixedType,
        out_ty: FixedType,
    },
    Relu(Rq),
    Clip(i64, i64, Rq),
    Thresh(i64, Rq),
    Requant(Rq),
    Leaky {
        alpha: Vec<i64>,
        pos: Rq,
        neg: Rq,
        neg_wide: bool,
    },
    Table(Table),
    Step(Vec<i64>, Vec<i64>),
    Softmax {
        n: usize,
        exp_table: Table,
        inv_table: Table,
        pf: i32,
        out_ty: FixedType,
        /// i64 path (no i128), when proven exact: the final requantizer.
        fast: Option<FastRq>,
    },
    Argmax {
        n: usize,
        one: i64,
    },
    Pool {
        max: bool,
        channels: usize,
        in_pos: usize,
        ksz: usize,
        taps: Vec<u32>,
        recip: Vec<i64>,
        frac: i32,
        out_ty: FixedType,
    },
    Add {
        fa: i32,
        fb: i32,
        f: i32,
        out_ty: FixedType,
    },
    Route {
        src: Vec<(u16, u32)>,
        rq: Vec<Rq>,
    },
    /// Fused Dense + elementwise run ([`crate::chain`]).
    Chain(Box<Chain>),
}

#[derive(Clone, Debug)]
struct Step {
    inputs: Vec<usize>,
    out: usize,
    kernel: Kernel,
}

/// A compiled model for one instruction set.
#[derive(Clone, Debug)]
pub struct Plan {
    pub isa: Isa,
    steps: Vec<Step>,
    /// Arena offset of each tensor.
    offs: Vec<usize>,
    lens: Vec<usize>,
    pub(crate) sizes: Sizes,
    /// Kernel description of each model layer.
    descs: Vec<String>,
}

/// How each MAC layer was compiled, for reports and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerKernel {
    pub layer: String,
    pub op: &'static str,
    pub kernel: String,
}

fn conv_gather(w: &Window) -> Vec<u32> {
    let (cin, ksz, inp, outp) = (
        w.in_channels,
        w.kernel_size(),
        w.in_positions(),
        w.out_positions(),
    );
    let mut g = Vec::with_capacity(outp * cin * ksz);
    for p in 0..outp {
        for ic in 0..cin {
            for k in 0..ksz {
                g.push(match w.tap(p, k) {
                    Some(q) => (ic * inp + q) as u32,
                    None => PAD,
                });
            }
        }
    }
    g
}

#[allow(clippy::too_many_arguments)]
fn compile_mac(
    isa: Isa,
    x_ty: FixedType,
    n_in: usize,
    n_out: usize,
    positions: usize,
    gather: Vec<u32>,
    weights: &[i64],
    w_ty: FixedType,
    bias: &[i64],
    b_ty: FixedType,
    acc_ty: FixedType,
    out_ty: FixedType,
) -> Mac {
    let pf = x_ty.frac_bits() + w_ty.frac_bits();
    let bf = b_ty.frac_bits();
    let af = acc_ty.frac_bits();
    let general = MacPath::General {
        weights: weights.to_vec(),
        bias: bias.to_vec(),
        pf,
        bf,
        acc_ty,
        out_ty,
    };
    let mk = |path| Mac {
        n_in,
        n_out,
        positions,
        gather: gather.clone(),
        path,
    };
    // Products rounded one by one, or shifted far: general path.
    if af < pf || af - pf > 30 {
        return mk(general);
    }
    let sl = (af - pf) as u32;
    let (xlo, xhi) = (x_ty.min_raw().min(0), x_ty.max_raw().max(0));
    let lim32 = (i32::MIN as i128, i32::MAX as i128);
    let mut bias_al = Vec::with_capacity(n_out);
    let (mut alo, mut ahi) = (i128::MAX, i128::MIN);
    let (mut dlo, mut dhi) = (0i128, 0i128);
    for o in 0..n_out {
        let (mut lo, mut hi) = (0i128, 0i128);
        for &w in &weights[o * n_in..(o + 1) * n_in] {
            let (p, q) = (w as i128 * xlo as i128, w as i128 * xhi as i128);
            lo += p.min(q);
            hi += p.max(q);
        }
        if lo < lim32.0 || hi > lim32.1 {
            return mk(general);
        }
        let b = round_to_lsb(bias[o] as i128, bf, af, acc_ty.rounding);
        if b.abs() > 1i128 << 61 {
            return mk(general);
        }
        bias_al.push(b as i64);
        dlo = dlo.min(lo);
        dhi = dhi.max(hi);
        alo = alo.min(b + (lo << sl));
        ahi = ahi.max(b + (hi << sl));
    }
    if n_out == 0 {
        (alo, ahi) = (0, 0);
    }
    let Some(k) = PackedDense::new(weights, n_in, n_out, isa, xlo, xhi) else {
        return mk(general);
    };
    let arange = (alo, ahi);
    let acc = if alo >= acc_ty.min_raw() as i128 && ahi <= acc_ty.max_raw() as i128 {
        None
    } else {
        (alo, ahi) = (acc_ty.min_raw() as i128, acc_ty.max_raw() as i128);
        Some((acc_ty, af))
    };
    let rq = Rq::new(af, out_ty, alo, ahi);
    mk(MacPath::Fast {
        k,
        bias_al,
        sl,
        acc,
        rq,
        drange: (dlo, dhi),
        arange,
    })
}

impl Plan {
    pub fn compile(model: &QModel, isa: Isa) -> Result<Plan, String> {
        let nt = model.layers.len() + 1;
        let mut offs = Vec::with_capacity(nt);
        let mut lens = Vec::with_capacity(nt);
        let mut arena = 0usize;
        for t in 0..nt {
            offs.push(arena);
            let n = model.tensor_len(t);
            lens.push(n);
            arena += n.div_ceil(8) * 8;
        }
        let mut sizes = Sizes {
            arena,
            ..Sizes::default()
        };
        let mut steps = Vec::with_capacity(model.layers.len());
        for (li, layer) in model.layers.iter().enumerate() {
            let out = li + 1;
            for &i in &layer.inputs {
                if i > li {
                    return Err(format!(
                        "layer {li} '{}' reads tensor {i}, which is not computed before it",
                        layer.name
                    ));
                }
            }
            let need = |k: usize| -> Result<usize, String> {
                layer.inputs.get(k).copied().ok_or_else(|| {
                    format!(
                        "layer {li} '{}' ({}) needs input {k}",
                        layer.name,
                        layer.op.kind()
                    )
                })
            };
            let t0 = need(0)?;
            let in_ty = model.ty(t0);
            let out_ty = layer.ty;
            let out_len = lens[out];
            let kernel = match &layer.op {
                QOp::Dense {
                    n_in,
                    n_out,
                    weights,
                    w_ty,
                    bias,
                    b_ty,
                    acc_ty,
                } => {
                    if weights.len() != n_in * n_out
                        || bias.len() != *n_out
                        || lens[t0] != *n_in
                        || out_len != *n_out
                    {
                        return Err(format!(
                            "layer {li} '{}': inconsistent Dense sizes",
                            layer.name
                        ));
                    }
                    sizes.dot = sizes.dot.max(n_out.div_ceil(16) * 16);
                    sizes.xpack = sizes.xpack.max(xpack_len(*n_in));
                    sizes.acc = sizes.acc.max(*n_out);
                    Kernel::Mac(Box::new(compile_mac(
                        isa,
                        in_ty,
                        *n_in,
                        *n_out,
                        1,
                        Vec::new(),
                        weights,
                        *w_ty,
                        bias,
                        *b_ty,
                        *acc_ty,
                        out_ty,
                    )))
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
                    let n_in = window.in_channels * window.kernel_size();
                    let positions = window.out_positions();
                    if weights.len() != n_in * out_channels
                        || bias.len() != *out_channels
                        || lens[t0] != window.in_channels * window.in_positions()
                        || out_len != out_channels * positions
                    {
                        return Err(format!(
                            "layer {li} '{}': inconsistent Conv sizes",
                            layer.name
                        ));
                    }
                    sizes.dot = sizes.dot.max(out_channels.div_ceil(16) * 16);
                    sizes.xpack = sizes.xpack.max(xpack_len(n_in));
                    sizes.col = sizes.col.max(n_in);
                    sizes.acc = sizes.acc.max(*out_channels);
                    Kernel::Mac(Box::new(compile_mac(
                        isa,
                        in_ty,
                        n_in,
                        *out_channels,
                        positions,
                        conv_gather(window),
                        weights,
                        *w_ty,
                        bias,
                        *b_ty,
                        *acc_ty,
                        out_ty,
                    )))
                }
                QOp::Scale {
                    scale,
                    s_ty,
                    shift,
                    b_ty,
                    acc_ty,
                } => {
                    if scale.len() != out_len || shift.len() != out_len || lens[t0] != out_len {
                        return Err(format!(
                            "layer {li} '{}': inconsistent Scale sizes",
                            layer.name
                        ));
                    }
                    let af = acc_ty.frac_bits();
                    Kernel::Scale {
                        scale: scale.clone(),
                        shift_al: shift
                            .iter()
                            .map(|&b| {
                                round_to_lsb(b as i128, b_ty.frac_bits(), af, acc_ty.rounding)
                            })
                            .collect(),
                        pf: in_ty.frac_bits() + s_ty.frac_bits(),
                        acc_ty: *acc_ty,
                        out_ty,
                    }
                }
                QOp::Relu => Kernel::Relu(Rq::from_type(in_ty, out_ty)),
                QOp::Clip { lo, hi } => Kernel::Clip(*lo, *hi, Rq::from_type(in_ty, out_ty)),
                QOp::ThresholdedRelu { theta } => {
                    Kernel::Thresh(*theta, Rq::from_type(in_ty, out_ty))
                }
                QOp::Requant => Kernel::Requant(Rq::from_type(in_ty, out_ty)),
                QOp::LeakyRelu { alpha, a_ty } => {
                    leaky(vec![*alpha; out_len], *a_ty, in_ty, out_ty)
                }
                QOp::PRelu { alpha, a_ty } => {
                    if alpha.len() != out_len {
                        return Err(format!("layer {li} '{}': PRelu slope count", layer.name));
                    }
                    leaky(alpha.clone(), *a_ty, in_ty, out_ty)
                }
                QOp::Table { table, .. } => {
                    if table.values.is_empty() {
                        return Err(format!("layer {li} '{}': empty table", layer.name));
                    }
                    Kernel::Table(table.clone())
                }
                QOp::Step { thresholds, values } => {
                    if values.len() != thresholds.len() + 1 {
                        return Err(format!(
                            "layer {li} '{}': Step needs thresholds + 1 values",
                            layer.name
                        ));
                    }
                    Kernel::Step(thresholds.clone(), values.clone())
                }
                QOp::Softmax {
                    n,
                    exp_ty,
                    exp_table,
                    inv_ty,
                    inv_table,
                } => {
                    if *n == 0 || exp_table.values.is_empty() || inv_table.values.is_empty() {
                        return Err(format!("layer {li} '{}': bad Softmax", layer.name));
                    }
                    sizes.acc = sizes.acc.max(*n);
                    let pf = exp_ty.frac_bits() + inv_ty.frac_bits();
                    Kernel::Softmax {
                        n: *n,
                        exp_table: exp_table.clone(),
                        inv_table: inv_table.clone(),
                        pf,
                        out_ty,
                        fast: softmax_fast(in_ty, *n, exp_table, inv_table, pf, out_ty),
                    }
                }
                QOp::Argmax { n } => {
                    if *n == 0 {
                        return Err(format!("layer {li} '{}': Argmax n = 0", layer.name));
                    }
                    Kernel::Argmax {
                        n: *n,
                        one: out_ty.quantize_raw(1, 0),
                    }
                }
                QOp::Pool {
                    kind,
                    window,
                    recip,
                    recip_ty,
                } => {
                    let ksz = window.kernel_size();
                    let outp = window.out_positions();
                    let mut taps = Vec::with_capacity(outp * ksz);
                    for p in 0..outp {
                        for k in 0..ksz {
                            taps.push(window.tap(p, k).map(|q| q as u32).unwrap_or(PAD));
                        }
                    }
                    if *kind == PoolKind::Average && recip.len() <= ksz {
                        return Err(format!(
                            "layer {li} '{}': Pool needs kernel + 1 reciprocals",
                            layer.name
                        ));
                    }
                    Kernel::Pool {
                        max: *kind == PoolKind::Max,
                        channels: window.in_channels,
                        in_pos: window.in_positions(),
                        ksz,
                        taps,
                        recip: recip.clone(),
                        frac: match kind {
                            PoolKind::Max => in_ty.frac_bits(),
                            PoolKind::Average => in_ty.frac_bits() + recip_ty.frac_bits(),
                        },
                        out_ty,
                    }
                }
                QOp::Add => {
                    let t1 = need(1)?;
                    let tb = model.ty(t1);
                    Kernel::Add {
                        fa: in_ty.frac_bits(),
                        fb: tb.frac_bits(),
                        f: in_ty.frac_bits().max(tb.frac_bits()),
                        out_ty,
                    }
                }
                QOp::Route { src } => {
                    let mut rq = Vec::new();
                    for &t in &layer.inputs {
                        rq.push(Rq::from_type(model.ty(t), out_ty));
                    }
                    for &(k, j) in src {
                        let t = need(k as usize)?;
                        if j as usize >= lens[t] {
                            return Err(format!(
                                "layer {li} '{}': Route reads past tensor {t}",
                                layer.name
                            ));
                        }
                    }
                    Kernel::Route {
                        src: src.clone(),
                        rq,
                    }
                }
            };
            steps.push(Step {
                inputs: layer.inputs.clone(),
                out,
                kernel,
            });
        }
        let mut descs: Vec<String> = steps.iter().map(describe_kernel(isa)).collect();
        let steps = if fuse_enabled() {
            fuse(model, steps, &mut sizes, &mut descs)
        } else {
            steps
        };
        Ok(Plan {
            isa,
            steps,
            offs,
            lens,
            sizes,
            descs,
        })
    }

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
            .zip(&model.layers)
            .map(|(d, l)| LayerKernel {
                layer: l.name.clone(),
                op: l.op.kind(),
                kernel: d.clone(),
            })
            .collect()
    }

    #[inline]
    pub fn input_range(&self) -> std::ops::Range<usize> {
        self.offs[0]..self.offs[0] + self.lens[0]
    }

    #[inline]
    pub fn output_range(&self) -> std::ops::Range<usize> {
        let t = self.offs.len() - 1;
        self.offs[t]..self.offs[t] + self.lens[t]
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
        self.dispatch::<false>(s, &[])
    }

    /// Runs every layer for [`MULTI`] events whose inputs are already in
    /// their arenas (`Scratch::barena`, one `sizes.arena` stride each).
    #[inline]
    pub(crate) fn run_multi(&self, s: &mut Scratch) {
        self.dispatch::<true>(s, &[])
    }

    /// [`Plan::run_multi`] for a [`Plan::direct_chain`], reading the
    /// [`MULTI`] events' raw codes straight from `raw16` (already range
    /// checked: the pipeline's narrowed batches), without the i64 staging.
    #[inline]
    pub(crate) fn run_multi_raw16(&self, s: &mut Scratch, raw16: &[i16]) {
        assert!(self.direct_chain().is_some() && raw16.len() == MULTI * self.lens[0]);
        self.dispatch::<true>(s, raw16)
    }

    /// [`Plan::run_impl`] (`M` false) or [`Plan::run_multi_impl`] (`M`
    /// true), compiled once per ISA so that the compiler vectorises the
    /// requantization and elementwise loops with that ISA's instructions.
    #[inline(always)]
    fn dispatch<const M: bool>(&self, s: &mut Scratch, raw16: &[i16]) {
        // SAFETY: the plan's ISA was checked available when it was compiled.
        unsafe {
            match self.isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 | Isa::Avx512Vnni => self.run_avx512::<M>(s, raw16),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => self.run_avx2::<M>(s, raw16),
                _ => self.run_any::<M>(s, raw16),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,bmi2")]
    unsafe fn run_avx512<const M: bool>(&self, s: &mut Scratch, raw16: &[i16]) {
        self.run_any::<M>(s, raw16)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi2")]
    unsafe fn run_avx2<const M: bool>(&self, s: &mut Scratch, raw16: &[i16]) {
        self.run_any::<M>(s, raw16)
    }

    #[inline(always)]
    fn run_any<const M: bool>(&self, s: &mut Scratch, raw16: &[i16]) {
        if M {
            self.run_multi_impl(s, raw16)
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
        match self.steps.as_slice() {
            [st] if st.inputs == [0] && st.out == self.offs.len() - 1 => match &st.kernel {
                Kernel::Chain(c) => Some(c),
                _ => None,
            },
            _ => None,
        }
    }

    #[inline(always)]
    fn run_multi_impl(&self, s: &mut Scratch, raw16: &[i16]) {
        if let Some(c) = self.direct_chain() {
            let (il, ol) = (self.lens[0], self.lens[self.offs.len() - 1]);
            let (x, y) = s.barena.split_at_mut(MULTI * il);
            if raw16.is_empty() {
                c.pack_multi(x, il, &mut s.b.cx);
            } else {
                c.pack_multi(raw16, il, &mut s.b.cx);
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
                Kernel::Scale {
                    scale,
                    shift_al,
                    pf,
                    acc_ty,
                    out_ty,
                } => {
                    let af = acc_ty.frac_bits();
                    for i in 0..out_len {
                        let sum = shift_al[i]
                            + round_to_lsb(
                                scale[i] as i128 * x[i] as i128,
                                *pf,
                                af,
                                acc_ty.rounding,
                            );
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
                Kernel::Step(th, vals) => {
                    for (d, &v) in y.iter_mut().zip(x) {
                        *d = vals[th.iter().filter(|&&t| v >= t).count()];
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
                        return softmax64(x, y, *n, exp_table, inv_table, rq);
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
                Kernel::Add { fa, fb, f, out_ty } => {
                    let b_off = self.offs[st.inputs[1]];
                    let b = &lo[b_off..b_off + out_len];
                    for i in 0..out_len {
                        let s = round_to_lsb(x[i] as i128, *fa, *f, Rounding::Trn)
                            + round_to_lsb(b[i] as i128, *fb, *f, Rounding::Trn);
                        y[i] = out_ty.quantize_raw(s, *f);
                    }
                }
                Kernel::Route { src, rq } => {
                    for (d, &(k, j)) in y.iter_mut().zip(src) {
                        let t = st.inputs[k as usize];
                        *d = rq[k as usize].apply(lo[self.offs[t] + j as usize]);
                    }
                }
            }
        }
    }
}

/// Softmax over groups of `n` values of `x` on the i64 path that
/// [`softmax_fast`] proved exact for the input type's range (`rq` is its
/// requantizer). Shared by the Softmax step and a fused chain's tail.
#[inline(always)]
pub(crate) fn softmax64<T: Copy + Ord + Into<i64>>(
    x: &[T],
    y: &mut [i64],
    n: usize,
    exp_table: &Table,
    inv_table: &Table,
    rq: &FastRq,
) {
    // Indexed groups: `chunks(n)` with a run-time `n` costs two divisions.
    let mut i = 0;
    while i + n <= x.len().min(y.len()) {
        let (g, yg) = (&x[i..i + n], &mut y[i..i + n]);
        // By value: `iter().max()` tracks a reference and compiles to
        // data-dependent branches, which mispredict on every event.
        let m = g.iter().fold(i64::MIN, |m, &v| m.max(v.into()));
        let mut sum = 0i64;
        for (e, &v) in yg.iter_mut().zip(g) {
            *e = lookup64(exp_table, v.into() - m);
            sum += *e;
        }
        let r = lookup64(inv_table, sum);
        for e in yg.iter_mut() {
            *e = rq.apply(*e * r);
        }
        i += n;
    }
}

/// One-hot argmax (the first maximum) over groups of `n` values; `one` is 1
/// in the output type. Shared by the Argmax step and a fused chain's tail.
#[inline(always)]
pub(crate) fn argmax<T: Copy + Ord>(x: &[T], y: &mut [i64], n: usize, one: i64) {
    let mut i = 0;
    while i + n <= x.len().min(y.len()) {
        let (g, yg) = (&x[i..i + n], &mut y[i..i + n]);
        // Branch-free (selects, not jumps): the winner is data-dependent.
        let (mut best, mut bv) = (0, g[0]);
        for (k, &v) in g.iter().enumerate().skip(1) {
            let gt = v > bv;
            best = if gt { k } else { best };
            bv = if gt { v } else { bv };
        }
        yg.fill(0);
        yg[best] = one;
        i += n;
    }
}

/// `Table::lookup` in i64, for arguments the caller proved within +-2^62
/// (with the table's offset within +-2^61, `x - offset` cannot overflow).
#[inline(always)]
pub(crate) fn lookup64(t: &Table, x: i64) -> i64 {
    let d = (x - t.offset) >> t.shift.min(63);
    t.values[d.clamp(0, t.values.len() as i64 - 1) as usize]
}

/// The softmax's i64 requantizer, if the i64 path is exact: differences,
/// sums and products all provably stay within +-2^62.
fn softmax_fast(
    in_ty: FixedType,
    n: usize,
    exp_table: &Table,
    inv_table: &Table,
    pf: i32,
    out_ty: FixedType,
) -> Option<FastRq> {
    let lim = 1i128 << 61;
    if in_ty.width > 60 || exp_table.offset.unsigned_abs() as i128 > lim {
        return None;
    }
    if inv_table.offset.unsigned_abs() as i128 > lim {
        return None;
    }
    let ext = |t: &Table| {
        t.values.iter().fold((0i128, 0i128), |(a, b), &v| {
            (a.min(v as i128), b.max(v as i128))
        })
    };
    let (elo, ehi) = ext(exp_table);
    let (rlo, rhi) = ext(inv_table);
    let emax = elo.abs().max(ehi.abs());
    if emax * n as i128 > lim {
        return None;
    }
    let p = [elo * rlo, elo * rhi, ehi * rlo, ehi * rhi];
    let (plo, phi) = (*p.iter().min()?, *p.iter().max()?);
    if plo < -lim || phi > lim {
        return None;
    }
    match Rq::new(pf, out_ty, plo, phi) {
        Rq::Fast(f) => Some(f),
        Rq::Slow { .. } => None,
    }
}

/// `BXFLOW_FUSE=0` turns fusion off (to compare against the unfused plan).
fn fuse_enabled() -> bool {
    std::env::var("BXFLOW_FUSE").map_or(true, |v| v != "0")
}

fn describe_kernel(isa: Isa) -> impl Fn(&Step) -> String {
    move |s: &Step| match &s.kernel {
        Kernel::Mac(m) => match &m.path {
            MacPath::Fast { k, .. } => format!(
                "{} {}",
                isa,
                match k.operand {
                    Operand::I32 => "i32",
                    Operand::I16 => "i16xi16",
                    Operand::U8 => "u8xi8",
                }
            ),
            MacPath::General { .. } => "general i128".into(),
        },
        _ => "scalar".into(),
    }
}

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
    // Padded to whole 16-lane blocks for the AVX-512 epilogue.
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
/// per layer on entry (step `i` computes tensor `i + 1`).
fn fuse(model: &QModel, steps: Vec<Step>, sizes: &mut Sizes, descs: &mut [String]) -> Vec<Step> {
    let nt = model.layers.len() + 1;
    let mut readers = vec![0usize; nt];
    for l in &model.layers {
        for &t in &l.inputs {
            readers[t] += 1;
        }
    }
    readers[nt - 1] += 1; // the model output
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
        // Extend while the current tensor (last + 1) has one reader, the next layer.
        while let Some((nli, nst)) = it.peek() {
            let t = last + 1;
            if *nli != t || readers[t] != 1 || nst.inputs.as_slice() != [t] {
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
            let t = last + 1;
            if *nli == t && readers[t] == 1 && nst.inputs.as_slice() == [t] {
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
            out: last + 1,
            kernel: Kernel::Chain(Box::new(chain)),
        });
    }
    out
}

fn leaky(alpha: Vec<i64>, a_ty: FixedType, in_ty: FixedType, out_ty: FixedType) -> Kernel {
    let pf = in_ty.frac_bits() + a_ty.frac_bits();
    let (amin, amax) = alpha.iter().fold((0i128, 0i128), |(a, b), &v| {
        (a.min(v as i128), b.max(v as i128))
    });
    let xlo = in_ty.min_raw().min(0) as i128;
    let cands = [xlo * amin, xlo * amax, 0];
    let (plo, phi) = (*cands.iter().min().unwrap(), *cands.iter().max().unwrap());
    let lim = 1i128 << 62;
    let neg_wide = plo < -lim || phi > lim;
    let neg = if neg_wide {
        Rq::Slow {
            ty: out_ty,
            from: pf,
        }
    } else {
        Rq::new(pf, out_ty, plo, phi)
    };
    Kernel::Leaky {
        alpha,
        pos: Rq::from_type(in_ty, out_ty),
        neg,
        neg_wide,
    }
}

#[inline(always)]
fn run_mac(
    m: &Mac,
    x: &[i64],
    y: &mut [i64],
    dot: &mut [i32],
    xpack: &mut [u16],
    col: &mut [i64],
    accb: &mut [i64],
) {
    for p in 0..m.positions {
        let xin: &[i64] = if m.gather.is_empty() {
            x
        } else {
            let g = &m.gather[p * m.n_in..(p + 1) * m.n_in];
            for (c, &q) in col.iter_mut().zip(g) {
                *c = if q == PAD { 0 } else { x[q as usize] };
            }
            &col[..m.n_in]
        };
        match &m.path {
            MacPath::Fast {
                k,
                bias_al,
                sl,
                acc,
                rq,
                ..
            } => {
                k.run(xin, xpack, dot);
                let a = &mut accb[..m.n_out];
                let sl = *sl;
                for ((a, &b), &d) in a.iter_mut().zip(bias_al).zip(&dot[..m.n_out]) {
                    *a = b + ((d as i64) << sl);
                }
                if let Some((ty, af)) = acc {
                    for v in a.iter_mut() {
                        *v = ty.quantize_raw(*v as i128, *af);
                    }
                }
                if m.positions == 1 {
                    rq.apply_slice(a, &mut y[..m.n_out]);
                } else {
                    for o in 0..m.n_out {
                        y[o * m.positions + p] = rq.apply(a[o]);
                    }
                }
            }
            MacPath::General {
                weights,
                bias,
                pf,
                bf,
                acc_ty,
                out_ty,
            } => {
                let af = acc_ty.frac_bits();
                let r = acc_ty.rounding;
                for o in 0..m.n_out {
                    let row = &weights[o * m.n_in..(o + 1) * m.n_in];
                    let mut sum = round_to_lsb(bias[o] as i128, *bf, af, r);
                    if af >= *pf {
                        let mut d = 0i128;
                        for (&w, &v) in row.iter().zip(xin) {
                            d += w as i128 * v as i128;
                        }
                        sum += round_to_lsb(d, *pf, af, r);
                    } else {
                        for (&w, &v) in row.iter().zip(xin) {
                            sum += round_to_lsb(w as i128 * v as i128, *pf, af, r);
                        }
                    }
                    let a = acc_ty.quantize_raw(sum, af);
                    y[o * m.positions + p] = out_ty.quantize_raw(a as i128, af);
                }
            }
        }
    }
}
