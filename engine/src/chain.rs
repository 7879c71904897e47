//! Fused dense chains: a run of Dense layers (SIMD i16 or u8 operands) and
//! the elementwise ops between them (Relu, Clip, ThresholdedRelu, Requant),
//! executed without leaving the lane types, and optionally a final Softmax
//! or Argmax ([`Tail`]) run on the last layer's i32 outputs.
//!
//! For each Dense the dot kernel writes i32 lanes; the epilogue adds the
//! aligned bias, requantizes into the layer's type and applies the following
//! elementwise ops, all on i32 lanes, then packs the result straight into the
//! next Dense's lane format (`x + off` as i16 or u8). Only the chain's last
//! tensor is written to the i64 arena. Intermediate tensors of a chain have
//! no other reader (checked when fusing).
//!
//! Exactness: the plan fuses a Dense only if its whole accumulator range
//! (bias plus shifted dot product, from the weights and the input type's
//! range) and every requantization step provably fit i32
//! ([`crate::rq::Rq::to_i32`]); each elementwise op's requantizer is built
//! for its input type's full range. Every i32 step then equals the golden
//! i128 computation.

use crate::dense::{bytes, Operand, PackedDense, Seg, MULTI};
use crate::epi::{Epi, Program};
use crate::rq::{FastRq, FastRq32};
use crate::scalar::{argmax, softmax64};
use quantize::qmodel::Table;

/// A Dense or Conv layer of a chain as the plan fuses it: the kernel, then
/// `bias + (dot << sl)` (exact range `arange`), its requantizer and the
/// elementwise steps after it.
#[derive(Clone, Debug)]
pub(crate) struct ChainLayer {
    pub k: PackedDense,
    pub bias: Vec<i32>,
    pub sl: u32,
    pub arange: (i64, i64),
    /// The accumulator's overflow (wrap or saturation), when its type
    /// cannot hold `arange`.
    pub acc: Option<FastRq32>,
    pub rq: FastRq32,
    pub epi: Vec<Epi>,
    pub conv: Option<ConvShape>,
}

/// A layer of a built chain: the kernel, its compiled epilogue, for a
/// convolution where its inputs and outputs lie, and how its epilogue
/// stores: `kind` 0 as i32 (the chain's last layer), 1 narrowed to the
/// next layer's i16 lanes, 2 to its u8 lanes, each lane plus `prog.off`
/// (the next layer's lane offset, unless folded into the kernel's
/// initial accumulators).
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub k: PackedDense,
    pub prog: Program,
    pub conv: Option<ConvShape>,
    pub kind: u8,
    /// The single-event kernel of a Dense layer, chosen when the chain is
    /// built (`x86::one_kernel`).
    pub one: Option<OneFn>,
}

/// A layer's single-event kernel: packed input at `x`, its epilogue's
/// stores at `o`. The buffers hold whole 16-lane blocks (`Chain::scratch`).
pub(crate) type OneFn = unsafe fn(&Stage, *const u8, *mut u8);

/// A convolution in a chain, run as one dot product per output position
/// with no im2col: its input is a grid of `in_rows` rows (spatial
/// positions) of `cpad_in` lanes (its channels, padded to a multiple of 4
/// with lanes whose weights are 0), plus one more row that holds 0 (the
/// value of every zero-padding tap). The kernel's weights are packed in
/// `[tap][channel]` order, so that a stretch of taps reading adjacent rows
/// is one contiguous run of input groups ([`Seg`]). Its outputs are a grid
/// of `out_rows` rows of `cpad_out` lanes (the output channels rounded up
/// to 4), which the next convolution reads as its input grid and a Dense
/// reads flat (its weight columns permuted to match). The epilogue stores
/// whole 16-lane blocks: a row's last block spills into the next row,
/// which is written after it (rows go in order), and the last row's into
/// the zero row and beyond, which is rewritten after the layer.
#[derive(Clone, Debug)]
pub(crate) struct ConvShape {
    pub channels_in: usize,
    /// For the chain's head, the chain input's element each input lane
    /// holds (`src_len`: 0), set by [`ConvShape::gather`]; empty for a
    /// convolution whose grid the previous layer writes.
    pub src: Vec<u32>,
    /// Chain input elements the head reads (`src`'s largest index + 1).
    pub src_len: usize,
    /// The head reads the chain input as it lies, its first `src_len`
    /// elements in order (position-major, channels not padded), each
    /// window one run of elements ([`ConvShape::flat`]); `src` is unused.
    pub flat: bool,
    pub in_rows: usize,
    pub cpad_in: usize,
    pub out_rows: usize,
    pub cpad_out: usize,
    /// Position `p`'s runs are `segs[starts[p]..starts[p + 1]]`.
    pub segs: Vec<Seg>,
    pub starts: Vec<usize>,
}

impl ConvShape {
    /// The shape of a convolution of `channels_in` channels at `in_rows`
    /// positions whose output position `p` reads, for tap `t`, input
    /// position `taps[p][t]` (`None`: zero padding), packed as `k`.
    pub fn new(
        k: &PackedDense,
        channels_in: usize,
        in_rows: usize,
        cpad_in: usize,
        taps: &[Vec<Option<usize>>],
    ) -> ConvShape {
        let bytes = if k.operand == Operand::U8 { 1 } else { 2 };
        // Input groups (pairs or quads, 4 bytes) per row.
        let gpr = cpad_in * bytes / 4;
        let (mut segs, mut starts) = (Vec::new(), vec![0]);
        for row in taps {
            let mut t = 0;
            while t < row.len() {
                let q = row[t].unwrap_or(in_rows);
                // Extend while the next tap reads the next row.
                let mut n = 1;
                while t + n < row.len() && row[t + n].is_some() && row[t + n] == Some(q + n) {
                    n += 1;
                }
                segs.push(Seg {
                    w: t * gpr,
                    x: q * gpr * 4,
                    n: n * gpr,
                });
                t += n;
            }
            starts.push(segs.len());
        }
        ConvShape {
            channels_in,
            src: Vec::new(),
            src_len: 0,
            flat: false,
            in_rows,
            cpad_in,
            out_rows: taps.len(),
            cpad_out: k.n_out.div_ceil(4) * 4,
            segs,
            starts,
        }
    }

    /// Reads the head's model tensor element `i` from the chain input's
    /// element `at(i)` (`None`: 0), e.g. through a Route folded into it.
    pub fn gather(&mut self, at: impl Fn(usize) -> Option<u32>) {
        let (rows, cp, ch) = (self.in_rows, self.cpad_in, self.channels_in);
        let src: Vec<Option<u32>> = (0..self.in_lanes())
            .map(|l| {
                let (q, c) = (l / cp, l % cp);
                (q < rows && c < ch).then(|| at(c * rows + q)).flatten()
            })
            .collect();
        self.src_len = src.iter().flatten().max().map_or(0, |&m| m as usize + 1);
        let zero = self.src_len as u32;
        self.src = src.into_iter().map(|i| i.unwrap_or(zero)).collect();
    }

    /// Input lanes, the zero row included (for a flat head, slack for its
    /// last window's last group, which reads up to 3 lanes beyond the input
    /// against weights 0).
    fn in_lanes(&self) -> usize {
        if self.flat {
            self.src_len + 4
        } else {
            (self.in_rows + 1) * self.cpad_in
        }
    }

    /// This head as one that reads its input flat, if its gather reads the
    /// chain input position-major (row `q`'s channel `c` is element
    /// `q * channels + c`) and every output position's taps are one run of
    /// consecutive rows (stride and dilation 1, no padding): `k` is its
    /// kernel repacked with `taps * channels` columns in `[tap][channel]`
    /// order. Each window is then a run of input elements, so the input
    /// is packed by a plain conversion (no per-lane gather) and no lanes
    /// of channel padding are multiplied; for the Conv1D jet tagger's
    /// 3-channel head that was a quarter of its multiply-accumulates.
    pub fn flat(&self, old: &PackedDense, k: PackedDense) -> Option<(ConvShape, PackedDense)> {
        let (ch, rows, cp) = (self.channels_in, self.in_rows, self.cpad_in);
        let position_major = !self.src.is_empty()
            && self.src_len == rows * ch
            && (0..rows).all(|q| (0..ch).all(|c| self.src[q * cp + c] as usize == q * ch + c));
        if !position_major {
            return None;
        }
        let bytes = |k: &PackedDense| if k.operand == Operand::U8 { 1 } else { 2 };
        let gpr = cp * bytes(old) / 4;
        let taps = k.n_in / ch.max(1);
        let mut segs = Vec::with_capacity(self.out_rows);
        for p in 0..self.out_rows {
            let [s] = &self.segs[self.starts[p]..self.starts[p + 1]] else {
                return None;
            };
            let q = s.x / (gpr * 4);
            if s.w != 0 || s.n != taps * gpr || q + taps > rows {
                return None;
            }
            segs.push(Seg {
                w: 0,
                x: q * ch * bytes(&k),
                n: k.ngroups,
            });
        }
        let shape = ConvShape {
            src: Vec::new(),
            flat: true,
            segs,
            starts: (0..=self.out_rows).collect(),
            ..self.clone()
        };
        Some((shape, k))
    }

    /// Packs the chain's input `x` into the input grid through `src`:
    /// `x + off` in `k`'s lanes, the padding lanes and the zero row at
    /// `off` (the value 0). Two branch-free passes, through `tmp` (at
    /// least `src_len + 1` words): the input converted to lanes in order
    /// (which vectorizes), then each grid lane copied from its source
    /// (0 from the extra word at `src_len`). Converting per lane through
    /// `src` took a quarter of the Conv1D jet tagger's time. Inlined, so
    /// that it takes the ISA of the plan's dispatch (AVX2 conversions).
    #[inline(always)]
    fn pack<T: Copy + Into<i64>>(&self, k: &PackedDense, x: &[T], xp: &mut [u16], tmp: &mut [u16]) {
        let (off, n) = (k.offset(), self.src_len);
        if self.flat {
            // The whole input in order, not one window of `k.n_in` values.
            return k.pack_all(&x[..n], xp);
        }
        if k.operand == Operand::U8 {
            let (b, t) = (bytes(xp), bytes(tmp));
            lanes_from(&self.src, &x[..n], &mut t[..=n], b, |v| (v + off) as u8);
        } else {
            lanes_from(&self.src, &x[..n], &mut tmp[..=n], xp, |v| {
                (v + off) as i16 as u16
            });
        }
    }

    /// Writes the zero row (`off`, the value 0) of an input grid the
    /// previous layer's epilogue filled.
    #[cfg(target_arch = "x86_64")]
    unsafe fn zero_row(&self, k: &PackedDense, xp: *mut u8) {
        let off = k.offset();
        let r = self.in_rows * self.cpad_in;
        if k.operand == Operand::U8 {
            std::ptr::write_bytes(xp.add(r), off as u8, self.cpad_in);
        } else {
            let p = xp as *mut i16;
            for c in 0..self.cpad_in {
                p.add(r + c).write_unaligned(off as i16);
            }
        }
    }
}

/// `d[l] = f(x[src[l]])`, and `f(0)` where `src[l]` is `x.len()`, through
/// `t` (`x.len() + 1` lanes).
#[inline(always)]
fn lanes_from<T: Copy + Into<i64>, D: Copy>(
    src: &[u32],
    x: &[T],
    t: &mut [D],
    d: &mut [D],
    f: impl Fn(i64) -> D,
) {
    let n = x.len();
    for (t, &v) in t[..n].iter_mut().zip(x) {
        *t = f(v.into());
    }
    t[n] = f(0);
    let t = &t[..=n];
    for (d, &i) in d.iter_mut().zip(src) {
        // `src` holds no index above `n`; the clamp lets the compiler drop the bounds check.
        *d = t[(i as usize).min(n)];
    }
}

/// Classes of the largest softmax run with events in lanes (one vector per class).
const MAX_LANES_N: usize = 8;

/// A Softmax (on its exact i64 path) or an Argmax after the chain's last
/// layer, run on its i32 outputs: the chain then writes the tail's output.
#[derive(Clone, Debug)]
pub(crate) enum Tail {
    Softmax {
        n: usize,
        exp_table: Table,
        inv_table: Table,
        rq: FastRq,
        /// One group of at most [`MAX_LANES_N`] values, and table values
        /// that fit i32: the multi-event vector path (events in i64
        /// lanes, `vpmuldq` products) applies.
        lanes: bool,
        /// [`crate::scalar::clamp_free`] holds.
        free: bool,
    },
    Argmax {
        n: usize,
        one: i64,
    },
}

impl Tail {
    /// A softmax tail over `len` values in groups of `n`.
    pub fn softmax(n: usize, exp_table: &Table, inv_table: &Table, rq: FastRq, len: usize) -> Tail {
        let i32s = |t: &Table| t.values.iter().all(|&v| i32::try_from(v).is_ok());
        Tail::Softmax {
            n,
            exp_table: exp_table.clone(),
            inv_table: inv_table.clone(),
            rq,
            lanes: n == len && n <= MAX_LANES_N && i32s(exp_table) && i32s(inv_table),
            free: crate::scalar::clamp_free(n, exp_table, inv_table),
        }
    }
}

/// The chain's output `y` from its last layer's i32 outputs `a`.
#[inline(always)]
fn finish(tail: &Option<Tail>, a: &[i32], y: &mut [i64]) {
    match tail {
        None => {
            for (d, &v) in y.iter_mut().zip(a) {
                *d = v as i64;
            }
        }
        Some(Tail::Softmax {
            n,
            exp_table,
            inv_table,
            rq,
            free,
            ..
        }) => softmax64(a, y, *n, exp_table, inv_table, rq, *free),
        Some(Tail::Argmax { n, one }) => argmax(a, y, *n, *one),
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Chain {
    pub layers: Vec<Stage>,
    pub tail: Option<Tail>,
    /// Stride of one packed input buffer, in u16 words (multiple of 32).
    pub stride: usize,
    /// Stride of one event's dot buffer, in i32 (multiple of 16).
    pub dstride: usize,
}

impl Chain {
    pub fn new(layers: Vec<ChainLayer>) -> Chain {
        // A layer's epilogue writes whole 16-lane blocks into the next buffer.
        let stride = layers
            .iter()
            .map(|l| {
                let grid = l.conv.as_ref().map_or(0, |c| {
                    let tmp = c.src_len + 1;
                    c.in_lanes()
                        .max(c.out_rows * c.cpad_out + l.k.dot_len())
                        .max(tmp)
                });
                l.k.packed_words().max(l.k.dot_len()).max(grid)
            })
            .max()
            .unwrap_or(0)
            .div_ceil(32)
            * 32;
        let dstride = layers.iter().map(|l| l.k.dot_len()).max().unwrap_or(0);
        // Each layer stores into its successor's lane format.
        let next: Vec<(u8, i32)> = (0..layers.len())
            .map(|i| match layers.get(i + 1) {
                None => (0, 0),
                Some(n) if n.k.operand == Operand::U8 => (2, n.k.offset() as i32),
                Some(n) => (1, n.k.offset() as i32),
            })
            .collect();
        let layers: Vec<Stage> = layers
            .into_iter()
            .zip(next)
            .map(|(l, (kind, off))| {
                let mut prog =
                    crate::epi::compile(&l.bias, l.sl, l.arange, l.acc.as_ref(), &l.rq, &l.epi);
                let mut k = l.k;
                k.to_lanes(&mut prog.bias);
                prog.fold(&mut k.init, off);
                let mut st = Stage {
                    prog,
                    k,
                    conv: l.conv,
                    kind,
                    one: None,
                };
                #[cfg(target_arch = "x86_64")]
                {
                    st.one = x86::one_kernel(&st);
                }
                st
            })
            .collect();
        Chain {
            layers,
            tail: None,
            stride,
            dstride,
        }
    }

    /// Scratch sizes: packed buffers (words) and dot buffers (i32).
    pub fn scratch(&self) -> (usize, usize) {
        (2 * MULTI * self.stride, MULTI * self.dstride)
    }

    /// One event: `x` the chain's input tensor (raw codes in range), `y`
    /// its output tensor.
    #[inline(always)]
    pub fn run<T: Copy + Into<i64>>(
        &self,
        x: &[T],
        y: &mut [i64],
        cx: &mut [u16],
        dot: &mut [i32],
    ) {
        self.run_checked(x, (i64::MIN, i64::MAX), y, cx, dot);
    }

    /// [`Chain::run`] on raw codes not yet checked: false, with nothing
    /// run, if one lies outside `range`. The check, packing, layers and
    /// tail run in one function compiled for the chain's ISA, so that the
    /// check, the packing and the scalar tail are built with it too and no
    /// call separates them.
    #[inline(always)]
    pub fn run_checked<T: Copy + Into<i64>>(
        &self,
        x: &[T],
        range: (i64, i64),
        y: &mut [i64],
        cx: &mut [u16],
        dot: &mut [i32],
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the ISA was checked available when the plan was built;
        // buffers are sized by `scratch()` (whole 16-lane blocks).
        unsafe {
            x86::run_one(self, x, range, y, cx, dot)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("fused chains exist only for x86_64 SIMD kernels ({x:?}, {range:?}, {y:?}, {cx:?}, {dot:?})")
    }

    /// Packs [`MULTI`] events' inputs, event `e`'s at `x[e * xs..]`, into
    /// the first layer's lane format in `cx` (for [`Chain::run_packed_multi`]).
    #[inline(always)]
    pub fn pack_multi<T: Copy + Into<i64>>(&self, x: &[T], xs: usize, cx: &mut [u16]) {
        let s = self.stride;
        let (cur, nxt) = cx[..2 * MULTI * s].split_at_mut(MULTI * s);
        for e in 0..MULTI {
            self.pack_input(&x[e * xs..], &mut cur[e * s..(e + 1) * s], nxt);
        }
    }

    /// Packs one event's input tensor into the first layer's lanes.
    /// `tmp` is scratch (the other packed buffer, free at this point).
    #[inline(always)]
    fn pack_input<T: Copy + Into<i64>>(&self, x: &[T], xp: &mut [u16], tmp: &mut [u16]) {
        let l = &self.layers[0];
        match &l.conv {
            None => l.k.pack(&x[..l.k.n_in], xp),
            Some(c) => c.pack(&l.k, x, xp, tmp),
        }
    }

    /// [`MULTI`] events packed by [`Chain::pack_multi`]: event `e`'s
    /// output goes to `y[e * ys..e * ys + y_len]`.
    #[inline(always)]
    pub fn run_packed_multi(
        &self,
        y: &mut [i64],
        ys: usize,
        y_len: usize,
        cx: &mut [u16],
        dot: &mut [i32],
    ) {
        let s = self.stride;
        let (cur, nxt) = cx[..2 * MULTI * s].split_at_mut(MULTI * s);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `run`; the last layer's outputs are at strides
        // `dstride` in `dot`.
        unsafe {
            x86::run_multi(self, cur, nxt, dot);
            x86::finish_multi(self, dot, y, ys, y_len)
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("fused chains exist only for x86_64 SIMD kernels ({y:?}, {ys}, {y_len}, {cur:?}, {nxt:?}, {dot:?})")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The whole chain in vector registers (AVX-512, or AVX2 with
    //! [`Y2`]'s register pairs): for each 16-output block, the dot product
    //! (one weight load feeding `E` events, `J` partial accumulators), then
    //! the epilogue on the accumulator registers and a narrowing store into
    //! the next layer's packed input.
    use super::{Chain, OneFn, Stage, Tail, MAX_LANES_N, MULTI};
    use crate::dense::x86::{blocks, count, wide, Lanes, Sink, Y1, Y2};
    use crate::dense::Seg;
    use crate::epi::{Op, Program, Shape};
    use crate::isa::Isa;
    use crate::rq::FastRq;
    use quantize::qmodel::Table;
    use std::arch::x86_64::*;

    /// [`Program::apply`] on block `b` of `E` events, each op's constants
    /// loaded once for all events. The program's shape and bias pointer
    /// come as values (copies the caller keeps in registers across blocks).
    #[inline(always)]
    unsafe fn run_prog<V: Lanes, const E: usize>(
        p: &Program,
        shape: Option<Shape>,
        bias0: *const i32,
        b: usize,
        v: &mut [V; E],
    ) {
        macro_rules! each {
            (|$x:ident| $e:expr) => {
                for $x in v.iter_mut() {
                    *$x = {
                        let $x = *$x;
                        $e
                    };
                }
            };
        }
        let bias = || V::load(bias0.add(b * 16));
        if let Some(Shape { k, wrap, lo, hi }) = shape {
            let (lo, hi) = (V::splat(lo), V::splat(hi));
            match wrap {
                None => each!(|x| x.sra(k).max(lo).min(hi)),
                Some((s, true)) => each!(|x| x.sra(k).shl(s).sra(s).max(lo).min(hi)),
                Some((s, false)) => each!(|x| x.sra(k).shl(s).srl(s).max(lo).min(hi)),
            }
            return;
        }
        for op in &p.ops {
            match *op {
                Op::Shl(k) => each!(|x| x.shl(k)),
                Op::AddBias => {
                    let bias = bias();
                    each!(|x| x.add(bias))
                }
                Op::Add(c) => each!(|x| x.add(V::splat(c))),
                Op::RoundTerms { neg, conv, kr } => each!(|x| x.add(
                    x.sign()
                        .and(V::splat(neg))
                        .add(x.sra(kr).and(V::splat(conv)))
                )),
                Op::Sra(k) => each!(|x| x.sra(k)),
                Op::Max(c) => each!(|x| x.max(V::splat(c))),
                Op::Min(c) => each!(|x| x.min(V::splat(c))),
                Op::Wrap { shift, signed } => each!(|x| {
                    let t = x.shl(shift);
                    if signed {
                        t.sra(shift)
                    } else {
                        t.srl(shift)
                    }
                }),
                Op::SatZero { lo, hi } => each!(|x| x.zero_outside(lo, hi)),
                Op::Thresh(th) => each!(|x| x.keep_above(th)),
            }
        }
    }

    /// A layer's epilogue as [`blocks`]' sink: the program on the
    /// accumulator registers, then a store (`kind`): 0 i32 (last layer),
    /// 1 narrowed to i16 lanes, 2 narrowed to u8 lanes (`+ off`).
    ///
    /// The program's shape and bias pointer are copied in: the stores go
    /// through raw pointers, after which fields read through `prog` would
    /// be reloaded for every block.
    ///
    /// `KIND` is the store kind when known at compile time ([`ANY`]: read
    /// `kind`). `SHAPE`: the layer is [`shaped`], so that a block's
    /// epilogue is its three vector steps and a store. The single-event
    /// kernels pick both per layer ([`one_kernel`]); per block, their
    /// branches and reloads had been about two thirds of the epilogue's
    /// instructions.
    struct Epilogue<'a, const KIND: u8, const SHAPE: bool> {
        prog: &'a Program,
        shape: Option<Shape>,
        /// `shape`'s shift and clamps (a no-op where it has none).
        sh: (u32, i32, i32),
        bias: *const i32,
        out: *mut u8,
        os: usize,
        kind: u8,
        off: i32,
    }

    /// [`Epilogue`]'s `KIND` when the store kind is read at run time.
    const ANY: u8 = u8::MAX;

    /// The layer's epilogue is a [`Shape`] without wrap-around whose store
    /// adds nothing (its bias and offset are in the kernel's initial
    /// accumulators: [`crate::epi::Program::fold`]).
    fn shaped(l: &Stage) -> bool {
        matches!(l.prog.shape, Some(Shape { wrap: None, .. })) && l.prog.off == 0
    }

    impl<'a, const KIND: u8, const SHAPE: bool> Epilogue<'a, KIND, SHAPE> {
        /// Layer `l`'s epilogue, event `e`'s results stored at `out + e * os`.
        #[inline(always)]
        fn new(l: &'a Stage, out: *mut u8, os: usize) -> Self {
            debug_assert!(KIND == ANY || KIND == l.kind);
            debug_assert!(!SHAPE || shaped(l));
            Epilogue {
                prog: &l.prog,
                shape: l.prog.shape,
                sh: l
                    .prog
                    .shape
                    .map_or((0, i32::MIN, i32::MAX), |s| (s.k, s.lo, s.hi)),
                bias: l.prog.bias.as_ptr(),
                out,
                os,
                kind: l.kind,
                off: l.prog.off,
            }
        }
    }

    impl<V: Lanes, const KIND: u8, const SHAPE: bool> Sink<V> for Epilogue<'_, KIND, SHAPE> {
        #[inline(always)]
        unsafe fn put<const E: usize>(&mut self, b: usize, mut s: [V; E]) {
            let kind = if KIND == ANY { self.kind } else { KIND };
            if SHAPE {
                let (k, lo, hi) = self.sh;
                let (lo, hi) = (V::splat(lo), V::splat(hi));
                for x in s.iter_mut() {
                    *x = x.sra(k).max(lo).min(hi);
                }
            } else {
                // Several events: the reloads are shared by all of them, and
                // the registers are better spent on accumulators (measured on
                // the Conv1D tagger: keeping the copies cost 3 % of its
                // instructions in batches).
                let (shape, bias) = if E == 1 {
                    (self.shape, self.bias)
                } else {
                    (self.prog.shape, self.prog.bias.as_ptr())
                };
                run_prog(self.prog, shape, bias, b, &mut s);
            }
            let off = V::splat(self.off);
            for (e, &v) in s.iter().enumerate() {
                let o = self.out.add(e * self.os);
                let v = if !SHAPE && self.off != 0 {
                    v.add(off)
                } else {
                    v
                };
                match kind {
                    0 => v.store(o.add(b * 64) as *mut i32),
                    1 => v.store_i16(o.add(b * 32)),
                    _ => v.store_u8(o.add(b * 16)),
                }
            }
        }
    }

    /// One layer for `E` events (event `e`'s packed input at `x + e * xs`),
    /// its epilogue storing at `o + e * os`.
    #[inline(always)]
    unsafe fn layer<V: Lanes, const E: usize, const J: usize>(
        l: &Stage,
        x: *const u8,
        xs: usize,
        o: *mut u8,
        os: usize,
    ) {
        match &l.conv {
            None => {
                let ep = &mut Epilogue::<ANY, false>::new(l, o, os);
                blocks::<V, E, J>(&l.k, x, xs, &Seg::all(&l.k), ep);
            }
            Some(cv) => {
                // Output row p in the next layer's lanes (a chain never
                // ends with a convolution: kind is 1 or 2).
                let row = cv.cpad_out * if l.kind == 2 { 1 } else { 2 };
                for p in 0..cv.out_rows {
                    let ep = &mut Epilogue::<ANY, false>::new(l, o.add(p * row), os);
                    let segs = &cv.segs[cv.starts[p]..cv.starts[p + 1]];
                    blocks::<V, E, J>(&l.k, x, xs, segs, ep);
                }
            }
        }
    }

    /// The chain on `G` groups of `E` events (event `e`'s packed input at
    /// `cur[e * stride..]`): layer by layer, each layer's weights read once
    /// per group, layers of at most 8 outputs on `V::Half` lanes.
    #[inline(always)]
    unsafe fn run_impl<'a, V: Lanes, const G: usize, const E: usize, const J: usize>(
        c: &Chain,
        mut cur: &'a mut [u16],
        mut nxt: &'a mut [u16],
        dot: &mut [i32],
    ) {
        let (xs, ds) = (c.stride * 2, c.dstride * 4);
        let last = c.layers.len() - 1;
        for (i, l) in c.layers.iter().enumerate() {
            let x = cur.as_ptr() as *const u8;
            let (o, os) = if i == last {
                (dot.as_mut_ptr() as *mut u8, ds)
            } else {
                (nxt.as_mut_ptr() as *mut u8, xs)
            };
            if V::HALVES && l.k.n_out <= 8 && G > 1 && G * E == MULTI {
                // Half-width lanes leave registers to spare: all the pass's
                // events at once, each weight and every per-position step
                // of a convolution shared by twice the events.
                layer::<V::Half, MULTI, J>(l, x, xs, o, os);
            } else {
                for g in 0..G {
                    let (x, o) = (x.add(g * E * xs), o.add(g * E * os));
                    if V::HALVES && l.k.n_out <= 8 {
                        layer::<V::Half, E, J>(l, x, xs, o, os);
                    } else {
                        layer::<V, E, J>(l, x, xs, o, os);
                    }
                }
            }
            if i != last {
                if let Some(nc) = &c.layers[i + 1].conv {
                    for e in 0..G * E {
                        nc.zero_row(
                            &c.layers[i + 1].k,
                            (nxt.as_mut_ptr() as *mut u8).add(e * xs),
                        );
                    }
                }
                std::mem::swap(&mut cur, &mut nxt);
            }
        }
    }

    /// One event from its raw codes `x`: packed, the layers (a Dense layer
    /// by its own kernel, [`one_kernel`]; a convolution with `J` partial
    /// sums per block), the tail.
    #[inline(always)]
    unsafe fn one<V: Lanes, const J: usize, T: Copy + Into<i64>>(
        c: &Chain,
        x: &[T],
        (lo, hi): (i64, i64),
        y: &mut [i64],
        cur: &mut [u16],
        nxt: &mut [u16],
        dot: &mut [i32],
    ) -> bool {
        let head = &c.layers[0];
        if (lo, hi) == (i64::MIN, i64::MAX) {
            c.pack_input(x, cur, nxt);
        } else if head.conv.is_none() && x.len() == head.k.n_in {
            // A Dense head: the check and the packing in one pass.
            if !head.k.pack_checked(x, lo, hi, cur) {
                return false;
            }
        } else if crate::in_range_any(x, lo, hi) {
            c.pack_input(x, cur, nxt);
        } else {
            return false;
        }
        let last = c.layers.len() - 1;
        let (mut x, mut nx) = (cur.as_mut_ptr() as *mut u8, nxt.as_mut_ptr() as *mut u8);
        for (i, l) in c.layers.iter().enumerate() {
            let o = if i == last {
                dot.as_mut_ptr() as *mut u8
            } else {
                nx
            };
            match l.one {
                Some(f) => f(l, x, o),
                None if V::HALVES && l.k.n_out <= 8 => layer::<V::Half, 1, J>(l, x, 0, o, 0),
                None => layer::<V, 1, J>(l, x, 0, o, 0),
            }
            if i != last {
                if let Some(nc) = &c.layers[i + 1].conv {
                    nc.zero_row(&c.layers[i + 1].k, o);
                }
                std::mem::swap(&mut x, &mut nx);
            }
        }
        // The scalar tail: for one event its latency beats the lane path's
        // gather (which pays off across a multi-event pass).
        let n = c.layers.last().unwrap().k.n_out;
        super::finish(&c.tail, &dot[..n], y);
        true
    }

    /// The single-event kernel of Dense layer `l` (None for a
    /// convolution), resolved once when the chain is built: the ISA, the
    /// lane width (8 or 16 outputs per AVX2 block), the epilogue's shape
    /// and the store kind are fixed in the function chosen. Decided per
    /// event inside one function for the whole chain, those choices and
    /// the state they kept live (spilled around each layer) had cost the
    /// 16-bit jet tagger about 65 instructions per event, and each layer's
    /// kernel is now compiled on its own (its registers allocated for it
    /// alone), where one function held every variant of every layer.
    pub(super) fn one_kernel(l: &Stage) -> Option<OneFn> {
        if l.conv.is_some() {
            return None;
        }
        let shape = shaped(l);
        macro_rules! pick {
            ($f:ident $(, $v:ty)?) => {
                match (shape, l.kind) {
                    (true, 0) => $f::<$($v,)? 0, true> as OneFn,
                    (true, 1) => $f::<$($v,)? 1, true>,
                    (true, _) => $f::<$($v,)? 2, true>,
                    (false, _) => $f::<$($v,)? ANY, false>,
                }
            };
        }
        Some(match l.k.isa {
            Isa::Avx2 if l.k.n_out <= 8 => pick!(dense_avx2, Y1),
            Isa::Avx2 => pick!(dense_avx2, Y2),
            Isa::Avx512 => pick!(dense_avx512),
            Isa::Avx512Vnni => pick!(dense_vnni),
            Isa::Scalar => return None,
        })
    }

    /// A Dense layer's single-event epilogue ([`one_kernel`]).
    #[inline(always)]
    fn one_epilogue<const KIND: u8, const SHAPE: bool>(
        l: &Stage,
        o: *mut u8,
    ) -> Epilogue<'_, KIND, SHAPE> {
        Epilogue::new(l, o, 0)
    }

    /// AVX2: up to four blocks per pass over the input ([`wide`]).
    #[target_feature(enable = "avx2,bmi2")]
    unsafe fn dense_avx2<V: Lanes, const KIND: u8, const SHAPE: bool>(
        l: &Stage,
        x: *const u8,
        o: *mut u8,
    ) {
        wide::<V>(
            &l.k,
            x,
            &Seg::all(&l.k),
            &mut one_epilogue::<KIND, SHAPE>(l, o),
        )
    }

    /// AVX-512 BW: a block at a time, eight partial sums.
    #[target_feature(enable = "avx512f,avx512bw,bmi2")]
    unsafe fn dense_avx512<const KIND: u8, const SHAPE: bool>(l: &Stage, x: *const u8, o: *mut u8) {
        let ep = &mut one_epilogue::<KIND, SHAPE>(l, o);
        blocks::<__m512i, 1, 8>(&l.k, x, 0, &Seg::all(&l.k), ep)
    }

    /// [`dense_avx512`] with VNNI's fused multiply-adds.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,bmi2")]
    unsafe fn dense_vnni<const KIND: u8, const SHAPE: bool>(l: &Stage, x: *const u8, o: *mut u8) {
        let ep = &mut one_epilogue::<KIND, SHAPE>(l, o);
        blocks::<__m512i, 1, 8>(&l.k, x, 0, &Seg::all(&l.k), ep)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,bmi2")]
    unsafe fn one_vnni<T: Copy + Into<i64>>(
        c: &Chain,
        x: &[T],
        range: (i64, i64),
        y: &mut [i64],
        cur: &mut [u16],
        nxt: &mut [u16],
        dot: &mut [i32],
    ) -> bool {
        one::<__m512i, 8, T>(c, x, range, y, cur, nxt, dot)
    }

    #[target_feature(enable = "avx512f,avx512bw,bmi2")]
    unsafe fn one_avx512<T: Copy + Into<i64>>(
        c: &Chain,
        x: &[T],
        range: (i64, i64),
        y: &mut [i64],
        cur: &mut [u16],
        nxt: &mut [u16],
        dot: &mut [i32],
    ) -> bool {
        one::<__m512i, 8, T>(c, x, range, y, cur, nxt, dot)
    }

    /// AVX2, one event: a Dense layer takes up to four blocks per pass
    /// ([`wide`]); a convolution, whose output positions each read a short
    /// run of its input, four partial sums per block (as fast as `wide`
    /// there, measured on the Conv1D tagger).
    #[target_feature(enable = "avx2,bmi2")]
    unsafe fn one_avx2<T: Copy + Into<i64>>(
        c: &Chain,
        x: &[T],
        range: (i64, i64),
        y: &mut [i64],
        cur: &mut [u16],
        nxt: &mut [u16],
        dot: &mut [i32],
    ) -> bool {
        one::<Y2, 4, T>(c, x, range, y, cur, nxt, dot)
    }

    /// One event: raw codes `x` to the chain's output `y`, if all lie in
    /// `range`. Inlined into the engine's call, so that a single event
    /// makes one call fewer before its kernel.
    #[inline(always)]
    pub(super) unsafe fn run_one<T: Copy + Into<i64>>(
        c: &Chain,
        x: &[T],
        range: (i64, i64),
        y: &mut [i64],
        cx: &mut [u16],
        dot: &mut [i32],
    ) -> bool {
        let (cur, nxt) = cx[..2 * c.stride].split_at_mut(c.stride);
        assert!(dot.len() >= c.dstride);
        match c.layers[0].k.isa {
            Isa::Avx512Vnni => one_vnni(c, x, range, y, cur, nxt, dot),
            Isa::Avx512 => one_avx512(c, x, range, y, cur, nxt, dot),
            Isa::Avx2 => one_avx2(c, x, range, y, cur, nxt, dot),
            Isa::Scalar => unreachable!("the scalar chain has no vector kernels"),
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn multi_vnni(c: &Chain, cur: &mut [u16], nxt: &mut [u16], dot: &mut [i32]) {
        run_impl::<__m512i, 1, MULTI, 1>(c, cur, nxt, dot)
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn multi_avx512(c: &Chain, cur: &mut [u16], nxt: &mut [u16], dot: &mut [i32]) {
        run_impl::<__m512i, 1, MULTI, 1>(c, cur, nxt, dot)
    }

    /// AVX2: at most four events per group (eight accumulator registers
    /// of sixteen).
    #[target_feature(enable = "avx2")]
    unsafe fn multi_avx2(c: &Chain, cur: &mut [u16], nxt: &mut [u16], dot: &mut [i32]) {
        const _: () = assert!(MULTI.is_multiple_of(4));
        run_impl::<Y2, { MULTI / 4 }, 4, 1>(c, cur, nxt, dot)
    }

    /// [`MULTI`] events: packed inputs at `cur[e * stride..]`, the last
    /// layer's i32 outputs at `dot[e * dstride..]`.
    pub(super) unsafe fn run_multi(c: &Chain, cur: &mut [u16], nxt: &mut [u16], dot: &mut [i32]) {
        assert!(cur.len() >= MULTI * c.stride && nxt.len() >= MULTI * c.stride);
        assert!(dot.len() >= MULTI * c.dstride);
        match c.layers[0].k.isa {
            Isa::Avx512Vnni => multi_vnni(c, cur, nxt, dot),
            Isa::Avx512 => multi_avx512(c, cur, nxt, dot),
            Isa::Avx2 => multi_avx2(c, cur, nxt, dot),
            Isa::Scalar => unreachable!("the scalar chain has no vector kernels"),
        }
    }

    /// Eight i64 lanes (one AVX-512 register or two AVX2 registers) and
    /// the operations of the softmax tail with events in lanes.
    trait Q8: Copy {
        unsafe fn splat(v: i64) -> Self;
        /// Lanes from eight i32 (sign-extended).
        unsafe fn from_i32(v: __m256i) -> Self;
        unsafe fn store(self, p: *mut i64);
        unsafe fn add(self, o: Self) -> Self;
        unsafe fn sub(self, o: Self) -> Self;
        unsafe fn and(self, o: Self) -> Self;
        unsafe fn max(self, o: Self) -> Self;
        unsafe fn min(self, o: Self) -> Self;
        unsafe fn sll(self, k: u32) -> Self;
        unsafe fn srl(self, k: u32) -> Self;
        /// Arithmetic shift right by `k` (0..=63).
        unsafe fn sra(self, k: u32) -> Self;
        /// 0 outside `[lo, hi]`.
        unsafe fn zero_outside(self, lo: i64, hi: i64) -> Self;
        /// Products of the lanes' low 32 bits as signed i32 (`vpmuldq`).
        unsafe fn mul32(self, o: Self) -> Self;
        /// `t[i]` for each lane's index `i` (in range).
        unsafe fn gather(t: *const i64, i: Self) -> Self;
    }

    impl Q8 for __m512i {
        #[inline(always)]
        unsafe fn splat(v: i64) -> Self {
            _mm512_set1_epi64(v)
        }
        #[inline(always)]
        unsafe fn from_i32(v: __m256i) -> Self {
            _mm512_cvtepi32_epi64(v)
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i64) {
            _mm512_storeu_si512(p as *mut _, self)
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            _mm512_add_epi64(self, o)
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            _mm512_sub_epi64(self, o)
        }
        #[inline(always)]
        unsafe fn and(self, o: Self) -> Self {
            _mm512_and_si512(self, o)
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            _mm512_max_epi64(self, o)
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            _mm512_min_epi64(self, o)
        }
        #[inline(always)]
        unsafe fn sll(self, k: u32) -> Self {
            _mm512_sll_epi64(self, count(k))
        }
        #[inline(always)]
        unsafe fn srl(self, k: u32) -> Self {
            _mm512_srl_epi64(self, count(k))
        }
        #[inline(always)]
        unsafe fn sra(self, k: u32) -> Self {
            _mm512_sra_epi64(self, count(k))
        }
        #[inline(always)]
        unsafe fn zero_outside(self, lo: i64, hi: i64) -> Self {
            let out = _mm512_cmpgt_epi64_mask(self, _mm512_set1_epi64(hi))
                | _mm512_cmplt_epi64_mask(self, _mm512_set1_epi64(lo));
            _mm512_maskz_mov_epi64(!out, self)
        }
        #[inline(always)]
        unsafe fn mul32(self, o: Self) -> Self {
            _mm512_mul_epi32(self, o)
        }
        #[inline(always)]
        unsafe fn gather(t: *const i64, i: Self) -> Self {
            _mm512_i64gather_epi64::<8>(i, t as *const _)
        }
    }

    /// Eight i64 lanes in two AVX2 registers (lanes 0..4, 4..8). AVX2 has
    /// no 64-bit arithmetic shift, minimum or maximum: they are built from
    /// logical shifts and compares.
    #[derive(Clone, Copy)]
    struct Y64(__m256i, __m256i);

    impl Y64 {
        #[inline(always)]
        unsafe fn zip(self, o: Y64, f: impl Fn(__m256i, __m256i) -> __m256i) -> Y64 {
            Y64(f(self.0, o.0), f(self.1, o.1))
        }
        #[inline(always)]
        unsafe fn map(self, f: impl Fn(__m256i) -> __m256i) -> Y64 {
            Y64(f(self.0), f(self.1))
        }
    }

    impl Q8 for Y64 {
        #[inline(always)]
        unsafe fn splat(v: i64) -> Self {
            let x = _mm256_set1_epi64x(v);
            Y64(x, x)
        }
        #[inline(always)]
        unsafe fn from_i32(v: __m256i) -> Self {
            Y64(
                _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)),
                _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(v)),
            )
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i64) {
            _mm256_storeu_si256(p as *mut _, self.0);
            _mm256_storeu_si256(p.add(4) as *mut _, self.1);
        }
        #[inline(always)]
        unsafe fn add(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_add_epi64(a, b))
        }
        #[inline(always)]
        unsafe fn sub(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_sub_epi64(a, b))
        }
        #[inline(always)]
        unsafe fn and(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_and_si256(a, b))
        }
        #[inline(always)]
        unsafe fn max(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(b, a)))
        }
        #[inline(always)]
        unsafe fn min(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(a, b)))
        }
        #[inline(always)]
        unsafe fn sll(self, k: u32) -> Self {
            self.map(|a| _mm256_sll_epi64(a, count(k)))
        }
        #[inline(always)]
        unsafe fn srl(self, k: u32) -> Self {
            self.map(|a| _mm256_srl_epi64(a, count(k)))
        }
        #[inline(always)]
        unsafe fn sra(self, k: u32) -> Self {
            // floor(x / 2^k) = !((!x) >>> k) for negative x.
            self.map(|a| {
                let s = _mm256_cmpgt_epi64(_mm256_setzero_si256(), a);
                _mm256_xor_si256(_mm256_srl_epi64(_mm256_xor_si256(a, s), count(k)), s)
            })
        }
        #[inline(always)]
        unsafe fn zero_outside(self, lo: i64, hi: i64) -> Self {
            let (lo, hi) = (_mm256_set1_epi64x(lo), _mm256_set1_epi64x(hi));
            self.map(|a| {
                let out = _mm256_or_si256(_mm256_cmpgt_epi64(a, hi), _mm256_cmpgt_epi64(lo, a));
                _mm256_andnot_si256(out, a)
            })
        }
        #[inline(always)]
        unsafe fn mul32(self, o: Self) -> Self {
            self.zip(o, |a, b| _mm256_mul_epi32(a, b))
        }
        #[inline(always)]
        unsafe fn gather(t: *const i64, i: Self) -> Self {
            i.map(|i| _mm256_i64gather_epi64::<8>(t as *const _, i))
        }
    }

    /// [`crate::rq::FastRq`] on 8 i64 lanes, step for step as its scalar `apply`.
    #[inline(always)]
    unsafe fn rq64<Q: Q8>(r: &FastRq, a: Q) -> Q {
        let add = Q::splat(r.base).add(
            a.sra(63)
                .and(Q::splat(r.neg))
                .add(a.sra(r.kr).and(Q::splat(r.conv))),
        );
        let v = a.add(add).sra(r.kr).sll(r.kl);
        match r.mode {
            0 => {
                let t = v.sll(r.wrap_shift);
                if r.signed {
                    t.sra(r.wrap_shift)
                } else {
                    t.srl(r.wrap_shift)
                }
            }
            1 => v.min(Q::splat(r.hi)).max(Q::splat(r.clo)),
            _ => v.zero_outside(r.lo, r.hi),
        }
    }

    /// `Table::lookup` on 8 i64 lanes (as `scalar::Lookup::get`).
    #[inline(always)]
    unsafe fn lookup8<Q: Q8>(t: &Table, x: Q) -> Q {
        let d = x.sub(Q::splat(t.offset)).sra(t.shift.min(63));
        let i = d.max(Q::splat(0)).min(Q::splat(t.values.len() as i64 - 1));
        Q::gather(t.values.as_ptr(), i)
    }

    /// The transpose of an 8 x 8 matrix of i32 (row `e` in `r[e]`): column
    /// `j` of the result holds element `j` of every row.
    #[inline(always)]
    unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
        // Each stage: for each pair (a, b), the low and high interleaves.
        macro_rules! stage {
            ($r:expr, $lo:ident, $hi:ident, [$(($a:literal, $b:literal)),*]) => {
                [$($lo($r[$a], $r[$b]), $hi($r[$a], $r[$b])),*]
            };
        }
        let t = stage!(
            r,
            _mm256_unpacklo_epi32,
            _mm256_unpackhi_epi32,
            [(0, 1), (2, 3), (4, 5), (6, 7)]
        );
        // u[k]: elements k (low half) and k + 4 (high half) of rows 0..4,
        // then of rows 4..8.
        let u = stage!(
            t,
            _mm256_unpacklo_epi64,
            _mm256_unpackhi_epi64,
            [(0, 2), (1, 3), (4, 6), (5, 7)]
        );
        let mut c = [_mm256_setzero_si256(); 8];
        for k in 0..4 {
            c[k] = _mm256_permute2x128_si256::<0x20>(u[k], u[k + 4]);
            c[k + 4] = _mm256_permute2x128_si256::<0x31>(u[k], u[k + 4]);
        }
        c
    }

    /// [`super::finish`] for [`MULTI`] events, the last layer's i32 outputs
    /// of event `e` at `dot + e * ds`, its output at `y[e * ys..]`.
    /// A softmax tail with `lanes` runs with the events in the 8 i64 lanes:
    /// the 8 x 8 block of outputs transposed in registers (a vector per
    /// class), the max and the sum across class vectors (no horizontal
    /// reductions), one table gather per class and one for the reciprocal,
    /// and `vpmuldq` products (exact: the table values fit i32). Other
    /// tails run per event.
    #[inline(always)]
    unsafe fn finish_lanes<Q: Q8>(c: &Chain, dot: &[i32], y: &mut [i64], ys: usize, y_len: usize) {
        let (tail, ds) = (&c.tail, c.dstride);
        let n_out = c.layers.last().unwrap().k.n_out;
        const _: () = assert!(MULTI == 8);
        let Some(Tail::Softmax {
            n,
            exp_table,
            inv_table,
            rq,
            lanes: true,
            ..
        }) = tail
        else {
            for e in 0..MULTI {
                let y = &mut y[e * ys..e * ys + y_len];
                super::finish(tail, &dot[e * ds..e * ds + n_out], y);
            }
            return;
        };
        let n = *n;
        assert!(n <= MAX_LANES_N && n <= n_out && n == y_len);
        assert!(ds >= 8 && dot.len() >= 7 * ds + 8 && y.len() >= 7 * ys + n);
        let mut rows = [_mm256_setzero_si256(); MULTI];
        for (e, r) in rows.iter_mut().enumerate() {
            *r = _mm256_loadu_si256(dot.as_ptr().add(e * ds) as *const _);
        }
        let cols = transpose8(rows);
        let mut c = [Q::splat(0); MAX_LANES_N];
        let mut m = Q::splat(i64::MIN);
        for (cj, col) in c.iter_mut().zip(cols).take(n) {
            *cj = Q::from_i32(col);
            m = m.max(*cj);
        }
        let mut sum = Q::splat(0);
        for cj in c.iter_mut().take(n) {
            *cj = lookup8(exp_table, cj.sub(m));
            sum = sum.add(*cj);
        }
        let r = lookup8(inv_table, sum);
        let mut out = [[0i64; MULTI]; MAX_LANES_N];
        for (o, cj) in out.iter_mut().zip(&c).take(n) {
            rq64(rq, cj.mul32(r)).store(o.as_mut_ptr());
        }
        for e in 0..MULTI {
            for (j, d) in y[e * ys..e * ys + n].iter_mut().enumerate() {
                *d = out[j][e];
            }
        }
    }

    /// [`finish_lanes`] on AVX-512 or AVX2, by the chain's ISA.
    pub(super) unsafe fn finish_multi(
        c: &Chain,
        dot: &[i32],
        y: &mut [i64],
        ys: usize,
        y_len: usize,
    ) {
        #[target_feature(enable = "avx512f,avx2")]
        unsafe fn avx512(c: &Chain, d: &[i32], y: &mut [i64], ys: usize, yl: usize) {
            finish_lanes::<__m512i>(c, d, y, ys, yl)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(c: &Chain, d: &[i32], y: &mut [i64], ys: usize, yl: usize) {
            finish_lanes::<Y64>(c, d, y, ys, yl)
        }
        match c.layers[0].k.isa {
            Isa::Avx2 => avx2(c, dot, y, ys, y_len),
            Isa::Avx512 | Isa::Avx512Vnni => avx512(c, dot, y, ys, y_len),
            Isa::Scalar => unreachable!("the scalar chain has no vector kernels"),
        }
    }
}
