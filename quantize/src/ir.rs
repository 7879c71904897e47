//! The float layer IR: what an imported ONNX graph becomes before it is
//! quantized. It has the same shape as [`crate::qmodel::QModel`] (layers in
//! order, tensors `0..n` the inputs, no batch dimension, channels-first) with real
//! numbers instead of integers, so quantization is a layer-by-layer map and the
//! float evaluation here is the reference that accuracy is measured against.

use crate::fixed::FixedType;
use crate::qmodel::{BinOp, Output, PoolKind, TensorId, Window, ROUTE_ZERO};
use crate::tables::TableFn;
use crate::taps::Taps;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub name: String,
    /// The ONNX graph inputs, in order: tensor `k` is input `k`.
    pub inputs: Vec<Input>,
    /// Layer `i` produces tensor `inputs.len() + i`.
    pub layers: Vec<Layer>,
    /// The ONNX graph outputs, in order.
    pub outputs: Vec<Output>,
}

/// A graph input: its ONNX name and the shape of one event: the ONNX shape
/// without its first axis, the event axis, or (`event_axis` false) the whole
/// static ONNX shape, when an op mixes the rows of that first axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    pub shape: Vec<usize>,
    #[serde(default = "yes")]
    pub event_axis: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// ONNX node name (op type and index when the node had none).
    pub name: String,
    pub inputs: Vec<TensorId>,
    pub shape: Vec<usize>,
    pub op: Op,
    /// The result keeps every bit (the exact type of the op on its
    /// inputs' types) instead of the configured type: the inside of one
    /// ONNX node built from several layers (a MatMul's products before
    /// their sum), where the node itself rounds nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Weights `[n_out][n_in]`; `w_quant`/`b_quant` are exact types a QONNX
    /// `Quant` imposed on the constants.
    Dense {
        n_in: usize,
        n_out: usize,
        weights: Vec<f64>,
        bias: Vec<f64>,
        w_quant: Option<FixedType>,
        b_quant: Option<FixedType>,
    },
    Conv {
        window: Window,
        out_channels: usize,
        weights: Vec<f64>,
        bias: Vec<f64>,
        w_quant: Option<FixedType>,
        b_quant: Option<FixedType>,
    },
    Scale {
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
    Relu,
    LeakyRelu(f64),
    PRelu(Vec<f64>),
    ThresholdedRelu(f64),
    Clip(f64, f64),
    Func(TableFn),
    /// A staircase: `values[count of k with y >= thresholds[k]]` (`y >
    /// thresholds[k]` where `strict[k]`: a tie that rounds down), with
    /// `y = x` or, when a per-element affine map is folded in (the
    /// BatchNormalization or constant scaling before a quantizer), `y = a x + b`.
    /// `thresholds` (and `strict`) hold `values.len() - 1` entries shared by
    /// every element, or that many per element, one element after another
    /// (FINN's per-channel MultiThreshold).
    /// The quantizer turns each element's thresholds into integer ones on
    /// its input's codes, exactly, so the affine map is never rounded.
    Step {
        thresholds: Vec<f64>,
        values: Vec<f64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        strict: Vec<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        affine: Option<Affine>,
        /// The exact type of the values (a QONNX quantizer's); `None`: the
        /// configured result type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        out: Option<FixedType>,
    },
    Softmax {
        n: usize,
    },
    Pool {
        kind: PoolKind,
        window: Window,
    },
    /// Elementwise op on two activations of the same shape.
    Binary(BinOp),
    Route {
        src: Vec<(u16, u32)>,
    },
    /// A QONNX/QDQ quantizer with an exact fixed-point type.
    Quant(FixedType),
}

/// Element `i`'s thresholds and strict flags of a [`Op::Step`] with `k`
/// thresholds per element: the shared ones, or its own.
pub fn step_of<'a>(
    thresholds: &'a [f64],
    strict: &'a [bool],
    k: usize,
    i: usize,
) -> (&'a [f64], &'a [bool]) {
    if thresholds.len() == k {
        (thresholds, strict)
    } else {
        let own = |v: &'a [bool]| v.get(i * k..(i + 1) * k).unwrap_or(&[]);
        (&thresholds[i * k..(i + 1) * k], own(strict))
    }
}

/// `y = a[i] x[i] + b[i]` per element, folded into a [`Op::Step`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

impl Affine {
    /// `y = x` on `len` elements: thresholds on the input itself, marked as
    /// a quantizer's (so the layer before keeps its exact value).
    pub fn identity(len: usize) -> Affine {
        Affine {
            a: vec![1.0; len],
            b: vec![0.0; len],
        }
    }
}

impl Op {
    /// A plain staircase on `x`: `values[count of k with x >= thresholds[k]]`.
    pub fn step(thresholds: Vec<f64>, values: Vec<f64>) -> Op {
        Op::Step {
            thresholds,
            values,
            strict: Vec::new(),
            affine: None,
            out: None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Op::Dense { .. } => "Dense",
            Op::Conv { .. } => "Conv",
            Op::Scale { .. } => "Scale",
            Op::Relu => "Relu",
            Op::LeakyRelu(_) => "LeakyRelu",
            Op::PRelu(_) => "PRelu",
            Op::ThresholdedRelu(_) => "ThresholdedRelu",
            Op::Clip(..) => "Clip",
            Op::Func(f) => f.name(),
            // A quantizer after an affine map: FINN's multi-thresholds.
            Op::Step {
                affine: Some(_), ..
            } => "Thresholds",
            Op::Step { .. } => "Step",
            Op::Softmax { .. } => "Softmax",
            Op::Pool { .. } => "Pool",
            Op::Binary(b) => b.name(),
            Op::Route { .. } => "Route",
            Op::Quant(_) => "Quant",
        }
    }

    /// Multiply-accumulates per event (0 for ops without weights).
    pub fn macs(&self) -> usize {
        match self {
            Op::Dense { weights, .. } => weights.len(),
            Op::Conv {
                weights, window, ..
            } => weights.len() * window.out_positions(),
            Op::Scale { scale, .. } => scale.len(),
            _ => 0,
        }
    }

    /// Number of stored parameters.
    pub fn params(&self) -> usize {
        match self {
            Op::Dense { weights, bias, .. } | Op::Conv { weights, bias, .. } => {
                weights.len() + bias.len()
            }
            Op::Scale { scale, shift } => scale.len() + shift.len(),
            Op::Step {
                thresholds, affine, ..
            } => thresholds.len() + affine.as_ref().map_or(0, |f| f.a.len() + f.b.len()),
            Op::PRelu(a) => a.len(),
            _ => 0,
        }
    }
}

impl Graph {
    /// Multiply-accumulates per event.
    pub fn macs(&self) -> usize {
        self.layers.iter().map(|l| l.op.macs()).sum()
    }

    /// Length of one event's flat input: every input, concatenated.
    pub fn input_len(&self) -> usize {
        self.inputs
            .iter()
            .map(|i| i.shape.iter().product::<usize>())
            .sum()
    }

    /// The tensor layer `li` produces.
    pub fn layer_tensor(&self, li: usize) -> TensorId {
        self.inputs.len() + li
    }

    /// `(name, event shape)` of each input, in order.
    pub fn input_shapes(&self) -> Vec<(&str, &[usize])> {
        self.inputs
            .iter()
            .map(|i| (i.name.as_str(), i.shape.as_slice()))
            .collect()
    }

    /// `(name, event shape)` of each output, in order.
    pub fn output_shapes(&self) -> Vec<(&str, &[usize])> {
        self.outputs
            .iter()
            .map(|o| (o.name.as_str(), self.shape(o.tensor)))
            .collect()
    }

    /// The layer that produces tensor `t`, `None` for an input.
    pub fn layer_of(&self, t: TensorId) -> Option<usize> {
        t.checked_sub(self.inputs.len())
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        match self.layer_of(t) {
            None => &self.inputs[t].shape,
            Some(li) => &self.layers[li].shape,
        }
    }

    /// Length of one event's flat output: every output, concatenated.
    pub fn output_len(&self) -> usize {
        self.outputs
            .iter()
            .map(|o| self.shape(o.tensor).iter().product::<usize>())
            .sum()
    }

    /// Float evaluation of one event (the flat input); returns every tensor
    /// (inputs first). For many events, make one [`Evaluator`] and use it for all.
    pub fn evaluate_all(&self, input: &[f64]) -> Vec<Vec<f64>> {
        Evaluator::new(self).evaluate_all(input)
    }

    /// Float evaluation of one event; returns the flat output.
    pub fn evaluate(&self, input: &[f64]) -> Vec<f64> {
        Evaluator::new(self).evaluate(input)
    }
}

/// A graph made ready to evaluate many events: its convolutions' taps
/// computed once. Shared by reference between threads.
pub struct Evaluator<'g> {
    graph: &'g Graph,
    taps: Vec<Option<Taps>>,
}

impl<'g> Evaluator<'g> {
    pub fn new(graph: &'g Graph) -> Self {
        let taps = graph
            .layers
            .iter()
            .map(|l| match &l.op {
                Op::Conv { window, .. } => Some(Taps::new(window)),
                _ => None,
            })
            .collect();
        Evaluator { graph, taps }
    }

    /// Float evaluation of one event (the flat input); returns every tensor (inputs first).
    pub fn evaluate_all(&self, input: &[f64]) -> Vec<Vec<f64>> {
        let g = self.graph;
        let mut t: Vec<Vec<f64>> = Vec::with_capacity(g.inputs.len() + g.layers.len());
        let mut rest = input;
        for i in &g.inputs {
            let (x, r) = rest.split_at(i.shape.iter().product::<usize>().min(rest.len()));
            t.push(x.to_vec());
            rest = r;
        }
        for (l, taps) in self.graph.layers.iter().zip(&self.taps) {
            let y = eval_layer(l, taps.as_ref(), &t);
            t.push(y);
        }
        t
    }

    /// Float evaluation of one event; returns the flat output.
    pub fn evaluate(&self, input: &[f64]) -> Vec<f64> {
        crate::qmodel::gather(&self.graph.outputs, &self.evaluate_all(input))
    }
}

fn eval_layer(l: &Layer, taps: Option<&Taps>, t: &[Vec<f64>]) -> Vec<f64> {
    let x = &t[l.inputs[0]];
    let elementwise = |f: &dyn Fn(f64) -> f64| x.iter().map(|&v| f(v)).collect::<Vec<_>>();
    match &l.op {
        Op::Dense {
            n_in,
            n_out,
            weights,
            bias,
            ..
        } => (0..*n_out)
            .map(|o| {
                bias[o]
                    + weights[o * n_in..(o + 1) * n_in]
                        .iter()
                        .zip(x)
                        .map(|(w, v)| w * v)
                        .sum::<f64>()
            })
            .collect(),
        Op::Conv {
            window,
            out_channels,
            weights,
            bias,
            ..
        } => {
            // Every output starts at its bias and adds its taps' products in
            // the order of Window::conv_taps (input channel of its group,
            // then kernel offset), one weight at a time over all positions.
            let taps = taps.expect("Evaluator prepares every Conv's taps");
            let (ksz, inp, gc) = (
                window.kernel_size(),
                window.in_positions(),
                window.group_channels(),
            );
            let per_oc = gc * ksz;
            let mut y = Vec::with_capacity(out_channels * taps.positions());
            for oc in 0..*out_channels {
                let g = window.group_of(oc, *out_channels);
                let w = &weights[oc * per_oc..(oc + 1) * per_oc];
                let start = y.len();
                y.resize(start + taps.positions(), bias[oc]);
                let yc = &mut y[start..];
                for (ic, xc) in x.chunks(inp).skip(g * gc).take(gc).enumerate() {
                    for k in 0..ksz {
                        let wk = w[ic * ksz + k];
                        for r in taps.runs(k) {
                            r.accumulate(yc, xc, wk);
                        }
                    }
                }
            }
            y
        }
        Op::Scale { scale, shift } => x
            .iter()
            .zip(scale.iter().zip(shift))
            .map(|(v, (s, b))| v * s + b)
            .collect(),
        Op::Relu => elementwise(&|v| v.max(0.0)),
        Op::LeakyRelu(a) => elementwise(&|v| if v >= 0.0 { v } else { a * v }),
        Op::PRelu(a) => x
            .iter()
            .zip(a)
            .map(|(&v, &s)| if v >= 0.0 { v } else { s * v })
            .collect(),
        Op::ThresholdedRelu(th) => elementwise(&|v| if v > *th { v } else { 0.0 }),
        Op::Clip(lo, hi) => elementwise(&|v| v.clamp(*lo, *hi)),
        Op::Func(f) => elementwise(&|v| f.eval(v)),
        Op::Step {
            thresholds,
            values,
            strict,
            affine,
            ..
        } => x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let y = affine.as_ref().map_or(v, |f| f.a[i] * v + f.b[i]);
                let (th, st) = step_of(thresholds, strict, values.len() - 1, i);
                let reached = th
                    .iter()
                    .enumerate()
                    .filter(|&(k, &t)| {
                        if st.get(k) == Some(&true) {
                            y > t
                        } else {
                            y >= t
                        }
                    })
                    .count();
                values[reached]
            })
            .collect(),
        Op::Softmax { n } => {
            let mut y = Vec::with_capacity(x.len());
            for g in x.chunks(*n) {
                let m = g.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = g.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                y.extend(e.iter().map(|v| v / s));
            }
            y
        }
        Op::Pool { kind, window } => window
            .pool_windows()
            .map(|w| {
                let vals = w.iter().map(|&i| x[i]);
                match kind {
                    PoolKind::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                    PoolKind::Average => vals.sum::<f64>() / w.len().max(1) as f64,
                }
            })
            .collect(),
        Op::Binary(op) => x
            .iter()
            .zip(&t[l.inputs[1]])
            .map(|(&a, &b)| match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Max => a.max(b),
                BinOp::Min => a.min(b),
            })
            .collect(),
        Op::Route { src } => src
            .iter()
            .map(|&(k, j)| match k {
                ROUTE_ZERO => 0.0,
                _ => t[l.inputs[k as usize]][j as usize],
            })
            .collect(),
        Op::Quant(ty) => elementwise(&|v| ty.to_f64(ty.quantize_f64(v))),
    }
}
