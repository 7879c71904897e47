//! Random quantized networks for property tests: every backend is checked bit
//! for bit against the golden model on these, over types, modes and shapes no
//! real model happens to use.

use crate::accum::exact_accumulator;
use crate::fixed::{FixedType, Overflow, Rounding};
use crate::qmodel::{
    BinOp, Output, PoolKind, Port, QLayer, QModel, QOp, TensorId, Window, ROUTE_ZERO,
};
use crate::tables::{function_table, softmax_tables, TableFn};
use rand::Rng;

const ROUNDINGS: [Rounding; 7] = Rounding::ALL;
const OVERFLOWS: [Overflow; 4] = Overflow::ALL;

/// What kind of random network to draw.
#[derive(Clone, Debug)]
pub struct RandomSpec {
    /// Number of Dense (or Conv) layers, at least 1.
    pub max_layers: usize,
    /// Largest input and hidden width.
    pub max_neurons: usize,
    /// Widest data and weight type (2 to 32).
    pub max_bits: u32,
    /// Draw rounding and overflow modes at random (otherwise TRN/WRAP).
    pub modes: bool,
    /// Allow table activations, softmax and argmax.
    pub tables: bool,
    /// Elementwise ops may read an earlier tensor (a skip connection);
    /// otherwise they combine the current tensor with itself, and the model
    /// has one input and one output whatever `max_inputs` and `max_outputs`
    /// say. The FPGA backend's multiplier sharing (reuse > 1) needs such a
    /// chain of layers.
    pub skips: bool,
    /// Most graph inputs: inputs after the first, flat and of their own
    /// types, join the network through a wiring layer that mixes them in.
    pub max_inputs: usize,
    /// Most graph outputs: outputs after the last layer's are earlier
    /// layers' tensors, listed in random order.
    pub max_outputs: usize,
    /// Start with a convolution (1-D to 3-D, possibly grouped, dilated or
    /// transposed) and possibly a pooling stage.
    pub conv: bool,
}

impl Default for RandomSpec {
    fn default() -> Self {
        RandomSpec {
            max_layers: 3,
            max_neurons: 12,
            max_bits: 16,
            modes: true,
            tables: true,
            skips: true,
            max_inputs: 2,
            max_outputs: 2,
            conv: false,
        }
    }
}

fn random_type(rng: &mut impl Rng, spec: &RandomSpec, signed: bool) -> FixedType {
    let width = rng.gen_range(2..=spec.max_bits.max(2));
    let int_bits = rng.gen_range(-2..=width as i32 + 2);
    let mut t = if signed {
        FixedType::signed(width, int_bits)
    } else {
        FixedType::unsigned(width, int_bits)
    }
    .expect("widths drawn in range");
    if spec.modes {
        t = t
            .with_rounding(ROUNDINGS[rng.gen_range(0..ROUNDINGS.len())])
            .with_overflow(OVERFLOWS[rng.gen_range(0..OVERFLOWS.len())]);
    }
    t
}

fn random_values(rng: &mut impl Rng, ty: FixedType, n: usize) -> Vec<i64> {
    (0..n)
        .map(|_| rng.gen_range(ty.min_raw()..=ty.max_raw()))
        .collect()
}

/// Random raw input values for one event of `model` (the flat input),
/// uniformly over each input's type.
pub fn random_input(rng: &mut impl Rng, model: &QModel) -> Vec<i64> {
    model
        .input_types()
        .map(|ty| rng.gen_range(ty.min_raw()..=ty.max_raw()))
        .collect()
}

struct Builder<'a, R: Rng> {
    rng: &'a mut R,
    spec: &'a RandomSpec,
    inputs: Vec<Port>,
    layers: Vec<QLayer>,
    cur_ty: FixedType,
    cur_shape: Vec<usize>,
}

impl<R: Rng> Builder<'_, R> {
    /// The tensor the next layer reads: the last layer's, or input 0.
    fn cur(&self) -> TensorId {
        match self.layers.len() {
            0 => 0,
            n => self.inputs.len() + n - 1,
        }
    }

    fn push(&mut self, op: QOp, shape: Vec<usize>, ty: FixedType) {
        let (n, cur) = (self.layers.len(), self.cur());
        self.layers.push(QLayer {
            name: format!("{}_{n}", op.kind().to_lowercase()),
            inputs: vec![cur],
            shape: shape.clone(),
            ty,
            reuse: 1,
            op,
        });
        self.cur_ty = ty;
        self.cur_shape = shape;
    }

    /// Inputs after the first join the current tensor: a wiring layer whose
    /// values are picked from the current tensor and every other input.
    fn join_inputs(&mut self) {
        if self.inputs.len() < 2 {
            return;
        }
        let cur = self.cur();
        let mut reads = vec![cur];
        reads.extend(1..self.inputs.len());
        let lens: Vec<usize> = reads
            .iter()
            .map(|&t| match t.checked_sub(self.inputs.len()) {
                None => self.inputs[t].len(),
                Some(li) => self.layers[li].shape.iter().product(),
            })
            .collect();
        let len = lens.iter().sum::<usize>().min(self.spec.max_neurons.max(2));
        let src = (0..len)
            .map(|_| {
                let k = self.rng.gen_range(0..reads.len());
                (k as u16, self.rng.gen_range(0..lens[k]) as u32)
            })
            .collect();
        let ty = random_type(self.rng, self.spec, true);
        self.push(QOp::Route { src }, vec![len], ty);
        self.layers.last_mut().expect("just pushed").inputs = reads;
    }

    /// Weights, bias and an exact accumulator for `rows` rows of `fan_in`.
    fn weights(
        &mut self,
        rows: usize,
        fan_in: usize,
    ) -> (Vec<i64>, FixedType, Vec<i64>, FixedType, FixedType) {
        loop {
            let w_ty = random_type(self.rng, self.spec, true);
            let b_ty = random_type(self.rng, self.spec, true);
            let w = random_values(self.rng, w_ty, rows * fan_in);
            let b = random_values(self.rng, b_ty, rows);
            let acc = exact_accumulator(
                self.cur_ty,
                w_ty,
                b_ty,
                (0..rows).map(|o| (b[o], &w[o * fan_in..(o + 1) * fan_in])),
            );
            if let Ok(acc) = acc {
                return (w, w_ty, b, b_ty, acc);
            }
        }
    }

    fn dense(&mut self, n_out: usize) {
        let n_in: usize = self.cur_shape.iter().product();
        let (weights, w_ty, bias, b_ty, acc_ty) = self.weights(n_out, n_in);
        let ty = random_type(self.rng, self.spec, true);
        self.push(
            QOp::Dense {
                n_in,
                n_out,
                weights,
                w_ty,
                bias,
                b_ty,
                acc_ty,
            },
            vec![n_out],
            ty,
        );
    }

    /// A random window over the current `[C, spatial...]` tensor: kernel,
    /// stride, pads and both dilations drawn so that the kernel fits.
    fn window(&mut self, pool: bool) -> Window {
        let (c, sp) = (self.cur_shape[0], self.cur_shape[1..].to_vec());
        let mut w = Window::plain(c, sp.clone(), vec![], vec![], vec![], vec![]);
        let (mut dil, mut in_dil) = (vec![], vec![]);
        for &n in &sp {
            let in_d = if pool { 1 } else { self.rng.gen_range(1..=2) };
            let extent = (n - 1) * in_d + 1;
            let k = self.rng.gen_range(1..=extent.min(3));
            let d = if k > 1 && (k - 1) * 2 < extent {
                self.rng.gen_range(1..=2)
            } else {
                1
            };
            let span = (k - 1) * d + 1;
            let pad_max = if pool { 0 } else { span - 1 };
            w.kernel.push(k);
            w.stride.push(self.rng.gen_range(1..=2));
            w.pad_begin.push(self.rng.gen_range(0..=pad_max));
            w.pad_end.push(self.rng.gen_range(0..=pad_max));
            dil.push(d);
            in_dil.push(in_d);
        }
        if dil.iter().any(|&d| d > 1) {
            w.dilation = dil;
        }
        if in_dil.iter().any(|&d| d > 1) {
            w.in_dilation = in_dil;
        }
        w
    }

    /// A convolution of the current tensor's rank, grouped when the drawn
    /// group count divides the channels, dilated or transposed (input
    /// dilation) at random.
    fn conv(&mut self) {
        let mut window = self.window(false);
        let cin = window.in_channels;
        window.groups = self.rng.gen_range(1..=cin);
        if !cin.is_multiple_of(window.groups) {
            window.groups = 1;
        }
        let cout = window.groups * self.rng.gen_range(1..=3);
        let fan_in = window.group_channels() * window.kernel_size();
        let (weights, w_ty, bias, b_ty, acc_ty) = self.weights(cout, fan_in);
        let mut shape = vec![cout];
        shape.extend(window.out_spatial());
        let ty = random_type(self.rng, self.spec, true);
        self.push(
            QOp::Conv {
                window,
                out_channels: cout,
                weights,
                w_ty,
                bias,
                b_ty,
                acc_ty,
            },
            shape,
            ty,
        );
    }

    fn pool(&mut self) {
        let window = self.window(true);
        let k = window.kernel_size();
        let kind = if self.rng.gen_bool(0.5) {
            PoolKind::Max
        } else {
            PoolKind::Average
        };
        let recip_ty = FixedType::unsigned(18, 1).expect("valid");
        let recip = (0..=k)
            .map(|n| recip_ty.quantize_f64(if n == 0 { 0.0 } else { 1.0 / n as f64 }))
            .collect();
        let mut shape = vec![window.in_channels];
        shape.extend(window.out_spatial());
        let ty = random_type(self.rng, self.spec, true);
        self.push(
            QOp::Pool {
                kind,
                window,
                recip,
                recip_ty,
            },
            shape,
            ty,
        );
    }

    /// An elementwise op of the current tensor and an earlier one of the
    /// same length (a skip connection), or of the current tensor with itself.
    fn binary(&mut self) {
        let (n, cur) = (self.layers.len(), self.cur());
        let len: usize = self.cur_shape.iter().product();
        let same: Vec<usize> = (0..=cur)
            .filter(|&t| {
                let l = match t.checked_sub(self.inputs.len()) {
                    None => self.inputs[t].len(),
                    Some(li) => self.layers[li].shape.iter().product(),
                };
                l == len
            })
            .collect();
        let other = if self.spec.skips {
            same[self.rng.gen_range(0..same.len())]
        } else {
            cur
        };
        let op = BinOp::ALL[self.rng.gen_range(0..BinOp::ALL.len())];
        let ty = random_type(self.rng, self.spec, true);
        let shape = self.cur_shape.clone();
        self.push(op.qop(), shape, ty);
        self.layers[n].inputs = vec![cur, other];
    }

    /// Wiring: each output picks a random input value or a zero (as Slice,
    /// Gather, Pad or Resize do), quantized into a random type.
    fn route(&mut self) {
        let n: usize = self.cur_shape.iter().product();
        let len = self.rng.gen_range(1..=n + 2);
        let src = (0..len)
            .map(|_| {
                if self.rng.gen_bool(0.2) {
                    (ROUTE_ZERO, 0)
                } else {
                    (0, self.rng.gen_range(0..n) as u32)
                }
            })
            .collect();
        let ty = random_type(self.rng, self.spec, true);
        self.push(QOp::Route { src }, vec![len], ty);
    }

    fn activation(&mut self) {
        let shape = self.cur_shape.clone();
        let signed = self.rng.gen_bool(0.7);
        let ty = random_type(self.rng, self.spec, signed);
        let choice = self.rng.gen_range(0..if self.spec.tables { 5 } else { 3 });
        let op = match choice {
            0 => QOp::Relu,
            1 => {
                let a_ty = FixedType::signed(8, 1).expect("valid");
                QOp::LeakyRelu {
                    alpha: self.rng.gen_range(0..=a_ty.max_raw()),
                    a_ty,
                }
            }
            2 => {
                let (lo, hi) = (self.cur_ty.min_raw(), self.cur_ty.max_raw());
                let a = self.rng.gen_range(lo..=hi);
                let b = self.rng.gen_range(lo..=hi);
                QOp::Clip {
                    lo: a.min(b),
                    hi: a.max(b),
                }
            }
            3 => {
                let func =
                    [TableFn::Sigmoid, TableFn::Tanh, TableFn::Elu(1.0)][self.rng.gen_range(0..3)];
                let bits = self.rng.gen_range(3..=10);
                QOp::Table {
                    func: func.name().into(),
                    table: function_table(func, self.cur_ty, bits, ty),
                }
            }
            _ => {
                // One staircase for all, or one per element (the thresholds
                // of a quantizer after a per-channel BatchNormalization).
                let sets = if self.rng.gen_bool(0.5) {
                    1
                } else {
                    self.cur_shape.iter().product()
                };
                let count = self.rng.gen_range(1..=4);
                let never = self.rng.gen_bool(0.2);
                let (mut thresholds, mut values) = (Vec::new(), Vec::new());
                for _ in 0..sets {
                    let mut t = random_values(self.rng, self.cur_ty, count);
                    if never {
                        // A threshold above every input: the step is never taken.
                        t.push(self.cur_ty.max_raw().saturating_add(1));
                    }
                    t.sort_unstable();
                    values.extend(random_values(self.rng, ty, t.len() + 1));
                    thresholds.extend(t);
                }
                QOp::Step { thresholds, values }
            }
        };
        self.push(op, shape, ty);
    }

    fn head(&mut self) {
        let n: usize = self.cur_shape.iter().product();
        match self.rng.gen_range(0..3) {
            0 => {}
            1 => {
                let ty = FixedType::unsigned(1, 1).expect("valid");
                self.push(QOp::Argmax { n }, vec![n], ty);
            }
            _ => {
                let exp_ty = FixedType::unsigned(self.rng.gen_range(6..=18), 1).expect("valid");
                let inv_ty = FixedType::unsigned(self.rng.gen_range(6..=18), 1).expect("valid");
                let bits = self.rng.gen_range(4..=10);
                let (exp_table, inv_table) = softmax_tables(self.cur_ty, n, bits, exp_ty, inv_ty);
                let ty = random_type(self.rng, self.spec, false);
                self.push(
                    QOp::Softmax {
                        n,
                        exp_ty,
                        exp_table,
                        inv_ty,
                        inv_table,
                    },
                    vec![n],
                    ty,
                );
            }
        }
    }
}

/// Draws a random network: optionally a convolution stage, then Dense layers with
/// activations, then optionally a softmax or argmax head. Types, rounding and
/// overflow modes are random; accumulators are exact.
pub fn random_model(rng: &mut impl Rng, spec: &RandomSpec) -> QModel {
    let input_ty = random_type(rng, spec, true);
    let input_shape = if spec.conv {
        // 1-D to 3-D, small enough that a fully parallel kernel stays small.
        let rank = rng.gen_range(1..=3);
        let most = [8, 4, 3][rank - 1];
        let mut s = vec![rng.gen_range(1..=3)];
        s.extend((0..rank).map(|_| rng.gen_range(2..=most)));
        s
    } else {
        vec![rng.gen_range(1..=spec.max_neurons.max(1))]
    };
    let mut inputs = vec![Port {
        name: "x0".into(),
        shape: input_shape.clone(),
        ty: input_ty,
    }];
    let (max_in, max_out) = match spec.skips {
        true => (spec.max_inputs.max(1), spec.max_outputs.max(1)),
        false => (1, 1),
    };
    for k in 1..rng.gen_range(1..=max_in) {
        inputs.push(Port {
            name: format!("x{k}"),
            shape: vec![rng.gen_range(1..=spec.max_neurons.max(1))],
            ty: random_type(rng, spec, true),
        });
    }
    let mut b = Builder {
        rng,
        spec,
        inputs,
        layers: Vec::new(),
        cur_ty: input_ty,
        cur_shape: input_shape,
    };
    if spec.conv {
        b.conv();
        b.activation();
        if b.rng.gen_bool(0.5) {
            b.pool();
        }
    }
    b.join_inputs();
    if b.rng.gen_bool(0.3) {
        b.route();
    }
    let n_layers = b.rng.gen_range(1..=spec.max_layers.max(1));
    for i in 0..n_layers {
        let n_out = b.rng.gen_range(1..=spec.max_neurons.max(1));
        b.dense(n_out);
        if i + 1 < n_layers || b.rng.gen_bool(0.5) {
            b.activation();
        }
        if b.rng.gen_bool(0.3) {
            b.binary();
        }
    }
    if spec.tables {
        b.head();
    }
    let n_out = b.rng.gen_range(1..=max_out).min(b.layers.len());
    let mut outputs = vec![Output {
        name: "y0".into(),
        tensor: b.cur(),
    }];
    let n_in = b.inputs.len();
    let mut earlier: Vec<TensorId> = (n_in..b.cur()).collect();
    for k in 1..n_out {
        let t = earlier.swap_remove(b.rng.gen_range(0..earlier.len()));
        outputs.push(Output {
            name: format!("y{k}"),
            tensor: t,
        });
    }
    QModel {
        name: "random".into(),
        inputs: b.inputs,
        layers: b.layers,
        outputs,
    }
}
