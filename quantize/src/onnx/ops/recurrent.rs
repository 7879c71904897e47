//! Recurrent layers (ONNX RNN, GRU and LSTM), unrolled over their static
//! sequence. Each time step becomes layers every backend already runs: a
//! wiring layer picks the step's rows of the input projection (one Dense
//! over the whole sequence), a Dense of the previous hidden state, sums,
//! tables for the gate activations and exact products, so that the golden
//! model, the CPU engine and the FPGA kernel agree bit for bit by
//! construction. Step layers are named `NODE.f3.i` (direction `f` or `r`,
//! step 3, part `i`), which is how the configuration types them.
//!
//! The whole ONNX definition: directions, both layouts, constant
//! `sequence_lens` (per batch row), constant initial states, peepholes,
//! `clip`, the activation list with its alphas and betas, and GRU's
//! `linear_before_reset`.

use super::layers::dense_rows;
use crate::ir::Op;
use crate::onnx::builder::Builder;
use crate::onnx::decode::Node;
use crate::onnx::value::{mixes_events, Act, Const, Value};
use crate::qmodel::{BinOp, ROUTE_ZERO};
use crate::tables::TableFn;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rnn,
    Gru,
    Lstm,
}

impl Kind {
    fn gates(self) -> usize {
        match self {
            Kind::Rnn => 1,
            Kind::Gru => 3,
            Kind::Lstm => 4,
        }
    }

    /// The activation functions of one direction when the node names none.
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Kind::Rnn => &["Tanh"],
            Kind::Gru => &["Sigmoid", "Tanh"],
            Kind::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// One activation function of the list: `post_scale * op(pre_scale * x) + post_shift`.
#[derive(Clone)]
struct Activation {
    pre: f64,
    op: Option<Op>,
    post: (f64, f64),
}

/// The `activations` list with `activation_alpha` and `activation_beta`,
/// consumed in order by the functions that take them.
fn activations(n: &Node, kind: Kind, dirs: usize) -> Result<Vec<Activation>, String> {
    let names: Vec<String> = match n.attr("activations") {
        Some(a) if !a.strings.is_empty() => a
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        _ => kind
            .default_activations()
            .iter()
            .cycle()
            .take(kind.default_activations().len() * dirs)
            .map(|s| s.to_string())
            .collect(),
    };
    let floats = |attr: &str| -> Vec<f64> {
        n.attr(attr)
            .map(|a| a.floats.iter().map(|&v| v as f64).collect())
            .unwrap_or_default()
    };
    let (alphas, betas) = (floats("activation_alpha"), floats("activation_beta"));
    let (mut ai, mut bi) = (0, 0);
    let take = |list: &[f64], i: &mut usize, default: f64| {
        let v = list.get(*i).copied().unwrap_or(default);
        *i += 1;
        v
    };
    let plain = |op: Op| Activation {
        pre: 1.0,
        op: Some(op),
        post: (1.0, 0.0),
    };
    let per = kind.default_activations().len();
    if names.len() != per && names.len() != per * dirs {
        return Err(format!(
            "activations {names:?}: {} expects {per} per direction",
            n.op()
        ));
    }
    names
        .iter()
        .map(|name| {
            Ok(match name.to_ascii_lowercase().as_str() {
                "relu" => plain(Op::Relu),
                "tanh" => plain(Op::Func(TableFn::Tanh)),
                "sigmoid" => plain(Op::Func(TableFn::Sigmoid)),
                "softsign" => plain(Op::Func(TableFn::Softsign)),
                "softplus" => plain(Op::Func(TableFn::Softplus)),
                "leakyrelu" => plain(Op::LeakyRelu(take(&alphas, &mut ai, 0.01))),
                "thresholdedrelu" => plain(Op::ThresholdedRelu(take(&alphas, &mut ai, 1.0))),
                "elu" => plain(Op::Func(TableFn::Elu(take(&alphas, &mut ai, 1.0)))),
                "hardsigmoid" => {
                    let a = take(&alphas, &mut ai, 0.2);
                    plain(Op::Func(TableFn::HardSigmoid(
                        a,
                        take(&betas, &mut bi, 0.5),
                    )))
                }
                "affine" => Activation {
                    pre: 1.0,
                    op: None,
                    post: (take(&alphas, &mut ai, 1.0), take(&betas, &mut bi, 0.0)),
                },
                "scaledtanh" => {
                    let a = take(&alphas, &mut ai, 1.0);
                    Activation {
                        pre: take(&betas, &mut bi, 1.0),
                        op: Some(Op::Func(TableFn::Tanh)),
                        post: (a, 0.0),
                    }
                }
                other => return Err(format!("activation '{other}' is not supported")),
            })
        })
        .collect()
}

/// A `[rows, width]` value of one event while unrolling: known zeros, a
/// constant (row-major), or an activation.
#[derive(Clone)]
enum V {
    Zero,
    C(Vec<f64>),
    A(Act),
}

/// The layers of one recurrent node under construction.
struct Cell<'a> {
    b: &'a mut Builder,
    /// `NODE.f3` while building step 3 of the forward direction.
    prefix: String,
    /// Batch rows inside one event: 1 when the batch is the event axis.
    rows: usize,
    clip: Option<f64>,
}

impl Cell<'_> {
    fn shape(&self, width: usize) -> Vec<usize> {
        if self.rows == 1 {
            vec![width]
        } else {
            vec![self.rows, width]
        }
    }

    fn push(&mut self, part: &str, op: Op, inputs: Vec<usize>, width: usize) -> Act {
        let shape = self.shape(width);
        self.b
            .push(format!("{}.{part}", self.prefix), op, inputs, shape)
    }

    fn scale(&mut self, part: &str, x: &Act, scale: Vec<f64>, shift: Vec<f64>) -> V {
        let width = scale.len() / self.rows;
        V::A(self.push(part, Op::Scale { scale, shift }, vec![x.id], width))
    }

    fn binary(&mut self, part: &str, op: BinOp, x: &Act, y: &Act) -> V {
        let width = x.shape.last().copied().unwrap_or(1);
        V::A(self.push(part, Op::Binary(op), vec![x.id, y.id], width))
    }

    fn add(&mut self, part: &str, x: V, y: V) -> V {
        match (x, y) {
            (V::Zero, v) | (v, V::Zero) => v,
            (V::C(a), V::C(c)) => V::C(a.iter().zip(&c).map(|(a, c)| a + c).collect()),
            (V::A(a), V::C(c)) | (V::C(c), V::A(a)) => self.scale(part, &a, vec![1.0; c.len()], c),
            (V::A(a), V::A(c)) => self.binary(part, BinOp::Add, &a, &c),
        }
    }

    fn sub(&mut self, part: &str, x: V, y: V) -> V {
        match (x, y) {
            (v, V::Zero) => v,
            (V::Zero, V::C(c)) => V::C(c.iter().map(|v| -v).collect()),
            (V::Zero, V::A(a)) => {
                let len = a.shape.iter().product();
                self.scale(part, &a, vec![-1.0; len], vec![0.0; len])
            }
            (V::C(a), V::C(c)) => V::C(a.iter().zip(&c).map(|(a, c)| a - c).collect()),
            (V::A(a), V::C(c)) => {
                self.scale(part, &a, vec![1.0; c.len()], c.iter().map(|v| -v).collect())
            }
            (V::C(c), V::A(a)) => self.scale(part, &a, vec![-1.0; c.len()], c),
            (V::A(a), V::A(c)) => self.binary(part, BinOp::Sub, &a, &c),
        }
    }

    fn mul(&mut self, part: &str, x: V, y: V) -> V {
        match (x, y) {
            (V::Zero, _) | (_, V::Zero) => V::Zero,
            (V::C(a), V::C(c)) => V::C(a.iter().zip(&c).map(|(a, c)| a * c).collect()),
            (V::A(a), V::C(c)) | (V::C(c), V::A(a)) => {
                self.scale(part, &a, c.clone(), vec![0.0; c.len()])
            }
            (V::A(a), V::A(c)) => self.binary(part, BinOp::Mul, &a, &c),
        }
    }

    /// `x` (rows of `n_in`) times `weights` (`[n_out][n_in]`) plus `bias`.
    fn dense(&mut self, part: &str, x: &V, weights: &[f64], bias: &[f64], w: &Const) -> V {
        let (n_out, n_in) = (bias.len(), weights.len() / bias.len().max(1));
        match x {
            V::Zero if bias.iter().all(|&v| v == 0.0) => V::Zero,
            V::Zero => V::C(bias.repeat(self.rows)),
            V::C(h) => V::C(
                (0..self.rows * n_out)
                    .map(|i| {
                        let (r, o) = (i / n_out, i % n_out);
                        let row = &weights[o * n_in..(o + 1) * n_in];
                        let x = &h[r * n_in..(r + 1) * n_in];
                        bias[o] + row.iter().zip(x).map(|(w, x)| w * x).sum::<f64>()
                    })
                    .collect(),
            ),
            V::A(a) => {
                let op = Op::Dense {
                    n_in,
                    n_out,
                    weights: weights.to_vec(),
                    bias: bias.to_vec(),
                    w_quant: w.quant,
                    b_quant: None,
                };
                let name = format!("{}.{part}", self.prefix);
                V::A(dense_rows(self.b, &name, a, op))
            }
        }
    }

    /// Columns `lo..hi` of each row of `x` (`width` wide).
    fn pick(&mut self, part: &str, x: &V, width: usize, lo: usize, hi: usize) -> V {
        match x {
            V::Zero => V::Zero,
            V::C(c) => V::C(
                (0..self.rows)
                    .flat_map(|r| c[r * width + lo..r * width + hi].to_vec())
                    .collect(),
            ),
            V::A(a) if lo == 0 && hi == width => V::A(a.clone()),
            V::A(a) => {
                let src = (0..self.rows)
                    .flat_map(|r| (lo..hi).map(move |j| (0u16, (r * width + j) as u32)))
                    .collect();
                V::A(self.push(part, Op::Route { src }, vec![a.id], hi - lo))
            }
        }
    }

    /// An activation function of the list on `x`, after the cell clip.
    fn activate(&mut self, part: &str, f: &Activation, x: V) -> Result<V, String> {
        let V::A(mut a) = x else {
            return Err("a gate that does not depend on the input".into());
        };
        let len: usize = a.shape.iter().product();
        let width = a.shape.last().copied().unwrap_or(1);
        if let Some(c) = self.clip {
            a = self.push(&format!("{part}_clip"), Op::Clip(-c, c), vec![a.id], width);
        }
        if f.pre != 1.0 {
            let V::A(s) = self.scale(&format!("{part}_in"), &a, vec![f.pre; len], vec![0.0; len])
            else {
                unreachable!("a scale of an activation")
            };
            a = s;
        }
        if let Some(op) = &f.op {
            a = self.push(part, op.clone(), vec![a.id], width);
        }
        if f.post != (1.0, 0.0) {
            return Ok(self.scale(
                &format!("{part}_out"),
                &a,
                vec![f.post.0; len],
                vec![f.post.1; len],
            ));
        }
        Ok(V::A(a))
    }

    /// Names the layer that computes `v` `part` when this step made it
    /// (step 0's cell is its write product, no sum): the configuration then
    /// finds every step's state under one name.
    fn name_as(&mut self, v: &V, part: &str, step_start: usize) {
        let V::A(a) = v else { return };
        // The layer that makes tensor `a.id` (inputs come first).
        match a.id.checked_sub(self.b.n_inputs) {
            Some(l) if l >= step_start => self.b.layers[l].name = format!("{}.{part}", self.prefix),
            _ => {}
        }
    }

    /// Row `r` of `new` where `keep[r]` is false, else of `old`: a sequence
    /// that has ended keeps its state.
    fn hold(&mut self, part: &str, new: V, old: &V, keep: &[bool], width: usize) -> V {
        if !keep.contains(&true) {
            return new;
        }
        let (V::A(n), V::A(o)) = (&new, old) else {
            unreachable!("every sequence has at least one step")
        };
        let src = (0..self.rows)
            .flat_map(|r| {
                let k = u16::from(keep[r]);
                (0..width).map(move |j| (k, (r * width + j) as u32))
            })
            .collect();
        V::A(self.push(part, Op::Route { src }, vec![n.id, o.id], width))
    }
}

/// One constant parameter's values for direction `d` of `dirs` (each
/// direction `len` values), or zeros when the input is absent.
fn per_direction(c: Option<&Const>, d: usize, len: usize, what: &str) -> Result<Vec<f64>, String> {
    match c {
        None => Ok(vec![0.0; len]),
        Some(c) if c.data.len() % len == 0 && c.data.len() / len > d => {
            Ok(c.data[d * len..(d + 1) * len].to_vec())
        }
        Some(c) => Err(format!(
            "{what} of shape {:?} does not hold {len} values per direction",
            c.shape
        )),
    }
}

/// Values given per batch row (`width` each) as the rows inside one
/// event: the same, or one row when the batch is the event axis and every
/// row agrees.
fn per_row(v: Vec<f64>, width: usize, rows: usize, what: &str) -> Result<Vec<f64>, String> {
    let real = v.len() / width.max(1);
    if real == rows {
        return Ok(v);
    }
    if rows == 1 && real > 1 {
        if v.chunks(width).all(|r| r == &v[..width]) {
            return Ok(v[..width].to_vec());
        }
        return Err(mixes_events(format!(
            "{what} that differ between batch rows"
        )));
    }
    Err(format!("{what} has {real} rows for a batch of {rows}"))
}

/// RNN, GRU and LSTM on an activation `X`: the unrolled layers, and the
/// values of the node's outputs `Y`, `Y_h` (and LSTM's `Y_c`).
pub fn recurrent(b: &mut Builder, n: &Node, x: &Act) -> Result<Vec<Value>, String> {
    let kind = match n.op() {
        "RNN" => Kind::Rnn,
        "GRU" => Kind::Gru,
        _ => Kind::Lstm,
    };
    if !matches!(n.inputs.first(), Some(Some(Value::Act(_)))) {
        return Err("X must be the activation".into());
    }
    if let Some(k) = (1..n.inputs.len()).find(|&k| matches!(n.inputs[k], Some(Value::Act(_)))) {
        return Err(format!(
            "input {k} ('{}') must be a constant",
            n.proto.input[k]
        ));
    }
    let layout = n.attr_i("layout", 0);
    let view = x.view();
    if view.len() != 3 || !(0..=1).contains(&layout) {
        return Err(format!(
            "X of shape {view:?} with layout {layout}: expected 3 axes and layout 0 or 1"
        ));
    }
    let (t_ax, b_ax) = if layout == 0 { (0, 1) } else { (1, 0) };
    x.not_along(&[t_ax, 2], &format!("{} over time", n.op()))?;
    let (steps, rows, n_in) = (view[t_ax], view[b_ax], view[2]);
    let reverse: Vec<bool> = match n.attr_s("direction").as_deref().unwrap_or("forward") {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        other => return Err(format!("direction '{other}' is not supported")),
    };
    let dirs = reverse.len();
    let (w, r) = (n.konst(1)?, n.konst(2)?);
    let g = kind.gates();
    let h = match n.attr_i("hidden_size", 0) {
        v if v > 0 => v as usize,
        _ => w.shape.get(1).copied().unwrap_or(0) / g,
    };
    if w.shape != [dirs, g * h, n_in] || r.shape != [dirs, g * h, h] || h == 0 {
        return Err(format!(
            "W {:?} and R {:?} do not match {dirs} direction(s), {g} gate(s) of hidden size {h} and {n_in} inputs",
            w.shape, r.shape
        ));
    }
    if kind == Kind::Lstm && n.attr_i("input_forget", 0) != 0 {
        return Err("input_forget=1 is not supported".into());
    }
    let clip = Some(n.attr_f("clip", 0.0)).filter(|&c| c > 0.0);
    let lbr = kind == Kind::Gru && n.attr_i("linear_before_reset", 0) != 0;
    let acts = activations(n, kind, dirs)?;
    let per = kind.default_activations().len();
    let lens: Vec<usize> = match n.opt_const(4) {
        None => vec![steps; rows],
        Some(c) => per_row(c.data.clone(), 1, rows, "sequence_lens")?
            .iter()
            .map(|&v| {
                (v >= 1.0 && v <= steps as f64)
                    .then_some(v as usize)
                    .ok_or(format!("sequence length {v} is not in 1..={steps}"))
            })
            .collect::<Result<_, _>>()?,
    };
    let state = |k: usize, d: usize, what: &str| -> Result<V, String> {
        match n.opt_const(k) {
            None => Ok(V::Zero),
            Some(c) if c.data.iter().all(|&v| v == 0.0) => Ok(V::Zero),
            Some(c) => {
                // Layout 1 stores [batch, directions, hidden], in that
                // order whatever the dims say (ROOT's file labels it [2, 3, 4]).
                let batch_first = layout == 1;
                let all = if batch_first {
                    c.data
                        .chunks(h)
                        .skip(d)
                        .step_by(dirs)
                        .flatten()
                        .copied()
                        .collect()
                } else {
                    per_direction(Some(c), d, c.data.len() / dirs, what)?
                };
                Ok(V::C(per_row(all, h, rows, what)?))
            }
        }
    };
    // The flat index of X's (or the projection's) value at (time, row, j).
    let at = |t: usize, row: usize, width: usize| {
        if layout == 0 {
            (t * rows + row) * width
        } else {
            (row * steps + t) * width
        }
    };
    let mut outs_h = Vec::with_capacity(dirs * steps); // the new h of each (direction, step)
    let mut finals: Vec<(V, V)> = Vec::with_capacity(dirs);
    for (d, &rev) in reverse.iter().enumerate() {
        let f = |i: usize| &acts[(d * per + i) % acts.len()];
        let wd = &w.data[d * g * h * n_in..(d + 1) * g * h * n_in];
        let rd = &r.data[d * g * h * h..(d + 1) * g * h * h];
        let bias = per_direction(n.opt_const(3), d, 2 * g * h, "B")?;
        let (wb, rb) = bias.split_at(g * h);
        // The projection's bias: both biases, but GRU's `linear_before_reset`
        // keeps the hidden gate's recurrent bias inside the reset product.
        let xb: Vec<f64> = (0..g * h)
            .map(|j| wb[j] + if lbr && j >= 2 * h { 0.0 } else { rb[j] })
            .collect();
        let dir = if rev { "r" } else { "f" };
        let proj = dense_rows(
            b,
            &format!("{}.{dir}.x", n.name),
            x,
            Op::Dense {
                n_in,
                n_out: g * h,
                weights: wd.to_vec(),
                bias: xb,
                w_quant: w.quant,
                b_quant: None,
            },
        );
        let mut hs = state(5, d, "initial_h")?;
        let mut cs = state(6, d, "initial_c")?;
        let peep = per_direction(n.opt_const(7), d, 3 * h, "P")?;
        let peep: Vec<Vec<f64>> = (0..3)
            .map(|k| peep[k * h..(k + 1) * h].repeat(rows))
            .collect();
        let has_peep = n.opt_const(7).is_some();
        for s in 0..steps {
            let mut c = Cell {
                b: &mut *b,
                prefix: format!("{}.{dir}{s}", n.name),
                rows,
                clip,
            };
            let step_start = c.b.layers.len();
            let time = |row: usize| if rev { lens[row] - 1 - s } else { s };
            let ended: Vec<bool> = (0..rows).map(|row| s >= lens[row]).collect();
            let src = (0..rows)
                .flat_map(|row| {
                    let base = (!ended[row]).then(|| at(time(row), row, g * h));
                    (0..g * h).map(move |j| match base {
                        Some(i) => (0u16, (i + j) as u32),
                        None => (ROUTE_ZERO, 0),
                    })
                })
                .collect();
            let xt = V::A(c.push("xt", Op::Route { src }, vec![proj.id], g * h));
            let h_new = match kind {
                Kind::Rnn => {
                    let rec = c.dense("rec", &hs, rd, &vec![0.0; h], r);
                    let pre = c.add("pre", xt, rec);
                    c.activate("h", f(0), pre)?
                }
                Kind::Lstm => {
                    let rec = c.dense("rec", &hs, rd, &vec![0.0; g * h], r);
                    let pre = c.add("pre", xt, rec);
                    let gate = |c: &mut Cell, k: usize, name: &str| {
                        c.pick(&format!("{name}_pre"), &pre, g * h, k * h, (k + 1) * h)
                    };
                    let (i_pre, o_pre) = (gate(&mut c, 0, "i"), gate(&mut c, 1, "o"));
                    let (f_pre, g_pre) = (gate(&mut c, 2, "f"), gate(&mut c, 3, "c"));
                    let (i_pre, f_pre) = if has_peep {
                        let pi = c.mul("i_peep", V::C(peep[0].clone()), cs.clone());
                        let pf = c.mul("f_peep", V::C(peep[2].clone()), cs.clone());
                        (c.add("i_in", i_pre, pi), c.add("f_in", f_pre, pf))
                    } else {
                        (i_pre, f_pre)
                    };
                    let i = c.activate("i", f(0), i_pre)?;
                    let fg = c.activate("f", f(0), f_pre)?;
                    let cand = c.activate("c", f(1), g_pre)?;
                    let keep = c.mul("keep", fg, cs.clone());
                    let write = c.mul("write", i, cand);
                    let c_new = c.add("cell", keep, write);
                    c.name_as(&c_new, "cell", step_start);
                    let o_pre = if has_peep {
                        let po = c.mul("o_peep", V::C(peep[1].clone()), c_new.clone());
                        c.add("o_in", o_pre, po)
                    } else {
                        o_pre
                    };
                    let o = c.activate("o", f(0), o_pre)?;
                    let hc = c.activate("hc", f(2), c_new.clone())?;
                    cs = c.hold("cell_held", c_new, &cs, &ended, h);
                    c.mul("h", o, hc)
                }
                Kind::Gru => {
                    let rec = c.dense("rec", &hs, &rd[..2 * h * h], &vec![0.0; 2 * h], r);
                    let zr = c.pick("zr_x", &xt, g * h, 0, 2 * h);
                    let pre = c.add("zr_pre", zr, rec);
                    let z_pre = c.pick("z_pre", &pre, 2 * h, 0, h);
                    let r_pre = c.pick("r_pre", &pre, 2 * h, h, 2 * h);
                    let z = c.activate("z", f(0), z_pre)?;
                    let rg = c.activate("r", f(0), r_pre)?;
                    let xh = c.pick("h_x", &xt, g * h, 2 * h, 3 * h);
                    let rh = &rd[2 * h * h..];
                    let pre_h = if lbr {
                        let lin = c.dense("h_rec", &hs, rh, &rb[2 * h..], r);
                        let reset = c.mul("reset", rg, lin);
                        c.add("h_pre", xh, reset)
                    } else {
                        let reset = c.mul("reset", rg, hs.clone());
                        let lin = c.dense("h_rec", &reset, rh, &vec![0.0; h], r);
                        c.add("h_pre", xh, lin)
                    };
                    let cand = c.activate("cand", f(1), pre_h)?;
                    // (1 - z) * cand + z * h = cand + z * (h - cand)
                    let diff = c.sub("diff", hs.clone(), cand.clone());
                    let upd = c.mul("update", z, diff);
                    c.add("h", cand, upd)
                }
            };
            hs = c.hold("h_held", h_new.clone(), &hs, &ended, h);
            let V::A(ha) = h_new else {
                unreachable!("a hidden state depends on the input")
            };
            outs_h.push(ha);
        }
        finals.push((hs, cs));
    }
    let batch_y = x.batch.map(|_| if layout == 0 { 2 } else { 0 });
    let batch_s = x.batch.map(|_| if layout == 0 { 1 } else { 0 });
    // Outputs no node or graph output reads make no layers.
    let used: Vec<bool> = (0..3)
        .map(|k| {
            n.proto
                .output
                .get(k)
                .is_some_and(|o| !o.is_empty() && b.uses.get(o).copied().unwrap_or(0) > 0)
        })
        .collect();
    let used = |k: usize| used[k];
    let mut values = Vec::with_capacity(n.proto.output.len());
    // Y: [T, D, rows, H] (layout 0) or [rows, T, D, H], zeros after a sequence ends.
    if used(0) {
        let ids: Vec<usize> = outs_h.iter().map(|a| a.id).collect();
        let mut src = Vec::with_capacity(steps * dirs * rows * h);
        let mut push = |t: usize, d: usize, row: usize| {
            let s = if t >= lens[row] {
                None
            } else if reverse[d] {
                Some(lens[row] - 1 - t)
            } else {
                Some(t)
            };
            src.extend((0..h).map(|j| match s {
                Some(s) => ((d * steps + s) as u16, (row * h + j) as u32),
                None => (ROUTE_ZERO, 0),
            }));
        };
        let view: Vec<usize> = if layout == 0 {
            for t in 0..steps {
                for d in 0..dirs {
                    (0..rows).for_each(|row| push(t, d, row));
                }
            }
            vec![steps, dirs, rows, h]
        } else {
            for row in 0..rows {
                for t in 0..steps {
                    (0..dirs).for_each(|d| push(t, d, row));
                }
            }
            vec![rows, steps, dirs, h]
        };
        let shape = Act::from_view(0, view, batch_y).shape;
        let y = b.push(n.name.into(), Op::Route { src }, ids, shape);
        values.push(Value::Act(y.with_batch(batch_y)));
    } else {
        values.push(Value::Const(Const::scalar(0.0)));
    }
    // Y_h and Y_c: [D, rows, H] (layout 0) or [rows, D, H].
    for (k, what) in [(1, "Y_h"), (2, "Y_c")] {
        if k >= n.proto.output.len() {
            break;
        }
        if !used(k) || (k == 2 && kind != Kind::Lstm) {
            values.push(Value::Const(Const::scalar(0.0)));
            continue;
        }
        let ids: Vec<usize> = finals
            .iter()
            .map(|(hs, cs)| match if k == 1 { hs } else { cs } {
                V::A(a) => Ok(a.id),
                _ => Err(format!("{what} does not depend on the input")),
            })
            .collect::<Result<_, String>>()?;
        let one = |d: usize, row: usize| (0..h).map(move |j| (d as u16, (row * h + j) as u32));
        let (src, view): (Vec<(u16, u32)>, Vec<usize>) = if layout == 0 {
            (
                (0..dirs)
                    .flat_map(|d| (0..rows).flat_map(move |row| one(d, row)))
                    .collect(),
                vec![dirs, rows, h],
            )
        } else {
            (
                (0..rows)
                    .flat_map(|row| (0..dirs).flat_map(move |d| one(d, row)))
                    .collect(),
                vec![rows, dirs, h],
            )
        };
        let shape = Act::from_view(0, view, batch_s).shape;
        let y = b.push(format!("{}.{what}", n.name), Op::Route { src }, ids, shape);
        values.push(Value::Act(y.with_batch(batch_s)));
    }
    Ok(values)
}
