//! The quantized network: integer weights, fixed-point types and the exact
//! meaning of every layer. This is the contract the golden model evaluates and
//! that the CPU engine and the HDL kernels must reproduce bit for bit, so every
//! field here is something a backend needs, and every rule of arithmetic is
//! written down on the op that uses it.
//!
//! Tensors are numbered: tensors `0..n` are the model's `n` inputs, layer `i`
//! produces tensor `n + i`. Layers are in topological order. Shapes carry no
//! batch dimension. Values are raw integers: `value = raw * 2^-frac_bits` of
//! the tensor's [`FixedType`].
//!
//! An event crosses every boundary (golden model, engine, C API, kernel
//! buses, files) as one flat vector: its inputs concatenated in order, and its
//! outputs likewise; [`QModel::input_range`] and [`QModel::output_range`] say
//! where each one lies. A one-input, one-output model is the plain case.

use crate::fixed::FixedType;
use serde::{Deserialize, Serialize};

/// Index of a tensor: `k < n` is input `k` of `n`, `n + i` the output of layer `i`.
pub type TensorId = usize;

/// The input number of a [`QOp::Route`] source that stands for the value 0
/// (zero padding): no layer has this many inputs.
pub const ROUTE_ZERO: u16 = u16::MAX;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "ModelFile")]
pub struct QModel {
    pub name: String,
    /// The graph inputs, in ONNX order: tensor `k` is input `k`. Float
    /// features are quantized with each input's type on the way in.
    pub inputs: Vec<Port>,
    pub layers: Vec<QLayer>,
    /// The graph outputs, in ONNX order.
    pub outputs: Vec<Output>,
}

/// A graph input: its ONNX name, the shape of one event and its type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    pub shape: Vec<usize>,
    pub ty: FixedType,
}

impl Port {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A graph output: its ONNX name and the tensor that holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub name: String,
    pub tensor: TensorId,
}

/// What a `.bxq` holds: today's fields, or the one input and one output
/// (the last layer's) of files written before models had several.
#[derive(Deserialize)]
struct ModelFile {
    name: String,
    #[serde(default)]
    inputs: Vec<Port>,
    input_shape: Option<Vec<usize>>,
    input_ty: Option<FixedType>,
    layers: Vec<QLayer>,
    outputs: Option<Vec<Output>>,
}

/// The flat output of an event: the tensors of `outputs` (of `tensors`,
/// indexed by [`TensorId`]) one after the other. The float IR's rule too.
pub fn gather<T: Copy>(outputs: &[Output], tensors: &[Vec<T>]) -> Vec<T> {
    let mut out = Vec::new();
    for o in outputs {
        out.extend_from_slice(&tensors[o.tensor]);
    }
    out
}

impl From<ModelFile> for QModel {
    fn from(f: ModelFile) -> Self {
        let mut inputs = f.inputs;
        if let (Some(shape), Some(ty)) = (f.input_shape, f.input_ty) {
            inputs.push(Port {
                name: "input".into(),
                shape,
                ty,
            });
        }
        let outputs = f.outputs.unwrap_or_else(|| {
            vec![Output {
                name: "output".into(),
                tensor: f.layers.len(),
            }]
        });
        QModel {
            name: f.name,
            inputs,
            layers: f.layers,
            outputs,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QLayer {
    /// Name of the ONNX node (or fused nodes) this layer came from.
    pub name: String,
    pub inputs: Vec<TensorId>,
    /// Output shape (no batch dimension).
    pub shape: Vec<usize>,
    /// Type of every output element: the op's exact result is quantized into it
    /// with its rounding and overflow modes.
    pub ty: FixedType,
    /// How many times each multiplier is shared in hardware (hls4ml's ReuseFactor).
    /// It does not change the numbers.
    #[serde(default = "one")]
    pub reuse: u32,
    pub op: QOp,
}

fn one() -> u32 {
    1
}

/// A lookup table for an elementwise function of one fixed-point input.
///
/// `index = clamp((x_raw - offset) >> shift, 0, values.len() - 1)` with an
/// arithmetic (flooring) shift; the output is `values[index]`, already a raw
/// value of the layer's result type. Tables are part of the model so that CPU
/// and hardware agree exactly instead of each approximating the function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub offset: i64,
    pub shift: u32,
    pub values: Vec<i64>,
}

impl Table {
    #[inline]
    pub fn index(&self, x_raw: i64) -> usize {
        let d = (x_raw as i128 - self.offset as i128) >> self.shift;
        d.clamp(0, self.values.len() as i128 - 1) as usize
    }

    #[inline]
    pub fn lookup(&self, x_raw: i64) -> i64 {
        self.values[self.index(x_raw)]
    }
}

/// Geometry of a convolution or pooling window over a channels-first tensor
/// `[C, spatial...]` (ONNX layout without the batch dimension), any number of
/// spatial dimensions. Padding is zero padding for convolutions and is skipped
/// (not counted) for pooling.
///
/// One description covers every sliding-window op, so that each backend has
/// one rule of geometry ([`Window::tap`]) instead of one per op:
/// - `dilation` spaces the kernel's taps (ONNX `dilations`);
/// - `in_dilation` spaces the input's samples: the window slides over the
///   input with `in_dilation - 1` zeros between neighbours. A transposed
///   convolution of stride `s` is a convolution of stride 1 over the input
///   dilated by `s`, with the kernel flipped (see the importer);
/// - `groups` splits the channels: output channel group `g` reads only the
///   input channels of group `g` (grouped and depthwise convolutions).
///
/// `dilation` and `in_dilation` are empty when they are 1 in every
/// dimension, as models written before they existed have them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub in_channels: usize,
    pub in_spatial: Vec<usize>,
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub pad_begin: Vec<usize>,
    pub pad_end: Vec<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dilation: Vec<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_dilation: Vec<usize>,
    #[serde(default = "one_group", skip_serializing_if = "is_one_group")]
    pub groups: usize,
}

fn one_group() -> usize {
    1
}

fn is_one_group(g: &usize) -> bool {
    *g == 1
}

impl Window {
    /// A plain window: no dilation of either kind, one group.
    pub fn plain(
        in_channels: usize,
        in_spatial: Vec<usize>,
        kernel: Vec<usize>,
        stride: Vec<usize>,
        pad_begin: Vec<usize>,
        pad_end: Vec<usize>,
    ) -> Self {
        Window {
            in_channels,
            in_spatial,
            kernel,
            stride,
            pad_begin,
            pad_end,
            dilation: Vec::new(),
            in_dilation: Vec::new(),
            groups: 1,
        }
    }

    /// Kernel tap spacing in dimension `d`.
    pub fn dil(&self, d: usize) -> usize {
        self.dilation.get(d).copied().unwrap_or(1)
    }

    /// Input sample spacing in dimension `d`.
    pub fn in_dil(&self, d: usize) -> usize {
        self.in_dilation.get(d).copied().unwrap_or(1)
    }

    /// Extent of the (dilated) input in dimension `d`, padding excluded.
    fn in_extent(&self, d: usize) -> usize {
        (self.in_spatial[d] - 1) * self.in_dil(d) + 1
    }

    /// Extent of the (dilated) kernel in dimension `d`.
    pub fn span(&self, d: usize) -> usize {
        (self.kernel[d] - 1) * self.dil(d) + 1
    }

    fn out_dim(&self, d: usize) -> usize {
        (self.in_extent(d) + self.pad_begin[d] + self.pad_end[d] - self.span(d)) / self.stride[d]
            + 1
    }

    pub fn out_spatial(&self) -> Vec<usize> {
        (0..self.in_spatial.len())
            .map(|d| self.out_dim(d))
            .collect()
    }

    /// Input channels each output channel reads.
    pub fn group_channels(&self) -> usize {
        self.in_channels / self.groups
    }

    /// The group of output channel `oc` of `out_channels`.
    pub fn group_of(&self, oc: usize, out_channels: usize) -> usize {
        oc / (out_channels / self.groups)
    }

    /// The taps of a convolution at output position `p` for an output
    /// channel of group `g`, input channel by input channel of that group:
    /// `(j, i)` with `j = ic * kernel_size + k` the offset of the weight
    /// within an output channel's weights and `i` the flat index of the input
    /// it multiplies, padding and inserted zeros left out.
    pub fn conv_taps(&self, g: usize, p: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (ksz, inp, gc) = (
            self.kernel_size(),
            self.in_positions(),
            self.group_channels(),
        );
        (0..gc).flat_map(move |ic| {
            (0..ksz).filter_map(move |k| {
                self.tap(p, k)
                    .map(|q| (ic * ksz + k, (g * gc + ic) * inp + q))
            })
        })
    }

    /// The windows of a pooling layer, one per output in output order
    /// (channel-major): the flat indices of the inputs each one reads,
    /// padding left out. Every backend pools over exactly these.
    pub fn pool_windows(&self) -> impl Iterator<Item = Vec<usize>> + '_ {
        let (inp, outp, ksz) = (
            self.in_positions(),
            self.out_positions(),
            self.kernel_size(),
        );
        (0..self.in_channels).flat_map(move |c| {
            (0..outp).map(move |p| {
                (0..ksz)
                    .filter_map(|k| self.tap(p, k).map(|q| c * inp + q))
                    .collect()
            })
        })
    }

    /// The input spatial position (flattened, row-major) read by output
    /// position `out` and kernel offset `k` (both flattened); `None` where
    /// the tap falls on padding or on a zero inserted by `in_dilation`.
    pub fn tap(&self, out: usize, k: usize) -> Option<usize> {
        let (mut rem_o, mut rem_k) = (out, k);
        let (mut idx, mut scale) = (0usize, 1usize);
        // Walk dimensions from the last (fastest) to the first.
        for d in (0..self.in_spatial.len()).rev() {
            let n_out = self.out_dim(d);
            let o = rem_o % n_out;
            rem_o /= n_out;
            let kk = rem_k % self.kernel[d];
            rem_k /= self.kernel[d];
            let c = (o * self.stride[d] + kk * self.dil(d)) as i64 - self.pad_begin[d] as i64;
            if c < 0
                || c >= self.in_extent(d) as i64
                || !(c as usize).is_multiple_of(self.in_dil(d))
            {
                return None;
            }
            idx += c as usize / self.in_dil(d) * scale;
            scale *= self.in_spatial[d];
        }
        Some(idx)
    }

    pub fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }

    pub fn in_positions(&self) -> usize {
        self.in_spatial.iter().product()
    }

    pub fn out_positions(&self) -> usize {
        (0..self.in_spatial.len())
            .map(|d| self.out_dim(d))
            .product()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    Max,
    Average,
}

/// What a layer computes. Rules of arithmetic shared by all multiply-accumulate
/// ops (Dense, Conv, Scale):
///
/// 1. each product `w * x` is exact, then rounded to the accumulator's LSB
///    with the accumulator's rounding mode (no overflow check);
/// 2. the bias is rounded to the accumulator's LSB the same way;
/// 3. bias and products are summed exactly;
/// 4. the accumulator's overflow mode is applied once to the total;
/// 5. the accumulator value is quantized into the layer's result type.
///
/// With the default exact accumulator (wide enough for the sum, LSB equal to
/// the product LSB) steps 1, 2 and 4 do nothing. Applying overflow once, not
/// per addition, keeps the order of additions free, so adder trees, SIMD lanes
/// and sequential loops all agree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QOp {
    /// `y[o] = b[o] + sum_i w[o * n_in + i] * x[i]`; the input is read as a flat vector.
    Dense {
        n_in: usize,
        n_out: usize,
        weights: Vec<i64>,
        w_ty: FixedType,
        bias: Vec<i64>,
        b_ty: FixedType,
        acc_ty: FixedType,
    },
    /// Convolution over `[C_in, spatial...]` to `[C_out, out_spatial...]`;
    /// weights are `[C_out][C_in / groups][kernel...]` (ONNX order), zero
    /// padding; output channel `oc` belongs to group
    /// `oc / (C_out / groups)` and reads the taps [`Window::conv_taps`]
    /// gives for that group.
    Conv {
        window: Window,
        out_channels: usize,
        weights: Vec<i64>,
        w_ty: FixedType,
        bias: Vec<i64>,
        b_ty: FixedType,
        acc_ty: FixedType,
    },
    /// Elementwise affine `y[i] = x[i] * scale[i] + shift[i]` (unfolded
    /// BatchNormalization, constant Mul/Add/Sub/Div); vectors have the
    /// tensor's full size.
    Scale {
        scale: Vec<i64>,
        s_ty: FixedType,
        shift: Vec<i64>,
        b_ty: FixedType,
        acc_ty: FixedType,
    },
    /// `max(x, 0)`, then quantized into the result type.
    Relu,
    /// `x >= 0 ? x : alpha * x` (exact product), then quantized.
    LeakyRelu { alpha: i64, a_ty: FixedType },
    /// `x >= 0 ? x : alpha[i] * x` with one slope per element.
    PRelu { alpha: Vec<i64>, a_ty: FixedType },
    /// `x > theta ? x : 0`, `theta` a raw value of the input type.
    ThresholdedRelu { theta: i64 },
    /// `clamp(x, lo, hi)`, bounds as raw values of the input type, `lo <= hi`.
    Clip { lo: i64, hi: i64 },
    /// Elementwise function by table (sigmoid, tanh, elu, ...); `func` names it for reports.
    Table { func: String, table: Table },
    /// A staircase: `y = values[count of k with x >= thresholds[k]]`,
    /// thresholds ascending raw values of the input type (the last may be one
    /// past its largest code: a step never taken), `values` raw values
    /// of the result type (`thresholds.len() + 1` of them). There may be
    /// several such sets, one after another ([`step_sets`]): element `i`
    /// uses set `i % sets`, so a quantizer after a per-channel
    /// BatchNormalization is one set per element (integer thresholds, as
    /// FINN's streamlining makes them). This is how a quantizer after
    /// affine ops is kept exact on the integer accumulator before them.
    Step {
        thresholds: Vec<i64>,
        values: Vec<i64>,
    },
    /// Numerically stable softmax over each group of `n` consecutive elements:
    /// `d = x - max(group)` (exact, <= 0); `e = exp_table[d]` (raw of `exp_ty`);
    /// `s = sum e` (exact, >= 1 because the maximum contributes exp(0));
    /// `r = inv_table[s]` (raw of `inv_ty`, with `s` read at `exp_ty`'s LSB);
    /// `y = quantize(e * r)` (exact product at LSB exp_ty + inv_ty).
    Softmax {
        n: usize,
        exp_ty: FixedType,
        exp_table: Table,
        inv_ty: FixedType,
        inv_table: Table,
    },
    /// One-hot of the first maximum in each group of `n` elements: the class
    /// decision a trigger needs, with no table at all.
    Argmax { n: usize },
    /// Max or average over windows, per channel. Average: the exact window sum
    /// (padding not counted) times `recip[count]`, a raw of `recip_ty` holding
    /// `1/count` rounded to nearest, then quantized. Max ignores `recip`.
    Pool {
        kind: PoolKind,
        window: Window,
        recip: Vec<i64>,
        recip_ty: FixedType,
    },
    /// Elementwise sum of two tensors of the same shape (exact), then
    /// quantized: [`BinOp::Add`]'s rule.
    Add,
    /// Elementwise `a - b`, exact, then quantized ([`BinOp::Sub`]).
    Sub,
    /// Elementwise `a * b`, exact, then quantized ([`BinOp::Mul`]).
    Mul,
    /// Elementwise maximum, then quantized ([`BinOp::Max`]).
    Max,
    /// Elementwise minimum, then quantized ([`BinOp::Min`]).
    Min,
    /// Pure wiring: `y[j] = input[src[j].0][src[j].1]`, each value quantized
    /// into the result type (a no-op when the types match); a source
    /// `(ROUTE_ZERO, _)` is the value 0. Covers Transpose, Concat, Slice,
    /// Gather, Split, Pad, Resize (nearest), DepthToSpace.
    Route { src: Vec<(u16, u32)> },
    /// Identity, quantized into the result type: a QONNX `Quant` with a
    /// power-of-two scale, or an explicit cast.
    Requant,
}

/// An elementwise op on two tensors of the same shape. Its one rule of
/// arithmetic, [`BinOp::exact`], is what the golden model and the CPU engine
/// compute and what the FPGA kernel builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Max,
    Min,
}

impl BinOp {
    pub const ALL: [BinOp; 5] = [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Max, BinOp::Min];

    pub fn name(self) -> &'static str {
        match self {
            BinOp::Add => "Add",
            BinOp::Sub => "Sub",
            BinOp::Mul => "Mul",
            BinOp::Max => "Max",
            BinOp::Min => "Min",
        }
    }

    /// The layer op.
    pub fn qop(self) -> QOp {
        match self {
            BinOp::Add => QOp::Add,
            BinOp::Sub => QOp::Sub,
            BinOp::Mul => QOp::Mul,
            BinOp::Max => QOp::Max,
            BinOp::Min => QOp::Min,
        }
    }

    /// Fractional bits of the exact result for operands at `fa` and `fb`:
    /// the product's for Mul, the finer operand's otherwise.
    pub fn frac(self, fa: i32, fb: i32) -> i32 {
        match self {
            BinOp::Mul => fa + fb,
            _ => fa.max(fb),
        }
    }

    /// The narrowest type that holds every result of this op on values of
    /// types `a` and `b` exactly (no rounding, no overflow), at
    /// [`BinOp::frac`] fractional bits; an error when that needs over 64 bits.
    pub fn exact_type(self, a: FixedType, b: FixedType) -> Result<FixedType, String> {
        let (fa, fb) = (a.frac_bits(), b.frac_bits());
        let f = self.frac(fa, fb);
        // Widths of the operands at the result's LSB, and as signed types.
        let (wa, wb) = match self {
            BinOp::Mul => (a.width as i64, b.width as i64),
            _ => (
                a.width as i64 + (f - fa) as i64,
                b.width as i64 + (f - fb) as i64,
            ),
        };
        let (sa, sb) = (wa + !a.signed as i64, wb + !b.signed as i64);
        let unsigned = !a.signed && !b.signed;
        let (width, signed) = match self {
            // |a*b| < 2^(wa+wb-1) when either is signed, < 2^(wa+wb) when neither.
            BinOp::Mul => (wa + wb, !unsigned),
            BinOp::Add if unsigned => (wa.max(wb) + 1, false),
            BinOp::Add | BinOp::Sub => (sa.max(sb) + 1, true),
            BinOp::Max | BinOp::Min if unsigned => (wa.max(wb), false),
            BinOp::Max | BinOp::Min => (sa.max(sb), true),
        };
        if width > 64 {
            return Err(format!(
                "the exact {} of {a} and {b} needs {width} bits, over 64: give its inputs narrower types",
                self.name()
            ));
        }
        let t = if signed {
            FixedType::signed(width as u32, width as i32 - f)
        } else {
            FixedType::unsigned(width as u32, width as i32 - f)
        };
        t.map_err(|e| format!("exact {} type: {e}", self.name()))
    }

    /// The exact result of raw `a` (at `fa` fractional bits) op raw `b` (at
    /// `fb`), at [`BinOp::frac`] bits: both operands are first aligned to
    /// the finer LSB (a left shift, exact), except for Mul, whose product
    /// is exact as it is.
    #[inline]
    pub fn exact(self, a: i64, fa: i32, b: i64, fb: i32) -> i128 {
        if self == BinOp::Mul {
            return a as i128 * b as i128;
        }
        let f = fa.max(fb);
        let (u, v) = (align(a, fa, f), align(b, fb, f));
        match self {
            BinOp::Add => u + v,
            BinOp::Sub => u - v,
            BinOp::Max => u.max(v),
            _ => u.min(v),
        }
    }
}

/// Raw `v` at `from` fractional bits as a raw at `to >= from` bits.
#[inline]
fn align(v: i64, from: i32, to: i32) -> i128 {
    (v as i128) << (to - from)
}

/// Number of threshold sets of a Step: each has `k` thresholds and `k + 1`
/// values, so the value count exceeds the threshold count by the set count.
pub fn step_sets(thresholds: &[i64], values: &[i64]) -> usize {
    values.len().saturating_sub(thresholds.len())
}

/// A Step's output for element `i` of value `v` (sets as [`step_sets`] says;
/// the layer's lengths are checked by validation first).
#[inline]
pub fn step_apply(thresholds: &[i64], values: &[i64], i: usize, v: i64) -> i64 {
    let sets = step_sets(thresholds, values);
    let k = thresholds.len() / sets;
    let s = i % sets;
    let th = &thresholds[s * k..(s + 1) * k];
    values[s * (k + 1) + th.iter().filter(|&&t| v >= t).count()]
}

impl QOp {
    /// The elementwise op of a two-input layer.
    pub fn binary(&self) -> Option<BinOp> {
        match self {
            QOp::Add => Some(BinOp::Add),
            QOp::Sub => Some(BinOp::Sub),
            QOp::Mul => Some(BinOp::Mul),
            QOp::Max => Some(BinOp::Max),
            QOp::Min => Some(BinOp::Min),
            _ => None,
        }
    }

    /// Short name for tables and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            QOp::Dense { .. } => "Dense",
            QOp::Conv { .. } => "Conv",
            QOp::Scale { .. } => "Scale",
            QOp::Relu => "Relu",
            QOp::LeakyRelu { .. } => "LeakyRelu",
            QOp::PRelu { .. } => "PRelu",
            QOp::ThresholdedRelu { .. } => "ThresholdedRelu",
            QOp::Clip { .. } => "Clip",
            QOp::Table { .. } => "Table",
            QOp::Step { .. } => "Step",
            QOp::Softmax { .. } => "Softmax",
            QOp::Argmax { .. } => "Argmax",
            QOp::Pool { .. } => "Pool",
            QOp::Add => "Add",
            QOp::Sub => "Sub",
            QOp::Mul => "Mul",
            QOp::Max => "Max",
            QOp::Min => "Min",
            QOp::Route { .. } => "Route",
            QOp::Requant => "Requant",
        }
    }

    /// Number of multiply-accumulates per event (0 for ops without weights).
    pub fn macs(&self, out_len: usize) -> usize {
        match self {
            QOp::Dense { n_in, n_out, .. } => n_in * n_out,
            QOp::Conv {
                window,
                out_channels,
                ..
            } => {
                out_channels
                    * window.out_positions()
                    * window.group_channels()
                    * window.kernel_size()
            }
            QOp::Scale { .. } => out_len,
            _ => 0,
        }
    }
}

impl QModel {
    /// A model of one input and one output, the last layer's (the input's
    /// when there are no layers).
    pub fn single(name: &str, input: Port, layers: Vec<QLayer>) -> Self {
        let tensor = layers.len();
        QModel {
            name: name.into(),
            inputs: vec![input],
            layers,
            outputs: vec![Output {
                name: "output".into(),
                tensor,
            }],
        }
    }

    /// The tensor layer `li` produces.
    pub fn layer_tensor(&self, li: usize) -> TensorId {
        self.inputs.len() + li
    }

    /// The layer that produces tensor `t`, `None` for an input.
    pub fn layer_of(&self, t: TensorId) -> Option<usize> {
        t.checked_sub(self.inputs.len())
    }

    /// Number of tensors: inputs and layer outputs.
    pub fn tensors(&self) -> usize {
        self.inputs.len() + self.layers.len()
    }

    /// Length of one event's flat input: every input, concatenated.
    pub fn input_len(&self) -> usize {
        self.inputs.iter().map(Port::len).sum()
    }

    /// `(name, event shape)` of each input, in order: what files of events
    /// are read against.
    pub fn input_shapes(&self) -> Vec<(&str, &[usize])> {
        self.inputs
            .iter()
            .map(|p| (p.name.as_str(), p.shape.as_slice()))
            .collect()
    }

    /// `(name, event shape)` of each output, in order.
    pub fn output_shapes(&self) -> Vec<(&str, &[usize])> {
        self.outputs
            .iter()
            .map(|o| (o.name.as_str(), self.shape(o.tensor)))
            .collect()
    }

    /// Where input `k` lies in the flat input.
    pub fn input_range(&self, k: usize) -> std::ops::Range<usize> {
        let start: usize = self.inputs[..k].iter().map(Port::len).sum();
        start..start + self.inputs[k].len()
    }

    /// Shape of tensor `t`.
    pub fn shape(&self, t: TensorId) -> &[usize] {
        match self.layer_of(t) {
            None => &self.inputs[t].shape,
            Some(li) => &self.layers[li].shape,
        }
    }

    pub fn tensor_len(&self, t: TensorId) -> usize {
        self.shape(t).iter().product()
    }

    /// Type of tensor `t`.
    pub fn ty(&self, t: TensorId) -> FixedType {
        match self.layer_of(t) {
            None => self.inputs[t].ty,
            Some(li) => self.layers[li].ty,
        }
    }

    /// The type of every element of the flat input (an input's type over its range).
    pub fn input_types(&self) -> impl Iterator<Item = FixedType> + '_ {
        self.inputs
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.ty, p.len()))
    }

    /// Length of one event's flat output: every output, concatenated.
    pub fn output_len(&self) -> usize {
        self.outputs.iter().map(|o| self.tensor_len(o.tensor)).sum()
    }

    /// Where output `k` lies in the flat output.
    pub fn output_range(&self, k: usize) -> std::ops::Range<usize> {
        let start: usize = self.outputs[..k]
            .iter()
            .map(|o| self.tensor_len(o.tensor))
            .sum();
        start..start + self.tensor_len(self.outputs[k].tensor)
    }

    /// The type of every element of the flat output.
    pub fn output_types(&self) -> impl Iterator<Item = FixedType> + '_ {
        self.outputs
            .iter()
            .flat_map(|o| std::iter::repeat_n(self.ty(o.tensor), self.tensor_len(o.tensor)))
    }

    /// The flat output of an event from its tensors (indexed by [`TensorId`]).
    pub fn gather_outputs<T: Copy>(&self, tensors: &[Vec<T>]) -> Vec<T> {
        gather(&self.outputs, tensors)
    }

    pub fn macs(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.op.macs(l.shape.iter().product()))
            .sum()
    }
}

impl QModel {
    /// Every integer array of the model, in a fixed order: what the `.bxq`
    /// blob stores, so the JSON metadata stays small and the weights aligned.
    pub fn arrays_mut(&mut self) -> Vec<&mut Vec<i64>> {
        let mut out: Vec<&mut Vec<i64>> = Vec::new();
        for l in &mut self.layers {
            match &mut l.op {
                QOp::Dense { weights, bias, .. } | QOp::Conv { weights, bias, .. } => {
                    out.push(weights);
                    out.push(bias);
                }
                QOp::Scale { scale, shift, .. } => {
                    out.push(scale);
                    out.push(shift);
                }
                QOp::PRelu { alpha, .. } => out.push(alpha),
                QOp::Table { table, .. } => out.push(&mut table.values),
                QOp::Step { thresholds, values } => {
                    out.push(thresholds);
                    out.push(values);
                }
                QOp::Softmax {
                    exp_table,
                    inv_table,
                    ..
                } => {
                    out.push(&mut exp_table.values);
                    out.push(&mut inv_table.values);
                }
                QOp::Pool { recip, .. } => out.push(recip),
                QOp::Relu
                | QOp::LeakyRelu { .. }
                | QOp::ThresholdedRelu { .. }
                | QOp::Clip { .. }
                | QOp::Argmax { .. }
                | QOp::Add
                | QOp::Sub
                | QOp::Mul
                | QOp::Max
                | QOp::Min
                | QOp::Route { .. }
                | QOp::Requant => {}
            }
        }
        out
    }
}
