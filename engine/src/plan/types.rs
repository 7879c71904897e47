//! The plan's data: per-thread scratch, one kernel per step, the compiled
//! [`Plan`]. A leaf of `plan/`, so that compiling, fusing and executing
//! share these types without importing each other.

use crate::chain::Chain;
use crate::dense::{Operand, PackedDense, MULTI};
use crate::isa::Isa;
use crate::rq::{FastRq, Rq};
use quantize::accum::MacLayout;
use quantize::fixed::FixedType;
use quantize::qmodel::{BinOp, Table};

/// A zero-padding tap of a Conv gather or Pool window.
pub(super) const PAD: u32 = u32::MAX;

/// Per-thread working memory for [`crate::Engine::infer_with`]: allocated
/// once, reused for every event.
#[derive(Default, Debug)]
pub struct Scratch {
    pub(crate) arena: Vec<i64>,
    /// [`MULTI`] arenas back to back (multi-event batches).
    pub(crate) barena: Vec<i64>,
    pub(super) b: Bufs,
    /// The [`Sizes::id`] of the plan this scratch was last sized for.
    sized: u64,
}

#[derive(Default, Debug)]
pub(super) struct Bufs {
    pub(super) dot: Vec<i32>,
    pub(super) xpack: Vec<u16>,
    pub(super) col: Vec<i64>,
    pub(super) acc: Vec<i64>,
    /// Packed lane buffers of fused chains (ping-pong, MULTI events).
    pub(super) cx: Vec<u16>,
    /// Dot buffers of fused chains (MULTI events).
    pub(super) cdot: Vec<i32>,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sizes {
    pub(crate) arena: usize,
    pub(super) dot: usize,
    pub(super) xpack: usize,
    pub(super) col: usize,
    pub(super) acc: usize,
    pub(super) cx: usize,
    pub(super) cdot: usize,
    /// Unique to the plan these sizes were built for (0: none), so that
    /// sizing a scratch for the plan it already fits is one compare: a
    /// single event otherwise spent seven on it (buffers only grow).
    pub(super) id: u64,
}

impl Scratch {
    #[inline]
    pub(crate) fn ensure(&mut self, s: &Sizes) {
        if s.id != 0 && self.sized == s.id {
            return;
        }
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
        self.sized = s.id;
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
pub(super) enum MacPath {
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
        layout: MacLayout,
        acc_ty: FixedType,
        out_ty: FixedType,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Mac {
    pub(super) n_in: usize,
    pub(super) n_out: usize,
    pub(super) positions: usize,
    /// Conv: input index for `[position][n_in]`, `PAD` for zero padding.
    pub(super) gather: Vec<u32>,
    pub(super) path: MacPath,
}

#[derive(Clone, Debug)]
pub(super) enum Kernel {
    Mac(Box<Mac>),
    /// A convolution: one MAC per channel group, group `g` writing output
    /// channels `g * n_out..(g + 1) * n_out`.
    Conv(Vec<Mac>),
    Scale {
        scale: Vec<i64>,
        shift_al: Vec<i128>,
        layout: MacLayout,
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
    /// Thresholds and values, `k` thresholds per set (`quantize::qmodel::step_sets`).
    Step {
        th: Vec<i64>,
        vals: Vec<i64>,
        k: usize,
    },
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
    /// An elementwise op on two tensors (`quantize::qmodel::BinOp::exact`),
    /// requantized by `rq`, built for the range of exact results.
    Binary {
        op: BinOp,
        fa: i32,
        fb: i32,
        rq: Rq,
    },
    /// Copies (input, index) pairs; `rq` per input, or none when every
    /// input has the output's type (a plain gather).
    Route {
        src: Vec<(u16, u32)>,
        rq: Option<Vec<Rq>>,
    },
    /// Fused Dense + elementwise run ([`crate::chain`]).
    Chain(Box<Chain>),
}

#[derive(Clone, Debug)]
pub(super) struct Step {
    pub(super) inputs: Vec<usize>,
    pub(super) out: usize,
    pub(super) kernel: Kernel,
}

/// A compiled model for one instruction set.
#[derive(Clone, Debug)]
pub struct Plan {
    pub isa: Isa,
    pub(super) steps: Vec<Step>,
    /// Arena range of each graph input, in order.
    pub(super) inputs: Vec<std::ops::Range<usize>>,
    /// Arena range of each graph output, in order.
    pub(super) outputs: Vec<std::ops::Range<usize>>,
    /// Arena offset of each tensor.
    pub(super) offs: Vec<usize>,
    pub(super) lens: Vec<usize>,
    pub(crate) sizes: Sizes,
    /// Kernel description of each model layer.
    pub(super) descs: Vec<String>,
    /// The SIMD operands of each MAC layer on the i32 dot-product path.
    pub(super) operands: Vec<Option<Operand>>,
    /// Whether the plan is one fused chain from its input to its output
    /// ([`Plan::direct_chain`]), decided once: a single event asks twice,
    /// and the test reads a dozen fields.
    pub(super) direct: bool,
}

/// How each MAC layer was compiled, for reports and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerKernel {
    pub layer: String,
    pub op: &'static str,
    pub kernel: String,
    /// The lanes of a MAC layer's SIMD dot product (`None`: not a MAC
    /// layer, or on the general path), for peak-fraction reports.
    pub operand: Option<Operand>,
}
