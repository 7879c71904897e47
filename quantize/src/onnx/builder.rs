//! The layer list under construction: appending layers, and folding an
//! elementwise affine (a BatchNormalization, a constant Add or Mul) into the
//! layer before it when nothing else reads that layer's output, so that the
//! folding is one float multiply per weight and nothing more.

use super::decode::Node;
use super::value::{Act, Value};
use crate::ir::{Layer, Op};
use crate::qmodel::TensorId;
use std::collections::HashMap;

pub struct Builder {
    /// The default ONNX opset of the model: some ops changed meaning across opsets.
    pub opset: i64,
    /// How many nodes (and graph outputs) read each tensor name.
    pub uses: HashMap<String, usize>,
    /// The ONNX names each tensor goes by (an op that passes its input on,
    /// such as a Reshape, gives it another).
    pub names: HashMap<TensorId, Vec<String>>,
    /// Number of graph inputs: layer `i` produces tensor `n_inputs + i`.
    pub n_inputs: usize,
    pub layers: Vec<Layer>,
}

impl Builder {
    /// Appends a layer; its output is tensor `n_inputs + layers.len() - 1`,
    /// `shape` per event, events on a leading axis (see [`Act::with_batch`]).
    pub fn push(&mut self, name: String, op: Op, inputs: Vec<TensorId>, shape: Vec<usize>) -> Act {
        self.layers.push(Layer {
            name,
            inputs,
            shape: shape.clone(),
            op,
            exact: false,
        });
        Act::new(self.n_inputs + self.layers.len() - 1, shape)
    }

    /// One layer of `op` on `x`, keeping its shape: the activation functions.
    pub fn unary(&mut self, name: &str, x: &Act, op: Op) -> Value {
        Value::Act(
            self.push(name.into(), op, vec![x.id], x.shape.clone())
                .with_batch(x.batch),
        )
    }

    /// True when the node's first input is read by exactly one node and is
    /// not a graph output: the condition for folding the node into the layer
    /// that made that input.
    fn single_use(&self, n: &Node) -> bool {
        self.uses.get(&n.proto.input[0]).copied() == Some(1)
    }

    /// True when one node in all reads tensor `t` and it is no graph
    /// output. Each name after the first came from a node that read the
    /// tensor under an earlier name and passed it on (a Reshape, an affine
    /// map folded into the layer): that read is no reader of its own.
    fn read_once(&self, t: TensorId) -> bool {
        self.names.get(&t).is_some_and(|names| {
            let reads: usize = names
                .iter()
                .map(|n| self.uses.get(n).copied().unwrap_or(0))
                .sum();
            reads == names.len()
        })
    }

    /// The Relu layer that made `x` and the Scale layer before it, when node
    /// `n` alone reads the Relu and the Relu alone the Scale: a quantizer
    /// after `Scale -> Relu` (Brevitas' QuantReLU after a BatchNormalization)
    /// takes both places. Returns the Scale layer's index.
    pub fn relu_scale_before(&self, n: &Node, x: &Act) -> Option<usize> {
        if x.id < self.n_inputs || !self.single_use(n) {
            return None;
        }
        let relu = &self.layers[x.id - self.n_inputs];
        let z = *relu.inputs.first()?;
        (matches!(relu.op, Op::Relu)
            && z >= self.n_inputs
            && self.read_once(z)
            && matches!(self.layers[z - self.n_inputs].op, Op::Scale { .. }))
        .then_some(z - self.n_inputs)
    }

    /// Drops the layers that nothing reads, no layer and no graph output:
    /// what rewrites that fold one layer into another leave behind. Tensor
    /// numbers close up.
    pub fn prune(&mut self, outputs: &mut [crate::qmodel::Output]) {
        let n_in = self.n_inputs;
        let mut live = vec![false; n_in + self.layers.len()];
        for o in outputs.iter() {
            live[o.tensor] = true;
        }
        for i in (0..self.layers.len()).rev() {
            if live[n_in + i] {
                for &t in &self.layers[i].inputs {
                    live[t] = true;
                }
            }
        }
        let mut id: Vec<usize> = (0..n_in).collect();
        let mut kept = Vec::with_capacity(self.layers.len());
        for (i, mut l) in std::mem::take(&mut self.layers).into_iter().enumerate() {
            if live[n_in + i] {
                l.inputs.iter_mut().for_each(|t| *t = id[*t]);
                kept.push(l);
                id.push(n_in + kept.len() - 1);
            } else {
                id.push(usize::MAX); // read by nothing live
            }
        }
        for o in outputs.iter_mut() {
            o.tensor = id[o.tensor];
        }
        self.layers = kept;
    }

    /// The index of the Scale layer that made `x`, when node `n` alone
    /// reads it: a quantizer after an affine map (a BatchNormalization, a
    /// constant scaling), or a MatMul after a dequantization, takes that
    /// layer's place ([`Builder::replace_scale`]).
    pub fn scale_before(&self, n: &Node, x: &Act) -> Option<usize> {
        let si = x.id.checked_sub(self.n_inputs)?;
        (self.single_use(n) && matches!(self.layers[si].op, Op::Scale { .. })).then_some(si)
    }

    /// The coefficients of Scale layer `si`.
    pub fn scale_of(&self, si: usize) -> (&[f64], &[f64]) {
        match &self.layers[si].op {
            Op::Scale { scale, shift } => (scale, shift),
            _ => unreachable!("layer {si} is a Scale layer"),
        }
    }

    /// Puts `op(scale, shift)` in the place of Scale layer `si` (the layer
    /// that takes its affine map in), named `name`, of shape `shape`.
    pub fn replace_scale(
        &mut self,
        si: usize,
        name: String,
        shape: Vec<usize>,
        op: impl FnOnce(Vec<f64>, Vec<f64>) -> Op,
    ) {
        let l = &mut self.layers[si];
        let Op::Scale { scale, shift } = std::mem::replace(&mut l.op, Op::Relu) else {
            unreachable!("layer {si} is a Scale layer");
        };
        l.op = op(scale, shift);
        l.name = name;
        l.shape = shape;
    }

    /// Elementwise affine on `x`: folded into the layer that produced `x` when
    /// that layer is a Dense, Conv or Scale read only here, else a Scale layer.
    pub fn affine(&mut self, n: &Node, x: &Act, scale: Vec<f64>, shift: Vec<f64>) -> Act {
        let name = n.name;
        if x.id >= self.n_inputs && self.single_use(n) {
            let prev = &mut self.layers[x.id - self.n_inputs];
            let per_out = |len: usize| -> Option<(Vec<f64>, Vec<f64>)> {
                // Constant over each output channel?
                let per = scale.len() / len;
                (0..len)
                    .all(|c| {
                        (0..per).all(|j| {
                            scale[c * per + j] == scale[c * per]
                                && shift[c * per + j] == shift[c * per]
                        })
                    })
                    .then(|| {
                        (
                            (0..len).map(|c| scale[c * per]).collect(),
                            (0..len).map(|c| shift[c * per]).collect(),
                        )
                    })
            };
            match &mut prev.op {
                // Weights a QONNX quantizer made exact stay exact: only a pure
                // bias is folded into them; a scaling becomes its own layer.
                Op::Dense {
                    w_quant: Some(_), ..
                }
                | Op::Conv {
                    w_quant: Some(_), ..
                } if scale.iter().any(|&s| s != 1.0) => {}
                Op::Dense {
                    n_out: rows,
                    weights,
                    bias,
                    w_quant,
                    b_quant,
                    ..
                }
                | Op::Conv {
                    out_channels: rows,
                    weights,
                    bias,
                    w_quant,
                    b_quant,
                    ..
                } => {
                    if let Some((s, b)) = per_out(*rows) {
                        let k = weights.len() / *rows;
                        for o in 0..*rows {
                            weights[o * k..(o + 1) * k]
                                .iter_mut()
                                .for_each(|w| *w *= s[o]);
                            bias[o] = bias[o] * s[o] + b[o];
                        }
                        if s.iter().any(|&v| v != 1.0) {
                            *w_quant = None;
                        }
                        *b_quant = None;
                        prev.name = format!("{}+{name}", prev.name);
                        return x.clone();
                    }
                }
                Op::Scale {
                    scale: s0,
                    shift: b0,
                } => {
                    for i in 0..s0.len() {
                        s0[i] *= scale[i];
                        b0[i] = b0[i] * scale[i] + shift[i];
                    }
                    prev.name = format!("{}+{name}", prev.name);
                    return x.clone();
                }
                _ => {}
            }
        }
        self.push(
            name.into(),
            Op::Scale { scale, shift },
            vec![x.id],
            x.shape.clone(),
        )
        .with_batch(x.batch)
    }
}
