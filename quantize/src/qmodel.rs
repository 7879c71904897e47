//! The quantized network: integer weights, fixed-point types and the exact
//! meaning of every layer. This is the contract the golden model evaluates and
//! that the CPU engine and the HDL kernels must reproduce bit for bit, so every
//! field here is something a backend needs, and every rule of arithmetic is
//! written down on the op that uses it.
//!
//! Tensors are numbered: tensor 0 is the model input, layer `i` produces
//! tensor `i + 1`. Layers are in topological order. Shapes carry no batch
//! dimension. Values are raw integers: `value = raw * 2^-frac_bits` of the
//! tensor's [`FixedType`].

use crate::fixed::FixedType;
use serde::{Deserialize, Serialize};

/// Index of a tensor: 0 is the model input, `i + 1` is the output of layer `i`.
pub type TensorId = usize;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QModel {
    pub name: String,
    /// Shape of one event (no batch dimension).
    pub input_shape: Vec<usize>,
    /// Type of the input features: float inputs are quantized with it on the way in.
    pub input_ty: FixedType,
    pub layers: Vec<QLayer>,
    /// Names of the model's output classes or values, when known.
    #[serde(default)]
    pub output_names: Vec<String>,
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
    pub fn index(&self, x_raw: i64) -> usize {
        let d = (x_raw as i128 - self.offset as i128) >> self.shift;
        d.clamp(0, self.values.len() as i128 - 1) as usize
    }

    pub fn lookup(&self, x_raw: i64) -> i64 {
        self.values[self.index(x_raw)]
    }
}

/// Geometry of a convolution or pooling window over a channels-first tensor
/// `[C, spatial...]` (ONNX layout without the batch dimension), 1 or 2 spatial
/// dimensions. Padding is zero padding for convolutions and is skipped (not
/// counted) for pooling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub in_channels: usize,
    pub in_spatial: Vec<usize>,
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub pad_begin: Vec<usize>,
    pub pad_end: Vec<usize>,
}

impl Window {
    pub fn out_spatial(&self) -> Vec<usize> {
        (0..self.in_spatial.len())
            .map(|d| {
                (self.in_spatial[d] + self.pad_begin[d] + self.pad_end[d] - self.kernel[d])
                    / self.stride[d]
                    + 1
            })
            .collect()
    }

    /// The taps of a convolution at output position `p`, input channel by
    /// input channel: `(j, i)` with `j = ic * kernel_size + k` the offset of
    /// the weight within an output channel's weights and `i` the flat index
    /// of the input it multiplies, padding left out.
    pub fn conv_taps(&self, p: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (ksz, inp) = (self.kernel_size(), self.in_positions());
        (0..self.in_channels).flat_map(move |ic| {
            (0..ksz).filter_map(move |k| self.tap(p, k).map(|q| (ic * ksz + k, ic * inp + q)))
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

    /// Input spatial positions (flattened, row-major) read by output position
    /// `out` and kernel offset `k` (both flattened); `None` for padding.
    pub fn tap(&self, out: usize, k: usize) -> Option<usize> {
        let out_sp = self.out_spatial();
        let mut rem_o = out;
        let mut rem_k = k;
        let mut idx = 0usize;
        // Walk dimensions from the last (fastest) to the first.
        let mut coords = vec![0i64; self.in_spatial.len()];
        for d in (0..self.in_spatial.len()).rev() {
            let o = rem_o % out_sp[d];
            rem_o /= out_sp[d];
            let kk = rem_k % self.kernel[d];
            rem_k /= self.kernel[d];
            coords[d] = (o * self.stride[d] + kk) as i64 - self.pad_begin[d] as i64;
            if coords[d] < 0 || coords[d] >= self.in_spatial[d] as i64 {
                return None;
            }
        }
        for (&c, &size) in coords.iter().zip(&self.in_spatial) {
            idx = idx * size + c as usize;
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
        self.out_spatial().iter().product()
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
    /// weights are `[C_out][C_in][kernel...]` (ONNX order), zero padding.
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
    /// thresholds ascending raw values of the input type, `values` raw values
    /// of the result type (`thresholds.len() + 1` of them). This is how a
    /// QONNX `Quant` with a non-power-of-two scale is kept exact on its input.
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
    /// Elementwise sum of two tensors of the same shape (exact), then quantized.
    Add,
    /// Pure wiring: `y[j] = input[src[j].0][src[j].1]`, each value quantized
    /// into the result type (a no-op when the types match). Covers Flatten,
    /// Reshape, Transpose, Squeeze, Concat.
    Route { src: Vec<(u16, u32)> },
    /// Identity, quantized into the result type: a QONNX `Quant` with a
    /// power-of-two scale, or an explicit cast.
    Requant,
}

impl QOp {
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
            } => out_channels * window.out_positions() * window.in_channels * window.kernel_size(),
            QOp::Scale { .. } => out_len,
            _ => 0,
        }
    }
}

impl QModel {
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Shape of tensor `t`.
    pub fn shape(&self, t: TensorId) -> &[usize] {
        if t == 0 {
            &self.input_shape
        } else {
            &self.layers[t - 1].shape
        }
    }

    pub fn tensor_len(&self, t: TensorId) -> usize {
        self.shape(t).iter().product()
    }

    /// Type of tensor `t`.
    pub fn ty(&self, t: TensorId) -> FixedType {
        if t == 0 {
            self.input_ty
        } else {
            self.layers[t - 1].ty
        }
    }

    /// The model output is the last layer's output (the input if there are no layers).
    pub fn output(&self) -> TensorId {
        self.layers.len()
    }

    pub fn output_len(&self) -> usize {
        self.tensor_len(self.output())
    }

    pub fn output_ty(&self) -> FixedType {
        self.ty(self.output())
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
                | QOp::Route { .. }
                | QOp::Requant => {}
            }
        }
        out
    }
}
