//! ONNX RNN, GRU and LSTM, unrolled over their sequence: ROOT's operator
//! test models (every direction, both layouts, sequence lengths, initial
//! states, peepholes) give ONNX Runtime's outputs through bxflow's float
//! reference (`models/ops/recurrent_refs.npz`, made by
//! `models/ops/make_recurrent_refs.py`).

mod common;

use quantize::config::Config;
use quantize::golden;
use quantize::ir::Graph;
use quantize::npy::{read_npz, Events};
use quantize::quantizer::quantize_graph;
use std::path::{Path, PathBuf};

const MODELS: &[&str] = &[
    "RNNDefaults",
    "RNNBatchwise",
    "RNNBidirectional",
    "RNNBidirectionalBatchwise",
    "RNNSeqLength",
    "RNNSequence",
    "RNNSequenceBatchwise",
    "GRUDefaults",
    "GRUBatchwise",
    "GRUBidirectional",
    "GRUInitialBias",
    "GRUSeqLength",
    "LSTMDefaults",
    "LSTMBatchwise",
    "LSTMBidirectional",
    "LSTMInitialBias",
    "LSTMPeepholes",
];

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ops")
}

/// ONNX Runtime's runs of `model`: its inputs as bxflow events (a sample
/// of the file's static shape is one event, or one event per row when the
/// first axis is the event axis) and the outputs of each event.
fn reference(g: &Graph, refs: &[(String, Events)], model: &str) -> (Vec<f32>, Vec<Vec<f64>>) {
    let get = |name: &str| {
        &refs
            .iter()
            .find(|(n, _)| n == &format!("{model}.{name}"))
            .unwrap_or_else(|| panic!("{model}.{name} in the references"))
            .1
    };
    let x = get("X");
    let per_sample = if g.inputs[0].event_axis {
        x.shape[1]
    } else {
        1
    };
    let events = x.count() * per_sample;
    let outs: Vec<&Events> = g.outputs.iter().map(|o| get(&o.name)).collect();
    let expected = (0..events)
        .map(|e| {
            outs.iter()
                .flat_map(|o| {
                    let len = o.data.len() / events;
                    o.data[e * len..(e + 1) * len].iter().map(|&v| v as f64)
                })
                .collect()
        })
        .collect();
    (x.data.clone(), expected)
}

fn import(model: &str) -> Graph {
    quantize::onnx::import_path(&ops_dir().join(format!("{model}.onnx")))
        .unwrap_or_else(|e| panic!("{model}: {e}"))
}

#[test]
fn root_recurrent_models_match_onnx_runtime() {
    let refs = read_npz(&ops_dir().join("recurrent_refs.npz")).unwrap();
    for model in MODELS {
        let g = import(model);
        let (x, expected) = reference(&g, &refs, model);
        assert!(expected.iter().flatten().any(|&v| v != 0.0), "{model}");
        let ours: Vec<Vec<f64>> = x
            .chunks(g.input_len())
            .map(|ev| g.evaluate(&ev.iter().map(|&v| v as f64).collect::<Vec<_>>()))
            .collect();
        common::assert_close(model, &ours, &expected);
    }
}

/// At a wide precision (`fixed<32,12>`, tables of 2^16 entries) the golden
/// model keeps every output of every time step within 1e-3 of ONNX Runtime.
#[test]
fn root_recurrent_models_in_wide_fixed_point_stay_within_1e_3() {
    let refs = read_npz(&ops_dir().join("recurrent_refs.npz")).unwrap();
    let cfg = Config::from_toml(
        "[model]\nprecision = \"fixed<32,12>\"\ntable_bits = 16\n",
        "wide.toml",
    )
    .unwrap();
    for model in MODELS {
        let g = import(model);
        let q = quantize_graph(&g, &cfg).unwrap_or_else(|e| panic!("{model}: {e}"));
        let (x, expected) = reference(&g, &refs, model);
        let prepared = golden::Golden::new(&q, golden::Arithmetic::Fast);
        for (ev, want) in x.chunks(g.input_len()).zip(&expected) {
            let raw = prepared.evaluate(&golden::quantize_input(&q, ev)).unwrap();
            let got = golden::dequantize_output(&q, &raw);
            for (a, b) in got.iter().zip(want) {
                assert!(
                    (a - b).abs() <= 1e-3,
                    "{model}: fixed {a} vs ONNX Runtime {b}"
                );
            }
        }
    }
}

/// `[layer."NODE.*.part"]` types one part of every unrolled step; a
/// pattern that matches no layer is an error that says so.
#[test]
fn layer_patterns_type_every_step_of_a_recurrent_node() {
    let g = import("LSTMDefaults");
    let cfg = Config::from_toml(
        "[model]\nprecision = \"fixed<16,6>\"\n[layer.\"LSTM_0.*.cell\"]\nresult = \"fixed<20,8>\"\n",
        "cell.toml",
    )
    .unwrap();
    let q = quantize_graph(&g, &cfg).unwrap();
    let cells: Vec<String> = q
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.name.ends_with(".cell"))
        .map(|(i, _)| q.ty(q.layer_tensor(i)).to_string())
        .collect();
    assert_eq!(cells, ["fixed<20,8>"; 3], "one cell per step");
    let others = q
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.name.ends_with(".h"));
    for (i, _) in others {
        assert_eq!(q.ty(q.layer_tensor(i)).to_string(), "fixed<16,6>");
    }
    let bad = Config::from_toml(
        "[model]\nprecision = \"fixed<16,6>\"\n[layer.\"LSTM_0.*.gate\"]\nresult = \"fixed<8,2>\"\n",
        "t",
    )
    .unwrap();
    let e = quantize_graph(&g, &bad)
        .expect_err("no such part")
        .to_string();
    assert!(
        e.contains("[layer.\"LSTM_0.*.gate\"] names no layer") && e.contains("LSTM_0.f0.cell"),
        "{e}"
    );
}

/// Random recurrent cells import, and their float reference evaluates to
/// finite values of the shapes ONNX gives Y and Y_h.
#[test]
fn random_recurrent_cells_import() {
    for seed in 0..64 {
        let (bytes, drawn) = common::random_recurrent(seed);
        let g = quantize::onnx::import_bytes(&bytes, "cell")
            .unwrap_or_else(|e| panic!("seed {seed} ({drawn}): {e}"));
        let y = g.evaluate(&vec![0.5; g.input_len()]);
        assert!(y.iter().all(|v| v.is_finite()), "seed {seed} ({drawn})");
    }
}
