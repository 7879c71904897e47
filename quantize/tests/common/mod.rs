//! ONNX models written in tests: nodes, attributes, initializers and graphs
//! of one or several inputs and outputs, as protobuf bytes the importer and tract both read; and
//! tract's outputs on them, the float reference.

#![allow(dead_code)] // each test crate uses part of these

use prost::Message;
use tract_onnx::pb;

/// A float tensor's declaration; no dims at all leaves its shape unstated.
pub fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value as D, Dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: (!dims.is_empty()).then(|| pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            // A negative size stands for a symbolic one.
                            value: Some(if d < 0 {
                                D::DimParam("N".into())
                            } else {
                                D::DimValue(d)
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// `node` with an integer attribute added.
pub fn with_int(mut n: pb::NodeProto, name: &str, v: i64) -> pb::NodeProto {
    n.attribute.push(pb::AttributeProto {
        name: name.into(),
        i: v,
        r#type: 2,
        ..Default::default()
    });
    n
}

/// `node` with an integer-list attribute added.
pub fn with_ints(mut n: pb::NodeProto, name: &str, v: &[i64]) -> pb::NodeProto {
    n.attribute.push(pb::AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: 7,
        ..Default::default()
    });
    n
}

/// Values in [-1, 1) from a fixed sequence (an LCG seeded by `seed`).
pub fn scattered(name: &str, dims: &[i64], seed: u64) -> pb::TensorProto {
    let n: i64 = dims.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    values(name, dims, &v)
}

/// Weights `0.1 * i` for the `i`-th value.
pub fn weights(name: &str, dims: &[i64]) -> pb::TensorProto {
    let n: i64 = dims.iter().product();
    values(
        name,
        dims,
        &(0..n).map(|i| i as f32 * 0.1).collect::<Vec<_>>(),
    )
}

pub fn values(name: &str, dims: &[i64], v: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: v.to_vec(),
        ..Default::default()
    }
}

/// A graph with input `x` of shape `input` and output `output` of shape
/// `out_dims` (unstated when empty), opset 13.
pub fn model(
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    input: &[i64],
    output: &str,
    out_dims: &[i64],
) -> Vec<u8> {
    graph_model(nodes, inits, &[("x", input)], &[(output, out_dims)])
}

/// A graph of several inputs and outputs, `(name, dims)` each (output
/// shapes unstated when empty), opset 13.
pub fn graph_model(
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    inputs: &[(&str, &[i64])],
    outputs: &[(&str, &[i64])],
) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            node: nodes,
            name: "g".into(),
            initializer: inits,
            input: inputs.iter().map(|(n, d)| value_info(n, d)).collect(),
            output: outputs.iter().map(|(n, d)| value_info(n, d)).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// tract's float outputs for `events` (flat, every input of an event after
/// the other; `inputs` their names and event shapes), one event per run
/// with a leading batch axis of 1 on every input, whatever batch the file
/// declares; the outputs of an event concatenated.
pub fn tract_outputs(model: &[u8], inputs: &[(&str, &[usize])], events: &[f32]) -> Vec<Vec<f64>> {
    let full: Vec<Vec<usize>> = inputs
        .iter()
        .map(|(_, s)| std::iter::once(1).chain(s.iter().copied()).collect())
        .collect();
    tract_runs(model, &full, events)
}

/// tract's float outputs for `events`, each input given its ONNX shape in
/// `full` (one event per run).
pub fn tract_runs(model: &[u8], full: &[Vec<usize>], events: &[f32]) -> Vec<Vec<f64>> {
    use tract_onnx::prelude::*;
    let mut m = tract_onnx::onnx().model_for_read(&mut &model[..]).unwrap();
    for (k, f) in full.iter().enumerate() {
        m = m.with_input_fact(k, f32::fact(f).into()).unwrap();
    }
    let plan = m.into_optimized().unwrap().into_runnable().unwrap();
    let len: usize = full.iter().map(|s| s.iter().product::<usize>()).sum();
    events
        .chunks(len)
        .map(|mut ev| {
            let inputs: TVec<TValue> = full
                .iter()
                .map(|f| {
                    let (x, rest) = ev.split_at(f.iter().product());
                    ev = rest;
                    let t = tract_ndarray::Array::from_shape_vec(f.clone(), x.to_vec()).unwrap();
                    Tensor::from(t).into()
                })
                .collect();
            plan.run(inputs)
                .unwrap()
                .iter()
                .flat_map(|o| {
                    o.to_plain_array_view::<f32>()
                        .unwrap()
                        .iter()
                        .map(|&v| v as f64)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect()
}

/// Asserts bxflow's f64 float reference agrees with tract's f32 outputs.
pub fn assert_close(name: &str, ours: &[Vec<f64>], theirs: &[Vec<f64>]) {
    assert_eq!(ours.len(), theirs.len(), "{name}: event count");
    for (e, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a.len(), b.len(), "{name}: output length");
        for (x, y) in a.iter().zip(b) {
            // tract computes in f32; bxflow's float reference in f64.
            let tol = 1e-5 * y.abs().max(1.0) + 1e-5;
            assert!(
                (x - y).abs() <= tol,
                "{name} event {e}: bxflow {x} vs tract {y}"
            );
        }
    }
}

/// An int64 initializer (indices, pads, sizes).
pub fn int64s(name: &str, dims: &[i64], v: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

/// `node` with a string attribute added.
pub fn with_str(mut n: pb::NodeProto, name: &str, v: &str) -> pb::NodeProto {
    n.attribute.push(pb::AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: 3,
        ..Default::default()
    });
    n
}

/// Imports `bytes`, runs `events` N(0,1) events (seed `seed`) through
/// bxflow's float reference and through tract, and asserts they agree;
/// returns the imported graph for further checks.
pub fn matches_tract(name: &str, bytes: &[u8], events: usize, seed: u64) -> quantize::ir::Graph {
    use quantize::calibrate::{default_events, float_outputs};
    let g = quantize::onnx::import_bytes(bytes, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let ev = default_events(&g, events, seed);
    let ours = float_outputs(&g, &ev, &quantize::work::Work::default());
    // One event per run: a batch of 1 in front, unless the whole static
    // tensor is the event.
    let full: Vec<Vec<usize>> = g
        .inputs
        .iter()
        .map(|i| {
            let lead = i.event_axis.then_some(1);
            lead.into_iter().chain(i.shape.iter().copied()).collect()
        })
        .collect();
    let theirs = tract_runs(bytes, &full, &ev);
    assert_close(name, &ours, &theirs);
    g
}

/// Two inputs (jet features and muon features), a merge, and three outputs:
/// a score, a feature vector built by a Concat, and an intermediate tensor
/// that other layers also read.
pub fn two_tower() -> Vec<u8> {
    let gemm = |name: &str, x: &str, w: &str, b: &str, y: &str| {
        with_int(node("Gemm", name, &[x, w, b], &[y]), "transB", 1)
    };
    graph_model(
        vec![
            gemm("jet_fc", "jets", "w1", "b1", "h1"),
            gemm("muon_fc", "muons", "w2", "b2", "h2"),
            node("Add", "merge", &["h1", "h2"], &["s"]),
            node("Relu", "act", &["s"], &["r"]),
            gemm("head", "r", "w3", "b3", "score"),
            with_int(node("Concat", "cat", &["h2", "r"], &["feats"]), "axis", 1),
        ],
        vec![
            scattered("w1", &[4, 6], 1),
            scattered("b1", &[4], 2),
            scattered("w2", &[4, 3], 3),
            scattered("b2", &[4], 4),
            scattered("w3", &[2, 4], 5),
            scattered("b3", &[2], 6),
        ],
        &[("jets", &[-1, 6]), ("muons", &[-1, 3])],
        &[("score", &[]), ("feats", &[]), ("h2", &[])],
    )
}

/// Attention-like products: a per-particle Dense (MatMul of `[N, P, K]` by a
/// constant), then the particles' pairwise products (MatMul of two
/// activations, one transposed), and a MatMul of two graph inputs.
pub fn products() -> Vec<u8> {
    graph_model(
        vec![
            node("MatMul", "embed", &["parts", "w"], &["h"]),
            with_ints(
                node("Transpose", "ht", &["h"], &["h_t"]),
                "perm",
                &[0, 2, 1],
            ),
            node("MatMul", "pairs", &["h", "h_t"], &["scores"]),
            node("MatMul", "qk", &["q", "k"], &["qk_out"]),
        ],
        vec![scattered("w", &[4, 3], 11)],
        &[
            ("parts", &[-1, 6, 4]),
            ("q", &[-1, 2, 4, 3]),
            ("k", &[-1, 2, 3, 5]),
        ],
        &[("scores", &[]), ("qk_out", &[]), ("h", &[])],
    )
}

/// A random ONNX RNN, GRU or LSTM (seeded): sizes, direction, layout (0
/// with a static batch of 1 or 2 inside one event, or 1 with a symbolic
/// batch), activation lists with their alphas and betas, biases, initial
/// states, peepholes, `linear_before_reset`, `clip` and sequence lengths
/// each drawn or not. Returns the model and a line saying what was drawn.
pub fn random_recurrent(seed: u64) -> (Vec<u8>, String) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut pick = |n: usize| -> usize {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    };
    let kind = ["RNN", "GRU", "LSTM"][pick(3)];
    let (t, i, h) = (1 + pick(4), 1 + pick(3), 1 + pick(4));
    let direction = ["forward", "reverse", "bidirectional"][pick(3)];
    let d = if direction == "bidirectional" { 2 } else { 1 };
    let layout = pick(2) as i64;
    let rows = if layout == 0 { 1 + pick(2) } else { 1 };
    let g = match kind {
        "RNN" => 1,
        "GRU" => 3,
        _ => 4,
    };
    // Gate functions (f) and the others (g, h), with the alphas and betas
    // of those that take them, in list order.
    let gates = ["Sigmoid", "HardSigmoid", "Tanh"];
    let others = [
        "Tanh",
        "Relu",
        "Softsign",
        "LeakyRelu",
        "ScaledTanh",
        "Affine",
    ];
    let per = match kind {
        "RNN" => vec![false],
        "GRU" => vec![true, false],
        _ => vec![true, false, false],
    };
    let (mut acts, mut alphas, mut betas) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..d {
        for &gate in &per {
            let a = if gate {
                gates[pick(gates.len())]
            } else {
                others[pick(others.len())]
            };
            match a {
                "LeakyRelu" => alphas.push(0.1),
                "HardSigmoid" => {
                    alphas.push(0.25);
                    betas.push(0.5);
                }
                "ScaledTanh" => {
                    alphas.push(0.75);
                    betas.push(1.5);
                }
                "Affine" => {
                    alphas.push(0.5);
                    betas.push(0.125);
                }
                _ => {}
            }
            acts.push(a);
        }
    }
    let mut inits = vec![
        scattered("W", &[d as i64, (g * h) as i64, i as i64], seed + 1),
        scattered("R", &[d as i64, (g * h) as i64, h as i64], seed + 2),
    ];
    let mut inputs = vec!["x".to_string(), "W".into(), "R".into()];
    let mut drawn = vec![format!(
        "{kind} {direction} layout {layout} T {t} rows {rows} I {i} H {h} {acts:?}"
    )];
    // Optional input `k`, drawn or left empty.
    let mut optional =
        |name: &str, dims: Vec<i64>, k: usize, take: bool| -> Option<pb::TensorProto> {
            while inputs.len() < k {
                inputs.push(String::new());
            }
            inputs.push(if take { name.into() } else { String::new() });
            take.then(|| scattered(name, &dims, seed + k as u64 + 10))
        };
    let (d64, h64, r64) = (d as i64, h as i64, rows as i64);
    let state_dims = if layout == 0 {
        vec![d64, r64, h64]
    } else {
        vec![r64, d64, h64]
    };
    let lens: Vec<i64> = (0..rows).map(|_| 1 + pick(t) as i64).collect();
    let draws: Vec<bool> = (0..5).map(|_| pick(2) == 0).collect();
    let mut opt = Vec::new();
    opt.push(optional("B", vec![d64, 2 * g as i64 * h64], 3, draws[0]));
    if draws[1] {
        drawn.push(format!("lens {lens:?}"));
    }
    opt.push(
        optional("lens", vec![r64], 4, draws[1]).map(|_| pb::TensorProto {
            name: "lens".into(),
            dims: vec![r64],
            data_type: 6,
            int32_data: lens.iter().map(|&v| v as i32).collect(),
            ..Default::default()
        }),
    );
    opt.push(optional("initial_h", state_dims.clone(), 5, draws[2]));
    if kind == "LSTM" {
        opt.push(optional("initial_c", state_dims, 6, draws[3]));
        opt.push(optional("P", vec![d64, 3 * h64], 7, draws[4]));
    }
    for t in opt.into_iter().flatten() {
        drawn.push(t.name.clone());
        inits.push(t);
    }
    while inputs.last().is_some_and(|s| s.is_empty()) {
        inputs.pop();
    }
    let outs: Vec<&str> = if kind == "LSTM" {
        vec!["Y", "Y_h", "Y_c"]
    } else {
        vec!["Y", "Y_h"]
    };
    let ins: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let mut n = with_int(node(kind, "cell", &ins, &outs), "hidden_size", h64);
    n = with_str(n, "direction", direction);
    n = with_int(n, "layout", layout);
    n.attribute.push(pb::AttributeProto {
        name: "activations".into(),
        strings: acts.iter().map(|a| a.as_bytes().to_vec()).collect(),
        r#type: 8,
        ..Default::default()
    });
    for (name, v) in [("activation_alpha", &alphas), ("activation_beta", &betas)] {
        if !v.is_empty() {
            n.attribute.push(pb::AttributeProto {
                name: name.into(),
                floats: v.clone(),
                r#type: 6,
                ..Default::default()
            });
        }
    }
    if kind == "GRU" && pick(2) == 0 {
        n = with_int(n, "linear_before_reset", 1);
        drawn.push("linear_before_reset".into());
    }
    if pick(3) == 0 {
        n.attribute.push(pb::AttributeProto {
            name: "clip".into(),
            f: 1.5,
            r#type: 1,
            ..Default::default()
        });
        drawn.push("clip 1.5".into());
    }
    let x: Vec<i64> = if layout == 0 {
        vec![t as i64, r64, i as i64]
    } else {
        vec![-1, t as i64, i as i64]
    };
    let outputs: Vec<(&str, &[i64])> = outs.iter().map(|o| (*o, &[][..])).collect();
    let mut m = graph_model(vec![n], inits, &[("x", &x)], &outputs);
    // Recurrent ops in their opset-14 form.
    let mut proto = pb::ModelProto::decode(&m[..]).expect("just encoded");
    proto.opset_import[0].version = 14;
    m = proto.encode_to_vec();
    (m, drawn.join(", "))
}

/// `node` with a float attribute added.
pub fn with_float(mut n: pb::NodeProto, name: &str, v: f32) -> pb::NodeProto {
    n.attribute.push(pb::AttributeProto {
        name: name.into(),
        f: v,
        r#type: 1,
        ..Default::default()
    });
    n
}

/// A QONNX `Quant` node `name` on `inputs` (x, scale, zero point, bits),
/// its output `{name}_y`.
pub fn quant(
    name: &str,
    inputs: [&str; 4],
    signed: bool,
    narrow: bool,
    mode: &str,
) -> pb::NodeProto {
    let n = node("Quant", name, &inputs, &[&format!("{name}_y")]);
    let n = with_int(n, "signed", signed as i64);
    let n = with_int(n, "narrow", narrow as i64);
    with_str(n, "rounding_mode", mode)
}

/// A random Brevitas-style chain with float scales and zero points, and
/// what it was drawn with: `Quant(x; s_x, z_x) -> MatMul(Quant(W; s_w per
/// output)) -> Add(bias) -> Mul(c) -> Add(d) -> [Relu] -> Quant(s_y, z_y)`,
/// input `x` of `[1, n_in]`, output `qy_y`.
pub struct QatChain {
    pub bytes: Vec<u8>,
    pub n_in: usize,
    pub n_out: usize,
    pub mode: &'static str,
    pub sx: f32,
    pub bx: u32,
    pub x_signed: bool,
    pub zx: i64,
    pub sw: Vec<f32>,
    /// The weights' integer codes, `[n_in][n_out]`.
    pub wq: Vec<i64>,
    pub bias: Vec<f32>,
    pub c: Vec<f32>,
    pub d: Vec<f32>,
    pub sy: f32,
    pub by: u32,
    pub y_signed: bool,
    pub y_narrow: bool,
    pub zy: i64,
    pub relu: bool,
}

pub fn qat_chain(seed: u64) -> QatChain {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(seed);
    let (n_in, n_out) = (rng.gen_range(1..=6usize), rng.gen_range(1..=5usize));
    let mode = ["ROUND", "FLOOR", "HALF_UP", "ROUND_TO_ZERO"][rng.gen_range(0..4)];
    let f32s = |rng: &mut SmallRng, lo: f32, hi: f32| rng.gen_range(lo..hi);
    let (sx, bx) = (f32s(&mut rng, 0.01, 0.5), rng.gen_range(2..=6u32));
    let x_signed = rng.gen_bool(0.5);
    let zx = if rng.gen_bool(0.5) {
        0
    } else {
        rng.gen_range(-3..=3i64)
    };
    let bw = rng.gen_range(2..=5u32);
    let sw: Vec<f32> = (0..n_out).map(|_| f32s(&mut rng, 0.01, 0.3)).collect();
    let wmax = (1i64 << (bw - 1)) - 1;
    let wq: Vec<i64> = (0..n_in * n_out)
        .map(|_| rng.gen_range(-wmax..=wmax))
        .collect();
    let bias: Vec<f32> = (0..n_out).map(|_| f32s(&mut rng, -1.0, 1.0)).collect();
    let c: Vec<f32> = (0..n_out)
        .map(|_| match rng.gen_range(0..5) {
            0 => -f32s(&mut rng, 0.1, 2.0),
            _ => f32s(&mut rng, 0.1, 2.0),
        })
        .collect();
    let d: Vec<f32> = (0..n_out).map(|_| f32s(&mut rng, -1.0, 1.0)).collect();
    let (sy, by) = (f32s(&mut rng, 0.01, 0.5), rng.gen_range(2..=8u32));
    let y_signed = rng.gen_bool(0.5);
    let y_narrow = rng.gen_bool(0.3);
    let zy = if rng.gen_bool(0.5) {
        0
    } else {
        rng.gen_range(-3..=3i64)
    };
    // Brevitas' QuantReLU: a Relu before the quantizer.
    let relu = rng.gen_bool(0.5);
    let scalar = |name: &str, v: f32| values(name, &[], &[v]);
    let quant = |name, x, s, z, b, signed, narrow| quant(name, [x, s, z, b], signed, narrow, mode);
    // W[i][o] = code * s_w[o], as the f32 an exporter stores.
    let w: Vec<f32> = (0..n_in * n_out)
        .map(|k| wq[k] as f32 * sw[k % n_out])
        .collect();
    let nodes = vec![
        quant("qx", "x", "sx", "zx", "bx", x_signed, false),
        quant("qw", "w", "sw", "zero", "bw", true, false),
        node("MatMul", "mm", &["qx_y", "qw_y"], &["acc"]),
        node("Add", "bias", &["acc", "b"], &["biased"]),
        node("Mul", "mul", &["biased", "c"], &["scaled"]),
        node("Add", "add", &["scaled", "d"], &["shifted"]),
        if relu {
            node("Relu", "relu", &["shifted"], &["active"])
        } else {
            node("Identity", "id", &["shifted"], &["active"])
        },
        quant("qy", "active", "sy", "zy", "by", y_signed, y_narrow),
    ];
    let inits = vec![
        scalar("sx", sx),
        scalar("zx", zx as f32),
        scalar("bx", bx as f32),
        values("sw", &[1, n_out as i64], &sw),
        scalar("zero", 0.0),
        scalar("bw", bw as f32),
        scalar("sy", sy),
        scalar("zy", zy as f32),
        scalar("by", by as f32),
        values("w", &[n_in as i64, n_out as i64], &w),
        values("b", &[n_out as i64], &bias),
        values("c", &[n_out as i64], &c),
        values("d", &[n_out as i64], &d),
    ];
    let bytes = graph_model(
        nodes,
        inits,
        &[("x", &[1, n_in as i64])],
        &[("qy_y", &[1, n_out as i64])],
    );
    QatChain {
        bytes,
        n_in,
        n_out,
        mode,
        sx,
        bx,
        x_signed,
        zx,
        sw,
        wq,
        bias,
        c,
        d,
        sy,
        by,
        y_signed,
        y_narrow,
        zy,
        relu,
    }
}
