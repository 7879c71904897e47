//! ONNX RNN, GRU and LSTM, unrolled over their sequence: ROOT's operator
//! test models (every direction, both layouts, sequence lengths, initial
//! states, peepholes) give ONNX Runtime's outputs through bxflow's float
//! reference (`models/ops/recurrent_refs.npz`, made by
//! `models/ops/make_recurrent_refs.py`).

mod common;

use quantize::ir::Graph;
use quantize::npy::{read_npz, Events};
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

#[test]
fn root_recurrent_models_match_onnx_runtime() {
    let refs = read_npz(&ops_dir().join("recurrent_refs.npz")).unwrap();
    for model in MODELS {
        let g = quantize::onnx::import_path(&ops_dir().join(format!("{model}.onnx")))
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let (x, expected) = reference(&g, &refs, model);
        assert!(expected.iter().flatten().any(|&v| v.abs() > 0.1), "{model}");
        let ours: Vec<Vec<f64>> = x
            .chunks(g.input_len())
            .map(|ev| g.evaluate(&ev.iter().map(|&v| v as f64).collect::<Vec<_>>()))
            .collect();
        common::assert_close(model, &ours, &expected);
    }
}
