//! The public QONNX models in `models/` against qonnx's own executor:
//! `models/qonnx/refs.npz` holds its outputs on 10,000 inputs of each
//! model's input grid (written by `models/qonnx/make_refs.py`, qonnx 1.0.0);
//! the inputs are regenerated here from the same splitmix64 sequence. The
//! golden model at the default configuration must give the same integer
//! codes (hidden thresholds, logits), hence the same classes.

use quantize::config::Config;
use quantize::golden;
use quantize::npy::{read_npz, Events};
use quantize::onnx::import_path;
use quantize::qmodel::{QModel, QOp};
use quantize::quantizer::quantize_graph;
use std::path::PathBuf;

const EVENTS: usize = 10_000;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 8-bit images `p / 255`: even events uniform noise, odd ones sparse
/// (about 19 % of pixels lit), as `make_refs.py` draws them.
fn mnist_events() -> Vec<f32> {
    let seed = 0x7FC0u64.wrapping_mul(1_000_000_007);
    (0..EVENTS * 784)
        .map(|k| {
            let v = splitmix64(seed.wrapping_add(k as u64));
            let p = if (k / 784) % 2 == 0 || (v & 0xFF) < 48 {
                v >> 56
            } else {
                0
            };
            p as f32 / 255.0
        })
        .collect()
}

/// Jet features on the 2^-6 grid in [-4, 4).
fn jet_events() -> Vec<f32> {
    let seed = 0x7E75u64.wrapping_mul(1_000_000_007);
    (0..EVENTS * 16)
        .map(|k| ((splitmix64(seed.wrapping_add(k as u64)) >> 55) as i64 - 256) as f32 / 64.0)
        .collect()
}

fn refs() -> Vec<(String, Events)> {
    read_npz(&models().join("qonnx/refs.npz")).unwrap()
}

fn array<'a>(refs: &'a [(String, Events)], name: &str) -> &'a Events {
    &refs.iter().find(|(k, _)| k == name).unwrap().1
}

/// The first index of the largest value (numpy's argmax).
fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

/// Index of the last layer of `kind`.
fn last(q: &QModel, kind: &str) -> usize {
    q.layers.iter().rposition(|l| l.op.kind() == kind).unwrap()
}

/// Tensor `t`'s values in `all`, the golden model's raw tensors.
fn tensor_values(q: &QModel, all: &[Vec<i64>], t: usize) -> Vec<f64> {
    all[t].iter().map(|&r| q.ty(t).to_f64(r)).collect()
}

fn values(q: &QModel, all: &[Vec<i64>], li: usize) -> Vec<f64> {
    tensor_values(q, all, q.layer_tensor(li))
}

/// One event of a reference array as f64.
fn as_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn brevitas_mnist_models_give_qonnx_codes() {
    let refs = refs();
    let events = mnist_events();
    for (file, key) in [("TFC_2W2A.onnx", "tfc2"), ("TFC_1W2A.onnx", "tfc1")] {
        let g = import_path(&models().join(file)).unwrap();
        let q = quantize_graph(&g, &Config::default()).unwrap();
        let (logits_l, hidden_l) = (last(&q, "Dense"), last(&q, "Step"));
        // The logits' Dense carries the per-tensor mean the exporter
        // subtracts after the MatMul as its bias: the codes are without it.
        let QOp::Dense { bias, b_ty, .. } = &q.layers[logits_l].op else {
            unreachable!()
        };
        let bias: Vec<f64> = bias.iter().map(|&b| b_ty.to_f64(b)).collect();
        let (want_logits, want_hidden, want_out) = (
            array(&refs, &format!("{key}_logits")),
            array(&refs, &format!("{key}_h3")),
            array(&refs, &format!("{key}_out")),
        );
        let (mut logit_diffs, mut hidden_diffs, mut class_diffs, mut max_dy) = (0, 0, 0, 0f64);
        for (i, ev) in events.chunks(784).enumerate() {
            let all = golden::evaluate_all(&q, &golden::quantize_input(&q, ev)).unwrap();
            let logits: Vec<f64> = values(&q, &all, logits_l)
                .iter()
                .zip(&bias)
                .map(|(v, b)| v - b)
                .collect();
            let want: Vec<f64> = as_f64(want_logits.event(i));
            logit_diffs += (logits != want) as usize;
            let hidden = values(&q, &all, hidden_l);
            let want_h: Vec<f64> = as_f64(want_hidden.event(i));
            hidden_diffs += (hidden != want_h) as usize;
            let out = tensor_values(&q, &all, q.outputs[0].tensor);
            let want_o: Vec<f64> = as_f64(want_out.event(i));
            class_diffs += (argmax(&out) != argmax(&want_o)) as usize;
            for (a, b) in out.iter().zip(&want_o) {
                max_dy = max_dy.max((a - b).abs());
            }
        }
        eprintln!(
            "{file}: {EVENTS} events: logits differ on {logit_diffs}, last hidden codes on {hidden_diffs}, classes on {class_diffs}; float output max |dy| {max_dy:.2e}"
        );
        assert_eq!(
            (logit_diffs, hidden_diffs, class_diffs),
            (0, 0, 0),
            "{file}"
        );
        // The output is the logits through the exporter's trailing float
        // affine, kept at the default fixed<16,6>: within an LSB of it.
        assert!(max_dy <= 2f64.powi(-10), "{file}: max |dy| {max_dy}");
    }
}

#[test]
fn qkeras_jet_tagger_gives_qonnx_codes() {
    let refs = refs();
    let g = import_path(&models().join("qkeras_jettagging.onnx")).unwrap();
    let q = quantize_graph(&g, &Config::default()).unwrap();
    let logits_l = last(&q, "Dense");
    let hidden_l = q.layers.iter().position(|l| l.name == "Quant_8").unwrap();
    let (want_logits, want_hidden, want_out) = (
        array(&refs, "jet_logits_codes"),
        array(&refs, "jet_h1"),
        array(&refs, "jet_out"),
    );
    let (mut logit_diffs, mut hidden_diffs, mut class_diffs, mut softmax_diffs) = (0, 0, 0, 0);
    for (i, ev) in jet_events().chunks(16).enumerate() {
        let all = golden::evaluate_all(&q, &golden::quantize_input(&q, ev)).unwrap();
        let logits: Vec<f64> = values(&q, &all, logits_l)
            .iter()
            .map(|v| v * 2048.0)
            .collect();
        let want: Vec<f64> = as_f64(want_logits.event(i));
        logit_diffs += (logits != want) as usize;
        let hidden: Vec<f64> = values(&q, &all, hidden_l)
            .iter()
            .map(|v| v * 64.0)
            .collect();
        let want_h: Vec<f64> = as_f64(want_hidden.event(i));
        hidden_diffs += (hidden != want_h) as usize;
        let want_o: Vec<f64> = as_f64(want_out.event(i));
        class_diffs += (argmax(&logits) != argmax(&want_o)) as usize;
        let out = values(&q, &all, q.layers.len() - 1);
        softmax_diffs += (argmax(&out) != argmax(&want_o)) as usize;
    }
    eprintln!(
        "qkeras_jettagging.onnx: {EVENTS} events: logits differ on {logit_diffs}, first hidden codes on {hidden_diffs}, logit classes on {class_diffs}; the fixed-point Softmax's class differs on {softmax_diffs}"
    );
    assert_eq!((logit_diffs, hidden_diffs, class_diffs), (0, 0, 0));
    // The Softmax is float in the model and a table here: it may only
    // reorder classes whose probabilities are within its resolution.
    assert!(softmax_diffs <= EVENTS / 200, "{softmax_diffs}");
}
